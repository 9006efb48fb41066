"""Exact symbolic execution of classic BPF seccomp programs.

The input of a filter is ``struct seccomp_data``: sixteen 32-bit words (``nr``, ``arch``,
the two halves of ``instruction_pointer`` and of each of the six arguments). Every path
through the program is followed with the words left symbolic: A, X and scratch memory hold
expressions (:data:`Expr`) over the words, and each conditional jump splits the current
set of inputs in two. A path ends in a :class:`Leaf`: a :class:`~.domain.WordSet` per
constrained word, the conditions that could not be turned into word sets (``opaque``),
and the returned value (a constant, or an expression for ``ret A``).

Conditions are turned into exact word sets whenever the compared value is a single word
transformed by constant ALU steps (``A = args[0]; A &= 0x7e020000; A == 0``,
``A = nr * 1471 - 0x31337``, shifts, negation, division ...). Otherwise, if the word can
only take a few values on that path, the values are split one by one; and only if neither
works is the condition kept verbatim as an opaque condition, evaluated exactly but not
reasoned about. The leaves partition the input space: every possible ``seccomp_data``
satisfies exactly one of them, and :func:`decide` on it gives what the kernel returns.

Paths are not followed one by one: jumps only go forward, so instructions are visited in
program order, and the paths that reach one in the same *live* machine state (A, X and the
scratch words that may still be read, plus the stacked result so far; see :func:`liveness`)
go on as one group, their conditions a union of regions. The two sides of a split that meet
again in one group are their parent path again, exactly. So k independent tests that re-join
cost k paths, not 2^k; programs whose paths carry different values to the end (a counter of
true tests) have no small exact account, and are refused past :data:`MAX_STEPS` units of
work or :data:`MAX_LEAVES` leaves, deterministically and in well under a second.

Stacked filters (several installed in one process) are executed one after the other on
the same path, and their results combined the way the kernel does (the lowest action
value wins; between equal actions the most recently installed filter's data wins).
"""
from __future__ import annotations

import heapq
import random
from collections.abc import Sequence

from ..bpf import insn as I
from ..bpf.decoder import Kind as K
from ..bpf.decoder import decoded
from ..bpf.insn import Insn
from ..errors import UserError
from .domain import FULL_WORD, M32, WordSet, iv_norm, iv_not, iv_shift

__all__ = ["AnalysisError", "Expr", "Leaf", "Execution", "execute", "evaluate", "words_of", "decide_ret", "subst", "mk",
           "cmp", "WORD_NR", "WORD_ARCH", "combine_stack", "action_kind", "liveness", "witness", "MAX_LEAVES",
           "MAX_STEPS"]

WORD_NR = 0
WORD_ARCH = 1

# An expression: an int constant, ("w", i) for word i of seccomp_data, ("op", ALU_OP, a, b)
# with b an expression or int, ("neg", a), or ("pick", newer, older) for a stacked result.
Expr = int | tuple

#: Most paths (leaves) one analysis keeps before refusing (AnalysisError, a ValueError): tables
#: and text cost about 0.15 ms per leaf, and an exact account of thousands of unrelated paths is
#: not useful. Compiled programs have about one leaf per instruction (docker-default for three
#: arches: 311; 4,085 instructions of argument rules: 3,856), so this is the kernel's own limit.
MAX_LEAVES = 4096
#: Most work units (an instruction run for one group of paths, or one path split) before refusing:
#: 4,085 instructions of argument rules take 8,744, docker-default for three arches 619. Programs
#: whose paths carry different values to the end (a counter of true tests) are refused here,
#: in well under a second, instead of after 2^k paths.
MAX_STEPS = 16_384
SPLIT_LIMIT = 64  # a word with at most this many possible values is split value by value


class AnalysisError(UserError):  # a ValueError
    """The program cannot be analysed (invalid, or too many paths)."""


# ---------------------------------------------------------------------------- expressions

def _fold(op: int, a: int, b: int) -> int:
    if op == I.ADD:
        return (a + b) & M32
    if op == I.SUB:
        return (a - b) & M32
    if op == I.MUL:
        return (a * b) & M32
    if op == I.DIV:
        return a // b
    if op == I.MOD:
        return a % b
    if op == I.OR:
        return a | b
    if op == I.AND:
        return a & b
    if op == I.XOR:
        return a ^ b
    if op == I.LSH:
        return (a << (b & 31)) & M32
    if op == I.RSH:
        return a >> (b & 31)
    raise AnalysisError(f"bad ALU operation {op:#x}")


def _affine(e: Expr) -> tuple[tuple, int, int] | None:
    """``e == m * w + c (mod 2^32)`` as (w, m, c) for a word w, if e has that canonical form."""
    if isinstance(e, int):
        return None
    if e[0] == "w":
        return e, 1, 0
    if e[0] == "op":
        if e[1] == I.MUL and isinstance(e[3], int) and e[2][0] == "w":
            return e[2], e[3], 0
        if e[1] == I.ADD and isinstance(e[3], int):
            inner = _affine(e[2])
            if inner is not None and inner[2] == 0:
                return inner[0], inner[1], e[3]
    return None


def _build_affine(w: tuple, m: int, c: int) -> Expr:
    m &= M32
    c &= M32
    if m == 0:
        return c
    x: Expr = w if m == 1 else ("op", I.MUL, w, m)
    return x if c == 0 else ("op", I.ADD, x, c)


