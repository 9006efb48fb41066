"""Limits hold and the host stays healthy: pids, memory, timeout, tmpfs size, rlimits, CPU quota,
death with the parent; cgroup v1/v2 handling (v2 also against a fake hierarchy)."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

import pytest

import forkrun
from jail_support import PY, ROOT, as_nobody, needs_root, needs_userns, no_leftovers, proc_stat  # noqa: F401
from sysgate.jail import Sandbox, SandboxError, cgroups, run
from sysgate.jail.options import Options

pytestmark = [needs_userns, pytest.mark.usefixtures("no_leftovers")]


def _cgroups_usable() -> bool:
    if not ROOT:
        return False
    try:
        cg = cgroups.create(Options(pids=10))
    except OSError:
        return False
    if cg is not None:
        cg.cleanup()
    return True


needs_cgroups = pytest.mark.skipif(not _cgroups_usable(), reason="no usable cgroup controllers (needs root)")


def expected_version(*controllers: str) -> str:
    """Which hierarchy the jail must pick here: v2 where it offers the controllers, else v1 (hybrid hosts)."""
    h = cgroups.detect()
    for base in (h.v2, h.v2_root):
        try:
            with open(os.path.join(base or "/nonexistent", "cgroup.controllers")) as f:
                if set(controllers) <= set(f.read().split()):
                    return "v2"
        except OSError:
            pass
    return "v1"


def procs_with(marker: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        out.append(int(pid))
            except OSError:
                pass
    return out


@needs_cgroups
def test_fork_bomb_stops_at_pids() -> None:
    code = ("import os, time, errno\nn = 0\nwhile True:\n    try:\n        pid = os.fork()\n"
            "    except OSError as e:\n        print(n, errno.errorcode[e.errno]); break\n"
            "    if pid == 0:\n        time.sleep(60); os._exit(0)\n    n += 1\n")
    t = time.monotonic()
    r = run([PY, "-c", code], pids=16, capture_output=True, timeout=60)
    assert r.ok, r.stderr
    n, err = r.stdout.split()
    assert int(n) < 16 and err == b"EAGAIN"
    assert r.pids_limit_hits >= 1 and r.cgroup == expected_version("pids")
    assert time.monotonic() - t < 20                     # the 60 s sleepers died with the sandbox


@needs_cgroups
def test_memory_hog_is_oom_killed() -> None:
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(4 << 20))\n"
    r = run([PY, "-c", code], memory="64M", capture_output=True, timeout=60)
    assert (r.status, r.signal, r.exit_code) == ("oom", signal.SIGKILL, 137)
    assert r.oom_kills >= 1 and r.cgroup == expected_version("memory")
    assert r.peak_memory is not None and 32 << 20 < r.peak_memory <= (64 << 20) + (4 << 20)


@needs_cgroups
def test_memory_limit_lets_small_work_run() -> None:
    r = run(["sh", "-c", "echo ok; cat /proc/self/cgroup"], memory="64M", pids=64, cpus=1, capture_output=True)
    assert r.ok and r.stdout.split()[0] == b"ok" and r.oom_kills == 0
    assert r.cgroup == expected_version("memory", "pids", "cpu")
    # its own cgroup namespace: the sandbox's groups are the roots of what it sees
    assert all(line.endswith(b":/") for line in r.stdout.split()[1:]), r.stdout


def test_timeout_kills_a_tree_that_ignores_sigterm() -> None:
    marker = f"{time.time() % 1000:.6f}"
    script = (f"trap '' TERM; (trap '' TERM; exec sleep 99{marker}) & (sh -c 'trap \"\" TERM; sleep 98{marker}') & "
              f"sleep 97{marker}")
    t = time.monotonic()
    r = run(["sh", "-c", script], timeout=0.5)
    assert r.status == "timeout" and r.exit_code == 124 and time.monotonic() - t < 5
    assert procs_with(marker) == []


def test_timeout_without_pid_namespace_kills_process_group() -> None:
    marker = f"{time.time() % 1000:.6f}"
    r = run(["sh", "-c", f"trap '' TERM; sleep 96{marker} & sleep 95{marker}"], timeout=0.3, share=["pid"])
    assert r.status == "timeout"
    deadline = time.monotonic() + 3
    while procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procs_with(marker) == []


def test_tmpfs_size_is_enforced() -> None:
    r = run(["sh", "-c", "head -c 3000000 /dev/zero > /mnt/f; echo rc=$?; stat -c %s /mnt/f"],
            tmpfs=["/mnt:1M"], capture_output=True)
    out = r.stdout.split()
    assert out[0] != b"rc=0" and b"No space left" in r.stderr
    assert int(out[1]) <= 1 << 20
    r = run(["sh", "-c", "head -c 3000000 /dev/zero > /tmp/f && echo fits"], tmp_size="1M", capture_output=True)
    assert b"No space left" in r.stderr


def test_rlimits() -> None:
    r = run([PY, "-c", "import os\nfor i in range(64): os.open('/dev/null', os.O_RDONLY)"],
            rlimits=["nofile=16"], capture_output=True)
    assert r.returncode == 1 and b"Too many open files" in r.stderr
    r = run(["sh", "-c", "exec head -c 2000000 /dev/zero > /tmp/big"], rlimits={"fsize": "1M"})
    assert (r.status, r.signal) == ("limit", signal.SIGXFSZ)
    r = run(["sh", "-c", "ulimit -c; ulimit -n"], rlimits=["nofile=100:200"], capture_output=True)
    assert r.stdout.split() == [b"0", b"100"]  # core dumps are off unless asked for
    r = run([PY, "-c", "bytearray(256 << 20)"], rlimits=["as=128M"], capture_output=True)
    assert r.returncode == 1 and b"MemoryError" in r.stderr


def test_cpu_rlimit() -> None:
    r = run(["sh", "-c", "while :; do :; done"], rlimits=["cpu=1:3"], timeout=30)
    assert (r.status, r.signal) == ("limit", signal.SIGXCPU)    # the soft limit's warning kills sh
    assert 0.8 < r.cpu_time < 3
    r = run(["sh", "-c", "trap '' XCPU; while :; do :; done"], rlimits=["cpu=1:2"], timeout=30)
    assert (r.status, r.signal) == ("limit", signal.SIGKILL)    # ignored: the hard limit kills it
    assert 1.8 < r.cpu_time < 4


@needs_cgroups
def test_cpu_quota() -> None:
    code = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 1.0: pass\nprint(time.process_time())"
    r = run([PY, "-c", code], cpus=0.2, capture_output=True, timeout=30)
    assert r.ok and float(r.stdout) < 0.5


def _run_sandbox_then_wait(marker: str) -> None:
    Sandbox(["sleep", f"94{marker}"]).start()
    time.sleep(60)


def test_sandbox_dies_with_its_parent() -> None:
    marker = f"{time.time() % 1000:.6f}"
    child = forkrun.start(_run_sandbox_then_wait, marker)
    deadline = time.monotonic() + 10
    while not procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs_with(marker), "sandbox did not start"
    child.kill()
    deadline = time.monotonic() + 5
    while procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs_with(marker) == []


def test_cli_sandbox_dies_with_the_cli() -> None:
    import subprocess

    marker = f"{time.time() % 1000:.6f}"
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    cli = subprocess.Popen([sys.executable, "-m", "sysgate", "run", "--", "sleep", f"93{marker}"],
                           env=dict(os.environ, PYTHONPATH=src))
    try:
        deadline = time.monotonic() + 10
        while not procs_with(marker) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert procs_with(marker), "sandbox did not start"
    finally:
        cli.kill()
        cli.wait()
    deadline = time.monotonic() + 5
    while procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs_with(marker) == []


def _run_sandbox_that_outlives_us(marker: str) -> None:
    # Long enough to be seen alive after the caller is gone on a loaded machine (it was under 1 s,
    # and two suites at once let it end by itself before the check), short enough to end on its own.
    Sandbox(["sleep", f"4.9{marker.replace('.', '')}"], die_with_parent=False).start()
    time.sleep(60)


def test_no_die_with_parent_outlives_the_caller() -> None:
    marker = f"{time.time() % 1000:.6f}"
    tag = f"4.9{marker.replace('.', '')}"
    child = forkrun.start(_run_sandbox_that_outlives_us, marker)
    deadline = time.monotonic() + 10
    while not procs_with(tag) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert procs_with(tag), "sandbox did not start"
    child.kill()
    time.sleep(0.2)
    assert procs_with(tag), "the sandbox died with its caller despite die_with_parent=False"
    deadline = time.monotonic() + 15                     # it ends by itself (sleep 4.9x)
    while procs_with(tag) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procs_with(tag) == []


def _sandbox_then_die_holding_the_gil(tag: str, wfd: int) -> None:
    sb = Sandbox(["sleep", tag], die_with_parent=False, timeout=_GIL_TIMEOUT).start()
    os.write(wfd, f"{sb.pid}\n".encode())

    def spin() -> None:  # a thread of ours that holds the GIL nearly all the time
        while True:
            pass

    import threading

    threading.Thread(target=spin, daemon=True).start()
    time.sleep(60)


def _gone(pid: int) -> bool:
    return (proc_stat(pid) or [b"X"])[0] in (b"Z", b"X")


# Long enough that the command still runs when the caller is killed, on a host loaded by two suites
# at once (1.5 s was not: CI once found the command timed out before the test looked for it), and
# far enough below the command's own 40 s that ending by the timeout is told from ending by itself.
_GIL_TIMEOUT = 6.0


def test_no_die_with_parent_keeps_its_timeout_when_the_caller_dies_holding_the_gil() -> None:
    """A sandbox that outlives its caller must not depend on the caller's interpreter: killed
    while one of its threads held the GIL, the caller's supervisor would wait for it for ever,
    and the command would run past its timeout with nothing left to reap it."""
    tag = f"40.{int(time.time() * 1e6) % 10**9:09d}"
    rfd, wfd = os.pipe()
    child = forkrun.start(_sandbox_then_die_holding_the_gil, tag, wfd)
    os.close(wfd)
    try:
        try:
            assert select.select([rfd], [], [], 60)[0], "the sandbox's start took over 60 s"
            sup = int(os.read(rfd, 64).split()[0])
        finally:
            os.close(rfd)
        assert procs_with(tag), "sandbox did not start"
        time.sleep(0.3)  # the spinning thread runs
    finally:
        child.kill()  # on a failure too: a caller left behind fails the next test's leftovers check
    deadline = time.monotonic() + 25  # the timeout is 6 s from the start; the command sleeps 40 s
    while (procs_with(tag) or not _gone(sup)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procs_with(tag) == [], "the command outlived its timeout"
    assert _gone(sup), "the sandbox's supervisor is still there"


# A fresh interpreter for the tests about the caller's own lifetime: N is DEVNULL, for the command's
# streams (given the caller's, it would hold them, and a capture pipe, open till it ends).
_PRELUDE = "import os, sys, time, sysgate; from sysgate.jail import DEVNULL as N\n"


def _python(code: str, stdin: bytes = b"") -> bytes:
    """What ``_PRELUDE + code`` printed, once it exited 0."""
    p = subprocess.run([sys.executable, "-c", _PRELUDE + code], input=stdin, capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    return p.stdout


def test_no_die_with_parent_outlives_a_normal_exit() -> None:
    """die_with_parent=False holds when the caller exits normally, not only when it is killed."""
    tag = f"5.{int(time.time() * 1e6) % 10**9:09d}"  # seconds: long enough to be seen after the exit
    _python("sysgate.Sandbox(['sleep', sys.stdin.read()], stdin=N, stdout=N, stderr=N, die_with_parent=False)"
            ".start(); sys.exit(0)", tag.encode())
    assert procs_with(tag), "the sandbox ended with its caller despite die_with_parent=False"
    deadline = time.monotonic() + 20  # it ends by itself (sleep 5.x)
    while procs_with(tag) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert procs_with(tag) == []


def test_sandbox_does_not_hold_the_callers_stdout() -> None:
    """The caller's stdout reaches EOF when the caller closes it, though a sandbox of its runs: the
    sandbox's supervisor inherits the caller's fds and must not keep them (the command, given
    streams of its own, has none of them)."""
    code = ("sysgate.Sandbox(['sleep', '30'], stdin=N, stdout=N, stderr=N).start()\n"
            "os.write(1, b'started'); os.close(1); os.close(2); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", _PRELUDE + code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert p.stdout is not None
        fd, got, deadline = p.stdout.fileno(), b"", time.monotonic() + 20
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            got += chunk
        else:
            chunk = b"?"
        assert (got, chunk) == (b"started", b""), "no EOF on the caller's stdout while its sandbox runs"
    finally:
        p.kill()
        p.wait(30)
        p.stdout.close()


def test_a_forked_childs_exit_leaves_the_parents_sandboxes() -> None:
    """A child forked while a sandbox runs does not own it: its normal exit (which ends a process's
    own running sandboxes) must neither end the parent's sandbox nor wait for it."""
    took, alive, status = _python(
        "sb = sysgate.Sandbox(['sleep', '30'], stdin=N, stdout=N, stderr=N).start()\n"
        "t = time.monotonic(); pid = os.fork()\n"
        "if pid == 0: sys.exit(0)\n"
        "os.waitpid(pid, 0); took = time.monotonic() - t; time.sleep(0.3)\n"
        "alive = sb.poll() is None; sb.kill(); r = sb.wait(30)\n"
        "print(round(took, 2), alive, r.status)").split()
    assert (alive, status) == (b"True", b"killed"), "the child's exit ended the parent's sandbox"
    assert float(took) < 1.5, f"the child's exit waited {took} s for the parent's sandbox"


