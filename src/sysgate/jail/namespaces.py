r"""Namespaces: which ``CLONE_NEW*`` flags a sandbox is created with, and what its init does
inside them (identity maps, hostname, loopback).

The sandbox's init is created by ``clone()`` with all the flags at once, so it is PID 1 of
the new PID namespace and owns every new namespace through its new user namespace. It maps
its own ids (one uid, one gid: the caller's, shown inside as ``uid``/``gid`` or the same
numbers), which needs no help from outside and works unprivileged; ``setgroups`` is denied
first, as the kernel requires for an unprivileged gid map.

**A root caller's sandbox is not host root.** Mapping any id but one's own needs CAP_SETUID in
the *parent* user namespace, which the sandbox's init does not have once it is born in a new
one. So for a host-root caller the user namespace is made beforehand, by the caller: a
``CLONE_VM`` child that only ``pause()``\ s is cloned with ``CLONE_NEWUSER``, the caller writes its
``uid_map``/``gid_map`` (sandbox id -> an unprivileged host id: ``--host-uid``/``--host-gid``, else
the last id of root's first range in ``/etc/subuid``/``/etc/subgid``, else 65534) and keeps a
descriptor of the namespace (one per process and mapping). Init is then cloned *without*
``CLONE_NEWUSER``: its other namespaces belong to the host's user namespace, init builds the
mounts, hostname and loopback as host root, then ``setns``\ es into the prepared user namespace
and takes the sandbox's ids there (raw syscalls: glibc's set*id would signal the caller's threads,
whose memory the vfork-launched init shares). The command so has no capability over its mount,
network, UTS, IPC or PID namespace (they are the host user namespace's), files it creates are
owned by the unprivileged host id, and host daemons see that id. ``PR_SET_PDEATHSIG`` is cleared
by the credential change, so it is set again and the lifeline checked once more.
``keep_host_root`` restores the old behaviour (the sandbox's root is host root without
capabilities).

The cgroup namespace is not in the clone flags when the sandbox has cgroup limits: the
process that joins the sandbox's cgroup unshares it afterwards, so the sandbox sees its own
cgroup as the root.
"""
from __future__ import annotations

import _thread
import os
import sys

from .._startup import ctypes
from ..kernel import process as P
from ..kernel import syscall as N
from .options import JailConfigError, Options

__all__ = ["NsPlan", "plan", "enter", "finish", "FLAGS", "host_ids", "subordinate_id"]

_NOBODY = 65534

FLAGS = {"user": P.CLONE_NEWUSER, "pid": P.CLONE_NEWPID, "net": P.CLONE_NEWNET, "ipc": P.CLONE_NEWIPC,
         "uts": P.CLONE_NEWUTS, "cgroup": P.CLONE_NEWCGROUP}

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
    userns_fd: int  # a prepared user namespace to enter after the mounts (root callers), or -1
    ids: tuple[int, int]  # (uid, gid) inside that namespace
    die_with_parent: bool
    lifeline: int  # read end of the caller's lifeline (EOF: the caller is gone), or -1

    def __init__(self, clone_flags: int, late_cgroupns: bool, uid_map: bytes | None, gid_map: bytes | None,
                 hostname: bytes | None, loopback: bool, userns_fd: int = -1, ids: tuple[int, int] = (0, 0),
                 die_with_parent: bool = False) -> None:
        self.clone_flags = clone_flags
        self.late_cgroupns = late_cgroupns
        self.uid_map = uid_map
        self.gid_map = gid_map
        self.hostname = hostname
        self.loopback = loopback
        self.userns_fd = userns_fd
        self.ids = ids
        self.die_with_parent = die_with_parent
        self.lifeline = -1


_SUBIDS: dict[str, int | None] = {}


