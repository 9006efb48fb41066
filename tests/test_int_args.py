"""Arguments the kernel reads as 32 bits, on 64-bit ABIs: decided on what the handler sees.

SYSCALL_DEFINE casts each 64-bit register to the parameter's C type, so socket's ``int family``
is the low word of the register; a filter comparing all 64 bits lets ``socket(0x1_00000028, ...)``
(AF_VSOCK to the kernel) through a rule against 40. sysgate decides a condition on such an
argument on its low word (a zero- or sign-extended 32-bit value: its low word; any other value:
a number above every 32-bit value), as it always did on x32, n32 and the 32-bit ABIs (which keep
reading a sign-extended value as wider than their arguments; see :mod:`sysgate.compiler.lower`). Checked here: which arguments that is, the reading by hand, the
compiler against the reference evaluator with high-word garbage, the decisions that differ from
libseccomp on purpose, and the kernel's verdict on raw calls with garbage in the high word.
"""
from __future__ import annotations

import errno as E
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import libseccomp_build as LB
from forkrun import run
from strategies import narrow_arg_policies
from sysgate import arch as A
from sysgate.bpf.emulator import check, emulate
from sysgate.compiler import compile_policy
from sysgate.compiler.lower import SEXT_MIN, narrow_args
from sysgate.policy import ALLOW, TRAP, Action, Compare, Condition, Op, Policy, Rule, Term, errno
from sysgate.reference import evaluate

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
X64 = A.get("x86_64")
EPERM = errno(1)

# 64-bit ABIs whose handlers read int arguments as their low word (not x32/n32: all 32 there)
ABIS_64 = [a.name for a in A.ARCHES if a.compare_bits == 64]


def _nr(arch: str, name: str) -> int:
    return A.get(arch).nr(name)


# --- which arguments ------------------------------------------------------------------------------

def test_which_arguments_are_32_bit() -> None:
    for arch in ("x86_64", "aarch64", "s390x", "ppc64le", "riscv64", "mips64", "loongarch64"):
        a = A.get(arch)
        assert narrow_args(a, a.nr("socket")) == {0, 1, 2}, arch
        assert narrow_args(a, a.nr("ioctl")) == {0, 1}, arch  # unsigned int fd, cmd; unsigned long arg
        assert narrow_args(a, a.nr("personality")) == {0}, arch
        assert narrow_args(a, a.nr("kill")) == {0, 1}, arch  # pid_t, int
        assert narrow_args(a, a.nr("prctl")) == {0}, arch
        assert narrow_args(a, a.nr("clone")) == set(), arch  # unsigned long and pointers
        assert narrow_args(a, a.nr("mmap")) == set(), arch
    assert narrow_args(X64, 0x3FFF) == set()  # no such syscall: whole registers, as before
    assert narrow_args(A.get("s390x"), A.get("s390x").nr("s390_runtime_instr")) == set()  # not in the table
    for arch in ("x32", "x86", "arm", "mips64n32"):
        a = A.get(arch)
        assert narrow_args(a, a.nr("clone")) == set(range(6)), arch


# --- the reading, by hand --------------------------------------------------------------------------

LOW = 0x28
GARBAGE = [0, 1 << 32, U64 ^ U32, 0xDEAD_BEEF << 32]

