"""The public face of the jail: :func:`run` (one call, blocking) and :class:`Sandbox`
(start, stream I/O, signal, wait).

``run`` launches on the calling thread; ``Sandbox`` launches on a helper thread so the caller
keeps going (see :mod:`.runner` for why the launching thread sleeps while the sandbox runs).
Captured output of ``run`` goes to memory files rather than pipes, so nothing has to pump
them while the command runs.
"""
from __future__ import annotations

import os
import sys
import time

from .._startup import ctypes, signal
from ..kernel import process as P
from ..kernel import syscall as N
from . import caps as _caps
from . import filters as _filters
from . import mounts as _mounts
from . import namespaces as _ns
from . import result as _res
from . import rlimits as _rl
from . import runner as _runner
from .options import DEVNULL, PIPE, STDOUT, JailConfigError, Options
from .result import RunResult, SandboxError
from .runner import Plan, vfork_supported

TYPE_CHECKING = False  # typing, threading and weakref are not needed to run one command from the CLI
if TYPE_CHECKING:
    import threading
    import weakref
    from collections.abc import Sequence
    from typing import IO, Any

__all__ = ["run", "Sandbox", "DEVNULL", "PIPE", "STDOUT"]


# sysgate.profiles.bootstrap.DEFERRED, restated so that the run path does not import sysgate.profiles
# (a cached filter needs no profile code); a test keeps the two equal.
DEFERRED = frozenset({"python"})


def _deferred(profile: Any) -> bool:
    """A built-in profile the interpreter must install after the jail's execve (``python``)."""
    return isinstance(profile, str) and profile in DEFERRED


def _is_python(name: str) -> bool:
    """python, python3, python3.11, ...: interpreters that can run the bootstrap."""
    rest = name.removeprefix("python")
    return rest != name and (rest in ("", "3") or (rest.startswith("3.") and rest[2:].isdigit()))


def _argv(argv: Sequence[str] | str) -> list[str]:
    if isinstance(argv, (str, bytes)):
        raise JailConfigError("argv must be a list of strings, not a single string (use ['sh', '-c', ...])")
    try:
        items = list(argv)
    except TypeError:
        raise JailConfigError(f"argv: expected a list of strings, got {type(argv).__name__}") from None
    for i, a in enumerate(items):
        if not isinstance(a, (str, bytes, os.PathLike)):
            raise JailConfigError(f"argv[{i}]: expected a string, got {type(a).__name__}")
    out = [os.fsdecode(a) for a in items]
    if not out or not out[0]:
        raise JailConfigError("argv: no command given")
    for a in out:
        if "\0" in a:
            raise JailConfigError("argv: an argument contains a NUL byte")
    return out


