"""Disassembler and assembler: seccomp-tools conventions, corpus round trips, properties, errors.

The hard property: ``asm(disasm(p)) == p`` for every program, from the seccomp-tools corpus
(including all_inst.bpf with its odd encodings) and from hypothesis.
"""
from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgate import arch as A
from sysgate.bpf import emulator
from sysgate.bpf import insn as I
from sysgate.bpf.asm import AsmError, asm
from sysgate.bpf.disasm import HEADER, Line, disasm, disasm_lines
from sysgate.bpf.insn import Insn

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "seccomp-tools"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")
BPF_FILES = sorted(p.name for p in CORPUS.glob("*.bpf")) if CORPUS.is_dir() else []
VALID = [n for n in BPF_FILES if n != "all_inst.bpf"]  # all_inst shifts by 206: the kernel refuses it
ARCH_SPECS = ["x86_64", "x86", "aarch64", "s390x", "x32", ["x86_64", "aarch64"], None]


def load(name: str) -> tuple[Insn, ...]:
    return I.decode((CORPUS / name).read_bytes())


def ins(*rows: tuple[int, int, int, int]) -> tuple[Insn, ...]:
    return tuple(Insn(*r) for r in rows)


# --------------------------------------------------------------------------------------------
# seccomp-tools' own expected outputs (spec/disasm/disasm_spec.rb, arg inference off)

LIBSECCOMP = HEADER + """\
 0000: 0x20 0x00 0x00 0x00000004  A = arch
 0001: 0x15 0x00 0x08 0xc000003e  if (A != ARCH_X86_64) goto 0010
 0002: 0x20 0x00 0x00 0x00000000  A = sys_number
 0003: 0x35 0x06 0x00 0x40000000  if (A >= 0x40000000) goto 0010
 0004: 0x15 0x04 0x00 0x00000001  if (A == write) goto 0009
 0005: 0x15 0x03 0x00 0x00000003  if (A == close) goto 0009
 0006: 0x15 0x02 0x00 0x00000020  if (A == dup) goto 0009
 0007: 0x15 0x01 0x00 0x0000003c  if (A == exit) goto 0009
 0008: 0x06 0x00 0x00 0x00050005  return ERRNO(5)
 0009: 0x06 0x00 0x00 0x7fff0000  return ALLOW
 0010: 0x06 0x00 0x00 0x00000000  return KILL
"""

X32 = HEADER + """\
 0000: 0x20 0x00 0x00 0x00000004  A = arch
 0001: 0x15 0x00 0x09 0xc000003e  if (A != ARCH_X86_64) goto 0011
 0002: 0x20 0x00 0x00 0x00000000  A = sys_number
 0003: 0x35 0x00 0x07 0x40000000  if (A < 0x40000000) goto 0011
 0004: 0x15 0x06 0x00 0x40000000  if (A == x32_read) goto 0011
 0005: 0x15 0x05 0x00 0x40000001  if (A == x32_write) goto 0011
 0006: 0x15 0x04 0x00 0x400000ac  if (A == x32_iopl) goto 0011
 0007: 0x15 0x00 0x03 0x40000009  if (A != x32_mmap) goto 0011
 0008: 0x20 0x00 0x00 0x00000010  A = args[0]
 0009: 0x15 0x01 0x00 0x00000000  if (A == 0x0) goto 0011
 0010: 0x06 0x00 0x00 0x00050005  return ERRNO(5)
 0011: 0x06 0x00 0x00 0x7fff0000  return ALLOW
"""

