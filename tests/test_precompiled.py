"""The precompiled built-in programs shipped in the package are what the compiler makes today, and
the jail and ``sysgate compile NAME`` use them (tools/gen_precompiled.py writes them; a stale file
fails here)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sysgate import precompiled
from sysgate.compiler import compile_policy
from sysgate.jail import filters
from sysgate.profiles import resolve

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")

MACHINES = ("x86_64", "aarch64")


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("stem", sorted(precompiled.SHIPPED))
def test_shipped_program_equals_a_fresh_compile(stem: str, machine: str) -> None:
    path = filters.precompiled_path(stem, machine)
    with open(path, "rb") as f:
        shipped = f.read()
    assert shipped == filters.precompile(stem, machine), f"{path} is stale: run tools/gen_precompiled.py"
    st = os.stat(path)
    assert not st.st_mode & 0o022


@pytest.mark.skipif(os.uname().machine not in MACHINES, reason="nothing shipped for this machine")
@pytest.mark.parametrize("stem", sorted(filters.PRECOMPILED))
def test_the_jail_uses_the_shipped_program(stem: str, monkeypatch) -> None:
    profile, allow = filters.PRECOMPILED[stem]
    calls: list = []
    monkeypatch.setattr(filters, "_compile", lambda *a: calls.append(a))
    filters.clear_cache()
    prog = filters.get(profile, allow)
    assert prog.key == "precompiled:" + stem and not calls
    with open(filters.precompiled_path(stem), "rb") as f:
        assert f.read().endswith(prog.data)
    filters.clear_cache()


def test_an_edited_profile_is_compiled_afresh(monkeypatch) -> None:
    """The file holds its sources: a different profile text, even one byte, never gets the shipped program."""
    real = precompiled.sources("docker-default")
    for edited in (real[:-1] + bytes([real[-1] ^ 1]), real[:-1], real + b" "):
        monkeypatch.setattr(precompiled, "sources", lambda name, e=edited: e)
        filters.clear_cache()
        assert filters._load_precompiled("docker-default", ()) is None
    monkeypatch.setattr(precompiled, "sources", lambda name: real)
    filters.clear_cache()
    assert filters._load_precompiled("docker-default", ()) is not None
    filters.clear_cache()


def test_a_writable_shipped_file_is_not_trusted(tmp_path, monkeypatch) -> None:
    src = filters.precompiled_path("strict")
    if not os.path.exists(src):
        pytest.skip("nothing shipped for this machine")
    d = tmp_path / "compiled"
    d.mkdir()
    copy = d / os.path.basename(src)
    copy.write_bytes(open(src, "rb").read())
    monkeypatch.setattr(precompiled, "_COMPILED_DIR", str(d))
    copy.chmod(0o644)
    assert filters._load_precompiled("strict", ()) is not None
    copy.chmod(0o666)
    assert filters._load_precompiled("strict", ()) is None


@pytest.mark.skipif(os.uname().machine not in MACHINES, reason="nothing shipped for this machine")
@pytest.mark.parametrize("name", sorted(precompiled.COMPILE))
def test_compile_of_a_builtin_writes_what_the_compiler_makes(name: str, tmp_path) -> None:
    """``sysgate compile NAME`` with default options takes the shipped program (no policy model or
    compiler loaded); its bytes are those of ``compile_policy(resolve(NAME))``, raw and hex."""
    want = compile_policy(resolve(name)).to_bytes()
    assert precompiled.compile_default(name) == want
    env = dict(os.environ, PYTHONPATH=SRC)
    out = tmp_path / "p.bpf"
    code = ("import sys; from sysgate.cli import main; rc = main(sys.argv[1:]); "
            "print(' '.join(m for m in sys.modules if m in ('sysgate.policy', 'sysgate.compiler')), file=sys.stderr); "
            "sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, "compile", name, "-o", str(out)], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr
    assert out.read_bytes() == want
    r = subprocess.run([sys.executable, "-m", "sysgate", "compile", name, "--format", "hex"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == want.hex() + "\n", r.stderr


def test_compile_options_that_change_the_program_compile_afresh(tmp_path) -> None:
    """--caps (and every option that changes the program) never gets the shipped file."""
    env = dict(os.environ, PYTHONPATH=SRC)
    out = tmp_path / "p.bpf"
    r = subprocess.run([sys.executable, "-m", "sysgate", "compile", "docker-default", "--caps", "", "-o", str(out)],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == compile_policy(resolve("docker-default", caps=[])).to_bytes()
    assert out.read_bytes() != compile_policy(resolve("docker-default")).to_bytes()  # chroot differs
