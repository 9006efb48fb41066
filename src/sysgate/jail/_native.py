"""The few libc entry points and syscall numbers the jail needs, resolved once at import.

Everything here is called in the sandbox's init process, some of it after the namespaces
have been entered and before ``execve``; so nothing imports, and every call goes straight
to libc. Syscall numbers of the new (>= 424) calls are the same on every architecture; the
older ones are tabled for x86_64 and aarch64 and looked up in :mod:`sysgate.arch` elsewhere.
"""
from __future__ import annotations

import os

from . import _ffi as ctypes  # the few ctypes names the jail needs, without ctypes' import cost

__all__ = ["libc", "sysc", "NR", "errno_of", "check", "JailOSError"]

libc = ctypes.CDLL(None, use_errno=True)

_machine = os.uname().machine.lower()
_OLD = {
    "x86_64": {"clone": 56, "pivot_root": 155, "seccomp": 317, "capset": 126, "capget": 125,
               "prctl": 157, "unshare": 272, "setresuid": 117, "setresgid": 119, "setns": 308,
               "setgroups": 116},
    "aarch64": {"clone": 220, "pivot_root": 41, "seccomp": 277, "capset": 91, "capget": 90,
                "prctl": 167, "unshare": 97, "setresuid": 147, "setresgid": 149, "setns": 268,
                "setgroups": 159},
}
_NEW = {"openat2": 437, "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "pidfd_open": 434, "clone3": 435, "close_range": 436,
        "mount_setattr": 442, "landlock_create_ruleset": 444, "landlock_add_rule": 445,
        "landlock_restrict_self": 446}


def _numbers() -> dict[str, int]:
    table = dict(_NEW)
    old = _OLD.get({"amd64": "x86_64", "arm64": "aarch64"}.get(_machine, _machine))
    if old is None:  # other arches: ask the generated tables (slower import, same answers)
        from ..arch import native

        a = native()
        old = {n: a.nr(n) for n in _OLD["x86_64"]}
    table.update(old)
    return table


NR: dict[str, int] = _numbers()

_syscall = libc.syscall
_syscall.restype = ctypes.c_long
_syscall.argtypes = None
c_long = ctypes.c_long


class JailOSError(OSError):
    """A system call made while building the sandbox failed; the message names the step."""

    def __str__(self) -> str:
        return str(self.strerror)


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


def errno_of() -> int:
    return ctypes.get_errno()


def check(ret: int, what: str) -> int:
    """Turn a libc ``-1`` into :class:`JailOSError` naming ``what`` was being done."""
    if ret < 0:
        e = ctypes.get_errno()
        raise JailOSError(e, f"{what}: {os.strerror(e)}")
    return ret


def sysc(name: str, *args: object) -> int:
    """``syscall(NR[name], *args)``; integers must already be ctypes longs or fit in a C int."""
    return int(_syscall(c_long(NR[name]), *args))


# mount(2) and friends
mount = libc.mount
mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
umount2 = libc.umount2
umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
sethostname = libc.sethostname
sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
ioctl = libc.ioctl
socket = libc.socket
socket.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]

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

AT_FDCWD = -100
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


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


# clone(2) flags
CLONE_VM = 0x100
CLONE_FS = 0x200
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

# prctl(2)
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

CLOSE_RANGE_CLOEXEC = 4


def prctl(option: int, a2: int = 0, a3: int = 0, a4: int = 0, a5: int = 0) -> int:
    return sysc("prctl", c_long(option), c_long(a2), c_long(a3), c_long(a4), c_long(a5))


# The glibc clone() wrapper: the child runs fn(arg) on its own stack and exits with its result.
CLONE_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
clone = libc.clone
clone.restype = ctypes.c_int
clone.argtypes = [CLONE_FN, ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p,
                  ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_void_p]

mmap = libc.mmap
mmap.restype = ctypes.c_void_p
mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
mprotect = libc.mprotect
mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MAP_FAILED = ctypes.c_void_p(-1).value
