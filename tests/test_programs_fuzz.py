"""Seeded fuzzing of the program commands: whatever the program, a clean answer or a clean refusal.

* explain (text and JSON), audit, diff and the lossy Docker export on random programs the
  kernel accepts (:func:`bpf_random.accepted_program`, whose acceptance the kernel-judged
  ``test_kernel_verdict`` holds to the kernel's): no exception but a refusal (UserError);
* the emulator runs every accepted program to a return on random inputs;
* asm on random token soup and disasm on random bytes: only one-line UserErrors.

Case counts are bounded for CI; ``SYSGATE_FUZZ_CASES=N`` scales them (N is the kernel test's
count; these use a fraction of it).
"""
from __future__ import annotations

import os
import random
import struct
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bpf_random import accepted_program, program
from sysgate.analysis.audit import audit
from sysgate.analysis.diff import diff
from sysgate.analysis.explain import explain_programs
from sysgate.analysis.export import to_policy
from sysgate.bpf import insn as I
from sysgate.bpf.asm import AsmError, asm
from sysgate.bpf.disasm import disasm
from sysgate.bpf.emulator import InvalidProgram, check, run
from sysgate.errors import UserError

SCALE = int(os.environ.get("SYSGATE_FUZZ_CASES", "3000"))


def _cases(default_share: int) -> int:
    return max(1, SCALE * default_share // 3000)


def test_analysis_never_raises_on_accepted_programs() -> None:
    rng = random.Random(2026)
    prev = None
    for i in range(_cases(1000)):
        p = accepted_program(rng, 40)
        try:
            e = explain_programs([p], "little", naming=["x86_64"], sources=[f"case {i}"])
            e.render()
            e.to_json()
            audit(e).render(None)
            if prev is not None:
                d = diff(e, prev)
                d.render()
                d.to_json()
            try:
                to_policy(e, None, lossy=i % 2 == 0)
            except UserError:
                pass  # NotExpressible, a clean refusal
        except UserError as err:  # a refusal must be one line
            assert "\n" not in str(err), (p, err)
        except Exception as err:
            raise AssertionError(f"case {i}: {type(err).__name__}: {err}\nprogram: {p}") from err
        prev = e


def test_emulator_runs_accepted_programs_to_a_return() -> None:
    rng = random.Random(5)
    for _ in range(_cases(3000)):
        p = accepted_program(rng, 60)
        data = struct.pack("<16I", *(rng.choice((0, 1, 0xFFFFFFFF, rng.getrandbits(32))) for _ in range(16)))
        res = run(p, data)
        assert 0 <= res.ret <= 0xFFFFFFFF and res.executed <= len(p)


_VOCAB = ["A", "X", "=", "==", "!=", "&", "+=", "%=", ">>", "<<", "(", ")", "[", "]", "?", ":", "if", "goto",
          "else", "return", "ALLOW", "ERRNO(1)", "KILL", "mem[0]", "mem[16]", "args[2]", "args[7]", "data[3]",
          "arch", "sys_number", "ARCH_X86_64", "ARCH_BOGUS", "read", "nosuchcall", "0x10", "99999999999",
          "-1", "L1", "L1:", "next", "raw", "0x94", "#", "len", "-A", "x86_64.read", "\t", "é", "0000:"]


def test_asm_fuzz_only_one_line_errors() -> None:
    rng = random.Random(11)
    for _ in range(_cases(3000)):
        lines = [" ".join(rng.choice(_VOCAB) for _ in range(rng.randrange(0, 7))) for _ in range(rng.randrange(1, 8))]
        text = "\n".join(lines)
        try:
            prog = asm(text, "x86_64")
        except AsmError as e:
            assert "\n" not in str(e) and e.line >= 1
            continue
        try:
            check(prog)
        except InvalidProgram as e:
            assert "\n" not in str(e)


def test_disasm_asm_round_trip_on_random_programs() -> None:
    rng = random.Random(3)
    for _ in range(_cases(1500)):
        p = program(rng)
        if len(p) > 600:
            continue
        assert asm(disasm(p, "x86_64"), "x86_64") == p


@pytest.mark.parametrize("seed", range(3))
def test_load_program_on_random_bytes(seed: int, tmp_path: Path) -> None:
    from sysgate.programs import load_program

    rng = random.Random(seed)
    for i in range(_cases(200)):
        f = tmp_path / f"r{i}"
        f.write_bytes(bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 200))))
        try:
            load_program(str(f), ["x86_64"])
        except UserError as e:
            assert "\n" not in str(e)


def _diamonds(k: int) -> tuple:
    """k tests of argument bits, each adding to A on one side only and storing A, then
    ``return M[0]``: 2^k paths, of which only the last store to M[0] matters (the rest is dead)."""
    S, J = I.stmt, I.jump
    p: list = []
    for i in range(k):
        p += [S(I.LD | I.W | I.ABS, 16 + 4 * (i % 12)), J(I.JMP | I.JSET | I.K, 1 << (i % 32), 0, 1),
              S(I.ALU | I.ADD | I.K, i + 1), S(I.ST, i % 16)]
    return tuple(p + [S(I.LD | I.MEM, 0), S(I.RET | I.RET_A)])


def _counter(k: int) -> tuple:
    """k tests of argument bits, each adding its own power of two to X, then ``return X``: 2^k
    different errno values (a program the kernel accepts that an exact account cannot summarise)."""
    S, J = I.stmt, I.jump
    p: list = [S(I.LDX | I.IMM, 0)]
    for i in range(k):
        p += [S(I.LD | I.W | I.ABS, 16 + 4 * (i % 12)), J(I.JMP | I.JSET | I.K, 1 << (i % 32), 0, 3),
              S(I.MISC | I.TXA), S(I.ALU | I.ADD | I.K, 1 << (i % 16)), S(I.MISC | I.TAX)]
    return tuple(p + [S(I.MISC | I.TXA), S(I.ALU | I.OR | I.K, I.RET_ERRNO), S(I.RET | I.RET_A)])


@pytest.mark.parametrize("k", [6, 12, 1000])
def test_path_explosion_is_explained_or_refused_cleanly(k: int) -> None:
    """Dead differences merge (exact output in few paths); live ones are refused with one
    AnalysisError line, from a bound on paths and on work (not a timer), so deterministically."""
    from sysgate.analysis.symexec import AnalysisError

    p = _diamonds(k)
    check(p)
    e = explain_programs([p], "little", naming=["x86_64"])
    assert "arg" in e.render() and len(e.leaves) < 64
    c = _counter(min(k, 300))  # 5 instructions a test: within 4,096
    check(c)
    if k == 6:
        assert "arg" in explain_programs([c], "little", naming=["x86_64"]).render()
        return
    with pytest.raises(AnalysisError) as info:
        explain_programs([c], "little", naming=["x86_64"])
    assert "too complex to explain exactly" in str(info.value) and "\n" not in str(info.value)
