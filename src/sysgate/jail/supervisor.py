"""The sandbox's syscall supervisor: connect mediation, ``--allow-path``, ``--log-denials``, ``--ask``.

Layout (see docs/jail.md, "Supervision")::

    sysgate (caller) ── supervisor thread ◄── listener fd ── SCM_RIGHTS ── command (before execve)

Before the launch the caller builds a *listener filter* (USER_NOTIF for ``connect``, ``socketcall``
and, with ``--allow-path``, ``open``/``openat``/``openat2``, on every ABI of the machine) and a
socketpair. The command's process, right before ``execve``, installs that filter with
``SECCOMP_FILTER_FLAG_NEW_LISTENER``, sends the listener fd out over the socketpair and closes
it (it also is close-on-exec), then loads the profile as before: nothing inside ever holds it.
The stacked filters are judged together, strictest first, and USER_NOTIF ranks below ERRNO and
the kills, so the profile's denials still win; only calls the profile allows reach the
supervisor. The supervisor runs on a thread of the sysgate process and *emulates* every call
whose decision needs pointer contents (no CONTINUE after looking at memory):

- ``connect``: the address is read once; the target's socket is taken with pidfd_getfd and
  connected by the supervisor. A pathname unix socket is resolved in the sandbox's root
  (openat2 RESOLVE_IN_ROOT|RESOLVE_NO_MAGICLINKS from ``/proc/PID/root``) to an O_PATH fd and
  connected through ``/proc/self/fd/N`` (so the 108-byte ``sun_path`` limit never bites); it is
  refused with EACCES unless it is the very inode an ``--allow-socket`` named. Abstract sockets
  are the sandbox network namespace's own, so allowed, except with the host's network
  (``--net host``): then only ``--allow-socket @NAME``. Inet addresses are free unless
  ``--allow-connect`` lists some. x86 ``socketcall(SYS_CONNECT)`` (``int 0x80``) is emulated
  the same way.
- ``open``/``openat``/``openat2`` with ``--allow-path PATH[:ro|rw]``: the path is resolved in the
  sandbox's root first with O_PATH (no side effect), judged on the canonical path of what it
  found, then that very inode is reopened (or, for a new file, created in the directory that
  was judged, without following links) with the target's fs uid/gid, and the fd injected with
  ADDFD. Anything else: EACCES.
- ``--log-denials``: the profile is loaded with its ERRNO actions turned into USER_NOTIF (kills
  and traps stay with the kernel, they rank above); the listener filter carries the same
  program, so those calls reach the supervisor, which runs the *original* program in the
  emulator on the same ``seccomp_data`` (values only), answers its errno and reports the call.

If the supervisor dies the kernel fails every notified call with ENOSYS: closed, never open.
"""
from __future__ import annotations

import errno as E
import os
import sys

from .._startup import ctypes
from ..kernel import syscall as N
from .options import JailConfigError, PerOptions
from .result import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NotifySetup", "parse_allow_connect", "parse_allow_path", "prepare"]

_NEW_LISTENER = 8
_WAIT_KILLABLE_RECV = 32
_AF_UNIX = 1
_AF_INET = 2
_AF_INET6 = 10
_SYS_CONNECT = 3  # socketcall's call number for connect
_SYS_SENDS = (11, 16, 20)  # socketcall's SYS_SENDTO, SYS_SENDMSG, SYS_SENDMMSG
_DENY = E.EACCES  # what a refused connect/open gets (see docs/jail.md)
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_IN_ROOT = 0x10


def parse_allow_path(text: str) -> tuple[str, bool]:
    """``PATH[:ro|rw]`` -> (absolute normalized path, writable); read-only by default."""
    path, mode = text, "ro"
    if text.endswith((":ro", ":rw")):
        path, mode = text[:-3], text[-2:]
    if not path.startswith("/") or "\0" in path:
        raise JailConfigError(f"--allow-path {text!r}: PATH must be absolute (PATH[:ro|rw])")
    return os.path.normpath(path) if path != "/" else "/", mode == "rw"


def parse_allow_connect(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[V6]:PORT`` for IPv6; port 0 or ``*`` for any) -> (host, port)."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host:
        raise JailConfigError(f"--allow-connect {text!r}: expected HOST:PORT")
    try:
        p = 0 if port == "*" else int(port)
    except ValueError:
        raise JailConfigError(f"--allow-connect {text!r}: port {port!r} is not a number") from None
    if not 0 <= p <= 65535:
        raise JailConfigError(f"--allow-connect {text!r}: port out of range")
    return host, p


