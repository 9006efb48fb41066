"""Starting a sandbox: the init process (PID 1 of the sandbox) and how the command is spawned.

Process layout::

    caller (Python, host)  --clone(CLONE_NEW*)-->  init (PID 1, reaper)  --spawn-->  command

**The init** is created by ``clone()`` with every namespace flag, so it is PID 1 of the new
PID namespace from birth and no intermediate process is needed. By default (the *vfork*
launcher) it is created with ``CLONE_VM|CLONE_VFORK`` on a stack of its own and runs a Python
callback: it shares the caller's memory like a thread would (same interpreter, GIL taken as
usual) while the calling thread sleeps in ``clone()`` until init exits. That avoids copying
and later tearing down the caller's whole address space, which is most of the cost of a
fork from Python. Consequences the code takes care of:

* all signals are blocked in the calling thread across ``clone()`` (init inherits the mask,
  so the caller's Python signal handlers never run in init); init waits for signals with
  ``sigtimedwait`` only;
* the caller's memory must not be reachable from inside: init is made non-dumpable (the
  flag lives in the shared ``mm``, so the caller is non-dumpable while a sandbox runs; the
  previous value is restored afterwards), hence neither ptrace nor ``/proc/1/mem`` work on it;
* init never joins the memory cgroup: the OOM killer kills every process sharing the victim's
  ``mm``. With cgroup limits the command is forked (not spawned) and joins the groups itself;
* init is never SIGKILLed by us (it could be holding the GIL): ``Sandbox.kill()`` sends it a
  control signal and init ends the sandbox by exiting, which makes the kernel kill every
  process of its PID namespace.

The *fork* launcher (``launcher="fork"``, used automatically on interpreters the vfork trick
is not validated for) forks a helper that clones init with ``CLONE_PARENT``; init then has
its own copy of memory and may be SIGKILLed.

**The command**: on the fast path init sets rlimits, marks every fd close-on-exec, applies
Landlock, drops capabilities, sets no_new_privs, loads the seccomp filter and ``posix_spawn``\\ s
the command (a vfork: nothing to copy), so init, as in bubblewrap, is itself under the filter.
This is used when the filter allows what init still does afterwards (checked in the
emulator, see :mod:`.filters`), there are no cgroup limits and no ``as``/``data`` rlimits.
Otherwise (the *fork* path) init forks a copy that does the same steps itself, seccomp last,
right before ``execve``.
"""
from __future__ import annotations

import _signal as signal  # the C module: ``signal`` wraps it in enums (and imports enum: milliseconds)
import _thread
import gc
import marshal
import os
import resource  # noqa: F401 - os.wait4 imports it; it must not be imported inside init
import sys
import time

_sigmask = signal.pthread_sigmask

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from typing import Any

from . import _ffi as ctypes  # the few ctypes names the jail needs, without ctypes' import cost
from . import _native as N
from . import caps as _caps
from . import mounts as _mounts
from . import namespaces as _ns
from . import rlimits as _rl

__all__ = ["Plan", "launch_vfork", "launch_fork", "vfork_supported", "VforkBusy", "CTRL_KILL", "FORWARDED",
           "SignalForwarder"]

CTRL_KILL = signal.SIGRTMIN + 2
FORWARDED = (signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2,
             signal.SIGWINCH, signal.SIGCONT, signal.SIGALRM)
_WAITSET = {signal.SIGCHLD, CTRL_KILL, *FORWARDED}
_SI_KERNEL = 0x80  # si_code of a signal the kernel sent: the terminal's ^C, ^\\, hangup
_FWD_STOP = signal.SIGRTMIN + 3
_ALL = signal.valid_signals()
_SIGDEF = {signal.SIGPIPE, signal.SIGXFSZ}  # what Python ignores; handled ones reset at exec anyway
_SECCOMP_SET_MODE_FILTER = 1

_pydll = ctypes.PyDLL(None, use_errno=True)  # keeps the GIL across the call: the child is born holding it
_raw_syscall = _pydll.syscall
_raw_syscall.restype = ctypes.c_long
_execve = N.libc.execve
_execve.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]


