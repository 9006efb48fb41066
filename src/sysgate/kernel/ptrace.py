"""ptrace(2): dump the filters of a running process, and record the filters a command installs.

:func:`get_filters` attaches to a process (PTRACE_SEIZE + PTRACE_INTERRUPT), reads each filter
with PTRACE_SECCOMP_GET_FILTER and detaches. Order: the ptrace(2) man page says index 0 is the
most recently installed filter, but the kernel (``get_nth_filter`` in kernel/seccomp.c, checked
on 6.x by tests/test_kernel.py) counts from the oldest: index 0 is the *first* filter installed.
So the indices are read in increasing order and the list is already in install order, oldest
first, which is also the order to re-install them in to rebuild the same stack.

:func:`trace` runs a command under ptrace and captures every filter it (or any of its threads
and child processes) installs through seccomp(SECCOMP_SET_MODE_FILTER) or
prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER): the ``sock_fprog`` is read from the tracee's memory
at syscall entry, and kept if the syscall succeeds. The tracing runs in a forked tracer process so
that waiting for "any child" never reaps the caller's own children; the tracees die with it
(PTRACE_O_EXITKILL). It needs no PTRACE_GET_SYSCALL_INFO: registers come from PTRACE_GETREGSET
(NT_PRSTATUS), laid out for x86_64 and aarch64.
"""
from __future__ import annotations

import ctypes
import errno as E
import os
import signal
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ..arch import native
from ..errors import UserError
from .memory import MemoryReadError, read_memory
from .syscall import errno_name, nr, prctl, syscall

__all__ = [
    "PTRACE_TRACEME", "PTRACE_CONT", "PTRACE_ATTACH", "PTRACE_DETACH", "PTRACE_SYSCALL", "PTRACE_SETOPTIONS",
    "PTRACE_GETEVENTMSG", "PTRACE_GETSIGINFO", "PTRACE_GETREGSET", "PTRACE_SEIZE", "PTRACE_INTERRUPT",
    "PTRACE_SECCOMP_GET_FILTER", "PTRACE_O_TRACESYSGOOD", "PTRACE_O_TRACEFORK", "PTRACE_O_TRACEVFORK",
    "PTRACE_O_TRACECLONE", "PTRACE_O_TRACEEXEC", "PTRACE_O_EXITKILL", "PTRACE_EVENT_FORK", "PTRACE_EVENT_VFORK",
    "PTRACE_EVENT_CLONE", "PTRACE_EVENT_EXEC", "PTRACE_EVENT_STOP", "NT_PRSTATUS", "WALL",
    "PTRACE_GET_SYSCALL_INFO", "PTRACE_O_TRACESECCOMP", "PTRACE_EVENT_SECCOMP",
    "PtraceError", "CommandNotFound", "SyscallRegs", "CapturedFilter", "Trace",
    "ptrace", "attach", "detach", "get_syscall_regs", "get_filters", "trace", "trace_filters",
    "run_tracer", "TracerRun", "ForkFollower", "signal_to_deliver", "reap_dead_orphans",
]

PTRACE_TRACEME = 0
PTRACE_CONT = 7
PTRACE_ATTACH = 16
PTRACE_DETACH = 17
PTRACE_SYSCALL = 24
PTRACE_SETOPTIONS = 0x4200
PTRACE_GETEVENTMSG = 0x4201
PTRACE_GETSIGINFO = 0x4202
PTRACE_GETREGSET = 0x4204
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_SECCOMP_GET_FILTER = 0x420C
PTRACE_GET_SYSCALL_INFO = 0x420E

PTRACE_O_TRACESYSGOOD = 0x01
PTRACE_O_TRACEFORK = 0x02
PTRACE_O_TRACEVFORK = 0x04
PTRACE_O_TRACECLONE = 0x08
PTRACE_O_TRACEEXEC = 0x10
PTRACE_O_TRACESECCOMP = 0x80
PTRACE_O_EXITKILL = 0x100000

PTRACE_EVENT_FORK = 1
PTRACE_EVENT_VFORK = 2
PTRACE_EVENT_CLONE = 3
PTRACE_EVENT_EXEC = 4
PTRACE_EVENT_SECCOMP = 7
PTRACE_EVENT_STOP = 128

