"""Mediation of the sends that can name a destination: ``sendto``, ``sendmsg``, ``sendmmsg``.

A unix *datagram* socket can send to any pathname socket it can look up (``sendto(fd, ..., {AF_UNIX,
"/run/systemd/journal/socket"})``): no ``connect`` is involved, so connect mediation alone leaves
every host daemon's datagram socket in the sandbox's view reachable, with the caller's host
credentials attached (``SO_PASSCRED``). The listener filter therefore also notifies:

* ``sendto`` only when its destination pointer (argument 4) is not NULL: a value, judged by the
  kernel in the filter, so the common send on a connected socket never reaches the supervisor;
* every ``sendmsg`` and ``sendmmsg``: their addresses are inside ``struct msghdr``, in memory;
* x86 ``socketcall`` ``SYS_SENDTO``/``SYS_SENDMSG``/``SYS_SENDMMSG`` (``int 0x80``).

**Why every notified send is performed here, never answered CONTINUE.** Whatever the supervisor
checks, the target can change before the kernel would run the call: the address and the message
header are in its memory (another thread rewrites them), and even a check on the socket itself
does not hold, because the kernel looks the fd *number* up again on CONTINUE and another thread
can ``dup2`` a unix datagram socket onto that number in between. What does stay valid is the
open socket the supervisor took with ``pidfd_getfd``: its family and type cannot change, and
only an ``AF_UNIX`` socket can reach a unix address. So the supervisor reads the header, the
address, the data and the control messages once, judges the address on that copy with the same
rules as connect (a pathname resolved in the sandbox's root with its fs ids and replaced by
``/proc/self/fd/N`` of the judged inode; abstract names per network namespace; ``--allow-connect``
for inet destinations, which also covers unconnected UDP and TCP fast open), and sends on its
copy of the socket. ``SCM_RIGHTS`` fds are taken from the target with ``pidfd_getfd`` and passed
on; ``SCM_CREDENTIALS`` is refused (it would be checked against the supervisor's identity, not
the command's); on other sockets only control messages that need no privilege pass (IP/IPv6
TTL, TOS/traffic class, packet info, UDP GSO), since the kernel checks capabilities of the task
that sends (the supervisor) for the others (``SO_MARK``, ``SO_PRIORITY``...).

A send that would block (a blocking socket whose buffer is full) is finished by a thread of its
own that polls the socket and answers the notification when done (``Later``), so the serving
thread never blocks; it gives up when the target's call is interrupted (``ID_VALID``) and honours
``SO_SNDTIMEO``. A root supervisor sends from a short-lived thread that took the command's uid,
gid and groups (per-thread ``setresuid``, as connect does) and dropped every capability: a
receiver with ``SO_PASSCRED`` (journald) sees the command's ids, never uid 0, the socket's write
permission is checked against them, and no capability of ours is lent (see :func:`_take_ids`).
An unprivileged caller's supervisor owns the sandbox's user namespace, so in the sandbox's own
network namespace its sends have the capabilities the command dropped (netlink multicast there,
for one); the host's namespaces are out of its reach as they are of the command's.
"""
from __future__ import annotations

import ctypes
import errno as E
import os
import sys

from ..kernel.syscall import libc

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Literal

__all__ = ["SendMediation"]

_SOL_SOCKET, _SO_TYPE, _SO_DOMAIN, _SO_SNDTIMEO = 1, 3, 39, 21
_SCM_RIGHTS, _SCM_CREDENTIALS = 1, 2
_AF_UNIX = 1
_SOCK_STREAM, _SOCK_SEQPACKET = 1, 5
_MSG_DONTWAIT, _MSG_NOSIGNAL = 0x40, 0x4000
_UIO_MAXIOV = 1024
_MAX_DATA = 4 << 20      # read at most this much per call (a stream send returns a short count)
_MAX_CONTROL = 1 << 16   # the kernel's optmem limit is 20-128 KiB: more is ENOBUFS
_SOL_IP, _SOL_IPV6, _SOL_UDP = 0, 41, 17
# control messages the kernel accepts from any sender (no capability checked on the sending task)
_FREE_CMSGS = {(_SOL_IP, 1), (_SOL_IP, 2), (_SOL_IP, 8), (_SOL_IPV6, 50), (_SOL_IPV6, 52), (_SOL_IPV6, 67),
               (_SOL_UDP, 103)}
