"""Judging the calls the supervisor's listener filter sends to it (see :mod:`.supervisor`).

A :class:`Mediation` is made by the supervisor thread when the first notification of a sandbox
arrives (most commands never connect, so most runs never import this module): its handlers decide
``connect`` and x86 ``socketcall(SYS_CONNECT)`` (the address judged once, the connection made by
the supervisor on a ``pidfd_getfd`` copy of the socket, with the target's credentials), the sends
with an address (:mod:`.send_mediation`), ``open``/``openat``/``openat2``/``creat`` under
``--allow-path``, and, with ``--log-denials``/``--ask``, the profile's own verdict on every
notified call. Denials are reported through the setup (:meth:`NotifySetup._emit`).
"""
from __future__ import annotations

import errno as E
import os
import sys

from ..kernel import syscall as N

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Mediation"]

_AF_UNIX = 1
_AF_INET = 2
_AF_INET6 = 10
_SYS_CONNECT = 3  # socketcall's call number for connect
_SYS_SENDS = (11, 16, 20)  # socketcall's SYS_SENDTO, SYS_SENDMSG, SYS_SENDMMSG
_DENY = E.EACCES  # what a refused connect/open gets (see docs/jail.md)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_IN_ROOT = 0x10


class Mediation:
    """The handlers of one sandbox's supervisor, judging by its :class:`~.supervisor.NotifySetup`
    (options, parsed allow lists, the profile's instructions in log mode, the ``--ask`` terminal)."""

    def __init__(self, setup: Any) -> None:
        from .send_mediation import SendMediation

        self.setup = setup
        self.opts = setup.opts
        self._emit = setup._emit
        self._tty = setup._tty
        self._asked: dict[str, bool] = setup._asked
        self.original_insns: Any = getattr(setup, "original_insns", None)  # log mode only
        self.allowed_socket_paths: tuple[str, ...] = setup.allowed_socket_paths
        self.allow_connect: tuple[tuple[str, int], ...] = setup.allow_connect
        self.allow_paths: tuple[tuple[str, bool], ...] = setup.allow_paths
        self._connect_addrs: set[tuple[str, int]] | None = None
        self._sends = SendMediation(self)

    def handlers(self) -> dict[Any, Any]:
        """Syscall name -> handler, for :class:`sysgate.notify.Supervisor`."""
        sends = self._sends
        handlers: dict[Any, Any] = {"connect": self._connect, "socketcall": self._socketcall,
                                    "sendto": sends.sendto, "sendmsg": sends.sendmsg, "sendmmsg": sends.sendmmsg}
        if self.opts.allow_paths:
            handlers.update(open=self._open, openat=self._openat, openat2=self._openat2, creat=self._creat)
        if self.setup.log:  # every notification is first judged by the profile: mediated calls included
            handlers = {k: self._judged(h) for k, h in handlers.items()}
        return handlers

    def _denied(self, call: Any, errno: int, by: str, detail: str = "") -> Any:
        from ..notify import Fail

        if self._tty is not None and self._ask(call, by, detail):
            return None
        ev = {"event": "denied", "syscall": call.name, "arch": call.arch.name if call.arch else None,
              "nr": call.nr, "args": [hex(a) for a in call.args], "pid": call.pid,
              "errno": E.errorcode.get(errno, errno),
              "by": by, "call": call.describe(decode=True) + (f" {detail}" if detail and by != "profile" else "")}
        if detail:
            ev["detail"] = detail
        self._emit(ev)
        return Fail(errno)

    def on_error(self, call: Any, exc: BaseException) -> None:
        """A handler raised: reported (the call itself fails with EPERM, see sysgate.notify)."""
        self._emit({"event": "handler-error", "call": call.describe(), "error": f"{type(exc).__name__}: {exc}",
                    "errno": "EPERM"}, force=True)

    def _ask(self, call: Any, by: str, detail: str) -> bool:
        key = call.name or str(call.nr)
        if key in self._asked:
            return self._asked[key]
        relay = self.setup.relay  # set by the sandbox after the setup was made
        if relay is not None:  # the pty relay reads the same terminal: it holds off until answered
            relay.pause()
        try:
            self._tty.write(f"\nsysgate: {by} denies {call.describe()} {detail}\n  allow {key} from now on? [y/N] "
                            .encode(errors="replace"))
            ans = self._tty.readline().strip().lower()
        finally:
            if relay is not None:
                relay.resume()
        self._asked[key] = ans in (b"y", b"yes")
        return self._asked[key]

    # -- the profile's own verdict (log mode) ---------------------------------------------------
    def _verdict(self, call: Any) -> int:
        from ..bpf.emulator import SeccompData, run

        a = call.arch
        data = SeccompData(call.nr, call.arch_token, call.ip, call.args).pack(a.byteorder if a else sys.byteorder)
        return run(self.original_insns, data).ret

    def profile_decision(self, call: Any) -> Any:
        """Log mode: what the profile itself decides for a call it sent to the supervisor."""
        from ..bpf import insn as I
        from ..notify import ALLOW, Fail

        ret = self._verdict(call)
        act = I.ret_action(ret)
        if act == I.RET_ERRNO:
            r = self._denied(call, ret & I.RET_DATA or E.EPERM, "profile")
            return ALLOW if r is None else r  # asked and allowed: a value-only decision, CONTINUE is safe
        if act in (I.RET_ALLOW, I.RET_LOG):
            return ALLOW
        return Fail(E.ENOSYS)  # TRACE without a tracer; kills and traps never get here (they rank above)

    def _judged(self, h: Any) -> Any:
        from ..bpf import insn as I

        def judged(call: Any) -> Any:
            if I.ret_action(self._verdict(call)) == I.RET_ERRNO:
                return self.profile_decision(call)
            return h(call)
        return judged

    # -- connect ------------------------------------------------------------------------------
    def _socketcall(self, call: Any) -> Any:
        from ..notify import ALLOW, Fail

        if call.args[0] in _SYS_SENDS:  # the address (and whether there is one) is in memory: emulated
            return self._sends.socketcall(call)
        if call.args[0] != _SYS_CONNECT:
            return ALLOW  # decided on the call number, a value: nothing to rewrite afterwards
        try:
            raw = call.read(call.args[1], 12)  # the 32-bit ABI: three 32-bit words
        except OSError:
            return Fail(E.EFAULT)
        fd, addr, alen = (int.from_bytes(raw[i:i + 4], "little", signed=(i == 0)) for i in (0, 4, 8))
        return self._do_connect(call, fd, addr, alen)

    def _connect(self, call: Any) -> Any:
        a = call.arch
        bits = a.bits if a else 64
        m = (1 << bits) - 1
        fd = call.args[0] & 0xFFFFFFFF
        fd = fd - (1 << 32) if fd >= 1 << 31 else fd
        alen = call.args[2] & 0xFFFFFFFF
        return self._do_connect(call, fd, call.args[1] & m, alen)

    def _do_connect(self, call: Any, fd: int, addr: int, alen: int) -> Any:
        from ..notify import Fail, Return

        if alen > 128 or alen >= 1 << 31:
            return Fail(E.EINVAL)
        try:
            raw = call.read(addr, alen) if alen else b""
        except OSError:
            return Fail(E.EFAULT)
        if fd < 0:
            return Fail(E.EBADF)
        try:
            sock = call.take_fd(fd)
        except OSError as e:
            return Fail(E.EBADF if e.errno in (E.EBADF, E.ENOENT) else (e.errno or E.EPERM))
        from .send_mediation import _SO_DOMAIN, _Refused, _sockopt_int

        try:
            fam = _sockopt_int(sock, _SO_DOMAIN)  # the socket's, which says how the kernel reads the address
        except _Refused as e:
            return Fail(e.errno)
        refused, target = self.judge_address(call, raw, fam, "connect mediation", connect=True)
        if refused is not None:
            return refused
        ret = _connect_as(call.pid, sock, target)
        if ret < 0:
            return Fail(-ret)
        return Return(0)

    def judge_address(self, call: Any, raw: bytes, fam: int, by: str, connect: bool = False) -> tuple[Any, bytes]:
        """Judge the address bytes ``raw`` (read once) for a socket of family ``fam`` (its domain,
        not the address's own family field: the kernel reads an address by the socket's), given to
        ``connect`` or to a send: (None, the address to use in the supervisor) or (the refusal,
        b""). A pathname unix address is resolved in the target's root with its fs ids and
        replaced by ``/proc/self/fd/N`` of the judged inode's O_PATH fd (kept open in ``call``'s fds
        until the call is answered)."""
        from ..notify import Fail

        if fam == _AF_UNIX and len(raw) > 2 and int.from_bytes(raw[:2], sys.byteorder) == _AF_UNIX:
            path = raw[2:]
            if path[:1] == b"\0":
                name = "@" + path[1:].decode(errors="replace")
                if not self.opts.ns("net") and name not in self.allowed_socket_paths:
                    r = self._denied(call, _DENY, by, name)
                    if r is not None:
                        return r, b""
                return None, raw
            path = path.split(b"\0", 1)[0]
            detail = os.fsdecode(path)
            try:
                # as the target: a root supervisor must not walk, for the target, directories
                # the target may not search (nor tell it what is in them)
                from ..kernel.creds import ActingAs, task_ids

                full = self._absolute(call, path)  # the target's cwd: read with our credentials
                call.root()
                with ActingAs(task_ids(call.pid)):
                    opath = self._resolve(call, full, os.O_PATH)
            except OSError as e:
                return Fail(e.errno or E.ENOENT), b""
            st = os.fstat(opath)
            import stat

            if not stat.S_ISSOCK(st.st_mode):
                return Fail(E.ECONNREFUSED), b""
            if not self._socket_allowed(call, st):
                r = self._denied(call, _DENY, by, detail)
                if r is not None:
                    return r, b""
            return None, raw[:2] + f"/proc/self/fd/{opath}".encode() + b"\0"
        if fam in (_AF_INET, _AF_INET6) and self.allow_connect:
            dest = _inet_destination(raw, fam, connect)
            if dest is None:
                return None, raw  # no destination in it (a disconnect; a send to the connected peer)
            host, port = dest
            if not host or not self._inet_allowed(host, port):
                r = self._denied(call, _DENY, by, f"{host or 'an address the kernel refuses'}:{port}")
                if r is not None:
                    return r, b""
        return None, raw

    def _socket_allowed(self, call: Any, st: os.stat_result) -> bool:
        """Whether the socket ``st`` is one an ``--allow-socket`` names. Each allowed path is
        resolved in the sandbox's root as the target, and with no symbolic link anywhere on it:
        the sandbox can write where such a path often lies (its own ``/run``, a writable bind), and
        a link planted there (or a directory renamed away and replaced) made the allowed name lead
        to any socket it could see. A name with a link in it allows nothing: give the real path."""
        from ..kernel.creds import ActingAs, task_ids

        paths = [os.fsencode(p) for p in self.allowed_socket_paths if not p.startswith("@")]
        if not paths:
            return False
        root = call.root()  # with our credentials: the target's root is not readable as it, from outside
        try:
            ids = task_ids(call.pid)
        except OSError:
            return False
        with ActingAs(ids):
            for p in paths:
                try:
                    fd = _openat2(root, p, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, 0,
                                  _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS | _RESOLVE_NO_SYMLINKS)
                except OSError:
                    continue
                call._fds.append(fd)
                o = os.fstat(fd)
                if (o.st_dev, o.st_ino) == (st.st_dev, st.st_ino):
                    return True
        return False

    def _inet_allowed(self, host: str, port: int) -> bool:
        if self._connect_addrs is None:
            import socket

            addrs: set[tuple[str, int]] = set()
            for h, p in self.allow_connect:
                try:
                    for info in socket.getaddrinfo(h, None):
                        addrs.add((str(info[4][0]), p))
                except OSError:
                    addrs.add((h, p))
            self._connect_addrs = addrs
        return (host, port) in self._connect_addrs or (host, 0) in self._connect_addrs

    # -- path resolution in the sandbox's view ----------------------------------------------------
    def _absolute(self, call: Any, path: bytes, dirfd: int = N.AT_FDCWD) -> bytes:
        if path.startswith(b"/"):
            return path
        if dirfd == N.AT_FDCWD:
            base = os.readlink(f"/proc/{call.pid}/cwd")
        else:
            base = os.readlink(f"/proc/{call.pid}/fd/{dirfd}")
            if not base.startswith("/"):
                raise OSError(E.ENOTDIR, "dirfd is not a directory")
        call.check()
        return os.fsencode(base).rstrip(b"/") + b"/" + path

    def _resolve(self, call: Any, full: bytes, flags: int, mode: int = 0) -> int:
        """openat2 of absolute ``full`` in the target's root (links followed inside it, no magic links)."""
        fd = _openat2(call.root(), full, flags | os.O_CLOEXEC, mode, _RESOLVE_IN_ROOT | _RESOLVE_NO_MAGICLINKS)
        call._fds.append(fd)
        return fd

    # -- open / openat / openat2 ----------------------------------------------------------------
    def _open(self, call: Any) -> Any:
        return self._do_open(call, N.AT_FDCWD, call.args[0], call.args[1] & 0xFFFFFFFF, call.args[2] & 0o7777)

    def _creat(self, call: Any) -> Any:
        return self._do_open(call, N.AT_FDCWD, call.args[0], os.O_CREAT | os.O_WRONLY | os.O_TRUNC,
                             call.args[1] & 0o7777)

    def _openat(self, call: Any) -> Any:
        d = call.args[0] & 0xFFFFFFFF
        return self._do_open(call, d - (1 << 32) if d >= 1 << 31 else d, call.args[1], call.args[2] & 0xFFFFFFFF,
                             call.args[3] & 0o7777)

    def _openat2(self, call: Any) -> Any:
        from ..notify import Fail

        size = call.args[3]
        if size < 24 or size > 4096:
            return Fail(E.EINVAL)
        try:
            how = call.read(call.args[2], size)
        except OSError:
            return Fail(E.EFAULT)
        if any(how[24:]):
            return Fail(E.E2BIG)
        flags, mode, resolve = (int.from_bytes(how[i:i + 8], sys.byteorder) for i in (0, 8, 16))
        if resolve:
            return Fail(E.EPERM)  # its own resolution rules are not emulated: refused, reported
        d = call.args[0] & 0xFFFFFFFF
        return self._do_open(call, d - (1 << 32) if d >= 1 << 31 else d, call.args[1], flags, mode & 0o7777)

    def _do_open(self, call: Any, dirfd: int, addr: int, flags: int, mode: int) -> Any:
        from ..kernel.creds import ActingAs, task_ids
        from ..notify import Fail, InjectFd

        try:
            path = call.read_string(addr)
        except OSError as e:
            return Fail(e.errno if e.errno == E.ENAMETOOLONG else E.EFAULT)
        if not path:
            return Fail(E.ENOENT)
        write = (flags & 3) != os.O_RDONLY or bool(flags & (os.O_CREAT | os.O_TRUNC))
        try:
            ids = task_ids(call.pid)
        except OSError:
            return Fail(E.ESRCH)
        own = ids.nspids
        try:
            # The target's cwd, fds and root are read with our credentials (from outside its user
            # namespace, only a capability there may); what it names is then resolved and opened
            # as the target (its uid, gid and groups, none of our capabilities): every check is its
            # own. Except its own /proc/PID, which is hidden from us acting as it (we are outside
            # its user namespace): that is looked up with our credentials, and only what is on a
            # procfs under the target's own pid passes.
            path = _proc_self(self._absolute(call, path, dirfd), own)
            call.root()
            if _names_own_proc(path, own):
                found = self._resolve(call, path, os.O_PATH | (flags & os.O_NOFOLLOW))
                return self._open_found(call, found, flags, write, own, own_proc=True)
            with ActingAs(ids):
                try:
                    found = self._resolve(call, path, os.O_PATH | (flags & os.O_NOFOLLOW))
                except OSError as e:
                    if e.errno != E.ENOENT or not flags & os.O_CREAT:
                        return Fail(e.errno or E.EACCES)
                    found = -1
                if found >= 0:
                    return self._open_found(call, found, flags, write, own)
                parent, _, last = path.rstrip(b"/").rpartition(b"/")
                if last in (b"", b".", b".."):
                    return Fail(E.EISDIR)
                pfd = self._resolve(call, parent or b"/", os.O_PATH | os.O_DIRECTORY)
                canon = os.path.join(os.readlink(f"/proc/self/fd/{pfd}"), os.fsdecode(last))
                if not self._path_allowed(canon, True):
                    return self._denied(call, _DENY, "--allow-path", canon) or Fail(_DENY)
                fd = os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode & ~ids.umask, dir_fd=pfd)
                return InjectFd(fd, cloexec=bool(flags & os.O_CLOEXEC))
        except OSError as e:
            return Fail(e.errno or E.EACCES)

    def _open_found(self, call: Any, found: int, flags: int, write: bool, own: tuple[bytes, ...],
                    own_proc: bool = False) -> Any:
        """Judge and open O_PATH ``found`` (resolved as the target, or with ``own_proc`` with our
        credentials, then only its own procfs entries pass)."""
        from ..notify import Fail, InjectFd

        if flags & os.O_CREAT and flags & os.O_EXCL:
            return Fail(E.EEXIST)
        canon = os.readlink(f"/proc/self/fd/{found}")
        if not self._path_allowed(canon, write):
            return self._denied(call, _DENY, "--allow-path", canon) or Fail(_DENY)
        top, root = self._proc_top(call, found, canon)
        try:
            pid_entry = top is not None and (top.isdigit() or top == b"?")
            if (own_proc or pid_entry) and (top not in own or not _same_pid_namespace(call, root, top)):
                # another process's procfs entry (the sandbox's PID 1 shares the caller's memory; a
                # task that made itself undumpable; the host's under --share pid): the kernel would
                # judge it by our credentials, and an unprivileged caller's thread owns the sandbox's
                # user namespace, with every capability in it (see sysgate.kernel.creds)
                return self._denied(call, _DENY, "--allow-path (another process's /proc entry)",
                                    canon) or Fail(_DENY)
        finally:
            if root >= 0:
                os.close(root)
        if _opener_relative(found):
            # /dev/tty is whatever terminal the *opener* controls: opened here it would be the
            # caller's, outside the sandbox's session and relay
            return self._denied(call, E.ENXIO, "--allow-path (a terminal the opener's session decides)",
                                canon) or Fail(E.ENXIO)
        fd = _reopen(found, flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW))
        return InjectFd(fd, cloexec=bool(flags & os.O_CLOEXEC))

    def _proc_top(self, call: Any, found: int, canon: str) -> tuple[bytes | None, int]:
        """(None, -1) if ``found`` is not on a procfs; else the name of the entry right under that
        procfs's root on its way (a pid for ``/proc/PID/...``; b"" for the root itself) and an
        O_PATH descriptor of that root, which the caller closes. Found by walking up to the root
        (inode 1), from ``found`` if it is a directory, else from its parent looked up again; a
        procfs subtree whose root is not found (bound elsewhere) names b"?" (refused), with -1."""
        import stat

        from ..kernel.mount import PROC_SUPER_MAGIC, fs_type

        if fs_type(found) != PROC_SUPER_MAGIC:
            return None, -1
        parts = [os.fsencode(x) for x in canon.strip("/").split("/") if x]
        if stat.S_ISDIR(os.fstat(found).st_mode):
            cur, depth = os.dup(found), 0
        else:
            cur = self._resolve(call, os.fsencode(os.path.dirname(canon)), os.O_PATH | os.O_DIRECTORY)
            cur, depth = os.dup(cur), 1
        dev = os.fstat(found).st_dev
        for _ in range(64):
            st = os.fstat(cur)
            if st.st_dev != dev:
                break
            if st.st_ino == _PROC_ROOT_INO:
                if depth == 0:
                    return b"", cur
                return (parts[len(parts) - depth] if depth <= len(parts) else b"?"), cur
            try:
                up = _openat2(cur, b"..", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, _RESOLVE_NO_MAGICLINKS)
            finally:
                os.close(cur)
            cur = up
            depth += 1
        os.close(cur)
        return b"?", -1

    def _path_allowed(self, canon: str, write: bool) -> bool:
        for p, rw in self.allow_paths:  # longest first: the most specific rule decides
            if canon == p or canon.startswith(p.rstrip("/") + "/"):
                return rw or not write
        return False