NT_PRSTATUS = 1
WALL = 0x40000000  # __WALL: wait for threads and clones too

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_SET_MODE_FILTER = 1
_TSYNC, _NEW_LISTENER, _TSYNC_ESRCH = 1, 8, 16

_NR_PTRACE = nr("ptrace")
_NR_SECCOMP = nr("seccomp")
_NR_PRCTL = nr("prctl")


class PtraceError(OSError):
    """A ptrace operation failed; ``str()`` is one line saying what and why."""

    def __str__(self) -> str:
        return str(self.strerror)


class CommandNotFound(UserError):
    """The command given to :func:`trace` cannot be found or run."""


def ptrace(request: int, pid: int, addr: object = 0, data: object = 0) -> int:
    """Raw ptrace(2) syscall (not glibc's wrapper: PEEK requests would need a data pointer)."""
    return syscall(_NR_PTRACE, request, pid, addr, data)


# ---------------------------------------------------------------------------- attach / detach

def _wait_stop(pid: int) -> int:
    """Wait until ``pid`` is in a ptrace-stop; return the signal to re-inject on detach (or 0)."""
    while True:
        _, st = os.waitpid(pid, WALL)
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            raise PtraceError(E.ESRCH, f"process {pid} ended while being attached")
        if os.WIFSTOPPED(st):
            sig = os.WSTOPSIG(st)
            if st >> 16 == PTRACE_EVENT_STOP or sig == signal.SIGTRAP:
                return 0  # our interrupt (or a group-stop reported as an event-stop)
            return sig  # a signal-delivery-stop: any ptrace-stop will do, hand the signal back later


def attach(pid: int) -> int:
    """PTRACE_SEIZE + PTRACE_INTERRUPT ``pid`` and wait for it to stop.

    Returns a signal that arrived meanwhile, to pass to :func:`detach` so it is not lost.
    """
    try:
        ptrace(PTRACE_SEIZE, pid, 0, 0)
    except OSError as e:
        msgs: dict[int | None, str] = {
            E.ESRCH: f"no such process {pid}",
            E.EPERM: f"not permitted to trace process {pid} (needs CAP_SYS_PTRACE or the same user with "
                     "kernel.yama.ptrace_scope allowing it; or it is already being traced)"}
        msg = msgs.get(e.errno, f"cannot attach to process {pid}: {errno_name(e.errno)} ({e.strerror})")
        raise PtraceError(e.errno, msg) from None
    try:
        ptrace(PTRACE_INTERRUPT, pid, 0, 0)
        return _wait_stop(pid)
    except BaseException:
        detach(pid)
        raise


def detach(pid: int, sig: int = 0) -> None:
    """PTRACE_DETACH (the tracee resumes; ``sig`` is delivered to it). A vanished tracee is fine."""
    try:
        ptrace(PTRACE_DETACH, pid, 0, sig)
    except OSError as e:
        if e.errno != E.ESRCH:
            raise PtraceError(e.errno, f"cannot detach from process {pid}: {errno_name(e.errno)}") from None


# ---------------------------------------------------------------------------- filters of a running process

def _seccomp_mode(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("Seccomp:"):
                    return int(line.split()[1])
    except FileNotFoundError:
        raise PtraceError(E.ESRCH, f"no such process {pid}") from None
    except OSError:
        pass
    return None


def _get_filter_error(err: int, pid: int, index: int) -> PtraceError:
    if err == E.EINVAL:
        if _seccomp_mode(pid) == _SECCOMP_MODE_FILTER:
            why = "the kernel was built without CONFIG_CHECKPOINT_RESTORE, which PTRACE_SECCOMP_GET_FILTER needs"
        else:
            why = f"process {pid} is not in seccomp filter mode"
    else:
        why = {
            E.EACCES: "needs CAP_SYS_ADMIN (run as root), and the caller must not be under seccomp itself",
            E.EIO: "the kernel does not know PTRACE_SECCOMP_GET_FILTER (Linux < 4.4)",
            E.EMEDIUMTYPE: f"filter {index} is not a classic BPF program",
            E.ESRCH: f"process {pid} went away",
        }.get(err, os.strerror(err))
    return PtraceError(err, f"PTRACE_SECCOMP_GET_FILTER on process {pid}: {errno_name(err)} ({why})")


def get_filters(pid: int) -> list[bytes]:
    """The classic BPF filters of process (thread) ``pid``, oldest first, as raw bytes.

    Each item is ``struct sock_filter[]`` in native byte order, byte for byte what was installed.
    ``[]`` if the process has no filter. Needs CAP_SYS_ADMIN and a caller not under seccomp; the
    target is stopped briefly and then resumes. Raises :class:`PtraceError`.
    """
    mode = _seccomp_mode(pid)
    if mode == 0:
        return []
    if mode == 1:
        raise PtraceError(E.EINVAL, f"process {pid} is in strict seccomp mode: it has no filters to dump")
    sig = attach(pid)
    try:
        out: list[bytes] = []
        while True:
            index = len(out)
            try:
                count = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, None)
                buf = ctypes.create_string_buffer(count * 8)
                count = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, index, buf)
            except OSError as e:
                if e.errno == E.ENOENT:  # past the last filter
                    return out
                assert e.errno is not None  # syscall.check raised it, with the errno set
                raise _get_filter_error(e.errno, pid, index) from None
            out.append(buf.raw[:count * 8])
    finally:
        detach(pid, sig)


