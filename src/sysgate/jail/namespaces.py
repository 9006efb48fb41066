"""Namespaces: which ``CLONE_NEW*`` flags a sandbox is created with, and what its init does
inside them (identity maps, hostname, loopback).

The sandbox's init is created by ``clone()`` with all the flags at once, so it is PID 1 of
the new PID namespace and owns every new namespace through its new user namespace. It maps
its own ids (one uid, one gid: the caller's, shown inside as ``uid``/``gid`` or the same
numbers), which needs no help from outside and works unprivileged; ``setgroups`` is denied
first, as the kernel requires for an unprivileged gid map.

The cgroup namespace is not in the clone flags when the sandbox has cgroup limits: the
process that joins the sandbox's cgroup unshares it afterwards, so the sandbox sees its own
cgroup as the root.
"""
from __future__ import annotations

import os
import sys

from . import _ffi as ctypes  # the few ctypes names the jail needs, without ctypes' import cost
from . import _native as N
from .options import Options

__all__ = ["NsPlan", "plan", "enter", "FLAGS"]

FLAGS = {"user": N.CLONE_NEWUSER, "pid": N.CLONE_NEWPID, "net": N.CLONE_NEWNET, "ipc": N.CLONE_NEWIPC,
         "uts": N.CLONE_NEWUTS, "cgroup": N.CLONE_NEWCGROUP}

_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 1


class NsPlan:
    clone_flags: int  # CLONE_NEW* passed to clone (mount always)
    late_cgroupns: bool  # unshare CLONE_NEWCGROUP after joining the cgroup
    uid_map: bytes | None
    gid_map: bytes | None
    hostname: bytes | None
    loopback: bool

    def __init__(self, clone_flags: int, late_cgroupns: bool, uid_map: bytes | None, gid_map: bytes | None,
                 hostname: bytes | None, loopback: bool) -> None:
        self.clone_flags = clone_flags
        self.late_cgroupns = late_cgroupns
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.hostname = hostname
        self.loopback = loopback


def plan(opts: Options, *, late_cgroupns: bool) -> NsPlan:
    flags = N.CLONE_NEWNS
    for name, bit in FLAGS.items():
        if opts.ns(name) and not (name == "cgroup" and late_cgroupns):
            flags |= bit
    userns = opts.ns("user")
    uid, gid = os.geteuid(), os.getegid()
    return NsPlan(
        clone_flags=flags,
        late_cgroupns=late_cgroupns and opts.ns("cgroup"),
        uid_map=b"%d %d 1" % (uid if opts.uid is None else opts.uid, uid) if userns else None,
        gid_map=b"%d %d 1" % (gid if opts.gid is None else opts.gid, gid) if userns else None,
        hostname=opts.hostname.encode() if opts.hostname and opts.ns("uts") else None,
        loopback=opts.ns("net"),
    )


def _write(path: bytes, data: bytes, what: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    except OSError as e:
        hint = ""
        if e.errno == 1 and data.split()[1:2] == [b"0"]:
            hint = " (mapping the parent's id 0 needs CAP_SETFCAP where the sandbox is created)"
        raise N.JailOSError(e.errno, f"{what}: {os.strerror(e.errno or 0)}{hint}") from None


def enter(p: NsPlan) -> None:
    """In the new namespaces: map ids, then set the hostname and bring ``lo`` up."""
    if p.uid_map is not None:
        _write(b"/proc/self/setgroups", b"deny", "deny setgroups in the user namespace")
        _write(b"/proc/self/uid_map", p.uid_map, "write uid_map")
        _write(b"/proc/self/gid_map", p.gid_map or b"", "write gid_map")


def finish(p: NsPlan) -> None:
    """Steps that do not touch the filesystem (run after the mounts, before dropping caps)."""
    if p.hostname is not None:
        N.check(N.sethostname(p.hostname, len(p.hostname)), "sethostname")
    if p.loopback:
        loopback_up()


def loopback_up() -> None:
    """``ip link set lo up`` with one ioctl (needs CAP_NET_ADMIN in the network namespace)."""
    fd = N.check(N.socket(2, 2 | os.O_CLOEXEC, 0), "socket for the loopback ioctl")  # AF_INET, SOCK_DGRAM
    try:
        # struct ifreq: the name in 16 bytes, then the flags (a short) in a 24-byte union
        ifr = ctypes.create_string_buffer(b"lo".ljust(16, b"\0") + _IFF_UP.to_bytes(2, sys.byteorder) + bytes(22), 40)
        N.check(N.ioctl(fd, ctypes.c_ulong(_SIOCSIFFLAGS), ifr), "bring the loopback interface up")
    finally:
        os.close(fd)