BDOOOS = HEADER + """\
 0000: 0x20 0x00 0x00 0x00000004  A = arch
 0001: 0x15 0x00 0x10 0xc00000b7  if (A != ARCH_AARCH64) goto 0018
 0002: 0x20 0x00 0x00 0x00000000  A = sys_number
 0003: 0x15 0x0d 0x00 0x0000001d  if (A == ioctl) goto 0017
 0004: 0x15 0x0c 0x00 0x0000003f  if (A == read) goto 0017
 0005: 0x15 0x0b 0x00 0x00000040  if (A == write) goto 0017
 0006: 0x15 0x0a 0x00 0x00000049  if (A == ppoll) goto 0017
 0007: 0x15 0x09 0x00 0x0000005e  if (A == exit_group) goto 0017
 0008: 0x15 0x08 0x00 0x00000062  if (A == futex) goto 0017
 0009: 0x15 0x07 0x00 0x00000084  if (A == sigaltstack) goto 0017
 0010: 0x15 0x06 0x00 0x00000086  if (A == rt_sigaction) goto 0017
 0011: 0x15 0x05 0x00 0x0000008b  if (A == rt_sigreturn) goto 0017
 0012: 0x15 0x04 0x00 0x000000ce  if (A == sendto) goto 0017
 0013: 0x15 0x03 0x00 0x000000cf  if (A == recvfrom) goto 0017
 0014: 0x15 0x02 0x00 0x000000d0  if (A == setsockopt) goto 0017
 0015: 0x15 0x01 0x00 0x000000d7  if (A == munmap) goto 0017
 0016: 0x06 0x00 0x00 0x80000000  return KILL_PROCESS
 0017: 0x06 0x00 0x00 0x7fff0000  return ALLOW
 0018: 0x06 0x00 0x00 0x00000000  return KILL
"""

# misc_alu.bpf; line 3 has k=0xa539 on `A += X` (seccomp-tools prints `A += X` and loses k).
MISC_ALU = HEADER + """\
 0000: 0x20 0x00 0x00 0x00000008  A = instruction_pointer
 0001: 0x07 0x00 0x00 0x00000000  X = A
 0002: 0x20 0x00 0x00 0x0000000c  A = instruction_pointer >> 32
 0003: 0x0c 0x00 0x00 0x0000a539  raw 0x0c 0x00 0x00 0x0000a539  # A += X; ignores k
 0004: 0x54 0x00 0x00 0x00000fff  A &= 0xfff
 0005: 0x15 0x01 0x00 0x00000000  if (A == 0) goto 0007
 0006: 0x06 0x00 0x00 0x00000000  return KILL
 0007: 0x20 0x00 0x00 0x00000000  A = sys_number
 0008: 0x07 0x00 0x00 0x00000000  X = A
 0009: 0x24 0x00 0x00 0x000003e8  A *= 0x3e8
 0010: 0x02 0x00 0x00 0x00000000  mem[0] = A
 0011: 0x87 0x00 0x00 0x00000000  A = X
 0012: 0x24 0x00 0x00 0x000001d7  A *= 0x1d7
 0013: 0x84 0x00 0x00 0x00000000  A = -A
 0014: 0x04 0x00 0x00 0x00031337  A += 0x31337
 0015: 0x07 0x00 0x00 0x00000000  X = A
 0016: 0x60 0x00 0x00 0x00000000  A = mem[0]
 0017: 0x1d 0x01 0x00 0x00000000  if (A == X) goto 0019
 0018: 0x06 0x00 0x00 0x00000000  return KILL
 0019: 0x06 0x00 0x00 0x7fff0000  return ALLOW
"""


@needs_corpus
@pytest.mark.parametrize("name, arch, expected", [
    ("libseccomp.bpf", "x86_64", LIBSECCOMP), ("x32.bpf", "x86_64", X32),
    ("DEF-CON-2020-bdooos.bpf", "aarch64", BDOOOS), ("misc_alu.bpf", "x86_64", MISC_ALU),
], ids=["libseccomp", "x32", "bdooos", "misc_alu"])
def test_matches_seccomp_tools_output(name: str, arch: str, expected: str) -> None:
    assert disasm(load(name), arch) == expected


@needs_corpus
def test_amigo_i386_and_mixed_arch_names() -> None:
    amigo = disasm(load("CONFidence-2017-amigo.bpf"), "x86").splitlines()
    # seccomp-tools -a i386: names for the i386 default, hex for unknown numbers.
    assert amigo[2 + 1].endswith("if (A != ARCH_I386) goto 0003")
    assert amigo[2 + 15].endswith("if (A != 0x3e7) goto 0017")
    assert amigo[2 + 17].endswith("if (A != write) goto 0019")
    assert amigo[2 + 51].endswith("if (A != mpx) goto 0053")
    assert amigo[2 + 16].endswith("return ERRNO(1339)") and amigo[2 + 52].endswith("return TRACE")
    assert amigo[2 + 5].endswith("A = args[5] >> 32")
    mixed = [ln.text for ln in disasm_lines(load("mixed_arch.bpf"), "x86_64")]
    assert mixed[4] == "if (A == read) goto 0028"
    assert mixed[9] == "if (A == i386.restart_syscall) goto 0028"
    assert mixed[14] == "if (A == aarch64.io_setup) goto 0028"
    assert mixed[19] == "if (A == 0x0) goto 0028"  # s390x has no syscall 0
    assert mixed[20] == "if (A == s390x.exit) goto 0028"
    assert mixed[24] == "if (A == riscv64.io_setup) goto 0028"
    # With aarch64 as the default, the x86-64 branch is the qualified one.
    other = [ln.text for ln in disasm_lines(load("mixed_arch.bpf"), "aarch64")]
    assert other[4] == "if (A == amd64.read) goto 0028" and other[14] == "if (A == io_setup) goto 0028"


