"""The fallback: record under ptrace with seccomp-assisted stops (no privileges needed).

The command is started with a seccomp filter whose verdict is ``SECCOMP_RET_TRACE`` for every
call not already known to be allowed (``known``: the names of a ``--merge`` profile whose
arguments are not refined), as ``strace --seccomp-bpf`` does: the tracer sees one seccomp stop
per call instead of two syscall stops, reads number, arguments and ABI with
``PTRACE_GET_SYSCALL_INFO`` (so a 32-bit child is recorded under its own arch) and lets the
call run. Filters stack and cannot be replaced, so the set cannot shrink as names are learned;
each stop is simply continued at once. Children are followed with TRACEFORK/VFORK/CLONE; the
tracees die with the tracer (EXITKILL). Without CAP_SYS_ADMIN the filter needs no_new_privs,
which the recorded command then runs with (set-user-ID programs do not gain privileges).
Returns are not watched (that would cost a second stop per call), so the report cannot tell
error-only calls on this path.

The tracer is a forked process, so that waiting for "any child" never reaps the caller's
children; it sends its :class:`~.observations.Observations` back as JSON. That process, the
bookkeeping of the tasks it follows and the signals it passes on are
:mod:`sysgate.kernel.ptrace`'s, shared with ``sysgate trace``: only what is done at a stop is here.
"""
from __future__ import annotations

import ctypes
import errno as E
import os
import signal
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..arch import X32_SYSCALL_BIT, by_token
from ..arch import get as get_arch
from ..kernel.ptrace import (
    PTRACE_CONT,
    PTRACE_EVENT_CLONE,
    PTRACE_EVENT_EXEC,
    PTRACE_EVENT_FORK,
    PTRACE_EVENT_SECCOMP,
    PTRACE_EVENT_STOP,
    PTRACE_EVENT_VFORK,
    PTRACE_GET_SYSCALL_INFO,
    PTRACE_O_EXITKILL,
    PTRACE_O_TRACECLONE,
    PTRACE_O_TRACEEXEC,
    PTRACE_O_TRACEFORK,
    PTRACE_O_TRACESECCOMP,
    PTRACE_O_TRACEVFORK,
    PTRACE_SETOPTIONS,
    PTRACE_TRACEME,
    WALL,
    ForkFollower,
    reap_dead_orphans,
    run_tracer,
    signal_to_deliver,
)
from ..kernel.syscall import nr as _nr
from . import refine
from .launch import resolve, spawn_held
from .observations import CommandNotStarted, Observations, RecordError, RecordingInterrupted

__all__ = ["record", "filter_program"]

_INFO_SIZE = 88  # struct ptrace_syscall_info with the seccomp member


def filter_program(known: Iterable[str] = ()) -> bytes:
    """The tracee's filter: TRACE for everything but the ``known`` names, on every arch."""
    known = set(known)
    if not known:  # one instruction, and no compiler to import: ``ret SECCOMP_RET_TRACE``
        return struct.pack("=HBBI", 0x06, 0, 0, 0x7FF00000)
    from ..arch import native
    from ..compiler import compile_policy
    from ..policy import ALLOW, Policy, Rule, trace

    a = native()
    rules = tuple(Rule(n, ALLOW, ()) for n in sorted(known) if a.has(n))
    return compile_policy(Policy(trace(0), rules, (a.name,), trace(0))).to_bytes()


def record(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
           jail: bool = False, known: Iterable[str] = ()) -> Observations:
    """Run ``argv`` under the seccomp-assisted ptrace recorder (see the module doc).

    Calls count from a task's first exec on (and its children's); with ``jail`` not from the
    top task's own exec (the jail's), only from the command's.
    """
    import json

    resolve(argv, env)  # CommandNotStarted before anything is forked
    from ..kernel import seccomp  # noqa: F401 - imported once here, not in every forked tracer (15 ms)
    program = filter_program(n for n in known if n not in refine.SPECS)  # refined calls stay traced

    def body(write: Callable[[bytes], None]) -> int:
        try:
            obs = _tracer_main(argv, env, timeout, program, jail)
            msg = {"ok": obs.to_json()}
        except RecordingInterrupted as e:
            msg = {"interrupted": str(e), "obs": e.observations.to_json()}
        except CommandNotStarted as e:
            msg = {"not_started": str(e)}
        except BaseException as e:  # noqa: BLE001 - never return into the caller's stack
            write(json.dumps({"error": f"{type(e).__name__}: {e}"}).encode())
            return 1
        write(json.dumps(msg).encode())
        return 0

    # a stuck tracer only: the tracer enforces the timeout itself
    data, _, interrupted = run_tracer(body, None if timeout is None else timeout + 30, forward_sigint=True)
    if not data:
        raise RecordError("record: the ptrace recorder died without a result")
    msg = json.loads(data)
    if "not_started" in msg:
        raise CommandNotStarted(msg["not_started"])
    if "error" in msg:
        raise RecordError(f"record: ptrace recorder failed: {msg['error']}")
    if "interrupted" in msg:
        raise RecordingInterrupted(msg["interrupted"], Observations.from_json(msg["obs"]))
    obs = Observations.from_json(msg["ok"])
    if interrupted:
        raise RecordingInterrupted("record: interrupted", obs)
    return obs