def _wanted(opts: Any) -> bool:
    return bool(opts.mediate or opts.allow_paths or opts.allow_connect or opts.allow_sockets or opts.log_denials
                or opts.ask)


class _Workers:
    """Supervisor threads kept between sandboxes. A thread started per sandbox costs its creation
    and, worse, its start-up takes the GIL in the middle of the launch (measured: 0.1-0.2 ms of
    start-to-exit); a parked worker sleeps on a lock, without the GIL, until its sandbox's ``go``."""

    MAX_IDLE = 8

    def __init__(self) -> None:
        import _thread

        self._thread = _thread
        self._lock = _thread.allocate_lock()
        self._idle: list[list] = []  # per idle worker: [its wake lock, the job it is to run]
        os.register_at_fork(after_in_child=self._forget)  # a forked child has none of our threads

    def _forget(self) -> None:
        self._lock = self._thread.allocate_lock()
        self._idle = []

    def take(self, job: Any) -> Any:
        """A worker that runs ``job`` once the returned (held) lock is released."""
        with self._lock:
            w = self._idle.pop() if self._idle else None
        if w is None:
            from .runner import start_thread

            w = [self._thread.allocate_lock(), None]
            w[0].acquire()
            w[1] = job
            start_thread(self._loop, w)  # parked before the launch, not starting in the middle of it
        else:
            w[1] = job
        return w[0]

    def _loop(self, w: list) -> None:
        while True:
            w[0].acquire()  # parked, till the job's go
            job, w[1] = w[1], None
            try:
                job()
            except BaseException:  # noqa: BLE001, S110 - a job reports its own failures (NotifySetup.failure)
                pass
            t = sys.modules.get("threading")
            if t is not None and t.main_thread().ident == self._thread.get_ident():
                # threading was first imported on this thread, so it takes it for the main thread
                # and waits for it to end when the interpreter exits: end it now
                return
            lock = self._thread.allocate_lock()  # a new lock for every job: a late go of the last one
            lock.acquire()  # cannot start the next early
            w[0] = lock
            with self._lock:
                if len(self._idle) >= self.MAX_IDLE:
                    return
                self._idle.append(w)


_workers = _Workers()
_kwrite = N.libc_gil["write"]  # write(2) keeping the GIL (a function object of its own)
_kwrite.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t]
# Per Options object: (the profile's program, NotifySetup._derive's attributes). A warm caller's
# runs with the same options skip building the filters and parsing the allow lists again.
_SETUPS = PerOptions()


