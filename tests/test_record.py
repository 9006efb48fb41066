"""``sysgate record``: completeness against strace, the recorded profile under ``sysgate run``
(kernel-judged), argument refinement, merge/base, bad commands and interrupted recordings.

Both recorders are tested: tracefs (root) and the seccomp-assisted ptrace fallback.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import sysgate
from jail_support import PY, ROOT, as_nobody, needs_userns, no_leftovers  # noqa: F401
from sysgate.arch import get as get_arch
from sysgate.arch import native
from sysgate.policy import ActionKind, Condition, Op, Policy, Rule, errno
from sysgate.recorder import CommandNotStarted, RecordingInterrupted, record, tracefs
from sysgate.recorder.launch import elf_arch
from sysgate.reference import evaluate

SRC = str(Path(sysgate.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC}
NAT = native()
HAS_TRACEFS = tracefs.available() is None
METHODS = [pytest.param("tracefs", marks=pytest.mark.skipif(not HAS_TRACEFS, reason="tracefs needs root")),
           "ptrace"]
needs_strace = pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed")

TCP = textwrap.dedent("""
    import os, socket
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind(("127.0.0.1", 0)); srv.listen(1)
    port = srv.getsockname()[1]
    pid = os.fork()
    if pid == 0:
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"ping"); print(c.recv(4).decode(), flush=True); c.close(); os._exit(0)
    conn, _ = srv.accept(); conn.settimeout(10)
    conn.sendall(conn.recv(4).upper()); conn.close()
    os.waitpid(pid, 0)
