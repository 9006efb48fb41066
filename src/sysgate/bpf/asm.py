"""Assembler: seccomp-tools assembly (and our own disassembly listings) -> BPF instructions.

Accepted input is the union of

1. seccomp-tools' ``asm`` language (1.6+): ``A = arch``, ``A == ARCH_X86_64 ? next : dead``,
   ``if (A != write) goto L [else goto M]`` (newlines allowed inside the parentheses and
   before ``goto``/``else``), ``if (!(A & 0x8)) goto L``, ``goto L``/``jmp L``/``jump L``,
   labels ``name:``, the reserved label ``next``, ``A = args[i]``, ``args_h[i]``,
   ``A = args[i] >> 32``, ``A = instruction_pointer [>> 32]``, ``A = data[N]``, ``A = len``,
   ``A = mem[i]``, ``mem[i] = A``, ``X = A``, ``A op= k|X``, ``A = -A``, ``return ACTION``,
   ``return ERRNO(5)``, ``return A``, ``return <number>``, syscall names (``write``,
   ``i386.fork``, ``x32_read``), ``ARCH_*`` constants, ``#`` comments;
2. everything :func:`sysgate.bpf.disasm.disasm` prints, with or without the header and the
   raw ``0xCODE 0xJT 0xJF 0xK`` columns, including the ``raw`` escape and the extensions
   listed in :mod:`.disasm`. When a line carries raw columns its statement is still
   assembled, and a difference is an error (it usually means a different ``arch``).

Jump targets. A listing's ``0012:`` prefix is a label named ``0012`` (as in seccomp-tools), so
``goto 0012`` in a listing is absolute. A numeric target that names no label is relative,
as in seccomp-tools' own language: ``goto 0`` is the next statement, ``goto 2`` skips two.
A numeric target written with leading zeros that names no label is an error rather than
silently relative (it is a listing line that is missing). Jumps go forward only.

Conditional jumps farther than 255 instructions are assembled through ``ja`` trampolines
inserted right after the conditional jump (they cannot be inserted when the program also
contains ``raw`` jump instructions, whose offsets would silently change: that is an error).

Syscall names in a comparison ``A <op> name`` are resolved for the architecture a dominating
arch check proves at that point (the analysis of :mod:`.flow`, exactly as the disassembler
uses it to print them), otherwise for the default ``arch``; elsewhere (``A = name``) for the
default arch. ``args[i] >> 32`` picks the word by the byte order of that same arch.

Every error is an :class:`AsmError` whose message is one line, ``line N: ...``.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from ..arch import UnknownArch, UnknownSyscall
from ..errors import UserError
from . import insn as I
from .flow import analyze
from .insn import Insn
from .names import ACTIONS, ArchSpec, SyscallNames, default_arches, parse_arch_constant

__all__ = ["AsmError", "asm"]


class AsmError(UserError):  # a ValueError
    """Bad assembly source. ``str()`` is one line ``line N: message``; ``.line`` is N."""

    def __init__(self, line: int, message: str, col: int = 0):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message  # without the "line N: " prefix, for "FILE:N: message"
        self.col = col  # 1-based column of what is wrong in the line, or 0 (the statement as a whole)


# ---------------------------------------------------------------------------------------------
# tokens

@dataclass
class _Tok:
    kind: str  # NL LABEL GOTO TERN KW ACTION ARCH IDENT NUM OP
    value: object
    line: int
    text: str = ""
    cols: tuple[int, int, int, int] | None = None  # raw listing columns on a LABEL
    col: int = 0  # 1-based column where the token starts in its line


_KEYWORDS = {"a", "x", "if", "else", "return", "mem", "args", "args_h", "data", "data8", "data16", "data32",
             "len", "sys_number", "arch", "instruction_pointer", "raw"}
_HEADER_RE = re.compile(r"^\s*line\s+CODE\s+JT\s+JF\s+K\s*$|^\s*=+\s*$")
_LISTING_RE = re.compile(r"\s*(\d+):(?:\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)"
                         r"\s+0x([0-9a-fA-F]+)(?=\s|$))?")
_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<label>(?:[A-Za-z_]\w*|\d+)):
  | (?P<goto>(?i:goto|jmp|jump))\s+(?P<gtarget>\w+)\b
  | (?P<tern>\?\s*(?P<tt>\w+)\s*:\s*(?P<tf>\w+))
  | (?P<num>-?(?:0[xX][0-9a-fA-F]+|\d+))\b
  | (?P<ident>[A-Za-z_]\w*(?:\.\w+)?)
  | (?P<op><<|>>|==|!=|>=|<=|[-+*/|^%&=()\[\]!<>])
""", re.X)
_ACTION_RE = re.compile(r"(?:{})$".format("|".join(sorted(ACTIONS, key=len, reverse=True))))


