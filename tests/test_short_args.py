"""Arguments the kernel reads as 16 bits, on every ABI: decided on their low 16 bits.

``umode_t`` (the ``mode`` of chmod, fchmod, mkdir, open, ...) is ``unsigned short`` to the kernel,
and so are the uids and gids of the 16-bit uid calls x86, arm, m68k, sh and s390 name ``setuid``,
``chown``, ... (kernel/uid16.c's ``old_uid_t``). SYSCALL_DEFINE casts the register, so
``fchmod(fd, 0x10000 | 04755)`` applies 04755 and an i386 ``setuid(0x10000)`` is ``setuid(0)``:
a filter comparing 32 or 64 bits is passed by them. sysgate decides such a condition on the low
16 bits (a value above 0xffff: a number no 16-bit argument can have, above all of them; see
:mod:`sysgate.compiler.lower`). Checked here: which arguments, the reading by hand, the compiler
against the reference evaluator with garbage in bits 16-63, the deliberate differences from
libseccomp, and the kernel's verdict on raw calls (x86_64, and i386 through ``int 0x80``).
"""
from __future__ import annotations

import ctypes
import errno as E
import mmap
import os
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import libseccomp_build as LB
from forkrun import run
from libseccomp_build import zero_extended
from strategies import narrow_arg_policies
from sysgate import arch as A
from sysgate.bpf.emulator import check, emulate
from sysgate.compiler import compile_policy
from sysgate.compiler.lower import SEXT_MIN, narrow_args, short_args
from sysgate.policy import ALLOW, TRAP, Compare, Condition, Op, Policy, Rule, Term, errno
from sysgate.reference import evaluate

U16 = 0xFFFF
U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
X64 = A.get("x86_64")
EPERM = errno(1)
UID16_ABIS = ["x86", "arm", "m68k", "sh", "sheb", "s390"]


# --- which arguments ------------------------------------------------------------------------------

def test_which_arguments_are_16_bit() -> None:
    modes = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "mkdir": 1, "mkdirat": 2, "mknod": 1,
             "mknodat": 1 + 1, "open": 2, "openat": 3, "creat": 1, "mq_open": 2}
    for a in A.ARCHES:
        for name, i in modes.items():
            if a.has(name):
                assert short_args(a, a.nr(name)) == {i}, (a.name, name)
                assert i in narrow_args(a, a.nr(name)), (a.name, name)  # and its high word is ignored
        for name in ("setuid32", "chown32", "read", "socket", "umask"):  # umask: int
            if a.has(name):
                assert short_args(a, a.nr(name)) == set(), (a.name, name)
        uid16 = a.name in UID16_ABIS
        assert short_args(a, a.nr("setuid")) == ({0} if uid16 else set()), a.name
        assert short_args(a, a.nr("setresgid")) == ({0, 1, 2} if uid16 else set()), a.name
        assert short_args(a, a.nr("fchown")) == ({1, 2} if uid16 else set()), a.name
        if a.has("chown"):
            assert short_args(a, a.nr("chown")) == ({1, 2} if uid16 else set()), a.name
        assert short_args(a, a.nr("getresuid")) == set(), a.name  # pointers
    assert short_args(X64, 0x3FFF) == set()


# --- the reading, by hand --------------------------------------------------------------------------

