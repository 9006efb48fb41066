"""The optimizer's passes (:mod:`sysgate.compiler.passes`) against the straightforward program.

As gVisor's optimizer fuzz test does: for random policies and random calls, the program
compiled with ``optimize=False`` and with every pass (or all passes but one, or one alone)
decide every call alike on the emulator, both pass the kernel's load-time checks, and the
optimized program is never longer. The kernel loads a sample of unoptimized programs and
decides calls as the emulator does. Every pass changes the program of some policy below
(none is a no-op), and ``sysgate compile --no-optimize`` gives the straightforward program.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forkrun import run
from strategies import EDGES, NAMES, actions, boundary_args, conditions, policies
from sysgate import arch as A
from sysgate import cli
from sysgate.bpf.emulator import check, emulate
from sysgate.compiler import CompileError, compile_policy, passes
from sysgate.policy import ALLOW, Action, ActionKind, Compare, Condition, Op, Policy, Rule, Term, errno
from sysgate.profiles import resolve
from sysgate.reference import evaluate

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
ALL = frozenset(passes.names())
SRC = Path(__file__).resolve().parents[1] / "src"


@st.composite
def terms(draw: st.DrawFn, depth: int = 0) -> Term:
    kind = draw(st.sampled_from(["arg", "arg", "const", "&", "|"] if depth < 2 else ["arg", "const"]))
    if kind == "arg":
        return Term.arg(draw(st.integers(0, 5)))
    if kind == "const":
        return Term.const(draw(st.one_of(st.sampled_from([0, U32, U64, 1 << 32]), st.sampled_from(EDGES))))
    return Term.combine(kind, draw(terms(depth + 1)), draw(terms(depth + 1)))


compares = st.builds(Compare, terms(), st.sampled_from([o for o in Op if o is not Op.MASKED_EQ]), terms(),
                     st.sampled_from([64, 32]))


@st.composite
def mixed_policies(draw: st.DrawFn) -> Policy:
    """Random policies with argument-to-argument compares and runs of equality tests (which
    the grouping pass merges) added to :func:`strategies.policies`'s."""
    base = draw(policies(max_rules=8))
    extra = []
    for _ in range(draw(st.integers(0, 2))):
        conds = draw(st.lists(st.one_of(compares, conditions()), min_size=1, max_size=3))
        extra.append(Rule(draw(st.sampled_from(NAMES)), draw(actions()), tuple(conds)))
    if draw(st.booleans()):  # a run of "arg == v" rules with one action, mostly one high word
        name, act, arg = draw(st.sampled_from(NAMES)), draw(actions()), draw(st.integers(0, 5))
        his = draw(st.lists(st.sampled_from([0, 1 << 32, U64 - U32]), min_size=1, max_size=2))
        for v in draw(st.lists(st.integers(0, 300), min_size=2, max_size=5)):
            extra.append(Rule(name, act, (Condition(arg, Op.EQ, draw(st.sampled_from(his)) | v),)))
    if draw(st.booleans()):  # rules on one syscall that test the same argument (loads to share)
        name, arg = draw(st.sampled_from(NAMES)), draw(st.integers(0, 5))
        for _ in range(draw(st.integers(2, 4))):
            conds = draw(st.lists(conditions(), min_size=1, max_size=2))
            conds = [Condition(arg, c.op, c.value, mask=c.mask, width=c.width) for c in conds]
            extra.append(Rule(name, draw(actions()), tuple(conds)))
    rules = list(base.rules) + extra
    draw(st.randoms(use_true_random=False)).shuffle(rules)
    return Policy(base.default, tuple(rules), base.arches, base.bad_arch)


def _bounds(policy: Policy) -> list[int]:
    """:func:`strategies.boundary_args`, with the constants of compares' terms."""
    plain = [Rule(r.syscall, r.action, tuple(c for c in r.conditions if isinstance(c, Condition)))
             for r in policy.rules]
    out = set(boundary_args(Policy(policy.default, tuple(plain), policy.arches, policy.bad_arch)))

    def consts(t: Term | None) -> None:
        if t is not None:
            if t.kind == "const":
                out.update({t.value, t.value & U32, t.value >> 32, (t.value + 1) & U64, (t.value - 1) & U64})
            consts(t.left)
            consts(t.right)

    for r in policy.rules:
        for c in r.conditions:
            if isinstance(c, Compare):
                consts(c.left)
                consts(c.right)
    return sorted(out)


def _near(c: Condition, rnd: random.Random) -> int:
    """A value for ``c``'s argument on the edge of ``c``: equal, one off, or matching its mask."""
    noise = rnd.randrange(U64 + 1)
    if c.width == 32:  # the high word is ignored: anything may be there
        base = c.value & U32 | noise & ~U32
    else:
        base = c.value
    if c.op is Op.MASKED_EQ:
        base = base & c.mask | noise & ~c.mask & U64
        return base ^ (1 << (noise % 64)) if rnd.random() < 0.2 else base
    return (base + rnd.choice([0, 0, 1, -1])) & U64


