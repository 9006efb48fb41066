"""Escape suite: the ``--allow-path`` supervisor, which opens files on the command's behalf.

Found by attacking it: the supervisor opened with its own capabilities and groups (only its file
system ids were the command's), so ``--allow-path /proc`` read the sandbox's PID 1, which shares
the caller's memory (the caller's argv, its memory map), and a file of one of the caller's groups;
a FIFO with no writer blocked the supervisor for ever (``--timeout`` overran by 15 s and the
thread stayed). Kernel-judged: real sandboxes, callers forked (root, and nobody where it applies).
"""
from __future__ import annotations

import errno
import os
import shutil
import time

import pytest

import forkrun
from jail_support import PY, ROOT, as_nobody, needs_userns, scratch_dir
from sysgate.jail import run
from sysgate.kernel.seccomp import features

pytestmark = [needs_userns,
              pytest.mark.skipif(not features().user_notif, reason="kernel without seccomp user notification")]
needs_root = pytest.mark.skipif(not ROOT, reason="needs root")
CALLERS = ["root", pytest.param("nobody", marks=needs_root)]
SYSTEM_PY = "/usr/bin/python3"
MARK = "sysgate-allow-path-marker-7f3a"  # in the caller's argv: PID 1 shares the caller's memory

PROC = r"""
import os, sys
def read(p):
    try:
        with open(p, "rb") as f:
            return f.read(4096)
    except OSError as e:
        return e.errno
out = {}
for p in ("/proc/1/cmdline", "/proc/1/maps", "/proc/1/environ", "/proc/self/../1/cmdline",
          "/proc/thread-self/../../1/cmdline", "/proc/%d/status" % os.getppid()):
    out[p] = read(p)
out["self"] = read("/proc/self/status")
out["thread-self"] = read("/proc/thread-self/comm")
out["global"] = read("/proc/meminfo")
print(repr(out))
"""


def _proc_reads(py: str) -> tuple:
    # (sys.argv is the caller's, which PID 1's cmdline would show)
    import sys

    sys.argv.append(MARK)
    r = run(["/bin/sh", "-c", f"exec {py} -I -S -c \"$1\" x", "sh", PROC], capture_output=True, timeout=60,
            allow_paths=["/"])
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def _preload() -> None:
    """What the supervisor loads lazily, loaded before a caller drops to nobody (who may not
    read this checkout)."""
    from sysgate import notify  # noqa: F401
    from sysgate.jail import mediation, send_mediation  # noqa: F401
    from sysgate.kernel import creds, mount  # noqa: F401


def _as(who: str, fn, *args, timeout: float = 90):
    _preload()
    if who == "root":
        return forkrun.run(lambda a: fn(*a), args, timeout=timeout).unwrap()
    return as_nobody(fn, *args, timeout=timeout)


@pytest.mark.parametrize("who", CALLERS)
def test_allow_path_never_serves_another_processs_proc(who: str) -> None:
    rc, out, err = _as(who, _proc_reads, PY if who == "root" else SYSTEM_PY)
    assert rc == 0, err
    got = eval(out)  # noqa: S307 - our own repr of bytes and ints
    assert MARK not in out
    for p in ("/proc/1/cmdline", "/proc/1/maps", "/proc/1/environ", "/proc/self/../1/cmdline",
              "/proc/thread-self/../../1/cmdline"):
        assert isinstance(got[p], int) and got[p] in (errno.EACCES, errno.ENOENT, errno.EPERM), (p, got[p])
    ppid = [k for k in got if k.endswith("/status") and k != "self"]
    assert all(isinstance(got[k], int) for k in ppid), got
    # the command's own entries and the global ones are still served
    assert isinstance(got["self"], bytes) and got["self"].startswith(b"Name:"), got["self"]
    assert got["thread-self"] == b"python3\n" or isinstance(got["thread-self"], bytes), got["thread-self"]
    assert isinstance(got["global"], bytes) and got["global"].startswith(b"MemTotal:"), got["global"]