SUID = 0o4755
# (condition on fchmod's mode, mode value, holds?) on every ABI
BY_HAND = [
    (Condition(1, Op.EQ, SUID), SUID, True),
    (Condition(1, Op.EQ, SUID), 0x10000 | SUID, True),  # the kernel applies 04755
    (Condition(1, Op.EQ, SUID), 0xFFFF_0000 | SUID, True),
    (Condition(1, Op.NE, SUID), 0x10000 | SUID, False),
    (Condition(1, Op.EQ, 0), 0x10000, True),
    (Condition(1, Op.GT, 0o777), 0x10000 | 0o644, False),  # 0644 > 0777? no, whatever bits 16+ say
    (Condition(1, Op.GE, 0o1000), 0xF0000 | 0o644, False),
    (Condition(1, Op.LT, 0o1000), 0x10000 | 0o644, True),
    (Condition(1, Op.LE, 0o777), 0x7_0000 | 0o4000, False),
    (Condition(1, Op.MASKED_EQ, 0o4000, mask=0o4000), 0x10000 | SUID, True),
    (Condition(1, Op.MASKED_EQ, 0o4000, mask=0o4000), 0xFFFF_0000 | 0o755, False),
    (Condition(1, Op.MASKED_EQ, SUID, mask=U64), 0xABCD_0000 | SUID, True),  # mask: its low 16 bits
    (Condition(1, Op.MASKED_EQ, 0, mask=0xFFFF_0000), 0xFFFF_0000 | SUID, True),  # nothing of it is read
    # values no 16-bit argument can have: above every one of them
    (Condition(1, Op.EQ, 0x10000 | SUID), 0x10000 | SUID, False),
    (Condition(1, Op.NE, 0x10000 | SUID), SUID, True),
    (Condition(1, Op.LT, 0x10000), U16, True),
    (Condition(1, Op.LE, U32), U32, True),
    (Condition(1, Op.GT, 0x10000), U32, False),
    (Condition(1, Op.GE, 0x10000), U64, False),
    (Condition(1, Op.EQ, U64), U64, False),  # unsigned: no value is read as sign-extended
    (Condition(1, Op.EQ, U32), U32, False),
    (Condition(1, Op.MASKED_EQ, 0x10000, mask=U64), 0x10000, False),
    (Condition(1, Op.MASKED_EQ, 0x1_0000_0000, mask=0x1_0000_0000), 0x1_0000_0000, False),
]


@pytest.mark.parametrize("cond,mode,holds", BY_HAND, ids=[f"{c}@{m:#x}" for c, m, _ in BY_HAND])
def test_reading_by_hand(cond: Condition, mode: int, holds: bool) -> None:
    want = TRAP if holds else ALLOW
    for a in A.ARCHES:
        policy = Policy(ALLOW, (Rule("fchmod", TRAP, (cond,)),), (a.name,))
        prog = compile_policy(policy).insns
        nr = a.nr("fchmod")
        v = mode if a.bits == 64 else mode & U32  # what a 32-bit ABI's register can hold
        assert evaluate(policy, a.name, nr, [3, v]) == want, a.name
        assert emulate(prog, a, nr, [3, v]).ret == want.ret, a.name


def test_16_bit_uid_calls() -> None:
    """i386 setuid(0x10000) is setuid16(0); on x86_64 the same name takes a 32-bit uid_t."""
    policy = Policy(ALLOW, (Rule("setuid", EPERM, (Condition(0, Op.EQ, 0),)),
                            Rule("setresuid", TRAP, (Condition(1, Op.LT, 1000),))))
    for a in A.ARCHES:
        p = policy.with_arches([a.name])
        prog = compile_policy(p).insns
        uid16 = a.name in UID16_ABIS
        for name, args, held in (("setuid", [0x10000], uid16), ("setuid", [0], True), ("setuid", [0x1_0000_0000], True),
                                 ("setresuid", [0, 0xFFFF_0000 | 999, 0], uid16), ("setresuid", [0, 999, 0], True),
                                 ("setresuid", [0, 0x10000 | 1000, 0], False)):
            if a.bits == 32:
                args = [v & U32 for v in args]  # what its registers hold
            want = (EPERM if name == "setuid" else TRAP) if held else ALLOW
            nr = a.nr(name)
            assert evaluate(p, a.name, nr, args) == want, (a.name, name, args)
            assert emulate(prog, a, nr, args).ret == want.ret, (a.name, name, args)


def test_argument_to_argument_comparisons() -> None:
    """A comparison between a 16-bit argument and another reads the former as its low 16 bits."""
    # mknodat(dfd, path, mode, dev): mode (16 bits) == dev (32 bits)
    cmp = Compare(Term.arg(2), Op.EQ, Term.arg(3))
    for arches in (("x86_64",), ("x86",), ("aarch64",), ("x32",)):
        policy = Policy(ALLOW, (Rule("mknodat", TRAP, (cmp,)),), arches)
        prog = compile_policy(policy).insns
        a = A.get(arches[0])
        nr = a.nr("mknodat")
        for args, want in (([0, 0, 5, 5], TRAP), ([0, 0, 0x10005, 5], TRAP), ([0, 0, 5, 0x10005], ALLOW),
                           ([0, 0, 0xFFFF_0000, 0], TRAP)):
            assert evaluate(policy, a.name, nr, args) == want, (arches, args)
            assert emulate(prog, a, nr, args).ret == want.ret, (arches, args)


