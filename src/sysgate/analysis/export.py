"""A decompiled program back to a profile: :func:`to_policy` builds a :class:`~sysgate.policy.Policy`
whose compiled program decides every call the same, and proves it with an exact diff.

A profile (Docker/OCI, and the Policy model) can say less than a BPF program:

* one default action for every number no rule names, on every covered arch;
* rules name syscalls, and a rule applies to that name on every covered arch;
* other architectures are killed (the runtimes' only choice);
* conditions test arguments, one test per argument per rule (runc ORs repeated tests), never
  ``instruction_pointer`` or computed values.

So every region is written as rules with at most one 64-bit condition per argument:
intervals become ``<=``/``>=``/``==``/``!=`` where they are one-sided, and otherwise aligned
blocks ``(arg & mask) == value``; bit tests become masked equalities (a "some bit differs"
test becomes one rule per bit). The result is then compiled and compared with the program by
:func:`sysgate.analysis.diff.diff` on the covered views; any difference means the program
cannot be expressed and :class:`NotExpressible` names it.

With ``lossy=True`` whatever cannot be expressed is relaxed instead (conditions dropped,
per-arch differences merged), and every region of an affected syscall gets an explicit rule,
so that the policy's "strictest matching rule wins" keeps the export at least as strict as the
program for every call; the differences left are returned as warnings.
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import arch as _arch
from ..errors import UserError
from ..policy import KILL_PROCESS, Action, Condition, Op, Policy, Rule
from .domain import FULL32, FULL_WORD, M32, M64, WordSet, iv_not
from .explain import Explanation
from .regions import Behaviour, Region
from .render import arg64, atom_text, behaviour_text, merge_dims, own_ivs, region_dims, relax
from .views import View, names_in, views_for_arch

__all__ = ["NotExpressible", "Export", "to_policy", "verify"]

MAX_RULES_PER_REGION = 512


class NotExpressible(UserError):  # a ValueError
    """The program decides something a profile cannot say; the message says what."""


class Export:
    """The policy, the views it was checked on, and what was lost (empty unless lossy)."""

    __slots__ = ("policy", "views", "warnings")

    def __init__(self, policy: Policy, views: list[View], warnings: list[str]) -> None:
        self.policy = policy
        self.views = views
        self.warnings = warnings


class _Unexpressible(Exception):
    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


# ---------------------------------------------------------------------------- conditions

def _blocks(lo: int, hi: int, width: int) -> list[tuple[int, int]]:
    """Aligned power-of-two blocks covering [lo, hi] exactly, as (mask, value)."""
    top = (1 << width) - 1
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << width
        while size > hi - lo + 1:
            size >>= 1
        out.append((top & ~(size - 1), lo))
        lo += size
    return out


def _iv_alternatives(i: int, ivs: tuple, top: int) -> list[list[Condition]]:
    """One-condition alternatives (OR) for a 64-bit interval set of argument ``i``."""
    if ivs == ((0, top),):
        return [[]]
    co = iv_not(ivs, top)
    if len(co) == 1 and co[0][0] == co[0][1]:
        return [[Condition(i, Op.NE, co[0][0])]]
    alts: list[list[Condition]] = []
    for lo, hi in ivs:
        if lo == hi:
            alts.append([Condition(i, Op.EQ, lo)])
        elif lo == 0:
            alts.append([Condition(i, Op.LE, hi)])
        elif hi == top:
            alts.append([Condition(i, Op.GE, lo)])
        else:
            alts.extend([[Condition(i, Op.MASKED_EQ, v, mask=m)] for m, v in _blocks(lo, hi, 64)])
    return alts


def _ws_cubes(ws: WordSet) -> list[tuple[int, int]]:
    """``ws`` as a union of 32-bit cubes (mask, value)."""
    base: list[tuple[int, int]] = []
    for lo, hi in own_ivs(ws):  # intervals the bit tests already imply need no blocks
        base.extend(_blocks(lo, hi, 32))
    cubes = []
    for m, v in base:
        if (v ^ ws.fval) & m & ws.fmask:
            continue
        cubes.append((m | ws.fmask, (v & m) | ws.fval))
    for nm, nv in sorted(ws.nes):
        nxt = []
        for m, v in cubes:
            if (v ^ nv) & m & nm:
                nxt.append((m, v))  # already differs
                continue
            for b in range(32):
                bit = 1 << b
                if not nm & bit or m & bit:
                    continue
                nxt.append((m | bit, v | (~nv & bit)))
        cubes = list(dict.fromkeys(nxt))
        if len(cubes) > MAX_RULES_PER_REGION:
            raise _Unexpressible("an argument test needs too many rules")
    return cubes


def _arg_alternatives(i: int, lo: WordSet, hi: WordSet, bits: int) -> list[list[Condition]]:
    if bits == 32:
        hi = FULL_WORD  # the kernel zero-extends; compiled 32-bit tests ignore the high word
        if lo.pure:
            ivs = tuple((a, M64 if b == M32 else b) for a, b in lo.ivs)
            return _iv_alternatives(i, ivs, M64)
    if lo.pure and hi.pure:
        ivs64 = arg64(lo, hi, 64)
        if ivs64 is not None and len(ivs64) <= 16:
            return _iv_alternatives(i, ivs64, M64)
    out = []
    for hm, hv in _ws_cubes(hi) if not hi.is_full else [(0, 0)]:
        for lm, lv in _ws_cubes(lo) if not lo.is_full else [(0, 0)]:
            m, v = (hm << 32) | lm, (hv << 32) | lv
            out.append([Condition(i, Op.MASKED_EQ, v, mask=m)] if m else [])
    return out


def _compact_alternatives(i: int, got: tuple, bits: int) -> list[list[Condition]]:
    """Alternatives for one argument with several conditions per rule allowed (the Policy model):
    two-sided ranges are ``>= a`` and ``<= b``, low-word tests are 32-bit conditions."""
    if got[0] == "iv":
        top = M64
        ivs = got[1] if bits == 64 else tuple((a, M64 if b == M32 else b) for a, b in got[1])
        co = iv_not(ivs, top)
        if len(co) == 1 and co[0][0] == co[0][1]:
            return [[Condition(i, Op.NE, co[0][0])]]
        alts = []
        for a, b in ivs:
            c = []
            if a == b:
                c.append(Condition(i, Op.EQ, a))
            else:
                if a:
                    c.append(Condition(i, Op.GE, a))
                if b != top:
                    c.append(Condition(i, Op.LE, b))
            alts.append(c)
        return alts
    lo, hi = got[1], got[2]
    out: list[list[Condition]] = [[]]
    for ws, shift, width in ((lo, 0, 32), (hi, 32, 64)):
        if ws.is_full or (bits == 32 and shift):
            continue
            part: list[list[Condition]] = []
        own = own_ivs(ws)
        base: list[Condition] = []
        if ws.fmask:
            base.append(Condition(i, Op.MASKED_EQ, ws.fval << shift, mask=ws.fmask << shift,
                                  width=width if not shift else 64))
        iv_alts: list[list[Condition]] = [[]]
        if own != FULL32:
            iv_alts = []
            for a, b in own:
                c = []
                if shift:
                    if a:
                        c.append(Condition(i, Op.GE, a << 32))
                    if b != M32:
                        c.append(Condition(i, Op.LE, (b << 32) | M32))
                elif a == b:
                    c.append(Condition(i, Op.EQ, a, width=32))
                else:
                    if a:
                        c.append(Condition(i, Op.GE, a, width=32))
                    if b != M32:
                        c.append(Condition(i, Op.LE, b, width=32))
                iv_alts.append(c)
        part = [base + c for c in iv_alts]
        for m, v in sorted(ws.nes):  # "some bit under m differs from v": one alternative per bit
            bit_alts = []
            for bpos in range(32):
                bit = 1 << bpos
                if m & bit:
                    bit_alts.append(Condition(i, Op.MASKED_EQ, (~v & bit) << shift, mask=bit << shift,
                                              width=32 if not shift else 64))
            part = [c + [x] for c in part for x in bit_alts]
        out = [a + b for a in out for b in part]
    return out


def _dims_rules(dims: dict, opaque: tuple, view: View, byteorder: str, lossy: bool,
                single: bool = True) -> list[list[Condition]]:
    """Conjunctions (OR-ed) of argument conditions whose union is the region (in dimension form).

    ``single``: at most one (64-bit) condition per argument in each conjunction, as Docker and
    OCI need; otherwise the Policy model's AND of several and 32-bit tests are used. With
    ``lossy``, what cannot be expressed is dropped (the region grows).
    """
    problems = []
    if "arch" in dims:
        problems.append("it tests the architecture value beyond equality")
    if "nr" in dims:
        problems.append("it tests the syscall number beyond ranges")
    if "ip" in dims:
        problems.append("it depends on instruction_pointer")
    if opaque:
        problems.append("it tests a computed value (" + ", ".join(atom_text(a, byteorder) for a in opaque) + ")")
    if problems and not lossy:
        raise _Unexpressible("; ".join(problems))
    combos: list[list[Condition]] = [[]]
    for i in range(6):
        got = dims.get(f"arg{i}")
        if got is None:
            continue
        if not single:
            alts = _compact_alternatives(i, got, view.bits)
        elif got[0] == "iv":
            ivs = got[1]
            if view.bits == 32:  # the high word is always 0: "up to 2^32-1" is "up to 2^64-1"
                ivs = tuple((a, M64 if b == M32 else b) for a, b in ivs)
            alts = _iv_alternatives(i, ivs, M64)
        else:
            alts = _arg_alternatives(i, got[1], got[2], view.bits)
        combos = [c + a for c in combos for a in alts]
        if len(combos) > MAX_RULES_PER_REGION:
            raise _Unexpressible("its argument tests need too many rules")
    return combos


def _action(r: Region, lossy: bool) -> Action:
    if r.action is not None:
        return r.action
    if not lossy:
        raise _Unexpressible("it returns a computed value")
    return KILL_PROCESS


# ---------------------------------------------------------------------------- the policy

def _unnamed_behaviours(e: Explanation, view: View) -> set[int]:
    import bisect

    t = e.table(view)
    named = sorted(set(view.arch.syscalls.values())) if view.arch else []
    out: set[int] = set()
    for lo, hi, bi in t.ranges():
        if hi - lo + 1 > bisect.bisect_right(named, hi) - bisect.bisect_left(named, lo):
            out.add(bi)
    return out


def to_policy(e: Explanation, arches: Sequence[str] | None = None, *, lossy: bool = False,
              single: bool = True) -> Export:
    """A policy deciding like ``e`` on the covered arches (all it tells apart, or ``arches``).

    ``single`` (the default) writes at most one condition per argument in each rule, as Docker
    and OCI profiles need; ``single=False`` allows the Policy model's full conditions.
    """
    warnings: list[str] = []
    bo = e.byteorder
    if e.depends_on_ip and not lossy:
        raise NotExpressible("the program's decisions depend on instruction_pointer, which a profile cannot "
                             "test (use --lossy for a profile at least as strict)")
    minus_one: Action | None = None  # what nr -1 gets on the x86_64 token when x32 is left out
    if arches:
        covered = [views_for_arch(a) for a in arches]
        wrong = [v.label for v in covered if v.arch is not None and v.arch.byteorder != bo]
        if wrong:
            raise NotExpressible(f"{', '.join(wrong)}: a {bo}-endian program never runs there")
    else:
        views = e.views()
        # Tokens of the other byte order never reach this program: leave them out.
        covered = [v for v in views if v.arch is not None and v.token is not None and v.arch.byteorder == bo]
        others = [v for v in views if v not in covered and not (v.arch is not None and v.token is not None)]
        if not covered:
            if not lossy:
                raise NotExpressible("the program never checks the architecture, and a profile always does: "
                                     "choose the architectures to export with --arch")
            covered = [views_for_arch(e.naming[0] if e.naming else _arch.native().name)]
        for v in others:
            vbs = e.table(v).behaviours
            act = vbs[0].unconditional if len(vbs) == 1 else None
            if act != KILL_PROCESS:
                what = behaviour_text(vbs[0], v, bo) if len(vbs) == 1 else "different things per syscall"
                msg = (f"{v.label}: the program decides {what}; a profile kills the process on architectures "
                       "it does not list (export some architectures only with --arch)")
                if not lossy:
                    raise NotExpressible(msg)
                warnings.append(msg)
        # x32 numbers: leave x32 out when they are simply killed (what a profile does to uncovered ABIs),
        # but for -1, a tracer's skipped call, which gets the default (as libseccomp and we compile it).
        x32 = [v for v in covered if v.label == "x32"]
        if x32:
            t32 = e.table(x32[0])
            bs = t32.behaviours
            if len(bs) == 1 and bs[0].unconditional == KILL_PROCESS:
                covered.remove(x32[0])
            elif len(bs) == 2 and KILL_PROCESS in (bs[0].unconditional, bs[1].unconditional):
                other = 0 if bs[1].unconditional == KILL_PROCESS else 1
                if list(t32.numbers_of(other)) == [(M32, M32)] and bs[other].unconditional is not None:
                    covered.remove(x32[0])
                    minus_one = bs[other].unconditional
    # The default action: what every covered view does with numbers no rule can name.
    default: Action | None = None
    for v in covered:
        t = e.table(v)
        for bi in _unnamed_behaviours(e, v):
            b = t.behaviours[bi]
            act = b.unconditional
            if act is None:
                msg = (f"{v.label}: syscall numbers without a name are decided by their arguments "
                       f"({behaviour_text(b, v, bo)})")
                if not lossy:
                    raise NotExpressible(msg)
                warnings.append(msg)
                act = max((r.action or KILL_PROCESS for r in b.regions), key=lambda a: (a.strictness, -a.data))
            if default is None:
                default = act
            elif act != default:
                where = ", ".join(f"{lo:#x}" if lo == hi else f"{lo:#x}-{hi:#x}"
                                  for lo, hi in t.numbers_of(bi)[:4])
                msg = (f"{v.label}: numbers without a syscall name get {default} elsewhere but {act} at {where}; "
                       "a profile has one default action for them")
                if not lossy:
                    raise NotExpressible(msg)
                warnings.append(msg)
                if act.stricter_than(default):
                    default = act
    if default is None:
        default = KILL_PROCESS
    if minus_one is not None and minus_one != default:
        msg = f"x32: nr -1 gets {minus_one}, not the default {default}; a profile gives it the default"
        if not lossy:
            raise NotExpressible(msg)
        warnings.append(msg)
    # Rules: per syscall name, from the first covered view that has it (64-bit views first).
    # (x32 and n32 compare only the low word: their rules cannot stand for a 64-bit ABI's)
    order = sorted(covered, key=lambda v: (v.arch.compare_bits if v.arch else v.bits) != 64)
    per_name: dict[str, list[tuple[View, Behaviour]]] = {}
    for v in order:
        t = e.table(v)
        for lo, hi, bi in t.ranges():
            for _nr, name in names_in(v, lo, hi):
                per_name.setdefault(name, []).append((v, t.behaviours[bi]))
    rules: list[Rule] = []
    # A behaviour is usually shared by many names (a program that never tests the number gives
    # one to all ~400): its rules are worked out once and renamed.
    made: dict[tuple, list[Rule] | _Unexpressible] = {}
    for name, seen in per_name.items():
        conflict = len({b.key for _, b in seen}) > 1
        # Without conflicts (or when exact), the first view's behaviour is the rule set; the
        # verification below catches arches that decide the name differently.
        todo = seen if (conflict and lossy) else seen[:1]
        for v, b in todo:
            key = (id(b), v.label, conflict and lossy)
            got = made.get(key)
            if got is None:
                try:
                    got = _rules_for("_", b, v, bo, default, lossy, explicit=conflict and lossy, single=single)
                except _Unexpressible as x:
                    got = x
                made[key] = got
            if isinstance(got, _Unexpressible):
                raise NotExpressible(f"{v.label} {name}: {got.why} ({behaviour_text(b, v, bo, name)})") from None
            rules.extend(r.replace(syscall=name) for r in got)
    rules = list(dict.fromkeys(rules))
    policy = Policy(default, tuple(rules), tuple(v.label for v in covered), KILL_PROCESS)
    problems = verify(e, policy, covered)
    if problems:
        if not lossy:
            raise NotExpressible(problems[0][0] + " (a profile applies one rule per syscall name to every arch it "
                                                  "covers: export one arch at a time with --arch, or use --lossy)")
        weaker = [p for p, kind in problems if kind not in ("stricter",)]
        if weaker:  # the construction above rules this out; never hand out a weaker profile
            raise NotExpressible("internal error: the lossy profile would be weaker: " + weaker[0])
        warnings.extend(p for p, _ in problems)
    return Export(policy, covered, warnings)


def _rules_for(name: str, b: Behaviour, view: View, bo: str, default: Action, lossy: bool,
               explicit: bool = False, single: bool = True) -> list[Rule]:
    """Rules for one syscall deciding like behaviour ``b``, two ways, the one with fewer rules.

    Exact cover: a rule for each region whose action is not the default. Layered: the least
    strict action unconditionally, and each stricter action over its regions and those of
    even stricter ones (the strictest matching rule wins, so that is exact too, and the
    conditions are often simpler). ``explicit`` (several arches' rules merged, lossy) forces
    the layered form with every call covered by some rule. What cannot be expressed only
    makes the layered form stricter, so lossy relaxations use it.
    """
    top = M32 if view.bits == 32 else M64
    by_act: dict[Action, list[tuple[dict, tuple]]] = {}
    for r in b.regions:
        by_act.setdefault(_action(r, lossy), []).append((region_dims(r, view, bo), r.opaque))
    by_act = {a: merge_dims(v, top) for a, v in by_act.items()}
    order = sorted(by_act, key=lambda a: (a.strictness, -a.data))  # least strict first

    def rules(act: Action, items: list[tuple[dict, tuple]], forbidden: list[tuple[dict, tuple]],
              lossy_: bool) -> list[Rule]:
        out: list[Rule] = []
        if len(items) <= 64 and len(forbidden) <= 256:
            items = relax(items, forbidden, top)  # overlaps with allowed regions make simpler tests
        for dims, opq in items:
            out += [Rule(name, act, tuple(c)) for c in _dims_rules(dims, opq, view, bo, lossy_, single)]
            if len(out) > MAX_RULES_PER_REGION:
                raise _Unexpressible("its argument tests need too many rules")
        return out

    def layered(lossy_: bool) -> list[Rule]:
        out: list[Rule] = []
        if order[0] != default or explicit:
            out.append(Rule(name, order[0]))
        for k, act in enumerate(order[1:], 1):
            items = [it for a in order[k:] for it in by_act[a]]
            weaker = [it for a in order[:k] for it in by_act[a]]
            out += rules(act, items, weaker, lossy_)
        return out

    def exact_cover() -> list[Rule]:
        out: list[Rule] = []
        for a in order:
            if a != default:
                others = [it for o in order if o != a for it in by_act[o]]
                out += rules(a, by_act[a], others, False)
        return out

    candidates: list[list[Rule]] = []
    problem: _Unexpressible | None = None
    for build in ((lambda: layered(False)), exact_cover):
        if explicit and len(candidates) == 1:
            break
        try:
            candidates.append(build())
        except _Unexpressible as x:
            problem = x
    if candidates:
        return min(candidates, key=len)
    if not lossy:
        raise problem  # type: ignore[misc]
    return layered(True)


def verify(e: Explanation, policy: Policy, views: Sequence[View]) -> list[tuple[str, str]]:
    """Differences between ``e`` and the compiled ``policy`` on ``views`` (empty: equal), as
    (text, kind) with kind "weaker"/"stricter"/"changed" for the profile relative to the program."""
    from ..compiler import compile_policy
    from .diff import diff
    from .explain import explain_programs

    # As the format's own tool reads the profile: a program built by libseccomp tests all 64 bits
    # of int arguments, and the profile that says so is exact there (sysgate's programs test only
    # the low word of those, which comes back as 32-bit conditions: the same either way).
    prog = compile_policy(policy, skip_unknown=True, narrow=False)
    other = explain_programs([prog.insns], prog.byteorder)
    res = diff(e, other, views=list(views))
    out = []
    for entry in res.entries:
        for text, ta, tb, kind in entry.where(e.byteorder):
            out.append((f"{entry.view.label} {', '.join(entry.labels()[:4])}: where {text}, the program "
                        f"decides {ta} but the profile {tb}", kind))
    return out
