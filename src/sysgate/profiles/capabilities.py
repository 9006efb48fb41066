"""Capability names for ``--caps``: the set moby's ``includes.caps``/``excludes.caps`` are judged by.

``parse_caps("SYS_ADMIN,cap_sys_ptrace")`` -> ``["CAP_SYS_ADMIN", "CAP_SYS_PTRACE"]``. Names
come from the kernel headers' table (:mod:`sysgate.constants`), so a misspelt capability is
an error (one line, naming the word) instead of silently matching nothing. ``ALL`` stands
for every capability, as in ``docker run --cap-add ALL``; an empty text is the empty set.
"""
from __future__ import annotations

from . import ProfileError

__all__ = ["capability_names", "parse_caps"]

_NOT_CAPS = frozenset({"CAP_LAST_CAP"})  # a header macro, not a capability


def capability_names() -> list[str]:
    """Every capability the kernel headers name, in bit order (CAP_CHOWN first)."""
    from .. import constants

    table = {n: constants.lookup(n, "x86_64") for n in constants.names("x86_64")
             if n.startswith("CAP_") and n not in _NOT_CAPS}
    return sorted(table, key=lambda n: table[n])


def parse_caps(text: str | None, flag: str = "--caps") -> list[str] | None:
    """``CAP,...`` (with or without the ``CAP_`` prefix, any case) -> canonical names; None stays
    None (the profile's default set)."""
    if text is None:
        return None
    known = capability_names()
    out: list[str] = []
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        name = word.upper()
        if name == "ALL":
            out.extend(n for n in known if n not in out)
            continue
        if not name.startswith("CAP_"):
            name = "CAP_" + name
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ProfileError(f"{flag} {word}: unknown capability{hint}")
        if name not in out:
            out.append(name)
    return out
