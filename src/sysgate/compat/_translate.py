"""libseccomp filter state -> :class:`~sysgate.policy.Policy` objects -> one chained program.

libseccomp decides a call by walking the syscall's argument chain tree (:mod:`._db`): on each
level the nodes are tried in order, a true/false branch either returns an action, descends a
level or falls through to the next node, and falling off the top level gives the default
action. Flattened, that is an ordered list of (conjunction of word comparisons -> action),
first match wins. A :class:`Policy` lets the *strictest* matching rule win instead, which
agrees with first-match as long as no entry is beaten by a stricter *later* entry that can
match the same call. So the entries are split into layers: an entry goes to a later layer
than every earlier entry it could overlap with and would beat. Each layer is a Policy whose
"no rule matched" result is a sentinel; the programs are chained (the sentinel return becomes
a jump to the next program, which starts over with its own arch check), and only the last
layer returns the real default. Most filters need one layer; mixed actions on one syscall may
need more. Entries that can never match together (``arg0 == 1`` and ``arg0 == 2``) do not
constrain each other.

Word comparisons map onto :class:`~sysgate.policy.Condition`: a low-word test is a 32-bit
condition, a high-word test a 64-bit one on the shifted value (``hi >= d`` is
``arg >= d << 32``, ``hi == d`` a masked compare); a false branch of a high-word equality
(from ``NE``) becomes two range alternatives.

Arches that share an ``AUDIT_ARCH`` token (x86_64 with x32) are compiled together, others on
their own, because rule numbers are per arch; a group's "bad arch" return is the same
sentinel, so a call with another token falls through to the next group.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..bpf import insn as I
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from . import _db as D

__all__ = ["TranslateError", "decision_list", "layered_rules", "units", "build_program", "Unit", "evaluate",
           "Evaluator"]

U32 = 0xFFFFFFFF
X32_BIT = 0x40000000
#: A sanity bound on the rules one syscall may need in one layer.
MAX_RULES_PER_SYSCALL = 4000


class TranslateError(ValueError):
    """The filter cannot be turned into a program (too large or too complex)."""


# A word literal: (arg, hi word?, kind, mask, datum); kind "eq" means (word & mask) == datum.
Lit = tuple[int, bool, str, int, int]
SLit = tuple[Lit, bool]  # with its polarity
Entry = tuple[tuple[SLit, ...], int]  # conjunction -> libseccomp action


def _lit(n: D.Node) -> Lit:
    if n.op in (D.CMP_EQ, D.CMP_MASKED_EQ):
        return (n.arg, n.arg_h_flg, "eq", n.mask, n.datum)
    return (n.arg, n.arg_h_flg, "gt" if n.op == D.CMP_GT else "ge", U32, n.datum)


def _level(node: D.Node) -> list[Entry]:
    """First-match list for one tree level (see the module docstring)."""
    while node.lvl_prv is not None:
        node = node.lvl_prv
    out: list[Entry] = []
    n: D.Node | None = node
    while n is not None:
        lit = _lit(n)
        for pol, sub, flg, act in ((True, n.nxt_t, n.act_t_flg, n.act_t), (False, n.nxt_f, n.act_f_flg, n.act_f)):
            if sub is not None:
                out.extend((((lit, pol),) + conj, a) for conj, a in _level(sub))
            elif flg:
                out.append((((lit, pol),), act))
        n = n.lvl_nxt
    return out


def decision_list(entry: D.SysEntry) -> list[Entry]:
    """How libseccomp decides this syscall: first matching (conjunction, action); else default."""
    if entry.chains is None:
        return [((), entry.action)]
    return _level(entry.chains)


# -- satisfiability of conjunctions of word literals ---------------------------------------------

def _sat(conj: Iterable[SLit]) -> bool:
    """False only if the conjunction can never hold (each (arg, word) is a free 32-bit value)."""
    words: dict[tuple[int, bool], list[SLit]] = {}
    for sl in conj:
        words.setdefault((sl[0][0], sl[0][1]), []).append(sl)
    for lits in words.values():
        lo, hi = 0, U32
        fixed, value = 0, 0
        neq: list[tuple[int, int]] = []
        for (_, _, kind, mask, d), pos in lits:
            if kind == "gt":
                lo, hi = (max(lo, d + 1), hi) if pos else (lo, min(hi, d))
            elif kind == "ge":
                lo, hi = (max(lo, d), hi) if pos else (lo, min(hi, d - 1))
            elif pos:
                if (value ^ d) & fixed & mask:
                    return False
                fixed |= mask
                value |= d
            else:
                neq.append((mask, d))
        if lo > hi:
            return False
        if value > hi or (value | (~fixed & U32)) < lo:
            return False
        for mask, d in neq:
            if mask & ~fixed == 0 and (value & mask) == d:
                return False
        if fixed == U32 and not lo <= value <= hi:
            return False
    return True


# -- literals -> Conditions -------------------------------------------------------------------------

def _alternatives(sl: SLit) -> list[list[Condition]]:
    """Conditions equivalent to one signed literal, as a disjunction of conjunctions."""
    (arg, hi, kind, mask, d), pos = sl
    if not hi:
        def c(op: Op, v: int, m: int | None = None) -> Condition:
            return Condition(arg, op, v, m if m is not None else (1 << 64) - 1, 32)
        if kind == "eq":
            if mask == U32:
                return [[c(Op.EQ if pos else Op.NE, d)]]
            if mask == 0:
                return [[]] if pos else []
            if pos:
                return [[c(Op.MASKED_EQ, d, mask)]]
            return [[c(Op.MASKED_EQ, (~d) & b, b)] for b in _bits(mask)]
        if kind == "gt":
            if pos:
                return [] if d == U32 else [[c(Op.GT, d)]]
            return [[]] if d == U32 else [[c(Op.LE, d)]]
        if pos:  # ge
            return [[]] if d == 0 else [[c(Op.GE, d)]]
        return [] if d == 0 else [[c(Op.LT, d)]]

    def w(op: Op, v: int, m: int | None = None) -> Condition:
        return Condition(arg, op, v, m if m is not None else (1 << 64) - 1, 64)
    if kind == "eq":
        if mask == 0:
            return [[]] if pos else []
        if pos:
            return [[w(Op.MASKED_EQ, d << 32, mask << 32)]]
        if mask == U32:
            alts = []
            if d > 0:
                alts.append([w(Op.LT, d << 32)])
            if d < U32:
                alts.append([w(Op.GE, (d + 1) << 32)])
            return alts
        return [[w(Op.MASKED_EQ, ((~d) & b) << 32, b << 32)] for b in _bits(mask)]
    if kind == "gt":
        if pos:
            return [] if d == U32 else [[w(Op.GE, (d + 1) << 32)]]
        return [[]] if d == U32 else [[w(Op.LT, (d + 1) << 32)]]
    if pos:
        return [[]] if d == 0 else [[w(Op.GE, d << 32)]]
    return [] if d == 0 else [[w(Op.LT, d << 32)]]


def _bits(mask: int) -> list[int]:
    return [1 << i for i in range(32) if mask >> i & 1]


def _conditions(conj: Sequence[SLit]) -> list[tuple[Condition, ...]]:
    out: list[tuple[Condition, ...]] = [()]
    for sl in conj:
        alts = _alternatives(sl)
        out = [prefix + tuple(a) for prefix in out for a in alts]
        if not out:
            break
    return out


# -- merging the rules of one action back into whole-argument ranges --------------------------------
# libseccomp's tree splits each 64-bit test into word tests, so one rule (chdir: a0 == i && a1 != 0
# && a2 < LONG_MAX) comes back as several word-level paths (six there). Compiled as they are, 100
# such rules need over 10,000 instructions (libseccomp's test 05-sim-long_jumps, refused as too
# long): rules of one action that differ in one argument are merged back into value ranges.

Ranges = tuple[tuple[int, int], ...]  # sorted, disjoint, non-adjacent inclusive intervals


def _norm(iv: Iterable[tuple[int, int]]) -> Ranges:
    out: list[list[int]] = []
    for lo, hi in sorted(iv):
        if lo > hi:
            continue
        if out and lo <= out[-1][1] + 1:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _and(a: Ranges, b: Ranges) -> Ranges:
    out = []
    for lo1, hi1 in a:
        for lo2, hi2 in b:
            if max(lo1, lo2) <= min(hi1, hi2):
                out.append((max(lo1, lo2), min(hi1, hi2)))
    return _norm(out)


def _cond_ranges(c: Condition, top: int) -> Ranges | None:
    """The values (of the low word for width 32, else of the argument) ``c`` admits, or None."""
    v = c.value
    if c.op is Op.MASKED_EQ:
        if c.mask & top == top:
            return ((v, v),)
        if c.width == 64 and c.mask == U32 << 32:  # a high-word equality
            return ((v, v | U32),)
        return None
    return {Op.EQ: ((v, v),), Op.NE: _norm([(0, v - 1), (v + 1, top)]), Op.LT: _norm([(0, v - 1)]),
            Op.LE: ((0, v),), Op.GT: _norm([(v + 1, top)]), Op.GE: ((v, top),)}[c.op]


def _arg_ranges(conds: list[Condition]) -> tuple[int, Ranges] | None:
    """(width, ranges) all of ``conds`` (on one argument) admit together, or None if not ranges."""
    U64 = (1 << 64) - 1
    full: Ranges = ((0, U64),)
    low: Ranges = ((0, U32),)
    for c in conds:
        r = _cond_ranges(c, U32 if c.width == 32 else U64)
        if r is None:
            return None
        if c.width == 32:
            low = _and(low, r)
        else:
            full = _and(full, r)
    if not any(c.width == 64 for c in conds):
        return 32, low
    if low == ((0, U32),):
        return 64, full
    his = {x >> 32 for iv in full for x in iv}
    if len(his) != 1:
        return None  # a low-word test under a range of high words: not one set of ranges
    h = his.pop() << 32
    return 64, _and(full, tuple((h | a, h | b) for a, b in low))


def _range_conditions(arg: int, width: int, r: Ranges) -> list[tuple[Condition, ...]]:
    """The ranges as alternatives (conjunctions of conditions)."""
    top = U32 if width == 32 else (1 << 64) - 1
    if len(r) == 2 and r[0][0] == 0 and r[1][1] == top and r[0][1] + 2 == r[1][0]:
        return [(Condition(arg, Op.NE, r[0][1] + 1, width=width),)]
    out: list[tuple[Condition, ...]] = []
    for lo, hi in r:
        if lo == hi:
            out.append((Condition(arg, Op.EQ, lo, width=width),))
            continue
        cs = []
        if lo > 0:
            cs.append(Condition(arg, Op.GE, lo, width=width))
        if hi < top:
            cs.append(Condition(arg, Op.LE, hi, width=width))
        out.append(tuple(cs))
    return out


def merge_rules(rules: list[Rule]) -> list[Rule]:
    """The same decisions with fewer rules: rules of one syscall and action that test the same ranges
    on every argument but one are merged (their ranges on that argument united)."""
    keyed: list[tuple[Any, dict[int, tuple[int, Ranges]]]] = []
    kept: list[Rule] = []
    for r in rules:
        per: dict[int, list[Condition]] = {}
        for c in r.conditions:
            assert isinstance(c, Condition)  # rules made by seccomp_rule_add: one argument per test
            per.setdefault(c.arg, []).append(c)
        ranges = {}
        for a, cs in per.items():
            got = _arg_ranges(cs)
            if got is None:
                break
            ranges[a] = got
        else:
            if all(rg for _, rg in ranges.values()):
                keyed.append(((r.syscall, r.action), ranges))
            continue  # an empty range never matches: the rule is dropped
        kept.append(r)
    changed = True
    while changed:
        changed = False
        for arg in range(6):
            buckets: dict[Any, int] = {}
            merged: list[tuple[Any, dict[int, tuple[int, Ranges]]]] = []
            for key, ranges in keyed:
                width: int | None
                if arg not in ranges:
                    width = None
                else:
                    width = ranges[arg][0]
                others = tuple(sorted((a, v) for a, v in ranges.items() if a != arg))
                b = (key, others, width)
                j = buckets.get(b)
                if j is None:
                    buckets[b] = len(merged)
                    merged.append((key, dict(ranges)))
                    continue
                old = merged[j][1]
                if arg not in old or arg not in ranges:
                    if arg in old:  # the new rule does not test it: every value
                        del old[arg]
                else:
                    assert width is not None  # arg is in ranges
                    old[arg] = (width, _norm(old[arg][1] + ranges[arg][1]))
                    top = U32 if width == 32 else (1 << 64) - 1
                    if old[arg][1] == ((0, top),):
                        del old[arg]
                changed = True
            keyed = merged
    out = list(kept)
    for (syscall, action), ranges in keyed:
        alts: list[tuple[Condition, ...]] = [()]
        for a in sorted(ranges):
            width, rgs = ranges[a]
            alts = [x + y for x in alts for y in _range_conditions(a, width, rgs)]
        out.extend(Rule(syscall, action, conds) for conds in alts)
    return out if len(out) < len(rules) else list(rules)


# -- first-match list -> layers of strictest-wins rules ------------------------------------------

def _wins(a: Action, b: Action) -> bool:
    """Would the compiler pick ``a`` over ``b`` when both rules match?"""
    return a != b and a.stricter_than(b)


def layered_rules(entries: Sequence[Entry], syscall: int, extra_last: int | None = None) -> list[list[Rule]]:
    """Rules for ``syscall`` per layer, deciding like first-match over ``entries``.

    ``extra_last`` appends an always-matching entry (an explicit fall-through action).
    """
    items: list[tuple[tuple[SLit, ...], Action]] = [(conj, Action.from_ret(a)) for conj, a in entries]
    if extra_last is not None:
        items.append(((), Action.from_ret(extra_last)))
    layers: list[int] = []
    out: list[list[Rule]] = []
    for k, (conj, act) in enumerate(items):
        if not _sat(conj):
            layers.append(-1)
            continue
        layer = 0
        for j in range(k):
            lj = layers[j]
            if lj < 0 or not _sat(items[j][0] + conj):
                continue
            layer = max(layer, lj + 1 if _wins(act, items[j][1]) else lj)
        layers.append(layer)
        while len(out) <= layer:
            out.append([])
        for conds in _conditions(conj):
            out[layer].append(Rule(syscall, act, conds))
        if len(out[layer]) > MAX_RULES_PER_SYSCALL:
            raise TranslateError(f"syscall {syscall}: too many rules")
    return [merge_rules(layer) for layer in out]


# -- collection -> policies -> program --------------------------------------------------------------

@dataclass
class Unit:
    """One program to compile: its policy (default/bad_arch set by :func:`build_program`)."""

    arches: tuple[str, ...]
    rules: tuple[Rule, ...]
    default: Action | None  # None: "no match" goes on to the next program


def _emitted(s: D.SysEntry) -> bool:
    # placeholders from syscall_priority() and pseudo numbers (< -1) get no code; -1 (API_TSKIP) does
    return s.valid and s.num >= -1


def _entries_by_nr(filters: Sequence[D.DBFilter]) -> dict[int, D.SysEntry]:
    """Per (unsigned) number, the entry libseccomp checks first: highest priority, then filter order."""
    best: dict[int, D.SysEntry] = {}
    for f in filters:
        for s in f.syscalls:
            if not _emitted(s):
                continue
            nr = s.num & U32
            cur = best.get(nr)
            if cur is None or s.priority > cur.priority:
                best[nr] = s
    return best


def _layer_units(arches: tuple[str, ...], per_nr: dict[int, list[list[Rule]]], last_default: Action) -> list[Unit]:
    n = max((len(v) for v in per_nr.values()), default=1) or 1
    units = []
    for i in range(n):
        rules = tuple(r for nr in sorted(per_nr) for r in (per_nr[nr][i] if i < len(per_nr[nr]) else []))
        units.append(Unit(arches, rules, last_default if i == n - 1 else None))
    return units


def _groups(col: D.Collection) -> list[list[D.DBFilter]]:
    """Filters sharing an AUDIT_ARCH token (x86_64 and x32), in the collection's order."""
    groups: list[list[D.DBFilter]] = []
    for f in col.filters:
        for g in groups:
            if g[0].arch.token_bpf == f.arch.token_bpf:
                g.append(f)
                break
        else:
            groups.append([f])
    return groups


