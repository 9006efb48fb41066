"""sysgate._startup: the only module that imports private CPython modules, and every fast path it
offers degrades to the public module (on another CPython, or with SYSGATE_PUBLIC_STDLIB)."""
from __future__ import annotations

import ast
import ctypes
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sysgate import _startup

PKG = Path(__file__).resolve().parents[1] / "src" / "sysgate"
SRC = str(PKG.parent)
# Documented in the library reference, so public despite the underscore; __future__/__main__ are language.
PUBLIC = {"__future__", "__main__", "_thread"}


def _private_imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        out += [f"{n} (line {node.lineno})" for n in names if n.split(".")[0].startswith("_")
                and n.split(".")[0] not in PUBLIC]
    return out


def test_no_private_cpython_module_outside_startup() -> None:
    found = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel == "_startup.py":
            continue
        bad = _private_imports(path)
        if bad:
            found[rel] = bad
    assert not found, found
    assert _private_imports(PKG / "_startup.py")  # the scan does see them where they are


def _run(code: str, **env: str) -> list[str]:
    e = {k: v for k, v in os.environ.items() if k != "SYSGATE_PUBLIC_STDLIB"}
    e.update(PYTHONPATH=SRC, **env)
    r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env=e, timeout=60, cwd="/",
                       check=False)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


RUN = ("import sys, sysgate\n"
       "r = sysgate.run(['/bin/sh', '-c', 'echo ok; kill -TERM $$'], capture_output=True)\n"
       "assert (r.status, r.signal, r.stdout) == ('signaled', 15, b'ok\\n'), r\n"
       "r = sysgate.run(['/bin/true'], memory='64M')\n"  # the fork launcher
       "assert r.ok, r\n"
       "from sysgate import _startup\n"
       "print(_startup.VALIDATED, r.launcher, *sorted(m for m in ('ctypes', 'signal', 'hashlib', 'enum', '_sha2',"
       " '_sha256') if m in sys.modules))\n")


@pytest.mark.skipif(not _startup.VALIDATED, reason="a CPython the fast paths are not validated on")
def test_run_path_uses_no_public_module_it_replaces() -> None:
    out = _run(RUN)
    assert out[:2] == ["True", "fork"]
    assert not {"ctypes", "signal", "hashlib", "enum"} & set(out[2:]), out


def test_public_stdlib_switch() -> None:
    out = _run(RUN, SYSGATE_PUBLIC_STDLIB="1")
    assert {"ctypes", "signal"} <= set(out[2:]) and not {"_sha2", "_sha256"} & set(out[2:]), out
    one = _run(RUN, SYSGATE_PUBLIC_STDLIB="signal")
    assert "signal" in one and "ctypes" not in one, one
    sha = "from sysgate import _startup\n_startup.sha256(b'')\nprint(*sorted(set(sys.modules) & {'hashlib', '_sha256', '_sha2'}))"
    assert _run("import sys\n" + sha, SYSGATE_PUBLIC_STDLIB="1")[:1] == ["hashlib"]
    if _startup.VALIDATED:
        assert _run("import sys\n" + sha) in (["_sha256"], ["_sha2"])  # (the private module alone)


def test_default_run_hashes_nothing() -> None:
    """The shipped programs are checked against a copy of their sources (sysgate.precompiled), so
    the run path loads no hash module at all."""
    out = _run(RUN)
    assert not {"hashlib", "_sha2", "_sha256"} & set(out[2:]), out


def test_unknown_cpython_version_takes_the_public_modules_and_the_fork_launcher() -> None:
    out = _run("import sys\nsys.version_info = (3, 99, 0, 'final', 0)\n" + RUN.replace(
        "r = sysgate.run(['/bin/true'], memory='64M')", "r = sysgate.run(['/bin/true'])"))
    assert out[:2] == ["False", "fork"], out
    assert {"ctypes", "signal"} <= set(out[2:]), out


