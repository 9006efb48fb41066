"""``sysgate audit``'s ``int-high-word`` check on arguments the kernel reads as 16 bits.

A ``umode_t`` mode, and the ``old_uid_t``/``old_gid_t`` of the 16-bit uid calls of x86, arm, m68k,
sh and s390, are cast to ``unsigned short`` by SYSCALL_DEFINE: a filter comparing more than the
low 16 bits lets ``fchmod(fd, 0x10000 | 04755)`` past a rule refusing 04755, and an i386
``setuid(0x10000)`` (root to the kernel) past one refusing 0 (tests/test_short_args.py has the
kernel's verdict on both). The audit must name that hole in programs libseccomp builds and in
sysgate's own with ``narrow=False``, on every ABI (32-bit ones included: bits 16-31 are in the low
word there too), and must stay silent on sysgate's narrowed programs and on comparisons that only
refuse more. The search for a witness in one word (:func:`_short_witness`) is checked against
brute force.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import libseccomp_build as LB
from sysgate.analysis.audit import _short_witness, audit
from sysgate.analysis.domain import WordSet
from sysgate.analysis.explain import explain_programs
from sysgate.compiler import compile_policy
from sysgate.policy import ALLOW, Condition, Op, Policy, Rule, errno

SUID = 0o4755
EPERM = errno(1)
needs_libseccomp = pytest.mark.skipif(not LB.available(), reason="python3-seccomp not installed")

# (what, policy, syscall flagged or None, the allowed value and its refused twin in the message)
HOLES = [
    ("a mode rule on the whole low word (mask 0xffffffff)",
     Policy(ALLOW, (Rule("fchmod", EPERM, (Condition(1, Op.MASKED_EQ, SUID, mask=0xFFFFFFFF),)),), ("x86_64",)),
     "fchmod", "mode=0x109ed and refuses mode=0x9ed"),
    ("a mode rule on all 64 bits",
     Policy(ALLOW, (Rule("fchmodat", EPERM, (Condition(2, Op.EQ, SUID),)),), ("x86_64",)), "fchmodat", "mode="),
    ("i386 setuid16 refusing root",
     Policy(ALLOW, (Rule("setuid", EPERM, (Condition(0, Op.EQ, 0),)),), ("x86",)),
     "setuid", "uid=0x10000 and refuses uid=0x0"),
    ("arm setresgid16 allowed unless a group is 0",
     Policy(EPERM, (Rule("setresgid", ALLOW, (Condition(0, Op.NE, 0), Condition(1, Op.NE, 0),
                                                Condition(2, Op.NE, 0))),), ("arm",)),
     "setresgid", "refuses"),
    ("s390 (big-endian) fchown16 refusing owner 0",
     Policy(ALLOW, (Rule("fchown", EPERM, (Condition(1, Op.EQ, 0),)),), ("s390",)),
     "fchown", "user=0x10000 and refuses user=0x0"),
    ("set-id modes refused as a range of the whole value, on aarch64",
     Policy(ALLOW, (Rule("mkdirat", EPERM, (Condition(2, Op.GE, 0o2000), Condition(2, Op.LE, 0o7777))),),
            ("aarch64",)), "mkdirat", "mode=0x10400 and refuses mode=0x400"),
]
NOT_HOLES = [
    ("an allow-list of small modes only refuses more",
     Policy(errno(13), (Rule("mkdirat", ALLOW, (Condition(2, Op.LE, 0o777),)),), ("x86_64",))),
    ("a set-uid-bit mask test looks at the mode's own bits",
     Policy(ALLOW, (Rule("chmod", EPERM, (Condition(1, Op.MASKED_EQ, 0o4000, mask=0o4000),)),), ("x86",))),
    ("setuid32's uid is 32 bits", Policy(ALLOW, (Rule("setuid32", EPERM, (Condition(0, Op.EQ, 0),)),), ("x86",))),
]


def _found(prog: tuple, byteorder: str) -> list:
    return [f for f in audit(explain_programs([prog], byteorder)).findings if f.code == "int-high-word"]


def _order(policy: Policy) -> str:
    return "big" if policy.arches[0].startswith("s390") else "little"


@pytest.mark.parametrize("what,policy,name,text", HOLES, ids=[h[0] for h in HOLES])
def test_wide_comparison_of_a_16_bit_argument_is_flagged(what: str, policy: Policy, name: str, text: str) -> None:
    """sysgate's program with ``narrow=False`` (libseccomp's reading) has the hole; the narrowed
    program, which decides on the low 16 bits, has none."""
    wide = compile_policy(policy, narrow=False)
    found = _found(wide.insns, wide.byteorder)
    assert [f.syscalls for f in found] == [[name]], (what, [str(f) for f in found])
    f = found[0]
    assert f.severity == "high" and f.arches == [policy.arches[0]], str(f)
    assert "is 16 bits to the kernel" in f.message and text in f.message, f.message
    ours = compile_policy(policy)
    assert _found(ours.insns, ours.byteorder) == [], what


@pytest.mark.parametrize("what,policy", NOT_HOLES, ids=[h[0] for h in NOT_HOLES])
def test_comparisons_that_only_refuse_more_are_not_flagged(what: str, policy: Policy) -> None:
    for narrow in (False, True):
        prog = compile_policy(policy, narrow=narrow)
        assert _found(prog.insns, prog.byteorder) == [], (what, narrow)


def test_a_32_bit_uid_is_not_read_as_16_bits() -> None:
    """x86_64's setuid is i386's setuid32: its uid is an int, whose high word is the hole."""
    policy = Policy(ALLOW, (Rule("setuid", EPERM, (Condition(0, Op.EQ, 0),)),), ("x86_64",))
    wide = compile_policy(policy, narrow=False)
    found = _found(wide.insns, wide.byteorder)
    assert len(found) == 1 and "uid is 32 bits" in found[0].message and "uid=0x100000000" in found[0].message, found


@needs_libseccomp
def test_libseccomp_programs() -> None:
    """The same verdicts on the programs libseccomp builds from each policy (but the ones with
    two conditions on one argument, which libseccomp refuses)."""
    cases = [(p, name) for _, p, name, _ in HOLES] + [(p, None) for _, p in NOT_HOLES]
    cases = [(p, n) for p, n in cases if all(len({c.arg for c in r.conditions}) == len(r.conditions)
                                             for r in p.rules)]
    assert len(cases) == len(HOLES) + len(NOT_HOLES) - 1
    for (policy, name), lib in zip(cases, LB.build([p for p, _ in cases])):
        assert not isinstance(lib, str), lib
        found = _found(lib, _order(policy))
        assert [f.syscalls for f in found] == ([[name]] if name else []), (policy, [str(f) for f in found])


def test_cli_output_shape(tmp_path, capsys) -> None:
    """``sysgate audit --json`` keeps the check's shape: severity, code, arches, message, syscalls."""
    from sysgate.cli import main

    policy = HOLES[2][1]
    path = tmp_path / "p.bpf"
    path.write_bytes(compile_policy(policy, narrow=False).to_bytes())
    main(["audit", "--json", "--arch", "x86", str(path)])
    doc = json.loads(capsys.readouterr().out)
    hits = [f for f in doc["findings"] if f["code"] == "int-high-word"]
    assert hits and set(hits[0]) == {"severity", "code", "arches", "message", "syscalls"}, doc
    assert hits[0]["syscalls"] == ["setuid"] and hits[0]["arches"] == ["x86"], hits