# (condition on socket's family, family value, holds?) on every 64-bit ABI
BY_HAND = [
    (Condition(0, Op.EQ, 0x28), 0x28, True),
    (Condition(0, Op.EQ, 0x28), 0x1_00000028, True),  # the kernel sees 0x28
    (Condition(0, Op.NE, 0x28), 0x1_00000028, False),
    (Condition(0, Op.EQ, 0xFFFFFFFF), U64, True),  # zero-extended value, sign-extended argument
    (Condition(0, Op.EQ, U64), 0xFFFFFFFF, True),  # and the other way
    (Condition(0, Op.EQ, U64 - 99), 0xFFFFFF9C, True),  # AT_FDCWD written sign-extended
    (Condition(0, Op.GT, 0x10), 0x1_00000005, False),  # 5 > 16? no, whatever the high word says
    (Condition(0, Op.LT, 0x10), 0x1_00000005, True),
    (Condition(0, Op.LE, 0x7FFFFFFF), 0xFFFFFFFF_80000000, False),  # -2^31, unsigned
    (Condition(0, Op.GE, U64 - 1), 0xFFFFFFFF, True),  # >= 0xfffffffe on the low word
    (Condition(0, Op.MASKED_EQ, 0x28, mask=U64), 0xABCD_00000028, True),
    (Condition(0, Op.MASKED_EQ, 0, mask=0xFFFFFFFF_00000000), 0xFFFF_00000000, True),  # mask's low word is 0
    (Condition(0, Op.MASKED_EQ, U64 - 0xFF, mask=U64 - 0xFF), 0xFFFFFF05, True),  # sign-extended value and mask
    # values no 32-bit argument can have: above every one of them
    (Condition(0, Op.EQ, 0x1_00000028), 0x1_00000028, False),
    (Condition(0, Op.NE, 0x1_00000028), 0x28, True),
    (Condition(0, Op.LT, 0x1_00000000), 0xFFFFFFFF, True),
    (Condition(0, Op.GT, 0x1_00000000), U64, False),
    (Condition(0, Op.GE, 0xFFFFFFFF_00000000), U64, False),  # high word all-ones but bit 31 clear: no fit
    (Condition(0, Op.MASKED_EQ, 0x1_00000000, mask=U64), 0x1_00000000, False),
]


@pytest.mark.parametrize("cond,family,holds", BY_HAND, ids=[f"{c}@{f:#x}" for c, f, _ in BY_HAND])
def test_reading_by_hand(cond: Condition, family: int, holds: bool) -> None:
    want = TRAP if holds else ALLOW
    for arch in ABIS_64:
        policy = Policy(ALLOW, (Rule("socket", TRAP, (cond,)),), (arch,))
        prog = compile_policy(policy).insns
        nr = _nr(arch, "socket")
        assert evaluate(policy, arch, nr, [family, 1, 0]) == want, arch
        assert emulate(prog, arch, nr, [family, 1, 0]).ret == want.ret, arch


def test_wide_arguments_keep_their_high_word() -> None:
    """ioctl's third argument and mmap's are unsigned long: all 64 bits count."""
    for arch in ABIS_64:
        policy = Policy(ALLOW, (Rule("ioctl", TRAP, (Condition(2, Op.EQ, 5),)),
                                Rule("mmap", TRAP, (Condition(2, Op.EQ, 5),))), (arch,))
        prog = compile_policy(policy).insns
        for name in ("ioctl", "mmap"):
            nr = _nr(arch, name)
            for v, want in ((5, TRAP), (1 << 32 | 5, ALLOW)):
                assert evaluate(policy, arch, nr, [0, 0, v]) == want
                assert emulate(prog, arch, nr, [0, 0, v]).ret == want.ret


def test_argument_to_argument_comparisons() -> None:
    """A 64-bit comparison between a 32-bit argument and another reads the former zero-extended."""
    lt = Compare(Term.arg(1), Op.LT, Term.arg(2))  # kill's int sig < its (absent) third, a long here
    policy = Policy(ALLOW, (Rule("kill", TRAP, (lt,)),), ("x86_64",))
    prog = compile_policy(policy).insns
    nr = X64.nr("kill")
    for args, want in (([0, 5, 6], TRAP), ([0, 1 << 32 | 5, 6], TRAP), ([0, 7, 6], ALLOW),
                       ([0, 5, 1 << 32], TRAP), ([0, U64, 1 << 32], TRAP)):
        assert evaluate(policy, "x86_64", nr, args) == want, args
        assert emulate(prog, "x86_64", nr, args).ret == want.ret, args


# --- compiler against the reference, garbage in the high words -----------------------------------

INT_CALLS = ["socket", "ioctl", "fcntl", "prctl", "kill", "personality", "openat", "setns", "mmap", "clone",
             "futex", "madvise"]