@pytest.mark.skipif(not _startup.VALIDATED, reason="the replacement is used on validated versions only")
def test_mini_ctypes_matches_ctypes() -> None:
    m = _startup._mini_ctypes()
    for name in ("c_int", "c_uint", "c_long", "c_ulong", "c_ushort", "c_char", "c_void_p", "c_size_t",
                 "c_uint64", "c_uint32", "c_int32"):
        assert m.sizeof(getattr(m, name)) == ctypes.sizeof(getattr(ctypes, name)), name
        assert getattr(m, name)(7 if name != "c_char" else b"x").value == getattr(ctypes, name)(
            7 if name != "c_char" else b"x").value
    buf = m.create_string_buffer(b"a\0b", 5)
    assert bytes(buf) == b"a\0b\0\0"  # NULs copied, the rest zeroed
    libc = m.CDLL(None, use_errno=True)
    assert libc.getpid() == os.getpid()
    assert libc.close(-1) == -1 and m.get_errno() == 9  # EBADF, kept by use_errno
    strlen = libc["strlen"]
    strlen.argtypes = [m.c_char_p]
    assert strlen(b"abcd") == 4 and libc["strlen"] is not strlen
    cmp = m.CFUNCTYPE(m.c_int, m.c_void_p)
    assert cmp(lambda p: 41 + (p is None))(None) == 42
    libc.getpid.argtypes = [ctypes.c_int] * 0  # public ctypes types mix with these
    assert m.PyDLL(None).getpid() == os.getpid()


# --------------------------------------------------------------------- what the run path imports

# Modules a script's first sandbox must not load: what a default run does not use, and public
# modules whose import alone costs milliseconds (collections: ~2.5 ms where re has not loaded it;
# importlib brings warnings; struct, signal and enum stand in _startup or are not needed; socket and
# _socket: the listener is passed through sysgate.kernel.fdpass).
NOT_ON_THE_API_RUN_PATH = {"collections", "importlib", "warnings", "struct", "enum", "re", "typing", "threading",
                           "socket", "_socket", "resource", "sysgate.jail.mediation",
                           "subprocess", "select", "json", "sysgate.formats", "sysgate.profiles", "sysgate.policy",
                           "sysgate.compiler", "sysgate.jail.netpool", "sysgate.jail.cgroups"}

API_RUN = ("import sys\n"
           "before = set(sys.modules)\n"
           "import sysgate\n"
           "r = sysgate.run(['/bin/true'])\n"
           "assert r.ok, r\n"
           "print(*sorted(set(sys.modules) - before))\n")


def test_a_scripts_first_sandbox_imports_only_what_it_uses() -> None:
    loaded = set(_run(API_RUN))
    assert {"sysgate.jail.sandbox", "sysgate.jail.runner", "sysgate.jail.supervisor"} <= loaded  # it did run
    assert not NOT_ON_THE_API_RUN_PATH & loaded, sorted(NOT_ON_THE_API_RUN_PATH & loaded)


def test_sysgate_run_is_the_jails_run() -> None:
    import sysgate
    from sysgate import jail
    from sysgate.jail import sandbox

    assert sysgate.run is sandbox.run is jail.run and sysgate.Sandbox is sandbox.Sandbox is jail.Sandbox
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        sysgate.nothing  # noqa: B018


def test_options_take_any_mapping_without_importing_collections() -> None:
    from types import MappingProxyType

    from sysgate.jail.options import JailConfigError, Options

    o = Options(rlimits=MappingProxyType({"nofile": 64}), env=MappingProxyType({"A": "1"}))
    assert o.rlimits == {"core": (0, 0), "nofile": (64, 64)} and o.env == {"A": "1"}
    o = Options(rlimits=["nofile=32:64"], env=["A=2"])
    assert o.rlimits["nofile"] == (32, 64) and o.env == {"A": "2"}
    with pytest.raises(JailConfigError, match="--env"):
        Options(env=[("A", "1")])  # a list of pairs is not a mapping: each item must be NAME=VALUE


def test_records_compare_by_their_own_fields() -> None:
    """Record's value getter is made per class on first use (importing operator only then): each
    class compares and hashes by its own fields, never by another's getter."""
    from sysgate.immutable import Record

    class A(Record):
        __slots__ = ("x",)

    class B(Record):
        __slots__ = ("x", "y")

    assert A(1) == A(1) and A(1) != A(2) and hash(A(1)) == hash(A(1))
    assert B(1, 2) == B(1, 2) and B(1, 2) != B(1, 3)  # y counts: B's getter, not A's
    assert A(1) != B(1, 2) and B(1, 2) != A(1)
    assert len({B(1, 2), B(1, 2), B(1, 3)}) == 2 and B(1, 2)._values() == (1, 2) and A(7)._values() == (7,)


