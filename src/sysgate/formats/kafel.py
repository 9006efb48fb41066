"""Kafel policies (google/kafel, as used by nsjail).

::

    #define STDOUT 1
    #include "common.policy"
    POLICY stdio {
      ALLOW { read { fd == 0 }, write(fd, buf, count) { fd == STDOUT || fd == 2 } },
      ERRNO(1) { ptrace, SYSCALL[999] },
      KILL_PROCESS { execve ON x86_64 }
    }
    USE stdio DEFAULT KILL

The first matching rule decides (in the order the policy lists them, ``USE`` pasting a
previously defined policy in place); ``DEFAULT`` (or ``USE p DEFAULT a``) applies otherwise,
KILL when absent. Blocks may stand at top level too, separated by commas as inside a POLICY.
Actions: ALLOW, LOG, KILL/KILL_THREAD/DENY (kill-thread), KILL_PROCESS, USER_NOTIF, ERRNO(n),
TRACE(n) and TRAP(0) (sysgate's trap has no value). Expressions: ``== != < <= > >= && || !``,
``,`` (an OR of lowest precedence), ``&`` and ``|`` on values. A value may combine arguments
(``(fd & buf) == 0``, ``fd < count``): such comparisons become :class:`~sysgate.policy.Compare`.

Names are Kafel's own (:mod:`.kafel_syscalls`, from libkafel's tables) on the architectures
Kafel has (``geteuid`` on x86 is Kafel's 201, sysgate's ``geteuid32``; ``newfstat`` on x86_64),
sysgate's elsewhere. Arguments are named as declared (``write(fd, buf, count)``: each 8 bytes,
as in Kafel) or, undeclared, by Kafel's table, whose sizes say which are 4 bytes. As in Kafel, a
comparison tests both words when an argument in it is 8 bytes or a constant needs more than 32
bits, and the low words only otherwise. Constants are ``#define``-d or named constants of the
target architecture. ``#include "file"`` is relative to the including file, then the include
directory (``base_dir``); include loops are errors. ``ON arch`` and ``ON { a, b }`` take Kafel's
architecture names (``amd64``, ``i386``, ``arm64``, ...).
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from .. import arch as _arch
from ..policy import Action, ActionKind, Compare, Condition, Op, Policy, PolicyError, Rule, Term
from . import Exported, Loaded, ProfileError, SourceError, Token, decode_text, read_file, read_limited, read_per_arch
from . import logic as L

_T = TypeVar("_T")  # what a nested parse returns
__all__ = ["KafelPolicy", "loads", "load", "export", "detect_text"]

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
INCLUDE_DEPTH = 16
# Kafel's names for syscalls whose libseccomp names differ.
_ALIASES = {"newstat": "stat", "newlstat": "lstat", "newfstat": "fstat", "newuname": "uname"}
_SIMPLE = {"ALLOW": ActionKind.ALLOW, "LOG": ActionKind.LOG, "KILL": ActionKind.KILL_THREAD,
           "KILL_THREAD": ActionKind.KILL_THREAD, "DENY": ActionKind.KILL_THREAD,
           "KILL_PROCESS": ActionKind.KILL_PROCESS, "USER_NOTIF": ActionKind.USER_NOTIF}
_VALUED = {"ERRNO": ActionKind.ERRNO, "TRACE": ActionKind.TRACE, "TRAP": ActionKind.TRAP}
_KEYWORDS = {"POLICY", "USE", "DEFAULT", "SYSCALL", "ON"} | set(_SIMPLE) | set(_VALUED)
_TOKEN = re.compile(r"""
    (?P<WS>[ \t\r]+) | (?P<NL>\n) | (?P<LCOMMENT>//[^\n]*) | (?P<BCOMMENT>/\*)
  | (?P<STRING>"[^"\n]*")
  | (?P<NUM>-?(?:0[xX][0-9a-fA-F]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)(?![A-Za-z0-9_]))
  | (?P<GROUP>@[a-z][a-z0-9-]*)
  | (?P<IDENT>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<OP>==|!=|<=|>=|&&|\|\||[<>&|!{}()\[\],;\#])
""", re.X)
_CMP_OR_VALUE = {"==", "!=", "<", "<=", ">", ">=", "&", "|"}
MAX_NESTING = 64
_MIRROR = {Op.EQ: Op.EQ, Op.NE: Op.NE, Op.LT: Op.GT, Op.LE: Op.GE, Op.GT: Op.LT, Op.GE: Op.LE}


KafelPolicy = Loaded  # what loads() returns: the policy (and notes, always none here)

_Tok = Token


class _Error(SourceError):
    def __init__(self, msg: str, pos: int = -1, loc: tuple[str, int, int] | None = None) -> None:
        super().__init__(msg, loc)
        self.pos = pos


def _tokenize(text: str, file: str) -> list[_Tok]:
    out: list[_Tok] = []
    line, line_start, pos = 1, 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            col = pos - line_start + 1
            raise _Error(f"{file}:{line}:{col}: invalid character {text[pos]!r}", loc=(file, line, col))
        kind = m.lastgroup or ""
        if kind == "BCOMMENT":
            end = text.find("*/", pos + 2)
            if end < 0:
                col = pos - line_start + 1
                raise _Error(f"{file}:{line}:{col}: unterminated comment", loc=(file, line, col))
            for k in range(pos, end):
                if text[k] == "\n":
                    line, line_start = line + 1, k + 1
            pos = end + 2
            continue
        if kind == "NL":
            out.append(_Tok("NL", "\n", file, line, pos - line_start + 1))
            line, line_start = line + 1, m.end()
        elif kind not in ("WS", "LCOMMENT"):
            value = m.group()
            if kind == "IDENT" and value in _KEYWORDS:
                kind = value
            out.append(_Tok(kind, value, file, line, pos - line_start + 1))
        pos = m.end()
    return out


def _number(text: str) -> int:
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if body[:2].lower() == "0x":
        v = int(body[2:], 16)
    elif body[:2].lower() == "0b":
        v = int(body[2:], 2)
    elif len(body) > 1 and body[0] == "0":
        v = int(body, 8)
    else:
        v = int(body)
    if v > U64:
        raise ValueError("number out of range")
    return (-v) & U64 if neg else v


class _AnyArg(dict):
    """Argument names of a rule for another architecture: any name parses, none is resolved."""

    def __contains__(self, key: object) -> bool:
        return True

    def __getitem__(self, key: object) -> tuple[int, int]:
        return (0, 64)


# Kafel's architecture names (kafel's syscall.c, matched without case) -> sysgate's: each arch's
# Kafel name, and the other spellings Kafel accepts.
_KAFEL_ARCHES = {a.kafel: a.name for a in _arch.ARCHES if a.kafel}
_KAFEL_ARCHES.update({"arm64": "aarch64", "amd64": "x86_64", "i386": "x86", "mipso32": "mips", "rv64": "riscv64"})


# Value expressions: ("num", v) | ("var", index, bits) | ("&" or "|", left, right), simplified as
# Kafel's expr_simplify does (constants folded, x & 0 -> 0, x & ~0 -> x, x | 0 -> x, x | ~0 -> ~0),
# because what is left decides whether Kafel compares one word or two.
def _combine(kind: str, a: tuple, b: tuple) -> tuple:
    if a[0] == "num" and b[0] == "num":
        return ("num", a[1] & b[1] if kind == "&" else a[1] | b[1])
    if a[0] == "num":
        a, b = b, a
    if b[0] == "num":
        clobber, identity = (0, U64) if kind == "&" else (U64, 0)
        if b[1] == clobber:
            return ("num", clobber)
        if b[1] == identity:
            return a
    return (kind, a, b, 1 + max(_vdepth(a), _vdepth(b)))


def _vdepth(v: tuple) -> int:
    return v[3] if len(v) == 4 else 1


def _is_64bit(v: tuple) -> bool:
    if v[0] == "num":
        big: bool = v[1] > U32
        return big
    if v[0] == "var":
        wide: bool = v[2] == 64
        return wide
    return _is_64bit(v[1]) or _is_64bit(v[2])


def _as_masked(v: tuple) -> tuple[int, int] | None:
    """(argument, mask) when ``v`` is one argument ANDed with constants."""
    if v[0] == "var":
        return v[1], U64
    if v[0] == "&":
        for x, y in ((v[1], v[2]), (v[2], v[1])):
            inner = _as_masked(x)
            if inner is not None and y[0] == "num":
                return inner[0], inner[1] & y[1]
    return None


def _term(v: tuple) -> Term:
    if v[0] == "num":
        return Term.const(v[1])
    if v[0] == "var":
        return Term.arg(v[1])
    return Term.combine(v[0], _term(v[1]), _term(v[2]))


class _Parser:
    def __init__(self, arch: _arch.Arch, base_dir: str) -> None:
        self.arch = arch
        self.base_dir = base_dir
        self.consts: dict[str, int] = {}
        self.policies: dict[str, list[tuple[str | int, L.DNF, Action]]] = {}
        self.top: list[tuple[str | int, L.DNF, Action]] = []
        self.default: Action | None = None
        self.stack: list[str] = []
        self.toks: list[_Tok] = []
        self.i = 0
        self.args: dict[str, tuple[int, int]] = {}  # name -> (index, bits) for the current syscall
        self.depth = 0
        self.statements = 0  # Kafel's grammar needs at least one (an #include is not one)
        self.texts: dict[str, str] = {}  # file -> text, for showing the line of an error

    # -- token helpers (newlines only matter to #include and #define)
    def peek(self, skip_nl: bool = True) -> _Tok | None:
        j = self.i
        while j < len(self.toks) and skip_nl and self.toks[j].kind == "NL":
            j += 1
        return self.toks[j] if j < len(self.toks) else None

    def next(self, what: str) -> _Tok:
        t = self.peek()
        if t is None:
            last = self.toks[-1] if self.toks else None
            where = f"{last.file}:{last.line}:{last.col}" if last else (self.stack[-1] if self.stack else "<kafel>")
            raise _Error(f"{where}: unexpected end of file, expected {what}", len(self.toks))
        while self.toks[self.i].kind == "NL":
            self.i += 1
        self.i += 1
        return t

    def fail(self, t: _Tok, msg: str) -> _Error:
        return _Error(f"{t.file}:{t.line}:{t.col}: {msg}", self.i, (t.file, t.line, t.col))

    def expect(self, value: str, what: str | None = None) -> _Tok:
        t = self.next(what or f"'{value}'")
        if t.value != value:
            raise self.fail(t, f"expected {what or repr(value)}, found {t.value!r}")
        return t

    def accept(self, value: str) -> bool:
        t = self.peek()
        if t is not None and t.value == value and t.kind not in ("STRING",):
            self.next(value)
            return True
        return False

    # -- statements
    def parse(self, text: str, file: str) -> None:
        self.texts[file] = text
        saved = (self.toks, self.i)
        self.toks, self.i = _tokenize(text, file), 0
        try:
            while self.peek() is not None:
                self.statement()
        finally:
            self.toks, self.i = saved

    def statement(self) -> None:
        t = self.next("a statement")
        if not (t.value == "#" and self.peek() is not None and self.peek().value == "include"):  # type: ignore[union-attr]
            self.statements += 1
        if t.value == "#":
            d = self.next("define or include")
            if d.value == "define":
                self.define(d)
            elif d.value == "include":
                self.include(d)
            else:
                raise self.fail(d, f"unknown directive #{d.value}")
        elif t.kind == "POLICY":
            name = self.next("policy name")
            if name.kind != "IDENT":
                raise self.fail(name, "expected a policy name")
            if name.value in self.policies:
                raise self.fail(name, f"Redefinition of policy `{name.value}'")
            self.expect("{")
            entries: list[tuple[str | int, L.DNF, Action]] = []
            if not self.accept("}"):
                entries = self.policy_statements()
                self.expect("}", "',' or '}'")
            self.policies[name.value] = entries
        elif t.kind == "DEFAULT":
            if self.default is not None:
                raise self.fail(t, "Redefinition of default action")
            self.default = self.action()
        elif t.kind == "USE" or t.kind in _SIMPLE or t.kind in _VALUED:
            # A list of blocks at top level, as inside a POLICY: they extend the main policy.
            self.i -= 1
            self.top.extend(self.policy_statements())
        elif t.value == ";":
            pass
        else:
            raise self.fail(t, f"syntax error, unexpected {t.value!r}")

    def policy_statements(self) -> list[tuple[str | int, L.DNF, Action]]:
        """``USE p`` and ``ACTION { ... }`` blocks separated by commas."""
        out = list(self.policy_statement())
        while self.accept(","):
            out.extend(self.policy_statement())
        return out

    def define(self, d: _Tok) -> None:
        name = self.next("constant name")
        if name.kind != "IDENT":
            raise self.fail(name, "expected a constant name")
        num = self.next("number")
        if num.kind != "NUM":
            raise self.fail(num, "expected a number")
        value = self.number_value(num)
        if name.value in self.consts and self.consts[name.value] != value:
            raise self.fail(d, f"Redefinition of constant `{name.value}' with different value "
                               f"(was: {self.consts[name.value]} is: {value})")
        self.consts[name.value] = value

    def include(self, d: _Tok) -> None:
        files = []
        prev = d
        while True:
            t = self.peek(skip_nl=False)
            if t is None:  # as in Kafel, a newline or ';' must end the statement
                raise self.fail(prev, "unterminated include statement")
            if t.kind == "NL" or t.value == ";":
                self.i += 1
                break
            self.i += 1
            if t.kind != "STRING":
                raise self.fail(t, "expected a quoted file name")
            if t.line == prev.line and t.col == prev.col + len(prev.value):
                raise self.fail(t, "unexpected filename (a space must come before it)")
            files.append(t)
            prev = t
        if not files:
            raise self.fail(d, "#include needs a file name")
        for f in files:
            # Relative to the including file, then in the include directory (Kafel's search path).
            here = os.path.dirname(self.stack[-1]) if self.stack else self.base_dir
            path = os.path.realpath(os.path.join(here, f.value[1:-1]))
            if not os.path.exists(path) and here != self.base_dir:
                path = os.path.realpath(os.path.join(self.base_dir, f.value[1:-1]))
            if path in self.stack:
                chain = " -> ".join(os.path.basename(x) for x in self.stack[self.stack.index(path):] + [path])
                raise self.fail(f, f"include loop: {chain}")
            if len(self.stack) >= INCLUDE_DEPTH:
                raise self.fail(f, "includes nested too deep")
            try:
                text = read_limited(path).decode("utf-8")
            except OSError as e:
                raise self.fail(f, f"cannot include {f.value}: {e.strerror}") from None
            except UnicodeDecodeError as e:
                raise self.fail(f, f"cannot include {f.value}: not UTF-8 text ({e.reason})") from None
            self.stack.append(path)
            try:
                self.parse(text, path)
            finally:
                self.stack.pop()

    def use(self) -> list[tuple[str | int, L.DNF, Action]]:
        self.expect("USE")
        name = self.next("policy name")
        if name.value not in self.policies:
            raise self.fail(name, f"Undefined policy `{name.value}'")
        return list(self.policies[name.value])

    def policy_statement(self) -> list[tuple[str | int, L.DNF, Action]]:
        t = self.peek()
        if t is not None and t.kind == "USE":
            return self.use()
        action = self.action()
        self.expect("{")
        out: list[tuple[str | int, L.DNF, Action]] = []
        if self.accept("}"):
            return out
        while True:
            out.extend((s, d, action) for s, d in self.syscall_filter())
            if self.accept(","):
                continue
            self.expect("}", "',' or '}'")
            return out

    def action(self) -> Action:
        t = self.next("an action")
        if t.kind in _SIMPLE:
            return Action(_SIMPLE[t.kind])
        if t.kind in _VALUED:
            if t.kind == "TRAP" and not (self.peek() and self.peek().value == "("):  # type: ignore[union-attr]
                return Action(ActionKind.TRAP)
            self.expect("(")
            n = self.next("number")
            v = self.number_value(n)
            self.expect(")")
            if t.kind == "TRAP":
                if v:
                    raise self.fail(n, f"TRAP({v}): sysgate's trap action carries no value (use TRAP(0))")
                return Action(ActionKind.TRAP)
            limit = 4095 if t.kind == "ERRNO" else 65535
            if v > limit:
                raise self.fail(n, f"{t.kind.capitalize()} value {v} out of range (0-{limit})")
            return Action(_VALUED[t.kind], v)
        raise self.fail(t, f"expected an action (ALLOW, ERRNO(n), KILL, ...), found {t.value!r}")

    def number_value(self, t: _Tok) -> int:
        if t.kind == "NUM":
            try:
                return _number(t.value)
            except ValueError:
                raise self.fail(t, "number out of range") from None
        if t.kind == "IDENT" and t.value in self.consts:
            return self.consts[t.value]
        raise self.fail(t, f"expected a number, found {t.value!r}")

    def resolve(self, t: _Tok) -> tuple[list[str | int], tuple[tuple[str, int], ...]]:
        """Syscalls a name stands for on the target arch, and their argument names and widths.

        On the architectures Kafel has, names, numbers and argument sizes are Kafel's own
        (libkafel's tables): ``geteuid`` on x86 is Kafel's 201, sysgate's ``geteuid32``.
        """
        from .argnames import ARGS
        from .kafel_syscalls import table as kafel_table
        from .syscall_names import UnknownName, expand

        table = kafel_table(self.arch.name)
        if table is not None and t.kind == "IDENT":
            entry = table.get(t.value)
            if entry is None:
                nr = self.arch.syscalls.get(t.value)
                kafel_names = sorted(k for k, (n, _) in table.items() if n == nr) if nr is not None else []
                hint = (f"; Kafel calls syscall {nr} `{kafel_names[0]}'" if kafel_names else
                        f"; write SYSCALL[{nr}]" if nr is not None else "")
                raise self.fail(t, f"Undefined identifier `{t.value}' (not a syscall Kafel knows on "
                                   f"{self.arch.name}{hint})")
            nr, args = entry
            name = self.arch.name_of(nr)
            return [name if name is not None else nr], args
        try:
            names: list[str | int] = list(expand(_ALIASES.get(t.value, t.value)))
        except UnknownName as e:
            raise self.fail(t, f"Undefined syscall `{t.value}' ({e})") from None
        return names, (ARGS.get(str(names[0]), ()) if t.kind == "IDENT" else ())

    def arch_guard(self) -> set[str]:
        """The arches after ``ON`` (Kafel's names, or sysgate's for arches Kafel lacks)."""
        archs = []
        if self.accept("{"):
            while True:
                archs.append(self.next("architecture"))
                if self.accept(","):
                    continue
                self.expect("}", "',' or '}'")
                break
        else:
            archs.append(self.next("architecture"))
        wanted: set[str] = set()
        for a in archs:
            name = _KAFEL_ARCHES.get(a.value.lower())
            if name is None:
                try:
                    name = _arch.get(a.value).name
                except _arch.UnknownArch:
                    raise self.fail(a, f"Unknown architecture `{a.value}'") from None
            if name in wanted:
                raise self.fail(a, f"Duplicate architecture `{a.value}'")
            wanted.add(name)
        return wanted

    def syscall_filter(self) -> list[tuple[str | int, L.DNF]]:
        t = self.next("a syscall")
        names: list[str | int] = []
        known_args: tuple[tuple[str, int], ...] = ()
        if t.kind == "SYSCALL":
            self.expect("[")
            n = self.next("number")
            names = [self.number_value(n) & U32]
            self.expect("]")
        elif t.kind == "IDENT" and t.value in self.consts:
            names = [self.consts[t.value] & U32]
        elif t.kind not in ("IDENT", "GROUP"):
            raise self.fail(t, f"expected a syscall name, found {t.value!r}")
        declared: list[str] | None = None
        if self.accept("("):
            declared = []
            if not self.accept(")"):
                while True:
                    a = self.next("argument name")
                    if a.kind != "IDENT":
                        raise self.fail(a, "expected an argument name")
                    if a.value in declared:
                        raise self.fail(a, f"Redefinition of argument `{a.value}'")
                    if len(declared) == 6:
                        raise self.fail(a, "Too many arguments defined for syscall")
                    declared.append(a.value)
                    if self.accept(","):
                        continue
                    self.expect(")", "',' or ')'")
                    break
        skip = False
        if self.accept("ON"):
            skip = self.arch.name not in self.arch_guard()
        if not names and not skip:  # a name is looked up only where the rule applies, as Kafel does
            names, known_args = self.resolve(t)
        if declared is not None:
            # Kafel gives every declared argument 8 bytes, whatever the kernel's C type.
            self.args = {n: (k, 64) for k, n in enumerate(declared)}
        else:
            self.args = {n: (k, w) for k, (n, w) in enumerate(known_args)}
        expr = L.TRUE
        if self.accept("{"):
            if not self.accept("}"):
                if t.kind == "GROUP":
                    raise self.fail(t, "argument filters need a single syscall, not a group")
                if skip:  # still parsed for its syntax; names are not resolved
                    self.args = _AnyArg()
                expr = self.bool_expr()
                self.expect("}", "'}'")
        self.args = {}
        return [] if skip else [(n, expr) for n in names]

    # -- expressions, straight to DNF
    def bool_expr(self) -> L.DNF:
        d = self.or_expr()
        while self.accept(","):
            d = L.or_(d, self.or_expr())
        return d

    def or_expr(self) -> L.DNF:
        d = self.and_expr()
        while self.accept("||"):
            d = L.or_(d, self.and_expr())
        return d

    def and_expr(self) -> L.DNF:
        parts = [self.unary()]
        while self.accept("&&"):
            parts.append(self.unary())
        return L.and_all(parts)  # one pass: a fold re-simplifies every prefix (n^2 for n terms)

    def unary(self) -> L.DNF:
        if self.accept("!"):
            return self.nested(lambda: L.not_(self.unary()))
        t = self.peek()
        if t is not None and t.value == "(":
            # A parenthesised value ("(fd & 3) == 1") or a parenthesised condition: the token
            # after the matching ")" tells which, without backtracking.
            after = self.after_parens()
            if after is None or after.value not in _CMP_OR_VALUE:
                self.next("(")
                d = self.nested(self.bool_expr)
                self.expect(")")
                return d
        return self.comparison()

    def nested(self, f: Callable[[], _T]) -> _T:
        self.depth += 1
        if self.depth > MAX_NESTING:
            t = self.peek()
            msg = f"expression nested deeper than {MAX_NESTING} levels"
            raise (self.fail(t, msg) if t else _Error(msg))
        try:
            return f()
        finally:
            self.depth -= 1

    def after_parens(self) -> _Tok | None:
        """The token after the ")" matching the "(" at the current position."""
        level = 0
        for j in range(self.i, len(self.toks)):
            v = self.toks[j].value
            if self.toks[j].kind == "NL":
                continue
            if v == "(":
                level += 1
                if level > MAX_NESTING:
                    raise self.fail(self.toks[j], f"expression nested deeper than {MAX_NESTING} levels")
            elif v == ")":
                level -= 1
                if level == 0:
                    for k in range(j + 1, len(self.toks)):
                        if self.toks[k].kind != "NL":
                            return self.toks[k]
                    return None
        return None

    def comparison(self) -> L.DNF:
        left = self.value()
        t = self.next("a comparison operator")
        ops = {"==": Op.EQ, "!=": Op.NE, "<": Op.LT, "<=": Op.LE, ">": Op.GT, ">=": Op.GE}
        if t.value not in ops:
            raise self.fail(t, f"expected a comparison operator, found {t.value!r}")
        op = ops[t.value]
        right = self.value()
        if isinstance(self.args, _AnyArg):
            return L.TRUE  # a rule for another arch: only its syntax matters
        if left[0] == "num" and right[0] == "num":
            a, b = left[1], right[1]
            truth = {Op.EQ: a == b, Op.NE: a != b, Op.LT: a < b, Op.LE: a <= b, Op.GT: a > b, Op.GE: a >= b}[op]
            return L.TRUE if truth else L.FALSE
        if left[0] == "var" and right[0] == "var" and left[1] == right[1]:
            return L.TRUE if op in (Op.EQ, Op.LE, Op.GE) else L.FALSE
        # Kafel compares both words if any argument in the comparison is 8 bytes or any constant
        # needs more than 32 bits; otherwise the low words only.
        width = 64 if _is_64bit(left) or _is_64bit(right) else 32
        if left[0] == "num":
            left, right, op = right, left, _MIRROR[op]
        masked = _as_masked(left)
        if masked is not None and right[0] == "num":
            arg, mask = masked
            return L.masked_compare(arg, mask if width == 64 else mask & U32, op, right[1], width)
        return ((Compare(_term(left), op, _term(right), width),),)

    def value(self) -> tuple:
        v = self.band()
        while self.accept("|"):
            v = self.deep_enough(_combine("|", v, self.band()))
        return v

    def band(self) -> tuple:
        v = self.vatom()
        while self.accept("&"):
            v = self.deep_enough(_combine("&", v, self.vatom()))
        return v

    def deep_enough(self, v: tuple) -> tuple:
        """``v``, unless the value expression has grown deeper than sysgate compiles."""
        if _vdepth(v) > MAX_NESTING:
            t = self.peek() or self.toks[self.i - 1]
            raise self.fail(t, f"value expression nested deeper than {MAX_NESTING} levels")
        return v

    def vatom(self) -> tuple:
        t = self.next("a value")
        if t.value == "(":
            v = self.nested(self.value)
            self.expect(")")
            return v
        if t.kind == "NUM":
            return ("num", self.number_value(t))
        if t.kind == "IDENT":
            if t.value in self.consts:
                return ("num", self.consts[t.value])
            if t.value in self.args:
                idx, width = self.args[t.value]
                return ("var", idx, width)
            from ..constants import UnknownConstant, lookup

            try:
                return ("num", lookup(t.value, self.arch) & U64)
            except UnknownConstant:
                raise self.fail(t, f"Undefined identifier `{t.value}'") from None
        raise self.fail(t, f"expected a value, found {t.value!r}")

    def policy(self, source: str) -> Policy:
        default = self.default or Action(ActionKind.KILL_THREAD)
        by_syscall: dict[str | int, list[tuple[L.DNF, Action]]] = {}
        for syscall, expr, action in self.top:
            by_syscall.setdefault(syscall, []).append((expr, action))
        rules: list[Rule] = []
        for syscall, chain in by_syscall.items():
            try:
                rules.extend(L.first_match_rules(syscall, chain, default))
            except L.TooComplex as e:
                raise _Error(f"{source}: syscall {syscall}: rules too complex to convert ({e})") from None
        try:
            return Policy(default, tuple(rules))
        except PolicyError as e:
            raise _Error(f"{source}: {e}") from None


_LOOKS_LIKE = re.compile(r"""(?m)\bPOLICY\s+\w+\s*\{|^\s*USE\s+\w+|^\s*\#\s*(?:define|include)\b|^\s*DEFAULT\s+[A-Z]""")


def detect_text(text: str, name: str | None) -> float:
    """Likely for a ``POLICY name {``, ``USE``, ``DEFAULT`` or ``#define``/``#include`` line."""
    return 0.9 if _LOOKS_LIKE.search(text) else 0.0


def loads(text: str, source: str = "<kafel>", *, arch: str | None = None, arches: Iterable[str] | None = None,
          base_dir: str | None = None) -> KafelPolicy:
    """Read a Kafel policy; named constants are those of ``arch`` (or each of ``arches``, which must agree)."""

    def read(a: _arch.Arch, base: str) -> tuple[Policy, list[str]]:
        p = _Parser(a, base)
        if os.path.isfile(source):
            p.stack.append(os.path.realpath(source))
        try:
            p.parse(text, source)
            if not p.statements:
                raise ProfileError(f"{source}: syntax error, unexpected end of file (no statement: "
                                   f"an empty Kafel policy is an error, as in Kafel)")
            return p.policy(source), []
        except L.TooComplex as e:
            raise ProfileError(f"{source}: expression too complex to convert ({e})") from None
        except _Error as e:
            e.show_line(p.texts, lambda text: text.split("\n"))  # lines as the tokenizer counts them
            raise

    return read_per_arch(source, arch, arches, base_dir, read, "ON guards")


def load(path: str, **kw: object) -> KafelPolicy:
    text = decode_text(read_file(path), path)
    return loads(text, path, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- writer

def _action_text(a: Action) -> str:
    if a.kind is ActionKind.ERRNO:
        return f"ERRNO({a.data})"
    if a.kind is ActionKind.TRACE:
        return f"TRACE({a.data})"
    if a.kind is ActionKind.TRAP:
        return "TRAP(0)"
    return {ActionKind.ALLOW: "ALLOW", ActionKind.LOG: "LOG", ActionKind.KILL_THREAD: "KILL",
            ActionKind.KILL_PROCESS: "KILL_PROCESS", ActionKind.USER_NOTIF: "USER_NOTIF"}[a.kind]


def _cond_text(c: Condition | Compare) -> str:
    """One condition as a Kafel expression over declared (so 8-byte) arguments ``a0``..``a5``."""
    if isinstance(c, Compare):
        left, right = _term_text(c.left), _term_text(c.right)
        if c.width == 32:
            left, right = f"({left} & 0xffffffff)", f"({right} & 0xffffffff)"
        return f"{left} {c.op.value} {right}"
    a = f"a{c.arg}"
    if c.op is Op.MASKED_EQ:
        return f"({a} & {c.mask:#x}) == {c.value:#x}"
    if c.width == 32:
        return f"({a} & 0xffffffff) {c.op.value} {c.value:#x}"
    return f"{a} {c.op.value} {c.value:#x}"


def _term_text(t: Term) -> str:
    if t.kind == "arg":
        return f"a{t.value}"
    if t.kind == "const":
        return f"{t.value:#x}"
    assert t.left is not None and t.right is not None
    return f"({_term_text(t.left)} {t.kind} {_term_text(t.right)})"


def _kafel_spellings(syscall: str | int, arches: list[str]) -> list[tuple[str, list[str]]]:
    """How Kafel names ``syscall`` on each of ``arches``: [(spelling, arches using it)].

    Kafel's own names (``newfstat`` for libseccomp's ``fstat``), ``SYSCALL[n]`` where Kafel has no
    name for the number; arches that lack the syscall are left out.
    """
    from .kafel_syscalls import table as kafel_table

    out: dict[str, list[str]] = {}
    for name in arches:
        a = _arch.get(name)
        if isinstance(syscall, int):
            out.setdefault(f"SYSCALL[{syscall}]", []).append(name)
            continue
        nr = a.syscalls.get(syscall)
        if nr is None:
            continue
        table = kafel_table(name)
        if table is None:  # not an arch Kafel has: sysgate's name (read back by sysgate only)
            out.setdefault(syscall, []).append(name)
            continue
        # (Kafel's lexer takes identifiers that start with a letter: "_llseek" must be a number.)
        names = sorted(k for k, (n, _) in table.items() if n == nr and k[:1].isalpha())
        spelling = syscall if syscall in names else (names[0] if names else f"SYSCALL[{nr}]")
        out.setdefault(spelling, []).append(name)
    return list(out.items())


# sysgate's arch names -> Kafel's names for ON guards.
_KAFEL_ON = {a.name: a.kafel for a in _arch.ARCHES if a.kafel}  # sysgate arch -> the name Kafel writes


def export(policy: Policy, *, name: str = "sysgate") -> Exported:
    """The policy as a Kafel file (one POLICY, then ``USE name DEFAULT action``), with its losses.

    Syscalls take Kafel's names on each architecture the policy covers; where they differ
    between architectures, each spelling gets an ``ON`` guard. Arguments are declared, so every
    comparison says explicitly which words it tests.
    """
    losses: list[str] = []
    blocks: dict[Action, list[str]] = {}
    arches = list(policy.arches) or [_arch.native().name]
    lacking = [a for a in arches if a not in _KAFEL_ON]
    if lacking:
        losses.append(f"Kafel has none of the architectures {', '.join(lacking)}: the file names their syscalls "
                      f"as sysgate does, and only sysgate reads them")
    if len(arches) > 1 and lacking:
        arches = [a for a in arches if a in _KAFEL_ON] or arches
    if policy.bad_arch != Action(ActionKind.KILL_PROCESS):
        losses.append(f"Kafel cannot choose the action for other architectures (policy: {policy.bad_arch})")
    for syscall in policy.syscalls():
        spellings = _kafel_spellings(syscall, arches)
        if not spellings:
            continue  # on none of the covered architectures
        labels = [sp if len(spellings) == 1 and len(on) == len(arches) else
                  f"{sp} ON {{ {', '.join(_KAFEL_ON.get(a, a) for a in on)} }}" for sp, on in spellings]
        per_action: dict[Action, list[str]] = {}
        used = 0
        for conds, action in L.strictest_first(policy.rules_for(syscall)):
            per_action.setdefault(action, []).append(" && ".join(_cond_text(c) for c in conds))
            for c in conds:
                used = max([used, *(k + 1 for k in (c.reads() if isinstance(c, Compare) else {c.arg}))])
        params = ", ".join(f"a{k}" for k in range(used))
        for action, clauses in per_action.items():
            for label in labels:
                if "" in clauses:
                    blocks.setdefault(action, []).append(label)
                    continue
                sp, _, guard = label.partition(" ON ")
                guard = f" ON {guard}" if guard else ""
                blocks.setdefault(action, []).append(
                    f"{sp}({params}){guard} {{ {', '.join(clauses)} }}")
    order = sorted(blocks, key=lambda a: (-a.strictness, a.data))
    lines = ["// generated by sysgate", f"POLICY {name} {{"]
    for k, action in enumerate(order):
        lines.append(f"  {_action_text(action)} {{")
        lines.append(",\n".join(f"    {e}" for e in blocks[action]))
        lines.append("  }" + ("," if k < len(order) - 1 else ""))
    lines += ["}", f"USE {name} DEFAULT {_action_text(policy.default)}", ""]
    return Exported("\n".join(lines), tuple(losses))
