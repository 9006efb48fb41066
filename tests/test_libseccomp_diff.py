"""Differential test against libseccomp 2.5.4 (Debian ``python3-seccomp`` under ``/usr/bin/python3``).

The same policy is compiled by sysgate and built with libseccomp (in a subprocess: JSON in,
``export_bpf`` bytes out, ~50 policies per process); both programs are run in the emulator on the
same calls and must return the same value. libseccomp's binary-tree layout (``CTL_OPTIMIZE`` 2)
is checked too.

Policies are kept to what both express the same way: one action per syscall, no rule whose action
is the default, conditions of a rule on distinct arguments, full-width (64-bit) comparisons,
values below 2^32 when a 32-bit ABI is covered, masked-equal values inside their mask, errno up to
4094 (libseccomp refuses 4095), no socket/IPC calls (libseccomp rewrites them to socketcall/ipc),
and no conditions on a syscall a covered arch lacks (EINVAL). Two libseccomp 2.5.4 mis-compilations
are kept out of the generator and shown by their own tests (several multi-condition rules on one
syscall; a pseudo-syscall rule next to a conditional rule). Both compare only the low word of
x32 arguments (the handlers get 32-bit values) and give nr -1 the default action on x86_64 (a
tracer's skipped call). The multiplexed socket/IPC calls and the deliberate differences there
are tested in test_abi_fidelity.py.

Arguments the kernel reads as 32 bits on 64-bit ABIs (``int``, ``unsigned int``: socket's family,
ioctl's cmd, ...) sysgate decides on their low word, libseccomp on all 64 bits. The invariant
compared here: **both decide alike when every such argument is zero-extended (high word 0) and no
condition on one has a sign-extended value (0xffffffff80000000 and up)**; the calls below give
those arguments zero high words (every other argument keeps random ones) and the generator keeps
their values out of that range. What happens outside it, on purpose, is listed in
test_int_args.py.
"""
from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import libseccomp_build as LB
from libseccomp_build import zero_extended
from strategies import EDGES, boundary_args
from sysgate import arch as A
from sysgate.bpf.emulator import check, emulate
from sysgate.bpf.insn import decode
from sysgate.compiler import compile_policy
from sysgate.compiler.lower import SEXT_MIN
from sysgate.formats.argnames import ARGS
from sysgate.policy import Action, ActionKind, Condition, Op, Policy, Rule

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
X32_BIT = A.X32_SYSCALL_BIT

pytestmark = pytest.mark.skipif(not LB.available(), reason="python3-seccomp not installed")


def libseccomp_programs(policies: list[Policy]) -> list[dict]:
    """Build every policy with libseccomp in one /usr/bin/python3 process."""
    return libseccomp_build([LB.request(p) for p in policies])


def libseccomp_build(requests: list[dict]) -> list[dict]:
    """Build raw requests (see :func:`libseccomp_build.request`) with libseccomp: plain and binary-tree
    programs, and the names it did not know."""
    out = LB.build_requests([dict(p, layouts=[0, 2]) for p in requests])
    for p, o in zip(requests, out):
        assert "error" not in o, (o["error"], p)
        o["plain"] = decode(bytes.fromhex(o["bpf"][0]))
        o["tree"] = decode(bytes.fromhex(o["bpf"][1]))
        check(o["plain"])
        check(o["tree"])
    return out


# --- random policies both can express ---------------------------------------------------------------

DIFF_ARCHES = ["x86_64", "x86", "x32", "aarch64", "arm"]
# No socket/IPC calls: libseccomp rewrites those to socketcall/ipc on x86. Some names exist only
# on some of the arches (open, mmap2, arch_prctl, arm_fadvise64_64): both skip them elsewhere.
DIFF_NAMES = ["read", "write", "openat", "close", "mmap", "ioctl", "personality", "clone", "exit_group", "getpid",
              "fcntl", "prctl", "kill", "futex", "madvise", "mprotect", "setns", "open", "mmap2", "arch_prctl",
              "arm_fadvise64_64", "lseek", "getrandom", "umask"]

_plain = [Action(ActionKind.KILL_PROCESS), Action(ActionKind.KILL_THREAD), Action(ActionKind.TRAP),
          Action(ActionKind.LOG), Action(ActionKind.ALLOW)]
_data = st.one_of(st.integers(0, 3), st.integers(0, 4094))  # libseccomp refuses ERRNO(4095) (EINVAL)
default_actions = st.one_of(st.sampled_from(_plain), _data.map(lambda n: Action(ActionKind.ERRNO, n)),
                            _data.map(lambda n: Action(ActionKind.TRACE, n)))
