"""Built-in profiles and the one entry point that turns a profile name or file into a Policy.

``resolve("docker-default")`` and ``resolve("/path/profile.json")`` are interchangeable
everywhere a profile is taken (``sysgate compile``, ``sysgate run --profile``).
"""
from __future__ import annotations

import os
from typing import Iterable

from ..formats import ProfileError
from ..policy import Policy

__all__ = ["resolve", "builtin_names", "builtin_path", "ProfileError"]

_DIR = os.path.dirname(os.path.abspath(__file__))

BUILTINS: dict[str, tuple[str, str]] = {
    # name: (file, one-line description)
    "docker-default": ("docker-default.json", "Docker's default seccomp profile (moby/profiles, Apache-2.0)"),
    "strict": ("strict.json", "read, write, exit, exit_group, sigreturn; everything else kills the process"),
}


def builtin_names() -> list[str]:
    return sorted(BUILTINS)


def builtin_path(name: str) -> str:
    return os.path.join(_DIR, BUILTINS[name][0])


def resolve(spec: str, *, arch: str | None = None, caps: Iterable[str] | None = None,
            arches: Iterable[str] | None = None) -> Policy:
    """The Policy for a built-in name or a profile file.

    ``arch`` is the primary architecture the profile is resolved for (moby's
    ``includes.arches`` and ``archMap``); ``arches`` overrides the covered set; ``caps`` the
    capability set for moby's ``includes.caps`` (Docker's default set when None).
    """
    path = builtin_path(spec) if spec in BUILTINS else spec
    if spec not in BUILTINS and not os.path.exists(path):
        import difflib

        close = difflib.get_close_matches(spec, list(BUILTINS), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ProfileError(f"{spec}: no such profile file or built-in profile{hint}; built-ins: "
                           + ", ".join(builtin_names()))
    from ..formats import docker

    policy = docker.load(path, arch=arch, caps=caps).policy
    if arches:
        policy = policy.with_arches(list(arches))
    return policy
