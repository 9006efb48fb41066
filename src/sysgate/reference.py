"""The reference evaluator: decides one call straight from a Policy.

Deliberately plain and independent of the compiler (it shares no code with
:mod:`sysgate.compiler`): tests compare ``emulate(compile(policy), call)`` with
``evaluate(policy, call)`` on many random policies and calls. Keep it obviously right
rather than fast.

It models the kernel's view of each ABI directly: x32 and MIPS n32 handlers get 32-bit values
(only the low word of an argument counts there, as on the 32-bit ABIs); nr -1 on x86_64 is a
tracer's skipped call, not an x32 call; and on ABIs that have socketcall(2)/ipc(2) a call made
through the multiplexer is decided by the rules for the call it selects (refused when those test
arguments, which sit behind a pointer there).

Arguments a handler reads as 32 bits (every argument of the 32-bit ABIs, x32 and n32, and the
``int`` and ``unsigned int`` parameters on 64-bit ABIs, as the kernel declares them) are their low
word: a condition on one compares that word with the condition's value, read as a number, except
that on a 64-bit ABI a value that is a sign-extended 32-bit word (a negative ``int`` written in 64
bits) stands for its low word, its mask too.

Arguments a handler reads as 16 bits (``umode_t`` modes on every ABI; the uids and gids of the
16-bit uid calls of x86, arm, m68k, sh and s390, which those ABIs name ``setuid``, ``chown``, ...)
are their low 16 bits, compared with the condition's value read as a number (unsigned types: a
value above 0xffff is never equal, always above).
"""
from __future__ import annotations

from collections.abc import Sequence

from . import arch as _arch
from .arch.multiplexed import IPC, SOCKETCALL
from .formats.argnames import ARGS, UID16
from .policy import Action, ActionKind, Compare, Condition, Op, Policy, Term

__all__ = ["evaluate", "condition_holds", "compare_holds"]

# Strictest first: the kernel's precedence between stacked filters.
_PRECEDENCE = [ActionKind.KILL_PROCESS, ActionKind.KILL_THREAD, ActionKind.TRAP, ActionKind.ERRNO,
               ActionKind.USER_NOTIF, ActionKind.TRACE, ActionKind.LOG, ActionKind.ALLOW]


def condition_holds(cond: Condition, value: int, int32: bool = False, int16: bool = False) -> bool:
    """Does ``cond`` hold for an argument whose value (as the kernel passes it) is ``value``?

    ``int32``: the argument is an ``int`` of a 64-bit ABI; ``int16``: the handler reads 16 bits
    of it (see the module's docstring).
    """
    datum, mask = cond.value, cond.mask
    if cond.width == 32 or int32:
        value = value % (1 << 32)
    if int16:
        value = value % (1 << 16)
        int32 = False  # unsigned: no value stands for a sign-extended one
    if int32 and datum >= (1 << 64) - (1 << 31):  # -2^31..-1, sign-extended
        datum, mask = datum % (1 << 32), mask % (1 << 32)
    if cond.op is Op.EQ:
        return value == datum
    if cond.op is Op.NE:
        return value != datum
    if cond.op is Op.LT:
        return value < datum
    if cond.op is Op.LE:
        return value <= datum
    if cond.op is Op.GT:
        return value > datum
    if cond.op is Op.GE:
        return value >= datum
    return (value & mask) == datum


def _term_value(t: Term, args: Sequence[int], int32: frozenset[int], int16: frozenset[int]) -> int:
    if t.kind == "arg":
        return args[t.value] % (1 << (16 if t.value in int16 else 32 if t.value in int32 else 64))
    if t.kind == "const":
        return t.value
    assert t.left is not None and t.right is not None
    a, b = _term_value(t.left, args, int32, int16), _term_value(t.right, args, int32, int16)
    return a & b if t.kind == "&" else a | b


def compare_holds(cmp: Compare, args: Sequence[int], int32: frozenset[int] = frozenset(),
                  int16: frozenset[int] = frozenset()) -> bool:
    """Does ``cmp`` hold for a call with (six) arguments ``args``? The arguments whose index is in
    ``int32`` count as their low word, those in ``int16`` as their low 16 bits."""
    a, b = _term_value(cmp.left, args, int32, int16), _term_value(cmp.right, args, int32, int16)
    if cmp.width == 32:
        a, b = a % (1 << 32), b % (1 << 32)
    return {Op.EQ: a == b, Op.NE: a != b, Op.LT: a < b, Op.LE: a <= b, Op.GT: a > b, Op.GE: a >= b}[cmp.op]


