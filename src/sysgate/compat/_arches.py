"""libseccomp's view of the architectures: tokens, sizes and syscall name resolution.

libseccomp differs from :mod:`sysgate.arch` in ways its users can see, so they live here:

* API tokens are ``SCMP_ARCH_*``; x32 has its own (``0x4000003e``) while the filter checks
  x86_64's ``AUDIT_ARCH`` token, and the Python bindings expose tokens as *signed* ints.
* Argument width is libseccomp's ``ARCH_SIZE``: x32 and MIPS n32 are 32-bit there, so only
  the low word of an argument is compared on them.
* A name an arch lacks resolves to a negative pseudo number (:mod:`._pnr`), and on the
  arches that multiplex socket and IPC calls through socketcall(2)/ipc(2) the socket and IPC
  names resolve to the -101.. and -201.. pseudo numbers, which the rule code then rewrites.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from .. import arch as _sg
from ._pnr import IPC_CALLS, PNR, SOCKET_CALLS

__all__ = ["LSArch", "ARCHES", "BY_TOKEN", "by_name", "lookup", "native", "NR_SCMP_ERROR", "NR_SCMP_UNDEF",
           "to_signed32", "SOCKET_NAMES", "IPC_NAMES"]

NR_SCMP_ERROR = -1
NR_SCMP_UNDEF = -2
SOCKET_NAMES = frozenset(SOCKET_CALLS)
IPC_NAMES = frozenset(IPC_CALLS)


def to_signed32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


@dataclass(frozen=True, eq=False)
class LSArch:
    """One libseccomp architecture (``struct arch_def``)."""

    name: str          # libseccomp's name (seccomp_arch_resolve_name)
    const: str         # Python constant name (Arch.X86_64)
    sg_name: str       # the sysgate arch with the same syscall table
    token: int         # SCMP_ARCH_* (unsigned)
    size: int          # 32 or 64: how many bits of an argument the filter compares
    since: str = "2.5"
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def sg(self) -> _sg.Arch:
        return _sg.get(self.sg_name)

    @property
    def token_bpf(self) -> int:
        return self.sg.token

    @property
    def big_endian(self) -> bool:
        return self.sg.big_endian

    @cached_property
    def mux(self) -> bool:
        """Multiplexes socket/IPC calls (has socketcall(2)): socket names get rewritten."""
        return "socketcall" in self.sg.syscalls

    @cached_property
    def sys_socketcall(self) -> int:
        return self.sg.syscalls.get("socketcall", NR_SCMP_ERROR)

    @cached_property
    def sys_ipc(self) -> int:
        return self.sg.syscalls.get("ipc", NR_SCMP_ERROR)

    @cached_property
    def _by_num(self) -> dict[int, str]:
        # Real numbers, then the pseudo numbers of the names this arch lacks; the first name in
        # alphabetical order wins a shared number, as libseccomp's table search does.
        # Keys are numbers without the ABI base (x32 bit, MIPS 4000/5000/6000), as in
        # libseccomp's tables.
        base = self.sg.nr_base
        table: dict[int, str] = {}
        for name, nr in sorted(self.sg.syscalls.items(), key=lambda kv: kv[0]):
            table.setdefault(nr - base, name)
        for name in sorted(PNR):
            if name not in self.sg.syscalls:
                table.setdefault(PNR[name], name)
        return table

    # -- raw table (arch_def.syscall_resolve_*_raw) --------------------------------------------
    def resolve_name_raw(self, name: str) -> int:
        nr = self.sg.syscalls.get(name)
        if nr is not None:
            return nr
        if name in PNR:
            return PNR[name]
        return NR_SCMP_ERROR

    def resolve_num_raw(self, num: int) -> str | None:
        # libseccomp strips the ABI base when present, so "read" on MIPS o32 is found both
        # as 4003 and as 3.
        base = self.sg.nr_base
        if base and num >= base:
            num -= base
        return self._by_num.get(num)

    # -- munged (arch_syscall_resolve_*) --------------------------------------------------------
    def resolve_name(self, name: str) -> int:
        if self.mux and (name in SOCKET_NAMES or name in IPC_NAMES):
            return PNR[name]
        return self.resolve_name_raw(name)

    def resolve_num(self, num: int) -> str | None:
        if self.mux and (-120 <= num <= -101 or -224 <= num <= -201):
            for name in (*SOCKET_CALLS, *IPC_CALLS):
                if PNR[name] == num:
                    return name
        return self.resolve_num_raw(num)

    def rewrite(self, num: int) -> tuple[int, int]:
        """``arch_syscall_rewrite``: (rc, syscall) with rc 0, -EINVAL or -EDOM."""
        if num >= -1:
            return 0, num
        if num > -100:
            return -22, num
        if num > -10000 and self.mux:
            if -120 <= num <= -100:
                num = self.sys_socketcall
            elif -224 <= num <= -200:
                num = self.sys_ipc
        return (-33, num) if num < 0 else (0, num)

    def __repr__(self) -> str:
        return f"LSArch({self.name})"


def _a(name: str, const: str, sg: str, token: int, size: int, since: str = "2.5") -> LSArch:
    return LSArch(name, const, sg, token, size, since)


# Order of the Arch constants in the bindings; tokens from <seccomp.h>.
ARCHES: tuple[LSArch, ...] = (
    _a("x86", "X86", "x86", 0x40000003, 32),
    _a("x86_64", "X86_64", "x86_64", 0xC000003E, 64),
    _a("x32", "X32", "x32", 0x4000003E, 32),
    _a("arm", "ARM", "arm", 0x40000028, 32),
    _a("aarch64", "AARCH64", "aarch64", 0xC00000B7, 64),
    _a("loongarch64", "LOONGARCH64", "loongarch64", 0xC0000102, 64, "2.6"),
    _a("m68k", "M68K", "m68k", 0x00000004, 32, "2.6"),
    _a("mips", "MIPS", "mips", 0x00000008, 32),
    _a("mips64", "MIPS64", "mips64", 0x80000008, 64),
    _a("mips64n32", "MIPS64N32", "mips64n32", 0xA0000008, 32),
    _a("mipsel", "MIPSEL", "mipsel", 0x40000008, 32),
    _a("mipsel64", "MIPSEL64", "mips64el", 0xC0000008, 64),
    _a("mipsel64n32", "MIPSEL64N32", "mips64n32el", 0xE0000008, 32),
    _a("parisc", "PARISC", "parisc", 0x0000000F, 32),
    _a("parisc64", "PARISC64", "parisc64", 0x8000000F, 64),
    _a("ppc", "PPC", "ppc", 0x00000014, 32),
    _a("ppc64", "PPC64", "ppc64", 0x80000015, 64),
    _a("ppc64le", "PPC64LE", "ppc64le", 0xC0000015, 64),
    _a("s390", "S390", "s390", 0x00000016, 32),
    _a("s390x", "S390X", "s390x", 0x80000016, 64),
    _a("riscv64", "RISCV64", "riscv64", 0xC00000F3, 64),
    _a("sh", "SH", "sh", 0x4000002A, 32, "2.6"),
    _a("sheb", "SHEB", "sheb", 0x0000002A, 32, "2.6"),
)

BY_TOKEN: dict[int, LSArch] = {a.token: a for a in ARCHES}
_BY_NAME: dict[str, LSArch] = {a.name: a for a in ARCHES}


def by_name(name: str) -> LSArch | None:
    """``arch_def_lookup_name``: exact libseccomp names only (``"mipsel64"``, not ``"mips64el"``)."""
    return _BY_NAME.get(name)


def lookup(token: int) -> LSArch | None:
    """``arch_def_lookup`` by (unsigned or signed) API token; 0 is *not* native here."""
    return BY_TOKEN.get(token & 0xFFFFFFFF)


_NATIVE: LSArch | None = None


def native() -> LSArch:
    """The libseccomp arch of this process."""
    global _NATIVE
    if _NATIVE is None:
        name = _sg.native().name
        for a in ARCHES:
            if a.sg_name == name:
                _NATIVE = a
                break
        else:  # pragma: no cover - every sysgate native arch has a libseccomp twin
            raise _sg.UnknownArch(f"libseccomp has no architecture for {name}")
    return _NATIVE
