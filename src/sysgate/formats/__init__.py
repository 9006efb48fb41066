"""Readers and writers for the profile formats people already use, one module per format.

Every reader turns a file into a :class:`sysgate.policy.Policy` (plus format extras) and
reports bad input as :class:`ProfileError`, whose message is one line naming the file and
the field (``profile.json: syscalls[3].args[0].index: 6 out of range 0-5``).
"""
from __future__ import annotations

__all__ = ["ProfileError"]


class ProfileError(ValueError):
    """A profile that cannot be read; the message names the file and place."""
