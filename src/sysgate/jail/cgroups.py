"""cgroup limits for a sandbox (``--memory``, ``--pids``, ``--cpus``) on cgroup v2 or v1.

v2 is used when the unified hierarchy (``/sys/fs/cgroup`` or ``/sys/fs/cgroup/unified``) has
the controllers; otherwise the v1 hierarchies of each controller. One directory per hierarchy
is created under the caller's own cgroup (v2 falls back to the hierarchy's root, which is
exempt from the no-internal-processes rule), limits are written, and the ``cgroup.procs``
files are opened *by the caller*: the sandboxed command writes ``0`` to them itself before it
``execve``\\ s, so the kernel's permission check is against the opener and no pid has to be
passed around. :meth:`CgroupSet.cleanup` removes the directories once every member is gone.

The result says which version was used; OOM kills are read from ``memory.events`` (v2) or
``memory.oom_control`` (v1), the peak from ``memory.peak`` / ``memory.max_usage_in_bytes``.

**Leftovers.** A ``sysgate`` process that is SIGKILLed (a sandbox could arrange that) cannot remove
its groups. Each group is named ``sysgate-PID-START-N`` after its owner: the creating process's
pid and its start time (field 22 of ``/proc/PID/stat``, in clock ticks since boot), which together
name one process for the life of the system. Before making a group, :func:`reap_leftovers`
removes the ``sysgate-*`` groups beside it whose owner is gone (no such pid, or a pid now
reused by a process that started at another time). Only empty groups can be removed (``rmdir``),
so a group whose sandbox still runs (``--no-die-with-parent``) stays until a later run finds it
empty; concurrent runs may race to remove the same group, and one of them simply finds it gone.
"""
from __future__ import annotations

import errno as E
import itertools
import os
import time

from .._startup import signal
from ..kernel import syscall as N
from .options import Options

__all__ = ["CgroupSet", "create", "detect", "Hierarchies", "CgroupError", "reap_leftovers", "owner_tag"]

_V1_FILES = {"memory": "memory", "pids": "pids", "cpu": "cpu"}
_counter = itertools.count()


class CgroupError(N.KernelError):
    """The sandbox's cgroup could not be made (no controller, no permission...)."""


class Hierarchies:
    """Where this process sits in each mounted hierarchy."""

    v2: str | None  # our cgroup directory in the unified hierarchy
    v2_root: str | None  # the unified hierarchy's mount point
    v1: dict[str, str]  # controller -> our directory

    def __init__(self, v2: str | None = None, v2_root: str | None = None, v1: dict[str, str] | None = None) -> None:
        self.v2 = v2
        self.v2_root = v2_root
        self.v1 = {} if v1 is None else v1


def _unescape(s: str) -> str:
    return s.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n").replace("\\134", "\\")


def detect(mountinfo: str = "/proc/self/mountinfo", cgroup: str = "/proc/self/cgroup") -> Hierarchies:
    """Read the cgroup mounts and this process's membership (for tests: other files)."""
    mine_v1: dict[str, str] = {}
    mine_v2 = None
    with open(cgroup) as f:
        for line in f:
            hid, _, rest = line.rstrip("\n").partition(":")
            ctrls, _, path = rest.partition(":")
            if hid == "0" and not ctrls:
                mine_v2 = path
            else:
                for c in ctrls.split(","):
                    mine_v1[c] = path
    h = Hierarchies()
    with open(mountinfo) as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            root, mnt, fstype, sopts = _unescape(parts[3]), _unescape(parts[4]), parts[sep + 1], parts[sep + 3]
            if fstype == "cgroup2" and mine_v2 is not None and h.v2 is None:
                rel = _rel(mine_v2, root)
                if rel is not None:
                    h.v2, h.v2_root = os.path.join(mnt, rel), mnt
            elif fstype == "cgroup":
                for c in sopts.split(","):
                    if c in _V1_FILES and c in mine_v1 and c not in h.v1:
                        rel = _rel(mine_v1[c], root)
                        if rel is not None:
                            h.v1[c] = os.path.join(mnt, rel)
    return h


