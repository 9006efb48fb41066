"""OCI runtime-spec seccomp: the ``linux.seccomp`` object of a ``config.json``.

The object is Docker's format without moby's extensions (``archMap``, ``includes``/
``excludes``, ``comment``, the legacy ``name``), which are rejected here so a config.json is
checked against what runc really reads. A whole ``config.json`` or the bare object is read;
the writer produces the bare object (``config=True``: a minimal config.json around it).
Semantics, including runc's OR of two tests of one argument, are those of
:mod:`sysgate.formats.docker`.
"""
from __future__ import annotations

import json
from typing import Any

from . import Exported, ProfileError, load_json, read_file
from .docker import DockerProfile, dump, parse

__all__ = ["loads", "load", "load_doc", "export", "detect_json"]

OCI_VERSION = "1.2.0"


def detect_json(doc: Any) -> float:
    """Certain for a runtime-spec document (``ociVersion`` or ``linux`` at its top)."""
    return 1.0 if isinstance(doc, dict) and ("linux" in doc or "ociVersion" in doc) else 0.0


def loads(text: str | bytes, source: str = "<config.json>", *, arch: str | None = None,
          unknown_names: list[str] | None = None) -> DockerProfile:
    return load_doc(load_json(text, source), source, arch=arch, unknown_names=unknown_names)


def load_doc(doc: Any, source: str = "<config.json>", *, arch: str | None = None,
             unknown_names: list[str] | None = None) -> DockerProfile:
    """The profile of a decoded config.json, or of a bare ``linux.seccomp`` object."""
    if isinstance(doc, dict) and ("linux" in doc or "ociVersion" in doc):
        linux = doc.get("linux")
        if not isinstance(linux, dict) or "seccomp" not in linux:
            raise ProfileError(f"{source}: linux.seccomp: missing (this config.json has no seccomp profile)")
        return parse(linux["seccomp"], f"{source}: linux.seccomp", arch=arch, oci=True, unknown_names=unknown_names)
    return parse(doc, source, arch=arch, oci=True, unknown_names=unknown_names)


def load(path: str, *, arch: str | None = None, unknown_names: list[str] | None = None) -> DockerProfile:
    data = read_file(path)
    return loads(data, path, arch=arch, unknown_names=unknown_names)


def export(src: Any, *, config: bool = False) -> Exported:
    """The ``linux.seccomp`` object (or, with ``config``, a config.json holding it) and its losses."""
    doc, losses = dump(src, oci=True, fmt="OCI")
    if config:
        doc = {"ociVersion": OCI_VERSION, "linux": {"seccomp": doc}}
    return Exported(json.dumps(doc, indent=2) + "\n", tuple(losses))
