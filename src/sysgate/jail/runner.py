"""Starting a sandbox: the supervisor, the command's PID 1, and how the command is spawned.

Process layout::

    caller --clone(CLONE_NEW*)--> supervisor: PID 1 of PID namespace A
                                    |-- unshare(CLONE_NEWPID): its children are born in B, a child of A
                                    |-- B's PID 1: clone(CLONE_VM|CLONE_FILES) running libc's pause()
                                    `-- the command: PID 2 of B

**The supervisor** is created by ``clone()`` with every namespace flag: it maps ids, builds the
filesystem, spawns the command, reaps it, forwards signals, enforces the timeout and reports;
when it exits the kernel kills everything left in A, and so in B, before the caller can reap
it. It runs Python, so the command must not be able to name it: it is in A, the command in B,
and no pid in B is the supervisor's (no signal, ``prlimit``, ``/proc`` entry can reach it).

**B's PID 1** runs no code of ours: it is cloned with ``pause()`` as its function, inherits a
mask blocking every signal and SIGCHLD ignored (so the kernel reaps the orphans it adopts), and
only the kernel's SIGKILL at A's end ends it (or ours, once the command is gone). It has the
sandbox's credentials (a root caller's: the unprivileged host id; see _unprivileged_pid1), so it
is never a host-root task sharing memory a filtered supervisor can write, and the supervisor may
signal it. It shares the supervisor's memory, so it must stay
out of reach: the memory is non-dumpable and B's procfs is mounted ``hidepid=ptraceable``, so
``/proc/1`` does not exist for the command. B's procfs is mounted by the supervisor with the
procfs ``pidns`` parameter (Linux 6.18); on older kernels a helper born in B mounts it and exits.

By default (the *vfork* launcher) the supervisor is created with ``CLONE_VM|CLONE_VFORK`` on a
stack of its own and runs a Python callback: it shares the caller's memory like a thread would
(same interpreter, GIL taken as usual) while the calling thread sleeps in ``clone()`` until it
exits. That avoids copying and later tearing down the caller's whole address space, which is
most of the cost of a fork from Python. It is used only on the fast path below with a PID
namespace. Consequences the code takes care of:

* all signals are blocked in the calling thread across ``clone()`` (the supervisor inherits the
  mask, so the caller's Python signal handlers never run in it); it waits with ``sigtimedwait``;
* the caller's memory must not be reachable: the supervisor makes the shared ``mm``
  non-dumpable (so the caller is non-dumpable while a sandbox runs; the previous value is
  restored once the supervisor, and so B's PID 1, has been reaped);
* it never forks: a copy of a multi-threaded caller's memory holds the other threads' locks
  (the GIL's among them) and would wait on them for ever;
* it is never SIGKILLed by us (it could be holding the GIL): ``Sandbox.kill()`` sends it a control
  signal, which it accepts only with ``si_code`` SI_USER from its parent (``si_pid``, kernel-filled;
  as PID 1 of a PID namespace it sees its parent, and every sender outside, as pid 0: what the
  check keeps out is the command, and anything else in the sandbox).

The *fork* launcher (cgroup limits, ``as``/``data`` rlimits, filters the supervisor cannot run
under, ``--share pid``, ``die_with_parent=False`` (a supervisor in our memory cannot outlive us),
``launcher="fork"``, interpreters the vfork trick is not validated for)
forks a helper that clones the supervisor with ``CLONE_PARENT``; the supervisor then has its own
single-threaded copy of memory (garbage collection off), so forking the command from it is safe,
and it may be SIGKILLed.

**The command**: on the fast path the supervisor sets rlimits, marks every fd close-on-exec,
applies Landlock (at least the scope of signals and abstract sockets), drops capabilities, sets
no_new_privs, loads the seccomp filter and ``posix_spawn``\\ s the command (a vfork: nothing to
copy), so the supervisor, as bubblewrap's init, is itself under the filter. This is used when the
filter allows what the supervisor still does afterwards (checked in the emulator, see
:mod:`.filters`), there are no cgroup limits, no ``as``/``data`` rlimits and a PID namespace.
Otherwise (the *fork* path) the supervisor forks a copy that does the same steps itself, seccomp
last, right before ``execve``. Either way the command starts in a session of its own (with a
terminal: on a pseudo-terminal of the sandbox's devpts, see :mod:`.terminal`), with an empty
signal mask and every signal at its default.
"""
from __future__ import annotations

import _thread
import gc
import marshal
import os
import sys
import time

from .. import _startup
from .._startup import ctypes, signal

_sigmask = signal.pthread_sigmask

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from typing import Any

from ..kernel import mount as M
from ..kernel import process as P
from ..kernel import syscall as N
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
_SI_USER = 0  # si_code of kill(2); rt_sigqueueinfo(2) may not forge it for another process
_FWD_STOP = signal.SIGRTMIN + 3
_ALL = signal.valid_signals()
# Every disposition back to the default for the command: Python ignores SIGPIPE and SIGXFSZ, and
# the caller may ignore more (nohup, services); ignored dispositions survive execve.
_SIGDEF = _ALL - {signal.SIGKILL, signal.SIGSTOP}
_SECCOMP_MODE_DEAD = b"3"  # /proc/PID/status "Seccomp:" of a task a seccomp filter killed (Linux 5.19+)
_SIG_DFL, _SIG_IGN = 0, 1
_O_PTY = os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC
_TIOCSPTLCK, _TIOCGPTN, _TCSETS, _TIOCSWINSZ = 0x40045431, 0x80045430, 0x5402, 0x5414