DATUMS = [0, 1, 5, 0x28, 0x5412, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, U32, 1 << 32, 0x1_00000028,
          0xFFFFFFFF_00000000, SEXT_MIN - 1, SEXT_MIN, U64 - 99, U64 - 1, U64]


def int_policies() -> st.SearchStrategy[Policy]:
    return narrow_arg_policies([("x86_64",), ("x86_64", "x86", "x32"), ("aarch64",), ("s390x",), ("ppc64le",),
                                ("mips64", "mips64n32"), ("riscv64",)], INT_CALLS, DATUMS,
                               [U64, U32, 0xFF, 0xFFFFFFFF_00000000, SEXT_MIN, 0x7E020000])


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(int_policies(), st.integers(0, 2**32))
def test_compiled_equals_reference_and_ignores_high_words(policy: Policy, seed: int) -> None:
    """Same decision as the reference evaluator, and the high word of a 32-bit argument changes
    nothing (zero-extended, sign-extended or garbage)."""
    prog = compile_policy(policy).insns
    check(prog)
    rnd = random.Random(seed)
    for _ in range(40):
        a = A.get(rnd.choice(policy.arches))
        nr = a.nr(rnd.choice([str(r.syscall) for r in policy.rules])) if a.has("socket") else 0
        low = [rnd.choice(DATUMS) & U32 for _ in range(6)]
        narrow = narrow_args(a, nr)
        base = evaluate(policy, a.name, nr, low)
        for form in range(4):
            args = []
            for i, v in enumerate(low):
                if i in narrow:
                    hi = [0, U32 if v & 0x80000000 else 0, rnd.randrange(1 << 32), rnd.choice(GARBAGE) >> 32][form]
                else:
                    hi = 0
                args.append(hi << 32 | v)
            want = evaluate(policy, a.name, nr, args)
            assert want == base, (a.name, nr, [hex(x) for x in args])
            assert emulate(prog, a, nr, args).ret == want.ret, (a.name, nr, [hex(x) for x in args], str(want))


def test_x86_and_x32_unchanged() -> None:
    """The 32-bit ABIs, x32 and n32 already read every argument as 32 bits: their programs are
    the ones libseccomp's 64-bit reading (``narrow=False``, used by sysgate.compat) gives."""
    from sysgate.profiles import builtin_names, resolve

    for name in builtin_names():
        for arches in (["x86"], ["x32"], ["arm"], ["mips64n32"]):
            policy = resolve(name, arch="x86_64").with_arches(arches)
            assert compile_policy(policy, skip_unknown=True).insns == \
                compile_policy(policy, skip_unknown=True, narrow=False).insns, (name, arches)


# --- the deliberate differences from libseccomp -------------------------------------------------

needs_libseccomp = pytest.mark.skipif(not LB.available(), reason="python3-seccomp not installed")

# (policy, call name, args, ours, libseccomp's) on x86_64. Where the 32-bit argument's high word
# is 0 and no value is sign-extended, the two agree (test_libseccomp_diff.py checks that on random
# policies); these are the other cases, every kind of them.
_fdcwd = U64 - 99  # AT_FDCWD (-100) as a C int becomes in a long


