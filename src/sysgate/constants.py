"""Named constants (``O_RDONLY``, ``CLONE_NEWUSER``, ``AF_INET``, ``PROT_EXEC``, ...) per architecture.

The values come from each architecture's kernel uapi headers (and glibc's for the few names the kernel
does not export), generated into :mod:`sysgate.arch.constant_tables` by ``tools/gen_constants.py``. They
differ between architectures more than one would like: ``O_DIRECTORY`` is 0x10000 on x86 but 0x4000
on arm and aarch64, MIPS numbers ``SOCK_STREAM`` 2 and ``EAGAIN`` 11 but ``O_NONBLOCK`` 0x80, and
ioctl numbers such as ``TCGETS`` are encoded differently on powerpc, MIPS and parisc.

API: :func:`lookup`, :func:`names`, :func:`evaluate` (the constant expressions minijail and Kafel
policies use: ``O_RDONLY|O_CLOEXEC``, ``~PROT_EXEC``, ``CLONE_NEWUSER|CLONE_NEWNS``) and
:func:`reverse` (numbers back to flag names, for explanations).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:
    from .arch import Arch

__all__ = ["UnknownConstant", "BadExpression", "lookup", "names", "table", "evaluate", "reverse",
           "arches_with"]


class UnknownConstant(UserError):
    """A constant name that the architecture does not define.

    ``name`` is the name asked for; ``column`` its 0-based offset when it came from an expression.
    """

    def __init__(self, message: str, name: str, column: int | None = None):
        super().__init__(message)
        self.name = name
        self.column = column


class BadExpression(UserError):
    """A constant expression that does not parse; ``column`` is the 0-based offset of the problem."""

    def __init__(self, message: str, column: int):
        super().__init__(message)
        self.column = column


_COMMON: dict[str, int] | None = None
_TABLES: dict[str, dict[str, int]] = {}


def _parse(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in text.split():
        name, _, val = item.partition("=")
        out[name] = int(val, 0)
    return out


def _arch_name(arch: str | Arch) -> str:
    from . import arch as _arch

    return _arch.get(arch).name


def table(arch: str | Arch) -> Mapping[str, int]:
    """Every constant of ``arch`` as a read-only name -> value mapping (values may be negative)."""
    global _COMMON
    name = _arch_name(arch)
    t = _TABLES.get(name)
    if t is None:
        from .arch import constant_tables as data

        if _COMMON is None:
            _COMMON = _parse("".join(data.COMMON))
        t = dict(_COMMON)
        for item in "".join(data.OVERRIDES.get(name, "")).split():
            if item.startswith("-"):
                t.pop(item[1:], None)
            else:
                n, _, v = item.partition("=")
                t[n] = int(v, 0)
        if name == "x86_64":  # the wider header set minijail's constant table draws on (x86_64 only)
            from .arch import constant_tables_host

            for cname, cval in _parse("".join(constant_tables_host.X86_64)).items():
                t.setdefault(cname, cval)
        _TABLES[name] = t
    from types import MappingProxyType

    return MappingProxyType(t)


def names(arch: str | Arch) -> frozenset[str]:
    """Every constant name defined on ``arch``."""
    return frozenset(table(arch))


def arches_with(name: str) -> list[str]:
    """Architectures (sysgate names) on which ``name`` is defined."""
    from .arch import constant_tables as data

    return [a for a in data.ARCHES if name in table(a)]


def _unknown(name: str, arch: str, column: int | None = None, expr: str | None = None) -> UnknownConstant:
    where = f" in {expr if len(expr) <= 60 else expr[:60] + '...'!r}" if expr is not None else ""
    elsewhere = arches_with(name)
    if elsewhere:
        shown = ", ".join(elsewhere[:4]) + (", ..." if len(elsewhere) > 4 else "")
        return UnknownConstant(f"constant {name!r}{where} is not defined on {arch} (only on {shown})",
                               name, column)
    import difflib

    close = difflib.get_close_matches(name, sorted(table(arch)), n=3, cutoff=0.75)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return UnknownConstant(f"unknown constant {name!r}{where} on {arch}{hint}", name, column)


def lookup(name: str, arch: str | Arch) -> int:
    """Value of constant ``name`` on ``arch``; :class:`UnknownConstant` (with suggestions) if undefined.

    Values are as C sees them: ``AT_FDCWD`` is -100, ``SECCOMP_RET_KILL_PROCESS`` 0x80000000.
    """
    t = table(arch)
    try:
        return t[name]
    except KeyError:
        raise _unknown(name, _arch_name(arch)) from None


# ---------------------------------------------------------------------------------------------------
# Expressions

_TOKEN_RE = r"""
    \s*(?:
      (?P<num>0[xX][0-9a-fA-F]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)(?P<suffix>[uUlL]*)(?![A-Za-z0-9_])
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
    | (?P<op><<|>>|[|&^~+\-*/%()!])
    )"""

_BINARY = (("|",), ("^",), ("&",), ("<<", ">>"), ("+", "-"), ("*", "/", "%"))
_MAX_SHIFT = 128  # anything larger is a typo, and 1 << 10**9 would eat memory
MAX_DEPTH = 64  # parentheses and unary operators nested deeper: refused (no real expression comes close)
_MAX_DIGITS = 128  # a number longer than this is no 64-bit value (and int() refuses 4,300 digits)


class _Parser:
    def __init__(self, expr: str, values: Mapping[str, int], arch: str, mask: int | None):
        self.expr = expr
        self.values = values
        self.arch = arch
        self.mask = mask
        self.toks: list[tuple[str, str, int]] = []  # (kind, text, column)
        pos = 0
        end = len(expr.rstrip())
        while pos < end:
            m = _re(_TOKEN_RE, re.X).match(expr, pos)
            if not m:
                col = pos + len(expr[pos:]) - len(expr[pos:].lstrip())
                shown = repr(expr) if len(expr) <= 60 else repr(expr[:60]) + "..."
                raise BadExpression(f"unexpected {expr[col]!r} at column {col + 1} of {shown}", col)
            kind = "num" if m.group("num") is not None else "name" if m.group("name") is not None else "op"
            self.toks.append((kind, m.group(kind), m.start(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0

    @property
    def _short(self) -> str:
        """The expression for messages (a hostile one can be megabytes long)."""
        return repr(self.expr) if len(self.expr) <= 60 else repr(self.expr[:60]) + "..."

    def _fit(self, v: int) -> int:
        return v & self.mask if self.mask is not None else v

    def _peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _fail(self, what: str) -> BadExpression:
        tok = self._peek()
        if tok is None:
            return BadExpression(f"{what} at end of {self._short}", len(self.expr))
        return BadExpression(f"{what} at column {tok[2] + 1} of {self._short}, found {tok[1]!r}", tok[2])

    def parse(self) -> int:
        if not self.toks:
            raise BadExpression(f"empty expression {self._short}", 0)
        v = self._binary(0)
        if self._peek() is not None:
            raise self._fail("expected an operator")
        return v

    def _binary(self, level: int) -> int:
        if level == len(_BINARY):
            return self._unary()
        v = self._binary(level + 1)
        while True:
            tok = self._peek()
            if tok is None or tok[0] != "op" or tok[1] not in _BINARY[level]:
                return v
            self.i += 1
            rhs = self._binary(level + 1)
            v = self._apply(tok, v, rhs)

    def _apply(self, tok: tuple[str, str, int], a: int, b: int) -> int:
        op = tok[1]
        if op == "|":
            return self._fit(a | b)
        if op == "^":
            return self._fit(a ^ b)
        if op == "&":
            return self._fit(a & b)
        if op in ("<<", ">>"):
            if not 0 <= b < _MAX_SHIFT:
                raise BadExpression(f"shift count {b} out of range at column {tok[2] + 1} of {self._short}",
                                    tok[2])
            return self._fit(a << b if op == "<<" else a >> b)
        if op == "+":
            return self._fit(a + b)
        if op == "-":
            return self._fit(a - b)
        if op == "*":
            return self._fit(a * b)
        if b == 0:
            raise BadExpression(f"division by zero at column {tok[2] + 1} of {self._short}", tok[2])
        if self.mask is None and (a < 0) != (b < 0):  # C truncates toward zero
            q = -(abs(a) // abs(b))
            return q if op == "/" else a - q * b
        return self._fit(a // b if op == "/" else a % b)

    def _unary(self) -> int:
        tok = self._peek()
        if tok is None:
            raise self._fail("expected a number, name or '('")
        kind, text, col = tok
        self.i += 1
        if kind == "op" and text in "~-+!(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise BadExpression(f"expression nested deeper than {MAX_DEPTH} levels at column {col + 1} "
                                    f"of {self._short}", col)
            try:
                return self._nested(text)
            finally:
                self.depth -= 1
        return self._atom(kind, text, col)

    def _nested(self, text: str) -> int:
        if text in "~-+!":
            v = self._unary()
            if text == "~":
                return self._fit(~v)
            if text == "-":
                return self._fit(-v)
            if text == "!":
                return int(v == 0)
            return v
        v = self._binary(0)  # "("
        close = self._peek()
        if close is None or close[1] != ")":
            raise self._fail("expected ')'")
        self.i += 1
        return v

    def _atom(self, kind: str, text: str, col: int) -> int:
        if kind == "num" and len(text) > _MAX_DIGITS:
            raise BadExpression(f"number {text[:20]}... too long ({len(text)} digits) at column {col + 1}", col)
        if kind == "num":
            if len(text) > 1 and text[0] == "0" and text[1].isdigit():
                if any(c in "89" for c in text):
                    raise BadExpression(f"bad octal number {text!r} at column {col + 1} of {self._short}", col)
                return self._fit(int(text, 8))  # C: a leading 0 means octal
            return self._fit(int(text, 0))
        if kind == "name":
            try:
                return self._fit(self.values[text])
            except KeyError:
                raise _unknown(text, self.arch, col, self.expr) from None
        self.i -= 1
        raise self._fail("expected a number, name or '('")


def evaluate(expr: str, arch: str | Arch, *, bits: int | None = None) -> int:
    """Value of a C-like constant expression over ``arch``'s named constants.

    Numbers are decimal, hex (``0x``), binary (``0b``) or C octal (leading ``0``), with optional
    ``U``/``L`` suffixes; operators, by C precedence: unary ``~ - + !``, ``* / %``, ``+ -``,
    ``<< >>``, ``&``, ``^``, ``|``; parentheses group.

    Arithmetic is on unsigned ``bits``-wide integers, as in the syscall argument it will be compared
    with: by default the arch's argument width (``~PROT_EXEC`` is 0xfffffffffffffffb on x86_64,
    0xfffffffb on x86; ``AT_FDCWD`` is 0xffffff9c on x86). ``bits=0`` gives plain (signed,
    unbounded) integers instead. Raises :class:`BadExpression` or :class:`UnknownConstant`.
    """
    from . import arch as _arch

    a = _arch.get(arch)
    width = a.bits if bits is None else bits
    if width < 0:
        raise ValueError(f"bits must be >= 0, not {width}")
    mask = (1 << width) - 1 if width else None
    return _Parser(expr, table(a), a.name, mask).parse()


# ---------------------------------------------------------------------------------------------------
# Numbers back to names

# Second names for a value; the first name is shown instead.
_ALIASES = frozenset({
    "O_NDELAY", "O_FSYNC", "O_RSYNC", "SIGIOT", "SIGPOLL", "SIGCLD", "SIGUNUSED", "EWOULDBLOCK",
    "EDEADLOCK", "ENOTSUP", "MAP_ANON", "MAP_FILE", "MAP_RENAME", "AF_FILE", "AF_LOCAL", "AF_ROUTE",
    "PF_FILE", "PF_LOCAL", "PF_ROUTE", "BPF_PROG_TEST_RUN", "MADV_SOFT_OFFLINE", "FASYNC",
})
# Fields and masks, not flags: never used to spell out a bit set.
_NOT_FLAGS_RE = (r".*(MASK|SHIFT|_ACCMODE)|MAP_TYPE|S_IFMT|SECCOMP_RET_(ACTION(_FULL)?|DATA)|"
                 r"CLONE_LEGACY_FLAGS|.*_MAX|.*_ALL")
_compiled: dict[str, re.Pattern[str]] = {}


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile on first use: module import stays cheap for the CLI."""
    p = _compiled.get(pattern)
    if p is None:
        p = _compiled[pattern] = re.compile(pattern, flags)
    return p
