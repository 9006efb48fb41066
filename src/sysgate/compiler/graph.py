"""The program as a DAG of nodes before it has addresses.

Lowered decisions become nodes here: loads, ALU steps, conditional jumps and returns.
Nodes are hash-consed, so identical tails (the same return, the same argument check for
two syscalls) exist once and become one piece of code. Peepholes that need the graph
(dropping a load whose word is already in A, folding a jump whose two edges agree) run
here, before emission fixes positions.
"""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from typing import Callable, Iterator

from ..bpf import insn as I
from ..policy import Condition, Op

U32 = 0xFFFFFFFF


class Node:
    __slots__ = ("kind", "k", "t", "f", "op", "key")

    def __init__(self, kind: str, op: int, k: int, t: "Node | None", f: "Node | None") -> None:
        self.kind = kind  # "ret" | "ld" | "alu" | "jmp"
        self.op = op
        self.k = k
        self.t = t  # next for ld/alu, taken edge for jmp
        self.f = f  # fall-through edge for jmp
        self.key = (kind, op, k, id(t), id(f))

    def succ(self) -> Iterator["Node"]:
        if self.t is not None:
            yield self.t
        if self.f is not None:
            yield self.f

    def __repr__(self) -> str:
        return f"<{self.kind} {self.op:#x} {self.k:#x}>"


class Graph:
    """Node factory with hash-consing."""

    def __init__(self) -> None:
        self._nodes: dict[tuple, Node] = {}

    def _make(self, kind: str, op: int, k: int, t: Node | None, f: Node | None) -> Node:
        key = (kind, op, k, id(t), id(f))
        n = self._nodes.get(key)
        if n is None:
            n = self._nodes[key] = Node(kind, op, k, t, f)
        return n

    def ret(self, value: int) -> Node:
        return self._make("ret", 0, value & U32, None, None)

    def ld(self, offset: int, nxt: Node) -> Node:
        return self._make("ld", 0, offset, nxt, None)

    def alu(self, op: int, k: int, nxt: Node) -> Node:
        return self._make("alu", op, k & U32, nxt, None)

    def jmp(self, op: int, k: int, t: Node, f: Node) -> Node:
        if t is f:
            return t
        return self._make("jmp", op, k & U32, t, f)

    # --- argument conditions -------------------------------------------------------------
    def cond(self, c: Condition, lo_off: int, hi_off: int, full: bool, t: Node, f: Node) -> Node:
        """Code that goes to ``t`` when ``c`` holds, else ``f``.

        ``full`` says the high word must be checked too (64-bit comparison on a 64-bit ABI).
        """
        if not full or c.width == 32:
            return self._cond32(c.op, c.value & U32, c.mask & U32, lo_off, t, f)
        vh, vl = c.value >> 32, c.value & U32
        if c.op is Op.NE:
            return self.cond(Condition(c.arg, Op.EQ, c.value), lo_off, hi_off, True, f, t)
        if c.op is Op.LT:
            return self.cond(Condition(c.arg, Op.GE, c.value), lo_off, hi_off, True, f, t)
        if c.op is Op.LE:
            return self.cond(Condition(c.arg, Op.GT, c.value), lo_off, hi_off, True, f, t)
        if c.op is Op.EQ:
            lo = self.ld(lo_off, self.jmp(I.JEQ, vl, t, f))
            return self.ld(hi_off, self.jmp(I.JEQ, vh, lo, f))
        if c.op in (Op.GT, Op.GE):
            lo = self.ld(lo_off, self.jmp(I.JGT if c.op is Op.GT else I.JGE, vl, t, f))
            if vh == 0:  # hi > 0 already decides "greater"
                return self.ld(hi_off, self.jmp(I.JEQ, 0, lo, t))
            if vh == U32:  # hi can't be greater
                return self.ld(hi_off, self.jmp(I.JEQ, U32, lo, f))
            return self.ld(hi_off, self.jmp(I.JGT, vh, t, self.jmp(I.JEQ, vh, lo, f)))
        # MASKED_EQ
        mh, ml = c.mask >> 32, c.mask & U32
        lo = self._cond32(Op.MASKED_EQ, vl, ml, lo_off, t, f) if ml else t
        if mh == 0:
            return lo  # lowering proved vh == 0
        return self._masked(hi_off, mh, vh, lo, f)

    def eq_set(self, values: list[int], width: int, lo_off: int, hi_off: int, full: bool, t: Node, f: Node) -> Node:
        """``arg in values`` where all values share one high word: that word is checked once."""
        node = f
        for v in reversed(values):
            node = self.jmp(I.JEQ, v & U32, t, node)
        node = self.ld(lo_off, node)
        if full and width == 64:
            node = self.ld(hi_off, self.jmp(I.JEQ, values[0] >> 32, node, f))
        return node

    def _masked(self, off: int, m: int, v: int, t: Node, f: Node) -> Node:
        if m == U32:
            return self.ld(off, self.jmp(I.JEQ, v, t, f))
        if v == 0:
            return self.ld(off, self.jmp(I.JSET, m, f, t))
        if v == m and m & (m - 1) == 0:
            return self.ld(off, self.jmp(I.JSET, m, t, f))
        return self.ld(off, self.alu(I.AND, m, self.jmp(I.JEQ, v, t, f)))

    def _cond32(self, op: Op, v: int, m: int, off: int, t: Node, f: Node) -> Node:
        if op is Op.EQ:
            return self.ld(off, self.jmp(I.JEQ, v, t, f))
        if op is Op.NE:
            return self.ld(off, self.jmp(I.JEQ, v, f, t))
        if op is Op.GT:
            return self.ld(off, self.jmp(I.JGT, v, t, f))
        if op is Op.GE:
            return self.ld(off, self.jmp(I.JGE, v, t, f))
        if op is Op.LT:
            return self.ld(off, self.jmp(I.JGE, v, f, t))
        if op is Op.LE:
            return self.ld(off, self.jmp(I.JGT, v, f, t))
        return self._masked(off, m, v, t, f)


