"""Shared helpers for the jail tests: skip conditions, a leftovers check, running as nobody.

Import the fixture into a test module with ``from jail_support import no_leftovers  # noqa: F401``
and mark tests with ``@pytest.mark.usefixtures("no_leftovers")``.
"""
from __future__ import annotations

import ctypes
import glob
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import pytest

import forkrun

ROOT = os.geteuid() == 0
SYSTEM_PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else shutil.which("python3") or sys.executable
TESTS = os.path.dirname(os.path.abspath(__file__))
# Trees a sandbox hides behind private empty mounts: a path there is not visible inside.
HIDDEN = ("/tmp/", "/var/tmp/", "/run/", "/var/run/", "/dev/shm/")


def open_to_others(path: str) -> bool:
    """Every directory on the way is searchable by others: a root caller's sandbox runs as an
    unprivileged host id, so pyenv under a 0700 /root is out of its reach."""
    parts = os.path.realpath(path).split("/")
    for i in range(2, len(parts) + 1):
        try:
            if not os.stat("/".join(parts[:i])).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True



def scratch_dir(prefix: str) -> str:
    """A fresh directory the sandbox sees (not under its private /tmp) and its host id can reach:
    in $HOME, else beside the tests, else (root, a checkout under a directory others cannot search,
    as a CI clone may be) under /var/lib; skip when none will do (an unprivileged user without a home)."""
    for base in (os.path.expanduser("~"), TESTS, *(["/var/lib"] if ROOT else [])):
        real = os.path.realpath(base)
        if real.startswith(("/tmp/", "/var/tmp/", "/run/", "/dev/shm/")) or not os.access(real, os.W_OK):
            continue
        if ROOT and not open_to_others(real):  # a root caller's sandbox runs as an unprivileged host id
            continue
        try:
            d = tempfile.mkdtemp(prefix=prefix, dir=real)
        except OSError:
            continue
        os.chmod(d, 0o755)
        return d
    pytest.skip("no writable directory outside /tmp that the sandbox can see")

def _sandbox_python() -> str:
    """The interpreter for commands *inside* a sandbox: this one, or the one its venv points at (a CI
    checkout with its .venv may sit in a hidden tree such as /tmp), if others can reach it; else the
    system's."""
    for cand in (sys.executable, os.path.realpath(sys.executable)):
        if not cand.startswith(HIDDEN) and not os.path.realpath(cand).startswith(HIDDEN) and open_to_others(cand):
            return cand
    return SYSTEM_PY


PY = _sandbox_python()
PROBE = os.path.join(TESTS, "jail_probe.py")


def _userns_ok() -> bool:
    try:
        with open("/proc/sys/user/max_user_namespaces") as f:
            return int(f.read()) > 0
    except (OSError, ValueError):
        return True


needs_root = pytest.mark.skipif(not ROOT, reason="needs root (tests run as root in CI)")
needs_userns = pytest.mark.skipif(not _userns_ok(), reason="user namespaces are disabled (max_user_namespaces=0)")


def mount_ids() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[0] + " " + line.split()[4] for line in f}


def children() -> set[int]:
    """This process's child processes: every process whose parent (``/proc/PID/stat``'s ppid, the
    parent's thread-group id) is us. Not ``/proc/self/task/*/children``: a child is listed under
    the thread that made it, and when that thread exits (a Sandbox's) the child moves to another
    of ours, a moment in which no file lists it: the leftovers check then saw no child, stopped
    waiting, and found the sandbox's supervisor on its second look, unreaped a few ms early."""
    me = str(os.getpid()).encode()
    out: set[int] = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None and st[1] == me:
                out.add(int(name))
    return out


def _ours(pid: int) -> bool:
    """``pid`` is this process, one of its descendants, or gone (a group it left behind counts as ours:
    we cannot tell, and a leftover must not pass). A live process outside our tree is another job's
    (a second test run on the same machine), whose groups are not this test's to judge."""
    me = os.getpid()
    for _ in range(64):
        if pid == me:
            return True
        fields = proc_stat(pid)
        if fields is None:
            return True
        pid = int(fields[1])  # the parent's pid
        if pid <= 1:
            return False
    return False


# Groups a test leaves behind on purpose (a SIGKILLed run's, for the next run to remove), listed for
# every test run on this machine: another run (tools/stress_suite, CI's subsets beside the suite)
# would otherwise see a new group of a dead owner during one of its tests and count it as its own.
DELIBERATE = "/tmp/sysgate-tests-deliberate-cgroups"


def leave_deliberately(group: str) -> None:
    """Record ``group`` as left behind on purpose (before its owner dies)."""
    fd = os.open(DELIBERATE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, os.fsencode(group) + b"\n")
    finally:
        os.close(fd)


def _deliberate() -> set[str]:
    try:
        with open(DELIBERATE, "rb") as f:
            return set(os.fsdecode(line) for line in f.read().splitlines())
    except OSError:
        return set()


def sysgate_cgroups() -> list[str]:
    found = glob.glob("/sys/fs/cgroup/*/**/sysgate-*", recursive=True) + glob.glob("/sys/fs/cgroup/sysgate-*")
    deliberate = _deliberate() if found else set()
    out = []
    for path in found:
        if path in deliberate:
            continue
        owner = os.path.basename(path).split("-")[1:2]
        if not owner or not owner[0].isdigit() or _ours(int(owner[0])):
            out.append(path)
    return out


