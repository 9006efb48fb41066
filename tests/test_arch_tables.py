"""Our syscall tables and arch facts against independent sources.

* libseccomp 2.5.4 (Debian ``python3-seccomp`` under ``/usr/bin/python3``, one subprocess for all
  arches): every name we know is resolved on every arch libseccomp supports, and every number in
  each ABI's range is resolved back to a name. libseccomp is older than our table (kernel 7.1), so
  names it does not know are fine; every other difference is listed below and asserted exactly.
* ``scmp_sys_resolver`` (the CLI) as a spot check.
* ``<linux/audit.h>`` + ``<linux/elf-em.h>``, parsed here, for the AUDIT_ARCH tokens.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from sysgate import arch as A

SYSTEM_PYTHON = "/usr/bin/python3"

# Arches libseccomp 2.5.4 supports (its SCMP_ARCH_* name without the prefix). loongarch64, m68k
# and sh arrived in libseccomp 2.6 (``scmp_sys_resolver -a loongarch64`` prints the usage).
LIBSECCOMP_ARCHES = ["x86_64", "x86", "x32", "arm", "aarch64", "mips", "mipsel", "mips64", "mips64el",
                     "mips64n32", "mips64n32el", "ppc", "ppc64", "ppc64le", "s390", "s390x", "parisc",
                     "parisc64", "riscv64"]
NOT_IN_LIBSECCOMP_254 = ["loongarch64", "m68k", "sh", "sheb"]

# --- expected differences --------------------------------------------------------------------
# On the arches where the kernel also has the socketcall(2)/ipc(2) multiplexers, libseccomp's
# resolver rewrites every socket and SysV IPC call to the multiplexer's number (the CLI without -t
# prints the negative pseudo-number __PNR_<name> instead). Our table gives the direct syscall
# number, or nothing where the ABI only has the multiplexed form.
SOCKET_CALLS = ["accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
                "recv", "recvfrom", "recvmmsg", "recvmsg", "send", "sendmmsg", "sendmsg", "sendto",
                "setsockopt", "shutdown", "socket", "socketpair"]
IPC_CALLS = ["msgctl", "msgget", "msgrcv", "msgsnd", "semctl", "semget", "semop", "semtimedop", "shmat",
             "shmctl", "shmdt", "shmget"]
MULTIPLEXED_ARCHES = ["x86", "ppc", "ppc64", "ppc64le", "s390", "s390x", "mips", "mipsel"]

# Kernel changes after libseccomp 2.5.4's table: parisc made _llseek 32-bit only
# (arch/parisc/kernel/syscalls/syscall.tbl: "140 32 _llseek").
NEWER_KERNEL = {"parisc64": {"_llseek": 140}}

# libseccomp gives x32 its own pseudo token (EM_X86_64 | __AUDIT_ARCH_LE); the kernel reports
# x32 calls with AUDIT_ARCH_X86_64 and only the x32 bit in the number tells them apart.
LIBSECCOMP_TOKENS = {"x32": 0x4000003E}

_PROBE = r"""
import json, sys
import seccomp
req = json.load(sys.stdin)
out = {}
for name, scmp, ranges in req["arches"]:
    arch = getattr(seccomp.Arch, scmp)
    fwd = {n: seccomp.resolve_syscall(arch, n) for n in req["names"]}
    rev = {}
    for lo, hi in ranges:
        for nr in range(lo, hi):
            try:
                rev[nr] = seccomp.resolve_syscall(arch, nr).decode()
            except ValueError:
                pass
    out[name] = {"token": int(arch) & 0xFFFFFFFF, "fwd": fwd, "rev": rev}
