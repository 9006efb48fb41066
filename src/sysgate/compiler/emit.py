"""Emission: the node DAG -> a linear list of BPF instructions.

Code is laid out backwards, from the last instruction to the first, so that every jump
target already has a position when its jump is written (seccomp jumps only go forward).
A conditional jump reaches at most 255 instructions; a farther target gets a trampoline
placed right before the jump: an unconditional ``ja`` (32-bit offset), or with
:func:`reuse_returns` a copy of the return when the target is a return.
"""
from __future__ import annotations

from ..bpf import insn as I
from ..bpf.insn import Insn
from .graph import Node

MAX_JUMP = 255
# Opcode of each straight-line node kind (the node's ``op`` is or-ed in: the ALU operation).
_STEP = {"ld": I.LD | I.W | I.ABS, "alu": I.ALU | I.K, "ldi": I.LD | I.W | I.IMM, "st": I.ST,
         "ldxm": I.LDX | I.W | I.MEM, "tax": I.MISC | I.TAX, "alux": I.ALU | I.X}


def reuse_returns(ret_near: dict[int, int], value: int, here: int, limit: int) -> int | None:
    """A jump to a return goes to the nearest copy of a return of the same value already
    placed, when it is within ``limit``; a far one gets a new copy of the return right
    before the jump instead of a ``ja`` to it (one instruction either way, and one fewer
    run). Returns the copy's position, or None when a new copy must be placed.

    Sound: a return ends the program with its constant; which copy of it runs cannot
    matter. ``here`` is the number of instructions placed so far (positions count from the end).
    """
    q = ret_near.get(value)
    return q if q is not None and here - q <= limit else None


def emit(root: Node, returns_reused: bool = True) -> tuple[Insn, ...]:
    """Linear code for the DAG at ``root``; ``returns_reused`` applies :func:`reuse_returns`."""
    rev: list[Insn] = []           # instructions, last first
    pos: dict[int, int] = {}       # id(node) -> position counted from the end (last = 1)
    ret_near: dict[int, int] = {}  # return value -> position of its nearest copy

    def place(ins: Insn) -> int:
        rev.append(ins)
        return len(rev)

    def target(n: Node) -> int:
        return ret_near[n.k] if n.kind == "ret" and returns_reused else pos[id(n)]

    def reach(n: Node, limit: int) -> int:
        """Position of ``n`` or of a trampoline to it, no more than ``limit`` ahead of the next slot."""
        q = target(n)
        if len(rev) - q <= limit:
            return q
        if n.kind == "ret" and returns_reused:
            q = place(Insn(I.RET | I.RET_K, 0, 0, n.k))
            ret_near[n.k] = q
            return q
        return place(Insn(I.JMP | I.JA, 0, 0, len(rev) - q))

    # Iterative post-order: successors first, fall-through successor last so it ends up adjacent.
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        n, expanded = stack.pop()
        if id(n) in pos:
            continue
        if n.kind == "ret":
            q = reuse_returns(ret_near, n.k, len(rev), MAX_JUMP) if returns_reused else None
            if q is not None:
                pos[id(n)] = q
            else:
                pos[id(n)] = ret_near[n.k] = place(Insn(I.RET | I.RET_K, 0, 0, n.k))
            continue
        if not expanded:
            stack.append((n, True))
            if n.kind in ("jmp", "jmpx"):
                stack.append((n.f, False))  # type: ignore[arg-type]  # placed second -> adjacent
                stack.append((n.t, False))  # type: ignore[arg-type]
            else:
                stack.append((n.t, False))  # type: ignore[arg-type]
            continue
        if n.kind not in ("jmp", "jmpx"):
            nxt = n.t
            assert nxt is not None
            if target(nxt) != len(rev):
                reach(nxt, 0)  # copy of a return, or ja
            pos[id(n)] = place(Insn(_STEP[n.kind] | n.op, 0, 0, n.k))
            continue
        # conditional jump: fix the far edges with trampolines, then write it
        assert n.t is not None and n.f is not None
        qf = reach(n.f, MAX_JUMP)
        qt = reach(n.t, MAX_JUMP)
        if len(rev) - qf > MAX_JUMP:  # the t trampoline pushed f out of reach
            qf = reach(n.f, MAX_JUMP)
        here = len(rev) + 1
        src = I.X if n.kind == "jmpx" else I.K
        pos[id(n)] = place(Insn(I.JMP | n.op | src, here - qt - 1, here - qf - 1, n.k))
    rev.reverse()
    return tuple(rev)
