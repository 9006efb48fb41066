"""Views: the architectures a program tells apart, each with its syscall numbers and names.

The x86_64 token is shown as two views, ``x86_64`` for numbers below 0x40000000 and ``x32``
for the rest (the kernel uses one token for both); tokens the program does not single out
are grouped ("any other arch").
"""
from __future__ import annotations

import bisect
from collections.abc import Sequence

from .. import arch as _arch
from .domain import FULL32, M32, WordSet, iv_norm
from .symexec import WORD_ARCH, Leaf
from .words import X32

__all__ = ["View", "views_for_arch", "compute_views", "slots", "names_in", "arch_ivs"]


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


def arch_ivs(ws: WordSet) -> tuple:
    """The arch word's set as intervals (a few hundred at most), else its interval part."""
    got = ws.as_intervals(256)
    return got if got is not None else ws.ivs


def slots(lo0: int, hi0: int, interval_sets: Sequence[tuple]) -> tuple[list[int], list[list[int]]]:
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
            all_ivs.append(FULL32 if ws is None else arch_ivs(ws))
    pts, sigs = slots(0, M32, all_ivs)
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
    unknown.sort(key=lambda v: v.token or 0)  # each unknown view has one token
    return known + unknown + multi


def names_in(view: View, lo: int, hi: int) -> list[tuple[int, str]]:
    """(number, name) of the view's named syscalls in ``lo..hi``."""
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
