"""An explanation as plain data (``sysgate explain --json``): views, behaviours, regions."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .domain import FULL32, WordSet
from .regions import Region
from .render import atom_text, behaviour_text, expr_text, region_text
from .views import View, names_in
from .words import word_dim

if TYPE_CHECKING:
    from .explain import Explanation

__all__ = ["explanation_json", "view_json", "region_json", "wordset_json"]


def view_json(e: Explanation, view: View) -> dict[str, Any]:
    """A view as plain data: behaviours, and number ranges with names."""
    t = e.table(view)
    ranges = t.ranges()
    users: dict[int, list[str]] = {}
    for lo, hi, bi in ranges:
        users.setdefault(bi, []).extend(n for _, n in names_in(view, lo, hi))
    dact = t.behaviours[t.default_index()].unconditional
    out_b = []
    for bi, b in enumerate(t.behaviours):
        only = users.get(bi, [])
        sysname = only[0] if len(only) == 1 else None
        out_b.append({"id": bi, "text": behaviour_text(b, view, e.byteorder, sysname, dact),
                      "regions": [region_json(r, view, e.byteorder, sysname) for r in b.regions]})
    calls: list[dict[str, Any]] = []
    for lo, hi, bi in ranges:
        names = names_in(view, lo, hi)
        if lo == hi:
            calls.append({"nr": lo, "name": names[0][1] if names else None, "behaviour": bi})
        else:
            calls.append({"nr": [lo, hi], "names": [n for _, n in names], "behaviour": bi})
    return {"view": view.label, "arch": view.arch.name if view.arch else None,
            "tokens": [list(iv) for iv in view.tokens], "numbers": list(view.numbers), "bits": view.bits,
            "default": t.default_index(), "behaviours": out_b, "syscalls": calls}

def region_json(r: Region, view: View, byteorder: str, sysname: str | None = None) -> dict[str, Any]:
    """A region as plain data: its word constraints, opaque conditions, result and text."""
    d: dict[str, Any] = {"ret": r.ret if isinstance(r.ret, int) else None,
                         "action": str(r.action) if r.action else None,
                         "conditions": [wordset_json(w, ws, byteorder) for w, ws in r.conds],
                         "opaque": [atom_text(a, byteorder) for a in r.opaque],
                         "text": region_text(r, view, byteorder, sysname)}
    if not isinstance(r.ret, int):
        d["returns"] = expr_text(r.ret, byteorder)
    if r.unverified:
        d["unverified"] = True
    return d

def explanation_json(e: Explanation, arches: Sequence[str] | None = None) -> dict[str, Any]:
    """The whole explanation as plain data (``sysgate explain --json``)."""
    return {"sources": list(e.sources), "byteorder": e.byteorder, "filters": len(e.execution.lengths),
            "paths": len(e.leaves), "checks_arch": e.checks_arch,
            "depends_on_ip": e.depends_on_ip, "exact_regions": e.exact_regions,
            "unreachable": e.unreachable(),
            "views": [view_json(e, v) for v in e.views(arches)]}


def wordset_json(w: int, ws: WordSet, byteorder: str) -> dict[str, Any]:
    """Word ``w``'s constraint as plain data (intervals, fixed bits, excluded masked values)."""
    dim, half = word_dim(w, byteorder)
    d: dict[str, Any] = {"word": w, "dim": dim}
    if half:
        d["half"] = half
    if ws.ivs != FULL32:
        d["intervals"] = [list(iv) for iv in ws.ivs]
    if ws.fmask:
        d["mask"], d["value"] = ws.fmask, ws.fval
    if ws.nes:
        d["not_equal"] = [list(x) for x in sorted(ws.nes)]
    return d
