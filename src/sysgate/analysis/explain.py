"""Exact decompilation of any seccomp program: what it decides, per arch, syscall and argument.

:func:`explain` runs the program(s) symbolically (:mod:`.symexec`) and organises the result:

* **views**: one per architecture the program tells apart (the x86_64 token is shown as two
  views, ``x86_64`` for numbers below 0x40000000 and ``x32`` for the rest, since the kernel
  uses one token for both), plus views for tokens it does not check;
* per view, the syscall numbers grouped into ranges with identical behaviour, named from the
  view's syscall table;
* per behaviour, a partition of the argument space into :class:`Region` (a conjunction of
  exact constraints on 32-bit words) each with the value returned.

Everything is exact: :meth:`Explanation.decide` on any input returns what the kernel would.
Rendering combines the low and high words of an argument into 64-bit conditions where they
pair up (``arg0 == 0x1_0000_0001``), merges regions and names syscall arguments.
"""
from __future__ import annotations

import bisect
from typing import Any, Iterable, Sequence

from .. import arch as _arch
from ..bpf import insn as I
from ..bpf.insn import Insn
from ..policy import Action, ActionKind
from .domain import FULL32, FULL_WORD, M32, M64, WordSet, iv_and, iv_not, iv_norm, iv_or, iv_size
from .symexec import (WORD_ARCH, WORD_NR, AnalysisError, Execution, Expr, Leaf, action_kind, cmp, evaluate, execute,
                      subst, words_of)

__all__ = ["Explanation", "View", "Region", "Behaviour", "ViewTable", "explain", "explain_programs",
           "AnalysisError", "word_label", "fmt_num", "X32"]

X32 = _arch.X32_SYSCALL_BIT


# ---------------------------------------------------------------------------- words and numbers

def arg_words(i: int, byteorder: str) -> tuple[int, int]:
    """(lo, hi) word indexes of argument ``i`` (the high word comes first on big-endian)."""
    base = 4 + 2 * i
    return (base + 1, base) if byteorder == "big" else (base, base + 1)


def ip_words(byteorder: str) -> tuple[int, int]:
    return (3, 2) if byteorder == "big" else (2, 3)


def word_dim(w: int, byteorder: str) -> tuple[str, str]:
    """(dimension, half) of word ``w``: ("nr", ""), ("arch", ""), ("ip", "lo"), ("arg2", "hi")..."""
    if w == WORD_NR:
        return "nr", ""
    if w == WORD_ARCH:
        return "arch", ""
    if w in (2, 3):
        lo, _ = ip_words(byteorder)
        return "ip", "lo" if w == lo else "hi"
    i = (w - 4) // 2
    lo, _ = arg_words(i, byteorder)
    return f"arg{i}", "lo" if w == lo else "hi"


def word_label(w: int, byteorder: str) -> str:
    dim, half = word_dim(w, byteorder)
    return f"{dim}.{half}32" if half else dim


def fmt_num(v: int) -> str:
    """Small numbers in decimal, others in hex; 64-bit values grouped as 0x1_0000_0001."""
    if v < 10:
        return str(v)
    if v <= M32:
        return f"{v:#x}"
    h = f"{v:x}"
    groups = []
    while h:
        groups.append(h[-4:])
        h = h[:-4]
    return "0x" + "_".join(reversed(groups))


def _ret_text(ret: Expr, byteorder: str, kind: int | None = None) -> str:
    if isinstance(ret, int):
        return str(Action.from_ret(ret))
    if kind is not None:
        k = ActionKind(kind)
        name = str(Action(k))
        if k in (ActionKind.ERRNO, ActionKind.TRACE):
            from .symexec import mk

            data = expr_text(mk(I.AND, ret, 0xFFFF), byteorder)
            if data.startswith("(") and data.endswith(")"):
                data = data[1:-1]
            name = f"{k.name.lower()}({data})"
        return name
    return "return " + expr_text(ret, byteorder)


_OPSYM = {I.ADD: "+", I.SUB: "-", I.MUL: "*", I.DIV: "/", I.OR: "|", I.AND: "&", I.LSH: "<<", I.RSH: ">>",
          I.MOD: "%", I.XOR: "^"}


def expr_text(e: Expr, byteorder: str) -> str:
    if isinstance(e, int):
        return fmt_num(e)
    if e[0] == "w":
        return word_label(e[1], byteorder)
    if e[0] == "op":
        return f"({expr_text(e[2], byteorder)} {_OPSYM[e[1]]} {expr_text(e[3], byteorder)})"
    if e[0] == "neg":
        return f"-{expr_text(e[1], byteorder)}"
    return f"stacked({expr_text(e[1], byteorder)}, {expr_text(e[2], byteorder)})"


def atom_text(atom: tuple, byteorder: str) -> str:
    op, a, b, truth = atom
    la, lb = expr_text(a, byteorder), expr_text(b, byteorder)
    if op == I.JSET:
        return f"({la} & {lb}) {'!=' if truth else '=='} 0"
    sym = {I.JEQ: ("==", "!="), I.JGT: (">", "<="), I.JGE: (">=", "<")}[op]
    return f"{la} {sym[0] if truth else sym[1]} {lb}"


