"""minijail seccomp policy files (the language of minijail's ``tools/parser.py``).

::

    @include ./common.policy            # relative to this file
    @frequency ./freq.frequency         # a compiler hint: ignored (with a note)
    @default kill-process               # kill-process | kill-thread | kill | trap | user-notify
    read: 1
    write: arg0 == 1 || arg0 == 2
    mmap: arg2 in ~PROT_EXEC || arg2 in ~PROT_WRITE
    ioctl: arg1 == TIOCSTI; return EPERM     # expression true: return EPERM; false: next filter, default
    {openat, open}: arg2 & O_CREAT; return EACCES
    prctl: { arg0 == PR_SET_NAME, arg0 == PR_CAPBSET_DROP; return EPERM, allow }
    bpf [arch=x86_64]: return EPERM

Each syscall has a list of filters tried in order, the first whose expression holds deciding;
when none does, the policy default applies (``kill``: kill-process here, which is what
minijail0 installs; minijail's compile tool uses kill-thread unless ``--use-kill-process``).
Atoms are ``argN OP VALUE`` with ``== != < <= > >=``, ``&`` (some bit of VALUE set) and
``in`` (no bit outside VALUE set); values are numbers, named constants of the target
architecture (``O_RDONLY``, ``PROT_EXEC``, via :mod:`sysgate.constants`), ``|``, ``~`` and
parentheses. ``@denylist`` makes the default ``allow`` and every action a ``return``.
A systemd group may stand where a syscall name does, as minijail writes it
(``system-service@systemd``) or as systemd does (``@system-service``, a sysgate extension);
minijail's other ``name@namespace`` groups come from its constants.json and are refused.

Errors point at ``file:line:column`` like minijail's own. A policy whose constants mean
different things on the architectures asked for is an error: convert per architecture.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterable

from .. import arch as _arch
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from . import Exported, Loaded, SourceError, Token, decode_text, read_file, read_limited, read_per_arch
from . import logic as L

__all__ = ["MinijailPolicy", "loads", "load", "export", "detect_text"]

U64 = (1 << 64) - 1
INCLUDE_DEPTH = 10
_ARCH_CONSTANTS = ("MINIJAIL_ARCH_NR", "MINIJAIL_ARCH_BITS")

_TOKEN = re.compile(r"""
    (?P<COMMENT>\#.*$) | (?P<WS>\s+) | (?P<CONT>\\$)
  | (?P<DEFAULT>@default\b) | (?P<INCLUDE>@include\b) | (?P<FREQUENCY>@frequency\b) | (?P<DENYLIST>@denylist\b)
  | (?P<GROUP>@[a-z][a-z0-9_-]*)
  | (?P<PATH>\.?/\S+)
  | (?P<NUM>-?0[xX][0-9a-fA-F]+|-?0[0-7]+|-?[0-9]+)
  | (?P<COLON>:) | (?P<SEMI>;) | (?P<COMMA>,) | (?P<TILDE>~) | (?P<LPAREN>\() | (?P<RPAREN>\))
  | (?P<LBRACE>\{) | (?P<RBRACE>\}) | (?P<LBRACKET>\[) | (?P<RBRACKET>\])
  | (?P<OR>\|\|) | (?P<AND>&&) | (?P<BOR>\|)
  | (?P<OP>&|\bin\b|==|!=|<=|<|>=|>)
  | (?P<EQUAL>=)
  | (?P<ARG>\barg[0-9]+\b)
  | (?P<RETURN>\breturn\b)
  | (?P<ACTION>\ballow\b|\bkill-process\b|\bkill-thread\b|\bkill\b|\btrap\b|\btrace\b|\blog\b|\buser-notify\b)
  | (?P<IDENT>[a-zA-Z_][a-zA-Z_0-9@-]*)
""", re.X)

_ACTIONS = {"allow": Action(ActionKind.ALLOW), "kill-process": Action(ActionKind.KILL_PROCESS),
            "kill-thread": Action(ActionKind.KILL_THREAD), "trap": Action(ActionKind.TRAP),
            "trace": Action(ActionKind.TRACE), "log": Action(ActionKind.LOG),
            "user-notify": Action(ActionKind.USER_NOTIF)}


MinijailPolicy = Loaded  # what loads() returns: the policy, and notes on what was ignored (``@frequency``)

_Tok = Token
_Error = SourceError


def _err(file: str, line: int, col: int, msg: str) -> SourceError:
    return SourceError.at_place(file, line, col + 1, msg)  # ``col``: a token's, 0-based


def _tokenize(text: str, file: str) -> list[list[_Tok]]:
    """Statements (lists of tokens); a trailing backslash continues a statement."""
    out: list[list[_Tok]] = []
    cur: list[_Tok] = []
    for n, line in enumerate(text.splitlines(), 1):
        pos = 0
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            if m is None or m.end() == pos:
                word = line[pos:].split()[0]
                raise _err(file, n, pos, f"invalid token {word if len(word) <= 40 else word[:40] + '...'!r}")
            kind = m.lastgroup or ""
            if kind not in ("COMMENT", "WS", "CONT"):
                cur.append(_Tok(kind, m.group(), file, n, pos))
            pos = m.end()
        if line.endswith("\\"):
            continue
        if cur:
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return out


class _Parser:
    """Parses one policy (with its includes) for one architecture."""

    def __init__(self, arch: _arch.Arch, kill: Action) -> None:
        self.arch = arch
        self.kill = kill
        self.top = U64 if arch.bits == 64 else 0xFFFFFFFF
        self.min_signed = -(1 << (arch.bits - 1))
        self.default: Action | None = None
        self.denylist = False
        self.notes: list[str] = []
        self.stack: list[str] = []
        self.seen_filter = False
        self.depth = 0
        self.texts: dict[str, str] = {}  # file -> text, for showing the line of an error
        # syscall -> [(DNF or None, action, token)]
        self.filters: dict[str, list[tuple[L.DNF | None, Action, _Tok]]] = {}

    # -- errors and token helpers
    def fail(self, tok: _Tok | None, msg: str, toks: list[_Tok] | None = None) -> _Error:
        if tok is None and toks:
            last = toks[-1]
            return _err(last.file, last.line, last.col + len(last.value), msg)
        if tok is None:
            return _Error(f"{self.stack[-1] if self.stack else '<policy>'}: {msg}")
        return _err(tok.file, tok.line, tok.col, msg)

    def take(self, toks: list[_Tok], i: list[int], what: str, all_toks: list[_Tok]) -> _Tok:
        if i[0] >= len(toks):
            raise self.fail(None, f"missing {what}", all_toks)
        t = toks[i[0]]
        i[0] += 1
        return t

    # -- values
    def single(self, t: _Tok) -> int:
        if t.kind == "IDENT":
            from ..constants import UnknownConstant, lookup

            if t.value in _ARCH_CONSTANTS:  # minijail's own, per arch
                v = self.arch.token if t.value == "MINIJAIL_ARCH_NR" else self.arch.bits
            else:
                try:
                    v = lookup(t.value, self.arch)
                except UnknownConstant as e:
                    raise self.fail(t, str(e)) from None
        elif t.kind == "NUM":
            s = t.value
            neg = s.startswith("-")
            body = s[1:] if neg else s
            base = 16 if body[:2].lower() == "0x" else 8 if len(body) > 1 and body[0] == "0" else 10
            digits = body[2:] if base == 16 else body
            if len(digits) > 64:  # no 64-bit number is longer (and int() refuses 4,300 digits)
                raise self.fail(t, f"number {s[:20]}... too large ({len(digits)} digits)")
            try:
                v = int(digits, base) * (-1 if neg else 1)
            except ValueError:
                kind = {16: "hexadecimal", 8: "octal", 10: "decimal"}[base]
                raise self.fail(t, f"invalid {kind} number {s!r}") from None
        else:
            raise self.fail(t, "invalid constant")
        if v > self.top:
            raise self.fail(t, "unsigned overflow")
        if v < self.min_signed:
            raise self.fail(t, "signed underflow")
        return v & self.top

    def value(self, toks: list[_Tok], i: list[int]) -> int:
        v = 0
        while True:
            neg = False
            t = self.take(toks, i, "constant", toks)
            if t.kind == "TILDE":
                neg = True
                t = self.take(toks, i, "constant after '~'", toks)
                if t.kind == "TILDE":
                    raise self.fail(t, "invalid double complement")
            if t.kind == "LPAREN":
                self.depth += 1
                if self.depth > 64:
                    raise self.fail(t, "constant expression nested too deeply")
                c = self.value(toks, i)
                self.depth -= 1
                if i[0] >= len(toks) or toks[i[0]].kind != "RPAREN":
                    raise self.fail(t, "unclosed parenthesis")
                i[0] += 1
            else:
                c = self.single(t)
            v |= (~c & self.top) if neg else c
            if i[0] < len(toks) and toks[i[0]].kind == "BOR":
                i[0] += 1
                continue
            return v

    # -- expressions
    def atom(self, toks: list[_Tok], i: list[int]) -> L.DNF:
        a = self.take(toks, i, "argument", toks)
        if a.kind != "ARG":
            raise self.fail(a, "invalid argument")
        idx = int(a.value[3:])
        if not 0 <= idx <= 5:
            raise self.fail(a, "invalid argument (syscalls have arguments arg0 to arg5)")
        op = self.take(toks, i, "operator", toks)
        if op.kind != "OP":
            raise self.fail(op, "invalid operator")
        v = self.value(toks, i)
        if op.value == "&":  # some bit of v set
            return tuple((Condition(idx, Op.MASKED_EQ, b, mask=b),) for b in (1 << k for k in range(64) if v >> k & 1))
        if op.value == "in":  # no bit outside v set
            m = ~v & self.top
            return L.TRUE if m == 0 else ((Condition(idx, Op.MASKED_EQ, 0, mask=m),),)
        return ((Condition(idx, Op.parse(op.value), v),),)

    def expression(self, toks: list[_Tok], i: list[int]) -> L.DNF:
        result: L.DNF = L.FALSE
        while True:
            parts: list[L.DNF] = []
            while True:
                parts.append(self.atom(toks, i))
                if i[0] < len(toks) and toks[i[0]].kind == "AND":
                    i[0] += 1
                    continue
                break
            conj = L.and_all(parts)  # one pass: a fold re-simplifies every prefix (n^2 for n terms)
            result = L.or_(result, conj)
            if i[0] < len(toks) and toks[i[0]].kind == "OR":
                i[0] += 1
                continue
            return result

    def action(self, toks: list[_Tok], i: list[int]) -> Action:
        t = self.take(toks, i, "action", toks)
        if self.denylist and t.kind != "RETURN":
            raise self.fail(t, "invalid denylist policy: every action must be 'return ERRNO'")
        if t.kind == "ACTION":
            return self.kill if t.value == "kill" else _ACTIONS[t.value]
        if t.kind == "NUM" and self.single(t) == 1:
            return _ACTIONS["allow"]
        if t.kind == "RETURN":
            v = self.take(toks, i, "return value", toks)
            n = self.single(v)
            if n > 4095:
                raise self.fail(v, f"errno {n} out of range 0-4095")
            return Action(ActionKind.ERRNO, n)
        raise self.fail(t, "invalid action")

    def single_filter(self, toks: list[_Tok], i: list[int]) -> tuple[L.DNF | None, Action]:
        if i[0] < len(toks) and toks[i[0]].kind == "ARG":
            expr = self.expression(toks, i)
            if i[0] < len(toks) and toks[i[0]].kind == "SEMI":
                i[0] += 1
                return expr, self.action(toks, i)
            if self.denylist:
                raise self.fail(None, "invalid denylist policy: every action must be 'return ERRNO'", toks)
            return expr, _ACTIONS["allow"]
        return None, self.action(toks, i)

    def filter(self, toks: list[_Tok], i: list[int]) -> list[tuple[L.DNF | None, Action]]:
        if i[0] < len(toks) and toks[i[0]].kind == "LBRACE":
            brace = toks[i[0]]
            i[0] += 1
            out = [self.single_filter(toks, i)]
            while i[0] < len(toks) and toks[i[0]].kind == "COMMA":
                i[0] += 1
                out.append(self.single_filter(toks, i))
            if i[0] >= len(toks) or toks[i[0]].kind != "RBRACE":
                raise self.fail(brace, "unclosed brace")
            i[0] += 1
            return out
        if i[0] >= len(toks):
            raise self.fail(None, "missing filter", toks)
        return [self.single_filter(toks, i)]

    # -- statements
    def metadata(self, toks: list[_Tok], i: list[int]) -> dict[str, list[str]]:
        opening = toks[i[0]]
        i[0] += 1
        meta: dict[str, list[str]] = {}
        while True:
            key = self.take(toks, i, "key", toks)
            if key.kind != "IDENT":
                raise self.fail(key, "invalid key")
            eq = self.take(toks, i, "'='", toks)
            if eq.kind != "EQUAL":
                raise self.fail(eq, "invalid equal")
            vals = []
            while True:
                v = self.take(toks, i, "value", toks)
                if v.kind != "IDENT":
                    raise self.fail(v, "invalid value")
                vals.append(v.value)
                if i[0] < len(toks) and toks[i[0]].kind == "COMMA":
                    i[0] += 1
                    continue
                break
            if key.value in meta:
                raise self.fail(key, f'duplicate metadata key: "{key.value}"')
            meta[key.value] = vals
            if i[0] < len(toks) and toks[i[0]].kind == "SEMI":
                i[0] += 1
                continue
            break
        if i[0] >= len(toks) or toks[i[0]].kind != "RBRACKET":
            raise self.fail(opening, "unclosed bracket")
        i[0] += 1
        return meta

    def descriptor(self, toks: list[_Tok], i: list[int]) -> list[str]:
        from .syscall_names import UnknownName, expand

        t = self.take(toks, i, "syscall name", toks)
        if t.kind not in ("IDENT", "GROUP") and not (t.kind == "ACTION" and t.value == "kill"):
            raise self.fail(t, "invalid syscall descriptor")
        skip = False
        if i[0] < len(toks) and toks[i[0]].kind == "LBRACKET":
            meta = self.metadata(toks, i)
            if "arch" in meta:
                wanted = set()
                for a in meta["arch"]:
                    try:
                        wanted.add(_arch.get(a).name)
                    except _arch.UnknownArch:
                        wanted.add(a)
                skip = self.arch.name not in wanted
        name = t.value
        if t.kind == "IDENT" and "@" in name:
            group, _, namespace = name.partition("@")
            if namespace != "systemd" or not group or "@" in namespace:
                raise self.fail(t, "minijail syscall groups other than NAME@systemd come from minijail's "
                                   "constants.json, which sysgate does not read")
            name = "@" + group
        try:
            names = expand(name)
        except UnknownName as e:
            raise self.fail(t, f"nonexistent syscall: {e}") from None
        return [] if skip else names

    def statement(self, toks: list[_Tok]) -> None:
        i = [0]
        names: list[str] = []
        if toks[0].kind == "LBRACE":
            brace = toks[0]
            i[0] = 1
            names.extend(self.descriptor(toks, i))
            while i[0] < len(toks) and toks[i[0]].kind == "COMMA":
                i[0] += 1
                names.extend(self.descriptor(toks, i))
            if i[0] >= len(toks) or toks[i[0]].kind != "RBRACE":
                raise self.fail(brace, "unclosed brace")
            i[0] += 1
        else:
            names.extend(self.descriptor(toks, i))
        colon = self.take(toks, i, "colon", toks)
        if colon.kind != "COLON":
            raise self.fail(colon, "invalid colon")
        try:
            filters = self.filter(toks, i)
        except L.TooComplex as e:
            raise self.fail(colon, f"filter too complex ({e})") from None
        if i[0] < len(toks):
            raise self.fail(toks[i[0]], "extra tokens")
        self.seen_filter = True
        for n in names:
            self.filters.setdefault(n, []).extend((e, a, colon) for e, a in filters)

    def parse_text(self, text: str, file: str, base_dir: str) -> None:
        self.texts[file] = text
        for toks in _tokenize(text, file):
            kind = toks[0].kind
            if kind == "INCLUDE":
                self.include(toks, base_dir)
            elif kind == "FREQUENCY":
                if len(toks) < 2 or toks[1].kind != "PATH":
                    raise self.fail(toks[1] if len(toks) > 1 else None, "invalid frequency path", toks)
                if len(toks) > 2:
                    raise self.fail(toks[2], "extra tokens")
                self.notes.append(f"{file}:{toks[0].line}: @frequency {toks[1].value} ignored "
                                  f"(a hint for minijail's compiler; it changes no decision)")
            elif kind == "DEFAULT":
                i = [1]
                t = self.take(toks, i, "default action", toks)
                if t.kind != "ACTION" or t.value not in ("kill-process", "kill-thread", "kill", "trap",
                                                         "user-notify"):
                    raise self.fail(t, "invalid default action (kill-process, kill-thread, kill, trap or "
                                       "user-notify)")
                if i[0] < len(toks):
                    raise self.fail(toks[i[0]], "extra tokens")
                self.default = self.kill if t.value == "kill" else _ACTIONS[t.value]
            elif kind == "DENYLIST":
                if len(toks) > 1:
                    raise self.fail(toks[1], "extra tokens")
                if self.seen_filter:
                    raise self.fail(toks[0], "@denylist must come before the first filter statement")
                self.denylist = True
            else:
                self.statement(toks)

    def include(self, toks: list[_Tok], base_dir: str) -> None:
        if len(toks) < 2 or toks[1].kind != "PATH":
            raise self.fail(toks[1] if len(toks) > 1 else None, "invalid include path", toks)
        if len(toks) > 2:
            raise self.fail(toks[2], "extra tokens")
        path = os.path.normpath(os.path.join(base_dir, toks[1].value))
        if os.path.realpath(path) in self.stack:
            chain = " -> ".join(self.stack[self.stack.index(os.path.realpath(path)):] + [os.path.realpath(path)])
            raise self.fail(toks[1], f"@include loop: {chain}")
        if len(self.stack) >= INCLUDE_DEPTH:
            raise self.fail(toks[1], "@include statement nested too deep")
        self.parse_file(path, toks[1])

    def parse_file(self, path: str, at: _Tok | None = None) -> None:
        """Parse the file ``path``; ``at``: the ``@include`` path token a failure to read it is told at."""
        try:
            # the reason as the kernel gives it: a directory, a FIFO and a missing file differ
            text = read_limited(path).decode("utf-8")
        except OSError as e:
            if at is not None:
                raise self.fail(at, f"could not @include {path}: {e.strerror}") from None
            raise _Error(f"{path}: cannot read: {e.strerror}") from None
        except UnicodeDecodeError as e:
            if at is not None:
                raise self.fail(at, f"could not @include {path}: not UTF-8 text ({e.reason})") from None
            raise _Error(f"{path}: not UTF-8 text ({e.reason})") from None
        self.stack.append(os.path.realpath(path))
        try:
            self.parse_text(text, path, os.path.dirname(path))
        finally:
            self.stack.pop()

    def policy(self, arches: tuple[str, ...], source: str) -> Policy:
        default = self.default or (Action(ActionKind.ALLOW) if self.denylist else self.kill)
        rules: list[Rule] = []
        for name, filters in self.filters.items():
            unconditional = [k for k, (e, _, _) in enumerate(filters) if e is None]
            if unconditional and unconditional[0] != len(filters) - 1:
                tok = filters[unconditional[0] + 1][2]
                raise self.fail(tok, f"syscall {name} already had an unconditional action applied")
            chain = [(L.TRUE if e is None else e, a) for e, a, _ in filters]
            if not unconditional:
                chain.append((L.TRUE, default))
            try:
                rules.extend(L.first_match_rules(name, chain, default))
            except L.TooComplex as e:
                raise self.fail(filters[0][2], f"syscall {name}: filters too complex to convert ({e})") from None
        try:
            return Policy(default, tuple(rules), arches)
        except PolicyError as e:
            raise _Error(f"{source}: {e}") from None


def _parse(text: str, source: str, arch: _arch.Arch, base_dir: str, kill: Action) -> tuple[Policy, list[str]]:
    p = _Parser(arch, kill)
    if os.path.isfile(source):
        p.stack.append(os.path.realpath(source))
    try:
        p.parse_text(text, source, base_dir)
    except _Error as e:
        e.show_line(p.texts)
        raise
    return p.policy((), source), p.notes


_LOOKS_LIKE = re.compile(r"""(?xm)^\s*(?:@(?:include|default|denylist|frequency)\b
             | (?:\{[^}\n]*\}|[A-Za-z_][\w-]*(?:@[\w-]+)?|@[a-z][\w-]*)\s*(?:\[[^\]\n]*\])?\s*:\s*\S)""")


def detect_text(text: str, name: str | None) -> float:
    """Likely for a ``name: filter`` or ``@directive`` line outside comments; a ``.policy`` file
    of comments only is an empty minijail policy (Kafel's files share the extension)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", ";")))
    if _LOOKS_LIKE.search(body):
        return 0.8
    return 0.1 if (name or "").lower().endswith(".policy") else 0.0


def loads(text: str, source: str = "<minijail>", *, arch: str | None = None, arches: Iterable[str] | None = None,
          base_dir: str | None = None, kill: Action = _ACTIONS["kill-process"]) -> MinijailPolicy:
    """Read a policy; named constants are those of ``arch`` (or each of ``arches``: they must agree).

    ``@include`` paths are relative to the file (``base_dir`` when ``source`` is not a file).
    ``kill`` is what the ``kill`` action means.
    """
    return read_per_arch(source, arch, arches, base_dir, lambda a, base: _parse(text, source, a, base, kill),
                         "[arch=...]")


def load(path: str, **kw: object) -> MinijailPolicy:
    text = decode_text(read_file(path), path)
    return loads(text, path, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- writer

def _atoms(c: Condition) -> list[str] | None:
    """minijail atoms AND-ed for one condition on whole argument words (None: never holds)."""
    a = f"arg{c.arg}"
    if c.op is not Op.MASKED_EQ:
        return [f"{a} {c.op.value} {c.value:#x}"]
    m, v = c.mask, c.value
    if v & ~m:
        return None
    out = []
    zero = m & ~v  # bits that must be clear: arg in ~zero
    if zero:
        out.append(f"{a} in ~{zero:#x}")
    out.extend(f"{a} & {b:#x}" for b in (1 << k for k in range(64) if v >> k & 1))
    return out


def _action_text(a: Action, losses: list[str], where: str) -> str:
    if a.kind is ActionKind.ERRNO:
        return f"return {a.data}"
    if a.kind is ActionKind.TRACE:
        if a.data:
            losses.append(f"{where}: minijail's trace carries no value (trace({a.data}) written as trace)")
        return "trace"
    return {ActionKind.ALLOW: "allow", ActionKind.KILL_PROCESS: "kill-process",
            ActionKind.KILL_THREAD: "kill-thread", ActionKind.TRAP: "trap", ActionKind.LOG: "log",
            ActionKind.USER_NOTIF: "user-notify"}[a.kind]


def _clauses(d: L.DNF) -> list[str]:
    """minijail's OR of ANDs for ``d`` (64-bit conditions, or 32-bit ones on a 32-bit ABI)."""
    clauses = []
    for conj in d:
        atoms: list[str] | None = []
        for c in conj:
            got = _atoms(c)
            if got is None:
                atoms = None
                break
            atoms.extend(got)  # type: ignore[union-attr]
        if atoms is not None:
            clauses.append(" && ".join(atoms))
    return clauses


def _allow_first(chain: list, exprs: list, losses: list[str], name: str) -> list:
    """A filter list ending in an unconditional ``allow`` rewritten so that it does not.

    minijail's compiler (tools/compiler.py, compile_filter_statement) compiles a list whose last
    filter is ``allow`` as an unconditional allow: ``{ arg1 == 5; return 1, allow }`` allows
    ``arg1 == 5``. So the allowed region comes first, spelled out as the negation of the other
    filters, and the last of those becomes the list's unconditional end (where nothing earlier
    matched, its expression holds). If the negation is too large to write, the allow is dropped
    (refusing more) and listed as a loss."""
    from . import logic as L

    try:
        allowed = L.not_(L.or_(*exprs))
    except L.TooComplex:
        allowed = None
    clauses = _clauses(allowed) if allowed is not None and len(allowed) <= L.MAX_WRITTEN else None
    if clauses is None:
        losses.append(f"{name}: the allow for what no other filter matches cannot be written as minijail's "
                      f"first filter (its compiler ignores the filters before a final allow) in at most "
                      f"{L.MAX_WRITTEN} alternatives; dropped (refused by the default)")
        return chain[:-1]
    if not clauses:  # the other filters cover every call: the allow is never reached
        return [*chain[:-2], (None, chain[-2][1])]
    return [(clauses, chain[-1][1]), *chain[:-2], (None, chain[-2][1])]


def export(policy: Policy) -> Exported:
    """The policy as a minijail policy file (one line per syscall), with its losses."""
    from .docker import syscall_name

    losses: list[str] = []
    notes: list[str] = []
    lines = ["# generated by sysgate"]
    wide = not policy.arches or any(_arch.get(a).bits == 64 for a in policy.arches)
    d = policy.default
    denylist = d.kind is ActionKind.ALLOW
    if denylist:
        lines.append("@denylist")
    elif d.kind in (ActionKind.KILL_PROCESS, ActionKind.KILL_THREAD, ActionKind.TRAP, ActionKind.USER_NOTIF):
        lines.append(f"@default {_action_text(d, losses, 'default')}")
    else:
        losses.append(f"minijail's default action can only be kill-process, kill-thread, trap, user-notify or "
                      f"(with @denylist) allow; the policy's is {d}; written as kill-process")
        lines.append("@default kill-process")
    if len(policy.arches) > 1:
        losses.append(f"minijail policies are per architecture; this one covers {', '.join(policy.arches)}, "
                      f"the file covers the one it is compiled for")
    elif policy.arches:
        notes.append(f"written for {policy.arches[0]}")
    if policy.bad_arch != Action(ActionKind.KILL_PROCESS):
        losses.append(f"minijail cannot choose the action for other architectures (policy: {policy.bad_arch})")
    targets = [_arch.get(a) for a in policy.arches] or [_arch.native()]
    for syscall in policy.syscalls():
        if isinstance(syscall, str) and not any(syscall in a.syscalls for a in targets):
            continue  # on none of the covered arches (chown32 on x86_64): minijail calls it nonexistent
        name = syscall_name(syscall, policy, "minijail", losses)
        if name is None:
            continue
        chain: list[tuple[list[str] | None, Action]] = []  # (clauses or None for unconditional, action)
        exprs: list[L.DNF] = []  # the conditional filters' expressions, as written
        for conds, action in L.strictest_first(policy.rules_for(syscall)):
            where = f"{name}: rule '{Rule(syscall, action, conds)}'"
            if denylist and action.kind is ActionKind.ALLOW:
                continue  # allow is the least strict: in a default-allow policy it changes nothing
            if denylist and action.kind is not ActionKind.ERRNO:
                losses.append(f"{where}: a @denylist policy can only return errors; dropped")
                continue
            try:
                d64: L.DNF = L.TRUE
                for c in conds:
                    # minijail compares whole argument words: 64 bits, or 32 on 32-bit ABIs
                    d64 = L.and_(d64, L.as_64bit(c) if wide else L.narrow32(c))
            except L.TooComplex:
                d64 = L.TRUE * (L.MAX_WRITTEN + 1)
            if len(d64) > L.MAX_WRITTEN:  # minijail writes an OR of ANDs: 32-bit ranges multiply out
                losses.append(f"{where}: too complex to write as minijail's OR of ANDs "
                              f"(over {L.MAX_WRITTEN} alternatives); dropped")
                continue
            if d64 == L.TRUE:
                chain.append((None, action))
                break  # an unconditional filter ends the list
            clauses = _clauses(d64)
            if not clauses:
                continue  # never holds
            if chain and chain[-1][1] == action and chain[-1][0] is not None:
                chain[-1][0].extend(clauses)  # same action as the previous filter: one expression
                exprs[-1] = L.or_(exprs[-1], d64)
            else:
                chain.append((clauses, action))
                exprs.append(d64)
        if not denylist and len(chain) > 1 and chain[-1] == (None, Action(ActionKind.ALLOW)):
            chain = _allow_first(chain, exprs, losses, name)
        filters = []
        for alts, action in chain:
            act = _action_text(action, losses, name)
            if alts is None:
                filters.append(act)
            else:
                expr = " || ".join(dict.fromkeys(alts))
                filters.append(expr if action.kind is ActionKind.ALLOW else f"{expr}; {act}")
        if not filters:
            continue
        body = filters[0] if len(filters) == 1 else "{ " + ", ".join(filters) + " }"
        lines.append(f"{name}: {body}")
    return Exported("\n".join(lines) + "\n", tuple(losses), tuple(notes))
