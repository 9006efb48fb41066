"""Property tests of the libseccomp-to-Policy translation (no libseccomp needed).

Random rule sequences go into ``sysgate.compat.seccomp``; the exported program, run in the
emulator, must decide every call the way libseccomp's rule trees say (``Evaluator`` walks
the trees directly), and the program must stay loadable. Mixed actions on one syscall make
the tree order differ from action strictness, which is where the layered translation is needed.
"""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgate.bpf.emulator import check, emulate
from sysgate.bpf.insn import decode
from sysgate.compat import seccomp as S
from sysgate.compat._translate import Evaluator

U32 = (1 << 32) - 1
U64 = (1 << 64) - 1
VALUES = [0, 1, 2, 5, 0x7F, 0xFF, 0x1000, 0x7FFFFFFF, 0x80000000, U32 - 1, U32, 1 << 32, (1 << 32) + 5,
          (7 << 32) + 1, 1 << 63, U64 - 1, U64]
NAMES = ["read", "write", "socket", "accept", "semop", "ioctl", "open", "fcntl"]
ARCH_SETS = [["X86_64"], ["X86_64", "X86"], ["X86_64", "X32"], ["X86", "ARM", "AARCH64"], ["MIPSEL", "MIPSEL64N32"],
             ["S390X", "PPC64"], ["PPC", "S390", "MIPS"]]

actions = st.one_of(st.sampled_from([S.ALLOW, S.KILL, S.KILL_PROCESS, S.TRAP, S.LOG, S.NOTIFY]),
                    st.integers(0, 40).map(S.ERRNO), st.integers(0, 3).map(S.TRACE))
values = st.one_of(st.sampled_from(VALUES), st.integers(0, U64))


@st.composite
def comparisons(draw: st.DrawFn) -> list[S.Arg]:
    idx = draw(st.lists(st.integers(0, 5), max_size=3, unique=True))
    out = []
    for i in idx:
        op = draw(st.sampled_from([S.NE, S.LT, S.LE, S.EQ, S.GE, S.GT, S.MASKED_EQ]))
        if op == S.MASKED_EQ:
            m = draw(st.sampled_from([0xFF, 0xF0F0, U32, 0xFFFFFFFF00000000, 0xFF000000FF, 1 << 40]))
            out.append(S.Arg(i, op, m, draw(values) & m))
        else:
            out.append(S.Arg(i, op, draw(values)))
    return out


@st.composite
def filters(draw: st.DrawFn) -> tuple[S.SyscallFilter, list[int], list[str]]:
    arches = draw(st.sampled_from(ARCH_SETS))
    f = S.SyscallFilter(draw(actions))
    if "X86_64" not in arches:
        f.remove_arch(S.Arch.NATIVE)
    for a in arches:
        if a != "X86_64":
            f.add_arch(getattr(S.Arch, a))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3, unique=True))
    datums = set(VALUES)
    for _ in range(draw(st.integers(1, 10))):
        cmps = draw(comparisons())
        for c in cmps:
            for v in c.to_c()[2:]:
                datums.update({v, (v + 1) & U64, (v - 1) & U64, v & U32, v >> 32, (v >> 32) << 32})
        try:
            f.add_rule(draw(actions), draw(st.sampled_from(names)), *cmps)
        except RuntimeError:
            pass  # refused (EEXIST, EACCES...), as libseccomp would
    return f, sorted(datums), names


@settings(max_examples=50, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(filters(), st.randoms(use_true_random=False))
def test_program_decides_like_the_rule_trees(fx: tuple, rnd) -> None:  # type: ignore[no-untyped-def]
    f, datums, _ = fx
    data = bytes(f.export_bpf_mem())
    order = "little" if data[:2] == b"\x20\x00" else "big"
    prog = decode(data, order)
    check(prog)
    evaluate = Evaluator(f._col)
    nrs = {U32, 0x40000000}
    for d in f._col.filters:
        for s in d.syscalls:
            nrs.update({s.num & U32, (s.num + 1) & U32})
    for d in f._col.filters:
        arch = d.arch.sg_name
        for nr in sorted(nrs):
            for _ in range(6):
                args = [rnd.choice(datums) for _ in range(6)]
                assert emulate(prog, arch, nr, args).ret == evaluate(arch, nr, args), (arch, nr, args)
    assert emulate(prog, "riscv64", 0, [0] * 6).ret == evaluate("riscv64", 0, [0] * 6)


def test_inverted_priorities_need_layers() -> None:
    """libseccomp tries arg1 before arg0 here, so LOG wins over KILL when both match."""
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.KILL, "read", S.Arg(0, S.EQ, 1))
    f.add_rule(S.LOG, "read", S.Arg(1, S.EQ, 2))
    prog = decode(bytes(f.export_bpf_mem()), "little")
    assert emulate(prog, "x86_64", 0, [1, 2]).ret == S.LOG
    assert emulate(prog, "x86_64", 0, [1, 3]).ret == S.KILL
    assert emulate(prog, "x86_64", 0, [0, 2]).ret == S.LOG
    assert emulate(prog, "x86_64", 0, [0, 0]).ret == S.ALLOW