def _calls(policy: Policy, rnd: random.Random, n: int = 80):
    """Calls worth asking: mostly a rule's syscall on one of the policy's arches with arguments
    on the edges of that rule's conditions (so each test goes both ways), else other
    syscalls and arches, x32 and odd numbers, arguments at condition boundaries or random."""
    bounds = _bounds(policy)
    others = ["x86_64", "x32", "aarch64", "s390x"]
    for _ in range(n):
        a = A.get(rnd.choice(policy.arches if rnd.random() < 0.8 else others))
        args = [rnd.choice(bounds) if rnd.random() < 0.7 else rnd.randrange(U64 + 1) for _ in range(6)]
        c = rnd.random()
        if c < 0.8 and policy.rules:
            r = rnd.choice(policy.rules)
            nr = r.syscall if isinstance(r.syscall, int) else a.syscalls.get(r.syscall, rnd.randrange(1 << 32))
            for cond in r.conditions:
                if isinstance(cond, Condition) and rnd.random() < 0.8:
                    args[cond.arg] = _near(cond, rnd)
        elif c < 0.9:
            nr = rnd.choice([0, 1, 0x3FFFFFFF, 0x40000000, 0x40000001, U32, 4000, 5000, 6000])
        else:
            name = rnd.choice(NAMES)
            nr = a.syscalls.get(name, rnd.randrange(1 << 32))
        yield a, nr, args


def _compile_both(policy: Policy, optimized: object, straightforward: object):
    """The two programs, or None when the longer one does not fit the kernel's limit (then the
    shorter one must be the one that fits, if any)."""
    try:
        slow = compile_policy(policy, optimize=straightforward)  # type: ignore[arg-type]
    except CompileError:
        try:
            compile_policy(policy, optimize=optimized)  # type: ignore[arg-type]
        except CompileError:
            pass
        return None
    fast = compile_policy(policy, optimize=optimized)  # type: ignore[arg-type]
    return fast, slow


def _assert_alike(policy: Policy, optimized: object, straightforward: object, seed: int,
                  shorter: bool = True) -> None:
    both = _compile_both(policy, optimized, straightforward)
    if both is None:
        return
    fast, slow = both
    check(fast.insns)
    check(slow.insns)
    if shorter:
        assert len(fast) <= len(slow), (len(fast), len(slow))
    rnd = random.Random(seed)
    for a, nr, args in _calls(policy, rnd):
        got, want = emulate(fast.insns, a, nr, args).ret, emulate(slow.insns, a, nr, args).ret
        assert got == want, (a.name, nr, [hex(x) for x in args], hex(got), hex(want))


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(mixed_policies(), st.integers(0, 2**32))
def test_optimized_and_straightforward_decide_alike(policy: Policy, seed: int) -> None:
    _assert_alike(policy, True, False, seed)


@pytest.mark.parametrize("name", passes.names())
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(policy=mixed_policies(), seed=st.integers(0, 2**32))
def test_each_pass_alone_and_all_but_it_decide_alike(name: str, policy: Policy, seed: int) -> None:
    """Lengths are not compared here: a pass alone can cost a ``ja`` elsewhere (weight_by_use
    reshapes the search tree for speed, and a tail shared by reference may then no longer
    follow the step before it); all of them together are never longer (above)."""
    _assert_alike(policy, [name], False, seed, shorter=False)
    _assert_alike(policy, True, ALL - {name}, seed, shorter=False)


@pytest.mark.parametrize("profile", ["docker-default", "python", "strict"])
@pytest.mark.parametrize("arches", [["x86_64", "x86", "x32"], ["aarch64"], ["s390x"]])
def test_builtins_decide_alike_unoptimized(profile: str, arches: list[str]) -> None:
    """Every syscall number of each arch (and around the x32 bit), with zero and boundary arguments."""
    policy = resolve(profile, arch=arches[0], arches=arches)
    fast, slow = compile_policy(policy), compile_policy(policy, optimize=False)
    check(slow.insns)
    assert len(fast) < len(slow)
    rnd = random.Random(3)
    bounds = boundary_args(policy)
    for name in arches:
        a = A.get(name)
        top = max(a.syscalls.values()) + 8
        for nr in [*range(top - 520 if top > 520 else 0, top), 0x40000000 - 1, U32]:
            args = [0] * 6 if nr % 2 else [rnd.choice(bounds) for _ in range(6)]
            assert emulate(fast.insns, a, nr, args).ret == emulate(slow.insns, a, nr, args).ret, (name, nr)