def _rel(path: str, root: str) -> str | None:
    if root == "/":
        return path.lstrip("/")
    if path == root or path.startswith(root.rstrip("/") + "/"):
        return path[len(root):].lstrip("/")
    return None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _write(path: str, value: str) -> None:
    # O_CREAT is a no-op on cgroupfs (its files exist or cannot be made) and lets tests use plain directories.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _open_procs(d: str) -> int:
    return os.open(os.path.join(d, "cgroup.procs"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if v.strip().lstrip("-").isdigit():
            out[k] = int(v)
    return out


class CgroupSet:
    """The cgroup(s) of one sandbox."""

    version: str  # "v1" or "v2"
    dirs: dict[str, str]  # controller (or "unified") -> directory
    procs_fds: list[int]
    _cleaned: bool

    def __init__(self, version: str, dirs: dict[str, str], procs_fds: list[int]) -> None:
        self.version = version
        self.dirs = dirs
        self.procs_fds = procs_fds
        self._cleaned = False

    def join(self) -> None:
        """Move the calling process into every group (run in the sandboxed process)."""
        for fd in self.procs_fds:
            os.write(fd, b"0")

    def _file(self, ctrl: str, name: str) -> str:
        return os.path.join(self.dirs["unified" if self.version == "v2" else ctrl], name)

    def oom_kills(self) -> int:
        try:
            if self.version == "v2":
                return _kv(_read(self._file("memory", "memory.events"))).get("oom_kill", 0)
            if "memory" in self.dirs:
                return _kv(_read(self._file("memory", "memory.oom_control"))).get("oom_kill", 0)
        except OSError:
            pass
        return 0

    def peak_memory(self) -> int | None:
        if self.version == "v2" or "memory" in self.dirs:
            name = "memory.peak" if self.version == "v2" else "memory.max_usage_in_bytes"
            try:
                return int(_read(self._file("memory", name)))
            except (OSError, ValueError):
                return None
        return None

    def pids_limit_hits(self) -> int:
        if self.version == "v1" and "pids" not in self.dirs:
            return 0
        try:
            return _kv(_read(self._file("pids", "pids.events"))).get("max", 0)
        except OSError:
            return 0

    def members(self) -> list[int]:
        out: set[int] = set()
        for d in self.dirs.values():
            try:
                out.update(int(x) for x in _read(os.path.join(d, "cgroup.procs")).split())
            except (OSError, ValueError):
                pass
        return sorted(out)

    def kill_all(self) -> None:
        """SIGKILL every member (v2: ``cgroup.kill``; else member by member)."""
        if self.version == "v2":
            try:
                _write(self._file("", "cgroup.kill"), "1")
                return
            except OSError:
                pass
        for _ in range(50):
            pids = self.members()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.002)

    def cleanup(self, timeout: float = 2.0) -> None:
        """Close the fds and remove the directories (waiting for exiting members to go)."""
        if self._cleaned:
            return
        self._cleaned = True
        for fd in self.procs_fds:
            try:
                os.close(fd)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for d in self.dirs.values():
            while True:
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != E.EBUSY or time.monotonic() > deadline:
                        break
                    if time.monotonic() > deadline - timeout / 2:
                        self.kill_all()
                    time.sleep(0.001)


def needed(opts: Options) -> list[str]:
    out = []
    if opts.memory is not None:
        out.append("memory")
    if opts.pids is not None:
        out.append("pids")
    if opts.cpus is not None:
        out.append("cpu")
    return out


def _start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time in clock ticks after boot), None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    try:
        return int(data[data.rindex(b")") + 2:].split()[19])  # fields after "(comm)" start at 3
    except (ValueError, IndexError):
        return None


_TAG: tuple[int, str] | None = None


def owner_tag() -> str:
    """``PID-START`` of this process (recomputed after a fork)."""
    global _TAG
    pid = os.getpid()
    if _TAG is None or _TAG[0] != pid:
        _TAG = (pid, f"{pid}-{_start_time(pid) or 0}")
    return _TAG[1]


def _owner_gone(name: str) -> bool:
    parts = name.split("-")  # sysgate-PID-START-N
    if len(parts) != 4 or not all(p.isdigit() for p in parts[1:]):
        return False  # not ours, or an older layout without a start time: never guessed at
    start = _start_time(int(parts[1]))
    return start is None or start != int(parts[2])


