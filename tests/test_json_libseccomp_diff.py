"""Every Docker/OCI/podman/SPO profile of ../shared/corpus, decided by sysgate and by libseccomp.

The libseccomp side is built by Debian's python3-seccomp (2.5.4) from an independent reading of the
JSON as moby + runc hand it to libseccomp (tests/runc_resolve.py); sysgate's side is its own reader
and compiler. Both programs are run in the emulator on every syscall number of x86_64, x86, x32 and
aarch64 (x32 numbers included), on -1, and, for each syscall with argument rules, on argument
vectors built from the profile's constants (each constant, ±1, with high words 0 and all-ones).
Each input is read for Docker's default capability set, for none and for all, so that the
includes/excludes of every entry are exercised.

Every difference fails (each is described with the class it falls in: nr -1, an x32 argument with a
high word, socketcall/ipc on x86, or another), except the deliberate one: an argument the kernel reads
as 32 bits (``int``) given with a high word on a 64-bit ABI, which sysgate decides on its low word; such
a call must get from sysgate what libseccomp gives the same call with that high word cleared (what the
kernel acts on; counted in STATS["int-high-word"]). Calls of syscalls the oracle's libseccomp (2.5.4) does not know are
left out (runc on it skips those names; counted in STATS["oracle-unknown"]). Seccompiler files are compared with the expectations shipped with
them (test_seccompiler_expectations).
"""
from __future__ import annotations

import json
import os
import random
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import libseccomp_build as LB
import runc_resolve as R
from libseccomp_build import zero_extended
from sysgate import arch as A
from sysgate.bpf.emulator import emulate
from sysgate.bpf.insn import decode
from sysgate.compiler import compile_policy
from sysgate.formats import ProfileError, ProfileWarning
from sysgate.formats import docker as D
from sysgate.policy import Op