# ---------------------------------------------------------------------------- views

class View:
    """One architecture as the program sees it: arch tokens, syscall numbers, argument width.

    ``token`` is set when the view is one token (its value is substituted); ``tokens`` are the
    arch values covered; ``numbers`` the syscall-number range; ``arch`` the sysgate Arch whose
    syscall table names the numbers (None: numbers only); ``bits`` 32 means the kernel
    zero-extends arguments, so their high words are 0.
    """

    __slots__ = ("label", "arch", "token", "tokens", "numbers", "bits")

    def __init__(self, label: str, arch: _arch.Arch | None, token: int | None, tokens: tuple,
                 numbers: tuple[int, int], bits: int) -> None:
        self.label = label
        self.arch = arch
        self.token = token
        self.tokens = tokens
        self.numbers = numbers
        self.bits = bits

    def name_of(self, nr: int) -> str | None:
        if self.arch is None:
            return None
        return self.arch.name_of(nr)

    def key(self) -> tuple:
        return (self.label, self.token, self.tokens, self.numbers, self.bits)

    def __repr__(self) -> str:
        return f"View({self.label})"


def views_for_arch(name: str | _arch.Arch) -> View:
    """The view of one sysgate arch (x86_64 and x32 split the x86_64 token by the x32 bit)."""
    a = _arch.get(name)
    numbers = (0, M32)
    if a.name == "x86_64":
        numbers = (0, X32 - 1)
    elif a.name == "x32":
        numbers = (X32, M32)
    return View(a.name, a, a.token, ((a.token, a.token),), numbers, a.bits)


def _arch_ivs(ws: WordSet) -> tuple:
    got = ws.as_intervals(256)
    return got if got is not None else ws.ivs


def _slots(lo0: int, hi0: int, interval_sets: Sequence[tuple]) -> tuple[list[int], list[list[int]]]:
    """Cut ``lo0..hi0`` wherever one of ``interval_sets`` starts or ends: the cut points, and for each
    slot ``pts[s]..pts[s+1]-1`` the indices of the sets that cover it (in order)."""
    cuts = {lo0, hi0 + 1}
    for ivs in interval_sets:
        for lo, hi in ivs:
            cuts.add(lo)
            cuts.add(hi + 1)
    pts = sorted(cuts)
    slots: list[list[int]] = [[] for _ in range(len(pts) - 1)]
    for idx, ivs in enumerate(interval_sets):
        for lo, hi in ivs:
            for s in range(bisect.bisect_left(pts, lo), bisect.bisect_left(pts, hi + 1)):
                slots[s].append(idx)
    return pts, slots


def compute_views(leaf_lists: Sequence[Sequence[Leaf]], naming: Sequence[str] = ()) -> list[View]:
    """The views the programs' leaves distinguish: arch values split where any leaf's arch set does."""
    all_ivs: list[tuple] = []
    for leaves in leaf_lists:
        for lf in leaves:
            ws = lf.doms.get(WORD_ARCH)
            all_ivs.append(FULL32 if ws is None else _arch_ivs(ws))
    pts, sigs = _slots(0, M32, all_ivs)
    classes: dict[tuple, list[tuple[int, int]]] = {}
    for s, sig in enumerate(sigs):
        classes.setdefault(tuple(sig), []).append((pts[s], pts[s + 1] - 1))
    known: list[View] = []
    unknown: list[View] = []
    multi: list[View] = []
    naming_arches = [_arch.get(n) for n in naming]
    for ivs in classes.values():
        ivs_t = iv_norm(ivs)
        if len(ivs_t) == 1 and ivs_t[0][0] == ivs_t[0][1]:
            t = ivs_t[0][0]
            archs = _arch.by_token(t)
            if archs:
                for a in archs:
                    known.append(views_for_arch(a))
            else:
                unknown.append(View(f"arch {t:#010x}", None, t, ivs_t, (0, M32), 64))
            continue
        name_arch = next((a for a in naming_arches if any(lo <= a.token <= hi for lo, hi in ivs_t)), None)
        label = "any arch" if ivs_t == FULL32 else "any other arch"
        multi.append(View(label, name_arch, None, ivs_t, (0, M32), 64))
    order = {a.name: i for i, a in enumerate(_arch.ARCHES)}
    known.sort(key=lambda v: order.get(v.label, 99))
    unknown.sort(key=lambda v: v.token)
    return known + unknown + multi


# ---------------------------------------------------------------------------- regions

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

    def intersect(self, other: "Region", ret: Expr | None = None) -> "Region | None":
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


def _merge(regions: list[Region]) -> list[Region]:
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

    __slots__ = ("regions", "raw", "key", "_text")

    def __init__(self, raw: list[Region]) -> None:
        self.raw = raw  # as the paths produced them (each a conjunction)
        self.regions = _merge(list(raw))
        self.key = tuple(r.key for r in self.regions)
        self._text: dict = {}

    @property
    def unconditional(self) -> Action | None:
        """The action if the behaviour does not depend on arguments (None otherwise)."""
        if len(self.regions) == 1 and not self.regions[0].conds and not self.regions[0].opaque:
            return self.regions[0].action
        acts = {r.action for r in self.regions}
        if len(acts) == 1 and None not in acts and not any(r.opaque for r in self.regions):
            return next(iter(acts))
        return None

    def actions(self) -> list[Action | None]:
        seen: list[Action | None] = []
        for r in self.regions:
            if r.action not in seen:
                seen.append(r.action)
        return seen