class _Prepared:
    """A Plan plus what the caller must release afterwards."""

    def __init__(self, argv: list[str], opts: Options, std: list[Any], *, memfd_capture: bool,
                 input: bytes | None, streaming: bool, t0: float | None = None) -> None:
        self.opts = opts
        self.relay: Any = None
        self.argv = argv
        self.to_close: list[int] = []       # child ends and temporary fds, closed once init has them
        self.denials: list[dict] | None = None  # the supervisor's events, once it has finished
        self.parent_ends: list[Any] = [None, None, None]
        self.capture: list[int | None] = [None, None, None]
        program = None
        if opts.profile is not None and opts.profile != "none":
            program = _filters.get(opts.profile, opts.allow, opts.deny, opts.seccomp_action,
                                  tuple("CAP_" + c.upper().removeprefix("CAP_") for c in opts.cap_add),
                                  opts.skip_unknown)
            for name in program.unknown_names:  # asked for: reported, one line each, never silent
                os.write(2, f"sysgate: skipped unknown syscall: {name}\n".encode(errors="surrogateescape"))
        elif opts.allow or opts.deny or opts.seccomp_action:
            raise JailConfigError("--allow/--deny/--seccomp-action need a seccomp profile")
        self.notify = None
        if opts.mediate or opts.allow_paths or opts.allow_connect or opts.allow_sockets or opts.log_denials or opts.ask:
            _sup = _sibling("supervisor")
            if (opts.log_denials or opts.ask) and _deferred(opts.profile):
                raise JailConfigError(f"--log-denials/--ask: --profile {opts.profile} is installed by the "
                                      "interpreter after execve, where its denials cannot be rerouted")
            self.notify = _sup.prepare(opts, program)
            if self.notify is not None:
                program = self.notify.profile  # --log-denials: the profile with its ERRNO actions rerouted
                self.to_close.append(self.notify.child_end)
        pass_fds = opts.pass_fds
        if program is not None and _deferred(opts.profile):
            # A profile that refuses execve cannot be loaded before the jail's own execve of the
            # interpreter: the interpreter installs it first thing (profiles.bootstrap), reading
            # the program from an inherited memfd. Every other layer is in place before that.
            argv, pass_fds = self._defer(argv, opts, program)  # the result still names the user's argv
            # Until the interpreter installs it, the same profile with only execve allowed holds, so
            # whatever runs before that (a planted module, say) cannot undo or avoid the filter.
            program = _filters.get(opts.profile, (*opts.allow, "execve", "execveat"), opts.deny, opts.seccomp_action,
                                   tuple("CAP_" + c.upper().removeprefix("CAP_") for c in opts.cap_add))
            if self.notify is not None:
                self.notify.seal_in_profile = False  # the sealed program goes to the interpreter: seal now
        keep = _caps.parse_caps(opts.cap_add)
        for fd in opts.pass_fds:
            try:
                os.fstat(fd)
            except OSError:
                raise JailConfigError(f"--pass-fd {fd}: not an open file descriptor") from None
        landlock = None
        _ll = _sibling("landlock")
        abi = _ll.abi_version()
        if opts.landlock_ro or opts.landlock_rw:
            if abi <= 0:
                raise SandboxError(95, "landlock: --ro/--rw need Landlock, which this kernel does not offer",
                                   "landlock")
            ro, rw = opts.landlock_ro, opts.landlock_rw
            landlock = lambda: _ll.restrict(ro, rw, abi)  # noqa: E731 - init calls it, importing nothing
        elif abi >= _ll.SCOPE_ABI:
            landlock = _ll.scope  # signals and abstract unix sockets stay inside the sandbox
        early, late = _rl.split(dict(opts.rlimits))
        here = _cwd()  # one getcwd for the mount plan and the working directory inside
        mplan = _mounts.plan(opts, here, _ns.host_ids(opts), _filters.mask_paths())
        self.cgroup = None
        try:
            if opts.memory is not None or opts.pids is not None or opts.cpus is not None:
                from . import cgroups as _cg

                self.cgroup = _cg.create(opts)
        except OSError as e:
            raise SandboxError(e.errno or 0, f"cgroup: {e.strerror or e}", "cgroup") from None
        try:
            stdio = self._stdio(std, memfd_capture, input, streaming)
            pty = None
            if _any_tty(stdio):  # the command never gets the caller's terminal (see terminal.py)
                from . import terminal as _term

                idx = _term.tty_indices(stdio)
                if idx:
                    self.relay = _term.Relay(stdio, idx, interactive=not streaming)
                    pty = self.relay.plan()
                    if self.notify is not None:
                        self.notify.relay = self.relay  # --ask pauses it while it prompts
            # Without a PID namespace the supervisor shares one with the command: it must stay outside
            # the command's Landlock domain (the fork path applies it in the command only).
            fast = self.cgroup is None and not late and (program is None or program.supervisor_safe) \
                and opts.ns("pid") and (self.notify is None or self.notify.init_may_load)
            self.launcher = opts.launcher if opts.launcher != "auto" else ("vfork" if vfork_supported() else "fork")
            if not fast or not opts.die_with_parent:
                # A supervisor sharing our memory may never fork a copy of it (the copy would hold other
                # threads' locks), and must be out of the command's reach (outside its PID namespace).
                # Nor may it outlive us: it runs in our interpreter, whose GIL a thread of ours killed
                # mid-bytecode holds for ever (the supervisor would hang, its timeout never enforced),
                # and whose objects our exit tears down under it.
                self.launcher = "fork"
            cwd = opts.cwd or here or "/"
            lr, lw = os.pipe() if opts.die_with_parent else (-1, -1)
            self.lifeline = (lr, lw)
            self.plan = Plan(
                argv=argv, env=opts.environment(), ns=_ns.plan(opts, late_cgroupns=self.cgroup is not None),
                mounts=mplan, cgroup=self.cgroup, program=program, fast=fast, keep_caps=keep,
                last_cap=_caps.last_cap(), rl_early=early, rl_late=late, landlock=landlock, stdio=stdio,
                pass_fds=pass_fds, new_session=opts.new_session, timeout=opts.timeout,
                deadline=None if opts.timeout is None else (time.monotonic() if t0 is None else t0) + opts.timeout,
                cwd=os.fsencode(cwd), cwd_given=opts.cwd is not None, pty=pty,
                die_with_parent=opts.die_with_parent, pidns=opts.ns("pid"), lifeline=lr, lifeline_w=lw,
            )
            self.plan.ns.lifeline = lr  # checked again after the root caller's credential change
            self.plan.notify = self.notify
            if opts.ns("net") and self.plan.ns.clone_flags & P.CLONE_NEWNET:
                fd = _take_netns()
                if fd >= 0:
                    self.plan.netns_fd = fd
                    self.plan.ns.clone_flags &= ~P.CLONE_NEWNET
                    self.plan.ns.loopback = False
        except BaseException:
            self.release()
            raise

    def _defer(self, argv: list[str], opts: Options, program: Any) -> tuple[list[str], tuple]:
        from ..profiles.bootstrap import python_argv

        if not _is_python(os.path.basename(argv[0])):
            raise JailConfigError(f"--profile {opts.profile}: this profile refuses execve, so it is installed by "
                                  f"the Python interpreter itself; the command must be python3 SCRIPT|-c CODE|"
                                  f"-m MODULE, not {argv[0]!r}")
        fd = os.memfd_create("sysgate-filter", os.MFD_CLOEXEC)
        self.to_close.append(fd)
        os.write(fd, program.data)
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            new = python_argv(argv, fd)
        except ValueError as e:
            raise JailConfigError(f"--profile {opts.profile}: {e}") from None
        return new, (*opts.pass_fds, fd)

    def _stdio(self, std: list[Any], memfd_capture: bool, input: bytes | None, streaming: bool) -> list[int | None]:
        out: list[int | None] = [None, None, None]
        if input is not None:
            if std[0] is not None:
                raise JailConfigError("stdin and input cannot both be given")
            fd = os.memfd_create("sysgate-stdin", os.MFD_CLOEXEC)
            self.to_close.append(fd)
            data = memoryview(input)
            while data:
                n = os.write(fd, data)
                data = data[n:]
            os.lseek(fd, 0, os.SEEK_SET)
            out[0] = fd
        for i, spec in enumerate(std):
            if i == 0 and input is not None:
                continue
            if spec is None:
                continue
            if spec == STDOUT and i == 2:
                out[2] = out[1] if out[1] is not None else 1
            elif spec == DEVNULL:
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                self.to_close.append(fd)
                out[i] = fd
            elif spec == PIPE and not streaming and i > 0 and memfd_capture:
                fd = os.memfd_create(("sysgate-stdout", "sysgate-stderr")[i - 1], os.MFD_CLOEXEC)
                self.capture[i] = fd
                out[i] = fd
            elif spec == PIPE:
                r, w = os.pipe()
                child, parent = (r, w) if i == 0 else (w, r)
                self.to_close.append(child)
                self.parent_ends[i] = os.fdopen(parent, "wb" if i == 0 else "rb", buffering=0)
                out[i] = child
            elif isinstance(spec, int) and not isinstance(spec, bool) and spec >= 0:
                try:
                    os.fstat(spec)
                except OSError:
                    raise JailConfigError(f"{('stdin', 'stdout', 'stderr')[i]}: {spec} is not an open file "
                                          f"descriptor") from None
                out[i] = spec
            elif hasattr(spec, "fileno"):
                out[i] = spec.fileno()
            else:
                raise JailConfigError(f"{('stdin', 'stdout', 'stderr')[i]}: unsupported value {spec!r}")
        return out

    def close_child_ends(self) -> None:
        if self.relay is not None:
            self.relay.close_child_end()
        for fd in self.to_close:
            try:
                os.close(fd)
            except OSError:
                pass
        self.to_close = []
        lr, lw = getattr(self, "lifeline", (-1, -1))
        if lr >= 0:
            os.close(lr)
            self.lifeline = (-1, lw)
        plan = getattr(self, "plan", None)
        if plan is not None and plan.netns_fd >= 0:
            os.close(plan.netns_fd)
            plan.netns_fd = -1
            self.used_pool = True

    def release(self) -> None:
        self.close_child_ends()
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        if self.notify is not None and self.denials is None:
            self.denials = self.notify.finish()
        lr, lw = getattr(self, "lifeline", (-1, -1))
        if lw >= 0:
            os.close(lw)
            self.lifeline = (lr, -1)
        for fd in self.capture:
            if fd is not None:
                os.close(fd)
        self.capture = [None, None, None]
        if self.cgroup is not None:
            self.cgroup.cleanup()
        if getattr(self, "used_pool", False) or self.opts.ns("net"):
            _refill_netns()

    def read_capture(self, i: int) -> bytes | None:
        fd = self.capture[i]
        if fd is None:
            return None
        st = os.fstat(fd)
        # What the command wrote, not what it claims: ftruncate or a seek past the end makes a hole
        # that costs it nothing and would cost us its size in memory (a terabyte in a millisecond).
        # The bytes read never exceed those the file really holds.
        size = min(st.st_size, st.st_blocks * 512)
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while size > 0:
            b = os.read(fd, min(size, 1 << 24))
            if not b:
                break
            chunks.append(b)
            size -= len(b)
        return b"".join(chunks)


