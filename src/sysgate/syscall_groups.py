"""systemd's syscall groups (``@system-service``, ``@privileged``, ...) usable by name in any policy.

The groups are systemd's ``SystemCallFilter=`` sets, generated into
:mod:`sysgate.syscall_groups_data` by ``tools/gen_syscall_groups.py``. A group lists syscall names
and other groups (``@system-service`` includes ``@basic-io`` and fifteen more); :func:`expand`
flattens that. ``@known`` is every syscall name in sysgate's tables, as systemd's is every name in
its own list.

Like systemd, a group may name syscalls an architecture lacks (``ugetrlimit`` is x86/arm only);
``expand(name, arch=...)`` keeps just the ones that exist there, which is what systemd installs.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .arch import Arch

__all__ = ["UnknownGroup", "GroupLoop", "expand", "groups", "members", "is_group"]


class UnknownGroup(UserError):
    """A ``@name`` that is not a known group."""


class GroupLoop(UserError):
    """Groups that include each other, directly or through others."""


def is_group(name: str) -> bool:
    """True if ``name`` is spelled as a group reference (``@...``)."""
    return name.startswith("@")


def groups() -> dict[str, str]:
    """Every group name (with its ``@``) -> systemd's one-line description."""
    from .syscall_groups_data import GROUPS

    return {name: help_ for name, (help_, _) in GROUPS.items()}


def _lookup(name: str) -> str:
    from .syscall_groups_data import GROUPS

    if name in GROUPS:
        return name
    if not name.startswith("@") and "@" + name in GROUPS:
        raise UnknownGroup(f"unknown syscall group {name!r} (groups start with '@': did you mean @{name}?)")
    import difflib

    want = name if name.startswith("@") else "@" + name
    close = difflib.get_close_matches(want, list(GROUPS), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UnknownGroup(f"unknown syscall group {name!r}{hint}")


def members(name: str) -> list[str]:
    """The direct members of group ``name`` as systemd lists them (``@`` entries not expanded)."""
    from .syscall_groups_data import GROUPS, KNOWN

    name = _lookup(name)
    if name == KNOWN:
        from .arch import all_syscall_names

        return sorted(all_syscall_names())
    return GROUPS[name][1].split()


def expand(name: str, arch: str | Arch | None = None) -> list[str]:
    """Sorted syscall names of group ``name``, nested groups flattened.

    With ``arch``, only the names that exist on that architecture. Raises :class:`UnknownGroup`
    (with suggestions) and :class:`GroupLoop` (naming the cycle).
    """
    out: set[str] = set()
    done: set[str] = set()

    def walk(g: str, path: tuple[str, ...]) -> None:
        g = _lookup(g)
        if g in path:
            raise GroupLoop("syscall groups include each other: " + " -> ".join(path[path.index(g):] + (g,)))
        if g in done:
            return
        for m in members(g):
            if m.startswith("@"):
                walk(m, path + (g,))
            else:
                out.add(m)
        done.add(g)

    walk(name, ())
    if arch is not None:
        from . import arch as _arch

        a = _arch.get(arch)
        return sorted(n for n in out if a.has(n))
    return sorted(out)
