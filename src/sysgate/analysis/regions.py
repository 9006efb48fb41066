"""Regions: sets of inputs with one result, merged per behaviour, and the per-view tables.

A :class:`Region` is a conjunction of exact constraints on 32-bit words (plus conditions kept
verbatim, "opaque"); a :class:`Behaviour` is what a view does for some syscall numbers, a
partition of the argument space into merged regions; a :class:`ViewTable` cuts a view's
numbers into ranges, each with its behaviour.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence

from ..bpf import insn as I
from ..policy import Action, ActionKind
from .domain import FULL_WORD, WordSet, iv_or
from .symexec import WORD_ARCH, WORD_NR, Expr, Leaf, action_kind, cmp, evaluate, subst
from .views import View, slots
from .words import arg_words, ip_words

__all__ = ["Region", "Behaviour", "ViewTable", "merge_regions", "build_table"]


class Region:
    """A set of inputs (a conjunction of word constraints and opaque conditions) and its result.

    ``conds`` is a sorted tuple of (word, WordSet); ``opaque`` a tuple of (op, lhs, rhs, truth).
    """

    __slots__ = ("conds", "opaque", "ret", "unverified", "kind", "_key")

    def __init__(self, conds: tuple, opaque: tuple, ret: Expr, unverified: bool = False,
                 kind: int | None = None) -> None:
        self.conds = conds
        self.opaque = opaque
        self.ret = ret
        self.unverified = unverified
        # RET_* action base: known even for most computed returns (see symexec._ret_kinds)
        self.kind = action_kind(ret) if isinstance(ret, int) else kind
        self._key: tuple | None = None

    @property
    def key(self) -> tuple:
        if self._key is None:
            self._key = (tuple((w, ws._key()) for w, ws in self.conds), repr(self.opaque), repr(self.ret), self.kind)
        return self._key

    @property
    def action(self) -> Action | None:
        """The action; None for a computed return value whose action or data is not fixed."""
        if isinstance(self.ret, int):
            return Action.from_ret(self.ret)
        if self.kind is not None and self.kind not in (I.RET_ERRNO, I.RET_TRACE):
            return Action(ActionKind(self.kind))  # the data of these actions is ignored
        return None

    @property
    def action_kind(self) -> ActionKind | None:
        return None if self.kind is None else ActionKind(self.kind)

    def dom(self, w: int) -> WordSet:
        for x, ws in self.conds:
            if x == w:
                return ws
        return FULL_WORD

    def holds(self, words: Sequence[int]) -> bool:
        for w, ws in self.conds:
            if not ws.contains(words[w]):
                return False
        return all(cmp(op, evaluate(a, words), evaluate(b, words)) == t for op, a, b, t in self.opaque)

    def intersect(self, other: Region, ret: Expr | None = None) -> Region | None:
        """Inputs in both (None if provably none); ``ret`` defaults to self's."""
        d = dict(self.conds)
        for w, ws in other.conds:
            cur = d.get(w)
            if cur is None:
                d[w] = ws
            else:
                got = cur.intersect(ws)
                if got is None:
                    return None
                d[w] = got
        opq = self.opaque + tuple(a for a in other.opaque if a not in self.opaque)
        unverified = self.unverified or other.unverified
        if opq and (self.opaque != opq or other.opaque != opq):
            from .symexec import witness

            if witness(d, opq) is None:
                unverified = True
        return Region(tuple(sorted(d.items())), opq, self.ret if ret is None else ret, unverified,
                      self.kind if ret is None else None)

    def __repr__(self) -> str:
        return f"Region({self.conds}, {self.opaque}, {self.ret!r})"


