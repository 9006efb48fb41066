"""Capabilities: drop every one (bounding, ambient, inheritable, permitted, effective) except
the ``--cap-add`` ones, which stay available to the command across ``execve``.

Dropping the bounding set matters even with no_new_privs: it is what a root-owned process
gets back at ``execve``. Kept caps are raised in the ambient set too, so that a non-root
``--uid`` keeps them over ``execve``; they are capabilities *in the sandbox's user namespace*.
"""
from __future__ import annotations

import os

from .. import capabilities
from .._startup import ctypes
from ..kernel import syscall as N
from .options import JailConfigError

__all__ = ["parse_caps", "last_cap", "drop"]

_prctl = N.raw_prctl


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_capset = N.libc["capset"]
_capset.argtypes = [ctypes.POINTER(_Header), ctypes.POINTER(_Data)]
_V3 = 0x20080522


def parse_caps(names: tuple[str, ...] | list[str]) -> frozenset[int]:
    """``["NET_ADMIN", "cap_chown", "ALL"]`` -> capability numbers."""
    out: set[int] = set()
    for raw in names:
        for n in raw.split(","):
            t = n.strip().upper()
            if not t:
                continue
            if t == "ALL":  # every capability this kernel has, named in the table or not
                out.update(range(last_cap() + 1))
            else:
                cap = "CAP_" + t.removeprefix("CAP_")
                if cap not in capabilities.NAMES:
                    raise JailConfigError(f"--cap-add: unknown capability {n!r}")
                out.add(capabilities.number(cap))
    return frozenset(out)


_LAST: int | None = None


def last_cap() -> int:
    """The highest capability this kernel knows (``/proc/sys/kernel/cap_last_cap``)."""
    global _LAST
    if _LAST is None:
        try:
            fd = os.open("/proc/sys/kernel/cap_last_cap", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _LAST = int(os.read(fd, 64))
            finally:
                os.close(fd)
        except (OSError, ValueError):
            _LAST = len(capabilities.NAMES) - 1
    return _LAST


# prctl with no argtypes (a function object of its own), fed ready-made C arguments: the jail drops
# some forty capabilities from the bounding set on every start, and converting five Python ints per
# call cost more than the call (about 1.5 us against 0.5 us). Keeps the GIL, like N.raw_prctl.
_prctl_c = N.libc_gil["prctl"]
_prctl_c.restype = ctypes.c_int
_DROP_ARGS: tuple = ()  # per capability number: PR_CAPBSET_DROP's arguments (made whole, then published)


def _drop_args(last: int) -> tuple:
    global _DROP_ARGS
    args = _DROP_ARGS
    if len(args) <= last:
        op, zero = ctypes.c_int(N.PR_CAPBSET_DROP), ctypes.c_ulong(0)
        args = tuple((op, ctypes.c_ulong(cap), zero, zero, zero) for cap in range(last + 1))
        _DROP_ARGS = args
    return args


def drop(keep: frozenset[int], last: int) -> None:
    """Drop all capabilities but ``keep`` from this process, for good."""
    args = _drop_args(last)
    for cap in range(last + 1):
        if cap not in keep and _prctl_c(*args[cap]) != 0:
            e = ctypes.get_errno()
            if e != 22:  # EINVAL: a cap this kernel does not have
                N.check(-1, f"drop capability {cap} from the bounding set")
    N.check(_prctl(N.PR_CAP_AMBIENT, N.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient capabilities")
    lo = hi = 0
    for cap in keep:
        if cap < 32:
            lo |= 1 << cap
        else:
            hi |= 1 << (cap - 32)
    data = (_Data * 2)(_Data(lo, lo, lo), _Data(hi, hi, hi))
    N.check(_capset(ctypes.byref(_Header(_V3, 0)), data), "drop capabilities (capset)")
    for cap in sorted(keep):
        N.check(_prctl(N.PR_CAP_AMBIENT, N.PR_CAP_AMBIENT_RAISE, cap, 0, 0), f"raise ambient capability {cap}")