@needs_corpus
def test_all_inst_readable_where_faithful() -> None:
    lines = disasm_lines(load("all_inst.bpf"), "x86_64")
    text = {ln.pc: ln.text for ln in lines}
    assert [text[i] for i in range(9)] == [
        "A = sys_number", "A = arch", "A = instruction_pointer"] + [f"A = args[{i}]" for i in range(6)]
    # Unreachable code after the goto: decimal operands, as seccomp-tools prints them.
    assert text[10] == "if (A == 103) goto 0023 else goto 0037"
    assert text[16] == "if (A & 69) goto 0026 else goto 0045"
    # `ja` with nonzero jt/jf, `return` with jt/jf set...: exact escapes with a reading.
    assert text[9] == "raw 0x05 0x27 0x0f 0x00000016  # goto 0032; ignores jt/jf"
    assert text[20] == "raw 0x06 0x34 0xde 0x0000003b  # return KILL(59); ignores jt/jf"
    assert lines[9].raw and not lines[10].raw
    assert lines[9].reachable and not lines[10].reachable  # line 9 jumps over it


# --------------------------------------------------------------------------------------------
# round trips over the corpus


@needs_corpus
@pytest.mark.parametrize("name", BPF_FILES)
@pytest.mark.parametrize("arch", ARCH_SPECS, ids=str)
def test_corpus_roundtrip(name: str, arch: object) -> None:
    prog = load(name)
    for text in (disasm(prog, arch), disasm(prog, arch, header=False), disasm(prog, arch, columns=False)):
        assert asm(text, arch) == prog  # type: ignore[arg-type]


@needs_corpus
def test_corpus_roundtrip_default_arch_and_bytes_input() -> None:
    for name in BPF_FILES:
        raw = (CORPUS / name).read_bytes()
        assert I.encode(asm(disasm(raw))) == raw


def _inputs(arch: A.Arch) -> list[tuple[int, tuple[int, ...], int]]:
    nrs = sorted({0, 1, 2, 3, 4, 9, 11, 56, 59, 257, 0x3E7, 0x40000000, 0x40000009, 0xFFFFFFFF}
                 | set(list(arch.syscalls.values())[:40]))
    argsets = [(0,) * 6, (0x31337, 0, 2, 0, 0, 0), (0x7FFEA12F7D0E, 1, 3, 0x22, 0, 0), (0, 0x1000, 3, 0x22, 0, 0),
               (0x1D93, 0x13, 0x12345678, 0, 0, 0), (0xFFFFFFFFFFFFFF9C, 0x10900, 2, 1, 0, 0)]
    return [(nr, args, ip) for nr in nrs for args in argsets for ip in (0, 0xA539)]


@needs_corpus
@pytest.mark.parametrize("name", VALID)
def test_corpus_emulator_agrees_after_roundtrip(name: str) -> None:
    prog = load(name)
    emulator.check(prog)
    for spec in ("x86_64", "x86", "aarch64", "s390x"):
        again = asm(disasm(prog, spec), spec)
        emulator.check(again)
        for arch in (A.get("x86_64"), A.get("x86"), A.get("aarch64"), A.get("s390x"), A.get("riscv64")):
            for nr, args, ip in _inputs(arch):
                assert emulator.emulate(again, arch, nr, args, ip).ret == emulator.emulate(prog, arch, nr, args, ip).ret


# --------------------------------------------------------------------------------------------
# seccomp-tools assembly


@needs_corpus
@pytest.mark.parametrize("name", ["libseccomp", "mixed_arch"])
def test_asm_corpus_gives_exact_bytes(name: str) -> None:
    src = (CORPUS / f"{name}.asm").read_text()
    assert I.encode(asm(src, "x86_64")) == (CORPUS / f"{name}.bpf").read_bytes()