_SYS_SENDTO, _SYS_SENDMSG, _SYS_SENDMMSG = 11, 16, 20

# own function objects of the one libc handle (kernel.syscall): their argtypes are theirs alone
_sendmsg = libc["sendmsg"]
_sendmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_sendmsg.restype = ctypes.c_ssize_t
_getsockopt = libc["getsockopt"]
_getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]


class _Refused(Exception):
    """Answer the call with ``errno`` (raised while reading and judging)."""

    def __init__(self, errno: int) -> None:
        super().__init__(errno)
        self.errno = errno


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class _MsgHdr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_void_p), ("namelen", ctypes.c_uint32), ("iov", ctypes.POINTER(_IOVec)),
                ("iovlen", ctypes.c_size_t), ("control", ctypes.c_void_p), ("controllen", ctypes.c_size_t),
                ("flags", ctypes.c_int)]


def _send_raw(fd: int, name: bytes, data: bytes, control: bytes, flags: int) -> int:
    """sendmsg(2) on our fd with raw name/data/control bytes: the count, or -errno."""
    iov = _IOVec(ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p), len(data))
    h = _MsgHdr(ctypes.cast(ctypes.c_char_p(name), ctypes.c_void_p) if name else None, len(name),
                ctypes.pointer(iov), 1, ctypes.cast(ctypes.c_char_p(control), ctypes.c_void_p) if control else None,
                len(control), 0)
    n = _sendmsg(fd, ctypes.byref(h), flags - (1 << 32) if flags >= 1 << 31 else flags)
    return n if n >= 0 else -ctypes.get_errno()


def _sockopt_int(fd: int, opt: int) -> int:
    v = ctypes.c_int(0)
    size = ctypes.c_uint32(4)
    if _getsockopt(fd, _SOL_SOCKET, opt, ctypes.byref(v), ctypes.byref(size)) < 0:
        raise _Refused(ctypes.get_errno() or E.ENOTSOCK)
    return v.value


def _send_timeout(fd: int) -> float:
    """SO_SNDTIMEO in seconds (0: none): a blocking send the kernel would end with EAGAIN."""
    tv = (ctypes.c_long * 2)()
    size = ctypes.c_uint32(ctypes.sizeof(tv))
    if _getsockopt(fd, _SOL_SOCKET, _SO_SNDTIMEO, tv, ctypes.byref(size)) < 0:
        return 0.0
    return tv[0] + tv[1] / 1e6


class _Job:
    """One emulated send (or a sendmmsg vector) on our copy of the socket, resumable: :meth:`step`
    sends what it can without blocking and says whether it is done."""

    def __init__(self, sock: int, msgs: list[tuple[bytes, bytes, bytes]], flags: int, stype: int, vector: bool,
                 fds: list[int]) -> None:
        self.sock, self.msgs, self.vector, self.fds = sock, msgs, vector, fds
        self.stream = stype in (_SOCK_STREAM, _SOCK_SEQPACKET)
        self.flags = flags
        self.send_flags = (flags | _MSG_DONTWAIT | _MSG_NOSIGNAL) & 0xFFFFFFFF
        self.blocking = not flags & _MSG_DONTWAIT and os.get_blocking(sock)
        self.i = self.off = 0
        self.lens: list[int] = []
        self.sigpipe = False

    def step(self) -> int | None:
        """None if it would block (a blocking send: wait for POLLOUT, then step again); else the
        call's result: bytes sent (messages sent for a vector), or -errno."""
        while self.i < len(self.msgs):
            name, data, control = self.msgs[self.i]
            n = _send_raw(self.sock, name, data[self.off:], control if self.off == 0 else b"", self.send_flags)
            if n >= 0:
                self.off += n
                if self.stream and self.off < len(data) and self.blocking:
                    continue  # a blocking stream send sends everything (or blocks)
                self._next()
                if not self.vector:
                    break
                continue
            err = -n
            if err in (E.EAGAIN, E.EWOULDBLOCK) and self.blocking:
                return None
            if self.off:  # a stream message sent in part: the part is the result
                self._next()
                break
            if self.vector and self.i:
                break  # the messages sent so far are the result (as the kernel answers)
            if err == E.EPIPE and self.stream and not self.flags & _MSG_NOSIGNAL:
                self.sigpipe = True
            return -err
        return self.result()

    def _next(self) -> None:
        self.lens.append(self.off)
        self.i += 1
        self.off = 0

    def result(self) -> int:
        if self.off:
            self._next()
        if self.vector:
            return len(self.lens)
        return self.lens[0] if self.lens else (-E.EAGAIN if self.msgs else -E.ESRCH)

    def close(self) -> None:
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self.fds = []


