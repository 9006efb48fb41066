"""Argument-to-argument conditions (:class:`~sysgate.policy.Compare`, from Kafel's ``fd < count``,
``(fd & buf) == 0``): the kernel loads the compiled filters and decides as the reference evaluator;
writers that cannot say it list the loss; explain renders them, diff refuses what it cannot decide."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from forkrun import run
from sysgate import arch as A
from sysgate.analysis.diff import diff
from sysgate.analysis.explain import explain
from sysgate.bpf.emulator import check, emulate
from sysgate.compiler import CompileError, compile_policy
from sysgate.formats import kafel
from sysgate.formats.registry import write
from sysgate.policy import ALLOW, Compare, Op, Policy, PolicyError, Rule, Term, errno
from sysgate.reference import evaluate

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
a0, a1, a2 = Term.arg(0), Term.arg(1), Term.arg(2)
HARMLESS = ["getpid", "getppid", "getuid", "getgid", "geteuid", "getegid"]
VALUES = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, U32, 1 << 32, (1 << 32) | 1, (1 << 32) | 2, U64 - 1, U64]


def _policies() -> list[Policy]:
    """One per shape: word order matters (high words decide first), as do masks and widths."""
    shapes = [Compare(a0, Op.LT, a1), Compare(a0, Op.GE, a1), Compare(a0, Op.EQ, a1, 32),
              Compare(Term.combine("&", a0, a1), Op.NE, Term.const(0)),
              Compare(Term.combine("|", a0, Term.const(2)), Op.LE, a1),
              Compare(Term.combine("&", Term.combine("|", a0, a1), a2), Op.GT, Term.combine("&", a1, a2))]
    out = []
    for k, c in enumerate(shapes):
        rules = (Rule(HARMLESS[k % len(HARMLESS)], errno(10 + k), (c,)),
                 Rule(HARMLESS[(k + 1) % len(HARMLESS)], errno(40 + k), (Compare(a1, Op.NE, a2), c)))
        out.append(Policy(ALLOW, rules, ("x86_64",)))
    return out


def _child(prog: bytes, calls: list[tuple[int, list[int]]]) -> list[int]:
    from sysgate.kernel.seccomp import install
    from sysgate.kernel.syscall import syscall

    natural = {nr: syscall(nr) for nr, _ in calls}
    install(prog, 0)
    out = []
    for nr, args in calls:
        try:
            got = syscall(nr, *args)
            out.append(0 if got == natural[nr] else -1000)  # the call ran (its value ignores arguments)
        except OSError as e:
            out.append(-e.errno)
    return out


@pytest.mark.skipif(A.native().name != "x86_64", reason="kernel test written for x86_64")
def test_kernel_decides_compares_as_the_reference() -> None:
    rnd = random.Random(11)
    x64 = A.get("x86_64")
    for pol in _policies():
        prog = compile_policy(pol)
        check(prog.insns)
        calls = []
        for name in HARMLESS:
            for _ in range(12):
                calls.append((x64.nr(name), [rnd.choice(VALUES) for _ in range(6)]))
        got = run(_child, prog.to_bytes(), calls, timeout=60).unwrap()
        for (nr, args), result in zip(calls, got):
            want = evaluate(pol, "x86_64", nr, args)
            assert emulate(prog.insns, "x86_64", nr, args).ret == want.ret
            assert result == (0 if want == ALLOW else -want.data), (x64.name_of(nr), [hex(v) for v in args], want)


def test_32bit_abi_compares_with_zero_high_words() -> None:
    pol = Policy(ALLOW, (Rule("getpid", errno(5), (Compare(Term.combine("|", a0, Term.const(1 << 32)), Op.EQ,
                                                               Term.const(1 << 32)),)),), ("x86",))
    prog = compile_policy(pol).insns
    nr = A.get("x86").nr("getpid")
    for v in (0, 1, U32):
        assert emulate(prog, "x86", nr, [v]).ret == evaluate(pol, "x86", nr, [v]).ret


def test_terms_are_validated_and_bounded() -> None:
    with pytest.raises(PolicyError):
        Term.arg(6)
    with pytest.raises(PolicyError):
        Compare(a0, Op.MASKED_EQ, a1)
    t = a0
    with pytest.raises(PolicyError, match="nested deeper"):
        for _ in range(100):
            t = Term.combine("&", t, a1)
    # Deep right-nested terms need scratch memory; more than 16 words is a compile error.
    t = a0
    for k in range(20):
        t = Term.combine("&", Term.combine("|", a1, Term.arg(k % 6)), t)
    pol = Policy(ALLOW, (Rule("getpid", errno(1), (Compare(t, Op.EQ, a2),)),), ("x86_64",))
    try:
        compile_policy(pol)
    except CompileError as e:
        assert "scratch memory" in str(e)


def test_other_writers_list_the_loss_kafel_keeps_it() -> None:
    pol = kafel.loads("ALLOW { write { fd < count }, read } DEFAULT KILL", arch="x86_64").policy
    for fmt in ("docker", "minijail", "systemd", "firecracker"):
        out = write(pol, fmt, **({"thread": "main"} if fmt == "firecracker" else {}))
        assert any("compares arguments with each other" in x for x in out.losses), (fmt, out.losses)
    text = write(pol, "kafel").text
    back = kafel.loads(text, arch="x86_64").policy
    nr = A.get("x86_64").nr("write")
    for args in ([1, 0, 2], [3, 0, 2], [2, 0, 2], [1 << 32, 0, 5]):
        assert evaluate(back, "x86_64", nr, args) == evaluate(pol, "x86_64", nr, args)


def test_explain_renders_and_diff_refuses_what_it_cannot_decide() -> None:
    p1 = kafel.loads("ALLOW { write { (fd & buf) == count } } DEFAULT KILL", arch="x86_64").policy
    p2 = kafel.loads("ALLOW { write { (buf & fd) == count } } DEFAULT KILL", arch="x86_64").policy
    p3 = kafel.loads("ALLOW { write { fd != count } } DEFAULT KILL", arch="x86_64").policy
    text = explain(compile_policy(p1).insns).render()
    assert "(arg0.lo32 & arg1.lo32) == arg2.lo32" in text
    assert diff(explain(compile_policy(p1).insns), explain(compile_policy(p1).insns)).status == 0
    with pytest.raises(ValueError, match="cannot tell exactly"):
        diff(explain(compile_policy(p1).insns), explain(compile_policy(p2).insns))
    assert diff(explain(compile_policy(p1).insns), explain(compile_policy(p3).insns)).status != 0


def test_cli_shows_the_source_line_with_a_caret(tmp_path: Path) -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    f = tmp_path / "p.policy"
    f.write_text("read: allow\nwrite: arg0 == 09\n")
    r = subprocess.run([sys.executable, "-m", "sysgate.cli", "compile", str(f), "--arch", "x86_64"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    first, caret = r.stderr.rstrip("\n").split("\n")
    assert first.startswith(f"sysgate: error: {f}:2:16: invalid octal number '09'") and first.endswith("write: arg0 == 09")
    assert caret.strip() == "^" and first[len(caret) - 1:].startswith("09")
