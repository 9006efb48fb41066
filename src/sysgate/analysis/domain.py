"""Exact sets of 32-bit words: the values one word of ``seccomp_data`` can take on a path.

A :class:`WordSet` is the intersection of three kinds of constraint, which between them
describe exactly what classic BPF comparisons produce on a loaded word ``w``:

* a union of intervals (``JEQ``/``JGT``/``JGE`` on ``w`` itself);
* fixed bits, ``w & fmask == fval`` (``JSET`` false, ``(w & m) == v`` true, ...);
* "not equal under a mask" constraints, ``w & m != v`` (``JSET`` true, ``(w & m) == v`` false).

Every operation is exact. Emptiness is decided by :meth:`WordSet.first`, which finds the
smallest member with a bit-level search, so an empty set is never reported as reachable.

Interval sets (:data:`Intervals`) are sorted tuples of disjoint, non-adjacent inclusive
``(lo, hi)`` pairs; the helpers here work for any width (64-bit arguments use them too).
"""
from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

__all__ = ["M32", "M64", "Intervals", "FULL32", "WordSet", "iv_norm", "iv_and", "iv_or", "iv_not", "iv_has",
           "iv_size", "iv_shift", "iv_point", "FULL_WORD"]

M32 = 0xFFFFFFFF
M64 = (1 << 64) - 1

Intervals = tuple  # tuple[tuple[int, int], ...]
FULL32: Intervals = ((0, M32),)


def iv_point(v: int) -> Intervals:
    return ((v, v),)


def iv_norm(pairs: Iterable[tuple[int, int]]) -> Intervals:
    """Sort, drop empty pairs, merge overlapping and adjacent ones."""
    out: list[list[int]] = []
    for lo, hi in sorted(p for p in pairs if p[0] <= p[1]):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def iv_and(a: Intervals, b: Intervals) -> Intervals:
    if a == b:
        return a
    if len(a) < len(b):
        a, b = b, a
    if len(b) <= 4 < len(a):
        # A few intervals against many (a comparison on a long path): slice by bisection.
        parts: list[tuple[int, int]] = []
        for lo, hi in b:
            i = max(bisect.bisect_right(a, (lo, 1 << 65)) - 1, 0)
            j = bisect.bisect_right(a, (hi, 1 << 65))
            seg = a[i:j]
            if not seg:
                continue
            first, last = seg[0], seg[-1]
            if len(seg) == 1:
                x, y = max(first[0], lo), min(first[1], hi)
                if x <= y:
                    parts.append((x, y))
                continue
            if first[1] >= lo:
                parts.append((max(first[0], lo), first[1]))
            parts.extend(seg[1:-1])
            if last[0] <= hi:
                parts.append((last[0], min(last[1], hi)))
        return tuple(parts)
    out = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo = max(a[i][0], b[j][0])
        hi = min(a[i][1], b[j][1])
        if lo <= hi:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def iv_or(a: Intervals, b: Intervals) -> Intervals:
    return iv_norm(a + b)


def iv_not(a: Intervals, top: int = M32) -> Intervals:
    out = []
    nxt = 0
    for lo, hi in a:
        if lo > nxt:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)


def iv_has(a: Intervals, v: int) -> bool:
    i = bisect.bisect_right(a, (v, 1 << 65)) - 1
    return i >= 0 and a[i][0] <= v <= a[i][1]


def iv_size(a: Intervals) -> int:
    return sum(hi - lo + 1 for lo, hi in a)


def iv_shift(a: Intervals, d: int, top: int = M32) -> Intervals:
    """``{(x + d) mod (top+1) : x in a}``: intervals that wrap around are split."""
    mod = top + 1
    out = []
    for lo, hi in a:
        s, e = (lo + d) % mod, (hi + d) % mod
        if hi - lo == top:
            return ((0, top),)
        if s <= e:
            out.append((s, e))
        else:
            out.append((s, top))
            out.append((0, e))
    return iv_norm(out)