# ---------------------------------------------------------------------------- rendering conditions

def _iv_text(name: str, ivs: tuple, top: int, label: Any = None) -> str | None:
    """``name``'s interval set as a condition; ``label(v)`` may name a compared value (AF_INET)."""
    def num(v: int) -> str:
        lab = label(v) if label is not None else None
        return f"{fmt_num(v)} /* {lab} */" if lab else fmt_num(v)

    if not ivs:
        return "false"
    if ivs == ((0, top),):
        return None
    co = iv_not(ivs, top)
    if len(ivs) == 1:
        lo, hi = ivs[0]
        if lo == hi:
            return f"{name} == {num(lo)}"
        if lo == 0:
            return f"{name} <= {fmt_num(hi)}"
        if hi == top:
            return f"{name} >= {fmt_num(lo)}" if _rounder(lo, lo - 1) else f"{name} > {fmt_num(lo - 1)}"
        return f"{fmt_num(lo)} <= {name} <= {fmt_num(hi)}"
    if len(co) == 1 and co[0][0] == co[0][1]:
        return f"{name} != {num(co[0][0])}"
    if all(lo == hi for lo, hi in ivs) and len(ivs) <= 12:
        return f"{name} in {{{', '.join(num(lo) for lo, _ in ivs)}}}"
    if all(lo == hi for lo, hi in co) and len(co) <= 12:
        return f"{name} not in {{{', '.join(num(lo) for lo, _ in co)}}}"
    parts = [_iv_text(name, (iv,), top, label) for iv in ivs[:8]]
    more = " || ..." if len(ivs) > 8 else ""
    return "(" + " || ".join(p for p in parts if p) + more + ")"


def _rounder(a: int, b: int) -> bool:
    """Is ``a`` at least as round a number as ``b`` (fewer significant hex digits)?"""
    def sig(v: int) -> int:
        h = f"{v:x}".rstrip("0")
        return len(h)
    return sig(a) <= sig(b)


def _own_ivs(ws: WordSet) -> tuple:
    """``ws``'s intervals, or the full range when the bit constraints alone imply them."""
    if ws.pure or ws.ivs == FULL32:
        return ws.ivs
    alone = WordSet.make(FULL32, ws.fmask, ws.fval, ws.nes)
    return FULL32 if alone is not None and alone.ivs == ws.ivs else ws.ivs


def _ws_text(name: str, ws: WordSet, top: int = M32) -> list[str]:
    out = []
    t = _iv_text(name, _own_ivs(ws), top)
    if t:
        out.append(t)
    if ws.fmask:
        out.append(f"({name} & {fmt_num(ws.fmask)}) == {fmt_num(ws.fval)}" if ws.fmask != M32
                   else f"{name} == {fmt_num(ws.fval)}")
    for m, v in sorted(ws.nes):
        out.append(f"({name} & {fmt_num(m)}) != {fmt_num(v)}")
    return out


def _arg64(lo: WordSet, hi: WordSet, bits: int) -> tuple | None:
    """The 64-bit interval set lo x hi, if both are plain intervals and it stays small."""
    if bits == 32:
        hi = WordSet(((0, 0),))
    if not lo.pure or not hi.pure:
        return None
    out: list[tuple[int, int]] = []
    if lo.ivs == FULL32:
        return tuple((a << 32, (b << 32) | M32) for a, b in hi.ivs)
    if iv_size(hi.ivs) > 4:
        return None
    for a, b in hi.ivs:
        for h in range(a, b + 1):
            out.extend(((h << 32) | x, (h << 32) | y) for x, y in lo.ivs)
    return iv_norm(out)


def _argname(sysname: str | None, i: int, view: View) -> str:
    if sysname:
        try:
            from ..formats.argnames import ARGS
        except ImportError:  # pragma: no cover
            return f"arg{i}"
        spec = ARGS.get(sysname)
        if spec and i < len(spec) and (sysname, view.arch.name if view.arch else "") not in _ARGNAME_QUIRKS:
            n = spec[i][0].lstrip("_")
            if n.isidentifier() and not n.startswith("arg"):
                return n
    return f"arg{i}"


# Syscalls whose argument order differs from the generic kernel one on some ABIs (so generic
# names would mislead): s390 clone takes (newsp, flags, ...); old 32-bit mmap takes a struct.
_ARGNAME_QUIRKS = {("clone", "s390"), ("clone", "s390x"), ("mmap", "x86"), ("mmap", "arm"), ("mmap", "s390"),
                   ("mmap", "m68k")}

# Argument -> constant-name prefix for readable masks, e.g. CLONE_NEWUSER|CLONE_NEWNS.
_FLAG_PREFIX = {("clone", 0): "CLONE_", ("unshare", 0): "CLONE_", ("setns", 1): "CLONE_", ("socket", 0): "AF_",
                ("personality", 0): "PER_", ("prctl", 0): "PR_", ("mprotect", 2): "PROT_", ("mmap", 2): "PROT_",
                ("mmap", 3): "MAP_", ("pkey_mprotect", 2): "PROT_", ("fcntl", 1): "F_", ("madvise", 2): "MADV_"}