#: Most statements :func:`asm` reads: sock_fprog counts instructions in 16 bits, so no longer
#: program can even be handed to the kernel (which takes at most 4,096).
MAX_STATEMENTS = 0xFFFF
_MAX_LINES = 4 * MAX_STATEMENTS  # a statement may span lines (labels, multi-line if)


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    depth = 0  # newlines inside (...) / [...] do not end a statement
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0]
        if _HEADER_RE.match(line):
            continue
        pos = 0
        m = _LISTING_RE.match(line)
        if m:
            cols = None
            if m.group(2) is not None:
                cols = tuple(int(m.group(g), 16) for g in (2, 3, 4, 5))
            toks.append(_Tok("LABEL", m.group(1), lineno, m.group(1), cols, m.start(1) + 1))  # type: ignore[arg-type]
            pos = m.end()
        while pos < len(line):
            m = _TOKEN_RE.match(line, pos)
            if not m:
                bad = line[pos:].split()[0]
                raise AsmError(lineno, f"unrecognised text {bad!r}", pos + 1)
            pos = m.end()
            kind = m.lastgroup
            s = m.group(0)
            if kind == "ws":
                continue
            if kind == "label":
                toks.append(_Tok("LABEL", m.group("label"), lineno, s, col=m.start() + 1))
            elif kind in ("goto", "gtarget"):
                toks.append(_Tok("GOTO", m.group("gtarget"), lineno, s, col=m.start() + 1))
            elif kind in ("tern", "tt", "tf"):
                toks.append(_Tok("TERN", (m.group("tt"), m.group("tf")), lineno, s, col=m.start() + 1))
            elif kind == "num":
                if len(s.lstrip("-0xX")) > 10:  # no 32-bit number has more digits (and int() of
                    # thousands of digits is slow, or refused with a message naming no line)
                    raise AsmError(lineno, f"constant {s[:20]}... does not fit in 32 bits", m.start() + 1)
                v = int(s, 16) if "x" in s.lower() else int(s, 10)
                if not -(1 << 31) <= v <= 0xFFFFFFFF:
                    raise AsmError(lineno, f"constant {s} does not fit in 32 bits", m.start() + 1)
                toks.append(_Tok("NUM", v & 0xFFFFFFFF, lineno, s, col=m.start() + 1))
            elif kind == "ident":
                low = s.lower()
                if low in _KEYWORDS:
                    toks.append(_Tok("KW", low, lineno, s, col=m.start() + 1))
                elif _ACTION_RE.match(s):
                    toks.append(_Tok("ACTION", s, lineno, s, col=m.start() + 1))
                elif low.startswith(("arch_", "audit_arch_")):
                    val = parse_arch_constant(s)
                    if val is None:
                        raise AsmError(lineno, f"unknown architecture constant {s!r}", m.start() + 1)
                    toks.append(_Tok("ARCH", val, lineno, s, col=m.start() + 1))
                else:
                    toks.append(_Tok("IDENT", s, lineno, s, col=m.start() + 1))
            else:
                if s in "([":
                    depth += 1
                elif s in ")]":
                    depth = max(depth - 1, 0)
                toks.append(_Tok("OP", s, lineno, s, col=m.start() + 1))
        if depth == 0:
            toks.append(_Tok("NL", None, lineno, "end of line", col=len(line.rstrip()) + 1))
        if lineno > _MAX_LINES and len(toks) > _MAX_LINES:  # stop early: time in proportion to the limit
            raise AsmError(lineno, f"more than {_MAX_LINES} lines; no program that long can be loaded")
    return toks


# ---------------------------------------------------------------------------------------------
# statements

# An operand still to be resolved: a syscall name, or a 64-bit field word chosen by byte order.
@dataclass(frozen=True)
class _Sys:
    name: str
    compare: bool  # operand of a comparison: resolved for the arch in effect


