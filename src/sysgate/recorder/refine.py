"""Argument refinement: rules that allow a call only with the argument values a run used.

Only where an argument *is* the attack surface (a new socket family, a namespace flag for
clone, an ioctl request, a prctl option, executable memory, write access), and only for values
passed in registers: clone3's flags and openat2's ``how`` are behind pointers that a seccomp
filter cannot read, so those calls stay names only. Each learned set becomes one of:

- equality per value seen (``ioctl`` requests, ``prctl`` options, ``fcntl`` commands, ``personality``);
- a (family, type) pair per socket seen, the type compared without SOCK_NONBLOCK/SOCK_CLOEXEC;
- a mask: clone flags must stay within the union of the flags seen; ``PROT_EXEC`` stays clear
  if it was never asked for; open flags stay read-only if no write access was ever asked for.

Values are compared on their low 32 bits where the kernel reads an ``int`` (it ignores the
high half, so a filter must too, or a caller could pass garbage there to dodge an equality).
"""
from __future__ import annotations

from ..policy import ALLOW, Condition, Op, Rule

__all__ = ["SPECS", "positions", "rules", "describe"]

U32 = 0xFFFFFFFF
PROT_EXEC = 0x4
OPEN_WRITE = 0x1 | 0x2 | 0x40 | 0x200  # O_WRONLY | O_RDWR | O_CREAT | O_TRUNC
SOCK_TYPE_MASK = 0xF

# name -> (kind, argument positions the kind needs)
SPECS: dict[str, tuple[str, tuple[int, ...]]] = {
    "socket": ("socket", (0, 1)), "socketpair": ("socket", (0, 1)),
    "clone": ("flags", (0,)),
    "ioctl": ("set", (1,)), "fcntl": ("set", (1,)), "fcntl64": ("set", (1,)),
    "prctl": ("set", (0,)), "personality": ("set", (0,)),
    "mmap": ("exec", (2,)), "mmap2": ("exec", (2,)), "mprotect": ("exec", (2,)), "pkey_mprotect": ("exec", (2,)),
    "open": ("write", (1,)), "openat": ("write", (2,)),
}

# Calls whose attack-surface argument a filter cannot see: reported, kept as names.
BEHIND_POINTER = {"clone3": "clone3's flags are in struct clone_args, behind a pointer",
                  "openat2": "openat2's flags are in struct open_how, behind a pointer"}

# More distinct values than this and an equality list stops being a useful restriction.
MAX_VALUES = 64


def positions(name: str) -> tuple[int, ...] | None:
    """The argument indices to keep for ``name``, or None when it is not refined."""
    spec = SPECS.get(name)
    return spec[1] if spec else None


def key(name: str, args: tuple[int, ...] | list[int]) -> tuple[int, ...]:
    """The values of ``name``'s refined arguments in a full six-argument tuple, low 32 bits."""
    return tuple(args[i] & U32 for i in SPECS[name][1])


def rules(name: str, values: set[tuple[int, ...]] | None) -> list[Rule]:
    """Allow rules for ``name`` given the values seen (None or empty: arguments unknown, allow all)."""
    spec = SPECS.get(name)
    if spec is None or not values:
        return [Rule(name, ALLOW, ())]
    kind = spec[0]
    if kind == "socket":
        pairs = sorted({(v[0], v[1] & SOCK_TYPE_MASK) for v in values})
        return [Rule(name, ALLOW, (Condition(0, Op.EQ, fam, width=32),
                                   Condition(1, Op.MASKED_EQ, typ, SOCK_TYPE_MASK, width=32)))
                for fam, typ in pairs]
    if kind == "set":
        seen = sorted({v[0] for v in values})
        if len(seen) > MAX_VALUES:
            return [Rule(name, ALLOW, ())]
        arg = spec[1][0]
        return [Rule(name, ALLOW, (Condition(arg, Op.EQ, v, width=32),)) for v in seen]
    if kind == "flags":
        union = 0
        for v in values:
            union |= v[0]
        return [Rule(name, ALLOW, (Condition(0, Op.MASKED_EQ, 0, ~union & U32, width=32),))]
    if kind == "exec":
        if any(v[0] & PROT_EXEC for v in values):
            return [Rule(name, ALLOW, ())]
        return [Rule(name, ALLOW, (Condition(spec[1][0], Op.MASKED_EQ, 0, PROT_EXEC, width=32),))]
    if kind == "write":
        if any(v[0] & OPEN_WRITE for v in values):
            return [Rule(name, ALLOW, ())]
        return [Rule(name, ALLOW, (Condition(spec[1][0], Op.MASKED_EQ, 0, OPEN_WRITE, width=32),))]
    raise AssertionError(kind)


def describe(name: str, values: set[tuple[int, ...]]) -> str:
    """One short phrase for the report: what was learned for ``name``."""
    kind = SPECS[name][0]
    if kind == "socket":
        return "socket (family, type): " + ", ".join(f"({f}, {t & SOCK_TYPE_MASK})" for f, t in
                                                     sorted({(v[0], v[1] & SOCK_TYPE_MASK) for v in values}))
    if kind == "set":
        return f"{name} values: " + ", ".join(f"{v:#x}" for v in sorted({v[0] for v in values}))
    if kind == "flags":
        union = 0
        for v in values:
            union |= v[0]
        return f"{name} flags within {union:#x}"
    if kind == "exec":
        return f"{name}: " + ("PROT_EXEC used" if any(v[0] & PROT_EXEC for v in values) else "never PROT_EXEC")
    return f"{name}: " + ("write access used" if any(v[0] & OPEN_WRITE for v in values) else "read-only")