def _same_pid_namespace(call: Any, root: int, top: bytes) -> bool:
    """Whether entry ``top`` of the procfs whose root is ``root`` is a task of the target's own PID
    namespace: then ``top``, the target's pid there (``TaskIds.nspids``), names the target. A
    command in a namespace of its own (``unshare(CLONE_NEWPID)``, then a child) is pid 1 there, and
    /proc/1 of the sandbox's procfs (PID 1, which shares the caller's memory) must not pass as its
    own: that task's ``ns/pid`` is not the target's. Read with our credentials."""
    if root < 0:
        return False
    try:
        theirs = os.readlink(os.fsdecode(top) + "/ns/pid", dir_fd=root)
        mine = os.readlink(f"/proc/{call.pid}/ns/pid")
    except OSError:
        return False
    return theirs == mine


def _proc_self(path: bytes, own: tuple[bytes, ...]) -> bytes:
    """``/proc/self`` and ``/proc/thread-self`` spelled out: resolved by the supervisor they would
    name the supervisor (absent from the sandbox's procfs). Other routes to them (``/dev/fd``, a
    link) still resolve as the supervisor: ENOENT."""
    for name, repl in ((b"/proc/self", b"/proc/" + own[0]),
                       (b"/proc/thread-self", b"/proc/" + own[0] + b"/task/" + own[1])):
        if path == name or path.startswith(name + b"/"):
            return repl + path[len(name):]
    return path


