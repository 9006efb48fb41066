"""The policy model: what a filter must decide, independent of any file format or program.

A :class:`Policy` is a default :class:`Action`, a set of :class:`Rule` (syscall + AND-ed
:class:`Condition` on arguments + action), the architectures it covers and what happens
to any other architecture. Objects are immutable and validated on construction, so a
Policy that exists is one the compiler can lower.

Several rules for one syscall are OR-ed. When more than one rule matches a call, the
**strictest action wins**, in the kernel's own precedence for stacked filters:
kill-process > kill-thread > trap > errno > user-notify > trace > log > allow; between two
errno (or trace) rules the lower value wins. The order in which rules are written never
matters. The default action applies only when no rule matches.
"""
from __future__ import annotations

import enum

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

from .errors import UserError
from .immutable import Record

__all__ = ["PolicyError", "ActionKind", "Action", "Op", "Condition", "Term", "Compare", "Rule", "Policy",
           "ALLOW", "KILL_PROCESS", "KILL_THREAD", "TRAP", "LOG", "NOTIFY", "errno", "trace"]

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1

_setattr = object.__setattr__


class PolicyError(UserError):
    """A policy that cannot be built: the message names the offending field."""


class ActionKind(enum.Enum):
    """Actions, valued by the kernel's return code."""

    KILL_PROCESS = 0x80000000
    KILL_THREAD = 0x00000000
    TRAP = 0x00030000
    ERRNO = 0x00050000
    USER_NOTIF = 0x7FC00000
    TRACE = 0x7FF00000
    LOG = 0x7FFC0000
    ALLOW = 0x7FFF0000


# Higher is stricter; the kernel's order for stacked filters.
_STRICTNESS = {
    ActionKind.ALLOW: 0, ActionKind.LOG: 1, ActionKind.TRACE: 2, ActionKind.USER_NOTIF: 3,
    ActionKind.ERRNO: 4, ActionKind.TRAP: 5, ActionKind.KILL_THREAD: 6, ActionKind.KILL_PROCESS: 7,
}

_NAMES = {
    ActionKind.KILL_PROCESS: "kill-process", ActionKind.KILL_THREAD: "kill-thread", ActionKind.TRAP: "trap",
    ActionKind.ERRNO: "errno", ActionKind.USER_NOTIF: "user-notify", ActionKind.TRACE: "trace",
    ActionKind.LOG: "log", ActionKind.ALLOW: "allow",
}
_BY_NAME = {v: k for k, v in _NAMES.items()}
_BY_NAME.update({"kill": ActionKind.KILL_PROCESS, "notify": ActionKind.USER_NOTIF,
                 "user_notif": ActionKind.USER_NOTIF, "kill_process": ActionKind.KILL_PROCESS,
                 "kill_thread": ActionKind.KILL_THREAD, "user-notif": ActionKind.USER_NOTIF})


class Action(Record):
    """An action with its 16-bit data (errno number, trace message); data is 0 for the others."""

    __slots__ = ("kind", "data")
    _defaults = {"data": 0}
    kind: ActionKind
    data: int

    def _check(self) -> None:
        if not isinstance(self.kind, ActionKind):
            raise PolicyError(f"action kind must be an ActionKind, not {self.kind!r}")
        if isinstance(self.data, bool) or not isinstance(self.data, int):
            raise PolicyError(f"action data must be an integer, not {self.data!r}")
        if self.kind is ActionKind.ERRNO:
            if not 0 <= self.data <= 4095:
                raise PolicyError(f"errno {self.data} out of range 0-4095")
        elif self.kind is ActionKind.TRACE:
            if not 0 <= self.data <= 0xFFFF:
                raise PolicyError(f"trace value {self.data} out of range 0-65535")
        elif self.data:
            raise PolicyError(f"action {_NAMES[self.kind]} takes no value (got {self.data})")

    @property
    def ret(self) -> int:
        """The 32-bit value a filter returns for this action."""
        return self.kind.value | self.data

    @property
    def strictness(self) -> int:
        return _STRICTNESS[self.kind]

    def stricter_than(self, other: Action) -> bool:
        """Precedence when two rules match: stricter kind, then lower data."""
        a, b = _STRICTNESS[self.kind], _STRICTNESS[other.kind]
        return a > b or (a == b and self.data < other.data)

    @classmethod
    def parse(cls, text: str) -> Action:
        """Parse ``allow``, ``errno(1)``, ``errno:EPERM``, ``kill-process``, ``trace(3)``, ..."""
        t = text.strip().lower()
        name, data = t, None
        for open_, close in (("(", ")"), (":", "")):
            if open_ in t and t.endswith(close):
                name, _, rest = t.partition(open_)
                data = rest[: len(rest) - len(close)] if close else rest
                break
        kind = _BY_NAME.get(name.strip())
        if kind is None:
            raise PolicyError(f"unknown action {text!r} (expected one of {', '.join(_NAMES.values())})")
        if data is None:  # a bare "errno" means EPERM, as in minijail and Kafel
            return cls(kind, 1 if kind is ActionKind.ERRNO else 0)
        return cls(kind, parse_errno(data) if kind is ActionKind.ERRNO else _parse_int(data, "action value"))

    @classmethod
    def from_ret(cls, ret: int) -> Action:
        """The action a 32-bit return value means (unknown actions mean kill-process, as in the kernel)."""
        ret &= U32
        try:
            kind = ActionKind(ret & 0xFFFF0000)
        except ValueError:
            return cls(ActionKind.KILL_PROCESS)
        data = ret & 0xFFFF
        if kind is ActionKind.ERRNO:
            return cls(kind, min(data, 4095))
        if kind is ActionKind.TRACE:
            return cls(kind, data)
        return cls(kind)

    def __str__(self) -> str:
        if self.kind is ActionKind.ERRNO:
            return f"errno({self.data})"
        if self.kind is ActionKind.TRACE:
            return f"trace({self.data})"
        return _NAMES[self.kind]


