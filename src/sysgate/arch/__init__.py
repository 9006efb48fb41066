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
    "Arch", "ARCHES", "UnknownArch", "UnknownSyscall", "get", "by_token", "native", "from_machine",
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
                 "compare_bits", "audit", "go", "systemd", "kafel", "machines", "_by_name", "_by_nr")

    def __init__(self, name: str, token: int, bits: int, big_endian: bool, table: str, nr_base: int = 0,
                 aliases: tuple[str, ...] = (), libseccomp: str = "", compare_bits: int = 0, audit: str = "",
                 go: str = "", systemd: str | None = None, kafel: str | None = None,
                 machines: tuple[str, ...] = ()) -> None:
        self.name = name
        self.token = token
        self.bits = bits
        self.compare_bits = compare_bits or bits
        self.big_endian = big_endian
        self.table = table  # column of the syscall table
        self.nr_base = nr_base
        self.aliases = aliases
        #: How other tools name this ABI: libseccomp's ``SCMP_ARCH_*`` (also Docker's and OCI's
        #: ``architectures``), <linux/audit.h>'s ``AUDIT_ARCH_*`` (x32 shares x86_64's), moby's Go
        #: name (``includes.arches``), systemd's ``SystemCallArchitectures=`` name and Kafel's
        #: ``ON`` name (None: the tool has no such ABI), and the ``uname -m`` machines that run it
        #: natively.
        self.libseccomp = libseccomp
        self.audit = audit
        self.go = go or name
        self.systemd = systemd
        self.kafel = kafel
        self.machines = machines
        self._by_name: dict[str, int] | None = None
        self._by_nr: dict[int, str] | None = None

    def __repr__(self) -> str:
        return f"<Arch {self.name} token={self.token:#010x}>"

    @property
    def byteorder(self) -> str:
        return "big" if self.big_endian else "little"

    def _load(self) -> None:
        numbers = _table(self.table)
        base = self.nr_base
        by_name = {name: nr + base for name, nr in numbers.items()} if base else dict(numbers)
        self._by_name = by_name
        # A number two names share is named by the first (in name order): build from the end so it wins.
        self._by_nr = {nr: name for name, nr in reversed(by_name.items())}

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
       aliases: tuple[str, ...] = (), scmp: str = "", audit: str = "", **names: object) -> Arch:
    # 64-bit registers with 32-bit handlers: x32 and MIPS n32 (see Arch.compare_bits)
    compare = 32 if flags & _AUDIT_N32 or nr_base == X32_SYSCALL_BIT else bits
    return Arch(name=name, token=em | flags, bits=bits, big_endian=not flags & _AUDIT_LE,
                table=table, nr_base=nr_base, aliases=aliases, libseccomp="SCMP_ARCH_" + scmp,
                compare_bits=compare, audit="AUDIT_ARCH_" + audit, **names)  # type: ignore[arg-type]


# Order matters only for listings; tokens are from <linux/audit.h> and <linux/elf-em.h>. Names:
# libseccomp's (scmp), audit.h's, moby's Go names (go, when not sysgate's), systemd's
# (src/shared/seccomp-util.c, seccomp_arch_to_string), Kafel's (src/syscall.c) and uname machines.
ARCHES: tuple[Arch, ...] = (
    _a("x86_64", 62, _AUDIT_64 | _AUDIT_LE, 64, "x86_64", aliases=("amd64",), scmp="X86_64", audit="X86_64",
       go="amd64", systemd="x86-64", kafel="x86_64", machines=("x86_64", "amd64")),
    _a("x86", 3, _AUDIT_LE, 32, "x86", aliases=("i386", "i686", "ia32"), scmp="X86", audit="I386",
       systemd="x86", kafel="x86", machines=("i386", "i686")),
    _a("x32", 62, _AUDIT_64 | _AUDIT_LE, 64, "x32", nr_base=X32_SYSCALL_BIT, scmp="X32", audit="X86_64",
       systemd="x32"),
    _a("aarch64", 183, _AUDIT_64 | _AUDIT_LE, 64, "aarch64", aliases=("arm64",), scmp="AARCH64", audit="AARCH64",
       go="arm64", systemd="arm64", kafel="aarch64", machines=("aarch64", "arm64")),
    _a("arm", 40, _AUDIT_LE, 32, "arm", aliases=("armhf", "armel"), scmp="ARM", audit="ARM", systemd="arm",
       kafel="arm"),  # every "arm*" machine: see native()
    _a("riscv64", 243, _AUDIT_64 | _AUDIT_LE, 64, "riscv64", scmp="RISCV64", audit="RISCV64", systemd="riscv64",
       kafel="riscv64", machines=("riscv64",)),
    _a("ppc64le", 21, _AUDIT_64 | _AUDIT_LE, 64, "ppc64", scmp="PPC64LE", audit="PPC64LE", systemd="ppc64-le",
       machines=("ppc64le",)),
    _a("ppc64", 21, _AUDIT_64, 64, "ppc64", scmp="PPC64", audit="PPC64", systemd="ppc64", machines=("ppc64",)),
    _a("ppc", 20, 0, 32, "ppc", aliases=("powerpc",), scmp="PPC", audit="PPC", systemd="ppc"),
    _a("s390x", 22, _AUDIT_64, 64, "s390x", scmp="S390X", audit="S390X", systemd="s390x", machines=("s390x",)),
    _a("s390", 22, 0, 32, "s390", scmp="S390", audit="S390", systemd="s390"),
    _a("mips", 8, 0, 32, "mips", nr_base=4000, scmp="MIPS", audit="MIPS", systemd="mips", kafel="mips"),
    _a("mipsel", 8, _AUDIT_LE, 32, "mips", nr_base=4000, scmp="MIPSEL", audit="MIPSEL", go="mipsle",
       systemd="mips-le"),
    _a("mips64", 8, _AUDIT_64, 64, "mips64", nr_base=5000, scmp="MIPS64", audit="MIPS64", systemd="mips64",
       kafel="mips64"),
    _a("mips64el", 8, _AUDIT_64 | _AUDIT_LE, 64, "mips64", nr_base=5000, aliases=("mipsel64",),
       scmp="MIPSEL64", audit="MIPSEL64", go="mips64le", systemd="mips64-le"),
    _a("mips64n32", 8, _AUDIT_64 | _AUDIT_N32, 64, "mips64n32", nr_base=6000, scmp="MIPS64N32",
       audit="MIPS64N32", systemd="mips64-n32"),
    _a("mips64n32el", 8, _AUDIT_64 | _AUDIT_LE | _AUDIT_N32, 64, "mips64n32", nr_base=6000,
       aliases=("mipsel64n32",), scmp="MIPSEL64N32", audit="MIPSEL64N32", go="mips64n32le",
       systemd="mips64-le-n32"),
    _a("loongarch64", 258, _AUDIT_64 | _AUDIT_LE, 64, "loongarch64", scmp="LOONGARCH64", audit="LOONGARCH64",
       go="loong64", systemd="loongarch64", machines=("loongarch64",)),
    _a("parisc", 15, 0, 32, "parisc", scmp="PARISC", audit="PARISC", systemd="parisc"),
    _a("parisc64", 15, _AUDIT_64, 64, "parisc64", scmp="PARISC64", audit="PARISC64", systemd="parisc64"),
    _a("m68k", 4, 0, 32, "m68k", scmp="M68K", audit="M68K", kafel="m68k"),
    _a("sh", 42, _AUDIT_LE, 32, "sh", aliases=("shel",), scmp="SH", audit="SHEL"),
    _a("sheb", 42, 0, 32, "sh", scmp="SHEB", audit="SH"),
)