def merge_regions(regions: list[Region]) -> list[Region]:
    """Union regions with the same result that differ in one word only by their intervals.

    Grouping by "everything but word w" makes each pass linear; passes repeat until stable.
    """
    cur = list(regions)
    words = sorted({w for r in cur for w, _ in r.conds})
    # Per region, once: the result's text and each word's key (repr of a computed result is
    # costly, and the passes below look at every region once per word). Holding r keeps id(r) unique.
    meta: dict[int, tuple] = {}

    def info(r: Region) -> tuple:
        m = meta.get(id(r))
        if m is None:
            m = meta[id(r)] = (r, (repr(r.opaque), repr(r.ret), r.kind), [(v, ws, ws._key()) for v, ws in r.conds])
        return m

    changed = True
    while changed and len(cur) > 1:
        changed = False
        for w in words:
            groups: dict[tuple, list[tuple[Region, WordSet]]] = {}
            for r in cur:
                _r, head, conds = info(r)
                x = FULL_WORD
                rest = []
                for v, ws, wkey in conds:
                    if v == w:
                        x = ws
                    else:
                        rest.append((v, wkey))
                key = (*head, tuple(rest), x.fmask, x.fval, tuple(sorted(x.nes)))
                groups.setdefault(key, []).append((r, x))
            if all(len(g) == 1 for g in groups.values()):
                continue
            nxt = []
            for g in groups.values():
                if len(g) == 1:
                    nxt.append(g[0][0])
                    continue
                changed = True
                ivs: tuple = ()
                for _, x in g:
                    ivs = iv_or(ivs, x.ivs)
                x0 = g[0][1]
                u = WordSet.make(ivs, x0.fmask, x0.fval, x0.nes)
                r0 = g[0][0]
                d = {v: ws for v, ws in r0.conds if v != w}
                if u is not None and not u.is_full:
                    d[w] = u
                nxt.append(Region(tuple(sorted(d.items())), r0.opaque, r0.ret, any(r.unverified for r, _ in g),
                                  r0.kind))
            cur = nxt
    # Rare: the same region split by an opaque condition true on one side, false on the other.
    if any(r.opaque for r in cur):
        changed = True
        while changed:
            changed = False
            for a in range(len(cur)):
                for b in range(a + 1, len(cur)):
                    same = repr(cur[a].ret) == repr(cur[b].ret) and cur[a].kind == cur[b].kind
                    m = _merge2(cur[a], cur[b]) if same else None
                    if m is not None:
                        cur[a] = m
                        del cur[b]
                        changed = True
                        break
                if changed:
                    break
    cur.sort(key=lambda r: r.key)
    return cur


def _merge2(a: Region, b: Region) -> Region | None:
    da, db = dict(a.conds), dict(b.conds)
    words = set(da) | set(db)
    diff = [w for w in words if da.get(w, FULL_WORD) != db.get(w, FULL_WORD)]
    if not diff:
        if a.opaque == b.opaque:
            return a
        # Equal but for one opaque condition that is true in one and false in the other.
        if len(a.opaque) == len(b.opaque):
            da_o = [x for x in a.opaque if x not in b.opaque]
            db_o = [x for x in b.opaque if x not in a.opaque]
            if len(da_o) == 1 and len(db_o) == 1 and da_o[0][:3] == db_o[0][:3]:
                return Region(a.conds, tuple(x for x in a.opaque if x != da_o[0]), a.ret,
                              a.unverified or b.unverified, a.kind)
        return None
    if len(diff) != 1 or a.opaque != b.opaque:
        return None
    w = diff[0]
    x, y = da.get(w, FULL_WORD), db.get(w, FULL_WORD)
    if (x.fmask, x.fval, x.nes) != (y.fmask, y.fval, y.nes):
        return None
    u = WordSet.make(iv_or(x.ivs, y.ivs), x.fmask, x.fval, x.nes)
    d = dict(da)
    if u is None or u.is_full:
        d.pop(w, None)
    else:
        d[w] = u
    return Region(tuple(sorted(d.items())), a.opaque, a.ret, a.unverified or b.unverified, a.kind)


class Behaviour:
    """What a view does for a set of syscall numbers: a partition into regions (merged)."""

    __slots__ = ("regions", "raw", "key", "text_cache")

    def __init__(self, raw: list[Region]) -> None:
        self.raw = raw  # as the paths produced them (each a conjunction)
        self.regions = merge_regions(list(raw))
        self.key = tuple(r.key for r in self.regions)
        self.text_cache: dict = {}  # rendered texts, by (view, syscall name, preferred else)

    @property
    def unconditional(self) -> Action | None:
        """The action if the behaviour does not depend on arguments (None otherwise)."""
        if len(self.regions) == 1 and not self.regions[0].conds and not self.regions[0].opaque:
            return self.regions[0].action
        acts = {r.action for r in self.regions}
        if len(acts) == 1 and None not in acts and not any(r.opaque for r in self.regions):
            return next(iter(acts))
        return None


