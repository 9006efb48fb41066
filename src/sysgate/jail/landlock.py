"""Landlock, as a further filesystem layer when ``--ro``/``--rw`` paths are given.

With any such path, the command can reach only those trees: ``--ro`` ones for reading and
executing, ``--rw`` ones for everything the running kernel's Landlock ABI can restrict.
``/dev`` and ``/proc`` of the sandbox stay usable (they are the sandbox's own). Paths are
resolved inside the sandbox, after ``pivot_root``. Without Landlock in the kernel the option
fails with a clear error rather than running unconfined.

Scoping (ABI 6, Linux 6.12), on for every sandbox where the kernel has it: the command cannot
send a signal to, or connect to an abstract unix socket of, any process outside its Landlock
domain (the sandbox), whatever namespaces it shares (``--share pid``, ``--net host``).
"""
from __future__ import annotations

import os
import stat

from .._startup import ctypes
from ..kernel import syscall as N

__all__ = ["abi_version", "restrict", "scope", "SCOPE_ABI"]

_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1, 2, 4, 8
_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 4: (1 << 15) - 1, 5: (1 << 16) - 1}
_FILE_RIGHTS = _EXECUTE | _WRITE_FILE | _READ_FILE | (1 << 14) | (1 << 15)  # + TRUNCATE, IOCTL_DEV
_RO = _EXECUTE | _READ_FILE | _READ_DIR
_AUTO_RW = ("/dev", "/proc")
SCOPE_ABI = 6
_SCOPED = 1 | 2  # LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET | LANDLOCK_SCOPE_SIGNAL


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_ABI = -1


def abi_version() -> int:
    """The kernel's Landlock ABI version, 0 if Landlock is unavailable (asked once per process)."""
    global _ABI
    if _ABI < 0:
        r = N.sysc("landlock_create_ruleset", None, N.c_long(0), N.c_long(1))  # LANDLOCK_CREATE_RULESET_VERSION
        _ABI = r if r > 0 else 0
    return _ABI


def scope() -> None:
    """Enforce a ruleset that only scopes signals and abstract unix sockets (ABI >= 6)."""
    attr = _RulesetAttr(0, 0, _SCOPED)
    rs = N.check(N.sysc("landlock_create_ruleset", ctypes.byref(attr), N.c_long(ctypes.sizeof(attr)), N.c_long(0)),
                 "create the Landlock scope ruleset")
    try:
        N.check(N.sysc("landlock_restrict_self", N.c_long(rs), N.c_long(0)), "enforce the Landlock scope")
    finally:
        os.close(rs)


def restrict(ro: tuple[str, ...], rw: tuple[str, ...], abi: int) -> None:
    """Build a ruleset allowing only ``ro``/``rw`` (+ /dev, /proc) and enforce it on this process."""
    if abi <= 0:
        raise N.KernelError(95, "--ro/--rw need Landlock, which this kernel does not offer")
    handled = _BY_ABI.get(abi, _BY_ABI[5])
    attr = _RulesetAttr(handled, 0, _SCOPED if abi >= SCOPE_ABI else 0)
    size = ctypes.sizeof(attr) if abi >= SCOPE_ABI else 8
    rs = N.check(N.sysc("landlock_create_ruleset", ctypes.byref(attr), N.c_long(size), N.c_long(0)),
                 "create the Landlock ruleset")
    try:
        for path, access in [(p, _RO) for p in ro] + [(p, handled) for p in rw + _AUTO_RW]:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError as e:
                if path in _AUTO_RW:
                    continue
                why = os.strerror(e.errno or 0)
                raise N.KernelError(e.errno, f"--ro/--rw {path}: {why} inside the sandbox") from None
            try:
                allowed = access & handled
                if not stat.S_ISDIR(os.fstat(fd).st_mode):  # not via /proc/self: the supervisor is outside its pidns
                    allowed &= _FILE_RIGHTS
                rule = _PathBeneath(allowed, fd)
                N.check(N.sysc("landlock_add_rule", N.c_long(rs), N.c_long(1), ctypes.byref(rule), N.c_long(0)),
                        f"add Landlock rule for {path}")
            finally:
                os.close(fd)
        N.check(N.sysc("landlock_restrict_self", N.c_long(rs), N.c_long(0)), "enforce the Landlock ruleset")
    finally:
        os.close(rs)
