"""The one libc handle of sysgate, ``syscall(2)``, ``prctl(2)``, ``seccomp(2)`` and ``sock_fprog``.

Two ways to call, for two kinds of caller:

* :func:`syscall`, :func:`prctl`, :func:`seccomp` take Python ints (passed as C longs) and raise
  :class:`OSError` with ``errno`` set, as Python's own wrappers do;
* :func:`sysc` / :func:`ksysc` return the raw result (``-1`` with ``errno`` in
  :func:`errno_of`), and :func:`check` turns a ``-1`` into a :class:`KernelError` naming the step:
  what the jail's init uses between ``clone`` and ``execve``. :func:`ksysc` keeps the GIL across
  the call (``libc_gil``): with the vfork launcher init runs on the caller's thread, and releasing
  the GIL would let another of the caller's threads run in the middle of building the sandbox.

Syscall numbers come from the host's table in :mod:`sysgate.arch` (:data:`NR`), looked up at
import, so a call in a forked child imports nothing, takes no lock and starts no thread.
"""
from __future__ import annotations

import errno as _errno
import os

from .._startup import ctypes

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:

    #: What :func:`syscall` accepts as an argument: an int (passed as a C long, values >= 2**63
    #: are taken as unsigned), ``None`` (NULL), bytes (a pointer to them) or any ctypes object.
    Arg = int | None | bytes | object

__all__ = [
    "NR",
    "KernelError",
    "SockFprog",
    "c_long",
    "check",
    "errno_name",
    "errno_of",
    "ksysc",
    "libc",
    "libc_gil",
    "nr",
    "prctl",
    "raw_prctl",
    "seccomp",
    "sysc",
    "syscall",
]

#: libc; calls release the GIL.
libc = ctypes.CDLL(None, use_errno=True)
#: the same library, calls keep the GIL (see the module's docstring).
libc_gil = ctypes.PyDLL(None, use_errno=True)
c_long = ctypes.c_long

_syscall = libc.syscall
_syscall.restype = ctypes.c_long
_ksyscall = libc_gil.syscall
_ksyscall.restype = ctypes.c_long


def _table() -> dict[str, int]:
    from ..arch import native

    return native().syscalls


#: name -> number on this machine's ABI (the table of :func:`sysgate.arch.native`).
NR: dict[str, int] = _table()

_M64 = 1 << 64
_S63 = 1 << 63


def _carg(a: object) -> object:
    # Without an explicit c_long, ctypes passes Python ints to a variadic function as C int
    # (32 bits), leaving the register's high half undefined.
    if isinstance(a, int):
        a &= _M64 - 1
        return c_long(a - _M64 if a >= _S63 else a)
    return a


def syscall(number: int, *args: Arg) -> int:
    """Call syscall ``number`` with up to six ``args``; return its result or raise ``OSError``."""
    if len(args) > 6:
        raise TypeError(f"a syscall takes at most 6 arguments, got {len(args)}")
    ret: int = _syscall(c_long(number), *[_carg(a) for a in args])
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return ret


def nr(name: str) -> int:
    """The native number of syscall ``name`` (raises ``sysgate.arch.UnknownSyscall``)."""
    n = NR.get(name)
    if n is None:
        from ..arch import native

        return native().nr(name)  # raises, with suggestions
    return n


def sysc(name: str, *args: object) -> int:
    """Raw ``syscall(NR[name], *args)``: ints must be :data:`c_long` or fit a C int; -1 on error."""
    return int(_syscall(c_long(NR[name]), *args))


def ksysc(name: str, *args: int) -> int:
    """Raw ``syscall(NR[name], *args)`` with integer arguments, keeping the GIL; -1 on error."""
    return int(_ksyscall(c_long(NR[name]), *[c_long(a) for a in args]))


class KernelError(OSError):
    """A system call failed; ``str()`` is the one-line message naming the step."""

    def __str__(self) -> str:
        return str(self.strerror)


def errno_of() -> int:
    """errno of the last call made through :data:`libc` / :data:`libc_gil` in this thread."""
    return int(ctypes.get_errno())


def check(ret: int, what: str) -> int:
    """Turn a raw ``-1`` into :class:`KernelError` saying ``what`` was being done."""
    if ret < 0:
        e = ctypes.get_errno()
        raise KernelError(e, f"{what}: {os.strerror(e)}")
    return ret


def errno_name(code: int | None) -> str:
    """Symbolic name of an errno value (``"EINVAL"``), or the number if unknown.

    ``None`` is taken too: it is the type of ``OSError.errno``, which callers pass on."""
    return str(code) if code is None else _errno.errorcode.get(code, str(code))


#: "relative to the working directory" for the ``*at()`` calls (openat2, the mount API, ...).
AT_FDCWD = -100

# prctl(2) options (<linux/prctl.h>)
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_GET_SECCOMP = 21
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_NR_PRCTL = NR["prctl"]
_NR_SECCOMP = NR["seccomp"]


def prctl(option: int, arg2: Arg = 0, arg3: Arg = 0, arg4: Arg = 0, arg5: Arg = 0) -> int:
    """``prctl(2)`` as a raw syscall (unused arguments passed as 0, as new options require); raises OSError."""
    return syscall(_NR_PRCTL, option, arg2, arg3, arg4, arg5)


_prctl = libc_gil["prctl"]  # a function object of its own: these argtypes apply to it alone
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def raw_prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    """``prctl(2)`` returning -1 on error (for :func:`check`), keeping the GIL; arguments converted
    in C (the jail drops some forty capabilities with it on every start)."""
    return int(_prctl(option, a2, a3, a4, a5))


# seccomp(2) operations (<linux/seccomp.h>)
SECCOMP_SET_MODE_STRICT = 0
SECCOMP_SET_MODE_FILTER = 1
SECCOMP_GET_ACTION_AVAIL = 2
SECCOMP_GET_NOTIF_SIZES = 3


class SockFprog(ctypes.Structure):
    """``struct sock_fprog``: instruction count and pointer to ``struct sock_filter[]``."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp(op: int, flags: int, arg: Arg) -> int:
    """``seccomp(2)``; raises OSError. ``arg`` is e.g. ``ctypes.byref(fprog)`` or None."""
    return syscall(_NR_SECCOMP, op, flags, arg)
