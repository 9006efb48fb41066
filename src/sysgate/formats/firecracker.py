"""Firecracker's seccompiler JSON: one filter per thread category.

::

    {"vmm": {"default_action": "trap", "filter_action": "allow",
             "filter": [{"syscall": "accept4", "comment": "...",
                         "args": [{"index": 3, "type": "dword", "op": "eq", "val": 524288}]}]},
     "api": {...}, "vcpu": {...}}

Actions are ``allow``, ``trap``, ``log``, ``kill_thread``, ``kill_process``, ``{"errno": N}``
and ``{"trace": N}`` (no user notification). A rule fires ``filter_action`` when all its
``args`` hold (rules are OR-ed); otherwise ``default_action`` applies. Operators: ``eq``,
``ne``, ``lt``, ``le``, ``gt``, ``ge`` and ``{"masked_eq": MASK}`` (``(arg & MASK) == val``).

``dword`` compares the low 32 bits of the argument and ignores the high word, as
Firecracker's seccompiler always documented (and sysgate's 32-bit conditions do); note that
the libseccomp-based seccompiler of recent releases implements ``eq`` and ``masked_eq`` that
way but compares all 64 bits for ``ne``/``lt``/``le``/``gt``/``ge`` on a ``dword``.

A file is for one target; its architecture comes from ``arch``/``arches`` or from a file name
like ``x86_64-unknown-linux-musl.json``. The action for other architectures is not written in
the file; sysgate uses kill-process. ``--thread NAME`` selects the filter to use.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any, Iterable

from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from ..immutable import Record
from . import Exported, ProfileError, load_json, read_file

__all__ = ["FirecrackerFile", "loads", "load", "export", "export_threads", "LOAD_OPTIONS"]

LOAD_OPTIONS = ("arch", "arches", "thread")
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1

_SIMPLE = {"allow": ActionKind.ALLOW, "trap": ActionKind.TRAP, "log": ActionKind.LOG,
           "kill_thread": ActionKind.KILL_THREAD, "kill_process": ActionKind.KILL_PROCESS}
_VALUED = {"errno": ActionKind.ERRNO, "trace": ActionKind.TRACE}
_OPS = {"eq": Op.EQ, "ne": Op.NE, "lt": Op.LT, "le": Op.LE, "gt": Op.GT, "ge": Op.GE}
_TARGET = re.compile(r"(x86_64|aarch64|riscv64)-")


class FirecrackerFile(Record):
    """Every thread's policy (``filters``: name -> Policy), and which one was selected."""

    __slots__ = ("filters", "thread", "source")
    _defaults = {"thread": None, "source": "<firecracker>"}
    filters: dict[str, Policy]
    thread: str | None
    source: str

    @property
    def policy(self) -> Policy:
        """The selected thread's policy (the only one, if the file has just one)."""
        return self.select(self.thread)

    def select(self, thread: str | None) -> Policy:
        names = sorted(self.filters)
        if thread is None:
            if len(names) == 1:
                return self.filters[names[0]]
            raise ProfileError(f"{self.source}: Firecracker filters for threads {', '.join(names)}: "
                               f"choose one with --thread")
        if thread not in self.filters:
            raise ProfileError(f"{self.source}: no filter for thread {thread!r} (threads: {', '.join(names)})")
        return self.filters[thread]


def _action(src: str, where: str, v: Any) -> Action:
    if isinstance(v, str) and v in _SIMPLE:
        return Action(_SIMPLE[v])
    if isinstance(v, dict) and len(v) == 1:
        (k, n), = v.items()
        if k in _VALUED:
            if isinstance(n, bool) or not isinstance(n, int):
                raise ProfileError(f"{src}: {where}.{k}: expected an integer, got {n!r}")
            limit = 4095 if k == "errno" else 65535
            if not 0 <= n <= limit:
                raise ProfileError(f"{src}: {where}.{k}: {n} out of range 0-{limit}")
            return Action(_VALUED[k], n)
    raise ProfileError(f"{src}: {where}: unknown action {json.dumps(v)} (expected one of "
                       f"{', '.join(_SIMPLE)}, {{\"errno\": N}}, {{\"trace\": N}})")


def _uint(src: str, where: str, v: Any, top: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"{src}: {where}: expected an integer, got {v!r}")
    if not 0 <= v <= top:
        raise ProfileError(f"{src}: {where}: {v} out of range 0-{top}")
    return v


