"""Run a seccomp BPF program the way the kernel does, and check it the way the kernel does.

:func:`check` applies the kernel's load-time rules (``bpf_check_classic`` plus
``seccomp_check_filter``); :func:`run` executes a program over a ``seccomp_data`` and
reports the return value and how many instructions ran.
"""
from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..errors import UserError
from . import insn as I
from .decoder import Kind as K
from .decoder import decoded
from .insn import Insn

__all__ = ["InvalidProgram", "SeccompData", "Result", "check", "run", "emulate"]

_M32 = 0xFFFFFFFF


class InvalidProgram(UserError):  # a ValueError
    """The kernel would refuse this program (EINVAL). ``pc`` is the instruction at fault (None
    when the whole program is: its length)."""

    def __init__(self, message: str, pc: int | None = None) -> None:
        super().__init__(message)
        if pc is None and message.startswith("instruction "):
            head = message[12:].partition(":")[0]
            pc = int(head) if head.isdigit() else None
        self.pc = pc


@dataclass(frozen=True)
class SeccompData:
    """``struct seccomp_data``: what a filter sees of one syscall."""

    nr: int
    arch: int
    instruction_pointer: int = 0
    args: tuple[int, ...] = (0, 0, 0, 0, 0, 0)

    def pack(self, byteorder: str = "little") -> bytes:
        args = tuple(self.args) + (0,) * (6 - len(self.args))
        e = "<" if byteorder == "little" else ">"
        return struct.pack(e + "iIQ6Q", _signed32(self.nr), self.arch & _M32,
                           self.instruction_pointer & 0xFFFFFFFFFFFFFFFF,
                           *(a & 0xFFFFFFFFFFFFFFFF for a in args))


def _signed32(v: int) -> int:
    v &= _M32
    return v - (1 << 32) if v & 0x80000000 else v


@dataclass
class Result:
    ret: int
    executed: int
    path: list[int] = field(default_factory=list)

    @property
    def action(self) -> int:
        return I.ret_action(self.ret)

    @property
    def data(self) -> int:
        return self.ret & I.RET_DATA


# The opcodes seccomp_check_filter() (kernel/seccomp.c) lets through, after bpf_check_classic()
# (net/core/filter.c, chk_code_allowed) has accepted them. Classic BPF has more (MOD, ldh/ldb,
# indirect loads, msh, RET X is not even classic-valid): seccomp refuses all of those with EINVAL.
_SECCOMP_OK = frozenset({
    I.LD | I.W | I.ABS, I.LD | I.W | I.LEN, I.LDX | I.W | I.LEN, I.LD | I.IMM, I.LDX | I.IMM,
    I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX, I.MISC | I.TAX, I.MISC | I.TXA,
    I.RET | I.RET_K, I.RET | I.RET_A,
    I.JMP | I.JA, I.JMP | I.JEQ | I.K, I.JMP | I.JEQ | I.X, I.JMP | I.JGE | I.K, I.JMP | I.JGE | I.X,
    I.JMP | I.JGT | I.K, I.JMP | I.JGT | I.X, I.JMP | I.JSET | I.K, I.JMP | I.JSET | I.X,
    I.ALU | I.NEG,
} | {I.ALU | op | src for op in (I.ADD, I.SUB, I.MUL, I.DIV, I.OR, I.AND, I.LSH, I.RSH, I.XOR)
     for src in (I.K, I.X)})
_MEM_OPS = frozenset({I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX})
_CONDJUMPS = frozenset(c for c in _SECCOMP_OK if c & 7 == I.JMP and c != I.JMP | I.JA)


def check(program: Sequence[Insn]) -> None:
    """Raise :class:`InvalidProgram` exactly where the kernel's checker says EINVAL.

    The rules, in the kernel's order: length 1-4096 (seccomp_prepare_filter); per instruction
    an opcode seccomp allows, no division by constant 0, constant shifts below 32, scratch
    index below 16, jumps inside the program (bpf_check_classic); ``A = data[k]`` aligned and
    inside seccomp_data (seccomp_check_filter); the last instruction a return; no scratch
    word read before a store on every path (check_load_and_stores). A test loads thousands
    of random programs in the kernel and requires this function to agree on each.
    """
    n = len(program)
    if not 0 < n <= I.BPF_MAXINSNS:
        raise InvalidProgram(f"program has {n} instructions; the kernel accepts 1 to {I.BPF_MAXINSNS}")
    for pc, ins in enumerate(program):
        code, jt, jf, k = ins
        if code not in _SECCOMP_OK:
            what = "MOD (%)" if code & 0xF7 == I.ALU | I.MOD else f"opcode {code:#04x}"
            raise InvalidProgram(f"instruction {pc}: {what} is not allowed in seccomp filters")
        if code in _MEM_OPS and k >= I.BPF_MEMWORDS:
            raise InvalidProgram(f"instruction {pc}: scratch memory index {k} out of range 0-15")
        elif code == I.ALU | I.DIV | I.K and k == 0:
            raise InvalidProgram(f"instruction {pc}: division by constant zero")
        elif code in (I.ALU | I.LSH | I.K, I.ALU | I.RSH | I.K) and k >= 32:
            raise InvalidProgram(f"instruction {pc}: shift by {k} (the kernel allows 0-31)")
        elif code == I.JMP | I.JA:
            if k >= n - pc - 1:
                raise InvalidProgram(f"instruction {pc}: jump past the end")
        elif code in _CONDJUMPS:
            if pc + 1 + max(jt, jf) >= n:
                raise InvalidProgram(f"instruction {pc}: jump past the end")
        elif code == I.LD | I.W | I.ABS and (k >= I.SECCOMP_DATA_SIZE or k & 3):
            raise InvalidProgram(f"instruction {pc}: load from offset {k} outside seccomp_data or unaligned")
    if program[-1].code not in (I.RET | I.RET_K, I.RET | I.RET_A):
        raise InvalidProgram(f"instruction {n - 1}: the last instruction must be a return")
    _check_memory(program)