def _flag_names(sysname: str | None, i: int, value: int, view: View) -> str | None:
    prefix = _FLAG_PREFIX.get((sysname or "", i))
    if not prefix or not value or view.arch is None:
        return None
    try:
        from ..constants import reverse  # type: ignore[attr-defined]
    except ImportError:
        return None
    try:
        got = reverse(value, view.arch.name, prefix)
    except (ValueError, KeyError, TypeError):
        return None
    if not got or got == hex(value) or got == str(value):
        return None
    return str(got)


def region_dims(r: Region, view: View, byteorder: str) -> dict[str, tuple]:
    """The region per dimension: "arch"/"nr" -> ("ws", WordSet); "argN"/"ip" -> ("iv", 64-bit
    intervals) when the two words combine, else ("ws2", lo WordSet, hi WordSet)."""
    d = dict(r.conds)
    out: dict[str, tuple] = {}
    for w, dim in ((WORD_ARCH, "arch"), (WORD_NR, "nr")):
        if w in d:
            out[dim] = ("ws", d.pop(w))
    pairs: list[tuple[str, int, int]] = [(f"arg{i}", *arg_words(i, byteorder)) for i in range(6)]
    pairs.append(("ip", *ip_words(byteorder)))
    for dim, lo_w, hi_w in pairs:
        lo, hi = d.pop(lo_w, FULL_WORD), d.pop(hi_w, FULL_WORD)
        if lo.is_full and hi.is_full:
            continue
        ivs = _arg64(lo, hi, view.bits)
        out[dim] = ("iv", ivs) if ivs is not None else ("ws2", lo, hi)
    return out


def _merge_dims(items: list[tuple[dict, tuple]], top: int) -> list[tuple[dict, tuple]]:
    """Union (dims, opaque) items that differ in one 64-bit interval dimension only."""
    cur = list(items)
    dims = sorted({k for d, _ in cur for k in d})
    changed = True
    while changed and len(cur) > 1:
        changed = False
        for k in dims:
            groups: dict[tuple, list[tuple[dict, tuple, tuple | None]]] = {}
            for d, opq in cur:
                x = d.get(k)
                if x is not None and x[0] != "iv":
                    key = (repr(opq), tuple(sorted((n, repr(v)) for n, v in d.items())), "solo")
                else:
                    key = (repr(opq), tuple(sorted((n, repr(v)) for n, v in d.items() if n != k)))
                groups.setdefault(key, []).append((d, opq, x))
            if all(len(g) == 1 for g in groups.values()):
                continue
            nxt = []
            for g in groups.values():
                if len(g) == 1:
                    nxt.append((g[0][0], g[0][1]))
                    continue
                changed = True
                merged = dict(g[0][0])
                if any(x is not None and x[0] != "iv" for _, _, x in g):
                    pass  # a "solo" group: the same bit-test set on k in each (duplicates)
                elif any(x is None for _, _, x in g):
                    merged.pop(k, None)  # one of them does not test k at all
                else:
                    u: tuple = ()
                    for _, _, x in g:
                        u = iv_or(u, x[1])  # type: ignore[index]
                    if u == ((0, top),):
                        merged.pop(k, None)
                    else:
                        merged[k] = ("iv", u)
                nxt.append((merged, g[0][1]))
            cur = nxt
    return cur


def _nblocks(lo: int, hi: int) -> int:
    n = 0
    while lo <= hi:
        size = lo & -lo if lo else 1 << 64
        while size > hi - lo + 1:
            size >>= 1
        lo += size
        n += 1
    return n


def iv_cost(ivs: tuple, top: int) -> int:
    """How many one-test conditions (OR-ed) a 64-bit interval set takes: ==, !=, <=, >= or blocks."""
    if not ivs or ivs == ((0, top),):
        return 0
    co = iv_not(ivs, top)
    if len(co) == 1 and co[0][0] == co[0][1]:
        return 1
    return sum(1 if lo == hi or lo == 0 or hi == top else _nblocks(lo, hi) for lo, hi in ivs)


def _dim_meets(x: tuple, y: tuple) -> bool:
    """Do two per-dimension sets (see :func:`region_dims`) share a value?"""
    if x[0] == "ws":
        return x[1].intersect(y[1]) is not None
    if x[0] == "iv" and y[0] == "iv":
        return bool(iv_and(x[1], y[1]))
    if x[0] == "ws2" and y[0] == "ws2":
        return x[1].intersect(y[1]) is not None and x[2].intersect(y[2]) is not None
    if x[0] == "ws2":
        x, y = y, x
    lo, hi = y[1], y[2]
    for a, b in x[1]:
        ah, al, bh, bl = a >> 32, a & M32, b >> 32, b & M32
        if ah == bh:
            if hi.contains(ah) and lo.restrict(((al, bl),)) is not None:
                return True
            continue
        if hi.contains(ah) and lo.restrict(((al, M32),)) is not None:
            return True
        if hi.contains(bh) and lo.restrict(((0, bl),)) is not None:
            return True
        if ah + 1 <= bh - 1 and hi.restrict(((ah + 1, bh - 1),)) is not None:
            return True
    return False


