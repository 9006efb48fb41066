"""Search-tree layout of the syscall-number dispatch.

The 2^32 numbers are cut into runs of one decision (each number a rule names, and the
stretches between them); :func:`merge_equal_neighbours` merges neighbouring runs with the
same decision into one range. A binary search over range boundaries (one ``jge`` per level)
then reaches each range. The tree is weight-balanced (each split halves the weight on
either side, which is within a couple of levels of the optimal alphabetic tree and takes
O(n log n)); :func:`weight_by_use` weighs the ranges by how often calls need them, so the
decisions most calls need sit higher (without it every range weighs the same).
"""
from __future__ import annotations

import bisect

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence
    from typing import TypeVar

    T = TypeVar("T", bound=Hashable)

U32 = 0xFFFFFFFF


def ranges(points: dict[int, T], fill: Callable[[int], T], lo: int = 0, hi: int = U32 + 1,
           cuts: Sequence[tuple[int, T]] = ()) -> list[tuple[int, int, T]]:
    """Cover [lo, hi) with (start, end, decision) runs, in order.

    ``points`` maps single numbers to decisions; every other number gets ``fill(n)``, which
    must be constant between the boundaries given by ``cuts`` (start, decision) pairs.
    Each point is a run of its own; see :func:`merge_equal_neighbours`.
    """
    out: list[tuple[int, int, T]] = []

    def add(s: int, e: int, d: T) -> None:
        if s < e:
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


def merge_equal_neighbours(runs: Sequence[tuple[int, int, T]]) -> list[tuple[int, int, T]]:
    """Neighbouring runs with the same decision become one range: fewer leaves, so fewer
    ``jge`` tests in the search tree and less code for the leaves.

    Sound: every number of the merged range had that decision already, and the search tree
    routes every number of a range to the range's leaf.
    """
    out: list[tuple[int, int, T]] = []
    for s, e, d in runs:
        if out and out[-1][1] == s and out[-1][2] == d:
            out[-1] = (out[-1][0], e, d)
        else:
            out.append((s, e, d))
    return out


def weight_by_use(runs: Sequence[tuple[int, int, object]], defined: Sequence[int], min_paths: Sequence[int],
                  rare_from: int | None) -> list[float]:
    """Weights for :func:`build_tree`, so that the decisions most calls need sit higher.

    A real syscall number (in the sorted ``defined``) counts 1, a number no syscall has a
    little (rarely called). A range whose leaf still runs argument checks (``min_paths``:
    fewest instructions from the leaf to a return) counts up to 8 times more, pulling it
    up the tree by up to 3 levels so those calls do not pay a deep search on top of their
    checks; numbers from ``rare_from`` on (x32 next to x86_64) count 16 times less.
    Sound: any binary search tree over the same boundaries sends each number to the same
    leaf; weights only move leaves up or down.
    """
    weights = []
    for (start, end, _), path in zip(runs, min_paths):
        n_def = bisect.bisect_left(defined, end) - bisect.bisect_left(defined, start)
        w = (n_def + 0.01 * min(end - start - n_def, 64)) * 2 ** min(path - 1, 3)
        weights.append(w if rare_from is None or start < rare_from else w / 16)
    return weights


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