def _tracer_main(argv: Sequence[str], env: Mapping[str, str] | None, timeout: float | None,
                 program: bytes, jail: bool) -> Observations:
    from ..kernel.seccomp import install
    from ..kernel.syscall import PR_SET_CHILD_SUBREAPER, PR_SET_PDEATHSIG, libc, prctl

    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # caller gone -> tracer gone -> tracees gone
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans come to us to be reaped
    sysc = libc.syscall  # restype c_long (kernel.syscall)
    nr_ptrace = ctypes.c_long(_nr("ptrace"))
    root = os.geteuid() == 0

    def before_exec() -> None:
        if sysc(nr_ptrace, ctypes.c_long(PTRACE_TRACEME), ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0)) < 0:
            raise OSError(ctypes.get_errno(), "PTRACE_TRACEME failed")
        os.kill(os.getpid(), signal.SIGSTOP)  # the tracer sets its options before the filter exists
        install(program, no_new_privs=not root)

    obs = Observations("ptrace")
    interrupted = ""

    def on_signal(signum: int, frame: object) -> None:
        nonlocal interrupted
        interrupted = f"timed out after {timeout} s" if signum == signal.SIGALRM else "interrupted"
        for t in list(tasks):
            try:
                os.kill(t, signal.SIGKILL)
            except ProcessLookupError:
                pass

    tasks: set[int] = set()
    signal.signal(signal.SIGINT, on_signal)
    child = spawn_held(argv, env, before_exec)
    top = child.pid
    tasks.add(top)
    if timeout is not None:
        signal.signal(signal.SIGALRM, on_signal)
        signal.setitimer(signal.ITIMER_REAL, max(timeout, 0.001))
    import time

    t0 = time.monotonic()
    child.release(wait=False)
    _, st = os.waitpid(top, WALL)
    if not os.WIFSTOPPED(st):
        err = child.exec_error()
        raise CommandNotStarted(err or "record: the command ended before it could be traced")
    opts = (PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXEC
            | PTRACE_O_TRACESECCOMP | PTRACE_O_EXITKILL)
    if sysc(nr_ptrace, ctypes.c_long(PTRACE_SETOPTIONS), ctypes.c_long(top), ctypes.c_long(0),
            ctypes.c_long(opts)) < 0:
        raise RecordError(f"record: PTRACE_SETOPTIONS: {os.strerror(ctypes.get_errno())}")
    buf = ctypes.create_string_buffer(_INFO_SIZE)
    c_cont = ctypes.c_long(PTRACE_CONT)
    c_zero = ctypes.c_long(0)
    c_long = ctypes.c_long
    # The per-stop calls through a prototype taking plain ints: no ctypes objects made per stop
    # (syscall(2) is variadic, but integer arguments are passed alike on x86_64 and aarch64).
    from ..kernel.syscall import libc

    fast = libc["syscall"]  # a function object of its own: these argtypes must not apply to libc.syscall
    fast.argtypes = (ctypes.c_long,) * 5
    fast.restype = ctypes.c_long
    NR, GETINFO, CONT, ADDR = _nr("ptrace"), PTRACE_GET_SYSCALL_INFO, PTRACE_CONT, ctypes.addressof(buf)
    waitpid = os.waitpid
    WIFSTOPPED = os.WIFSTOPPED
    unpack = struct.Struct("=B3xIQQQ6Q").unpack_from
    arch_names: dict[int, str] = {}
    calls = obs.calls
    main_status = None
    follow = ForkFollower(top)
    started: set[int] = set()  # tasks whose calls count: see record()
    skip_exec = {top} if jail else set()

    def inherit(pid: int) -> None:
        # A new task counts if its process or its parent process does (read from /proc: the
        # child's first stop may come before its parent's fork event).
        try:
            with open(f"/proc/{pid}/status") as f:
                ids = {k: v.strip() for k, _, v in (ln.partition(":") for ln in f)}
            if int(ids["Tgid"]) in started or int(ids["PPid"]) in started:
                started.add(pid)
        except (OSError, KeyError, ValueError):
            pass
    sysc(nr_ptrace, c_cont, c_long(top), c_zero, c_zero)
    while tasks:
        try:
            pid, st = waitpid(-1, WALL)
        except ChildProcessError:
            break
        if (st >> 8) == 0x705 and pid in started:  # SIGTRAP | PTRACE_EVENT_SECCOMP << 8: the hot path
            if fast(NR, GETINFO, pid, _INFO_SIZE, ADDR) > 0:
                _op, token, _ip, _sp, nr, a0, a1, a2, a3, a4, a5 = unpack(buf.raw)
                arch = arch_names.get(token)
                if arch is None:
                    cands = by_token(token)
                    arch = arch_names[token] = cands[0].name if cands else f"token-{token:#x}"
                if nr & X32_SYSCALL_BIT and arch == "x86_64":
                    arch = "x32"
                per = calls.get(arch)
                if per is None:
                    per = calls[arch] = {}
                per[nr] = per.get(nr, 0) + 1
                name = _name(arch, nr)
                if name in refine.SPECS:
                    obs.saw_args(arch, nr, refine.key(name, (a0, a1, a2, a3, a4, a5)))
            if not interrupted:
                fast(NR, CONT, pid, 0, 0)
                continue
        if not WIFSTOPPED(st):
            if os.WIFEXITED(st) or os.WIFSIGNALED(st):
                tasks.discard(pid)
                if pid == top:
                    main_status = st
                    obs.elapsed = time.monotonic() - t0
            continue
        sig, event, inject = os.WSTOPSIG(st), st >> 16, 0
        if interrupted:
            tasks.add(pid)
            os.kill(pid, signal.SIGKILL)
        if event == PTRACE_EVENT_SECCOMP:
            pass  # a task whose calls do not count (yet), or one being killed
        elif follow.first_stop(pid, sig, pid in tasks):  # of an auto-attached child
            tasks.add(pid)
            inherit(pid)
        elif sig == signal.SIGTRAP and event in (PTRACE_EVENT_FORK, PTRACE_EVENT_VFORK, PTRACE_EVENT_CLONE):
            new = follow.new_task(pid)
            if new is not None:
                # Decided here, not only at the child's first stop: by then the parent may have
                # exited and the child been reparented, and inherit() would read the wrong PPid.
                if pid in started:
                    started.add(new)
                tasks.add(new)
        elif sig == signal.SIGTRAP and event == PTRACE_EVENT_EXEC:
            if pid in skip_exec:
                skip_exec.discard(pid)
            else:
                started.add(pid)
        elif sig == signal.SIGTRAP and event == PTRACE_EVENT_STOP:
            pass
        else:
            inject = signal_to_deliver(pid, sig)
        if sysc(nr_ptrace, c_cont, c_long(pid), c_zero, c_long(inject)) < 0 and ctypes.get_errno() != E.ESRCH:
            raise RecordError(f"record: PTRACE_CONT: {os.strerror(ctypes.get_errno())}")
    signal.setitimer(signal.ITIMER_REAL, 0)
    reap_dead_orphans()
    err = child.exec_error()
    if err:
        raise CommandNotStarted(err)
    obs.tasks = len(follow.seen)
    from ..arch import native

    if calls and native().has("execve"):  # the command's first execve came before its exec event
        obs.saw(native().name, native().nr("execve"))
    if main_status is not None:
        obs.returncode = os.waitstatus_to_exitcode(main_status)
    if interrupted:
        raise RecordingInterrupted(f"record: {interrupted}", obs)
    return obs


_NAMES: dict[tuple[str, int], str | None] = {}


def _name(arch: str, nr: int) -> str | None:
    key = (arch, nr)
    if key not in _NAMES:
        try:
            _NAMES[key] = get_arch(arch).name_of(nr)
        except ValueError:
            _NAMES[key] = None
    return _NAMES[key]