@needs_corpus
def test_example_asm_matches_seccomp_tools_readme() -> None:
    # example.asm has no .bpf; seccomp-tools' README shows `asm example.asm | disasm`.
    prog = asm((CORPUS / "example.asm").read_text(), "x86_64")
    assert prog == ins((0x1D, 0, 7, 0), (0x20, 0, 0, 0x10), (0x15, 6, 0, 0x123), (0x45, 2, 0, 0x1337),
                       (0x20, 0, 0, 0), (0x20, 0, 0, 0xC), (0x02, 0, 0, 0), (0x20, 0, 0, 4),
                       (0x06, 0, 0, 0x50539), (0x06, 0, 0, 0))
    assert [ln.text for ln in disasm_lines(prog, "x86_64")][:4] == [
        "if (A != X) goto 0008", "A = args[0]", "if (A == 0x123) goto 0009", "if (A & 0x1337) goto 0006"]
    assert asm(disasm(prog, "x86_64"), "x86_64") == prog


def test_seccomp_tools_ternary_listing_with_relative_number() -> None:
    # spec/asm/compiler_spec.rb: `0002:` is a label, but `2` is relative ($ + 1 + 2).
    src = """\
0000: A = sys_number
0001: A == read ? ok : dead
0002: A != read ? ok : 2
0003: A <= 0x1337 ? ok : next
0004: A < 1337 ? ok : dead
0005: A >= read ? ok : dead
ok:
return ALLOW
dead:
return KILL
"""
    assert asm(src, "x86_64") == ins((0x20, 0, 0, 0), (0x15, 4, 5, 0), (0x15, 2, 3, 0), (0x25, 0, 2, 0x1337),
                                     (0x35, 2, 1, 1337), (0x35, 0, 1, 0), (6, 0, 0, 0x7FFF0000), (6, 0, 0, 0))


def test_seccomp_tools_gotos_and_labels() -> None:
    src = "goto next\njump jump_a\nA = X\n\njump_a:\nA = sys_number\njmp jump_b\nX = A\n\n# c\njump_b:\nA = arch\n"
    assert asm(src) == ins((5, 0, 0, 0), (5, 0, 0, 1), (0x87, 0, 0, 0), (0x20, 0, 0, 0), (5, 0, 0, 1),
                           (7, 0, 0, 0), (0x20, 0, 0, 4))
    src = "      goto label\n      goto lll\n      goto Label\n      A = X\nlll: Label: label:\n      X = A\n"
    assert asm(src) == ins((5, 0, 0, 3), (5, 0, 0, 2), (5, 0, 0, 1), (0x87, 0, 0, 0), (7, 0, 0, 0))


def test_statement_forms() -> None:
    cases = {
        "A = args_h[1]": (0x20, 0, 0, 0x1C), "A = data[4]": (0x20, 0, 0, 4), "A = data[64]": (0x20, 0, 0, 64),
        "A = len": (0x80, 0, 0, 0), "X = len": (0x81, 0, 0, 0), "A = data16[2]": (0x28, 0, 0, 2),
        "A = data8[X + 3]": (0x50, 0, 0, 3), "X = 4 * (data8[14] & 0xf)": (0xB1, 0, 0, 14),
        "A %= 7": (0x94, 0, 0, 7), "A >>= X": (0x7C, 0, 0, 0), "A &= 0x7e020000": (0x54, 0, 0, 0x7E020000),
        "A = -A": (0x84, 0, 0, 0), "return X": (0x0E, 0, 0, 0), "return TRAP(7)": (6, 0, 0, 0x30007),
        "return KILL_THREAD": (6, 0, 0, 0), "return 0x12345678": (6, 0, 0, 0x12345678),
        "return LOG": (6, 0, 0, 0x7FFC0000), "return USER_NOTIF": (6, 0, 0, 0x7FC00000),
        "A = nanosleep": (0, 0, 0, 35), "A = -1": (0, 0, 0, 0xFFFFFFFF), "X = mem[15]": (0x61, 0, 0, 15),
        "A = i386.nanosleep": (0, 0, 0, 162), "A = x32_read": (0, 0, 0, 0x40000000),
        "A = amd64.x32_read": (0, 0, 0, 0x40000000), "A = AUDIT_ARCH_X86_64": (0, 0, 0, 0xC000003E),
        "raw 0x1234 0xff 0x01 0xdeadbeef": (0x1234, 0xFF, 1, 0xDEADBEEF),
    }
    for src, row in cases.items():
        assert asm(src, "x86_64") == (Insn(*row),), src