def _sibling(name: str) -> Any:
    """The module ``name`` of this package, imported on first use (not every sandbox needs it).
    ``__import__`` of the full name, not a ``from . import`` statement, which runs importlib's
    Python code (``_handle_fromlist``) every time; not ``sys.modules`` alone either: while another
    thread imports the module it is there half made, and ``__import__`` waits for it to be whole."""
    full = f"{__package__}.{name}"
    __import__(full)
    return sys.modules[full]


def _any_tty(stdio: list[int | None]) -> bool:
    for i, src in enumerate(stdio):
        try:
            if os.isatty(i if src is None else src):
                return True
        except OSError:
            pass
    return False


_SANDBOXES = 0  # started by this process; the first never uses (or loads) the namespace pool


def _take_netns() -> int:
    global _SANDBOXES
    _SANDBOXES += 1
    if _SANDBOXES < 2:  # a process that starts one sandbox (the CLI) never pays for the pool's thread
        return -1
    return _sibling("netpool").take()


def _refill_netns() -> None:
    if _SANDBOXES >= 2:  # the pool exists (or is being made by another thread: _sibling waits)
        _sibling("netpool").refill()


def _options(kw: dict[str, Any]) -> Options:
    if "options" in kw:
        opts = kw.pop("options")
        if kw:
            raise JailConfigError("give either options= or keyword options, not both")
        if not isinstance(opts, Options):
            raise JailConfigError(f"options= must be an Options, not {type(opts).__name__}")
        return opts
    try:
        key = tuple(sorted(kw.items()))
        hit = _OPTIONS_CACHE.get(key)
    except TypeError:  # unhashable values (lists, dicts): build afresh
        return Options.from_kwargs(**kw)
    if hit is None:
        hit = Options.from_kwargs(**kw)
        if len(_OPTIONS_CACHE) > 64:
            _OPTIONS_CACHE.clear()
        _OPTIONS_CACHE[key] = hit
    return hit