_PROC_ROOT_INO = 1


def _names_own_proc(path: bytes, own: tuple[bytes, ...]) -> bool:
    """Whether absolute ``path`` is spelled as the target's own ``/proc/PID`` (or under it)."""
    parts = path.split(b"/")
    return len(parts) >= 3 and parts[0] == b"" and parts[1] == b"proc" and parts[2] in own




def _opener_relative(found: int) -> bool:
    """A character device whose meaning is the opener's: /dev/tty (its controlling terminal),
    /dev/console, /dev/tty0 (the current virtual console)."""
    import stat

    st = os.fstat(found)
    return stat.S_ISCHR(st.st_mode) and (os.major(st.st_rdev), os.minor(st.st_rdev)) in ((5, 0), (5, 1), (4, 0))


def _reopen(found: int, flags: int) -> int:
    """Open what O_PATH ``found`` names with ``flags``, never waiting (one thread serves the whole
    sandbox): non-blocking, then made blocking again unless the target asked otherwise. So a FIFO
    opened for writing with no reader fails with ENXIO instead of waiting for one that does not
    come, and a regular file under a lease another process of the sandbox holds gives EAGAIN
    instead of the lease-break wait (45 s) during which every other open would wait too."""
    path = f"/proc/self/fd/{found}"
    fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC)
    if not flags & os.O_NONBLOCK:
        os.set_blocking(fd, True)
    return fd


