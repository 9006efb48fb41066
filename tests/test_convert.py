"""``sysgate convert`` and the profile options of ``sysgate compile`` end to end: outputs that read
back to the same decisions, one-line errors with exit status 2 and nothing written, ``--lossy``
listing every loss."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from shutil import which as shutil_which

import pytest

from sysgate.analysis.equivalence import sampled_equivalent
from sysgate.bpf import insn as I
from sysgate.bpf.emulator import emulate
from sysgate.cli import main
from sysgate.compiler import compile_policy
from sysgate.formats.registry import read
from sysgate.profiles import resolve

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")


def run(*argv: str, input_: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate.cli", *argv], capture_output=True, input=input_,
                          timeout=60)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    err = r.stderr.decode()
    lines = err.split("\n")
    # One line; a text format's parse error adds a second: a caret under the column in the source
    # text the first line ends with.
    assert err.startswith("sysgate: error: ") and err.endswith("\n"), err
    assert len(lines) == 2 or (len(lines) == 3 and lines[1].strip() == "^"), err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("fmt", ["docker", "oci", "kafel", "k8s"])
def test_convert_exact_and_back(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"out.{fmt}"
    r = run("convert", "docker-default", "--arch", "x86_64", "--to", fmt, "-o", str(out), "--verify")
    assert r.returncode == 0, r.stderr
    assert r.stderr == b""
    back = read(str(out), arch="x86_64", arches=["x86_64"])
    assert back.format == ("docker" if fmt == "oci" else fmt)  # a bare linux.seccomp object reads as Docker's
    assert sampled_equivalent(resolve("docker-default", arch="x86_64", arches=["x86_64"]), back.policy) is None
    # and the converted file compiles like the built-in
    prog = tmp_path / "p.bpf"
    assert run("compile", str(out), "--arch", "x86_64", "-o", str(prog)).returncode == 0
    insns = I.decode(prog.read_bytes())
    assert emulate(insns, "x86_64", 135, [0xFFFFFFFF]).ret == I.RET_ALLOW  # personality
    assert emulate(insns, "x86_64", 135, [5]).ret == I.RET_ERRNO | 1


@pytest.mark.parametrize("fmt,why", [("systemd", "cannot test arguments"), ("minijail", "default action"),
                                     ("firecracker", "match action")])
def test_inexact_conversion_fails_and_writes_nothing(tmp_path: Path, fmt: str, why: str) -> None:
    out = tmp_path / "out"
    err = one_line_error(run("convert", "docker-default", "--arch", "x86_64", "--to", fmt, "-o", str(out)))
    assert f"cannot convert exactly to {fmt}" in err and why in err and "--lossy" in err
    assert not out.exists()


def test_lossy_lists_every_loss(tmp_path: Path) -> None:
    out = tmp_path / "out.conf"
    r = run("convert", "docker-default", "--arch", "x86_64", "--to", "systemd", "--lossy", "-o", str(out))
    assert r.returncode == 0, r.stderr
    losses = [line for line in r.stderr.decode().splitlines() if line.startswith("sysgate: loss: ")]
    assert len(losses) >= 5  # personality, clone, socket, ... cannot keep their argument tests
    assert any("personality" in x for x in losses) and any("clone" in x for x in losses)
    text = out.read_text()
    assert "[Service]" in text and "SystemCallErrorNumber=1" in text and "SystemCallArchitectures=x86-64" in text


def test_multi_arch_to_per_arch_format_needs_arch() -> None:
    err = one_line_error(run("convert", "docker-default", "--to", "kafel"))
    assert "architectures" in err
    assert run("convert", "docker-default", "--to", "kafel", "--arch", "aarch64").returncode == 0


@needs_corpus
def test_convert_from_every_input_format(tmp_path: Path) -> None:
    sources = {
        "minijail": CORPUS / "minijail" / "examples_cat.policy",
        "kafel": CORPUS / "kafel" / "samples_sample_basic.policy",
        "firecracker": CORPUS / "firecracker-x86_64-unknown-linux-musl.json",
    }
    for fmt, src in sources.items():
        extra = ["--thread", "api"] if fmt == "firecracker" else []
        out = tmp_path / f"from-{fmt}.json"
        r = run("convert", str(src), "--to", "docker", "--arch", "x86_64", "-o", str(out), "--verify", *extra)
        assert r.returncode == 0, r.stderr
        doc = json.loads(out.read_text())
        assert doc["architectures"] == ["SCMP_ARCH_X86_64"] and doc["syscalls"]


@needs_corpus
def test_firecracker_whole_file_and_threads(tmp_path: Path) -> None:
    src = CORPUS / "firecracker-x86_64-unknown-linux-musl.json"
    out = tmp_path / "fc.json"
    assert run("convert", str(src), "--to", "firecracker", "-o", str(out)).returncode == 0
    assert sorted(json.loads(out.read_text())) == ["api", "vcpu", "vmm"]
    for thread in ("api", "vcpu", "vmm"):
        assert sampled_equivalent(read(str(src), thread=thread).policy, read(str(out), thread=thread).policy,
                          ["x86_64"]) is None
    err = one_line_error(run("compile", str(src), "-o", str(tmp_path / "x")))
    assert "choose one with --thread" in err and not (tmp_path / "x").exists()
    err = one_line_error(run("compile", str(src), "--thread", "nope", "-o", str(tmp_path / "x")))
    assert "no filter for thread 'nope'" in err
    r = run("compile", str(src), "--thread", "vmm", "--arch", "x86_64", "--format", "hex")
    assert r.returncode == 0
    insns = I.decode(bytes.fromhex(r.stdout.decode().strip()))
    assert emulate(insns, "x86_64", 0, [0]).ret == I.RET_ALLOW  # read
    assert emulate(insns, "x86_64", 39, []).ret == I.RET_TRAP  # getpid: Firecracker's default trap


def test_k8s_manifest_and_pod_snippet(tmp_path: Path) -> None:
    r = run("convert", "strict", "--to", "k8s", "--arch", "x86_64", "--name", "strict-one", "--namespace", "jobs")
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    assert "kind: SeccompProfile" in text and "apiVersion: security-profiles-operator.x-k8s.io/v1beta1" in text
    assert "name: strict-one" in text and "namespace: jobs" in text
    assert "#         type: Localhost" in text and "localhostProfile: operator/jobs/strict-one.json" in text
    p = tmp_path / "m.yaml"
    p.write_text(text)
    assert sampled_equivalent(read(str(p), arch="x86_64").policy, resolve("strict", arches=["x86_64"])) is None
    err = one_line_error(run("convert", "strict", "--to", "k8s", "--name", "Bad_Name"))
    assert "not a valid object name" in err


def test_stdin_and_detection() -> None:
    src = b"@default kill-process\nread: arg0 == 0\nwrite: arg0 == 1 || arg0 == 2\nexit_group: 1\n"
    r = run("convert", "-", "--to", "kafel", "--arch", "x86_64", input_=src)
    assert r.returncode == 0, r.stderr
    assert b"USE sysgate DEFAULT KILL_PROCESS" in r.stdout and b"write(a0) { a0 == 0x1" in r.stdout


@pytest.mark.parametrize("text,where", [
    (b'{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["nosuch"], "action": "SCMP_ACT_ERRNO"}]}',
     "syscalls[0].names[0]: unknown syscall 'nosuch'"),
    (b'{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",'
     b' "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}', "syscalls[0].args[0].index: 6 out of range"),
    (b'{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 65536}', "defaultErrnoRet: 65536 out of range 0-65535"),
    (b'{"defaultAction": "SCMP_ACT_NOPE"}', "defaultAction: unknown action"),
    (b'{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",'
     b' "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]}', "args[0].op: unknown operator"),
    (b'{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO", "args": '
     b'[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}, {"names": ["read"], "action": "SCMP_ACT_KILL", "args": '
     b'[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}', "contradicting rules"),
    (b'{"defaultAction": "SCMP_ACT_ALLOW",,}', "invalid JSON"),
    (b"read: arg6 == 1\n", ":1:7: invalid argument"),
    (b"read: return 4096\n", ":1:14: errno 4096 out of range"),
    (b"read: arg0 =~ 1\n", ":1:12: invalid operator"),
    (b"POLICY p { ALLOW { read { fd === 1 } } } USE p DEFAULT KILL\n", ":1:32: invalid character"),
    (b"POLICY p { ERRNO(4096) { read } } USE p DEFAULT KILL\n", "Errno value 4096 out of range"),
    (b"[Service]\nSystemCallFilter=read nosuch\n", ":2: SystemCallFilter=: unknown syscall 'nosuch'"),
    (b"[Service]\nSystemCallErrorNumber=5000\n", "errno 5000 out of range"),
    (b'{"vmm": {"default_action": "allow", "filter_action": "log", "filter": [{"syscall": "read", "args":'
     b' [{"index": 0, "type": "dword", "op": "eq", "val": 4294967296}]}]}}', "val: 4294967296 out of range"),
])
def test_error_cases_one_line_status_2_nothing_written(tmp_path: Path, text: bytes, where: str) -> None:
    src = tmp_path / "bad.profile"
    src.write_bytes(text)
    for argv in (["compile", str(src), "--arch", "x86_64", "-o", str(tmp_path / "out.bpf")],
                 ["convert", str(src), "--to", "docker", "--arch", "x86_64", "-o", str(tmp_path / "out.json")]):
        err = one_line_error(run(*argv))
        assert str(src) in err and where in err, err
    assert not (tmp_path / "out.bpf").exists() and not (tmp_path / "out.json").exists()


@needs_corpus
def test_moby_example_fixture_errno_is_clamped(tmp_path: Path) -> None:
    """errnoRet 12345 (moby's fixture): Docker reads it and the kernel returns -min(data, 4095); compiled
    as ERRNO(4095) with one warning line; --strict refuses it."""
    path = str(CORPUS / "moby-profiles-seccomp-fixtures-example.json")
    r = run("compile", path, "--arch", "x86_64", "--format", "hex")
    assert r.returncode == 0, r.stderr
    lines = r.stderr.decode().splitlines()
    assert lines == [f"sysgate: warning: {path}: syscalls[3].errnoRet: errno 12345 above 4095: the kernel returns "
                     f"4095 (MAX_ERRNO) for it, and so does this filter"]
    insns = I.decode(bytes.fromhex(r.stdout.decode().strip()))
    assert emulate(insns, "x86_64", 103, []).ret == I.RET_ERRNO | 4095  # syslog
    err = one_line_error(run("compile", path, "--strict", "-o", str(tmp_path / "x")))
    assert "errno 12345 above 4095" in err and not (tmp_path / "x").exists()


def test_compile_modifiers(tmp_path: Path) -> None:
    r = run("compile", "docker-default", "--arch", "x86_64", "--format", "hex", "--allow", "ptrace",
            "--deny", "personality:EACCES", "--deny", "getpid,uname:kill-process")
    assert r.returncode == 0, r.stderr
    insns = I.decode(bytes.fromhex(r.stdout.decode().strip()))
    assert emulate(insns, "x86_64", 101, []).ret == I.RET_ALLOW  # ptrace
    assert emulate(insns, "x86_64", 135, [0xFFFFFFFF]).ret == I.RET_ERRNO | 13  # personality, any argument
    assert emulate(insns, "x86_64", 39, []).ret == I.RET_ERRNO | 1  # getpid: EPERM, the default denial
    assert emulate(insns, "x86_64", 63, []).ret == I.RET_KILL_PROCESS  # uname
    assert emulate(insns, "x86_64", 0, []).ret == I.RET_ALLOW  # read untouched
    err = one_line_error(run("compile", "strict", "--deny", "nosuch"))
    assert "--deny nosuch: unknown syscall" in err
    err = one_line_error(run("compile", "strict", "--deny", "read:EBOGUS"))
    assert "neither an errno" in err


def test_profiles_list_and_show() -> None:
    assert main(["profiles"]) == 0
    r = run("profiles")
    names = [line.split()[0] for line in r.stdout.decode().splitlines()]
    assert names == ["docker-default", "python", "strict"]
    shown = run("profiles", "show", "python")
    assert json.loads(shown.stdout)["defaultErrnoRet"] == 1
    k = run("profiles", "show", "strict", "--to", "minijail", "--arch", "x86_64")
    assert k.returncode == 0 and b"@default kill-process" in k.stdout and b"rt_sigreturn: allow" in k.stdout
    err = one_line_error(run("profiles", "show", "strickt"))
    assert "did you mean strict" in err


def _hex_program(r: subprocess.CompletedProcess) -> tuple:
    assert r.returncode == 0, r.stderr
    return I.decode(bytes.fromhex(r.stdout.decode().strip()))


def test_caps_decide_moby_includes(tmp_path: Path) -> None:
    """``--caps`` is the capability set moby's includes/excludes are judged by (compile and convert)."""
    CLONE_NEWNS = 0x20000
    plain = _hex_program(run("compile", "docker-default", "--arch", "x86_64", "--format", "hex"))
    admin = _hex_program(run("compile", "docker-default", "--arch", "x86_64", "--format", "hex",
                             "--caps", "chown,CAP_SYS_ADMIN"))
    none = _hex_program(run("compile", "docker-default", "--arch", "x86_64", "--format", "hex", "--caps", ""))
    nr = {"mount": 165, "clone": 56, "clone3": 435, "chroot": 161, "chown": 92}
    assert emulate(plain, "x86_64", nr["mount"], []).ret == I.RET_ERRNO | 1
    assert emulate(admin, "x86_64", nr["mount"], []).ret == I.RET_ALLOW
    assert emulate(plain, "x86_64", nr["clone"], [CLONE_NEWNS]).ret == I.RET_ERRNO | 1
    assert emulate(admin, "x86_64", nr["clone"], [CLONE_NEWNS]).ret == I.RET_ALLOW
    assert emulate(plain, "x86_64", nr["clone3"], []).ret == I.RET_ERRNO | 38  # ENOSYS: libc falls back
    assert emulate(admin, "x86_64", nr["clone3"], []).ret == I.RET_ALLOW
    assert emulate(plain, "x86_64", nr["chroot"], []).ret == I.RET_ALLOW  # CAP_SYS_CHROOT is Docker's default
    assert emulate(none, "x86_64", nr["chroot"], []).ret == I.RET_ERRNO | 1
    assert emulate(admin, "x86_64", nr["chroot"], []).ret == I.RET_ERRNO | 1  # the set replaces Docker's
    out = tmp_path / "admin.json"
    assert run("convert", "docker-default", "--to", "oci", "--arch", "x86_64", "--caps", "SYS_ADMIN", "-o",
               str(out)).returncode == 0
    assert sampled_equivalent(read(str(out), arch="x86_64").policy,
                      resolve("docker-default", arch="x86_64", arches=["x86_64"], caps=["CAP_SYS_ADMIN"])) is None
    for argv in (["compile", "docker-default", "-o", str(tmp_path / "x")],
                 ["convert", "docker-default", "--to", "docker", "-o", str(tmp_path / "x")],
                 ["emulate", "docker-default", "read", "--arch", "x86_64"]):
        err = one_line_error(run(*argv, "--caps", "CAP_SYS_ADMN"))
        assert "--caps CAP_SYS_ADMN: unknown capability (did you mean CAP_SYS_ADMIN?)" in err
    assert not (tmp_path / "x").exists()


def test_convert_applies_modifiers(tmp_path: Path) -> None:
    """``convert`` takes ``--allow``/``--deny`` like ``compile``: a modified built-in, exported."""
    out = tmp_path / "m.yaml"
    r = run("convert", "docker-default", "--to", "k8s", "--arch", "x86_64", "--deny", "ptrace:EACCES",
            "--allow", "personality", "-o", str(out), "--verify")
    assert r.returncode == 0, r.stderr
    p = read(str(out), arch="x86_64").policy
    want = resolve("docker-default", arch="x86_64", arches=["x86_64"], allow=["personality"],
                   deny=["ptrace:EACCES"])
    assert sampled_equivalent(p, want) is None
    insns = compile_policy(p).insns
    assert emulate(insns, "x86_64", 101, []).ret == I.RET_ERRNO | 13  # ptrace
    assert emulate(insns, "x86_64", 135, [0x1234]).ret == I.RET_ALLOW  # personality, any argument
    err = one_line_error(run("convert", "strict", "--to", "docker", "--deny", "nosuch"))
    assert "--deny nosuch: unknown syscall" in err


# Every corpus file that is an error case by design, and the include loops (under the names their
# includes use): through the CLI, one line naming the file and the place, status 2, nothing written.
CORPUS_ERRORS = {
    "minijail/test_invalid_arg_filter.policy": ":1:7: invalid action",
    "minijail/test_invalid_syscall_name.policy": ":1:1: nonexistent syscall",
    "minijail/test_nested.policy": ":1:10: could not @include",
}
# Refused before the textfmt merge; sysgate now compiles argument-to-argument tests (policy.Compare).
CORPUS_ACCEPTED = ["kafel/samples_sample_var_cmp.policy", "kafel/samples_sample_and_cmp_var.policy"]


def _loop_copies(tmp: Path) -> dict[Path, str]:
    """The include loops of the corpus, copied under the names their includes use: file -> the
    error's start (the file and place where the loop closes)."""
    import shutil

    for p in (CORPUS / "kafel").glob("test_testdata_*.policy"):
        shutil.copy(p, tmp / p.name.replace("test_testdata_", ""))
    (tmp / "test").mkdir()
    (tmp / "test" / "test").symlink_to(".")
    shutil.copy(CORPUS / "minijail" / "test_nested.policy", tmp / "test" / "nested.policy")
    return {tmp / "self_recursive.policy": f"{tmp}/self_recursive.policy:1:10: include loop: "
                                           "self_recursive.policy -> self_recursive.policy",
            tmp / "includes_short_loop.policy": f"{tmp}/short_loop_b.policy:1:10: include loop: "
                                                "short_loop.policy -> short_loop_b.policy -> short_loop.policy",
            tmp / "short_loop.policy": f"{tmp}/short_loop_b.policy:1:10: include loop",
            tmp / "test" / "nested.policy": f"{tmp}/test/nested.policy:1:10: @include loop"}


@needs_corpus
def test_corpus_error_cases_through_the_cli(tmp_path: Path) -> None:
    cases = {CORPUS / name: f"{CORPUS / name}{where}" for name, where in CORPUS_ERRORS.items()}
    cases.update(_loop_copies(tmp_path))
    out = tmp_path / "out"
    for src, start in cases.items():
        for argv in (["compile", str(src), "--arch", "x86_64", "-o", str(out)],
                     ["convert", str(src), "--to", "docker", "--arch", "x86_64", "-o", str(out)]):
            err = one_line_error(run(*argv))
            assert err.startswith(f"sysgate: error: {start}"), err
            assert not out.exists()
    for name in CORPUS_ACCEPTED:
        r = run("compile", str(CORPUS / name), "--arch", "x86_64", "-o", str(out))
        assert r.returncode == 0 and out.stat().st_size > 0, (name, r.stderr)
        out.unlink()


@pytest.mark.skipif(not shutil_which("bwrap"), reason="bubblewrap not installed")
@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="kernel tests run on x86_64 Linux")
def test_raw_output_is_what_bwrap_seccomp_loads(tmp_path: Path) -> None:
    """``compile -o FILE`` (raw) is what ``bwrap --seccomp FD`` takes; the kernel then judges."""
    prog = tmp_path / "p.bpf"
    assert run("compile", "docker-default", "--arch", "x86_64", "--deny", "uname:EACCES", "-o",
               str(prog)).returncode == 0
    with open(prog, "rb") as fh:
        argv = ["bwrap", "--ro-bind", "/", "/", "--seccomp", str(fh.fileno()), "--"]
        denied = subprocess.run(argv + ["/bin/uname", "-s"], pass_fds=[fh.fileno()], capture_output=True,
                                timeout=30)
    with open(prog, "rb") as fh:
        argv = ["bwrap", "--ro-bind", "/", "/", "--seccomp", str(fh.fileno()), "--"]
        fine = subprocess.run(argv + ["/bin/echo", "ran"], pass_fds=[fh.fileno()], capture_output=True, timeout=30)
    assert denied.returncode != 0 and b"Permission denied" in denied.stderr, denied
    assert fine.returncode == 0 and fine.stdout == b"ran\n", fine