rule_actions = st.one_of(default_actions, st.just(Action(ActionKind.USER_NOTIF)))


def _values(top: int) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from(EDGES), st.integers(0, top), st.integers(0, 300)).map(lambda v: v & top)


def _int_arg(name: str, index: int) -> bool:
    params = ARGS.get(name, ())
    return index < len(params) and params[index][1] == 32


@st.composite
def diff_conditions(draw: st.DrawFn, index: int, top: int, name: str = "") -> Condition:
    op = draw(st.sampled_from(list(Op)))
    value = draw(_values(top))
    if value >= SEXT_MIN and _int_arg(name, index):
        value &= U32  # a sign-extended value is a 32-bit word to sysgate, not to libseccomp
    if op is Op.MASKED_EQ:
        mask = draw(st.one_of(_values(top), st.sampled_from([0xFF, 0x7E020000, 0xFFFF0000FFFF0000 & top, 8])))
        # libseccomp drops the value's bits outside the mask; we keep them (never true): see
        # test_masked_equal_outside_the_mask below.
        return Condition(index, op, value & mask, mask=mask)
    return Condition(index, op, value)


@st.composite
def diff_policies(draw: st.DrawFn) -> Policy:
    arches = draw(st.lists(st.sampled_from(DIFF_ARCHES), min_size=1, max_size=4, unique=True))
    top = U32 if any(a in ("x86", "arm", "x32") for a in arches) else U64
    default = draw(default_actions)
    rules = []
    for name in draw(st.lists(st.sampled_from(DIFF_NAMES), max_size=6, unique=True)):
        action = draw(rule_actions.filter(lambda a: a != default))
        # Either one rule with up to three AND-ed conditions, or up to three OR-ed rules with at
        # most one condition each: libseccomp 2.5.4 mis-compiles several multi-condition rules on
        # one syscall (see test_libseccomp_stale_accumulator_bug).
        several = draw(st.booleans())
        # libseccomp refuses (EINVAL) conditions on a syscall one of the filter's arches lacks.
        most = 0 if not all(A.get(a).has(name) for a in arches) else 1 if several else 3
        for _ in range(draw(st.integers(1, 3)) if several else 1):
            idx = draw(st.lists(st.integers(0, 5), max_size=most, unique=True))
            rules.append(Rule(name, action, tuple(draw(diff_conditions(i, top, name)) for i in idx)))
    if any(r.conditions for r in rules):
        # libseccomp 2.5.4 then loses the syscall-number load (test_libseccomp_pseudo_syscall_bug)
        rules = [r for r in rules if all(A.get(a).has(str(r.syscall)) for a in arches)]
    bad = draw(default_actions)
    return Policy(default, tuple(rules), tuple(arches), bad)


CALL_ARCHES = ["x86_64", "x86", "x32", "aarch64", "arm", "ppc64le", "riscv64"]


def _calls(policy: Policy, rnd: random.Random, n: int = 50) -> Iterator[tuple[A.Arch, int, list[int]]]:
    bounds = boundary_args(policy)
    arches = list(policy.arches) * 2 + CALL_ARCHES
    for _ in range(n):
        a = A.get(rnd.choice(arches))
        r = rnd.random()
        if r < 0.6 and policy.rules:
            name = rnd.choice(policy.rules).syscall
            nr = a.syscalls.get(str(name), a.nr_base + rnd.randrange(0, 600))
        elif r < 0.8:
            nr = rnd.choice([0, 1, 0x3FFFFFFF, X32_BIT, X32_BIT + 1, X32_BIT + 39, U32, 0xF0002, 0x80000000])
        else:
            nr = a.nr_base + rnd.randrange(0, 1024)
        args = [rnd.choice(bounds) if rnd.random() < 0.8 else rnd.randrange(0, 1 << 64) for _ in range(6)]
        yield a, nr, zero_extended(a, nr, args)


def describe(policy: Policy) -> str:
    """One line per policy, for failure messages."""
    rules = "; ".join(f"{r}" for r in policy.rules)
    return f"default {policy.default}, bad_arch {policy.bad_arch}, arches {','.join(policy.arches)}, rules: {rules}"