class NotifySetup:
    """What the launch needs: the listener filter, the socketpair, and the supervisor thread."""

    def __init__(self, opts: Any, program: Any) -> None:
        _socket_mod()  # looked up here, so the forked child imports nothing

        hit = _SETUPS.get(opts)
        if hit is not None and hit[0] is program:
            self.__dict__.update(hit[1])  # what follows from opts and program alone, as made below
        else:
            self._derive(opts, program)
            if not opts.ask:  # --ask opens the terminal per run
                _SETUPS.put(opts, (program, dict(self.__dict__)))  # holds program too: its id stays its own
        pr, ch = _socketpair()
        self.parent_end, self.child_end = pr, ch
        self.sup: Any = None
        self.started = False  # handed to a supervisor thread (see _Workers)
        self._stop_r = self._stop_w = -1
        self.events: list[dict] = []
        self.failure: BaseException | None = None
        self._connect_addrs: set[tuple[str, int]] | None = None
        self._tty: Any = None
        #: the sandbox's terminal.Relay, if any (set by the sandbox): paused while --ask prompts
        self.relay: Any = None
        self._asked: dict[str, bool] = {}
        if opts.ask:
            try:
                self._tty = open("/dev/tty", "r+b", buffering=0)
            except OSError:
                raise JailConfigError("--ask needs a terminal (/dev/tty cannot be opened)") from None

    def _derive(self, opts: Any, program: Any) -> None:
        """The attributes that follow from the options and the program alone (remembered per
        Options object, see _SETUPS): the filters, the parsed allow lists. Nothing here changes
        once made: the supervisor thread sets ``arches`` on its own setup, never on these."""
        self.opts = opts
        self.log = bool(opts.log_denials or opts.ask)
        self.original = program  # the profile as compiled (FilterProgram) or None
        calls: list[str] = list(_MEDIATED)
        if opts.allow_paths:
            calls += ["open", "openat", "openat2", "creat"]
        self.calls = tuple(calls)
        self.rewritten: list | None = None
        self.arches: tuple | None = None  # the native companions (resolved by the supervisor thread)
        default = _default_listener() if not self.log and not opts.allow_paths else None
        if default is not None:
            # the default: built once per process from a few known numbers, importing neither the
            # arch tables nor bpf (read-only: every run hands the same program to the kernel)
            self.listener = default
            self.profile = program
        else:
            self._build(program, opts)
        self.flags = _listener_flags()
        self.seal = _seal_program()
        self.after_profile = self.log  # see handoff()
        #: whether init itself may install the listener filter and spawn the command (the fast path):
        #: only connect/socketcall are notified, which init never calls
        self.init_may_load = not self.log and not opts.allow_paths
        self.allowed_socket_paths = tuple(os.path.normpath(p) if not p.startswith("@") else p
                                          for p in opts.allow_sockets)
        self.allow_connect = tuple(parse_allow_connect(t) for t in opts.allow_connect)
        self.allow_paths = tuple(sorted((parse_allow_path(t) for t in opts.allow_paths), key=lambda x: -len(x[0])))

    def _build(self, program: Any, opts: Any) -> None:
        from ..bpf import insn as I
        from ..notify import companion_arches, notify_program
        from .filters import FilterProgram

        self.arches = companion_arches()
        tail = None
        if self.log:
            if program is None:
                raise JailConfigError("--log-denials/--ask: there is no seccomp profile whose denials to report")
            insns = I.decode(program.data, sys.byteorder)
            new = []
            for ins in insns:
                if I.bpf_class(ins.code) == I.RET and I.bpf_rval(ins.code) != I.K:
                    raise JailConfigError("--log-denials: the profile returns a computed action (RET A), which "
                                          "cannot be rewritten")
                if I.bpf_class(ins.code) == I.RET and I.ret_action(ins.k) == I.RET_ERRNO:
                    ins = I.stmt(I.RET | I.K, I.RET_USER_NOTIF)
                new.append(ins)
            self.rewritten = new
            self.original_insns = insns
            tail = new
            self._check_handoff(new)
        listener_prog = notify_program(self.calls, arches=self.arches, if_nonzero=_IF_ADDRESS, unless=_UNLESS)
        if tail is not None:
            # prefix: mediated calls notify; everything else falls to the rewritten profile
            listener_prog = _relocate(tail, len(listener_prog) - 1, listener_prog)
        self.listener = FilterProgram(I.encode(listener_prog, sys.byteorder), False, "")
        if self.rewritten is not None:
            self.profile = FilterProgram(I.encode(self.rewritten, sys.byteorder), False, "")
        else:
            self.profile = program

    def _check_handoff(self, rewritten: list) -> None:
        """In log mode the listener filter is installed after the (rewritten) profile and the
        listener is sent with sendmsg: both must be allowed by the profile, or the command would
        wait for a supervisor that has no listener yet."""
        from ..arch import native
        from ..bpf import insn as I
        from ..bpf.emulator import emulate

        a = native()
        for name in ("seccomp", "sendmsg", "close"):
            if a.has(name) and I.ret_action(emulate(rewritten, a, a.nr(name), ()).ret) != I.RET_ALLOW:
                raise JailConfigError(f"--log-denials/--ask: the profile denies {name}, which hands the listener to "
                                      "the supervisor; allow it (--allow {name})")

    # -- in the command's process, right before execve (imports nothing, starts nothing) ----------
    def handoff(self) -> None:
        _socket = _socket_mod()
        fd = N.check(N.sysc("seccomp", N.c_long(1), N.c_long(self.flags), ctypes.byref(self.listener.fprog)),
                     "install the supervisor's filter")
        s = _socket.socket(_AF_UNIX, _socket.SOCK_STREAM, 0, self.child_end)
        try:  # the one sendmsg the listener filter lets through (see _HANDOFF_FLAGS)
            s.sendmsg([b"L"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fd.to_bytes(4, sys.byteorder))],
                      _HANDOFF_FLAGS)
        finally:
            s.detach()
        N.check(N.sysc("seccomp", N.c_long(1), N.c_long(0), ctypes.byref(self.seal.fprog)),
                "seal the supervisor's hand-off")
        os.close(fd)
        os.close(self.child_end)

    # -- in the caller -----------------------------------------------------------------------------
    def start(self, deferred: bool = False) -> None:
        """Hand this sandbox to a supervisor thread. ``deferred`` (the vfork launcher's fast path,
        whose init shares our memory): the thread sleeps until :meth:`go` instead of waking when the
        listener arrives, which is in the middle of the launch, and taking the GIL from init between
        the hand-off and the spawn (measured: about 0.5 ms of start-to-exit on a loaded machine)."""
        import _thread  # not threading: it costs milliseconds on the CLI's start-up path

        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._stopping = False
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC)
        self._go = _workers.take(self._run)
        self.started = True
        if not deferred:
            self.go()

    def go(self) -> None:
        """Let a deferred supervisor thread receive the listener: called by init once the command
        is spawned (a futex wake, which init's filter allows: see filters.supervisor_safe), and by
        the caller if the launch went another way; a command that connects before then waits."""
        lock = getattr(self, "_go", None)
        if lock is not None and lock.locked():
            try:
                lock.release()
            except RuntimeError:  # released already (by the other side)
                pass

    @property
    def over_fd(self) -> int:
        """The fd a vfork-launched init keeps for :meth:`over` (-1 before :meth:`start`)."""
        return self._stop_w

    def over(self) -> None:
        """Called by a vfork-launched init once the command has been reaped: the supervisor thread
        may end now, while init ends PID 1. Otherwise it wakes at the listener's hang-up, which
        comes with init's exit, right as the caller resumes, and takes the GIL from it then
        (measured: about 0.1 ms of start-to-exit). Nothing of ours is left to serve: the filters
        are on the command's processes and init, which calls none of the mediated syscalls; what
        the command left running dies with PID 1, and a call it makes meanwhile gets ENOSYS once
        the thread has closed the listener (fail closed). A call already notified is still
        served: the thread only ends when the listener has nothing to read."""
        _kwrite(self._stop_w, b"o", 1)  # keeps the GIL: the thread is to take it while init waits for PID 1

    def _join(self, timeout: float) -> bool:
        if self._done.acquire(True, timeout):
            self._done.release()
            return True
        return False

    def _run(self) -> None:
        try:
            self._serve()
        finally:
            self._done.release()

    def _serve(self) -> None:
        _socket = _socket_mod()
        listener = -1
        try:
            s = _socket.socket(_AF_UNIX, _socket.SOCK_STREAM, 0, self.parent_end)
            try:
                _, anc, _, _ = s.recvmsg(1, _socket.CMSG_SPACE(4))
            finally:
                s.detach()
            fds = [int.from_bytes(d[:4], sys.byteorder) for lvl, typ, d in anc
                   if lvl == _socket.SOL_SOCKET and typ == _socket.SCM_RIGHTS]
            if not fds:
                return  # the command never got as far as installing the filter
            listener = fds[0]
            # most commands never connect: import the supervisor only when one does
            if not _wait_readable(listener, self._stop_r):
                return
            from ..notify import Supervisor, companion_arches

            self.arches = self.arches or companion_arches()
            from .send_mediation import SendMediation

            sends = SendMediation(self)
            handlers: dict[Any, Any] = {"connect": self._connect, "socketcall": self._socketcall,
                                        "sendto": sends.sendto, "sendmsg": sends.sendmsg, "sendmmsg": sends.sendmmsg}
            self._sends = sends
            if self.opts.allow_paths:
                handlers.update(open=self._open, openat=self._openat, openat2=self._openat2, creat=self._creat)
            if self.log:  # every notification is first judged by the profile: mediated calls included
                handlers = {k: self._judged(h) for k, h in handlers.items()}
            self.sup = Supervisor(listener, handlers, self._profile_decision if self.log else None,
                                  arches=self.arches, on_error=self._on_error)
            listener = -1  # the Supervisor owns it now
            if self._stopping:
                return
            self.sup.serve()
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.failure = e
        finally:
            # Fail closed right away: with the listener closed the kernel answers ENOSYS to every
            # notified call, so a supervisor that stopped never leaves the sandbox waiting.
            if listener >= 0:
                os.close(listener)
            if self.sup is not None:
                self.sup.close()

    def finish(self) -> list[dict]:
        """After the sandbox ended: wait for the supervisor, close everything, return its events."""
        # (the caller's child end is one of the sandbox's to_close fds, closed before this)
        self.go()  # init may have failed before the spawn: the thread then finds the listener or EOF
        if self.started and not self._join(10):
            self._stopping = True  # something outside the PID namespace still uses the filter
            os.write(self._stop_w, b"x")
            if self.sup is not None:
                self.sup.stop()
            self._join(5)
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._stop_r = self._stop_w = -1
        try:
            os.close(self.parent_end)
        except OSError:
            pass
        if self._tty is not None:
            self._tty.close()
        if self.failure is not None:
            self._emit({"event": "supervisor-failed", "error": str(self.failure)}, force=True)
        return self.events

    # -- reporting ------------------------------------------------------------------------------
    def _emit(self, ev: dict, force: bool = False) -> None:
        self.events.append(ev)
        if self.opts.log_denials or force:
            if ev.get("event") == "denied":
                line = f"sysgate: denied: {ev['call']} -> {ev['errno']} ({ev['by']})"
            else:
                line = f"sysgate: supervisor: {ev}"
            try:
                os.write(2, (line + "\n").encode(errors="replace"))
            except OSError:
                pass

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

    def _on_error(self, call: Any, exc: BaseException) -> None:
        self._emit({"event": "handler-error", "call": call.describe(), "error": f"{type(exc).__name__}: {exc}",
                    "errno": "EPERM"}, force=True)

    def _ask(self, call: Any, by: str, detail: str) -> bool:
        key = call.name or str(call.nr)
        if key in self._asked:
            return self._asked[key]
        relay = self.relay
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

    def _profile_decision(self, call: Any) -> Any:
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
                return self._profile_decision(call)
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
        fam = int.from_bytes(raw[:2], sys.byteorder) if len(raw) >= 2 else -1
        refused, target = self.judge_address(call, raw, fam, "connect mediation")
        if refused is not None:
            return refused
        ret = _connect_as(call.pid, sock, target)
        if ret < 0:
            return Fail(-ret)
        return Return(0)

    def judge_address(self, call: Any, raw: bytes, fam: int, by: str) -> tuple[Any, bytes]:
        """Judge the address bytes ``raw`` (read once) for a socket of family ``fam``: (None, the
        address to use in the supervisor) or (the refusal, b""). A pathname unix address is
        resolved in the target's root with its fs ids and replaced by ``/proc/self/fd/N`` of the
        judged inode's O_PATH fd (kept open in ``call``'s fds until the call is answered)."""
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
                # with the target's fs ids: a root supervisor must not walk, for the target,
                # directories the target may not search (nor tell it what is in them)
                with _Creds(call.pid):
                    opath = self._resolve(call, path, os.O_PATH)
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
        if fam in (_AF_INET, _AF_INET6) and self.allow_connect and len(raw) >= 2 \
                and int.from_bytes(raw[:2], sys.byteorder) == fam:
            host, port = _inet(raw, fam)
            if not self._inet_allowed(host, port):
                r = self._denied(call, _DENY, by, f"{host}:{port}")
                if r is not None:
                    return r, b""
        return None, raw

    def _socket_allowed(self, call: Any, st: os.stat_result) -> bool:
        for p in self.allowed_socket_paths:
            if p.startswith("@"):
                continue
            try:
                fd = self._resolve(call, os.fsencode(p), os.O_PATH)
                o = os.fstat(fd)
            except OSError:
                continue
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

    def _resolve(self, call: Any, path: bytes, flags: int, dirfd: int = N.AT_FDCWD, mode: int = 0) -> int:
        """openat2 of ``path`` in the target's root (links followed inside it, no magic links)."""
        full = self._absolute(call, path, dirfd)
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
        from ..notify import Fail, InjectFd

        try:
            path = call.read_string(addr)
        except OSError as e:
            return Fail(e.errno if e.errno == E.ENAMETOOLONG else E.EFAULT)
        if not path:
            return Fail(E.ENOENT)
        write = (flags & 3) != os.O_RDONLY or bool(flags & (os.O_CREAT | os.O_TRUNC))
        creds = _Creds(call.pid)
        try:
            with creds:
                try:
                    found = self._resolve(call, path, os.O_PATH | (flags & os.O_NOFOLLOW), dirfd)
                except OSError as e:
                    if e.errno != E.ENOENT or not flags & os.O_CREAT:
                        return Fail(e.errno or E.EACCES)
                    found = -1
                if found >= 0:
                    if flags & os.O_CREAT and flags & os.O_EXCL:
                        return Fail(E.EEXIST)
                    canon = os.readlink(f"/proc/self/fd/{found}")
                    if not self._path_allowed(canon, write):
                        return self._denied(call, _DENY, "--allow-path", canon) or Fail(_DENY)
                    fd = os.open(f"/proc/self/fd/{found}", (flags & ~(os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW))
                                 | os.O_CLOEXEC)
                else:
                    full = self._absolute(call, path, dirfd)
                    parent, _, last = full.rstrip(b"/").rpartition(b"/")
                    if last in (b"", b".", b".."):
                        return Fail(E.EISDIR)
                    pfd = self._resolve(call, parent or b"/", os.O_PATH | os.O_DIRECTORY)
                    canon = os.path.join(os.readlink(f"/proc/self/fd/{pfd}"), os.fsdecode(last))
                    if not self._path_allowed(canon, True):
                        return self._denied(call, _DENY, "--allow-path", canon) or Fail(_DENY)
                    umask = creds.umask
                    fd = os.open(last, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode & ~umask, dir_fd=pfd)
        except OSError as e:
            return Fail(e.errno or E.EACCES)
        return InjectFd(fd, cloexec=bool(flags & os.O_CLOEXEC))

    def _path_allowed(self, canon: str, write: bool) -> bool:
        for p, rw in self.allow_paths:  # longest first: the most specific rule decides
            if canon == p or canon.startswith(p.rstrip("/") + "/"):
                return rw or not write
        return False