def _ids(pid: int) -> tuple[int, int, list[int]]:
    """The effective uid, gid and supplementary groups of ``pid`` (host ids: we read from the host)."""
    uid = gid = -1
    groups: list[int] = []
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                uid = int(line.split()[2])
            elif line.startswith(b"Gid:"):
                gid = int(line.split()[2])
            elif line.startswith(b"Groups:"):
                groups = [int(g) for g in line.split()[1:]]
    return uid, gid, groups


def _connect_as(pid: int, sock: int, addr: bytes) -> int:
    """connect(2) with the target's credentials when we are root and it is not.

    The peer of a unix socket sees the *connecting* task's credentials (SO_PEERCRED), and the
    kernel checks write permission on the socket inode with them: a root supervisor must not lend
    its uid 0 to a sandbox whose host uid is unprivileged. setresuid/setresgid/setgroups as raw
    syscalls change only the calling thread, so a short-lived thread takes the target's ids,
    connects and ends."""
    if os.geteuid() != 0:
        return _connect(sock, addr)
    uid, gid, groups = _ids(pid)
    if uid == 0 or uid < 0:
        return _connect(sock, addr)
    import _thread
    import ctypes as C

    from ..kernel.syscall import nr, syscall

    out: list[int] = []
    done = _thread.allocate_lock()
    done.acquire()

    def body() -> None:
        try:
            arr = (C.c_uint32 * max(1, len(groups)))(*groups)
            syscall(nr("setgroups"), len(groups), arr)
            syscall(nr("setresgid"), gid, gid, gid)
            syscall(nr("setresuid"), uid, uid, uid)
            out.append(_connect(sock, addr))
        except OSError as e:
            out.append(-(e.errno or E.EPERM))
        finally:
            done.release()

    _thread.start_new_thread(body, ())
    done.acquire()
    return out[0] if out else -E.EPERM