def _condition(src: str, where: str, a: Any) -> Condition:
    if not isinstance(a, dict):
        raise ProfileError(f"{src}: {where}: expected an object")
    unknown = set(a) - {"index", "type", "op", "val", "comment"}
    if unknown:
        raise ProfileError(f"{src}: {where}.{sorted(unknown)[0]}: unknown field")
    for k in ("index", "type", "op", "val"):
        if k not in a:
            raise ProfileError(f"{src}: {where}.{k}: missing")
    index = _uint(src, f"{where}.index", a["index"], 5)
    if a["type"] not in ("dword", "qword"):
        raise ProfileError(f"{src}: {where}.type: unknown type {a['type']!r} (expected dword or qword)")
    width = 32 if a["type"] == "dword" else 64
    top = U32 if width == 32 else U64
    val = _uint(src, f"{where}.val", a["val"], top)
    op = a["op"]
    if isinstance(op, dict) and len(op) == 1 and "masked_eq" in op:
        mask = _uint(src, f"{where}.op.masked_eq", op["masked_eq"], top)
        return Condition(index, Op.MASKED_EQ, val, mask=mask, width=width)
    if not isinstance(op, str) or op not in _OPS:
        raise ProfileError(f"{src}: {where}.op: unknown operator {json.dumps(op)} "
                           f"(expected one of {', '.join(_OPS)}, {{\"masked_eq\": MASK}})")
    return Condition(index, _OPS[op], val, width=width)


def _filter(src: str, thread: str, f: Any, arches: tuple[str, ...]) -> Policy:
    from .syscall_names import UnknownName, expand

    if not isinstance(f, dict):
        raise ProfileError(f"{src}: {thread}: expected an object")
    unknown = set(f) - {"default_action", "filter_action", "filter"}
    if unknown:
        raise ProfileError(f"{src}: {thread}.{sorted(unknown)[0]}: unknown field")
    for k in ("default_action", "filter_action", "filter"):
        if k not in f:
            raise ProfileError(f"{src}: {thread}.{k}: missing")
    default = _action(src, f"{thread}.default_action", f["default_action"])
    match = _action(src, f"{thread}.filter_action", f["filter_action"])
    if not isinstance(f["filter"], list):
        raise ProfileError(f"{src}: {thread}.filter: expected a list")
    rules: list[Rule] = []
    for i, r in enumerate(f["filter"]):
        where = f"{thread}.filter[{i}]"
        if not isinstance(r, dict):
            raise ProfileError(f"{src}: {where}: expected an object")
        unknown = set(r) - {"syscall", "args", "comment"}
        if unknown:
            raise ProfileError(f"{src}: {where}.{sorted(unknown)[0]}: unknown field")
        name = r.get("syscall")
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{src}: {where}.syscall: expected a syscall name")
        try:
            names = expand(name)
        except UnknownName as e:
            raise ProfileError(f"{src}: {where}.syscall: {e}") from None
        args = r.get("args") or []
        if not isinstance(args, list):
            raise ProfileError(f"{src}: {where}.args: expected a list")
        conds = tuple(_condition(src, f"{where}.args[{j}]", a) for j, a in enumerate(args))
        rules.extend(Rule(n, match, conds) for n in names)
    try:
        return Policy(default, tuple(rules), arches)
    except PolicyError as e:
        raise ProfileError(f"{src}: {thread}: {e}") from None


def loads(text: str | bytes, source: str = "<firecracker>", *, arch: str | None = None,
          arches: Iterable[str] | None = None, thread: str | None = None) -> FirecrackerFile:
    doc = load_json(text, source)
    if not isinstance(doc, dict) or not doc:
        raise ProfileError(f"{source}: a Firecracker filter file is an object of thread names to filters")
    if arches:
        covered = tuple(arches)
    elif arch:
        covered = (arch,)
    else:
        m = _TARGET.search(os.path.basename(source))
        covered = (m.group(1),) if m else ()
    filters = {name: _filter(source, name, f, covered) for name, f in doc.items()}
    out = FirecrackerFile(filters, thread, source)
    if thread is not None:
        out.select(thread)  # fail early on an unknown thread
    return out


def load(path: str, **kw: Any) -> FirecrackerFile:
    data = read_file(path)
    return loads(data, path, **kw)


# ----------------------------------------------------------------------------------------- writer