def reap_leftovers(base: str) -> list[str]:
    """Remove the empty ``sysgate-*`` groups under ``base`` whose owning process is gone; return them."""
    removed: list[str] = []
    try:
        names = [n for n in os.listdir(base) if n.startswith("sysgate-")]
    except OSError:
        return removed
    for name in names:
        if _owner_gone(name):
            try:
                os.rmdir(os.path.join(base, name))
                removed.append(name)
            except OSError:
                pass  # still has members (a sandbox that outlived sysgate), or someone else removed it
    return removed


def create(opts: Options, hier: Hierarchies | None = None) -> CgroupSet | None:
    """Make and configure the sandbox's cgroup(s); None when no limit asks for one."""
    want = needed(opts)
    if not want:
        return None
    hier = hier or detect()
    name = f"sysgate-{owner_tag()}-{next(_counter)}"
    errors: list[str] = []
    if hier.v2 is not None:
        for base in dict.fromkeys([hier.v2, hier.v2_root]):
            if base is None:
                continue
            try:
                return _create_v2(base, name, want, opts)
            except OSError as e:
                errors.append(f"v2 {base}: {e.strerror or e}")
    missing = [c for c in want if c not in hier.v1]
    if not missing:
        try:
            return _create_v1(hier, name, want, opts)
        except OSError as e:
            errors.append(f"v1: {e.strerror or e}")
    else:
        errors.append(f"v1: no {', '.join(missing)} hierarchy mounted")
    raise CgroupError(E.ENOTSUP, "cgroup limits unavailable (" + "; ".join(errors) + ")")


def _create_v2(base: str, name: str, want: list[str], opts: Options) -> CgroupSet:
    avail = _read(os.path.join(base, "cgroup.controllers")).split()
    lacking = [c for c in want if c not in avail]
    if lacking:
        raise OSError(E.ENOTSUP, f"controller(s) {', '.join(lacking)} not enabled here")
    enabled = _read(os.path.join(base, "cgroup.subtree_control")).split()
    todo = [c for c in want if c not in enabled]
    if todo:
        _write(os.path.join(base, "cgroup.subtree_control"), " ".join("+" + c for c in todo))
    reap_leftovers(base)
    d = os.path.join(base, name)
    os.mkdir(d)
    cg = CgroupSet("v2", {"unified": d}, [])
    try:
        if opts.memory is not None:
            _write(os.path.join(d, "memory.max"), str(opts.memory))
            try:
                _write(os.path.join(d, "memory.swap.max"), "0")
            except OSError:
                pass
        if opts.pids is not None:
            _write(os.path.join(d, "pids.max"), str(opts.pids))
        if opts.cpus is not None:
            _write(os.path.join(d, "cpu.max"), f"{max(1000, int(opts.cpus * 100000))} 100000")
        cg.procs_fds.append(_open_procs(d))
    except OSError:
        cg.cleanup(0)
        raise
    return cg


def _create_v1(hier: Hierarchies, name: str, want: list[str], opts: Options) -> CgroupSet:
    cg = CgroupSet("v1", {}, [])
    try:
        for c in want:
            reap_leftovers(hier.v1[c])
            d = os.path.join(hier.v1[c], name)
            os.mkdir(d)
            cg.dirs[c] = d
            if c == "memory":
                _write(os.path.join(d, "memory.limit_in_bytes"), str(opts.memory))
                if os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                    try:  # no escape into swap
                        _write(os.path.join(d, "memory.memsw.limit_in_bytes"), str(opts.memory))
                    except OSError:
                        pass
            elif c == "pids":
                _write(os.path.join(d, "pids.max"), str(opts.pids))
            elif c == "cpu":
                _write(os.path.join(d, "cpu.cfs_period_us"), "100000")
                _write(os.path.join(d, "cpu.cfs_quota_us"), str(max(1000, int((opts.cpus or 1) * 100000))))
            cg.procs_fds.append(_open_procs(d))
    except OSError:
        cg.cleanup(0)
        raise
    return cg