ALLOW = Action(ActionKind.ALLOW)
KILL_PROCESS = Action(ActionKind.KILL_PROCESS)
KILL_THREAD = Action(ActionKind.KILL_THREAD)
TRAP = Action(ActionKind.TRAP)
LOG = Action(ActionKind.LOG)
NOTIFY = Action(ActionKind.USER_NOTIF)


def errno(n: int | str = 1) -> Action:
    return Action(ActionKind.ERRNO, parse_errno(n) if isinstance(n, str) else n)


def trace(n: int = 0) -> Action:
    return Action(ActionKind.TRACE, n)


def parse_errno(value: int | str) -> int:
    """An errno given as a number or a name (``EPERM``)."""
    if isinstance(value, int) and not isinstance(value, bool):
        n = value
    else:
        s = str(value).strip()
        import errno as _errno

        if s.upper().startswith("E") and hasattr(_errno, s.upper()):
            n = getattr(_errno, s.upper())
        else:
            n = _parse_int(s, "errno")
    if not 0 <= n <= 4095:
        raise PolicyError(f"errno {value} out of range 0-4095")
    return n


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip(), 0)
    except ValueError:
        raise PolicyError(f"{what} {text!r} is not a number") from None


class Op(enum.Enum):
    """Comparison operators; MASKED_EQ is ``(arg & mask) == value``."""

    EQ = "=="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    MASKED_EQ = "&=="

    @classmethod
    def parse(cls, text: str) -> Op:
        t = text.strip().upper()
        for op in cls:
            if t in (op.value, op.name):
                return op
        aliases = {"EQ": cls.EQ, "=": cls.EQ, "NEQ": cls.NE, "MASKED": cls.MASKED_EQ, "&": cls.MASKED_EQ}
        if t in aliases:
            return aliases[t]
        raise PolicyError(f"unknown operator {text!r}")


_COMPARE = {Op.EQ: int.__eq__, Op.NE: int.__ne__, Op.LT: int.__lt__, Op.LE: int.__le__, Op.GT: int.__gt__,
            Op.GE: int.__ge__}


