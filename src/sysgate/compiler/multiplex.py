"""Re-export of :mod:`sysgate.multiplexing`, which moved below the compiler so that the format
writers can use it without importing the compiler."""
from __future__ import annotations

from ..multiplexing import explicit, multiplexed_rules, notes, refusal, refused_subcalls

__all__ = ["multiplexed_rules", "refusal", "refused_subcalls", "notes", "explicit"]