FIFO = r"""
import errno, os
os.mkfifo("/tmp/f")
t = __import__("time").monotonic()
try:
    fd = os.open("/tmp/f", os.O_RDONLY)   # no writer: served at once, not waited for
    r = ("read", os.read(fd, 10), bool(os.get_blocking(fd)))
    os.close(fd)
except OSError as e:
    r = ("read", e.errno)
try:
    os.open("/tmp/f", os.O_WRONLY)        # no reader: ENXIO, not a wait
    w = ("write", 0)
except OSError as e:
    w = ("write", e.errno)
print(repr((r, w, round(__import__("time").monotonic() - t, 1))))
"""


def test_allow_path_fifo_never_blocks_the_supervisor() -> None:
    t = time.monotonic()
    r = run([PY, "-I", "-S", "-c", FIFO], capture_output=True, timeout=20, allow_paths=["/", "/tmp:rw"])
    took = time.monotonic() - t
    assert r.ok, r
    (read, write, inside) = eval(r.stdout)  # noqa: S307
    assert read == ("read", b"", True) and write == ("write", errno.ENXIO), (read, write)
    assert took < 15 and inside < 5, (took, inside)
    # and a FIFO that is never opened for writing cannot outlast --timeout through the supervisor
    t = time.monotonic()
    r = run(["/bin/sh", "-c", "mkfifo /tmp/f; exec cat /tmp/f; sleep 30"], capture_output=True, timeout=3,
            allow_paths=["/", "/tmp:rw"])
    assert time.monotonic() - t < 10, r


DOTDOT = r"""
import errno
got = {}
for i in range(2000):
    try:
        open("/usr/../etc/passwd", "rb").close()
        k = "ok"
    except OSError as e:
        k = errno.errorcode[e.errno]
    got[k] = got.get(k, 0) + 1
print(repr(got))
"""


def _dotdot_reads(py: str) -> tuple:
    r = run([py, "-I", "-S", "-c", DOTDOT], capture_output=True, timeout=60, allow_paths=["/"])
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


@pytest.mark.parametrize("who", CALLERS)
def test_allow_path_dotdot_is_served_while_the_host_renames(who: str, tmp_path) -> None:
    """The supervisor's openat2(RESOLVE_IN_ROOT) answers EAGAIN when a rename or a mount anywhere on
    the host races a ".." of the walk (the kernel asks the caller to retry). It served 17% of such
    opens as EAGAIN beside a rename loop, and CI's two suites (mounts of other sandboxes) once
    gave it to a test's read of /proc/thread-self/../../1/cmdline. The target must see the open as
    it would be without the race."""
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    open(a, "w").close()
    renamer = os.fork()
    if renamer == 0:  # renames on the host until killed (at most 120 s)
        try:
            end = time.monotonic() + 120
            while time.monotonic() < end:
                os.rename(a, b)
                os.rename(b, a)
        finally:
            os._exit(0)
    try:
        rc, out, err = _as(who, _dotdot_reads, PY if who == "root" else SYSTEM_PY)
    finally:
        os.kill(renamer, 9)
        os.waitpid(renamer, 0)
    assert rc == 0, err
    assert eval(out) == {"ok": 2000}  # noqa: S307 - our own repr


def _group_read(path: str) -> tuple:
    os.setgroups([4242])  # a group of the caller's that the command does not have
    r = run(["/bin/cat", path], capture_output=True, timeout=30, allow_paths=["/"])
    return r.returncode, r.stdout, r.stderr


@needs_root
def test_allow_path_opens_with_the_targets_groups() -> None:
    d = scratch_dir(".sysgate-ap-groups-")
    try:
        os.chmod(d, 0o755)
        secret = os.path.join(d, "secret")
        with open(secret, "w") as f:
            f.write("group-only")
        os.chown(secret, 0, 4242)
        os.chmod(secret, 0o640)
        rc, out, err = _as("root", _group_read, secret)
        assert rc != 0 and out == b"" and b"Permission denied" in err, (rc, out, err)
        os.chmod(secret, 0o644)  # the control: the same route reads what the command may
        rc, out, err = _as("root", _group_read, secret)
        assert (rc, out) == (0, b"group-only"), err
    finally:
        shutil.rmtree(d, ignore_errors=True)