def _holds(c: Condition | Compare, args: Sequence[int], int32: frozenset[int], int16: frozenset[int]) -> bool:
    if isinstance(c, Compare):
        return compare_holds(c, args, int32, int16)
    return condition_holds(c, args[c.arg], c.arg in int32, c.arg in int16)


def _int32_args(a: _arch.Arch, nr: int) -> frozenset[int]:
    """The arguments of call ``nr`` on 64-bit ABI ``a`` its handler reads as 32-bit values (the
    32-bit ABIs, x32 and n32 have all their arguments cut to 32 bits before)."""
    if a.bits == 32 or a.name in _HANDLERS_32:
        return frozenset()
    params = ARGS.get(a.name_of(nr) or "", ())
    return frozenset(i for i in range(len(params)) if params[i][1] == 32)


# The ABIs whose plain-named uid calls (setuid = 23 on x86, ...) are kernel/uid16.c's 16-bit ones.
_UID16_ABIS = ("x86", "arm", "m68k", "sh", "sheb", "s390")


def _int16_args(a: _arch.Arch, nr: int) -> frozenset[int]:
    """The arguments of call ``nr`` on ABI ``a`` its handler reads as 16-bit values."""
    name = a.name_of(nr) or ""
    params = UID16[name] if a.name in _UID16_ABIS and name in UID16 else ARGS.get(name, ())
    return frozenset(i for i in range(len(params)) if params[i][1] == 16)


def _stricter(a: Action, b: Action) -> bool:
    ia, ib = _PRECEDENCE.index(a.kind), _PRECEDENCE.index(b.kind)
    return ia < ib or (ia == ib and a.data < b.data)


def evaluate(policy: Policy, arch: str, nr: int, args: Sequence[int] = ()) -> Action:
    """The action ``policy`` takes for syscall ``nr`` made through ABI ``arch`` with ``args``.

    ``arch`` names the token the kernel reports; for x86_64 and x32 (one token) the x32 bit
    of ``nr`` tells which ABI the call really uses.
    """
    a = _arch.get(arch)
    covered = [_arch.get(n).name for n in (policy.arches or [_arch.native().name])]
    nr = nr % (1 << 32)
    if a.name in ("x86_64", "x32"):
        a = _arch.get("x32" if nr >= 0x40000000 else "x86_64")
        if nr == 0xFFFFFFFF and "x32" not in covered and "x86_64" in covered:
            a = _arch.get("x86_64")  # -1: a tracer skipped the call
    if a.name not in covered:
        return policy.bad_arch
    args = list(args) + [0] * (6 - len(args))
    if a.bits == 32 or a.name in _HANDLERS_32:
        args = [v % (1 << 32) for v in args]
    int32 = _int32_args(a, nr)
    int16 = _int16_args(a, nr)
    matched = [rule.action for rule in policy.rules if _names(rule, a, nr)
               and all(_holds(c, args, int32, int16) for c in rule.conditions)]
    matched += _multiplexed(policy, a, nr, args[0])
    best: Action | None = None
    for action in matched:
        if best is None or _stricter(action, best):
            best = action
    return policy.default if best is None else best


# ABIs with 64-bit registers whose syscall handlers take 32-bit values.
_HANDLERS_32 = ("x32", "mips64n32", "mips64n32el")


def _names(rule: object, a: _arch.Arch, nr: int) -> bool:
    syscall = rule.syscall  # type: ignore[attr-defined]
    return syscall == nr if isinstance(syscall, int) else a.syscalls.get(syscall) == nr


def _multiplexed(policy: Policy, a: _arch.Arch, nr: int, selector: int) -> list[Action]:
    """Actions of the rules for the call that socketcall/ipc ``nr`` makes (none for other calls)."""
    if nr == a.syscalls.get("socketcall"):
        table, call = SOCKETCALL, selector % (1 << 32)  # the kernel reads an int
    elif nr == a.syscalls.get("ipc"):
        table, call = IPC, selector % (1 << 16)  # the rest of the word is a version
    else:
        return []
    name = next((n for n, c in table.items() if c == call), None)
    rules = [r for r in policy.rules if r.syscall == name]
    if not any(r.conditions for r in rules):
        return [r.action for r in rules]
    # Its arguments are out of reach: what it gets when no argument rule holds, never "run it".
    plain = [r.action for r in rules if not r.conditions]
    fallback = plain[0] if plain else policy.default
    for act in plain[1:]:
        if _stricter(act, fallback):
            fallback = act
    if fallback.kind in (ActionKind.ALLOW, ActionKind.LOG):
        return [Action(ActionKind.ERRNO, 1)]
    return [fallback]