@pytest.mark.skipif(not shutil_which("cc"), reason="no C compiler")
@pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                    reason="kernel tests run on x86_64 Linux")
def test_c_header_compiles_and_the_kernel_applies_it(tmp_path: Path) -> None:
    """``compile --format c`` is a header a C program installs as is."""
    header = tmp_path / "filter.h"
    assert run("compile", "docker-default", "--arch", "x86_64", "--deny", "uname:EACCES", "--format", "c",
               "-o", str(header)).returncode == 0
    (tmp_path / "main.c").write_text(
        '#include <errno.h>\n#include <stdio.h>\n#include <sys/prctl.h>\n#include <sys/utsname.h>\n'
        '#include <unistd.h>\n#include <linux/seccomp.h>\n#include "filter.h"\n'
        "int main(void) {\n  struct utsname u;\n  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)) return 3;\n"
        "  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &filter_prog)) return 4;\n"
        '  int r = uname(&u);\n  printf("%d %d %d\\n", r, errno, (int)getppid() > 0);\n  return 0;\n}\n')
    exe = tmp_path / "main"
    cc = subprocess.run(["cc", "-o", str(exe), str(tmp_path / "main.c")], capture_output=True, text=True,
                        timeout=60)
    assert cc.returncode == 0, cc.stderr
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "-1 13 1\n", (r.returncode, r.stdout, r.stderr)


