"""The generated syscall tables (``sysgate/arch/tables/``, one module per kernel ABI table).

* known numbers per table, from the kernel's syscall tables (arch/*/syscall*.tbl, unistd.h), and
  names each table must lack;
* every ``Arch``'s table module loads, and each table equals libseccomp's ``syscalls.csv`` in
  ../shared (or $SYSGATE_SHARED; skipped when absent), read here on its own;
* ``tools/gen_syscalls.py`` run on that csv writes exactly the checked-in files;
* ``names.NAMES`` is exactly the names of all tables, so ``all_syscall_names`` built from it is complete;
* importing ``sysgate.kernel.syscall`` loads one table module only (the host's).
"""
from __future__ import annotations

import csv
import filecmp
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sysgate import arch as A
from sysgate.arch import tables as T

ROOT = Path(__file__).resolve().parents[1]
CSV = Path(os.environ.get("SYSGATE_SHARED") or ROOT.parent / "shared") / "data" / "syscalls.csv"
needs_csv = pytest.mark.skipif(not CSV.exists(), reason=f"{CSV} not present")

# table -> {name: number without the ABI base, or None where the ABI lacks the call}
KNOWN: dict[str, dict[str, int | None]] = {
    "x86": {"read": 3, "getpid": 20, "socketcall": 102, "openat": 295, "socket": 359, "arch_prctl": 384},
    "x86_64": {"read": 0, "open": 2, "getpid": 39, "execve": 59, "openat": 257, "map_shadow_stack": 453,
               "socketcall": None},
    "x32": {"getpid": 39, "openat": 257, "rt_sigaction": 512, "execve": 520, "map_shadow_stack": None},
    "arm": {"getpid": 20, "socket": 281, "openat": 322, "breakpoint": 0xF0001, "set_tls": 0xF0005,
            "socketcall": None},
    "aarch64": {"openat": 56, "read": 63, "getpid": 172, "execve": 221, "open": None},
    "loongarch64": {"openat": 56, "read": 63, "getpid": 172, "clone3": 435, "open": None},
    "m68k": {"getpid": 20, "openat": 288, "socket": 356, "socketcall": 102},
    "mips": {"getpid": 20, "socket": 183, "openat": 288, "cachectl": 148},
    "mips64": {"read": 0, "getpid": 38, "socket": 40, "openat": 247},
    "mips64n32": {"read": 0, "getpid": 38, "socket": 40, "openat": 251},
    "parisc": {"getpid": 20, "socket": 17, "openat": 275, "_llseek": 140},
    "parisc64": {"getpid": 20, "socket": 17, "openat": 275, "_llseek": None},
    "ppc": {"getpid": 20, "openat": 286, "socket": 326, "swapcontext": 249},
    "ppc64": {"getpid": 20, "openat": 286, "socket": 326, "socketcall": 102},
    "riscv64": {"openat": 56, "getpid": 172, "riscv_hwprobe": 258, "riscv_flush_icache": 259, "open": None},
    "s390": {"getpid": 20, "openat": 288, "socket": 359, "s390_runtime_instr": 342},
    "s390x": {"getpid": 20, "openat": 288, "socket": 359, "_llseek": None},
    "sh": {"getpid": 20, "openat": 295, "socket": 340, "socketcall": 102},
}


def _numbers(table: str) -> dict[str, int]:
    numbers = importlib.import_module(f"sysgate.arch.tables.{table}").NUMBERS
    assert isinstance(numbers, dict)
    return numbers


def test_every_table_is_known_and_used() -> None:
    assert set(KNOWN) == set(T.TABLES)
    assert {a.table for a in A.ARCHES} == set(T.TABLES)
    assert all(t.isidentifier() for t in T.TABLES)


@pytest.mark.parametrize("table", sorted(KNOWN))
def test_known_numbers(table: str) -> None:
    numbers = _numbers(table)
    assert len(numbers) > 300
    assert all(isinstance(n, str) and type(nr) is int and 0 <= nr < 0x100000 for n, nr in numbers.items())
    assert list(numbers) == sorted(numbers)  # name order: the first of two names sharing a number names it
    assert {n: numbers.get(n) for n in KNOWN[table]} == KNOWN[table]


