#!/usr/bin/env python3
"""Generate src/sysgate/arch/constant_tables.py: named constants per architecture from kernel headers.

Usage: python3 tools/gen_constants.py [--check]

Runs at development time only; its output is committed, so neither CI nor users need any of this.
Needs Debian's cross toolchains and headers (one ``apt-get install`` line, printed by ``--deps``):
``gcc-<triplet>`` plus ``linux-libc-dev-<arch>-cross`` and ``libc6-dev-<arch>-cross`` for every arch.

How values are obtained, per architecture:

1. Which names exist: for each *family* (O_*, CLONE_*, E*, ...) its headers are run through the
   target's preprocessor (``-E -dM`` for macros, ``-E`` for enumerators such as ``enum bpf_cmd``
   and the personality values, which have no #define), and names matching the family pattern kept.
   Two header sets: the kernel's uapi headers (linux-libc-dev) and glibc's (libc6-dev), the latter
   only for names the kernel does not export to userspace (AF_*, SOCK_*, MSG_*, MNT_*, EFD_*, ...).
2. Values: one C file per header set defines ``const long long v[] = {(long long)(NAME), ...}`` in a
   section of its own; it is compiled with the target's real cross compiler (so ``sizeof`` in ioctl
   encodings, enum values and casts are the target's own) and the section is read from the ELF
   object. Names whose expansion is not an integer constant (glibc's ``SIGRTMIN``, a ``time_t``
   test in a kernel-only file) are dropped by the compiler's error lines and retried.
3. Kernel values win over glibc values for names both define: seccomp filters see the kernel ABI.
   The differences are listed in the generated file (e.g. O_LARGEFILE, which 64-bit glibc defines 0).

Byte order never changes these values; the generator compiles both halves of each pair it has a
compiler for (ppc64/ppc64le, mips/mipsel, ...) and asserts they agree. Arches without a Debian 12
toolchain are derived (see DERIVED below) and say so in the provenance.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import struct
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src" / "sysgate" / "arch" / "constant_tables.py"


@dataclass(frozen=True)
class Family:
    """A group of related constants: a name pattern and the headers that define them."""

    key: str
    pattern: str
    kernel: tuple[str, ...] = ()
    libc: tuple[str, ...] = ()
    exclude: str = ""
    enum_tags: tuple[str, ...] = ()  # take enumerators of these enums (tag "" = any enum)


_N = r"[A-Z0-9_]+"
FAMILIES: tuple[Family, ...] = (
    Family("open", rf"O_{_N}", ("linux/fcntl.h",), ("fcntl.h",)),
    Family("at", rf"AT_{_N}", ("linux/fcntl.h",), ("fcntl.h",)),
    Family("fcntl", rf"F_{_N}|FD_CLOEXEC|FASYNC", ("linux/fcntl.h",), ("fcntl.h",),
           exclude=r"F_(LOCK|TLOCK|ULOCK|TEST|OK)"),  # lockf()/access() values glibc puts in fcntl.h
    Family("access", r"[RWXF]_OK", (), ("unistd.h",)),
    Family("seek", rf"SEEK_{_N}", ("linux/fs.h",), ("unistd.h",)),
    Family("clone", rf"CLONE_{_N}|CSIGNAL", ("linux/sched.h",), ("sched.h",)),
    Family("sched", rf"SCHED_{_N}", ("linux/sched.h",), ("sched.h",)),
    Family("socket", rf"[AP]F_{_N}|SOCK_{_N}|MSG_{_N}|SHUT_{_N}|SOMAXCONN", ("linux/socket.h", "linux/net.h"),
           ("sys/socket.h",)),
    Family("sockopt", rf"SOL_{_N}|SO_{_N}", ("asm/socket.h", "linux/socket.h"),
           ("sys/socket.h", "netinet/in.h", "netinet/tcp.h", "netinet/udp.h")),
    Family("ipproto", rf"IPPROTO_{_N}", ("linux/in.h", "linux/in6.h"), ("netinet/in.h",)),
    Family("netlink", rf"NETLINK_{_N}", ("linux/netlink.h",)),
    Family("mman", rf"PROT_{_N}|MAP_{_N}|MADV_{_N}|MCL_{_N}|MLOCK_{_N}|MREMAP_{_N}|PKEY_{_N}"
                   r"|MS_(ASYNC|SYNC|INVALIDATE)",
           ("linux/mman.h", "asm/mman.h"), ("sys/mman.h",), exclude=r"MAP_FAILED"),
    Family("mount", rf"MS_{_N}|MNT_{_N}|UMOUNT_NOFOLLOW|MOUNT_ATTR_{_N}|MOVE_MOUNT_{_N}|OPEN_TREE_{_N}"
                    rf"|FSOPEN_{_N}|FSPICK_{_N}|FSMOUNT_{_N}|FSCONFIG_{_N}",
           ("linux/mount.h", "linux/fs.h"), ("sys/mount.h",)),
    Family("prctl", rf"PR_{_N}", ("linux/prctl.h",), ("sys/prctl.h",)),
    Family("seccomp", rf"SECCOMP_{_N}", ("linux/seccomp.h",)),
    Family("futex", rf"FUTEX_{_N}", ("linux/futex.h",)),
    Family("tty", rf"TIOC{_N}|FIO{_N}|TC{_N}", ("asm/termios.h", "asm/ioctls.h", "linux/serial.h"),
           ("sys/ioctl.h", "termios.h")),
    Family("sockios", rf"SIOC{_N}", ("linux/sockios.h", "asm/sockios.h"),
           ("sys/types.h", "sys/ioctl.h", "linux/sockios.h")),  # mips uses pid_t, which only libc defines
    Family("signal", rf"SIG{_N}|SA_{_N}|SS_{_N}|MINSIGSTKSZ", ("asm/signal.h", "linux/signal.h"), ("signal.h",),
           exclude=r"SIG_(DFL|IGN|ERR|HOLD)|SA_RESTORER_.*"),
    Family("errno", r"E[A-Z0-9]+", ("asm/errno.h",), ("errno.h",)),
    Family("ptrace", rf"PTRACE_{_N}", ("linux/ptrace.h", "asm/ptrace.h")),
    Family("arch_prctl", rf"ARCH_{_N}", ("asm/prctl.h",)),
    Family("wait", r"P_(ALL|PID|PGID|PIDFD)|W(NOHANG|UNTRACED|STOPPED|EXITED|CONTINUED|NOWAIT)|__W(NOTHREAD|ALL|CLONE)",
           ("linux/wait.h",), ("sys/wait.h",)),
    Family("stat", rf"S_I[A-Z0-9]+|STATX_{_N}", ("linux/stat.h",), ("sys/stat.h",)),
    Family("keyctl", rf"KEYCTL_{_N}|KEY_SPEC_{_N}|KEY_REQKEY_DEFL_{_N}", ("linux/keyctl.h",)),
    Family("personality", rf"PER_{_N}|UNAME26|ADDR_NO_RANDOMIZE|FDPIC_FUNCPTRS|MMAP_PAGE_ZERO|ADDR_COMPAT_LAYOUT"
                          r"|READ_IMPLIES_EXEC|ADDR_LIMIT_32BIT|SHORT_INODE|WHOLE_SECONDS|STICKY_TIMEOUTS"
                          r"|ADDR_LIMIT_3GB",
           ("linux/personality.h",), enum_tags=("",)),
    Family("rlimit", r"RLIMIT_[A-Z0-9_]+|RLIM_INFINITY|RLIM64_INFINITY|RLIM_NLIMITS", ("linux/resource.h",),
           ("sys/resource.h",)),
    Family("cap", rf"CAP_{_N}", ("linux/capability.h",)),
    Family("bpf", rf"BPF_{_N}", ("linux/bpf.h",), enum_tags=("bpf_cmd", "bpf_map_type", "bpf_prog_type")),
    Family("random", rf"GRND_{_N}", ("linux/random.h",), ("sys/random.h",)),
    Family("eventfd", rf"EFD_{_N}", (), ("sys/eventfd.h",)),
    Family("inotify", rf"IN_{_N}", ("linux/inotify.h",), ("sys/inotify.h",)),
    Family("memfd", rf"MFD_{_N}", ("linux/memfd.h",), ("sys/mman.h",)),
    Family("epoll", rf"EPOLL{_N}", ("linux/eventpoll.h",), ("sys/epoll.h",)),
    Family("fdfile", rf"SFD_{_N}|TFD_{_N}", ("linux/signalfd.h",), ("sys/signalfd.h", "sys/timerfd.h"),
           exclude=r"TFD_IOC_.*"),
    Family("clock", rf"CLOCK_{_N}|TIMER_ABSTIME", ("linux/time.h",), ("time.h",)),
    Family("fsmisc", rf"RENAME_{_N}|CLOSE_RANGE_{_N}|SPLICE_F_{_N}|POSIX_FADV_{_N}|PIDFD_{_N}|RESOLVE_{_N}",
           ("linux/fs.h", "linux/close_range.h", "linux/fadvise.h", "linux/pidfd.h", "linux/openat2.h"),
           ("fcntl.h", "stdio.h")),
    Family("landlock", rf"LANDLOCK_{_N}", ("linux/landlock.h",)),
)


@dataclass(frozen=True)
class Target:
    """How to compile for one sysgate arch."""

    cc: str
    flags: tuple[str, ...] = ()
    kernel_pkg: str = ""
    libc_pkg: str = ""  # "" = no glibc for this ABI: take libc-only names from libc_from
    libc_from: str = ""
    sysroot_include: str = ""  # replaces the compiler's own include dirs (-nostdinc)
    stub32: bool = False  # glibc headers need a gnu/stubs-32.h that the 64-bit package lacks


def _cross(arch: str) -> tuple[str, str]:
    return f"linux-libc-dev-{arch}-cross", f"libc6-dev-{arch}-cross"


TARGETS: dict[str, Target] = {
    "x86_64": Target("gcc", (), "linux-libc-dev", "libc6-dev"),
    "x86": Target("i686-linux-gnu-gcc", (), *_cross("i386")),
    "x32": Target("x86_64-linux-gnux32-gcc", (), *_cross("x32")),
    "aarch64": Target("aarch64-linux-gnu-gcc", (), *_cross("arm64")),
    "arm": Target("arm-linux-gnueabihf-gcc", (), *_cross("armhf")),
    "riscv64": Target("riscv64-linux-gnu-gcc", (), *_cross("riscv64")),
    "ppc64le": Target("powerpc64le-linux-gnu-gcc", (), *_cross("ppc64el")),
    "ppc64": Target("powerpc64-linux-gnu-gcc", (), *_cross("ppc64")),
    "ppc": Target("powerpc-linux-gnu-gcc", (), *_cross("powerpc")),
    "s390x": Target("s390x-linux-gnu-gcc", (), *_cross("s390x")),
    # Debian has no 31-bit s390 userland; glibc's s390 headers serve both word sizes.
    "s390": Target("s390x-linux-gnu-gcc", ("-m31",), *_cross("s390x"), stub32=True),
    "mips": Target("mips-linux-gnu-gcc", (), *_cross("mips")),
    "mipsel": Target("mipsel-linux-gnu-gcc", (), *_cross("mipsel")),
    "mips64": Target("mips64-linux-gnuabi64-gcc", (), *_cross("mips64")),
    "mips64el": Target("mips64el-linux-gnuabi64-gcc", (), *_cross("mips64el")),
    "mips64n32": Target("mips64-linux-gnuabi64-gcc", ("-mabi=n32",), *_cross("mipsn32"),
                        sysroot_include="/usr/mips64-linux-gnuabin32/include"),
    "mips64n32el": Target("mips64el-linux-gnuabi64-gcc", ("-mabi=n32",), *_cross("mipsn32"),
                          sysroot_include="/usr/mips64-linux-gnuabin32/include"),
    "parisc": Target("hppa-linux-gnu-gcc", (), *_cross("hppa")),
    # No 64-bit parisc userland exists; the kernel headers are shared with 32-bit hppa.
    "parisc64": Target("hppa64-linux-gnu-gcc", (), _cross("hppa")[0], "", libc_from="parisc",
                       sysroot_include="/usr/hppa-linux-gnu/include"),
    "m68k": Target("m68k-linux-gnu-gcc", (), *_cross("m68k")),
    "sh": Target("sh4-linux-gnu-gcc", (), *_cross("sh4")),
    "sheb": Target("sh4-linux-gnu-gcc", ("-mb",), *_cross("sh4")),
}

# Arches with no Debian 12 toolchain or headers. LoongArch's uapi asm/ directory uses asm-generic for
# every header covered here except signal.h and ptrace.h (torvalds/linux arch/loongarch/include/uapi/asm
# @ 512a93a93dbe739aa5f6aeb22f179dff3f89300e), exactly like riscv64, so it starts from riscv64's values.
DERIVED: dict[str, tuple[str, dict[str, int], str]] = {
    "loongarch64": ("riscv64", {"MINSIGSTKSZ": 4096, "SIGSTKSZ": 16384, "PTRACE_SYSEMU": 0x1F,
                                "PTRACE_SYSEMU_SINGLESTEP": 0x20},
                    "riscv64's values (both asm-generic) with MINSIGSTKSZ/SIGSTKSZ/PTRACE_SYSEMU* from "
                    "torvalds/linux arch/loongarch/include/uapi/asm/{signal,ptrace}.h @ 512a93a9"),
}

# Equal-by-construction pairs, checked after generation.
SAME = (("ppc64", "ppc64le"), ("mips", "mipsel"), ("mips64", "mips64el"), ("mips64n32", "mips64n32el"),
        ("sh", "sheb"))

# Included first in every kernel-only file: some uapi headers test __BITS_PER_LONG before including
# anything that defines it (mips asm/fcntl.h picks F_GETLK64 that way), as glibc always has by then.
KERNEL_PRELUDE = ("linux/types.h", "asm/bitsperlong.h", "linux/posix_types.h")

# Macros that are not integer constants in any header set, replaced by an equivalent one that is.
FALLBACK = {"SIGRTMAX": "__SIGRTMAX"}  # x86's uapi SIGRTMAX is _NSIG, which uapi never defines; glibc's is

# glibc's value is the one the kernel acts on for these, where the uapi headers as seen by that ABI
# are wrong: MIPS n32 sees RLIM_INFINITY 0xffffffff but the kernel's n32 compat code uses 0x7fffffff;
# x32 sees F_GETLK64=12 (its __BITS_PER_LONG is 32) but x32 calls the 64-bit fcntl, which has no
# command 12, so glibc maps F_*LK64 to F_*LK; MIPS MAP_RENAME 0x20 is "not used by linux" while
# glibc defines it as MAP_ANONYMOUS.
PREFER_LIBC = frozenset({"RLIM_INFINITY", "F_GETLK64", "F_SETLK64", "F_SETLKW64", "MAP_RENAME"})

_DEFINE = re.compile(r"#define ([A-Za-z_][A-Za-z0-9_]*)(\(?)")
_ENUM = re.compile(r"\benum\s*([A-Za-z_][A-Za-z0-9_]*)?\s*\{([^{}]*)\}")
_ERR_LINE = re.compile(r"^[^:]*sg\.c:(\d+):\d+: error", re.M)


class GenError(RuntimeError):
    pass


def _run(cmd: list[str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)


class Compiler:
    """One target's compiler invocation, with the include setup it needs."""

    def __init__(self, name: str, target: Target, tmp: Path):
        self.name = name
        self.t = target
        self.args = [target.cc, *target.flags, "-w"]
        if target.sysroot_include:
            builtin = _run([target.cc, *target.flags, "-print-file-name=include"]).stdout.strip()
            self.args += ["-nostdinc", "-isystem", builtin, "-isystem", target.sysroot_include]
        if target.stub32:
            stub = tmp / f"stub-{name}"
            (stub / "gnu").mkdir(parents=True, exist_ok=True)
            (stub / "gnu" / "stubs-32.h").write_text("/* empty: only constants are read */\n")
            self.args += ["-idirafter", str(stub)]
        self.tmp = tmp

    def preprocess(self, source: str, macros: bool, libc: bool) -> str:
        extra = ["-D_GNU_SOURCE"] if libc else []
        r = _run([*self.args, *extra, "-E", *(["-dM"] if macros else []), "-xc", "-"], stdin=source)
        if r.returncode:
            raise GenError(f"{self.name}: preprocessing failed:\n{r.stderr[:2000]}")
        return r.stdout

    def values(self, headers: list[str], names: list[str], libc: bool,
               exprs: dict[str, str] | None = None) -> tuple[dict[str, int], dict[str, str]]:
        """Compile ``names`` (or ``exprs[name]`` in their place) as integer constants.

        Returns the values and {name: why it was dropped}.
        """
        exprs = exprs or {}
        dropped: dict[str, str] = {}
        todo = list(names)
        while True:
            lines = ["#define _GNU_SOURCE 1"] if libc else []
            lines += [f"#if __has_include(<{h}>)\n#include <{h}>\n#endif" for h in headers]
            src_head = "\n".join(lines) + "\n"
            first = src_head.count("\n") + 2
            body = ['__attribute__((section(".sgv"), used)) const long long sg_v[] = {']
            body += [f"  (long long)({exprs.get(n, n)})," for n in todo] + ["  0};"]
            body += ['__attribute__((section(".sgn"), used)) const unsigned char sg_n[] = {']
            body += [f"  ({exprs.get(n, n)}) < 0," for n in todo] + ["  0};"]
            src = src_head + "\n".join(body) + "\n"
            work = self.tmp / self.name
            work.mkdir(exist_ok=True)
            cfile = work / "sg.c"
            ofile = work / "sg.o"
            cfile.write_text(src)
            r = _run([*self.args, "-c", "-o", str(ofile), str(cfile)])
            if r.returncode == 0:
                break
            bad: set[int] = set()
            n = len(todo)
            for m in _ERR_LINE.finditer(r.stderr):
                line = int(m.group(1))
                if first <= line < first + n:
                    bad.add(line - first)
                elif first + n + 2 <= line < first + 2 * n + 2:
                    bad.add(line - first - n - 2)
                else:
                    raise GenError(f"{self.name}: error outside the value list:\n{r.stderr[:3000]}")
            if not bad:
                raise GenError(f"{self.name}: compile failed:\n{r.stderr[:3000]}")
            for i in sorted(bad):
                dropped[todo[i]] = "not an integer constant expression here"
            todo = [x for i, x in enumerate(todo) if i not in bad]
        data = ofile.read_bytes()
        raw = _elf_section(data, ".sgv")
        neg = _elf_section(data, ".sgn")
        order = "<" if data[5] == 1 else ">"
        out: dict[str, int] = {}
        for i, n in enumerate(todo):
            (v,) = struct.unpack_from(order + "q", raw, 8 * i)
            if v < 0 and not neg[i]:
                v += 1 << 64  # an unsigned 64-bit value with the top bit set (e.g. ~0UL)
            out[n] = v
        return out, dropped