# ---------------------------------------------------------------------------- registers

@dataclass(frozen=True)
class SyscallRegs:
    """The syscall-related registers of a tracee in a syscall-stop.

    ``ret`` is only meaningful at syscall exit (it is -ENOSYS at entry on x86_64).
    """

    nr: int
    args: tuple[int, int, int, int, int, int]
    ret: int


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


def _signed64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


_ARCH = native().name
_REGSET_BUF = 1024


def get_syscall_regs(pid: int) -> SyscallRegs | None:
    """Read nr/args/return of tracee ``pid`` (PTRACE_GETREGSET, NT_PRSTATUS).

    None when the tracee's register layout is not one we decode (e.g. a 32-bit process traced
    from x86_64). Raises :class:`PtraceError` when the tracer's arch has no decoder at all.
    """
    buf = ctypes.create_string_buffer(_REGSET_BUF)
    iov = _IOVec(ctypes.addressof(buf), _REGSET_BUF)
    try:
        ptrace(PTRACE_GETREGSET, pid, NT_PRSTATUS, ctypes.byref(iov))
    except OSError as e:
        raise PtraceError(e.errno, f"PTRACE_GETREGSET on process {pid}: {errno_name(e.errno)} "
                                   f"({e.strerror})") from None
    if _ARCH == "x86_64":
        if iov.len != 27 * 8:  # struct user_regs_struct; 68 bytes would be an ia32 task
            return None
        r = struct.unpack_from("<27Q", buf.raw)
        # r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip ...
        return SyscallRegs(r[15], (r[14], r[13], r[12], r[7], r[9], r[8]), _signed64(r[10]))
    if _ARCH == "aarch64":
        if iov.len != 34 * 8:  # struct user_pt_regs: x0..x30, sp, pc, pstate
            return None
        r = struct.unpack_from("<34Q", buf.raw)
        # x8 holds the number; x0 is the first argument at entry and the result at exit
        return SyscallRegs(r[8], (r[0], r[1], r[2], r[3], r[4], r[5]), _signed64(r[0]))
    raise PtraceError(E.ENOSYS, f"reading syscall registers is not implemented on {_ARCH} "
                                "(only x86_64 and aarch64)")


# ---------------------------------------------------------------------------- a tracer process following forks
# Shared by :func:`trace` (syscall-stops) and the recorder's fallback (seccomp-stops,
# sysgate.recorder.ptracer): what differs between them is only what each does at a stop.

class TracerRun(NamedTuple):
    """What :func:`run_tracer` got back from the tracer process."""

    data: bytes         # all it wrote
    stuck: bool         # the guard ran out and the tracer was killed
    interrupted: bool   # a Ctrl-C was passed on to it