class SendMediation:
    """The send handlers of a :class:`~sysgate.jail.mediation.Mediation` (which judges addresses)."""

    def __init__(self, setup: Any) -> None:
        self.setup = setup

    # -- the handlers ----------------------------------------------------------------------------
    def sendto(self, call: Any) -> Any:
        a = call.args
        return self._run(call, lambda: self._sendto(call, _fd(a[0]), a[1], a[2], a[3], a[4], a[5] & 0xFFFFFFFF,
                                                    _compat(call)))

    def sendmsg(self, call: Any) -> Any:
        a = call.args
        return self._run(call, lambda: self._sendmsg(call, _fd(a[0]), a[1], a[2], _compat(call)))

    def sendmmsg(self, call: Any) -> Any:
        a = call.args
        return self._run(call, lambda: self._sendmmsg(call, _fd(a[0]), a[1], a[2] & 0xFFFFFFFF, a[3], _compat(call)))

    def socketcall(self, call: Any) -> Any:
        """x86 ``socketcall(SYS_SENDTO|SYS_SENDMSG|SYS_SENDMMSG, args)``: the 32-bit ABI."""
        which = call.args[0]
        count = {_SYS_SENDTO: 6, _SYS_SENDMSG: 3, _SYS_SENDMMSG: 4}[which]

        def prepare() -> tuple[_Job, Any]:
            try:
                raw = call.read(call.args[1], 4 * count)
            except OSError:
                raise _Refused(E.EFAULT) from None
            w = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 4 * count, 4)]
            if which == _SYS_SENDTO:
                return self._sendto(call, _fd(w[0]), w[1], w[2], w[3], w[4], w[5], True)
            if which == _SYS_SENDMSG:
                return self._sendmsg(call, _fd(w[0]), w[1], w[2], True)
            return self._sendmmsg(call, _fd(w[0]), w[1], w[2], w[3], True)
        return self._run(call, prepare)

    # -- reading and judging (on the serving thread) -----------------------------------------------
    def _socket(self, call: Any, fd: int) -> tuple[int, int, int]:
        """Our own duplicate of the target's socket (closed by the job), its family and type."""
        from ..notify import pidfd_getfd

        if fd < 0:
            raise _Refused(E.EBADF)
        try:
            sock = pidfd_getfd(call.pidfd(), fd)
        except OSError as e:
            raise _Refused(E.EBADF if e.errno in (E.EBADF, E.ENOENT) else (e.errno or E.EPERM)) from None
        try:
            return sock, _sockopt_int(sock, _SO_DOMAIN), _sockopt_int(sock, _SO_TYPE)
        except BaseException:
            os.close(sock)
            raise

    def _judge(self, call: Any, name: bytes, fam: int) -> bytes:
        refused, target = self.setup.judge_address(call, name, fam, "send mediation")
        if refused is not None:
            raise _Refused(refused.errno)
        return target

    def _data(self, call: Any, addr: int, size: int, stype: int) -> bytes:
        if size > _MAX_DATA:
            if stype != _SOCK_STREAM:
                raise _Refused(E.EMSGSIZE)
            size = _MAX_DATA  # a short send, as a stream socket may answer
        try:
            return call.read(addr, size) if size else b""
        except OSError:
            raise _Refused(E.EFAULT) from None

    def _sendto(self, call: Any, fd: int, buf: int, size: int, flags: int, addr: int, alen: int,
                compat: bool) -> tuple[_Job, Any]:
        if alen >= 1 << 31 or (addr and alen > 128):
            raise _Refused(E.EINVAL)
        try:
            name = call.read(addr, alen) if addr and alen else b""
        except OSError:
            raise _Refused(E.EFAULT) from None
        sock, fam, stype = self._socket(call, fd)
        try:
            data = self._data(call, buf, size if not compat else size & 0xFFFFFFFF, stype)
            target = self._judge(call, name, fam) if name else b""
        except BaseException:
            os.close(sock)
            raise
        return _Job(sock, [(target, data, b"")], flags & 0xFFFFFFFF, stype, False, [sock]), None

    def _message(self, call: Any, addr: int, compat: bool, fam: int, stype: int,
                 fds: list[int]) -> tuple[bytes, bytes, bytes]:
        """(address, data, control) of the ``struct msghdr`` at ``addr``, read once and judged."""
        try:
            raw = call.read(addr, 28 if compat else 56)
        except OSError:
            raise _Refused(E.EFAULT) from None
        if compat:
            nptr, nlen, iptr, ilen, cptr, clen = (int.from_bytes(raw[i:i + 4], "little") for i in range(0, 24, 4))
        else:
            bo = sys.byteorder
            nptr, nlen = int.from_bytes(raw[0:8], bo), int.from_bytes(raw[8:12], bo)
            iptr, ilen, cptr, clen = (int.from_bytes(raw[i:i + 8], bo) for i in (16, 24, 32, 40))
        if nlen >= 1 << 31:
            raise _Refused(E.EINVAL)
        if ilen > _UIO_MAXIOV:
            raise _Refused(E.EMSGSIZE)
        try:
            name = call.read(nptr, min(nlen, 128)) if nptr and nlen else b""
            step = 8 if compat else 16
            vec = call.read(iptr, ilen * step) if ilen else b""
        except OSError:
            raise _Refused(E.EFAULT) from None
        parts, total = [], 0
        for i in range(ilen):
            e = vec[i * step:(i + 1) * step]
            half = step // 2
            base, size = int.from_bytes(e[:half], "little" if compat else sys.byteorder), \
                int.from_bytes(e[half:], "little" if compat else sys.byteorder)
            if size >= 1 << 63 or total + size > _MAX_DATA:
                if stype != _SOCK_STREAM:
                    raise _Refused(E.EMSGSIZE)
                size = max(0, _MAX_DATA - total)
            if size:
                parts.append(self._data(call, base, size, stype))
                total += size
        control = self._control(call, cptr, clen, compat, fam, fds) if cptr and clen else b""
        target = self._judge(call, name, fam) if name else b""
        return target, b"".join(parts), control

    def _control(self, call: Any, addr: int, size: int, compat: bool, fam: int, fds: list[int]) -> bytes:
        """The control messages re-encoded for us: SCM_RIGHTS fds replaced by our copies."""
        from ..notify import pidfd_getfd

        if size > _MAX_CONTROL:
            raise _Refused(E.ENOBUFS)
        try:
            raw = call.read(addr, size)
        except OSError:
            raise _Refused(E.EFAULT) from None
        bo: Literal["little", "big"] = "little" if compat else sys.byteorder
        hdr, align = (12, 4) if compat else (16, 8)
        out = bytearray()
        off = 0
        while off + hdr <= size:
            clen = int.from_bytes(raw[off:off + hdr - 8], bo)
            level = int.from_bytes(raw[off + hdr - 8:off + hdr - 4], bo, signed=True)
            ctype = int.from_bytes(raw[off + hdr - 4:off + hdr], bo, signed=True)
            if clen < hdr or off + clen > size:
                raise _Refused(E.EINVAL)
            data = raw[off + hdr:off + clen]
            off += (clen + align - 1) & ~(align - 1)
            if fam == _AF_UNIX:
                if level != _SOL_SOCKET:
                    continue  # the kernel skips them on unix sockets
                if ctype != _SCM_RIGHTS:  # SCM_CREDENTIALS would be judged against our identity
                    self._refuse(call, E.EPERM, f"control message SOL_SOCKET/{ctype}")
                theirs = [int.from_bytes(data[i:i + 4], bo, signed=True) for i in range(0, len(data) - 3, 4)]
                mine = []
                for t in theirs:
                    try:
                        mine.append(pidfd_getfd(call.pidfd(), t) if t >= 0 else -1)
                    except OSError:
                        mine.append(-1)
                    if mine[-1] < 0:
                        raise _Refused(E.EBADF)
                    fds.append(mine[-1])
                data = b"".join(m.to_bytes(4, sys.byteorder, signed=True) for m in mine)
            elif (level, ctype) not in _FREE_CMSGS:
                self._refuse(call, E.EPERM, f"control message {level}/{ctype}")
            out += (16 + len(data)).to_bytes(8, sys.byteorder) + level.to_bytes(4, sys.byteorder, signed=True) \
                + ctype.to_bytes(4, sys.byteorder, signed=True) + data + bytes(-len(data) % 8)
        return bytes(out)

    def _refuse(self, call: Any, errno: int, detail: str) -> None:
        """Refused whatever --ask would answer (the supervisor's identity is not lendable); logged."""
        self.setup._emit({"event": "denied", "syscall": call.name, "arch": call.arch.name if call.arch else None,
                          "nr": call.nr, "args": [hex(a) for a in call.args], "pid": call.pid,
                          "errno": E.errorcode.get(errno, errno), "by": "send mediation", "detail": detail,
                          "call": f"{call.describe(decode=True)} {detail}"})
        raise _Refused(errno)

    def _sendmsg(self, call: Any, fd: int, addr: int, flags: int, compat: bool) -> tuple[_Job, Any]:
        if not addr:
            raise _Refused(E.EFAULT)
        sock, fam, stype = self._socket(call, fd)
        fds = [sock]
        try:
            msg = self._message(call, addr, compat, fam, stype, fds)
        except BaseException:
            _close(fds)
            raise
        return _Job(sock, [msg], flags & 0xFFFFFFFF, stype, False, fds), None

    def _sendmmsg(self, call: Any, fd: int, vec: int, vlen: int, flags: int, compat: bool) -> tuple[_Job, Any]:
        vlen = min(vlen, _UIO_MAXIOV)  # as the kernel does
        sock, fam, stype = self._socket(call, fd)
        fds = [sock]
        try:
            stride = 32 if compat else 64
            msgs = [self._message(call, vec + i * stride, compat, fam, stype, fds) for i in range(vlen)]
            # msg_len is written back into the target's vector: through /proc/PID/mem, opened now
            # (while the call is known valid: the fd stays the target's even if the pid is reused)
            mem = os.open(f"/proc/{call.pid}/mem", os.O_RDWR | os.O_CLOEXEC) if vlen else -1
            call.check()
        except BaseException:
            _close(fds)
            raise
        if mem >= 0:
            fds.append(mem)
        return _Job(sock, msgs, flags & 0xFFFFFFFF, stype, True, fds), (mem, vec, stride, 28 if compat else 56)

    # -- sending -------------------------------------------------------------------------------------
    def _run(self, call: Any, prepare: Any) -> Any:
        from ..notify import LATER, Fail, Return

        try:
            job, back = prepare()
        except _Refused as refused:
            return Fail(refused.errno)
        if os.geteuid() == 0:
            # a root supervisor: the whole send from a thread that took the command's ids and
            # holds no capability (see _take_ids)
            self._thread(call, job, back, True)
            return LATER
        try:
            r = job.step()
            if r is None:
                self._thread(call, job, back, False)
                job = None
                return LATER
            self._finish(call, job, back, r)
        finally:
            if job is not None:
                job.close()
        return Return(r) if r >= 0 else Fail(-r)

    def _finish(self, call: Any, job: _Job, back: Any, r: int) -> None:
        if back is not None and r > 0:  # sendmmsg: each sent message's msg_len
            mem, vec, stride, at = back
            for i, n in enumerate(job.lens[:r]):
                try:
                    os.pwrite(mem, n.to_bytes(4, "little" if stride == 32 else sys.byteorder), vec + i * stride + at)
                except OSError:
                    break
        if job.sigpipe:  # the kernel signals the thread that hit a broken stream without MSG_NOSIGNAL
            try:
                tgid = _tgid(call.pid)
                from ..kernel.syscall import nr, syscall

                syscall(nr("tgkill"), tgid, call.pid, 13)
            except OSError:
                pass

    def _thread(self, call: Any, job: _Job, back: Any, as_target: bool) -> None:
        """Finish ``job`` on a thread of its own, which answers the notification."""
        import _thread

        from ..kernel.notify import id_valid

        sup, cid = call._sup, call.id
        # the fds opened while judging (the judged socket's O_PATH fd that the address names, the
        # pidfd) must outlive the handler: the job closes them
        job.fds += call._fds
        call._fds = []
        ids = _ids_of(call.pid) if as_target else None
        if ids is not None and (ids[0] < 0 or ids[1] < 0):  # never send as root for want of the ids
            ids = None
            job.msgs = []
            job.lens = []
        pid = call.pid

        class _Done:  # what _finish needs of a call once the handler has returned
            pass
        done = _Done()
        done.pid = pid  # type: ignore[attr-defined]

        def body() -> None:
            import select
            import time

            answered = False
            try:
                if ids is not None:
                    _take_ids(*ids)
                r = job.step()
                if r is None:
                    limit = _send_timeout(job.sock)
                    deadline = time.monotonic() + limit if limit else None
                    p = select.poll()
                    p.register(job.sock, select.POLLOUT)
                    pause = 0.0
                    while r is None:
                        if pause:
                            time.sleep(pause)
                        ready = p.poll(50)
                        if not id_valid(sup.listener, cid):
                            return  # interrupted or gone: the kernel withdrew the call
                        before = (job.i, job.off)
                        r = job.step()
                        # an unconnected datagram socket polls writable even while the receiver's
                        # queue is full (EAGAIN): back off then, instead of spinning
                        stuck = r is None and ready and (job.i, job.off) == before
                        pause = min(max(pause * 2, 0.001), 0.05) if stuck else 0.0
                        if r is None and deadline is not None and time.monotonic() >= deadline:
                            r = job.result() if job.lens or job.off else -E.EAGAIN
                self._finish(done, job, back, r)
                answered = sup.respond(cid, max(r, 0), max(-r, 0)) or True
            except BaseException:  # noqa: BLE001, S110 - never leave the target waiting: answered below
                pass
            finally:
                job.close()
                if not answered:
                    try:
                        sup.respond(cid, 0, E.EPERM)
                    except OSError:
                        pass
        _thread.start_new_thread(body, ())