class Condition(Record):
    """``arg[index] OP value`` (``(arg & mask) == value`` for MASKED_EQ).

    ``width`` 64 compares the whole argument; 32 compares its low 32 bits only and ignores
    the high word, as Firecracker's ``dword`` and libseccomp on 32-bit ABIs do.
    """

    __slots__ = ("arg", "op", "value", "mask", "width")
    _defaults = {"mask": U64, "width": 64}
    arg: int
    op: Op
    value: int
    mask: int
    width: int

    def _check(self) -> None:
        if isinstance(self.arg, bool) or not isinstance(self.arg, int) or not 0 <= self.arg <= 5:
            raise PolicyError(f"argument index {self.arg!r} out of range 0-5")
        if not isinstance(self.op, Op):
            raise PolicyError(f"operator must be an Op, not {self.op!r}")
        if self.width not in (32, 64):
            raise PolicyError(f"condition width must be 32 or 64, not {self.width!r}")
        limit = U32 if self.width == 32 else U64
        for what, v in (("value", self.value), ("mask", self.mask)):
            if isinstance(v, bool) or not isinstance(v, int):
                raise PolicyError(f"condition {what} must be an integer, not {v!r}")
            if not 0 <= v <= U64:
                raise PolicyError(f"condition {what} {v} out of range 0..2^64-1")
        if self.value > limit:
            raise PolicyError(f"condition value {self.value:#x} does not fit a {self.width}-bit comparison")
        if self.op is not Op.MASKED_EQ and self.mask != U64:
            raise PolicyError("a mask is only allowed with the masked-equal operator")
        if self.op is Op.MASKED_EQ and self.width == 32:
            self._set("mask", self.mask & U32)

    def holds(self, value: int) -> bool:
        """Whether this condition holds for an argument of ``value`` (as the kernel passes it).

        (:mod:`sysgate.reference` has its own copy on purpose: the oracle shares no code.)"""
        if self.width == 32:
            value &= U32
        op = self.op
        if op is Op.MASKED_EQ:
            return value & self.mask == self.value
        return _COMPARE[op](value, self.value)

    def __str__(self) -> str:
        a = f"arg{self.arg}" + (".lo32" if self.width == 32 else "")
        if self.op is Op.MASKED_EQ:
            return f"({a} & {self.mask:#x}) == {self.value:#x}"
        return f"{a} {self.op.value} {self.value:#x}"


class Term(Record):
    """A value computed from the arguments: ``arg[index]``, a constant, or ``left & right`` /
    ``left | right`` of two terms. Kafel's argument-to-argument expressions need it."""

    __slots__ = ("kind", "value", "left", "right")
    _defaults = {"value": 0, "left": None, "right": None}
    kind: str  # "arg" (value = index), "const" (value), "&" or "|" (left, right)
    value: int
    left: Term | None
    right: Term | None

    MAX_DEPTH = 64

    @classmethod
    def arg(cls, index: int) -> Term:
        return cls("arg", index)

    @classmethod
    def const(cls, value: int) -> Term:
        return cls("const", value)

    @classmethod
    def combine(cls, kind: str, left: Term, right: Term) -> Term:
        """``left & right`` or ``left | right``."""
        return cls(kind, 0, left, right)

    def _check(self) -> None:
        if self.kind in ("&", "|"):
            if not isinstance(self.left, Term) or not isinstance(self.right, Term):
                raise PolicyError(f"term {self.kind!r} needs two terms")
            if max(self.left.depth, self.right.depth) >= self.MAX_DEPTH:
                raise PolicyError(f"argument expression nested deeper than {self.MAX_DEPTH}")
        elif self.kind == "arg":
            if isinstance(self.value, bool) or not isinstance(self.value, int) or not 0 <= self.value <= 5:
                raise PolicyError(f"argument index {self.value!r} out of range 0-5")
        elif self.kind == "const":
            if isinstance(self.value, bool) or not isinstance(self.value, int) or not 0 <= self.value <= U64:
                raise PolicyError(f"term constant {self.value!r} out of range 0..2^64-1")
        else:
            raise PolicyError(f"unknown term kind {self.kind!r}")

    @property
    def depth(self) -> int:
        if self.left is None or self.right is None:
            return 1
        return 1 + max(self.left.depth, self.right.depth)

    def reads(self) -> set[int]:
        """The argument indexes the term reads."""
        if self.kind == "arg":
            return {self.value}
        if self.left is None or self.right is None:
            return set()
        return self.left.reads() | self.right.reads()

    def __str__(self) -> str:
        if self.kind == "arg":
            return f"arg{self.value}"
        if self.kind == "const":
            return f"{self.value:#x}"
        return f"({self.left} {self.kind} {self.right})"


