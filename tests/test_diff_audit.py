"""diff (exact semantic difference, CI exit statuses) and audit (planted weaknesses, quiet on strict)."""
from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sysgate import arch as A
from sysgate.analysis.audit import audit
from sysgate.analysis.diff import diff
from sysgate.analysis.explain import explain, explain_programs
from sysgate.bpf import insn as I
from sysgate.bpf.emulator import run
from sysgate.bpf.insn import jump, stmt
from sysgate.compiler import compile_policy
from sysgate.policy import Action, ActionKind, Condition, Op, Policy, Rule
from sysgate.profiles import builtin_path

sys.path.insert(0, str(Path(__file__).parent))
from strategies import policies  # noqa: E402

ALLOW, KILL = Action(ActionKind.ALLOW), Action(ActionKind.KILL_PROCESS)
ERRNO = Action(ActionKind.ERRNO, 1)


# moby's file itself: the built-in *name* adds sysgate's hardening overlay (F_SETLEASE, TIOCSTI, TIOCLINUX),
# and these tests plant changes into moby's JSON.
MOBY = str(builtin_path("docker-default"))


def sysgate(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", *args], capture_output=True, text=True, timeout=120)


def moby_doc() -> dict:
    return json.loads(Path(builtin_path("docker-default")).read_text())


def planted(tmp_path: Path, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    doc = moby_doc()
    change(doc)
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return p


def _clone_entry(doc: dict) -> dict:
    return next(e for e in doc["syscalls"] if "clone" in e.get("names", []) and e.get("args")
                and not e.get("includes", {}).get("arches"))


def _personality(doc: dict) -> dict:
    return next(e for e in doc["syscalls"] if e.get("names") == ["personality"] and e["args"][0]["value"] == 0x20008)


# ---------------------------------------------------------------------------- diff

def test_diff_finds_planted_weakening(tmp_path: Path) -> None:
    # clone no longer refuses CLONE_NEWUSER (0x10000000): a single weakened argument condition
    weak = planted(tmp_path, "weak.json", lambda d: _clone_entry(d)["args"][0].update(value=0x6E020000))
    r = sysgate("diff", MOBY, str(weak))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "clone: B is weaker" in r.stdout
    assert "(clone_flags & 0x10000000 /* CLONE_NEWUSER */) != 0: A errno(1), B allow" in r.stdout
    assert "B is weaker than A" in r.stdout
    lines = [ln for ln in r.stdout.splitlines() if not ln.startswith("    ")]
    assert all("clone" in ln for ln in lines[:-1]), lines  # nothing else differs
    r = sysgate("diff", MOBY, str(weak), "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["verdict"] == "weaker"
    assert {d["syscalls"][0] for d in doc["differences"]} == {"clone"}


def test_diff_finds_planted_tightening(tmp_path: Path) -> None:
    strict = planted(tmp_path, "strict.json", lambda d: _personality(d)["args"][0].update(value=0x20009))
    # 0x20008 no longer allowed, but 0x20009 now is: mixed -> weaker wins (exit 1)
    r = sysgate("diff", MOBY, str(strict))
    assert r.returncode == 1 and "stricter/weaker" in r.stdout
    only = planted(tmp_path, "only.json", lambda d: d["syscalls"].remove(_personality(d)))
    r = sysgate("diff", MOBY, str(only))
    assert r.returncode == 3, r.stdout + r.stderr
    assert "personality: B is stricter" in r.stdout and "where personality == 0x20008: A allow, B errno(1)" in r.stdout
    r = sysgate("diff", str(only), MOBY)  # the other way round it is weaker
    assert r.returncode == 1


def test_diff_statuses(tmp_path: Path) -> None:
    same = planted(tmp_path, "same.json", lambda d: d["syscalls"].reverse())
    r = sysgate("diff", MOBY, str(same))
    assert r.returncode == 0 and "decide every call the same" in r.stdout
    r = sysgate("diff", MOBY, str(tmp_path / "missing.json"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    errno2 = planted(tmp_path, "errno2.json", lambda d: d.update(defaultErrnoRet=13))
    r = sysgate("diff", MOBY, str(errno2), "--arch", "x86_64")
    assert r.returncode == 3 and "only in errno/trace values" in r.stdout


def test_diff_agrees_with_emulator(tmp_path: Path) -> None:
    """Every reported difference holds for a witness call; random calls find nothing else."""
    weak = planted(tmp_path, "weak.json", lambda d: _clone_entry(d)["args"][0].update(value=0x6E020000))
    from sysgate.programs import load_program

    pa = load_program(MOBY, ["x86_64", "x86"]).insns
    pb = load_program(str(weak), ["x86_64", "x86"]).insns
    ea, eb = explain(pa), explain(pb)
    res = diff(ea, eb)
    assert res.entries
    for entry in res.entries:
        for w, a, b in entry.examples("little"):
            assert w is not None
            data = struct.pack("<16I", *w)
            assert run(pa, data).ret == a and run(pb, data).ret == b
    rng = random.Random(3)
    for _ in range(3000):
        arch = rng.choice(["x86_64", "x86", "x32"])
        nr = rng.choice([A.get(arch).nr("clone") if arch != "x32" else X32_CLONE, rng.randrange(600)])
        args = [rng.choice([0, 0x10000000, 0x7E020000, 0x20000, rng.randrange(1 << 64)]) for _ in range(6)]
        w = ea.data_words(arch, nr, args)
        data = struct.pack("<16I", *w)
        if Action.from_ret(run(pa, data).ret) != Action.from_ret(run(pb, data).ret):
            assert any(d.region.holds(w) for e in res.entries for d in e.diffs), (arch, nr, args)


X32_CLONE = A.get("x32").nr("clone")


def _mutate(policy: Policy, rng: random.Random) -> Policy:
    rules = list(policy.rules)
    choice = rng.randrange(3)
    if choice == 0 and rules:
        rules.pop(rng.randrange(len(rules)))
    elif choice == 1 and rules:
        i = rng.randrange(len(rules))
        rules[i] = Rule(rules[i].syscall, rng.choice([ALLOW, KILL, ERRNO]), rules[i].conditions)
    else:
        rules.append(Rule(rng.choice(["read", "write", "close", "personality"]), rng.choice([ALLOW, KILL, ERRNO]),
                          (Condition(0, Op.LE, rng.choice([0, 5, 1 << 32])),)))
    return Policy(policy.default, tuple(rules), policy.arches, policy.bad_arch)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(policies(raw_numbers=False, max_rules=6), st.integers(0, 1000))
def test_diff_status_matches_sampling(policy: Policy, seed: int) -> None:
    rng = random.Random(seed)
    other = _mutate(policy, rng)
    pa, pb = compile_policy(policy, skip_unknown=True), compile_policy(other, skip_unknown=True)
    ea, eb = explain_programs([pa.insns], pa.byteorder), explain_programs([pb.insns], pb.byteorder)
    res = diff(ea, eb)
    order = "<" if pa.byteorder == "little" else ">"
    weaker = stricter = False
    for entry in res.entries:  # each reported difference is real
        for w, a, b in entry.examples(pa.byteorder)[:4]:
            data = struct.pack(order + "16I", *w)  # type: ignore[misc]
            assert run(pa.insns, data, pa.byteorder).ret == a and run(pb.insns, data, pb.byteorder).ret == b
    for _ in range(400):  # and sampling finds nothing the diff missed
        a = A.get(rng.choice(list(policy.arches)))
        nr = rng.choice(list(a.syscalls.values())[:60] + [a.nr_base + rng.randrange(500)])
        args = [rng.choice([0, 1, 5, 8, 0x7E020000, 1 << 32, (1 << 64) - 1, rng.randrange(1 << 64)])
                for _ in range(6)]
        w = ea.data_words(a, nr, args)
        data = struct.pack(order + "16I", *w)
        x = Action.from_ret(run(pa.insns, data, pa.byteorder).ret)
        y = Action.from_ret(run(pb.insns, data, pb.byteorder).ret)
        if x != y:
            assert any(d.region.holds(w) for e in res.entries for d in e.diffs)
            weaker |= y.strictness < x.strictness
            stricter |= y.strictness > x.strictness
    if weaker:
        assert res.status == 1
    if res.status == 0:
        assert not weaker and not stricter


# ---------------------------------------------------------------------------- audit

def codes(prog, arches=None) -> dict[str, str]:  # type: ignore[no-untyped-def]
    rep = audit(explain_programs([tuple(prog)], "little", naming=["x86_64"]), arches)
    return {f.code: f.severity for f in rep.findings}


def prog_of(policy: Policy) -> tuple:
    return compile_policy(policy).insns


def asm(*insns) -> tuple:  # type: ignore[no-untyped-def]
    return tuple(insns)


LD_NR = stmt(I.LD | I.W | I.ABS, I.OFF_NR)
LD_ARCH = stmt(I.LD | I.W | I.ABS, I.OFF_ARCH)


def ret(k: int):  # type: ignore[no-untyped-def]
    return stmt(I.RET | I.RET_K, k)


X86_64 = A.get("x86_64")


def test_audit_no_arch_check() -> None:
    # deny execve by number, allow the rest, never look at the arch
    got = codes(asm(LD_NR, jump(I.JMP | I.JEQ | I.K, X86_64.nr("execve"), 0, 1), ret(I.RET_KILL_PROCESS),
                    ret(I.RET_ALLOW)))
    assert got["no-arch-check"] == "high" and got["default-allow"] == "high"


def test_audit_arch_check_incomplete() -> None:
    # checks x86_64, but any other token falls through to allow
    got = codes(asm(LD_ARCH, jump(I.JMP | I.JEQ | I.K, X86_64.token, 0, 3), LD_NR,
                    jump(I.JMP | I.JEQ | I.K, 0, 1, 0), ret(I.RET_KILL_PROCESS), ret(I.RET_ALLOW)))
    assert got["arch-check-incomplete"] == "high"


def test_audit_x32_bypass() -> None:
    # x86_64 deny-list that forgets the x32 bit: x32 execve is allowed while x86_64's is not
    got = audit(explain_programs([asm(LD_ARCH, jump(I.JMP | I.JEQ | I.K, X86_64.token, 1, 0), ret(I.RET_KILL_PROCESS),
                                      LD_NR, jump(I.JMP | I.JEQ | I.K, X86_64.nr("execve"), 0, 1),
                                      ret(I.RET_KILL_PROCESS), ret(I.RET_ALLOW))], "little")).findings
    x32 = [f for f in got if f.code == "x32-reachable"]
    assert x32 and x32[0].severity == "high" and "execve" in x32[0].syscalls


def test_audit_i386_reachable() -> None:
    pol = Policy(KILL, (Rule("read", ALLOW), Rule("write", ALLOW), Rule("exit_group", ALLOW)), ("x86_64", "x86"))
    assert codes(prog_of(pol))["compat-reachable"] == "low"  # reachable, but mirrors x86_64's rules
    # socketcall has no x86_64 twin: more attack surface, not a bypass of a denied name
    pol2 = Policy(KILL, pol.rules + (Rule("socketcall", ALLOW),), ("x86_64", "x86"))
    assert codes(prog_of(pol2))["compat-reachable"] == "low"
    got = codes(prog_of(Policy(KILL, pol.rules, ("x86_64",))))
    assert "compat-reachable" not in got and "x32-reachable" not in got


def test_audit_i386_denied_name_allowed() -> None:
    # x86_64 allows read/write only; i386 allows open too: "x86 calls are allowed that x86_64 denies"
    rules64 = (Rule("read", ALLOW), Rule("write", ALLOW))
    p64 = compile_policy(Policy(KILL, rules64, ("x86_64",))).insns
    p32 = compile_policy(Policy(KILL, rules64 + (Rule("open", ALLOW),), ("x86",))).insns
    # stack: the kernel applies both; explain the union of arches by chaining the two programs
    prog = asm(LD_ARCH, jump(I.JMP | I.JEQ | I.K, A.get("x86").token, 0, len(p32)), *p32, *p64)
    from sysgate.bpf.emulator import check

    check(prog)
    f = [x for x in audit(explain_programs([prog], "little")).findings if x.code == "compat-reachable"][0]
    assert f.severity == "high" and f.syscalls == ["open"]


def test_audit_dangerous_families_and_cves() -> None:
    names = ["read", "mount", "bpf", "init_module", "kexec_load", "keyctl", "perf_event_open", "ptrace",
             "io_uring_setup", "userfaultfd", "iopl", "clock_settime", "reboot", "swapon", "acct",
             "open_by_handle_at", "setns", "personality", "waitid", "syslog"]
    got = codes(prog_of(Policy(KILL, tuple(Rule(n, ALLOW) for n in names), ("x86_64",))))
    for fam in ("mount", "bpf", "modules", "kexec", "keyring", "perf", "ptrace", "io_uring", "userfaultfd",
                "raw-io", "clock", "reboot", "swap", "accounting", "file-handles", "namespaces", "personality",
                "kernel-info"):
        assert f"dangerous:{fam}" in got, fam
    assert got["dangerous:mount"] == "high" and got["cve-history"] == "info"
    assert "default-allow" not in got and "kill-thread" not in got


def test_audit_clone_flags_and_personality() -> None:
    free = codes(prog_of(Policy(KILL, (Rule("clone", ALLOW), Rule("personality", ALLOW)), ("x86_64",))))
    assert free["dangerous:namespaces"] == "high" and "dangerous:personality" in free
    guarded = codes(prog_of(Policy(KILL, (
        Rule("clone", ALLOW, (Condition(0, Op.MASKED_EQ, 0, mask=0x7E020000),)),
        Rule("personality", ALLOW, (Condition(0, Op.EQ, 0),))), ("x86_64",))))
    assert "dangerous:namespaces" not in guarded and "dangerous:personality" not in guarded


def test_audit_kill_thread() -> None:
    got = codes(prog_of(Policy(Action(ActionKind.KILL_THREAD), (Rule("read", ALLOW),), ("x86_64",))))
    assert got["kill-thread"] == "medium"
    assert "kill-thread" not in codes(prog_of(Policy(KILL, (Rule("read", ALLOW),), ("x86_64",))))


def test_audit_strict_is_quiet_and_cli_summary() -> None:
    r = sysgate("audit", "strict")
    assert r.returncode == 0, r.stderr
    assert "no findings" in r.stdout and "summary: 0 high, 0 medium, 0 low, 0 info" in r.stdout
    assert "for scale, docker-default:" in r.stdout
    r = sysgate("audit", "strict", "--json")
    doc = json.loads(r.stdout)
    assert all(f["severity"] == "info" for f in doc["findings"]) and "baseline" in doc
    r = sysgate("audit", "docker-default", "--no-baseline")
    assert "dangerous:ptrace" in r.stdout and "for scale" not in r.stdout


# ---------------------------------------------------------------------------- audit: one planted weakness each

# A clean small filter (x86_64 only, kill-process default, harmless syscalls): no findings at all.
CLEAN = (Rule("read", ALLOW), Rule("write", ALLOW), Rule("close", ALLOW), Rule("exit_group", ALLOW))

# planted rule(s) -> the finding codes it must add (and nothing else)
PLANTED = {
    "mount": ((Rule("mount", ALLOW),), {"dangerous:mount": "high"}),
    "unshare": ((Rule("unshare", ALLOW),), {"dangerous:namespaces": "high", "cve-history": "info"}),
    "setns": ((Rule("setns", ALLOW),), {"dangerous:namespaces": "high"}),
    "clone-newuser": ((Rule("clone", ALLOW, (Condition(0, Op.MASKED_EQ, 0, mask=0x6E020000),)),),
                      {"dangerous:namespaces": "high"}),
    "modules": ((Rule("finit_module", ALLOW),), {"dangerous:modules": "high"}),
    "keyring": ((Rule("add_key", ALLOW),), {"dangerous:keyring": "medium"}),
    "keyctl": ((Rule("keyctl", ALLOW),), {"dangerous:keyring": "medium", "cve-history": "info"}),
    "bpf": ((Rule("bpf", ALLOW),), {"dangerous:bpf": "high", "cve-history": "info"}),
    "perf": ((Rule("perf_event_open", ALLOW),), {"dangerous:perf": "medium", "cve-history": "info"}),
    "ptrace": ((Rule("process_vm_writev", ALLOW),), {"dangerous:ptrace": "medium"}),
    "io_uring": ((Rule("io_uring_enter", ALLOW),), {"dangerous:io_uring": "medium"}),
    "userfaultfd": ((Rule("userfaultfd", ALLOW),), {"dangerous:userfaultfd": "medium", "cve-history": "info"}),
    "kexec": ((Rule("kexec_file_load", ALLOW),), {"dangerous:kexec": "high"}),
    "raw-io": ((Rule("ioperm", ALLOW),), {"dangerous:raw-io": "high"}),
    "clock": ((Rule("settimeofday", ALLOW),), {"dangerous:clock": "low"}),
    "reboot": ((Rule("reboot", ALLOW),), {"dangerous:reboot": "high"}),
    "personality": ((Rule("personality", ALLOW),), {"dangerous:personality": "medium"}),
    "logged": ((Rule("swapoff", Action(ActionKind.LOG)),), {"dangerous:swap": "medium"}),  # log lets it run
    # reachable only under an argument condition: reported one level lower, with the condition
    "conditional": ((Rule("init_module", ALLOW, (Condition(2, Op.EQ, 0),)),), {"dangerous:modules": "medium"}),
    "cve": ((Rule("vmsplice", ALLOW),), {"cve-history": "info"}),
}


def _finding_codes(policy: Policy) -> dict[str, str]:
    rep = audit(explain_programs([compile_policy(policy).insns], "little"))
    return {f.code: f.severity for f in rep.findings}


def test_audit_clean_filter_is_quiet() -> None:
    assert _finding_codes(Policy(KILL, CLEAN, ("x86_64",))) == {}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_audit_flags_each_planted_weakness(name: str) -> None:
    rules, expected = PLANTED[name]
    assert _finding_codes(Policy(KILL, CLEAN + rules, ("x86_64",))) == expected
    # and the same rule denied is quiet again
    denied = tuple(Rule(r.syscall, ERRNO, r.conditions) for r in rules)
    assert _finding_codes(Policy(KILL, CLEAN + denied, ("x86_64",))) == {}


def test_audit_planted_policy_weaknesses() -> None:
    """The non-family findings, each alone in a small filter."""
    assert _finding_codes(Policy(Action(ActionKind.KILL_THREAD), CLEAN, ("x86_64",))) == {"kill-thread": "medium"}
    assert _finding_codes(Policy(ALLOW, (Rule("execve", KILL),), ("x86_64",)))["default-allow"] == "high"
    got = _finding_codes(Policy(KILL, CLEAN, ("x86_64", "x86")))
    assert got == {"compat-reachable": "low"}
    got = _finding_codes(Policy(KILL, CLEAN, ("x86_64", "x32")))
    assert got == {"x32-reachable": "low"}
    # no arch check at all (hand-written): high, whatever else it does
    got = codes(asm(LD_NR, jump(I.JMP | I.JEQ | I.K, 0, 0, 1), ret(I.RET_ALLOW), ret(I.RET_KILL_PROCESS)))
    assert got == {"no-arch-check": "high"}


def test_audit_x32_minus_one_is_not_reachable() -> None:
    # libseccomp lets nr -1 through on x32 (for tracers): that alone is no x32 attack surface
    x32 = A.X32_SYSCALL_BIT
    prog = asm(LD_ARCH, jump(I.JMP | I.JEQ | I.K, X86_64.token, 1, 0), ret(I.RET_KILL_PROCESS),
               LD_NR, jump(I.JMP | I.JGE | I.K, x32, 0, 3), jump(I.JMP | I.JEQ | I.K, 0xFFFFFFFF, 0, 1),
               ret(I.RET_ALLOW), ret(I.RET_KILL_PROCESS),
               jump(I.JMP | I.JEQ | I.K, X86_64.nr("read"), 0, 1), ret(I.RET_ALLOW), ret(I.RET_KILL_PROCESS))
    assert codes(prog) == {}
    # ... but one real x32 syscall is
    prog2 = prog[:5] + (jump(I.JMP | I.JEQ | I.K, x32 | X86_64.nr("read"), 0, 1),) + prog[6:]
    assert codes(prog2) == {"x32-reachable": "low"}


def test_audit_json_and_baseline_of_raw_program(tmp_path: Path) -> None:
    r = sysgate("audit", "strict", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and doc["findings"] == [] and doc["counts"]["high"] == 0
    base = sysgate("audit", "docker-default", "--json")
    base_counts = json.loads(base.stdout)["counts"]
    assert doc["baseline"]["counts"] == base_counts  # the same docker-default as `audit docker-default`
    raw = tmp_path / "deny.bpf"
    raw.write_bytes(compile_policy(Policy(ALLOW, (Rule("ptrace", KILL),), ("x86_64",))).to_bytes())
    r = sysgate("audit", str(raw), "--json")
    doc = json.loads(r.stdout)
    got = {f["code"]: f for f in doc["findings"]}
    assert got["default-allow"]["severity"] == "high" and got["dangerous:bpf"]["syscalls"] == ["bpf"]
    assert all(f["message"] for f in doc["findings"])
    assert doc["baseline"]["counts"] == base_counts


# ---------------------------------------------------------------------------- diff: any mix of forms

def test_diff_mixed_forms(tmp_path: Path) -> None:
    """Profile, raw program, assembly listing and a profile file compare equal when they are."""
    raw, lst = tmp_path / "d.bpf", tmp_path / "d.asm"
    assert sysgate("compile", MOBY, "--arch", "x86_64", "-o", str(raw)).returncode == 0
    assert sysgate("compile", MOBY, "--arch", "x86_64", "--format", "disasm", "-o",
                   str(lst)).returncode == 0
    for a, b in ((str(raw), MOBY), (str(lst), str(raw)), (MOBY, str(lst))):
        r = sysgate("diff", a, b, "--arch", "x86_64")
        assert r.returncode == 0, (a, b, r.stdout + r.stderr)
    weak = planted(tmp_path, "weak.json", lambda d: _clone_entry(d)["args"][0].update(value=0x6E020000))
    r = sysgate("diff", str(raw), str(weak), "--arch", "x86_64", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 1 and doc["verdict"] == "weaker" and doc["a"] == [str(raw)]
    (d,) = doc["differences"]
    assert d["syscalls"] == ["clone"] and "clone_flags" in d["a"] and "arg0" not in d["where"][0]["condition"]
    ex = d["example"]  # a concrete call that shows it, checked with the emulator
    from sysgate.programs import load_program

    prog_a = load_program(str(raw), ["x86_64"]).insns
    prog_b = load_program(str(weak), ["x86_64"]).insns
    e = explain(prog_a)
    data = struct.pack("<16I", *e.data_words("x86_64", ex["nr"], ex["args"]))
    assert run(prog_a, data).ret == ex["a_ret"] and run(prog_b, data).ret == ex["b_ret"]
    assert ex["a"] == "errno(1)" and ex["b"] == "allow"