def test_a_forked_child_cannot_wait_for_or_signal_the_parents_sandbox() -> None:
    """In a forked child, wait() on the parent's sandbox never ended (nothing in the child reports)
    and kill() ended the parent's sandbox: each now raises RuntimeError, and leaving a with block
    there leaves the sandbox alone."""
    out = _python(
        "with sysgate.Sandbox(['sleep', '30'], stdin=N, stdout=N, stderr=N) as sb:\n"
        "    r, w = os.pipe(); pid = os.fork()\n"
        "    if pid == 0:\n"
        "        said = []\n"
        "        for call in (lambda: sb.wait(5), sb.poll, sb.kill, sb.terminate, lambda: sb.communicate(timeout=5)):\n"
        "            try: call(); said.append('returned')\n"
        "            except RuntimeError as e: said.append('forked child' in str(e))\n"
        "        sb.__exit__(None, None, None)\n"
        "        os.write(w, repr(said).encode()); os._exit(0)\n"
        "    os.close(w); os.waitpid(pid, 0); said = os.read(r, 4096).decode()\n"
        "    alive = sb.poll() is None\n"
        "print(said, alive, sb.wait(30).status)")
    assert out.decode().split("] ") == ["[True, True, True, True, True", "True killed\n"], out


@needs_root
def test_cgroup_limits_unprivileged_fail_cleanly() -> None:
    def attempt() -> str:
        try:
            run(["true"], memory="64M")
        except SandboxError as e:
            return f"{e.stage}|{e}"
        return "ran"

    stage, msg = as_nobody(attempt).split("|", 1)
    assert stage == "cgroup" and "\n" not in msg