# --- compiler against the reference, garbage in bits 16-63 ---------------------------------------

SHORT_CALLS = ["fchmod", "chmod", "fchmodat", "openat", "mkdirat", "mknodat", "setuid", "setresuid", "fchown",
               "setregid", "umask", "kill"]
DATUMS = [0, 1, 0o644, 0o755, SUID, 0o7777, 0x7FFF, 0x8000, 0xFFFE, U16, 0x10000, 0x10000 | SUID, 0xFFFF_0000,
          U32 - 1, U32, 1 << 32, SEXT_MIN, U64 - 1, U64]
MASKS = [U64, U32, U16, 0o7000, 0o4000, 0xFFFF_0000, 0x1_0000_FFFF, 0xFF]


def short_policies() -> st.SearchStrategy[Policy]:
    return narrow_arg_policies([("x86_64",), ("x86_64", "x86", "x32"), ("aarch64", "arm"), ("s390x", "s390"),
                                ("mips64", "mips64n32"), ("m68k",), ("sh",), ("ppc64le",), ("riscv64",)],
                               SHORT_CALLS, DATUMS, MASKS)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(short_policies(), st.integers(0, 2**32))
def test_compiled_equals_reference_and_ignores_bits_above_16(policy: Policy, seed: int) -> None:
    """Same decision as the reference evaluator, and bits 16-63 (16-31 on 32-bit ABIs) of a 16-bit
    argument change nothing."""
    prog = compile_policy(policy, skip_unknown=True).insns
    check(prog)
    rnd = random.Random(seed)
    for _ in range(30):
        a = A.get(rnd.choice(policy.arches))
        name = rnd.choice([str(r.syscall) for r in policy.rules])
        if not a.has(name):
            continue
        nr = a.nr(name)
        low = [rnd.choice(DATUMS) & U16 for _ in range(6)]
        short = short_args(a, nr)
        base = evaluate(policy, a.name, nr, low)
        top = 1 << (48 if a.compare_bits == 64 else 16)  # what the register can hold above bit 16
        for form in range(4):
            args = [v | ([1, top - 1, rnd.randrange(top), rnd.randrange(1, 16)][form] << 16 if i in short else v)
                    for i, v in enumerate(low)]
            want = evaluate(policy, a.name, nr, args)
            assert want == base, (a.name, name, [hex(x) for x in args])
            assert emulate(prog, a, nr, args).ret == want.ret, (a.name, name, [hex(x) for x in args], str(want))


def test_narrow_false_keeps_libseccomp_reading() -> None:
    """``narrow=False`` (sysgate.compat) compares the whole mode, as libseccomp does."""
    policy = Policy(ALLOW, (Rule("fchmod", EPERM, (Condition(1, Op.EQ, SUID),)),), ("x86_64",))
    prog = compile_policy(policy, narrow=False).insns
    assert emulate(prog, X64, X64.nr("fchmod"), [3, 0x10000 | SUID]).ret == ALLOW.ret
    assert emulate(prog, X64, X64.nr("fchmod"), [3, SUID]).ret == EPERM.ret


def test_explain_exports_16_bit_tests() -> None:
    """``explain --to`` recovers a profile from sysgate's program for every kind of 16-bit test
    (ordering tests are masked-equal tests in the program, not an ordering jump on a computed
    value), and the recovered profile compiles to a program that decides alike."""
    from sysgate.analysis.diff import diff
    from sysgate.analysis.explain import explain_programs
    from sysgate.analysis.export import to_policy

    rules = (Rule("fchmod", EPERM, (Condition(1, Op.GT, 0o777),)),
             Rule("chmod", errno(9), (Condition(1, Op.LE, 0o4755),)),
             Rule("mkdirat", TRAP, (Condition(2, Op.NE, 0o700),)),
             Rule("openat", errno(5), (Condition(3, Op.GE, 0o2000), Condition(2, Op.EQ, 0x41))),
             Rule("setuid", errno(7), (Condition(0, Op.LT, 1000),)))
    for arches in (["x86_64"], ["x86"], ["aarch64"]):
        policy = Policy(ALLOW, rules, tuple(arches))
        prog = compile_policy(policy, skip_unknown=True)
        e = explain_programs([prog.insns], prog.byteorder)
        exp = to_policy(e, arches, single=False)
        back = compile_policy(exp.policy, skip_unknown=True)
        assert diff(e, explain_programs([back.insns], back.byteorder), views=exp.views).status == 0, arches


