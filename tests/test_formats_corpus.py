"""Every real-world file in ../shared/corpus: detected right, parsed (or refused, for the files that
are errors by design, with one clear line), and converted to every format that can express it and
back with semantic equality judged by the emulator."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sysgate.analysis.equivalence import sampled_equivalent
from sysgate.formats import ProfileError
from sysgate.formats.detect import detect_file
from sysgate.formats.registry import FORMATS, read, read_bytes, write

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present")

# file -> detected kind ("-": not a profile, an error at detection)
DETECT = {
    "firecracker-aarch64-unknown-linux-musl.json": "firecracker",
    "firecracker-unimplemented.json": "firecracker",
    "firecracker-x86_64-unknown-linux-musl.json": "firecracker",
    "moby-profiles-seccomp-default.json": "docker",
    "moby-profiles-seccomp-fixtures-conditional_include.json": "docker",
    "moby-profiles-seccomp-fixtures-default-old-format.json": "docker",
    "moby-profiles-seccomp-fixtures-example.json": "docker",
    "oci-runtime-spec-seccomp-schema-excerpt.json": "-",
    "minijail/tools_testdata_arch_64.json": "-",
    "systemd/systemd-syscall-filter-sets.json": "-",
    **{f"minijail/{p.name}": "minijail" for p in sorted((CORPUS / "minijail").glob("*.policy"))},
    **{f"kafel/{p.name}": "kafel" for p in sorted((CORPUS / "kafel").glob("*.policy"))},
    **{f"seccomp-tools/{p.name}": "bpf" for p in sorted((CORPUS / "seccomp-tools").glob("*.bpf"))},
    **{f"seccomp-tools/{p.name}": "asm" for p in sorted((CORPUS / "seccomp-tools").glob("*.asm"))},
}

# Files that are errors by design (or not expressible in sysgate's model), with their message.
ERRORS = {
    "minijail/test_invalid_arg_filter.policy": "test_invalid_arg_filter.policy:1:7: invalid action",
    "minijail/test_invalid_syscall_name.policy": "test_invalid_syscall_name.policy:1:1: nonexistent syscall",
    "minijail/test_nested.policy": "test_nested.policy:1:10: could not @include",
    # include chains under their original names: tested in a copy below
    "kafel/test_testdata_chain.policy": 'cannot include "basic.policy"',
    "kafel/test_testdata_chain_2.policy": 'cannot include "chain_2_1.policy"',
    "kafel/test_testdata_chain_2_1.policy": "Undefined identifier `STDOUT'",
    "kafel/test_testdata_chain_3.policy": 'cannot include "empty.policy"',
    "kafel/test_testdata_includes_short_loop.policy": 'cannot include "short_loop.policy"',
    "kafel/test_testdata_self_recursive.policy": 'cannot include "self_recursive.policy"',
    "kafel/test_testdata_short_loop.policy": 'cannot include "short_loop_b.policy"',
    "kafel/test_testdata_short_loop_b.policy": 'cannot include "short_loop.policy"',
}

POLICIES = sorted(k for k, v in DETECT.items() if v not in ("-", "bpf", "asm") and k not in ERRORS)

# (file, format) pairs that cannot be exact for the one-architecture policy, and why.
LOSSY = {
    ("moby-profiles-seccomp-default.json", "firecracker"): "match action",
    ("moby-profiles-seccomp-default.json", "minijail"): "default action",
    ("moby-profiles-seccomp-default.json", "systemd"): "cannot test arguments",
    ("moby-profiles-seccomp-fixtures-default-old-format.json", "minijail"): "default action",
    ("moby-profiles-seccomp-fixtures-conditional_include.json", "minijail"): "default action",
    ("moby-profiles-seccomp-fixtures-example.json", "firecracker"): "match action",
    ("moby-profiles-seccomp-fixtures-example.json", "minijail"): "default action",
    ("kafel/samples_sample_basic_many.policy", "firecracker"): "match action",
    ("kafel/samples_sample_basic_many.policy", "systemd"): "@default",
    ("kafel/samples_sample_custom_syscall.policy", "*"): "syscall number",
    ("kafel/samples_sample_custom_syscall_const.policy", "*"): "syscall number",
    # Kafel's argument-to-argument expressions: only Kafel can write them
    **{(f"kafel/samples_sample_{n}.policy", "*"): "compares arguments"
       for n in ("and_cmp_var", "and_eq_var_long", "and_eq_var_long_set", "and_eq_var_short_bottom",
                 "and_eq_var_short_top", "var_cmp")},
}
# systemd holds no argument tests, and allow lists always include @default
SYSTEMD_EXACT = {"minijail/policies_cros_default_v0.policy", "kafel/samples_sample_empty_not_kill.policy"}
for _p in POLICIES:
    if _p not in SYSTEMD_EXACT and (_p, "systemd") not in LOSSY and not _p.startswith("firecracker-unimpl"):
        LOSSY[(_p, "systemd")] = "systemd"


def _arch(name: str) -> str:
    return "aarch64" if "aarch64" in name else "x86_64"


def _threads(path: Path) -> list[str | None]:
    if "firecracker" not in path.name:
        return [None]
    from sysgate.formats import firecracker

    return sorted(firecracker.load(str(path)).filters)


def _groups_available() -> bool:
    try:
        from sysgate import syscall_groups  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", sorted(DETECT))
def test_detect(name: str) -> None:
    want = DETECT[name]
    if want == "-":
        with pytest.raises(ProfileError, match="not a seccomp profile"):
            detect_file(str(CORPUS / name))
    else:
        assert detect_file(str(CORPUS / name)) == want


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_error_cases(name: str) -> None:
    with pytest.raises(ProfileError) as e:
        for thread in _threads(CORPUS / name):
            read(str(CORPUS / name), arch="x86_64", thread=thread)
    msg = str(e.value)
    assert ERRORS[name] in msg
    assert "\n" not in msg and msg.startswith(str(CORPUS / name))


@pytest.mark.parametrize("name", POLICIES)
def test_round_trip_every_format(name: str) -> None:
    """One architecture: every format; exact unless listed in LOSSY, and then losses are reported."""
    path = CORPUS / name
    arch = _arch(name)
    for thread in _threads(path):
        loaded = read(str(path), arch=arch, arches=[arch], thread=thread)
        assert loaded.policy.arches == (arch,)
        for fmt in FORMATS:
            if fmt == "systemd" and not _groups_available():
                continue
            opts = {"thread": thread or "main"} if fmt == "firecracker" else {}
            out = write(loaded, fmt, **opts)
            why = LOSSY.get((name, fmt)) or LOSSY.get((name, "*"))
            if fmt == "kafel" and why in ("syscall number", "compares arguments"):
                why = None  # Kafel names custom syscall numbers and compares arguments
            if why:
                assert out.losses, f"{name} -> {fmt}: expected a loss ({why})"
                assert any(why in line for line in out.losses) or why == "systemd", out.losses
                continue
            assert not out.losses, f"{name} -> {fmt}: {out.losses}"
            back = read_bytes(out.text.encode(), f"<{fmt}>", fmt, arch=arch, arches=[arch],
                              thread=(thread or "main") if fmt == "firecracker" else None)
            diff = sampled_equivalent(loaded.policy, back.policy, [arch])
            assert diff is None, f"{name} ({thread}) -> {fmt} -> back: {diff}\n{out.text[:2000]}"


@pytest.mark.parametrize("name", ["moby-profiles-seccomp-default.json",
                                  "moby-profiles-seccomp-fixtures-default-old-format.json"])
def test_multi_arch_json_round_trips(name: str) -> None:
    """x86_64 + x86 + x32 (moby's archMap): the JSON formats carry all three exactly; the
    per-architecture formats say they cannot."""
    loaded = read(str(CORPUS / name), arch="x86_64")
    assert loaded.policy.arches == ("x86_64", "x86", "x32")
    for fmt in ("docker", "oci", "k8s"):
        out = write(loaded, fmt)
        assert not out.losses
        back = read_bytes(out.text.encode(), f"<{fmt}>", fmt, arch="x86_64")
        assert back.policy.arches == loaded.policy.arches
        assert sampled_equivalent(loaded.policy, back.policy) is None
    for fmt in ("minijail", "kafel", "firecracker"):
        assert any("architecture" in line for line in write(loaded, fmt).losses)


def test_docker_default_every_arch_it_names_round_trips() -> None:
    """moby's default resolved for each primary arch of its archMap, Docker -> Docker."""
    for primary in ("aarch64", "s390x", "ppc64le", "riscv64", "mips64el", "loongarch64"):
        loaded = read(str(CORPUS / "moby-profiles-seccomp-default.json"), arch=primary)
        out = write(loaded, "docker")
        back = read_bytes(out.text.encode(), "<docker>", "docker", arch=primary)
        assert not out.losses
        assert sampled_equivalent(loaded.policy, back.policy) is None, primary


def _copy_kafel_testdata(tmp: Path) -> Path:
    for p in (CORPUS / "kafel").glob("test_testdata_*.policy"):
        shutil.copy(p, tmp / p.name.replace("test_testdata_", ""))
    return tmp


def test_kafel_include_chain(tmp_path: Path) -> None:
    from sysgate import arch
    from sysgate.reference import evaluate

    d = _copy_kafel_testdata(tmp_path)
    (d / "main.policy").write_text('#include "chain.policy"\n'
                                   "POLICY all { USE allow_stdio, USE chain_2, USE chain, USE allow_exit }\n"
                                   "USE all DEFAULT KILL_PROCESS\n")
    p = read(str(d / "main.policy"), arch="x86_64").policy
    a = arch.get("x86_64")
    assert str(evaluate(p, "x86_64", a.nr("write"), [2])) == "allow"  # allow_stdio, via STDERR from chain_2
    assert str(evaluate(p, "x86_64", a.nr("write"), [7])) == "allow"  # chain allows any write later
    assert str(evaluate(p, "x86_64", a.nr("ptrace"), [])) == "kill-thread"  # chain_2's KILL
    assert str(evaluate(p, "x86_64", a.nr("exit"), [])) == "allow"
    assert str(evaluate(p, "x86_64", a.nr("getpid"), [])) == "kill-process"


@pytest.mark.parametrize("name,loop", [
    ("includes_short_loop.policy", "include loop: short_loop.policy -> short_loop_b.policy -> short_loop.policy"),
    ("self_recursive.policy", "include loop: self_recursive.policy -> self_recursive.policy")])
def test_kafel_include_loops(tmp_path: Path, name: str, loop: str) -> None:
    d = _copy_kafel_testdata(tmp_path)
    with pytest.raises(ProfileError, match="include loop") as e:
        read(str(d / name), arch="x86_64")
    assert loop in str(e.value) and "\n" not in str(e.value)


def test_minijail_nested_is_a_loop(tmp_path: Path) -> None:
    # minijail resolves @include against the including file's directory: give "./test/" a target.
    (tmp_path / "test").mkdir()
    (tmp_path / "test" / "test").symlink_to(".")
    shutil.copy(CORPUS / "minijail" / "test_nested.policy", tmp_path / "test" / "nested.policy")
    with pytest.raises(ProfileError) as e:
        read(str(tmp_path / "test" / "nested.policy"), arch="x86_64")
    msg = str(e.value)
    assert msg.startswith(str(tmp_path / "test" / "nested.policy") + ":1:10: @include loop")


def test_minijail_include_depth(tmp_path: Path) -> None:
    for k in range(12):
        (tmp_path / f"p{k}.policy").write_text(f"@include ./p{k + 1}.policy\n" if k < 11 else "read: allow\n")
    with pytest.raises(ProfileError, match=r"p9.policy:1:10: @include statement nested too deep"):
        read(str(tmp_path / "p0.policy"), arch="x86_64")
    assert read(str(tmp_path / "p3.policy"), arch="x86_64").policy.rules


def test_moby_example_errno_above_max_is_clamped_with_a_warning() -> None:
    """moby's fixture example.json has errnoRet 12345: Docker reads it, and the kernel returns
    -min(data, MAX_ERRNO) for SECCOMP_RET_ERRNO, so the policy says ERRNO(4095), with one warning."""
    from sysgate.formats import ProfileWarning
    from sysgate.policy import Action, ActionKind

    path = str(CORPUS / "moby-profiles-seccomp-fixtures-example.json")
    with pytest.warns(ProfileWarning, match=r"syscalls\[3\]\.errnoRet: errno 12345 above 4095") as rec:
        loaded = read(path, arch="x86_64")
    assert len(rec) == 1 and "\n" not in str(rec[0].message)
    assert Action(ActionKind.ERRNO, 4095) in {r.action for r in loaded.policy.rules}


def test_oci_output_follows_the_runtime_spec_schema() -> None:
    """The OCI writer's actions, operators, flags, arches and keys are those the schema allows."""
    import json

    schema = json.loads((CORPUS / "oci-runtime-spec-seccomp-schema-excerpt.json").read_text())
    loaded = read(str(CORPUS / "moby-profiles-seccomp-default.json"), arch="x86_64")
    doc = json.loads(write(loaded, "oci").text)
    top = schema["config-linux.seccomp"]["properties"]
    assert set(doc) <= set(top) and doc["defaultAction"] in schema["SeccompAction"]["enum"]
    assert set(doc["architectures"]) <= set(schema["SeccompArch"]["enum"])
    for entry in doc["syscalls"]:
        assert set(entry) <= set(schema["Syscall"]["properties"])
        assert entry["action"] in schema["SeccompAction"]["enum"]
        for a in entry.get("args", []):
            assert set(a) <= set(schema["SyscallArg"]["properties"])
            assert a["op"] in schema["SeccompOperators"]["enum"]
