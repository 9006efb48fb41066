"""The fast path: record with the kernel's syscall tracepoints, no stop per call.

An own trace instance (``instances/sysgate-<pid>-<n>``) follows the command's process tree with
``set_event_pid`` and ``options/event-fork`` (the kernel adds each child to the pid filter as it
forks). Enabled events:

- ``raw_syscalls:sys_enter`` (number and six arguments, any ABI);
- ``raw_syscalls:sys_exit`` filtered in the kernel to successful returns, for the report's
  "seen only in error paths";
- ``sched:sched_process_fork`` and ``sched:sched_process_exec``: which task runs which image,
  so each syscall number is read in the right table (a 32-bit child of a 64-bit program uses
  the ia32 numbers; the events carry no arch, :func:`~.launch.elf_arch` reads it from the image);
- ``syscalls:sys_enter_<name>`` for the calls :mod:`.refine` learns arguments of (native ABI
  only: the kernel's per-syscall events skip compat tasks).

Cost is kept off the traced program by **event filters that grow as names are learned**: once a
number has been seen twice (so "seen once" stays exact) it is excluded from ``sys_enter``'s
filter, and argument values already known are excluded from the per-syscall events' filters,
so the ring buffer carries almost nothing after the first moments and the program never stops.
The kernel's ``trace_pipe`` merges the per-CPU buffers in time order. The reader is woken by a
timer (soon after learning something, then backing off) and by a per-CPU fill watermark, not at
every event (see :func:`_watermark_fds`). Lost events are detected (``[LOST n EVENTS]`` and the
per-CPU overrun counters) and fail the recording rather than produce an incomplete profile.

Limits: a compat task's calls are recorded by number once its exec is read; numbers already
excluded as native ones in the few milliseconds before that may be missed (the filter is then
relaxed to numbers known for every ABI in play). Compat calls are not argument-refined.
Needs root (or CAP_SYS_ADMIN with tracefs access); when tracefs is not mounted, a detached
mount of it is made for the recording (the new mount API: nothing appears in any mount table).
"""
from __future__ import annotations

import errno as E
import os
import re
import select
import signal
import time
from collections.abc import Mapping, Sequence

from ..arch import X32_SYSCALL_BIT, native
from ..arch import get as get_arch
from . import refine
from .launch import elf_arch, spawn_held
from .observations import Observations, RecordError, RecordingInterrupted

__all__ = ["available", "record"]

_MOUNTS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_LINE = re.compile(r"-(\d+)\s+\[(\d+)\]\s+\S+\s+[\d.]+: (\w+)(?:: |\()(.*)$")
_LOST = re.compile(r"LOST (\d+) EVENTS")
_FORK = re.compile(r"pid=(\d+) child_comm=.* child_pid=(\d+)")
_EXEC = re.compile(r"filename=(.*) pid=(\d+) old_pid=(\d+)$")
_EXIT = re.compile(r"pid=(\d+) prio=")


def _find_mounted() -> str | None:
    for m in _MOUNTS:
        if os.path.isdir(os.path.join(m, "instances")):
            return m
    return None


def available() -> str | None:
    """None when the fast path can run here, else why not (one phrase)."""
    if os.geteuid() != 0:
        return "not root"
    if _find_mounted() is not None:
        return None
    try:
        with open("/proc/filesystems") as f:
            if "tracefs" not in f.read():
                return "the kernel has no tracefs"
    except OSError:
        return "/proc/filesystems unreadable"
    return None