def units(col: D.Collection) -> list[Unit]:
    """The programs that together decide like ``col``, in chain order."""
    act_default = col.attr.act_default
    default = Action.from_ret(act_default)
    out: list[Unit] = []
    for g in _groups(col):
        names = tuple(f.arch.sg_name for f in g)
        entries = _entries_by_nr(g)
        per_nr = {nr: layered_rules(decision_list(s), nr) for nr, s in entries.items()}
        out.extend(_layer_units(names, per_nr, default))
        if names == ("x86_64",):
            # libseccomp lets nr -1 (a tracer's "skip") through its x32 check on x86_64: that
            # number is decided by the x86_64 rules, every other x32 number is a bad arch
            minus1 = entries.get(U32)
            if minus1 is not None or act_default != col.attr.act_badarch:
                dl = decision_list(minus1) if minus1 is not None else []
                per = {U32: layered_rules(dl, U32, extra_last=act_default)}
                out.extend(_layer_units(("x86_64", "x32"), per, Action.from_ret(col.attr.act_badarch)))
    return out


def _sentinel(used: set[int]) -> Action:
    for v in range(0xFFFF, -1, -1):
        a = Action(ActionKind.TRACE, v)
        if a.ret not in used:
            return a
    raise TranslateError("no free return value to chain the programs")  # pragma: no cover