def _fd(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _compat(call: Any) -> bool:
    """Whether the call's structures have the 32-bit layout (x86, arm, and x32's sendmsg family)."""
    a = call.arch
    return a is not None and (a.bits == 32 or a.name == "x32")


def _close(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _status(pid: int, key: bytes) -> list[bytes]:
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(key):
                return line.split()[1:]
    raise OSError(E.ESRCH, f"no {key!r} in /proc/{pid}/status")


def _tgid(pid: int) -> int:
    return int(_status(pid, b"Tgid:")[0])


def _ids_of(pid: int) -> tuple[int, int, list[int]]:
    from .mediation import _ids

    return _ids(pid)


def _take_ids(uid: int, gid: int, groups: list[int]) -> None:
    """The command's host ids and no capability, for this thread only (raw syscalls, not the libc
    wrappers that change every thread).

    A send checks capabilities of the task that sends: SO_MARK/SO_PRIORITY control messages,
    netlink multicast (``NL_CFG_F_NONROOT_SEND``) and others ask for CAP_NET_ADMIN or CAP_NET_RAW
    of the *sender*, the supervisor, not of the socket's opener. The command's own capabilities
    are those of its user namespace and cannot be taken by a thread of ours (setns into a user
    namespace needs a single-threaded process), so the thread holds none: a send the command's
    capabilities would allow may be refused, one they would refuse never goes out."""
    from ..kernel.syscall import nr, syscall

    arr = (ctypes.c_uint32 * max(1, len(groups)))(*groups)
    syscall(nr("setgroups"), len(groups), arr)
    syscall(nr("setresgid"), gid, gid, gid)
    syscall(nr("setresuid"), uid, uid, uid)  # a non-zero uid clears the capabilities too
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable, twice: all empty
    syscall(nr("capset"), header, data)
