"""Mounts: ``mount(2)``, ``umount2(2)`` and the new mount API (``fsopen``, ``fsconfig``, ``fsmount``,
``move_mount``, ``open_tree``, ``mount_setattr``), ``openat2(2)`` with its ``RESOLVE_*``, and the
file system type of an open file (``fstatfs``'s ``f_type``).

Every function returns the raw result (-1 with errno set, for :func:`.syscall.check`) and keeps
the GIL (the jail's init calls them; see :mod:`.syscall`). Integer arguments are Python ints.
"""
from __future__ import annotations

import os
import sys

from .._startup import ctypes
from .syscall import AT_FDCWD as AT_FDCWD  # re-exported: the jail writes M.AT_FDCWD beside M.openat2
from .syscall import NR, c_long, libc_gil

__all__ = [
    "MountAttr",
    "OpenHow",
    "fsconfig",
    "fsmount",
    "fs_type",
    "fsopen",
    "mount",
    "mount_setattr",
    "move_mount",
    "open_tree",
    "openat2",
    "umount2",
]

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MNT_DETACH = 2
PROC_SUPER_MAGIC = 0x9FA0

AT_SYMLINK_NOFOLLOW = 0x100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = os.O_CLOEXEC
MOVE_MOUNT_F_EMPTY_PATH = 4
MOVE_MOUNT_T_EMPTY_PATH = 0x40
MOUNT_ATTR_RDONLY = 1
MOUNT_ATTR_NOSUID = 2
MOUNT_ATTR_NODEV = 4
MOUNT_ATTR_NOEXEC = 8
FSOPEN_CLOEXEC = 1
FSMOUNT_CLOEXEC = 1
FSCONFIG_SET_STRING = 1
FSCONFIG_SET_FD = 5
FSCONFIG_CMD_CREATE = 6

RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class MountAttr(ctypes.Structure):
    """``struct mount_attr`` of ``mount_setattr(2)`` and ``fsmount``'s attributes."""

    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class OpenHow(ctypes.Structure):
    """``struct open_how`` of ``openat2(2)``."""

    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


_mount = libc_gil["mount"]
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_umount2 = libc_gil["umount2"]
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_syscall = libc_gil["syscall"]
_syscall.restype = ctypes.c_long
_NR = {n: c_long(NR[n]) for n in ("openat2", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
                                   "mount_setattr")}


def mount(src: bytes | None, target: bytes, fstype: bytes | None, flags: int, data: bytes | None) -> int:
    return int(_mount(src, target, fstype, flags, data))


def umount2(target: bytes, flags: int) -> int:
    return int(_umount2(target, flags))


def openat2(dirfd: int, path: bytes, how: OpenHow) -> int:
    return int(_syscall(_NR["openat2"], c_long(dirfd), path, ctypes.byref(how), c_long(ctypes.sizeof(how))))


def open_tree(dirfd: int, path: bytes, flags: int) -> int:
    return int(_syscall(_NR["open_tree"], c_long(dirfd), path, c_long(flags)))


def mount_setattr(dirfd: int, path: bytes, flags: int, attr: MountAttr) -> int:
    return int(_syscall(_NR["mount_setattr"], c_long(dirfd), path, c_long(flags), ctypes.byref(attr),
                        c_long(ctypes.sizeof(attr))))


def move_mount(from_fd: int, from_path: bytes, to_fd: int, to_path: bytes, flags: int) -> int:
    return int(_syscall(_NR["move_mount"], c_long(from_fd), from_path, c_long(to_fd), to_path, c_long(flags)))


def fsopen(fstype: bytes, flags: int) -> int:
    return int(_syscall(_NR["fsopen"], fstype, c_long(flags)))


def fsconfig(fd: int, cmd: int, key: bytes | None, value: bytes | None, aux: int) -> int:
    return int(_syscall(_NR["fsconfig"], c_long(fd), c_long(cmd), key, value, c_long(aux)))


def fsmount(fd: int, flags: int, attrs: int) -> int:
    return int(_syscall(_NR["fsmount"], c_long(fd), c_long(flags), c_long(attrs)))



_fstatfs = None


def fs_type(fd: int) -> int:
    """``f_type`` of the file system ``fd`` is on (``PROC_SUPER_MAGIC``, ...); raises ``OSError``."""
    global _fstatfs
    if _fstatfs is None:
        f = libc_gil["fstatfs"]
        f.argtypes = [ctypes.c_int, ctypes.c_char_p]
        _fstatfs = f
    buf = ctypes.create_string_buffer(b"", 256)  # struct statfs: 120 bytes on 64-bit arches
    if _fstatfs(fd, buf) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    # f_type comes first: a long, except on s390x (an unsigned int)
    size = 4 if os.uname().machine == "s390x" else ctypes.sizeof(ctypes.c_long)
    return int.from_bytes(buf.raw[:size], sys.byteorder) & 0xFFFFFFFF