def walk(root: Node) -> list[Node]:
    """Every node reachable from ``root``, each once, parents before children (topological)."""
    order: list[Node] = []
    seen: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        n, done = stack.pop()
        if done:
            order.append(n)
            continue
        if id(n) in seen:
            continue
        seen.add(id(n))
        stack.append((n, True))
        for s in n.succ():
            if id(s) not in seen:
                stack.append((s, False))
    order.reverse()
    return order


def drop_redundant_loads(root: Node, a_at_root: int | None, remake: Callable[[Node], None] | None = None) -> Node:
    """Bypass every load whose word is already in A on every path that reaches it.

    A holds the word last loaded; ALU steps make it unknown, jumps keep it. The meet over
    predecessors of "what A holds" is computed in topological order, then edges into
    bypassable loads are redirected to the load's successor.
    """
    order = walk(root)
    UNKNOWN = -1
    NOT_SEEN = -2
    state: dict[int, int] = {id(n): NOT_SEEN for n in order}
    state[id(root)] = UNKNOWN if a_at_root is None else a_at_root

    def meet(node: Node, val: int) -> None:
        cur = state[id(node)]
        state[id(node)] = val if cur == NOT_SEEN else (cur if cur == val else UNKNOWN)

    for n in order:
        s = state[id(n)]
        if n.kind == "ld":
            meet(n.t, n.k)  # type: ignore[arg-type]
        elif n.kind == "alu":
            meet(n.t, UNKNOWN)  # type: ignore[arg-type]
        elif n.kind == "jmp":
            meet(n.t, s)  # type: ignore[arg-type]
            meet(n.f, s)  # type: ignore[arg-type]

    def target(n: Node) -> Node:
        while n.kind == "ld" and state[id(n)] == n.k:
            n = n.t  # type: ignore[assignment]
        return n

    # Nodes are immutable keys in the hash-cons table only by identity; rewiring edges in
    # place is safe because the graph is not extended after this pass.
    for n in order:
        if n.t is not None:
            n.t = target(n.t)
        if n.f is not None:
            n.f = target(n.f)
    return target(root)
