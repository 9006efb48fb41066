"""Text: conditions, behaviours and whole explanations as people read them.

Conditions on the two 32-bit words of an argument are combined into 64-bit conditions where
they pair up (``arg0 == 0x1_0000_0001``), regions with one result are merged and relaxed into
simpler equivalent conditions, and arguments are named after the syscall's parameters.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..bpf import insn as I
from ..policy import Action, ActionKind
from .domain import FULL32, FULL_WORD, M32, M64, WordSet, iv_and, iv_norm, iv_not, iv_or, iv_size
from .regions import Behaviour, Region
from .symexec import WORD_ARCH, WORD_NR, Expr, mk
from .views import View, names_in
from .words import arg_words, fmt_num, ip_words, word_label

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = ["ret_text", "expr_text", "atom_text", "own_ivs", "arg64", "region_dims", "merge_dims", "iv_cost",
           "relax", "dims_conditions", "region_conditions", "region_text", "behaviour_text", "range_labels",
           "render_explanation", "render_view", "RELAX_PAIRS"]


def ret_text(ret: Expr, byteorder: str, kind: int | None = None) -> str:
    """A returned value as an action (``errno(1)``), or the expression computing it."""
    if isinstance(ret, int):
        return str(Action.from_ret(ret))
    if kind is not None:
        k = ActionKind(kind)
        name = str(Action(k))
        if k in (ActionKind.ERRNO, ActionKind.TRACE):
            data = expr_text(mk(I.AND, ret, 0xFFFF), byteorder)
            if data.startswith("(") and data.endswith(")"):
                data = data[1:-1]
            name = f"{k.name.lower()}({data})"
        return name
    return "return " + expr_text(ret, byteorder)


_OPSYM = {I.ADD: "+", I.SUB: "-", I.MUL: "*", I.DIV: "/", I.OR: "|", I.AND: "&", I.LSH: "<<", I.RSH: ">>",
          I.MOD: "%", I.XOR: "^"}


def expr_text(e: Expr, byteorder: str) -> str:
    """An expression over the input words, as C-like text."""
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
    """An opaque condition ``(op, lhs, rhs, truth)`` as text."""
    op, a, b, truth = atom
    la, lb = expr_text(a, byteorder), expr_text(b, byteorder)
    if op == I.JSET:
        return f"({la} & {lb}) {'!=' if truth else '=='} 0"
    sym = {I.JEQ: ("==", "!="), I.JGT: (">", "<="), I.JGE: (">=", "<")}[op]
    return f"{la} {sym[0] if truth else sym[1]} {lb}"



#: Most (item, forbidden item) pairs :func:`relax` compares for one result of a behaviour: its
#: cost is about pairs x dimensions, and simpler conditions are not worth seconds of work.
RELAX_PAIRS = 2048

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


def own_ivs(ws: WordSet) -> tuple:
    """``ws``'s intervals, or the full range when the bit constraints alone imply them."""
    if ws.pure or ws.ivs == FULL32:
        return ws.ivs
    alone = WordSet.make(FULL32, ws.fmask, ws.fval, ws.nes)
    return FULL32 if alone is not None and alone.ivs == ws.ivs else ws.ivs


def _ws_text(name: str, ws: WordSet, top: int = M32) -> list[str]:
    out = []
    t = _iv_text(name, own_ivs(ws), top)
    if t:
        out.append(t)
    if ws.fmask:
        out.append(f"({name} & {fmt_num(ws.fmask)}) == {fmt_num(ws.fval)}" if ws.fmask != M32
                   else f"{name} == {fmt_num(ws.fval)}")
    for m, v in sorted(ws.nes):
        out.append(f"({name} & {fmt_num(m)}) != {fmt_num(v)}")
    return out


def arg64(lo: WordSet, hi: WordSet, bits: int) -> tuple | None:
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


def argname(sysname: str | None, i: int, view: View) -> str:
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
        from ..constants import reverse
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
        ivs = arg64(lo, hi, view.bits)
        out[dim] = ("iv", ivs) if ivs is not None else ("ws2", lo, hi)
    return out


def merge_dims(items: list[tuple[dict, tuple]], top: int) -> list[tuple[dict, tuple]]:
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
                key: tuple
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


_RELAXED: dict[tuple, tuple] = {}


def _frozen(items: list[tuple[dict, tuple]]) -> tuple:
    return tuple((tuple(sorted(d.items())), o) for d, o in items)


def relax(items: list[tuple[dict, tuple]], forbidden: list[tuple[dict, tuple]], top: int) -> list[tuple[dict, tuple]]:
    """:func:`relax_items`, remembered: a program that decides many syscalls alike (one chain of
    argument tests for every number) asks the same question once per syscall and ABI, and each
    answer costs items x forbidden x dimensions tests (a 150-instruction program took 50 s)."""
    key = (_frozen(items), _frozen(forbidden), top)
    hit = _RELAXED.get(key)
    if hit is None:
        hit = _frozen(relax_items(items, forbidden, top))
        if len(_RELAXED) > 1024:
            _RELAXED.clear()
        _RELAXED[key] = hit
    return [(dict(d), o) for d, o in hit]