def test_multiline_if_and_bang() -> None:
    src = ("if (\n  A # comment\n    == 0x123\n  ) goto x\nif (! (!(A > 5)))\n  goto 0\nelse goto x\n"
           "A = 1\nif (!(A & 8)) goto x\nA = 2\nx: return KILL\n")
    assert asm(src) == ins((0x15, 4, 0, 0x123), (0x25, 0, 3, 5), (0, 0, 0, 1), (0x45, 0, 1, 8), (0, 0, 0, 2),
                           (6, 0, 0, 0))
    # Both branches to one place become `ja`, as seccomp-tools assembles them.
    assert asm("if (A & 8) goto x else goto x\nx: return KILL") == ins((5, 0, 0, 0), (6, 0, 0, 0))


def test_names_follow_the_dominating_arch_check() -> None:
    src = """
        A = arch
        A == ARCH_AARCH64 ? arm : next
        A == ARCH_I386 ? i386 : next
        A == ARCH_S390X ? s390 : dead
        arm:
        A = sys_number
        A == read ? dead : next      # aarch64 read = 63
        A = args[0] >> 32
        return ALLOW
        i386:
        A = sys_number
        if (A == fork) goto dead     # i386 fork = 2
        A = args[0] >> 32
        return ALLOW
        s390:
        A = args[0] >> 32            # big-endian: the high word comes first
        A = instruction_pointer
        A = nanosleep                # not a comparison: the default arch (x86_64: 35)
        dead: return KILL
    """
    prog = asm(src, "x86_64")
    assert prog[5] == Insn(0x15, 9, 0, 63) and prog[6].k == 0x14
    assert prog[9] == Insn(0x15, 5, 0, 2) and prog[10].k == 0x14
    assert prog[12].k == 0x10 and prog[13].k == 0xC and prog[14] == Insn(0, 0, 0, 35)
    text = [ln.text for ln in disasm_lines(prog, "x86_64")]
    assert text[5] == "if (A == aarch64.read) goto 0015" and text[9] == "if (A == i386.fork) goto 0015"
    assert text[12] == "A = args[0] >> 32" and text[13] == "A = instruction_pointer"
    assert asm(disasm(prog, "x86_64"), "x86_64") == prog
    assert asm(disasm(prog, "aarch64"), "aarch64") == prog
    with pytest.raises(AsmError, match=r"^line 4: syscall 'open' does not exist on aarch64"):
        asm("A = arch\nA == ARCH_AARCH64 ? next : d\nA = sys_number\nA == open ? d : next\nd: return KILL")


def test_default_arch_list_names_only_what_all_agree_on() -> None:
    prog = ins((0x20, 0, 0, 0), (0x15, 0, 1, 0), (0x15, 0, 0, 0x40000000), (6, 0, 0, 0))
    both = [ln.text for ln in disasm_lines(prog, ["x86_64", "x32"])]
    assert both[1] == "if (A != read) goto 0003" and both[2] == "raw 0x15 0x00 0x00 0x40000000  # goto 0003 either way"
    mixed = [ln.text for ln in disasm_lines(prog, ["x86_64", "aarch64"])]
    assert mixed[1] == "if (A != 0x0) goto 0003"  # read on x86_64, io_setup on aarch64


# --------------------------------------------------------------------------------------------
# properties

KNOWN_CODES = [0x00, 0x20, 0x28, 0x30, 0x40, 0x48, 0x50, 0x60, 0x80, 0x01, 0x61, 0x81, 0xB1, 0x02, 0x03,
               0x04, 0x0C, 0x14, 0x24, 0x34, 0x44, 0x54, 0x64, 0x74, 0x7C, 0x84, 0x94, 0x9C, 0xA4, 0xAC,
               0x05, 0x15, 0x1D, 0x25, 0x2D, 0x35, 0x3D, 0x45, 0x4D, 0x06, 0x0E, 0x16, 0x07, 0x87]
INTERESTING_K = [0, 1, 2, 3, 4, 8, 12, 16, 20, 60, 63, 64, 0xF, 59, 0x40000000, 0x40000001, 0xC000003E,
                 0x40000003, 0xC00000B7, 0x80000016, 0x7FFF0000, 0x50001, 0x80000000, 0xFFFFFFFF]

