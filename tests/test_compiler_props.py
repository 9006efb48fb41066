"""The compiler against the reference evaluator, through the emulator, on random policies.

``emulate(compile(policy), call)`` must equal ``evaluate(policy, call)`` for random calls
and for every boundary value of every condition, on every architecture.
"""
from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import NAMES, boundary_args, policies
from sysgate import arch as A
from sysgate.bpf.emulator import check, emulate
from sysgate.compiler import CompileError, compile_policy
from sysgate.policy import ALLOW, Action, ActionKind, Condition, Op, Policy, Rule, errno
from sysgate.reference import evaluate

U64 = (1 << 64) - 1


def _calls(policy: Policy, rnd: random.Random, n: int = 60):
    """Calls worth asking: every named syscall on every arch (covered or not), x32 numbers,
    random numbers, with args at condition boundaries and random."""
    bounds = boundary_args(policy)
    arches = list(policy.arches) + ["x86_64", "x32", "x86", "aarch64", "s390x", "mips"]
    for _ in range(n):
        a = A.get(rnd.choice(arches))
        choice = rnd.random()
        if choice < 0.6:
            r = rnd.choice(policy.rules) if policy.rules and rnd.random() < 0.8 else None
            name = r.syscall if r else rnd.choice(NAMES)
            if isinstance(name, int):
                nr = name
            else:
                nr = a.syscalls.get(name, rnd.randrange(0, 1 << 32))
        elif choice < 0.8:
            nr = rnd.choice([0, 1, 0x3FFFFFFF, 0x40000000, 0x40000001, 0xFFFFFFFF, 4000, 5000, 6000])
        else:
            nr = rnd.randrange(0, 1 << 32)
        args = [rnd.choice(bounds) if rnd.random() < 0.7 else rnd.randrange(0, 1 << 64) for _ in range(6)]
        yield a, nr, args


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policies(), st.integers(0, 2**32))
def test_compiled_equals_reference(policy: Policy, seed: int) -> None:
    prog = compile_policy(policy)
    check(prog.insns)
    rnd = random.Random(seed)
    for a, nr, args in _calls(policy, rnd):
        want = evaluate(policy, a.name, nr, args)
        got = emulate(prog.insns, a, nr, args)
        assert got.ret == want.ret, (a.name, nr, [hex(x) for x in args], hex(got.ret), str(want))


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policies(max_rules=4), st.sampled_from([a.name for a in A.ARCHES]))
def test_every_boundary_of_every_condition(policy: Policy, arch_name: str) -> None:
    """Exhaustive over boundary values for the arg each rule tests, one arch at a time."""
    policy = policy.with_arches([arch_name])
    prog = compile_policy(policy)
    a = A.get(arch_name)
    bounds = boundary_args(policy)
    for r in policy.rules:
        nr = r.syscall if isinstance(r.syscall, int) else a.syscalls.get(r.syscall)
        if nr is None:
            continue
        for c in r.conditions:
            for v in bounds:
                args = [0] * 6
                args[c.arg] = v
                assert emulate(prog.insns, a, nr, args).ret == evaluate(policy, a.name, nr, args).ret


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policies(max_rules=400, arches=["x86_64", "x86", "x32"]), st.integers(0, 2**32))
def test_big_policies_far_jumps(policy: Policy, seed: int) -> None:
    """Large policies need jumps beyond 255 instructions; decisions must not change."""
    try:
        prog = compile_policy(policy)
    except CompileError as e:
        assert "at most 4096" in str(e)
        return
    check(prog.insns)
    rnd = random.Random(seed)
    for a, nr, args in _calls(policy, rnd, 150):
        assert emulate(prog.insns, a, nr, args).ret == evaluate(policy, a.name, nr, args).ret


def test_far_jumps_are_really_exercised() -> None:
    # values below 2^16 (distinct): some of these arguments are a 16-bit mode (chmod's, ...)
    rules = [Rule(n, ALLOW, (Condition(i % 6, Op.EQ, i * 7919 & 0xFFFF),)) for i, n in
             enumerate(sorted(A.get("x86_64").syscalls)[:300])]
    policy = Policy(errno(1), tuple(rules), ("x86_64",))
    prog = compile_policy(policy)
    check(prog.insns)
    assert len(prog) > 600
    assert any(ins.code == 0x05 for ins in prog.insns), "expected ja trampolines"
    for i, r in enumerate(rules):
        nr = A.get("x86_64").nr(r.syscall)  # type: ignore[arg-type]
        args = [0] * 6
        args[i % 6] = i * 7919 & 0xFFFF
        assert emulate(prog.insns, "x86_64", nr, args).ret == ALLOW.ret
        args[i % 6] += 1
        assert emulate(prog.insns, "x86_64", nr, args).ret == errno(1).ret