def relax_items(items: list[tuple[dict, tuple]], forbidden: list[tuple[dict, tuple]],
                top: int) -> list[tuple[dict, tuple]]:
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
    out = merge_dims(out, top)
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
        name = "ip" if dim == "ip" else argname(sysname, idx, view)

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
            t = _iv_text(f"{name}.lo32", own_ivs(lo), M32, label)  # int arguments: on their low word
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
        if own_ivs(lo) == FULL32 and not lo.nes and hi.pure and len(hi.ivs) == 1 and hi.ivs[0][0] == hi.ivs[0][1]:
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
    got = b.text_cache.get(key)
    if got is not None:
        return got
    by_ret: dict[str, list[str]] = {}
    order: list[str] = []
    items: dict[str, list[tuple[dict, tuple]]] = {}
    unverified = any(r.unverified for r in b.regions)
    for r in b.regions:
        rt = ret_text(r.ret, byteorder, r.kind)
        if rt not in items:
            items[rt] = []
            order.append(rt)
        items[rt].append((region_dims(r, view, byteorder), r.opaque))
    top = M32 if view.bits == 32 else M64
    merged = {rt: merge_dims(items[rt], top) for rt in order}
    for rt in order:
        by_ret[rt] = []
        mine = merged[rt]
        if len(order) > 1 and len(mine) <= 64:
            others = [it for o in order if o != rt for it in merged[o]]
            if len(others) <= 256 and len(mine) * len(others) <= RELAX_PAIRS:
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
    b.text_cache[key] = text
    return text


def _count(labels: list[str]) -> str:
    return f"{len(labels)}"


def range_labels(lo: int, hi: int, names: list[tuple[int, str]]) -> list[str]:
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
    for p in pcs[1:] + [None]:
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


def render_explanation(e: Explanation, arches: Sequence[str] | None = None, *, verbose: bool = False,
                   width: int = 100) -> str:
    """The explanation as text: one block per view, then unreachable code and notes."""
    lines: list[str] = []
    for view in e.views(arches):
        lines.extend(render_view(e, view, verbose, width))
        lines.append("")
    unreach = e.unreachable()
    for fi, pcs in enumerate(unreach):
        if pcs:
            where = f"filter {fi}: " if len(unreach) > 1 else ""
            lines.append(f"unreachable instructions: {where}{_pc_ranges(pcs)}")
    if e.depends_on_ip:
        lines.append("note: decisions depend on instruction_pointer (cannot be expressed as a profile)")
    if not e.checks_arch:
        lines.append("note: the program never checks the architecture")
    return "\n".join(lines).rstrip() + "\n"


def render_view(e: Explanation, view: View, verbose: bool = False, width: int = 100) -> list[str]:
    """One view's lines: its header, the syscalls by behaviour, and what everything else gets."""
    t = e.table(view)
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
    if view.arch is not None and view.token is not None and view.arch.byteorder != e.byteorder:
        head += f" [never seen by this {e.byteorder}-endian program]"
    ranges = t.ranges()
    if len(t.behaviours) == 1:
        return [f"{head}: {behaviour_text(t.behaviours[0], view, e.byteorder)}"]
    lines = [head + ":"]
    default = t.default_index()
    dact = t.behaviours[default].unconditional
    uncond: dict[int, list[str]] = {}
    cond_lines: list[str] = []
    default_names: list[str] = []
    for lo, hi, bi in ranges:
        names = names_in(view, lo, hi)
        b = t.behaviours[bi]
        if bi == default:
            default_names += [n for _, n in names]
            continue
        if b.unconditional is not None:
            lst = uncond.setdefault(bi, [])
            lst += range_labels(lo, hi, names)
            continue
        if names and len(names) == hi - lo + 1:
            for _nr, n in names:
                cond_lines.append(f"  {n}: {behaviour_text(b, view, e.byteorder, n, dact)}")
        else:
            label = ", ".join(range_labels(lo, hi, names))
            cond_lines.append(f"  {label}: {behaviour_text(b, view, e.byteorder, None, dact)}")
    for bi, labels in uncond.items():
        text = behaviour_text(t.behaviours[bi], view, e.byteorder)
        lines.extend(_wrap(f"  {text} ({_count(labels)}): ", labels, width))
    lines.extend(cond_lines)
    dtext = behaviour_text(t.behaviours[default], view, e.byteorder)
    if verbose and default_names:
        lines.extend(_wrap(f"  {dtext} ({len(default_names)}): ", default_names, width))
        lines.append(f"  every other number: {dtext}")
    else:
        extra = f" ({len(default_names)} named syscalls and every other number)" if default_names else ""
        lines.append(f"  everything else{extra}: {dtext}")
    return lines