_V4_MAPPED = bytes(10) + b"\xff\xff"


def _inet_destination(raw: bytes, domain: int, connect: bool) -> tuple[str, int] | None:
    """Where the kernel sends for address bytes ``raw`` given to a socket of ``domain`` (AF_INET or
    AF_INET6): (host, port), None for no destination, or ("", port) for an address the kernel
    refuses (refused here too). As net/ipv4 and net/ipv6 read it: an IPv4 socket takes AF_UNSPEC
    as AF_INET in a send (a disconnect in connect); an IPv6 socket takes an AF_INET address and
    a v4-mapped one as IPv4, and AF_UNSPEC as no address. Not the address's own family alone: an
    ``AF_UNSPEC`` or IPv4 address on the wrong kind of socket once bypassed ``--allow-connect``."""
    import socket

    family = int.from_bytes(raw[:2], sys.byteorder) if len(raw) >= 2 else -1
    port = int.from_bytes(raw[2:4], "big") if len(raw) >= 4 else 0
    if family == 0 and (connect or domain == _AF_INET6):
        return None
    if family in (0, _AF_INET) and (domain == _AF_INET or family == _AF_INET):
        if len(raw) < 16:
            return "", port
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if family == _AF_INET6 and domain == _AF_INET6:
        if len(raw) < 24:
            return "", port
        addr = raw[8:24]
        if addr[:12] == _V4_MAPPED:
            return socket.inet_ntop(socket.AF_INET, addr[12:]), port
        return socket.inet_ntop(socket.AF_INET6, addr), port
    return "", port


