"""A minimal ``syscall(2)`` over libc with errno turned into :class:`OSError`.

Safe to call in a forked child right before ``execve``: the libc symbol is resolved at import
time and a call does no import, takes no lock and starts no thread (it allocates a few Python
objects, which is fine in a single-threaded child). Syscall numbers come from the native arch
table (:func:`sysgate.arch.native`); resolve the ones you need *before* forking, e.g. at module
import, because the first lookup imports the tables.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import Union

__all__ = ["Arg", "libc", "syscall", "nr", "prctl", "errno_name"]

#: What :func:`syscall` accepts as an argument: an int (passed as a C long, values >= 2**63 are
#: taken as unsigned), ``None`` (NULL), bytes (a pointer to them) or any ctypes object
#: (``ctypes.byref(x)``, ``ctypes.c_void_p``, arrays...).
Arg = Union[int, None, bytes, "ctypes._CData", "ctypes._CArgObject"]

libc = ctypes.CDLL(None, use_errno=True)
_syscall = libc.syscall
_syscall.restype = ctypes.c_long

_M64 = 1 << 64
_S63 = 1 << 63


def _carg(a: Arg) -> object:
    # Without an explicit c_long, ctypes passes Python ints to a variadic function as C int
    # (32 bits), leaving the register's high half undefined.
    if isinstance(a, int):
        a &= _M64 - 1
        return ctypes.c_long(a - _M64 if a >= _S63 else a)
    return a


def syscall(number: int, *args: Arg) -> int:
    """Call syscall ``number`` with up to six ``args``; return its result or raise ``OSError``.

    The raised error carries ``errno`` and ``strerror`` like Python's own wrappers do.
    """
    if len(args) > 6:
        raise TypeError(f"a syscall takes at most 6 arguments, got {len(args)}")
    ret: int = _syscall(ctypes.c_long(number), *[_carg(a) for a in args])
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


_NR_CACHE: dict[str, int] = {}


def nr(name: str) -> int:
    """The native number of syscall ``name`` (cached; raises ``sysgate.arch.UnknownSyscall``)."""
    n = _NR_CACHE.get(name)
    if n is None:
        from ..arch import native

        n = _NR_CACHE[name] = native().nr(name)
    return n


_NR_PRCTL = nr("prctl")


def prctl(option: int, arg2: Arg = 0, arg3: Arg = 0, arg4: Arg = 0, arg5: Arg = 0) -> int:
    """``prctl(2)`` as a raw syscall (unused arguments are passed as 0, as new options require)."""
    return syscall(_NR_PRCTL, option, arg2, arg3, arg4, arg5)


def errno_name(code: int) -> str:
    """Symbolic name of an errno value (``"EINVAL"``), or the number if unknown."""
    return _errno.errorcode.get(code, str(code))
