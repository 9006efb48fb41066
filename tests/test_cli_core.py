"""The core CLI end to end: outputs, exit statuses and one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sysgate.bpf import insn as I
from sysgate.bpf.emulator import check, emulate
from sysgate.cli import main

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def run(*argv: str, input_: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate.cli", *argv], capture_output=True, input=input_,
                          timeout=60)


def test_compile_raw_is_a_loadable_program(tmp_path: Path) -> None:
    out = tmp_path / "f.bpf"
    r = run("compile", "docker-default", "--arch", "x86_64", "-o", str(out))
    assert r.returncode == 0, r.stderr
    prog = I.decode(out.read_bytes())
    check(prog)
    assert prog[0] == (0x20, 0, 0, 4)
    # personality(0xffffffff) is allowed by moby's default, personality(5) is not
    assert emulate(prog, "x86_64", 135, [0xFFFFFFFF]).ret == I.RET_ALLOW
    assert emulate(prog, "x86_64", 135, [5]).ret == I.RET_ERRNO | 1


def test_compile_formats(tmp_path: Path) -> None:
    raw = run("compile", "strict", "--arch", "x86_64", "--format", "hex")
    assert raw.returncode == 0
    prog = I.decode(bytes.fromhex(raw.stdout.decode().strip()))
    c = run("compile", "strict", "--arch", "x86_64", "--format", "c").stdout.decode()
    assert "struct sock_filter filter[]" in c and c.count("{ 0x") == len(prog)
    j = json.loads(run("compile", "strict", "--arch", "x86_64", "--format", "json").stdout)
    assert [tuple(x) for x in j["insns"]] == list(prog) and j["arches"] == ["x86_64"]


def test_big_endian_output_in_native_order() -> None:
    r = run("compile", "strict", "--arch", "s390x", "--format", "hex")
    prog = I.decode(bytes.fromhex(r.stdout.decode().strip()), "big")
    check(prog)
    assert emulate(prog, "s390x", 3, []).ret == I.RET_ALLOW  # read on s390x
    assert emulate(prog, "s390x", 20, []).action == I.RET_KILL_PROCESS  # getpid


def test_emulate_json_and_text() -> None:
    r = run("emulate", "docker-default", "personality", "0", "--arch", "x86_64", "--json")
    doc = json.loads(r.stdout)
    assert doc["action"] == "allow" and doc["syscall"] == "personality" and 5 <= doc["executed"] <= 15  # +1: hardening overlay
    r = run("emulate", "docker-default", "--arch", "x86_64", "kexec_load")
    assert r.returncode == 0 and b"errno(1)" in r.stdout


@pytest.mark.parametrize("doc,needle", [
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["opnat"], "action": "SCMP_ACT_ALLOW"}]}',
     "syscalls[0].names[0]: unknown syscall 'opnat' (did you mean openat"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",'
     ' "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}', "syscalls[0].args[0].index: 6 out of range 0-5"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}', "defaultErrnoRet: 70000 out of range 0-65535"),
    ('{"defaultAction": "SCMP_ACT_NOPE"}', "defaultAction: unknown action 'SCMP_ACT_NOPE'"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",'
     ' "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_LIKE"}]}]}', "syscalls[0].args[0].op: unknown operator"),
    ('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": '
     '[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}, {"names": ["read"], "action": "SCMP_ACT_KILL", "args": '
     '[{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}', "contradicting rules"),
    ('{"defaultAction": "SCMP_ACT_ERRNO",', "invalid JSON"),
])
def test_bad_profiles_one_line_exit_2(tmp_path: Path, doc: str, needle: str) -> None:
    f = tmp_path / "p.json"
    f.write_text(doc)
    out = tmp_path / "out.bpf"
    r = run("compile", str(f), "--arch", "x86_64", "-o", str(out))
    assert r.returncode == 2
    err = r.stderr.decode()
    lines = err.splitlines()
    # one line; broken JSON adds a second: a caret under the quoted line, where the reader stopped
    assert len(lines) == (2 if needle == "invalid JSON" else 1) and "Traceback" not in err, err
    assert lines[-1].strip() == "^" or len(lines) == 1, err
    assert str(f) in lines[0] and needle in lines[0], err
    assert not out.exists()


def test_bad_arch_and_missing_file() -> None:
    r = run("compile", "docker-default", "--arch", "x86-64")
    assert r.returncode == 2 and b"did you mean x86_64" in r.stderr
    r = run("compile", "/nonexistent.json")
    assert r.returncode == 2 and b"no such profile" in r.stderr
    r = run("emulate", "docker-default", "--arch", "x86_64", "read", *["1"] * 7)
    assert r.returncode == 2 and b"at most 6" in r.stderr


def test_moby_name_missing_on_target_is_skipped_and_reported() -> None:
    r = run("compile", "docker-default", "--arch", "x86_64", "--format", "hex", "-v")
    assert r.returncode == 0
    assert b"x86_64: skipped" in r.stderr and b"chown32" in r.stderr


def test_in_process_main_returns_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulate", "strict", "--arch", "x86_64", "read"]) == 0
    assert "allow" in capsys.readouterr().out
    assert main(["emulate", "strict", "--arch", "x86_64", "nosuchcall"]) == 2


def test_skip_unknown_reports_each_name(tmp_path: Path) -> None:
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                                "syscalls": [{"names": ["read", "frobnicate", "getpid", "nosuchcall"],
                                              "action": "SCMP_ACT_ALLOW"}]}))
    out = tmp_path / "p.bpf"
    r = run("compile", str(prof), "-o", str(out))
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.decode().strip().count("\n") == 0 and "names[1]: unknown syscall 'frobnicate'" in r.stderr.decode()
    r = run("compile", str(prof), "--skip-unknown", "-o", str(out))
    assert r.returncode == 0, r.stderr
    lines = r.stderr.decode().splitlines()
    assert lines == [f"sysgate: skipped unknown syscall: {prof}: syscalls[0].names[1]: frobnicate",
                     f"sysgate: skipped unknown syscall: {prof}: syscalls[0].names[3]: nosuchcall"]
    prog = I.decode(out.read_bytes())
    assert emulate(prog, "x86_64", 39, [0] * 6).ret == I.RET_ALLOW        # getpid kept
    assert emulate(prog, "x86_64", 2, [0] * 6).ret != I.RET_ALLOW         # open still denied
    r = run("convert", str(prof), "--skip-unknown", "--to", "oci")
    assert r.returncode == 0 and "frobnicate" not in r.stdout.decode() and "frobnicate" in r.stderr.decode()


def test_skip_unknown_refused_where_unsupported(tmp_path: Path) -> None:
    pol = tmp_path / "p.policy"
    pol.write_text("read: 1\nfrobnicate: 1\n")
    r = run("compile", str(pol), "--skip-unknown", "-o", str(tmp_path / "o.bpf"))
    assert r.returncode == 2 and "--skip-unknown: not supported for minijail" in r.stderr.decode()
    assert not (tmp_path / "o.bpf").exists()


def test_parse_error_quotes_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A text format's parse error quotes the source line with control characters escaped: a
    vertical tab there used to split the message, and the caret still sits under the column."""
    bad = tmp_path / "bad.kafel"
    bad.write_bytes(b"\x01\x0bPOLICY sample {\n ALLOW { write } }\nUSE sample DEFAULT KILL\n")
    assert main(["compile", str(bad), "--arch", "x86_64"]) == 2
    err = capsys.readouterr().err
    head, caret = err.splitlines()
    assert err.count("\n") == 2 and head.startswith("sysgate: error: ") and head.endswith(r": \x01\x0bPOLICY sample {")
    assert caret.strip() == "^" and len(caret) - 1 == head.rindex(r"\x01")