_OPTIONS_CACHE: dict[tuple, Options] = {}


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _finish(prep: _Prepared, R: dict, init_status: int | None, t0: float, t1: float) -> RunResult:
    """Turn init's report into a RunResult (raising SandboxError for setup failures); clean up."""
    opts, cg = prep.opts, prep.cgroup
    try:
        if cg is not None and not opts.ns("pid"):
            cg.kill_all()
        if prep.notify is not None:
            prep.close_child_ends()
            prep.denials = prep.notify.finish()
        if "raise" in R:  # KeyboardInterrupt & co. that our signal handlers raised while init ran
            raise R["raise"]
        err = R.get("error")
        if err:
            stage, errno, msg, where = err
            if where:
                raise _runner.SetupBug(stage, msg, where)
            raise SandboxError(errno, f"{stage}: {msg}" if not msg.startswith(stage) else msg, stage)
        status = R.get("status")
        res = RunResult(argv=prep.argv, status=_res.EXITED, wall_time=t1 - t0, launcher=prep.launcher,
                        user_time=R.get("utime", 0.0), system_time=R.get("stime", 0.0))
        res.peak_memory = R.get("maxrss", 0) * 1024 or None
        if cg is not None:
            res.cgroup = cg.version
            res.oom_kills = cg.oom_kills()
            res.pids_limit_hits = cg.pids_limit_hits()
            if opts.memory is not None:
                res.peak_memory = cg.peak_memory() or res.peak_memory
        if R.get("timeout"):
            res.status, res.signal = _res.TIMEOUT, signal.SIGKILL
        elif R.get("killed"):
            res.status, res.signal = _res.KILLED, signal.SIGKILL
        elif status is None:
            died = init_status is not None and os.WIFSIGNALED(init_status)
            sig = os.WTERMSIG(init_status) if died else signal.SIGKILL  # type: ignore[arg-type]
            res.status, res.signal = _res.SIGNALED, sig
        elif os.WIFEXITED(status):
            res.returncode = os.WEXITSTATUS(status)
        else:
            sig = os.WTERMSIG(status)
            res.signal = sig
            if sig == signal.SIGSYS:
                # A seccomp kill only on the kernel's word: the killed task's seccomp mode "dead",
                # or an audit record of a kill verdict for its pid. raise(SIGSYS) has neither.
                audited = _attribute(res, R.get("sigsys_hostpid"), t0)
                res.status = _res.SECCOMP if (R.get("seccomp_dead") or audited) else _res.SIGNALED
            elif sig == signal.SIGKILL and res.oom_kills:
                res.status = _res.OOM
            elif _limit_hit(sig, opts.rlimits, res.cpu_time):
                res.status = _res.LIMIT
            else:
                res.status = _res.SIGNALED
        if prep.notify is not None:
            res.denials = prep.denials
        for i, name in ((1, "stdout"), (2, "stderr")):
            data = prep.read_capture(i)
            if data is not None:
                setattr(res, name, data)
        return res
    finally:
        prep.release()