SHARED = Path(os.environ.get("SYSGATE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
CORPUS = SHARED / "corpus"
U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
KERNEL = (6, 18)
CHECK_ARCHES = ("x86_64", "x86", "x32", "aarch64")
CAPS = {"docker": set(D.DOCKER_DEFAULT_CAPS), "none": set(), "all": None}  # None: every cap (filled below)

pytestmark = [pytest.mark.skipif(not CORPUS.is_dir(), reason="shared corpus not present"),
              pytest.mark.skipif(not LB.available(), reason="python3-seccomp not installed")]


def _docker_inputs() -> list[tuple[str, str, str | None]]:
    """(id, path, k8s profile name) for every Docker/OCI/podman/SPO profile of the corpus."""
    if not CORPUS.is_dir():
        return []
    out = []
    for p in sorted(CORPUS.glob("moby-*.json")) + sorted((CORPUS / "realworld" / "docker").glob("*.json")):
        doc = json.loads(p.read_text())
        if isinstance(doc, dict) and "defaultAction" in doc:  # the other SPO files are not profiles
            out.append((p.name, str(p), None))
    for p in sorted((CORPUS / "realworld" / "k8s").glob("*.yaml")):
        for line in p.read_text().splitlines():
            if line.startswith("  name: "):
                out.append((f"{p.name}:{line.split()[1]}", str(p), line.split()[1]))
    return out


INPUTS = _docker_inputs()


def _doc(path: str, name: str | None) -> dict:
    """The seccomp object, read with a JSON/YAML library (not sysgate's reader)."""
    if name is None:
        return json.loads(Path(path).read_text())
    yaml = pytest.importorskip("yaml")
    for d in yaml.safe_load_all(Path(path).read_text()):
        if isinstance(d, dict) and d.get("kind") == "SeccompProfile" and d["metadata"]["name"] == name:
            return d["spec"]
    raise AssertionError(name)


def _ours(path: str, name: str | None, host: str, caps: set[str]) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileWarning)
        if name is None:
            return D.loads(Path(path).read_bytes(), path, arch=host, caps=sorted(caps), kernel=KERNEL).policy
        from sysgate.formats import k8s

        assert not caps ^ set(D.DOCKER_DEFAULT_CAPS)  # SPO has no includes/excludes: caps do not matter
        return k8s.loads(Path(path).read_text(), path, arch=host, name=name).policy


def _all_caps() -> set[str]:
    from sysgate.capabilities import NAMES as CAP_NAMES

    return set(CAP_NAMES)


def _configs(path: str, name: str | None) -> list[tuple[str, set[str]]]:
    doc = _doc(path, name)
    hosts = ["x86_64"] + (["aarch64"] if doc.get("archMap") else [])
    has_caps = any((s.get(k) or {}).get("caps") for s in doc.get("syscalls") or [] for k in ("includes", "excludes"))
    caps = ["docker", "none", "all"] if has_caps else ["docker"]
    return [(h, c) for h in hosts for c in caps]


def _cap_set(label: str) -> set[str]:
    return _all_caps() if label == "all" else set(CAPS[label])  # type: ignore[arg-type]


def _arg_vectors(rules: list[dict], rnd: random.Random, limit: int = 160) -> list[list[int]]:
    """Argument vectors from the constants of ``rules`` (one syscall's): each, ±1, high words 0/all-ones."""
    per: dict[int, set[int]] = {}
    for r in rules:
        for index, _op, a, b in r["args"]:
            vals = per.setdefault(index, {0, U64})
            for c in (a, b, a & b):
                for v in (c - 1, c, c + 1):
                    v &= U64
                    vals.update({v, v & U32, (v & U32) | (U32 << 32)})
    if not per:
        return [[0] * 6]
    idx = sorted(per)
    choices = [sorted(per[i]) for i in idx]
    total = 1
    for c in choices:
        total *= len(c)
    out = []
    if total <= limit:
        combos: list[list[int]] = [[]]
        for c in choices:
            combos = [x + [v] for x in combos for v in c]
    else:
        combos = [[rnd.choice(c) for c in choices] for _ in range(limit)]
        combos += [[c[0] for c in choices], [c[-1] for c in choices]]
    for combo in combos:
        vec = [0] * 6
        for i, v in zip(idx, combo):
            vec[i] = v
        out.append(vec)
    return out


def _calls(req: dict) -> Iterator[tuple[str, int, list[int]]]:
    """Every syscall number of each checked arch (x32 ones included), -1, and argument vectors."""
    rnd = random.Random(1)
    by_name: dict[str, list[dict]] = {}
    for r in req["rules"]:
        if r["args"]:
            by_name.setdefault(r["name"], []).append(r)
    for name in CHECK_ARCHES:
        a = A.get(name)
        top = max(a.syscalls.values()) - a.nr_base
        for nr in range(a.nr_base, a.nr_base + top + 30):
            yield name, nr, [0] * 6
        yield name, U32, [0] * 6
        for sc, rules in by_name.items():
            if a.has(sc):
                for vec in _arg_vectors(rules, rnd):
                    yield name, a.nr(sc), vec


def _classify(arch: str, nr: int, args: list[int]) -> str:
    """The class of a difference, for the failure message (issue 11 items 1-3, or another)."""
    if nr == U32:
        return "minus-one"
    if arch == "x32" and any(v >> 32 for v in args):
        return "x32-width"
    if arch == "x86" and nr in (102, 117):  # socketcall, ipc
        return "multiplex"
    return "other"


# one libseccomp process for every (input, host, caps): built once, on first use
_BUILT: dict[tuple, dict] = {}


def _build_all() -> None:
    if _BUILT:
        return
    keys, reqs = [], []
    for ident, path, name in INPUTS:
        for host, caps in _configs(path, name):
            try:
                req = R.request(_doc(path, name), host, _cap_set(caps), KERNEL)
            except R.Refused as e:
                _BUILT[(ident, host, caps)] = {"refused": str(e)}
                continue
            keys.append((ident, host, caps))
            reqs.append(req)
            if caps == "docker":  # sysgate's Docker output for this policy, as runc would install it
                written, losses = D.dump(_ours(path, name, host, _cap_set(caps)))
                assert not losses, losses
                keys.append((ident, host, "written"))
                reqs.append(R.request(written, host, set(), KERNEL))
    for key, req, out in zip(keys, reqs, LB.build_requests([dict(r, layouts=[0]) for r in reqs])):
        _BUILT[key] = dict(out, request=req)


STATS: dict[str, int] = {"inputs": 0, "configs": 0, "decisions": 0, "refusals": 0, "oracle-unknown": 0,
                         "written-decisions": 0, "int-high-word": 0}


def _deliberate(theirs: tuple, arch: str, nr: int, args: list[int], mine: int) -> bool:
    """A difference of the int-argument kind: sysgate gives the call what libseccomp gives the
    value the kernel sees (the call's 32-bit arguments zero-extended)."""
    zx = zero_extended(arch, nr, args)
    if zx != args and emulate(theirs, arch, nr, zx).ret == mine:
        STATS["int-high-word"] += 1
        return True
    return False


@pytest.mark.parametrize("ident,path,name", INPUTS, ids=[i[0] for i in INPUTS])
def test_same_decisions_as_libseccomp(ident: str, path: str, name: str | None) -> None:
    _build_all()
    other: list[str] = []
    STATS["inputs"] += 1
    for host, caps in _configs(path, name):
        built = _BUILT[(ident, host, caps)]
        STATS["configs"] += 1
        if "error" in built:  # libseccomp (so runc) refuses the profile: so must we
            STATS["refusals"] += 1
            with pytest.raises(ProfileError):
                _ours(path, name, host, _cap_set(caps))
            continue
        req = built["request"]
        theirs = decode(bytes.fromhex(built["bpf"][0]))
        ours = compile_policy(_ours(path, name, host, _cap_set(caps))).insns
        standin = R.ACT["SCMP_ACT_ERRNO"] | R.ERRNO_STANDIN if req["clamped"] else None
        # names libseccomp 2.5.4 does not know (newer syscalls: mseal, statmount, ...) are skipped by
        # runc on it; a libseccomp that knows them decides them as the profile says, as sysgate does
        unknown = set(built["unknown"])
        for arch, nr, args in _calls(req):
            if A.get(arch).name_of(nr) in unknown:
                STATS["oracle-unknown"] += 1
                continue
            mine = emulate(ours, arch, nr, args).ret
            lib = emulate(theirs, arch, nr, args).ret
            STATS["decisions"] += 1
            if lib == standin:
                lib = R.ACT["SCMP_ACT_ERRNO"] | 4095  # the kernel's clamp of the errno libseccomp cannot build
            if mine != lib and not _deliberate(theirs, arch, nr, args, mine):
                other.append(f"[{_classify(arch, nr, args)}] {host}/{caps} caps: {arch} nr {nr:#x} "
                             f"({A.get(arch).name_of(nr)}) args {[hex(v) for v in args]}: sysgate {mine:#x}, "
                             f"libseccomp {lib:#x}")
    assert not other, f"{len(other)} differences, first: " + "\n".join(other[:10])


# --- what sysgate must refuse or accept, as runc/libseccomp do ------------------------------------

def test_duplicate_unconditional_entries_first_one_wins() -> None:
    """podman's setns: allowed by one entry, ERRNO by a later one; libseccomp keeps the first
    unconditional rule for a syscall (and lets it replace earlier conditional ones)."""
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW"},
        {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["kcmp"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
        {"names": ["kcmp"], "action": "SCMP_ACT_TRAP"},
        {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
        {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"}]}
    req = R.request(doc, "x86_64", set(), KERNEL)
    built = LB.build_requests([dict(req, layouts=[0])])[0]
    theirs = decode(bytes.fromhex(built["bpf"][0]))
    prof = D.parse(doc, "<t>", arch="x86_64", kernel=KERNEL)
    ours = compile_policy(prof.policy).insns
    a = A.get("x86_64")
    for sc, want in (("setns", 0x7FFF0000), ("kcmp", 0x00050001), ("getpid", 0x7FFF0000)):
        for args in ([0] * 6, [1] + [0] * 5):
            assert emulate(theirs, "x86_64", a.nr(sc), args).ret == want, sc
            assert emulate(ours, "x86_64", a.nr(sc), args).ret == want, sc
    assert prof.shadowed == ("syscalls[1]: setns (decided by syscalls[0])", "syscalls[4]: kcmp (decided by syscalls[3])")


def test_same_conditions_different_actions_refused_as_libseccomp_does() -> None:
    doc = {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["kcmp"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["kcmp"], "action": "SCMP_ACT_TRAP", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]}
    built = LB.build_requests([dict(R.request(doc, "x86_64", set(), KERNEL), layouts=[0])])[0]
    assert "error" in built and "-17" in built["error"]  # EEXIST
    with pytest.raises(ProfileError, match=r"syscalls\[1\]: syscall 'kcmp' has contradicting rules"):
        D.parse(doc, "<t>", arch="x86_64")


# --- seccompiler: the expectations shipped with its test inputs ----------------------------------

def _seccompiler_cases() -> list[tuple[str, bool]]:
    d = CORPUS / "realworld" / "seccompiler"
    if not d.is_dir():
        return []
    out = []
    for e in json.loads((d / "manifest.json").read_text()):
        for suffix in ("", ".alias"):
            p = d / f"{e['file']}{suffix}.json"
            if p.exists():
                out.append((str(p), bool(e["seccompiler_expects_error"])))
    return out


SECCOMPILER = _seccompiler_cases()


@pytest.mark.parametrize("path,error", SECCOMPILER, ids=[Path(p).name for p, _ in SECCOMPILER])
def test_seccompiler_expectations(path: str, error: bool) -> None:
    from sysgate.formats import firecracker

    text = Path(path).read_bytes()
    if error:
        with pytest.raises(ProfileError) as e:
            for arch in ("x86_64", "aarch64"):
                f = firecracker.loads(text, path, arch=arch)
                for t in f.filters:
                    compile_policy(f.select(t))
        assert "\n" not in str(e.value) and str(e.value).startswith(path)
        return
    for arch in ("x86_64", "aarch64"):
        f = firecracker.loads(text, path, arch=arch)
        assert f.filters
        for t in f.filters:
            prog = compile_policy(f.select(t))
            assert prog.insns


def test_seccompiler_decisions_of_its_test_filter() -> None:
    """tests_json-03 (seccompiler's tests/json.rs): errno 1000 unless matched; ioctl's dword rules."""
    from sysgate.formats import firecracker

    path = CORPUS / "realworld" / "seccompiler" / "tests_json-03.json"
    if not path.exists():
        pytest.skip("seccompiler inputs not present")
    f = firecracker.loads(path.read_bytes(), str(path), arch="x86_64")
    pol = f.select("main_thread")
    prog = compile_policy(pol).insns
    a = A.get("x86_64")
    assert emulate(prog, "x86_64", a.nr("getpid"), [0] * 6).ret == 0x7FFF0000
    assert emulate(prog, "x86_64", a.nr("getppid"), [0] * 6).ret == 0x00050000 | 1000


@pytest.mark.parametrize("ident,path,name", INPUTS, ids=[i[0] for i in INPUTS])
def test_docker_output_decides_the_same_under_libseccomp(ident: str, path: str, name: str | None) -> None:
    """sysgate's Docker JSON for each policy, resolved as runc resolves it and built by libseccomp,
    decides every call as the policy it was written from (issue 11 item 6 for the Docker writer)."""
    _build_all()
    host = "x86_64"
    built = _BUILT[(ident, host, "written")]
    assert "error" not in built, built.get("error")
    ours = compile_policy(_ours(path, name, host, _cap_set("docker"))).insns
    theirs = decode(bytes.fromhex(built["bpf"][0]))
    unknown = set(built["unknown"]) | set(_BUILT[(ident, host, "docker")]["unknown"])
    other = []
    for arch, nr, args in _calls(_BUILT[(ident, host, "docker")]["request"]):
        if A.get(arch).name_of(nr) in unknown:
            continue
        STATS["written-decisions"] += 1
        mine, lib = emulate(ours, arch, nr, args).ret, emulate(theirs, arch, nr, args).ret
        if mine != lib and not (lib == R.ACT["SCMP_ACT_ERRNO"] | R.ERRNO_STANDIN and mine == lib + 1) \
                and not _deliberate(theirs, arch, nr, args, mine):
            other.append(f"{arch} nr {nr:#x} ({A.get(arch).name_of(nr)}) args {[hex(v) for v in args]}: "
                         f"policy {mine:#x}, its Docker output under libseccomp {lib:#x}")
    assert not other, f"{len(other)} differences, first: " + "\n".join(other[:10])


def test_summary() -> None:
    """The figures of this run (pytest -s shows them); after the comparisons, something was compared."""
    if STATS["inputs"]:
        assert STATS["decisions"] > 0
    print(f"\nlibseccomp differential: {STATS}")


def test_docker_writer_output_decides_the_same_under_libseccomp() -> None:
    """A policy whose rules overlap (strictest wins in sysgate's model) written as Docker JSON: runc +
    libseccomp (first unconditional rule decides, the tree orders the rest) decide that file as the
    policy does, because the writer emits regions that never overlap."""
    from sysgate.policy import Action, ActionKind, Condition, Policy, Rule

    allow, eperm, kill = Action(ActionKind.ALLOW), Action(ActionKind.ERRNO, 1), Action(ActionKind.KILL_PROCESS)
    policy = Policy(Action(ActionKind.ERRNO, 38), (
        Rule("socket", allow), Rule("socket", eperm, (Condition(0, Op.EQ, 40),)),
        Rule("socket", kill, (Condition(0, Op.EQ, 38),)),
        Rule("kcmp", allow, (Condition(0, Op.EQ, 1),)), Rule("kcmp", eperm, (Condition(1, Op.EQ, 2),)),
        Rule("setns", Action(ActionKind.ERRNO, 38)), Rule("setns", allow, (Condition(0, Op.GE, 5),)),
        Rule("mmap", allow), Rule("mmap", kill, (Condition(2, Op.MASKED_EQ, 4, mask=6),))), ("x86_64",))
    doc, losses = D.dump(policy)
    assert not losses
    req = R.request(doc, "x86_64", set(), KERNEL)
    built = LB.build_requests([dict(req, layouts=[0])])[0]
    theirs = decode(bytes.fromhex(built["bpf"][0]))
    ours = compile_policy(policy).insns
    back = compile_policy(D.parse(doc, "<w>", arch="x86_64", kernel=KERNEL).policy).insns
    a = A.get("x86_64")
    checked = 0
    for sc in ("socket", "kcmp", "setns", "mmap", "read"):
        for vec in _arg_vectors([r for r in req["rules"] if r["name"] == sc] or
                                [{"args": [[0, "EQ", 40, 0], [1, "EQ", 2, 0], [2, "EQ", 6, 0]]}], random.Random(2)):
            want = emulate(ours, "x86_64", a.nr(sc), vec).ret
            # libseccomp reads socket's int family on 64 bits: compare on the value the kernel sees
            assert emulate(theirs, "x86_64", a.nr(sc), zero_extended(a, a.nr(sc), vec)).ret == want, (sc, vec)
            assert emulate(back, "x86_64", a.nr(sc), vec).ret == want, (sc, vec)
            checked += 1
    assert checked > 50


def test_hardened_builtin_written_as_docker_decides_the_same_under_libseccomp() -> None:
    """The hardened docker-default (ioctl TIOCSTI/TIOCLINUX and fcntl F_SETLEASE refused on the low
    32 bits) written as Docker JSON: the allowed rest is OR-ed single-bit masked tests, and runc +
    libseccomp decide that file as the policy does, high words included."""
    from sysgate.profiles import resolve

    policy = resolve("docker-default", arch="x86_64", arches=["x86_64"])
    doc, losses = D.dump(policy)
    assert not losses
    req = R.request(doc, "x86_64", set(), KERNEL)
    built = LB.build_requests([dict(req, layouts=[0])])[0]
    assert "error" not in built, built.get("error")
    theirs = decode(bytes.fromhex(built["bpf"][0]))
    ours = compile_policy(policy).insns
    a = A.get("x86_64")
    refused = 0
    for sc, values in (("ioctl", (0x5412, 0x541C, 0x5413, 0x5410, 0x541D, 0x5402, 0)),
                       ("fcntl", (1024, 1025, 0, 1, 4, 0x400 | 1 << 31))):
        for v in values:
            for high in (0, 1 << 32, 0xFFFFFFFF << 32):
                vec = [3, v | high, 0, 0, 0, 0]
                want = emulate(ours, "x86_64", a.nr(sc), vec).ret
                assert emulate(theirs, "x86_64", a.nr(sc), vec).ret == want, (sc, hex(v | high))
                refused += want == 0x00050001
    assert refused == 3 * 3  # TIOCSTI, TIOCLINUX, F_SETLEASE, each with three high words
