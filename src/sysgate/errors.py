"""The exception types for bad input, shared by the CLI and the Python API.

Everything sysgate refuses because of what it was given -- a profile, a program, an option,
an argument of :func:`sysgate.run` -- is a :class:`UserError`, a ``ValueError`` whose message
is one line saying what is wrong and where. :class:`BadArgument` is the kind for an option or
argument (``--memory``, ``timeout=``, ``argv[1]``): its ``option`` attribute names it. The CLI
prints the message after ``sysgate: error:`` and exits with status 2.
"""
from __future__ import annotations

__all__ = ["UserError", "BadArgument", "one_line"]


class UserError(ValueError):
    """Bad input; ``str()`` is one line naming the file, field or option."""


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