def _check_memory(program: Sequence[Insn]) -> None:
    """check_load_and_stores() exactly: refuse a load of a scratch word not stored first.

    The kernel walks the instructions in order with one "valid" mask that jumps meet into
    their targets and reset to all-valid after themselves; a return does NOT reset it, so
    unreachable code after a return is checked as if the return fell through.
    """
    masks = [0xFFFF] * len(program)
    valid = 0
    for pc, (code, jt, jf, k) in enumerate(program):
        valid &= masks[pc]
        if code == I.ST or code == I.STX:
            valid |= 1 << k
        elif code == I.LD | I.MEM or code == I.LDX | I.MEM:
            if not valid >> k & 1:
                raise InvalidProgram(f"instruction {pc}: reads scratch memory M[{k}] that is not stored "
                                     f"on every way here")
        elif code == I.JMP | I.JA:
            masks[pc + 1 + k] &= valid
            valid = 0xFFFF
        elif code in _CONDJUMPS:
            masks[pc + 1 + jt] &= valid
            masks[pc + 1 + jf] &= valid
            valid = 0xFFFF


def run(program: Sequence[Insn], data: bytes, byteorder: str = "little", trace: bool = False) -> Result:
    """Execute ``program`` over packed ``seccomp_data``. The program should have passed :func:`check`."""
    A = X = 0
    M = [0] * I.BPF_MEMWORDS
    pc = 0
    count = 0
    path: list[int] = []
    ops = decoded(program)
    n = len(ops)
    fmt = "<I" if byteorder == "little" else ">I"
    unpack = struct.unpack_from
    while True:
        if pc >= n:
            raise InvalidProgram("ran off the end of the program")
        kind, k, op, jt, jf, why = ops[pc]
        count += 1
        if trace:
            path.append(pc)
        # Kinds in order of frequency in real filters (loads, tests against constants, returns).
        if kind == K.LD_ABS:
            if k + 4 > len(data):
                raise InvalidProgram(f"instruction {pc}: bad load")
            A = unpack(fmt, data, k)[0]
        elif kind == K.JMP_K or kind == K.JMP_X:
            src = k if kind == K.JMP_K else X
            if op == I.JEQ:
                cond = A == src
            elif op == I.JGT:
                cond = A > src
            elif op == I.JGE:
                cond = A >= src
            else:  # JSET
                cond = bool(A & src)
            pc = jt if cond else jf
            continue
        elif kind == K.RET_K:
            return Result(k & _M32, count, path)
        elif kind == K.LD_IMM:
            A = k
        elif kind == K.ALU_K or kind == K.ALU_X:
            src = k if kind == K.ALU_K else X
            if op == I.AND:
                A &= src
            elif op == I.ADD:
                A = (A + src) & _M32
            elif op == I.SUB:
                A = (A - src) & _M32
            elif op == I.MUL:
                A = (A * src) & _M32
            elif op == I.DIV or op == I.MOD:
                if src == 0:  # the kernel's converted program returns 0 (kill thread)
                    return Result(0, count, path)
                A = A // src if op == I.DIV else A % src
            elif op == I.OR:
                A |= src
            elif op == I.XOR:
                A ^= src
            elif op == I.LSH:
                A = (A << (src & 31)) & _M32
            else:  # RSH
                A = A >> (src & 31)
        elif kind == K.JA:
            pc = jt
            continue
        elif kind == K.LD_MEM:
            A = M[k]
        elif kind == K.LDX_IMM:
            X = k
        elif kind == K.LDX_MEM:
            X = M[k]
        elif kind == K.ST:
            M[k] = A
        elif kind == K.STX:
            M[k] = X
        elif kind == K.TAX:
            X = A
        elif kind == K.TXA:
            A = X
        elif kind == K.NEG:
            A = (-A) & _M32
        elif kind == K.LD_LEN:
            A = len(data)
        elif kind == K.LDX_LEN:
            X = len(data)
        elif kind == K.RET_A:
            return Result(A & _M32, count, path)
        elif kind == K.RET_X:
            return Result(X & _M32, count, path)
        else:
            raise InvalidProgram(f"instruction {pc}: {why}")
        pc += 1


def emulate(program: Sequence[Insn], arch: object, nr: int, args: Sequence[int] = (),
            ip: int = 0, trace: bool = False) -> Result:
    """Run ``program`` for syscall ``nr`` with ``args`` as the kernel would on ``arch``.

    On 32-bit ABIs the kernel zero-extends arguments, so only their low 32 bits are passed.
    """
    from ..arch import get

    a = get(arch)  # type: ignore[arg-type]
    if a.bits == 32:
        args = tuple(x & _M32 for x in args)
        ip &= _M32
    data = SeccompData(nr, a.token, ip, tuple(args)).pack(a.byteorder)
    return run(program, data, a.byteorder, trace)
