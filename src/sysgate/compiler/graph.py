"""The program as a DAG of nodes before it has addresses.

Lowered decisions become nodes here: loads, ALU steps, conditional jumps and returns.
The optimizations that work on nodes are named functions below, each listed in
:data:`sysgate.compiler.passes.PASSES`: some choose cheaper code while nodes are made
(:func:`fold_constants`, :func:`cheaper_masked_tests`, :func:`skip_decided_high_words`,
:func:`group_equality_tests`), two rewrite each node as it is made, bottom-up
(:func:`fold_equal_branches`, :func:`share_identical_code`: identical tails exist once and
become one piece of code), one rewrites the finished DAG (:func:`drop_redundant_loads`).
A :class:`Graph` made with none of them builds the straightforward program.
"""
from __future__ import annotations

from ..bpf import insn as I
from ..errors import UserError
from ..policy import Compare, Condition, Op, Term

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

U32 = 0xFFFFFFFF


class Node:
    __slots__ = ("kind", "k", "t", "f", "op", "key")

    def __init__(self, kind: str, op: int, k: int, t: Node | None, f: Node | None) -> None:
        # "ret" | "ld" | "alu" | "jmp", and for argument-to-argument compares "ldi" (A = k),
        # "st" (M[k] = A), "ldxm" (X = M[k]), "tax" (X = A), "alux" (A op= X), "jmpx" (A op X)
        self.kind = kind
        self.op = op
        self.k = k
        self.t = t  # next for ld/alu, taken edge for jmp
        self.f = f  # fall-through edge for jmp
        self.key = (kind, op, k, id(t), id(f))

    def succ(self) -> Iterator[Node]:
        if self.t is not None:
            yield self.t
        if self.f is not None:
            yield self.f

    def __repr__(self) -> str:
        return f"<{self.kind} {self.op:#x} {self.k:#x}>"


# --- passes applied to each node as it is made (bottom-up, so to the whole DAG) -------------
def fold_equal_branches(t: Node, f: Node) -> Node | None:
    """A conditional jump whose two edges lead to the same node is that node.

    Sound: a jump changes neither A, X nor the scratch memory, so skipping a test whose
    outcome does not matter leaves every path's effect as it was. Returns the node to use
    instead of the jump, or None to keep the jump.
    """
    return t if t is f else None


def share_identical_code(table: dict[tuple, Node], node: Node) -> Node:
    """Identical nodes exist once (hash-consing): the same return, the same argument check
    for two syscalls, the same tail of two rules become one piece of code.

    Sound: what a node does is fixed by its kind, operation, constant and successors; nodes
    are made successors first, so two nodes with equal keys (successors compared by
    identity) run the same instructions to the same end from every state.
    """
    return table.setdefault(node.key, node)


# --- passes that choose cheaper code while nodes are made ---------------------------------
def fold_constants(term: Term, word: int) -> int | None:
    """The value of ``term``'s low (0) or high (1) word when no argument can change it.

    With it, words of argument expressions are computed at compile time (``x & 0`` is 0,
    ``x | 0xffffffff`` is all ones, constants combine), a compare of two such words is decided
    at compile time and an ALU step with its identity (``& 0xffffffff``, ``| 0``) is left out.
    Sound: AND and OR of 32-bit words are what the BPF ALU computes, and 0 (for AND) and
    all ones (for OR) absorb whatever the other operand holds.
    """
    if term.kind == "const":
        return (term.value >> (32 * word)) & U32
    if term.kind == "arg":
        return None
    assert term.left is not None and term.right is not None
    a, b = fold_constants(term.left, word), fold_constants(term.right, word)
    if a is not None and b is not None:
        return a & b if term.kind == "&" else a | b
    clobber = 0 if term.kind == "&" else U32
    return clobber if clobber in (a, b) else None


def cheaper_masked_tests(m: int, v: int) -> tuple[int, int, bool] | None:
    """``(A & m) == v`` in one jump instead of an AND and a jump: ``(jump op, k, swap edges)``.

    A full mask is ``A == v`` (``jeq v``); a zero value is "no bit of m set" (``jset m`` with
    the edges swapped); a one-bit mask with ``v == m`` is "that bit set" (``jset m``).
    Sound: those are the definitions of ``jeq`` and ``jset`` (``A & k != 0``). None: no such form.
    """
    if m == U32:
        return I.JEQ, v, False
    if v == 0:
        return I.JSET, m, True
    if v == m and m & (m - 1) == 0:
        return I.JSET, m, False
    return None


