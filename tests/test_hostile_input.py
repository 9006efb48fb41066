"""Hostile input to the commands (issue 12): every answer is one line naming the file or option,
exit status 2, in bounded time and memory; outputs are whole or absent.

Covers: the kernel's verdict in asm/disasm/emulate/explain, FILE:LINE on every asm error,
non-UTF-8 text, file names with newlines, /dev/zero, FIFOs and oversized inputs (also through
stdin, --profile and a Kafel #include), numeric options, ``sysgate.run()`` argument errors and
atomic ``-o``.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from sysgate.bpf import insn as I
from sysgate.cli import main
from sysgate.errors import BadArgument, UserError

REFUSED_ASM = {  # kernel-refused programs, as assembly: (source, line of the fault)
    "mod": ("A = args[0]\nA %= 3\nreturn ALLOW\n", 2),
    "scratch_after_return": ("A = 1\nreturn ALLOW\nA = mem[0]\nreturn A\n", 3),
    "data3": ("A = data[3]\nreturn ALLOW\n", 1),
    "return_x": ("X = 1\nreturn X\n", 2),
    "no_return": ("return ALLOW\nA = 0\n", 2),
}


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_error(err: str, *fragments: str) -> None:
    lines = err.splitlines()
    # one line; a text format's parse error adds a second: a caret under the quoted source's column
    assert len(lines) == 1 or len(lines) == 2 and lines[1].strip() == "^", err
    assert lines[0].startswith("sysgate: error: "), err
    for f in fragments:
        assert f in lines[0], (f, err)


def sub(*argv: str, stdin: object = None, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *argv], capture_output=True, stdin=stdin if stdin is not None else subprocess.DEVNULL, timeout=timeout, **kw)


# ------------------------------------------------------------------ the kernel's verdict

@pytest.mark.parametrize("name", sorted(REFUSED_ASM))
def test_asm_refuses_what_the_kernel_refuses(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src, line = REFUSED_ASM[name]
    f = tmp_path / f"{name}.asm"
    f.write_text(src)
    out = tmp_path / "out.bpf"
    code, _, err = cli(capsys, "asm", str(f), "-o", str(out))
    assert code == 2 and not out.exists()
    one_error(err, f"{f}:{line}: the kernel would refuse this program")
    # --unchecked writes it; disasm lists it but says so; emulate/explain refuse naming the file
    assert cli(capsys, "asm", "--unchecked", str(f), "-o", str(out))[0] == 0
    code, listing, err = cli(capsys, "disasm", str(out))
    assert code == 0 and "would refuse" in err and len(err.splitlines()) == 1 and listing.count("\n") > 2
    code, js, _ = cli(capsys, "disasm", "--json", str(out))
    doc = json.loads(js)
    assert code == 0 and doc["valid"] is False and "would refuse" in doc["refused"]
    for argv in (("emulate", str(out), "read", "--arch", "x86_64"), ("explain", str(out)), ("audit", str(out)),
                 ("emulate", str(f), "read", "--arch", "x86_64")):
        code, _, err = cli(capsys, *argv)
        assert code == 2, argv
        one_error(err, str(f) if argv[1] == str(f) else str(out))


def test_disasm_json_of_a_valid_program(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, js, err = cli(capsys, "disasm", "--json", "strict", "--arch", "x86_64")
    doc = json.loads(js)
    assert code == 0 and not err and doc["valid"] is True and doc["insns"][0]["text"] == "A = arch"


@pytest.mark.parametrize("src,line,fragment", [
    ("A = arch\nA = bogus_thing +\nreturn ALLOW\n", 2, ""),
    ("return ALLOW\nA = " + "9" * 5000 + "\n", 2, "does not fit in 32 bits"),
    ("A = 1\ngoto nowhere\nreturn ALLOW\n", 2, "undefined label"),
])
def test_every_asm_error_names_the_file(src: str, line: int, fragment: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "p.asm"
    f.write_text(src)
    code, _, err = cli(capsys, "asm", str(f), "--format", "hex")
    assert code == 2
    one_error(err, f"{f}:{line}: ", fragment)


def test_explain_diff_audit_on_a_computed_return(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The issue's 5-instruction program the kernel loads: the return value is args[1]."""
    f = tmp_path / "ret_a.asm"
    f.write_text("A = args[0]\nif (A & 1) goto L\nA = 0\nL:\nA = args[1]\nreturn A\n")
    code, out, err = cli(capsys, "explain", str(f))
    assert code == 0 and not err and "errno(arg1.lo32 & 0xffff) if 0x50000 <= arg1.lo32 <= 0x5ffff" in out
    assert cli(capsys, "diff", str(f), str(f))[0] == 0
    code, out, _ = cli(capsys, "audit", str(f), "--no-baseline")
    assert code == 0 and "summary:" in out