def _relocate(tail: list, at: int, prefix: list) -> list:
    """``prefix``'s fall-through return (its last instruction, at index ``at``) replaced by ``tail``:
    the prefix's jumps to that return must now land on the tail's first instruction, which is the
    same index, so nothing moves; only the arch blocks' own ``ret otherwise`` are redirected."""
    from ..bpf import insn as I

    out = []
    for i, ins in enumerate(prefix[:at]):
        if I.bpf_class(ins.code) == I.RET and ins.k == I.RET_ALLOW:
            ins = I.stmt(I.JMP | I.JA, at - i - 1)  # "otherwise" -> the profile
        out.append(ins)
    return out + list(tail)


class _Creds:
    """Run the supervisor thread's file operations with the target's fs uid/gid (setfsuid is per
    thread), so a root supervisor neither bypasses permissions nor creates root-owned files."""

    def __init__(self, pid: int) -> None:
        self.uid = self.gid = -1
        self.umask = 0o022
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    self.uid = int(line.split()[4])
                elif line.startswith(b"Gid:"):
                    self.gid = int(line.split()[4])
                elif line.startswith(b"Umask:"):
                    self.umask = int(line.split()[1], 8)

    def __enter__(self) -> None:
        from ..kernel.syscall import nr, syscall

        self.changed = self.uid >= 0 and (self.uid, self.gid) != (os.geteuid(), os.getegid())
        if self.changed:  # setfsuid(-1) only reports the current value
            self.old_gid = syscall(nr("setfsgid"), -1)
            self.old_uid = syscall(nr("setfsuid"), -1)
            syscall(nr("setfsgid"), self.gid)
            syscall(nr("setfsuid"), self.uid)

    def __exit__(self, *exc: object) -> None:
        if self.changed:
            from ..kernel.syscall import nr, syscall

            syscall(nr("setfsuid"), self.old_uid)
            syscall(nr("setfsgid"), self.old_gid)


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