""")
PYIMPORTS = "import json, decimal, sqlite3, csv, email.message; print(json.dumps({'d': str(decimal.Decimal(1) / 8)}))"
# getpriority is made only by the second thread. Thread.join returns when the thread's Python part has
# ended, before its pthread exits (glibc's madvise of the stack, then exit): the main thread then waits
# for the task itself to end, else its exit_group kills the thread first in some runs (about 1 in 4) and
# the two runs compared (strace's, the recorder's) made different calls. Sleeps at least once, so that
# both runs make the same calls.
THREAD = ("import os, threading, time\nt = threading.Thread(target=os.getpriority, args=(0, 0)); t.start(); t.join()\n"
          "end = time.monotonic() + 20\n"
          "while True:\n"
          "    time.sleep(0.001)\n"
          "    if len(os.listdir('/proc/self/task')) == 1 or time.monotonic() > end: break\n")
SHELL = "ls /usr | sort | head -3; echo $(cat /proc/self/stat | wc -w)"


def _sysgate(*args: str, input: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *args], env=ENV, capture_output=True, input=input,
                          timeout=timeout)


def _strace_names(argv: list[str], tmp: Path, cwd: str | None = None) -> set[str]:
    out = tmp / "strace.txt"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=all", "-o", str(out), "--", *argv], capture_output=True,
                   timeout=60, check=True, cwd=cwd)
    names = set()
    for line in out.read_text().splitlines():
        m = re.match(r"^(?:\[pid\s+)?\d+\]?\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()", line)
        if m:
            names.add(m.group(1) or m.group(2))
    assert "execve" in names and len(names) > 10, names
    return names


def _allowed(policy: Policy) -> set[str]:
    return {r.syscall for r in policy.rules if r.action.kind is ActionKind.ALLOW}


def _workloads(tmp: Path) -> dict[str, tuple[list[str], str | None]]:
    (tmp / "hello.c").write_text("#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n")
    cc = shutil.which("cc") or shutil.which("gcc")
    loads = {"shell": (["sh", "-c", SHELL], None), "python": ([PY, "-c", PYIMPORTS], None),
             "tcp": ([PY, "-c", TCP], None), "thread": ([PY, "-S", "-c", THREAD], None)}
    if cc:
        loads["cc"] = ([cc, "-O0", "-o", "hello", "hello.c"], str(tmp))
    return loads


# -- completeness: everything strace sees is in the profile --------------------------------------------

@needs_strace
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("load", ["shell", "python", "cc", "tcp", "thread"])
def test_profile_covers_what_strace_sees(method: str, load: str, tmp_path: Path) -> None:
    loads = _workloads(tmp_path)
    if load not in loads:
        pytest.skip("no C compiler")
    argv, cwd = loads[load]
    seen = _strace_names(argv, tmp_path, cwd)
    old = os.getcwd()
    os.chdir(cwd or old)
    try:
        policy, report = record(argv, method=method, timeout=50)
    finally:
        os.chdir(old)
    assert report.method == method and report.returncode == 0
    assert policy.default == errno(1) and NAT.name in policy.arches
    missing = seen - _allowed(policy)
    assert not missing, f"{method} recorder missed what strace saw: {sorted(missing)}"
    if load == "thread":
        assert "getpriority" in _allowed(policy)


# -- the recorded profile under sysgate run: same output, anything else refused --------------------------

@needs_userns
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("method", METHODS)
def test_recorded_profile_runs_the_workload_and_refuses_the_rest(method: str, tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    script = ("import os, sys, socket\n"
              "print(sorted(os.listdir('/usr'))[:3])\n"
              "if len(sys.argv) > 1:\n"
              "    try:\n"
              "        os.setsid(); print('setsid allowed')\n"  # never recorded
              "    except OSError as e:\n"
              "        print('setsid', e.errno)\n")
    rec = _sysgate("record", "-q", "--method", method, "-o", str(prof), "--in-jail", "--", PY, "-c", script)
    assert rec.returncode == 0, rec.stderr
    doc = json.loads(prof.read_text())
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO"
    run = _sysgate("run", "--profile", str(prof), "--", PY, "-c", script)
    assert run.returncode == 0, run.stderr
    assert run.stdout == rec.stdout  # the same output as the recorded run
    probe = _sysgate("run", "--profile", str(prof), "--", PY, "-c", script, "x")
    lines = probe.stdout.decode().splitlines()
    assert lines[-1] == "setsid 1", probe.stdout + probe.stderr  # EPERM: the kernel refused it


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_shell_pipeline_recorded_in_jail_runs_under_its_profile(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    rec = _sysgate("record", "-q", "-o", str(prof), "--in-jail", "--", "sh", "-c", SHELL)
    assert rec.returncode == 0, rec.stderr
    run = _sysgate("run", "--profile", str(prof), "--", "sh", "-c", SHELL)
    assert (run.returncode, run.stdout) == (0, rec.stdout), run.stderr
    # A call the recording never needed (mkdir) is refused by the kernel with the default EPERM.
    probe = _sysgate("run", "--profile", str(prof), "--", "sh", "-c", SHELL + "; exec mkdir /tmp/d")
    assert probe.returncode == 1 and probe.stdout == rec.stdout, probe.stderr
    assert b"Operation not permitted" in probe.stderr, probe.stderr


# -- argument refinement ------------------------------------------------------------------------

SOCK = ("import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.close(); print('inet ok')\n"
        "if len(sys.argv) > 1:\n"
        "    try:\n"
        "        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); print('unix allowed')\n"
        "    except OSError as e:\n"
        "        print('unix', e.errno)\n")


@pytest.mark.parametrize("method", METHODS)
def test_socket_family_is_learned(method: str) -> None:
    policy, report = record([PY, "-S", "-c", SOCK], method=method, timeout=30)
    rules = policy.rules_for("socket")
    assert rules and all(r.conditions for r in rules), rules
    nr = NAT.nr("socket")
    assert evaluate(policy, NAT.name, nr, (2, 1 | 0x80000, 0)).kind is ActionKind.ALLOW   # AF_INET, SOCK_STREAM|CLOEXEC
    assert evaluate(policy, NAT.name, nr, (1, 1, 0)).kind is ActionKind.ERRNO             # AF_UNIX: never seen
    assert evaluate(policy, NAT.name, nr, (2, 2, 0)).kind is ActionKind.ERRNO             # AF_INET, SOCK_DGRAM
    assert any(r.startswith("socket (family, type): (2, 1)") for r in report.refined), report.refined
    # --no-args: names only
    names, _ = record([PY, "-S", "-c", SOCK], method=method, no_args=True, timeout=30)
    assert all(not r.conditions for r in names.rules)
    assert evaluate(names, NAT.name, nr, (1, 1, 0)).kind is ActionKind.ALLOW


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_other_socket_family_refused_by_the_kernel(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    rec = _sysgate("record", "-q", "-o", str(prof), "--in-jail", "--", PY, "-S", "-c", SOCK)
    assert rec.returncode == 0, rec.stderr
    run = _sysgate("run", "--profile", str(prof), "--", PY, "-S", "-c", SOCK, "x")
    assert run.stdout.decode().splitlines() == ["inet ok", "unix 1"], run.stdout + run.stderr


def test_refined_conditions() -> None:
    from sysgate.recorder import refine

    clone = refine.rules("clone", {(0x11,), (0x100,)})
    assert clone[0].conditions == (Condition(0, Op.MASKED_EQ, 0, ~0x111 & 0xFFFFFFFF, width=32),)
    assert refine.rules("mprotect", {(1,), (3,)})[0].conditions == (Condition(2, Op.MASKED_EQ, 0, 4, width=32),)
    assert refine.rules("mprotect", {(1,), (5,)})[0].conditions == ()
    assert refine.rules("openat", {(0x80000,)})[0].conditions[0].mask == refine.OPEN_WRITE
    assert refine.rules("openat", {(0x80000,), (0x241,)})[0].conditions == ()
    assert [r.conditions[0].value for r in refine.rules("ioctl", {(0x5401,), (0x5413,)})] == [0x5401, 0x5413]
    assert refine.rules("ioctl", None)[0].conditions == ()


# -- merge and base ----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_merge_adds_and_reports_what_this_run_added(method: str) -> None:
    first, _ = record(["sh", "-c", "true"], method=method, timeout=30)
    second, report = record(["sh", "-c", "ls / >/dev/null"], method=method, merge=first, timeout=30)
    assert _allowed(first) <= _allowed(second)
    assert "getdents64" in report.added and "getdents64" not in _allowed(first)
    assert not set(report.added) & _allowed(first)
    # merging the same run again adds nothing
    again, rep2 = record(["sh", "-c", "ls / >/dev/null"], method=method, merge=second, timeout=30)
    assert rep2.added == [] and _allowed(again) == _allowed(second)


def test_merge_cli_reads_and_extends_a_profile(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    assert _sysgate("record", "-q", "-o", str(prof), "--", "true").returncode == 0
    one = {n for s in json.loads(prof.read_text())["syscalls"] for n in s["names"]}
    r = _sysgate("record", "--merge", str(prof), "-o", str(prof), "--", "sh", "-c", "ls / >/dev/null")
    assert r.returncode == 0, r.stderr
    two = {n for s in json.loads(prof.read_text())["syscalls"] for n in s["names"]}
    assert one < two and "getdents64" in two
    assert b"added by this run: " in r.stderr and b"getdents64" in r.stderr


def test_base_keeps_its_denials() -> None:
    base = Policy(sysgate.Action.parse("allow"), (
        Rule("getdents64", errno(13)),
        Rule("socket", errno(1), (Condition(0, Op.EQ, 1, width=32),)),
    ))
    policy, report = record([PY, "-S", "-c", "import os, socket; os.listdir('/'); socket.socket().close()"],
                            base=base, timeout=30)
    assert "getdents64" not in _allowed(policy) and report.denied_by_base == ["getdents64"]
    assert evaluate(policy, NAT.name, NAT.nr("getdents64"), (3, 0, 0)).kind is ActionKind.ERRNO
    # the base's conditional denial is carried over: AF_UNIX refused whatever was recorded
    assert evaluate(policy, NAT.name, NAT.nr("socket"), (1, 1, 0)).kind is ActionKind.ERRNO
    assert evaluate(policy, NAT.name, NAT.nr("socket"), (2, 1 | 0x80000, 0)).kind is ActionKind.ALLOW
    # a deny-by-default base without a name refuses it too
    strict = Policy(errno(1), (Rule("read", sysgate.Action.parse("allow")),))
    p2, r2 = record(["true"], base=strict, timeout=30)
    assert _allowed(p2) <= {"read"} and "execve" in r2.denied_by_base


# -- bad input, interruption ----------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
def test_command_that_cannot_start_is_125_and_writes_nothing(method: str, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    bad = tmp_path / "notelf"
    bad.write_bytes(b"\0\1\2 not a program")
    bad.chmod(0o755)
    for cmd in ("/nonexistent/cmd", "no-such-command-sysgate", str(tmp_path), str(bad)):
        r = _sysgate("record", "--method", method, "-o", str(out), "--", cmd)
        assert r.returncode == 125, (cmd, r.stderr)
        assert len(r.stderr.decode().strip().splitlines()) == 1, r.stderr
        assert not out.exists()
    with pytest.raises(CommandNotStarted):
        record([str(bad)], method=method)


@pytest.mark.parametrize("method", METHODS)
def test_interrupted_recording_writes_nothing_unless_partial(method: str, tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    r = _sysgate("record", "--method", method, "--timeout", "1", "-o", str(out), "--", "sleep", "20")
    assert r.returncode == 124 and not out.exists(), r.stderr
    r = _sysgate("record", "--method", method, "--timeout", "1", "--partial", "-o", str(out), "--", "sleep", "20")
    assert r.returncode == 0 and out.exists(), r.stderr
    assert b"PARTIAL" in r.stderr
    with pytest.raises(RecordingInterrupted):
        record(["sleep", "20"], method=method, timeout=0.5)


def test_bad_options_exit_2(tmp_path: Path) -> None:
    r = _sysgate("record", "--default-action", "bogus", "--", "true")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr
    r = _sysgate("record", "--merge", str(tmp_path / "missing.json"), "--", "true")
    assert r.returncode == 2 and r.stderr.count(b"\n") == 1, r.stderr
    r = _sysgate("record", "--")
    assert r.returncode == 2


# -- the fallback without privileges, the API, arch detection ------------------------------------------

@pytest.mark.skipif(not ROOT, reason="drops to nobody from root")
def test_ptrace_fallback_works_unprivileged() -> None:
    def body() -> list[str]:
        policy, report = record(["sh", "-c", "ls / >/dev/null"], method="auto", timeout=30)
        return [report.method, *sorted(_allowed(policy))]

    out = as_nobody(body)
    assert out[0] == "ptrace" and "getdents64" in out and "execve" in out


def test_api_is_the_function_and_returns_policy_and_report() -> None:
    import importlib

    importlib.import_module("sysgate.recorder")
    assert callable(sysgate.record) and sysgate.record is record
    rec = sysgate.record(["true"], timeout=30)
    policy, report = rec
    assert isinstance(policy, Policy) and rec.report is report and "exit_group" in report.allowed


def test_elf_arch_of_images(tmp_path: Path) -> None:
    assert elf_arch(sys.executable if not os.path.islink(sys.executable) else os.path.realpath(sys.executable)) \
        == NAT.name
    head = bytearray(b"\x7fELF" + bytes(16))
    head[4], head[5], head[18:20] = 1, 1, (3).to_bytes(2, "little")
    (tmp_path / "i386").write_bytes(bytes(head) + bytes(40))
    assert elf_arch(str(tmp_path / "i386")) == "x86"
    (tmp_path / "script").write_text("#!/bin/sh\n")
    assert elf_arch(str(tmp_path / "script")) is None


T32 = r"""
static long sc1(long n, long a) { long r; __asm__ volatile ("int $0x80" : "=a"(r) : "a"(n), "b"(a) : "memory"); return r; }
static long sc3(long n, long a, long b, long c) {
    long r; __asm__ volatile ("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory"); return r; }