def _limit_hit(sig: int, rlimits: dict, cpu_time: float) -> bool:
    """Whether death by ``sig`` was a resource limit's, on facts the command cannot forge: the CPU
    limits by the kernel's own accounting of the CPU time spent (SIGXCPU at the soft limit, SIGKILL
    at the hard one; the kernel checks at tick granularity, hence the 5% slack); SIGXFSZ only where
    a file size limit was set (the signal itself tells no more: a command can raise it)."""
    if sig == signal.SIGXFSZ:
        return "fsize" in rlimits
    if "cpu" not in rlimits or sig not in (signal.SIGXCPU, signal.SIGKILL):
        return False
    soft, hard = rlimits["cpu"]
    return cpu_time >= 0.95 * (soft if sig == signal.SIGXCPU else hard)


def _attribute(res: RunResult, host_pid: int | None, t0: float) -> bool:
    """Name the call from the audit record of the kill, if any; whether there was one."""
    from . import audit_log

    if host_pid is None:
        return False
    rec = audit_log.find_seccomp_kill(host_pid, t0)
    if rec is None:
        return False
    res.syscall_nr = rec.nr
    res.syscall, res.arch = audit_log.describe(rec)
    return True


def _reap(pid: int) -> int | None:
    while True:
        try:
            return os.waitpid(pid, 0)[1]
        except ChildProcessError:  # someone else reaped it (os.wait() elsewhere); the report stands
            return None
        except InterruptedError:
            continue