def mk(op: int, a: Expr, b: Expr) -> Expr:
    """``a OP b`` (``b`` ignored for NEG), folded and simplified. Division by zero is the caller's."""
    if op == I.NEG:
        if isinstance(a, int):
            return (-a) & M32
        aff = _affine(a)
        if aff is not None:
            return _build_affine(aff[0], -aff[1], -aff[2])
        if a[0] == "neg":
            return a[1]
        return ("neg", a)
    if isinstance(a, int) and isinstance(b, int):
        return _fold(op, a, b)
    if op in (I.ADD, I.SUB, I.MUL, I.LSH):
        fa = _affine(a)
        if isinstance(b, int):
            if fa is not None:
                w, m, c = fa
                if op == I.ADD:
                    return _build_affine(w, m, c + b)
                if op == I.SUB:
                    return _build_affine(w, m, c - b)
                if op == I.MUL:
                    return _build_affine(w, m * b, c * b)
                s = b & 31
                return _build_affine(w, m << s, c << s)
            if (op in (I.ADD, I.SUB) and b == 0) or (op == I.LSH and b & 31 == 0) or (op == I.MUL and b == 1):
                return a
            if op == I.MUL and b == 0:
                return 0
        elif op in (I.ADD, I.SUB):
            fb = _affine(b)
            if isinstance(a, int) and fb is not None:
                w, m, c = fb
                return _build_affine(w, m, a + c) if op == I.ADD else _build_affine(w, -m, a - c)
            if fa is not None and fb is not None and fa[0] == fb[0]:
                s = 1 if op == I.ADD else -1
                return _build_affine(fa[0], fa[1] + s * fb[1], fa[2] + s * fb[2])
    if isinstance(b, int):
        if op == I.AND:
            if b == M32:
                return a
            if b == 0:
                return 0
            if isinstance(a, tuple) and a[0] == "op" and a[1] == I.AND and isinstance(a[3], int):
                return mk(I.AND, a[2], a[3] & b)
            if isinstance(a, tuple) and a[0] == "op" and a[1] == I.OR and isinstance(a[3], int):
                return mk(I.OR, mk(I.AND, a[2], b), a[3] & b)
        elif op == I.OR:
            if b == 0:
                return a
            if b == M32:
                return M32
            if isinstance(a, tuple) and a[0] == "op" and a[1] == I.OR and isinstance(a[3], int):
                return mk(I.OR, a[2], a[3] | b)
        elif op == I.XOR:
            if b == 0:
                return a
            if isinstance(a, tuple) and a[0] == "op" and a[1] == I.XOR and isinstance(a[3], int):
                return mk(I.XOR, a[2], a[3] ^ b)
        elif op == I.RSH and b & 31 == 0:
            return a
        elif op == I.DIV and b == 1:
            return a
    return ("op", op, a, b)


def subst(e: Expr, values: dict[int, int]) -> Expr:
    """``e`` with words in ``values`` replaced by constants (simplified)."""
    if isinstance(e, int):
        return e
    tag = e[0]
    if tag == "w":
        return values.get(e[1], e)
    if tag == "op":
        a, b = subst(e[2], values), subst(e[3], values)
        if e[1] in (I.DIV, I.MOD) and b == 0:
            return e  # unreachable in practice: such paths returned 0 earlier
        return mk(e[1], a, b)
    if tag == "neg":
        return mk(I.NEG, subst(e[1], values), 0)
    a, b = subst(e[1], values), subst(e[2], values)
    return combine_stack(a, b) if isinstance(a, int) and isinstance(b, int) else ("pick", a, b)


def words_of(e: Expr) -> frozenset[int]:
    if isinstance(e, int):
        return frozenset()
    if e[0] == "w":
        return frozenset((e[1],))
    if e[0] == "op":
        return words_of(e[2]) | words_of(e[3])
    if e[0] == "neg":
        return words_of(e[1])
    return words_of(e[1]) | words_of(e[2])  # pick


def evaluate(e: Expr, words: Sequence[int]) -> int:
    """Value of ``e`` when seccomp_data's words are ``words`` (the kernel's 32-bit arithmetic)."""
    if isinstance(e, int):
        return e
    tag = e[0]
    if tag == "w":
        return words[e[1]]
    if tag == "op":
        a = evaluate(e[2], words)
        b = evaluate(e[3], words)
        return _fold(e[1], a, b)  # a divisor here is never 0: paths where it is end earlier
    if tag == "neg":
        return (-evaluate(e[1], words)) & M32
    return combine_stack(evaluate(e[1], words), evaluate(e[2], words))


def combine_stack(newer: int, older: int) -> int:
    """The kernel's choice between two stacked filters' results (``seccomp_run_filters``)."""
    def act(r: int) -> int:
        a = r & 0xFFFF0000
        return a - (1 << 32) if a & 0x80000000 else a
    return older if act(older) < act(newer) else newer


def _chain(e: Expr) -> tuple[int, list[tuple[int, int | None]]] | None:
    """(word, [(op, k), ...] innermost first) if ``e`` is one word through constant ALU steps."""
    ops: list[tuple[int, int | None]] = []
    while not isinstance(e, int):
        if e[0] == "w":
            ops.reverse()
            return e[1], ops
        if e[0] == "neg":
            ops.append((I.NEG, None))
            e = e[1]
        elif e[0] == "op" and isinstance(e[3], int):
            ops.append((e[1], e[3]))
            e = e[2]
        else:
            return None
    return None


