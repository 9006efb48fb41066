"""Forward dataflow over a classic BPF program: where A/X came from, and which arch is proven.

The disassembler needs to know, before each instruction, whether A holds a word of
``seccomp_data`` (to print ``write`` or ``ARCH_X86_64`` instead of a number) and which
architecture a dominating ``A = arch; if (A == ARCH_...)`` check has established (to pick
the syscall table and byte order). The assembler runs the same analysis on what it
assembled so that it resolves names exactly as the disassembler printed them.

Jumps in classic BPF only go forward, so one pass in program order visits every
instruction after all of its predecessors. States are joined per component: a value
that differs between incoming paths becomes unknown, like seccomp-tools' "all contexts
agree" rule.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

from . import insn as I
from .insn import Insn

__all__ = ["Val", "State", "analyze"]

# A value is ("d", offset) for a seccomp_data word, ("i", k) for a known constant, or None.
Val = Optional[tuple]

_MEM0: tuple = (None,) * I.BPF_MEMWORDS


class State(NamedTuple):
    """What is known on entry to one instruction."""

    a: Val
    x: Val
    mem: tuple
    arch: int | None  # AUDIT_ARCH token proven by an equality test on `arch`, else None


def _join(s: State, t: State) -> State:
    if s == t:
        return s
    mem = s.mem if s.mem == t.mem else tuple(m if m == n else None for m, n in zip(s.mem, t.mem))
    return State(s.a if s.a == t.a else None, s.x if s.x == t.x else None, mem,
                 s.arch if s.arch == t.arch else None)


def analyze(program: Sequence[Insn]) -> list[State | None]:
    """State before each instruction; None where no path from the entry reaches it."""
    n = len(program)
    states: list[State | None] = [None] * n
    if not n:
        return states
    states[0] = State(None, None, _MEM0, None)

    def flow(target: int, st: State) -> None:
        if target < n:
            old = states[target]
            states[target] = st if old is None else _join(old, st)

    for pc in range(n):
        st = states[pc]
        if st is None:
            continue
        code, jt, jf, k = program[pc]
        cls = code & 7
        if cls == I.RET:
            continue
        if cls == I.JMP:
            op = code & 0xF0
            if op == I.JA:
                flow(pc + 1 + k, st)
                continue
            if jt == jf:
                flow(pc + 1 + jt, st)
                continue
            taken = st
            if op == I.JEQ and st.a == ("d", I.OFF_ARCH):
                # The equal branch proves the arch (like seccomp-tools' Context#eql!).
                if code & I.X:
                    val = st.x[1] if st.x is not None and st.x[0] == "i" else None
                else:
                    val = k
                if val is not None:
                    taken = st._replace(arch=val)
            flow(pc + 1 + jt, taken)
            flow(pc + 1 + jf, st)
            continue
        a, x, mem = st.a, st.x, st.mem
        mode = code & 0xE0
        if cls == I.LD:
            if mode == I.ABS:
                a = ("d", k) if code & 0x18 == I.W else None
            elif mode == I.IMM:
                a = ("i", k)
            elif mode == I.LEN:
                a = ("i", I.SECCOMP_DATA_SIZE)
            elif mode == I.MEM:
                a = mem[k] if k < I.BPF_MEMWORDS else None
            else:
                a = None
        elif cls == I.LDX:
            if mode == I.IMM:
                x = ("i", k)
            elif mode == I.LEN:
                x = ("i", I.SECCOMP_DATA_SIZE)
            elif mode == I.MEM:
                x = mem[k] if k < I.BPF_MEMWORDS else None
            else:
                x = None
        elif cls in (I.ST, I.STX):
            if k < I.BPF_MEMWORDS:
                mem = mem[:k] + (a if cls == I.ST else x,) + mem[k + 1:]
        elif cls == I.ALU:
            a = None
        else:  # MISC
            op = code & 0xF8
            if op == I.TAX:
                x = a
            elif op == I.TXA:
                a = x
            else:
                a = x = None
        flow(pc + 1, State(a, x, mem, st.arch))
    return states