def _differences() -> list[tuple[str, Policy, str, list[int], Action, Action]]:
    from sysgate.profiles import builtin_path, resolve

    moby = resolve(builtin_path("docker-default"), arch="x86_64").with_arches(["x86_64"])
    sock = Policy(ALLOW, (Rule("socket", errno(77), (Condition(0, Op.EQ, 40),)),), ("x86_64",))
    wide = Policy(ALLOW, (Rule("socket", errno(77), (Condition(0, Op.EQ, 0x1_00000028),)),), ("x86_64",))
    fdcwd = Policy(errno(13), (Rule("openat", ALLOW, (Condition(0, Op.EQ, _fdcwd),)),), ("x86_64",))
    return [
        # garbage high word: the kernel makes an AF_VSOCK socket, so sysgate refuses it
        ("docker-default socket(AF_VSOCK | 1<<32)", moby, "socket", [0x1_00000028, 1, 0], EPERM, ALLOW),
        ("errno rule on family 40, family 40 | 1<<32", sock, "socket", [0x1_00000028, 1, 0], errno(77), ALLOW),
        # a sign-extended argument against a zero-extended value: the same unsigned int to the kernel
        ("docker-default personality(-1) (PER_QUERY)", moby, "personality", [U64], ALLOW, EPERM),
        # a zero-extended argument (raw syscall(), x86 mov r32) against a sign-extended value
        ("openat(AT_FDCWD zero-extended) vs a rule on -100", fdcwd, "openat", [0xFFFFFF9C, 0, 0], ALLOW, errno(13)),
        # a value no int can have: never equal, whatever the high word
        ("rule on family 0x1_00000028", wide, "socket", [0x1_00000028, 1, 0], ALLOW, errno(77)),
    ]


@needs_libseccomp
def test_deliberate_differences_from_libseccomp() -> None:
    cases = _differences()
    libs = LB.build([c[1] for c in cases])
    for (what, policy, name, args, ours, theirs), lib in zip(cases, libs):
        assert not isinstance(lib, str), (what, lib)
        nr = X64.nr(name)
        assert evaluate(policy, "x86_64", nr, args) == ours, what
        assert emulate(compile_policy(policy).insns, "x86_64", nr, args).ret == ours.ret, what
        assert emulate(lib, "x86_64", nr, args).ret == theirs.ret, f"{what}: libseccomp changed"
        # and where every such argument is in the value's form, they agree
        if name == "openat":
            args = [_fdcwd, 0, 0]
        else:
            args = [v & U32 if i in narrow_args(X64, nr) else v for i, v in enumerate(args)]
            if name == "personality":
                args = [0xFFFFFFFF]
        assert emulate(lib, "x86_64", nr, args).ret == emulate(compile_policy(policy).insns, "x86_64", nr, args).ret, \
            what


# --- the kernel's verdict --------------------------------------------------------------------------

native_x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")
TIOCSTI = 0x5412
F_GETFD = 1


def _load_and_call(prog: bytes, calls: list[tuple[str, list[int]]]) -> list[int]:
    """Install ``prog``, make each raw call (64-bit registers as given); its result or -errno."""
    from sysgate.kernel.seccomp import install
    from sysgate.kernel.syscall import nr, syscall

    install(prog)
    out = []
    for name, args in calls:
        try:
            ret = syscall(nr(name), *args)
        except OSError as e:
            ret = -e.errno
        if name == "socket" and ret >= 0:
            os.close(ret)
        out.append(ret)
    return out


