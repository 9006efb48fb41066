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
KILL when absent. Actions: ALLOW, LOG, KILL/KILL_THREAD/DENY (kill-thread), KILL_PROCESS,
USER_NOTIF, ERRNO(n), TRACE(n) and TRAP(0) (sysgate's trap has no value). Expressions: ``==
!= < <= > >= && || !``, ``,`` (an OR of lowest precedence), ``&`` and ``|`` on values,
``(arg & MASK) OP value``. Arguments are named as declared (``write(fd, buf, count)``) or,
undeclared, by the kernel's names (:mod:`.argnames`). Like Kafel, a comparison is 64-bit
only when the argument's C type is (``size_t``, pointers) or a constant exceeds 32 bits; an
``int`` argument is compared on its low 32 bits. Constants are ``#define``-d or named
constants of the target architecture. ``#include "file"`` is relative to the including file;
include loops are errors. Comparing two arguments with each other (``fd != count``) is not
expressible in sysgate's policy model and is refused with a clear message.
"""
from __future__ import annotations

import os
import re
from typing import Any, Callable, Iterable

from .. import arch as _arch
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from ..immutable import Record
from . import Exported, ProfileError, Token, decode_text, read_file, read_limited
from . import logic as L

__all__ = ["KafelPolicy", "loads", "load", "export", "LOAD_OPTIONS"]

LOAD_OPTIONS = ("arch", "arches", "base_dir")
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
HI = U64 ^ U32
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


class KafelPolicy(Record):
    __slots__ = ("policy", "notes")
    _defaults = {"notes": ()}
    policy: Policy
    notes: tuple[str, ...]


_Tok = Token


class _Error(ProfileError):
    def __init__(self, msg: str, pos: int = -1) -> None:
        super().__init__(msg)
        self.pos = pos


def _tokenize(text: str, file: str) -> list[_Tok]:
    out: list[_Tok] = []
    line, line_start, pos = 1, 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise _Error(f"{file}:{line}:{pos - line_start + 1}: invalid character {text[pos]!r}")
        kind = m.lastgroup or ""
        if kind == "BCOMMENT":
            end = text.find("*/", pos + 2)
            if end < 0:
                raise _Error(f"{file}:{line}:{pos - line_start + 1}: unterminated comment")
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


class _Val(Record):
    """A value expression: a constant, or an argument ANDed with a mask."""

    __slots__ = ("const", "arg", "mask", "width")
    _defaults = {"const": None, "arg": None, "mask": U64, "width": 64}
    const: int | None
    arg: int | None
    mask: int
    width: int  # of the argument's C type


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
        self.args: dict[str, tuple[int, int]] = {}  # name -> (index, width) for the current syscall
        self.depth = 0

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
        return _Error(f"{t.file}:{t.line}:{t.col}: {msg}", self.i)

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
        saved = (self.toks, self.i)
        self.toks, self.i = _tokenize(text, file), 0
        try:
            while self.peek() is not None:
                self.statement()
        finally:
            self.toks, self.i = saved

    def statement(self) -> None:
        t = self.next("a statement")
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
                while True:
                    entries.extend(self.policy_statement())
                    if self.accept(","):
                        continue
                    self.expect("}", "',' or '}'")
                    break
            self.policies[name.value] = entries
        elif t.kind == "USE":
            self.i -= 1
            self.top.extend(self.use())
            if self.accept("DEFAULT"):
                self.default = self.action()
        elif t.kind == "DEFAULT":
            if self.default is not None:
                raise self.fail(t, "the default action is given more than once")
            self.default = self.action()
        elif t.kind in _SIMPLE or t.kind in _VALUED:
            self.i -= 1
            self.top.extend(self.policy_statement())
        elif t.value == ";":
            pass
        else:
            raise self.fail(t, f"syntax error, unexpected {t.value!r}")

    def define(self, d: _Tok) -> None:
        name = self.next("constant name")
        if name.kind != "IDENT":
            raise self.fail(name, "expected a constant name")
        num = self.next("number")
        if num.kind != "NUM":
            raise self.fail(num, "expected a number")
        if name.value in self.consts:
            raise self.fail(d, f"Redefinition of constant `{name.value}'")
        try:
            self.consts[name.value] = _number(num.value)
        except ValueError:
            raise self.fail(num, "number out of range") from None

    def include(self, d: _Tok) -> None:
        files = []
        while True:
            t = self.peek(skip_nl=False)
            if t is None or t.kind == "NL" or t.value == ";":
                if t is not None:
                    self.i += 1
                break
            self.i += 1
            if t.kind != "STRING":
                raise self.fail(t, "expected a quoted file name")
            files.append(t)
        if not files:
            raise self.fail(d, "#include needs a file name")
        for f in files:
            here = os.path.dirname(self.stack[-1]) if self.stack else self.base_dir
            path = os.path.realpath(os.path.join(here, f.value[1:-1]))
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

    def syscall_filter(self) -> list[tuple[str | int, L.DNF]]:
        from .argnames import ARGS
        from .syscall_names import UnknownName, expand

        t = self.next("a syscall")
        names: list[str | int]
        known_args: tuple[tuple[str, int], ...] = ()
        if t.kind == "SYSCALL":
            self.expect("[")
            n = self.next("number")
            names = [self.number_value(n) & U32]
            self.expect("]")
        elif t.kind == "IDENT" and t.value in self.consts:
            names = [self.consts[t.value] & U32]
        elif t.kind in ("IDENT", "GROUP"):
            try:
                names = list(expand(_ALIASES.get(t.value, t.value)))
            except UnknownName as e:
                raise self.fail(t, f"Undefined syscall `{t.value}' ({e})") from None
            if t.kind == "IDENT":
                known_args = ARGS.get(str(names[0]), ())
        else:
            raise self.fail(t, f"expected a syscall name, found {t.value!r}")
        self.args = {n: (k, w) for k, (n, w) in enumerate(known_args)}
        if self.accept("("):
            declared: list[str] = []
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
            # Declared names take Kafel's width for that position, or 64 bits.
            self.args = {n: (k, known_args[k][1] if k < len(known_args) else 64) for k, n in enumerate(declared)}
        skip = False
        if self.accept("ON"):
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
            wanted = set()
            for a in archs:
                try:
                    wanted.add(_arch.get(a.value).name)
                except _arch.UnknownArch:
                    raise self.fail(a, f"unknown architecture {a.value!r}") from None
            skip = self.arch.name not in wanted
        expr = L.TRUE
        if self.accept("{"):
            if not self.accept("}"):
                if t.kind == "GROUP":
                    raise self.fail(t, "argument filters need a single syscall, not a group")
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

    def nested(self, f: Callable[[], Any]) -> Any:
        self.depth += 1
        if self.depth > MAX_NESTING:
            t = self.peek()
            raise (self.fail(t, "expression nested too deeply") if t else _Error("expression nested too deeply"))
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
        if left.arg is None and right.arg is None:
            a, b = left.const, right.const
            assert a is not None and b is not None
            truth = {Op.EQ: a == b, Op.NE: a != b, Op.LT: a < b, Op.LE: a <= b, Op.GT: a > b, Op.GE: a >= b}[op]
            return L.TRUE if truth else L.FALSE
        if left.arg is not None and right.arg is not None:
            raise self.fail(t, "comparing two arguments with each other is not expressible in sysgate "
                               "policies (conditions compare an argument with a constant)")
        if left.arg is None:
            left, right, op = right, left, _MIRROR[op]
        v = right.const
        assert v is not None and left.arg is not None
        # Kafel compares 64 bits only if the argument's type or some constant (the mask too) needs it;
        # a mask of all ones is simplified away by Kafel before that test.
        wide = left.width == 64 or v > U32 or (left.mask != U64 and left.mask > U32)
        width = 64 if wide else 32
        return L.masked_compare(left.arg, left.mask if wide else left.mask & U32, op, v, width)

    def value(self) -> _Val:
        v = self.band()
        while True:
            t = self.peek()
            if t is None or t.value != "|":
                return v
            self.next("|")
            w = self.band()
            if v.arg is not None or w.arg is not None:
                raise self.fail(t, "'|' with an argument is not expressible in sysgate policies")
            v = _Val(const=(v.const or 0) | (w.const or 0))

    def band(self) -> _Val:
        v = self.vatom()
        while True:
            t = self.peek()
            if t is None or t.value != "&":
                return v
            self.next("&")
            w = self.vatom()
            if v.arg is not None and w.arg is not None:
                raise self.fail(t, "'&' of two arguments is not expressible in sysgate policies "
                                   "(conditions compare an argument with a constant)")
            if v.arg is None and w.arg is None:
                v = _Val(const=(v.const or 0) & (w.const or 0))
            else:
                a, c = (v, w) if v.arg is not None else (w, v)
                v = _Val(arg=a.arg, mask=a.mask & (c.const or 0), width=a.width)

    def vatom(self) -> _Val:
        t = self.next("a value")
        if t.value == "(":
            v = self.nested(self.value)
            self.expect(")")
            return v
        if t.kind == "NUM":
            return _Val(const=self.number_value(t))
        if t.kind == "IDENT":
            if t.value in self.consts:
                return _Val(const=self.consts[t.value])
            if t.value in self.args:
                idx, width = self.args[t.value]
                return _Val(arg=idx, width=width)
            from ..constants import UnknownConstant, lookup

            try:
                return _Val(const=lookup(t.value, self.arch) & U64)
            except UnknownConstant:
                raise self.fail(t, f"Undefined argument `{t.value}'") from None
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


def loads(text: str, source: str = "<kafel>", *, arch: str | None = None, arches: Iterable[str] | None = None,
          base_dir: str | None = None) -> KafelPolicy:
    """Read a Kafel policy; named constants are those of ``arch`` (or each of ``arches``, which must agree)."""
    try:
        targets = [_arch.get(a) for a in (arches or ([arch] if arch else []))] or [_arch.native()]
    except _arch.UnknownArch as e:
        raise ProfileError(str(e)) from None
    if base_dir is None:
        base_dir = os.path.dirname(source) if os.path.isfile(source) else os.getcwd()
    first: Policy | None = None
    for a in dict.fromkeys(targets):
        p = _Parser(a, base_dir)
        if os.path.isfile(source):
            p.stack.append(os.path.realpath(source))
        try:
            p.parse(text, source)
            pol = p.policy(source)
        except L.TooComplex as e:
            raise ProfileError(f"{source}: expression too complex to convert ({e})") from None
        if first is None:
            first = pol
        elif set(pol.rules) != set(first.rules) or pol.default != first.default:
            raise ProfileError(f"{source}: the policy decides differently on {targets[0].name} and {a.name} "
                               f"(named constants or ON guards differ); convert it for one architecture")
    assert first is not None
    covered = tuple(arches) if arches else ((arch,) if arch else ())
    return KafelPolicy(first.with_arches(covered))


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


def _cond_text(c: Condition, arg_width: int) -> str:
    """One condition as a Kafel expression, given how wide Kafel takes the argument to be."""
    a = f"a{c.arg}"
    if c.op is Op.MASKED_EQ:
        return f"({a} & {c.mask:#x}) == {c.value:#x}"
    if c.width == 32:
        return f"{a} {c.op.value} {c.value:#x}" if arg_width == 32 else f"({a} & 0xffffffff) {c.op.value} {c.value:#x}"
    if arg_width == 64 or c.value > U32:
        return f"{a} {c.op.value} {c.value:#x}"
    # A 64-bit test of an argument Kafel compares on its low word only: test the high word too.
    base = f"{a} {c.op.value} {c.value:#x}"
    if c.op in (Op.EQ, Op.LT, Op.LE):
        return f"{base} && ({a} & {HI:#x}) == 0"
    return f"({base} || ({a} & {HI:#x}) != 0)"


def export(policy: Policy, *, name: str = "sysgate") -> Exported:
    """The policy as a Kafel file (one POLICY, then ``USE name DEFAULT action``), with its losses."""
    from .argnames import ARGS

    losses: list[str] = []
    blocks: dict[Action, list[str]] = {}
    if len(policy.arches) > 1:
        losses.append(f"Kafel policies do not name architectures; this one covers {', '.join(policy.arches)}, "
                      f"the file covers those it is compiled for")
    if policy.bad_arch != Action(ActionKind.KILL_PROCESS):
        losses.append(f"Kafel cannot choose the action for other architectures (policy: {policy.bad_arch})")
    for syscall in policy.syscalls():
        label = f"SYSCALL[{syscall}]" if isinstance(syscall, int) else syscall
        widths = [w for _, w in ARGS.get(syscall, ())] if isinstance(syscall, str) else []
        per_action: dict[Action, list[str]] = {}
        for conds, action in L.strictest_first(policy.rules_for(syscall)):
            if not conds:
                per_action.setdefault(action, []).append("")
                continue
            clause = " && ".join(_cond_text(c, widths[c.arg] if c.arg < len(widths) else 64) for c in conds)
            per_action.setdefault(action, []).append(clause)
        for action, clauses in per_action.items():
            if "" in clauses:
                blocks.setdefault(action, []).append(label)
                continue
            used = max(c.arg for conds, a in L.strictest_first(policy.rules_for(syscall)) if a == action
                       for c in conds) + 1
            params = ", ".join(f"a{k}" for k in range(used))
            blocks.setdefault(action, []).append(f"{label}({params}) {{ {', '.join(clauses)} }}")
    order = sorted(blocks, key=lambda a: (-a.strictness, a.data))
    lines = ["// generated by sysgate", f"POLICY {name} {{"]
    for k, action in enumerate(order):
        lines.append(f"  {_action_text(action)} {{")
        lines.append(",\n".join(f"    {e}" for e in blocks[action]))
        lines.append("  }" + ("," if k < len(order) - 1 else ""))
    lines += ["}", f"USE {name} DEFAULT {_action_text(policy.default)}", ""]
    return Exported("\n".join(lines), tuple(losses))