_libc_connect: Any = None


def _connect(fd: int, addr: bytes) -> int:
    """connect(2) with raw address bytes; 0 or -errno (the GIL is released while it blocks)."""
    global _libc_connect
    if _libc_connect is None:
        import ctypes as C

        from ..kernel.syscall import libc

        _libc_connect = libc["connect"]  # a function object of its own: its argtypes are its own
        _libc_connect.argtypes = [C.c_int, C.c_char_p, C.c_uint32]
    import ctypes as C

    if _libc_connect(fd, addr, len(addr)) == 0:
        return 0
    return -C.get_errno()


# openat2 with RESOLVE_IN_ROOT fails with EAGAIN when a mount or a rename anywhere on the host
# races a ".." of the walk (the kernel cannot vouch that ".." stayed inside the root, and asks the
# caller to retry). A host busy with mounts (other sandboxes) or renames gave a target's open of
# "/proc/thread-self/../../1/cmdline" EAGAIN; with a rename loop beside it, 17% of such opens. Each
# try is a few microseconds; racing every one of these, the target gets EAGAIN (nothing opened).
_RACE_RETRIES = 100


def _openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    import ctypes as C

    from ..kernel.syscall import nr, syscall

    how = (C.c_uint64 * 3)(flags, mode if flags & (os.O_CREAT | 0o20000000) else 0, resolve)
    for _ in range(_RACE_RETRIES if resolve & _RESOLVE_IN_ROOT else 0):
        try:
            return syscall(nr("openat2"), dirfd, path, how, 24)
        except BlockingIOError:  # EAGAIN
            pass
    return syscall(nr("openat2"), dirfd, path, how, 24)
