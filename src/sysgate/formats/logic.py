"""Boolean algebra over argument conditions: what converting between rule languages needs.

sysgate ORs the rules of a syscall and lets the strictest matching action win; each rule is
an AND of single comparisons. Other formats differ: minijail and Kafel take the *first*
matching rule, Kafel has ``!`` and ``(arg & mask) < value``, Firecracker compares 32-bit
words, runc ORs (rather than ANDs) two conditions on one argument, and minijail has no
masked-equal but ``arg & FLAG`` and ``arg in MASK``. This module converts exactly between
these, in disjunctive normal form (:data:`DNF`: a tuple of conjunctions, each a tuple of
:class:`~sysgate.policy.Condition`), or raises :class:`TooComplex` when the exact form would
be too large to be useful.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import UserError
from ..policy import Action, Compare, Condition, Op, Rule

__all__ = ["Conj", "DNF", "TRUE", "FALSE", "TooComplex", "absorb", "negate", "and_", "or_", "not_", "simplify",
           "and_all", "first_match", "first_match_rules", "masked_compare", "as_64bit", "narrow32",
           "single_arg_options", "strictest_first", "MAX_TERMS", "MAX_WRITTEN"]

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

Conj = tuple  # tuple[Condition, ...]: all must hold
DNF = tuple  # tuple[Conj, ...]: one must hold
TRUE: DNF = ((),)
FALSE: DNF = ()
MAX_TERMS = 4096  # conjunctions in one expression before we give up
MAX_WRITTEN = 128  # alternatives one written rule may expand to before a writer calls it a loss


class TooComplex(UserError):
    """The exact conversion needs more than :data:`MAX_TERMS` conjunctions."""


def _top(width: int) -> int:
    return U32 if width == 32 else U64


def _bits(m: int) -> list[int]:
    return [1 << i for i in range(64) if m >> i & 1]


# ------------------------------------------------------------------------------------------ basics

def negate(c: Condition) -> DNF:
    """``not c`` (a masked-equal becomes one single-bit test per bit of its mask)."""
    if isinstance(c, Compare):
        return ((c.replace(op=_OPPOSITE[c.op]),),)
    if c.op is Op.MASKED_EQ:
        m = c.mask & _top(c.width)
        if c.value & ~m:
            return TRUE  # c can never hold
        if m == 0:
            return FALSE  # c always holds
        return tuple((Condition(c.arg, Op.MASKED_EQ, b & ~c.value, mask=b, width=c.width),) for b in _bits(m))
    return ((Condition(c.arg, _OPPOSITE[c.op], c.value, width=c.width),),)


_OPPOSITE = {Op.EQ: Op.NE, Op.NE: Op.EQ, Op.LT: Op.GE, Op.LE: Op.GT, Op.GT: Op.LE, Op.GE: Op.LT}


def _interval(c: Condition) -> tuple[int, int] | None:
    """[lo, hi] that ``c`` allows, for the ordered operators other than != (None otherwise)."""
    t, v = _top(c.width), c.value
    if c.op is Op.EQ:
        return (v, v)
    if c.op is Op.LT:
        return (0, v - 1) if v else (1, 0)
    if c.op is Op.LE:
        return (0, v)
    if c.op is Op.GT:
        return (v + 1, t) if v < t else (1, 0)
    if c.op is Op.GE:
        return (v, t)
    return None


def simplify(conj: Iterable[Condition | Compare]) -> Conj | None:
    """The conjunction without duplicates and tautologies, or None if it can never hold.

    Contradictions are found for the common cases (two different values for one argument,
    an empty range, clashing masked bits); what is not found is kept, never mis-simplified.
    """
    out: list[Condition] = []
    seen: set = set()  # a list's `in` made a rule of n terms cost n^3 (and_ simplifies each prefix)
    compares: list[Compare] = []  # argument-to-argument tests: kept as written, after the others
    for c in conj:
        if c in seen:
            continue
        seen.add(c)
        if isinstance(c, Compare):
            if _OPPOSITE[c.op] in {k.op for k in compares if (k.left, k.right, k.width) == (c.left, c.right, c.width)}:
                return None  # "x == y && x != y"
            compares.append(c)
            continue
        t = _top(c.width)
        if c.op is Op.MASKED_EQ:
            m = c.mask & t
            if c.value & ~m:
                return None
            if m == 0:
                continue
        elif (c.op is Op.GE and c.value == 0) or (c.op is Op.LE and c.value == t):
            continue
        elif (c.op is Op.LT and c.value == 0) or (c.op is Op.GT and c.value == t):
            return None
        out.append(c)
    for arg in {c.arg for c in out}:
        mine = [c for c in out if c.arg == arg]
        # One exact 64-bit value decides every other condition on the argument.
        eqs = {c.value for c in mine if c.op is Op.EQ and c.width == 64}
        if len(eqs) > 1:
            return None
        if eqs:
            v = eqs.pop()
            if not all(c.holds(v) for c in mine):
                return None
            keep = Condition(arg, Op.EQ, v)
            out = [c for c in out if c.arg != arg or c == keep]
            continue
        for width in (64, 32):
            same = [c for c in mine if c.width == width]
            lo, hi = 0, _top(width)
            for c in same:
                iv = _interval(c)
                if iv is not None:
                    lo, hi = max(lo, iv[0]), min(hi, iv[1])
            if lo > hi:
                return None
            for c in same:
                if c.op is Op.NE and lo == hi == c.value:
                    return None
            m = v = 0
            for c in same:
                if c.op is Op.MASKED_EQ:
                    if (c.value ^ v) & m & c.mask:
                        return None
                    m |= c.mask
                    v |= c.value
            if width == 32 and lo == hi:  # an exact low word decides the other low-word tests
                if not all(c.holds(lo) for c in same):
                    return None
    return tuple(out) + tuple(compares)


def _dedupe(terms: Iterable[Conj]) -> DNF:
    seen: dict[Conj, None] = {}
    for t in terms:
        if t == ():
            return TRUE
        seen.setdefault(t, None)
    if len(seen) > MAX_TERMS:
        raise TooComplex(f"more than {MAX_TERMS} alternatives")
    return tuple(seen)


def or_(*parts: DNF) -> DNF:
    return _dedupe(t for p in parts for t in p)


def and_(a: DNF, b: DNF) -> DNF:
    if len(a) * len(b) > MAX_TERMS * 4:
        raise TooComplex(f"more than {MAX_TERMS} alternatives")
    out = []
    for x in a:
        for y in b:
            s = simplify(x + y)
            if s is not None:
                out.append(s)
    return _dedupe(out)


def and_all(parts: Iterable[DNF]) -> DNF:
    """``parts[0] and parts[1] and ...``, like folding :func:`and_`, in time linear in the number
    of single-conjunction parts (a rule of 1,000 ``&&`` terms): their conditions are gathered and
    simplified once, where a fold simplifies every prefix again."""
    result: DNF = TRUE
    pending: list[Condition] = []
    for d in parts:
        if len(d) == 1:
            pending.extend(d[0])
            continue
        if pending:
            result = and_(result, (tuple(pending),))
            pending = []
        result = and_(result, d)
    if pending or result == TRUE:
        result = and_(result, (tuple(pending),))
    return result


_ABSORB_BY = 256


def absorb(d: DNF) -> DNF:
    """``d`` without the conjunctions another one implies by being a subset of it (``a or (a and b)``
    is ``a``). Negating several masked-equal tests multiplies their per-bit alternatives; absorbing
    keeps one alternative per bit the excluded values share: "low word not TIOCSTI and not TIOCLINUX"
    is 35 alternatives instead of 1,000."""
    if len(d) < 2:
        return d
    kept: list[frozenset] = []
    singles: set = set()  # the common case, checked in constant time
    out: list[Conj] = []
    for conj in sorted(d, key=len):
        s = frozenset(conj)
        if not s:
            return TRUE
        # Only the shortest kept terms (the likeliest to absorb) are tried: the check stays linear in
        # len(d) at MAX_TERMS; a term not absorbed is merely kept, never wrong.
        if singles.intersection(s) or any(k <= s for k in kept[:_ABSORB_BY]):
            continue
        if len(s) == 1:
            singles |= s
        else:
            kept.append(s)
        out.append(conj)
    return tuple(out)


def not_(d: DNF) -> DNF:
    result = TRUE
    for conj in d:
        if not conj:
            return FALSE
        alternatives = or_(*(negate(c) for c in conj))
        result = absorb(and_(result, alternatives))
        if not result:
            return FALSE
    return result


# --------------------------------------------------------------------------- rule-list semantics

def first_match(filters: Sequence[tuple[DNF, Action]], skip: Iterable[int] = ()) -> list[tuple[DNF, Action]]:
    """Regions for a first-match list, such that strictest-wins over them decides the same.

    Filter *i* fires when its expression holds and no earlier one does. Under strictest-wins
    it is enough to exclude the earlier filters whose action it would beat: where an earlier,
    at-least-as-strict filter also matches, that one wins anyway. Regions of the filters in
    ``skip`` are not computed (returned as FALSE).
    """
    out: list[tuple[DNF, Action]] = []
    negated: dict[int, DNF] = {}
    skipped = set(skip)
    for i, (expr, action) in enumerate(filters):
        region = FALSE if i in skipped else expr
        for j in range(i):
            if region and action.stricter_than(filters[j][1]) and filters[j][0]:
                if j not in negated:
                    negated[j] = not_(filters[j][0])
                region = and_(region, negated[j])
        out.append((region, action))
        if expr == TRUE:
            break  # nothing after an unconditional filter is ever reached
    return out


def first_match_rules(syscall: str | int, filters: Sequence[tuple[DNF, Action]], default: Action) -> list[Rule]:
    """sysgate rules for one syscall's first-match filter list, under the policy ``default``."""
    # A filter with the default action can go when nothing less strict comes after it: where it
    # fires, nothing less strict fires either, and the default says the same.
    skip = set()
    less_strict_after = False
    for i in reversed(range(len(filters))):
        action = filters[i][1]
        if action == default and not less_strict_after:
            skip.add(i)
        less_strict_after = less_strict_after or default.stricter_than(action)
    rules: list[Rule] = []
    for i, (region, action) in enumerate(first_match(filters, skip)):
        if i not in skip:
            rules.extend(Rule(syscall, action, conj) for conj in region)
    return rules