def subordinate_id(path: str, uid: int = 0) -> int | None:
    """The last id of the first range ``/etc/subuid``-style file ``path`` gives user ``uid`` (by name
    or number), or None. The last one: container engines map their root to the first."""
    if path in _SUBIDS:
        return _SUBIDS[path]
    names = {str(uid).encode()}
    if uid == 0:
        names.add(b"root")
    found = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        try:
            text = os.read(fd, 1 << 20)  # (a real one is a few lines)
        finally:
            os.close(fd)
    except OSError:
        text = b""
    for line in text.splitlines():
        parts = line.strip().split(b":")
        if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
            start, count = int(parts[1]), int(parts[2])
            if count > 0 and start > 0 and start + count - 1 < 2**32 - 1:
                found = start + count - 1
                break
    _SUBIDS[path] = found
    return found


def host_ids(opts: Options) -> tuple[int, int] | None:
    """The unprivileged host (uid, gid) a host-root caller's sandbox runs as; None when the caller
    is not host root, or has no user namespace, or keeps host root on purpose."""
    if not opts.ns("user") or opts.keep_host_root or not P.host_root():
        if opts.host_uid is not None or opts.host_gid is not None:
            raise JailConfigError("--host-uid/--host-gid: only a root caller chooses the host ids")
        return None
    uid = opts.host_uid if opts.host_uid is not None else subordinate_id("/etc/subuid") or _NOBODY
    gid = opts.host_gid if opts.host_gid is not None else subordinate_id("/etc/subgid") or _NOBODY
    return uid, gid


def plan(opts: Options, *, late_cgroupns: bool) -> NsPlan:
    flags = P.CLONE_NEWNS
    for name, bit in FLAGS.items():
        if opts.ns(name) and not (name == "cgroup" and late_cgroupns):
            flags |= bit
    userns = opts.ns("user")
    uid, gid = os.geteuid(), os.getegid()
    hostname = os.fsencode(opts.hostname) if opts.hostname and opts.ns("uts") else None
    remap = host_ids(opts)
    if remap is None and opts.keep_host_root and P.host_root():
        os.write(2, b"sysgate: warning: --keep-host-root: the sandbox's root is host root (files it creates are "
                    b"root's, root-only files are readable)\n")
    if remap is not None:
        inside = (0 if opts.uid is None else opts.uid, 0 if opts.gid is None else opts.gid)
        fd = _userns(b"%d %d 1" % (inside[0], remap[0]), b"%d %d 1" % (inside[1], remap[1]))
        return NsPlan(clone_flags=flags & ~P.CLONE_NEWUSER, late_cgroupns=late_cgroupns and opts.ns("cgroup"),
                      uid_map=None, gid_map=None, hostname=hostname, loopback=opts.ns("net"), userns_fd=fd,
                      ids=inside, die_with_parent=opts.die_with_parent)
    return NsPlan(
        clone_flags=flags,
        late_cgroupns=late_cgroupns and opts.ns("cgroup"),
        uid_map=b"%d %d 1" % (uid if opts.uid is None else opts.uid, uid) if userns else None,
        gid_map=b"%d %d 1" % (gid if opts.gid is None else opts.gid, gid) if userns else None,
        hostname=hostname,
        loopback=opts.ns("net"),
    )


_USERNS: dict[tuple[bytes, bytes], tuple[int, int]] = {}  # maps -> (pid that made it, namespace fd)


_USERNS_LOCK = _thread.allocate_lock()


def _userns(uid_map: bytes, gid_map: bytes) -> int:
    """A user namespace with these maps, made once per process (see the module's docstring)."""
    key = (uid_map, gid_map)
    with _USERNS_LOCK:
        hit = _USERNS.get(key)
        if hit is not None and hit[0] == os.getpid():
            return hit[1]
        fd = _make_userns(uid_map, gid_map)
        _USERNS[key] = (os.getpid(), fd)
        return fd


