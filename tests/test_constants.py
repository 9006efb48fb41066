"""Named constants: values against Python's own modules and the kernel, per-arch differences, expressions."""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgate import arch as sg_arch
from sysgate import constants as C
from sysgate.arch import ARCHES

ROOT = Path(__file__).resolve().parents[1]
IS_X86_64 = sg_arch.native().name == "x86_64"
x86_64_only = pytest.mark.skipif(not IS_X86_64, reason="compares with this Python's x86_64 values")


# --------------------------------------------------------------------------------------------------
# Python's own modules (built against glibc on this x86_64 machine)

# glibc defines O_LARGEFILE as 0 on 64-bit; the kernel bit is 0x8000 and sysgate keeps the kernel's.
_PY_KNOWN_DIFFERENT = {"O_LARGEFILE"}


# Options of one protocol's own level (linux/can/j1939.h, linux/vm_sockets.h), outside the SOL_SOCKET set.
_PROTO_LEVEL = re.compile(r"SO_(J1939|VM_SOCKETS)_")


def _module_sample(mod: object, pattern: str) -> dict[str, int]:
    rx = re.compile(pattern)
    out = {}
    for n in dir(mod):
        v = getattr(mod, n)
        if rx.fullmatch(n) and isinstance(v, int) and n not in _PY_KNOWN_DIFFERENT and not _PROTO_LEVEL.match(n):
            out[n] = int(v)
    return out