def _min_completion(nbits: int, fm: int, fv: int, clauses: list, memo: dict) -> int | None:
    """Smallest x < 2^nbits with ``x & fm == fv`` and ``x & m != v`` for every clause (m, v).

    Branches only on bits some clause looks at (highest first, 0 before 1); failures are
    memoised, so contradictory clauses are found without walking every value.
    """
    if not clauses:
        return fv
    bits = 0
    for m, _ in clauses:
        bits |= m
    b = bits.bit_length() - 1  # highest bit any clause looks at
    key = (b, fm & ((2 << b) - 1), fv & ((2 << b) - 1), frozenset(clauses))
    if key in memo:
        return None
    bit = 1 << b
    choices = ((fv & bit),) if fm & bit else (0, bit)
    for c in choices:
        rest = []
        for m, v in clauses:
            if m & bit:
                if (v & bit) != c:
                    continue  # satisfied
                m2 = m & ~bit
                if not m2:
                    break  # every bit equal: violated
                rest.append((m2, v & m2))
            else:
                rest.append((m, v))
        else:
            low = bit - 1
            x = _min_completion(b, fm & low, fv & low, rest, memo)
            if x is not None:
                # bits above b that no clause looks at take their fixed value (or 0)
                return (fv & ~((bit << 1) - 1) & ((1 << nbits) - 1)) | c | x
    memo[key] = True
    return None