@dataclass(frozen=True)
class _Word:
    base: int  # offset of the 64-bit field
    hi: bool


_K = int | _Sys | _Word
_Target = tuple  # ("next",) | ("label", name) | ("rel", n)


@dataclass
class _Stmt:
    line: int
    kind: str  # "insn" | "ja" | "jcond"
    code: int = 0
    k: _K = 0
    jt: int = 0
    jf: int = 0
    t: _Target = ("next",)
    f: _Target = ("next",)
    labels: list[_Tok] = field(default_factory=list)
    cols: tuple[int, int, int, int] | None = None
    raw: bool = False
    # resolved later
    ti: int = 0
    fi: int = 0


_ALU_OPS = {"+": I.ADD, "-": I.SUB, "*": I.MUL, "/": I.DIV, "|": I.OR, "&": I.AND, "<<": I.LSH, ">>": I.RSH,
            "%": I.MOD, "^": I.XOR}
# comparison -> (jump op, swap jt/jf)
_CMP = {"==": (I.JEQ, False), "!=": (I.JEQ, True), ">=": (I.JGE, False), "<": (I.JGE, True),
        ">": (I.JGT, False), "<=": (I.JGT, True), "&": (I.JSET, False)}
_WIDTH = {"data": I.W, "data32": I.W, "data16": I.H, "data8": I.B}


def _describe(t: _Tok) -> str:
    return "end of line" if t.kind == "NL" else ("end of input" if t.kind == "EOF" else repr(t.text))


