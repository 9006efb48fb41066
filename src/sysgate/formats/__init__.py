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

from ..record import Record

__all__ = ["ProfileError", "Exported"]


class ProfileError(ValueError):
    """A profile that cannot be read; the message names the file and place."""


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