void _start(void) {
    sc1(20, 0);                      /* getpid (x86_64 20 is writev) */
    sc1(64, 0);                      /* getppid (x86_64 64 is semget) */
    sc3(4, 1, (long)"ok32\n", 5);    /* write */
    sc1(1, 0);                       /* exit */
    for (;;) ;
}
"""


def _build_t32(tmp: Path) -> Path:
    if NAT.name != "x86_64" or not shutil.which("gcc"):
        pytest.skip("needs gcc on x86_64")
    (tmp / "t32.c").write_text(T32)
    exe = tmp / "t32"
    r = subprocess.run(["gcc", "-m32", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-O1", "-o", str(exe),
                        str(tmp / "t32.c")], capture_output=True)
    if r.returncode != 0:
        pytest.skip("gcc cannot build 32-bit code here")
    if subprocess.run([str(exe)], capture_output=True).stdout != b"ok32\n":
        pytest.skip("the kernel does not run 32-bit programs")
    return exe


@needs_userns
@pytest.mark.parametrize("method", METHODS)
def test_32bit_child_recorded_under_x86(method: str, tmp_path: Path) -> None:
    exe = _build_t32(tmp_path)
    policy, report = record(["sh", "-c", f"{exe}; echo done"], method=method, timeout=30)
    assert "x86" in policy.arches and NAT.name in policy.arches
    for name in ("getpid", "getppid"):
        assert evaluate(policy, "x86", get_arch("x86").nr(name), ()).kind is ActionKind.ALLOW, name
    if method == "ptrace":  # exact per call: the 32-bit exit is there too
        assert evaluate(policy, "x86", get_arch("x86").nr("exit"), (0,)).kind is ActionKind.ALLOW
    # kernel-judged: the profile runs it inside the jail, and refuses an x86 call it never made
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps(json.loads(_export(policy))))
    tmp_path.chmod(0o755)  # a root caller's sandbox runs as an unprivileged host id
    r = _sysgate("run", "--ro-bind", f"{tmp_path}:/mnt", "--profile", str(prof), "--", "sh", "-c",
                 "/mnt/t32; echo done")
    assert r.stdout == b"ok32\ndone\n", r.stderr
    assert evaluate(policy, "x86", get_arch("x86").nr("mkdir"), (0, 0)).kind is ActionKind.ERRNO


def _export(policy: Policy) -> str:
    from sysgate.formats.registry import write

    return write(policy, "docker").text


@pytest.mark.parametrize("method", METHODS)
def test_ctrl_c_writes_nothing_unless_partial(method: str, tmp_path: Path) -> None:
    import signal
    import time

    out = tmp_path / "p.json"
    for partial, want in ((False, 130), (True, 0)):
        proc = subprocess.Popen([sys.executable, "-m", "sysgate", "record", "--method", method, "-o", str(out),
                                 *(["--partial"] if partial else []), "--", "sleep", "20"],
                                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(1.5)  # well into the recording (start-up takes a fraction of that)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == want, err
        assert out.exists() == partial, err


def test_any_writer_via_to(tmp_path: Path) -> None:
    from sysgate.formats.registry import read

    policy, _ = record(["sh", "-c", "ls / >/dev/null"], timeout=30)
    for fmt in ("oci", "kafel", "k8s", "firecracker", "docker"):
        out = tmp_path / f"p.{fmt}"
        r = _sysgate("record", "-q", "--to", fmt, "-o", str(out), "--", "sh", "-c", "ls / >/dev/null")
        assert r.returncode == 0, (fmt, r.stderr)
        back = read(str(out), fmt, thread="main" if fmt == "firecracker" else None).policy
        assert _allowed(back) == _allowed(policy), fmt
    # a format that cannot hold the profile fails with one line, nothing written
    out = tmp_path / "p.systemd"
    r = _sysgate("record", "-q", "--to", "systemd", "-o", str(out), "--", "true")
    assert r.returncode == 2 and not out.exists() and r.stderr.count(b"\n") == 1, r.stderr


@pytest.mark.parametrize("method", METHODS)
def test_what_the_command_leaves_running_is_recorded_too(method: str, tmp_path: Path) -> None:
    # The shell exits at once; its background child makes a call only after that.
    policy, report = record(["sh", "-c", f"(sleep 0.5; exec mkdir {tmp_path}/made) & exit 0"], method=method,
                            timeout=30)
    assert (tmp_path / "made").is_dir() and "mkdir" in _allowed(policy)