class _Tracefs:
    """tracefs: the system's mount, or else a detached one of our own (``fsopen``/``fsmount``: it is
    never attached to any mount namespace, so no one else sees it, and it goes away with its fd)."""

    def __init__(self) -> None:
        found = _find_mounted()
        self.fd = -1
        if found is not None:
            self.root: str = found
            return
        from ..kernel import mount as M
        from ..kernel.syscall import check

        try:
            fs = check(M.fsopen(b"tracefs", M.FSOPEN_CLOEXEC), "fsopen")
            try:
                check(M.fsconfig(fs, M.FSCONFIG_CMD_CREATE, None, None, 0), "fsconfig")
                self.fd = check(M.fsmount(fs, M.FSMOUNT_CLOEXEC, 0), "fsmount")
            finally:
                os.close(fs)
        except OSError as e:
            raise RecordError(f"record: tracefs is not mounted and cannot be mounted: {e.strerror}") from None
        self.root = f"/proc/self/fd/{self.fd}"

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


_SERIAL = 0


class _Instance:
    def __init__(self, fs: _Tracefs) -> None:
        self.fs = fs
        global _SERIAL
        _SERIAL += 1  # one process may record again while an earlier instance is still being removed
        self.path = os.path.join(fs.root, "instances", f"sysgate-{os.getpid()}-{_SERIAL}")
        self.fresh = True
        try:
            os.mkdir(self.path)
        except FileExistsError:  # left by a killed recorder with our pid: ours to reuse, once cleared
            self.fresh = False
        except OSError as e:
            raise RecordError(f"record: cannot create a trace instance: {e.strerror}") from None

    def write(self, rel: str, text: str) -> None:
        try:
            with open(os.path.join(self.path, rel), "w") as f:
                f.write(text)
        except OSError as e:
            raise RecordError(f"record: tracefs {rel}: {e.strerror} ({text[:60]!r})") from None

    def exists(self, rel: str) -> bool:
        return os.path.exists(os.path.join(self.path, rel))

    def read(self, rel: str) -> str:
        with open(os.path.join(self.path, rel)) as f:
            return f.read()

    def remove(self) -> None:
        try:
            self.write("tracing_on", "0")
        except RecordError:
            pass
        for _ in range(50):  # EBUSY while a reader is still closing
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError as e:
                if e.errno != E.EBUSY:
                    return
                time.sleep(0.01)


class _Refined:
    """One ``syscalls:sys_enter_<name>`` event watching the values of a refined call."""

    def __init__(self, name: str, fields: list[str]) -> None:
        self.name = name
        self.kind, self.pos = refine.SPECS[name]
        self.fields = [fields[i] for i in self.pos]
        self.values: set[tuple[int, ...]] = set()
        self.done = False  # nothing more to learn: the event is switched off

    def filter(self) -> str:
        f = self.fields
        if self.kind == "set":
            return _capped([f"{f[0]}!={v[0]}" for v in sorted(self.values)]) or "0"  # "0" clears the filter
        if self.kind == "socket":
            return _capped([f"({f[0]}!={a}||{f[1]}!={b})" for a, b in sorted(self.values)]) or "0"
        if self.kind == "flags":
            union = 0
            for v in self.values:
                union |= v[0]
            return f"{f[0]}&{~union & refine.U32}"
        if self.kind == "exec":
            return f"{f[0]}&{refine.PROT_EXEC}"
        return f"{f[0]}&{refine.OPEN_WRITE}"  # write

    def learn(self, values: tuple[int, ...]) -> bool:
        """Add a value; True when the filter must change."""
        if values in self.values:
            return False
        self.values.add(values)
        if self.kind in ("exec", "write"):
            bit = refine.PROT_EXEC if self.kind == "exec" else refine.OPEN_WRITE
            if values[0] & bit:
                self.done = True
        elif self.kind == "set" and len(self.values) > refine.MAX_VALUES:
            self.done = True
        return True


def _event_fields(inst: _Instance, event: str) -> list[str] | None:
    """The argument field names of a per-syscall event, in argument order."""
    try:
        text = inst.read(f"events/{event}/format")
    except OSError:
        return None
    names = re.findall(r"field:[^;]*?(\w+)(?:\[\d+\])?;\s*offset", text)
    if "__syscall_nr" not in names:
        return None
    return names[names.index("__syscall_nr") + 1:]


_MIN_BUFFER_KB = 1024  # per CPU; a new instance gets the kernel's default (trace_buf_size, 1410 KB)