def _inet(raw: bytes, fam: int) -> tuple[str, int]:
    import socket

    port = int.from_bytes(raw[2:4], "big") if len(raw) >= 4 else 0
    if fam == _AF_INET and len(raw) >= 8:
        return socket.inet_ntop(socket.AF_INET, raw[4:8]), port
    if fam == _AF_INET6 and len(raw) >= 24:
        return socket.inet_ntop(socket.AF_INET6, raw[8:24]), port
    return "?", port


_POLLIN = 1


def _wait_readable(fd: int, stop: int) -> bool:
    """Block until ``fd`` or ``stop`` is ready; whether ``fd`` has input (a notification).

    libc's poll(3) through the jail's ctypes, not :mod:`select`: this runs on every ``sysgate
    run`` (mediation is on by default) and the import would cost start-up time for nothing. The
    GIL is released while it blocks."""
    # struct pollfd[2]: int fd; short events, revents
    buf = ctypes.create_string_buffer(b"".join(f.to_bytes(4, sys.byteorder, signed=True)
                                               + _POLLIN.to_bytes(2, sys.byteorder) + bytes(2)
                                               for f in (fd, stop)), 16)
    poll: Any = N.libc.poll
    while poll(buf, N.c_long(2), N.c_long(-1)) < 0:
        if N.errno_of() != E.EINTR:
            raise OSError(N.errno_of(), "poll the supervisor's listener")
    return bool(int.from_bytes(buf.raw[6:8], sys.byteorder) & _POLLIN)


