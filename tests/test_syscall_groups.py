"""systemd syscall groups: expansion, nesting, loops, unknown names, and agreement with the corpus."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sysgate import syscall_groups as G
from sysgate import syscall_groups_data as D
from sysgate.arch import ARCHES, all_syscall_names
from sysgate.arch import get as get_arch

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "systemd" / "systemd-syscall-filter-sets.json"


def test_every_group_expands_to_known_syscalls() -> None:
    known = all_syscall_names()
    assert len(G.groups()) >= 29
    for name, help_ in G.groups().items():
        assert name.startswith("@") and help_
        names = G.expand(name)
        assert names == sorted(set(names)) and names, name
        # Every name is a syscall some arch has, or one the generator listed as unknown to every table.
        strays = [n for n in names if n not in known]
        assert set(strays) <= set(D.UNKNOWN), (name, strays)
    assert D.UNKNOWN == ()  # today every name systemd lists is in libseccomp's table


def test_nesting() -> None:
    service = set(G.expand("@system-service"))
    for sub in ("@basic-io", "@default", "@file-system", "@network-io", "@process", "@signal", "@timer"):
        assert set(G.expand(sub)) <= service, sub
    assert {"read", "write", "openat", "brk", "ioctl", "exit_group", "clone"} <= service
    assert "@basic-io" in G.members("@system-service")
    assert not {"mount", "reboot", "init_module", "kexec_load", "swapon", "ptrace"} & service
    privileged = set(G.expand("@privileged"))
    assert set(G.expand("@chown")) | set(G.expand("@module")) | {"bpf", "acct"} <= privileged
    # expansion only ever unions, so a group never loses its own direct names
    for name in G.groups():
        direct = {m for m in G.members(name) if not m.startswith("@")}
        assert direct <= set(G.expand(name))


def test_known_is_every_table_name() -> None:
    assert set(G.expand("@known")) == all_syscall_names()
    assert G.expand("@known", "aarch64") == sorted(get_arch("aarch64").syscalls)


def test_arch_filter_drops_what_the_arch_lacks() -> None:
    assert "ugetrlimit" in G.expand("@default", "x86")
    assert "ugetrlimit" not in G.expand("@default", "x86_64")
    assert "s390_runtime_instr" in G.expand("@debug", "s390x")
    assert "s390_runtime_instr" not in G.expand("@debug", "x86_64")
    for a in ARCHES:
        got = G.expand("@system-service", a)
        assert got and all(a.has(n) for n in got)
        assert {"read", "write", "close"} <= set(got), a.name


def test_unknown_group_suggests() -> None:
    with pytest.raises(G.UnknownGroup, match=r"did you mean @system-service\?"):
        G.expand("@sytem-service")
    with pytest.raises(G.UnknownGroup, match="groups start with '@'"):
        G.expand("basic-io")
    with pytest.raises(ValueError) as e:
        G.members("@nothing-like-it-at-all")
    assert "\n" not in str(e.value)


def test_loops_are_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    groups = dict(D.GROUPS)
    groups["@a"] = ("a", "read @b")
    groups["@b"] = ("b", "write @c")
    groups["@c"] = ("c", "close @a")
    groups["@self"] = ("s", "@self")
    groups["@diamond"] = ("d", "@basic-io @default @basic-io-twice")
    groups["@basic-io-twice"] = ("t", "@basic-io")
    monkeypatch.setattr(D, "GROUPS", groups)
    with pytest.raises(G.GroupLoop, match=r"@a -> @b -> @c -> @a"):
        G.expand("@a")
    with pytest.raises(G.GroupLoop, match=r"@self -> @self"):
        G.expand("@self")
    # shared sub-groups are not loops
    assert set(G.expand("@diamond")) == set(G.expand("@basic-io")) | set(G.expand("@default"))


@pytest.mark.skipif(not CORPUS.exists(), reason="shared corpus not present")
def test_data_matches_corpus() -> None:
    doc = json.loads(CORPUS.read_text())["groups"]
    assert set(doc) == set(G.groups())
    for name, listed in doc.items():
        if name == D.KNOWN:
            continue
        assert G.members(name) == listed, name