# --- every pass does something ---------------------------------------------------------------
_a0, _a1 = Term.arg(0), Term.arg(1)
_SHOWCASES = [
    resolve("docker-default", arch="x86_64", arches=["x86_64"]),
    resolve("docker-default", arch="x86_64", arches=["x86_64", "x86", "x32"]),
    # (arg0 & 0) != arg1: the left word is 0 at compile time
    Policy(ALLOW, (Rule("getpid", errno(1), (Compare(Term.combine("&", _a0, Term.const(0)), Op.NE, _a1),)),),
           ("x86_64",)),
    # several equality tests of one 64-bit argument (lseek's offset): one group
    Policy(ALLOW, tuple(Rule("lseek", errno(1), (Condition(1, Op.EQ, v),)) for v in (1, 2, 3, 1 << 40)),
           ("x86_64",)),
    # a conditional rule and an unconditional one with the same action: the test's edges agree
    Policy(ALLOW, (Rule("fcntl", errno(1), (Condition(5, Op.LE, 7, width=32),)), Rule("fcntl", errno(1))),
           ("x86_64",)),
]


@pytest.mark.parametrize("name", passes.names())
def test_every_pass_changes_some_program(name: str) -> None:
    changed = [p for p in _SHOWCASES
               if compile_policy(p, optimize=ALL - {name}).insns != compile_policy(p).insns]
    assert changed, f"{name} changes none of the showcase programs"


def test_the_pass_list() -> None:
    names = passes.names()
    assert len(names) == len(set(names)) == len(passes.PASSES) >= 10
    stages = ["layout", "select", "node", "graph", "emit"]
    order = [stages.index(p.stage) for p in passes.PASSES]
    assert order == sorted(order), "passes are listed in pipeline order"
    for p in passes.PASSES:
        assert "Sound" in p.doc, f"{p.name}: its docstring says why it is sound"
    assert passes.select(True) == ALL and passes.select(False) == frozenset()
    assert passes.select("fold_constants") == {"fold_constants"}
    policy = Policy(ALLOW, (Rule("read", errno(1)),), ("x86_64",))
    with pytest.raises(CompileError, match="unknown optimization pass 'bogus'"):
        compile_policy(policy, optimize=["fold_constants", "bogus"])
    assert compile_policy(policy, optimize=ALL).insns == compile_policy(policy).insns


# --- the kernel loads unoptimized programs -------------------------------------------------------
HARMLESS = ["getpid", "getppid", "getuid", "getgid", "geteuid", "getegid", "getpgrp", "sched_yield"]
# Refused by docker-default or strict with an errno, and harmless if a wrong filter let them run
# (a NULL pointer or a no-op). Each is called only when the emulator says the filter refuses it.
REFUSED = {"acct": [0], "swapoff": [0], "umount2": [0, 0], "pivot_root": [0, 0], "syslog": [0, 0, 0],
           "unshare": [0], "setns": [-1 & U64, 0]}
VALUES = [0, 1, 2, 3, 0x7FFFFFFF, 0x80000000, U32, 1 << 32, (1 << 32) | 1, U64 - 1, U64]


def _child(prog: bytes, calls: list[tuple[int, list[int]]], harmless: list[int]) -> list[int]:
    """In the child: install ``prog``, make the calls; 0 for a call that ran, else minus its errno."""
    from sysgate.kernel.seccomp import install
    from sysgate.kernel.syscall import syscall

    natural = {nr: syscall(nr) for nr in harmless}  # their value ignores arguments
    install(prog, 0)
    out = []
    for nr, args in calls:
        try:
            got = syscall(nr, *args)
            out.append(0 if nr not in natural or got == natural[nr] else -1000)
        except OSError as e:
            out.append(-e.errno)
    return out


def _expected(ret: int) -> int | None:
    """What ``_child`` records for a verdict, or None for a verdict that ends or stops the child."""
    act = Action.from_ret(ret)
    if act.kind in (ActionKind.ALLOW, ActionKind.LOG):
        return 0
    if act.kind is ActionKind.ERRNO:
        return -act.data
    return None


def _kernel_agrees(policy: Policy, calls: list[tuple[int, list[int]]]) -> None:
    x64 = A.get("x86_64")
    slow = compile_policy(policy, optimize=False)
    fast = compile_policy(policy)
    kept = []
    for nr, args in calls:
        ret = emulate(fast.insns, x64, nr, args).ret
        assert emulate(slow.insns, x64, nr, args).ret == ret
        want = _expected(ret)
        if want is not None:
            kept.append((nr, args, want))
    harmless = [x64.nr(n) for n in HARMLESS]
    assert all(nr in harmless or want < 0 for nr, _, want in kept), "only harmless calls may run"
    got = run(_child, slow.to_bytes(), [(nr, args) for nr, args, _ in kept], harmless, timeout=60).unwrap()
    assert got == [w for _, _, w in kept], [(x64.name_of(nr), args) for nr, args, _ in kept]


