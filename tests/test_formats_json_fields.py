"""The JSON readers' field rules (issues 11 and 12): fields real producers write are read, unknown ones
warned about (``--strict``: refused), near misses refused, every value type-checked with its path,
includes/excludes validated whether reached or not, errno clamped as the kernel clamps it,
duplicates resolved as runc + libseccomp resolve them, Kubernetes manifests with several profiles,
archMap coverage, and seccompiler's field names."""
from __future__ import annotations

import io
import json
import os
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from sysgate import arch as A
from sysgate.bpf.emulator import emulate
from sysgate.cli import main
from sysgate.compiler import compile_policy
from sysgate.formats import ProfileError, ProfileWarning
from sysgate.formats import docker as D
from sysgate.formats import firecracker as FC
from sysgate.formats import k8s as K
from sysgate.policy import Action, ActionKind

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
PODMAN = SHARED / "corpus" / "realworld" / "docker" / "containers-common-HEAD-seccomp.json"
X86_64 = A.get("x86_64")


def parse(doc: Any, **kw: Any) -> D.DockerProfile:
    return D.parse(doc, "p.json", arch="x86_64", kernel=(6, 18), **kw)


def base(**extra: Any) -> dict:
    doc: dict[str, Any] = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}
    doc.update(extra)
    return doc


def rule(**extra: Any) -> dict:
    r: dict[str, Any] = {"names": ["personality"], "action": "SCMP_ACT_ALLOW"}
    r.update(extra)
    return r


def cli(*argv: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        status = main(list(argv))
    return status, err.getvalue().splitlines()


# --- fields real producers write; unknown fields; near misses -----------------------------------

@pytest.mark.skipif(not PODMAN.exists(), reason="shared corpus not present")
def test_podman_default_reads_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", ProfileWarning)
        prof = D.load(str(PODMAN), arch="x86_64", kernel=(6, 18))
    assert prof.policy.default == Action(ActionKind.ERRNO, 38)
    # setns: allowed by syscalls[1], ERRNO by an entry for containers without CAP_SYS_ADMIN: the
    # first unconditional entry decides (libseccomp keeps it), as runc + libseccomp do
    prog = compile_policy(prof.policy).insns
    assert emulate(prog, "x86_64", X86_64.nr("setns"), [0] * 6).ret == 0x7FFF0000
    assert any(s.endswith("setns (decided by syscalls[1])") for s in prof.shadowed)


def test_unknown_field_is_one_warning_and_ignored() -> None:
    with pytest.warns(ProfileWarning) as rec:
        prof = parse(base(vendorNote="x", syscalls=[rule(seccompNote=1)]))
    msgs = [str(r.message) for r in rec]
    assert msgs == ["p.json: vendorNote: unknown field, ignored as Go's encoding/json (Docker, runc, podman) "
                    "ignores it (--strict makes it an error)",
                    "p.json: syscalls[0].seccompNote: unknown field, ignored as Go's encoding/json (Docker, runc, "
                    "podman) ignores it (--strict makes it an error)"]
    assert prof.policy.rules


@pytest.mark.parametrize("doc,where", [
    ({"defualtAction": "SCMP_ACT_ALLOW", "defaultAction": "SCMP_ACT_ERRNO"}, "defualtAction: unknown field (did you mean 'defaultAction'?)"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "sycalls": []}, "sycalls: unknown field (did you mean 'syscalls'?)"),
    ({"defaultAction": "SCMP_ACT_ERRNO", "DefaultErrnoRet": 1}, "DefaultErrnoRet: unknown field (did you mean 'defaultErrnoRet'?)"),
    (base(syscalls=[rule(nmes=["x"])]), "syscalls[0].nmes: unknown field (did you mean 'names'?)"),
    (base(syscalls=[rule(args=[{"index": 0, "vaule": 1, "op": "SCMP_CMP_EQ"}])]), "args[0].vaule: unknown field (did you mean 'value'?)"),
    (base(syscalls=[rule(includes={"cap": ["CAP_SYS_ADMIN"]})]), "includes.cap: unknown field (did you mean 'caps'?)"),
    (base(syscalls=[rule(errnoret=3)]), "syscalls[0].errnoret: unknown field (did you mean 'errnoRet'?)"),
])
def test_near_misses_of_known_fields_are_errors(doc: dict, where: str) -> None:
    with pytest.raises(ProfileError) as e:
        parse(doc)
    assert str(e.value).startswith("p.json: ") and where in str(e.value) and "\n" not in str(e.value)