# --- the deliberate differences from libseccomp -------------------------------------------------

needs_libseccomp = pytest.mark.skipif(not LB.available(), reason="python3-seccomp not installed")


@needs_libseccomp
def test_deliberate_differences_from_libseccomp() -> None:
    """libseccomp compares 64 bits (32 on x86) of a mode or a 16-bit uid: bits above 16 pass its
    rules. Where those bits are clear (``zero_extended``), the two agree."""
    fchmod = Policy(ALLOW, (Rule("fchmod", errno(77), (Condition(1, Op.EQ, SUID),)),), ("x86_64",))
    below = Policy(errno(13), (Rule("mkdirat", ALLOW, (Condition(2, Op.LE, 0o777),)),), ("x86_64",))
    setuid = Policy(ALLOW, (Rule("setuid", errno(77), (Condition(0, Op.EQ, 0),)),), ("x86",))
    suid_bit = Policy(ALLOW, (Rule("chmod", EPERM, (Condition(1, Op.MASKED_EQ, 0o4000, mask=0o4000),)),), ("x86",))
    cases = [
        ("fchmod(fd, 0x10000 | 04755) under a rule on 04755", fchmod, "fchmod", [3, 0x10000 | SUID], errno(77), ALLOW),
        ("fchmod(fd, 0xffffffff_0000 | 04755)", fchmod, "fchmod", [3, 0xFFFF_FFFF_0000 | SUID], errno(77), ALLOW),
        ("mkdirat(mode 0x10000 | 0755) under an allow-list of modes <= 0777", below, "mkdirat",
         [0, 0, 0x10000 | 0o755], ALLOW, errno(13)),
        ("i386 setuid(0x10000), setuid16(0) to the kernel", setuid, "setuid", [0x10000], errno(77), ALLOW),
        # a mask test on the mode's own bits was already exact
        ("i386 chmod(path, 0x10000 | 04755) under a set-uid-bit rule", suid_bit, "chmod", [0, 0x10000 | SUID],
         EPERM, EPERM),
    ]
    libs = LB.build([c[1] for c in cases])
    for (what, policy, name, args, ours, theirs), lib in zip(cases, libs):
        assert not isinstance(lib, str), (what, lib)
        a = A.get(policy.arches[0])
        nr = a.nr(name)
        prog = compile_policy(policy).insns
        assert evaluate(policy, a.name, nr, args) == ours, what
        assert emulate(prog, a, nr, args).ret == ours.ret, what
        assert emulate(lib, a, nr, args).ret == theirs.ret, f"{what}: libseccomp changed"
        zx = zero_extended(a, nr, args)
        assert emulate(lib, a, nr, zx).ret == emulate(prog, a, nr, zx).ret == ours.ret, what


# --- the kernel's verdict --------------------------------------------------------------------------

native_x86_64 = pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 syscall numbers")
I386_FCHMOD, I386_SETUID = 94, 23  # setuid 23 is setuid16 (213 is setuid32)
_INT80 = bytes([0x89, 0xF8,    # mov eax, edi (nr)
                0x53,          # push rbx
                0x89, 0xF3,    # mov ebx, esi (arg0)
                0x87, 0xD1,    # xchg ecx, edx (ecx = arg1, edx = arg2)
                0xCD, 0x80,    # int 0x80
                0x5B, 0xC3])   # pop rbx; ret


def _calls(prog: bytes | None, path: str, calls: list[tuple[str, int, list[int]]]) -> tuple[list[int], int]:
    """Install ``prog``, then make each raw call ("x86_64" by name, or "i386" by number through
    ``int 0x80``; the file's fd stands in for an argument of -1); the results (-errno) and the
    file's mode bits at the end."""
    from sysgate.kernel.seccomp import install
    from sysgate.kernel.syscall import nr, syscall

    fd = os.open(path, os.O_RDONLY)
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_INT80)
    fn = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)(
        ctypes.addressof(ctypes.c_char.from_buffer(page)))
    if prog is not None:
        install(prog)
    out = []
    for abi, name, args in calls:
        args = [fd if v == -1 else v for v in args]
        if abi == "i386":
            out.append(fn(int(name), *(args + [0, 0, 0])[:3]))
            continue
        try:
            out.append(syscall(nr(name), *args))
        except OSError as e:
            out.append(-e.errno)
    return out, os.fstat(fd).st_mode & 0o7777