def test_every_arch_loads_its_table_with_its_base() -> None:
    for a in A.ARCHES:
        numbers = _numbers(a.table)
        assert a.syscalls == {n: nr + a.nr_base for n, nr in numbers.items()}, a.name


def _read_csv() -> tuple[str, dict[str, dict[str, int]]]:
    """(kernel version, table -> {name: number}) from libseccomp's csv: per table a number column
    and a kernel-version column; PNR where the ABI lacks the call."""
    with open(CSV, newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    tables = {header[c]: c for c in range(1, len(header), 2)}
    out: dict[str, dict[str, int]] = {t: {} for t in tables}
    for row in rows[1:]:
        for t, c in tables.items():
            if row[c] != "PNR":
                out[t][row[0]] = int(row[c])
    # syscall_64.tbl: "453 64 map_shadow_stack", x86_64 only; the csv numbers it on x32 as well
    del out["x32"]["map_shadow_stack"]
    return header[0], out


@needs_csv
def test_tables_equal_the_csv() -> None:
    head, want = _read_csv()
    assert T.KERNEL_VERSION in head
    assert tuple(want) == T.TABLES
    for t in T.TABLES:
        assert _numbers(t) == want[t], t


@needs_csv
def test_generator_writes_the_checked_in_files(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_syscalls.py"), str(CSV), str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    pkg = Path(T.__file__).parent
    names = sorted(p.name for p in pkg.glob("*.py"))
    assert names == sorted(p.name for p in tmp_path.glob("*.py")) == sorted(
        ["__init__.py", "names.py", *(t + ".py" for t in T.TABLES)])
    match, mismatch, errors = filecmp.cmpfiles(pkg, tmp_path, names, shallow=False)
    assert (mismatch, errors) == ([], []), "regenerate with tools/gen_syscalls.py"


def test_the_index_names_every_syscall_and_nothing_else() -> None:
    from sysgate.arch.tables.names import NAMES

    every = set().union(*(_numbers(t) for t in T.TABLES))
    assert set(NAMES) == every and len(NAMES) == len(every) and list(NAMES) == sorted(NAMES)
    assert A.all_syscall_names() == every


_FRESH = """
import sys
import {mod}
from sysgate import arch as A
def tables():
    return sorted(m.rsplit(".", 1)[1] for m in sys.modules if m.startswith("sysgate.arch.tables."))
print(" ".join(tables()))
# names a loaded table has answer without importing others; a name only another ABI has, or none
print(A.is_syscall_name("getpid"), " ".join(tables()))
print(A.is_syscall_name("clock_gettime64"), A.is_syscall_name("riscv_hwprobe"), A.is_syscall_name("no_such_call"),
      " ".join(tables()))
"""


def _fresh(mod: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(A.__file__).resolve().parents[2]))
    r = subprocess.run([sys.executable, "-S", "-c", _FRESH.format(mod=mod)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()


@pytest.mark.skipif(os.uname().machine != "x86_64" or sys.maxsize < 2**32, reason="x86_64 host only")
def test_kernel_syscall_loads_only_the_host_table() -> None:
    out = _fresh("sysgate.kernel.syscall")
    assert out[0] == "x86_64"
    assert out[1] == "True x86_64"
    # clock_gettime64 (32-bit ABIs only), riscv_hwprobe (riscv64 only) and a name no ABI has: the index
    # ("names") answers, no other table is loaded
    assert out[2] == "True True False names x86_64"


def test_arch_import_loads_no_table() -> None:
    assert _fresh("sysgate.arch")[0] == ""


def test_cached_programs_follow_every_table() -> None:
    """A changed table invalidates the jail's cached programs: each table file is in the cache key's stamp."""
    from sysgate.jail import filters

    stamp = filters._code_stamp().decode()
    for name in ("__init__", *T.TABLES):
        assert f"arch/tables/{name}.py:" in stamp, name