@pytest.fixture
def no_leftovers() -> Any:
    """Fail the test if it leaves mounts, child processes or sysgate cgroups behind."""
    m0, c0, g0 = mount_ids(), children(), set(sysgate_cgroups())
    yield
    # An init that has reported is reaped by the jail's reaper thread, in batches every 50 ms, once
    # the kernel has torn its namespaces down (a few ms; the bound is for a loaded host).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (children() - c0 or set(sysgate_cgroups()) - g0):
        time.sleep(0.01)
    assert mount_ids() == m0, f"mounts changed: {mount_ids() ^ m0}"
    left = children() - c0
    assert not left, f"child processes left: {_describe(left)}"
    assert not set(sysgate_cgroups()) - g0, f"cgroups left: {set(sysgate_cgroups()) - g0}"


def proc_stat(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state first, then the parent's
    pid, ...), or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _describe(pids: set[int]) -> str:
    """Each pid with its state, where it sleeps and its command line: what a failure needs to be
    understood after the fact."""
    out = []
    for pid in sorted(pids):
        try:
            state = (proc_stat(pid) or [b"gone"])[0].decode()
            with open(f"/proc/{pid}/wchan") as f:
                wchan = f.read()
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
            out.append(f"{pid} [{state} {wchan or '-'}] {cmd!r}")
        except OSError:
            out.append(f"{pid} (gone)")
    runner = sys.modules.get("sysgate.jail.runner")
    if runner is not None:  # inits are reaped by the runner's reaper thread: what it is waiting for
        frame = sys._current_frames().get(runner._reaper_ident)
        where = (f"{frame.f_code.co_name}:{frame.f_lineno} pid={frame.f_locals.get('pid')} "
                 f"batch={frame.f_locals.get('pids')}" if frame is not None else "not running")
        out.append(f"reaper {where}, pending {list(runner._reap_pending)}")
    return "; ".join(out)


CHECKOUT = os.path.dirname(TESTS)


def _closed_ancestor(path: str) -> str | None:
    """The topmost directory above ``path`` that others cannot traverse (a 0700 mktemp dir CI
    clones into, say), or None."""
    parts = os.path.realpath(path).split("/")
    for i in range(2, len(parts)):
        d = "/".join(parts[:i])
        try:
            if not os.stat(d).st_mode & 0o001:
                return d
        except OSError:
            return None
    return None


def _check(rc: int, what: str) -> int:
    if rc < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return rc


def reach_checkout() -> None:
    """In a forked child about to become an unprivileged user (still root): make the checkout
    reachable by others in a mount namespace of the child's own, as an installed package is.

    CI may clone into a directory others cannot traverse; a real unprivileged caller has sysgate
    where it can read it (site-packages), and needs the package's lazily read parts (modules,
    profiles, precompiled programs) and the tests' probes. The closed ancestor is covered by an
    empty 0755 tmpfs holding the checkout again at its own path; nothing else changes."""
    top = _closed_ancestor(CHECKOUT)
    if top is None:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, c_long = ctypes.c_long(-100), ctypes.c_long
    path = os.fsencode(os.path.realpath(CHECKOUT))
    _check(libc.unshare(0x20000), "unshare(CLONE_NEWNS)")
    _check(libc.mount(None, b"/", None, c_long(0x40000 | 0x4000), None), "make the mounts private")  # MS_REC|MS_PRIVATE
    # open_tree(OPEN_TREE_CLONE|AT_RECURSIVE|OPEN_TREE_CLOEXEC): the checkout, taken before it is covered
    tree = _check(libc.syscall(c_long(428), at_fdcwd, path, c_long(1 | 0x8000 | os.O_CLOEXEC)), "open_tree")
    try:
        _check(libc.mount(b"tmpfs", os.fsencode(top), b"tmpfs", c_long(0), b"mode=0755,size=64k"), "mount a tmpfs")
        os.makedirs(path, 0o755, exist_ok=True)
        _check(libc.syscall(c_long(429), c_long(tree), b"", at_fdcwd, path, c_long(4)), "move_mount")  # F_EMPTY_PATH
    finally:
        os.close(tree)


def drop_to_nobody() -> None:
    """In a forked child: the checkout reachable (see reach_checkout), then uid/gid 65534, no groups."""
    reach_checkout()
    os.setgroups([])
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)


def as_nobody(fn: Callable[..., Any], *args: Any, timeout: float = 30) -> Any:
    """Call ``fn(*args)`` in a forked child that has dropped to uid/gid 65534; return its result.

    The child may not be able to import anything new (this interpreter may live under /root), so
    what the jail loads lazily is loaded here first.
    """
    import json  # noqa: F401
    import signal  # noqa: F401

    from sysgate import _startup
    from sysgate.jail import audit_log, cgroups, filters, landlock, netpool  # noqa: F401

    _startup.sha256  # noqa: B018 - a profile file's cache key needs it (a built-in's does not)
    filters.get("docker-default")
    def body(a: tuple) -> Any:
        drop_to_nobody()
        ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: as a process started as nobody would be
        os.environ["HOME"] = "/nonexistent"
        os.chdir("/")
        return fn(*a)

    return forkrun.run(body, args, timeout=timeout).unwrap()