# ---------------------------------------------------------------------------- constraints
# A constraint on a 32-bit value: True, False, ("in", intervals), ("meq", m, v): value & m == v,
# ("mne", m, v): value & m != v.

def _c_in(ivs: tuple) -> object:
    if not ivs:
        return False
    if ivs == ((0, M32),):
        return True
    return ("in", ivs)


def _neg(c: object) -> object:
    if c is True or c is False:
        return not c
    if c[0] == "in":  # type: ignore[index]
        return _c_in(iv_not(c[1]))  # type: ignore[index]
    return ("mne" if c[0] == "meq" else "meq", c[1], c[2])  # type: ignore[index]


def _to_bits(c: object) -> object:
    if isinstance(c, tuple) and c[0] == "in":
        ivs = c[1]
        if len(ivs) == 1 and ivs[0][0] == ivs[0][1]:
            return ("meq", M32, ivs[0][0])
        co = iv_not(ivs)
        if len(co) == 1 and co[0][0] == co[0][1]:
            return ("mne", M32, co[0][0])
    return c


def _to_in(c: object) -> object:
    if isinstance(c, tuple) and c[0] != "in" and c[1] == M32:
        pt = ((c[2], c[2]),)
        return _c_in(pt if c[0] == "meq" else iv_not(pt))
    return c


def _low_contig(m: int) -> bool:
    return m != 0 and m & (m + 1) == 0


def _solve_mul(k: int, v: int, n: int) -> object:
    """``y * k == v (mod 2^n)`` as a constraint on y."""
    mod = 1 << n
    k %= mod
    v %= mod
    if k == 0:
        return v == 0
    t = (k & -k).bit_length() - 1
    if v % (1 << t):
        return False
    n2 = n - t
    if n2 == 0:
        return True
    mod2 = 1 << n2
    y = ((v >> t) * pow(k >> t, -1, mod2)) % mod2
    return ("meq", mod2 - 1, y)


def _pull(op: int, k: int | None, c: object) -> object | None:
    """Constraint on y from a constraint on ``op(y, k)``; None if not expressible exactly."""
    if c is True or c is False:
        return c
    if op in (I.AND, I.OR, I.XOR, I.LSH):
        assert k is not None  # a binary operator: the constant operand is known
        c = _to_bits(c)
        if c[0] == "in":  # type: ignore[index]
            return None
        kind: str  # a bit constraint: (kind, mask, value)
        m: int
        v: int
        kind, m, v = c  # type: ignore[misc]
        if op == I.XOR:
            return (kind, m, (v ^ k) & m)
        if op == I.AND:
            bad, keep = v & m & ~k, m & k
        elif op == I.OR:
            bad, keep = (m & k) & ~v, m & ~k
        else:  # LSH
            k &= 31  # the kernel shifts by X & 31 (a huge k: a huge int here)
            low = (1 << k) - 1
            m2, v2 = m >> k, v >> k
            if v & m & low:
                return kind == "mne"
            if not m2:
                return kind == "meq"
            return (kind, m2, v2)
        if bad:
            return kind == "mne"
        if not keep:
            return kind == "meq"
        return (kind, keep, v & keep)
    if op == I.RSH:
        s = k & 31  # type: ignore[operator]
        top = M32 >> s
        c2 = _to_in(c)
        if c2 is True or c2 is False:
            return c2
        if c2[0] == "in":  # type: ignore[index]
            out = []
            for lo, hi in c2[1]:  # type: ignore[index]
                if lo > top:
                    continue
                out.append((lo << s, (min(hi, top) << s) | ((1 << s) - 1)))
            return _c_in(iv_norm(out))
        kind, m, v = c2  # type: ignore[misc]
        if v & ~top:
            return kind == "mne"
        m &= top
        if not m:
            return kind == "meq"
        return (kind, (m << s) & M32, (v << s) & M32)
    if op in (I.ADD, I.SUB, I.NEG):
        c2 = _to_in(c)
        if c2[0] == "in":  # type: ignore[index]
            ivs = c2[1]  # type: ignore[index]
            if op == I.NEG:
                out = []
                for lo, hi in ivs:
                    if lo == 0:
                        out.append((0, 0))
                        lo = 1
                    if lo <= hi:
                        out.append(((-hi) & M32, (-lo) & M32))
                return _c_in(iv_norm(out))
            assert k is not None  # ADD and SUB have a constant operand
            d = -k if op == I.ADD else k
            return _c_in(iv_shift(ivs, d))
        kind, m, v = c2  # type: ignore[misc]
        if not _low_contig(m):
            return None
        if op == I.NEG:
            return (kind, m, (-v) & m)
        assert k is not None  # ADD and SUB have a constant operand
        d = -k if op == I.ADD else k
        return (kind, m, (v + d) & m)
    if op == I.MUL:
        c2 = _to_bits(c)
        if c2[0] == "in":  # type: ignore[index]
            return None
        kind, m, v = c2  # type: ignore[misc]
        if not _low_contig(m):
            return None
        sol = _solve_mul(k, v, m.bit_length())  # type: ignore[arg-type]
        return sol if kind == "meq" else _neg(sol)
    if op == I.DIV:
        c2 = _to_in(c)
        if c2[0] != "in":  # type: ignore[index]
            return None
        out = []
        for lo, hi in c2[1]:  # type: ignore[index]
            a = lo * k
            if a > M32:
                continue
            out.append((a, min(M32, hi * k + k - 1)))
        return _c_in(iv_norm(out))
    return None  # MOD


