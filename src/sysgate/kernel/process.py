"""Processes and namespaces: glibc's ``clone()`` (a child running a function on its own stack),
``clone`` flags, stacks (``mmap``), ``setns``/``unshare``, ``pidfd_open``, ``sethostname``,
``ioctl``, and whether we are root of the initial user namespace.

Raw results (-1 with errno set, see :func:`.syscall.check`), resolved at import: the jail's init
calls these between ``clone`` and ``execve``.
"""
from __future__ import annotations

import os

from .._startup import ctypes
from .syscall import libc

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