_raw_syscall = N.libc_gil.syscall  # keeps the GIL across the call: the child is born holding it
_execve = N.libc["execve"]
_execve.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_void_p]
_munmap = P.munmap


def vfork_supported() -> bool:
    """The vfork launcher runs Python on a foreign stack in a CLONE_VM child: it is used only on
    the CPython versions it was validated on (:data:`sysgate._startup.VALIDATED`; 3.14 checks the
    C stack against the thread's own), elsewhere the fork launcher."""
    return _startup.VALIDATED


def _cstrings(items: list[bytes]) -> tuple[Any, Any]:
    arr = (ctypes.c_char_p * (len(items) + 1))(*items, None)
    return arr, items


class Plan:
    """Everything init needs, computed by the caller so init does no lookups or imports."""

    argv: list[str]
    env: dict[str, str]
    ns: _ns.NsPlan
    mounts: _mounts.MountPlan
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
    deadline: float | None  # time.monotonic() by which the whole sandbox ends (from the first set-up step)
    cwd: bytes  # working directory inside
    cwd_given: bool  # asked for (--chdir): a set-up failure if missing; else a note and "/"
    pty: Any  # (socket fd, std indices, termios bytes, winsize bytes, send_fds) or None
    die_with_parent: bool
    pidns: bool
    netns_fd: int  # a prepared network namespace to be born in (netpool)
    lifeline: int  # read end; EOF means the caller is gone
    lifeline_w: int  # the caller's write end (init closes its copy)
    ready: int  # write end: b"R" once the command runs
    report: int  # fork launcher: where init writes its report
    notify: Any  # supervisor.NotifySetup: the listener filter installed and handed out before execve
    # vfork launcher: stacks lent by the caller from its pools (0: init maps its own), see launch_vfork
    helper_stack: int
    pid1_stack: int
    # prepared for execve(2) in the forked command process (no allocation after the filter)
    c_env: Any
    _keep: Any

    def __init__(self, argv: list[str], env: dict[str, str], ns: _ns.NsPlan, mounts: _mounts.MountPlan,
                 cgroup: Any = None, program: Any = None, fast: bool = True,
                 keep_caps: frozenset = frozenset(), last_cap: int = 40, rl_early: list | None = None,
                 rl_late: list | None = None, landlock: Any = None, stdio: list | None = None, pass_fds: tuple = (),
                 new_session: bool = False, timeout: float | None = None, deadline: float | None = None,
                 cwd: bytes = b"/", cwd_given: bool = False, pty: Any = None, die_with_parent: bool = True,
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
        self.deadline = deadline
        self.cwd = cwd
        self.cwd_given = cwd_given
        self.pty = pty
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
        self.helper_stack = 0
        self.pid1_stack = 0

    def prepare_execve(self) -> None:
        """Build the C environment array for the forked path (only it calls execve itself)."""
        envb = [os.fsencode(f"{k}={v}") for k, v in self.env.items()]
        self.c_env, self._keep = _cstrings(envb)


class SetupBug(RuntimeError):
    """An exception in the sandbox's set-up that is not an ``OSError`` (what the kernel refused):
    a bug of ours, or a value that got past the option checks. Raised to the caller as what it is,
    never as a :class:`SandboxError` (a set-up failure, exit 125): the CLI shows it as an internal
    error, with where it happened in the sandbox's init."""

    def __init__(self, stage: str, text: str, where: str) -> None:
        super().__init__(f"sandbox set-up, stage {stage}: {text}\n(in the sandbox's init:)\n{where}")
        self.stage, self.text, self.where = stage, text, where


def _err(stage: str, e: BaseException) -> tuple[str, int, str, str]:
    """(stage, errno, message, where): ``where`` is empty for what the kernel refused (an OSError),
    else the frames of a bug (see :class:`SetupBug`)."""
    if isinstance(e, SetupBug):
        return e.stage, 0, e.text, e.where
    if isinstance(e, OSError):
        if isinstance(e, N.KernelError):
            msg = e.strerror
        else:
            msg = f"{e.strerror or e}" + (f": {e.filename}" if e.filename else "")
        return stage, e.errno or 0, str(msg), ""
    return stage, 0, f"{type(e).__name__}: {e}", _where(e)


def _where(e: BaseException) -> str:
    """The frames of ``e``'s traceback, as ``traceback`` prints them (init imports nothing)."""
    lines = []
    tb = e.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        lines.append(f'  File "{code.co_filename}", line {tb.tb_lineno}, in {code.co_name}')
        tb = tb.tb_next
    return "\n".join(lines) or "  (no frames)"


def _which(cmd: str, path: str) -> str:
    if "/" in cmd:
        return cmd
    for d in path.split(":"):
        p = os.path.join(d or ".", cmd)
        if os.access(p, os.X_OK) and not os.path.isdir(p):
            return p
    raise N.KernelError(2, f"{cmd}: command not found in the sandbox")


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
            raise N.KernelError(e.errno, f"--pass-fd {fd}: {os.strerror(e.errno or 0)}") from None
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


_fcntl = N.libc["fcntl"]


def _fcntl_dupfd(fd: int, base: int) -> int:
    return _fcntl(fd, 1030, base)  # F_DUPFD_CLOEXEC


def _load_filter(plan: Plan) -> None:
    if plan.program is not None:
        N.check(N.sysc("seccomp", N.c_long(N.SECCOMP_SET_MODE_FILTER), N.c_long(0), ctypes.byref(plan.program.fprog)),
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
    N.check(N.raw_prctl(N.PR_SET_NO_NEW_PRIVS, 1), "set no_new_privs")
    _stage(R, "seccomp")
    # The supervisor's listener filter (jail/supervisor.py) is handed out before the profile is
    # loaded, unless it must be the newest filter (--log-denials: see NotifySetup).
    if plan.notify is not None and not plan.notify.after_profile:
        plan.notify.handoff()
    _load_filter(plan)
    if plan.notify is not None and plan.notify.after_profile:
        plan.notify.handoff()


class _Late(Exception):
    """The timeout expired during set-up: the result is a timeout, like any other."""


def _landlock_scope_only() -> Any:
    ll = sys.modules.get(__package__ + ".landlock")
    return None if ll is None else ll.scope


def _check_deadline(plan: Plan) -> None:
    if plan.deadline is not None and time.monotonic() >= plan.deadline:
        raise _Late()


def _init_main(plan: Plan, R: dict, forked: bool) -> None:
    _stage(R, "init")
    if plan.die_with_parent:
        N.raw_prctl(N.PR_SET_PDEATHSIG, signal.SIGKILL)
        if not _lifeline_ok(plan):
            raise N.KernelError(3, "the calling process went away")
    if not plan.pidns:
        N.raw_prctl(N.PR_SET_CHILD_SUBREAPER, 1)
    _stage(R, "user namespace")
    if forked and os.getuid() != 0:  # our own mm: let the id maps be writable (see _dumpable_enter)
        N.raw_prctl(N.PR_SET_DUMPABLE, 1)
    _ns.enter(plan.ns)
    # From here on nothing may read or trace us (with the vfork launcher "us" includes the caller's
    # memory). Not earlier: an unprivileged caller can only write the id maps while dumpable.
    N.raw_prctl(N.PR_SET_DUMPABLE, 0)
    if plan.pidns and plan.landlock is _landlock_scope_only():
        # The scope alone does not touch the filesystem: enter it before creating PID 1, so that PID 1
        # is in our domain and we may end it as soon as the command is gone (see _supervise). Not
        # without a PID namespace: the command, in our domain, could then signal us.
        _stage(R, "landlock")
        plan.landlock()
        plan.landlock = None
    hostproc = os.open(b"/proc", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    R["hostproc"] = hostproc
    try:  # the host's: the sandbox's root may have none
        quiet = os.open(b"/dev/null", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        quiet = -1
    _check_deadline(plan)
    _stage(R, "mount")
    if plan.pidns:
        # We are PID 1 of a PID namespace of our own; the command's is a child of it, so no pid it
        # can name is ours. Our first child there is its PID 1.
        if plan.ns.userns_fd >= 0:
            _unprivileged_pid1(plan, R, hostproc)
        else:
            N.check(N.sysc("unshare", N.c_long(P.CLONE_NEWPID)), "create the command's PID namespace (unshare)")
            _start_pid1(plan, R)
        plan.mounts.proc_mounter = _proc_mounter(hostproc)
    _mounts.apply(plan.mounts)
    _check_deadline(plan)
    _stage(R, "network")
    _ns.finish(plan.ns)
    _stage(R, "cwd")
    _chdir(plan)
    pty = _open_pty(plan) if plan.pty is not None else None
    _stage(R, "exec")
    exe = _which(plan.argv[0], plan.env.get("PATH", ""))
    _check_deadline(plan)
    if plan.fast:
        _stage(R, "fds")
        hi = _prepare_fds(plan, (plan.ready, plan.report, plan.lifeline, hostproc, quiet, pty[0] if pty else -1,
                                 plan.notify.child_end if plan.notify is not None else -1,
                                 plan.notify.over_fd if plan.notify is not None and not forked else -1))
        _stage(R, "rlimit")
        _rl.apply(plan.rl_early)
        _lockdown(plan, R)
        _stage(R, "exec")
        actions: list[tuple] = [(os.POSIX_SPAWN_DUP2, fd, i) for i, fd in enumerate(hi) if fd >= 0]
        if pty is not None:  # after setsid: the first open of the slave makes it the controlling terminal
            actions = [a for a in actions if a[2] not in plan.pty[1]]
            actions += [(os.POSIX_SPAWN_OPEN, i, pty[1], os.O_RDWR, 0) for i in plan.pty[1]]
        pid = os.posix_spawn(exe, plan.argv, plan.env, file_actions=actions, setsigmask=(), setsigdef=_SIGDEF,
                             setsid=True)
        for fd in hi:
            if fd >= 0:
                os.close(fd)
    else:
        _stage(R, "fds")
        cg_fds = tuple(plan.cgroup.procs_fds) if plan.cgroup is not None else ()
        hi = _prepare_fds(plan, (plan.ready, plan.report, plan.lifeline, hostproc, quiet, pty[0] if pty else -1,
                                 *cg_fds, plan.notify.child_end if plan.notify is not None else -1))
        pid = _fork_command(plan, R, exe, hi, pty)
        for fd in hi:
            if fd >= 0:
                os.close(fd)
        try:  # the supervisor itself needs no privilege from here on
            _caps.drop(frozenset(), plan.last_cap)
            N.raw_prctl(N.PR_SET_NO_NEW_PRIVS, 1)
        except OSError:
            pass
    if pty is not None:
        os.close(pty[0])  # the command has its own; the relay sees EOF once the last one is closed
    if quiet >= 0:
        # Our copies of the caller's stdio: the command has its own now. Held, they would keep the
        # caller's pipes open as long as the sandbox runs (after the caller too, with
        # die_with_parent=False): whoever reads the caller's output would wait for the sandbox.
        for i in range(3):
            os.dup2(quiet, i)
        os.close(quiet)
    R["cpid"] = pid
    _stage(R, "run")
    if plan.ready >= 0:
        os.write(plan.ready, b"R")
    if plan.notify is not None and not forked:
        plan.notify.go()  # the caller's supervisor thread, deferred so as not to race the launch
    _supervise(plan, R, pid, hostproc, forked)


# PID 1 of the command's PID namespace: a task that runs no code of ours at all. It is cloned with
# libc's pause() as its function, so it sleeps from its first instruction; every signal is blocked
# (inherited) and SIGCHLD ignored (so the kernel reaps the orphans it adopts). It shares our memory
# and fd table (nothing to copy), is non-dumpable with it, and is hidden by hidepid.
_libc_signal = N.libc["signal"]
_libc_signal.argtypes = [ctypes.c_int, ctypes.c_void_p]
_PAUSE_FN = P.CLONE_FN(ctypes.c_void_p.from_buffer(N.libc.pause).value)  # type: ignore[arg-type]  # never NULL
PID1_STACK = 64 << 10
_CLONE_FILES = P.CLONE_FILES


def _start_pid1(plan: Plan, R: dict, flags: int = 0) -> None:
    # the caller's (vfork launcher), else mapped here: no lock, we may be a forked copy
    base = plan.pid1_stack or P.alloc_stack(PID1_STACK, "the sandbox's PID 1")
    R["pid1_stack"] = base
    _libc_signal(signal.SIGCHLD, _SIG_IGN)  # for the child only: restored below
    try:
        flags |= P.CLONE_VM | _CLONE_FILES | signal.SIGCHLD
        pid = P.clone(_PAUSE_FN, int(base) + PID1_STACK - 64, flags, None, None, None, None)
        err = ctypes.get_errno()
    finally:
        _libc_signal(signal.SIGCHLD, _SIG_DFL)  # we wait for the command: never auto-reap (even if the caller did)
    if pid < 0:
        raise N.KernelError(err, f"create the sandbox's PID 1 (clone): {os.strerror(err)}")
    R["pid1"] = pid


_CLONE_PARENT = P.CLONE_PARENT


def _unprivileged_pid1(plan: Plan, R: dict, hostproc: int) -> None:
    """A root caller's sandbox: PID 1 must have the sandbox's credentials (an unprivileged host id),
    never be a host-root task sharing our memory (which the command's filter may rule), and we must
    be allowed to end it. But we mount the procfs as host root, and need PID 1 first (a PID
    namespace has no ``pid_for_children`` link before its first process). So a helper sharing our
    memory and fds makes the namespace, takes the sandbox's ids and clones PID 1 as our child
    (CLONE_PARENT); we then enter the namespace for our children while still host root."""
    def make() -> None:
        N.check(N.ksysc("unshare", P.CLONE_NEWPID), "create the command's PID namespace (unshare)")
        _ns.take_ids(plan.ns)
        _start_pid1(plan, R, _CLONE_PARENT)
        R["pidns_fd"] = os.open("self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)

    _helper_run(make, _CLONE_FILES, "create the sandbox's PID 1", plan.helper_stack)
    fd = R.pop("pidns_fd")
    try:
        N.check(N.ksysc("setns", fd, P.CLONE_NEWPID), "enter the command's PID namespace")
    finally:
        os.close(fd)


def _proc_mounter(hostproc: int) -> Any:
    """Mount the procfs of the PID namespace our children are born in (we are not in it): the
    procfs ``pidns`` parameter (Linux 6.18); else a helper born in it mounts it (see _helper_mount)."""
    def mount_proc(target: bytes) -> None:
        nsfd = os.open("self/ns/pid_for_children", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)
        fs = -1
        try:
            fs = N.check(M.fsopen(b"proc", M.FSOPEN_CLOEXEC), "mount /proc (fsopen)")
            if M.fsconfig(fs, M.FSCONFIG_SET_FD, b"pidns", None, nsfd) < 0:
                os.close(fs)
                fs = -1
                _helper_mount(target)  # an older kernel: no pidns parameter
                return
            N.check(M.fsconfig(fs, M.FSCONFIG_SET_STRING, b"hidepid", _mounts.PROC_HIDEPID, 0), "mount /proc (hidepid)")
            N.check(M.fsconfig(fs, M.FSCONFIG_CMD_CREATE, None, None, 0), "mount /proc (create)")
            attrs = M.MOUNT_ATTR_NOSUID | M.MOUNT_ATTR_NODEV | M.MOUNT_ATTR_NOEXEC
            mfd = N.check(M.fsmount(fs, M.FSMOUNT_CLOEXEC, attrs), "mount /proc (fsmount)")
            try:
                # The mount plan names its targets as /proc/self/fd/N (opened without following
                # links): move_mount wants the fd itself there, with T_EMPTY_PATH.
                if target.startswith(b"/proc/self/fd/"):
                    to_fd, to_path, flags = int(target[14:]), b"", M.MOVE_MOUNT_F_EMPTY_PATH | M.MOVE_MOUNT_T_EMPTY_PATH
                else:
                    to_fd, to_path, flags = M.AT_FDCWD, target, M.MOVE_MOUNT_F_EMPTY_PATH
                N.check(M.move_mount(mfd, b"", to_fd, to_path, flags),
                        "attach /proc")
            finally:
                os.close(mfd)
        finally:
            if fs >= 0:
                os.close(fs)
            os.close(nsfd)
    return mount_proc


# Older kernels: a helper born in the new PID namespace mounts its procfs and exits. It is a
# CLONE_VM|CLONE_VFORK child running a Python callback, like the vfork launcher's supervisor: we
# sleep in clone() till it has exited, so its frames come and go on top of ours.
_HELPER: dict[int, tuple] = {}


def _helper_main(key: int) -> int:
    fn, out = _HELPER[key]
    try:
        fn()
    except BaseException as e:  # noqa: BLE001 - to the supervisor, never up this borrowed stack
        out.append(e)
    return 0


_HELPER_CB = P.CLONE_FN(_helper_main)


def _helper_mount(target: bytes) -> None:
    def mount() -> None:
        N.check(M.mount(b"proc", target, b"proc", M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC, _mounts.PROC_OPTIONS),
                "mount /proc")
    _helper_run(mount, 0, "mount /proc")


def _helper_run(fn: Any, flags: int, what: str, lent: int = 0) -> None:
    """Run ``fn`` in a CLONE_VM|CLONE_VFORK child (we sleep till it has exited); re-raise its error.
    ``lent``: a stack of _STACK_SIZE bytes the caller lent (see launch_vfork), else one is mapped here."""
    stack = lent or P.alloc_stack(1 << 20, f"a helper to {what}")
    out: list = []
    key = id(out)
    _HELPER[key] = (fn, out)
    try:
        pid = P.clone(_HELPER_CB, int(stack) + (1 << 20) - 64, flags | P.CLONE_VM | P.CLONE_VFORK | signal.SIGCHLD,
                      ctypes.c_void_p(key), None, None, None)
        err = ctypes.get_errno()
        if pid < 0:
            raise N.KernelError(err, f"{what} (clone): {os.strerror(err)}")
        os.waitpid(pid, 0)
        # Its SIGCHLD stays pending (every signal is blocked here): take it now, or our supervision
        # loop would first wake for it once the command runs, and peek and reap for nothing. No
        # command exists yet, and a PID 1 that died meanwhile is reaped by pid at the end anyway.
        _raw_syscall(_NR_SIGTIMEDWAIT, ctypes.byref(_CHLD_SET), None, ctypes.byref(_NO_WAIT), _SIGSET_SIZE)
    finally:
        _HELPER.pop(key, None)
        if not lent:
            _munmap(stack, 1 << 20)
    if out:
        raise out[0]


_NR_SIGTIMEDWAIT = ctypes.c_long(N.NR["rt_sigtimedwait"])
_CHLD_SET = ctypes.c_uint64(1 << (signal.SIGCHLD - 1))  # the kernel's sigset_t: bit N-1 is signal N
_NO_WAIT = (ctypes.c_long * 2)(0, 0)  # struct timespec {0, 0}: poll
_SIGSET_SIZE = ctypes.c_long(8)


def _chdir(plan: Plan) -> None:
    """As bubblewrap: the asked-for directory or fail; else the caller's if visible, else ``/``."""
    os.chdir(b"/")  # our old cwd is in the detached host tree: never let the command inherit it
    if plan.cwd == b"/":
        return
    try:
        os.chdir(plan.cwd)
    except OSError as e:
        if plan.cwd_given:
            raise N.KernelError(e.errno, f"--chdir {os.fsdecode(plan.cwd)}: {os.strerror(e.errno or 0)} "
                                         "inside the sandbox") from None
        note = (f"sysgate: note: the current directory {os.fsdecode(plan.cwd)} is not visible in the sandbox; "
                "starting in /\n").encode(errors="surrogateescape")
        dest = plan.stdio[2]
        try:
            os.write(2 if dest is None else dest, note)
        except OSError:
            pass


def _open_pty(plan: Plan) -> tuple[int, bytes]:
    """A pseudo-terminal of the sandbox's own devpts: the master goes to the caller's relay; returns
    (an open slave fd, kept till the command has its own; the slave's path inside)."""
    sock, _idx, tio, ws, send_fds = plan.pty
    m = os.open(b"/dev/ptmx", _O_PTY)
    try:
        zero = ctypes.c_int(0)
        N.check(P.ioctl(m, ctypes.c_ulong(_TIOCSPTLCK), ctypes.byref(zero)), "unlock the pseudo-terminal")
        n = ctypes.c_int(0)
        N.check(P.ioctl(m, ctypes.c_ulong(_TIOCGPTN), ctypes.byref(n)), "name the pseudo-terminal")
        path = b"/dev/pts/%d" % n.value
        slave = os.open(path, _O_PTY)
        for req, data in ((_TCSETS, tio), (_TIOCSWINSZ, ws)):
            if data:
                buf = ctypes.create_string_buffer(data, len(data))
                N.check(P.ioctl(slave, ctypes.c_ulong(req), buf), "set up the pseudo-terminal")
        send_fds(sock, m)
    finally:
        os.close(m)
    return slave, path


def _reset_signals() -> None:
    """In the forked command: every disposition to default, then an empty mask (that order: a
    signal pending now must not run a handler of the caller's)."""
    for sig in _SIGDEF:
        _libc_signal(sig, _SIG_DFL)
    _sigmask(signal.SIG_SETMASK, ())


def _fork_command(plan: Plan, R: dict, exe: str, hi: list[int], pty: tuple | None) -> int:
    """The slow path: a full fork of the supervisor that sets itself up and loads the filter right
    before execve. Only ever a fork of a single-threaded process (see launch_fork)."""
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
                N.check(N.sysc("unshare", N.c_long(P.CLONE_NEWCGROUP)), "unshare the cgroup namespace")
            stage = "fds"
            for i, fd in enumerate(hi):
                if fd >= 0:
                    os.dup2(fd, i)
            stage = "rlimit"
            _rl.apply(plan.rl_early + plan.rl_late)
            os.setsid()
            if pty is not None:
                t = os.open(pty[1], os.O_RDWR)  # the first open after setsid: our controlling terminal
                for i in plan.pty[1]:
                    os.dup2(t, i)
                if t not in plan.pty[1]:
                    os.close(t)
            _reset_signals()
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
        stage, err, msg, where = marshal.loads(data)
        R["stage"] = stage
        if where:
            raise SetupBug(stage, msg, where)
        raise N.KernelError(err, msg)
    return pid


def _host_pid_of(hostproc: int, nspid: int) -> int | None:
    """The host pid of our child ``nspid`` (a pid in our PID namespace; the child is still a
    zombie), from the host's /proc: the entry of its NSpid line at our namespace's level."""
    try:
        me = os.readlink("self", dir_fd=hostproc)
        level = len(_nspid(hostproc, me)) - 1
        fd = os.open(f"{me}/task/{me}/children", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)
        try:
            kids = os.read(fd, 65536).split()
        finally:
            os.close(fd)
        for k in kids:
            ids = _nspid(hostproc, k.decode())
            if len(ids) > level and ids[level] == nspid:
                return ids[0]
    except (OSError, ValueError):
        pass
    return None


def _nspid(hostproc: int, pid: str) -> list[int]:
    fd = os.open(f"{pid}/status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)
    try:
        st = os.read(fd, 16384)
    finally:
        os.close(fd)
    for line in st.split(b"\n"):
        if line.startswith(b"NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


def _seccomp_killed(hostproc: int, pid: int) -> bool:
    """Whether a seccomp filter killed ``pid`` (a zombie child, seen in the host's /proc): the
    kernel marks the task that a filter kills (seccomp mode "dead"); nothing else can set it."""
    try:
        fd = os.open(f"{pid}/status", os.O_RDONLY | os.O_CLOEXEC, dir_fd=hostproc)
        try:
            st = os.read(fd, 16384)
        finally:
            os.close(fd)
    except OSError:
        return False
    for line in st.split(b"\n"):
        if line.startswith(b"Seccomp:"):
            return line.split()[1:2] == [_SECCOMP_MODE_DEAD]
    return False


def _from_caller(info: Any, plan: Plan) -> bool:
    """A control signal counts only if kill(2)ed by the caller (our parent): si_code SI_USER cannot
    be forged for another process, and si_pid is the sender's pid as the kernel sees it. As PID 1
    of a PID namespace we see our parent, and any sender outside it, as pid 0, and the sandbox's
    processes as pids of their own: the check keeps out the sandbox, not the host."""
    return info.si_code == _SI_USER and info.si_pid == os.getppid()


def _supervise(plan: Plan, R: dict, cpid: int, hostproc: int, forked: bool) -> None:
    """Reap until the command exits; forward signals; end the command on timeout or kill."""
    deadline = plan.deadline
    ut = st = 0.0
    rss = 0
    vm_shared = not forked  # the vfork launcher: see _gc_hold
    while True:
        if vm_shared:
            _gc_release()
        info: signal.struct_siginfo | None
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
            if _from_caller(info, plan):
                R["killed"] = True
                break
            continue
        if sig != signal.SIGCHLD:
            if sig == signal.SIGWINCH and plan.pty is not None:
                continue  # the relay resizes the sandbox's terminal, which tells its foreground group
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
            host = cpid if not plan.pidns else _host_pid_of(hostproc, cpid)
            R["sigsys_hostpid"] = host
            R["seccomp_dead"] = host is not None and _seccomp_killed(hostproc, host)
        done = False
        while True:
            got = P.reap_any()  # wait4(-1, WNOHANG), without os.wait4's import of resource
            if got is None or got[0] == 0:
                break
            pid, status, u, s, maxrss = got
            ut += u
            st += s
            rss = max(rss, maxrss)
            if pid == cpid:
                R["status"] = status
                done = True
        if done:
            break
    if plan.notify is not None and not forked:
        plan.notify.over()  # the caller's supervisor thread may end now, while we end PID 1
    pid1 = R.get("pid1")
    if pid1:
        try:
            os.kill(pid1, signal.SIGKILL)
        except OSError:
            pass
        else:
            if not (R.get("timeout") or R.get("killed")):
                # PID 1's death empties the command's PID namespace (the kernel kills and waits for
                # every member first). Once it is reaped nothing that ran sandboxed code is alive, so
                # the caller may take the result as soon as we leave its memory, without waiting for
                # our own exit to tear the namespaces down (sandbox._execute: about 0.3 ms).
                try:
                    if os.waitpid(pid1, 0)[0] == pid1:
                        R["emptied"] = True
                except OSError:
                    pass
    R["utime"], R["stime"], R["maxrss"] = ut, st, rss
    if R.get("timeout") or R.get("killed"):
        # The command is in a session (and process group) of its own; with a PID namespace, the
        # caller then ends the rest by killing its PID 1.
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
    except _Late:
        R["timeout"] = True
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


def start_thread(fn: Any, *args: Any) -> int:
    """Run ``fn(*args)`` on a new thread and return its ident once it runs Python code, as
    threading's ``Thread.start`` waits (``_thread``: threading costs milliseconds of the CLI's
    start-up). An interpreter that exits while a thread starts crashes (SIGSEGV), and a thread
    started ahead takes the GIL now rather than in the middle of a launch. 0 if it has not run
    within 10 s."""
    started = _thread.allocate_lock()
    started.acquire()
    ident = [0]

    def body() -> None:
        ident[0] = _thread.get_ident()
        started.release()
        fn(*args)

    _thread.start_new_thread(body, ())
    started.acquire(True, 10)
    return ident[0]


class SignalForwarder:
    """Send the signals of :data:`FORWARDED` that reach this process to the sandbox while it runs.

    The launching thread sleeps in ``clone()`` (or in a read) with them blocked, so nothing would
    happen until the sandbox ended: ``kill <pid of sysgate run>`` would be ignored. A helper
    thread takes them with ``sigwaitinfo`` and passes them to the supervisor, which passes them
    to the command (as ``docker run`` does). Those the terminal sent to the whole process group
    are skipped: the supervisor is in that group and got its own. With a terminal relay, SIGWINCH
    resizes the sandbox's terminal instead. Signals that come before the supervisor exists are
    kept till it does.
    """

    def __init__(self, pid: Any, relay: Any = None) -> None:
        self._pid = pid  # a ctypes int that receives the supervisor's pid
        self._relay = relay
        self._old = _sigmask(signal.SIG_BLOCK, (*FORWARDED, _FWD_STOP))  # the helper thread inherits the mask
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._tid = start_thread(self._loop)

    def _loop(self) -> None:
        waitset = {*FORWARDED, _FWD_STOP}
        pending: list[int] = []
        try:
            while True:
                info = signal.sigtimedwait(waitset, 0.01) if pending else signal.sigwaitinfo(waitset)
                if info is not None:
                    if info.si_signo == _FWD_STOP:
                        break
                    if info.si_signo == signal.SIGWINCH and self._relay is not None:
                        self._relay.sync_size()
                    elif info.si_code != _SI_KERNEL:
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
        # The helper takes its own stop signal first (thread-directed signals are dequeued before
        # the process's): one of FORWARDED may still be pending, sent while the sandbox ended (a
        # killpg reaches the sandbox directly too). It was for the sandbox, which is over: drop it
        # while still blocked, or unblocking would deliver it here and SIGINT's default action
        # would end this process before it reports how the command ended.
        while signal.sigtimedwait(FORWARDED, 0) is not None:
            pass
        _sigmask(signal.SIG_SETMASK, self._old)


# ---------------------------------------------------------------------------------------------
# vfork launcher

_STACK_SIZE = 1 << 20
_stack_lock = _thread.allocate_lock()
_dump_lock = _thread.allocate_lock()
_dump_users = 0
_dump_saved = 1


class _StackPool:
    """Stacks of one size, kept for the next sandbox: a map and an unmap less per start (an unmap
    in memory other threads use costs the other CPUs a TLB flush). ``guard``: the lowest page is
    made inaccessible; ``keep``: at most this many are kept (None: all)."""

    def __init__(self, size: int, what: str, guard: bool, keep: int | None) -> None:
        self.size, self.what, self.guard, self.keep = size, what, guard, keep
        self.free: list[int] = []

    def get(self) -> int:
        with _stack_lock:
            if self.free:
                return self.free.pop()
        base = P.alloc_stack(self.size, self.what)
        if self.guard:
            P.mprotect(base, 4096, 0)
        return base

    def put(self, base: int) -> None:
        with _stack_lock:
            if self.keep is None or len(self.free) < self.keep:
                self.free.append(base)
                return
        _munmap(base, self.size)


# init's stacks, and a root caller's PID-1 helper's (the same size, see _helper_run).
_init_stacks = _StackPool(_STACK_SIZE, "the sandbox init", guard=True, keep=None)
# The vfork launcher's PID 1's. One goes back only once its PID 1 has been reaped (vfork_done) or
# was never started (launch_vfork).
_pid1_stacks = _StackPool(PID1_STACK, "the sandbox's PID 1", guard=False, keep=8)


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
        if not now and (_dump_users or N.raw_prctl(N.PR_GET_DUMPABLE) != 1):
            raise VforkBusy()
        if _dump_users == 0:
            _dump_saved = N.raw_prctl(N.PR_GET_DUMPABLE)
        if now:
            N.raw_prctl(N.PR_SET_DUMPABLE, 0)
        _dump_users += 1


def _dumpable_exit() -> None:
    global _dump_users
    with _dump_lock:
        _dump_users -= 1
        if _dump_users == 0 and _dump_saved > 0:
            N.raw_prctl(N.PR_SET_DUMPABLE, _dump_saved)


def launch_vfork(plan: Plan, R: dict, ptid: ctypes.c_int) -> int:
    """Run init to completion (the calling thread sleeps meanwhile); returns init's pid, unreaped.

    ``ptid`` receives init's pid as soon as it exists (other threads may read it).
    """
    _dumpable_enter(P.host_root())
    stack = _init_stacks.get()
    # Lent from our pools (init takes no lock: it may stop in the middle of any Python code of ours):
    # PID 1's stack, and a root caller's helper's (see _unprivileged_pid1), which is done with it
    # once init has returned.
    helper = plan.helper_stack = _init_stacks.get() if plan.pidns and plan.ns.userns_fd >= 0 else 0
    plan.pid1_stack = _pid1_stacks.get() if plan.pidns else 0
    cb = P.CLONE_FN(lambda _arg: _init_entry(plan, R, False))
    flags = plan.ns.clone_flags | P.CLONE_VM | P.CLONE_VFORK | P.CLONE_PARENT_SETTID | signal.SIGCHLD
    old = _sigmask(signal.SIG_BLOCK, _ALL)
    home = -1
    pid, err = -1, 0
    try:
        if plan.netns_fd >= 0:
            from . import netpool as _netpool  # loaded already by whoever took the namespace from the pool

            home = _netpool.enter(plan.netns_fd)
        pid = P.clone(cb, stack + _STACK_SIZE - 64, flags, None, ctypes.byref(ptid), None, None)
        err = ctypes.get_errno()
    finally:
        if home >= 0:
            _netpool.leave(home)
        _sigmask(signal.SIG_SETMASK, old)
        _init_stacks.put(stack)
        if helper:
            _init_stacks.put(helper)
        plan.helper_stack = 0
        if plan.pid1_stack and R.get("pid1_stack") != plan.pid1_stack:
            _pid1_stacks.put(plan.pid1_stack)  # never used: no PID 1 was started
        plan.pid1_stack = 0
        if pid < 0:  # else the memory stays non-dumpable till the supervisor is reaped (vfork_done)
            _dumpable_exit()
    if pid < 0:
        raise N.KernelError(err, f"create the sandbox namespaces (clone): {os.strerror(err)}{_clone_hint(err)}")
    return pid


def vfork_done(R: dict) -> None:
    """After the vfork-launched supervisor has been reaped (so every process of its PID namespace,
    its PID 1 sharing our memory included, is gone): free PID 1's stack, let the memory be dumpable."""
    stack1 = R.pop("pid1_stack", None)
    if stack1 is not None:
        _pid1_stacks.put(stack1)  # a vfork-launched init's PID 1's: from the pool (launch_vfork)
    _dumpable_exit()


# Inits whose only remaining work is their own exit (see _supervise), reaped by one daemon thread:
# the caller need not wait for the kernel to tear the namespaces down.
_reap_pending: list[int] = []
_reap_lock: Any = None
_reap_wake: Any = None  # released to wake the reaper
_reaper_ident = 0  # the reaper thread's, once it runs
_REAP_BATCH = 0.05  # seconds


def _reaper_reset() -> None:
    """The reaper's state, made at import and again in a forked child (which has no reaper thread,
    and none of these children)."""
    global _reap_lock, _reap_wake, _reaper_ident
    _reap_lock = _thread.allocate_lock()
    _reap_wake = _thread.allocate_lock()
    _reap_wake.acquire()
    _reap_pending.clear()
    _reaper_ident = 0


_reaper_reset()
os.register_at_fork(after_in_child=_reaper_reset)


_leave_to_adopter = False


def exit_after_run() -> None:
    """This process exits once its sandbox has reported (the ``sysgate run`` command): an init
    whose only remaining work is its own exit is left to whoever adopts it then (init(1) or a
    subreaper) instead of starting a thread to reap it."""
    global _leave_to_adopter
    _leave_to_adopter = True


def reap_later(pid: int) -> None:
    """Reap child ``pid`` (an init that has reported and is exiting) on a background thread."""
    global _reaper_ident
    if _leave_to_adopter:
        return
    with _reap_lock:
        _reap_pending.append(pid)
        if not _reaper_ident:
            # running before we return: a caller that exits right away (the CLI) must not
            # finalize the interpreter while the thread starts
            _reaper_ident = start_thread(_reaper)
    try:
        _reap_wake.release()
    except RuntimeError:  # already awake: it takes every pending pid
        pass


def _reaper() -> None:
    while True:
        _reap_wake.acquire()
        # Reap in batches: a thread woken per sandbox takes the GIL from the caller right as it
        # finishes the run (and from the next launch). The inits meanwhile are zombies.
        time.sleep(_REAP_BATCH)
        with _reap_lock:
            pids = _reap_pending[:]
            del _reap_pending[:]
        for pid in pids:
            while True:
                try:
                    os.waitpid(pid, 0)
                except InterruptedError:
                    continue
                except ChildProcessError:  # someone else reaped it (os.wait() elsewhere)
                    pass
                break


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
            gc.disable()  # a copy: never finalize the caller's garbage here (a tempfile's cleanup, say)
            os.close(hr)
            flags = plan.ns.clone_flags | P.CLONE_PARENT | signal.SIGCHLD
            _sigmask(signal.SIG_SETMASK, _ALL)
            if plan.netns_fd >= 0:
                N.check(_netpool._setns(plan.netns_fd, P.CLONE_NEWNET), "enter the prepared network namespace")
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
        raise N.KernelError(0, "create the sandbox: the helper process died")
    pid = int.from_bytes(head[:8], "little", signed=True)
    if pid < 0:
        os.close(r)
        err = int.from_bytes(head[8:], "little")
        raise N.KernelError(err, f"create the sandbox namespaces (clone): {os.strerror(err)}{_clone_hint(err)}")
    return pid, r