def _apply(ws: WordSet, c: object) -> WordSet | None:
    if c is True:
        return ws
    if c is False:
        return None
    if c[0] == "in":  # type: ignore[index]
        return ws.restrict(c[1])  # type: ignore[index]
    if c[0] == "meq":  # type: ignore[index]
        return ws.with_fixed(c[1], c[2])  # type: ignore[index]
    return ws.with_ne(c[1], c[2])  # type: ignore[index]


def cmp(op: int, a: int, b: int) -> bool:
    """The jump condition ``op`` (JEQ/JGT/JGE/JSET) on two values."""
    return _cmp(op, a, b)


def _cmp(op: int, a: int, b: int) -> bool:
    if op == I.JEQ:
        return a == b
    if op == I.JGT:
        return a > b
    if op == I.JGE:
        return a >= b
    return bool(a & b)


def _atom_constraint(op: int, k: int) -> object:
    if op == I.JEQ:
        return ("in", ((k, k),))
    if op == I.JGT:
        return _c_in(((k + 1, M32),) if k < M32 else ())
    if op == I.JGE:
        return _c_in(((k, M32),))
    return False if k == 0 else ("mne", k, 0)


def known_bits(e: Expr, doms: dict[int, WordSet]) -> tuple[int, int]:
    """(mask, value): the bits of ``e`` that are the same for every input in ``doms``.

    Exact facts only (a bit is reported known when it cannot vary); used to decide comparisons
    on values the constraint pull-back cannot handle, e.g. ``(args[0] & 0xff) | 0x50000 > 0xffff``.
    """
    if isinstance(e, int):
        return M32, e
    tag = e[0]
    if tag == "w":
        ws = doms.get(e[1])
        if ws is None:
            return 0, 0
        lo, hi = ws.first(), ws.last()
        if lo is None:
            return 0, 0
        n = (lo ^ hi).bit_length()
        pm = M32 & ~((1 << n) - 1)  # the common prefix of the smallest and largest member
        return ws.fmask | pm, (ws.fval & ws.fmask) | (lo & pm)
    if tag == "neg":
        m, v = known_bits(e[1], doms)
        return (M32, (-v) & M32) if m == M32 else (0, 0)
    if tag != "op":
        return 0, 0
    op = e[1]
    am, av = known_bits(e[2], doms)
    bm, bv = known_bits(e[3], doms)
    if am == M32 and bm == M32:
        if op in (I.DIV, I.MOD) and bv == 0:
            return 0, 0
        return M32, _fold(op, av, bv)
    if op == I.AND:
        zero = (am & ~av) | (bm & ~bv)
        one = am & av & bm & bv
        return (zero | one) & M32, one
    if op == I.OR:
        one = (am & av) | (bm & bv)
        zero = am & ~av & bm & ~bv
        return (zero | one) & M32, one
    if op == I.XOR:
        m = am & bm
        return m, (av ^ bv) & m
    if op in (I.LSH, I.RSH) and bm == M32:
        sh = bv & 31
        if op == I.LSH:
            return ((am << sh) | ((1 << sh) - 1)) & M32, (av << sh) & M32
        return (am >> sh) | (~(M32 >> sh) & M32), av >> sh
    return 0, 0


def _decided(op: int, e: Expr, k: int, doms: dict[int, WordSet]) -> bool | None:
    """The comparison ``e OP k`` if the known bits of ``e`` settle it, else None."""
    m, v = known_bits(e, doms)
    if not m:
        return None
    lo, hi = v, v | (~m & M32)
    if op == I.JEQ:
        if (k & m) != v:
            return False
        return True if m == M32 else None
    if op == I.JGT:
        return True if lo > k else (False if hi <= k else None)
    if op == I.JGE:
        return True if lo >= k else (False if hi < k else None)
    if v & k:
        return True
    return False if not k & ~(m & ~v) else None


# ---------------------------------------------------------------------------- execution

class Leaf:
    """One path to a return: the inputs it covers and what is returned.

    ``doms`` maps word index -> WordSet for constrained words (others are unconstrained);
    ``opaque`` holds conditions ``(op, lhs, rhs, truth)`` meaning ``cmp(op, lhs, rhs) == truth``;
    ``ret`` is the returned value (int, or an expression). ``unverified`` is set when opaque
    conditions were kept without finding a witness input (the leaf may be empty).
    """

    __slots__ = ("doms", "opaque", "ret", "unverified", "kind")

    def __init__(self, doms: dict[int, WordSet], opaque: tuple, ret: Expr, unverified: bool = False,
                 kind: int | None = None) -> None:
        self.doms = doms
        self.opaque = opaque
        self.ret = ret
        self.unverified = unverified
        # The action (its RET_* base value) when ``ret`` is computed but its kind is known.
        self.kind = action_kind(ret) if isinstance(ret, int) else kind

    def dom(self, w: int) -> WordSet:
        return self.doms.get(w, FULL_WORD)

    def holds(self, words: Sequence[int]) -> bool:
        for w, ws in self.doms.items():
            if not ws.contains(words[w]):
                return False
        return all(_cmp(op, evaluate(a, words), evaluate(b, words)) == t for op, a, b, t in self.opaque)

    def __repr__(self) -> str:
        return f"Leaf({self.doms}, opaque={self.opaque}, ret={self.ret!r})"