@x86_64_only
@pytest.mark.parametrize("mod,pattern", [
    (os, r"O_[A-Z0-9_]+|SEEK_[A-Z]+|[RWXF]_OK|P_(ALL|PID|PGID|PIDFD)|W(NOHANG|UNTRACED|EXITED|STOPPED|CONTINUED|NOWAIT)"
         r"|GRND_[A-Z]+|EFD_[A-Z]+|MFD_[A-Z0-9_]+|SCHED_[A-Z]+|CLONE_[A-Z]+|POSIX_FADV_[A-Z]+|SPLICE_F_[A-Z]+"
         r"|PIDFD_NONBLOCK|RTLD_NONE_NEVER"),
    (socket, r"AF_[A-Z0-9_]+|PF_[A-Z0-9_]+|SOCK_[A-Z]+|SOL_[A-Z0-9]+|SO_[A-Z0-9_]+|IPPROTO_[A-Z0-9]+|MSG_[A-Z_]+"
             r"|SHUT_[A-Z]+|SOMAXCONN|SIOC[A-Z0-9]+|NETLINK_[A-Z_]+"),
    (signal, r"SIG[A-Z0-9]+|SIG_(BLOCK|UNBLOCK|SETMASK)"),
    (errno, r"E[A-Z0-9]+"),
    (mmap, r"PROT_[A-Z]+|MAP_[A-Z_0-9]+|MADV_[A-Z_0-9]+"),
])
def test_values_match_python_modules(mod: object, pattern: str) -> None:
    sample = _module_sample(mod, pattern)
    if mod is signal:  # SIGRTMIN/SIGRTMAX are glibc's (34/64 after its reserved ones), not the kernel's
        sample.pop("SIGRTMIN", None)
        sample.pop("SIGRTMAX", None)
    assert len(sample) >= 5, sample
    table = C.table("x86_64")
    missing = sorted(n for n in sample if n not in table)
    wrong = {n: (hex(v), hex(table[n])) for n, v in sample.items() if n in table and table[n] != v}
    assert not wrong, wrong
    # A few names may be Python-only extras; the bulk must be covered.
    assert len(missing) <= max(3, len(sample) // 20), missing


@x86_64_only
def test_more_python_modules() -> None:
    import fcntl
    import resource
    import stat
    import termios

    t = C.table("x86_64")
    checks = {**_module_sample(fcntl, r"F_[A-Z0-9_]+|FD_CLOEXEC|FASYNC"),
              **_module_sample(resource, r"RLIMIT_[A-Z]+"),
              **_module_sample(stat, r"S_IF(MT|SOCK|LNK|REG|BLK|DIR|CHR|IFO)|S_IS[UGV][IT]D?"
                                     r"|S_IR[A-Z]+|S_IW[A-Z]+|S_IX[A-Z]+"),
              **_module_sample(termios, r"TC(GETS|SETS|SETSW|SETSF|GETA|SETA|SETAW|SETAF|SBRK|XONC|FLSH)"
                                        r"|TIOC[A-Z]+|FIO[A-Z]+")}
    checks.pop("F_ULOCK", None)  # lockf() values, deliberately not kept as fcntl commands
    for n in ("F_LOCK", "F_TLOCK", "F_TEST"):
        checks.pop(n, None)
    assert len(checks) > 60
    wrong = {n: (v, t.get(n)) for n, v in checks.items() if t.get(n) != v}
    assert not wrong, wrong
    assert resource.RLIM_INFINITY == C.lookup("RLIM_INFINITY", "x86_64") - (1 << 64)


# --------------------------------------------------------------------------------------------------
# The kernel acts on the table's values (native arch)

def test_kernel_honours_open_and_fcntl_values(tmp_path: Path) -> None:
    arch = sg_arch.native()
    f = tmp_path / "f"
    f.write_text("x")
    with pytest.raises(OSError) as e:
        os.open(f, C.evaluate("O_RDONLY|O_DIRECTORY", arch))
    assert e.value.errno == C.lookup("ENOTDIR", arch)
    fd = os.open(f, C.evaluate("O_RDONLY|O_CLOEXEC", arch))
    try:
        import fcntl

        assert fcntl.fcntl(fd, C.lookup("F_GETFD", arch)) & C.lookup("FD_CLOEXEC", arch)
        flags = fcntl.fcntl(fd, C.lookup("F_GETFL", arch))
        assert flags & C.lookup("O_ACCMODE", arch) == C.lookup("O_RDONLY", arch)
    finally:
        os.close(fd)


def test_kernel_honours_prctl_and_signal_values() -> None:
    arch = sg_arch.native()
    libc = ctypes.CDLL(None, use_errno=True)
    pid = os.fork()
    if pid == 0:  # child: set no_new_privs with the table's numbers, then die of the table's SIGUSR1
        try:
            ok = libc.prctl(C.lookup("PR_SET_NO_NEW_PRIVS", arch), 1, 0, 0, 0) == 0
            ok = ok and libc.prctl(C.lookup("PR_GET_NO_NEW_PRIVS", arch), 0, 0, 0, 0) == 1
            if ok:
                os.kill(os.getpid(), C.lookup("SIGUSR1", arch))
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGUSR1


# --------------------------------------------------------------------------------------------------
# Per-architecture differences, as the headers state them (grep'd from the Debian cross headers)

@pytest.mark.parametrize("name,arch,value", [
    ("O_DIRECTORY", "x86_64", 0x10000), ("O_DIRECTORY", "aarch64", 0x4000), ("O_DIRECTORY", "arm", 0x4000),
    ("O_DIRECTORY", "m68k", 0x4000), ("O_DIRECTORY", "ppc64le", 0x4000), ("O_DIRECTORY", "parisc", 0x1000),
    ("O_DIRECTORY", "mips", 0x10000), ("O_DIRECTORY", "riscv64", 0x10000), ("O_DIRECTORY", "loongarch64", 0x10000),
    ("O_NONBLOCK", "mips", 0x80), ("O_NONBLOCK", "mips64el", 0x80), ("O_NONBLOCK", "parisc", 0x10000),
    ("O_NONBLOCK", "x86", 0x800),
    ("SOCK_STREAM", "mips", 2), ("SOCK_DGRAM", "mips", 1), ("SOCK_STREAM", "x86_64", 1), ("SOCK_STREAM", "parisc", 1),
    ("SOCK_NONBLOCK", "mips", 0x80), ("SOCK_NONBLOCK", "parisc", 0x40000000),
    ("EAGAIN", "mips", 11), ("EAGAIN", "parisc", 11), ("EDEADLK", "mips", 45), ("EDEADLK", "x86_64", 35),
    ("ENOSYS", "mips", 89), ("ENOSYS", "parisc", 251), ("ENOSYS", "aarch64", 38),
    ("MAP_ANONYMOUS", "mips", 0x800), ("MAP_ANONYMOUS", "parisc", 0x10), ("MAP_ANONYMOUS", "x86_64", 0x20),
    ("TCGETS", "x86_64", 0x5401), ("TCGETS", "mips", 0x540D), ("TCGETS", "ppc", 0x402C7413),
    ("TCGETS", "ppc64le", 0x402C7413), ("TCGETS", "parisc", 0x40245410),
    ("FIONREAD", "x86_64", 0x541B), ("FIONREAD", "mips", 0x467F), ("FIONREAD", "ppc64", 0x4004667F),
    ("SIGCHLD", "x86_64", 17), ("SIGCHLD", "mips", 18), ("SIGCHLD", "parisc", 18), ("SIGUSR1", "mips", 16),
    ("RLIMIT_NOFILE", "x86_64", 7), ("RLIMIT_NOFILE", "mips", 5),
    ("SOL_SOCKET", "mips", 0xFFFF), ("SOL_SOCKET", "x86_64", 1), ("SO_REUSEADDR", "mips", 4),
    ("SO_REUSEADDR", "parisc", 4), ("SO_REUSEADDR", "aarch64", 2),
    ("AT_FDCWD", "s390x", -100), ("CLONE_NEWUSER", "sh", 0x10000000), ("SECCOMP_RET_KILL_PROCESS", "m68k", 0x80000000),
    ("F_GETLK64", "mips", 33), ("F_GETLK64", "x86", 12), ("F_GETLK64", "x32", 5),
    ("RLIM_INFINITY", "mips", 0x7FFFFFFF), ("RLIM_INFINITY", "mips64n32", 0x7FFFFFFF),
    ("RLIM_INFINITY", "x86_64", (1 << 64) - 1), ("RLIM_INFINITY", "x86", 0xFFFFFFFF),
    ("ARCH_SET_FS", "x86_64", 0x1002), ("MINSIGSTKSZ", "loongarch64", 4096), ("MINSIGSTKSZ", "riscv64", 2048),
    ("PER_LINUX", "arm", 0), ("ADDR_NO_RANDOMIZE", "ppc", 0x40000), ("BPF_PROG_LOAD", "s390", 5),
    ("CAP_SYS_ADMIN", "riscv64", 21), ("KEYCTL_JOIN_SESSION_KEYRING", "sheb", 1), ("P_PIDFD", "mips64", 3),
])
def test_per_arch_values(name: str, arch: str, value: int) -> None:
    assert C.lookup(name, arch) == value


def test_every_arch_has_a_table() -> None:
    for a in ARCHES:
        n = C.names(a)
        assert len(n) > 1400, a.name
        for must in ("O_RDONLY", "O_CLOEXEC", "CLONE_NEWUSER", "AF_INET", "SOCK_STREAM", "PROT_EXEC", "MAP_PRIVATE",
                     "EPERM", "SIGKILL", "PR_SET_NO_NEW_PRIVS", "TCGETS", "FIONREAD", "MS_BIND", "MNT_DETACH",
                     "SECCOMP_RET_ALLOW", "FUTEX_WAIT", "RLIMIT_NOFILE", "CAP_SYS_ADMIN", "BPF_MAP_CREATE",
                     "GRND_RANDOM", "EFD_CLOEXEC", "IN_CLOEXEC", "MFD_CLOEXEC", "S_IFREG", "KEYCTL_READ", "P_ALL",
                     "PER_LINUX", "PTRACE_TRACEME", "F_SETFD", "AT_EMPTY_PATH", "IPPROTO_TCP", "SOL_SOCKET",
                     "MADV_DONTNEED"):
            assert must in n, (a.name, must)


def test_byte_order_never_matters() -> None:
    for x, y in (("ppc64", "ppc64le"), ("mips", "mipsel"), ("mips64", "mips64el"), ("sh", "sheb"),
                 ("mips64n32", "mips64n32el")):
        assert dict(C.table(x)) == dict(C.table(y))


def test_arch_aliases_and_unknown_arch() -> None:
    assert C.lookup("O_DIRECTORY", "arm64") == C.lookup("O_DIRECTORY", "SCMP_ARCH_AARCH64") == 0x4000
    with pytest.raises(sg_arch.UnknownArch):
        C.lookup("O_RDONLY", "vax")


def test_unknown_constant_messages() -> None:
    with pytest.raises(C.UnknownConstant) as e:
        C.lookup("O_RDONY", "x86_64")
    assert isinstance(e.value, ValueError) and "O_RDONLY" in str(e.value) and e.value.name == "O_RDONY"
    assert "\n" not in str(e.value)
    with pytest.raises(C.UnknownConstant, match=r"not defined on aarch64 \(only on x86_64"):
        C.lookup("ARCH_SET_FS", "aarch64")
    with pytest.raises(C.UnknownConstant) as e:
        C.evaluate("O_RDONLY | CLONE_NEWUSR", "x86_64")
    assert e.value.column == 11 and "CLONE_NEWUSER" in str(e.value)


# --------------------------------------------------------------------------------------------------
# Expressions

@pytest.mark.parametrize("expr,arch,bits,value", [
    ("O_RDONLY|O_CLOEXEC", "x86_64", None, 0x80000),
    ("O_RDONLY | O_CLOEXEC", "mips", None, 0x80000),
    ("~PROT_EXEC", "x86_64", None, 0xFFFFFFFFFFFFFFFB),
    ("~PROT_EXEC", "x86", None, 0xFFFFFFFB),
    ("~PROT_EXEC", "x86_64", 0, -5),
    ("0x10", "arm", None, 16), ("010", "arm", None, 8), ("0b101", "arm", None, 5), ("10UL", "arm", None, 10),
    ("CLONE_NEWUSER|CLONE_NEWNS", "x86_64", None, 0x10020000),
    ("(1 << 4) | 1", "x86_64", None, 17), ("1 << 4 | 1", "x86_64", None, 17), ("2 + 3 << 1", "x86_64", None, 10),
    ("6 & 3 ^ 1", "x86_64", None, 3), ("-1", "x86", None, 0xFFFFFFFF), ("AT_FDCWD", "x86", None, 0xFFFFFF9C),
    ("AT_FDCWD", "x86_64", 0, -100), ("-1 >> 60", "x86_64", None, 15), ("7 / 2 * 2 % 5", "x86_64", None, 1),
    ("O_WRONLY|O_CREAT|O_TRUNC", "parisc", None, 0x301), ("O_WRONLY|O_CREAT|O_TRUNC", "x86_64", None, 0x241),
    ("SOCK_STREAM|SOCK_NONBLOCK|SOCK_CLOEXEC", "mips", None, 0x80082),
])
def test_evaluate(expr: str, arch: str, bits: int | None, value: int) -> None:
    assert C.evaluate(expr, arch, bits=bits) == value


@pytest.mark.parametrize("expr,column", [
    ("", 0), ("1 +", 3), ("(1", 2), ("1 2", 2), ("$", 0), ("1 << 999", 2), ("09", 0), ("1 / 0", 2), ("()", 1),
    ("O_RDONLY |", 10), ("0x", 0),
])
def test_bad_expressions(expr: str, column: int) -> None:
    with pytest.raises(C.BadExpression) as e:
        C.evaluate(expr, "x86_64")
    assert e.value.column == column, str(e.value)
    assert "\n" not in str(e.value) and repr(expr) in str(e.value)


_leaf = st.integers(min_value=0, max_value=2**40).map(str) | st.sampled_from(["O_CLOEXEC", "PROT_EXEC", "AT_FDCWD"])


def _tree(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return (st.tuples(children, st.sampled_from(["|", "&", "^", "+", "-", "*"]), children)
            .map(lambda t: f"({t[0]} {t[1]} {t[2]})")
            | children.map(lambda c: f"~{c}") | children.map(lambda c: f"-({c})"))


@settings(derandomize=True, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.recursive(_leaf, _tree, max_leaves=12), st.sampled_from(["x86_64", "x86", "mips"]))
def test_evaluate_matches_python_arithmetic(expr: str, arch: str) -> None:
    names = C.table(arch)
    py = eval(re.sub(r"[A-Z_]+[A-Z0-9_]*", lambda m: str(names[m.group()]), expr))  # noqa: S307 - test oracle
    bits = sg_arch.get(arch).bits
    assert C.evaluate(expr, arch, bits=0) == py
    assert C.evaluate(expr, arch) == py & ((1 << bits) - 1)


@settings(derandomize=True, max_examples=400, deadline=None)
@given(st.text(alphabet="0123456789xXabcdefOLU_|&^~+-*/%()<> \t!$#", max_size=40)
       | st.text(max_size=30))
def test_evaluate_fuzz_only_value_errors(text: str) -> None:
    try:
        C.evaluate(text, "x86_64")
    except (C.BadExpression, C.UnknownConstant) as e:
        assert "\n" not in str(e)


# --------------------------------------------------------------------------------------------------
# Reverse rendering

def test_reverse_examples() -> None:
    assert C.reverse(0x7E020000, "x86_64", "CLONE_") == (
        "CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET")
    assert C.reverse(9, "x86_64", "SIG") == "SIGKILL"
    assert C.reverse(11, "mips", "E") == "EAGAIN"  # not EWOULDBLOCK, not EFD_*
    assert C.reverse(0xFFFFFF9C, "x86", "AT_") == "AT_FDCWD"
    assert C.reverse(0, "x86_64", "O_") == "O_RDONLY"
    assert C.reverse(0x80000, "x86_64", "O_") == "O_RDONLY|O_CLOEXEC"
    assert C.reverse(0x80042, "x86_64", "O_") == "O_RDWR|O_CREAT|O_CLOEXEC"
    assert C.reverse(0x22, "x86_64", "MAP_") == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert C.reverse(0x802, "mips", "MAP_") == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert C.reverse(0x4000, "aarch64", "O_") == "O_RDONLY|O_DIRECTORY"
    assert C.reverse(0x10000000 | 0x1, "x86_64", "CLONE_") == "CLONE_NEWUSER|0x1"
    assert C.reverse(0, "x86_64", "PROT_") == "PROT_NONE"


@settings(derandomize=True, max_examples=300)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.sampled_from(["CLONE_", "O_", "MAP_", "PROT_", "MS_", "IN_"]),
       st.sampled_from(["x86_64", "aarch64", "mips", "parisc"]))
def test_reverse_round_trips(value: int, prefix: str, arch: str) -> None:
    text = C.reverse(value, arch, prefix)
    assert C.evaluate(text, arch, bits=0) == value, text


# --------------------------------------------------------------------------------------------------
# Generated data: import stays lazy, and matches the headers when the toolchain is present

def test_import_does_not_load_the_table() -> None:
    code = "import sys, sysgate.constants; print('sysgate.arch.constant_tables' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _gen():  # the generator, importable from tools/
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import gen_constants
    finally:
        sys.path.pop(0)
    return gen_constants


def _header_version_matches(arch: str, pkg: str) -> bool:
    from sysgate.arch import constant_tables as data

    r = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True)
    return r.returncode == 0 and f"{pkg} {r.stdout.strip()}" in (data.__doc__ or "")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "mips", "ppc"])
def test_table_matches_a_fresh_compile(arch: str, tmp_path: Path) -> None:
    gen = _gen()
    target = gen.TARGETS[arch]
    if shutil.which(target.cc) is None:
        pytest.skip(f"{target.cc} not installed (see tools/gen_constants.py --deps)")
    if not (_header_version_matches(arch, target.kernel_pkg) and _header_version_matches(arch, target.libc_pkg)):
        pytest.skip("installed headers are not the version the table was generated from")
    fresh = gen.extract(arch, target, tmp_path).values
    table = dict(C.table(arch))
    if not target.libc_pkg:
        pytest.skip("kernel-only target")
    assert fresh == table