def vfork_supported() -> bool:
    """The vfork launcher runs Python on a foreign stack in a CLONE_VM child; it is validated on
    CPython 3.10-3.13 with the GIL (3.14 checks the C stack against the thread's own)."""
    return (sys.implementation.name == "cpython" and (3, 10) <= sys.version_info[:2] <= (3, 13)
            and getattr(sys, "_is_gil_enabled", lambda: True)())


def _cstrings(items: list[bytes]) -> tuple[Any, Any]:
    arr = (ctypes.c_char_p * (len(items) + 1))(*items, None)
    return arr, items


class Plan:
    """Everything init needs, computed by the caller so init does no lookups or imports."""

    argv: list[str]
    env: dict[str, str]
    ns: "_ns.NsPlan"
    mounts: "_mounts.MountPlan"
    cgroup: Any  # cgroups.CgroupSet
    program: Any  # filters.FilterProgram
    fast: bool  # spawn from init with the filter loaded in init
    keep_caps: frozenset
    last_cap: int
    rl_early: list
    rl_late: list
    landlock: Any  # a prepared landlock.restrict call (no argument), or None
    stdio: list
    pass_fds: tuple
    new_session: bool
    timeout: float | None
    die_with_parent: bool
    pidns: bool
    netns_fd: int  # a prepared network namespace to be born in (netpool)
    lifeline: int  # read end; EOF means the caller is gone
    lifeline_w: int  # the caller's write end (init closes its copy)
    ready: int  # write end: b"R" once the command runs
    report: int  # fork launcher: where init writes its report
    notify: Any  # supervisor.NotifySetup: the listener filter installed and handed out before execve
    # prepared for execve(2) in the forked command process (no allocation after the filter)
    c_env: Any
    _keep: Any

    def __init__(self, argv: list[str], env: dict[str, str], ns: _ns.NsPlan, mounts: _mounts.MountPlan,
                 cgroup: Any = None, program: Any = None, fast: bool = True,
                 keep_caps: frozenset = frozenset(), last_cap: int = 40, rl_early: list = None,
                 rl_late: list = None, landlock: Any = None, stdio: list = None, pass_fds: tuple = (),
                 new_session: bool = False, timeout: float | None = None, die_with_parent: bool = True,
                 pidns: bool = True, netns_fd: int = -1, lifeline: int = -1, lifeline_w: int = -1,
                 ready: int = -1, report: int = -1, c_env: Any = None) -> None:
        self.argv = argv
        self.env = env
        self.ns = ns
        self.mounts = mounts
        self.cgroup = cgroup
        self.program = program
        self.fast = fast
        self.keep_caps = keep_caps
        self.last_cap = last_cap
        self.rl_early = [] if rl_early is None else rl_early
        self.rl_late = [] if rl_late is None else rl_late
        self.landlock = landlock
        self.stdio = [None, None, None] if stdio is None else stdio
        self.pass_fds = pass_fds
        self.new_session = new_session
        self.timeout = timeout
        self.die_with_parent = die_with_parent
        self.pidns = pidns
        self.netns_fd = netns_fd
        self.lifeline = lifeline
        self.lifeline_w = lifeline_w
        self.ready = ready
        self.report = report
        self.c_env = c_env
        self._keep = None
        self.notify = None

    def prepare_execve(self) -> None:
        """Build the C environment array for the forked path (only it calls execve itself)."""
        envb = [os.fsencode(f"{k}={v}") for k, v in self.env.items()]
        self.c_env, self._keep = _cstrings(envb)


def _err(stage: str, e: BaseException) -> tuple[str, int, str]:
    if isinstance(e, OSError):
        if isinstance(e, N.JailOSError):
            msg = e.strerror
        else:
            msg = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        return stage, e.errno or 0, str(msg)
    return stage, 0, f"{type(e).__name__}: {e}"


def _which(cmd: str, path: str) -> str:
    if "/" in cmd:
        return cmd
    for d in path.split(":"):
        p = os.path.join(d or ".", cmd)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    raise N.JailOSError(2, f"{cmd}: command not found in the sandbox")