def _elf_section(data: bytes, want: str) -> bytes:
    """Contents of section ``want`` of an ELF relocatable object (32/64-bit, either byte order)."""
    if data[:4] != b"\x7fELF":
        raise GenError("not an ELF object")
    is64 = data[4] == 2
    o = "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(o + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(o + "HHH", data, 0x3A)
    else:
        shoff, = struct.unpack_from(o + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(o + "HHH", data, 0x2E)

    def sec(i: int) -> tuple[int, int, int]:
        base = shoff + i * shentsize
        if is64:
            name, _t, _f, _a, off, size = struct.unpack_from(o + "IIQQQQ", data, base)
        else:
            name, _t, _f, _a, off, size = struct.unpack_from(o + "IIIIII", data, base)
        return name, off, size

    _, stroff, _ = sec(shstrndx)
    for i in range(shnum):
        name, off, size = sec(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end].decode() == want:
            return data[off:off + size]
    raise GenError(f"section {want} missing")


def _scan(comp: Compiler, fam: Family, libc: bool) -> set[str]:
    headers = fam.libc if libc else fam.kernel
    if not headers:
        return set()
    if not libc:
        headers = KERNEL_PRELUDE + headers
    src = "".join(f"#if __has_include(<{h}>)\n#include <{h}>\n#endif\n" for h in headers)
    pat = re.compile(fam.pattern)
    excl = re.compile(fam.exclude) if fam.exclude else None
    found: set[str] = set()
    if not fam.enum_tags:
        for m in _DEFINE.finditer(comp.preprocess(src, macros=True, libc=libc)):
            if not m.group(2):  # function-like macros are not constants
                found.add(m.group(1))
    else:
        text = comp.preprocess(src, macros=False, libc=libc)
        for m in _ENUM.finditer(text):
            if "" in fam.enum_tags or (m.group(1) or "") in fam.enum_tags:
                for item in m.group(2).split(","):
                    ident = item.split("=")[0].strip()
                    if ident:
                        found.add(ident)
        if "" in fam.enum_tags:  # plain macros too (personality has both)
            for m in _DEFINE.finditer(comp.preprocess(src, macros=True, libc=libc)):
                if not m.group(2):
                    found.add(m.group(1))
    return {n for n in found if pat.fullmatch(n) and not (excl and excl.fullmatch(n))}


@dataclass
class ArchResult:
    values: dict[str, int]
    libc_differs: dict[str, tuple[int, int]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)


def extract(name: str, target: Target, tmp: Path) -> ArchResult:
    comp = Compiler(name, target, tmp)
    knames: set[str] = set()
    lnames: set[str] = set()
    kheaders: list[str] = list(KERNEL_PRELUDE)
    lheaders: list[str] = []
    for fam in FAMILIES:
        knames |= _scan(comp, fam, libc=False)
        kheaders += [h for h in fam.kernel if h not in kheaders]
        if target.libc_pkg:
            lnames |= _scan(comp, fam, libc=True)
            lheaders += [h for h in fam.libc if h not in lheaders]
    kvals, kdrop = comp.values(kheaders, sorted(knames), libc=False)
    lvals: dict[str, int] = {}
    if target.libc_pkg:
        lnames |= {n for n in FALLBACK if n not in kvals}
        lvals, _ = comp.values(lheaders, sorted(lnames), libc=True,
                               exprs={n: e for n, e in FALLBACK.items() if n not in kvals})
    res = ArchResult(dict(kvals))
    for n, v in lvals.items():
        if n not in kvals:
            res.values[n] = v
        elif n in PREFER_LIBC:
            res.values[n] = v
        elif kvals[n] != v:
            res.libc_differs[n] = (kvals[n], v)
    res.dropped = {n: why for n, why in kdrop.items() if n not in res.values}
    return res


def _pkg_version(pkg: str) -> str:
    r = _run(["dpkg-query", "-W", "-f=${Version}", pkg])
    return r.stdout.strip() if r.returncode == 0 else "?"


def _compiler_pkg(cc: str) -> str:
    path = _run(["sh", "-c", f"readlink -f $(command -v {cc})"]).stdout.strip()
    r = _run(["dpkg-query", "-S", path])
    pkg = r.stdout.split(":")[0].strip() if r.returncode == 0 else cc
    return f"{pkg} {_pkg_version(pkg)}"


def _fmt(v: int) -> str:
    return str(v) if -4096 < v < 4096 else (hex(v) if v >= 0 else "-" + hex(-v))


def render(results: dict[str, ArchResult], provenance: dict[str, str]) -> str:
    arches = list(results)
    all_names = sorted({n for r in results.values() for n in r.values})
    common: dict[str, int] = {}
    for n in all_names:
        present = [results[a].values[n] for a in arches if n in results[a].values]
        if len(present) * 2 > len(arches):
            common[n] = Counter(present).most_common(1)[0][0]
    overrides: dict[str, list[str]] = {}
    for a in arches:
        vals = results[a].values
        items = []
        for n in all_names:
            if n in common:
                if n not in vals:
                    items.append(f"-{n}")
                elif vals[n] != common[n]:
                    items.append(f"{n}={_fmt(vals[n])}")
            elif n in vals:
                items.append(f"{n}={_fmt(vals[n])}")
        overrides[a] = items
    lines = [
        '"""Named constants per architecture. GENERATED by tools/gen_constants.py: do not edit.',
        "",
        "Values were compiled with each target's own gcc against Debian's kernel uapi headers (linux-libc-dev)",
        "and, for names the kernel does not export (AF_*, SOCK_*, MSG_*, MNT_*, EFD_*, ...), glibc's headers.",
        "Where both define a name the kernel's value is kept: seccomp filters see the kernel ABI.",
        "",
        "Provenance (sysgate arch: compiler; kernel headers; glibc headers):",
    ]
    for a in arches:
        lines.append(f"  {a}: {provenance[a]}")
    diffs = sorted({(n, kv, lv) for a in arches for n, (kv, lv) in results[a].libc_differs.items()})
    if diffs:
        lines += ["", "glibc defines these differently from the kernel uapi headers (glibc's value kept for",
                  f"{', '.join(sorted(PREFER_LIBC))}, see tools/gen_constants.py; the kernel's otherwise):"]
        for n in sorted({d[0] for d in diffs}):
            where = [a for a in arches if n in results[a].libc_differs]
            kv, lv = results[where[0]].libc_differs[n]
            lines.append(f"  {n}: kernel {_fmt(kv)}, glibc {_fmt(lv)} on {', '.join(where)}")
    lines += [
        '"""',
        "",
        "# COMMON holds the value most arches share, for names more than half the arches have;",
        "# OVERRIDES[arch] lists that arch's differing values, its extra names, and '-NAME' for absent ones.",
        "",
        f"ARCHES = {tuple(arches)!r}",
        "",
        "COMMON = (",
    ]
    body = " ".join(f"{n}={_fmt(v)}" for n, v in common.items())
    lines += _wrap(body)
    lines += [")", "", "OVERRIDES: dict[str, str] = {"]
    for a, items in overrides.items():
        lines.append(f"    {a!r}: (")
        lines += ["    " + x for x in _wrap(" ".join(items))]
        lines.append("    ),")
    lines += ["}", ""]
    return "\n".join(lines)


def _wrap(text: str, width: int = 100) -> list[str]:
    out, cur = [], ""
    for word in text.split():
        if cur and len(cur) + len(word) + 1 > width:
            out.append(f"    {cur + ' '!r}")
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    if cur:
        out.append(f"    {cur!r}")
    return out or ["    ''"]


def deps() -> list[str]:
    pkgs: list[str] = []
    for t in TARGETS.values():
        for p in (t.kernel_pkg, t.libc_pkg):
            if p and p not in pkgs and p not in ("linux-libc-dev", "libc6-dev"):
                pkgs.append(p)
        if t.cc != "gcc":
            gcc_pkg = "gcc-" + t.cc.removesuffix("-gcc").replace("_", "-")
            if gcc_pkg not in pkgs:
                pkgs.append(gcc_pkg)
    return pkgs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--deps", action="store_true", help="print the Debian packages needed and exit")
    ap.add_argument("--check", action="store_true", help="regenerate and fail if the committed file differs")
    ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
    opts = ap.parse_args(argv[1:])
    if opts.deps:
        print("apt-get install --no-install-recommends " + " ".join(deps()))
        return 0
    results: dict[str, ArchResult] = {}
    with tempfile.TemporaryDirectory(prefix="sg-const-") as td, \
            concurrent.futures.ThreadPoolExecutor(opts.j) as pool:
        futs = {a: pool.submit(extract, a, t, Path(td)) for a, t in TARGETS.items()}
        for a, f in futs.items():
            results[a] = f.result()
            print(f"{a}: {len(results[a].values)} names", file=sys.stderr)
    provenance: dict[str, str] = {}
    for a, t in TARGETS.items():
        k = f"{t.kernel_pkg} {_pkg_version(t.kernel_pkg)}"
        libc = (f"{t.libc_pkg} {_pkg_version(t.libc_pkg)}" if t.libc_pkg
                else f"none (libc-only names from {t.libc_from})")
        provenance[a] = f"{_compiler_pkg(t.cc)} {' '.join(t.flags)}".rstrip() + f"; {k}; {libc}"
    for a, t in TARGETS.items():
        if not t.libc_pkg:  # glibc-only names (AF_*, SOCK_*, ...) do not depend on the word size
            src = results[t.libc_from]
            for n, v in src.values.items():
                if n not in results[a].values:
                    results[a].values[n] = v
    for a, (base, extra, why) in DERIVED.items():
        results[a] = ArchResult({**results[base].values, **extra})
        provenance[a] = "derived: " + why
    for x, y in SAME:
        if results[x].values != results[y].values:
            diff = {n for n in results[x].values.keys() | results[y].values.keys()
                    if results[x].values.get(n) != results[y].values.get(n)}
            raise GenError(f"{x} and {y} differ in {sorted(diff)[:20]}")
    order = [a for a in _sysgate_arch_order() if a in results]
    results = {a: results[a] for a in order}
    text = render(results, provenance)
    if opts.check:
        if OUT.read_text() != text:
            print(f"{OUT} is out of date", file=sys.stderr)
            return 1
        print("up to date")
        return 0
    OUT.write_text(text)
    print(f"wrote {OUT}: {len(text)} bytes, {len(results)} arches")
    return 0


def _sysgate_arch_order() -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from sysgate.arch import ARCHES

    return [a.name for a in ARCHES]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