def strictest_first(rules: Iterable[Rule]) -> list[tuple[Conj, Action]]:
    """One syscall's rules as a first-match list that decides as strictest-wins does."""
    items = sorted(((tuple(r.conditions), r.action) for r in rules),
                   key=lambda ca: (-ca[1].strictness, ca[1].data))
    out: list[tuple[Conj, Action]] = []
    for conds, action in items:
        s = simplify(conds)
        if s is None or any(k == s for k, _ in out):
            continue  # never holds, or an earlier, at-least-as-strict rule covers it
        out.append((s, action))
        if not s:
            break
    return out


# ------------------------------------------------------------------------- re-expressing compares

def _mq(arg: int, mask: int, value: int, width: int) -> Conj:
    return (Condition(arg, Op.MASKED_EQ, value, mask=mask, width=width),) if mask else ()


def masked_compare(arg: int, mask: int, op: Op, value: int, width: int = 64) -> DNF:
    """``(arg & mask) OP value`` on ``width``-bit words, as ordinary conditions.

    With a full mask that is one condition; otherwise ranges of the masked value become
    masked-equal tests on bit prefixes (at most one per bit).
    """
    t = _top(width)
    mask &= t
    if op is Op.MASKED_EQ:
        raise ValueError("use Condition for masked-equal")
    if value > t:
        return TRUE if op in (Op.NE, Op.LT, Op.LE) else FALSE
    if mask == t:
        return ((Condition(arg, op, value, width=width),),)
    if op is Op.EQ:
        return FALSE if value & ~mask else (_mq(arg, mask, value, width),)
    if op is Op.NE:
        return TRUE if value & ~mask else negate(Condition(arg, Op.MASKED_EQ, value, mask=mask, width=width))
    if op is Op.LE:
        return TRUE if value == t else masked_compare(arg, mask, Op.LT, value + 1, width)
    if op is Op.GT:
        return FALSE if value == t else masked_compare(arg, mask, Op.GE, value + 1, width)
    terms: list[Conj] = []
    above = 0
    if op is Op.LT:
        for i in reversed(range(width)):
            b = 1 << i
            if value & b:
                # Equal above bit i, 0 at bit i: below value.
                terms.append(_mq(arg, (mask & above) | (mask & b), value & mask & above, width))
                if not mask & b:
                    break  # the masked value has 0 here but value has 1: no longer prefix can match
            above |= b
        return _dedupe(terms)
    # GE
    if value == 0:
        return TRUE
    for i in reversed(range(width)):
        b = 1 << i
        if not value & b:
            if mask & b:  # 1 where value has 0, equal above: greater
                terms.append(_mq(arg, (mask & above) | b, (value & mask & above) | b, width))
        elif not mask & b:
            return _dedupe(terms)  # the masked value has 0 where value has 1: cannot be >= along here
        above |= b
    terms.append(_mq(arg, mask, value, width))  # equal
    return _dedupe(terms)


