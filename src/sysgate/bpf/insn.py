"""Classic BPF instruction encoding and the seccomp constants programs use.

A program is a sequence of :class:`Insn` (``struct sock_filter``: u16 code, u8 jt, u8 jf,
u32 k). On the wire each is 8 bytes in the byte order of the machine that loads it, so
encoding takes a byte order; x86_64 and friends are little-endian, s390x/ppc64/mips big.
"""
from __future__ import annotations

import struct
from collections import namedtuple

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable

# instruction classes
LD, LDX, ST, STX, ALU, JMP, RET, MISC = range(8)
# ld/ldx sizes and modes
W, H, B = 0x00, 0x08, 0x10
IMM, ABS, IND, MEM, LEN, MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
# alu operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0)
# jump operations
JA, JEQ, JGT, JGE, JSET = 0x00, 0x10, 0x20, 0x30, 0x40
# operand source
K, X = 0x00, 0x08
# ret operand
RET_K, RET_X, RET_A = 0x00, 0x08, 0x10
# misc
TAX, TXA = 0x00, 0x80

BPF_MAXINSNS = 4096
BPF_MEMWORDS = 16

# struct seccomp_data
SECCOMP_DATA_SIZE = 64
OFF_NR = 0
OFF_ARCH = 4
OFF_IP = 8
OFF_ARGS = 16

# seccomp return values (include/uapi/linux/seccomp.h)
RET_KILL_PROCESS = 0x80000000
RET_KILL_THREAD = 0x00000000
RET_TRAP = 0x00030000
RET_ERRNO = 0x00050000
RET_USER_NOTIF = 0x7FC00000
RET_TRACE = 0x7FF00000
RET_LOG = 0x7FFC0000
RET_ALLOW = 0x7FFF0000
RET_ACTION_FULL = 0xFFFF0000
RET_DATA = 0x0000FFFF
MAX_ERRNO = 4095


def bpf_class(code: int) -> int:
    return code & 0x07


def bpf_rval(code: int) -> int:
    return code & 0x18


class Insn(namedtuple("Insn", "code jt jf k", defaults=(0, 0, 0))):
    """One ``struct sock_filter``: code, jt, jf, k (collections.namedtuple: cheaper to import
    than typing.NamedTuple on every start)."""

    __slots__ = ()
    code: int
    jt: int
    jf: int
    k: int

    def pack(self, byteorder: str = "little") -> bytes:
        return struct.pack("<HBBI" if byteorder == "little" else ">HBBI", self.code, self.jt, self.jf, self.k)


def stmt(code: int, k: int = 0) -> Insn:
    return Insn(code, 0, 0, k & 0xFFFFFFFF)


def jump(code: int, k: int, jt: int, jf: int) -> Insn:
    return Insn(code, jt, jf, k & 0xFFFFFFFF)


Program = tuple[Insn, ...]


def encode(program: Iterable[Insn], byteorder: str = "little") -> bytes:
    """Raw ``struct sock_filter[]`` bytes, as ``bwrap --seccomp`` and seccomp(2) take them."""
    fmt = "<HBBI" if byteorder == "little" else ">HBBI"
    return b"".join(struct.pack(fmt, *i) for i in program)


def decode(data: bytes, byteorder: str = "little") -> Program:
    """Parse raw ``struct sock_filter[]`` bytes. Raises ValueError if not a multiple of 8."""
    if len(data) % 8:
        raise ValueError(f"BPF program size {len(data)} is not a multiple of 8 bytes")
    fmt = "<HBBI" if byteorder == "little" else ">HBBI"
    return tuple(Insn(*struct.unpack_from(fmt, data, off)) for off in range(0, len(data), 8))


def ret_action(ret: int) -> int:
    """Action part of a seccomp return value, as the kernel reads it (unknown -> kill process)."""
    act = ret & RET_ACTION_FULL
    if act in (RET_KILL_PROCESS, RET_KILL_THREAD, RET_TRAP, RET_ERRNO, RET_USER_NOTIF, RET_TRACE, RET_LOG,
               RET_ALLOW):
        return act
    return RET_KILL_PROCESS