def _action_json(a: Action) -> Any:
    if a.kind is ActionKind.ERRNO:
        return {"errno": a.data}
    if a.kind is ActionKind.TRACE:
        return {"trace": a.data}
    return {v: k for k, v in _SIMPLE.items()}[a.kind]


def _cond_json(c: Condition) -> dict[str, Any]:
    t = "dword" if c.width == 32 else "qword"
    if c.op is Op.MASKED_EQ:
        return {"index": c.arg, "type": t, "op": {"masked_eq": c.mask}, "val": c.value}
    return {"index": c.arg, "type": t, "op": {v: k for k, v in _OPS.items()}[c.op], "val": c.value}


def _filter_json(policy: Policy, losses: list[str]) -> dict[str, Any]:
    from collections import Counter

    from . import logic as L
    from .docker import syscall_name

    default = policy.default
    if default.kind is ActionKind.USER_NOTIF:
        losses.append("Firecracker has no user-notify action: default written as trap")
        default = Action(ActionKind.TRAP)
    # One match action per filter: the most used one (ties: the strictest).
    counts = Counter(r.action for r in policy.rules if r.action != policy.default)
    match = max(counts, key=lambda a: (counts[a], a.strictness, -a.data)) if counts else None
    out_rules: list[tuple[str, tuple[Condition, ...]]] = []
    for syscall in policy.syscalls():
        first = L.strictest_first(policy.rules_for(syscall))
        if all(a == policy.default for _, a in first):
            continue
        name = syscall_name(syscall, policy, "Firecracker", losses)
        if name is None:
            continue
        try:
            region: L.DNF = L.FALSE
            before: L.DNF = L.FALSE  # where an earlier (stricter) rule with another action decides
            for conds, action in first:
                if action == match:
                    region = L.or_(region, L.and_((conds,), L.not_(before)))
                else:
                    if action != policy.default:
                        losses.append(f"{name}: action {action} is not the filter's match action {match} "
                                      f"(Firecracker has one per filter); rule dropped")
                    before = L.or_(before, (conds,))
        except L.TooComplex:
            region = L.TRUE * (L.MAX_WRITTEN + 1)
        if len(region) > L.MAX_WRITTEN:
            losses.append(f"{name}: its rules are too complex to express with one match action "
                          f"(over {L.MAX_WRITTEN} alternatives); dropped")
            continue
        out_rules.extend((name, conj) for conj in region)
    if match is None:
        match = Action(ActionKind.ALLOW) if default.kind is not ActionKind.ALLOW else Action(ActionKind.TRAP)
    if match.kind is ActionKind.USER_NOTIF:
        losses.append("Firecracker has no user-notify action: rules written with trap")
        match = Action(ActionKind.TRAP)
    filt = []
    for name, conj in out_rules:
        entry: dict[str, Any] = {"syscall": name}
        if conj:
            entry["args"] = [_cond_json(c) for c in conj]
        filt.append(entry)
    return {"default_action": _action_json(default), "filter_action": _action_json(match), "filter": filt}


def export_threads(policies: dict[str, Policy]) -> Exported:
    """A Firecracker file with one filter per thread name."""
    losses: list[str] = []
    doc = {}
    arches: set[tuple[str, ...]] = set()
    for thread, policy in policies.items():
        mine: list[str] = []
        doc[thread] = _filter_json(policy, mine)
        losses.extend(f"{thread}: {m}" for m in mine)
        arches.add(policy.arches)
        if len(policy.arches) > 1:
            losses.append(f"{thread}: Firecracker filters are for one architecture; the file covers the one "
                          f"it is compiled for, not all of {', '.join(policy.arches)}")
        if policy.bad_arch != Action(ActionKind.KILL_PROCESS):
            losses.append(f"{thread}: Firecracker files cannot set the action for other architectures "
                          f"(policy: {policy.bad_arch})")
    notes = ()
    if len(arches) == 1 and len(next(iter(arches))) == 1:
        target = next(iter(arches))[0]
        notes = (f"filters for {target}; compile with --arch {target}",)
    return Exported(json.dumps(doc, indent=4) + "\n", tuple(losses), notes)


def export(src: Any, *, thread: str | None = None) -> Exported:
    """A policy (or a FirecrackerFile, all its threads) as a Firecracker file; the filter is named
    ``thread`` (default ``main``)."""
    if isinstance(src, FirecrackerFile):
        return export_threads(dict(src.filters))
    return export_threads({thread or "main": src})
