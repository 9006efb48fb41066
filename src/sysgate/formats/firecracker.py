"""Firecracker's seccompiler JSON: one filter per thread category.

::

    {"vmm": {"default_action": "trap", "filter_action": "allow",
             "filter": [{"syscall": "accept4", "comment": "...",
                         "args": [{"index": 3, "type": "dword", "op": "eq", "val": 524288}]}]},
     "api": {...}, "vcpu": {...}}

The two actions are ``mismatch_action`` and ``match_action`` (seccompiler's names; Firecracker's
files use the aliases ``default_action`` and ``filter_action``). As seccompiler, the reader refuses
unknown fields, a field given twice (also by name and alias), a repeated thread name, a comment
that is not a string, an empty ``args`` list and equal match and mismatch actions. A syscall with
rules both with and without ``args``: seccompiler keeps only those with args; sysgate does too
unless the match action is the stricter one, where it keeps every call matched (with a warning
either way). An errno above 4095 is clamped (with a warning), as the kernel returns at most 4095.

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
from collections.abc import Iterable
from typing import Any

from ..immutable import Record
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from . import Exported, ProfileError, read_file

__all__ = ["FirecrackerFile", "loads", "load", "export", "export_threads", "detect_json"]

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


MAX_ERRNO = 4095  # the kernel returns -min(data, MAX_ERRNO) for SECCOMP_RET_ERRNO
# seccompiler's field names, and the aliases older Firecracker files use (serde: the same field)
_FILTER_FIELDS = {"mismatch_action": "mismatch_action", "default_action": "mismatch_action",
                  "match_action": "match_action", "filter_action": "match_action", "filter": "filter"}


class _Obj(dict):
    """A decoded JSON object that remembers its first repeated key (serde refuses duplicates)."""

    __slots__ = ("dup",)
    dup: str | None


def _pairs(pairs: list[tuple[str, Any]]) -> _Obj:
    d = _Obj()
    d.dup = None
    for k, v in pairs:
        if k in d and d.dup is None:
            d.dup = k
        d[k] = v
    return d


def _type(v: Any) -> str:
    from .jsonfields import type_name

    return type_name(v)


def _object(src: str, where: str, v: Any, known: Iterable[str]) -> dict:
    """``v`` as an object of ``known`` keys only, no key twice (seccompiler: deny_unknown_fields)."""
    from .jsonfields import near_miss

    if not isinstance(v, dict):
        raise ProfileError(f"{src}: {where}: expected an object, got {_type(v)}")
    dup = getattr(v, "dup", None)
    if dup is not None:
        raise ProfileError(f"{src}: {where}.{dup}: duplicate field (seccompiler refuses it)")
    known = tuple(known)
    for k in v:
        if k not in known:
            close = near_miss(k, known)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ProfileError(f"{src}: {where}.{k}: unknown field{hint} (seccompiler refuses unknown fields)")
    return v


def _comment(src: str, where: str, d: dict) -> None:
    if "comment" in d and not isinstance(d["comment"], str):  # seccompiler: a comment is a string
        raise ProfileError(f"{src}: {where}.comment: expected a string, got {_type(d['comment'])}")


def _action(src: str, where: str, v: Any) -> Action:
    if isinstance(v, str) and v in _SIMPLE:
        return Action(_SIMPLE[v])
    if isinstance(v, dict) and len(v) == 1:
        (k, n), = v.items()
        if k in _VALUED:
            if isinstance(n, bool) or not isinstance(n, int):
                raise ProfileError(f"{src}: {where}.{k}: expected an integer, got {_type(n)}")
            if not 0 <= n <= 65535:
                # seccompiler keeps the low 16 bits (65536 would become errno 0, a fake success)
                raise ProfileError(f"{src}: {where}.{k}: {n} out of range 0-65535 (the filter's return data "
                                   f"is 16 bits)")
            if k == "errno" and n > MAX_ERRNO:
                from . import warn

                warn(f"{src}: {where}.errno: errno {n} above {MAX_ERRNO}: the kernel returns {MAX_ERRNO} "
                     f"(MAX_ERRNO) for it, and so does this filter")
                n = MAX_ERRNO
            return Action(_VALUED[k], n)
    raise ProfileError(f"{src}: {where}: unknown action {json.dumps(v)} (expected one of "
                       f"{', '.join(_SIMPLE)}, {{\"errno\": N}}, {{\"trace\": N}})")


def _uint(src: str, where: str, v: Any, top: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ProfileError(f"{src}: {where}: expected an integer, got {_type(v)}")
    if not 0 <= v <= top:
        raise ProfileError(f"{src}: {where}: {v} out of range 0-{top}")
    return v


def _condition(src: str, where: str, a: Any) -> Condition:
    a = _object(src, where, a, ("index", "type", "op", "val", "comment"))
    _comment(src, where, a)
    for k in ("index", "type", "op", "val"):
        if a.get(k) is None:
            raise ProfileError(f"{src}: {where}.{k}: missing")
    index = _uint(src, f"{where}.index", a["index"], 5)
    if a["type"] not in ("dword", "qword"):
        raise ProfileError(f"{src}: {where}.type: unknown type {json.dumps(a['type'])} (expected dword or qword)")
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

    f = _object(src, thread, f, _FILTER_FIELDS)
    fields: dict[str, Any] = {}
    spelt: dict[str, str] = {}  # canonical field -> the key the file uses, for messages
    for k, v in f.items():
        canon = _FILTER_FIELDS[k]
        if canon in fields:  # an alias and its field: serde's "duplicate field"
            raise ProfileError(f"{src}: {thread}.{k}: duplicate field ({canon} given twice, by name and alias)")
        fields[canon], spelt[canon] = v, k
    for k, alias in (("mismatch_action", " (or default_action)"), ("match_action", " (or filter_action)"),
                     ("filter", "")):
        if fields.get(k) is None:
            raise ProfileError(f"{src}: {thread}.{k}{alias}: missing")
    default = _action(src, f"{thread}.{spelt['mismatch_action']}", fields["mismatch_action"])
    match = _action(src, f"{thread}.{spelt['match_action']}", fields["match_action"])
    if default == match:
        raise ProfileError(f"{src}: {thread}: match_action and mismatch_action are the same "
                           f"({match}): seccompiler refuses that")
    if not isinstance(fields["filter"], list):
        raise ProfileError(f"{src}: {thread}.filter: expected a list, got {_type(fields['filter'])}")
    # name -> (unconditional rules, conditional rules, place of the first unconditional one)
    per_name: dict[str, tuple[list[Rule], list[Rule], str]] = {}
    for i, r in enumerate(fields["filter"]):
        where = f"{thread}.filter[{i}]"
        r = _object(src, where, r, ("syscall", "args", "comment"))
        _comment(src, where, r)
        name = r.get("syscall")
        if not isinstance(name, str) or not name:
            raise ProfileError(f"{src}: {where}.syscall: expected a syscall name, got {_type(name)}")
        try:
            names = expand(name)
        except UnknownName as e:
            raise ProfileError(f"{src}: {where}.syscall: {e}") from None
        args = r.get("args")
        if args is not None and not isinstance(args, list):
            raise ProfileError(f"{src}: {where}.args: expected a list, got {_type(args)}")
        if args is not None and not args:
            raise ProfileError(f"{src}: {where}.args: empty (seccompiler refuses an empty rule; leave out "
                               f"\"args\" to match every call)")
        conds = tuple(_condition(src, f"{where}.args[{j}]", a) for j, a in enumerate(args or ()))
        for n in names:
            uncond, cond, first = per_name.setdefault(n, ([], [], ""))
            (cond if conds else uncond).append(Rule(n, match, conds))
            if not conds and not first:
                per_name[n] = (uncond, cond, where)
    rules: list[Rule] = []
    for n, (uncond, cond, first) in per_name.items():
        if uncond and cond:
            # seccompiler keeps only the rules with args when a syscall has both kinds (a rule
            # without args adds nothing to its list); sysgate takes the stricter reading.
            if match.strictness > default.strictness:
                from . import warn

                warn(f"{src}: {first}: {n}: seccompiler drops this rule without args because {n} also has "
                     f"rules with args; kept here (the stricter reading: every {n} call gets {match})")
                rules.extend(uncond)
                continue
            from . import warn

            warn(f"{src}: {first}: {n}: ignored, as seccompiler ignores a rule without args for a syscall "
                 f"that also has rules with args")
            rules.extend(cond)
        else:
            rules.extend(uncond[:1] if uncond else cond)
    try:
        return Policy(default, tuple(rules), arches)
    except PolicyError as e:
        raise ProfileError(f"{src}: {thread}: {e}") from None


_FILTER_KEYS = frozenset({"default_action", "filter_action", "mismatch_action", "match_action", "filter"})


def detect_json(doc: Any) -> float:
    """Certain for an object of thread names to objects with seccompiler's filter keys."""
    if isinstance(doc, dict) and doc and all(isinstance(v, dict) and _FILTER_KEYS & set(v) for v in doc.values()):
        return 1.0
    return 0.0


def loads(text: str | bytes, source: str = "<firecracker>", *, arch: str | None = None,
          arches: Iterable[str] | None = None, thread: str | None = None) -> FirecrackerFile:
    from . import load_json

    doc = load_json(text, source, object_pairs_hook=_pairs)
    if not isinstance(doc, dict) or not doc:
        raise ProfileError(f"{source}: a Firecracker filter file is an object of thread names to filters")
    dup = getattr(doc, "dup", None)  # every object json.loads built is an _Obj (object_pairs_hook)
    if dup is not None:
        raise ProfileError(f"{source}: {dup}: duplicate thread name (seccompiler refuses it)")
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
    notes: tuple[str, ...] = ()
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
