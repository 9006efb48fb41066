"""The words of ``struct seccomp_data`` as the analyses name them, and how numbers are written.

The input of a filter is sixteen 32-bit words: ``nr`` (0), ``arch`` (1), the two halves of
``instruction_pointer`` (2, 3) and of each of the six arguments (4-15). Which half comes first
depends on the byte order; these helpers say which word is which.
"""
from __future__ import annotations

from .. import arch as _arch
from .domain import M32
from .symexec import WORD_ARCH, WORD_NR

__all__ = ["arg_words", "ip_words", "word_dim", "word_label", "fmt_num", "X32", "WORD_NR", "WORD_ARCH"]

X32 = _arch.X32_SYSCALL_BIT


def arg_words(i: int, byteorder: str) -> tuple[int, int]:
    """(lo, hi) word indexes of argument ``i`` (the high word comes first on big-endian)."""
    base = 4 + 2 * i
    return (base + 1, base) if byteorder == "big" else (base, base + 1)


def ip_words(byteorder: str) -> tuple[int, int]:
    """(lo, hi) word indexes of the instruction pointer."""
    return (3, 2) if byteorder == "big" else (2, 3)


def word_dim(w: int, byteorder: str) -> tuple[str, str]:
    """(dimension, half) of word ``w``: ("nr", ""), ("arch", ""), ("ip", "lo"), ("arg2", "hi")..."""
    if w == WORD_NR:
        return "nr", ""
    if w == WORD_ARCH:
        return "arch", ""
    if w in (2, 3):
        lo, _ = ip_words(byteorder)
        return "ip", "lo" if w == lo else "hi"
    i = (w - 4) // 2
    lo, _ = arg_words(i, byteorder)
    return f"arg{i}", "lo" if w == lo else "hi"


def word_label(w: int, byteorder: str) -> str:
    """``nr``, ``arch``, ``arg2.lo32``, ``ip.hi32``...: word ``w`` as conditions name it."""
    dim, half = word_dim(w, byteorder)
    return f"{dim}.{half}32" if half else dim


def fmt_num(v: int) -> str:
    """Small numbers in decimal, others in hex; 64-bit values grouped as 0x1_0000_0001."""
    if v < 10:
        return str(v)
    if v <= M32:
        return f"{v:#x}"
    h = f"{v:x}"
    groups = []
    while h:
        groups.append(h[-4:])
        h = h[:-4]
    return "0x" + "_".join(reversed(groups))