@pytest.mark.skipif(A.native().name != "x86_64", reason="kernel test written for x86_64")
@pytest.mark.parametrize("profile", ["docker-default", "python"])
def test_kernel_loads_unoptimized_builtins(profile: str) -> None:
    x64 = A.get("x86_64")
    policy = resolve(profile, arch="x86_64", arches=["x86_64", "x86", "x32"])
    prog = compile_policy(policy)
    refused = [(x64.nr(n), args) for n, args in REFUSED.items()
               if (_expected(emulate(prog.insns, x64, x64.nr(n), args).ret) or 0) < 0]
    assert refused, "the sample has calls the profile refuses"
    _kernel_agrees(policy, [(x64.nr(n), []) for n in HARMLESS] + refused)


def _one_call(prog: bytes, nr: int, args: list[int]) -> None:
    """In the child: install ``prog``, make one call, leave with status 7 if still alive."""
    from sysgate.kernel.seccomp import install
    from sysgate.kernel.syscall import syscall

    install(prog, 0)
    try:
        syscall(nr, *args)
    except OSError:
        pass
    os._exit(7)


@pytest.mark.skipif(A.native().name != "x86_64", reason="kernel test written for x86_64")
def test_kernel_loads_unoptimized_strict() -> None:
    """strict kills getpid and lets write run: the child that writes lives on, the other dies by SIGSYS."""
    x64 = A.get("x86_64")
    policy = resolve("strict", arch="x86_64", arches=["x86_64", "x86", "x32"])
    slow = compile_policy(policy, optimize=False).to_bytes()
    write, getpid = (x64.nr("write"), [2, 0, 0]), (x64.nr("getpid"), [])
    assert Action.from_ret(emulate(compile_policy(policy).insns, x64, *write).ret) == ALLOW
    assert Action.from_ret(emulate(compile_policy(policy).insns, x64, *getpid).ret).kind is ActionKind.KILL_PROCESS
    assert run(_one_call, slow, *write, timeout=60).exitcode == 7
    assert run(_one_call, slow, *getpid, timeout=60).signal == signal.SIGSYS


@pytest.mark.skipif(A.native().name != "x86_64", reason="kernel test written for x86_64")
@settings(max_examples=6, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.builds(lambda n, a, c: Rule(n, a, tuple(c)), st.sampled_from(HARMLESS),
                          st.one_of(st.just(Action(ActionKind.LOG)), st.integers(1, 200).map(errno)),
                          st.lists(st.one_of(conditions(), compares), max_size=2)), min_size=1, max_size=10),
       st.integers(0, 2**32))
def test_kernel_decides_random_unoptimized_programs(rules: list[Rule], seed: int) -> None:
    x64 = A.get("x86_64")
    policy = Policy(ALLOW, tuple(rules), ("x86_64",))  # the child must still write its result
    rnd = random.Random(seed)
    bounds = _bounds(policy) + VALUES
    calls = [(x64.nr(rnd.choice(HARMLESS)), [rnd.choice(bounds) for _ in range(6)]) for _ in range(40)]
    for nr, args in calls:  # the reference evaluator agrees too
        assert evaluate(policy, "x86_64", nr, args).ret == emulate(compile_policy(policy).insns, x64, nr, args).ret
    _kernel_agrees(policy, calls)


# --- the command line ------------------------------------------------------------------------------
def _argparse_read(words: list[str]) -> dict | None:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ns = cli.build_parser().parse_args(["compile", *words])
    except SystemExit:
        return None
    d = vars(ns)
    d.pop("func")
    return d


def test_compile_parser_reads_no_optimize() -> None:
    assert _argparse_read(["docker-default", "--no-optimize"])["no_optimize"] is True
    assert _argparse_read(["docker-default"])["no_optimize"] is False


def test_cli_no_optimize_writes_the_straightforward_program() -> None:
    env = dict(os.environ, PYTHONPATH=str(SRC))

    def compiled(*extra: str) -> dict:
        r = subprocess.run([sys.executable, "-m", "sysgate", "compile", "docker-default", "--arch", "x86_64",
                            "--format", "json", *extra], capture_output=True, text=True, env=env, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    policy = resolve("docker-default", arch="x86_64", arches=["x86_64"])
    plain, slow = compiled(), compiled("--no-optimize")
    assert [tuple(i) for i in plain["insns"]] == [tuple(i) for i in compile_policy(policy).insns]
    assert [tuple(i) for i in slow["insns"]] == [tuple(i) for i in compile_policy(policy, optimize=False).insns]
    assert slow["length"] > plain["length"]
    r = subprocess.run([sys.executable, "-m", "sysgate", "compile", "docker-default", "--no-optimize=1"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "--no-optimize" in r.stderr