def witness(doms: dict[int, WordSet], opaque: tuple, seed: int = 0, tries: int = 400) -> list[int] | None:
    """Some input satisfying ``doms`` and ``opaque``, or None if none was found by sampling."""
    base = [0] * 16
    cands: dict[int, list[int]] = {}
    involved: set[int] = set(doms)
    for _op, a, b, _ in opaque:
        involved |= words_of(a) | words_of(b)
    rng = random.Random(seed)
    for w in involved:
        ws = doms.get(w, FULL_WORD)
        lst = list(ws.samples())
        for _ in range(6):
            r = ws.first(rng.randrange(M32 + 1))
            if r is not None:
                lst.append(r)
        cands[w] = lst or [ws.first() or 0]
    for w in involved:
        base[w] = cands[w][0]
    order = sorted(involved)
    for i in range(tries):
        words = list(base)
        if i:
            for w in order:
                words[w] = cands[w][i % len(cands[w])] if i < 16 else rng.choice(cands[w])
        if all(_cmp(op, evaluate(a, words), evaluate(b, words)) == t for op, a, b, t in opaque):
            return words
    return None


class Execution:
    """The result of :func:`execute`: the leaves and, per filter, the instructions no input reaches."""

    __slots__ = ("leaves", "reached", "lengths", "byteorder")

    def __init__(self, leaves: list[Leaf], reached: list[set[int]], lengths: list[int], byteorder: str) -> None:
        self.leaves = leaves
        self.reached = reached
        self.lengths = lengths
        self.byteorder = byteorder

    def unreachable(self) -> list[list[int]]:
        return [[pc for pc in range(n) if pc not in r] for r, n in zip(self.reached, self.lengths)]


#: Witness-search tries (each evaluates a path's opaque conditions once) one :func:`execute` may
#: spend. Past it, new opaque paths are kept unverified without a search: never dropped, so
#: the result stays exact, only flagged; this bounds the time on programs full of computed tests.
WITNESS_BUDGET = 20000


class _Path:
    """Input constraints of one path: word sets, opaque conditions, and an input known to take
    the path (``wit``; None if none known), which often settles the next split without search."""

    __slots__ = ("doms", "opaque", "unverified", "wit", "budget", "parent", "side", "cond")

    def __init__(self, doms: dict[int, WordSet], opaque: tuple, unverified: bool, wit: list[int] | None = None,
                 budget: list[int] | None = None) -> None:
        self.doms = doms
        self.opaque = opaque
        self.unverified = unverified
        self.wit = wit
        self.budget = budget
        # The path this one is a side of (``side`` 1: the condition held), when a split made it:
        # both sides meeting again in one state are that path again (see :func:`_join`).
        self.parent: _Path | None = None
        self.side = 0
        self.cond: tuple | None = None  # the split's test (op, lhs, rhs), for :func:`_join_cousins`


def _split(path: _Path, op: int, lhs: Expr, rhs: Expr, seed: int) -> tuple[_Path | None, _Path | None]:
    """The paths where ``cmp(op, lhs, rhs)`` is true and false (None: no input takes it)."""
    if isinstance(lhs, int) and isinstance(rhs, int):
        return (path, None) if _cmp(op, lhs, rhs) else (None, path)
    # Put the symbolic side on the left, against a constant where possible.
    flip = False
    if isinstance(lhs, int):
        if op == I.JEQ or op == I.JSET:
            lhs, rhs = rhs, lhs
        elif op == I.JGT:  # k > e  <=>  not (e >= k)
            lhs, rhs, op, flip = rhs, lhs, I.JGE, True
        else:  # k >= e  <=>  not (e > k)
            lhs, rhs, op, flip = rhs, lhs, I.JGT, True
    if not isinstance(rhs, int):
        if op == I.JEQ:
            d = mk(I.SUB, lhs, rhs)
            if isinstance(d, int) or len(words_of(d)) <= 1:
                lhs, rhs = d, 0
        elif op == I.JSET:
            lhs, rhs, op, flip = mk(I.AND, lhs, rhs), 0, I.JEQ, not flip
    t, f = _split_norm(path, op, lhs, rhs, seed)
    return (f, t) if flip else (t, f)


def _split_norm(path: _Path, op: int, lhs: Expr, rhs: Expr, seed: int) -> tuple[_Path | None, _Path | None]:
    if isinstance(lhs, int) and isinstance(rhs, int):
        return (path, None) if _cmp(op, lhs, rhs) else (None, path)
    if isinstance(rhs, int):
        ch = _chain(lhs)
        if ch is not None:
            w, ops = ch
            ct = _atom_constraint(op, rhs)
            cf = _neg(ct)
            for o, k in reversed(ops):
                if ct is not None:
                    ct = _pull(o, k, ct)
                if cf is not None:
                    cf = _pull(o, k, cf)
            if ct is not None and cf is not None:
                ws = path.doms.get(w, FULL_WORD)
                return _with(path, w, _apply(ws, ct)), _with(path, w, _apply(ws, cf))
            # Few possible values: split them one by one (exact).
            ws = path.doms.get(w, FULL_WORD)
            vals = ws.members(SPLIT_LIMIT)
            if vals is not None:
                words = [0] * 16
                yes: list[tuple[int, int]] = []
                no: list[tuple[int, int]] = []
                for v in vals:
                    words[w] = v
                    (yes if _cmp(op, evaluate(lhs, words), rhs) else no).append((v, v))
                return (_with(path, w, ws.restrict(iv_norm(yes))) if yes else None,
                        _with(path, w, ws.restrict(iv_norm(no))) if no else None)
    if isinstance(rhs, int):
        got = _decided(op, lhs, rhs, path.doms)
        if got is not None:
            return (path, None) if got else (None, path)
    # Keep it as an opaque condition, on both sides.
    out = []
    held = None
    if path.wit is not None:  # the input known to take this path decides one side already
        held = _cmp(op, evaluate(lhs, path.wit), evaluate(rhs, path.wit))
    budget = path.budget
    for truth in (True, False):
        opq = path.opaque + ((op, lhs, rhs, truth),)
        unverified = path.unverified
        if held is truth:
            wit = path.wit
        elif budget is None or budget[0] > 0:
            tries = 400 if budget is None else min(400, budget[0])
            wit = witness(path.doms, opq, seed, tries)
            if budget is not None:
                budget[0] -= tries if wit is None else 1
        else:
            wit = None
        if wit is None:
            # Could not show an input exists; keep the path (never drop a possible one).
            unverified = True
        out.append(_Path(path.doms, opq, unverified, wit, budget))
    return out[0], out[1]