def _dims_subset(a: dict, b: dict) -> bool:
    for k, y in b.items():
        x = a.get(k)
        if x is None:
            return False
        if x != y and not (x[0] == y[0] == "iv" and iv_and(x[1], y[1]) == x[1]):
            return False
    return True


def relax(items: list[tuple[dict, tuple]], forbidden: list[tuple[dict, tuple]], top: int) -> list[tuple[dict, tuple]]:
    """Grow each item as far as it stays clear of every ``forbidden`` item, for simpler conditions.

    Used where overlaps do not matter (regions with the same result, OR-ed): a dimension's
    set becomes the complement of what the forbidden items need there (``fd != 1`` instead of
    three ranges), or is dropped when nothing forbidden depends on it. Exact: every grown item
    is still disjoint from every forbidden one (opaque conditions are treated as "may hold").
    """
    out: list[tuple[dict, tuple]] = []
    for dims, opq in items:
        cur = dict(dims)
        for d in sorted(cur):
            x = cur[d]
            if x[0] == "ws":
                continue
            rest = {k: v for k, v in cur.items() if k != d}
            rel: list[tuple] = []
            blocked = False
            for fd, _fo in forbidden:
                if not all(_dim_meets(v, fd[k]) for k, v in rest.items() if k in fd):
                    continue
                if d not in fd:
                    blocked = True
                    break
                rel.append(fd[d])
            if blocked:
                continue
            if not rel:
                del cur[d]
                continue
            if x[0] != "ws" and all(r[0] == "iv" for r in rel):
                bad: tuple = ()
                for r in rel:
                    bad = iv_or(bad, r[1])
                room = iv_not(bad, top)
                cands = [room, tuple(iv for iv in room if _dim_meets(("iv", (iv,)), x))]
                if x[0] == "iv":
                    cands.append(x[1])
                best = min(cands, key=lambda c: (iv_cost(c, top), -iv_size(c)))
                if x[0] == "ws2" and iv_cost(best, top) > 8:
                    continue  # keep the bit tests
                if best == ((0, top),):
                    del cur[d]
                else:
                    cur[d] = ("iv", best)
        out.append((cur, opq))
    out = _merge_dims(out, top)
    # Drop items another one contains.
    keep: list[tuple[dict, tuple]] = []
    for i, (d, o) in enumerate(out):
        if any(j != i and (not oo or oo == o) and _dims_subset(d, dd) and not (_dims_subset(dd, d) and j > i)
               for j, (dd, oo) in enumerate(out)):
            continue
        keep.append((d, o))
    return keep


def dims_conditions(dims: dict[str, tuple], opaque: tuple, view: View, byteorder: str,
                    sysname: str | None = None) -> list[str]:
    """Readable conditions (AND-ed) for a region in dimension form."""
    out: list[str] = []
    top = M32 if view.bits == 32 else M64
    for dim in ("arch", "nr"):
        if dim in dims:
            out += _ws_text(dim, dims[dim][1])
    for dim in [f"arg{i}" for i in range(6)] + ["ip"]:
        got = dims.get(dim)
        if got is None:
            continue
        idx = int(dim[3:]) if dim != "ip" else -1
        name = "ip" if dim == "ip" else _argname(sysname, idx, view)

        def label(v: int, _i: int = idx) -> str | None:
            got = _flag_names(sysname, _i, v, view) if v <= M32 else None
            # only names that spell the whole value (no leftover bits)
            return got if got and not any(p[:1].isdigit() for p in got.split("|")) else None
        if got[0] == "iv":
            t = _iv_text(name, got[1], top, label)
            if t:
                out.append(t)
            continue
        lo, hi = got[1], got[2]
        if hi.is_full or view.bits == 32:
            # Bit tests on the low word read the same on the whole 64-bit value.
            t = _iv_text(f"{name}.lo32", _own_ivs(lo), M32, label)  # int arguments: on their low word
            if t:
                out.append(t)
            if lo.fmask:
                flags = _flag_names(sysname, idx, lo.fmask, view)
                mask = fmt_num(lo.fmask) + (f" /* {flags} */" if flags else "")
                out.append(f"({name} & {mask}) == {fmt_num(lo.fval)}")
            for m, v in sorted(lo.nes):
                flags = _flag_names(sysname, idx, m, view)
                mask = fmt_num(m) + (f" /* {flags} */" if flags else "")
                out.append(f"({name} & {mask}) != {fmt_num(v)}")
            continue
        if _own_ivs(lo) == FULL32 and not lo.nes and hi.pure and len(hi.ivs) == 1 and hi.ivs[0][0] == hi.ivs[0][1]:
            h = hi.ivs[0][0]
            out.append(f"({name} & {fmt_num((M32 << 32) | lo.fmask)}) == {fmt_num((h << 32) | lo.fval)}")
            continue
        out += _ws_text(f"{name}.lo32", lo)
        out += _ws_text(f"{name}.hi32", hi)
    out += [atom_text(a, byteorder) for a in opaque]
    return out