def skip_decided_high_words(vh: int, mask_hi: int | None) -> str | None:
    """How much of the test of one word of a 64-bit comparison can be skipped, because its
    outcome is known (``vh``: the constant's word; ``mask_hi``: the mask's word, None if no mask).

    For ``>``/``>=`` with a high word of 0, any other high word is greater, so one ``jeq 0``
    suffices ("ne-true"); with a high word of 0xffffffff none is greater ("ne-false"). For
    masked equality a word whose mask is 0 is not tested at all ("skip"): lowering has
    proved (:func:`sysgate.compiler.lower._const`) that the value's bits outside the mask
    are 0, so ``(A & 0) == 0`` always holds.
    Sound: unsigned 32-bit order and the identity above. None: test the word in full.
    """
    if mask_hi is not None:
        return "skip" if mask_hi == 0 else None
    if vh == 0:
        return "ne-true"
    if vh == U32:
        return "ne-false"
    return None


def equality_key(conds: tuple, action: object) -> tuple | None:
    """Rules that are one ``arg == value`` test can share a membership check with their neighbours."""
    if len(conds) != 1 or isinstance(conds[0], Compare) or conds[0].op is not Op.EQ:
        return None
    c = conds[0]
    return (action, c.arg, c.width, c.value >> 32)


def group_equality_tests(rules: tuple) -> list[list[tuple]]:
    """Neighbouring rules (in precedence order) that each test one argument for equality with
    a constant, with the same action and the same high word, become one group: one load,
    one high-word test, then one ``jeq`` per value ("personality(0|8|0x20000|...)").

    Sound: only neighbours are grouped, with the same action, so the first rule that matches
    still decides; the grouped test holds exactly when one of the rules' tests holds.
    """
    groups: list[list[tuple]] = []
    for conds, action in rules:
        key = equality_key(conds, action)
        if key is not None and groups and equality_key(*groups[-1][0]) == key:
            groups[-1].append((conds, action))
        else:
            groups.append([(conds, action)])
    return groups


