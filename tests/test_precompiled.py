"""The precompiled built-in programs shipped in the package are what the compiler makes today, and
the jail uses them (tools/gen_precompiled.py writes them; a stale file fails here)."""
from __future__ import annotations

import os

import pytest

from sysgate.jail import filters

MACHINES = ("x86_64", "aarch64")


@pytest.mark.parametrize("machine", MACHINES)
@pytest.mark.parametrize("stem", sorted(filters.PRECOMPILED))
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
    """The file records its sources' digest: a different profile text never gets the shipped program."""
    monkeypatch.setattr(filters, "_source_digest", lambda name: b"\0" * 32)
    filters.clear_cache()
    assert filters._load_precompiled("docker-default", ()) is None
    filters.clear_cache()


def test_a_writable_shipped_file_is_not_trusted(tmp_path, monkeypatch) -> None:
    src = filters.precompiled_path("strict")
    if not os.path.exists(src):
        pytest.skip("nothing shipped for this machine")
    d = tmp_path / "compiled"
    d.mkdir()
    copy = d / os.path.basename(src)
    copy.write_bytes(open(src, "rb").read())
    monkeypatch.setattr(filters, "_COMPILED_DIR", str(d))
    copy.chmod(0o644)
    assert filters._load_precompiled("strict", ()) is not None
    copy.chmod(0o666)
    assert filters._load_precompiled("strict", ()) is None
