"""Lowering: a Policy and one Arch -> the decision for each syscall number of that arch.

This is where names become numbers, where the rule precedence is applied and where
conditions the kernel can never see vary (the high word of a 32-bit ABI's argument) are
settled at compile time, so later stages only lay out and encode.

Arguments the kernel reads as 32 bits. A handler whose parameter is ``int`` or ``unsigned int``
(socket's ``family``, ioctl's ``cmd``, ...) gets the low word of the register: SYSCALL_DEFINE
casts the 64-bit value to the declared type, on every 64-bit ABI. So is every argument of x32
and MIPS n32 (32-bit C types throughout) and of the 32-bit ABIs. A condition on such an argument
is decided on what the handler sees, never on the high word, which a caller may fill with
anything:

* a value below 2^32 is compared with the low word (a mask: its low word);
* on a 64-bit ABI, a value that is the sign-extension of a 32-bit word (``-100`` written as
  ``0xffffffffffffff9c``: what a C caller's ``int`` becomes in the register) is that word;
* any other value is a number no 32-bit argument can equal, above all of them: ``==`` and
  ``&==`` never hold, ``!=``, ``<`` and ``<=`` always do, ``>`` and ``>=`` never. (The 32-bit
  ABIs, x32 and n32 have always read sign-extended values this way too.)

Arguments the kernel reads as 16 bits (``umode_t``: the ``mode`` of chmod, mkdir, open, ...; the
``old_uid_t``/``old_gid_t`` of the 16-bit uid calls x86, arm, m68k, sh and s390 make as ``setuid``,
``chown``, ...) are decided on their low 16 bits, on every ABI, by the same rules with 16 for 32:
a value up to 0xffff is compared with those bits (a mask: its low 16 bits); any other value is a
number no 16-bit argument can have, above all of them (these types are unsigned: no value is
read as sign-extended). BPF has no 16-bit load: the low word is loaded and ``A &= 0xffff`` comes
before the jump (an equality is a masked-equal test with the mask's low 16 bits; an ordering or
``!=`` test is a 32-bit argument expression, ``(arg & 0xffff) OP value``).

Which arguments are narrower than 64 bits comes from the kernel's own declarations
(:mod:`sysgate.formats.argnames`, generated from the syscall trace events); a syscall it does not
list keeps whole-register comparisons. ``narrow=False`` (the libseccomp compatibility layer,
whose promise is libseccomp's bytes) compares such arguments as libseccomp does, all 64 bits.
"""
from __future__ import annotations

from ..arch import Arch, UnknownSyscall, is_syscall_name, unknown_syscall_message
from ..errors import UserError
from ..formats.argnames import ARGS, UID16
from ..immutable import Record
from ..policy import Action, Compare, Condition, Op, Policy, Term
from .multiplex import multiplexed_rules

U16 = 0xFFFF
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
#: The least sign-extended negative 32-bit value (0xffffffff80000000): values from here up, and
#: values up to U32, are 32-bit words written in 64 bits.
SEXT_MIN = U64 + 1 - (1 << 31)
_ALL_ARGS = frozenset(range(6))
_NONE: frozenset[int] = frozenset()
_NARROW: dict[str, frozenset[int]] = {}
_SHORT: dict[tuple[str, bool], frozenset[int]] = {}


class LoweringError(UserError):
    """A policy that cannot be lowered for an arch (unknown syscall name, ...)."""


class Decision(Record):
    """What to do for one syscall number: try ``rules`` (conditions, action) in order, else ``default``.

    With no rules it is a plain verdict. Rules are already in precedence order, so the first
    whose conditions all hold decides.
    """

    __slots__ = ("rules", "default")
    rules: tuple[tuple[tuple[Condition | Compare, ...], Action], ...]
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


def narrow_args(arch: Arch, nr: int) -> frozenset[int]:
    """Indexes of the arguments syscall ``nr``'s handler on ``arch`` reads as 32-bit values."""
    if arch.compare_bits == 32:
        return _ALL_ARGS  # 32-bit ABIs, x32 and n32: every argument
    name = arch.name_of(nr)
    if name is None:
        return _NONE
    got = _NARROW.get(name)
    if got is None:
        got = _NARROW[name] = frozenset(i for i, (_, w) in enumerate(ARGS.get(name, ())) if w < 64)
    return got


def short_args(arch: Arch, nr: int) -> frozenset[int]:
    """Indexes of the arguments syscall ``nr``'s handler on ``arch`` reads as 16-bit values (on
    every ABI): ``umode_t`` modes and, on the ABIs that have ``setuid32`` & co. beside them, the
    uids and gids of the 16-bit calls they name ``setuid``, ``chown``, ... (a subset of
    :func:`narrow_args`)."""
    name = arch.name_of(nr)
    if name is None:
        return _NONE
    old = name in UID16 and arch.has("setuid32")
    got = _SHORT.get((name, old))
    if got is None:
        params = UID16[name] if old else ARGS.get(name, ())
        got = _SHORT[(name, old)] = frozenset(i for i, (_, w) in enumerate(params) if w == 16)
    return got


