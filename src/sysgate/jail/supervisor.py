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
whose decision needs pointer contents (no CONTINUE after looking at memory). This module is the
set-up, the hand-off and the thread (on every run's path); the handlers that judge the calls are
:class:`sysgate.jail.mediation.Mediation`'s, loaded when a sandbox's first notification arrives:

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
from ..kernel import fdpass as _fdpass
from ..kernel import syscall as N
from .options import JailConfigError, PerOptions
from .result import SandboxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NotifySetup", "parse_allow_connect", "parse_allow_path", "prepare"]

_NEW_LISTENER = 8
_WAIT_KILLABLE_RECV = 32


def parse_allow_path(text: str) -> tuple[str, bool]:
    """``PATH[:ro|rw]`` -> (absolute normalized path, writable); read-only by default."""
    path, mode = text, "ro"
    if text.endswith((":ro", ":rw")):
        path, mode = text[:-3], text[-2:]
    else:
        head, colon, tail = text.rpartition(":")
        if colon and head and 1 <= len(tail) <= 3 and tail.isalpha():  # a mistyped mode ("/usr:rx")
            raise JailConfigError(f"--allow-path {text!r}: unknown mode {tail!r} (ro or rw; for a path that "
                                  f"ends so, add the mode: {text}:ro)")
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
        hit = _SETUPS.get(opts)
        if hit is not None and hit[0] is program:
            self.__dict__.update(hit[1])  # what follows from opts and program alone, as made below
        else:
            self._derive(opts, program)
            if not opts.ask:  # --ask opens the terminal per run
                _SETUPS.put(opts, (program, dict(self.__dict__)))  # holds program too: its id stays its own
        pr, ch = _fdpass.socketpair()
        self.parent_end, self.child_end = pr, ch
        # one message buffer per side: init sends on one while the supervisor thread may wait on the other
        self._out, self._in = _fdpass.FdMessage(b"L"), _fdpass.FdMessage()
        self.sup: Any = None
        self.started = False  # handed to a supervisor thread (see _Workers)
        self._stop_r = self._stop_w = -1
        self.events: list[dict] = []
        self.failure: BaseException | None = None
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
        #: the seal runs in front of the profile, one filter fewer to install and to run on every
        #: call (the profile is loaded right after the hand-off; not in log mode, where the
        #: listener comes after the profile; the sandbox clears it if it loads another program)
        self.seal_in_profile = False
        if not self.after_profile and self.profile is not None:
            sealed = _sealed(self.profile)
            if sealed is not None:
                self.profile, self.seal_in_profile = sealed, True
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
        fd = N.check(N.sysc("seccomp", N.c_long(1), N.c_long(self.flags), ctypes.byref(self.listener.fprog)),
                     "install the supervisor's filter")
        # the one sendmsg the listener filter lets through (see _HANDOFF_FLAGS)
        N.check(self._out.send(self.child_end, fd, _HANDOFF_FLAGS), "hand the listener to the supervisor")
        if not self.seal_in_profile:
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
        listener = -1
        try:
            got = self._in.recv(self.parent_end)
            if got == -1:
                raise OSError(N.errno_of(), "receive the listener from the sandbox")
            if got < 0:
                return  # the command never got as far as installing the filter
            listener = got
            # most commands never connect: import the supervisor only when one does
            if not _wait_readable(listener, self._stop_r):
                return
            from ..notify import Supervisor, companion_arches

            self.arches = self.arches or companion_arches()
            from .mediation import Mediation

            med = Mediation(self)
            self.sup = Supervisor(listener, med.handlers(), med.profile_decision if self.log else None,
                                  arches=self.arches, on_error=med.on_error)
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

    # -- reporting (the mediation's too) ----------------------------------------------------------
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


def _sealed(program: Any) -> Any:
    """``program`` with the seal's test in front: EPERM for the hand-off's sendmsg, otherwise on to
    the program's first instruction (the seal's own ALLOW dropped: its jumps to it land there, and
    the program's jumps are relative, so none moves). None if that would pass the kernel's limit."""
    from .filters import FilterProgram

    data = _seal_program().data[:-8] + program.data
    if len(data) // 8 > 4096:  # BPF_MAXINSNS
        return None
    return FilterProgram(data, program.supervisor_safe, program.key + "+seal")


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
