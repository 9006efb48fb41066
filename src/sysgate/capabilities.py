"""Linux capabilities: the one table of names and numbers, and the reading of user-given names.

:data:`NAMES` is <linux/capability.h> in bit order (``NAMES[21] == "CAP_SYS_ADMIN"``); a test
checks it against the header constants table (:mod:`sysgate.constants`). Used by Docker's
``includes.caps``/``excludes.caps``, by ``--caps`` (the set those are judged by) and by the
jail's ``--cap-add``.
"""
from __future__ import annotations

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable

from .errors import UserError

__all__ = ["NAMES", "UnknownCapability", "number", "canonical", "parse", "hint"]

NAMES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)

_NUMBER = {n: i for i, n in enumerate(NAMES)}


class UnknownCapability(UserError):
    """A capability name the kernel headers do not have."""


def number(name: str) -> int:
    """The bit number of the kernel name ``name`` (``CAP_KILL`` -> 5); KeyError if unknown."""
    return _NUMBER[name]


def hint(word: str) -> str:
    """`` (did you mean CAP_X?)`` for a misspelt capability, else an empty text."""
    import difflib  # only for the error's suggestion: it is slow to import

    up = word.upper()
    close = difflib.get_close_matches(up if up.startswith("CAP_") else "CAP_" + up, NAMES, n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def canonical(word: str, flag: str = "--caps") -> str:
    """``sys_admin``, ``SYS_ADMIN`` or ``cap_sys_admin`` -> ``CAP_SYS_ADMIN``; :class:`UnknownCapability`
    (one line naming ``flag`` and the word) if it is no capability."""
    name = word.strip().upper()
    if not name.startswith("CAP_"):
        name = "CAP_" + name
    if name not in _NUMBER:
        raise UnknownCapability(f"{flag} {word.strip()}: unknown capability{hint(word.strip())}")
    return name


def parse(words: str | Iterable[str], flag: str = "--caps") -> list[str]:
    """Comma-separated capability names (one text or several) -> kernel names, in the order given,
    without repeats. ``ALL`` (any case) stands for every capability, as in ``docker run --cap-add
    ALL``; empty items are skipped."""
    texts = [words] if isinstance(words, str) else list(words)
    out: list[str] = []
    for text in texts:
        for word in text.split(","):
            if not word.strip():
                continue
            if word.strip().upper() == "ALL":
                out.extend(n for n in NAMES if n not in out)
                continue
            name = canonical(word, flag)
            if name not in out:
                out.append(name)
    return out