def region_conditions(r: Region, view: View, byteorder: str, sysname: str | None = None) -> list[str]:
    """The region's constraints as readable conditions (AND-ed)."""
    return dims_conditions(region_dims(r, view, byteorder), r.opaque, view, byteorder, sysname)


def region_text(r: Region, view: View, byteorder: str, sysname: str | None = None) -> str:
    conds = region_conditions(r, view, byteorder, sysname)
    return " && ".join(conds) if conds else "always"


def behaviour_text(b: Behaviour, view: View, byteorder: str, sysname: str | None = None,
                   prefer_else: Action | None = None) -> str:
    """``allow if (clone_flags & 0x7e020000) == 0, else errno(1)``.

    ``prefer_else`` (usually what the view does with unlisted numbers) is said last, as "else",
    when the behaviour has it; otherwise the result with the most complicated condition is.
    """
    key = (view.key(), sysname, prefer_else)
    got = b._text.get(key)
    if got is not None:
        return got
    by_ret: dict[str, list[str]] = {}
    order: list[str] = []
    items: dict[str, list[tuple[dict, tuple]]] = {}
    unverified = any(r.unverified for r in b.regions)
    for r in b.regions:
        rt = _ret_text(r.ret, byteorder, r.kind)
        if rt not in items:
            items[rt] = []
            order.append(rt)
        items[rt].append((region_dims(r, view, byteorder), r.opaque))
    top = M32 if view.bits == 32 else M64
    merged = {rt: _merge_dims(items[rt], top) for rt in order}
    for rt in order:
        by_ret[rt] = []
        mine = merged[rt]
        if len(order) > 1 and len(mine) <= 64:
            others = [it for o in order if o != rt for it in merged[o]]
            if len(others) <= 256:
                mine = relax(mine, others, top)
        for dims, opq in mine:
            conds = dims_conditions(dims, opq, view, byteorder, sysname)
            by_ret[rt].append(" && ".join(conds) if conds else "always")
    if len(order) == 1:
        text = order[0]
    else:
        # The result with the most complicated condition is said last, as "else".
        pref = str(prefer_else) if prefer_else is not None else None
        last = pref if pref in by_ret else max(order, key=lambda rt: (sum(len(c) for c in by_ret[rt]),
                                                                        -order.index(rt)))
        parts = []
        for rt in order:
            if rt == last:
                continue
            conds = by_ret[rt]
            cond = " || ".join(f"({c})" if " && " in c and len(conds) > 1 else c for c in conds)
            parts.append(f"{rt} if {cond}")
        parts.append(f"else {last}")
        text = ", ".join(parts)
    if unverified:
        text += " [some conditions could not be shown satisfiable]"
    b._text[key] = text
    return text


# ---------------------------------------------------------------------------- per-view tables

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

    def behaviour_at(self, nr: int) -> Behaviour:
        i = bisect.bisect_right(self.cuts, nr) - 1
        return self.behaviours[self.which[i]]

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
    pts, slots = _slots(view.numbers[0], view.numbers[1], piece_ivs)
    behaviours: list[Behaviour] = []
    by_sig: dict[tuple, int] = {}
    by_key: dict[tuple, int] = {}
    which: list[int] = []
    for slot in slots:
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


# ---------------------------------------------------------------------------- the explanation