def _lifeline_ok(plan: Plan) -> bool:
    if plan.lifeline < 0:
        return True
    if plan.lifeline_w >= 0:
        os.close(plan.lifeline_w)
    os.set_blocking(plan.lifeline, False)  # nobody writes to it: data never comes, only EOF
    try:
        return os.read(plan.lifeline, 1) != b""  # b"": EOF, nobody holds the write end any more
    except BlockingIOError:
        return True


def _prepare_fds(plan: Plan, keep: tuple[int, ...]) -> list[int]:
    """Close every inherited fd but stdio, the passed ones and ``keep``; dup stdio sources out of the way.

    Returns the close-on-exec duplicates of the stdio sources (-1: inherit), to be dup2'ed onto 0-2.
    """
    hi = []
    base = max([100, *plan.pass_fds]) + 1
    for src in plan.stdio:
        hi.append(-1 if src is None else N.check(_fcntl_dupfd(src, base), "duplicate a standard stream"))
    _close_all_but(sorted({*plan.pass_fds, *keep, *(f for f in hi if f >= 0)}))
    for i, fd in enumerate(hi):  # move them low again: posix_spawn refuses fds above RLIMIT_NOFILE
        if fd >= 0:
            low = _fcntl_dupfd(fd, 3)
            if 0 <= low < fd:
                os.close(fd)
                hi[i] = low
            elif low >= 0:
                os.close(low)
    for fd in plan.pass_fds:
        try:
            os.set_inheritable(fd, True)
        except OSError as e:
            raise N.JailOSError(e.errno, f"--pass-fd {fd}: {os.strerror(e.errno or 0)}") from None
    return hi


def _close_all_but(keep: list[int]) -> None:
    lo = 3
    for fd in keep + [1 << 31]:
        if fd < lo:
            continue
        if fd > lo:
            N.check(N.sysc("close_range", ctypes.c_uint(lo), ctypes.c_uint(min(fd - 1, 0xFFFFFFFF)), ctypes.c_uint(0)),
                    "close inherited fds (close_range; needs Linux 5.9)")
        lo = fd + 1


_fcntl = N.libc.fcntl


def _fcntl_dupfd(fd: int, base: int) -> int:
    return _fcntl(fd, 1030, base)  # F_DUPFD_CLOEXEC


def _load_filter(plan: Plan) -> None:
    if plan.program is not None:
        N.check(N.sysc("seccomp", N.c_long(_SECCOMP_SET_MODE_FILTER), N.c_long(0), ctypes.byref(plan.program.fprog)),
                "load the seccomp filter")


def _stage(R: dict, name: str) -> None:
    R["stage"] = name
    t = R.get("trace")
    if t is not None:
        t.append((name, time.perf_counter()))


def _lockdown(plan: Plan, R: dict) -> None:
    """Landlock, capabilities, no_new_privs, seccomp: the last steps before the command runs."""
    if plan.landlock is not None:
        _stage(R, "landlock")
        plan.landlock()
    _stage(R, "capabilities")
    _caps.drop(plan.keep_caps, plan.last_cap)
    _stage(R, "no_new_privs")
    N.check(N.prctl(N.PR_SET_NO_NEW_PRIVS, 1), "set no_new_privs")
    _stage(R, "seccomp")
    # The supervisor's listener filter (jail/supervisor.py) is handed out before the profile is
    # loaded, unless it must be the newest filter (--log-denials: see NotifySetup).
    if plan.notify is not None and not plan.notify.after_profile:
        plan.notify.handoff()
    _load_filter(plan)
    if plan.notify is not None and plan.notify.after_profile:
        plan.notify.handoff()