def run_tracer(body: Callable[[Callable[[bytes], None]], int], guard: float | None = None,
               forward_sigint: bool = False) -> TracerRun:
    """Run ``body(write)`` in a forked tracer process and collect what it writes.

    The fork keeps ``waitpid(-1)`` in the tracer from reaping the caller's own children. ``body``
    returns the tracer's exit status; nothing it raises gets back into the caller's stack (the
    tracer exits 1). ``guard``: seconds after which a tracer that has not finished is SIGKILLed
    (its tracees die with it through PTRACE_O_EXITKILL); only a stuck tracer, since each body
    enforces its own timeout. ``forward_sigint``: a Ctrl-C in the caller is passed on to the
    tracer once (a terminal's reached it already) and the caller goes on reading what it reports.
    """
    import select
    import time

    rfd, wfd = os.pipe()
    tracer = os.fork()
    if tracer == 0:
        code = 1
        try:
            os.close(rfd)

            def write(data: bytes) -> None:
                while data:
                    data = data[os.write(wfd, data):]

            code = body(write)
        finally:
            os._exit(code)
    os.close(wfd)
    deadline = None if guard is None else time.monotonic() + guard
    data = b""
    timed_out = interrupted = False
    try:
        while True:
            try:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and (left <= 0 or not select.select([rfd], [], [], left)[0]):
                    timed_out = True
                    os.kill(tracer, signal.SIGKILL)
                    break
                chunk = os.read(rfd, 65536)
            except KeyboardInterrupt:
                if not forward_sigint:
                    raise
                if not interrupted:
                    interrupted = True
                    try:
                        os.kill(tracer, signal.SIGINT)
                    except ProcessLookupError:
                        pass
                continue
            if not chunk:
                break
            data += chunk
    finally:
        os.close(rfd)
        os.waitpid(tracer, 0)
    return TracerRun(data, timed_out, interrupted)


class ForkFollower:
    """The tasks a tracer with PTRACE_O_TRACEFORK/VFORK/CLONE has seen stop.

    A new task is traced from birth and reports a first SIGSTOP, which may come before or after
    its creator's fork event: ``fresh`` holds the tasks announced by an event whose first stop
    has not come yet, ``seen`` every task that has stopped (how many were traced).
    """

    __slots__ = ("fresh", "seen")

    def __init__(self, top: int) -> None:
        self.fresh: set[int] = set()
        self.seen: set[int] = {top}

    def first_stop(self, pid: int, sig: int, known: bool) -> bool:
        """Whether this stop is ``pid``'s first (``known``: the tracer has it among its tasks
        already, from its creator's event); if so, it counts as seen."""
        if known and not (sig == signal.SIGSTOP and pid in self.fresh):
            return False
        self.fresh.discard(pid)
        self.seen.add(pid)
        return True

    def new_task(self, pid: int) -> int | None:
        """The task a fork, vfork or clone event stop of ``pid`` announces; None if ``pid`` is
        gone already (killed meanwhile: the new task reports its own first stop)."""
        msg = ctypes.c_ulong()
        try:
            ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.byref(msg))
        except OSError as e:
            if e.errno != E.ESRCH:
                raise
            return None
        if msg.value not in self.seen:
            self.fresh.add(msg.value)
        return msg.value


def signal_to_deliver(pid: int, sig: int) -> int:
    """``sig`` if the stop of ``pid`` is a signal-delivery-stop (pass the signal on when
    continuing), 0 for a group-stop (no siginfo: EINVAL) or a task that is gone."""
    info = ctypes.create_string_buffer(128)
    try:
        ptrace(PTRACE_GETSIGINFO, pid, 0, info)
    except OSError:
        return 0
    return sig