class _Parser:
    def __init__(self, toks: list[_Tok]):
        last = toks[-1].line if toks else 1
        self.toks = toks + [_Tok("EOF", None, last, "end of input")]
        self.i = 0

    # -- helpers
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def at(self, kind: str, value: object = None) -> bool:
        t = self.toks[self.i]
        return t.kind == kind and (value is None or t.value == value)

    def accept(self, kind: str, value: object = None) -> _Tok | None:
        if self.at(kind, value):
            return self.next()
        return None

    def expect(self, kind: str, value: object = None, what: str = "") -> _Tok:
        if self.at(kind, value):
            return self.next()
        t = self.peek()
        raise AsmError(t.line, f"expected {what or value or kind}, found {_describe(t)}", t.col)

    def skip_nl(self) -> None:
        while self.at("NL"):
            self.i += 1

    def fail(self, msg: str) -> AsmError:
        return AsmError(self.peek().line, msg, self.peek().col)

    # -- grammar
    def program(self) -> list[_Stmt]:
        stmts: list[_Stmt] = []
        pending: list[_Tok] = []
        while True:
            self.skip_nl()
            t = self.peek()
            if t.kind == "EOF":
                break
            if t.kind == "LABEL":
                self.next()
                pending.append(t)
                if t.cols is not None and (self.at("NL") or self.at("EOF")):
                    # A listing line with columns but no statement: the columns are the instruction.
                    s = _Stmt(t.line, "insn", t.cols[0], t.cols[3], t.cols[1], t.cols[2], raw=True)
                    s.labels, pending = pending, []
                    stmts.append(s)
                continue
            s = self.statement()
            s.labels, pending = pending, []
            s.cols = next((lt.cols for lt in s.labels if lt.cols is not None and lt.line == s.line), None)
            stmts.append(s)
            if not (self.at("NL") or self.at("EOF")):
                raise self.fail(f"unexpected {_describe(self.peek())} after the statement")
        if pending:
            raise AsmError(pending[-1].line, f"label {pending[-1].value!r} is not followed by a statement")
        return stmts

    def statement(self) -> _Stmt:
        t = self.peek()
        line = t.line
        if t.kind == "KW":
            kw = t.value
            if kw == "raw":
                self.next()
                vals = [self.expect("NUM", what="a number").value for _ in range(4)]
                code, jt, jf, k = vals
                if code > 0xFFFF or jt > 0xFF or jf > 0xFF:  # type: ignore[operator]
                    raise AsmError(line, "raw instruction fields out of range (code 16 bits, jt/jf 8 bits)")
                return _Stmt(line, "insn", code, k, jt, jf, raw=True)  # type: ignore[arg-type]
            if kw == "return":
                self.next()
                return self.ret(line)
            if kw == "if":
                self.next()
                op, rhs, parity = self.condition()
                self.skip_nl()
                t_target = self.goto()
                save = self.i
                self.skip_nl()
                if self.accept("KW", "else"):
                    self.skip_nl()
                    f_target = self.goto()
                else:
                    self.i = save
                    f_target = ("next",)
                return self.cond_stmt(line, op, rhs, parity, t_target, f_target)
            if kw == "a":
                return self.a_statement(line)
            if kw == "x":
                self.next()
                self.expect("OP", "=", "'='")
                return self.x_rval(line)
            if kw == "mem":
                idx = self.mem_index()
                self.expect("OP", "=", "'='")
                src = self.expect("KW", what="A or X")
                if src.value not in ("a", "x"):
                    raise AsmError(src.line, f"expected A or X, found {src.text!r}", src.col)
                return _Stmt(line, "insn", I.ST if src.value == "a" else I.STX, idx)
        if t.kind == "GOTO":
            return _Stmt(line, "ja", t=self.goto())
        raise self.fail(f"unexpected {_describe(t)} at the start of a statement")

    def goto(self) -> _Target:
        t = self.expect("GOTO", what="goto")
        return self.target(t.value, t.line)  # type: ignore[arg-type]

    @staticmethod
    def target(name: str, line: int) -> _Target:
        return ("next",) if name == "next" else ("label", name, line)

    def a_statement(self, line: int) -> _Stmt:
        self.next()  # A
        t = self.peek()
        if t.kind == "OP" and t.value in _ALU_OPS and self.toks[self.i + 1].kind == "OP" \
                and self.toks[self.i + 1].value == "=":
            self.i += 2
            self.skip_nl()
            op = _ALU_OPS[t.value]
            if self.accept("KW", "x"):
                return _Stmt(line, "insn", I.ALU | op | I.X, 0)
            return _Stmt(line, "insn", I.ALU | op | I.K, self.constexpr())
        if t.kind == "OP" and t.value in _CMP:
            # ternary: A <op> rhs ? T : F
            self.next()
            rhs = self.x_constexpr(compare=True)
            tern = self.expect("TERN", what="'? label : label'")
            labels: tuple[str, str] = tern.value  # type: ignore[assignment]  # a TERN's value: (true, false)
            return self.cond_stmt(line, t.value, rhs, 0, self.target(labels[0], tern.line),
                                  self.target(labels[1], tern.line))
        self.expect("OP", "=", "'=' or an operator")
        return self.a_rval(line)

    def a_rval(self, line: int) -> _Stmt:
        t = self.peek()
        if t.kind == "OP" and t.value == "-":
            self.next()
            self.expect("KW", "a", "A (as in A = -A)")
            return _Stmt(line, "insn", I.ALU | I.NEG)
        if t.kind == "KW":
            kw = t.value
            if kw == "x":
                self.next()
                return _Stmt(line, "insn", I.MISC | I.TXA)
            if kw == "len":
                self.next()
                return _Stmt(line, "insn", I.LD | I.W | I.LEN)
            if kw == "mem":
                return _Stmt(line, "insn", I.LD | I.MEM, self.mem_index())
            if kw == "sys_number":
                self.next()
                return _Stmt(line, "insn", I.LD | I.W | I.ABS, I.OFF_NR)
            if kw == "arch":
                self.next()
                return _Stmt(line, "insn", I.LD | I.W | I.ABS, I.OFF_ARCH)
            if kw == "instruction_pointer":
                self.next()
                return _Stmt(line, "insn", I.LD | I.W | I.ABS, _Word(I.OFF_IP, self.high_shift()))
            if kw in ("args", "args_h"):
                self.next()
                self.expect("OP", "[", "'['")
                tok = self.peek()  # the index: where an error points
                idx = self.constexpr()
                self.expect("OP", "]", "']'")
                if not isinstance(idx, int) or idx > 5:
                    raise AsmError(tok.line, f"index of {kw}[] must be between 0 and 5, got {idx}", tok.col)
                hi = self.high_shift() if kw == "args" else True
                return _Stmt(line, "insn", I.LD | I.W | I.ABS, _Word(I.OFF_ARGS + 8 * idx, hi))
            if kw in _WIDTH:
                self.next()
                self.expect("OP", "[", "'['")
                mode = I.ABS
                if self.accept("KW", "x"):
                    self.expect("OP", "+", "'+'")
                    mode = I.IND
                off = self.constexpr()
                self.expect("OP", "]", "']'")
                return _Stmt(line, "insn", I.LD | _WIDTH[kw] | mode, off)
        return _Stmt(line, "insn", I.LD | I.IMM, self.constexpr())

    def high_shift(self) -> bool:
        if self.accept("OP", ">>"):
            n = self.expect("NUM", what="32")
            if n.value != 32:
                raise AsmError(n.line, "only '>> 32' may follow an argument (it selects the high word)", n.col)
            return True
        return False

    def x_rval(self, line: int) -> _Stmt:
        t = self.peek()
        if t.kind == "KW":
            if t.value == "a":
                self.next()
                return _Stmt(line, "insn", I.MISC | I.TAX)
            if t.value == "len":
                self.next()
                return _Stmt(line, "insn", I.LDX | I.W | I.LEN)
            if t.value == "mem":
                return _Stmt(line, "insn", I.LDX | I.MEM, self.mem_index())
        if t.kind == "NUM" and t.value == 4 and self.toks[self.i + 1].value == "*":
            # X = 4 * (data8[k] & 0xf)  (BPF_MSH)
            self.i += 2
            self.expect("OP", "(", "'('")
            self.expect("KW", "data8", "data8")
            self.expect("OP", "[", "'['")
            off = self.constexpr()
            self.expect("OP", "]", "']'")
            self.expect("OP", "&", "'&'")
            m = self.expect("NUM", what="0xf")
            if m.value != 0xF:
                raise AsmError(m.line, "expected '& 0xf' in X = 4 * (data8[k] & 0xf)", m.col)
            self.expect("OP", ")", "')'")
            return _Stmt(line, "insn", I.LDX | I.B | I.MSH, off)
        return _Stmt(line, "insn", I.LDX | I.IMM, self.constexpr())

    def mem_index(self) -> int:
        self.expect("KW", "mem")
        self.expect("OP", "[", "'['")
        tok = self.peek()  # the index: where an error points
        idx = self.constexpr()
        self.expect("OP", "]", "']'")
        if not isinstance(idx, int) or idx >= I.BPF_MEMWORDS:
            raise AsmError(tok.line, f"index of mem[] must be between 0 and 15, got {idx}", tok.col)
        return idx

    def ret(self, line: int) -> _Stmt:
        t = self.peek()
        if t.kind == "KW" and t.value in ("a", "x"):
            self.next()
            return _Stmt(line, "insn", I.RET | (I.RET_A if t.value == "a" else I.RET_X))
        if t.kind == "ACTION":
            self.next()
            val = ACTIONS[t.value]  # type: ignore[index]
            if self.accept("OP", "("):
                data = self.constexpr()
                self.expect("OP", ")", "')'")
                if not isinstance(data, int) or data > I.RET_DATA:
                    raise AsmError(line, f"{t.value} data {data} does not fit in 16 bits")
                val |= data
            return _Stmt(line, "insn", I.RET | I.RET_K, val)
        return _Stmt(line, "insn", I.RET | I.RET_K, self.constexpr())

    def condition(self) -> tuple[str, object, int]:
        self.expect("OP", "(", "'(' after if")
        r = self.cond_inner()
        self.expect("OP", ")", "')'")
        return r

    def cond_inner(self) -> tuple[str, object, int]:
        if self.accept("OP", "!"):
            self.expect("OP", "(", "'(' after '!'")
            op, rhs, parity = self.cond_inner()
            self.expect("OP", ")", "')'")
            return op, rhs, parity + 1
        self.expect("KW", "a", "A")
        t = self.next()
        if t.kind != "OP" or t.value not in _CMP:
            raise AsmError(t.line, f"expected a comparison (== != > >= < <= &), found {_describe(t)}", t.col)
        return t.value, self.x_constexpr(compare=True), 0

    def cond_stmt(self, line: int, op: str, rhs: object, parity: int, t: _Target, f: _Target) -> _Stmt:
        jop, swap = _CMP[op]
        if swap != bool(parity & 1):
            t, f = f, t
        if rhs == "X":
            return _Stmt(line, "jcond", I.JMP | jop | I.X, 0, t=t, f=f)
        return _Stmt(line, "jcond", I.JMP | jop | I.K, rhs, t=t, f=f)  # type: ignore[arg-type]

    def x_constexpr(self, compare: bool = False) -> object:
        if self.accept("KW", "x"):
            return "X"
        return self.constexpr(compare)

    def constexpr(self, compare: bool = False) -> _K:
        t = self.next()
        if t.kind == "NUM":
            return t.value  # type: ignore[return-value]
        if t.kind == "ARCH":
            return t.value  # type: ignore[return-value]
        if t.kind == "IDENT":
            return _Sys(t.value, compare)  # type: ignore[arg-type]
        if t.kind == "OP" and t.value == "(":
            v = self.constexpr(compare)
            self.expect("OP", ")", "')'")
            return v
        raise AsmError(t.line, f"expected a number, syscall name or ARCH_* constant, found {_describe(t)}",
                       t.col)