def _const(cond: Condition, narrow: bool, sext: bool = False, top: int = U32) -> bool | None:
    """Settle a condition that is always true or always false; ``narrow``: the argument is ``top``
    wide (32 or 16 bits); ``sext``: a sign-extended value is its low word (an ``int`` argument of a
    64-bit ABI)."""
    top = top if narrow else U32 if cond.width == 32 else U64
    v = cond.value
    if narrow and sext and v >= SEXT_MIN:
        v &= U32
    if cond.op is Op.MASKED_EQ:
        m = cond.mask & top
        if v & ~m & U64:
            return False  # value has bits the mask clears (or above every 32-bit value)
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


def _narrow(cond: Condition) -> Condition:
    """The test of a 32-bit argument: on its low word and the value's (``_const`` left it open,
    so the value is a 32-bit word, zero- or, on a 64-bit ABI, sign-extended)."""
    if cond.width == 64:
        return Condition(cond.arg, cond.op, cond.value & U32,
                         cond.mask & U32 if cond.op is Op.MASKED_EQ else U64, 32)
    return cond


def _short(cond: Condition) -> Condition | Compare:
    """The test of a 16-bit argument (``_const`` left it open, so the value fits 16 bits): on the
    low word with its bits above 16 cleared (``A &= 0xffff``; BPF has no 16-bit load)."""
    if cond.op is Op.MASKED_EQ or cond.op is Op.EQ:
        return Condition(cond.arg, Op.MASKED_EQ, cond.value, cond.mask & U16, 32)
    return Compare(Term.combine("&", Term.arg(cond.arg), Term.const(U16)), cond.op, Term.const(cond.value), 32)


def _low_terms(t: Term, masks: dict[int, int]) -> Term:
    """``t`` with each narrow argument read as the bits its handler sees (``arg & 0xffffffff``,
    ``arg & 0xffff``)."""
    if t.kind == "arg":
        m = masks.get(t.value)
        return t if m is None else Term.combine("&", t, Term.const(m))
    if t.kind == "const":
        return t
    assert t.left is not None and t.right is not None
    return Term.combine(t.kind, _low_terms(t.left, masks), _low_terms(t.right, masks))


def _compare(c: Compare, masks: dict[int, int]) -> Compare:
    """A comparison between arguments, with the narrow ones zero-extended from the bits their
    handler reads (``masks``: argument -> those bits)."""
    if not masks:
        return c
    return Compare(_low_terms(c.left, masks), c.op, _low_terms(c.right, masks), c.width)


def _strictness_key(action: Action) -> tuple[int, int]:
    return (-action.strictness, action.data)


def lower(policy: Policy, arch: Arch, skip_unknown: bool = False, narrow: bool = True) -> Lowered:
    """Decisions for every syscall number the policy's rules name on ``arch``.

    ``narrow``: decide conditions on arguments the handler reads as 32 (16) bits on those bits
    (see the module's docstring); without it only the 32-bit ABIs, x32 and n32 do, on 32 bits.
    """
    by_nr: dict[int, list[tuple[tuple[Condition | Compare, ...], Action]]] = {}
    skipped: list[str] = []
    table = arch.syscalls
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
            tests: list[Condition | Compare] = []
            dead = False
            low32 = narrow_args(arch, nr) if narrow or arch.compare_bits == 32 else _NONE
            low16 = short_args(arch, nr) if narrow else _NONE
            sext = arch.compare_bits == 64
            for c in rule.conditions:
                if isinstance(c, Compare):
                    # a 32-bit ABI's kernel already gives zero high words; a 32-bit compare ignores them
                    masks = {} if arch.bits == 32 or c.width == 32 else dict.fromkeys(low32, U32)
                    masks.update(dict.fromkeys(low16, U16))
                    tests.append(_compare(c, masks))
                    continue
                if c.arg in low16:
                    k = _const(c, True, False, U16)
                    if k is None:
                        tests.append(_short(c))
                    elif k is False:
                        dead = True
                        break
                    continue
                k = _const(c, c.arg in low32, sext)
                if k is False:
                    dead = True
                    break
                if k is None:
                    tests.append(_narrow(c) if c.arg in low32 else c)
            if dead:
                continue
            entry = (tuple(tests), rule.action)
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
        kept: list[tuple[tuple[Condition | Compare, ...], Action]] = []
        seen: set[tuple[tuple[Condition | Compare, ...], Action]] = set()  # (a scan of `kept` was n^2 per number)
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