def _socketpair() -> tuple[int, int]:
    _socket = _socket_mod()
    a, b = _socket.socketpair(_AF_UNIX, _socket.SOCK_STREAM | _socket.SOCK_CLOEXEC)
    return a.detach(), b.detach()


_SOCKET: Any = None


def _socket_mod() -> Any:
    """``sysgate._startup.socket``, looked up once. A ``from .._startup import socket`` statement
    costs ~1.3 us each time (resolving the relative name), three times per run, once of them in
    init in the middle of the launch; _startup itself keeps the module after its first import."""
    global _SOCKET
    if _SOCKET is None:
        from .._startup import socket as _socket

        _SOCKET = _socket
    return _SOCKET


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


def _openat2(dirfd: int, path: bytes, flags: int, mode: int, resolve: int) -> int:
    import ctypes as C

    from ..kernel.syscall import nr, syscall

    how = (C.c_uint64 * 3)(flags, mode if flags & (os.O_CREAT | 0o20000000) else 0, resolve)
    return syscall(nr("openat2"), dirfd, path, how, 24)


# The calls every run mediates, per ABI (audit arch token, numbers notified always, numbers
# notified only when argument 4, the destination address, is not NULL: sendto), for the default
# listener filter; tests check these against the arch tables (sysgate.notify.notify_program with
# if_nonzero=_IF_ADDRESS builds the same). x32's sendmsg/sendmmsg are its compat ones.
_MEDIATED = ("connect", "socketcall", "sendmsg", "sendmmsg")
_IF_ADDRESS = {"sendto": 4}
# The hand-off of the listener is itself a sendmsg, made after the listener filter is installed:
# the filter lets the native sendmsg with exactly these flags through (a value: MSG_NOSIGNAL|
# MSG_DONTWAIT|MSG_TRUNC|MSG_PEEK, a combination no sender uses, the kernel ignores the last two on
# a unix stream socket), and right after the hand-off a second filter (_seal_program) fails every
# sendmsg with these flags with EPERM: ERRNO outranks the listener filter's ALLOW, and filters are
# never removed, so nothing the command runs can use that route.
_HANDOFF_FLAGS = 0x4062
_UNLESS = {"sendmsg": (2, _HANDOFF_FLAGS)}
_CONNECT_NRS = {
    "x86_64": ((0xC000003E, (42, 46, 307, 0x4000002A, 0x40000206, 0x4000021A), (44, 0x4000002C)),
               (0x40000003, (102, 345, 362, 370), (369,))),
    "aarch64": ((0xC00000B7, (203, 211, 269), (206,)), (0x40000028, (283, 296, 374), (290,))),
}
_SENDMSG_NR = {"x86_64": 46, "aarch64": 211}  # the native sendmsg (the first token's), see _HANDOFF_FLAGS