class WordSet:
    """The set ``{w in ivs : w & fmask == fval and all(w & m != v for (m, v) in nes)}``.

    Immutable; constructors return None for the empty set. ``nes`` never mentions bits that
    ``fmask`` fixes (they are folded in), so two equal-looking sets compare equal.
    """

    __slots__ = ("ivs", "fmask", "fval", "nes", "_hash")

    def __init__(self, ivs: Intervals = FULL32, fmask: int = 0, fval: int = 0,
                 nes: frozenset = frozenset()) -> None:
        self.ivs = ivs
        self.fmask = fmask
        self.fval = fval
        self.nes = nes
        self._hash: int | None = None

    # -- construction (all return None when the result is empty)

    @staticmethod
    def make(ivs: Intervals, fmask: int = 0, fval: int = 0, nes: Iterable[tuple[int, int]] = ()) -> WordSet | None:
        fval &= fmask
        out: set[tuple[int, int]] = set()
        for m, v in nes:
            v &= m
            fixed = m & fmask
            if (v ^ fval) & fixed:
                continue  # the fixed bits already differ: always true
            m &= ~fmask
            v &= m
            if not m:
                return None  # the fixed bits make it equal: never true
            if m | fmask == M32:
                # Every bit is pinned: this excludes exactly one value; keep it as intervals.
                ivs = iv_and(ivs, iv_not(iv_point(fval | v)))
                if not ivs:
                    return None
                continue
            out.add((m, v))
        if fmask == M32:
            if not iv_has(ivs, fval):
                return None
            return WordSet(((fval, fval),))
        ws = WordSet(ivs, fmask, fval, frozenset(out))
        return ws._tighten()

    def _tighten(self) -> WordSet | None:
        """Shrink each interval to its first and last member (drop empty ones); canonical form."""
        if not self.fmask and not self.nes:
            return self if self.ivs else None
        new = []
        for lo, hi in self.ivs:
            f = self._first_from(lo)
            if f is None or f > hi:
                continue
            new.append((f, self._last_upto(hi, f)))
        if not new:
            return None
        ivs = tuple(new)
        if len(ivs) == 1 and ivs[0][0] == ivs[0][1]:
            return WordSet(ivs)
        if ivs == self.ivs:
            return self
        return WordSet(ivs, self.fmask, self.fval, self.nes)

    def restrict(self, ivs: Intervals) -> WordSet | None:
        new = iv_and(self.ivs, ivs)
        if not new:
            return None
        if new == self.ivs:
            return self
        return WordSet(new, self.fmask, self.fval, self.nes)._tighten()

    def with_fixed(self, m: int, v: int) -> WordSet | None:
        if v & ~m:
            return None
        if (self.fval ^ v) & (self.fmask & m):
            return None
        return WordSet.make(self.ivs, self.fmask | m, self.fval | v, self.nes)

    def with_ne(self, m: int, v: int) -> WordSet | None:
        if v & ~m:
            return self  # (w & m) can never equal v
        if not m:
            return None
        return WordSet.make(self.ivs, self.fmask, self.fval, self.nes | {(m, v)})

    def intersect(self, other: WordSet) -> WordSet | None:
        if other is self or other == self:
            return self
        if (self.fval ^ other.fval) & self.fmask & other.fmask:
            return None
        ivs = iv_and(self.ivs, other.ivs)
        if not ivs:
            return None
        return WordSet.make(ivs, self.fmask | other.fmask, self.fval | other.fval, self.nes | other.nes)

    # -- queries

    @property
    def is_full(self) -> bool:
        return self.ivs == FULL32 and not self.fmask and not self.nes

    @property
    def pure(self) -> bool:
        """Only intervals (no bit constraints)."""
        return not self.fmask and not self.nes

    def contains(self, w: int) -> bool:
        if not iv_has(self.ivs, w) or w & self.fmask != self.fval:
            return False
        return all(w & m != v for m, v in self.nes)

    def _first_from(self, lo: int) -> int | None:
        """Smallest member of the bit constraints (intervals ignored) that is ``>= lo``.

        Either ``lo`` itself, or ``lo``'s bits above some 0 bit i of ``lo``, bit i set, and the
        smallest completion of the bits below i (tried for i from low to high).
        """
        if lo > M32:
            return None
        fm, fv, nes = self.fmask, self.fval, self.nes
        if lo & fm == fv and all(lo & m != v for m, v in nes):
            return lo
        for i in range(32):
            if lo >> i & 1:
                continue
            low = (1 << i) - 1
            p = (lo >> (i + 1) << (i + 1)) | (1 << i)
            if (p ^ fv) & fm & ~low:
                continue
            alive = []
            for m, v in nes:
                if (p ^ v) & m & ~low:
                    continue  # already differs above bit i
                if not m & low:
                    break  # equal on every bit it looks at
                alive.append((m & low, v & low))
            else:
                x = _min_completion(i, fm & low, fv & low, alive, {})
                if x is not None:
                    return p | x
        return None

    def _last_upto(self, hi: int, lo: int) -> int:
        """Largest member <= hi, knowing ``lo`` is a member: search on the mirrored constraints."""
        mir = WordSet(FULL32, self.fmask, ~self.fval & self.fmask, frozenset((m, ~v & m) for m, v in self.nes))
        w = mir._first_from(M32 - hi)
        return lo if w is None else max(lo, M32 - w)

    def first(self, start: int = 0) -> int | None:
        """Smallest member ``>= start``, or None."""
        i = bisect.bisect_right(self.ivs, (start, 1 << 65)) - 1
        if i < 0 or self.ivs[i][1] < start:
            i += 1
        while i < len(self.ivs):
            lo, hi = self.ivs[i]
            w = self._first_from(max(lo, start))
            if w is not None and w <= hi:
                return w
            i += 1
        return None

    def last(self) -> int:
        lo, hi = self.ivs[-1]
        return self._last_upto(hi, self.first(lo) or lo)

    def members(self, limit: int) -> list[int] | None:
        """All members in order, or None if there are more than ``limit``."""
        if self.pure:
            if iv_size(self.ivs) > limit:
                return None
            return [w for lo, hi in self.ivs for w in range(lo, hi + 1)]
        out: list[int] = []
        w = self.first()
        while w is not None:
            out.append(w)
            if len(out) > limit:
                return None
            w = self.first(w + 1) if w < M32 else None
        return out

    def as_intervals(self, limit: int = 64) -> Intervals | None:
        """The same set as plain intervals, if that takes at most ``limit`` of them."""
        if self.pure:
            return self.ivs
        bits = self.fmask
        for m, _ in self.nes:
            bits |= m
        low = (bits & -bits).bit_length() - 1  # constraints only look at bits >= low
        block = 1 << low
        out: list[tuple[int, int]] = []
        steps = 0
        for lo, hi in self.ivs:
            w = self.first(lo)
            while w is not None and w <= hi:
                end = min(hi, (w | (block - 1)))
                if out and out[-1][1] + 1 == w:
                    out[-1] = (out[-1][0], end)
                else:
                    out.append((w, end))
                steps += 1
                if steps > limit:
                    return None
                w = self.first(end + 1) if end < M32 else None
        return tuple(out)

    def samples(self) -> Iterator[int]:
        """A few members worth trying: each interval's first and last, and bit-pattern edges."""
        seen: set[int] = set()
        for lo, hi in self.ivs[:8] + self.ivs[-4:]:
            for s in (lo, hi, (lo + hi) // 2):
                w = self.first(s)
                if w is not None and w not in seen:
                    seen.add(w)
                    yield w
        if self.ivs:
            w = self.last()
            if w not in seen:
                yield w

    # -- identity

    def _key(self) -> tuple:
        return (self.ivs, self.fmask, self.fval, tuple(sorted(self.nes)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordSet) and (self is other or self._key() == other._key())

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._key())
        return self._hash

    def __lt__(self, other: WordSet) -> bool:
        return self._key() < other._key()

    def __repr__(self) -> str:
        parts = []
        if self.ivs != FULL32:
            parts.append("in " + ",".join(f"[{lo:#x},{hi:#x}]" if lo != hi else f"{lo:#x}" for lo, hi in self.ivs))
        if self.fmask:
            parts.append(f"&{self.fmask:#x}=={self.fval:#x}")
        for m, v in sorted(self.nes):
            parts.append(f"&{m:#x}!={v:#x}")
        return "WordSet(" + (" ".join(parts) or "any") + ")"


FULL_WORD = WordSet()