_BY_NAME: dict[str, Arch] = {}
for _arch in ARCHES:
    # Docker/OCI spell arches as SCMP_ARCH_* and moby's Go names ("amd64", "arm64", "mipsle", ...).
    for _n in (_arch.name, *_arch.aliases, _arch.libseccomp, _arch.go):
        _BY_NAME[_n.lower()] = _arch
_BY_NAME.update({"386": _BY_NAME["x86"], "riscv": _BY_NAME["riscv64"]})  # Go's GOARCH spellings


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

    m = os.uname().machine  # what platform.machine() returns on Linux, without importing platform
    a = from_machine(m)
    if a.name == "x86_64" and sys.maxsize < 2**32:
        return get("x32")
    return a


def from_machine(machine: str) -> Arch:
    """The arch of a ``uname -m`` machine name (``x86_64``, ``arm64``, ``armv7l``, ...)."""
    m = machine.lower()
    if m.startswith("arm") and m != "arm64":
        return get("arm")
    for a in ARCHES:
        if m in a.machines:
            return a
    raise UnknownArch(f"cannot tell the seccomp architecture of machine {machine!r}")


def _table(table: str) -> dict[str, int]:
    """``NUMBERS`` of the generated module ``tables/<table>.py`` (name -> number without the ABI base).

    One module per table, imported on first use: a process mostly needs one ABI's numbers
    (``sysgate run``: the host's). ``__import__`` is what the statement ``from .tables.<table>
    import NUMBERS`` calls; ``importlib.import_module`` would first import importlib (not loaded
    at start-up under ``python -S``).
    """
    numbers: dict[str, int] = __import__("tables." + table, globals(), None, ("NUMBERS",), 1).NUMBERS
    return numbers


_ALL_NAMES: frozenset[str] | None = None


def all_syscall_names() -> frozenset[str]:
    """Every syscall name known on at least one architecture."""
    global _ALL_NAMES
    if _ALL_NAMES is None:
        from .tables.names import NAMES  # the tables' index (tools/gen_syscalls.py)

        _ALL_NAMES = frozenset(NAMES)
    return _ALL_NAMES


def is_syscall_name(name: str) -> bool:
    """Whether ``name`` is a syscall on at least one architecture."""
    if _ALL_NAMES is None:
        # Mostly asked about a name one arch lacks and another loaded one has (a rule of a profile
        # compiled for several arches): answered without importing every table.
        for a in ARCHES:
            if a._by_name is not None and name in a._by_name:
                return True
    return name in all_syscall_names()


def unknown_syscall_message(name: str) -> str:
    if len(name) > 64:  # no syscall name is this long: no suggestions (difflib is slow on it), short message
        return f"unknown syscall {name[:40]!r}... ({len(name)} characters)"
    import difflib  # only for the error's suggestions: it is slow to import

    close = difflib.get_close_matches(name, sorted(all_syscall_names()), n=3, cutoff=0.7)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"unknown syscall {name!r}{hint}"