def _init_main(plan: Plan, R: dict, forked: bool) -> None:
    _stage(R, "init")
    if plan.die_with_parent:
        N.prctl(N.PR_SET_PDEATHSIG, signal.SIGKILL)
        if not _lifeline_ok(plan):
            raise N.JailOSError(3, "the calling process went away")
    if not plan.pidns:
        N.prctl(N.PR_SET_CHILD_SUBREAPER, 1)
    _stage(R, "user namespace")
    if forked and os.getuid() != 0:  # our own mm: let the id maps be writable (see _dumpable_enter)
        N.prctl(N.PR_SET_DUMPABLE, 1)
    _ns.enter(plan.ns)
    # From here on nothing may read or trace us (with the vfork launcher "us" includes the caller's
    # memory). Not earlier: an unprivileged caller can only write the id maps while dumpable.
    N.prctl(N.PR_SET_DUMPABLE, 0)
    hostproc = os.open(b"/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    R["hostproc"] = hostproc
    _stage(R, "mount")
    _mounts.apply(plan.mounts)
    _stage(R, "network")
    _ns.finish(plan.ns)
    _stage(R, "exec")
    exe = _which(plan.argv[0], plan.env.get("PATH", ""))
    if plan.fast:
        _stage(R, "fds")
        hi = _prepare_fds(plan, (plan.ready, plan.report, plan.lifeline, hostproc,
                                 plan.notify.child_end if plan.notify is not None else -1))
        _stage(R, "rlimit")
        _rl.apply(plan.rl_early)
        _lockdown(plan, R)
        _stage(R, "exec")
        actions = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(hi) if fd >= 0]
        extra = {} if plan.pidns or plan.new_session else {"setpgroup": 0}
        pid = os.posix_spawn(exe, plan.argv, plan.env, file_actions=actions, setsigmask=(), setsigdef=_SIGDEF,
                             setsid=plan.new_session, **extra)
        for fd in hi:
            if fd >= 0:
                os.close(fd)
    else:
        _stage(R, "fds")
        cg_fds = tuple(plan.cgroup.procs_fds) if plan.cgroup is not None else ()
        hi = _prepare_fds(plan, (plan.ready, plan.report, plan.lifeline, hostproc, *cg_fds,
                                 plan.notify.child_end if plan.notify is not None else -1))
        pid = _fork_command(plan, R, exe, hi)
        for fd in hi:
            if fd >= 0:
                os.close(fd)
        try:  # init itself needs no privilege from here on
            _caps.drop(frozenset(), plan.last_cap)
            N.prctl(N.PR_SET_NO_NEW_PRIVS, 1)
        except OSError:
            pass
    R["cpid"] = pid
    _stage(R, "run")
    if plan.ready >= 0:
        os.write(plan.ready, b"R")
    _supervise(plan, R, pid, hostproc, forked)


def _fork_command(plan: Plan, R: dict, exe: str, hi: list[int]) -> int:
    """The slow path: a full fork of init that sets itself up and loads the filter right before execve."""
    r, w = os.pipe()  # both close-on-exec: EOF on r means execve succeeded
    if plan.c_env is None:
        plan.prepare_execve()
    exe_b = os.fsencode(exe)
    argv_c, keep = _cstrings([os.fsencode(a) for a in plan.argv])
    pid = _raw_syscall(ctypes.c_long(N.NR["clone"]), ctypes.c_long(signal.SIGCHLD), None, None, None, None)
    if pid == 0:
        stage = "cgroup"
        try:
            os.close(r)
            if plan.cgroup is not None:
                plan.cgroup.join()
            if plan.ns.late_cgroupns:
                N.check(N.sysc("unshare", N.c_long(N.CLONE_NEWCGROUP)), "unshare the cgroup namespace")
            stage = "fds"
            for i, fd in enumerate(hi):
                if fd >= 0:
                    os.dup2(fd, i)
            stage = "rlimit"
            _rl.apply(plan.rl_early + plan.rl_late)
            if plan.new_session:
                os.setsid()
            elif not plan.pidns:
                os.setpgid(0, 0)
            sub: dict = {}
            try:
                _lockdown(plan, sub)
            finally:
                stage = sub.get("stage", stage)
            stage = "exec"
            _execve(exe_b, argv_c, plan.c_env)
            raise OSError(ctypes.get_errno(), f"execve {exe}: {os.strerror(ctypes.get_errno())}")
        except BaseException as e:  # noqa: BLE001 - everything goes to the parent, never up the stack
            try:
                os.write(w, marshal.dumps(_err(stage, e)))
            finally:
                os._exit(127)
    os.close(w)
    if pid < 0:
        os.close(r)
        N.check(-1, "fork the command")
    data = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        data += chunk
    os.close(r)
    del keep
    if data:
        os.waitpid(pid, 0)
        stage, err, msg = marshal.loads(data)
        R["stage"] = stage
        raise N.JailOSError(err, msg)
    return pid


