"""Resource limits (``setrlimit``) for the sandboxed command: ``--rlimit NAME=N[:HARD]``.

``core`` is 0 unless set. Raising a hard limit above the caller's needs CAP_SYS_RESOURCE in
the *initial* user namespace, so unprivileged callers can only lower limits. ``as`` and
``data`` are applied in the command's own process right before ``execve`` (the sandbox's
init shares the caller's address space and would trip over them); the others in the init.
"""
from __future__ import annotations

import os

from ..kernel import process as P
from ..kernel import syscall as N
from .options import RLIMITS

__all__ = ["apply", "ADDRESS_SPACE_LIMITS", "split"]

ADDRESS_SPACE_LIMITS = frozenset({"as", "data"})
_INF = (1 << 64) - 1


Limit = tuple[int, int, int, str]  # (resource, soft, hard, name)


def split(limits: dict[str, tuple[int, int]]) -> tuple[list[Limit], list[Limit]]:
    """(limits for the init, limits for the command's own process), as (resource, soft, hard, name)."""
    early: list[Limit] = []
    late: list[Limit] = []
    for name, (soft, hard) in sorted(limits.items()):
        item = (RLIMITS[name], _conv(soft), _conv(hard), name)
        (late if name in ADDRESS_SPACE_LIMITS else early).append(item)
    return early, late


def _conv(v: int) -> int:
    return P.RLIM_INFINITY if v >= _INF else v


def apply(items: list[Limit]) -> None:
    """Set each limit on the calling process (init's, or the command's before execve)."""
    for res, soft, hard, name in items:
        if P.prlimit(res, soft, hard) < 0:
            e = N.errno_of()
            why = {1: "raising a hard limit needs privilege the sandbox does not have (and nofile cannot pass "
                      "fs.nr_open)", 22: "the soft limit is above the hard limit"}.get(
                e, os.strerror(e))
            raise N.KernelError(e, f"--rlimit {name}={soft}:{hard}: {why}")