def _machine_key() -> str:
    m = os.uname().machine.lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(m, m)


def _connect_program(table: tuple) -> bytes:
    """USER_NOTIF for the numbers of each arch token (the conditional ones when argument 4 is not
    0), ALLOW otherwise: what notify_program emits, for little-endian machines."""
    ins: list[tuple[int, int, int, int]] = [(0x20, 0, 0, 4)]  # ld [4]: arch
    lo, hi = 16 + 8 * 4, 16 + 8 * 4 + 4
    handoff = _SENDMSG_NR.get(_machine_key())
    for k, (token, nrs, if_addr) in enumerate(table):
        block = [(0x20, 0, 0, 0)]  # ld [0]: nr
        for n in sorted(nrs):
            if k == 0 and n == handoff:  # notify unless flags (arg 2) are exactly _HANDOFF_FLAGS
                block += [(0x15, 0, 6, n), (0x20, 0, 0, 32), (0x15, 0, 3, _HANDOFF_FLAGS), (0x20, 0, 0, 36),
                          (0x15, 0, 1, 0), (0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x7FC00000)]
                continue
            block += [(0x15, 0, 1, n), (0x06, 0, 0, 0x7FC00000)]  # jeq n; ret USER_NOTIF
        for n in sorted(if_addr):  # jeq n; ld lo; jeq 0 (else notify); ld hi; jeq 0 -> allow; notify
            block += [(0x15, 0, 6, n), (0x20, 0, 0, lo), (0x15, 0, 2, 0), (0x20, 0, 0, hi), (0x15, 1, 0, 0),
                      (0x06, 0, 0, 0x7FC00000), (0x06, 0, 0, 0x7FFF0000)]
        block.append((0x06, 0, 0, 0x7FFF0000))
        ins.append((0x15, 0, len(block), token))
        ins += block
    ins.append((0x06, 0, 0, 0x7FFF0000))
    return _encode(ins)


