"""The multiplexed forms of socket and IPC calls as policy rules: rules on socketcall(2) and ipc(2).

Policy-level, below the compiler and the formats: the compiler lowers these rules with the
others, and the writers of formats whose tools do not multiplex write them out (:func:`explicit`).

On an ABI that multiplexes (see :mod:`sysgate.arch.multiplexed`) a program can make
``socket(...)`` directly or as ``socketcall(SYS_SOCKET, &args)``. As libseccomp does
(``abi_rule_add``), a rule for a sub-call covers both forms: the multiplexed form is a rule
on the multiplexer whose argument 0 selects the sub-call. Two deliberate differences:

* The selector is tested as the kernel reads it: the low 32 bits for socketcall (``int
  call``), the low 16 bits for ipc (the rest is a version). libseccomp compares all of
  argument 0, so ``ipc(0x10001, ...)`` (semop) or, on 64-bit ABIs, ``socketcall(1 | 1 << 32)``
  escaped a rule for the sub-call.
* The sub-call's own arguments are behind a pointer (socketcall) or moved (ipc), so argument
  rules cannot be checked there. When a sub-call has rules with conditions, its multiplexed
  form is refused: it gets what the call gets when none of its conditional rules hold (its
  strictest unconditional rule, else the policy's default), and errno EPERM when that would
  let the call run (allow, log). libseccomp instead drops the test of argument 0 and applies
  the others to the multiplexer's arguments, so docker-default let ``socketcall(SYS_SOCKET,
  {AF_VSOCK, ...})`` through.

The rules made here join the policy's own rules on the multiplexer, and the strictest
matching action wins as everywhere else.
"""
from __future__ import annotations

from .arch import Arch
from .arch.multiplexed import SELECTOR_MASK, multiplexer
from .policy import Action, ActionKind, Condition, Op, Policy, Rule

__all__ = ["multiplexed_rules", "refusal", "refused_subcalls", "notes", "explicit"]

#: What a refused multiplexed call gets instead of a verdict that would let it run.
REFUSED = Action(ActionKind.ERRNO, 1)  # EPERM
_RUNS = (ActionKind.ALLOW, ActionKind.LOG)


def refusal(policy: Policy, rules: list[Rule]) -> Action:
    """The action for the multiplexed form of a sub-call whose ``rules`` test arguments."""
    fallback = policy.default
    found = False
    for r in rules:
        if not r.conditions and (not found or r.action.stricter_than(fallback)):
            fallback, found = r.action, True
    return REFUSED if fallback.kind in _RUNS else fallback


def _selector(mux: str, number: int) -> Condition:
    mask = SELECTOR_MASK[mux]
    if mask == 0xFFFFFFFF:
        return Condition(0, Op.EQ, number, width=32)
    return Condition(0, Op.MASKED_EQ, number, mask=mask, width=32)


def _by_subcall(policy: Policy, arch: Arch) -> dict[str, list[Rule]]:
    muxes = [m for m in ("socketcall", "ipc") if m in arch.syscalls]
    out: dict[str, list[Rule]] = {}
    if not muxes:
        return out
    for r in policy.rules:
        if isinstance(r.syscall, str):
            m = multiplexer(r.syscall)
            if m is not None and m[0] in muxes:
                out.setdefault(r.syscall, []).append(r)
    return out


def multiplexed_rules(policy: Policy, arch: Arch) -> tuple[list[Rule], set[str]]:
    """Rules on ``arch``'s multiplexers standing for the policy's rules on sub-calls, and the
    sub-call names they cover (no rule for an ABI that does not multiplex)."""
    out: list[Rule] = []
    by_sub = _by_subcall(policy, arch)
    for name, rules in by_sub.items():
        mux, number = multiplexer(name)  # type: ignore[misc]
        sel = (_selector(mux, number),)
        if any(r.conditions for r in rules):
            out.append(Rule(mux, refusal(policy, rules), sel))
        else:
            out.extend(Rule(mux, r.action, sel) for r in rules)
    return out, set(by_sub)


def refused_subcalls(policy: Policy, arch: Arch) -> list[tuple[str, str, Action]]:
    """(multiplexer, sub-call, action) for each multiplexed form refused on ``arch`` because the
    sub-call has argument rules, for explanations."""
    out = []
    for name, rules in _by_subcall(policy, arch).items():
        if any(r.conditions for r in rules):
            out.append((multiplexer(name)[0], name, refusal(policy, rules)))  # type: ignore[index]
    return out


def notes(policy: Policy, arches: list[str] | tuple[str, ...]) -> list[str]:
    """One line per refused multiplexed form, naming the arches, for ``explain`` and ``audit``."""
    from .arch import get

    where: dict[tuple[str, str, Action], list[str]] = {}
    for name in arches:
        a = get(name)
        for mux, sub, action in refused_subcalls(policy, a):
            where.setdefault((mux, sub, action), []).append(a.name)
    out = []
    for (mux, sub, action), names in where.items():
        sel = f"SYS_{sub.upper()}" if mux == "socketcall" else sub.upper()
        out.append(f"note: {mux}({sel}) is refused with {action} on {', '.join(names)}: the argument rules of "
                   f"{sub} cannot be checked through {mux}, so only direct {sub} calls can pass them")
    return out


def explicit(policy: Policy) -> Policy:
    """``policy`` with the rules on multiplexers written out, for the formats whose own tools do not
    multiplex (Kafel, minijail): their compilers would otherwise decide ``socketcall(SYS_SOCKET)`` by
    the rules on ``socketcall`` alone. Reading the result back gives the same decisions, since these
    are the rules the compiler adds anyway."""
    from .arch import get, native

    added: list[Rule] = []
    for name in policy.arches or (native().name,):
        for r in multiplexed_rules(policy, get(name))[0]:
            if r not in added and r not in policy.rules:
                added.append(r)
    return policy.with_rules(tuple(policy.rules) + tuple(added)) if added else policy
