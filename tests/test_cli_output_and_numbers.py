"""Bad input through every command stays one line and exit 2; output never goes through a planted link.

Found by trying the commands from outside: an integer of 5,000 digits (in JSON, YAML, a pid, an
assembler jump) ended in a traceback (int() refuses 4,300 digits); a full stdout gave a traceback
for the commands that print (features, profiles, audit, ...); ``-o /dev/shm/x`` wrote through a
link planted there; ``record --in-jail`` with a bad run option recorded the inner run failing and
exited 0 with a profile; ``record --timeout nan`` was taken.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from jail_support import TESTS

SRC = os.path.join(os.path.dirname(TESTS), "src")
HUGE = "1" * 5000


def sysgate(*args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *args], stdout=stdout, stderr=subprocess.PIPE,
                          timeout=60, env=dict(os.environ, PYTHONPATH=SRC), cwd="/")


def one_line_2(p: subprocess.CompletedProcess) -> None:
    lines = p.stderr.splitlines()
    # one line; a text format's parse error adds a second: a caret under the quoted source's column
    ok = len(lines) == 1 or len(lines) == 2 and lines[1].strip() == b"^"
    assert p.returncode == 2 and ok and b"Traceback" not in p.stderr, p.stderr[-400:]


def test_numbers_past_what_int_reads(tmp_path) -> None:
    prof = tmp_path / "big.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": ' + HUGE + ', "syscalls": []}')
    one_line_2(sysgate("compile", str(prof)))
    one_line_2(sysgate("convert", str(prof), "--to", "minijail"))
    yaml = tmp_path / "big.yaml"
    yaml.write_text(f"kind: SeccompProfile\nspec:\n  defaultAction: SCMP_ACT_ERRNO\n  defaultErrnoRet: {HUGE}\n")
    one_line_2(sysgate("compile", str(yaml)))
    asm = tmp_path / "j.asm"
    asm.write_text(f" if (A == 1) goto {HUGE}\n return ALLOW\n")
    one_line_2(sysgate("asm", str(asm)))
    one_line_2(sysgate("explain", HUGE))


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
@pytest.mark.parametrize("args", [("features",), ("profiles",), ("profiles", "show", "strict"), ("compile", "strict"),
                                  ("explain", "strict")], ids=" ".join)
def test_a_full_stdout_is_one_line(args: tuple) -> None:
    with open("/dev/full", "wb") as full:
        p = sysgate(*args, stdout=full)
    one_line_2(p)
    assert b"<stdout>: cannot write" in p.stderr


def test_output_in_dev_shm_replaces_a_planted_link(tmp_path) -> None:
    if not os.access("/dev/shm", os.W_OK):
        pytest.skip("/dev/shm is not writable here")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    link = f"/dev/shm/sysgate-test-{os.getpid()}"
    os.symlink(victim, link)
    try:
        p = sysgate("compile", "strict", "-o", link)
        assert p.returncode == 0, p.stderr
        assert victim.read_text() == "keep" and not os.path.islink(link) and os.path.getsize(link) > 0
    finally:
        os.unlink(link)
    p = sysgate("compile", "strict", "-o", "/dev/stdout")  # the system's link to a descriptor: written through
    assert p.returncode == 0 and len(p.stdout) > 0 and os.path.islink("/dev/stdout")


def test_record_checks_its_jail_options_and_timeout(tmp_path) -> None:
    out = tmp_path / "r.json"
    one_line_2(sysgate("record", "-q", "-o", str(out), "--in-jail", "--memory", "0", "--", "/bin/true"))
    one_line_2(sysgate("record", "-q", "-o", str(out), "--in-jail", "--bogus-option", "--", "/bin/true"))
    for t in ("-1", "0", "nan", "inf", "1e400"):
        one_line_2(sysgate("record", "-q", "-o", str(out), "--timeout", t, "--", "/bin/true"))
    assert not out.exists()


def test_diff_of_a_long_uniform_chain_finishes(tmp_path) -> None:
    """A program that tests one argument after another, alike for every syscall (arch check, then
    100 x {load arg i%6, jeq i, return ERRNO(i)}), took 80 s to diff against strict: the same
    relaxation and constant lookups were redone for every syscall and ABI. Bounded, not timed:
    the wait is what a hang would exceed by far (it now takes a few seconds)."""
    import struct

    def insn(code: int, jt: int, jf: int, k: int) -> bytes:
        return struct.pack("<HBBI", code, jt, jf, k)

    prog = insn(0x20, 0, 0, 4) + insn(0x15, 1, 0, 0xC000003E) + insn(0x06, 0, 0, 0) + insn(0x20, 0, 0, 0)
    prog += b"".join(insn(0x20, 0, 0, 16 + 8 * (i % 6)) + insn(0x15, 0, 1, i) + insn(0x06, 0, 0, 0x50000 | i)
                     for i in range(100)) + insn(0x06, 0, 0, 0x7FFF0000)
    path = tmp_path / "chain.bpf"
    path.write_bytes(prog)
    p = subprocess.run([sys.executable, "-m", "sysgate", "diff", "strict", str(path)], capture_output=True,
                       timeout=90, env=dict(os.environ, PYTHONPATH=SRC), cwd="/")
    assert p.returncode == 1 and p.stdout and not p.stderr, p.stderr[-400:]  # 1: they differ


def test_standard_input_is_a_profile_wherever_a_file_is() -> None:
    """``-`` was read as a profile by convert only: explain/audit/diff read it as assembly, compile
    and run --profile said "no such profile file"."""
    strict = os.path.join(SRC, "sysgate", "profiles", "strict.json")

    def with_stdin(*args: str) -> subprocess.CompletedProcess:
        with open(strict, "rb") as f:
            return subprocess.run([sys.executable, "-m", "sysgate", *args], stdin=f, capture_output=True,
                                  timeout=60, env=dict(os.environ, PYTHONPATH=SRC), cwd="/")

    assert with_stdin("compile", "-").stdout == sysgate("compile", "strict").stdout != b""
    p = with_stdin("diff", "-", "strict")
    assert p.returncode == 0 and b"the same" in p.stdout, p.stderr
    p = with_stdin("explain", "-")
    assert p.returncode == 0 and p.stdout and not p.stderr, p.stderr
    p = with_stdin("audit", "-")
    assert p.returncode in (0, 1) and p.stdout and b"Traceback" not in p.stderr, p.stderr


def test_profiles_show_honours_o_and_refuses_conversion_options(tmp_path) -> None:
    """``profiles show strict -o FILE`` printed to stdout and never made FILE; ``--arch bogus``
    without ``--to`` exited 0."""
    out = tmp_path / "strict.json"
    p = sysgate("profiles", "show", "strict", "-o", str(out))
    assert p.returncode == 0 and p.stdout == b"" and out.read_bytes() == sysgate("profiles", "show", "strict").stdout
    one_line_2(sysgate("profiles", "show", "strict", "--arch", "bogus"))


def test_empty_arch_names_and_one_arch_as_a_string() -> None:
    """--arch '', ',' or 'x86_64,,x86' were taken without a word; Policy(arches="x86_64") read
    the letters ("unknown architecture 'x'")."""
    for bad in ("", ",", "x86_64,,x86"):
        one_line_2(sysgate("compile", "strict", "--arch", bad))
    from sysgate.policy import Action, Policy

    assert Policy(Action.parse("allow"), arches="x86_64").arches == ("x86_64",)
