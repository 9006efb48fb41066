"""Readers and writers for the profile formats people already use, one module per format.

Every reader turns a file into a :class:`sysgate.policy.Policy` (plus format extras) and
reports bad input as :class:`ProfileError`, whose message is one line naming the file and
the field (``profile.json: syscalls[3].args[0].index: 6 out of range 0-5``).

Every writer returns an :class:`Exported`: the text, plus the list of *losses*, the ways
in which the text does not decide every call exactly as the policy does. An empty list
means the conversion is exact (tests check it with :mod:`sysgate.analysis.equivalence`).
:mod:`.catalog` is the table of formats, :mod:`.registry` reads and writes any of them and
:mod:`.detect` tells a file's format.
"""
from __future__ import annotations

from ..errors import ProfileWarning, UserError
from ..immutable import Record

TYPE_CHECKING = False  # typing is not imported on the CLI's paths
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from ..arch import Arch
    from ..policy import Policy

__all__ = ["ProfileError", "SourceError", "ProfileWarning", "Exported", "Loaded", "Token", "read_file",
           "read_limited", "decode_text", "load_json", "warn", "caret_lines", "read_per_arch", "MAX_INPUT_BYTES"]

#: The most any input (profile, program, listing, included file, standard input) may hold. Real
#: profiles are kilobytes (docker-default is 20 KB; a 4,096-instruction program is 32 KB): the
#: limit only stops /dev/zero-like inputs from eating memory.
MAX_INPUT_BYTES = 16 << 20


class ProfileError(UserError):  # a ValueError
    """A profile that cannot be read; the message names the file and place.

    Errors of the text formats also carry the offending line and column (``UserError.at``), which
    the command line shows under the message with a caret.
    """


class SourceError(ProfileError):
    """A :class:`ProfileError` at a place in a text format's file (minijail, Kafel, with their
    included files): ``loc`` is (file, line, 1-based column), so that the reader can show the
    line once the error reaches the place that holds every file's text."""

    def __init__(self, msg: str, loc: tuple[str, int, int] | None = None) -> None:
        super().__init__(msg)
        self.loc = loc

    @classmethod
    def at_place(cls, file: str, line: int, col: int, msg: str) -> SourceError:
        """``file:line:col: msg`` (``col`` 1-based), located there."""
        return cls(f"{file}:{line}:{col}: {msg}", (file, line, col))

    def show_line(self, texts: dict[str, str], lines: Callable[[str], list[str]] = str.splitlines) -> SourceError:
        """This error, with the line of ``loc`` from ``texts`` (file -> text, cut into lines by
        ``lines`` as the format's tokenizer counts them) under the message, if it has one."""
        if self.loc is not None and self.loc[0] in texts:
            self.at_line(lines(texts[self.loc[0]]), self.loc[1], self.loc[2])
        return self


def caret_lines(message: str, e: BaseException) -> str:
    """``message``, then the source line and a caret under the column, when ``e`` carries them.

    Two lines: the message followed by the source line (tabs as spaces), then the caret.
    """
    src, col = getattr(e, "source_line", None), getattr(e, "column", None)
    if src is None or col is None:
        return message
    from ..errors import one_line

    src = src.replace("\t", " ")[:200].rstrip()
    stripped = src.lstrip()
    if col <= 0:  # the line as a whole
        col = len(src) - len(stripped) + 1
    col -= len(src) - len(stripped)
    # Control characters in the quoted line are escaped (a vertical tab would split it); the caret
    # stays under the column, counted in escaped characters.
    shown = [one_line(c) for c in stripped]
    head = f"{message}: {''.join(shown)}"
    before = sum(len(c) for c in shown[:max(col, 1) - 1])
    return head + "\n" + " " * (len(head) - sum(len(c) for c in shown) + before) + "^"


def warn(message: str) -> None:
    """Issue ``message`` (one line naming the file and field) as a :class:`ProfileWarning`: to
    :data:`sysgate.errors.warning_sink` if set (the CLI), else through :func:`warnings.warn`."""
    from .. import errors

    w = ProfileWarning(message)
    errors.warnings_issued += 1
    sink = errors.warning_sink
    if sink is not None:
        sink(w)
        return
    import warnings

    warnings.warn(w, stacklevel=3)


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


class Loaded(Record):
    """What a reader that drops some of its input returns: the policy, and one note (a line) per
    thing it ignored (minijail's ``@frequency``, systemd settings that are not about seccomp)."""

    __slots__ = ("policy", "notes")
    _defaults = {"notes": ()}
    policy: Policy
    notes: tuple[str, ...]


