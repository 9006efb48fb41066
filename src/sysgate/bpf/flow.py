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

from collections.abc import Sequence
from typing import NamedTuple

from . import insn as I
from .decoder import Kind as K
from .decoder import decoded
from .insn import Insn

__all__ = ["Val", "State", "analyze"]

# A value is ("d", offset) for a seccomp_data word, ("i", k) for a known constant, or None.
Val = tuple | None

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

    ops = decoded(program)
    for pc in range(n):
        st = states[pc]
        if st is None:
            continue
        kind, k, op, jt, jf, _ = ops[pc]
        if kind in (K.RET_K, K.RET_A, K.RET_X):
            continue
        if kind == K.INVALID:
            # Not executable: its class says which register is lost (a bad jump still branches).
            cls = program[pc][0] & 7
            if cls == I.JMP:
                flow(jt, st)
                flow(jf, st)
                continue
            a = None if cls in (I.LD, I.ALU, I.MISC) else st.a
            x = None if cls in (I.LDX, I.MISC) else st.x
            flow(pc + 1, State(a, x, st.mem, st.arch))
            continue
        if kind == K.JA or ((kind == K.JMP_K or kind == K.JMP_X) and jt == jf):
            flow(jt, st)
            continue
        if kind == K.JMP_K or kind == K.JMP_X:
            taken = st
            if op == I.JEQ and st.a == ("d", I.OFF_ARCH):
                # The equal branch proves the arch (like seccomp-tools' Context#eql!).
                if kind == K.JMP_X:
                    val = st.x[1] if st.x is not None and st.x[0] == "i" else None
                else:
                    val = k
                if val is not None:
                    taken = st._replace(arch=val)
            flow(jt, taken)
            flow(jf, st)
            continue
        a, x, mem = st.a, st.x, st.mem
        if kind == K.LD_ABS:
            a = ("d", k)
        elif kind == K.LD_IMM:
            a = ("i", k)
        elif kind == K.LD_LEN:
            a = ("i", I.SECCOMP_DATA_SIZE)
        elif kind == K.LD_MEM:
            a = mem[k] if k < I.BPF_MEMWORDS else None
        elif kind == K.LDX_IMM:
            x = ("i", k)
        elif kind == K.LDX_LEN:
            x = ("i", I.SECCOMP_DATA_SIZE)
        elif kind == K.LDX_MEM:
            x = mem[k] if k < I.BPF_MEMWORDS else None
        elif kind == K.ST or kind == K.STX:
            if k < I.BPF_MEMWORDS:
                mem = mem[:k] + (a if kind == K.ST else x,) + mem[k + 1:]
        elif kind == K.TAX:
            x = a
        elif kind == K.TXA:
            a = x
        else:  # ALU_K, ALU_X, NEG
            a = None
        flow(pc + 1, State(a, x, mem, st.arch))
    return states