def _host_pid_of(hostproc: int, nspid: int) -> int | None:
    """The host pid of our child ``nspid`` (still a zombie), from the host's /proc."""
    try:
        me = os.readlink("self", dir_fd=hostproc)
        fd = os.open(f"{me}/task/{me}/children", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)
        try:
            kids = os.read(fd, 65536).split()
        finally:
            os.close(fd)
        for k in kids:
            fd = os.open(f"{k.decode()}/status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)
            try:
                st = os.read(fd, 8192)
            finally:
                os.close(fd)
            for line in st.split(b"\n"):
                if line.startswith(b"NSpid:"):
                    ids = line.split()[1:]
                    if ids and int(ids[-1]) == nspid:
                        return int(ids[0])
    except (OSError, ValueError):
        pass
    return None


def _supervise(plan: Plan, R: dict, cpid: int, hostproc: int, forked: bool) -> None:
    """Reap until the command exits; forward signals; end everything on timeout or kill."""
    deadline = None if plan.timeout is None else time.monotonic() + plan.timeout
    ut = st = 0.0
    rss = 0
    vm_shared = not forked  # the vfork launcher: see _gc_hold
    while True:
        if vm_shared:
            _gc_release()
        try:
            if deadline is None:
                info = signal.sigwaitinfo(_WAITSET)
            else:
                left = deadline - time.monotonic()
                info = signal.sigtimedwait(_WAITSET, left) if left > 0 else None
        finally:
            if vm_shared:
                _gc_hold()
        if info is None:
            R["timeout"] = True
            break
        sig = info.si_signo
        if sig == CTRL_KILL:
            R["killed"] = True
            break
        if sig != signal.SIGCHLD:
            if info.si_code == _SI_KERNEL and plan.pidns and not plan.new_session:
                continue  # from the terminal to our process group, which the command is in: it has it already
            try:
                os.kill(cpid, sig)
            except OSError:
                pass
            continue
        try:
            peek = os.waitid(os.P_PID, cpid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            peek = None
        if peek is not None and peek.si_status == signal.SIGSYS and peek.si_code in (os.CLD_KILLED, os.CLD_DUMPED):
            R["sigsys_hostpid"] = cpid if not plan.pidns else _host_pid_of(hostproc, cpid)
        done = False
        while True:
            try:
                pid, status, ru = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            ut += ru.ru_utime
            st += ru.ru_stime
            rss = max(rss, ru.ru_maxrss)
            if pid == cpid:
                R["status"] = status
                done = True
        if done:
            break
    R["utime"], R["stime"], R["maxrss"] = ut, st, rss
    if not plan.pidns and (R.get("timeout") or R.get("killed")):
        for target in (-cpid, cpid):
            try:
                os.kill(target, signal.SIGKILL)
            except OSError:
                pass


def _init_entry(plan: Plan, R: dict, forked: bool) -> int:
    if not forked:
        _gc_hold()
    try:
        _init_main(plan, R, forked)
    except BaseException as e:  # noqa: BLE001 - init must always return normally
        R["error"] = _err(R.get("stage", "setup"), e)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            # A Python signal handler of the caller ran here (we run as the caller's thread): the
            # sandbox ends, and the caller gets the exception back once init has gone.
            R["raise"] = e
    finally:
        if not forked:
            _gc_release()
    return 0


# The garbage collector must not run in a vfork-launched init: it would finalize the caller's
# garbage here, in another process (closing fds in the wrong table, running __del__ in the
# sandbox). It is held off while init runs Python code, and let go while init sleeps.
_gc_lock = _thread.allocate_lock()
_gc_holders = 0
_gc_was_enabled = False


def _gc_hold() -> None:
    global _gc_holders, _gc_was_enabled
    with _gc_lock:
        if _gc_holders == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_holders += 1


def _gc_release() -> None:
    global _gc_holders
    with _gc_lock:
        _gc_holders -= 1
        if _gc_holders == 0 and _gc_was_enabled:
            gc.enable()


class SignalForwarder:
    """Send the signals of :data:`FORWARDED` that reach this process to the sandbox while it runs.

    The launching thread sleeps in ``clone()`` (or in a read) with them blocked, so nothing would
    happen until the sandbox ended: ``kill <pid of sysgate run>`` would be ignored. A helper
    thread takes them with ``sigwaitinfo`` and passes them to init, which passes them to the
    command (as ``docker run`` does). Those the terminal sent to the whole process group are
    skipped: the command got its own. Signals that come before init exists are kept till it does.
    """

    def __init__(self, pid: Any) -> None:
        self._pid = pid  # a ctypes int that receives init's pid
        self._old = _sigmask(signal.SIG_BLOCK, (*FORWARDED, _FWD_STOP))  # the helper thread inherits the mask
        self._done = _thread.allocate_lock()
        self._done.acquire()
        started = _thread.allocate_lock()
        started.acquire()
        self._tid = 0
        _thread.start_new_thread(self._loop, (started,))
        started.acquire()

    def _loop(self, started: Any) -> None:
        self._tid = _thread.get_ident()
        started.release()
        waitset = {*FORWARDED, _FWD_STOP}
        pending: list[int] = []
        try:
            while True:
                info = signal.sigtimedwait(waitset, 0.01) if pending else signal.sigwaitinfo(waitset)
                if info is not None:
                    if info.si_signo == _FWD_STOP:
                        break
                    if info.si_code != _SI_KERNEL:
                        pending.append(info.si_signo)
                pid = self._pid.value
                while pending and pid > 0:
                    try:
                        os.kill(pid, pending.pop(0))
                    except OSError:
                        pending.clear()
        finally:
            self._done.release()

    def stop(self) -> None:
        """Stop the helper thread and unblock the signals again."""
        signal.pthread_kill(self._tid, _FWD_STOP)
        self._done.acquire()
        _sigmask(signal.SIG_SETMASK, self._old)


# ---------------------------------------------------------------------------------------------
# vfork launcher

_STACK_SIZE = 1 << 20
_stacks: list[int] = []
_stack_lock = _thread.allocate_lock()
_dump_lock = _thread.allocate_lock()
_dump_users = 0
_dump_saved = 1


def _get_stack() -> int:
    with _stack_lock:
        if _stacks:
            return _stacks.pop()
    base = N.mmap(None, _STACK_SIZE, 3, 0x22 | 0x20000, -1, 0)  # RW, PRIVATE|ANONYMOUS|STACK
    if base in (None, N.MAP_FAILED):
        N.check(-1, "allocate a stack for the sandbox init")
    N.mprotect(base, 4096, 0)  # guard page
    return int(base)


def _put_stack(base: int) -> None:
    with _stack_lock:
        _stacks.append(base)


class VforkBusy(Exception):
    """An unprivileged caller cannot use the vfork launcher now: another vfork-launched sandbox runs,
    or the caller is not dumpable (see :func:`_dumpable_enter`); the fork launcher is used instead."""


def _dumpable_enter(now: bool) -> None:
    """Count a vfork-launched init; make the shared mm non-dumpable now (root) or let init do it.

    Without root, init must write its id maps while the mm is still dumpable (the map files of a
    non-dumpable process belong to root), so a second one cannot start while one runs.
    """
    global _dump_users, _dump_saved
    with _dump_lock:
        if not now and (_dump_users or N.prctl(N.PR_GET_DUMPABLE) != 1):
            raise VforkBusy()
        if _dump_users == 0:
            _dump_saved = N.prctl(N.PR_GET_DUMPABLE)
        if now:
            N.prctl(N.PR_SET_DUMPABLE, 0)
        _dump_users += 1


def _dumpable_exit() -> None:
    global _dump_users
    with _dump_lock:
        _dump_users -= 1
        if _dump_users == 0 and _dump_saved > 0:
            N.prctl(N.PR_SET_DUMPABLE, _dump_saved)


def launch_vfork(plan: Plan, R: dict, ptid: ctypes.c_int) -> int:
    """Run init to completion (the calling thread sleeps meanwhile); returns init's pid, unreaped.

    ``ptid`` receives init's pid as soon as it exists (other threads may read it).
    """
    _dumpable_enter(N.host_root())
    stack = _get_stack()
    cb = N.CLONE_FN(lambda _arg: _init_entry(plan, R, False))
    flags = plan.ns.clone_flags | N.CLONE_VM | N.CLONE_VFORK | N.CLONE_PARENT_SETTID | signal.SIGCHLD
    old = _sigmask(signal.SIG_BLOCK, _ALL)
    home = -1
    try:
        if plan.netns_fd >= 0:
            from . import netpool as _netpool  # loaded already by whoever took the namespace from the pool

            home = _netpool.enter(plan.netns_fd)
        pid = N.clone(cb, stack + _STACK_SIZE - 64, flags, None, ctypes.byref(ptid), None, None)
        err = ctypes.get_errno()
    finally:
        if home >= 0:
            _netpool.leave(home)
        _dumpable_exit()
        _sigmask(signal.SIG_SETMASK, old)
        _put_stack(stack)
    if pid < 0:
        raise N.JailOSError(err, f"create the sandbox namespaces (clone): {os.strerror(err)}{_clone_hint(err)}")
    return pid


def _clone_hint(err: int) -> str:
    if err in (1, 28, 22):  # EPERM, ENOSPC, EINVAL
        return " (user namespaces disabled or exhausted? see /proc/sys/user/max_user_namespaces)"
    return ""


# ---------------------------------------------------------------------------------------------
# fork launcher

def launch_fork(plan: Plan) -> tuple[int, int]:
    """Fork a helper that clones init as our child (CLONE_PARENT) and leaves.

    Returns (init pid, read end of the report pipe); init writes a marshal'ed report at its end.
    """
    if plan.netns_fd >= 0:
        from . import netpool as _netpool  # before fork: the helper imports nothing
    r, w = os.pipe()
    hr, hw = os.pipe()
    plan.report = w
    helper = os.fork()
    if helper == 0:
        try:
            os.close(hr)
            flags = plan.ns.clone_flags | N.CLONE_PARENT | signal.SIGCHLD
            _sigmask(signal.SIG_SETMASK, _ALL)
            if plan.netns_fd >= 0:
                N.check(_netpool._setns(plan.netns_fd, N.CLONE_NEWNET), "enter the prepared network namespace")
            pid = _raw_syscall(ctypes.c_long(N.NR["clone"]), ctypes.c_long(flags), None, None, None, None)
            if pid == 0:
                os.close(hw)
                R: dict = {}
                _init_entry(plan, R, True)
                R.pop("hostproc", None)
                os.write(w, marshal.dumps(R))
                os._exit(0)
            err = ctypes.get_errno()
            os.write(hw, pid.to_bytes(8, "little", signed=True) + err.to_bytes(4, "little"))
        finally:
            os._exit(0)
    os.close(w)
    os.close(hw)
    plan.report = -1
    os.waitpid(helper, 0)
    head = os.read(hr, 12)
    os.close(hr)
    if len(head) < 12:
        os.close(r)
        raise N.JailOSError(0, "create the sandbox: the helper process died")
    pid = int.from_bytes(head[:8], "little", signed=True)
    if pid < 0:
        os.close(r)
        err = int.from_bytes(head[8:], "little")
        raise N.JailOSError(err, f"create the sandbox namespaces (clone): {os.strerror(err)}{_clone_hint(err)}")
    return pid, r
