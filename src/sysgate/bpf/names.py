"""Symbolic names shared by the disassembler and the assembler.

``ARCH_*`` constants for ``AUDIT_ARCH`` tokens, seccomp return-action names, and
:class:`SyscallNames`, which turns a syscall number into a name (and back) for the
architecture in effect at some point of a program. Both directions live here so the
disassembler can promise that whatever it prints, the assembler reads back as the same number.

Spelling follows seccomp-tools: a bare name means the *default* architecture (the ``arch``
argument, or the host's), a name of another architecture is qualified as ``i386.fork`` or
``aarch64.io_setup``, and x32 numbers under an x86-64 default print as ``x32_read``.
"""
from __future__ import annotations

from collections.abc import Sequence

from .. import arch as _arch
from ..arch import Arch, UnknownArch, UnknownSyscall
from . import insn as I

__all__ = [
    "ARCH_CONSTANTS", "arch_constant_name", "parse_arch_constant", "ACTIONS", "SyscallNames", "ArchSpec",
    "default_arches",
]

ArchSpec = None | str | Arch | Sequence[str | Arch]

# AUDIT_ARCH_* without AUDIT_, as seccomp-tools spells them (ARCH_I386, not ARCH_X86).
ARCH_CONSTANTS: dict[str, int] = {a.audit[len("AUDIT_"):]: a.token for a in _arch.ARCHES}
_TOKEN_NAME: dict[int, str] = {}
for _n, _t in ARCH_CONSTANTS.items():
    _TOKEN_NAME.setdefault(_t, _n)


def arch_constant_name(token: int) -> str | None:
    """``ARCH_X86_64`` for 0xc000003e, None for tokens sysgate does not know."""
    return _TOKEN_NAME.get(token)


def parse_arch_constant(text: str) -> int | None:
    """Value of ``ARCH_X86_64`` / ``AUDIT_ARCH_X86_64`` (any case), None if unknown."""
    t = text.upper()
    if t.startswith("AUDIT_"):
        t = t[6:]
    return ARCH_CONSTANTS.get(t)


# Return actions as `return NAME` / `return NAME(data)` spell them; KILL is KILL_THREAD.
ACTIONS: dict[str, int] = {
    "KILL_PROCESS": I.RET_KILL_PROCESS, "KILL_THREAD": I.RET_KILL_THREAD, "KILL": I.RET_KILL_THREAD,
    "TRAP": I.RET_TRAP, "ERRNO": I.RET_ERRNO, "USER_NOTIF": I.RET_USER_NOTIF, "LOG": I.RET_LOG,
    "TRACE": I.RET_TRACE, "ALLOW": I.RET_ALLOW,
}

# seccomp-tools' names for the arches it knows, used as `<prefix>.<syscall>`.
_PREFIX = {"x86_64": "amd64", "x86": "i386"}


def default_arches(spec: ArchSpec) -> list[Arch]:
    """Normalise an ``arch`` argument: None -> the host's arch (x86_64 if it cannot be told)."""
    if spec is None:
        try:
            return [_arch.native()]
        except UnknownArch:
            return [_arch.get("x86_64")]
    if isinstance(spec, (str, Arch)):
        return [_arch.get(spec)]
    arches = [_arch.get(a) for a in spec]
    if not arches:
        raise UnknownArch("empty list of architectures")
    return arches


class SyscallNames:
    """Syscall name <-> number for a given default arch list and the arch token in effect.

    ``token`` is the AUDIT_ARCH value a dominating arch check proved (or None). Arches sharing
    a token (x86_64 and x32) form one family whose numbers do not overlap, so a number is
    looked up in the whole family, default arches first.
    """

    def __init__(self, arches: Sequence[Arch]):
        self.arches = list(arches)
        self.default = self.arches[0]
        self._families: dict[int, list[Arch]] = {}

    def family(self, token: int) -> list[Arch]:
        fam = self._families.get(token)
        if fam is None:
            members = _arch.by_token(token)
            fam = [a for a in self.arches if a in members]
            fam += [a for a in members if a not in fam]
            self._families[token] = fam
        return fam

    def byteorder(self, token: int | None) -> str:
        """Byte order of seccomp_data under ``token`` (the token's LE bit says it)."""
        if token is None:
            return self.default.byteorder
        return "little" if token & 0x40000000 else "big"

    def _lookup(self, nr: int, token: int) -> tuple[Arch, str] | None:
        for a in self.family(token):
            name = a.name_of(nr)
            if name is not None:
                return a, name
        return None

    def _spell(self, a: Arch, name: str) -> str:
        if a == self.default:
            return name
        if a.name == "x32" and self.default.name == "x86_64":
            return "x32_" + name
        return f"{_PREFIX.get(a.name, a.name)}.{name}"

    def name(self, nr: int, token: int | None) -> str | None:
        """How to print syscall ``nr`` where ``token`` is known (None: unknown), or None for hex.

        With no known token and several default arches, a name is printed only if every one of
        them agrees on it. The result always resolves back to ``nr`` through :meth:`resolve`.
        """
        if token is not None:
            if not self.family(token):
                return None
            found = self._lookup(nr, token)
        else:
            found = None
            for i, a in enumerate(self.arches):
                f = self._lookup(nr, a.token)
                if f is None or (i and f[1] != found[1]):  # type: ignore[index]
                    return None
                if not i:
                    found = f
        if found is None:
            return None
        text = self._spell(*found)
        try:
            return text if self.resolve(text, token) == nr else None
        except (UnknownSyscall, UnknownArch):
            return None

    def resolve(self, text: str, token: int | None) -> int:
        """Number of ``read``, ``x32_read``, ``i386.fork``... under ``token`` (None: default arch).

        Raises :class:`UnknownSyscall` / :class:`UnknownArch` with a one-line message.
        """
        if "." in text:
            prefix, _, name = text.partition(".")
            a = _arch.get(prefix)
            if name.startswith("x32_") and a.token == _arch.get("x32").token:
                a, name = _arch.get("x32"), name[4:]
            return a.nr(name)
        fam = self.family(token) if token is not None else []
        if not fam:
            fam = self.family(self.default.token)
        for a in fam:
            nr = a.syscalls.get(text)
            if nr is not None:
                return nr
        if text.startswith("x32_") and _arch.get("x32").has(text[4:]):
            return _arch.get("x32").nr(text[4:])
        return fam[0].nr(text)  # raises with a suggestion