def _encode(ins: list[tuple[int, int, int, int]]) -> bytes:
    """``struct sock_filter``s in this machine's byte order (as ``struct.pack("=HBBI")``, without
    importing struct on the first run's path)."""
    order = sys.byteorder
    return b"".join(code.to_bytes(2, order) + bytes((jt, jf)) + k.to_bytes(4, order) for code, jt, jf, k in ins)


_DEFAULT_LISTENER: Any = None  # FilterProgram, or False where _CONNECT_NRS lacks the machine
_FLAGS = 0  # the listener filter's flags, once probed


def _default_listener() -> Any:
    """The default listener filter (connect/socketcall), built on the first run of the process."""
    global _DEFAULT_LISTENER
    if _DEFAULT_LISTENER is None:
        from .filters import FilterProgram

        table = _CONNECT_NRS.get(_machine_key())
        _DEFAULT_LISTENER = FilterProgram(_connect_program(table), False, "") if table else False
    return _DEFAULT_LISTENER or None


_SEAL: Any = None


def _seal_program() -> Any:
    """The filter loaded right after the hand-off: EPERM for the native sendmsg with flags
    _HANDOFF_FLAGS (the low 32 bits, all the kernel reads of an int), ALLOW for everything else."""
    global _SEAL
    if _SEAL is None:
        from .filters import FilterProgram

        key = _machine_key()
        if key in _CONNECT_NRS:  # without the arch tables on the default path
            token, sendmsg = _CONNECT_NRS[key][0][0], _SENDMSG_NR[key]
        else:
            from ..arch import native

            token, sendmsg = native().token, native().nr("sendmsg")
        lo = 32 if sys.byteorder == "little" else 36
        ins = [(0x20, 0, 0, 4), (0x15, 0, 5, token), (0x20, 0, 0, 0), (0x15, 0, 3, sendmsg),
               (0x20, 0, 0, lo), (0x15, 0, 1, _HANDOFF_FLAGS), (0x06, 0, 0, 0x00050000 | E.EPERM),
               (0x06, 0, 0, 0x7FFF0000)]
        _SEAL = FilterProgram(_encode(ins), False, "")
    return _SEAL


def _listener_flags() -> int:
    """NEW_LISTENER, plus WAIT_KILLABLE_RECV where the kernel knows it (probed once per process)."""
    global _FLAGS
    if not _FLAGS:
        _FLAGS = _NEW_LISTENER | (_WAIT_KILLABLE_RECV if _flag_ok(_WAIT_KILLABLE_RECV | _NEW_LISTENER) else 0)
    return _FLAGS


def _flag_ok(flags: int) -> bool:
    """seccomp(SET_MODE_FILTER, flags, NULL): EFAULT means the flags are known (see kernel/seccomp.py)."""
    return N.sysc("seccomp", N.c_long(1), N.c_long(flags), None) < 0 and N.errno_of() == E.EFAULT


def prepare(opts: Any, program: Any) -> NotifySetup | None:
    """The supervision a run needs, or None (nothing to supervise, or the kernel cannot, see below)."""
    if not _wanted(opts):
        return None
    if not _user_notif_ok():
        if opts.allow_paths or opts.allow_connect or opts.allow_sockets or opts.log_denials or opts.ask:
            raise SandboxError(E.ENOSYS, "supervisor: --allow-path/--allow-connect/--allow-socket/--log-denials/"
                                         "--ask need seccomp user notification (Linux 5.9+)", "seccomp")
        return None
    return NotifySetup(opts, program)


_NOTIF_OK: bool | None = None


def _user_notif_ok() -> bool:
    global _NOTIF_OK
    if _NOTIF_OK is None:
        avail = ctypes.c_uint32(0x7FC00000)  # SECCOMP_GET_ACTION_AVAIL of USER_NOTIF
        ok = N.sysc("seccomp", N.c_long(2), N.c_long(0), ctypes.byref(avail)) == 0 and _flag_ok(_NEW_LISTENER)
        # pidfd_getfd (5.6) has the same number everywhere; EBADF for fd -1 means it exists
        raw: Any = N.libc.syscall
        ok = ok and raw(N.c_long(438), N.c_long(-1), N.c_long(0), N.c_long(0)) < 0 and N.errno_of() == E.EBADF
        _NOTIF_OK = ok
    return _NOTIF_OK
