#!/usr/bin/env python3
"""Generate src/sysgate/formats/argnames.py: syscall argument names and widths, as the kernel's ftrace shows them.

Usage (as root, development time only; the output is committed):
    mount -t tracefs nodev /mnt/tracefs   # if /sys/kernel/tracing is not mounted
    python3 tools/gen_argnames.py [--tracefs /mnt/tracefs] [--check]

Kafel lets a policy name syscall arguments without declaring them (``write { fd == 1 }``); its own
tables come from the same source, the ``sys_enter_<name>/format`` files of the ``syscalls`` trace
events, whose fields after ``__syscall_nr`` are the arguments of the kernel's ``SYSCALL_DEFINE``.
The running kernel's native ABI is used for every architecture (the names are the kernel's
C parameter names, which arch-specific entry points share).

The widths say which arguments the handler reads as 32-bit values (the compiler decides
conditions on those on their low word) and which as 16-bit ones (``umode_t``, ``unsigned short``:
decided on their low 16 bits). They are the generic SYSCALL_DEFINE types, which the
64-bit ABIs share for these names; a syscall only some arch has is absent here, so it keeps
whole-register comparisons (the side that never lets a value the kernel sees differ from the
value the filter tested, for the arguments it lists as 64).
"""
from __future__ import annotations

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "src", "sysgate", "formats", "argnames.py")
FIELD = re.compile(r"field:([^;]*);")
# ftrace event names that differ from the syscall table's names.
RENAME = {"newstat": "stat", "newlstat": "lstat", "newfstat": "fstat", "newfstatat": "newfstatat",
          "newuname": "uname", "sendfile64": "sendfile", "umount": "umount2"}


def read(tracefs: str) -> dict[str, tuple[str, ...]]:
    base = os.path.join(tracefs, "events", "syscalls")
    out: dict[str, tuple[str, ...]] = {}
    for ev in sorted(os.listdir(base)):
        if not ev.startswith("sys_enter_"):
            continue
        with open(os.path.join(base, ev, "format")) as fh:
            fields = [f.strip() for f in FIELD.findall(fh.read())]
        names = [f.split()[-1].lstrip("*") for f in fields]
        try:
            first = names.index("__syscall_nr") + 1
        except ValueError:
            continue
        args = tuple((n, width(f)) for n, f in zip(names[first:], fields[first:]))
        name = ev[len("sys_enter_"):]
        out[RENAME.get(name, name)] = args
    return out


WIDE = {"long", "unsigned long", "size_t", "ssize_t", "loff_t", "off_t", "aio_context_t", "cap_user_header_t",
        "cap_user_data_t", "u64", "__u64", "s64", "__s64"}


# unsigned short in every ABI's kernel (include/linux/types.h; old_uid_t/old_gid_t: the
# __kernel_old_uid_t of the arches with 16-bit uid calls, arch/*/include/uapi/asm/posix_types*.h)
SHORT = {"umode_t", "unsigned short", "u16", "__u16", "old_uid_t", "old_gid_t"}

# The 16-bit uid calls of kernel/uid16.c (SYSCALL_DEFINE*(chown16, ...), ...; s390's compat
# versions in arch/s390/kernel/compat_linux.c take u16 alike). The ABIs that have them (x86, arm,
# m68k, sh, s390: those with the *32 calls) give them the plain names (setuid = 23 is setuid16);
# the running x86_64 kernel has no trace events for them, so their declarations are written here.
UID16 = {
    "chown": (("filename", "const char *"), ("user", "old_uid_t"), ("group", "old_gid_t")),
    "lchown": (("filename", "const char *"), ("user", "old_uid_t"), ("group", "old_gid_t")),
    "fchown": (("fd", "unsigned int"), ("user", "old_uid_t"), ("group", "old_gid_t")),
    "setregid": (("rgid", "old_gid_t"), ("egid", "old_gid_t")),
    "setgid": (("gid", "old_gid_t"),),
    "setreuid": (("ruid", "old_uid_t"), ("euid", "old_uid_t")),
    "setuid": (("uid", "old_uid_t"),),
    "setresuid": (("ruid", "old_uid_t"), ("euid", "old_uid_t"), ("suid", "old_uid_t")),
    "getresuid": (("ruid", "old_uid_t *"), ("euid", "old_uid_t *"), ("suid", "old_uid_t *")),
    "setresgid": (("rgid", "old_gid_t"), ("egid", "old_gid_t"), ("sgid", "old_gid_t")),
    "getresgid": (("rgid", "old_gid_t *"), ("egid", "old_gid_t *"), ("sgid", "old_gid_t *")),
    "setfsuid": (("uid", "old_uid_t"),),
    "setfsgid": (("gid", "old_gid_t"),),
    "getgroups": (("gidsetsize", "int"), ("grouplist", "old_gid_t *")),
    "setgroups": (("gidsetsize", "int"), ("grouplist", "old_gid_t *")),
}


def width(field: str) -> int:
    """Bits of the C type (everything but the last word of ``field``): the handler reads only that
    many low bits of the register (``int``, ``pid_t``, ...: 32; ``umode_t``: 16). Kafel compares
    only the low word of arguments narrower than 8 bytes."""
    ctype = " ".join(field.split()[:-1])
    if "*" in field:
        return 64
    ctype = ctype.replace("const ", "").strip()
    return 64 if ctype in WIDE else 16 if ctype in SHORT else 32


def uid16() -> dict[str, tuple[tuple[str, int], ...]]:
    return {name: tuple((n, width(f"{t} {n}")) for n, t in params) for name, params in UID16.items()}


def render(table: dict[str, tuple[str, ...]], kernel: str) -> str:
    lines = ['"""Syscall argument names and widths (generated by tools/gen_argnames.py from the ftrace formats',
             f'of kernel {kernel}; do not edit).',
             '',
             "A width is 16 when the kernel's SYSCALL_DEFINE declares the argument ``umode_t`` (or another",
             "``unsigned short``), 32 when it is otherwise narrower than 64 bits (``int``, ``unsigned int``,",
             '``pid_t``, ...), else 64. The handler gets only that many low bits of the register, on every ABI.',
             'Kafel policies name arguments without declaring them and compare only the low 32 bits of the',
             'narrow ones; the compiler and the reference evaluator decide every condition on them on the bits',
             'the handler reads (see ``sysgate.compiler.lower``).',
             '',
             '``UID16``: the 16-bit uid calls (kernel/uid16.c, ``old_uid_t``/``old_gid_t``), which the ABIs',
             'that also have ``setuid32`` & co. (x86, arm, m68k, sh, s390) call by the plain names."""',
             "", "ARGS: dict[str, tuple[tuple[str, int], ...]] = {"]
    for name in sorted(table):
        lines.append(f"    {name!r}: {table[name]!r},")
    lines += ["}", "", "UID16: dict[str, tuple[tuple[str, int], ...]] = {"]
    old = uid16()
    for name in sorted(old):
        lines.append(f"    {name!r}: {old[name]!r},")
    lines += ["}", ""]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--tracefs", default="/sys/kernel/tracing")
    p.add_argument("--check", action="store_true", help="fail if the committed file differs")
    a = p.parse_args()
    text = render(read(a.tracefs), os.uname().release)
    if a.check:
        with open(OUT) as fh:
            same = fh.read() == text
        print("up to date" if same else "argnames.py differs from the running kernel's", file=sys.stderr)
        return 0 if same else 1
    with open(OUT, "w") as fh:
        fh.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