def _compare(policy: Policy, ours: tuple, lib: dict, a: A.Arch, nr: int, args: list[int]) -> None:
    mine = emulate(ours, a, nr, args).ret
    for layout in ("plain", "tree"):
        theirs = emulate(lib[layout], a, nr, args).ret
        assert theirs == mine, (f"{layout}: {a.name} nr {nr:#x} ({a.name_of(nr)}) args {[hex(v) for v in args]}: ours {mine:#x}, "
                                f"libseccomp {theirs:#x}; policy: {describe(policy)}")


# No shrinking: each step would start a libseccomp process for 50 policies, and the failure
# message already names the one policy and call that differ.
@settings(max_examples=6, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.reuse, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(st.lists(diff_policies(), min_size=50, max_size=50), st.integers(0, 2**32))
def test_random_policies_same_action_as_libseccomp(policies: list[Policy], seed: int) -> None:
    rnd = random.Random(seed)
    libs = libseccomp_programs(policies)
    for policy, lib in zip(policies, libs):
        assert lib["unknown"] == []
        ours = compile_policy(policy).insns
        for a, nr, args in _calls(policy, rnd):
            _compare(policy, ours, lib, a, nr, args)


def test_x32_low_word_as_libseccomp() -> None:
    """Both ignore the high word of an x32 argument: x32 handlers get 32-bit values."""
    policy = Policy(Action(ActionKind.ALLOW), (Rule("getpid", Action(ActionKind.ERRNO, 9), (Condition(0, Op.EQ, 5),)),),
                    ("x86_64", "x32"))
    lib = libseccomp_programs([policy])[0]
    ours = compile_policy(policy).insns
    nr = A.get("x32").nr("getpid")
    for v in (5, (1 << 32) | 5, U64 - U32 + 5):
        assert emulate(lib["plain"], "x32", nr, [v]).ret == Action(ActionKind.ERRNO, 9).ret
        assert emulate(ours, "x32", nr, [v]).ret == Action(ActionKind.ERRNO, 9).ret
    x64 = A.get("x86_64").nr("getpid")
    assert emulate(ours, "x86_64", x64, [(1 << 32) | 5]).ret == emulate(lib["plain"], "x86_64", x64, [(1 << 32) | 5]).ret \
        == Action(ActionKind.ALLOW).ret


def test_masked_equal_outside_the_mask() -> None:
    """libseccomp tests (arg & mask) == (datum & mask). A Policy condition whose value has bits
    outside its mask is never true (the reference evaluator says so); the Docker reader therefore
    drops those bits, as Docker (runc + libseccomp) does."""
    from sysgate.formats import docker

    arg = {"index": 1, "op": "SCMP_CMP_MASKED_EQ", "value": 0xFF, "valueTwo": 0x1FF}
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
           "syscalls": [{"names": ["lseek"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5, "args": [arg]}]}
    policy = docker.parse(doc, arch="x86_64").policy
    raw = {"default": 0x7FFF0000, "badarch": 0x80000000, "arches": ["X86_64"],
           "rules": [{"action": 0x50005, "name": "lseek", "args": [[1, "MASKED_EQ", 0xFF, 0x1FF]]}]}
    lib = libseccomp_build([raw])[0]
    ours = compile_policy(policy).insns
    nr = A.get("x86_64").nr("lseek")
    for v in (0xFF, 0x1FF, 0x12FF, 0xFE, 0, 1 << 40 | 0xFF):
        want = emulate(lib["plain"], "x86_64", nr, [0, v]).ret
        assert emulate(ours, "x86_64", nr, [0, v]).ret == want, hex(v)
    assert emulate(lib["plain"], "x86_64", nr, [0, 0xFF]).ret == 0x50005
    # the model itself keeps "never true" for such a condition
    from sysgate.reference import evaluate

    never = Policy(Action(ActionKind.ALLOW), (Rule("lseek", Action(ActionKind.ERRNO, 5),
                                                   (Condition(1, Op.MASKED_EQ, 0x1FF, mask=0xFF),)),), ("x86_64",))
    assert evaluate(never, "x86_64", nr, [0, 0xFF]) == Action(ActionKind.ALLOW)


def test_libseccomp_stale_accumulator_bug() -> None:
    """Why diff_policies keeps multi-condition rules to one per syscall: libseccomp 2.5.4 shares a
    node between two rules' chains and tests arg0 while A still holds args[2] (or args[1] & mask).
    Ours agrees with the reference evaluator; if libseccomp is ever fixed this test says so."""
    from sysgate.reference import evaluate

    trap, log = Action(ActionKind.TRAP), Action(ActionKind.LOG)
    policy = Policy(log, (
        Rule("clone", trap, (Condition(2, Op.GT, 0x6AC), Condition(0, Op.LT, 0x1102A),
                             Condition(1, Op.MASKED_EQ, 0x6520, mask=0xBF7E1))),
        Rule("clone", trap, (Condition(0, Op.GT, 0xAB), Condition(5, Op.GT, 0xE1)))), ("x86",))
    lib = libseccomp_programs([policy])[0]
    ours = compile_policy(policy).insns
    nr = A.get("x86").nr("clone")
    args = [0, 0x6520, 0x200, 0, 0, 0x1000]  # neither rule holds: arg2 <= 0x6ac and arg0 <= 0xab
    assert evaluate(policy, "x86", nr, args) == log
    assert emulate(ours, "x86", nr, args).ret == log.ret
    assert emulate(lib["plain"], "x86", nr, args).ret == trap.ret, "libseccomp fixed: widen diff_policies"


def test_libseccomp_pseudo_syscall_bug() -> None:
    """Why diff_policies drops syscalls a covered arch lacks once a rule has conditions: with a
    rule on such a syscall (a negative pseudo-number for libseccomp) and a conditional rule,
    libseccomp 2.5.4 never loads the syscall number and compares the arch token with it."""
    errno1, trace1 = Action(ActionKind.ERRNO, 1), Action(ActionKind.TRACE, 1)
    policy = Policy(trace1, (Rule("open", Action(ActionKind.TRACE, 993)),
                             Rule("read", errno1, (Condition(4, Op.LE, 0x744),))), ("aarch64",))
    lib = libseccomp_programs([policy])[0]
    ours = compile_policy(policy).insns
    nr = A.get("aarch64").nr("read")
    assert emulate(ours, "aarch64", nr, [0] * 6).ret == errno1.ret
    assert not any(i.code == 0x20 and i.k == 0 for i in lib["plain"]), "libseccomp fixed: widen diff_policies"
    assert emulate(lib["plain"], "aarch64", nr, [0] * 6).ret == trace1.ret


# --- docker-default: moby's JSON resolved independently, as moby + runc do, built by libseccomp -----

_SCMP_RET = {"SCMP_ACT_KILL": 0, "SCMP_ACT_KILL_THREAD": 0, "SCMP_ACT_KILL_PROCESS": 0x80000000,
             "SCMP_ACT_TRAP": 0x30000, "SCMP_ACT_ERRNO": 0x50000, "SCMP_ACT_TRACE": 0x7FF00000,
             "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_NOTIFY": 0x7FC00000}
_GOARCH = {"x86_64": "amd64", "x86": "x86", "aarch64": "arm64"}  # moby's names for the hosts tested
_DOCKER_CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"]  # moby oci/caps DefaultCapabilities()


def _cap_sets() -> dict[str, list[str]]:
    from sysgate.capabilities import NAMES as CAP_NAMES

    return {"docker": _DOCKER_CAPS, "sys_admin": _DOCKER_CAPS + ["CAP_SYS_ADMIN"], "none": [],
            "all": list(CAP_NAMES)}


def _runc_request(doc: dict, primary: str, caps: list[str]) -> dict:
    """moby's setupSeccomp (archMap, includes/excludes by arch, caps, minKernel) and runc's
    InitSeccomp (rules with the default action left out, EPERM for a bare ERRNO, two tests of one
    argument as separate rules), written from their sources without sysgate's reader."""
    rel = os.uname().release.split(".")
    kernel = (int(rel[0]), int("".join(ch for ch in rel[1] if ch.isdigit()) or 0))

    def ret(name: str, data: int | None) -> int:
        v = _SCMP_RET[name]
        return v | (1 if data is None else data) if name in ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE") else v

    default = ret(doc["defaultAction"], doc.get("defaultErrnoRet"))
    host = A.get(primary).libseccomp
    arches = [host]
    for m in doc.get("archMap") or []:
        if m["architecture"] == host:
            arches = [host] + list(m.get("subArchitectures") or [])
    rules = []
    for call in doc["syscalls"]:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if "arches" in inc and _GOARCH[primary] not in inc["arches"]:
            continue
        if "arches" in exc and _GOARCH[primary] in exc["arches"]:
            continue
        if any(c in caps for c in exc.get("caps", [])) or not all(c in caps for c in inc.get("caps", [])):
            continue
        if "minKernel" in inc and kernel < tuple(int(x) for x in inc["minKernel"].split(".")[:2]):
            continue
        action = ret(call["action"], call.get("errnoRet"))
        if action == default:
            continue
        args = [[a["index"], a["op"].removeprefix("SCMP_CMP_"), a.get("value", 0), a.get("valueTwo", 0)]
                for a in call.get("args") or []]
        index = [a[0] for a in args]
        alternatives = [[a] for a in args] if len(set(index)) < len(index) else [args]
        for name in call.get("names") or [call.get("name")]:
            rules.extend({"action": action, "name": name, "args": alt} for alt in alternatives)
    return {"default": default, "badarch": 0x80000000, "rules": rules,
            "arches": [a.removeprefix("SCMP_ARCH_") for a in arches]}


_DOCKER_CASES = [(primary, caps) for primary in ("x86_64", "x86", "aarch64") for caps in _cap_sets()]
_built: dict[tuple[str, str], tuple[dict, dict]] = {}


def _docker_default_builds() -> dict[tuple[str, str], tuple[dict, dict]]:
    """Every (primary arch, cap set) request built by libseccomp in one process."""
    if not _built:
        from sysgate.profiles import builtin_path

        with open(builtin_path("docker-default")) as fh:
            doc = json.load(fh)
        sets = _cap_sets()
        requests = [_runc_request(doc, primary, sets[caps]) for primary, caps in _DOCKER_CASES]
        for case, req, lib in zip(_DOCKER_CASES, requests, libseccomp_build(requests)):
            _built[case] = (req, lib)
    return _built


@pytest.mark.parametrize("primary,caps", _DOCKER_CASES)
def test_docker_default_same_as_libseccomp(primary: str, caps: str) -> None:
    """moby's default compiled by sysgate (``resolve(builtin_path("docker-default"), caps=...)``: moby's
    file itself; the built-in *name* adds sysgate's hardening overlay) and by
    libseccomp from an independent moby/runc resolution of the same JSON, with the same caps:
    the same action for every number 0-1023 on every covered arch, each tested argument at its
    boundary values (every value and valueTwo of the profile, +-1, and the 32/64-bit edges)."""
    from sysgate.profiles import builtin_path, resolve

    req, lib = _docker_default_builds()[(primary, caps)]
    policy = resolve(builtin_path("docker-default"), arch=primary, caps=_cap_sets()[caps])
    assert [A.get(a).libseccomp.removeprefix("SCMP_ARCH_") for a in policy.arches] == req["arches"]
    ours = compile_policy(policy).insns
    unknown = set(lib["unknown"])  # names libseccomp 2.5.4 does not know: runc leaves them out
    assert unknown and unknown < {r["name"] for r in req["rules"]}
    conds: dict[str, set[int]] = {}
    values: set[int] = set()
    for r in req["rules"]:
        for index, _op, v, two in r["args"]:
            conds.setdefault(r["name"], set()).add(index)
            values |= {(x + d) & U64 for x in (v, two) for d in (-1, 0, 1)}
    bounds = sorted(values | {U32, U32 + 1, 1 << 63, U64})
    differ: dict[str, set[int]] = {}
    checked = 0
    for name in policy.arches:
        a = A.get(name)
        for nr in range(a.nr_base, a.nr_base + 1024):
            sc = a.name_of(nr)
            arg_sets = [[0] * 6]
            for i in conds.get(sc or "", ()):
                for v in bounds:
                    args = [0] * 6
                    args[i] = v
                    arg_sets.append(zero_extended(a, nr, args))  # int arguments: see the docstring
            for args in arg_sets:
                checked += 1
                if sc in unknown:
                    if emulate(ours, a, nr, args).ret != emulate(lib["plain"], a, nr, args).ret:
                        differ.setdefault(name, set()).add(nr)
                    continue
                _compare(policy, ours, lib, a, nr, args)
    # Exactly the numbers of names libseccomp does not know differ: we decide them as the profile
    # says, it falls to the default.
    for name in policy.arches:
        a = A.get(name)
        want = {a.syscalls[n] for n in unknown if n in a.syscalls and a.syscalls[n] < a.nr_base + 1024
                and policy.default != _ours_for(policy, a, n)}
        assert differ.get(name, set()) == want, name
        for nr in want:
            assert emulate(lib["plain"], a, nr, [0] * 6).ret == policy.default.ret
    assert checked > 1024 * len(policy.arches)


def _ours_for(policy: Policy, a: A.Arch, name: str) -> Action:
    from sysgate.reference import evaluate

    return evaluate(policy, a.name, a.syscalls[name], [0] * 6)