def reap_dead_orphans() -> None:
    """Reap the orphans a child subreaper adopted that have already died (once every traced
    task has ended), without waiting for any."""
    while True:
        try:
            if os.waitpid(-1, WALL | os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break


# ---------------------------------------------------------------------------- tracing a command

@dataclass(frozen=True)
class CapturedFilter:
    """A filter a traced command installed: its bytes, who, how, and with which flags."""

    program: bytes
    pid: int     # thread id of the installer
    via: str     # "seccomp" or "prctl"
    flags: int   # seccomp(2) filter flags (0 for prctl)


@dataclass(frozen=True)
class Trace:
    """What :func:`trace` saw.

    ``returncode`` is the command's, subprocess-style (negative: killed by that signal); None if
    the trace timed out. ``killed`` is True when ``kill=True`` stopped the command.
    """

    filters: tuple[CapturedFilter, ...]
    returncode: int | None
    killed: bool = False
    timed_out: bool = False
    warnings: tuple[str, ...] = ()


@dataclass
class _Entry:
    via: str | None = None
    flags: int = 0
    program: bytes | None = None
    error: str = ""


_OUTSIDE = None  # task state: not inside a syscall


def _decode_entry(pid: int, regs: SyscallRegs | None) -> _Entry:
    if regs is None:
        return _Entry()
    a = regs.args
    if regs.nr == _NR_SECCOMP and a[0] == _SECCOMP_SET_MODE_FILTER:
        e = _Entry("seccomp", a[1] & 0xFFFFFFFF)
    elif regs.nr == _NR_PRCTL and a[0] == _PR_SET_SECCOMP and a[1] == _SECCOMP_MODE_FILTER:
        e = _Entry("prctl", 0)
    else:
        return _Entry()
    try:
        # struct sock_fprog on a 64-bit ABI: u16 len, 6 bytes padding, pointer
        length, ptr = struct.unpack("=H6xQ", read_memory(pid, a[2], 16))
        e.program = read_memory(pid, ptr, length * 8)
    except MemoryReadError as err:  # NULL probes land here; the kernel then fails with EFAULT
        e.error = str(err)
    return e


def _succeeded(e: _Entry, ret: int) -> bool:
    if ret < 0:
        return False
    # TSYNC without NEW_LISTENER/TSYNC_ESRCH reports a failing thread id as a positive return
    return not (e.via == "seccomp" and e.flags & _TSYNC and not e.flags & (_NEW_LISTENER | _TSYNC_ESRCH)
                and ret > 0)


def _tracer_main(argv: Sequence[str], kill: bool, timeout: float | None, emit) -> None:
    """Body of the forked tracer process; ``emit(dict)`` streams results to the caller."""
    prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # caller gone -> tracer gone -> tracees gone (EXITKILL)
    prctl(_PR_SET_CHILD_SUBREAPER, 1)  # orphans of a killed command come to us to be reaped, not to init
    main = os.fork()
    if main == 0:
        try:
            ptrace(PTRACE_TRACEME, 0, 0, 0)
            os.kill(os.getpid(), signal.SIGSTOP)  # let the tracer set options before exec
            os.execvp(argv[0], list(argv))
        except OSError as e:
            os.write(2, f"sysgate trace: cannot run {argv[0]}: {e.strerror}\n".encode())
        finally:
            os._exit(127)
    _, st = os.waitpid(main, WALL)
    if not os.WIFSTOPPED(st):
        emit({"exit": st})
        return
    ptrace(PTRACE_SETOPTIONS, main, 0, PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXEC | PTRACE_O_TRACEFORK
           | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_EXITKILL)
    ptrace(PTRACE_SYSCALL, main, 0, 0)
    tasks: dict[int, _Entry | None] = {main: _OUTSIDE}
    follow = ForkFollower(main)
    killed = timed_out = False

    def kill_all() -> None:
        for t in list(tasks):
            try:
                os.kill(t, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def on_deadline(signum: int, frame: object) -> None:
        # runs between bytecodes of the loop below; the killed tasks then report their exit
        nonlocal timed_out
        timed_out = True
        kill_all()

    if timeout is not None:
        signal.signal(signal.SIGALRM, on_deadline)
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
    warned_layout = False
    main_status: int | None = None
    while tasks:
        try:
            pid, st = os.waitpid(-1, WALL)
        except ChildProcessError:
            break
        if os.WIFEXITED(st) or os.WIFSIGNALED(st):
            tasks.pop(pid, None)
            if pid == main:
                main_status = st
            continue
        if not os.WIFSTOPPED(st):
            continue
        sig, event, inject = os.WSTOPSIG(st), st >> 16, 0
        if killed or timed_out:  # e.g. a task forked just as the others were killed
            tasks.setdefault(pid, _OUTSIDE)
            os.kill(pid, signal.SIGKILL)
        if follow.first_stop(pid, sig, pid in tasks):  # of an auto-attached thread/process
            tasks.setdefault(pid, _OUTSIDE)
        elif sig == signal.SIGTRAP | 0x80:  # syscall-stop (PTRACE_O_TRACESYSGOOD)
            try:
                regs = get_syscall_regs(pid)
            except PtraceError as err:
                if err.errno != E.ESRCH:
                    raise
                regs = None
            if regs is None and not warned_layout:
                warned_layout = True
                emit({"warning": f"task {pid} uses a register layout sysgate cannot decode; "
                                 "its syscalls are not inspected"})
            entry = tasks[pid]
            if entry is _OUTSIDE:
                tasks[pid] = _decode_entry(pid, regs)
            else:
                tasks[pid] = _OUTSIDE
                if entry.via and regs is not None and _succeeded(entry, regs.ret):
                    if entry.program is None:
                        emit({"warning": f"task {pid} installed a filter sysgate could not read: {entry.error}"})
                    else:
                        emit({"filter": entry.program.hex(), "pid": pid, "via": entry.via, "flags": entry.flags})
                        if kill and not killed:
                            killed = True
                            kill_all()
        elif sig == signal.SIGTRAP and event:
            if event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE):
                child = follow.new_task(pid)
                if child is not None:
                    tasks.setdefault(child, _OUTSIDE)
            elif event == PTRACE_EVENT_EXEC:
                msg = ctypes.c_ulong()
                ptrace(PTRACE_GETEVENTMSG, pid, 0, ctypes.byref(msg))
                former = msg.value
                if former != pid:  # a non-leader thread exec'd and took over the leader's id
                    tasks[pid] = tasks.pop(former, _Entry())
        else:
            inject = signal_to_deliver(pid, sig)
        try:
            ptrace(PTRACE_SYSCALL, pid, 0, inject)
        except OSError as e:
            if e.errno != E.ESRCH:
                raise
    signal.setitimer(signal.ITIMER_REAL, 0)
    reap_dead_orphans()  # every traced task has ended by now
    emit({"exit": main_status, "killed": killed, "timed_out": timed_out})


def trace(argv: Sequence[str], *, kill: bool = False, timeout: float | None = None) -> Trace:
    """Run ``argv`` under ptrace and capture every seccomp filter it installs, in order.

    Filters of the command's threads and child processes count too. Only installs the kernel
    accepted are kept. With ``kill=True`` the command (and its children) is SIGKILLed as soon as
    the first filter is in place, for commands that sandbox themselves and then run on. After
    ``timeout`` seconds the command is killed and what was captured so far is returned. Nothing
    is left behind: the tracer is a child subreaper and reaps every process the command started.
    The command inherits stdin/stdout/stderr. Raises :class:`CommandNotFound` for a command that
    cannot be found, :class:`PtraceError` when tracing itself fails.
    """
    import json
    import shutil

    if not argv:
        raise CommandNotFound("trace: no command given")
    if ("/" in argv[0] and not os.access(argv[0], os.X_OK)) or ("/" not in argv[0] and not shutil.which(argv[0])):
        raise CommandNotFound(f"trace: command not found or not executable: {argv[0]!r}")

    def body(write: Callable[[bytes], None]) -> int:
        def emit(msg: dict) -> None:
            write((json.dumps(msg) + "\n").encode())

        try:
            _tracer_main(argv, kill, timeout, emit)
        except OSError as e:
            emit({"error": [e.errno or E.EIO, str(e)]})
            return 1
        except BaseException as e:  # never return into the caller's stack from the fork
            emit({"error": [E.EIO, f"{type(e).__name__}: {e}"]})
            return 1
        return 0

    # The tracer enforces the timeout itself; this later guard only stops a stuck tracer.
    data, timed_out, _ = run_tracer(body, None if timeout is None else timeout + 10)
    filters: list[CapturedFilter] = []
    warnings: list[str] = []
    returncode: int | None = None
    killed = False
    for line in data.decode().splitlines():
        if not line.strip():
            continue
        msg = json.loads(line)
        if "error" in msg:
            raise PtraceError(msg["error"][0], f"trace {argv[0]}: {msg['error'][1]}")
        if "filter" in msg:
            filters.append(CapturedFilter(bytes.fromhex(msg["filter"]), msg["pid"], msg["via"], msg["flags"]))
        elif "warning" in msg:
            warnings.append(msg["warning"])
        elif "exit" in msg:
            killed = bool(msg.get("killed"))
            timed_out = timed_out or bool(msg.get("timed_out"))
            if msg["exit"] is not None:
                returncode = os.waitstatus_to_exitcode(msg["exit"])
    if timed_out:
        warnings.append(f"timed out after {timeout} s; the command was killed")
    return Trace(tuple(filters), None if timed_out else returncode, killed, timed_out, tuple(warnings))


def trace_filters(argv: Sequence[str], kill: bool = False, timeout: float | None = None) -> list[bytes]:
    """The raw bytes of every filter ``argv`` installs, in install order (see :func:`trace`)."""
    return [f.program for f in trace(argv, kill=kill, timeout=timeout).filters]