class Graph:
    """Node factory; ``passes`` names the optimizations to apply (see :mod:`.passes`)."""

    def __init__(self, passes: frozenset[str]) -> None:
        self._nodes: dict[tuple, Node] = {}
        on = passes
        self._share = "share_identical_code" in on
        self._fold_branches = "fold_equal_branches" in on
        self._fold_constants = "fold_constants" in on
        self._cheaper_masked = "cheaper_masked_tests" in on
        self._skip_high = "skip_decided_high_words" in on

    def _make(self, kind: str, op: int, k: int, t: Node | None, f: Node | None) -> Node:
        if self._share:
            # share_identical_code, inlined for the common case (a node already made): this
            # runs for every node of every compile.
            n = self._nodes.get((kind, op, k, id(t), id(f)))
            if n is not None:
                return n
            return share_identical_code(self._nodes, Node(kind, op, k, t, f))
        return Node(kind, op, k, t, f)

    def ret(self, value: int) -> Node:
        return self._make("ret", 0, value & U32, None, None)

    def ld(self, offset: int, nxt: Node) -> Node:
        return self._make("ld", 0, offset, nxt, None)

    def alu(self, op: int, k: int, nxt: Node) -> Node:
        return self._make("alu", op, k & U32, nxt, None)

    def jmp(self, op: int, k: int, t: Node, f: Node) -> Node:
        if self._fold_branches and fold_equal_branches(t, f) is not None:
            return t
        return self._make("jmp", op, k & U32, t, f)

    def op1(self, kind: str, k: int, nxt: Node, op: int = 0) -> Node:
        """A straight-line step other than ``ld``/``alu`` (see :class:`Node`)."""
        return self._make(kind, op, k & U32, nxt, None)

    def jmpx(self, op: int, t: Node, f: Node) -> Node:
        if self._fold_branches and fold_equal_branches(t, f) is not None:
            return t
        return self._make("jmpx", op, 0, t, f)

    # --- argument-to-argument compares -----------------------------------------------------
    def compare(self, c: Compare, lo_hi: dict[int, tuple[int, int]], t: Node, f: Node) -> Node:
        """Code that goes to ``t`` when ``c`` holds, else ``f``: word by word, high word first."""
        op = c.op
        if op is Op.NE:
            op, t, f = Op.EQ, f, t
        elif op is Op.LT:
            op, t, f = Op.GE, f, t
        elif op is Op.LE:
            op, t, f = Op.GT, f, t
        jop = {Op.EQ: I.JEQ, Op.GT: I.JGT, Op.GE: I.JGE}[op]
        if c.width == 32 and op is not Op.EQ and c.right.kind == "const":
            low_bits = self._low_bits(c.left)
            if low_bits is not None:
                i, m = low_bits
                return self._masked_order(lo_hi[i][0], m, c.right.value & U32, op is Op.GT, t, f)
        low = self._cmp_word(jop, c.left, c.right, 0, lo_hi, t, f)
        if c.width == 32:
            return low
        if op is Op.EQ:
            return self._cmp_word(I.JEQ, c.left, c.right, 1, lo_hi, low, f)
        # Greater in the high word decides; equal high words leave it to the low word.
        equal_hi = self._cmp_word(I.JEQ, c.left, c.right, 1, lo_hi, low, f)
        return self._cmp_word(I.JGT, c.left, c.right, 1, lo_hi, t, equal_hi)

    @staticmethod
    def _low_bits(term: Term) -> tuple[int, int] | None:
        """(argument, m) when ``term`` is ``arg & m`` with ``m`` a run of low bits (0xffff: how a
        16-bit argument is read), else None."""
        if term.kind != "&" or term.left is None or term.right is None:
            return None
        a, k = (term.left, term.right) if term.right.kind == "const" else (term.right, term.left)
        if a.kind != "arg" or k.kind != "const" or not 0 < k.value <= U32 or k.value & (k.value + 1):
            return None
        return a.value, k.value

    def _masked_order(self, off: int, m: int, v: int, strict: bool, t: Node, f: Node) -> Node:
        """``(word & m) > v`` (``strict``) or ``>= v``, for ``m`` a run of low bits, as masked-equal
        tests only (no ordering jump on a computed value, which ``explain`` could not export):
        ``x < v`` holds exactly when, for some bit k set in v, x has k clear and agrees with v above
        it; those cases are disjoint, each one ``(word & M) == P`` (a ``jset`` when P is 0). ``x >= v``
        is the same with the bits clear in v, or x == v: the shorter list is tested."""
        if strict:
            v += 1
        if v == 0:
            return t
        if v > m:
            return f
        bits = range(m.bit_length())
        ones = [k for k in bits if v >> k & 1]
        zeros = [k for k in bits if not v >> k & 1]
        if len(ones) <= len(zeros) + 1:
            node = t  # not below v
            for k in ones:
                high = m & ~((1 << (k + 1)) - 1)
                node = self._masked(off, high | 1 << k, v & high, f, node)
            return node
        node = f  # neither above nor equal to v
        for k in zeros:
            high = m & ~((1 << (k + 1)) - 1)
            node = self._masked(off, high | 1 << k, v & high | 1 << k, t, node)
        return self._masked(off, m, v, t, node)

    def _wconst(self, term: Term, word: int) -> int | None:
        """``term``'s word when known at compile time: by :func:`fold_constants`, else only a literal."""
        if self._fold_constants:
            return fold_constants(term, word)
        return (term.value >> (32 * word)) & U32 if term.kind == "const" else None

    def _cmp_word(self, jop: int, left: Term, right: Term, word: int, lo_hi: dict[int, tuple[int, int]],
                  t: Node, f: Node) -> Node:
        lc, rc = self._wconst(left, word), self._wconst(right, word)
        if lc is not None and rc is not None and self._fold_constants:
            holds = {I.JEQ: lc == rc, I.JGT: lc > rc, I.JGE: lc >= rc}[jop]
            return t if holds else f
        if lc is not None and rc is None:  # constant on the left: mirror the test
            if jop == I.JEQ:
                return self._cmp_word(jop, right, left, word, lo_hi, t, f)
            # c > R  <=>  not R >= c;  c >= R  <=>  not R > c
            return self._cmp_word(I.JGE if jop == I.JGT else I.JGT, right, left, word, lo_hi, f, t)
        if rc is not None:
            return self._load(left, word, 0, lo_hi, self.jmp(jop, rc, t, f))
        test = self.jmpx(jop, t, f)
        if left.kind == "arg":
            return self._load(right, word, 0, lo_hi, self.op1("tax", 0, self._load(left, word, 0, lo_hi, test)))
        return self._spill(right, left, word, 0, lo_hi, test)

    def _spill(self, first: Term, then: Term, word: int, sp: int, lo_hi: dict[int, tuple[int, int]],
               nxt: Node) -> Node:
        """A = ``first``; M[sp] = A; A = ``then``; X = M[sp]; then ``nxt`` (which uses A and X)."""
        if sp >= I.BPF_MEMWORDS:
            raise UserError(f"argument expression needs more than {I.BPF_MEMWORDS} words of scratch memory")
        rest = self._load(then, word, sp + 1, lo_hi, self.op1("ldxm", sp, nxt))
        return self._load(first, word, sp, lo_hi, self.op1("st", sp, rest))

    def _load(self, term: Term, word: int, sp: int, lo_hi: dict[int, tuple[int, int]], nxt: Node) -> Node:
        """Code that puts ``term``'s word in A (scratch words from ``sp`` up are free), then ``nxt``."""
        v = self._wconst(term, word)
        if v is not None:
            return self.op1("ldi", v, nxt)
        if term.kind == "arg":
            return self.ld(lo_hi[term.value][word], nxt)
        assert term.left is not None and term.right is not None
        left, right = term.left, term.right
        op = I.AND if term.kind == "&" else I.OR
        lc, rc = self._wconst(left, word), self._wconst(right, word)
        if lc is not None:
            left, right, lc, rc = right, left, rc, lc
        if rc is not None:
            if rc == (U32 if op == I.AND else 0) and self._fold_constants:  # identity
                return self._load(left, word, sp, lo_hi, nxt)
            return self._load(left, word, sp, lo_hi, self.alu(op, rc, nxt))
        step = self.op1("alux", 0, nxt, op)
        if left.kind == "arg":
            return self._load(right, word, sp, lo_hi, self.op1("tax", 0, self.ld(lo_hi[left.value][word], step)))
        return self._spill(right, left, word, sp, lo_hi, step)

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
            skip = skip_decided_high_words(vh, None) if self._skip_high else None
            if skip == "ne-true":  # hi > 0 already decides "greater"
                return self.ld(hi_off, self.jmp(I.JEQ, 0, lo, t))
            if skip == "ne-false":  # hi can't be greater
                return self.ld(hi_off, self.jmp(I.JEQ, U32, lo, f))
            return self.ld(hi_off, self.jmp(I.JGT, vh, t, self.jmp(I.JEQ, vh, lo, f)))
        # MASKED_EQ
        mh, ml = c.mask >> 32, c.mask & U32
        skip_lo = self._skip_high and skip_decided_high_words(vl, ml) == "skip"
        lo = t if skip_lo else self._cond32(Op.MASKED_EQ, vl, ml, lo_off, t, f)
        if self._skip_high and skip_decided_high_words(vh, mh) == "skip":
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
        one = cheaper_masked_tests(m, v) if self._cheaper_masked else None
        if one is not None:
            jop, k, swap = one
            return self.ld(off, self.jmp(jop, k, f, t) if swap else self.jmp(jop, k, t, f))
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
    Sound: the seccomp data a filter reads does not change while it runs, so loading a word
    that A already holds on every path leaves A, X and the memory as they were.
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
        elif n.kind in ("alu", "alux", "ldi"):
            meet(n.t, UNKNOWN)  # type: ignore[arg-type]
        elif n.kind in ("st", "ldxm", "tax"):  # A unchanged
            meet(n.t, s)  # type: ignore[arg-type]
        elif n.kind in ("jmp", "jmpx"):
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
