"""Seeded families of kernel-accepted programs built to multiply paths (issue 12: explain in bounded time).

Each family is a chain of ``n`` *diamonds*: a conditional jump whose two arms re-join at the
next test. Without merging, a symbolic executor follows 2^n paths; the families differ in what
the arms leave behind, so they exercise each part of the merging (``analysis.symexec``):

* ``args``: tests on different argument words, arms that change A just before it is reloaded
  (dead values: the arms meet in the same live state);
* ``same_arg``: tests of one argument against overlapping ranges and bit masks;
* ``scratch``: arms store different values in scratch words, some read later (live), most
  overwritten first (dead);
* ``alu``: arms apply ALU steps to A and X that survive the join; the result depends on a few
  of them (``ret A``, comparisons of X);
* ``count``: every arm adds to a counter that is returned: 2^n genuinely different regions, so
  an exact account is impossible and the analysis must refuse it, in bounded time.

``family(name, rng, n)`` returns the program as a tuple of :class:`~sysgate.bpf.insn.Insn`;
every program passes :func:`sysgate.bpf.emulator.check` (the kernel's load-time checks).
"""
from __future__ import annotations

import random

from sysgate.bpf import insn as I
from sysgate.bpf.insn import Insn

__all__ = ["FAMILIES", "family"]

S, J = I.stmt, I.jump
_RETS = (I.RET_ALLOW, I.RET_ERRNO | 1, I.RET_KILL_PROCESS, I.RET_TRAP, I.RET_LOG)
_ALU_K = (I.ADD, I.SUB, I.OR, I.AND, I.XOR, I.LSH, I.RSH, I.MUL)


def _ld_word(rng: random.Random) -> Insn:
    return S(I.LD | I.W | I.ABS, 16 + 4 * rng.randrange(12))


def _test(rng: random.Random, skip: int) -> Insn:
    """A conditional jump to the next instruction (true) or over ``skip`` instructions (false)."""
    op = rng.choice((I.JEQ, I.JGT, I.JGE, I.JSET))
    k = 1 << rng.randrange(32) if op == I.JSET else rng.choice((0, 1, 0x80000000, rng.getrandbits(32)))
    if rng.random() < 0.5:
        return J(I.JMP | op | I.K, k, 0, skip)
    return J(I.JMP | op | I.K, k, skip, 0)


def _alu_k(rng: random.Random) -> Insn:
    op = rng.choice(_ALU_K)
    k = rng.randrange(1, 32) if op in (I.LSH, I.RSH) else rng.getrandbits(rng.choice((1, 4, 32)))
    return S(I.ALU | op | I.K, k)


def _args(rng: random.Random, n: int) -> list[Insn]:
    p: list[Insn] = []
    for _ in range(n):
        arm = [_alu_k(rng) for _ in range(rng.randrange(1, 3))]
        p += [_ld_word(rng), _test(rng, len(arm)), *arm]
    return p + [_ld_word(rng), J(I.JMP | I.JSET | I.K, 1, 0, 1), S(I.RET | I.RET_K, rng.choice(_RETS)),
                S(I.RET | I.RET_K, rng.choice(_RETS))]


def _same_arg(rng: random.Random, n: int) -> list[Insn]:
    word = 16 + 4 * rng.randrange(12)
    p: list[Insn] = [S(I.LD | I.W | I.ABS, word)]
    for _ in range(n):
        if rng.random() < 0.3:  # an arm that reloads the same word (a dead detour)
            p += [_test(rng, 2), S(I.ALU | I.ADD | I.K, 7), S(I.LD | I.W | I.ABS, word)]
        else:
            op = rng.choice((I.JGT, I.JGE, I.JSET))
            k = rng.getrandbits(rng.choice((3, 8, 32))) if op != I.JSET else rng.getrandbits(4) << rng.randrange(28)
            p += [J(I.JMP | op | I.K, k, 0, 0 if rng.random() < 0.2 else 1), S(I.MISC | I.TAX)]
    # The end tells a few ranges apart.
    lo, hi = sorted(rng.getrandbits(32) for _ in range(2))
    return p + [J(I.JMP | I.JGE | I.K, lo, 0, 2), J(I.JMP | I.JGT | I.K, hi, 1, 0),
                S(I.RET | I.RET_K, rng.choice(_RETS)), S(I.RET | I.RET_K, rng.choice(_RETS))]


def _scratch(rng: random.Random, n: int) -> list[Insn]:
    p: list[Insn] = []
    for j in range(4):  # the kernel requires a store before any load of a scratch word
        p += [S(I.LD | I.IMM, j), S(I.ST, j)]
    for _i in range(n):
        slot = rng.randrange(4) if rng.random() < 0.3 else 4 + rng.randrange(12)
        arm = [S(I.LD | I.IMM, rng.randrange(4)), S(I.ST, slot)]
        p += [_ld_word(rng), _test(rng, len(arm)), *arm]
        if slot >= 4:  # a dead store: overwritten before any read
            p += [S(I.LD | I.IMM, 0), S(I.ST, slot)]
    slot = rng.randrange(4)
    return p + [S(I.LD | I.MEM, slot), J(I.JMP | I.JGE | I.K, 2, 0, 1), S(I.RET | I.RET_K, rng.choice(_RETS)),
                S(I.RET | I.RET_K, rng.choice(_RETS))]


def _alu(rng: random.Random, n: int) -> list[Insn]:
    p: list[Insn] = [S(I.LDX | I.IMM, 0)]
    for _i in range(n):
        if rng.random() < 0.25:  # X survives: a step that changes the final X (rare: 2^k states)
            arm = [S(I.MISC | I.TXA), S(I.ALU | I.OR | I.K, 1 << rng.randrange(3)), S(I.MISC | I.TAX)]
        else:  # a step on A, then A is reloaded: dead
            arm = [_alu_k(rng), S(I.MISC | I.TAX), S(I.LDX | I.IMM, rng.randrange(2))] if rng.random() < 0.2 \
                else [_alu_k(rng)]
        p += [_ld_word(rng), _test(rng, len(arm)), *arm]
    p += [S(I.MISC | I.TXA), S(I.ALU | I.AND | I.K, 7), S(I.ALU | I.OR | I.K, I.RET_ERRNO)]
    return p + [S(I.RET | I.RET_A)]


def _count(rng: random.Random, n: int) -> list[Insn]:
    p: list[Insn] = [S(I.LDX | I.IMM, 0)]
    for i in range(n):
        arm = [S(I.MISC | I.TXA), S(I.ALU | I.ADD | I.K, 1 << (i % 16)), S(I.MISC | I.TAX)]
        p += [_ld_word(rng), _test(rng, len(arm)), *arm]
    return p + [S(I.MISC | I.TXA), S(I.ALU | I.AND | I.K, 0xFFFF), S(I.ALU | I.OR | I.K, I.RET_ERRNO),
                S(I.RET | I.RET_A)]


FAMILIES = {"args": _args, "same_arg": _same_arg, "scratch": _scratch, "alu": _alu, "count": _count}


def family(name: str, rng: random.Random, n: int) -> tuple[Insn, ...]:
    """A program of family ``name`` with ``n`` diamonds (capped to the kernel's 4,096 instructions)."""
    prog = FAMILIES[name](rng, n)
    if len(prog) > I.BPF_MAXINSNS:
        raise ValueError(f"{name} with {n} diamonds: {len(prog)} instructions, more than {I.BPF_MAXINSNS}")
    return tuple(prog)
