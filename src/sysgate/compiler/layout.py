"""Search-tree layout of the syscall-number dispatch.

Neighbouring numbers with the same decision are merged into ranges covering all 2^32
numbers; a binary search over range boundaries (one ``jge`` per level) then reaches each
range. The tree is weight-balanced (each split halves the weight on either side, which
is within a couple of levels of the optimal alphabetic tree and takes O(n log n)): each
real syscall number counts 1 and a number no syscall has counts a little, so the
decisions most calls need sit higher.
"""
from __future__ import annotations

import bisect

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from typing import Callable, Hashable, Sequence, TypeVar

    T = TypeVar("T", bound=Hashable)

U32 = 0xFFFFFFFF


def ranges(points: dict[int, T], fill: Callable[[int], T], lo: int = 0, hi: int = U32 + 1,
           cuts: Sequence[tuple[int, T]] = ()) -> list[tuple[int, int, T]]:
    """Cover [lo, hi) with (start, end, decision) runs.

    ``points`` maps single numbers to decisions; every other number gets ``fill(n)``, which
    must be constant between the boundaries given by ``cuts`` (start, decision) pairs.
    """
    out: list[tuple[int, int, T]] = []

    def add(s: int, e: int, d: T) -> None:
        if s >= e:
            return
        if out and out[-1][1] == s and out[-1][2] == d:
            out[-1] = (out[-1][0], e, d)
        else:
            out.append((s, e, d))

    bounds = sorted({lo, hi, *(c for c, _ in cuts if lo < c < hi)})
    pts = sorted(p for p in points if lo <= p < hi)
    i = 0
    for b0, b1 in zip(bounds, bounds[1:]):
        cur = b0
        filler = fill(b0)
        while i < len(pts) and pts[i] < b1:
            p = pts[i]
            add(cur, p, filler)
            add(p, p + 1, points[p])
            cur = p + 1
            i += 1
        add(cur, b1, filler)
    return out


def build_tree(starts: Sequence[int], weights: Sequence[float],
               leaf: Callable[[int], object], node: Callable[[int, object, object], object]) -> object:
    """Build the search tree bottom-up with callbacks; returns the root object.

    ``leaf(i)`` makes leaf i; ``node(threshold, left, right)`` makes "A >= threshold ? right : left".
    """
    n = len(starts)
    if n == 1:
        return leaf(0)
    pre = [0.0]
    for w in weights:
        pre.append(pre[-1] + w)

    def split(i: int, j: int) -> int:
        """First leaf of the right subtree: the boundary that best halves the weight of i..j."""
        half = (pre[i] + pre[j + 1]) / 2
        s = bisect.bisect_left(pre, half, i + 1, j + 1)
        best = min((c for c in (s - 1, s) if i + 1 <= c <= j), key=lambda c: abs(pre[c] - half), default=i + 1)
        return best

    def rec(i: int, j: int) -> object:
        if i == j:
            return leaf(i)
        s = split(i, j)
        return node(starts[s], rec(i, s - 1), rec(s, j))

    return rec(0, n - 1)
