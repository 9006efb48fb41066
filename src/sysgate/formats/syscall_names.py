"""Syscall names as every profile format accepts them: a name that some architecture has, or a
systemd-style group (``@system-service``, ``@privileged``, ...) that stands for its members.

Groups are resolved by :mod:`sysgate.syscall_groups`; a group member that no architecture
knows is left out (systemd lists a few names of other kernels' ABIs).
"""
from __future__ import annotations

from ..errors import UserError

__all__ = ["UnknownName", "expand", "is_group"]


class UnknownName(UserError):
    """A syscall or group name that does not exist; the message suggests close names."""


def is_group(name: str) -> bool:
    return name.startswith("@")


def expand(name: str) -> list[str]:
    """``[name]`` for a syscall name, the members for ``@group``; :class:`UnknownName` otherwise."""
    from .. import arch as _arch

    if not is_group(name):
        if name in _arch.all_syscall_names():
            return [name]
        raise UnknownName(_arch.unknown_syscall_message(name))
    try:
        from .. import syscall_groups
    except ImportError:  # pragma: no cover - the module ships with sysgate
        raise UnknownName(f"syscall group {name!r}: syscall groups are not available") from None
    try:
        members = syscall_groups.expand(name)
    except UserError as e:  # UnknownGroup, GroupLoop (anything else is a bug)
        msg = e.args[0] if e.args and isinstance(e.args[0], str) else f"unknown syscall group {name!r}"
        raise UnknownName(msg) from None
    known = _arch.all_syscall_names()
    return [m for m in members if m in known]