def read_per_arch(source: str, arch: str | None, arches: Iterable[str] | None, base_dir: str | None,
                  read: Callable[[Arch, str], tuple[Policy, list[str]]], guards: str) -> Loaded:
    """A text format's policy (minijail, Kafel), whose named constants are the target's: read by
    ``read(target, base_dir)`` once for ``arch``, or for each of ``arches`` (default: this
    machine's), the readings must decide alike (``guards``: the format's per-arch syntax, for the
    error), and the policy covers the arches asked for. ``base_dir``: where relative includes are
    found (default: the file's directory, or the working directory for text that is no file)."""
    import os

    from .. import arch as _arch

    arches = list(arches) if arches is not None else None
    try:
        targets = [_arch.get(a) for a in (arches or ([arch] if arch else []))] or [_arch.native()]
    except _arch.UnknownArch as e:
        raise ProfileError(str(e)) from None
    if base_dir is None:
        base_dir = os.path.dirname(source) if os.path.isfile(source) else os.getcwd()
    first: Policy | None = None
    notes: list[str] = []
    for a in dict.fromkeys(targets):
        pol, notes = read(a, base_dir)
        if first is None:
            first = pol
        elif set(pol.rules) != set(first.rules) or pol.default != first.default:
            raise ProfileError(f"{source}: the policy decides differently on {targets[0].name} and {a.name} "
                               f"(named constants or {guards} differ); convert it for one architecture")
    assert first is not None
    covered = tuple(arches) if arches else ((arch,) if arch else ())
    return Loaded(first.with_arches(covered), tuple(notes))


class Token(Record):
    """A token of a text format (minijail, Kafel), with its place for ``file:line:col`` errors."""

    __slots__ = ("kind", "value", "file", "line", "col")
    kind: str
    value: str
    file: str
    line: int
    col: int  # 0-based


_STDIN: bytes | None = None  # standard input, once read (see read_limited)


def read_limited(path: str, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of input ``path`` (``-``: standard input), at most ``limit`` of them.

    Every reader of user input goes through here, so that none can be made to read forever or
    fill memory: a file other than a regular one (a device such as /dev/zero, a FIFO, a
    directory) is refused unless it is standard input, and more than ``limit`` bytes is refused.
    Raises OSError whose ``strerror`` says why (callers already turn OSError into one line).
    """
    import errno
    import os
    import stat
    import sys

    if path == "-":
        global _STDIN
        if _STDIN is None:  # read once: the format is sniffed, then the reader reads it again
            _STDIN = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
        data = _STDIN[:limit + 1]
    else:
        # O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused just below).
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
                raise OSError(errno.EINVAL, f"{kind} (give a file, or - to read standard input)", path)
            if st.st_size > limit:
                raise OSError(errno.EFBIG, f"larger than the {limit >> 20} MiB input limit", path)
            chunks, size = [], 0
            while size <= limit:  # the size can change under us (a growing file): read to the limit only
                chunk = os.read(fd, min(1 << 20, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than the {limit >> 20} MiB input limit", path)
    return data


def read_file(path: str) -> bytes:
    """The bytes of a profile file (``-``: standard input), size-capped by :func:`read_limited`;
    an unreadable file is one ProfileError line naming it."""
    try:
        return read_limited(path)
    except OSError as e:
        raise ProfileError(f"{display(path)}: cannot read: {e.strerror}") from None


def display(path: str) -> str:
    """``path`` as it appears in a one-line message: control characters (a newline in a file
    name would split the line) and undecodable bytes escaped, as Python writes them."""
    from ..errors import one_line

    return "<stdin>" if path == "-" else one_line(path)


def decode_text(data: bytes, source: str) -> str:
    """UTF-8 text, or one ProfileError line naming ``source`` and the line of the bad byte."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ProfileError(f"{source}:{line}:{col}: not UTF-8 text (byte 0x{data[e.start]:02x}: {e.reason})") \
            from None


class NumberTooLarge(ValueError):
    """A JSON integer with more digits than any profile value has (see :func:`json_int`)."""


def json_int(text: str) -> int:
    """``parse_int`` for the JSON readers: a number of more than 40 digits is no profile value, and
    ``int()`` refuses 4,300 digits with a ValueError that would otherwise read as a bug."""
    if len(text.lstrip("-")) > 40:
        raise NumberTooLarge(f"a number of {len(text.lstrip('-'))} digits: no profile value is that large")
    return int(text)


def load_json(text: str | bytes, source: str, **kw: Any) -> object:
    """``json.loads``, with errors as one ProfileError line (``source:line:col: invalid JSON: ...``)."""
    import json

    try:
        return json.loads(text, parse_int=json_int, **kw)
    except json.JSONDecodeError as e:
        lines = e.doc.splitlines() if isinstance(e.doc, str) else []
        # the line, with a caret where the reader stopped
        raise ProfileError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}").at_line(
            lines, e.lineno, e.colno) from None
    except NumberTooLarge as e:
        raise ProfileError(f"{source}: {e}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{source}: not UTF-8 text ({e.reason})") from None