# ------------------------------------------------------------------ text, names, unbounded reads

def test_non_utf8_byte_past_4k(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "long.asm"
    f.write_bytes(b"A = arch\n" * 600 + b"# caf\xe9\nreturn ALLOW\n")
    for argv in (("asm", str(f)), ("disasm", str(f)), ("explain", str(f))):
        code, _, err = cli(capsys, *argv)
        assert code == 2
        one_error(err, f"{f}:601:6: not UTF-8 text")


def test_stray_byte_does_not_make_a_profile_bpf(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "p.json"
    f.write_bytes(b'{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read\xff"], '
                  b'"action": "SCMP_ACT_ALLOW"}]}')
    code, _, err = cli(capsys, "compile", str(f), "--arch", "x86_64", "--format", "hex")
    assert code == 2
    one_error(err, f"{f}:1:", "not UTF-8 text")
    assert "BPF" not in err and "multiple of 8" not in err


def test_file_name_with_a_newline_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "bad\nname.asm"
    f.write_text("A %= 3\nreturn ALLOW\n")
    for argv in (("asm", str(f)), ("compile", str(f)), ("explain", str(tmp_path / "no\nsuch"))):
        code, _, err = cli(capsys, *argv)
        assert code == 2
        one_error(err, "bad\\nname" if "bad" in argv[1] else "no\\nsuch")


@pytest.mark.parametrize("argv", [
    ("compile", "{}"), ("disasm", "{}"), ("asm", "{}"), ("emulate", "{}", "read", "--arch", "x86_64"),
    ("explain", "{}"), ("audit", "{}"), ("diff", "{}", "strict"), ("convert", "{}", "--to", "docker"),
])
@pytest.mark.parametrize("special", ["/dev/zero", "/dev/urandom", "fifo"])
def test_devices_and_fifos_are_refused(argv: tuple, special: str, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    if special == "fifo":
        special = str(tmp_path / "fifo")
        os.mkfifo(special)  # no writer: reading it would block forever
    code, _, err = cli(capsys, *(a.replace("{}", special) for a in argv))
    assert code == 2
    one_error(err, special, "not a regular file")


def test_stdin_and_run_profile_and_include_are_capped(tmp_path: Path) -> None:
    with open("/dev/zero", "rb") as zero:
        r = sub("convert", "-", "--to", "docker", stdin=zero, timeout=120)
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and b"16 MiB input limit" in r.stderr
    r = sub("run", "--profile", "/dev/zero", "--", "true")
    assert r.returncode == 2 and b"/dev/zero" in r.stderr and b"not a regular file" in r.stderr
    inc = tmp_path / "p.policy"
    inc.write_text('#include "/dev/urandom"\nPOLICY p { ALLOW { read } }\nUSE p DEFAULT KILL\n')
    r = sub("compile", str(inc), "--arch", "x86_64", "--format", "hex")
    first = r.stderr.splitlines()[0]  # (text formats add the source line with a caret under it)
    assert r.returncode == 2 and b"not a regular file" in first and b"p.policy:1:" in first


def test_oversized_file_is_refused_without_reading_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sysgate.formats import MAX_INPUT_BYTES

    f = tmp_path / "big.bpf"
    with open(f, "wb") as fh:
        fh.truncate(MAX_INPUT_BYTES + 8)  # sparse: costs no disk
    for cmd in ("disasm", "compile", "explain"):
        code, _, err = cli(capsys, cmd, str(f))
        assert code == 2
        one_error(err, str(f), "16 MiB input limit")


def test_raw_program_over_65535_instructions_refused_quickly(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "long.bpf"
    f.write_bytes(I.encode([I.stmt(I.RET | I.RET_K, I.RET_ALLOW)]) * 70000)
    code, _, err = cli(capsys, "disasm", str(f))
    assert code == 2
    one_error(err, str(f), "70000 instructions")


# ------------------------------------------------------------------ numbers

@pytest.mark.parametrize("argv,fragment", [
    (("emulate", "strict", "read", "1<<64", "--arch", "x86_64"), "argument 0: '1<<64'"),
    (("emulate", "strict", "read", "9" * 5000, "--arch", "x86_64"), "argument 0:"),
    (("emulate", "strict", "read", "1e400", "--arch", "x86_64"), "argument 0: '1e400'"),
    (("emulate", "strict", "read", "--ip", "1<<70", "--arch", "x86_64"), "--ip:"),
    (("emulate", "strict", str(1 << 40), "--arch", "x86_64"), "syscall:"),
    (("dump", "--timeout", "inf", "--", "true"), "--timeout:"),
])
def test_numeric_arguments_bounded(argv: tuple, fragment: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, *argv)
    assert code == 2
    one_error(err, fragment)


@pytest.mark.parametrize("opt,value", [
    ("--memory", "inf"), ("--memory", "1e400"), ("--memory", "18446744073709551616"), ("--timeout", "inf"),
    ("--timeout", "nan"), ("--timeout", "1e400"), ("--pids", str(1 << 40)), ("--cpus", "inf"),
    ("--rlimit", "nofile=" + "9" * 30), ("--pass-fd", str(1 << 40)), ("--status-fd", str(1 << 40)),
])
def test_run_options_bounded_before_running(opt: str, value: str, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    r = sub("run", opt, value, "--", "/bin/sh", "-c", f"touch {marker}")
    assert r.returncode == 2 and not marker.exists(), r.stderr
    assert r.stderr.decode().count("\n") == 1 and opt.encode() in r.stderr


@pytest.mark.parametrize("args,kw,option", [
    (5, {}, "argv"), (["true", 3], {}, "argv[1]"), (["true"], {"input": "str"}, "input"),
    (["true"], {"timeout": "abc"}, "--timeout"), (["true"], {"timeout": True}, "--timeout"),
    (["true"], {"timeout": float("inf")}, "--timeout"), (["true"], {"memory": "inf"}, "--memory"),
    (["true"], {"memory": 1 << 64}, "--memory"), (["true"], {"pass_fds": ["3"]}, "--pass-fd"),
])
def test_api_bad_arguments_name_the_option(args: object, kw: dict, option: str) -> None:
    import sysgate

    with pytest.raises(BadArgument) as info:
        sysgate.run(args, **kw)  # type: ignore[arg-type]
    assert info.value.option == option and isinstance(info.value, (UserError, ValueError))
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------ output

def test_output_replaces_a_planted_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    out = tmp_path / "out.txt"
    out.symlink_to(target)
    assert cli(capsys, "compile", "strict", "--arch", "x86_64", "--format", "hex", "-o", str(out))[0] == 0
    assert target.read_text() == "keep me" and not out.is_symlink() and I.decode(bytes.fromhex(out.read_text()))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "victim"]


def test_output_keeps_mode_and_empty_name_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "o"
    out.write_text("old")
    out.chmod(0o640)
    assert cli(capsys, "compile", "strict", "--arch", "x86_64", "--format", "hex", "-o", str(out))[0] == 0
    assert out.stat().st_mode & 0o777 == 0o640
    code, stdout, err = cli(capsys, "compile", "strict", "--arch", "x86_64", "--format", "hex", "-o", "")
    assert code == 2 and not stdout
    one_error(err, "-o: empty file name")


def test_file_size_limit_leaves_no_partial_file(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    out.write_text("previous")

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))

    r = sub("compile", "docker-default", "--arch", "x86_64", "--format", "disasm", "-o", str(out), preexec_fn=limit)
    assert r.returncode == 2 and r.stderr.decode().count("\n") == 1 and str(out).encode() in r.stderr
    assert b"File too large" in r.stderr
    assert out.read_text() == "previous" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_error_names_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "compile", "strict", "--arch", "x86_64", "--format", "hex", "-o", "/dev/full")
    assert code == 2
    one_error(err, "/dev/full: cannot write: No space left on device")
