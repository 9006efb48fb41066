"""Path merging in the symbolic execution (issue 12: explain in bounded time on accepted programs).

Programs whose tests re-join (chains of diamonds, :mod:`adversarial_programs`) must be explained
exactly in a number of paths that grows with the program, not 2^n; programs whose paths carry
different values to the end must be refused with one line, by a bound on work (never a timer).
Exactness is judged by the emulator: on sampled inputs (random and boundary words) the
explanation decides what the emulated program returns, and every leaf's witness input takes it.
"""
from __future__ import annotations

import random
import struct
import sys
from pathlib import Path

import pytest

from sysgate.analysis.domain import M32
from sysgate.analysis.explain import Explanation, explain_programs
from sysgate.analysis.symexec import AnalysisError, combine_stack, evaluate, execute, liveness, witness
from sysgate.bpf import insn as I
from sysgate.bpf.emulator import check, run

sys.path.insert(0, str(Path(__file__).parent))
from adversarial_programs import FAMILIES, family  # noqa: E402

S, J = I.stmt, I.jump


def _run_stack(progs: list, words: list[int]) -> int:
    data = struct.pack("<16I", *words)
    ret = None
    for p in reversed(progs):  # newest first, as the kernel runs them
        r = run(p, data, "little").ret
        ret = r if ret is None else combine_stack(ret, r)
    return ret  # type: ignore[return-value]


def _agrees(e: Explanation, progs: list, seed: int, n: int = 300) -> None:
    rng = random.Random(seed)
    ks = sorted({0, 1, M32, 0x80000000} | {(ins.k + d) & M32 for p in progs for ins in p for d in (-1, 0, 1)})
    for _ in range(n):
        words = [rng.choice(ks) if rng.random() < 0.7 else rng.randrange(M32 + 1) for _ in range(16)]
        assert e.decide(words) == _run_stack(progs, words), words
    for i, lf in enumerate(e.leaves):
        w = witness(lf.doms, lf.opaque, seed=i)
        if w is None:
            assert lf.unverified
            continue
        assert _run_stack(progs, w) == evaluate(lf.ret, w), (lf, w)


# Families whose arms leave no live difference must always be explained, at any size.
@pytest.mark.parametrize("name", ["args", "same_arg"])
@pytest.mark.parametrize("seed", range(6))
def test_rejoining_families_are_explained_exactly(name: str, seed: int) -> None:
    rng = random.Random(seed)
    for n in (3, 12, 40, 300):
        p = family(name, rng, n)
        check(p)
        e = explain_programs([p], "little", naming=["x86_64"])
        assert len(e.leaves) <= 8, (n, len(e.leaves))  # merged: not 2^n
        _agrees(e, [p], seed * 1000 + n, n=150)
        assert e.render().strip()


# Families with live state: explained exactly when small, refused with one line when not.
@pytest.mark.parametrize("name", ["scratch", "alu", "count"])
@pytest.mark.parametrize("seed", range(6))
def test_stateful_families_are_exact_or_refused_in_one_line(name: str, seed: int) -> None:
    rng = random.Random(seed)
    explained = 0
    for n in (3, 8, 30, 200):
        p = family(name, rng, n)
        check(p)
        try:
            e = explain_programs([p], "little", naming=["x86_64"])
        except AnalysisError as err:
            assert "too complex to explain exactly" in str(err) and "\n" not in str(err)
            continue
        explained += 1
        _agrees(e, [p], seed * 1000 + n, n=150)
    assert explained >= 1  # n = 3 always fits


def test_counter_of_true_tests_is_refused_by_the_work_bound() -> None:
    """2^n different returned values: no exact account is small; the bound on work refuses it."""
    p = family("count", random.Random(1), 64)
    with pytest.raises(AnalysisError, match="too complex to explain exactly"):
        execute([p])


def test_independent_tests_that_rejoin_cost_one_path_each() -> None:
    """The issue's shape: n argument tests, each followed by a merge, then one decision."""
    p: list = []
    for i in range(600):
        p += [S(I.LD | I.W | I.ABS, 16 + 8 * (i % 6)), J(I.JMP | I.JSET | I.K, 1 << (i % 32), 0, 1),
              S(I.ALU | I.OR | I.K, 1)]
    p += [S(I.LD | I.W | I.ABS, 16), J(I.JMP | I.JEQ | I.K, 7, 0, 1), S(I.RET | I.RET_K, I.RET_ALLOW),
          S(I.RET | I.RET_K, I.RET_ERRNO | 1)]
    check(p)
    e = explain_programs([tuple(p)], "little", naming=["x86_64"])
    assert len(e.leaves) == 2
    assert "allow if arg0.lo32 == 7" in e.render() or "arg0" in e.render()
    _agrees(e, [tuple(p)], 5)


def test_arms_of_an_earlier_test_merge_after_a_later_test_overwrites_their_difference() -> None:
    """``Q & c & t`` and ``Q & !c & t`` meet in one state (t overwrote what c changed): ``Q & t``."""
    p = (S(I.LDX | I.IMM, 0),
         S(I.LD | I.W | I.ABS, 16), J(I.JMP | I.JSET | I.K, 1, 0, 1), S(I.LDX | I.IMM, 1),  # c: X = 1
         S(I.LD | I.W | I.ABS, 24), J(I.JMP | I.JSET | I.K, 1, 0, 1), S(I.LDX | I.IMM, 2),  # t: X = 2
         S(I.MISC | I.TXA), S(I.ALU | I.OR | I.K, I.RET_ERRNO), S(I.RET | I.RET_A))
    check(p)
    e = explain_programs([p], "little", naming=["x86_64"])
    assert len(e.leaves) == 3  # errno(2) if t; errno(1) if c and not t; errno(0) otherwise
    assert sorted(lf.ret for lf in e.leaves) == [I.RET_ERRNO, I.RET_ERRNO | 1, I.RET_ERRNO | 2]
    _agrees(e, [p], 11)


def test_stacked_families_agree_with_the_kernel_order() -> None:
    """Groups meet again at the next filter's start: the stack's results stay exact."""
    rng = random.Random(7)
    for _ in range(4):
        progs = [family(rng.choice(["args", "same_arg", "scratch", "alu"]), rng, rng.randrange(2, 10))
                 for _ in range(2)]
        try:
            e = explain_programs(progs, "little", naming=["x86_64"])
        except AnalysisError:
            continue
        _agrees(e, progs, rng.randrange(1 << 16), n=150)


def test_liveness() -> None:
    """What each pc may read before writing: A, X and the scratch words (bits 0, 1, 2 + i)."""
    p = [S(I.LD | I.W | I.ABS, 16),  # 0: A = arg0 (reads nothing)
         S(I.ST, 3),  # 1: M[3] = A
         S(I.LDX | I.IMM, 1),  # 2: X = 1
         J(I.JMP | I.JGT | I.X, 0, 0, 1),  # 3: A > X ?
         S(I.LD | I.MEM, 3),  # 4: A = M[3]
         S(I.RET | I.RET_A)]  # 5
    live = liveness(p)
    assert live[5] == 1  # ret A
    assert live[4] == 4 << 3  # M[3], not A
    assert live[3] == 1 | 2 | (4 << 3)
    assert live[2] == 1 | (4 << 3)  # X is written here
    assert live[1] == 1
    assert live[0] == 0


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_families_pass_the_kernel_checks(name: str) -> None:
    rng = random.Random(3)
    for n in (1, 5, 50):
        check(family(name, rng, n))