def _i386_works() -> bool:
    return os.uname().machine == "x86_64" and run(_calls, None, "/", [("i386", "20", [])], timeout=20).unwrap()[0][0] > 0


@native_x86_64
def test_kernel_judges_mode_arguments(tmp_path) -> None:
    """Raw fchmod/fchmodat calls with garbage above bit 16 of the mode under rules with ``==``,
    ``>`` and masked-equal, each with its own errno: the kernel returns the rule's errno and the
    file's mode does not change; libseccomp's reading (``narrow=False``) lets the first through and
    the kernel applies 04755, which is the hole."""
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.chmod(f, 0o600)
    policy = Policy(ALLOW, (
        Rule("fchmod", errno(E.ENOTUNIQ), (Condition(1, Op.EQ, SUID),)),
        Rule("fchmodat", errno(E.EBADE), (Condition(2, Op.GT, 0o777),)),
        Rule("chmod", errno(E.EXFULL), (Condition(1, Op.MASKED_EQ, 0o2000, mask=0o2000),)),
    ), ("x86_64",))
    path = ctypes.create_string_buffer(str(f).encode())
    calls = [("x86_64", "fchmod", [-1, 0x10000 | SUID]),
             ("x86_64", "fchmod", [-1, 0xFFFF_FFFF_FFFF_0000 | SUID]),
             ("x86_64", "fchmodat", [-100, ctypes.addressof(path), 0x10000 | 0o1600]),
             ("x86_64", "chmod", [ctypes.addressof(path), 0xFFFF_0000 | 0o2600]),
             ("x86_64", "fchmod", [-1, 0x10000 | 0o640])]  # allowed: the kernel applies 0640
    got, mode = run(_calls, compile_policy(policy).to_bytes(), str(f), calls, timeout=20).unwrap()
    assert got == [-E.ENOTUNIQ, -E.ENOTUNIQ, -E.EBADE, -E.EXFULL, 0], got
    assert mode == 0o640, oct(mode)
    for (_, name, args), ret in zip(calls, got):  # the reference evaluator says the same
        act = evaluate(policy, "x86_64", X64.nr(name), [0 if v == -1 else v for v in args])
        assert ret == (0 if act == ALLOW else -act.data), (name, args)
    got, mode = run(_calls, compile_policy(policy, narrow=False).to_bytes(), str(f), calls[:1], timeout=20).unwrap()
    assert got == [0] and mode == SUID, (got, oct(mode))


@native_x86_64
def test_kernel_judges_i386_setuid16_and_mode(tmp_path) -> None:
    """Through int 0x80 under a program covering x86: setuid(0x10000) (setuid16(0) to the kernel)
    and fchmod(fd, 0x10000 | 04755) get the rules' errnos; without the 16-bit reading both run."""
    if not _i386_works():
        pytest.skip("no i386 emulation (int 0x80) on this kernel")
    f = tmp_path / "f"
    f.write_bytes(b"")
    os.chmod(f, 0o600)
    policy = Policy(ALLOW, (Rule("setuid", errno(E.ENOTUNIQ), (Condition(0, Op.EQ, 0),)),
                            Rule("fchmod", errno(E.EBADE), (Condition(1, Op.EQ, SUID),))), ("x86_64", "x86"))
    calls = [("i386", str(I386_SETUID), [0x10000]), ("i386", str(I386_FCHMOD), [-1, 0x10000 | SUID]),
             ("i386", str(I386_SETUID), [0])]
    got, mode = run(_calls, compile_policy(policy).to_bytes(), str(f), calls, timeout=20).unwrap()
    assert got == [-E.ENOTUNIQ, -E.EBADE, -E.ENOTUNIQ] and mode == 0o600, (got, oct(mode))
    x86 = A.get("x86")
    for (_, nr, args), ret in zip(calls, got):
        assert ret == -evaluate(policy, "x86", int(nr), [0 if v == -1 else v for v in args]).data
    assert x86.nr("setuid") == I386_SETUID and x86.nr("fchmod") == I386_FCHMOD
    if os.geteuid() == 0:  # the hole: setuid16(0x10000) is setuid(0), which root may do
        got, mode = run(_calls, compile_policy(policy, narrow=False).to_bytes(), str(f), calls[:2],
                        timeout=20).unwrap()
        assert got == [0, 0] and mode == SUID, (got, oct(mode))