def as_64bit(c: Condition) -> DNF:
    """A condition on the low 32 bits as 64-bit conditions (unchanged if already 64-bit)."""
    if c.width == 64:
        return ((c,),)
    if c.op is Op.MASKED_EQ:
        return ((Condition(c.arg, Op.MASKED_EQ, c.value, mask=c.mask & U32),),)
    return masked_compare(c.arg, U32, c.op, c.value, 64)


def narrow32(c: Condition) -> DNF:
    """``c`` on an ABI whose arguments are 32 bits (zero-extended by the kernel): always true,
    never true, or a test of the low word with a value that fits it."""
    v = c.value
    if c.op is Op.MASKED_EQ:
        m = c.mask & U32
        if v & ~m & U64:
            return FALSE
        return TRUE if m == 0 else ((Condition(c.arg, Op.MASKED_EQ, v, mask=m, width=32),),)
    if v <= U32:
        return ((Condition(c.arg, c.op, v, width=32),),)
    return TRUE if c.op in (Op.NE, Op.LT, Op.LE) else FALSE


def _blocks(lo: int, hi: int) -> list[tuple[int, int]]:
    """[lo, hi] as aligned power-of-two blocks (value, mask): at most 128 of them."""
    out = []
    while lo <= hi:
        size = lo & -lo if lo else 1 << 64
        while lo + size - 1 > hi:
            size >>= 1
        out.append((lo, U64 & ~(size - 1)))
        lo += size
    return out