# -- cgroup detection and the v2 code path against fake hierarchies ------------------------------

def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_detect_hybrid_v1_and_pure_v2(tmp_path) -> None:
    mi = tmp_path / "mountinfo"
    _write(mi, "30 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
               "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
               "36 31 0:33 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
               "39 31 0:36 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
               "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n")
    cg = tmp_path / "cgroup"
    _write(cg, "5:pids:/a\n4:memory:/a/b\n2:cpu,cpuacct:/\n0::/u\n")
    h = cgroups.detect(str(mi), str(cg))
    assert h.v1 == {"memory": "/sys/fs/cgroup/memory/a/b", "cpu": "/sys/fs/cgroup/cpu,cpuacct/", "pids":
                    "/sys/fs/cgroup/pids/a"}
    assert (h.v2, h.v2_root) == ("/sys/fs/cgroup/unified/u", "/sys/fs/cgroup/unified")
    _write(mi, "30 23 0:28 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n")
    _write(cg, "0::/user.slice/x.scope\n")
    h = cgroups.detect(str(mi), str(cg))
    assert (h.v2, h.v1) == ("/sys/fs/cgroup/user.slice/x.scope", {})


def test_v2_limits_written_and_version_reported(tmp_path) -> None:
    base = tmp_path / "v2"
    _write(base / "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
    _write(base / "cgroup.subtree_control", "")
    h = cgroups.Hierarchies(v2=str(base), v2_root=str(base))
    cg = cgroups.create(Options(memory="64M", pids=20, cpus=0.5), h)
    try:
        assert cg.version == "v2"
        d = cg.dirs["unified"]
        assert os.path.dirname(d) == str(base)
        assert (base / "cgroup.subtree_control").read_text().split() == ["+memory", "+pids", "+cpu"]
        read = lambda name: open(os.path.join(d, name)).read()  # noqa: E731
        assert (read("memory.max"), read("memory.swap.max"), read("pids.max"), read("cpu.max")) == \
            (str(64 << 20), "0", "20", "50000 100000")
        _write(tmp_path / "v2" / os.path.basename(d) / "memory.events", "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
        _write(tmp_path / "v2" / os.path.basename(d) / "memory.peak", "12345\n")
        assert (cg.oom_kills(), cg.peak_memory()) == (1, 12345)
    finally:
        for fd in cg.procs_fds:
            os.close(fd)


def test_v2_without_controllers_falls_back_to_v1(tmp_path) -> None:
    base = tmp_path / "v2"
    _write(base / "cgroup.controllers", "hugetlb\n")
    _write(base / "cgroup.subtree_control", "")
    mem = tmp_path / "v1mem"
    mem.mkdir()
    h = cgroups.Hierarchies(v2=str(base), v2_root=str(base), v1={"memory": str(mem)})
    cg = cgroups.create(Options(memory="64M"), h)
    try:
        assert cg.version == "v1" and os.path.dirname(cg.dirs["memory"]) == str(mem)
        assert open(os.path.join(cg.dirs["memory"], "memory.limit_in_bytes")).read() == str(64 << 20)
    finally:
        for fd in cg.procs_fds:
            os.close(fd)
    h = cgroups.Hierarchies(v2=str(base), v2_root=str(base))
    with pytest.raises(cgroups.CgroupError, match="v1: no memory hierarchy"):
        cgroups.create(Options(memory="64M"), h)