@needs_corpus
@pytest.mark.parametrize("target", ["x86_64", "aarch64"])
def test_firecracker_corpus_compile_thread_and_write_back(tmp_path: Path, target: str) -> None:
    """``sysgate compile firecracker-<target>-*.json --thread vmm``: the target comes from the file
    name; the program is the vmm filter for it. Written back (every thread) it decides the same."""
    src = CORPUS / f"firecracker-{target}-unknown-linux-musl.json"
    prog = tmp_path / "vmm.bpf"
    r = run("compile", str(src), "--thread", "vmm", "-o", str(prog))
    assert r.returncode == 0, r.stderr
    insns = I.decode(prog.read_bytes())
    vmm = read(str(src), thread="vmm").policy
    assert vmm.arches == (target,)
    assert sampled_equivalent(vmm, insns, [target]) is None
    other = "aarch64" if target == "x86_64" else "x86_64"
    assert emulate(insns, other, 0, []).ret == I.RET_KILL_PROCESS  # another arch: killed
    back = tmp_path / "fc.json"
    assert run("convert", str(src), "--to", "firecracker", "-o", str(back)).returncode == 0
    for thread in ("api", "vcpu", "vmm"):
        assert sampled_equivalent(read(str(src), thread=thread).policy, read(str(back), thread=thread, arch=target).policy,
                          [target]) is None
