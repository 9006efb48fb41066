"""Reading and writing any format through the format table (:mod:`.catalog`).

:func:`read` turns a file of any policy format into a :class:`Loaded` (policy plus what the
policy model does not carry, such as Docker's flags); :func:`write` turns a policy into any
format's text, with its losses (see :class:`~sysgate.formats.Exported`). Nothing here names
a format: what differs between formats is a field of its :class:`~.catalog.Format`.
"""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

from ..immutable import Record
from ..policy import Policy
from . import Exported, ProfileError, decode_text, read_file
from .catalog import NAMES as FORMATS
from .catalog import get as _format

__all__ = ["FORMATS", "Loaded", "read", "read_bytes", "write"]


class Loaded(Record):
    """A policy read from a file: its ``format``, and ``extras`` (a DockerProfile for the JSON
    formats, whose flags and listener settings the policy model does not hold) and ``notes``."""

    __slots__ = ("policy", "format", "source", "extras", "notes")
    _defaults = {"extras": None, "notes": ()}
    policy: Policy
    format: str
    source: str
    extras: Any
    notes: tuple[str, ...]


def read_bytes(data: bytes, source: str, fmt: str | None = None, *, arch: str | None = None,
               arches: Iterable[str] | None = None, caps: Iterable[str] | None = None,
               thread: str | None = None, base_dir: str | None = None,
               unknown_names: list[str] | None = None, name: str | None = None, rename: bool = False) -> Loaded:
    """Read ``data`` (named ``source``) as ``fmt`` (detected when None).

    ``arch`` is the primary architecture (Docker's ``includes.arches``/``archMap``; the
    architecture named constants are evaluated for), ``arches`` overrides the covered set,
    ``caps`` is moby's capability set, ``thread`` selects a Firecracker filter, ``base_dir``
    is where includes are looked up when ``source`` is not a file. ``unknown_names``: collect the
    syscall names no architecture has instead of failing on them (``--skip-unknown``; JSON
    formats only: another format with it is an error, so nothing is skipped silently). ``name``
    picks the SeccompProfile of a Kubernetes manifest holding several (``rename``: a single profile
    need not have that name; convert's ``--name`` also names its output).
    """
    from .detect import detect_json, is_policy

    decoded = None  # the JSON document detection already decoded, if any
    if fmt:
        kind = fmt
    else:
        kind, decoded = detect_json(data, source)
    if not is_policy(kind):
        raise ProfileError(f"{source}: a BPF program ({kind}), not a profile")
    f = _format(kind)
    text = decode_text(data, source)
    archlist = list(arches) if arches else None
    if unknown_names is not None and "unknown_names" not in f.load_options:
        takes = ", ".join(g.name for g in _formats_taking("unknown_names"))
        raise ProfileError(f"{source}: --skip-unknown: not supported for {kind} profiles ({takes} only); "
                           f"remove the unknown names instead")
    if name is not None and "name" not in f.load_options and not rename:
        takes = " or ".join(g.title for g in _formats_taking("name"))
        raise ProfileError(f"{source}: --name: selects a profile of a {takes} manifest; this is a {kind} profile")
    if thread is not None and "thread" not in f.load_options:
        takes = " or ".join(g.title for g in _formats_taking("thread"))
        raise ProfileError(f"{source}: --thread: selects a filter of a {takes} file; this is a {kind} profile")
    opts = {"arch": arch, "arches": archlist, "caps": caps, "thread": thread, "base_dir": base_dir,
            "unknown_names": unknown_names, "name": name, "rename": rename}
    try:
        mod = f.impl()
        if decoded is not None and hasattr(mod, "load_doc"):  # the document detection decoded
            doc = mod.load_doc(decoded, source, **{k: v for k, v in opts.items() if k in f.load_options})
        else:
            doc = f.loads(text, source, **opts)
    except RecursionError:  # json and the recursive-descent readers on absurdly deep nesting
        raise ProfileError(f"{source}: nested too deeply") from None
    policy = doc.policy
    if archlist:
        policy = policy.with_arches(archlist)
    extras = doc if f.keeps_extras else None
    if extras is not None and policy is not doc.policy:
        extras = extras.replace(policy=policy)
    return Loaded(policy, kind, source, extras, tuple(getattr(doc, "notes", ()) or ()))


def _formats_taking(option: str) -> list[Any]:
    from .catalog import FORMATS as table

    return [g for g in table if option in g.load_options]


def read(path: str, fmt: str | None = None, **kw: Any) -> Loaded:
    """Read the profile file ``path`` (``-`` is standard input); see :func:`read_bytes`."""
    if path == "-":
        return read_bytes(read_file("-"), "<stdin>", fmt, **kw)
    data = read_file(path)
    return read_bytes(data, path, fmt, **kw)


def _without_compares(policy: Policy, fmt: str, lost: list[str], src: Any) -> Any:
    """``src`` without the rules that compare arguments with each other (only Kafel can say
    that), each listed in ``lost``."""
    from ..policy import Compare

    keep = []
    for r in policy.rules:
        if any(isinstance(c, Compare) for c in r.conditions):
            lost.append(f"{r.syscall}: {fmt} cannot express a rule that compares arguments with each other "
                           f"({r}): left out")
        else:
            keep.append(r)
    if len(keep) == len(policy.rules):
        return src
    new = policy.with_rules(keep)
    return src.replace(policy=new) if src is not policy else new


def write(src: Any, fmt: str, **opts: Any) -> Exported:
    """``src`` (a Policy, or a Loaded/DockerProfile keeping its extras) written as ``fmt``.

    ``opts`` are the format's ``export_options`` (``thread`` for firecracker, ``name`` and
    ``namespace`` for k8s, ...).
    """
    f = _format(fmt)
    if isinstance(src, Loaded):
        src = src.extras if src.extras is not None else src.policy
    dropped: list[str] = []
    if not isinstance(src, Policy) and not f.keeps_extras:
        # Filter flags and the notification listener are how a runtime installs the filter,
        # not decisions of it: formats without them just cannot carry them.
        dropped = src.dropped_settings(fmt)
        src = src.policy
    lost: list[str] = []
    if not f.compares:
        src = _without_compares(src if isinstance(src, Policy) else src.policy, fmt, lost, src)
    if not f.multiplexes and isinstance(src, Policy):
        # These formats' own compilers do not rewrite rules on socket/IPC calls for socketcall/ipc
        # as libseccomp and sysgate do: write those rules out so their tools decide the same.
        from ..multiplexing import explicit

        src = explicit(src)
    out = f.export(src, **opts)
    if lost:
        out = out.replace(losses=tuple(lost) + tuple(out.losses))
    return out.replace(notes=tuple(dropped) + tuple(out.notes)) if dropped else out