class Compare(Record):
    """``left OP right`` between two :class:`Term`; ``width`` 32 compares the low 32 bits only.

    The general form of a condition, for what :class:`Condition` (one argument against a
    constant) cannot say: two arguments compared with each other (``fd < count``) or combined
    (``(fd & buf) == 0``). ``op`` is one of ``== != < <= > >=`` (not MASKED_EQ).
    """

    __slots__ = ("left", "op", "right", "width")
    _defaults = {"width": 64}
    left: Term
    op: Op
    right: Term
    width: int

    def _check(self) -> None:
        if not isinstance(self.left, Term) or not isinstance(self.right, Term):
            raise PolicyError("compare operands must be Term objects")
        if not isinstance(self.op, Op) or self.op is Op.MASKED_EQ:
            raise PolicyError(f"compare operator must be one of == != < <= > >=, not {self.op!r}")
        if self.width not in (32, 64):
            raise PolicyError(f"compare width must be 32 or 64, not {self.width!r}")

    def reads(self) -> set[int]:
        """The argument indexes the compare reads."""
        return self.left.reads() | self.right.reads()

    def __str__(self) -> str:
        lo = ".lo32" if self.width == 32 else ""
        return f"{self.left}{lo} {self.op.value} {self.right}{lo}"


class Rule(Record):
    """``syscall`` (a name, or a raw number for one-arch policies) + AND-ed conditions -> action."""

    __slots__ = ("syscall", "action", "conditions")
    _defaults = {"conditions": ()}
    syscall: str | int
    action: Action
    conditions: tuple[Condition | Compare, ...]

    def __init__(self, *args: Any, **kw: Any) -> None:
        if len(args) == 3 and not kw:  # how readers make their hundreds of rules: straight to _check
            _setattr(self, "syscall", args[0])
            _setattr(self, "action", args[1])
            _setattr(self, "conditions", args[2])
            self._check()
        else:
            Record.__init__(self, *args, **kw)

    def _check(self) -> None:
        # (Policies have hundreds of rules: the common case, a name and a tuple, is tested first.)
        syscall = self.syscall
        if type(syscall) is not str:
            if isinstance(syscall, bool) or not isinstance(syscall, (str, int)):
                raise PolicyError(f"syscall must be a name or number, not {syscall!r}")
            if isinstance(syscall, int) and not 0 <= syscall <= U32:
                raise PolicyError(f"syscall number {syscall} out of range")
        if isinstance(syscall, str) and not syscall:
            raise PolicyError("empty syscall name")
        if not isinstance(self.action, Action):
            raise PolicyError(f"rule action must be an Action, not {self.action!r}")
        conds = self.conditions
        if type(conds) is not tuple:
            conds = tuple(conds)
            self._set("conditions", conds)
        for c in conds:
            if not isinstance(c, (Condition, Compare)):
                raise PolicyError(f"rule conditions must be Condition or Compare objects, not {c!r}")

    def __str__(self) -> str:
        cond = " && ".join(str(c) for c in self.conditions)
        return f"{self.syscall}{': ' + cond if cond else ''} -> {self.action}"


class Policy(Record):
    """Default action + rules, for a set of architectures.

    ``arches`` are sysgate arch names (see :mod:`sysgate.arch`); empty means "the native
    arch" and is resolved by the compiler. ``bad_arch`` is returned for any other arch
    token, and also for x32 numbers on x86_64 when x32 is not covered.
    """

    __slots__ = ("default", "rules", "arches", "bad_arch")
    _defaults = {"rules": (), "arches": (), "bad_arch": None}
    default: Action
    rules: tuple[Rule, ...]
    arches: tuple[str, ...]
    bad_arch: Action

    def _check(self) -> None:
        from . import arch as _arch

        if self.bad_arch is None:
            self._set("bad_arch", KILL_PROCESS)
        if not isinstance(self.default, Action) or not isinstance(self.bad_arch, Action):
            raise PolicyError("default and bad_arch must be Action objects")
        rules = tuple(self.rules)
        for r in rules:
            if not isinstance(r, Rule):
                raise PolicyError(f"rules must be Rule objects, not {r!r}")
        names: list[str] = []
        if isinstance(self.arches, str):  # one name, not its letters
            self._set("arches", (self.arches,))
        for a in self.arches:
            try:
                n = _arch.get(a).name
            except _arch.UnknownArch as e:
                raise PolicyError(str(e)) from None
            if n not in names:
                names.append(n)
        self._set("rules", rules)
        self._set("arches", tuple(names))

    def rules_for(self, syscall: str | int) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.syscall == syscall)

    def syscalls(self) -> list[str | int]:
        seen: dict[str | int, None] = {}
        for r in self.rules:
            seen.setdefault(r.syscall, None)
        return list(seen)

    def with_rules(self, rules: Iterable[Rule]) -> Policy:
        return Policy(self.default, tuple(rules), self.arches, self.bad_arch)

    def with_arches(self, arches: Iterable[str]) -> Policy:
        return Policy(self.default, self.rules, tuple(arches), self.bad_arch)