def test_strict_makes_an_unknown_field_an_error(tmp_path: Path) -> None:
    src = tmp_path / "p.json"
    src.write_text(json.dumps(base(vendorNote="x")))
    out = tmp_path / "out"
    status, lines = cli("compile", str(src), "--arch", "x86_64", "--format", "hex", "-o", str(out))
    assert status == 0 and lines == [f"sysgate: warning: {src}: vendorNote: unknown field, ignored as Go's "
                                     f"encoding/json (Docker, runc, podman) ignores it (--strict makes it an error)"]
    out.unlink()
    for argv in (["compile", str(src), "--strict", "-o", str(out)],
                 ["convert", str(src), "--to", "oci", "--strict", "-o", str(out)],
                 ["explain", str(src), "--strict", "--arch", "x86_64"]):
        status, lines = cli(*argv)
        assert status == 2 and len(lines) == 1 and lines[0].startswith(f"sysgate: error: {src}: vendorNote:"), argv
        assert not out.exists()


def test_run_takes_strict() -> None:
    from sysgate.cli import parse_args

    assert parse_args(["run", "--strict", "--", "true"]).strict is True
    assert parse_args(["run", "--", "true"]).strict is False


# --- types ------------------------------------------------------------------------------------------

BAD_TYPES = [
    (base(archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": 1}]),
     "archMap[0].subArchitectures: expected a list, got an integer"),
    (base(archMap=[{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": "SCMP_ARCH_X86"}]),
     "archMap[0].subArchitectures: expected a list, got a string"),
    (base(architectures="SCMP_ARCH_X86_64"), "architectures: expected a list, got a string"),
    (base(architectures={"SCMP_ARCH_X86_64": 1}), "architectures: expected a list, got an object"),
    (base(syscalls=[rule(names="personality")]), "syscalls[0].names: expected a list, got a string"),
    (base(syscalls=[rule(args={})]), "syscalls[0].args: expected a list, got an object"),
    (base(syscalls=[rule(args="")]), "syscalls[0].args: expected a list, got a string"),
    (base(syscalls=[rule(args=0)]), "syscalls[0].args: expected a list, got an integer"),
    (base(syscalls=[rule(args=False)]), "syscalls[0].args: expected a list, got a boolean"),
    (base(syscalls={}), "syscalls: expected a list, got an object"),
    (base(syscalls=""), "syscalls: expected a list, got a string"),
    (base(flags=""), "flags: expected a list, got a string"),
    (base(syscalls=[rule(includes=[])]), "syscalls[0].includes: expected an object"),
    (base(syscalls=[rule(excludes="")]), "syscalls[0].excludes: expected an object"),
    (base(syscalls=[rule(includes={"caps": "CAP_SYS_ADMIN"})]), "includes.caps: expected a list, got a string"),
    (base(syscalls=[rule(comment=3)]), "syscalls[0].comment: expected a string, got an integer"),
    (base(syscalls=[rule(errnoRet="1", action="SCMP_ACT_ERRNO")]), "syscalls[0].errnoRet: expected an integer, got a string"),
    (base(syscalls=[rule(errno=1)]), "syscalls[0].errno: expected a string, got an integer"),
    (base(defaultErrnoRet=True), "defaultErrnoRet: expected an integer, got a boolean"),
    (base(syscalls=[rule(args=[{"index": 0, "value": False, "op": "SCMP_CMP_EQ"}])]), "args[0].value: expected an integer, got a boolean"),
    (base(syscalls=[rule(args=[{"index": "0", "value": 1, "op": "SCMP_CMP_EQ"}])]), "args[0].index: expected an integer, got a string"),
    (base(syscalls=[rule(args=[{"index": 0, "value": 1.0, "op": "SCMP_CMP_EQ"}])]), "args[0].value: expected an integer, got a number"),
    (base(syscalls=[rule(args=[{"index": 0, "value": 1, "op": 1}])]), "args[0].op: expected a string, got an integer"),
    (base(syscalls=[rule(name="personality")]), "both 'name' and 'names'"),
    (base(listenerPath=1), "listenerPath: expected a string, got an integer"),
]


@pytest.mark.parametrize("doc,where", BAD_TYPES)
def test_every_field_is_type_checked(doc: dict, where: str) -> None:
    with pytest.raises(ProfileError) as e:
        parse(doc)
    assert where in str(e.value) and str(e.value).startswith("p.json: ") and "\n" not in str(e.value)


def test_null_reads_as_absent_as_in_go() -> None:
    prof = parse(base(architectures=None, flags=None, syscalls=[rule(args=None, includes=None, comment=None)]))
    assert [str(r) for r in prof.policy.rules] == ["personality -> allow"]


def test_personality_with_args_object_is_not_an_unconditional_allow(tmp_path: Path) -> None:
    src = tmp_path / "p.json"
    src.write_text(json.dumps(base(syscalls=[rule(args={})])))
    status, lines = cli("compile", str(src), "--arch", "x86_64", "--format", "hex", "-o", str(tmp_path / "o"))
    assert status == 2 and lines == [f"sysgate: error: {src}: syscalls[0].args: expected a list, got an object"]


# --- includes/excludes validated on load ------------------------------------------------------------

@pytest.mark.parametrize("filt,where", [
    ({"includes": {"minKernel": "5"}}, "includes.minKernel: bad kernel version '5'"),
    ({"includes": {"minKernel": 5.8}}, "includes.minKernel: expected a string"),
    ({"includes": {"minKernel": "5.x"}}, "includes.minKernel: bad kernel version '5.x'"),
    ({"includes": {"caps": ["CAP_SYS_ADMN"]}}, "includes.caps[0]: unknown capability 'CAP_SYS_ADMN' (did you mean CAP_SYS_ADMIN?)"),
    ({"excludes": {"caps": ["sys_admin"]}}, "excludes.caps[0]: unknown capability 'sys_admin' (did you mean CAP_SYS_ADMIN?)"),
    ({"includes": {"arches": ["x86_64"]}}, "includes.arches[0]: unknown architecture 'x86_64' (Go's name for it is 'amd64')"),
    ({"excludes": {"arches": ["amd46"]}}, "excludes.arches[0]: unknown architecture 'amd46'"),
    ({"excludes": {"minKernel": "5.8"}}, "excludes.minKernel: minKernel is only valid in includes"),
])
def test_includes_excludes_validated_even_when_not_reached(filt: dict, where: str) -> None:
    # the entry is left out anyway (its arch is s390x), so a bad value would never be noticed
    unreached = dict(filt)
    unreached.setdefault("includes", {})
    unreached["includes"] = dict(unreached["includes"], arches=["s390x"]) if "arches" not in unreached["includes"] \
        else unreached["includes"]
    for f in (filt, unreached):
        with pytest.raises(ProfileError) as e:
            parse(base(syscalls=[rule(**f)]))
        assert where in str(e.value), str(e.value)


def test_capability_table_matches_the_header_table() -> None:
    from sysgate import capabilities, constants

    header = {n: constants.lookup(n, "x86_64") for n in constants.names("x86_64")
              if n.startswith("CAP_") and n != "CAP_LAST_CAP"}
    assert list(capabilities.NAMES) == sorted(header, key=lambda n: header[n])
    assert [capabilities.number(n) for n in capabilities.NAMES] == sorted(header.values())


# --- errno clamp ---------------------------------------------------------------------------------------

def test_errno_above_4095_is_clamped_everywhere() -> None:
    """The kernel returns -min(data, 4095) for SECCOMP_RET_ERRNO: policy, compiled program, reference and
    explain all say 4095."""
    from sysgate.reference import evaluate

    with pytest.warns(ProfileWarning, match=r"syscalls\[0\]\.errnoRet: errno 12345 above 4095"):
        prof = parse(base(syscalls=[rule(action="SCMP_ACT_ERRNO", errnoRet=12345)], defaultAction="SCMP_ACT_ALLOW"))
    assert prof.policy.rules[0].action == Action(ActionKind.ERRNO, 4095)
    nr = X86_64.nr("personality")
    assert emulate(compile_policy(prof.policy).insns, "x86_64", nr, [0] * 6).ret == 0x00050000 | 4095
    assert evaluate(prof.policy, "x86_64", nr, [0] * 6) == Action(ActionKind.ERRNO, 4095)
    with pytest.raises(ProfileError, match="errnoRet: 65536 out of range 0-65535"):
        parse(base(syscalls=[rule(action="SCMP_ACT_ERRNO", errnoRet=65536)]))
    assert parse(base(syscalls=[rule(action="SCMP_ACT_TRACE", errnoRet=65535)])).policy.rules[0].action.data == 65535


# --- Kubernetes: several profiles in one manifest ---------------------------------------------------

MANIFEST = """apiVersion: v1
kind: Namespace
metadata:
  name: prod
---
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata:
  name: first
spec:
  defaultAction: SCMP_ACT_ERRNO
  syscalls:
  - names: [read]
    action: SCMP_ACT_ALLOW
---
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata:
  name: second
spec:
  defaultAction: SCMP_ACT_LOG
"""


def test_k8s_manifest_with_several_profiles_needs_a_name(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"2 SeccompProfiles \(first, second\): choose one with --name"):
        K.loads(MANIFEST, "m.yaml", arch="x86_64")
    assert K.loads(MANIFEST, "m.yaml", arch="x86_64", name="second").policy.default == Action(ActionKind.LOG)
    assert K.loads(MANIFEST, "m.yaml", arch="x86_64", name="first").policy.rules
    with pytest.raises(ProfileError, match=r"no SeccompProfile named 'third' \(the manifest has: first, second\)"):
        K.loads(MANIFEST, "m.yaml", arch="x86_64", name="third")
    src = tmp_path / "m.yaml"
    src.write_text(MANIFEST)
    status, lines = cli("compile", str(src), "--arch", "x86_64", "--format", "hex", "-o", str(tmp_path / "o"))
    assert status == 2 and lines == [f"sysgate: error: {src}: 2 SeccompProfiles (first, second): choose one with --name"]
    assert cli("compile", str(src), "--name", "second", "--arch", "x86_64", "--format", "hex",
               "-o", str(tmp_path / "o"))[0] == 0
    # convert: --name picks the input profile and names the output
    out = tmp_path / "out.yaml"
    assert cli("convert", str(src), "--to", "k8s", "--name", "first", "-o", str(out))[0] == 0
    assert "name: first" in out.read_text()
    # --name is for manifests only
    other = tmp_path / "p.json"
    other.write_text(json.dumps(base()))
    status, lines = cli("compile", str(other), "--name", "x", "--format", "hex", "-o", str(tmp_path / "o"))
    assert status == 2 and "--name: selects a profile of a Kubernetes manifest" in lines[0]


def test_k8s_single_profile_name_must_match_unless_renamed() -> None:
    one = MANIFEST.split("---\n")[1]
    assert K.loads(one, "m.yaml", arch="x86_64").policy.rules
    with pytest.raises(ProfileError, match="no SeccompProfile named 'x'"):
        K.loads(one, "m.yaml", arch="x86_64", name="x")
    assert K.loads(one, "m.yaml", arch="x86_64", name="x", rename=True).policy.rules


def test_k8s_spec_fields() -> None:
    doc = MANIFEST.split("---\n")[1] + "  disabled: true\n"
    with pytest.raises(ProfileError, match="spec.disabled: true: the operator does not install this profile"):
        K.loads(doc, "m.yaml", arch="x86_64")
    with pytest.raises(ProfileError, match=r"spec.defualtAction: unknown field \(did you mean 'defaultAction'\?\)"):
        K.loads(doc.replace("  disabled: true\n", "  defualtAction: x\n"), "m.yaml", arch="x86_64")


# --- archMap coverage ----------------------------------------------------------------------------------

ARCHMAP = {"defaultAction": "SCMP_ACT_ERRNO",
           "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                       {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}


def test_arch_option_lists_exactly_what_is_covered(tmp_path: Path) -> None:
    """--arch lists the covered arches (the first is the host); without it, the host's archMap entry."""
    from sysgate.formats.registry import read

    src = tmp_path / "p.json"
    src.write_text(json.dumps(ARCHMAP))
    assert read(str(src), arch="aarch64").policy.arches == ("aarch64", "arm")
    assert read(str(src), arch="x86_64", arches=["x86_64"]).policy.arches == ("x86_64",)
    assert read(str(src), arch="x86_64", arches=["x86_64", "x86", "x32"]).policy.arches == ("x86_64", "x86", "x32")
    out = tmp_path / "o"
    assert cli("compile", str(src), "--arch", "x86_64", "--format", "json", "-o", str(out))[0] == 0
    assert json.loads(out.read_text())["arches"] == ["x86_64"]
    if os.uname().machine == "x86_64":
        assert cli("compile", str(src), "--format", "json", "-o", str(out))[0] == 0
        assert json.loads(out.read_text())["arches"] == ["x86_64", "x86", "x32"]


# --- Firecracker / seccompiler -------------------------------------------------------------------------

def fc(filt: dict) -> Any:
    return FC.loads(json.dumps({"t": filt}), "f.json", arch="x86_64").select("t")


def test_seccompiler_field_names_and_aliases() -> None:
    a = fc({"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "read"}]})
    b = fc({"default_action": "trap", "filter_action": "allow", "filter": [{"syscall": "read"}]})
    assert a == b and a.default == Action(ActionKind.TRAP)
    with pytest.raises(ProfileError, match=r"t.filter_action: duplicate field \(match_action given twice"):
        fc({"mismatch_action": "trap", "match_action": "allow", "filter_action": "log", "filter": []})
    with pytest.raises(ProfileError, match=r"t.match_action \(or filter_action\): missing"):
        fc({"mismatch_action": "trap", "filter": []})
    with pytest.raises(ProfileError, match="t: match_action and mismatch_action are the same"):
        fc({"mismatch_action": "allow", "match_action": "allow", "filter": []})
    with pytest.raises(ProfileError, match=r"t.filter\[0\].args: empty"):
        fc({"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "read", "args": []}]})
    with pytest.raises(ProfileError, match=r"t.filter\[0\].args: expected a list, got an object"):
        fc({"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "read", "args": {}}]})
    with pytest.raises(ProfileError, match="f.json: t: duplicate thread name"):
        FC.loads('{"t": {}, "t": {}}', "f.json")


def test_seccompiler_rules_with_and_without_args() -> None:
    """seccompiler: a syscall with rules with args and one without matches only by the ones with args.
    sysgate reads it so when the match action is the weaker one, and keeps every call matched when it
    is the stricter one (denylists); a warning either way."""
    cond = {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 5}]}
    nr = X86_64.nr("ioctl")
    with pytest.warns(ProfileWarning, match=r"t.filter\[0\]: ioctl: ignored, as seccompiler ignores"):
        allow = fc({"mismatch_action": "trap", "match_action": "allow", "filter": [{"syscall": "ioctl"}, cond]})
    prog = compile_policy(allow).insns
    assert emulate(prog, "x86_64", nr, [0, 5, 0, 0, 0, 0]).ret == 0x7FFF0000
    assert emulate(prog, "x86_64", nr, [0, 6, 0, 0, 0, 0]).ret == 0x00030000
    with pytest.warns(ProfileWarning, match="kept here"):
        deny = fc({"mismatch_action": "allow", "match_action": "trap", "filter": [{"syscall": "ioctl"}, cond]})
    assert emulate(compile_policy(deny).insns, "x86_64", nr, [0, 6, 0, 0, 0, 0]).ret == 0x00030000


def test_firecracker_errno_clamp_and_limits() -> None:
    with pytest.warns(ProfileWarning, match="errno 5000 above 4095"):
        p = fc({"mismatch_action": {"errno": 5000}, "match_action": "allow", "filter": []})
    assert p.default == Action(ActionKind.ERRNO, 4095)
    with pytest.raises(ProfileError, match=r"mismatch_action.errno: 65536 out of range 0-65535"):
        fc({"mismatch_action": {"errno": 65536}, "match_action": "allow", "filter": []})


def test_k8s_unknown_spec_field_warned_once() -> None:
    doc = MANIFEST.split("---\n")[1] + "  fooBar: 1\n"
    with pytest.warns(ProfileWarning) as rec:
        K.loads(doc, "m.yaml", arch="x86_64")
    assert [str(r.message) for r in rec] == ["m.yaml: spec.fooBar: unknown field, ignored as the operator ignores it "
                                             "(--strict makes it an error)"]