# --------------------------------------------------------------------- the bundle (one file of code)

_LOADERS = ("import sysgate.jail.runner, sysgate.jail.rlimits, sysgate.cli\n"
            "from sysgate import _startup\n"
            "print(*(type(sys.modules[m].__loader__).__name__ for m in ('sysgate.jail.runner', "
            "'sysgate.jail.rlimits', 'sysgate.cli')), getattr(sysgate.jail.rlimits, 'MARK', '-'))\n")


@pytest.fixture
def pkg(tmp_path: Path) -> Path:
    """A private copy of the package, so that its __pycache__ is this test's alone."""
    import shutil

    shutil.copytree(PKG, tmp_path / "sysgate", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def _in(pkg: Path, code: str = "", *argv: str, **env: str) -> subprocess.CompletedProcess:
    e = {k: v for k, v in os.environ.items() if k not in ("SYSGATE_PUBLIC_STDLIB", "PYTHONDONTWRITEBYTECODE")}
    e.update(PYTHONPATH=str(pkg), **env)
    cmd = [sys.executable, "-m", "sysgate", *argv] if argv else [sys.executable, "-c", "import sys\n" + code]
    r = subprocess.run(cmd, capture_output=True, text=True, env=e, timeout=60, cwd="/", check=False)
    assert r.returncode == 0, r.stderr
    return r


def _bundle(pkg: Path) -> Path:
    return pkg / "sysgate" / "__pycache__" / f"_startup.bundle.{sys.implementation.cache_tag}.opt{sys.flags.optimize}"


def test_run_writes_the_bundle_and_the_next_start_reads_its_modules_from_it(pkg: Path) -> None:
    assert _in(pkg, _LOADERS).stdout.split() == ["SourceFileLoader"] * 3 + ["-"]  # nothing to read yet
    assert not _bundle(pkg).exists()
    _in(pkg, "", "run", "--", "/bin/true")
    st = _bundle(pkg).stat()
    assert st.st_uid == os.geteuid() and not st.st_mode & 0o022
    assert _in(pkg, _LOADERS).stdout.split() == ["_BundleFinder"] * 3 + ["-"]
    attrs = _in(pkg, "import importlib.util, sysgate.jail, sysgate.jail.runner as m\n"
                     "print(m.__file__, m.__cached__ == importlib.util.cache_from_source(m.__file__), "
                     "m.__spec__.origin == m.__file__, m.__name__, sysgate.jail.__path__)").stdout.split()
    assert attrs == [str(pkg / "sysgate" / "jail" / "runner.py"), "True", "True", "sysgate.jail.runner",
                     f"['{pkg / 'sysgate' / 'jail'}']"], attrs  # a module as the import system makes it
    _in(pkg, "", "run", "--", "/bin/true")  # every module served: not written again
    assert _bundle(pkg).stat().st_mtime_ns == st.st_mtime_ns


def test_an_edited_module_is_compiled_anew_and_the_bundle_rewritten(pkg: Path) -> None:
    _in(pkg, "", "run", "--", "/bin/true")
    src = pkg / "sysgate" / "jail" / "rlimits.py"
    src.write_text(src.read_text() + "\nMARK = 'edited'\n")
    assert _in(pkg, _LOADERS).stdout.split() == ["_BundleFinder", "SourceFileLoader", "_BundleFinder", "edited"]
    _in(pkg, "", "run", "--", "/bin/true")
    assert _in(pkg, _LOADERS).stdout.split() == ["_BundleFinder"] * 3 + ["edited"]


@pytest.mark.parametrize("spoil", ["writable", "other owner", "damaged", "truncated", "damaged code",
                                   "other version"])
def test_a_bundle_that_cannot_be_trusted_or_read_is_not_used(pkg: Path, spoil: str) -> None:
    _in(pkg, "", "run", "--", "/bin/true")
    b = _bundle(pkg)
    if spoil == "writable":
        b.chmod(0o666)
    elif spoil == "other owner":
        os.chown(b, 65534, 65534)
    elif spoil == "damaged":
        b.write_bytes(b"\x00" * 1000)
    elif spoil == "truncated":
        b.write_bytes(b.read_bytes()[:5000])
    elif spoil == "damaged code":  # the index intact, every module's code overwritten
        import marshal

        data = bytearray(b.read_bytes())
        start = 24 + int.from_bytes(data[16:24], "little")
        data[start:] = b"\xff" * (len(data) - start)
        b.write_bytes(bytes(data))
        assert marshal.loads(data[24:start])[1]  # (the index still reads)
    else:
        import marshal

        data = b.read_bytes()
        start = 24 + int.from_bytes(data[16:24], "little")
        _version, index = marshal.loads(data[24:start])
        head = marshal.dumps(("2.7.18 (an older interpreter)", index))
        b.write_bytes(data[:16] + len(head).to_bytes(8, "little") + head + data[start:])
    want = ["_BundleFinder"] * 3 if spoil == "damaged code" else ["SourceFileLoader"] * 3  # compiled from source
    assert _in(pkg, _LOADERS).stdout.split() == want + ["-"]
    r = _in(pkg, "", "run", "--", "/bin/sh", "-c", "echo ran")  # the command runs as ever
    assert r.stdout == "ran\n"
    assert _in(pkg, _LOADERS).stdout.split() == ["_BundleFinder"] * 3 + ["-"]  # and the bundle was written anew


def test_bundle_is_neither_written_without_bytecode_nor_read_when_switched_off(pkg: Path) -> None:
    _in(pkg, "", "run", "--", "/bin/true", PYTHONDONTWRITEBYTECODE="1")
    assert not _bundle(pkg).exists()
    _in(pkg, "", "run", "--", "/bin/true")
    assert _in(pkg, _LOADERS, SYSGATE_PUBLIC_STDLIB="bundle").stdout.split() == ["SourceFileLoader"] * 3 + ["-"]
    assert _in(pkg, _LOADERS, SYSGATE_PUBLIC_STDLIB="1").stdout.split() == ["SourceFileLoader"] * 3 + ["-"]


def test_starts_that_import_different_modules_share_one_bundle(pkg: Path) -> None:
    """The bundle keeps the modules of every start: a start that imports others adds them once, and
    then no start rewrites it (the rewriting would cost every run)."""
    _in(pkg, "", "run", "--", "/bin/true")
    _in(pkg, "", "run", "--prof", "docker-default", "--", "/bin/true")  # argparse reads this one: more modules
    first = _bundle(pkg).stat().st_mtime_ns
    for _ in range(2):
        _in(pkg, "", "run", "--", "/bin/true")
        _in(pkg, "", "run", "--prof", "docker-default", "--", "/bin/true")
    assert _bundle(pkg).stat().st_mtime_ns == first


def test_a_copied_tree_does_not_serve_the_originals_modules(pkg: Path, tmp_path: Path) -> None:
    """``cp -a`` of an installed package carries its bundle, whose entries name the original's
    files: the copy imports its own files, and writes a bundle of its own."""
    import shutil

    _in(pkg, "", "run", "--", "/bin/true")
    copy = tmp_path / "copy"
    shutil.copytree(pkg / "sysgate", copy / "sysgate")  # __pycache__ and the bundle included
    src = copy / "sysgate" / "jail" / "rlimits.py"
    src.write_text(src.read_text() + "\nMARK = 'copy'\n")
    out = _in(copy, _LOADERS + "print(sysgate.jail.runner.__file__)").stdout.split()
    assert out[:4] == ["SourceFileLoader"] * 3 + ["copy"] and out[4].startswith(str(copy)), out
    _in(copy, "", "run", "--", "/bin/true")
    out = _in(copy, _LOADERS + "print(sysgate.jail.runner.__file__)").stdout.split()
    assert out[:4] == ["_BundleFinder"] * 3 + ["copy"] and out[4].startswith(str(copy)), out