json.dump(out, sys.stdout)
"""


def _has_libseccomp() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    r = subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True)
    return r.returncode == 0


needs_libseccomp = pytest.mark.skipif(not _has_libseccomp(), reason="python3-seccomp not installed")


def _ranges(a: A.Arch) -> list[tuple[int, int]]:
    base = a.nr_base
    r = [(base, base + 1100)]
    if a.name == "arm":
        r.append((0xF0000, 0xF0010))  # ARM private calls (__ARM_NR_cacheflush, ...)
    return r


@pytest.fixture(scope="module")
def libseccomp() -> dict:
    """Everything libseccomp says about our names and each ABI's number range, in one subprocess."""
    if not _has_libseccomp():
        pytest.skip("python3-seccomp not installed")
    req = {"names": sorted(A.all_syscall_names()),
           "arches": [(n, A.get(n).libseccomp.removeprefix("SCMP_ARCH_"), _ranges(A.get(n)))
                      for n in LIBSECCOMP_ARCHES]}
    r = subprocess.run([SYSTEM_PYTHON, "-c", _PROBE], input=json.dumps(req), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _expected_diffs(a: A.Arch) -> dict[str, int]:
    """name -> the number libseccomp is expected to give where it differs from our table."""
    exp: dict[str, int] = dict(NEWER_KERNEL.get(a.name, {}))
    if a.name in MULTIPLEXED_ARCHES:
        exp.update({n: a.nr("socketcall") for n in SOCKET_CALLS})
        exp.update({n: a.nr("ipc") for n in IPC_CALLS})
    return exp


@needs_libseccomp
@pytest.mark.parametrize("name", LIBSECCOMP_ARCHES)
def test_names_against_libseccomp(libseccomp: dict, name: str) -> None:
    """Every name we know, resolved by libseccomp on this arch, gives our number (or is listed)."""
    a = A.get(name)
    got = libseccomp[name]["fwd"]
    diffs: dict[str, int] = {}
    pseudo: dict[str, int] = {}
    for n, v in got.items():
        ours = a.syscalls.get(n)
        if v == -1:  # __NR_SCMP_ERROR: libseccomp 2.5.4 does not know the name at all
            continue
        if v < 0:  # __PNR_*: libseccomp knows the name but not on this arch
            if ours is not None:
                pseudo[n] = v
        elif ours != v:
            diffs[n] = v
    assert pseudo == {}, f"{name}: libseccomp says these do not exist on {name}, we give numbers: " + ", ".join(
        f"{n} (ours {a.syscalls[n]:#x})" for n in pseudo)
    assert diffs == _expected_diffs(a), f"{name}: " + ", ".join(
        f"{n}: libseccomp {v}, ours {a.syscalls.get(n)}" for n, v in sorted(diffs.items()))


@needs_libseccomp
@pytest.mark.parametrize("name", LIBSECCOMP_ARCHES)
def test_numbers_against_libseccomp(libseccomp: dict, name: str) -> None:
    """Every number libseccomp can name in this ABI's range is ours too, with the same name."""
    a = A.get(name)
    rev = {int(k): v for k, v in libseccomp[name]["rev"].items()}
    assert len(rev) > 250
    newer = NEWER_KERNEL.get(name, {})
    wrong = {nr: n for nr, n in rev.items() if a.syscalls.get(n) != nr and newer.get(n) != nr}
    assert wrong == {}, f"{name}: " + ", ".join(f"{nr}: libseccomp {n!r}, ours {a.name_of(nr)!r}"
                                                for nr, n in sorted(wrong.items()))
    # and each of our numbers that libseccomp knows a name for has that name's number
    for nr, n in rev.items():
        if n not in newer:
            assert a.nr(n) == nr


@needs_libseccomp
def test_unknown_names_are_few_and_new(libseccomp: dict) -> None:
    """Names libseccomp 2.5.4 does not know at all: recent syscalls and arch-private ones only."""
    unknown = {n for n, v in libseccomp["x86_64"]["fwd"].items() if v == -1}
    assert "getpid" not in unknown and "openat2" not in unknown
    assert {"mseal", "listmount", "statmount", "riscv_hwprobe"} <= unknown
    assert len(unknown) < 40, sorted(unknown)


@needs_libseccomp
def test_tokens_against_libseccomp(libseccomp: dict) -> None:
    for name in LIBSECCOMP_ARCHES:
        want = LIBSECCOMP_TOKENS.get(name, A.get(name).token)
        assert libseccomp[name]["token"] == want, name


def test_x32_map_shadow_stack_is_not_an_x32_call() -> None:
    """Kernel truth (arch/x86/entry/syscalls/syscall_64.tbl: ``453 64 map_shadow_stack``): ABI "64"
    means x86_64 only; x32's table is built from "common" and "x32" entries. libseccomp 2.5.4
    agrees (``scmp_sys_resolver -a x32 map_shadow_stack`` -> -10245)."""
    assert A.get("x86_64").nr("map_shadow_stack") == 453
    assert not A.get("x32").has("map_shadow_stack")


# --- scmp_sys_resolver spot checks --------------------------------------------------------------

SPOT = [("x86_64", "openat"), ("x86", "getpid"), ("x32", "getpid"), ("x32", "rt_sigaction"), ("arm", "cacheflush"),
        ("aarch64", "openat"), ("mips", "getpid"), ("mips64", "getpid"), ("mips64n32", "getpid"),
        ("ppc64le", "openat"), ("s390x", "getpid"), ("parisc", "fork"), ("riscv64", "clone3")]


@pytest.mark.skipif(shutil.which("scmp_sys_resolver") is None, reason="scmp_sys_resolver not installed")
def test_scmp_sys_resolver_spot_checks() -> None:
    def resolve(*args: str) -> int:
        r = subprocess.run(["scmp_sys_resolver", *args], capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return int(r.stdout.split()[-1])

    for arch, name in SPOT:
        a = A.get(arch)
        assert resolve("-a", a.libseccomp.removeprefix("SCMP_ARCH_").lower(), name) == a.nr(name), (arch, name)
    # The multiplexed socket calls: raw pseudo-number, and the rewritten one with -t.
    assert resolve("-a", "x86", "socket") < 0
    assert resolve("-t", "-a", "x86", "socket") == A.get("x86").nr("socketcall") == 102
    assert A.get("x86").nr("socket") == 359
    # libseccomp 2.5.4 does not support loongarch64
    r = subprocess.run(["scmp_sys_resolver", "-a", "loongarch64", "getpid"], capture_output=True, text=True)
    assert r.returncode != 0


# --- x32 bit and MIPS bases -----------------------------------------------------------------------

def test_x32_bit() -> None:
    assert A.X32_SYSCALL_BIT == 0x40000000
    x32, x64 = A.get("x32"), A.get("x86_64")
    assert x32.token == x64.token == 0xC000003E
    assert x32.nr_base == A.X32_SYSCALL_BIT
    assert all(nr & A.X32_SYSCALL_BIT and nr & ~A.X32_SYSCALL_BIT < 1024 for nr in x32.syscalls.values())
    assert all(nr < A.X32_SYSCALL_BIT for nr in x64.syscalls.values())
    assert x32.nr("getpid") == 0x40000000 | 39 == 0x40000000 | x64.nr("getpid")
    # x32's own entries (512-547) for calls whose x86_64 versions take 64-bit structs
    assert x32.nr("rt_sigaction") == 0x40000000 | 512 and x64.nr("rt_sigaction") == 13
    assert x32.nr("execve") == 0x40000000 | 520 and x64.nr("execve") == 59
    assert x32.name_of(0x40000000 | 39) == "getpid" and x32.name_of(39) is None
    assert A.by_token(0xC000003E) == [x64, x32]


@pytest.mark.parametrize("name,base,getpid", [
    ("mips", 4000, 4020), ("mipsel", 4000, 4020), ("mips64", 5000, 5038), ("mips64el", 5000, 5038),
    ("mips64n32", 6000, 6038), ("mips64n32el", 6000, 6038)])
def test_mips_bases(name: str, base: int, getpid: int) -> None:
    a = A.get(name)
    assert a.nr_base == base
    assert all(base <= nr < base + 1000 for nr in a.syscalls.values())
    assert a.nr("getpid") == getpid
    assert a.name_of(getpid) == "getpid" and a.name_of(getpid - base) is None


def test_name_number_round_trip() -> None:
    for a in A.ARCHES:
        for n, nr in a.syscalls.items():
            back = a.name_of(nr)
            assert back is not None and a.nr(back) == nr, (a.name, n, nr)


# --- AUDIT_ARCH tokens from the kernel headers -------------------------------------------------

AUDIT_NAMES = {
    "x86_64": "X86_64", "x86": "I386", "x32": "X86_64", "aarch64": "AARCH64", "arm": "ARM",
    "riscv64": "RISCV64", "ppc64le": "PPC64LE", "ppc64": "PPC64", "ppc": "PPC", "s390x": "S390X", "s390": "S390",
    "mips": "MIPS", "mipsel": "MIPSEL", "mips64": "MIPS64", "mips64el": "MIPSEL64", "mips64n32": "MIPS64N32",
    "mips64n32el": "MIPSEL64N32", "loongarch64": "LOONGARCH64", "parisc": "PARISC", "parisc64": "PARISC64",
    "m68k": "M68K", "sh": "SHEL", "sheb": "SH",
}


def _header_defines(*paths: Path) -> dict[str, int]:
    """``#define NAME expr`` from the headers, with ``expr`` made of numbers, names, ``|`` and parens."""
    raw: dict[str, str] = {}
    for p in paths:
        text = p.read_text().replace("\\\n", " ")
        for m in re.finditer(r"^#define\s+(\w+)\s+(.+?)\s*(?:/\*.*)?$", text, re.M):
            raw[m.group(1)] = m.group(2)
    values: dict[str, int] = {}

    def value(name: str, depth: int = 0) -> int:
        if name in values:
            return values[name]
        expr = raw[name]
        if depth > 10 or not re.fullmatch(r"[\w\s|()]+", expr):
            raise ValueError(f"cannot evaluate {name} = {expr}")
        total = 0
        for tok in re.findall(r"\w+", expr):
            total |= int(tok, 0) if tok[0].isdigit() else value(tok, depth + 1)
        values[name] = total
        return total

    return {n: value(n) for n in raw if n.startswith(("AUDIT_ARCH_", "EM_")) and re.fullmatch(r"[\w\s|()]+", raw[n])}


@pytest.mark.skipif(not Path("/usr/include/linux/audit.h").exists(), reason="kernel headers not installed")
def test_audit_arch_tokens_match_kernel_headers() -> None:
    d = _header_defines(Path("/usr/include/linux/elf-em.h"), Path("/usr/include/linux/audit.h"))
    assert d["AUDIT_ARCH_X86_64"] == 0xC000003E and d["AUDIT_ARCH_MIPS64N32"] == 0xA0000008  # parser sanity
    assert set(AUDIT_NAMES) == {a.name for a in A.ARCHES}
    for a in A.ARCHES:
        assert a.token == d["AUDIT_ARCH_" + AUDIT_NAMES[a.name]], a.name
        assert a.big_endian == (not a.token & 0x40000000), a.name
        assert (a.bits == 64) == bool(a.token & 0x80000000), a.name


# --- errors for unknown names ---------------------------------------------------------------------

def test_unknown_syscall_suggests_close_names() -> None:
    x64 = A.get("x86_64")
    with pytest.raises(A.UnknownSyscall) as e:
        x64.nr("opnat")
    assert str(e.value).startswith("unknown syscall 'opnat' (did you mean openat")
    with pytest.raises(A.UnknownSyscall) as e:
        x64.nr("getpidd")
    assert "did you mean getpid" in str(e.value)
    with pytest.raises(A.UnknownSyscall) as e:
        x64.nr("qqqqzzzz")
    assert str(e.value) == "unknown syscall 'qqqqzzzz'"
    # a real syscall this arch lacks is said so, without suggestions
    with pytest.raises(A.UnknownSyscall) as e:
        x64.nr("arm_fadvise64_64")
    assert str(e.value) == "syscall 'arm_fadvise64_64' does not exist on x86_64"
    assert isinstance(e.value, KeyError)


def test_unknown_arch_suggests() -> None:
    with pytest.raises(A.UnknownArch, match=r"did you mean x86_64"):
        A.get("x86-64")
    assert isinstance(A.UnknownArch("x"), ValueError)
    for alias, name in [("amd64", "x86_64"), ("SCMP_ARCH_X86_64", "x86_64"), ("i386", "x86"), ("arm64", "aarch64"),
                        ("386", "x86"), ("mips64le", "mips64el"), ("SCMP_ARCH_MIPSEL64N32", "mips64n32el")]:
        assert A.get(alias).name == name


def test_cli_unknown_syscall_is_one_line_exit_2() -> None:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "sysgate.cli", "emulate", "strict", "opnat", "--arch", "x86_64"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "did you mean openat" in r.stderr, r.stderr