def _make_userns(uid_map: bytes, gid_map: bytes) -> int:
    from .._startup import signal as _signal

    size = 1 << 16
    stack = P.alloc_stack(size, "the user namespace's first task")
    pause = P.CLONE_FN(("pause", N.libc))  # the child runs no Python: it only waits to be killed
    old = _signal.pthread_sigmask(_signal.SIG_BLOCK, _signal.valid_signals())
    try:
        pid = P.clone(pause, stack + size - 64, P.CLONE_VM | P.CLONE_NEWUSER | _signal.SIGCHLD, None, None, None, None)
        err = ctypes.get_errno()
    finally:
        _signal.pthread_sigmask(_signal.SIG_SETMASK, old)
    if pid < 0:
        raise N.KernelError(err, f"create the sandbox's user namespace (clone): {os.strerror(err)}")
    try:
        fd = os.open(b"/proc/%d/ns/user" % pid, os.O_RDONLY | os.O_CLOEXEC)
        try:
            _write(b"/proc/%d/uid_map" % pid, uid_map, "write the sandbox's uid_map")
            _write(b"/proc/%d/gid_map" % pid, gid_map, "write the sandbox's gid_map")
        except BaseException:
            os.close(fd)
            raise
    finally:
        os.kill(pid, _signal.SIGKILL)
        while True:
            try:
                os.waitpid(pid, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
        P.munmap(stack, size)
    return fd


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
        raise N.KernelError(e.errno, f"{what}: {os.strerror(e.errno or 0)}{hint}") from None


def enter(p: NsPlan) -> None:
    """In the new namespaces: map ids, then set the hostname and bring ``lo`` up."""
    if p.uid_map is not None:
        _write(b"/proc/self/setgroups", b"deny", "deny setgroups in the user namespace")
        _write(b"/proc/self/uid_map", p.uid_map, "write uid_map")
        _write(b"/proc/self/gid_map", p.gid_map or b"", "write gid_map")


def finish(p: NsPlan) -> None:
    """Steps that do not touch the filesystem (run after the mounts, before dropping caps); for a
    root caller, last, entering the prepared user namespace as the sandbox's ids."""
    if p.hostname is not None:
        N.check(P.sethostname(p.hostname, len(p.hostname)), "sethostname")
    if p.loopback:
        loopback_up()
    if p.userns_fd >= 0:
        _become_unprivileged(p)


def take_ids(p: NsPlan) -> None:
    """Enter the prepared user namespace as the sandbox's ids (also what the command's PID 1 is made with)."""
    N.check(N.ksysc("setns", p.userns_fd, P.CLONE_NEWUSER), "enter the sandbox's user namespace")
    # Raw syscalls, never glibc's wrappers: they would broadcast the change to the caller's threads.
    N.check(N.ksysc("setgroups", 0, 0), "drop supplementary groups")
    gid, uid = p.ids[1], p.ids[0]
    N.check(N.ksysc("setresgid", gid, gid, gid), "set the sandbox's gid")
    N.check(N.ksysc("setresuid", uid, uid, uid), "set the sandbox's uid")


def _become_unprivileged(p: NsPlan) -> None:
    take_ids(p)
    if p.die_with_parent:  # a credential change clears the parent-death signal
        N.ksysc("prctl", N.PR_SET_PDEATHSIG, 9)
        if p.lifeline >= 0:
            os.set_blocking(p.lifeline, False)
            try:
                gone = os.read(p.lifeline, 1) == b""
            except BlockingIOError:
                gone = False
            if gone:
                raise N.KernelError(3, "the calling process went away")


def loopback_up() -> None:
    """``ip link set lo up`` with one ioctl (needs CAP_NET_ADMIN in the network namespace)."""
    fd = N.check(P.socket(2, 2 | os.O_CLOEXEC, 0), "socket for the loopback ioctl")  # AF_INET, SOCK_DGRAM
    try:
        # struct ifreq: the name in 16 bytes, then the flags (a short) in a 24-byte union
        ifr = ctypes.create_string_buffer(b"lo".ljust(16, b"\0") + _IFF_UP.to_bytes(2, sys.byteorder) + bytes(22), 40)
        N.check(P.ioctl(fd, ctypes.c_ulong(_SIOCSIFFLAGS), ifr), "bring the loopback interface up")
    finally:
        os.close(fd)