def single_arg_options(arg: int, conds: Sequence[Condition]) -> DNF | None:
    """The AND of 64-bit ``conds`` on one argument as an OR of *single* conditions.

    For formats that cannot AND two conditions on one argument. None if that is not
    possible (a range combined with a mask over a large set).
    """
    s = simplify(conds)
    if s is None:
        return FALSE
    if len(s) <= 1:
        return (s,)
    masked = [c for c in s if c.op is Op.MASKED_EQ]
    ordered = [c for c in s if c.op is not Op.MASKED_EQ]
    m = v = 0
    for c in masked:
        if (c.value ^ v) & m & c.mask:
            return FALSE
        m |= c.mask
        v |= c.value
    merged = Condition(arg, Op.MASKED_EQ, v, mask=m)
    if not ordered:
        return ((merged,),)
    ivs = [(0, U64)]
    for c in ordered:
        if c.op is Op.NE:
            cut = [(0, c.value - 1)] if c.value else []
            cut += [(c.value + 1, U64)] if c.value < U64 else []
        else:
            cut = [_interval(c)]  # type: ignore[list-item]
        ivs = [(max(a, x), min(b, y)) for a, b in ivs for x, y in cut if max(a, x) <= min(b, y)]
    if masked:
        if sum(b - a + 1 for a, b in ivs) > 64:
            return None
        return tuple((Condition(arg, Op.EQ, p),) for a, b in ivs for p in range(a, b + 1) if p & m == v)
    if not ivs:
        return FALSE
    if ivs == [(0, U64)]:
        return TRUE
    if len(ivs) == 2 and ivs[0][0] == 0 and ivs[1][1] == U64 and ivs[0][1] + 2 == ivs[1][0]:
        return ((Condition(arg, Op.NE, ivs[0][1] + 1),),)
    out: list[Conj] = []
    for a, b in ivs:
        if a == b:
            out.append((Condition(arg, Op.EQ, a),))
        elif a == 0:
            out.append((Condition(arg, Op.LE, b),))
        elif b == U64:
            out.append((Condition(arg, Op.GE, a),))
        else:
            out.extend((Condition(arg, Op.MASKED_EQ, val, mask=mask),) for val, mask in _blocks(a, b))
    return tuple(out)