raw_insns = st.builds(
    Insn,
    st.one_of(st.sampled_from(KNOWN_CODES), st.integers(0, 0xFF), st.integers(0, 0xFFFF)),
    st.one_of(st.just(0), st.integers(0, 4), st.integers(0, 255)),
    st.one_of(st.just(0), st.integers(0, 4), st.integers(0, 255)),
    st.one_of(st.sampled_from(INTERESTING_K), st.integers(0, 300), st.integers(0, 0xFFFFFFFF)),
)
arch_specs = st.sampled_from(["x86_64", "s390x", "x86", "aarch64", "mips", ["x86_64", "x86"]])


@settings(max_examples=400, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(raw_insns, min_size=1, max_size=40).map(tuple), arch_specs)
def test_roundtrip_arbitrary_instructions(prog: tuple[Insn, ...], arch: object) -> None:
    text = disasm(prog, arch)  # type: ignore[arg-type]
    assert asm(text, arch) == prog  # type: ignore[arg-type]
    assert asm(disasm(prog, arch, columns=False), arch) == prog  # type: ignore[arg-type]


@st.composite
def seccomp_programs(draw: st.DrawFn) -> tuple[Insn, ...]:
    """Programs the kernel accepts: in-range forward jumps (jt == jf included), arch checks,
    syscall compares, ALU, scratch memory, a final ret."""
    n = draw(st.integers(2, 60))
    prog: list[Insn] = [Insn(I.ST, 0, 0, 0)]  # scratch word 0 is always initialised
    rets = st.sampled_from([0x7FFF0000, 0, 0x80000000, 0x50001, 0x30000, 0x7FF00005, 0x7FFC0000])
    for pc in range(1, n - 1):
        room = n - pc - 2  # farthest forward offset that stays inside the program
        off = st.integers(0, min(room, 255))
        kind = draw(st.integers(0, 9))
        if kind == 0:
            prog.append(Insn(0x20, 0, 0, draw(st.sampled_from([0, 4, 8, 12] + list(range(16, 64, 4))))))
        elif kind in (1, 2):
            prog.append(Insn(0x20, 0, 0, 4 if kind == 1 else 0))
        elif kind == 3:
            op = draw(st.sampled_from([I.JEQ, I.JGT, I.JGE, I.JSET]))
            k = draw(st.one_of(st.sampled_from(INTERESTING_K), st.integers(0, 450)))
            if draw(st.booleans()):
                prog.append(Insn(I.JMP | op | I.K, draw(off), draw(off), k))
            else:
                prog.append(Insn(I.JMP | op | I.X, draw(off), draw(off), 0))
        elif kind == 4:
            prog.append(Insn(0x15, draw(off), draw(off),
                             draw(st.sampled_from([0xC000003E, 0x40000003, 0xC00000B7, 0x80000016]))))
        elif kind == 5:
            prog.append(Insn(0x05, 0, 0, draw(st.integers(0, room))))
        elif kind == 6:
            op = draw(st.sampled_from([I.ADD, I.SUB, I.MUL, I.OR, I.AND, I.XOR, I.LSH, I.RSH, I.DIV]))  # no MOD: seccomp refuses it
            k = draw(st.integers(1, 31)) if op in (I.LSH, I.RSH, I.DIV, I.MOD) else draw(st.integers(0, 2**32 - 1))
            prog.append(Insn(I.ALU | op, 0, 0, k))
        elif kind == 7:
            prog.append(draw(st.sampled_from([Insn(0x07), Insn(0x87), Insn(0x60), Insn(0x02), Insn(0x84),
                                              Insn(0x01, 0, 0, 0xC000003E), Insn(0x80), Insn(0x81)])))
        elif kind == 8:
            prog.append(Insn(6, 0, 0, draw(rets)))
        else:
            prog.append(Insn(0x00, 0, 0, draw(st.integers(0, 2**32 - 1))))
    prog.append(Insn(6, 0, 0, draw(rets)))
    return tuple(prog)


@settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seccomp_programs(), st.sampled_from(["x86_64", "aarch64", "s390x", "x86"]))
def test_roundtrip_valid_programs_same_verdicts(prog: tuple[Insn, ...], spec: str) -> None:
    emulator.check(prog)
    again = asm(disasm(prog, spec), spec)
    assert again == prog
    emulator.check(again)
    for arch in ("x86_64", "x86", "aarch64", "s390x"):
        for nr in (0, 1, 2, 59, 63, 0x40000000, 400):
            args = (nr * 3, 0xC000003E, 0, 2**32 + 5, 7, 1)
            assert emulator.emulate(again, arch, nr, args).ret == emulator.emulate(prog, arch, nr, args).ret


# --------------------------------------------------------------------------------------------
# far jumps: ja trampolines


FAR = """
    A = arch
    A == ARCH_X86_64 ? next : bad
    A = sys_number
    A == getppid ? far_errno : next
    A == getpgid ? next : far_allow
    return ERRNO(7)
{filler}
    far_allow: return ALLOW
    far_errno: return ERRNO(33)
    bad: return KILL
"""


def test_far_conditional_jumps_get_trampolines() -> None:
    prog = asm(FAR.format(filler="    X = 1\n" * 300), "x86_64")
    emulator.check(prog)
    assert len(prog) == 6 + 300 + 3 + 3  # three trampolines were inserted
    assert prog[1] == Insn(0x15, 1, 0, 0xC000003E) and prog[2] == Insn(0x05, 0, 0, 308)  # jf -> `bad`
    assert prog[4] == Insn(0x15, 0, 1, 110) and prog[5] == Insn(0x05, 0, 0, 304)  # getppid: jt -> far_errno
    assert prog[6] == Insn(0x15, 1, 0, 121) and prog[7] == Insn(0x05, 0, 0, 301)  # getpgid: jf -> far_allow
    x86 = A.get("x86_64")
    assert emulator.emulate(prog, x86, 110).ret == 0x50000 | 33
    assert emulator.emulate(prog, x86, 121).ret == 0x50000 | 7
    assert emulator.emulate(prog, x86, 0).ret == 0x7FFF0000
    assert emulator.emulate(prog, "x86", 0).ret == 0
    assert asm(disasm(prog)) == prog
    near = asm(FAR.format(filler="    X = 1\n" * 200), "x86_64")
    assert len(near) == 6 + 200 + 3  # no trampolines needed


def test_trampolines_refuse_to_move_raw_jumps() -> None:
    src = "raw 0x05 0x00 0x00 0x00000001\nA == 1 ? far : next\n" + "X = 1\n" * 300 + "far: return KILL\n"
    with pytest.raises(AsmError, match=r"^line 2: conditional jump farther than 255 .* raw jump on line 1$"):
        asm(src)


def _load_and_call(prog: tuple[Insn, ...], nr: int) -> int:
    """In a forked child: install ``prog`` and make syscall ``nr``; return its errno (or 0)."""
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 100
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            data = I.encode(prog)
            buf = ctypes.create_string_buffer(data, len(data))

            class Fprog(ctypes.Structure):
                _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

            fprog = Fprog(len(prog), ctypes.addressof(buf))
            if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
                os._exit(101)
            if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
                os._exit(102)
            libc.syscall.restype = ctypes.c_long
            code = ctypes.get_errno() if libc.syscall(ctypes.c_long(nr)) == -1 else 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child died: status {status:#x}"
    return os.WEXITSTATUS(status)


@pytest.mark.skipif(not hasattr(os, "fork") or A.native().name != "x86_64", reason="x86_64 Linux only")
def test_kernel_accepts_trampolined_program() -> None:
    prog = asm(FAR.format(filler="    X = 1\n" * 300), "x86_64")
    x86 = A.get("x86_64")
    assert _load_and_call(prog, x86.nr("getppid")) == 33
    assert _load_and_call(prog, x86.nr("getpgid")) == 7
    assert _load_and_call(prog, x86.nr("getpid")) == 0


# --------------------------------------------------------------------------------------------
# errors: one line, `line N: ...`


@pytest.mark.parametrize("src, line, fragment", [
    ("A = foo", 1, "unknown syscall 'foo'"),
    ("A = sys_number\nA == opne ? a : a\na: return KILL", 2, "did you mean open"),
    ("goto nowhere\nreturn KILL", 1, "undefined label 'nowhere'"),
    ("0000: goto 0007\n0001: return KILL", 1, "no instruction is labelled 0007"),
    ("A = 1\nif (A == 1) goto 5\nreturn ALLOW", 2, "jumps past the end"),
    ("A = args[6]", 1, "between 0 and 5"),
    ("A = args[0] >> 31", 1, "only '>> 32'"),
    ("A = mem[16]", 1, "between 0 and 15"),
    ("return ERRNO(70000)", 1, "does not fit in 16 bits"),
    ("x: A = 1\nx: return KILL", 2, "duplicate label 'x'"),
    ("loop: A = 1\ngoto loop", 2, "backward jump"),
    ("next: return KILL", 1, "reserved"),
    ("return KILL\nend:", 2, "not followed by a statement"),
    ("A = 1\nA @ 3", 2, "unrecognised text '@'"),
    ("A = 0x100000000", 1, "does not fit in 32 bits"),
    ("mem[1] = 5", 1, "expected A or X"),
    ("A = ARCH_VAX", 1, "unknown architecture constant"),
    ("if A == 1 goto x", 1, "expected '(' after if"),
    ("A = 1 return KILL", 1, "after the statement"),
    ("raw 0x10000 0 0 0", 1, "out of range"),
    ("A = i999.read", 1, "unknown architecture"),
    ("A = x86.execveat_missing", 1, "unknown syscall"),
    ("", 1, "no instructions"),
    (HEADER + " 0000: 0x20 0x00 0x00 0x00000004  A = sys_number\n", 3, "the listing says 0x20 0x00 0x00 0x00000004"),
])
def test_errors_are_one_line(src: str, line: int, fragment: str) -> None:
    with pytest.raises(AsmError) as exc:
        asm(src, "x86_64")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"line {line}: ") and exc.value.line == line
    assert fragment in msg
    assert isinstance(exc.value, ValueError)


