"""Readers and writers for the profile formats people already use, one module per format.

Every reader turns a file into a :class:`sysgate.policy.Policy` (plus format extras) and
reports bad input as :class:`ProfileError`, whose message is one line naming the file and
the field (``profile.json: syscalls[3].args[0].index: 6 out of range 0-5``).

Every writer returns an :class:`Exported`: the text, plus the list of *losses*, the ways
in which the text does not decide every call exactly as the policy does. An empty list
means the conversion is exact (tests check it with :mod:`sysgate.analysis.equivalence`).
:mod:`.registry` dispatches on format names; :mod:`.detect` tells a file's format.
"""
from __future__ import annotations

from ..immutable import Record

__all__ = ["ProfileError", "ProfileWarning", "Exported", "Token", "read_file", "decode_text", "load_json", "warn",
           "caret_lines"]


class ProfileError(ValueError):
    """A profile that cannot be read; the message names the file and place.

    Errors of the text formats also carry the offending ``source_line`` and the 1-based
    ``column`` in it, which the command line shows under the message with a caret.
    """

    source_line: str | None = None
    column: int | None = None

    def at(self, source_line: str, column: int) -> "ProfileError":
        """This error, showing ``source_line`` with a caret at ``column`` (1-based)."""
        self.source_line, self.column = source_line, column
        return self


def caret_lines(message: str, e: BaseException) -> str:
    """``message``, then the source line and a caret under the column, when ``e`` carries them.

    Two lines: the message followed by the source line (tabs as spaces), then the caret.
    """
    src, col = getattr(e, "source_line", None), getattr(e, "column", None)
    if src is None or col is None:
        return message
    src = src.replace("\t", " ")[:200].rstrip()
    stripped = src.lstrip()
    col -= len(src) - len(stripped)
    head = f"{message}: {stripped}"
    return head + "\n" + " " * (len(head) - len(stripped) + max(col, 1) - 1) + "^"


class ProfileWarning(UserWarning, ValueError):
    """Input a reader accepts but does not use as written (an unknown field it ignores, as the format's
    own tool does; an errno the kernel clamps). Shown as one line; the ``error`` warnings filter
    (``sysgate --strict``) turns it into a refusal, which, being a ValueError, is bad input like any other."""


def warn(message: str) -> None:
    """Issue ``message`` (one line naming the file and field) as a :class:`ProfileWarning`."""
    import warnings

    warnings.warn(ProfileWarning(message), stacklevel=3)


class Exported(Record):
    """A policy written in some format: ``text``, the decisions it cannot carry (``losses``,
    one line each) and remarks that change no decision (``notes``)."""

    __slots__ = ("text", "losses", "notes")
    _defaults = {"losses": (), "notes": ()}
    text: str
    losses: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def exact(self) -> bool:
        return not self.losses


class Token(Record):
    """A token of a text format (minijail, Kafel), with its place for ``file:line:col`` errors."""

    __slots__ = ("kind", "value", "file", "line", "col")
    kind: str
    value: str
    file: str
    line: int
    col: int  # 0-based


def read_file(path: str) -> bytes:
    """The bytes of a profile file; an unreadable file is one ProfileError line."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text, or one ProfileError line naming ``source``."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ProfileError(f"{source}: not UTF-8 text ({e.reason})") from None


def load_json(text: str | bytes, source: str) -> object:
    """``json.loads``, with errors as one ProfileError line (``source:line:col: invalid JSON: ...``)."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{source}: not UTF-8 text ({e.reason})") from None
