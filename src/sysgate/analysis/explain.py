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

The parts live in their own modules: :mod:`.words` (the seccomp_data words), :mod:`.views`,
:mod:`.regions` (regions, behaviours, per-view tables), :mod:`.render` (text) and
:mod:`.explain_json` (plain data); their main names are re-exported here.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from .. import arch as _arch
from ..bpf.insn import Insn
from ..policy import Action
from .domain import M32
from .explain_json import explanation_json, view_json
from .regions import Behaviour, Region, ViewTable, build_table
from .render import behaviour_text, region_text, render_explanation
from .symexec import WORD_ARCH, WORD_NR, AnalysisError, Execution, execute, words_of
from .views import View, compute_views, views_for_arch
from .words import X32, arg_words, fmt_num, ip_words, word_label

__all__ = ["Explanation", "View", "Region", "Behaviour", "ViewTable", "explain", "explain_programs",
           "AnalysisError", "word_label", "fmt_num", "X32", "behaviour_text", "region_text", "views_for_arch",
           "compute_views", "arg_words", "ip_words"]


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
        return view_json(self, view)

    def to_json(self, arches: Sequence[str] | None = None) -> dict[str, Any]:
        return explanation_json(self, arches)

    def render(self, arches: Sequence[str] | None = None, *, verbose: bool = False, width: int = 100) -> str:
        return render_explanation(self, arches, verbose=verbose, width=width)


def explain_programs(programs: Sequence[Sequence[Insn]], byteorder: str = "little", *,
                     naming: Sequence[str] = (), sources: Sequence[str] = ()) -> Explanation:
    """Explain a program, or a stack of programs (oldest first), already checked."""
    return Explanation(execute(programs, byteorder), naming, sources)


def explain(program: Sequence[Insn], byteorder: str = "little", naming: Iterable[str] = ()) -> Explanation:
    """Explain one program (it is checked the way the kernel checks it first)."""
    from ..bpf.emulator import check

    check(program)
    return explain_programs([program], byteorder, naming=tuple(naming))
