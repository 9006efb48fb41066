"""Seeded random classic-BPF programs built to sit on the edges of the kernel's load-time checks.

Each program is mostly made of instructions seccomp allows, with, at a controlled rate, the
things the checker refuses or nearly refuses: MOD and other classic-only opcodes, RET X,
``data[k]`` at odd or out-of-range offsets, constants 0/31/32 for DIV and shifts, scratch
index 15/16, jumps to the last instruction or one past it, scratch loads before any store
(on one path, after a return), lengths 4,096/4,097 and programs that do not end in a return.
``random.Random(seed)`` makes every case reproducible from its seed.
"""
from __future__ import annotations

import random

from sysgate.bpf import insn as I
from sysgate.bpf.insn import Insn

__all__ = ["program", "accepted_program", "SECCOMP_CODES"]

_ALU_OPS = (I.ADD, I.SUB, I.MUL, I.DIV, I.OR, I.AND, I.LSH, I.RSH, I.XOR)
_JUMPS = (I.JEQ, I.JGT, I.JGE, I.JSET)
SECCOMP_CODES = (
    [I.LD | I.W | I.ABS] * 6 + [I.LD | I.IMM, I.LDX | I.IMM, I.LD | I.W | I.LEN, I.LDX | I.W | I.LEN,
                                I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX, I.MISC | I.TAX, I.MISC | I.TXA,
                                I.ALU | I.NEG, I.JMP | I.JA, I.RET | I.RET_A]
    + [I.RET | I.RET_K] * 3
    + [I.ALU | op | s for op in _ALU_OPS for s in (I.K, I.X)]
    + [I.JMP | op | s for op in _JUMPS for s in (I.K, I.X)] * 2
)
# Valid classic BPF that seccomp refuses, and near-miss encodings.
_REFUSED = (I.ALU | I.MOD | I.K, I.ALU | I.MOD | I.X, I.RET | I.RET_X, I.LD | I.H | I.ABS, I.LD | I.B | I.ABS,
            I.LD | I.W | I.IND, I.LDX | I.B | I.MSH, I.JMP | I.JA | I.X, I.MISC | 0x08, 0x0F, 0xFF)
_RETS = (I.RET_ALLOW, I.RET_KILL_PROCESS, I.RET_ERRNO | 1, I.RET_ERRNO | 4096, I.RET_ERRNO | 0xFFFF, I.RET_TRAP,
         I.RET_LOG, I.RET_TRACE | 7, I.RET_USER_NOTIF, 0x12345678, 0)


def _k(rng: random.Random, code: int) -> int:
    cls, op = code & 7, code & 0xF0
    if code == I.LD | I.W | I.ABS:
        if rng.random() < 0.06:
            return rng.choice((1, 2, 3, 61, 64, 68, 0x1000, 0xFFFFF000, 0xFFFFFFFC))
        return 4 * rng.randrange(16)
    if code in (I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX):
        return 16 if rng.random() < 0.03 else rng.choice((0, 1, 2, 15, rng.randrange(16)))
    if cls == I.ALU and code & I.X == 0:
        if op in (I.LSH, I.RSH):
            return rng.choice((0, 1, 31, 32, 33, 0xFFFFFFFF)) if rng.random() < 0.1 else rng.randrange(32)
        if op == I.DIV:
            return 0 if rng.random() < 0.1 else rng.choice((1, 2, 3, 7, 0xFFFFFFFF))
    if cls == I.RET:
        return rng.choice(_RETS)
    if rng.random() < 0.3:
        return rng.choice((0, 1, 2, 0xFFFFFFFF, 0x80000000, 0x40000000, 0xC000003E, 59, 1))
    return rng.getrandbits(32)


def _jump_offsets(rng: random.Random, pc: int, n: int) -> tuple[int, int]:
    room = n - pc - 2  # the largest offset that stays inside the program
    def one() -> int:
        r = rng.random()
        if r < 0.04:
            return min(255, room + 1)  # one past the end (invalid unless clipped to 255)
        if r < 0.12:
            return max(min(255, room), 0)  # the last instruction
        return rng.randrange(0, max(min(room, 255), 0) + 1)
    return one(), one()


def program(rng: random.Random, length: int | None = None) -> tuple[Insn, ...]:
    """A random program near the kernel's rules (about half of them are refused)."""
    if length is None:
        r = rng.random()
        length = (rng.choice((4096, 4097, 4095)) if r < 0.01 else rng.randrange(1, 400) if r < 0.06
                  else rng.randrange(1, 24))
    bad_rate = rng.choice((0.0, 0.0, 0.0, 0.01, 0.05))
    out: list[Insn] = []
    for pc in range(length):
        if rng.random() < bad_rate:
            code = rng.choice(_REFUSED) if rng.random() < 0.8 else rng.getrandbits(16)
        else:
            code = rng.choice(SECCOMP_CODES)
        jt = jf = 0
        k = _k(rng, code)
        if code & 7 == I.JMP:
            if code & 0xF0 == I.JA:
                k = rng.choice((max(length - pc - 2, 0), length - pc - 1)) if rng.random() < 0.1 \
                    else rng.randrange(0, max(length - pc - 1, 1))
            else:
                jt, jf = _jump_offsets(rng, pc, length)
        elif rng.random() < 0.02:
            jt, jf = rng.getrandbits(8), rng.getrandbits(8)  # ignored fields the kernel does not check
        out.append(Insn(code, jt, jf, k))
    if rng.random() < 0.93:
        out[-1] = Insn(I.RET | I.RET_K, 0, 0, rng.choice(_RETS)) if rng.random() < 0.8 \
            else Insn(I.RET | I.RET_A, 0, 0, 0)
    return tuple(out)


def accepted_program(rng: random.Random, max_len: int = 60) -> tuple[Insn, ...]:
    """A random program the kernel accepts (checked with the emulator's checker, which a kernel
    test holds to the kernel's verdict)."""
    from sysgate.bpf.emulator import InvalidProgram, check

    while True:
        p = program(rng, rng.randrange(1, max_len))
        try:
            check(p)
        except InvalidProgram:
            continue
        return p
