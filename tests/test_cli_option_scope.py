"""An option that the input makes meaningless is refused, never silently ignored.

Found by trying the commands from outside: ``compile docker-default --thread vmm`` compiled
docker-default; ``explain --lossy`` without ``--to``, ``dump --kill PID``, ``--caps`` with a
minijail policy or a BPF program changed nothing and said nothing. Each case below is the
option with an input it cannot act on (exit 2, one line naming the option, nothing on stdout),
and beside it the same option where it does act (exit 0), so that the refusal cannot hide a
broken option. Also: a NUL byte in a text profile is told at its line and column (it was read
as "a BPF program"), and an ``@include`` that is not a readable file says why (a directory
was "no such file").
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from jail_support import TESTS

SRC = os.path.join(os.path.dirname(TESTS), "src")

MINIJAIL = "read: allow\nwrite: allow\nexit_group: allow\n"
FIRECRACKER = {"vmm": {"default_action": "trap", "filter_action": "allow",
                       "filter": [{"syscall": "read"}, {"syscall": "exit_group"}]},
               "api": {"default_action": "trap", "filter_action": "allow", "filter": [{"syscall": "write"}]}}
DOCKER = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
          "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                       {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}}]}


def sysgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *args], capture_output=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=SRC), cwd="/")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("scope")
    (d / "p.policy").write_text(MINIJAIL)
    (d / "fc.json").write_text(json.dumps(FIRECRACKER))
    (d / "d.json").write_text(json.dumps(DOCKER))
    bpf = sysgate("compile", str(d / "d.json"), "--arch", "x86_64", "-o", str(d / "d.bpf"))
    assert bpf.returncode == 0, bpf.stderr
    return {"policy": str(d / "p.policy"), "fc": str(d / "fc.json"), "docker": str(d / "d.json"),
            "bpf": str(d / "d.bpf"), "dir": str(d)}


# (argv with {placeholders}, what the one line must say)
REFUSED = [
    (["compile", "docker-default", "--thread", "vmm", "--format", "hex"], "--thread"),
    (["compile", "{docker}", "--thread", "vmm", "--format", "hex"], "--thread"),
    (["compile", "{policy}", "--thread", "vmm", "--format", "hex"], "--thread"),
    (["compile", "docker-default", "--name", "x", "--format", "hex"], "--name"),
    (["compile", "{policy}", "--caps", "CAP_SYS_ADMIN", "--format", "hex"], "--caps"),
    (["compile", "{fc}", "--thread", "vmm", "--caps", "CAP_SYS_ADMIN", "--format", "hex"], "--caps"),
    (["emulate", "--arch", "x86_64", "{bpf}", "read", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["explain", "{bpf}", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["explain", "{policy}", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["diff", "docker-default", "{bpf}", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["audit", "{policy}", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["audit", "1", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["convert", "{policy}", "--to", "docker", "--caps", "CAP_SYS_ADMIN"], "--caps"),
    (["convert", "docker-default", "--to", "minijail", "--thread", "vmm"], "--thread"),
    (["convert", "{policy}", "--to", "kafel", "--thread", "vmm"], "--thread"),
    (["explain", "docker-default", "--lossy"], "--lossy"),
    (["explain", "docker-default", "--to", "docker", "--json"], "--json"),
    (["explain", "docker-default", "--to", "docker", "--verbose"], "--verbose"),
    (["dump", "--kill", "1"], "--kill"),
    (["dump", "--timeout", "5", "1"], "--timeout"),
    (["dump", "-o", "{dir}/out", "--arch", "x86_64", "1"], "--arch"),
]

# The same options where they act (dump's --kill, --timeout and --arch with a command: tests/test_dump.py).
ACTED = [
    ["compile", "{fc}", "--thread", "vmm", "--format", "hex"],
    ["compile", "{docker}", "--caps", "CAP_SYS_PTRACE", "--format", "hex"],
    ["compile", "docker-default", "--caps", "CAP_SYS_ADMIN", "--format", "hex"],
    ["emulate", "--arch", "x86_64", "{docker}", "ptrace", "--caps", "CAP_SYS_PTRACE"],
    ["explain", "{docker}", "--caps", "CAP_SYS_PTRACE"],
    ["convert", "{fc}", "--to", "docker", "--thread", "api"],
    ["convert", "{policy}", "--to", "firecracker", "--thread", "vmm"],
    ["convert", "{docker}", "--to", "kafel", "--caps", "CAP_SYS_PTRACE"],
    ["explain", "docker-default", "--to", "docker", "--lossy"],
]


def _argv(argv: list[str], files: dict[str, str]) -> list[str]:
    return [a.format(**files) for a in argv]


@pytest.mark.parametrize("argv,says", REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_option_the_input_cannot_use_is_refused(files: dict[str, str], argv: list[str], says: str) -> None:
    p = sysgate(*_argv(argv, files))
    assert p.returncode == 2, (p.returncode, p.stderr[-300:])
    assert p.stderr.count(b"\n") == 1 and b"Traceback" not in p.stderr, p.stderr
    assert says.encode() in p.stderr and not p.stdout, p.stderr


@pytest.mark.parametrize("argv", ACTED, ids=[" ".join(a) for a in ACTED])
def test_the_same_option_acts_where_it_applies(files: dict[str, str], argv: list[str]) -> None:
    p = sysgate(*_argv(argv, files))
    assert p.returncode == 0, p.stderr[-300:]
    assert p.stdout


def test_caps_and_thread_change_the_program(files: dict[str, str]) -> None:
    """The options the refusals guard really select: different capabilities or threads, different programs."""
    with_cap = sysgate("compile", files["docker"], "--caps", "CAP_SYS_PTRACE", "--format", "hex").stdout
    without = sysgate("compile", files["docker"], "--caps", "", "--format", "hex").stdout
    assert with_cap and without and with_cap != without
    vmm = sysgate("compile", files["fc"], "--thread", "vmm", "--format", "hex").stdout
    api = sysgate("compile", files["fc"], "--thread", "api", "--format", "hex").stdout
    assert vmm and api and vmm != api
    out = sysgate("convert", files["policy"], "--to", "firecracker", "--thread", "vmm").stdout
    assert list(json.loads(out)) == ["vmm"]  # on a Firecracker output, --thread names the filter


@pytest.mark.parametrize("name,text,where", [
    ("nul.json", '{"defaultAction": "SCMP_ACT_ERRNO",\n "syscalls": [\0]}', ":2:15:"),
    ("nul.policy", "read: allow\nwrite: al\0low\n", ":2:10:"),
    ("nul.kafel", "POLICY p {\n ALLOW { read\0 }\n}\nUSE p DEFAULT KILL\n", ":2:14:"),
    ("nul.conf", "[Service]\nSystemCallFilter=read\0\n", ":2:22:"),
])
@pytest.mark.parametrize("cmd", [["compile", "--format", "hex"], ["explain"], ["emulate", "--arch", "x86_64"]])
def test_nul_byte_in_a_text_profile_is_told_where(tmp_path, name: str, text: str, where: str, cmd: list[str]) -> None:
    f = tmp_path / name
    f.write_bytes(text.encode())
    extra = ["read"] if cmd[0] == "emulate" else []
    p = sysgate(*cmd, str(f), *extra)
    assert p.returncode == 2 and p.stderr.count(b"\n") == 1, p.stderr
    assert (str(f) + where).encode() in p.stderr and b"NUL byte" in p.stderr, p.stderr


def test_a_bpf_program_is_still_a_program(files: dict[str, str]) -> None:
    p = sysgate("disasm", files["bpf"])
    assert p.returncode == 0 and b"A = arch" in p.stdout, p.stderr


@pytest.mark.parametrize("target,why", [("d", "a directory"), ("fifo", "not a regular file"),
                                        ("missing", "No such file"), ("bin", "not UTF-8")])
def test_minijail_include_that_cannot_be_read_says_why(tmp_path, target: str, why: str) -> None:
    (tmp_path / "d").mkdir()
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "bin").write_bytes(b"\xff\xfe")
    main = tmp_path / "main.policy"
    main.write_text(f"@include ./{target}\nread: allow\n")
    p = sysgate("compile", str(main), "--format", "hex")
    assert p.returncode == 2 and b"Traceback" not in p.stderr, p.stderr
    first = p.stderr.split(b"\n")[0]
    assert f"{main}:1:10: could not @include {tmp_path / target}: ".encode() in first and why.encode() in first, first


# An output that cannot be written is refused before the command that would fill it runs: record
# ran the whole program (a CI job, say) and only then said "-o DIR: is a directory".
UNWRITABLE = [
    (["record", "-q", "-o", "{dir}"], "is a directory"),
    (["record", "-q", "-o", "{dir}/missing/out.json"], "No such file or directory"),
    (["record", "-q", "-o", "{policy}/out.json"], "Not a directory"),
    (["record", "-q", "-o", "{dir}/ok.json", "--report", "{dir}"], "is a directory"),
    (["record", "-q", "-o", "/proc/sys/sysgate-out.json"], "/proc/sys"),
    (["dump", "-o", "{policy}"], "not a directory"),
    (["dump", "-o", "{policy}/sub/dir"], "Not a directory"),
]


@pytest.mark.parametrize("argv,says", UNWRITABLE)
def test_unwritable_output_refused_before_the_command_runs(argv: list[str], says: str, files: dict[str, str],
                                                           tmp_path) -> None:
    marker = tmp_path / "ran"
    p = sysgate(*[a.format(**files) for a in argv], "--", "/bin/sh", "-c", f"touch {marker}")
    err = p.stderr.decode()
    assert (p.returncode, p.stdout) == (2, b""), err
    assert len(err.splitlines()) == 1 and says in err, err
    assert not marker.exists(), "the command ran before the output was found unwritable"


def test_writable_outputs_still_written(files: dict[str, str], tmp_path) -> None:
    out, rep, dump_dir = tmp_path / "new" / "p.json", tmp_path / "r.json", tmp_path / "a" / "b"
    out.parent.mkdir()
    p = sysgate("record", "-q", "-o", str(out), "--report", str(rep), "--", "/bin/true")
    assert p.returncode == 0, p.stderr.decode()
    assert json.loads(out.read_text())["defaultAction"] and json.loads(rep.read_text())
    p = sysgate("dump", "-o", str(dump_dir), "--", sys.executable, "-c", ALLOW_ALL_FILTER)  # made with its parents
    assert p.returncode == 0 and (dump_dir / "filter-0.bpf").read_bytes() == ALLOW_ALL, p.stderr.decode()


ALLOW_ALL = (6).to_bytes(2, sys.byteorder) + bytes(2) + (0x7FFF0000).to_bytes(4, sys.byteorder)
ALLOW_ALL_FILTER = f"""
import ctypes
class Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl(38, 1, 0, 0, 0)  # no_new_privs
assert libc.prctl(22, 2, ctypes.byref(Prog(1, {ALLOW_ALL!r})), 0, 0) == 0  # PR_SET_SECCOMP, FILTER
"""
