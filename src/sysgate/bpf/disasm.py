"""Disassembler: seccomp BPF -> text in the style of seccomp-tools 1.7 ``disasm``.

Example::

     line  CODE  JT   JF      K
    =================================
     0000: 0x20 0x00 0x00 0x00000004  A = arch
     0001: 0x15 0x00 0x09 0xc000003e  if (A != ARCH_X86_64) goto 0011

Conventions (as seccomp-tools prints them):

* loads: ``A = sys_number``, ``A = arch``, ``A = instruction_pointer [>> 32]``,
  ``A = args[i] [>> 32]`` (on big-endian arches the high word comes first), ``A = data[N]``
  for other offsets, ``A = mem[i]``, ``A = 116`` (decimal immediates), ``A = X``, ``X = A``.
* ALU: ``A += 0x34`` (hex), ``A <<= 3`` (shift counts decimal), ``A = -A``.
* jumps print absolute line numbers: ``goto 0012``, ``if (A == write) goto 0009``,
  ``if (A != X) goto 0008``, ``if (!(A & 0x8)) goto 0005``, ``... else goto 0010``.
  A comparison operand is a syscall name when A holds ``sys_number`` and the test is an
  equality, an ``ARCH_*`` name when A holds ``arch``, hex when A holds another word of
  seccomp_data, and decimal otherwise (including unreachable code).
* syscall names use the arch proven by dominating arch checks (see :mod:`.flow`), else the
  default arch; names of a non-default arch are qualified (``i386.fork``), x32 numbers under
  an x86-64 default print as ``x32_read``.
* returns: ``return ALLOW``, ``return KILL`` (thread), ``return KILL_PROCESS``,
  ``return ERRNO(1)``, ``return TRACE(7)`` when data is set, ``return 0x12345678`` for
  unknown actions, ``return A``.

sysgate extensions (no faithful seccomp-tools form exists): ``A = len``/``X = len`` (BPF_LEN;
seccomp-tools prints ``A = 64``), ``A = data16[k]``/``data8[k]`` (ldh/ldb),
``A = data[X + k]`` (indirect), ``X = 4 * (data8[k] & 0xf)`` (msh), ``A %= k`` (mod),
``return X``. Any instruction without a faithful readable form -- unknown opcodes, nonzero
unused fields, conditional jumps with jt == jf, jumps past the end, scratch-memory indexes
>= 16 -- is printed as the exact escape ``raw 0xCODE 0xJT 0xJF 0xK`` (followed by a comment
saying what it would do), which :func:`sysgate.bpf.asm.asm` reads back bit for bit.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import insn as I
from .flow import State, analyze
from .insn import Insn
from .names import ACTIONS, ArchSpec, SyscallNames, arch_constant_name, default_arches

__all__ = ["Line", "disasm", "disasm_lines", "HEADER"]

HEADER = " line  CODE  JT   JF      K\n=================================\n"

ProgramLike = bytes | bytearray | memoryview | Sequence[Insn] | Sequence[tuple]

_ALU_SYM = {I.ADD: "+", I.SUB: "-", I.MUL: "*", I.DIV: "/", I.OR: "|", I.AND: "&", I.LSH: "<<",
            I.RSH: ">>", I.MOD: "%", I.XOR: "^"}
_JMP_SYM = {I.JEQ: "==", I.JGT: ">", I.JGE: ">=", I.JSET: "&"}
_JMP_NEG = {I.JEQ: "!=", I.JGT: "<=", I.JGE: "<"}
_RET_NAME = {v: n for n, v in ACTIONS.items() if n != "KILL_THREAD"}
_LOAD_WIDTH = {I.W: "data", I.H: "data16", I.B: "data8"}


@dataclass(frozen=True)
class Line:
    """One disassembled instruction.

    ``text`` is the statement alone (``A = arch``); ``raw`` is True when it is the
    ``raw ...`` escape; ``arch`` is the AUDIT_ARCH token a dominating check proved before
    this instruction (None if none or unreachable); ``reachable`` says whether any path from
    the entry gets here.
    """

    pc: int
    insn: Insn
    text: str
    raw: bool = False
    arch: int | None = None
    reachable: bool = True


def _to_program(program: ProgramLike, byteorder: str) -> tuple[Insn, ...]:
    if isinstance(program, (bytes, bytearray, memoryview)):
        return I.decode(bytes(program), byteorder)
    return tuple(i if isinstance(i, Insn) else Insn(*i) for i in program)


def _target(t: int) -> str:
    return f"goto {t:04d}"


class _Renderer:
    def __init__(self, program: tuple[Insn, ...], names: SyscallNames):
        self.program = program
        self.n = len(program)
        self.names = names

    def data_word(self, k: int, token: int | None) -> str:
        """Name of the 32-bit seccomp_data word at offset ``k``."""
        if k == I.OFF_NR:
            return "sys_number"
        if k == I.OFF_ARCH:
            return "arch"
        if k & 3 == 0 and 8 <= k < I.SECCOMP_DATA_SIZE:
            # The word at the lower address is the low half on little-endian ABIs.
            hi = (k % 8 == 4) != (self.names.byteorder(token) == "big")
            base = "instruction_pointer" if k < I.OFF_ARGS else f"args[{(k - I.OFF_ARGS) // 8}]"
            return base + " >> 32" if hi else base
        return f"data[{_num(k)}]"

    def operand(self, ins: Insn, st: State | None) -> str:
        k = ins.k
        if st is None or st.a is None or st.a[0] != "d":
            return str(k)
        off = st.a[1]
        if off == I.OFF_NR and ins.code & 0xF0 == I.JEQ:
            return self.names.name(k, st.arch) or f"0x{k:x}"
        if off == I.OFF_ARCH:
            return arch_constant_name(k) or f"0x{k:x}"
        return f"0x{k:x}"

    def readable(self, pc: int, ins: Insn, st: State | None) -> str | None:
        """Faithful statement for ``ins`` or None if only the raw escape is exact."""
        code, jt, jf, k = ins
        if code > 0xFF:
            return None
        cls = code & 7
        if cls == I.JMP:
            return self.jump(pc, ins, st)
        if jt or jf:
            return None
        if cls == I.LD:
            size, mode = code & 0x18, code & 0xE0
            if code == I.LD | I.IMM:
                return f"A = {k}"
            if mode == I.ABS and size in _LOAD_WIDTH:
                if size == I.W:
                    return "A = " + self.data_word(k, st.arch if st else None)
                return f"A = {_LOAD_WIDTH[size]}[{_num(k)}]"
            if mode == I.IND and size in _LOAD_WIDTH:
                return f"A = {_LOAD_WIDTH[size]}[X + {_num(k)}]"
            if code == I.LD | I.MEM and k < I.BPF_MEMWORDS:
                return f"A = mem[{k}]"
            if code == I.LD | I.W | I.LEN and not k:
                return "A = len"
            return None
        if cls == I.LDX:
            if code == I.LDX | I.IMM:
                return f"X = {k}"
            if code == I.LDX | I.MEM and k < I.BPF_MEMWORDS:
                return f"X = mem[{k}]"
            if code == I.LDX | I.W | I.LEN and not k:
                return "X = len"
            if code == I.LDX | I.B | I.MSH:
                return f"X = 4 * (data8[{_num(k)}] & 0xf)"
            return None
        if cls in (I.ST, I.STX):
            if code == cls and k < I.BPF_MEMWORDS:
                return f"mem[{k}] = {'A' if cls == I.ST else 'X'}"
            return None
        if cls == I.ALU:
            op = code & 0xF0
            if code == I.ALU | I.NEG:
                return None if k else "A = -A"
            if op not in _ALU_SYM:
                return None
            if code & I.X:
                return None if k else f"A {_ALU_SYM[op]}= X"
            return f"A {_ALU_SYM[op]}= {k if op in (I.LSH, I.RSH) else f'0x{k:x}'}"
        if cls == I.RET:
            if code == I.RET | I.RET_K:
                return "return " + _ret(k)
            if code == I.RET | I.RET_A and not k:
                return "return A"
            if code == I.RET | I.RET_X and not k:
                return "return X"
            return None
        # MISC
        if k:
            return None
        if code == I.MISC | I.TAX:
            return "X = A"
        if code == I.MISC | I.TXA:
            return "A = X"
        return None

    def jump(self, pc: int, ins: Insn, st: State | None) -> str | None:
        code, jt, jf, k = ins
        op = code & 0xF0
        if code == I.JMP | I.JA:
            if jt or jf or pc + 1 + k >= self.n:
                return None
            return _target(pc + 1 + k)
        if op not in _JMP_SYM or jt == jf or pc + 1 + max(jt, jf) >= self.n:
            return None
        if code & I.X:
            if k:
                return None
            rhs = "X"
        else:
            rhs = self.operand(ins, st)
        t, f = _target(pc + 1 + jt), _target(pc + 1 + jf)
        if not jf:
            return f"if (A {_JMP_SYM[op]} {rhs}) {t}"
        if not jt:
            if op == I.JSET:
                return f"if (!(A & {rhs})) {f}"
            return f"if (A {_JMP_NEG[op]} {rhs}) {f}"
        return f"if (A {_JMP_SYM[op]} {rhs}) {t} else {f}"

    def why_raw(self, pc: int, ins: Insn, st: State | None) -> str:
        """Short comment for a raw escape: what the kernel would make of it."""
        code, jt, jf, k = ins
        if code > 0xFF:
            return "opcode wider than 8 bits"
        if code & 7 == I.JMP:
            if code == I.JMP | I.JA:
                dest = pc + 1 + k
                text = f"goto {dest:04d}" + (" (past the end)" if dest >= self.n else "")
                return text + ("; ignores jt/jf" if jt or jf else "")
            if code & 0xF0 not in _JMP_SYM:
                return "invalid jump opcode"
            if jt == jf:
                dest = pc + 1 + jt
                return f"goto {dest:04d} either way" + (" (past the end)" if dest >= self.n else "")
            if pc + 1 + max(jt, jf) >= self.n:
                return "jumps past the end"
            return "comparison with X ignores k"
        if code in (I.LD | I.MEM, I.LDX | I.MEM, I.ST, I.STX) and k >= I.BPF_MEMWORDS:
            return f"scratch memory index {k} out of range"
        plain = self.readable(pc, Insn(code, 0, 0, k), st)
        if plain is not None:
            return f"{plain}; ignores jt/jf"
        plain = self.readable(pc, Insn(code, 0, 0, 0), st)
        if plain is not None:
            return f"{plain}; ignores k" + ("/jt/jf" if jt or jf else "")
        return "not a classic BPF instruction"


def _num(k: int) -> str:
    return str(k) if k < 0x10000 else f"0x{k:x}"


def _ret(k: int) -> str:
    act, data = k & I.RET_ACTION_FULL, k & I.RET_DATA
    name = _RET_NAME.get(act)
    if name is None:
        return f"0x{k:x}"
    if act == I.RET_ERRNO or data:
        return f"{name}({data})"
    return name


def disasm_lines(program: ProgramLike, arch: ArchSpec = None) -> list[Line]:
    """Disassemble ``program`` (Insns, or raw bytes in the default arch's byte order).

    ``arch`` is the default architecture (name, :class:`~sysgate.arch.Arch`, or a list):
    where no arch check dominates an instruction, syscall numbers are named for it (with a
    list, only when all listed arches agree on the name). None means the host's arch.
    """
    arches = default_arches(arch)
    prog = _to_program(program, arches[0].byteorder)
    states = analyze(prog)
    r = _Renderer(prog, SyscallNames(arches))
    out: list[Line] = []
    for pc, ins in enumerate(prog):
        st = states[pc]
        text = r.readable(pc, ins, st)
        raw = text is None
        if raw:
            text = f"raw 0x{ins.code:02x} 0x{ins.jt:02x} 0x{ins.jf:02x} 0x{ins.k:08x}  # {r.why_raw(pc, ins, st)}"
        out.append(Line(pc, ins, text, raw, st.arch if st else None, st is not None))  # type: ignore[arg-type]
    return out


def disasm(program: ProgramLike, arch: ArchSpec = None, *, header: bool = True, columns: bool = True) -> str:
    """seccomp-tools style listing of ``program``, one line per instruction, ending in a newline.

    ``columns=False`` drops the raw ``0xCODE 0xJT 0xJF 0xK`` columns and the header, giving
    ``0000: A = arch`` lines (seccomp-tools ``--asm-able``). Either form is valid input for
    :func:`sysgate.bpf.asm.asm`, which reassembles it to the identical program.
    """
    lines = disasm_lines(program, arch)
    if not columns:
        return "".join(f"{ln.pc:04d}: {ln.text}\n" for ln in lines)
    body = "".join(f" {ln.pc:04d}: 0x{ln.insn.code:02x} 0x{ln.insn.jt:02x} 0x{ln.insn.jf:02x} "
                   f"0x{ln.insn.k:08x}  {ln.text}\n" for ln in lines)
    return (HEADER if header else "") + body