def _buffer_kb(inst: _Instance) -> int:
    """The instance's ring buffer per CPU, in KB, as the kernel reports it (0 if unreadable)."""
    try:
        return int(inst.read("buffer_size_kb").split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def record(argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = None,
           jail: bool = False, buffer_kb: int | None = None) -> Observations:
    """Run ``argv`` and return what its process tree called (see the module doc).

    A task's calls count from its first exec on (and its children's), so the held child's own
    calls are not recorded; with ``jail`` (``argv`` is ``sysgate run``) the top task's own exec
    does not count either: only the command the jail execs, and what it starts, is recorded.
    ``buffer_kb``: the ring buffer per CPU (default: the kernel's size for a new instance, at
    least 1 MB; resizing costs the set-up ~10 ms of page allocation, and the filters keep the
    buffer nearly empty after the first moments); a size asked for is noted in the report, as
    the kernel reports it back.

    Raises CommandNotStarted, RecordError (tracing unavailable, events lost) and
    RecordingInterrupted (Ctrl-C or ``timeout``) carrying what was seen so far.
    """
    why = available()
    if why:
        raise RecordError(f"record: the tracefs fast path is not available ({why})")
    nat = native().name
    nat_arch = native()
    obs = Observations("tracefs", succeeded={})
    fs = _Tracefs()
    inst: _Instance | None = None
    child = None
    released = False
    fds: list[int] = []
    try:
        inst = _Instance(fs)
        inst.write("tracing_on", "0")
        asked = buffer_kb is not None
        size = _buffer_kb(inst)
        if buffer_kb is None:
            buffer_kb = _MIN_BUFFER_KB if size < _MIN_BUFFER_KB else None  # else the size it has will do
        if buffer_kb is not None:
            inst.write("buffer_size_kb", str(buffer_kb))  # per CPU
            size = _buffer_kb(inst) or buffer_kb
        if asked:
            obs.notes.append(f"tracefs ring buffer: {size} KB per CPU (--buffer)")
        if not inst.fresh:
            inst.write("trace", "")
        inst.write("options/event-fork", "1")
        refined: dict[str, _Refined] = {}
        for name in refine.SPECS:
            if not nat_arch.has(name):
                continue
            ev = f"syscalls/sys_enter_{name}"
            fields = _event_fields(inst, ev)
            if fields is None or max(refine.SPECS[name][1]) >= len(fields):
                continue
            r = _Refined(name, fields)
            text = r.filter()
            if text != "0" or not inst.fresh:  # "0" clears a filter: nothing to clear on a new instance
                inst.write(f"events/{ev}/filter", text)
            refined[name] = r
        inst.write("events/raw_syscalls/sys_exit/filter", "ret>=0")
        # One write enables them all (a write per event costs ~0.2 ms each).
        inst.write("set_event", "".join(f"{ev}\n" for ev in [
            "raw_syscalls:sys_enter", "raw_syscalls:sys_exit", "sched:sched_process_fork", "sched:sched_process_exec",
            "sched:sched_process_exit", *(f"syscalls:sys_enter_{n}" for n in refined)]))
        child = spawn_held(argv, env)
        inst.write("set_event_pid", str(child.pid))
        fds.append(os.open(os.path.join(inst.path, "trace_pipe"), os.O_RDONLY | os.O_NONBLOCK))
        fds += _watermark_fds(inst)
        inst.write("tracing_on", "1")
        t0 = time.monotonic()
        child.release()
        released = True  # from here on _follow owns (and reaps) the command
        return _follow(inst, fds[0], fds[1:], child.pid, nat, refined, obs, timeout, jail, t0)
    except BaseException:
        if child is not None and not released:
            child.abandon()
        raise
    finally:
        for fd in fds:
            os.close(fd)
        _dispose(inst, fs)


_WATERMARK_PERCENT = 5  # of a CPU's buffer: ~70 KB, about a thousand events


def _watermark_fds(inst: _Instance) -> list[int]:
    """Per-CPU ``trace_pipe_raw`` files, polled only: the kernel wakes their poller when a CPU's
    buffer is ``buffer_percent`` full, not at every event (``trace_pipe`` would wake the reader
    at each one, and a woken reader tends to be run on the traced task's CPU, taking turns with
    it). Empty when the kernel has no ``buffer_percent`` (before 5.1): the reader then polls
    ``trace_pipe`` itself."""
    try:
        inst.write("buffer_percent", str(_WATERMARK_PERCENT))
        cpus = [d for d in os.listdir(os.path.join(inst.path, "per_cpu")) if d.startswith("cpu")]
    except (RecordError, OSError):
        return []
    fds: list[int] = []
    try:
        for cpu in cpus:
            fds.append(os.open(os.path.join(inst.path, "per_cpu", cpu, "trace_pipe_raw"), os.O_RDONLY | os.O_NONBLOCK))
    except OSError:
        for fd in fds:
            os.close(fd)
        return []
    return fds


_PENDING: list = []  # cleanup threads, and pids of detached cleaners
_DETACH = False


def detach_cleanup(on: bool = True) -> None:
    """Have the trace instances of this process removed by a detached process from now on.

    Removing an instance takes the kernel ~100 ms (RCU grace periods when the pid filter and
    the events go), and a process cannot end while one of its threads is inside that ``rmdir``.
    The ``sysgate record`` command, which exits right after recording, hands the removal to a
    process of its own instead (``sh`` retrying ``rmdir``, stdio on /dev/null, own session), after switching
    tracing and every event off, so that an instance left by a killed cleaner costs nothing but
    its memory (an enabled syscall event in any instance puts every task of the system on the
    slow syscall path).
    """
    global _DETACH
    _DETACH = on


def _dispose(inst: _Instance | None, fs: _Tracefs) -> None:
    """Remove the instance (and our tracefs mount) in the background: freeing the ring buffers
    takes the kernel ~100 ms, which the caller need not wait for. Pending removals are finished
    before the interpreter exits (:func:`wait_cleanup`), so nothing is left behind, unless
    :func:`detach_cleanup` was asked for."""
    if _DETACH and inst is not None and _dispose_detached(inst, fs):
        return
    import threading

    def work() -> None:
        if inst is not None:
            inst.remove()
        fs.close()

    if not _PENDING:
        import atexit

        atexit.register(wait_cleanup)
    t = threading.Thread(target=work, name="sysgate-tracefs-cleanup", daemon=True)
    t.start()
    _PENDING.append(t)


def _dispose_detached(inst: _Instance, fs: _Tracefs) -> bool:
    """Start ``rmdir`` on the instance in a session of its own and do not wait for it (it is
    reaped by whoever inherits it when we exit); False if it could not be started (the caller
    then removes the instance itself). Spawned, not forked: no copy of this interpreter."""
    import shutil

    tool = shutil.which("sh", path=os.defpath)
    if tool is None or shutil.which("rmdir", path=os.defpath) is None:
        return False
    try:
        inst.write("tracing_on", "0")
        inst.write("events/enable", "0")
    except RecordError:
        pass
    try:
        # Only stdin/out/err (on /dev/null: it must hold no pipe a reader waits on for EOF) and
        # the mount fd pass; everything else this process holds is closed in the cleaner.
        keep = {fs.fd} - {-1}
        acts: list = [(os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_RDWR, 0) for fd in (0, 1, 2)]
        acts += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _open_fds() if fd > 2 and fd not in keep]
        for fd in keep:
            os.set_inheritable(fd, True)
        # A detached mount's path is /proc/self/fd/N/...: the cleaner inherits fd N.
        # rmdir fails with EBUSY while a reader of ours is still being released (we may not have
        # exited yet, and the kernel closes trace pipes lazily): retry for up to 10 s.
        pid = os.posix_spawn(tool, [tool, "-c", _CLEANER, "sysgate-tracefs-cleanup", inst.path],
                             {"PATH": os.defpath}, file_actions=acts, setsid=True)
    except OSError:
        return False
    fs.close()
    _PENDING.append(pid)
    return True