class Explanation:
    """The exact meaning of a program (or stack of programs).

    ``naming`` lists arches used to name syscalls in views that cover several arch tokens
    (e.g. a program without an arch check).
    """

    def __init__(self, execution: Execution, naming: Sequence[str] = (), sources: Sequence[str] = ()) -> None:
        self.execution = execution
        self.leaves = execution.leaves
        self.byteorder = execution.byteorder
        self.naming = tuple(naming)
        self.sources = tuple(sources)
        self._views: list[View] | None = None
        self._tables: dict[tuple, ViewTable] = {}

    # -- structure

    def views(self, arches: Sequence[str] | None = None) -> list[View]:
        if arches:
            return [views_for_arch(a) for a in arches]
        if self._views is None:
            self._views = compute_views([self.leaves], self.naming)
        return self._views

    def table(self, view: View) -> ViewTable:
        k = view.key()
        t = self._tables.get(k)
        if t is None:
            t = build_table(self.leaves, view, self.byteorder)
            self._tables[k] = t
        return t

    def unreachable(self) -> list[list[int]]:
        return self.execution.unreachable()

    @property
    def checks_arch(self) -> bool:
        return any(WORD_ARCH in lf.doms or any(WORD_ARCH in words_of(a) | words_of(b)
                                               for _, a, b, _ in lf.opaque) for lf in self.leaves)

    def words_used(self) -> set[int]:
        used: set[int] = set()
        for lf in self.leaves:
            used |= set(lf.doms)
            for _, a, b, _ in lf.opaque:
                used |= words_of(a) | words_of(b)
            if not isinstance(lf.ret, int):
                used |= words_of(lf.ret)
        return used

    @property
    def depends_on_ip(self) -> bool:
        return bool(self.words_used() & {2, 3})

    @property
    def exact_regions(self) -> bool:
        """False if some region kept an opaque condition or returns a computed value."""
        return all(not lf.opaque and isinstance(lf.ret, int) for lf in self.leaves)

    # -- semantics

    def decide(self, words: Sequence[int]) -> int:
        """The value returned for the seccomp_data ``words`` (16 x 32-bit)."""
        from .symexec import decide_ret

        return decide_ret(self.leaves, words)

    def data_words(self, arch: str | _arch.Arch, nr: int, args: Sequence[int] = (), ip: int = 0) -> list[int]:
        """seccomp_data words for a call made through ``arch`` (32-bit ABIs zero-extend)."""
        a = _arch.get(arch)
        args = list(args) + [0] * (6 - len(args))
        if a.bits == 32:
            args = [v & M32 for v in args]
            ip &= M32
        w = [0] * 16
        w[WORD_NR] = nr & M32
        w[WORD_ARCH] = a.token
        lo, hi = ip_words(self.byteorder)
        w[lo], w[hi] = ip & M32, (ip >> 32) & M32
        for i, v in enumerate(args):
            lo, hi = arg_words(i, self.byteorder)
            w[lo], w[hi] = v & M32, (v >> 32) & M32
        return w

    def action_for(self, arch: str, nr: int, args: Sequence[int] = (), ip: int = 0) -> Action:
        return Action.from_ret(self.decide(self.data_words(arch, nr, args, ip)))

    # -- output

    def view_entries(self, view: View) -> dict[str, Any]:
        """A view as plain data: behaviours, and number ranges with names."""
        t = self.table(view)
        ranges = t.ranges()
        users: dict[int, list[str]] = {}
        for lo, hi, bi in ranges:
            users.setdefault(bi, []).extend(n for _, n in _names_in(view, lo, hi))
        dact = t.behaviours[t.default_index()].unconditional
        out_b = []
        for bi, b in enumerate(t.behaviours):
            only = users.get(bi, [])
            sysname = only[0] if len(only) == 1 else None
            out_b.append({"id": bi, "text": behaviour_text(b, view, self.byteorder, sysname, dact),
                          "regions": [self._region_json(r, view, sysname) for r in b.regions]})
        calls = []
        for lo, hi, bi in ranges:
            names = _names_in(view, lo, hi)
            if lo == hi:
                calls.append({"nr": lo, "name": names[0][1] if names else None, "behaviour": bi})
            else:
                calls.append({"nr": [lo, hi], "names": [n for _, n in names], "behaviour": bi})
        return {"view": view.label, "arch": view.arch.name if view.arch else None,
                "tokens": [list(iv) for iv in view.tokens], "numbers": list(view.numbers), "bits": view.bits,
                "default": t.default_index(), "behaviours": out_b, "syscalls": calls}

    def _region_json(self, r: Region, view: View, sysname: str | None = None) -> dict[str, Any]:
        d: dict[str, Any] = {"ret": r.ret if isinstance(r.ret, int) else None,
                             "action": str(r.action) if r.action else None,
                             "conditions": [_ws_json(w, ws, self.byteorder) for w, ws in r.conds],
                             "opaque": [atom_text(a, self.byteorder) for a in r.opaque],
                             "text": region_text(r, view, self.byteorder, sysname)}
        if not isinstance(r.ret, int):
            d["returns"] = expr_text(r.ret, self.byteorder)
        if r.unverified:
            d["unverified"] = True
        return d

    def to_json(self, arches: Sequence[str] | None = None) -> dict[str, Any]:
        return {"sources": list(self.sources), "byteorder": self.byteorder, "filters": len(self.execution.lengths),
                "paths": len(self.leaves), "checks_arch": self.checks_arch,
                "depends_on_ip": self.depends_on_ip, "exact_regions": self.exact_regions,
                "unreachable": self.unreachable(),
                "views": [self.view_entries(v) for v in self.views(arches)]}

    def render(self, arches: Sequence[str] | None = None, *, verbose: bool = False, width: int = 100) -> str:
        lines: list[str] = []
        for view in self.views(arches):
            lines.extend(self._render_view(view, verbose, width))
            lines.append("")
        unreach = self.unreachable()
        for fi, pcs in enumerate(unreach):
            if pcs:
                where = f"filter {fi}: " if len(unreach) > 1 else ""
                lines.append(f"unreachable instructions: {where}{_pc_ranges(pcs)}")
        if self.depends_on_ip:
            lines.append("note: decisions depend on instruction_pointer (cannot be expressed as a profile)")
        if not self.checks_arch:
            lines.append("note: the program never checks the architecture")
        return "\n".join(lines).rstrip() + "\n"

    def _render_view(self, view: View, verbose: bool, width: int) -> list[str]:
        t = self.table(view)
        head = view.label
        if view.token is not None and view.arch is not None:
            head += f" (arch {view.token:#010x}"
            if view.numbers != (0, M32):
                head += f", numbers {fmt_num(view.numbers[0])}-{fmt_num(view.numbers[1])}"
            head += ")"
        elif view.arch is not None:
            head += f" (syscall names as {view.arch.name})"
        if view.token is None and view.tokens != FULL32:
            head += ": " + _token_text(view.tokens)
        if view.arch is not None and view.token is not None and view.arch.byteorder != self.byteorder:
            head += f" [never seen by this {self.byteorder}-endian program]"
        ranges = t.ranges()
        if len(t.behaviours) == 1:
            return [f"{head}: {behaviour_text(t.behaviours[0], view, self.byteorder)}"]
        lines = [head + ":"]
        default = t.default_index()
        dact = t.behaviours[default].unconditional
        uncond: dict[int, list[str]] = {}
        cond_lines: list[str] = []
        default_names: list[str] = []
        for lo, hi, bi in ranges:
            names = _names_in(view, lo, hi)
            b = t.behaviours[bi]
            if bi == default:
                default_names += [n for _, n in names]
                continue
            if b.unconditional is not None:
                lst = uncond.setdefault(bi, [])
                lst += _range_labels(lo, hi, names)
                continue
            if names and len(names) == hi - lo + 1:
                for nr, n in names:
                    cond_lines.append(f"  {n}: {behaviour_text(b, view, self.byteorder, n, dact)}")
            else:
                label = ", ".join(_range_labels(lo, hi, names))
                cond_lines.append(f"  {label}: {behaviour_text(b, view, self.byteorder, None, dact)}")
        for bi, labels in uncond.items():
            text = behaviour_text(t.behaviours[bi], view, self.byteorder)
            lines.extend(_wrap(f"  {text} ({_count(labels)}): ", labels, width))
        lines.extend(cond_lines)
        dtext = behaviour_text(t.behaviours[default], view, self.byteorder)
        if verbose and default_names:
            lines.extend(_wrap(f"  {dtext} ({len(default_names)}): ", default_names, width))
            lines.append(f"  every other number: {dtext}")
        else:
            extra = f" ({len(default_names)} named syscalls and every other number)" if default_names else ""
            lines.append(f"  everything else{extra}: {dtext}")
        return lines