NESTED = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x20000000) != 0:   # CLONE_NEWUSER | CLONE_NEWPID
    print("unshare", ctypes.get_errno()); sys.exit(0)
pid = os.fork()
if pid == 0:   # pid 1 of a namespace of its own: "/proc/1" looks like its own
    out = []
    for p in ("/proc/1/cmdline", "/proc/1/environ", "/proc/self/status"):
        try:
            with open(p, "rb") as f:
                out.append(f.read(4096))
        except OSError as e:
            out.append(e.errno)
    print(repr((os.getpid(), out)), flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""


def _nested_reads() -> tuple:
    import sys

    sys.argv.append(MARK)
    r = run([PY, "-I", "-S", "-c", NESTED], capture_output=True, timeout=60, allow_paths=["/"], allow=["unshare"])
    return r.returncode, r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")


def test_a_nested_pid_namespace_does_not_make_pid_1_its_own() -> None:
    """The command unshared a user and PID namespace and forked: its child, pid 1 there, asked for
    /proc/1/..., which the supervisor took for the child's own (it compared the innermost pid)
    and opened with its own credentials in the sandbox's procfs: PID 1 there shares the caller's
    memory (environ, maps; /proc/1/mem read-write with --allow-path /proc:rw)."""
    rc, out, err = _as("root", _nested_reads)
    assert rc == 0, err
    assert MARK not in out
    inner, got = eval(out)  # noqa: S307 - our own repr
    assert inner == 1 and all(isinstance(g, int) for g in got), got


TTY = r"""
import os
try:
    fd = os.open("/dev/tty", os.O_RDONLY)
    print("opened", os.ttyname(fd))
except OSError as e:
    print("refused", e.errno)
"""


def _with_a_terminal() -> tuple:
    master, slave = os.openpty()
    os.setsid()
    name = os.ttyname(slave)
    os.close(os.open(name, os.O_RDWR))  # the first open after setsid: our controlling terminal
    r = run([PY, "-I", "-S", "-c", TTY], stdin=slave, capture_output=True, timeout=30, allow_paths=["/"])
    return r.stdout.decode(), [d.get("by") for d in r.denials]


def test_dev_tty_is_never_the_callers_terminal() -> None:
    """The supervisor opened /dev/tty itself: the kernel gave it the *opener's* controlling
    terminal, the caller's, outside the sandbox's session and relay (keystrokes read, modes set)."""
    out, by = forkrun.run(lambda _: _with_a_terminal(), None, timeout=60).unwrap()
    assert out.split() == ["refused", str(errno.ENXIO)], (out, by)
    assert any(b and "terminal" in b for b in by), by


LEASE = r"""
import errno, fcntl, os, signal
signal.signal(signal.SIGIO, signal.SIG_IGN)  # the lease-break notice: the holder waits it out
with open("/tmp/leased", "w") as f:
    f.write("x")
r = os.open("/tmp/leased", os.O_RDONLY)
fcntl.fcntl(r, fcntl.F_SETLEASE, fcntl.F_RDLCK)
try:
    os.close(os.open("/tmp/leased", os.O_WRONLY))
    print("opened")
except OSError as e:
    print("refused", e.errno)
"""


def test_a_lease_does_not_stall_the_supervisor() -> None:
    """A read lease on a file, then an open of it for writing: the supervisor's reopen waited
    the lease-break time (45 s) and every other open of the sandbox with it."""
    t = time.monotonic()
    r = run([PY, "-I", "-S", "-c", LEASE], capture_output=True, timeout=20, profile=None, allow_paths=["/", "/tmp:rw"])
    assert r.ok and time.monotonic() - t < 15, (r, time.monotonic() - t)
    assert r.stdout.split() == [b"refused", str(errno.EAGAIN).encode()], r.stdout
