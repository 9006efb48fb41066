"""dump: the filters of a running process (1 and 3 stacked, byte for byte), the filters a command
installs (libseccomp under /usr/bin/python3), explain of a PID, and clear errors."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import libseccomp_build  # noqa: E402
from forkrun import read_within, start  # noqa: E402
from sysgate.compiler import compile_policy  # noqa: E402
from sysgate.policy import Action, ActionKind, Condition, Op, Policy, Rule  # noqa: E402

ALLOW = Action(ActionKind.ALLOW)
pytestmark = pytest.mark.skipif(sys.platform != "linux" or os.uname().machine != "x86_64",
                                reason="needs an x86_64 Linux kernel with seccomp")


def sysgate(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *args], capture_output=True, text=True, timeout=timeout)


def programs(n: int) -> list[bytes]:
    """n harmless, different filters (sleeping stays allowed)."""
    pols = [Policy(ALLOW, (Rule("kexec_load", Action(ActionKind.ERRNO, 1)),), ("x86_64",)),
            Policy(ALLOW, (Rule("reboot", Action(ActionKind.ERRNO, 2)),
                           Rule("personality", Action(ActionKind.ERRNO, 3), (Condition(0, Op.EQ, 8),))),
                   ("x86_64",)),
            Policy(ALLOW, (Rule("swapon", Action(ActionKind.TRAP)),), ("x86_64", "x86"))]
    return [compile_policy(p).to_bytes() for p in pols[:n]]


def _install_and_wait(progs: list[bytes], ready_fd: int) -> None:
    from sysgate.kernel.seccomp import install

    for p in progs:
        install(p)
    os.write(ready_fd, b"x")
    time.sleep(60)


def _running_with(progs: list[bytes]):  # type: ignore[no-untyped-def]
    r, w = os.pipe()
    child = start(_install_and_wait, progs, w)
    os.close(w)
    try:
        assert read_within(r, 1) == b"x"
    finally:
        os.close(r)
    return child


@pytest.mark.parametrize("n", [1, 3])
def test_dump_pid_byte_for_byte(tmp_path: Path, n: int) -> None:
    progs = programs(n)
    with _running_with(progs) as child:
        r = sysgate("dump", str(child.pid), "-o", str(tmp_path / "out"))
        assert r.returncode == 0, r.stderr
        got = [(tmp_path / "out" / f"filter-{i}.bpf").read_bytes() for i in range(n)]
        assert got == progs  # oldest first
        assert not (tmp_path / "out" / f"filter-{n}.bpf").exists()
        r = sysgate("dump", str(child.pid))
        assert r.returncode == 0 and r.stdout.count("# filter ") == n
        if n == 3:
            assert "# filter 0 of 3 (oldest)" in r.stdout and "# filter 2 of 3 (newest)" in r.stdout
            r = sysgate("explain", str(child.pid), "--arch", "x86_64")
            assert r.returncode == 0, r.stderr
            assert "kexec_load" in r.stdout and "reboot" in r.stdout
            # personality's argument is an unsigned int: decided on its low word
            assert "personality: errno(3) if personality.lo32 == 8 /* PER_LINUX32 */, else allow" in r.stdout
        child.kill()


_LIBSECCOMP = r"""
import sys, time, seccomp
f = seccomp.SyscallFilter(seccomp.ALLOW)
f.add_rule(seccomp.ERRNO(1), "kexec_load")
f.add_rule(seccomp.ERRNO(13), "personality", seccomp.Arg(0, seccomp.EQ, 8))
with open(sys.argv[1], "wb") as fh:
    f.export_bpf(fh)
f.load()
if len(sys.argv) > 2:
    time.sleep(float(sys.argv[2]))
"""


@pytest.mark.skipif(not libseccomp_build.available(), reason="python3-seccomp not installed")
def test_dump_command_libseccomp(tmp_path: Path) -> None:
    exported = tmp_path / "exported.bpf"
    r = sysgate("dump", "-o", str(tmp_path / "out"), "--", libseccomp_build.SYSTEM_PYTHON, "-c", _LIBSECCOMP,
                str(exported))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "filter-0.bpf").read_bytes() == exported.read_bytes()
    assert not (tmp_path / "out" / "filter-1.bpf").exists()
    # --kill stops the command as soon as its filter is in
    t0 = time.monotonic()
    r = sysgate("dump", "--kill", "-o", str(tmp_path / "k"), "--", libseccomp_build.SYSTEM_PYTHON, "-c",
                _LIBSECCOMP, str(tmp_path / "e2.bpf"), "60")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    assert (tmp_path / "k" / "filter-0.bpf").read_bytes() == (tmp_path / "e2.bpf").read_bytes()


def test_dump_errors() -> None:
    r = sysgate("dump", "999999999")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "999999999" in r.stderr
    with start(time.sleep, 30) as child:
        r = sysgate("dump", str(child.pid))
        assert r.returncode == 0 and "has no seccomp filter" in r.stderr
        child.kill()
    r = sysgate("dump", "--", "/nonexistent/command")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    r = sysgate("dump")
    assert r.returncode == 2 and "PID" in r.stderr
    r = sysgate("explain", "999999999")
    assert r.returncode == 2 and r.stderr.count("\n") == 1


_PRCTL_THEN_SECCOMP = r"""
import ctypes, sys
from sysgate.kernel.seccomp import install
progs = [bytes.fromhex(h) for h in sys.argv[1:]]
libc = ctypes.CDLL(None, use_errno=True)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
assert libc.prctl(38, ctypes.c_ulong(1), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
fp = Fprog(len(progs[0]) // 8, progs[0])
assert libc.prctl(22, ctypes.c_ulong(2), ctypes.byref(fp), ctypes.c_ulong(0), ctypes.c_ulong(0)) == 0
for p in progs[1:]:
    install(p)  # seccomp(2)
"""


def test_dump_command_prctl_and_seccomp_stacked(tmp_path: Path) -> None:
    """A command installing one filter with prctl(PR_SET_SECCOMP) and two with seccomp(2): all
    three captured in order, byte for byte, and explained as one stack."""
    progs = programs(3)
    r = sysgate("dump", "-o", str(tmp_path / "out"), "--", sys.executable, "-c", _PRCTL_THEN_SECCOMP,
                *(p.hex() for p in progs))
    assert r.returncode == 0, r.stderr
    got = sorted((tmp_path / "out").iterdir())
    assert [p.name for p in got] == ["filter-0.bpf", "filter-1.bpf", "filter-2.bpf"]
    assert [p.read_bytes() for p in got] == progs
    r = sysgate("dump", "--", sys.executable, "-c", _PRCTL_THEN_SECCOMP, progs[0].hex())
    assert r.returncode == 0 and r.stdout.count("# filter ") == 1 and "A = arch" in r.stdout
    r = sysgate("dump", "--", sys.executable, "-c", "raise SystemExit(0)")
    assert r.returncode == 0 and "has no seccomp filter" in r.stderr
