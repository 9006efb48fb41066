"""The compiler's optimizations, as one list of named passes that can be switched off.

``compile_policy(policy, optimize=False)`` builds the straightforward program: every
syscall number a rule names is a leaf of its own in an evenly weighted search tree, each
rule's conditions are tested as written (constants loaded and compared at run time, masks
applied with an AND), every leaf has its own code, every load is made, far jumps go
through ``ja``. Each pass below makes that program shorter or faster without changing
what it decides; ``optimize=True`` (the default) applies them all, a collection of names
applies just those. tests/test_compiler_passes.py checks, as gVisor's optimizer fuzz test
does, that optimized and unoptimized programs decide every call alike on the emulator,
that the optimized one is never longer, and that the kernel loads unoptimized programs.

Each pass is a function (its docstring says what it does and why it is sound) applied at
the stage that has what it needs: ``layout`` (the runs of the syscall-number dispatch),
``select`` (a choice of instructions while nodes are made), ``node`` (a rewrite of each
node as it is made, bottom-up, which is the same as a rewrite of the whole DAG), ``graph``
(a rewrite of the finished DAG) and ``emit`` (the linear code). They run once each, in
this order (not until nothing changes, as gVisor's do): the order is the pipeline's, and
the shipped precompiled programs (tests/test_precompiled.py) pin the optimized output.

Not passes, because they decide what the policy means on an arch rather than how to
encode it: lowering's settling of conditions an ABI's argument width decides and its
dropping of rules that can never decide a call (:mod:`.lower`).
"""
from __future__ import annotations

from .emit import reuse_returns
from .graph import (
    cheaper_masked_tests,
    drop_redundant_loads,
    fold_constants,
    fold_equal_branches,
    group_equality_tests,
    share_identical_code,
    skip_decided_high_words,
)
from .layout import merge_equal_neighbours, weight_by_use

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

__all__ = ["Pass", "PASSES", "names", "select"]


class Pass:
    """One optimization: its ``name`` (the function's), ``stage`` and implementing ``function``."""

    __slots__ = ("name", "stage", "function")

    def __init__(self, stage: str, function: Callable[..., object]) -> None:
        self.name: str = function.__name__
        self.stage = stage
        self.function = function

    @property
    def doc(self) -> str:
        """What the pass does and why it is sound (the function's docstring)."""
        return self.function.__doc__ or ""

    def __repr__(self) -> str:
        return f"Pass({self.stage!r}, {self.name})"


PASSES: tuple[Pass, ...] = (
    Pass("layout", merge_equal_neighbours),
    Pass("layout", weight_by_use),
    Pass("select", group_equality_tests),
    Pass("select", fold_constants),
    Pass("select", cheaper_masked_tests),
    Pass("select", skip_decided_high_words),
    Pass("node", fold_equal_branches),
    Pass("node", share_identical_code),
    Pass("graph", drop_redundant_loads),
    Pass("emit", reuse_returns),
)

_NAMES = frozenset(p.name for p in PASSES)


def names() -> list[str]:
    """The pass names, in the order they apply."""
    return [p.name for p in PASSES]


def select(optimize: bool | Iterable[str]) -> frozenset[str]:
    """The names of the passes to apply: all (True), none (False) or the ones named.

    Raises ValueError naming an unknown pass.
    """
    if optimize is True:
        return _NAMES
    if optimize is False:
        return frozenset()
    if isinstance(optimize, str):  # one name, not its letters
        optimize = (optimize,)
    chosen = frozenset(optimize)
    unknown = sorted(chosen - _NAMES)
    if unknown:
        raise ValueError(f"unknown optimization pass {unknown[0]!r}; known: {', '.join(names())}")
    return chosen