def build_program(col: D.Collection) -> tuple[tuple[I.Insn, ...], str]:
    """The whole filter: (instructions, byte order)."""
    from ..compiler import CompileError, compile_policy

    if not col.filters:
        raise TranslateError("the filter has no architectures")
    us = units(col)
    used = {col.attr.act_default & U32, col.attr.act_badarch & U32}
    for u in us:
        used.update(r.action.ret for r in u.rules)
    sentinel = _sentinel(used)
    bad = Action.from_ret(col.attr.act_badarch)
    programs: list[tuple[I.Insn, ...]] = []
    byteorder = "little"
    try:
        for i, u in enumerate(us):
            last = i == len(us) - 1
            pol = Policy(u.default if u.default is not None else sentinel, u.rules, u.arches,
                         bad if last else sentinel)
            prog = compile_policy(pol, u.arches, narrow=False)  # libseccomp compares all 64 bits
            byteorder = prog.byteorder
            programs.append(prog.insns)
    except (CompileError, PolicyError) as e:
        raise TranslateError(str(e)) from None
    out: list[I.Insn] = []
    for i, insns in enumerate(programs):
        last = i == len(programs) - 1
        for pc, ins in enumerate(insns):
            if ins.code == I.RET | I.RET_A:  # pragma: no cover - the compiler returns constants
                raise TranslateError("compiled program returns the accumulator")
            if not last and ins.code == I.RET | I.RET_K and ins.k == sentinel.ret:
                ins = I.Insn(I.JMP | I.JA, 0, 0, len(insns) - pc - 1)
            out.append(ins)
    return tuple(out), byteorder


