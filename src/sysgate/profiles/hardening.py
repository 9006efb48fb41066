"""The hardening overlay sysgate adds to its built-in ``docker-default`` and ``python`` profiles.

``docker-default.json`` stays moby's file byte for byte (tests compare it with libseccomp
decision for decision); the built-in *name* means moby's profile plus these rules, each an
errno EPERM for one argument value of a syscall the profile otherwise allows:

* ``fcntl``/``fcntl64`` ``F_SETLEASE``: a lease on a file of the read-only host view stalls host
  writers (they block until the lease breaks, up to ``/proc/sys/fs/lease-break-time``).
* ``ioctl`` ``TIOCSTI`` (push bytes into a terminal's input: commands typed into the caller's
  shell) and ``TIOCLINUX`` (the same through the Linux console's selection paste). The jail gives
  the command a terminal of its own; this is defence in depth.

Both ``cmd`` arguments are ``unsigned int`` in the kernel: a 64-bit caller may set any upper
half, so the rules compare the low 32 bits only (``(arg & 0xffffffff) == value``), which Docker's
and OCI's formats can express too. The ioctl numbers are the generic ones (x86, Arm, RISC-V,
s390, LoongArch); MIPS, PowerPC and SPARC number terminal ioctls differently and are not covered.
Rules are OR-ed with the profile's and the strictest matching action wins, so adding them can
only refuse more.
"""
from __future__ import annotations

from ..policy import Action, ActionKind, Condition, Op, Policy, Rule

__all__ = ["F_SETLEASE", "TIOCSTI", "TIOCLINUX", "HARDENED", "rules", "apply"]

F_SETLEASE = 1024
TIOCSTI = 0x5412
TIOCLINUX = 0x541C
_LOW32 = 0xFFFFFFFF

#: Built-in profiles that get the overlay (``strict`` refuses these calls already, and more harshly).
HARDENED = frozenset({"docker-default", "python"})


def _low32(arg: int, value: int) -> tuple[Condition, ...]:
    return (Condition(arg, Op.MASKED_EQ, value, _LOW32),)


def rules() -> list[Rule]:
    eperm = Action(ActionKind.ERRNO, 1)
    return [Rule("fcntl", eperm, _low32(1, F_SETLEASE)), Rule("fcntl64", eperm, _low32(1, F_SETLEASE)),
            Rule("ioctl", eperm, _low32(1, TIOCSTI)), Rule("ioctl", eperm, _low32(1, TIOCLINUX))]


def apply(policy: Policy) -> Policy:
    """``policy`` plus the overlay's rules for the syscalls it has (or allows by default)."""
    from ..arch import get

    def known(name: str) -> bool:
        return any(get(a).has(name) for a in policy.arches)

    return policy.with_rules([*policy.rules, *(r for r in rules() if known(r.syscall))])