def _execute(prep: _Prepared, R: dict, ptid: ctypes.c_int, on_pid: Any = None) -> int | None:
    """Launch init and wait for it; fills ``R``; returns init's wait status."""
    if prep.notify is not None:
        # before the launch: the vfork launcher keeps this thread in clone(); its init wakes the
        # supervisor thread once the command is spawned (runner._init_main)
        prep.notify.start(deferred=prep.launcher == "vfork" and prep.plan.fast)
    try:
        if prep.launcher == "vfork":
            try:
                pid = _runner.launch_vfork(prep.plan, R, ptid)
            except _runner.VforkBusy:
                prep.launcher = "fork"
                if prep.notify is not None:
                    prep.notify.go()
            else:
                prep.close_child_ends()
                if R.get("emptied") and prep.cgroup is None:
                    # init reaped the command and the PID namespace's PID 1 (so nothing that ran
                    # sandboxed code is alive) and has left our memory: what remains is its exit,
                    # where the kernel tears the namespaces down. Not with cgroups: their clean-up
                    # needs init gone.
                    _runner.vfork_done(R)
                    _runner.reap_later(pid)
                    return 0
                try:
                    return _reap(pid)
                finally:
                    _runner.vfork_done(R)
        pid, rfd = _runner.launch_fork(prep.plan)
    except N.KernelError as e:
        raise SandboxError(e.errno or 0, f"namespaces: {e.strerror}", "namespaces") from None
    ptid.value = pid
    if on_pid is not None:
        on_pid(pid)
    prep.close_child_ends()
    late = False
    try:
        chunks = []
        deadline = prep.plan.deadline
        while True:
            if deadline is not None and not _readable(rfd, deadline + 1.0 - time.monotonic()):
                # The supervisor is a copy of ours: it may be SIGKILLed (it did not end the sandbox
                # in time, stuck in some set-up step); the kernel then ends its PID namespaces.
                late = True
                deadline = None
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
                continue
            b = os.read(rfd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(rfd)
    st = _reap(pid)
    data = b"".join(chunks)
    if data and not late:
        import marshal

        R.update(marshal.loads(data))
    if late:
        R.pop("error", None)
        R["timeout"] = True
    elif "error" not in R and not data:
        R["error"] = ("init", 0, "the sandbox's init died before reporting" +
                      (f" (signal {os.WTERMSIG(st)})" if st is not None and os.WIFSIGNALED(st) else ""), "")
    return st


def _readable(fd: int, timeout: float) -> bool:
    import select

    return bool(select.select([fd], [], [], max(0.0, timeout))[0])


def run(argv: Sequence[str], *, stdin: Any = None, stdout: Any = None, stderr: Any = None,
        input: bytes | None = None, capture_output: bool = False, forward_signals: bool = False,
        **options: Any) -> RunResult:
    """Run ``argv`` in a new sandbox and wait for it.

    ``options`` are :class:`~sysgate.jail.options.Options` fields (``profile``, ``memory="64M"``,
    ``timeout=5``, ``binds=["/src:/work"]``...). Standard streams are inherited unless given:
    ``PIPE`` (or ``capture_output=True``) captures into ``RunResult.stdout``/``stderr``; ``input``
    feeds bytes to stdin. Signals sent to this process while the command runs are held until it
    ends, unless ``forward_signals`` (what ``sysgate run`` does): then HUP, INT, QUIT, TERM, USR1,
    USR2, WINCH, CONT and ALRM go to the command instead. Raises :class:`SandboxError` if the
    sandbox cannot be set up or the command cannot be executed, ``JailConfigError`` (a
    ``ValueError``) for bad options.
    """
    opts = _options(options)
    if input is not None and not isinstance(input, (bytes, bytearray, memoryview)):
        raise JailConfigError(f"input: expected bytes, got {type(input).__name__}"
                              + (" (encode it first)" if isinstance(input, str) else ""))
    for name, v in (("capture_output", capture_output), ("forward_signals", forward_signals)):
        if not isinstance(v, bool):
            raise JailConfigError(f"{name}: {v!r} is not True or False")
    if capture_output:
        if stdout is not None or stderr is not None:
            raise JailConfigError("capture_output cannot be combined with stdout/stderr")
        stdout = stderr = PIPE
    t0 = time.monotonic()
    prep = _Prepared(_argv(argv), opts, [stdin, stdout, stderr], memfd_capture=True, input=input, streaming=False,
                     t0=t0)
    R: dict = {}
    ptid = ctypes.c_int(0)
    fwd = _runner.SignalForwarder(ptid, prep.relay) if forward_signals else None
    try:
        if prep.relay is not None:  # after the forwarder: its thread inherits the blocked signals
            prep.relay.start()
        st = _execute(prep, R, ptid)
    except BaseException:
        prep.release()
        raise
    finally:
        if fwd is not None:
            fwd.stop()
    return _finish(prep, R, st, t0, time.monotonic())


class Sandbox:
    """A sandboxed command running alongside the caller.

    ``Sandbox(argv, stdout=PIPE, **options).start()`` returns once the command is running (or
    raises :class:`SandboxError`). ``stdin``/``stdout``/``stderr`` are unbuffered binary files
    for streams given as ``PIPE``. :meth:`wait` returns the :class:`RunResult`;
    :meth:`send_signal` delivers a signal to the command (through the sandbox's init);
    :meth:`kill` ends the whole sandbox. Use as a context manager to be sure it is gone.

    The sandbox dies with the *thread* that started it only when the process dies (the start
    happens on a helper thread that lives as long as the sandbox). With ``die_with_parent=False``
    it outlives the process, whether that is killed or exits normally. A child forked meanwhile
    holds a copy of this object, not the sandbox: there, :meth:`wait`, :meth:`poll`,
    :meth:`communicate` and the signals raise ``RuntimeError``, and leaving a ``with`` block only
    closes the child's copies of the streams.
    """

    def __init__(self, argv: Sequence[str], *, stdin: Any = None, stdout: Any = None, stderr: Any = None,
                 **options: Any) -> None:
        self.argv = _argv(argv)
        self.options = _options(options)
        self._std = [stdin, stdout, stderr]
        self._prep: _Prepared | None = None
        self._thread: threading.Thread | None = None
        self._result: RunResult | None = None
        self._exc: BaseException | None = None
        self._ptid = ctypes.c_int(0)
        self._owner = 0  # the pid of the process that started it
        import threading

        self._done = threading.Event()
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Host pid of the sandbox's init (PID 1 inside), None before start."""
        return self._ptid.value or None

    def start(self) -> Sandbox:
        if self._thread is not None:
            raise RuntimeError("sandbox already started")
        t0 = time.monotonic()
        self._owner = os.getpid()
        prep = _Prepared(self.argv, self.options, self._std, memfd_capture=False, input=None, streaming=True, t0=t0)
        self._prep = prep
        if prep.relay is not None:
            prep.relay.start()
        rr, rw = os.pipe()
        prep.plan.ready = rw
        self.stdin, self.stdout, self.stderr = prep.parent_ends
        R: dict = {}

        def body() -> None:
            st = None
            try:
                st = _execute(prep, R, self._ptid)
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
                self._exc = e
                prep.release()
            finally:
                try:
                    os.write(rw, b"X")  # wakes start() if init never said "R"
                except OSError:
                    pass
                os.close(rw)
            if self._exc is None:
                try:
                    self._result = _finish(prep, R, st, t0, time.monotonic())
                except BaseException as e:  # noqa: BLE001
                    self._exc = e
            self._done.set()

        import threading

        self._thread = threading.Thread(target=body, name=f"sysgate-sandbox-{self.argv[0]}", daemon=True)
        _register_live(self)
        self._thread.start()
        try:
            first = os.read(rr, 1)
        finally:
            os.close(rr)
        if first != b"R":
            self._thread.join()
            self._close_streams()
            if self._exc is not None:
                raise self._exc
            raise SandboxError(0, "the sandbox ended before the command started", "init")
        # The fork launcher learns the supervisor's pid from its helper, which may be a moment later
        # than the command's start: pid (and so kill, send_signal) must work once start() returned.
        while not self._ptid.value and not self._done.is_set():
            time.sleep(0.0002)
        return self

    def _close_streams(self) -> None:
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass

    def _foreign(self) -> bool:
        """Started, but by another process: a forked child holds a copy of this object, not the
        sandbox (its wait would never end, and its signals would reach the parent's sandbox)."""
        return self._thread is not None and self._owner != os.getpid()

    def _check_owner(self, what: str) -> None:
        if self._foreign():
            raise RuntimeError(f"sandbox {self.argv[0]!r}: {what} in a forked child (the sandbox is process "
                               f"{self._owner}'s)")

    def poll(self) -> RunResult | None:
        self._check_owner("poll")
        if self._done.is_set():
            return self.wait()
        return None

    def wait(self, timeout: float | None = None) -> RunResult:
        """Wait for the command (and the sandbox) to end; ``TimeoutError`` if it has not by ``timeout``."""
        if self._thread is None:
            raise RuntimeError("sandbox not started")
        self._check_owner("wait")
        if not self._done.wait(timeout):
            raise TimeoutError(f"sandbox {self.argv[0]!r} still running after {timeout}s")
        self._thread.join()
        if self._exc is not None:
            raise self._exc
        assert self._result is not None
        return self._result

    def send_signal(self, sig: int) -> None:
        """Deliver ``sig`` to the command (init forwards it); SIGKILL ends the whole sandbox."""
        self._check_owner("send_signal")
        pid = self.pid
        if pid is None or self._done.is_set():
            return
        if sig == signal.SIGKILL:
            self.kill()
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        """End the sandbox: init exits and the kernel kills everything in it."""
        self._check_owner("kill")
        pid = self.pid
        if pid is None or self._done.is_set():
            return
        assert self._prep is not None
        # Ask the supervisor to end it (a vfork-launched one shares our memory and may hold the GIL;
        # a forked one then still reports how the command ended).
        try:
            os.kill(pid, _ctrl_signal())
        except ProcessLookupError:
            pass

    def communicate(self, input: bytes | None = None, timeout: float | None = None) -> RunResult:
        """Feed ``input`` to stdin (if PIPE), read stdout/stderr (if PIPE) to the end, wait."""
        import select as _select

        self._check_owner("communicate")
        outs: dict[int, list[bytes]] = {}
        fds: dict[int, tuple[int, IO[bytes]]] = {}
        for i, f in ((1, self.stdout), (2, self.stderr)):
            if f is not None:
                fds[f.fileno()] = (i, f)
                outs[i] = []
        pending = memoryview(input or b"")
        if self.stdin is not None:
            if pending:
                os.set_blocking(self.stdin.fileno(), False)
                fds[self.stdin.fileno()] = (0, self.stdin)
            else:
                self.stdin.close()
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = _select.poll()
        for fd, (i, _) in fds.items():
            poller.register(fd, _select.POLLOUT if i == 0 else _select.POLLIN)
        while fds:
            left = None if deadline is None else max(0, deadline - time.monotonic())
            if left == 0:
                raise TimeoutError(f"sandbox {self.argv[0]!r} still running after {timeout}s")
            for fd, _ev in poller.poll(None if left is None else left * 1000):
                i, f = fds[fd]
                if i == 0:
                    try:
                        n = os.write(fd, pending[:65536])
                        pending = pending[n:]
                    except BrokenPipeError:
                        pending = pending[:0]
                    if not pending:
                        poller.unregister(fd)
                        del fds[fd]
                        f.close()
                else:
                    b = os.read(fd, 65536)
                    if b:
                        outs[i].append(b)
                    else:
                        poller.unregister(fd)
                        del fds[fd]
                        f.close()
        res = self.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if 1 in outs:
            res.stdout = b"".join(outs[1])
        if 2 in outs:
            res.stderr = b"".join(outs[2])
        return res

    def __enter__(self) -> Sandbox:
        if self._thread is None:
            self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._foreign():
            self._close_streams()  # our copies; the sandbox is the parent's to end
            return
        if self._thread is not None and not self._done.is_set():
            self.kill()
        if self._thread is not None:
            self._thread.join()
        self._close_streams()


def _ctrl_signal() -> int:
    return _runner.CTRL_KILL


_LIVE: weakref.WeakSet[Sandbox] | None = None


def _register_live(sb: Sandbox) -> None:
    global _LIVE
    if _LIVE is None:
        import atexit
        import weakref

        _LIVE = weakref.WeakSet()
        atexit.register(_end_all)
        os.register_at_fork(after_in_child=_forget_live)
    _LIVE.add(sb)


def _forget_live() -> None:
    """In a forked child: the sandboxes are the parent's. Ending them at the child's exit ended the
    parent's sandboxes (the supervisor sees every sender outside its PID namespace as pid 0, its
    parent included), after waiting 2 s for each."""
    if _LIVE is not None:
        _LIVE.clear()


def _end_all() -> None:
    """At interpreter exit, end the sandboxes still running (a vfork-launched init shares our
    memory), but those started with ``die_with_parent=False``: they were asked to outlive us, and
    have a supervisor of their own (the fork launcher)."""
    for sb in list(_LIVE or ()):
        if sb._thread is not None and not sb._done.is_set() and sb.options.die_with_parent:
            sb.kill()
            sb._done.wait(2)
