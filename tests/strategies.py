"""Hypothesis strategies for random policies and calls, shared by the property tests."""
from __future__ import annotations

from hypothesis import strategies as st

from sysgate import arch as A
from sysgate.policy import Action, ActionKind, Condition, Op, Policy, Rule

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

EDGES = [0, 1, 2, 0x7FFFFFFF, 0x80000000, U32 - 1, U32, 1 << 32, (1 << 32) + 1, (1 << 63) - 1, 1 << 63,
         U64 - 1, U64]
NAMES = ["read", "write", "openat", "close", "mmap", "ioctl", "personality", "clone", "exit_group",
         "getpid", "fcntl", "prctl", "socket", "kill", "futex", "madvise", "mprotect", "setns"]

LE_ARCHES = [a.name for a in A.ARCHES if not a.big_endian]
BE_ARCHES = [a.name for a in A.ARCHES if a.big_endian]


def actions(with_notify: bool = True) -> st.SearchStrategy[Action]:
    kinds = [k for k in ActionKind if with_notify or k is not ActionKind.USER_NOTIF]
    return st.one_of(
        st.sampled_from([Action(k) for k in kinds if k not in (ActionKind.ERRNO, ActionKind.TRACE)]),
        st.integers(0, 4095).map(lambda n: Action(ActionKind.ERRNO, n)),
        st.integers(0, 0xFFFF).map(lambda n: Action(ActionKind.TRACE, n)),
    )


values64 = st.one_of(st.sampled_from(EDGES), st.integers(0, U64), st.integers(0, 300))


@st.composite
def conditions(draw: st.DrawFn, width: int | None = None) -> Condition:
    w = draw(st.sampled_from([64, 64, 32])) if width is None else width
    op = draw(st.sampled_from(list(Op)))
    top = U32 if w == 32 else U64
    v = draw(values64) & top
    if op is Op.MASKED_EQ:
        m = draw(st.one_of(values64, st.sampled_from([0xFF, 0x7E020000, 0xFFFF0000FFFF0000, 1 << 40, 8]))) & top
        if draw(st.booleans()):
            v &= m  # mostly satisfiable
        return Condition(draw(st.integers(0, 5)), op, v, mask=m, width=w)
    return Condition(draw(st.integers(0, 5)), op, v, width=w)


@st.composite
def policies(draw: st.DrawFn, arches: list[str] | None = None, max_rules: int = 12,
             names: list[str] = NAMES, raw_numbers: bool = True) -> Policy:
    if arches is None:
        pool = draw(st.sampled_from([LE_ARCHES, BE_ARCHES]))
        arches = draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
    syscall = st.sampled_from(names)
    if raw_numbers:
        syscall = st.one_of(syscall, st.integers(0, 600))
    rule = st.builds(lambda s, a, c: Rule(s, a, tuple(c)), syscall, actions(),
                     st.lists(conditions(), max_size=3))
    rules = draw(st.lists(rule, max_size=max_rules))
    return Policy(draw(actions()), tuple(rules), tuple(arches), draw(actions()))


def boundary_args(policy: Policy) -> list[int]:
    """Each condition's value and mask, and their neighbours, split into words too."""
    out = set(EDGES)
    for r in policy.rules:
        for c in r.conditions:
            for v in (c.value, c.mask & U64, c.value | (c.mask ^ U64)):
                for d in (-1, 0, 1):
                    out.add((v + d) & U64)
                out.add(v & U32)
                out.add(v >> 32)
                out.add(((v >> 32) + 1) << 32 & U64)
    return sorted(out)


@st.composite
def narrow_arg_policies(draw: st.DrawFn, arch_sets: list[tuple[str, ...]], calls: list[str], datums: list[int],
                        masks: list[int]) -> Policy:
    """Policies of argument tests on ``calls``, whose handlers read some arguments narrower than
    the register (tests/test_int_args.py, tests/test_short_args.py): 1-4 calls, 1-2 rules each, 1-2
    conditions on arguments 0-3 with every operator, values from ``datums``, masks from ``masks``
    (masked values half the time), for one of ``arch_sets``."""
    from sysgate.policy import ALLOW, KILL_PROCESS, TRAP, errno

    arches = draw(st.sampled_from(arch_sets))
    acts = [ALLOW, errno(1), errno(9), TRAP, KILL_PROCESS]
    default = draw(st.sampled_from(acts))
    rules = []
    for name in draw(st.lists(st.sampled_from(calls), min_size=1, max_size=4, unique=True)):
        for _ in range(draw(st.integers(1, 2))):
            conds = []
            for i in draw(st.lists(st.integers(0, 3), min_size=1, max_size=2, unique=True)):
                op = draw(st.sampled_from(list(Op)))
                v = draw(st.sampled_from(datums))
                if op is Op.MASKED_EQ:
                    m = draw(st.sampled_from(masks))
                    conds.append(Condition(i, op, v & m if draw(st.booleans()) else v, mask=m))
                else:
                    conds.append(Condition(i, op, v))
            rules.append(Rule(name, draw(st.sampled_from(acts)), tuple(conds)))
    return Policy(default, tuple(rules), arches, KILL_PROCESS)