# --- the witness search, against brute force ------------------------------------------------------

_M = st.sampled_from([0xFFFF_FFFF, 0xFFFF_0000, 0x0001_0000, 0x0003_0800, 0xFF00_0FFF, 0x8000_0001, 0x0F00_0000])


# values from a few halves, so that constraints and twins meet (the cases the search must get right)
_HIGH = st.sampled_from([0, 1, 2, 0x1234, 0xFFFF])
_LOW = st.sampled_from([0, 1, 0x9ED, 0xFFFF])


@st.composite
def word_sets(draw: st.DrawFn) -> WordSet | None:
    ivs = []
    for _ in range(draw(st.integers(1, 3))):
        lo = draw(st.sampled_from([0, 0x10000, 0x1_2345, 0x2_0000, 0x7FFF_FFFF, 0xFFFF_0000])) + draw(st.integers(0, 3))
        ivs.append((lo, lo + draw(st.sampled_from([0, 1, 0xFFFF, 0x1_0000, 0x3_FFFF, 0xFFFF_FFFF]))))
    from sysgate.analysis.domain import iv_norm

    fm = draw(st.sampled_from([0, 0x0001_0000, 0xFFFF_0000, 0x0000_0FFF]))
    fv = draw(st.integers(0, 2**32 - 1)) & fm
    nes = [(m, (draw(_HIGH) << 16 | draw(_LOW)) & m) for m in draw(st.lists(_M, max_size=3))]
    return WordSet.make(iv_norm((lo, min(hi, 0xFFFF_FFFF)) for lo, hi in ivs), fm, fv, nes)


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(word_sets(), st.lists(st.one_of(_LOW, st.integers(0, 0xFFFF)), min_size=1, max_size=2))
# the first whole block (k = 1) is the one a constraint refuses 0x9ed in; k = 2 is not
@example(WordSet.make(((0x10000, 0x4FFFF),), nes=[(0xFFFF_FFFF, 0x1_09ED)]), [0x9ED])
@example(WordSet.make(((0x10000, 0xFFFF_FFFF),), nes=[(0xFFFF_FFFF, 0x1_09ED), (0x0003_FFFF, 0x2_09ED)]), [0x9ED])
@example(WordSet.make(((0x10000, 0x2FFFF),), nes=[(0xFFFF_FFFF, 0x1_09ED), (0xFFFF_FFFF, 0x2_09ED)]), [0x9ED])
def test_short_witness_is_exact(ws: WordSet | None, twins: list[int]) -> None:
    """A witness is a member with bits in 16-31 whose low 16 bits are a twin; there is one exactly
    when brute force over every upper half finds one."""
    if ws is None:
        return
    from sysgate.analysis.domain import iv_norm

    tw = WordSet.make(iv_norm((t, t) for t in twins))
    assert tw is not None
    got = _short_witness(ws, tw)
    if got is not None:
        assert got >> 16 and ws.contains(got) and tw.contains(got & 0xFFFF), hex(got)
        return
    for t in set(twins):
        assert not any(ws.contains(k << 16 | t) for k in range(1, 1 << 16)), t