class ViewTable:
    """A view's syscall numbers cut into elementary ranges, each with its :class:`Behaviour`.

    ``cuts`` are the range starts (plus the end + 1); ``which[i]`` is the index into
    ``behaviours`` for the range ``cuts[i] .. cuts[i+1]-1``.
    """

    __slots__ = ("view", "cuts", "which", "behaviours")

    def __init__(self, view: View, cuts: list[int], which: list[int], behaviours: list[Behaviour]) -> None:
        self.view = view
        self.cuts = cuts
        self.which = which
        self.behaviours = behaviours

    def ranges(self) -> list[tuple[int, int, int]]:
        """(lo, hi, behaviour index) for each maximal range."""
        out: list[tuple[int, int, int]] = []
        for i, b in enumerate(self.which):
            lo, hi = self.cuts[i], self.cuts[i + 1] - 1
            if out and out[-1][2] == b and out[-1][1] + 1 == lo:
                out[-1] = (out[-1][0], hi, b)
            else:
                out.append((lo, hi, b))
        return out

    def numbers_of(self, bi: int) -> list[tuple[int, int]]:
        return [(lo, hi) for lo, hi, b in self.ranges() if b == bi]

    def default_index(self) -> int:
        """The behaviour of most unnamed numbers (what "every other number" does)."""
        count: dict[int, int] = {}
        names = self.view.arch.syscalls if self.view.arch else {}
        named = sorted(n for n in names.values() if self.view.numbers[0] <= n <= self.view.numbers[1])
        for lo, hi, b in self.ranges():
            n_named = bisect.bisect_right(named, hi) - bisect.bisect_left(named, lo)
            count[b] = count.get(b, 0) + (hi - lo + 1 - n_named) * 4 + n_named
        return max(count, key=lambda b: count[b])


class _Piece:
    __slots__ = ("nr", "region")

    def __init__(self, nr: WordSet, region: Region) -> None:
        self.nr = nr
        self.region = region


def _specialize(lf: Leaf, view: View, byteorder: str) -> _Piece | None:
    """The leaf seen through ``view``: arch (and 32-bit high words) fixed, nr restricted."""
    values: dict[int, int] = {}
    doms = dict(lf.doms)
    aws = doms.pop(WORD_ARCH, FULL_WORD)
    if view.token is not None:
        if not aws.contains(view.token):
            return None
        values[WORD_ARCH] = view.token
    else:
        got = aws.restrict(view.tokens)
        if got is None:
            return None
        if not (got.pure and got.ivs == view.tokens):
            doms[WORD_ARCH] = got
    if view.bits == 32:
        for w in [arg_words(i, byteorder)[1] for i in range(6)] + [ip_words(byteorder)[1]]:
            ws = doms.pop(w, None)
            if ws is not None and not ws.contains(0):
                return None
            values[w] = 0
    nr = doms.pop(WORD_NR, FULL_WORD).restrict(((view.numbers[0], view.numbers[1]),))
    if nr is None:
        return None
    opq = []
    ret = lf.ret
    if values:
        for op, a, b, t in lf.opaque:
            a2, b2 = subst(a, values), subst(b, values)
            if isinstance(a2, int) and isinstance(b2, int):
                if cmp(op, a2, b2) != t:
                    return None
                continue
            opq.append((op, a2, b2, t))
        ret = subst(ret, values)
    else:
        opq = list(lf.opaque)
    return _Piece(nr, Region(tuple(sorted(doms.items())), tuple(opq), ret, lf.unverified, lf.kind))


def build_table(leaves: Sequence[Leaf], view: View, byteorder: str) -> ViewTable:
    pieces: list[_Piece] = []
    piece_ivs: list[tuple] = []
    for lf in leaves:
        p = _specialize(lf, view, byteorder)
        if p is None:
            continue
        ivs = p.nr.as_intervals(256)
        if ivs is None:  # the number test is not a union of a few ranges: keep it as a condition
            ivs = p.nr.ivs
            p.region = Region(tuple(sorted(list(p.region.conds) + [(WORD_NR, p.nr)])),
                              p.region.opaque, p.region.ret, p.region.unverified, p.region.kind)
        pieces.append(p)
        piece_ivs.append(ivs)
    pts, covers = slots(view.numbers[0], view.numbers[1], piece_ivs)
    behaviours: list[Behaviour] = []
    by_sig: dict[tuple, int] = {}
    by_key: dict[tuple, int] = {}
    which: list[int] = []
    for slot in covers:
        sig = tuple(slot)
        bi = by_sig.get(sig)
        if bi is None:
            if not slot:
                raise AssertionError(f"{view.label}: numbers without any path (analysis incomplete)")
            b = Behaviour([pieces[i].region for i in slot])
            bi = by_key.get(b.key)
            if bi is None:
                bi = len(behaviours)
                behaviours.append(b)
                by_key[b.key] = bi
            by_sig[sig] = bi
        which.append(bi)
    return ViewTable(view, pts, which, behaviours)