def _holds(lit: Lit, args: Sequence[int]) -> bool:
    arg, hi, kind, mask, d = lit
    word = (args[arg] >> 32) & U32 if hi else args[arg] & U32
    if kind == "eq":
        return word & mask == d
    return word > d if kind == "gt" else word >= d


class Evaluator:
    """What libseccomp's rules decide for a call, straight from the rule trees.

    The reference the compiled program is checked against; it shares no code with the Policy
    translation beyond :func:`decision_list`. Snapshot of ``col`` at construction.
    """

    def __init__(self, col: D.Collection) -> None:
        self.default = col.attr.act_default & U32
        self.badarch = col.attr.act_badarch & U32
        self.groups = []
        for g in _groups(col):
            entries = {nr: decision_list(s) for nr, s in _entries_by_nr(g).items()}
            self.groups.append((g[0].arch.token_bpf, tuple(f.arch.sg_name for f in g), entries))

    def __call__(self, arch: str, nr: int, args: Sequence[int] = ()) -> int:
        """``arch`` names the ABI making the call (a :mod:`sysgate.arch` name)."""
        from .. import arch as _sg

        a = _sg.get(arch)
        nr &= U32
        top = U32 if a.bits == 32 else (1 << 64) - 1
        vals = [v & top for v in list(args) + [0] * (6 - len(args))]
        for token, names, entries in self.groups:
            if token != a.token:
                continue
            if names == ("x86_64",) and nr >= X32_BIT and nr != U32:
                break
            if names == ("x32",) and nr < X32_BIT:
                break
            for conj, act in entries.get(nr, ()):
                if all(_holds(lit, vals) == pos for lit, pos in conj):
                    return act & U32
            return self.default
        return self.badarch


def evaluate(col: D.Collection, arch: str, nr: int, args: Sequence[int] = ()) -> int:
    """One call decided by :class:`Evaluator` (build an Evaluator to decide many)."""
    return Evaluator(col)(arch, nr, args)
