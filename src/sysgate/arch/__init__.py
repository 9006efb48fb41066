"""Architectures seccomp can see: AUDIT_ARCH tokens, byte order, argument width and syscall tables.

Each :class:`Arch` is one kernel syscall ABI as seccomp sees it in ``seccomp_data``: the
``arch`` token and the ``nr`` numbering. x32 shares x86_64's token and is told apart only by
the ``__X32_SYSCALL_BIT`` (0x40000000) in the number, which is why a filter that checks the
token alone still lets x32 numbers through; the compiler deals with that, this module only
states the facts.
"""
from __future__ import annotations

from ..errors import UserError

__all__ = [
    "Arch", "ARCHES", "UnknownArch", "UnknownSyscall", "get", "by_token", "native",
    "X32_SYSCALL_BIT", "all_syscall_names", "is_syscall_name",
]

X32_SYSCALL_BIT = 0x40000000

_AUDIT_64 = 0x80000000
_AUDIT_LE = 0x40000000
_AUDIT_N32 = 0x20000000


class UnknownArch(UserError):
    """An architecture name or token sysgate does not know."""


class UnknownSyscall(UserError, KeyError):
    """A syscall name no table knows (or the given arch lacks)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class Arch:
    """One syscall ABI.

    ``bits`` is the width of syscall arguments as the kernel fills ``seccomp_data.args``:
    32-bit ABIs get zero-extended 32-bit values, so filters for them never test a high word.
    x32 and MIPS n32 pass full 64-bit registers, so they are 64-bit here.
    ``compare_bits`` is the width filters compare arguments at: ``bits``, except 32 for x32 and
    MIPS n32, whose handlers are given 32-bit values (C ``int`` and ``long`` are 32-bit there);
    libseccomp treats both as 32-bit ABIs (``ARCH_SIZE_32``) and compares only the low word.
    Every other ABI's seccomp view already matches its handlers: the 32-bit ones (x86, arm, ppc,
    s390, mips o32, parisc, m68k, sh) get zero- or sign-extended 32-bit values, of which filters
    test only the low word, and the 64-bit ones are 64-bit throughout.
    Instances are singletons (one per ABI in :data:`ARCHES`), compared by identity.
    """

    __slots__ = ("name", "token", "bits", "big_endian", "table", "nr_base", "aliases", "libseccomp",
                 "compare_bits", "_by_name", "_by_nr")

    def __init__(self, name: str, token: int, bits: int, big_endian: bool, table: str, nr_base: int = 0,
                 aliases: tuple[str, ...] = (), libseccomp: str = "", compare_bits: int = 0) -> None:
        self.name = name
        self.token = token
        self.bits = bits
        self.compare_bits = compare_bits or bits
        self.big_endian = big_endian
        self.table = table  # column of the syscall table
        self.nr_base = nr_base
        self.aliases = aliases
        self.libseccomp = libseccomp  # SCMP_ARCH_* name
        self._by_name: dict[str, int] | None = None
        self._by_nr: dict[int, str] | None = None

    def __repr__(self) -> str:
        return f"<Arch {self.name} token={self.token:#010x}>"

    @property
    def byteorder(self) -> str:
        return "big" if self.big_endian else "little"

    def _load(self) -> None:
        from .syscall_tables import TABLES

        # Items are "name=nr"; splitting at both separators keeps the loop in C.
        words = TABLES[self.table].replace("=", " ").split()
        names = words[::2]
        base = self.nr_base
        nrs = [int(v) + base for v in words[1::2]] if base else list(map(int, words[1::2]))
        self._by_name = dict(zip(names, nrs))
        _LOADED.append(self._by_name)
        # A number two names share is named by the first: build from the end so it wins.
        self._by_nr = dict(zip(reversed(nrs), reversed(names)))

    @property
    def syscalls(self) -> dict[str, int]:
        """name -> number (numbers as seccomp sees them, ABI base included)."""
        if self._by_name is None:
            self._load()
        return self._by_name  # type: ignore[return-value]

    def has(self, name: str) -> bool:
        return name in self.syscalls

    def nr(self, name: str) -> int:
        """Number of ``name`` on this arch; :class:`UnknownSyscall` (with suggestions) if absent."""
        try:
            return self.syscalls[name]
        except KeyError:
            pass
        if is_syscall_name(name):
            raise UnknownSyscall(f"syscall {name!r} does not exist on {self.name}") from None
        raise UnknownSyscall(unknown_syscall_message(name)) from None

    def name_of(self, nr: int) -> str | None:
        """Name of syscall number ``nr`` or None."""
        if self._by_nr is None:
            self._load()
        return self._by_nr.get(nr)  # type: ignore[union-attr]

    def __str__(self) -> str:
        return self.name


def _a(name: str, em: int, flags: int, bits: int, table: str, nr_base: int = 0,
       aliases: tuple[str, ...] = (), scmp: str = "") -> Arch:
    # 64-bit registers with 32-bit handlers: x32 and MIPS n32 (see Arch.compare_bits)
    compare = 32 if flags & _AUDIT_N32 or nr_base == X32_SYSCALL_BIT else bits
    return Arch(name=name, token=em | flags, bits=bits, big_endian=not flags & _AUDIT_LE,
                table=table, nr_base=nr_base, aliases=aliases, libseccomp=scmp, compare_bits=compare)


# Order matters only for listings; tokens are from <linux/audit.h> and <linux/elf-em.h>.
ARCHES: tuple[Arch, ...] = (
    _a("x86_64", 62, _AUDIT_64 | _AUDIT_LE, 64, "x86_64", aliases=("amd64",), scmp="SCMP_ARCH_X86_64"),
    _a("x86", 3, _AUDIT_LE, 32, "x86", aliases=("i386", "i686", "ia32"), scmp="SCMP_ARCH_X86"),
    _a("x32", 62, _AUDIT_64 | _AUDIT_LE, 64, "x32", nr_base=X32_SYSCALL_BIT, scmp="SCMP_ARCH_X32"),
    _a("aarch64", 183, _AUDIT_64 | _AUDIT_LE, 64, "aarch64", aliases=("arm64",), scmp="SCMP_ARCH_AARCH64"),
    _a("arm", 40, _AUDIT_LE, 32, "arm", aliases=("armhf", "armel"), scmp="SCMP_ARCH_ARM"),
    _a("riscv64", 243, _AUDIT_64 | _AUDIT_LE, 64, "riscv64", scmp="SCMP_ARCH_RISCV64"),
    _a("ppc64le", 21, _AUDIT_64 | _AUDIT_LE, 64, "ppc64", scmp="SCMP_ARCH_PPC64LE"),
    _a("ppc64", 21, _AUDIT_64, 64, "ppc64", scmp="SCMP_ARCH_PPC64"),
    _a("ppc", 20, 0, 32, "ppc", aliases=("powerpc",), scmp="SCMP_ARCH_PPC"),
    _a("s390x", 22, _AUDIT_64, 64, "s390x", scmp="SCMP_ARCH_S390X"),
    _a("s390", 22, 0, 32, "s390", scmp="SCMP_ARCH_S390"),
    _a("mips", 8, 0, 32, "mips", nr_base=4000, scmp="SCMP_ARCH_MIPS"),
    _a("mipsel", 8, _AUDIT_LE, 32, "mips", nr_base=4000, scmp="SCMP_ARCH_MIPSEL"),
    _a("mips64", 8, _AUDIT_64, 64, "mips64", nr_base=5000, scmp="SCMP_ARCH_MIPS64"),
    _a("mips64el", 8, _AUDIT_64 | _AUDIT_LE, 64, "mips64", nr_base=5000, aliases=("mipsel64",),
       scmp="SCMP_ARCH_MIPSEL64"),
    _a("mips64n32", 8, _AUDIT_64 | _AUDIT_N32, 64, "mips64n32", nr_base=6000, scmp="SCMP_ARCH_MIPS64N32"),
    _a("mips64n32el", 8, _AUDIT_64 | _AUDIT_LE | _AUDIT_N32, 64, "mips64n32", nr_base=6000,
       aliases=("mipsel64n32",), scmp="SCMP_ARCH_MIPSEL64N32"),
    _a("loongarch64", 258, _AUDIT_64 | _AUDIT_LE, 64, "loongarch64", scmp="SCMP_ARCH_LOONGARCH64"),
    _a("parisc", 15, 0, 32, "parisc", scmp="SCMP_ARCH_PARISC"),
    _a("parisc64", 15, _AUDIT_64, 64, "parisc64", scmp="SCMP_ARCH_PARISC64"),
    _a("m68k", 4, 0, 32, "m68k", scmp="SCMP_ARCH_M68K"),
    _a("sh", 42, _AUDIT_LE, 32, "sh", aliases=("shel",), scmp="SCMP_ARCH_SH"),
    _a("sheb", 42, 0, 32, "sh", scmp="SCMP_ARCH_SHEB"),
)

_BY_NAME: dict[str, Arch] = {}
for _arch in ARCHES:
    for _n in (_arch.name, *_arch.aliases, _arch.libseccomp):
        _BY_NAME[_n.lower()] = _arch
# Docker/OCI spell arches as SCMP_ARCH_* and Go names ("amd64", "arm64", "ppc64le", ...).
_BY_NAME.update({"386": _BY_NAME["x86"], "mips64le": _BY_NAME["mips64el"], "mipsle": _BY_NAME["mipsel"],
                 "mips64n32le": _BY_NAME["mips64n32el"], "riscv": _BY_NAME["riscv64"]})


def get(name: str | Arch) -> Arch:
    """Look up an arch by sysgate name, alias, Go name or ``SCMP_ARCH_*`` name (case-insensitive)."""
    if isinstance(name, Arch):
        return name
    try:
        return _BY_NAME[name.lower()]
    except KeyError:
        import difflib  # only for the error's suggestions: it is slow to import

        close = difflib.get_close_matches(name.lower(), [a.name for a in ARCHES], n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownArch(f"unknown architecture {name!r}{hint}; known: "
                          + ", ".join(a.name for a in ARCHES)) from None


def by_token(token: int) -> list[Arch]:
    """Arches whose AUDIT_ARCH token is ``token`` (x86_64 and x32 share one)."""
    return [a for a in ARCHES if a.token == token]


def native() -> Arch:
    """The arch of this Python process (as the kernel sees its syscalls)."""
    import os
    import sys

    m = os.uname().machine.lower()  # what platform.machine() returns on Linux, without importing platform
    table = {"x86_64": "x86_64", "amd64": "x86_64", "i386": "x86", "i686": "x86", "aarch64": "aarch64",
             "arm64": "aarch64", "riscv64": "riscv64", "ppc64le": "ppc64le", "ppc64": "ppc64",
             "s390x": "s390x", "loongarch64": "loongarch64"}
    if m.startswith("arm"):
        return get("arm")
    if m in table:
        name = table[m]
        if name == "x86_64" and sys.maxsize < 2**32:
            name = "x32"
        return get(name)
    raise UnknownArch(f"cannot tell the seccomp architecture of machine {m!r}")


_ALL_NAMES: frozenset[str] | None = None


def all_syscall_names() -> frozenset[str]:
    """Every syscall name known on at least one architecture."""
    global _ALL_NAMES
    if _ALL_NAMES is None:
        from .syscall_tables import TABLES

        # Items are "name=nr": split at both separators and keep every other word (C speed,
        # a few times faster than partitioning each of the ~8000 items in Python).
        _ALL_NAMES = frozenset(" ".join(TABLES.values()).replace("=", " ").split()[::2])
    return _ALL_NAMES


_ALL_TEXT: str | None = None
_LOADED: list[dict[str, int]] = []  # the name -> number tables loaded so far
_KNOWN: dict[str, bool] = {}  # is_syscall_name's answers for names no loaded table has


def is_syscall_name(name: str) -> bool:
    """``name in all_syscall_names()``, without building that set: a profile has a few hundred
    names, and finding each in the tables costs less than the set of every arch's names."""
    if _ALL_NAMES is not None:
        return name in _ALL_NAMES
    for by_name in _LOADED:  # the tables already loaded answer most names
        if name in by_name:
            return True
    known = _KNOWN.get(name)
    if known is None:
        known = _KNOWN[name] = _in_tables_text(name)
    return known


def _in_tables_text(name: str) -> bool:
    if not (name.isascii() and name.isidentifier()):  # every name is; and no space or "=" can match
        return False
    global _ALL_TEXT
    if _ALL_TEXT is None:
        from .syscall_tables import TABLES

        _ALL_TEXT = " " + " ".join(TABLES.values())  # " name=nr name=nr ..."
    return f" {name}=" in _ALL_TEXT


def unknown_syscall_message(name: str) -> str:
    if len(name) > 64:  # no syscall name is this long: no suggestions (difflib is slow on it), short message
        return f"unknown syscall {name[:40]!r}... ({len(name)} characters)"
    import difflib  # only for the error's suggestions: it is slow to import

    close = difflib.get_close_matches(name, sorted(all_syscall_names()), n=3, cutoff=0.7)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown syscall {name!r}{hint}"