def _with(path: _Path, w: int, ws: WordSet | None) -> _Path | None:
    if ws is None:
        return None
    if path.doms.get(w) is ws:
        return path
    doms = dict(path.doms)
    if ws.is_full:
        doms.pop(w, None)
    else:
        doms[w] = ws
    wit = path.wit if path.wit is not None and ws.contains(path.wit[w]) else None
    return _Path(doms, path.opaque, path.unverified, wit, path.budget)


def liveness(prog: Sequence[Insn]) -> list[int]:
    """Per pc, what the instructions from there on may read before writing it: bit 0 for A,
    bit 1 for X, bit 2 + i for scratch word M[i] (a bit mask, plus one entry past the end).

    Jumps only go forward, so one backward pass is exact. Two paths that reach a pc with
    states equal on its live part behave alike from there on, so they can be followed as one.
    """
    ops = decoded(prog)
    n = len(ops)
    live = [0] * (n + 1)
    for pc in range(n - 1, -1, -1):
        kind, k, op, jt, jf, _ = ops[pc]
        nxt = live[pc + 1]
        mem = (4 << k) if k < I.BPF_MEMWORDS else 0
        if kind == K.RET_K:
            got = 0
        elif kind == K.RET_A:
            got = 1
        elif kind == K.RET_X:
            got = 2
        elif kind in (K.JA, K.JMP_K, K.JMP_X):
            got = live[min(jt, n)] | live[min(jf, n)]
            if jt != jf:
                got |= 1 | (2 if kind == K.JMP_X else 0)
        elif kind in (K.LD_ABS, K.LD_IMM, K.LD_LEN):
            got = nxt & ~1
        elif kind == K.LD_MEM:
            got = (nxt & ~1) | mem
        elif kind in (K.LDX_IMM, K.LDX_LEN):
            got = nxt & ~2
        elif kind == K.LDX_MEM:
            got = (nxt & ~2) | mem
        elif kind == K.ST:
            got = (nxt & ~mem) | 1
        elif kind == K.STX:
            got = (nxt & ~mem) | 2
        elif kind in (K.ALU_K, K.NEG):
            got = nxt | 1
        elif kind == K.ALU_X:
            got = nxt | 3
        elif kind == K.TXA:
            got = (nxt & ~1) | 2
        elif kind == K.TAX:
            got = (nxt & ~2) | 1
        else:  # INVALID: execution stops there
            got = 0
        live[pc] = got
    return live


def _joins(prog: Sequence[Insn]) -> set[int]:
    """The pcs more than one instruction leads to (where paths may meet)."""
    ops = decoded(prog)
    n = len(ops)
    into = [0] * (n + 1)
    for kind, _k, _op, jt, jf, _ in ops:
        if kind in (K.RET_K, K.RET_A, K.RET_X, K.INVALID):
            continue
        into[min(jt, n)] += 1
        if jf != jt:
            into[min(jf, n)] += 1
    return {pc for pc in range(n) if into[pc] > 1}


def _join(paths: list[_Path]) -> list[_Path]:
    """``paths`` (disjoint, one machine state) with both halves of any split put back together.

    A split's two sides that meet again in the same state are their parent again, exactly:
    this is what keeps k independent tests that re-join at k paths instead of 2^k.
    """
    if len(paths) < 2:
        return paths
    halves: dict[tuple[int, int], _Path] = {}
    out: list[_Path] = []
    work = list(reversed(paths))
    while work:
        p = work.pop()
        par = p.parent
        if par is None:
            out.append(p)
            continue
        other = halves.pop((id(par), 1 - p.side), None)
        if other is None:
            halves[(id(par), p.side)] = p
        else:
            work.append(par)
    out.extend(halves.values())
    return out


