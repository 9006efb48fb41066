"""Property tests: random policies written in each format and read back decide every boundary-valued
call as before (the emulator judges, through sysgate.analysis.equivalence), for the policies each
format can express; and the boolean algebra the readers and writers rest on is exact."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import EDGES, NAMES, actions, conditions
from sysgate.analysis.equivalence import sampled_differences, sampled_equivalent
from sysgate.formats import logic as L
from sysgate.formats.registry import read_bytes, write
from sysgate.policy import (
    ALLOW,
    KILL_PROCESS,
    KILL_THREAD,
    NOTIFY,
    TRAP,
    Action,
    ActionKind,
    Condition,
    Op,
    Policy,
    Rule,
    errno,
    trace,
)
from sysgate.reference import condition_holds, evaluate

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
SETTINGS = dict(max_examples=15, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ONE_ARCH = ["x86_64", "aarch64", "x86", "s390x", "riscv64"]


def rules(acts: st.SearchStrategy[Action], conds: bool = True) -> st.SearchStrategy[list[Rule]]:
    cond = st.lists(conditions(), max_size=3) if conds else st.just([])
    return st.lists(st.builds(lambda s, a, c: Rule(s, a, tuple(c)), st.sampled_from(NAMES), acts, cond),
                    max_size=8)


def round_trip(policy: Policy, fmt: str, allowed_losses: tuple[str, ...] = (), **opts: object) -> None:
    out = write(policy, fmt, **opts)
    bad = [x for x in out.losses if not any(a in x for a in allowed_losses)]
    assert not bad, f"{fmt}: unexpected losses {bad}\n{policy}"
    if out.losses:
        return
    arches = list(policy.arches)
    back = read_bytes(out.text.encode(), f"<{fmt}>", fmt, arch=arches[0], arches=arches,
                      thread=opts.get("thread"))  # type: ignore[arg-type]
    diff = sampled_equivalent(policy, back.policy, arches)
    assert diff is None, f"{fmt}: {diff}\n{policy.rules}\n---\n{out.text}"


@settings(**SETTINGS)
@given(arches=st.sampled_from([["x86_64"], ["x86_64", "x86"], ["aarch64", "arm"], ["s390x"], ["x86"],
                               ["x86_64", "x86", "x32"]]),
       default=actions(), rs=rules(actions()), fmt=st.sampled_from(["docker", "oci", "k8s"]))
def test_json_formats(arches: list[str], default: Action, rs: list[Rule], fmt: str) -> None:
    policy = Policy(default, tuple(rs), tuple(arches))
    # runc ORs two tests of one argument, and SPO has no defaultErrnoRet: the only inexact cases
    round_trip(policy, fmt, ("one test per argument", "defaultErrnoRet", "cannot name architecture"))


@settings(**SETTINGS)
@given(arch=st.sampled_from(ONE_ARCH), default=actions(), rs=rules(actions()),
       numbers=st.lists(st.integers(0, 600), max_size=2))
def test_kafel(arch: str, default: Action, rs: list[Rule], numbers: list[int]) -> None:
    rs = rs + [Rule(n, errno(n % 4096)) for n in numbers]  # Kafel names raw numbers: SYSCALL[n]
    # Arches Kafel lacks (s390x, ...) are a listed loss: only sysgate reads such a file.
    round_trip(Policy(default, tuple(rs), (arch,)), "kafel", ("Kafel has none of the architectures",))


_MJ_DEFAULTS = st.sampled_from([KILL_PROCESS, KILL_THREAD, TRAP, NOTIFY])
_MJ_ACTIONS = st.one_of(st.sampled_from([ALLOW, KILL_PROCESS, KILL_THREAD, TRAP, NOTIFY, Action(ActionKind.LOG),
                                         trace(0)]), st.integers(0, 4095).map(errno))


@settings(**SETTINGS)
@given(arch=st.sampled_from(ONE_ARCH), default=_MJ_DEFAULTS, rs=rules(_MJ_ACTIONS))
def test_minijail(arch: str, default: Action, rs: list[Rule]) -> None:
    round_trip(Policy(default, tuple(rs), (arch,)), "minijail", ("too complex",))


@settings(**SETTINGS)
@given(arch=st.sampled_from(ONE_ARCH), rs=rules(st.integers(0, 4095).map(errno)))
def test_minijail_denylist(arch: str, rs: list[Rule]) -> None:
    round_trip(Policy(ALLOW, tuple(rs), (arch,)), "minijail", ("too complex",))


@settings(**SETTINGS)
@given(arch=st.sampled_from(["x86_64", "aarch64", "riscv64"]),
       pair=st.lists(actions(with_notify=False), min_size=2, max_size=2, unique=True),
       rs=st.lists(st.tuples(st.sampled_from(NAMES), st.booleans(), st.lists(conditions(), max_size=3)),
                   max_size=8))
def test_firecracker(arch: str, pair: list[Action], rs: list[tuple]) -> None:
    default, match = pair
    policy = Policy(default, tuple(Rule(n, match if m else default, tuple(c)) for n, m, c in rs), (arch,))
    round_trip(policy, "firecracker", ("too complex",), thread="vmm")


@settings(**SETTINGS)
@given(arch=st.sampled_from(["x86_64", "aarch64", "x86"]), allow_mode=st.booleans(),
       deny=st.one_of(st.just(KILL_PROCESS), st.integers(1, 4095).map(errno)),
       names=st.lists(st.sampled_from(NAMES), max_size=8, unique=True),
       own=st.lists(st.integers(1, 4095), max_size=3))
def test_systemd(arch: str, allow_mode: bool, deny: Action, names: list[str], own: list[int]) -> None:
    from sysgate.syscall_groups import expand

    if allow_mode:  # systemd adds @default to allow lists: a policy it can express allows those
        allowed = sorted(set(names) | set(expand("@default", arch)))
        policy = Policy(deny, tuple(Rule(n, ALLOW) for n in allowed), (arch,))
    else:  # a deny list; some syscalls with an errno of their own
        rs = [Rule(n, errno(own[k]) if k < len(own) and deny.kind is ActionKind.ERRNO else deny)
              for k, n in enumerate(names)]
        policy = Policy(ALLOW, tuple(rs), (arch,))
    round_trip(policy, "systemd")


def test_lossy_conversions_say_why() -> None:
    p = Policy(errno(1), (Rule("read", ALLOW, (Condition(0, Op.EQ, 3),)), Rule("write", KILL_PROCESS)),
               ("x86_64", "x86"), bad_arch=TRAP)
    assert any("cannot test arguments" in x for x in write(p, "systemd").losses)
    assert any("architecture" in x for x in write(p, "minijail").losses)
    assert any("other architectures" in x for x in write(p, "docker").losses)
    assert any("match action" in x for x in write(p.with_arches(["x86_64"]), "firecracker", thread="t").losses)
    n = Policy(NOTIFY, (), ("x86_64",))
    assert any("user-notify" in x for x in write(n, "firecracker").losses)
    assert any("trace carries no value" in x
               for x in write(Policy(KILL_PROCESS, (Rule("read", trace(5)),), ("x86_64",)), "minijail").losses)


# --------------------------------------------------------------------------- boolean algebra

values = st.one_of(st.sampled_from(EDGES + [3, 4, 5, 7, 8, 0xFF, 0x100, 0xF0F0]), st.integers(0, U64))


def _dnf_holds(d: L.DNF, x: int) -> bool:
    return any(all(condition_holds(c, x) for c in conj) for conj in d)


@settings(max_examples=150, derandomize=True)
@given(mask=values, op=st.sampled_from([Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE]), value=values,
       width=st.sampled_from([32, 64]), x=values)
def test_masked_compare(mask: int, op: Op, value: int, width: int, x: int) -> None:
    top = U32 if width == 32 else U64
    v = value & top
    xm = x & top & mask
    want = {Op.EQ: xm == v, Op.NE: xm != v, Op.LT: xm < v, Op.LE: xm <= v, Op.GT: xm > v, Op.GE: xm >= v}[op]
    assert _dnf_holds(L.masked_compare(0, mask, op, v, width), x) == want


@settings(max_examples=150, derandomize=True)
@given(c=conditions(), x=values)
def test_negate_and_widen(c: Condition, x: int) -> None:
    c = Condition(0, c.op, c.value, c.mask, c.width)
    assert _dnf_holds(L.negate(c), x) == (not condition_holds(c, x))
    assert _dnf_holds(L.as_64bit(c), x) == condition_holds(c, x)
    assert all(cc.width == 64 for conj in L.as_64bit(c) for cc in conj)


@settings(max_examples=120, derandomize=True)
@given(cs=st.lists(conditions(), max_size=4), x=values)
def test_simplify_and_single_arg_options(cs: list[Condition], x: int) -> None:
    cs = [Condition(0, c.op, c.value, c.mask, c.width) for c in cs]
    truth = all(condition_holds(c, x) for c in cs)
    s = L.simplify(cs)
    assert (s is not None and all(condition_holds(c, x) for c in s)) == truth
    c64 = [c for c in cs if c.width == 64]
    d = L.single_arg_options(0, c64)
    if d is not None:
        assert all(len(conj) <= 1 for conj in d)
        assert _dnf_holds(d, x) == all(condition_holds(c, x) for c in c64)


_FM_ACTIONS = st.sampled_from([ALLOW, errno(1), errno(2), KILL_PROCESS, Action(ActionKind.LOG)])


@settings(max_examples=120, derandomize=True)
@given(fs=st.lists(st.tuples(st.lists(st.lists(conditions(), max_size=2), max_size=2), _FM_ACTIONS), max_size=4),
       default=_FM_ACTIONS, args=st.lists(values, min_size=6, max_size=6))
def test_first_match_to_strictest_wins(fs: list, default: Action, args: list[int]) -> None:
    filters = [(tuple(tuple(c) for c in d), a) for d, a in fs]
    policy = Policy(default, tuple(L.first_match_rules("read", filters, default)), ("x86_64",))
    want = next((a for d, a in filters if any(all(condition_holds(c, args[c.arg]) for c in conj) for conj in d)),
                default)
    assert evaluate(policy, "x86_64", 0, args) == want


def test_equivalence_finds_argument_and_arch_differences() -> None:
    # lseek's offset and read's count are 64-bit (off_t, size_t): the width of a test counts there
    base = Policy(errno(1), (Rule("lseek", ALLOW, (Condition(1, Op.EQ, 0xFFFFFFFF),)),
                             Rule("clone", ALLOW, (Condition(0, Op.MASKED_EQ, 0, mask=0x7E020000),)),
                             Rule("read", ALLOW, (Condition(2, Op.LT, 3, width=32), Condition(1, Op.NE, 9)))),
                  ("x86_64",))
    assert sampled_equivalent(base, base) is None
    # read's fd is an unsigned int: the kernel sees its low word, so both widths are one test
    fd = base.with_rules(base.rules[:2] + (Rule("read", ALLOW, (Condition(0, Op.LT, 3),)),))
    assert sampled_equivalent(fd, fd.with_rules(base.rules[:2] + (Rule("read", ALLOW, (Condition(0, Op.LT, 3, width=32),)),))) \
        is None
    mutants = [
        base.with_rules(base.rules[:1] + (Rule("clone", ALLOW, (Condition(0, Op.MASKED_EQ, 0, mask=0x7E000000),)),)
                        + base.rules[2:]),
        base.with_rules(base.rules[:2] + (Rule("read", ALLOW, (Condition(2, Op.LT, 3),
                                                               Condition(1, Op.NE, 9))),)),
        base.with_rules(base.rules[:2] + (Rule("read", ALLOW, (Condition(2, Op.LE, 3, width=32),
                                                               Condition(1, Op.NE, 9))),)),
        base.with_rules((Rule("lseek", ALLOW, (Condition(1, Op.EQ, 0xFFFFFFFF, width=32),)),) + base.rules[1:]),
        base.with_arches(["x86_64", "x32"]),
        Policy(base.default, base.rules, base.arches, bad_arch=TRAP),
    ]
    for m in mutants:
        d = sampled_equivalent(base, m)
        assert d is not None, m
        # the difference is real: the reference evaluator agrees the two decide it differently
        if d.arch and d.arch in ("x86_64", "x32"):
            assert evaluate(base, d.arch, d.nr, d.args) != evaluate(m, d.arch, d.nr, d.args), d
    assert len(list(sampled_differences(base, mutants[0], limit=0))) > 1


def test_equivalence_tries_x32_rules_with_their_own_numbers() -> None:
    """x86_64 and x32 share a token: an x32 call's argument values come from the x32 rules (its
    numbers carry the x32 bit). The hand-written program differs from the policy only on x32, and
    only in an AND of two arguments, so one-argument-at-a-time edges cannot find it: the rule's
    satisfying call must be tried through x32's number for execve."""
    from sysgate.bpf import insn as I
    from sysgate.bpf.emulator import emulate

    policy = Policy(errno(1), (Rule("execve", ALLOW, (Condition(0, Op.EQ, 5), Condition(1, Op.EQ, 7))),),
                    ("x86_64", "x32"))
    ld, jeq, ret = I.LD | I.W | I.ABS, I.JMP | I.JEQ | I.K, I.RET | I.RET_K
    x32_execve = 0x40000000 | 520

    def block(arg1: int) -> list[I.Insn]:  # args[0] == 5 && args[1] == arg1 (both words), 9 insns
        return [I.stmt(ld, 20), I.jump(jeq, 0, 0, 7), I.stmt(ld, 16), I.jump(jeq, 5, 0, 5),
                I.stmt(ld, 28), I.jump(jeq, 0, 0, 3), I.stmt(ld, 24), I.jump(jeq, arg1, 0, 1),
                I.stmt(ret, I.RET_ALLOW)]

    insns = [I.stmt(ld, 4), I.jump(jeq, 0xC000003E, 1, 0), I.stmt(ret, I.RET_KILL_PROCESS),
             I.stmt(ld, 0), I.jump(jeq, 59, 2, 0), I.jump(jeq, x32_execve, 11, 0),
             I.stmt(ret, I.RET_ERRNO | 1),
             *block(7), I.stmt(ret, I.RET_ERRNO | 1),
             *block(8), I.stmt(ret, I.RET_ERRNO | 1)]
    assert emulate(insns, "x86_64", 59, [5, 7]).ret == I.RET_ALLOW
    assert emulate(insns, "x32", x32_execve, [5, 8]).ret == I.RET_ALLOW
    assert emulate(insns, "x32", x32_execve, [5, 7]).ret == I.RET_ERRNO | 1
    d = sampled_equivalent(policy, insns, ["x86_64", "x32"])
    assert d is not None and d.arch == "x32" and d.nr == x32_execve and d.args[:2] in ((5, 7), (5, 8)), d