def test_deterministic() -> None:
    rules = tuple(Rule(n, ALLOW) for n in NAMES)
    p = Policy(errno(1), rules, ("x86_64", "x86", "x32"))
    assert compile_policy(p).to_bytes() == compile_policy(p).to_bytes()
    assert compile_policy(p).to_bytes() == compile_policy(p.with_rules(reversed(rules))).to_bytes()


def test_arch_check_first_and_x32_refused() -> None:
    p = Policy(ALLOW, (), ("x86_64",))
    prog = compile_policy(p)
    assert prog.insns[0] == (0x20, 0, 0, 4)  # A = arch
    assert emulate(prog.insns, "x86_64", 0x40000000 + 1).action == 0x80000000
    assert emulate(prog.insns, "x86", 1).action == 0x80000000
    assert emulate(prog.insns, "x86_64", 1).ret == ALLOW.ret
    both = compile_policy(p.with_arches(["x86_64", "x32"]))
    assert emulate(both.insns, "x32", 0x40000001).ret == ALLOW.ret


def test_too_long_is_a_clear_error() -> None:
    names = sorted(A.get("x86_64").syscalls)
    rules = [Rule(n, ALLOW, (Condition(0, Op.EQ, i * 16 + v),)) for i, n in enumerate(names) for v in range(9)]
    with pytest.raises(CompileError, match="at most 4096"):
        compile_policy(Policy(errno(1), tuple(rules), ("x86_64",)))


def test_mixed_endianness_refused() -> None:
    with pytest.raises(CompileError, match="big- and little-endian"):
        compile_policy(Policy(ALLOW, (), ("x86_64", "s390x")))


def test_unknown_syscall_suggests() -> None:
    with pytest.raises(CompileError, match="did you mean openat"):
        compile_policy(Policy(ALLOW, (Rule("opnat", errno(1)),), ("x86_64",)))


def test_name_missing_on_target_is_skipped() -> None:
    prog = compile_policy(Policy(errno(1), (Rule("arm_fadvise64_64", ALLOW), Rule("read", ALLOW)), ("x86_64",)))
    assert prog.skipped == {"x86_64": ("arm_fadvise64_64",)}


def test_conflicting_rules_strictest_wins() -> None:
    """Documented semantics: when rules overlap, the stricter action wins, whatever the order."""
    r_allow = Rule("write", ALLOW)
    r_deny = Rule("write", errno(13), (Condition(0, Op.EQ, 3),))
    r_kill = Rule("write", Action(ActionKind.KILL_PROCESS), (Condition(0, Op.EQ, 4),))
    r_errno_low = Rule("write", errno(5), (Condition(0, Op.EQ, 3),))
    for rules in ([r_allow, r_deny, r_kill, r_errno_low], [r_kill, r_errno_low, r_deny, r_allow]):
        prog = compile_policy(Policy(errno(1), tuple(rules), ("x86_64",)))
        assert emulate(prog.insns, "x86_64", 1, [1]).ret == ALLOW.ret
        assert emulate(prog.insns, "x86_64", 1, [3]).ret == errno(5).ret
        assert emulate(prog.insns, "x86_64", 1, [4]).action == 0x80000000


def test_32bit_arch_ignores_high_word() -> None:
    """On i386 the kernel zero-extends args: a 64-bit value above 2^32 can never be equal."""
    p = Policy(errno(1), (Rule("write", ALLOW, (Condition(0, Op.EQ, (1 << 32) | 1),)),
                          Rule("read", ALLOW, (Condition(0, Op.EQ, 1, width=32),))), ("x86",))
    prog = compile_policy(p)
    a = A.get("x86")
    assert emulate(prog.insns, a, a.nr("write"), [1]).ret == errno(1).ret
    assert emulate(prog.insns, a, a.nr("read"), [1]).ret == ALLOW.ret
    # and no high-word loads at all on a 32-bit ABI
    assert all(not (ins.code == 0x20 and ins.k >= 16 and (ins.k - 16) % 8 == 4) for ins in prog.insns)