def _join_cousins(paths: list[_Path]) -> tuple[list[_Path], int]:
    """Merge ``Q and c and t`` with ``Q and not c and t`` into ``Q and t`` (one split of Q on t).

    The sides of one test t taken after an earlier test c had split Q, meeting in one state:
    the arms of c re-joined in state but only after t split each of them (diamonds whose arms
    change a value that later tests leave alone). Exact; repeated with :func:`_join` until
    nothing merges. Returns the paths and the number of new splits made (work).
    """
    work = 0
    changed = True
    while changed and len(paths) > 1:
        changed = False
        seen: dict[tuple, _Path] = {}
        out: list[_Path] = []
        for p in paths:
            par = p.parent
            q = par.parent if par is not None else None
            if par is None or q is None or p.cond is None:
                out.append(p)
                continue
            key = (id(q), p.cond, p.side)
            other = seen.pop(key + (1 - par.side,), None)
            if other is None:
                seen[key + (par.side,)] = p
                continue
            op, lhs, rhs = p.cond
            t, f = _split(q, op, lhs, rhs, 0)
            work += 1
            m = t if p.side == 1 else f
            if m is None:  # cannot happen: p is a non-empty part of it
                raise AssertionError("a merged path is empty")
            if t is not None and f is not None and t is not q and f is not q:
                t.parent = f.parent = q
                t.side, f.side = 1, 0
                t.cond = f.cond = p.cond
            out.append(m)
            changed = True
        out.extend(seen.values())
        paths = _join(out) if changed else out
    return paths, work


def execute(programs: Sequence[Sequence[Insn]], byteorder: str = "little", *,
            max_leaves: int = MAX_LEAVES, max_steps: int = MAX_STEPS) -> Execution:
    """Run ``programs`` symbolically. Several programs are a filter stack, oldest first.

    Instructions are visited in program order (jumps only go forward), with every path that
    reaches an instruction in the same live state (A, X, scratch words, result so far)
    followed as one group, and the two sides of a split that meet again merged back into
    the path they came from. The programs must pass :func:`sysgate.bpf.emulator.check`;
    ``byteorder`` is only recorded.
    """
    progs = [tuple(p) for p in programs]
    if not progs:
        raise AnalysisError("no program to analyse")
    order = list(range(len(progs)))[::-1]  # the kernel runs the newest filter first
    lives = [liveness(progs[fi]) for fi in order]
    # Where groups are put back in the queue (to meet others): where paths join, and where a
    # value dies (states that differed only in it become equal).
    stops = [_joins(progs[fi]) | {pc for pc in range(1, len(progs[fi])) if live[pc - 1] & ~live[pc]}
             for fi, live in zip(order, lives)]
    reached: list[set[int]] = [set() for _ in progs]
    leaves: list[Leaf] = []
    mem0 = (0,) * I.BPF_MEMWORDS
    # Pending groups: (stack position, pc) -> {live state key: [A, X, mem, acc, paths]}
    pending: dict[tuple[int, int], dict[tuple, list]] = {}
    heap: list[tuple[int, int]] = []
    steps = 0

    def too_complex() -> AnalysisError:
        return AnalysisError(f"program needs more than {max_steps} steps over its paths; too complex to explain "
                             "exactly")

    def put(pos: int, pc: int, A: Expr, X: Expr, mem: tuple, acc: Expr | None, paths: list[_Path]) -> None:
        live = lives[pos][pc]
        key = (A if live & 1 else None, X if live & 2 else None,
               tuple(mem[i] if live & (4 << i) else None for i in range(I.BPF_MEMWORDS)) if live > 3 else None,
               acc)
        slot = pending.get((pos, pc))
        if slot is None:
            slot = pending[(pos, pc)] = {}
            heapq.heappush(heap, (pos, pc))
        g = slot.get(key)
        if g is None:
            slot[key] = [A, X, mem, acc, list(paths)]
        else:
            g[4].extend(paths)

    def finish(pos: int, ret: Expr, acc: Expr | None, paths: list[_Path], pc: int) -> None:
        """The filter at ``pos`` returned ``ret`` on ``paths``: on to the next filter, or leaves."""
        if acc is not None:
            if isinstance(ret, int) and isinstance(acc, int):
                ret = combine_stack(acc, ret)
            else:
                ret = ("pick", acc, ret)
        if pos + 1 < len(order):
            put(pos + 1, 0, 0, 0, mem0, ret, paths)
            return
        for path in paths:
            if isinstance(ret, tuple) and ret[0] != "pick":
                for p2, kind in _ret_kinds(path, ret, pc):
                    leaves.append(Leaf(p2.doms, p2.opaque, ret, p2.unverified, kind))
            else:
                leaves.append(Leaf(path.doms, path.opaque, ret, path.unverified))
        if len(leaves) > max_leaves:
            raise AnalysisError(f"program has more than {max_leaves} distinct paths; too complex to explain exactly")

    put(0, 0, 0, 0, mem0, None, [_Path({}, (), False, [0] * 16, [WITNESS_BUDGET])])
    while heap:
        pos, pc0 = heapq.heappop(heap)
        fi = order[pos]
        prog = progs[fi]
        ops = decoded(prog)
        seen = reached[fi]
        for A, X, mem, acc, paths in pending.pop((pos, pc0)).values():
            paths = _join(paths)
            if len(paths) > 1 and ops[pc0].kind not in (K.RET_K, K.RET_A, K.RET_X):
                # (not at a return: merging there would only redraw the regions; paths end anyway)
                paths, work = _join_cousins(paths)
                steps += work
            pc = pc0
            while True:
                steps += 1
                if steps > max_steps:
                    raise too_complex()
                seen.add(pc)
                kind, k, op, jt, jf, why = ops[pc]
                if kind == K.RET_K or kind == K.RET_A or kind == K.RET_X:
                    finish(pos, A if kind == K.RET_A else (X if kind == K.RET_X else k), acc, paths, pc)
                    break
                if kind == K.JA or ((kind == K.JMP_K or kind == K.JMP_X) and jt == jf):
                    put(pos, jt, A, X, mem, acc, paths)
                    break
                if kind == K.JMP_K or kind == K.JMP_X:
                    rhs = X if kind == K.JMP_X else k
                    yes: list[_Path] = []
                    no: list[_Path] = []
                    steps += len(paths)
                    if steps > max_steps:
                        raise too_complex()
                    for path in paths:
                        t, f = _split(path, op, A, rhs, pc)
                        if t is not None and f is not None and t is not path and f is not path:
                            t.parent = f.parent = path
                            t.side, f.side = 1, 0
                            t.cond = f.cond = (op, A, rhs)
                        if t is not None:
                            yes.append(t)
                        if f is not None:
                            no.append(f)
                    if yes:
                        put(pos, jt, A, X, mem, acc, yes)
                    if no:
                        put(pos, jf, A, X, mem, acc, no)
                    break
                if kind == K.LD_ABS:
                    A = ("w", k >> 2)
                elif kind == K.LD_IMM:
                    A = k
                elif kind == K.LD_MEM:
                    A = mem[k]
                elif kind == K.LD_LEN:
                    A = I.SECCOMP_DATA_SIZE
                elif kind == K.LDX_IMM:
                    X = k
                elif kind == K.LDX_MEM:
                    X = mem[k]
                elif kind == K.LDX_LEN:
                    X = I.SECCOMP_DATA_SIZE
                elif kind == K.ST:
                    mem = mem[:k] + (A,) + mem[k + 1:]
                elif kind == K.STX:
                    mem = mem[:k] + (X,) + mem[k + 1:]
                elif kind == K.ALU_K or kind == K.ALU_X:
                    src = X if kind == K.ALU_X else k
                    if op in (I.DIV, I.MOD) and not (isinstance(src, int) and src != 0):
                        # Division by zero ends the filter with 0 (kill thread), as the kernel does.
                        zero: list[_Path] = []
                        nonzero: list[_Path] = []
                        steps += len(paths)
                        for path in paths:
                            z, nz = _split(path, I.JEQ, src, 0, pc)
                            if z is not None:
                                zero.append(z)
                            if nz is not None:
                                nonzero.append(nz)
                        if zero:
                            finish(pos, 0, acc, zero, pc)
                        if not nonzero:
                            break
                        paths = nonzero
                    A = mk(op, A, src)
                elif kind == K.NEG:
                    A = mk(I.NEG, A, 0)
                elif kind == K.TXA:
                    A = X
                elif kind == K.TAX:
                    X = A
                else:
                    raise AnalysisError(f"instruction {pc}: {why} (not valid in seccomp)")
                pc += 1
                if pc >= len(prog):
                    raise AnalysisError(f"instruction {pc - 1}: execution runs off the end of the program")
                if pc in stops[pos]:
                    put(pos, pc, A, X, mem, acc, paths)
                    break
    return Execution(leaves, reached, [len(p) for p in progs], byteorder)


