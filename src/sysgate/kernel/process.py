"""Processes and namespaces: glibc's ``clone()`` (a child running a function on its own stack),
``clone`` flags, stacks (``mmap``), ``setns``/``unshare``, ``pidfd_open``, ``sethostname``,
``ioctl``, ``wait4`` with the child's resource usage, ``prlimit``, and whether we are root of the
initial user namespace.

``wait4`` and ``prlimit`` are here rather than taken from :mod:`os` and :mod:`resource`: ``os.wait4``
imports ``resource`` (a shared library in many builds, ~0.15 ms of ``sysgate run``'s start) for its
``struct_rusage``, and the jail needs three numbers of it.

Raw results (-1 with errno set, see :func:`.syscall.check`), resolved at import: the jail's init
calls these between ``clone`` and ``execve``.
"""
from __future__ import annotations

import os
import sys

from .._startup import ctypes
from .syscall import libc, libc_gil

__all__ = [
    "CLONE_FN",
    "MAP_FAILED",
    "alloc_stack",
    "clone",
    "host_root",
    "ioctl",
    "mmap",
    "mprotect",
    "munmap",
    "pidfd_open",
    "prlimit",
    "reap_any",
    "sethostname",
    "setns",
    "socket",
    "unshare",
]

CLONE_VM = 0x100
CLONE_FS = 0x200
CLONE_FILES = 0x400
CLONE_VFORK = 0x4000
CLONE_PARENT = 0x8000
CLONE_NEWNS = 0x20000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_PARENT_SETTID = 0x00100000
CLOSE_RANGE_CLOEXEC = 4

#: The type of glibc ``clone()``'s ``fn``: the child runs ``fn(arg)`` and exits with its result.
CLONE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
clone = libc["clone"]
clone.restype = ctypes.c_int
clone.argtypes = [CLONE_FN, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                  ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_void_p]

mmap = libc["mmap"]
mmap.restype = ctypes.c_void_p
mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
mprotect = libc["mprotect"]
mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
munmap = libc["munmap"]
munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
MAP_FAILED = ctypes.c_void_p(-1).value
_PROT_RW = 3
_MAP_STACK = 0x22 | 0x20000  # MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK


def alloc_stack(size: int, what: str) -> int:
    """A private read-write mapping of ``size`` bytes for a ``clone()`` child's stack (takes no lock:
    callable in a forked copy); :class:`.syscall.KernelError` naming ``what`` if there is no memory."""
    base = mmap(None, size, _PROT_RW, _MAP_STACK, -1, 0)
    if base in (None, MAP_FAILED):
        from .syscall import check

        check(-1, f"allocate a stack for {what}")
    return int(base)

setns = libc["setns"]
setns.argtypes = [ctypes.c_int, ctypes.c_int]
unshare = libc["unshare"]
unshare.argtypes = [ctypes.c_int]
sethostname = libc["sethostname"]
sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
ioctl = libc["ioctl"]
socket = libc["socket"]
socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]


_wait4 = libc_gil["wait4"]  # keeps the GIL: init calls it (never blocking: WNOHANG)
_wait4.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
_L = ctypes.sizeof(ctypes.c_long)
_RUSAGE = 18 * _L  # struct rusage: two struct timeval (two longs each), fourteen longs
_WNOHANG = 1
_ECHILD = 10


def reap_any() -> tuple[int, int, float, float, int] | None:
    """``wait4(-1, WNOHANG)``: (pid, status, user s, system s, max RSS KiB) of a child that ended,
    pid 0 if none has yet, None if there is no child (ECHILD); raises OSError otherwise."""
    status = (ctypes.c_char * 4)()
    ru = (ctypes.c_char * _RUSAGE)()
    pid = int(_wait4(-1, ctypes.addressof(status), _WNOHANG, ctypes.addressof(ru)))
    if pid < 0:
        e = ctypes.get_errno()
        if e == _ECHILD:
            return None
        raise OSError(e, f"wait4: {os.strerror(e)}")
    if pid == 0:
        return 0, 0, 0.0, 0.0, 0
    raw, order = ru.raw, sys.byteorder
    v = [int.from_bytes(raw[i * _L:(i + 1) * _L], order, signed=True) for i in range(5)]
    return (pid, int.from_bytes(status.raw, order, signed=True), v[0] + v[1] / 1e6, v[2] + v[3] / 1e6, v[4])


_prlimit = libc_gil["prlimit"]  # prlimit64 underneath: 64-bit limits on every ABI
_prlimit.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
#: the kernel's RLIM_INFINITY (as prlimit's 64-bit fields hold it)
RLIM_INFINITY = (1 << 64) - 1


def prlimit(resource: int, soft: int, hard: int) -> int:
    """Set this process's ``resource`` limit (``setrlimit``); 0, or -1 with errno set."""
    new = (ctypes.c_char * 16)()
    new.raw = soft.to_bytes(8, sys.byteorder) + hard.to_bytes(8, sys.byteorder)
    return int(_prlimit(0, resource, ctypes.addressof(new), None))


def pidfd_open(pid: int, flags: int = 0) -> int:
    """A pidfd of ``pid``; raises OSError."""
    from .syscall import NR, syscall

    return syscall(NR["pidfd_open"], pid, flags)


_HOST_ROOT: tuple[int, bool] = (-1, False)


def host_root() -> bool:
    """Root of the initial user namespace (euid 0 inside a user namespace is not)."""
    global _HOST_ROOT
    euid = os.geteuid()
    if _HOST_ROOT[0] != euid:  # cached per euid: a forked caller may have dropped to another user
        root = euid == 0
        if root:
            try:
                with open("/proc/self/uid_map") as f:
                    root = f.read().split()[:3] == ["0", "0", "4294967295"]
            except OSError:
                pass
        _HOST_ROOT = (euid, root)
    return _HOST_ROOT[1]
