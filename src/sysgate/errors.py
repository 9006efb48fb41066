"""Bad input versus bugs: the exception type for bad input, and every exit status sysgate gives.

Everything sysgate refuses because of what it was given -- a profile, a program, an option,
an argument of :func:`sysgate.run` -- is a :class:`UserError` whose message is one line saying
what is wrong and where; the CLI prints it after ``sysgate: error:`` and exits with
:data:`EXIT_USAGE` (2). :class:`BadArgument` is the kind for an option or argument
(``--memory``, ``timeout=``, ``argv[1]``): its ``option`` attribute names it.

Nothing else is bad input: any other exception is a bug in sysgate (or a failure of the system
under it that no check foresaw), and the CLI shows it as such: a short traceback and
:data:`EXIT_SOFTWARE` (70). ``UserError`` is also a ``ValueError`` so that callers of the
Python API that catch ``ValueError`` keep working; the CLI catches ``UserError`` only.
"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    _E = TypeVar("_E", bound="UserError")

__all__ = ["UserError", "BadArgument", "ProfileWarning", "one_line",
           "EXIT_OK", "EXIT_DIFF_WEAKER", "EXIT_USAGE", "EXIT_DIFF_STRICTER", "EXIT_SOFTWARE", "EXIT_TIMEOUT",
           "EXIT_CANNOT_START", "EXIT_CANNOT_EXEC", "EXIT_NOT_FOUND", "EXIT_SIGNAL_BASE", "EXIT_INTERRUPTED",
           "EXIT_BROKEN_PIPE", "exit_for_signal"]

# ------------------------------------------------------------------------------- exit statuses
# One table for every command. Statuses of a command run in the jail follow bubblewrap,
# timeout(1) and env(1); bad input and internal errors follow sysexits.h.

EXIT_OK = 0
#: ``sysgate diff``: B allows something A denies (1), or only denies more (3); 0 when equal.
EXIT_DIFF_WEAKER = 1
EXIT_DIFF_STRICTER = 3
#: Bad input: an option, argument, profile or program sysgate refuses (one line on stderr).
EXIT_USAGE = 2
#: An internal error: a bug, shown with a short traceback (sysexits.h EX_SOFTWARE).
EXIT_SOFTWARE = 70
#: ``--timeout`` expired and the command was killed (as timeout(1)).
EXIT_TIMEOUT = 124
#: The sandbox (or the recorded command) could not be set up / started (one line on stderr).
EXIT_CANNOT_START = 125
#: The command was found but could not be executed (as env(1)).
EXIT_CANNOT_EXEC = 126
#: The command was not found (as env(1)).
EXIT_NOT_FOUND = 127
#: 128 + N: signal N ended the command (159: SIGSYS, a seccomp kill).
EXIT_SIGNAL_BASE = 128
#: Ctrl-C (128 + SIGINT).
EXIT_INTERRUPTED = 128 + 2
#: The reader of our output went away (128 + SIGPIPE), as a process SIGPIPE killed would.
EXIT_BROKEN_PIPE = 128 + 13


def exit_for_signal(signum: int) -> int:
    """The status of a command that signal ``signum`` killed: 128 + N."""
    return EXIT_SIGNAL_BASE + signum


# ------------------------------------------------------------------------------- exceptions

class UserError(ValueError):
    """Bad input; ``str()`` is one line naming the file, field or option. The CLI exits 2.

    Errors in a text (a profile, an assembly listing) may also carry the offending ``source_line``
    and the 1-based ``column`` in it (0: the line as a whole), which the command line shows under
    the message with a caret (:func:`sysgate.formats.caret_lines`).
    """

    source_line: str | None = None
    column: int | None = None

    def at(self: _E, source_line: str, column: int) -> _E:
        """This error, showing ``source_line`` with a caret at ``column`` (1-based; 0 for the line as
        a whole: under its first character)."""
        self.source_line, self.column = source_line, column
        return self

    def at_line(self: _E, lines: Sequence[str], lineno: int, column: int) -> _E:
        """This error, showing line ``lineno`` (1-based) of ``lines`` with a caret at ``column``;
        unchanged if there is no such line."""
        if 0 < lineno <= len(lines):
            self.at(lines[lineno - 1], column)
        return self


class ProfileWarning(UserWarning, UserError):
    """Input a reader accepts but does not use as written (an unknown field it ignores, as the format's
    own tool does; an errno the kernel clamps). Issued through :mod:`warnings` (the ``error`` filter
    turns it into a refusal, which, being a ValueError, is bad input like any other), or to
    :data:`warning_sink` when one is set. Defined here (re-exported by :mod:`sysgate.formats`) so the
    CLI handles it without importing the formats."""


#: Where :func:`sysgate.formats.warn` hands a :class:`ProfileWarning` instead of :func:`warnings.warn`
#: (None: the warnings module, what a library caller gets). The CLI sets it for the length of one
#: command (one line each; raised with ``--strict``): it need not import ``warnings`` (about 0.25 ms
#: of every ``sysgate run``) for warnings that only a profile compiled afresh can give.
warning_sink: Callable[[ProfileWarning], None] | None = None
#: How many profile warnings were issued in this process (never decreases): a program whose
#: compile issued any is not cached (see sysgate.jail.filters.get), so every use warns again and
#: ``--strict`` refuses it every time.
warnings_issued = 0


class BadArgument(UserError):
    """A bad option or argument value. ``option`` names it (``--timeout``, ``argv``), also at the
    start of the message (``--timeout: 'abc' is not a number of seconds``)."""

    def __init__(self, message: str, option: str | None = None) -> None:
        if option is None:  # "--rlimit nofile: ..." or "timeout: ...": the option is the first word
            head = message.partition(":")[0].split()
            option = head[0] if head and (head[0].startswith("-") or len(head) == 1) else None
        elif not message.startswith(option):
            message = f"{option}: {message}"
        super().__init__(message)
        self.option = option


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (a newline or vertical tab in a file name
    or a quoted source line would split the message) escaped as Python writes it."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
