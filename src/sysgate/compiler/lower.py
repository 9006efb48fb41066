"""Lowering: a Policy and one Arch -> the decision for each syscall number of that arch.

This is where names become numbers, where the rule precedence is applied and where
conditions the kernel can never see vary (the high word of a 32-bit ABI's argument) are
settled at compile time, so later stages only lay out and encode.
"""
from __future__ import annotations

from ..arch import Arch, UnknownSyscall, is_syscall_name, unknown_syscall_message
from ..errors import UserError
from ..immutable import Record
from ..policy import Action, Compare, Condition, Op, Policy
from .multiplex import multiplexed_rules

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1


class LoweringError(UserError):
    """A policy that cannot be lowered for an arch (unknown syscall name, ...)."""


class Decision(Record):
    """What to do for one syscall number: try ``rules`` (conditions, action) in order, else ``default``.

    With no rules it is a plain verdict. Rules are already in precedence order, so the first
    whose conditions all hold decides.
    """

    __slots__ = ("rules", "default")
    rules: tuple[tuple[tuple[Condition, ...], Action], ...]
    default: Action

    @property
    def is_leaf(self) -> bool:
        return not self.rules


class Lowered:
    __slots__ = ("arch", "decisions", "skipped")

    def __init__(self, arch: Arch, decisions: dict[int, Decision], skipped: list[str]) -> None:
        self.arch = arch
        self.decisions = decisions
        self.skipped = skipped  # names that exist elsewhere but not on this arch


def _const(cond: Condition, bits: int) -> bool | None:
    """Settle a condition that is always true or always false on an ABI with ``bits``-wide args."""
    if isinstance(cond, Compare):
        return None  # compiled as written: the high words of a 32-bit ABI's arguments read as 0
    width = min(cond.width, bits)
    top = U32 if width == 32 else U64
    v = cond.value
    if cond.op is Op.MASKED_EQ:
        m = cond.mask & top
        if v & ~m & U64:
            return False  # value has bits the mask clears
        if m == 0:
            return True
        return None
    if cond.op is Op.EQ:
        return False if v > top else None
    if cond.op is Op.NE:
        return True if v > top else None
    if cond.op is Op.LT:
        return True if v > top else (False if v == 0 else None)
    if cond.op is Op.LE:
        return True if v >= top else None
    if cond.op is Op.GT:
        return False if v >= top else None
    # GE
    return True if v == 0 else (False if v > top else None)


def _narrow(cond: Condition, bits: int) -> Condition:
    """On a 32-bit ABI every comparison is on the low word (the kernel zero-extends)."""
    if bits == 32 and cond.width == 64 and not isinstance(cond, Compare):
        return Condition(cond.arg, cond.op, cond.value & U32,
                         cond.mask & U32 if cond.op is Op.MASKED_EQ else U64, 32)
    return cond


def _strictness_key(action: Action) -> tuple[int, int]:
    return (-action.strictness, action.data)


def lower(policy: Policy, arch: Arch, skip_unknown: bool = False) -> Lowered:
    """Decisions for every syscall number the policy's rules name on ``arch``."""
    by_nr: dict[int, list[tuple[tuple[Condition, ...], Action]]] = {}
    skipped: list[str] = []
    table = arch.syscalls
    bits = arch.compare_bits  # x32 and n32 handlers see 32-bit values
    # socketcall/ipc rules standing for rules on their sub-calls (the multiplexed form)
    mux_rules, mux_covered = multiplexed_rules(policy, arch)
    for rule in (*policy.rules, *mux_rules) if mux_rules else policy.rules:
        if isinstance(rule.syscall, int):
            nr = rule.syscall
        else:
            nr = table.get(rule.syscall)  # type: ignore[assignment]
            if nr is None:
                if skip_unknown or is_syscall_name(rule.syscall):
                    if rule.syscall not in skipped:
                        skipped.append(rule.syscall)
                    continue
                raise LoweringError(unknown_syscall_message(rule.syscall))
        if rule.conditions:
            conds: list[Condition] = []
            dead = False
            for c in rule.conditions:
                k = _const(c, bits)
                if k is False:
                    dead = True
                    break
                if k is None:
                    conds.append(_narrow(c, bits))
            if dead:
                continue
            entry = (tuple(conds), rule.action)
        else:
            entry = ((), rule.action)
        same_nr = by_nr.get(nr)
        if same_nr is None:
            by_nr[nr] = [entry]
        else:
            same_nr.append(entry)
    if mux_covered:  # reached through the multiplexer, so not left out
        skipped = [n for n in skipped if n not in mux_covered]

    decisions: dict[int, Decision] = {}
    default = policy.default
    verdicts: dict[Action, Decision] = {}  # one (immutable) plain verdict per action, shared
    for nr, rules in by_nr.items():
        if len(rules) == 1:  # most numbers: what the general case below comes to for one rule
            conds, action = rules[0]
            if action == default:
                continue
            if conds:
                decisions[nr] = Decision(((conds, action),), default)
            else:
                decisions[nr] = verdicts.get(action) or verdicts.setdefault(action, Decision((), action))
            continue
        # Strictest first (stable, so equal actions keep the order they were written in).
        rules.sort(key=lambda r: _strictness_key(r[1]))
        kept: list[tuple[tuple[Condition, ...], Action]] = []
        seen: set[tuple[tuple[Condition, ...], Action]] = set()  # (a scan of `kept` was n^2 per number)
        for conds, action in rules:
            if conds:
                if (conds, action) in seen:
                    continue
                seen.add((conds, action))
            kept.append((conds, action))
            if not conds:
                break  # nothing after an unconditional rule can win
        # A trailing rule whose action is the default changes nothing.
        while kept and kept[-1][1] == default:
            kept.pop()
        if kept and not kept[0][0]:
            action = kept[0][1]
            decisions[nr] = verdicts.get(action) or verdicts.setdefault(action, Decision((), action))
        elif kept:
            decisions[nr] = Decision(tuple(kept), default)
    return Lowered(arch, decisions, skipped)


__all__ = ["Decision", "Lowered", "LoweringError", "lower", "UnknownSyscall"]