# ---------------------------------------------------------------------------------------------
# assembly


def _resolve_targets(stmts: list[_Stmt]) -> None:
    labels: dict[str, int] = {}
    for idx, s in enumerate(stmts):
        for lt in s.labels:
            name = lt.value
            if name == "next":
                raise AsmError(lt.line, "'next' is a reserved label", lt.col)
            if name in labels:
                raise AsmError(lt.line, f"duplicate label {name!r} (first defined on line "
                                        f"{stmts[labels[name]].line})", lt.col)
            labels[name] = idx  # type: ignore[index]
    n = len(stmts)

    def resolve(idx: int, tgt: _Target) -> int:
        if tgt[0] == "next":
            return idx + 1
        _, name, line = tgt
        if name in labels:
            j = labels[name]
            if j <= idx:
                raise AsmError(line, f"backward jump to {name!r} (BPF jumps only forward)")
            return j
        if name.isdigit():
            if len(name) > 10:  # past any program (and int() refuses 4,300 digits)
                raise AsmError(line, f"goto {name[:20]}...: jumps past the end of the program")
            if len(name) > 1 and name[0] == "0":
                raise AsmError(line, f"goto {name}: no instruction is labelled {name} in this listing")
            j = idx + 1 + int(name)
            if j >= n:
                raise AsmError(line, f"goto {name} jumps past the end of the program")
            return j
        close = difflib.get_close_matches(name, [k for k in labels if not k.isdigit()], n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise AsmError(line, f"undefined label {name!r}{hint}")

    for idx, s in enumerate(stmts):
        if s.kind == "ja":
            s.ti = resolve(idx, s.t)
        elif s.kind == "jcond":
            s.ti, s.fi = resolve(idx, s.t), resolve(idx, s.f)
            if s.ti == s.fi:  # both ways to one place: an unconditional jump, as seccomp-tools does
                s.kind = "ja"


def _layout(stmts: list[_Stmt]) -> tuple[list[int], list[tuple[bool, bool]]]:
    """Positions of statements, and which conditional jumps need ja trampolines (t, f)."""
    n = len(stmts)
    tramp = [(False, False)] * n
    while True:
        pos, p = [], 0
        for i in range(n):
            pos.append(p)
            p += 1 + tramp[i][0] + tramp[i][1]
        pos.append(p)  # "end": one past the last instruction (only `next` of the last statement)
        changed = False
        for i, s in enumerate(stmts):
            if s.kind != "jcond":
                continue
            tt, tf = tramp[i]
            if not tt and pos[s.ti] - pos[i] - 1 > 255:
                tt = changed = True
            if not tf and pos[s.fi] - pos[i] - 1 > 255:
                tf = changed = True
            tramp[i] = (tt, tf)
        if not changed:
            return pos, tramp


def _emit(stmts: list[_Stmt], pos: list[int], tramp: list[tuple[bool, bool]],
          kval: list[int]) -> list[Insn]:
    out: list[Insn] = []
    for i, s in enumerate(stmts):
        here = pos[i]
        if s.kind == "insn":
            out.append(Insn(s.code, s.jt, s.jf, kval[i]))
        elif s.kind == "ja":
            out.append(Insn(I.JMP | I.JA, 0, 0, pos[s.ti] - here - 1))
        else:
            tt, tf = tramp[i]
            jt = 0 if tt else pos[s.ti] - here - 1
            jf = int(tt) if tf else pos[s.fi] - here - 1
            out.append(Insn(s.code, jt, jf, kval[i]))
            if tt:
                out.append(Insn(I.JMP | I.JA, 0, 0, pos[s.ti] - (here + 1) - 1))
            if tf:
                out.append(Insn(I.JMP | I.JA, 0, 0, pos[s.fi] - (here + 1 + tt) - 1))
    return out


def _kvalue(s: _Stmt, names: SyscallNames, token: int | None, final: bool) -> int:
    k = s.k
    if isinstance(k, int):
        return k
    if isinstance(k, _Word):
        hi = k.hi != (names.byteorder(token) == "big")
        return k.base + (4 if hi else 0)
    try:
        return names.resolve(k.name, token if k.compare else None)
    except (UnknownSyscall, UnknownArch) as e:
        if not final:
            return 0
        msg = str(e)
        if k.compare and token is not None and "." not in k.name:
            arch = names.family(token)
            where = arch[0].name if arch else f"arch token 0x{token:x}"
            msg += f" (an arch check proves {where} here)"
        raise AsmError(s.line, msg) from None


def asm(text: str, arch: ArchSpec = None) -> tuple[Insn, ...]:
    """Assemble ``text`` into instructions; raises :class:`AsmError` (``line N: ...``).

    ``arch`` is the default architecture for syscall names (name, Arch or list, first wins;
    None: the host's), the same meaning as in :func:`sysgate.bpf.disasm.disasm`, so
    ``asm(disasm(p, arch), arch) == p`` for every program ``p``.

    The result is not checked against the kernel's rules (a listing of a refused program
    reassembles to the same refused program): see :func:`sysgate.bpf.emulator.check`.
    """
    return asm_lines(text, arch)[0]




def asm_lines(text: str, arch: ArchSpec = None) -> tuple[tuple[Insn, ...], tuple[int, ...]]:
    """:func:`asm`, plus the source line of each instruction (for ``FILE:LINE`` messages)."""
    names = SyscallNames(default_arches(arch))
    stmts = _Parser(_tokenize(text)).program()
    if not stmts:
        raise AsmError(1, "no instructions")
    if len(stmts) > MAX_STATEMENTS:
        raise AsmError(stmts[MAX_STATEMENTS].line, f"more than {MAX_STATEMENTS} statements; no program that "
                                                   f"long can be loaded")
    _resolve_targets(stmts)
    pos, tramp = _layout(stmts)
    if any(t or f for t, f in tramp):
        rawjump = next((s for s in stmts if s.raw and s.code & 7 == I.JMP), None)
        if rawjump is not None:
            far = next(s for s, (t, f) in zip(stmts, tramp) if t or f)
            raise AsmError(far.line, f"conditional jump farther than 255 instructions needs a trampoline, "
                                     f"which would break the raw jump on line {rawjump.line}")
    # First pass: default-arch names, to learn which arch each instruction runs under.
    kval = [_kvalue(s, names, None, False) for s in stmts]
    states = analyze(_emit(stmts, pos, tramp, kval))
    for i, s in enumerate(stmts):
        if isinstance(s.k, int):
            continue
        st = states[pos[i]]
        token = st.arch if st is not None else None
        if isinstance(s.k, _Sys) and st is not None and st.a == ("d", I.OFF_ARCH):
            token = None  # a name compared with the arch word itself: keep the default arch
        kval[i] = _kvalue(s, names, token, True)
    prog = _emit(stmts, pos, tramp, kval)
    for i, s in enumerate(stmts):
        if s.cols is not None:
            got = prog[pos[i]]
            want = Insn(s.cols[0], s.cols[1], s.cols[2], s.cols[3])
            if got != want:
                raise AsmError(s.line, f"statement assembles to {_cols(got)} but the listing says {_cols(want)}"
                                       f" (different arch or edited line?)")
    lines = [0] * len(prog)
    for i, s in enumerate(stmts):
        for pc in range(pos[i], pos[i + 1]):
            lines[pc] = s.line
    return tuple(prog), tuple(lines)


def _cols(i: Insn) -> str:
    return f"0x{i.code:02x} 0x{i.jt:02x} 0x{i.jf:02x} 0x{i.k:08x}"