@native_x86_64
def test_kernel_judges_int_arguments() -> None:
    """Raw calls with garbage (or sign) in the high word of an int argument, under rules with
    ``==``, ``>``, ``<`` and masked-equal, each with its own errno: what the kernel returns."""
    pid = os.getpid()
    policy = Policy(ALLOW, (
        Rule("socket", errno(E.ENOTUNIQ), (Condition(0, Op.EQ, 40),)),                   # AF_VSOCK
        Rule("ioctl", errno(E.EL2HLT), (Condition(1, Op.EQ, TIOCSTI),)),
        Rule("kill", errno(E.EBADE), (Condition(0, Op.EQ, pid), Condition(1, Op.LT, 1))),  # signal 0
        Rule("kill", errno(E.EBADR), (Condition(0, Op.EQ, pid), Condition(1, Op.GT, 64))),
        Rule("fcntl", errno(E.EXFULL), (Condition(1, Op.MASKED_EQ, F_GETFD, mask=U64),)),
        Rule("openat", errno(E.ENOANO), (Condition(0, Op.EQ, _fdcwd), Condition(1, Op.EQ, 0))),
    ), ("x86_64",))
    calls = [
        ("socket", [0x1_00000028, 1, 0]),        # AF_VSOCK to the kernel: refused
        ("socket", [0xFFFFFFFF_00000028, 1, 0]),
        ("ioctl", [0, 0x1_00000000 | TIOCSTI, 0]),  # TIOCSTI to the kernel: refused
        ("kill", [pid, 0x1_00000000]),           # signal 0 (a probe): the "< 1" rule
        ("kill", [pid | 0xFFFF_00000000, 0x7_00000000]),  # pid and signal 0 to the kernel
        ("fcntl", [0, 0xDEAD_00000000 | F_GETFD]),  # F_GETFD to the kernel
        ("openat", [0xFFFFFF9C, 0, 0]),           # AT_FDCWD zero-extended (NULL path)
        ("openat", [_fdcwd, 0, 0]),               # and sign-extended
        ("fcntl", [0, 0x7_00000000 | 3]),       # F_GETFL is not F_GETFD: runs, gives the flags
        ("socket", [0x1_00000001, 1, 0]),        # AF_UNIX to the kernel: allowed, a socket
    ]
    prog = compile_policy(policy).to_bytes()
    got = run(_load_and_call, prog, calls, timeout=20).unwrap()
    want = [-E.ENOTUNIQ, -E.ENOTUNIQ, -E.EL2HLT, -E.EBADE, -E.EBADE, -E.EXFULL, -E.ENOANO, -E.ENOANO]
    assert got[:-2] == want, [(c, g) for c, g in zip(calls, got)]
    assert got[-2] >= 0 and got[-1] >= 0, got
    # and the reference evaluator said the same
    for (name, args), ret in zip(calls, got):
        act = evaluate(policy, "x86_64", X64.nr(name), args)
        if act.kind is ALLOW.kind:
            assert ret not in (-E.ENOTUNIQ, -E.EL2HLT, -E.EBADE, -E.EBADR, -E.EXFULL, -E.ENOANO), (name, args)
        else:
            assert ret == -act.data, (name, args)


@native_x86_64
def test_kernel_docker_default_refuses_vsock_with_garbage() -> None:
    """Under the built-in docker-default, a raw socket(0x1_00000028, SOCK_STREAM, 0) gets EPERM
    (libseccomp's reading lets it through: the kernel then makes an AF_VSOCK socket, or says
    EAFNOSUPPORT without the vsock module), and ioctl(TIOCSTI) with garbage is refused too."""
    from sysgate.profiles import resolve

    prog = compile_policy(resolve("docker-default", arch="x86_64")).to_bytes()
    calls = [("socket", [0x1_00000028, 1, 0]), ("socket", [40, 1, 0]), ("ioctl", [0, 0x1_00000000 | TIOCSTI, 0]),
             ("socket", [0x1_00000001, 1, 0])]
    got = run(_load_and_call, prog, calls, timeout=20).unwrap()
    assert got[:3] == [-E.EPERM] * 3, got
    assert got[3] >= 0, got  # AF_UNIX, garbage or not


@needs_libseccomp
def test_audit_names_the_hole_in_a_libseccomp_program() -> None:
    """``sysgate audit`` of moby's default as libseccomp builds it: socket is allowed with a high
    word on AF_VSOCK/AF_ALG (int-high-word, high); personality's allow-list only refuses more
    with a high word (not a finding). sysgate's own program has no such finding."""
    from sysgate.analysis.audit import audit
    from sysgate.analysis.explain import explain_programs
    from sysgate.profiles import builtin_path, resolve

    policy = resolve(builtin_path("docker-default"), arch="x86_64").with_arches(["x86_64"])
    lib = LB.build([policy])[0]
    assert not isinstance(lib, str), lib
    found = [f for f in audit(explain_programs([lib], "little")).findings if f.code == "int-high-word"]
    assert [f.syscalls for f in found] == [["socket"]], [str(f) for f in found]
    assert found[0].severity == "high" and "family=0x1000000" in found[0].message
    ours = audit(explain_programs([compile_policy(policy).insns], "little")).findings
    assert not [f for f in ours if f.code == "int-high-word"]