_CLEANER = ('i=0; while [ "$i" -lt 200 ]; do rmdir -- "$1" 2>/dev/null && exit 0; [ -d "$1" ] || exit 0; '
            'sleep 0.05; i=$((i + 1)); done; exit 1')


def _open_fds() -> list[int]:
    try:
        return [int(x) for x in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        return []


def wait_cleanup() -> None:
    """Wait until every trace instance this process created is removed."""
    while _PENDING:
        p = _PENDING.pop()
        if isinstance(p, int):  # a detached cleaner's pid
            try:
                os.waitpid(p, 0)
            except ChildProcessError:
                pass
        else:
            p.join()


# The reader's wake-ups: a drain soon after one that learned something (a new call or value
# means more may follow, and the filter should narrow before the buffer fills with repeats),
# then twice as long after each quiet one, up to the slow pace; a watermark (see
# _watermark_fds) wakes it earlier whenever a CPU's buffer fills up anyway.
_QUICK_MS, _SLOW_MS = 5, 100


def _follow(inst: _Instance, pipe_fd: int, watermark_fds: list[int], top: int, nat: str, refined: dict[str, _Refined],
            obs: Observations, timeout: float | None, jail: bool, t0: float) -> Observations:
    nat_arch = native()
    task_arch: dict[int, str] = {top: nat}
    started: set[int] = set()  # tasks past the command's first exec (the held child's own calls are not the command's)
    tasks: set[int] = {top}
    live: set[int] = {top}  # tasks of the tree not yet seen ending
    skip_exec: set[int] = {top} if jail else set()  # in a jail, the top task's exec is the jail's
    in_play: set[str] = {nat}
    dirty_enter = dirty_exit = False
    dirty_refined: set[str] = set()
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = b""
    lost = 0
    status: int | None = None
    interrupted = ""

    def arch_of(pid: int, nr: int) -> str:
        if nr & X32_SYSCALL_BIT and nat == "x86_64":
            return "x32"
        return task_arch.get(pid, nat)

    # Numbers in the order they were learned: the kernel evaluates a filter's && chain until the
    # first false term, and the calls a program makes most are the ones learned first.
    enter_order: dict[int, None] = {}
    exit_order: dict[int, None] = {}

    def enter_filter() -> str:
        # A number is excluded once seen twice in every ABI in play (exact "seen once").
        common = None
        for a in in_play:
            nrs = {n for n, c in obs.calls.get(a, {}).items() if c >= 2}
            common = nrs if common is None else common & nrs
        return _capped([f"id!={n}" for n in enter_order if n in (common or ())]) or "0"  # "0" clears the filter

    def exit_filter() -> str:
        common = None
        for a in in_play:
            nrs = set((obs.succeeded or {}).get(a, ()))
            common = nrs if common is None else common & nrs
        return _capped(["ret>=0", *(f"id!={n}" for n in exit_order if n in (common or ()))])

    def handle(line: str) -> None:
        nonlocal dirty_enter, dirty_exit, lost
        m = _LINE.search(line)
        if m is None:
            lm = _LOST.search(line)
            if lm:
                lost += int(lm.group(1))
            return
        pid, event, rest = int(m.group(1)), m.group(3), m.group(4)
        if event == "sys_enter":
            if pid not in started:
                return
            nr_text, _, args_text = rest.partition(" (")
            nr = int(nr_text.split()[1])
            arch = arch_of(pid, nr)
            before = obs.calls.get(arch, {}).get(nr, 0)
            obs.saw(arch, nr)
            if before < 2 <= before + 1:
                dirty_enter = True
                enter_order[nr] = None
            name = get_arch(arch).name_of(nr)
            if name in refine.SPECS:
                args = [int(x, 16) for x in args_text.rstrip(")").split(", ")]
                if arch == nat and name in refined:
                    r = refined[name]
                    if r.learn(refine.key(name, args)):
                        dirty_refined.add(name)
                    obs.saw_args(arch, nr, refine.key(name, args))
                else:
                    obs.args_missing.setdefault(arch, set()).add(nr)
        elif event == "sys_exit":
            if pid not in started:
                return
            nr = int(rest.split()[1])
            arch = arch_of(pid, nr)
            if nr not in (obs.succeeded or {}).get(arch, ()):
                obs.saw_success(arch, nr)
                dirty_exit = True
                exit_order[nr] = None
        elif event == "sched_process_fork":
            fm = _FORK.search(rest)
            if fm:
                parent, kid = int(fm.group(1)), int(fm.group(2))
                task_arch[kid] = task_arch.get(parent, nat)
                tasks.add(kid)
                live.add(kid)
                if parent in started:
                    started.add(kid)
        elif event == "sched_process_exit":
            xm = _EXIT.search(rest)
            if xm:
                live.discard(int(xm.group(1)))
        elif event == "sched_process_exec":
            em = _EXEC.search(rest)
            if em:
                fname, p = em.group(1), int(em.group(2))
                if p in skip_exec:
                    skip_exec.discard(p)
                    return
                started.add(p)
                a = elf_arch(fname) or (elf_arch(f"/proc/{p}/exe") if not fname.startswith("/") else None)
                if a is not None:
                    task_arch[p] = a
                    if a not in in_play:
                        in_play.add(a)
                        dirty_enter = dirty_exit = True
                        obs.notes.append(
                            f"a task ran {fname} ({a}): recorded under {a}; the fast path learns a task's ABI "
                            f"from its exec, so {a} calls of its first moments whose numbers were already known "
                            f"as {nat} calls may be missing and {a} arguments are not refined (--method ptrace "
                            f"records every call with its ABI)")
        elif event.startswith("sys_"):
            name = event[4:]
            watched = refined.get(name)
            if watched is None or watched.done or pid not in started:
                return
            r = watched
            vals = []
            for f in r.fields:
                found = re.findall(rf"\b{f}: (0x[0-9a-fA-F]+|\d+)", rest)
                if not found:
                    return
                vals.append(int(found[-1], 0) & refine.U32)  # the last match, as before
            if r.learn(tuple(vals)):
                dirty_refined.add(name)
            obs.saw_args(nat, nat_arch.nr(name), tuple(vals))

    def refresh() -> None:
        nonlocal dirty_enter, dirty_exit
        if dirty_enter:
            inst.write("events/raw_syscalls/sys_enter/filter", enter_filter())
            dirty_enter = False
        if dirty_exit:
            inst.write("events/raw_syscalls/sys_exit/filter", exit_filter())
            dirty_exit = False
        for name in sorted(dirty_refined):
            r = refined[name]
            if r.done:
                inst.write(f"events/syscalls/sys_enter_{name}/enable", "0")
            else:
                inst.write(f"events/syscalls/sys_enter_{name}/filter", r.filter())
        dirty_refined.clear()

    def drain() -> bool:
        """Read what the buffer holds; True when something new was learned."""
        nonlocal pending
        learned = False
        while True:
            try:
                chunk = os.read(pipe_fd, 1 << 16)
            except BlockingIOError:
                return learned
            if not chunk:
                return learned
            data = pending + chunk
            lines = data.split(b"\n")
            pending = lines.pop()
            for ln in lines:
                handle(ln.decode(errors="replace"))
            # Narrow the filters as soon as something was learned: while the buffer floods, every
            # event read is one the kernel could have dropped before recording it.
            if dirty_enter or dirty_exit or dirty_refined:
                refresh()
                learned = True

    poller = select.poll()
    for fd in watermark_fds or [pipe_fd]:
        poller.register(fd, select.POLLIN)
    wait_ms = _QUICK_MS
    try:  # wakes the loop the moment the command ends (else at the next poll timeout)
        pidfd = os.pidfd_open(top)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = -1
    try:
        # Until the whole tree has ended (as strace -f): the command, then whatever it left running.
        while True:
            poller.poll(wait_ms if status is None else 10)
            now = time.monotonic()
            # A task is counted as ended only from what was true *before* the drain below: every
            # fork (and call) it made was then already in the ring buffer, so the drain reads its
            # children before the tree can be judged ended. Judging after the drain missed an
            # orphan forked between the drain and the check (its fork event not read yet).
            ended: set[int] = set()
            if status is None:
                pid, st = os.waitpid(top, os.WNOHANG)
                if pid == top:
                    status = st
                    obs.elapsed = now - t0
                    if pidfd >= 0:
                        poller.unregister(pidfd)  # stays readable: it would spin the loop
            if status is not None:
                ended = {top} | {t for t in live if not _alive(t)}
            wait_ms = _QUICK_MS if drain() else min(2 * wait_ms, _SLOW_MS)
            if status is not None:
                live.difference_update(ended)
                if not live:
                    break
            if deadline is not None and now > deadline:
                interrupted = f"timed out after {timeout} s"
                break
    except KeyboardInterrupt:
        interrupted = "interrupted"
    except BaseException:  # the recording failed (tracefs refused a filter, ...): the command must not run on
        if status is None:
            _kill_tree(top, tasks)
            os.waitpid(top, 0)
        raise
    if pidfd >= 0:
        os.close(pidfd)
    if interrupted:
        _kill_tree(top, tasks)
        try:
            os.waitpid(top, 0)
        except ChildProcessError:
            pass
    inst.write("tracing_on", "0")
    drain()
    if pending:
        handle(pending.decode(errors="replace"))
    lost += _overruns(inst)
    obs.tasks = len(tasks)
    if lost:
        from . import BUFFER_MAX

        size = _buffer_kb(inst)
        bigger = min(max(16, size // 1024 * 4), BUFFER_MAX >> 20)  # MiB: four times this one, at least 16M
        hint = f"a larger buffer: --buffer {bigger}M; or " if bigger << 10 > size else ""
        raise RecordError(f"record: the kernel's trace buffer ({size} KB per CPU) lost {lost} events; the profile "
                          f"would be incomplete ({hint}the ptrace recorder: --method ptrace)")
    if status is not None:
        obs.returncode = os.waitstatus_to_exitcode(status)
    # The command's first execve is entered before its exec event marks it started.
    if nat_arch.has("execve"):
        obs.saw(nat, nat_arch.nr("execve"))
    if interrupted:
        raise RecordingInterrupted(f"record: {interrupted}", obs)
    return obs


_FILTER_MAX = 4000  # the kernel takes a filter shorter than a page


def _capped(terms: list[str]) -> str:
    """``terms`` joined by ``&&``, the last ones left out if too long: fewer exclusions only let more
    events through, never fewer."""
    out, size = [], 0
    for t in terms:
        size += len(t) + 2
        if size > _FILTER_MAX:
            break
        out.append(t)
    return "&&".join(out)


def _overruns(inst: _Instance) -> int:
    total = 0
    try:
        cpus = [d for d in os.listdir(os.path.join(inst.path, "per_cpu")) if d.startswith("cpu")]
    except OSError:
        return 0
    for cpu in cpus:
        try:
            text = inst.read(f"per_cpu/{cpu}/stats")
        except OSError:
            continue
        for line in text.splitlines():
            k, _, v = line.partition(":")
            if k.strip() in ("overrun", "dropped events"):
                try:
                    total += int(v.split()[0])
                except (ValueError, IndexError):
                    pass
    return total


def _alive(pid: int) -> bool:
    """Whether task ``pid`` still runs (a zombie has ended: only its parent's wait is left)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


def _kill_tree(top: int, tasks: set[int]) -> None:
    for t in [top, *sorted(tasks - {top})]:
        try:
            os.kill(t, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