# Return values by action, as the kernel reads them (anything else kills the process).
_KIND_RANGES = ((0x00000000, 0x0000FFFF, I.RET_KILL_THREAD), (0x00030000, 0x0003FFFF, I.RET_TRAP),
                (0x00050000, 0x0005FFFF, I.RET_ERRNO), (0x7FC00000, 0x7FC0FFFF, I.RET_USER_NOTIF),
                (0x7FF00000, 0x7FF0FFFF, I.RET_TRACE), (0x7FFC0000, 0x7FFCFFFF, I.RET_LOG),
                (0x7FFF0000, 0x7FFFFFFF, I.RET_ALLOW), (0x80000000, 0x8000FFFF, I.RET_KILL_PROCESS))


def action_kind(ret: int) -> int:
    """The RET_* action base a return value means (unknown actions kill the process)."""
    return I.ret_action(ret)


def _ret_kinds(path: _Path, ret: Expr, seed: int) -> list[tuple[_Path, int | None]]:
    """Split a path returning the computed ``ret`` by the action each value means.

    Nothing is split when the known bits of ``ret`` fix the action; and when telling the
    actions apart would need opaque conditions, the path stays whole with the action unknown.
    """
    m, v = known_bits(ret, path.doms)
    if m & 0xFFFF0000 == 0xFFFF0000:
        return [(path, action_kind(v))]
    out: list[tuple[_Path, int | None]] = []
    rest: list[_Path] = [path]
    for lo, hi, kind in _KIND_RANGES:
        nxt: list[_Path] = []
        for p in rest:
            ge, lt = _split(p, I.JGE, ret, lo, seed)
            if lt is not None:
                nxt.append(lt)
            if ge is None:
                continue
            gt, le = _split(ge, I.JGT, ret, hi, seed)
            if le is not None:
                out.append((le, kind))
            if gt is not None:
                nxt.append(gt)
        rest = nxt
    out.extend((p, I.RET_KILL_PROCESS) for p in rest)  # values between the action ranges
    if any(len(p.opaque) > len(path.opaque) for p, _ in out):
        return [(path, None)]
    return out


def decide_ret(leaves: Sequence[Leaf], words: Sequence[int]) -> int:
    """The value the filter(s) return for the input ``words`` (exactly one leaf holds)."""
    for lf in leaves:
        if lf.holds(words):
            return evaluate(lf.ret, words)
    raise AssertionError("no leaf covers this input: the analysis is incomplete")