def test_listing_written_for_another_arch_is_caught_by_columns() -> None:
    prog = ins((0x20, 0, 0, 0), (0x15, 0, 1, 63), (6, 0, 0, 0), (6, 0, 0, 0x7FFF0000))
    text = disasm(prog, "aarch64")  # prints `read` meaning aarch64's 63
    assert "if (A != read) goto 0003" in text
    with pytest.raises(AsmError, match=r"^line 4: statement assembles to 0x15 0x00 0x01 0x00000000"):
        asm(text, "x86_64")
    assert asm(disasm(prog, "aarch64", columns=False), "x86_64")[1].k == 0  # no columns: nothing to check
    # A columns-only line (statement removed) is taken as the instruction itself.
    assert asm(" 0000: 0x06 0x00 0x00 0x7fff0000\n") == ins((6, 0, 0, 0x7FFF0000))


# --------------------------------------------------------------------------------------------
# structure and speed


def test_disasm_lines_structure() -> None:
    prog = ins((0x20, 0, 0, 4), (0x15, 0, 2, 0xC000003E), (0x20, 0, 0, 0), (6, 0, 0, 0x7FFF0000),
               (6, 0, 0, 0), (6, 0, 0, 1))
    lines = disasm_lines(prog, "x86_64")
    assert all(isinstance(ln, Line) for ln in lines)
    assert [ln.pc for ln in lines] == list(range(6)) and lines[1].insn == prog[1]
    assert lines[2].arch == 0xC000003E and lines[1].arch is None and lines[4].arch is None
    assert not lines[5].reachable and lines[4].reachable
    assert lines[5].text == "return KILL(1)"
    assert disasm(prog, header=False).splitlines()[0] == " 0000: 0x20 0x00 0x00 0x00000004  A = arch"
    assert disasm(prog, columns=False).splitlines()[1] == "0001: if (A != ARCH_X86_64) goto 0004"


def test_disasm_600_instructions_is_fast() -> None:
    body = [Insn(0x15, 1, 0, nr) for nr in range(590)] + [Insn(6, 0, 0, 0x7FFF0000)]
    prog = ins((0x20, 0, 0, 4), (0x15, 0, 1, 0xC000003E), (0x20, 0, 0, 0)) + tuple(body) + ins((6, 0, 0, 0))
    assert len(prog) > 590
    disasm(prog, "x86_64")  # warm the syscall tables
    best = min(_timed(lambda: disasm(prog, "x86_64")) for _ in range(5))
    assert best < 0.05, f"disasm of {len(prog)} instructions took {best * 1000:.1f} ms"
    assert asm(disasm(prog, "x86_64"), "x86_64") == prog


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t