# A prefix whose values hold a multi-valued field: (mask name, name of its 0 value).
_FIELDS = {"O_": ("O_ACCMODE", "O_RDONLY")}


def _rank(name: str, prefix: str) -> tuple[bool, bool, int, str]:
    return (name in _ALIASES, "_" in name[len(prefix):].lstrip("_"), len(name), name)


_PREFIXED: dict[tuple[str, str], dict[str, int]] = {}


def _by_prefix(arch: str | Arch, prefix: str) -> dict[str, int]:
    """The constants of ``arch`` whose names start with ``prefix`` (remembered per arch and prefix:
    explaining a program asks again for every condition of every syscall)."""
    key = (_arch_name(arch), prefix)
    cands = _PREFIXED.get(key)
    if cands is None:
        cands = {n: v for n, v in table(arch).items() if n.startswith(prefix)}
        if len(_PREFIXED) > 256:
            _PREFIXED.clear()
        _PREFIXED[key] = cands
    return cands


def reverse(value: int, arch: str | Arch, prefix: str) -> str:
    """Render ``value`` with the names that start with ``prefix``, for explanations.

    An exact match wins (``9`` with ``SIG`` is ``SIGKILL``; ``0xffffff9c`` with ``AT_`` is
    ``AT_FDCWD``); otherwise the value is spelled as flags joined by ``|`` in ascending order, with
    any bits no name covers left as a hex number: ``0x7e020000`` with ``CLONE_`` is
    ``CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET``.
    """
    t = table(arch)
    cands = _by_prefix(arch, prefix)
    lead: list[str] = []
    field = _FIELDS.get(prefix)
    if field and field[0] in t and field[1] in t and value > 0 and value & t[field[0]] == 0:
        lead.append(field[1])  # O_CLOEXEC alone means O_RDONLY|O_CLOEXEC
    wanted = {value}
    if value >= 1 << 31:  # a negative int as the kernel sees it in a 32- or 64-bit register
        wanted |= {value - (1 << 32), value - (1 << 64)}
    exact = [n for n, v in cands.items() if v in wanted]
    if exact:
        return "|".join(lead + [min(exact, key=lambda n: _rank(n, prefix))])
    if value <= 0:
        return str(value) if value == 0 else f"-{-value:#x}"
    parts: list[tuple[int, str]] = []
    rest = value
    flags = sorted(((n, v) for n, v in cands.items() if v > 0 and not _re(_NOT_FLAGS_RE).fullmatch(n)),
                   key=lambda nv: (-bin(nv[1]).count("1"), _rank(nv[0], prefix)))
    for n, v in flags:
        if v & rest == v:
            parts.append((v, n))
            rest &= ~v
            if not rest:
                break
    out = lead + [n for _, n in sorted(parts)]
    if rest:
        out.append(hex(rest))
    return "|".join(out)
