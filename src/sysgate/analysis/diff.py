"""Semantic difference between two filters (programs, profiles or filter stacks).

Built on :mod:`.explain`: both sides are decompiled exactly, their syscall-number ranges are
cut at every point where either side changes behaviour, and for each range the argument
regions of A and B are intersected. A difference is a non-empty intersection where the two
sides return different actions; it is reported with the argument conditions that reach it.

Verdicts compare actions by the kernel's precedence (kill-process > kill-thread > trap >
errno > user-notify > trace > log > allow):

* ``weaker``: B's action is less strict than A's for some call (B allows more);
* ``stricter``: B's action is stricter;
* ``changed``: same kind, different data (``errno(1)`` vs ``errno(13)``), or a computed
  return value (``ret A``) that differs — counted as weaker, since it cannot be ordered.

Exit status for CI (:attr:`DiffResult.status`): 0 equal; 1 when B is weaker anywhere
(even if it is stricter elsewhere: weaker wins); 3 when they differ but B is nowhere weaker.
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Any

from ..errors import EXIT_DIFF_STRICTER, EXIT_DIFF_WEAKER, EXIT_OK, UserError
from ..policy import Action, ActionKind
from .domain import M32, M64
from .explain import Explanation
from .regions import Behaviour, Region, ViewTable
from .render import behaviour_text, dims_conditions, merge_dims, range_labels, region_dims, ret_text
from .views import View, compute_views, names_in, views_for_arch

__all__ = ["Difference", "DiffEntry", "DiffResult", "diff", "EXIT_EQUAL", "EXIT_WEAKER", "EXIT_STRICTER"]

EXIT_EQUAL, EXIT_WEAKER, EXIT_STRICTER = EXIT_OK, EXIT_DIFF_WEAKER, EXIT_DIFF_STRICTER  # sysgate.errors names them


class Difference:
    """Inputs (a region) where A returns ``a`` and B returns ``b``; ``kind`` as in the module doc."""

    __slots__ = ("region", "a", "b", "kind", "a_kind", "b_kind")

    def __init__(self, region: Region, a: Any, b: Any, kind: str, a_kind: int | None = None,
                 b_kind: int | None = None) -> None:
        self.region = region
        self.a = a
        self.b = b
        self.kind = kind
        self.a_kind = a_kind  # RET_* bases (for computed return values)
        self.b_kind = b_kind


_ORDER = {k.value: Action(k).strictness for k in ActionKind}


def _kind(a: Region, b: Region) -> str | None:
    x, y = a.action, b.action
    if x is not None and y is not None:
        if x == y:
            return None
        if y.strictness < x.strictness:
            return "weaker"
        if y.strictness > x.strictness:
            return "stricter"
        return "changed"
    if a.ret == b.ret and a.kind == b.kind:
        return None  # the same computed value
    if a.kind is not None and b.kind is not None and a.kind != b.kind:
        return "weaker" if _ORDER[b.kind] < _ORDER[a.kind] else "stricter"
    return "changed"


def _differences(ba: Behaviour, bb: Behaviour) -> list[Difference]:
    out = []
    for ra in ba.raw:
        for rb in bb.raw:
            k = _kind(ra, rb)
            if k is None:
                continue
            inter = ra.intersect(rb)
            if inter is not None and inter.opaque and not _possible(inter):
                continue
            if inter is not None:
                out.append(Difference(inter, ra.ret, rb.ret, k, ra.kind, rb.kind))
    return out


def _possible(region: Region) -> bool:
    """Whether some input lies in a region that keeps opaque conditions (computed values, such as
    two arguments compared with each other, which word sets cannot hold).

    A condition and its negation together: empty. Otherwise an input found by sampling proves it
    possible; when none is found the region may or may not be empty, and a difference that cannot
    be shown is refused rather than reported (or hidden) wrongly.
    """
    from .symexec import witness

    seen = {(op, repr(a), repr(b)): t for op, a, b, t in region.opaque}
    if any(seen.get((op, repr(a), repr(b)), t) != t for op, a, b, t in region.opaque):
        return False
    if witness(dict(region.conds), region.opaque, tries=2000) is not None:
        return True
    raise UserError("cannot tell exactly whether the programs differ where they compare computed values "
                    "(such as two arguments with each other): no differing call was found, and none was "
                    "ruled out")


class DiffEntry:
    """One group of syscall numbers in one view where A and B differ."""

    __slots__ = ("view", "ranges", "a", "b", "diffs")

    def __init__(self, view: View, ranges: list[tuple[int, int]], a: Behaviour, b: Behaviour,
                 diffs: list[Difference]) -> None:
        self.view = view
        self.ranges = ranges
        self.a = a
        self.b = b
        self.diffs = diffs

    @property
    def kinds(self) -> set[str]:
        return {d.kind for d in self.diffs}

    def labels(self) -> list[str]:
        out: list[str] = []
        for lo, hi in self.ranges:
            out += range_labels(lo, hi, names_in(self.view, lo, hi))
        return out

    def examples(self, byteorder: str) -> list[tuple[list[int] | None, Any, Any]]:
        """For each difference: a seccomp_data (16 words) where A returns ``a`` and B ``b``
        (None if none could be built: the region keeps an opaque condition), with a and b."""
        from .domain import WordSet, iv_norm
        from .symexec import WORD_ARCH, WORD_NR, witness
        from .words import arg_words, ip_words

        out: list[tuple[list[int] | None, Any, Any]] = []
        for d in self.diffs:
            doms = dict(d.region.conds)
            arch = WordSet(((self.view.token, self.view.token),)) if self.view.token is not None \
                else WordSet(self.view.tokens)
            got = arch.intersect(doms.get(WORD_ARCH, arch))
            nrs = WordSet(iv_norm(self.ranges))
            nr = nrs.intersect(doms.get(WORD_NR, nrs))
            if got is None or nr is None:
                out.append((None, d.a, d.b))
                continue
            doms[WORD_ARCH], doms[WORD_NR] = got, nr
            if self.view.bits == 32:
                for w in [arg_words(i, byteorder)[1] for i in range(6)] + [ip_words(byteorder)[1]]:
                    doms[w] = WordSet(((0, 0),))
            out.append((witness(doms, d.region.opaque), d.a, d.b))
        return out

    def where(self, byteorder: str) -> list[tuple[str, str, str, str]]:
        """(condition text, A's result, B's result, kind), regions with equal results merged."""
        groups: dict[tuple, list] = {}
        for d in self.diffs:
            key = (ret_text(d.a, byteorder, d.a_kind), ret_text(d.b, byteorder, d.b_kind), d.kind)
            groups.setdefault(key, []).append((region_dims(d.region, self.view, byteorder), d.region.opaque))
        top = M32 if self.view.bits == 32 else M64
        sysname = None
        if len(self.ranges) == 1 and self.ranges[0][0] == self.ranges[0][1]:
            sysname = self.view.name_of(self.ranges[0][0])
        out = []
        for (ta, tb, kind), items in groups.items():
            conds = []
            for dims, opq in merge_dims(items, top):
                c = dims_conditions(dims, opq, self.view, byteorder, sysname)
                conds.append(" && ".join(c) if c else "always")
            text = " || ".join(f"({c})" if " && " in c and len(conds) > 1 else c for c in conds)
            out.append((text, ta, tb, kind))
        return out


class DiffResult:
    """Every difference between A and B, by view and syscall-number group."""

    def __init__(self, a: Explanation, b: Explanation, views: list[View], entries: list[DiffEntry]) -> None:
        self.a = a
        self.b = b
        self.views = views
        self.entries = entries

    @property
    def kinds(self) -> set[str]:
        out: set[str] = set()
        for e in self.entries:
            out |= e.kinds
        return out

    @property
    def verdict(self) -> str:
        k = self.kinds
        if not k:
            return "equal"
        if "weaker" in k or ("changed" in k and self._computed_change()):
            return "weaker"
        if "stricter" in k:
            return "stricter"
        return "changed"

    def _computed_change(self) -> bool:
        return any(d.kind == "changed" and not (isinstance(d.a, int) and isinstance(d.b, int))
                   for e in self.entries for d in e.diffs)

    @property
    def status(self) -> int:
        v = self.verdict
        return EXIT_EQUAL if v == "equal" else (EXIT_WEAKER if v == "weaker" else EXIT_STRICTER)

    def render(self, names: tuple[str, str] = ("A", "B")) -> str:
        na, nb = names
        bo = self.a.byteorder
        lines: list[str] = []
        for e in self.entries:
            labels = e.labels()
            sysname = labels[0] if len(labels) == 1 and not labels[0][:1].isdigit() else None
            kinds = "/".join(sorted(e.kinds))
            ua, ub = e.a.unconditional, e.b.unconditional
            if ua is not None and ub is not None:
                count = f" ({len(labels)})" if len(labels) > 1 else ""
                lines.append(f"{e.view.label}{count}: {na} {ua}, {nb} {ub} ({nb} {kinds}):")
                lines.extend(_wrap_words(labels, 100, "    "))
                continue
            head = ", ".join(labels[:8]) + (f", ... ({len(labels)} in all)" if len(labels) > 8 else "")
            lines.append(f"{e.view.label} {head}: {nb} is {kinds}")
            lines.append(f"    {na}: {behaviour_text(e.a, e.view, bo, sysname)}")
            lines.append(f"    {nb}: {behaviour_text(e.b, e.view, bo, sysname)}")
            for text, ta, tb, _kind in e.where(bo):
                lines.append(f"    where {text}: {na} {ta}, {nb} {tb}")
        verdict = self.verdict
        summary = {"equal": f"{na} and {nb} decide every call the same",
                   "weaker": f"{nb} is weaker than {na}: it allows (or does less to) some call {na} stops",
                   "stricter": f"{nb} is stricter than {na} and nowhere weaker",
                   "changed": f"{nb} differs from {na} only in errno/trace values"}[verdict]
        lines.append(summary)
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        bo = self.a.byteorder
        out = []
        for e in self.entries:
            labels = e.labels()
            sysname = labels[0] if len(labels) == 1 and not labels[0][:1].isdigit() else None
            out.append({"view": e.view.label, "arch": e.view.arch.name if e.view.arch else None,
                        "numbers": [list(r) for r in e.ranges], "syscalls": labels,
                        "kinds": sorted(e.kinds),
                        "a": behaviour_text(e.a, e.view, bo, sysname), "b": behaviour_text(e.b, e.view, bo, sysname),
                        "where": [{"condition": t, "a": ta, "b": tb, "kind": k} for t, ta, tb, k in e.where(bo)],
                        "example": _example_json(e, bo)})
        return {"a": list(self.a.sources), "b": list(self.b.sources), "status": self.status,
                "verdict": self.verdict, "views": [v.label for v in self.views], "differences": out}


def _example_json(e: DiffEntry, byteorder: str) -> dict[str, Any] | None:
    """One concrete call where A and B differ (for a CI log to reproduce), or None."""
    from .symexec import WORD_ARCH, WORD_NR, evaluate
    from .words import arg_words, ip_words

    for w, a, b in e.examples(byteorder):
        if w is None:
            continue
        def u64(lo_hi: tuple[int, int], w: list[int] = w) -> int:  # w bound now (B023), not looked up later
            return w[lo_hi[0]] | (w[lo_hi[1]] << 32)
        ra, rb = evaluate(a, w), evaluate(b, w)  # computed return values (ret A) made concrete
        return {"arch": w[WORD_ARCH], "nr": w[WORD_NR], "args": [u64(arg_words(i, byteorder)) for i in range(6)],
                "ip": u64(ip_words(byteorder)), "a": str(Action.from_ret(ra)), "b": str(Action.from_ret(rb)),
                "a_ret": ra, "b_ret": rb}
    return None


def _wrap_words(words: list[str], width: int, indent: str) -> list[str]:
    lines, cur = [], indent
    for w in words:
        if len(cur) + len(w) + 1 > width and cur.strip():
            lines.append(cur)
            cur = indent
        cur += ("" if cur == indent else " ") + w
    if cur.strip():
        lines.append(cur)
    return lines


def diff(a: Explanation, b: Explanation, arches: Sequence[str] | None = None,
         views: Sequence[View] | None = None) -> DiffResult:
    """Compare ``a`` and ``b`` on ``views`` (default: every arch either tells apart)."""
    if a.byteorder != b.byteorder:
        raise UserError(f"cannot compare a {a.byteorder}-endian program with a {b.byteorder}-endian one: "
                        "they never run on the same machine")
    if views is None:
        if arches:
            views = [views_for_arch(x) for x in arches]
        else:
            views = compute_views([a.leaves, b.leaves], a.naming or b.naming)
    entries: list[DiffEntry] = []
    for view in views:
        entries.extend(_diff_view(a.table(view), b.table(view), view))
    return DiffResult(a, b, list(views), entries)


def _diff_view(ta: ViewTable, tb: ViewTable, view: View) -> list[DiffEntry]:
    cuts = sorted(set(ta.cuts) | set(tb.cuts))
    cache: dict[tuple[int, int], list[Difference]] = {}
    groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
    order: list[tuple[int, int]] = []
    for i in range(len(cuts) - 1):
        lo, hi = cuts[i], cuts[i + 1] - 1
        ia = ta.which[bisect.bisect_right(ta.cuts, lo) - 1]
        ib = tb.which[bisect.bisect_right(tb.cuts, lo) - 1]
        key = (ia, ib)
        got = cache.get(key)
        if got is None:
            got = cache[key] = _differences(ta.behaviours[ia], tb.behaviours[ib])
        if not got:
            continue
        if key not in groups:
            groups[key] = []
            order.append(key)
        rs = groups[key]
        if rs and rs[-1][1] + 1 == lo:
            rs[-1] = (rs[-1][0], hi)
        else:
            rs.append((lo, hi))
    entries = []
    for key in order:
        ia, ib = key
        # One entry per named syscall (readable), one per group for unnamed ranges.
        ba, bb = ta.behaviours[ia], tb.behaviours[ib]
        if ba.unconditional is not None and bb.unconditional is not None:
            # Argument-independent on both sides: one entry for all these numbers.
            entries.append(DiffEntry(view, groups[key], ba, bb, cache[key]))
            continue
        named: list[tuple[int, int]] = []
        unnamed: list[tuple[int, int]] = []
        for lo, hi in groups[key]:
            names = names_in(view, lo, hi)
            if names and len(names) == hi - lo + 1 and len(names) <= 64:
                named.extend((nr, nr) for nr, _ in names)
            else:
                unnamed.append((lo, hi))
        for r in named:
            entries.append(DiffEntry(view, [r], ta.behaviours[ia], tb.behaviours[ib], cache[key]))
        if unnamed:
            entries.append(DiffEntry(view, unnamed, ta.behaviours[ia], tb.behaviours[ib], cache[key]))
    entries.sort(key=lambda e: e.ranges[0][0])
    return entries