def _count(labels: list[str]) -> str:
    return f"{len(labels)}"


def _names_in(view: View, lo: int, hi: int) -> list[tuple[int, str]]:
    if view.arch is None:
        return []
    if hi - lo < 4096:
        out = []
        for nr in range(lo, hi + 1):
            n = view.arch.name_of(nr)
            if n is not None:
                out.append((nr, n))
        return out
    return sorted((nr, n) for n, nr in view.arch.syscalls.items() if lo <= nr <= hi)


def _range_labels(lo: int, hi: int, names: list[tuple[int, str]]) -> list[str]:
    """Names, and the unnamed numbers between them as ranges."""
    out: list[str] = []
    cur = lo
    for nr, n in names:
        if nr > cur:
            out.append(fmt_num(cur) if nr - 1 == cur else f"{fmt_num(cur)}-{fmt_num(nr - 1)}")
        out.append(n)
        cur = nr + 1
    if cur <= hi:
        out.append(fmt_num(cur) if hi == cur else f"{fmt_num(cur)}-{fmt_num(hi)}")
    return out


def _wrap(prefix: str, words: list[str], width: int) -> list[str]:
    lines = []
    cur = prefix
    indent = " " * 4
    for w in words:
        add = w if cur.endswith(": ") or cur == indent else " " + w
        if len(cur) + len(add) > width and cur.strip():
            lines.append(cur)
            cur = indent + w
        else:
            cur += add
    lines.append(cur)
    return lines


def _pc_ranges(pcs: list[int]) -> str:
    out = []
    start = prev = pcs[0]
    for p in pcs[1:] + [None]:  # type: ignore[list-item]
        if p is not None and p == prev + 1:
            prev = p
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if p is not None:
            start = prev = p
    return ", ".join(out)


def _token_text(ivs: tuple) -> str:
    parts = []
    for lo, hi in ivs[:6]:
        parts.append(f"{lo:#x}" if lo == hi else f"{lo:#x}-{hi:#x}")
    return "tokens " + ", ".join(parts) + (", ..." if len(ivs) > 6 else "")


def _ws_json(w: int, ws: WordSet, byteorder: str) -> dict[str, Any]:
    dim, half = word_dim(w, byteorder)
    d: dict[str, Any] = {"word": w, "dim": dim}
    if half:
        d["half"] = half
    if ws.ivs != FULL32:
        d["intervals"] = [list(iv) for iv in ws.ivs]
    if ws.fmask:
        d["mask"], d["value"] = ws.fmask, ws.fval
    if ws.nes:
        d["not_equal"] = [list(x) for x in sorted(ws.nes)]
    return d


def explain_programs(programs: Sequence[Sequence[Insn]], byteorder: str = "little", *,
                     naming: Sequence[str] = (), sources: Sequence[str] = ()) -> Explanation:
    """Explain a program, or a stack of programs (oldest first), already checked."""
    return Explanation(execute(programs, byteorder), naming, sources)


def explain(program: Sequence[Insn], byteorder: str = "little", naming: Iterable[str] = ()) -> Explanation:
    """Explain one program (it is checked the way the kernel checks it first)."""
    from ..bpf.emulator import check

    check(program)
    return explain_programs([program], byteorder, naming=tuple(naming))
