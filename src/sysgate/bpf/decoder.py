"""Classic BPF instructions decoded once into a typed form (like gVisor's ``pkg/bpf/decoder.go``).

The emulator (:mod:`.emulator`), the forward dataflow of the disassembler (:mod:`.flow`) and
the symbolic execution (:mod:`sysgate.analysis.symexec`) all need the same facts about an
instruction: what it does (:class:`Kind`), its constant, its ALU or jump operation and where
control goes next as absolute instruction indexes. :func:`decode_program` computes them once
per program; :func:`decoded` caches the result for the immutable programs that are run many
times. The kernel's load-time checks (:func:`.emulator.check`) still read the raw encoding:
they are about encodings. The reference evaluator (``sysgate.reference``) does not use this.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from . import insn as I
from .insn import Insn

__all__ = ["Kind", "Op", "decode_insn", "decode_program", "decoded"]


class Kind:
    """What an instruction does (small ints: the emulator dispatches on them)."""

    LD_ABS = 0  #: A = seccomp_data word at byte offset k
    JMP_K = 1  #: if (A <op> k) goto jt else goto jf
    RET_K = 2  #: return k
    LD_IMM = 3  #: A = k
    JMP_X = 4  #: if (A <op> X) goto jt else goto jf
    ALU_K = 5  #: A = A <op> k
    ALU_X = 6  #: A = A <op> X
    JA = 7  #: goto jt
    LD_MEM = 8  #: A = M[k]
    LDX_IMM = 9  #: X = k
    LDX_MEM = 10  #: X = M[k]
    ST = 11  #: M[k] = A
    STX = 12  #: M[k] = X
    TAX = 13  #: X = A
    TXA = 14  #: A = X
    NEG = 15  #: A = -A
    LD_LEN = 16  #: A = sizeof(seccomp_data)
    LDX_LEN = 17  #: X = sizeof(seccomp_data)
    RET_A = 18  #: return A
    RET_X = 19  #: return X (classic BPF; seccomp refuses it)
    INVALID = 20  #: not executable (``k`` unused; see :func:`decode_insn`)

    NAMES = ("LD_ABS", "JMP_K", "RET_K", "LD_IMM", "JMP_X", "ALU_K", "ALU_X", "JA", "LD_MEM", "LDX_IMM", "LDX_MEM",
             "ST", "STX", "TAX", "TXA", "NEG", "LD_LEN", "LDX_LEN", "RET_A", "RET_X", "INVALID")


class Op(NamedTuple):
    """One decoded instruction.

    ``op`` is the ALU operation (``insn.ADD`` ...) or jump test (``insn.JEQ`` ...), else 0;
    ``jt``/``jf`` are absolute indexes of the next instruction when the test holds / fails
    (both ``pc + 1`` for straight-line code, both the target for ``JA``); ``why`` says what is
    wrong with an INVALID instruction.
    """

    kind: int
    k: int
    op: int
    jt: int
    jf: int
    why: str = ""


_JUMP_OPS = (I.JEQ, I.JGT, I.JGE, I.JSET)
_ALU_OPS = (I.ADD, I.SUB, I.MUL, I.DIV, I.MOD, I.OR, I.AND, I.LSH, I.RSH, I.XOR)


def decode_insn(ins: Insn, pc: int) -> Op:
    """Decode the instruction at index ``pc`` (jump targets become absolute indexes)."""
    code, jt, jf, k = ins
    cls = code & 7
    nxt = pc + 1
    if cls == I.RET:
        rv = code & 0x18
        kind = Kind.RET_A if rv == I.RET_A else (Kind.RET_X if rv == I.RET_X else Kind.RET_K)
        return Op(kind, k, 0, nxt, nxt)
    if cls == I.JMP:
        op = code & 0xF0
        if op == I.JA:
            return Op(Kind.JA, k, 0, nxt + k, nxt + k)
        if op not in _JUMP_OPS:
            return Op(Kind.INVALID, k, op, nxt + jt, nxt + jf, f"bad jump {code:#x}")
        return Op(Kind.JMP_X if code & I.X else Kind.JMP_K, k, op, nxt + jt, nxt + jf)
    if cls == I.LD:
        mode = code & 0xE0
        if mode == I.ABS:
            if code & 0x18 != I.W:
                return Op(Kind.INVALID, k, 0, nxt, nxt, "bad load")
            return Op(Kind.LD_ABS, k, 0, nxt, nxt)
        if mode == I.IMM:
            return Op(Kind.LD_IMM, k, 0, nxt, nxt)
        if mode == I.MEM:
            return Op(Kind.LD_MEM, k, 0, nxt, nxt)
        if mode == I.LEN:
            return Op(Kind.LD_LEN, k, 0, nxt, nxt)
        return Op(Kind.INVALID, k, 0, nxt, nxt, f"load mode {mode:#x} not supported by seccomp")
    if cls == I.LDX:
        mode = code & 0xE0
        if mode == I.IMM:
            return Op(Kind.LDX_IMM, k, 0, nxt, nxt)
        if mode == I.MEM:
            return Op(Kind.LDX_MEM, k, 0, nxt, nxt)
        if mode == I.LEN:
            return Op(Kind.LDX_LEN, k, 0, nxt, nxt)
        return Op(Kind.INVALID, k, 0, nxt, nxt, f"ldx mode {mode:#x} not supported by seccomp")
    if cls == I.ST:
        return Op(Kind.ST, k, 0, nxt, nxt)
    if cls == I.STX:
        return Op(Kind.STX, k, 0, nxt, nxt)
    if cls == I.ALU:
        op = code & 0xF0
        if op == I.NEG:
            return Op(Kind.NEG, k, op, nxt, nxt)
        if op not in _ALU_OPS:
            return Op(Kind.INVALID, k, op, nxt, nxt, f"bad alu op {code:#x}")
        return Op(Kind.ALU_X if code & I.X else Kind.ALU_K, k, op, nxt, nxt)
    misc = code & 0xF8  # MISC: only TAX (0x00) and TXA (0x80) exist
    if misc == I.TXA:
        return Op(Kind.TXA, k, 0, nxt, nxt)
    if misc == I.TAX:
        return Op(Kind.TAX, k, 0, nxt, nxt)
    return Op(Kind.INVALID, k, 0, nxt, nxt, f"bad misc op {code:#x}")


def decode_program(program: Sequence[Insn]) -> tuple[Op, ...]:
    """Every instruction of ``program`` decoded."""
    return tuple(decode_insn(ins, pc) for pc, ins in enumerate(program))


# The last few programs decoded, by identity: callers run one program over many inputs. The
# entry keeps the program alive, so its id cannot be reused while it is cached.
_CACHE: list[tuple[Sequence[Insn], tuple[Op, ...]]] = []
_CACHE_SIZE = 8


def decoded(program: Sequence[Insn]) -> tuple[Op, ...]:
    """:func:`decode_program`, cached for tuples (immutable; lists are decoded every time)."""
    for prog, ops in _CACHE:
        if prog is program:
            return ops
    ops = decode_program(program)
    if isinstance(program, tuple):
        _CACHE.insert(0, (program, ops))
        del _CACHE[_CACHE_SIZE:]
    return ops
