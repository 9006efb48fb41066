"""What each reader means: the semantics of every format, decided by the reference evaluator on the
Policy it produces (and, for detection, that programs are never taken for policies)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from sysgate import arch
from sysgate.analysis.equivalence import sampled_equivalent
from sysgate.formats import ProfileError
from sysgate.formats.detect import detect
from sysgate.formats.registry import read, read_bytes, write
from sysgate.policy import ALLOW, KILL_PROCESS, KILL_THREAD, LOG, TRAP, Action, ActionKind, Policy, errno
from sysgate.reference import evaluate

X = arch.get("x86_64")
U64 = (1 << 64) - 1


def load(text: str, fmt: str, a: str = "x86_64", **kw: object):  # type: ignore[no-untyped-def]
    return read_bytes(text.encode(), "t.in", fmt, arch=a, **kw)  # type: ignore[arg-type]


def decide(policy, name: str, *args: int, a: str = "x86_64") -> Action:  # type: ignore[no-untyped-def]
    return evaluate(policy, a, arch.get(a).nr(name), list(args))


# ----------------------------------------------------------------------------------------- docker/oci

def test_docker_groups_and_grouped_output() -> None:
    p = load('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["@mount"], "action": "SCMP_ACT_KILL"}]}',
             "docker").policy
    assert decide(p, "umount2") == KILL_THREAD and decide(p, "read") == errno(1)
    doc = json.loads(write(p, "docker").text)
    assert len(doc["syscalls"]) == 1 and "mount" in doc["syscalls"][0]["names"]


def test_docker_writer_handles_runc_or_and_32_bit_tests() -> None:
    from sysgate.policy import Condition, Op, Policy, Rule

    p = Policy(errno(1), (Rule("read", ALLOW, (Condition(0, Op.GE, 3), Condition(0, Op.LE, 9))),
                          Rule("write", ALLOW, (Condition(1, Op.EQ, 7, width=32),)),
                          Rule("close", ALLOW, (Condition(0, Op.NE, 1), Condition(0, Op.NE, 2)))), ("x86_64",))
    out = write(p, "docker")
    back = load(out.text, "docker").policy
    if out.losses:  # two != on one argument: no single-test form (runc would OR them)
        assert all("close" in x for x in out.losses)
        p = p.with_rules(p.rules[:2])
        back = load(write(p, "docker").text, "docker").policy
    assert sampled_equivalent(p, back) is None
    doc = json.loads(write(p, "docker").text)
    ops = {a["op"] for e in doc["syscalls"] for a in e.get("args", [])}
    assert "SCMP_CMP_MASKED_EQ" in ops  # lo32 == 7 as (arg & 0xffffffff) == 7
    assert decide(back, "write", 0, (5 << 32) | 7) == ALLOW


def test_docker_extras_round_trip_and_notes() -> None:
    text = json.dumps({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock",
                       "listenerMetadata": "m", "flags": ["SECCOMP_FILTER_FLAG_LOG"],
                       "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]})
    loaded = load(text, "docker")
    for fmt in ("docker", "oci", "k8s"):
        again = load(write(loaded, fmt).text, fmt)
        assert again.extras.listener_path == "/run/agent.sock" and again.extras.flags == ("SECCOMP_FILTER_FLAG_LOG",)
    out = write(loaded, "kafel")
    assert any("listenerPath" in n for n in out.notes) and any("flags" in n for n in out.notes)


def test_oci_reads_config_json_and_refuses_moby_extensions() -> None:
    cfg = {"ociVersion": "1.2.0", "process": {}, "linux": {"seccomp": {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "architectures": ["SCMP_ARCH_AARCH64"],
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]}}}
    p = load(json.dumps(cfg), "oci").policy
    assert p.arches == ("aarch64",) and decide(p, "read", a="aarch64") == ALLOW
    assert decide(p, "write", a="aarch64") == errno(38)
    cfg["linux"]["seccomp"]["syscalls"][0]["includes"] = {"caps": ["CAP_SYS_ADMIN"]}
    with pytest.raises(ProfileError, match=r"linux.seccomp: syscalls\[0\].includes: moby extension"):
        load(json.dumps(cfg), "oci")
    with pytest.raises(ProfileError, match="linux.seccomp: missing"):
        load('{"ociVersion": "1.2.0", "linux": {}}', "oci")
    assert json.loads(write(p, "oci", config=True).text)["linux"]["seccomp"]["defaultErrnoRet"] == 38


# ----------------------------------------------------------------------------------------- firecracker

FC = {"vmm": {"default_action": "trap", "filter_action": {"errno": 13}, "filter": [
    {"syscall": "ioctl", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 0x5401, "comment": "TCGETS"}]},
    {"syscall": "mmap", "args": [{"index": 2, "type": "qword", "op": {"masked_eq": 4}, "val": 0}]},
    {"syscall": "read"}]}, "api": {"default_action": "allow", "filter_action": "kill_process", "filter": []}}


def test_firecracker_dword_qword_masked_eq() -> None:
    p = load(json.dumps(FC), "firecracker", thread="vmm").policy
    assert decide(p, "ioctl", 0, 0x5401) == errno(13)
    assert decide(p, "ioctl", 0, (1 << 32) | 0x5401) == errno(13)  # dword: the high word is not looked at
    assert decide(p, "ioctl", 0, 0x5402) == TRAP
    assert decide(p, "mmap", 0, 0, 3) == errno(13) and decide(p, "mmap", 0, 0, 7) == TRAP
    assert load(json.dumps(FC), "firecracker", thread="api").policy.default == ALLOW
    with pytest.raises(ProfileError, match="threads api, vmm: choose one with --thread"):
        load(json.dumps(FC), "firecracker")
    bad = json.loads(json.dumps(FC))
    bad["vmm"]["filter_action"] = "user_notif"
    with pytest.raises(ProfileError, match=r"vmm.filter_action: unknown action"):
        load(json.dumps(bad), "firecracker", thread="vmm")


def test_firecracker_arch_from_file_name(tmp_path: Path) -> None:
    f = tmp_path / "aarch64-unknown-linux-musl.json"
    f.write_text(json.dumps(FC))
    assert read(str(f), thread="vmm").policy.arches == ("aarch64",)


# ----------------------------------------------------------------------------------------- minijail

def test_minijail_first_match_and_return() -> None:
    text = ("@default kill-thread\n"
            "ioctl: arg1 == TCGETS; return ENOTTY\n"
            "prctl: { arg0 == PR_SET_NAME, arg0 == PR_CAPBSET_DROP; return EPERM, log }\n"
            "{openat, open}: arg2 & O_CREAT; return EACCES\n"
            "mmap: arg2 in ~PROT_EXEC\n"
            "kill: arg1 == 0 \\\n    || arg1 == SIGTERM\n"
            "read[arch=aarch64]: allow\n")
    p = load(text, "minijail").policy
    C = __import__("sysgate.constants", fromlist=["lookup"]).lookup
    assert decide(p, "ioctl", 0, C("TCGETS", "x86_64")) == errno(C("ENOTTY", "x86_64"))
    assert decide(p, "ioctl", 0, 1) == KILL_THREAD  # no filter matched: the default
    assert decide(p, "prctl", C("PR_SET_NAME", "x86_64")) == ALLOW  # first filter
    assert decide(p, "prctl", C("PR_CAPBSET_DROP", "x86_64")) == errno(1)
    assert decide(p, "prctl", 9999) == LOG  # the unconditional last filter
    assert decide(p, "openat", 0, 0, 0o100) == errno(13) and decide(p, "open", 0, 0o101) == KILL_THREAD
    assert decide(p, "mmap", 0, 0, 3) == ALLOW and decide(p, "mmap", 0, 0, 7) == KILL_THREAD
    assert decide(p, "kill", 5, 15) == ALLOW and decide(p, "kill", 5, 9) == KILL_THREAD
    assert decide(p, "read") == KILL_THREAD  # [arch=aarch64] only
    assert decide(load(text, "minijail", "aarch64").policy, "read", a="aarch64") == ALLOW


def test_minijail_denylist_groups_and_notes() -> None:
    p = load("@denylist\n@frequency ./f.frequency\nmount@systemd: return EPERM\n@swap: return 38\n",
             "minijail")
    assert any("@frequency" in n and "ignored" in n for n in p.notes)
    assert decide(p.policy, "fsopen") == errno(1) and decide(p.policy, "swapon") == errno(38)
    assert decide(p.policy, "read") == ALLOW
    for text, where in [("@denylist\nread: allow\n", "2:7: invalid denylist policy"),
                        ("read: allow\nread: return 1\n", "2:5: syscall read already had an unconditional"),
                        ("read: arg0 == 0x10000000000000000\n", "1:15: unsigned overflow"),
                        ("read: arg0 == FOO_BAR\n", "1:15: unknown constant 'FOO_BAR'"),
                        ("read@libc: allow\n", "1:1: minijail syscall groups other than NAME@systemd"),
                        ("@default allow\n", "1:10: invalid default action")]:
        with pytest.raises(ProfileError) as e:
            load(text, "minijail")
        assert str(e.value).startswith(f"t.in:{where}"), str(e.value)


def test_minijail_constants_are_per_arch() -> None:
    text = "openat: arg2 == O_DIRECTORY\n"  # 0x10000 on x86, 0x4000 on arm/aarch64
    assert load(text, "minijail", "aarch64").policy.rules[0].conditions[0].value == 0x4000
    assert load(text, "minijail").policy.rules[0].conditions[0].value == 0x10000
    with pytest.raises(ProfileError, match="decides differently on x86_64 and aarch64"):
        load(text, "minijail", arches=["x86_64", "aarch64"])
    assert load("read: arg0 == -1\n", "minijail", "x86").policy.rules[0].conditions[0].value == 0xFFFFFFFF


# ----------------------------------------------------------------------------------------- kafel

def test_kafel_semantics() -> None:
    text = """#define MAGIC 0x100000000
    POLICY inner { KILL_PROCESS { ptrace } }
    POLICY p {
      ERRNO(5) { write(fd, buf, count) { fd == 3 } },
      ALLOW { write { !(fd > 2), count == MAGIC, (buf & 0xff) == 0x10 }, read ON aarch64 },
      USE inner,
      TRAP(0) { SYSCALL[1000] }
    }
    USE p DEFAULT LOG
    """
    p = load(text, "kafel").policy
    assert decide(p, "write", 3) == errno(5)
    # A declared argument is 8 bytes in Kafel, whatever its C type (fd == 3 compares both words
    # there); write's fd is an unsigned int to the kernel, so sysgate decides on its low word.
    assert decide(p, "write", (1 << 32) | 3) == errno(5)
    # Undeclared, fd takes Kafel's size for it (an int): the low word only.
    assert decide(load("ALLOW { write { fd == 3 } } DEFAULT LOG", "kafel").policy, "write", (1 << 32) | 3) == ALLOW
    assert decide(p, "write", 1) == ALLOW and decide(p, "write", 9) == LOG
    assert decide(p, "write", 9, 0x10, 0) == ALLOW and decide(p, "write", 9, 0x110, 0) == ALLOW
    assert decide(p, "write", 9, 0, 1 << 32) == ALLOW  # count is a size_t: 64 bits
    assert decide(p, "read") == LOG and decide(p, "ptrace") == KILL_PROCESS
    assert evaluate(p, "x86_64", 1000, []) == TRAP
    for bad, where in [("POLICY p { TRAP(3) { read } } USE p DEFAULT KILL", "TRAP(3)"),
                       ("POLICY p { USE q }", "Undefined policy `q'"),
                       ("POLICY p { ALLOW { read { nosuch == 1 } } }", "Undefined identifier `nosuch'"),
                       ("POLICY p { ALLOW { nosuchcall } }", "Undefined identifier `nosuchcall'"),
                       ("POLICY p { ALLOW { read(a, a) } }", "Redefinition of argument `a'"),
                       ("/* open", "unterminated comment")]:
        with pytest.raises(ProfileError) as e:
            load(bad, "kafel")
        assert where in str(e.value) and str(e.value).startswith("t.in:1:")


# ----------------------------------------------------------------------------------------- systemd

def test_systemd_allow_list_semantics() -> None:
    p = load("[Service]\nSystemCallFilter=@basic-io\nSystemCallFilter=~write\nSystemCallErrorNumber=EACCES\n"
             "SystemCallArchitectures=native\nUser=nobody\n", "systemd")
    assert p.policy.arches == ("x86_64",)
    assert decide(p.policy, "read") == ALLOW and decide(p.policy, "write") == errno(13)
    assert decide(p.policy, "exit_group") == ALLOW  # @default comes with every allow list
    assert decide(p.policy, "mount") == errno(13)
    assert any("User" in n for n in p.notes)
    q = load("[Service]\nSystemCallFilter=read\nSystemCallFilter=\nSystemCallFilter=~@mount mount:EBUSY\n",
             "systemd").policy
    assert q.default == ALLOW and decide(q, "umount2") == KILL_PROCESS and decide(q, "mount") == errno(16)
    with pytest.raises(ProfileError, match="not supported by sysgate"):
        load("[Service]\nSystemCallLog=read\n", "systemd")
    with pytest.raises(ProfileError, match="only allowed in a deny list"):
        load("[Service]\nSystemCallFilter=read:EPERM\n", "systemd")


# ----------------------------------------------------------------------------------------- k8s

def test_k8s_reads_yaml_and_json() -> None:
    yaml = """# a comment
apiVersion: security-profiles-operator.x-k8s.io/v1beta1
kind: SeccompProfile
metadata: {}
spec:
  defaultAction: "SCMP_ACT_ERRNO"   # trailing comment
  architectures: [SCMP_ARCH_NATIVE]
  syscalls:
    - names: [read, 'write']
      action: SCMP_ACT_ALLOW
    - action: SCMP_ACT_ERRNO
      errnoRet: "13"
      names:
      - personality
      args:
      - {}
"""
    with pytest.raises(ProfileError, match=r"spec: syscalls\[1\].args\[0\]: missing 'index'"):
        load(yaml, "k8s")
    p = load(yaml.replace("      args:\n      - {}\n", ""), "k8s").policy
    assert p.arches == ("x86_64",) and decide(p, "write") == ALLOW and decide(p, "personality") == errno(13)
    j = {"apiVersion": "security-profiles-operator.x-k8s.io/v1beta1", "kind": "SeccompProfile",
         "spec": {"defaultAction": "SCMP_ACT_LOG", "baseProfileName": "runc-v1.1.0"}}
    with pytest.raises(ProfileError, match="baseProfileName"):
        load(json.dumps(j), "k8s")
    with pytest.raises(ProfileError, match="apiVersion"):
        load(yaml.replace("security-profiles-operator.x-k8s.io", "example.com"), "k8s")


# ----------------------------------------------------------------------------------------- detection

def test_programs_are_never_policies() -> None:
    from sysgate.compiler import compile_policy
    from sysgate.profiles import resolve

    listing = __import__("sysgate.bpf.disasm", fromlist=["disasm"]).disasm(
        compile_policy(resolve("strict", arches=["x86_64"])).insns, ["x86_64"])
    assert detect(listing.encode()) == "asm"
    for text in ["A = arch\nA == ARCH_X86_64 ? next : dead\nok:\nreturn ALLOW\ndead:\nreturn KILL\n",
                 "err_label: return ERRNO(1337)\n", "if (A != 0x3e) goto bad\nbad: return KILL\n"]:
        assert detect(text.encode()) == "asm", text
    assert detect(b"\x20\x00\x00\x00\x04\x00\x00\x00") == "bpf"
    assert detect(b"read: 1\nwrite: 1\n") == "minijail"
    assert detect(b"read: return EPERM\n") == "minijail"
    assert detect(b"POLICY a { ALLOW { read } }\nUSE a DEFAULT KILL\n") == "kafel"
    assert detect(b"[Service]\nSystemCallFilter=read\n") == "systemd"
    assert detect(b"kind: SeccompProfile\napiVersion: x\n") == "k8s"
    assert detect(b"# only a comment\n", "x.policy") == "minijail"
    with pytest.raises(ProfileError, match="cannot tell the format"):
        detect(b"hello world\n")


def test_load_program_takes_every_format(tmp_path: Path) -> None:
    from sysgate.bpf import insn as I
    from sysgate.bpf.emulator import emulate
    from sysgate.programs import load_program

    f = tmp_path / "p.policy"
    f.write_text("read: 1\nexit_group: 1\n")
    prog = load_program(str(f), ["x86_64"])
    assert prog.kind == "profile"
    assert emulate(prog.insns, "x86_64", 0, []).ret == I.RET_ALLOW
    assert emulate(prog.insns, "x86_64", 1, []).ret == I.RET_KILL_PROCESS
    s = tmp_path / "p.conf"
    s.write_text("[Service]\nSystemCallFilter=~write\nSystemCallErrorNumber=EROFS\n")
    prog = load_program(str(s), ["x86_64"])
    assert emulate(prog.insns, "x86_64", 1, []).ret == I.RET_ERRNO | 30


# ----------------------------------------------------------------------------------------- every action, per format

ALL_ACTIONS = [ALLOW, KILL_PROCESS, KILL_THREAD, TRAP, LOG, errno(13), Action(ActionKind.TRACE, 7),
               Action(ActionKind.USER_NOTIF)]


@pytest.mark.parametrize("fmt", ["docker", "oci", "k8s"])
def test_json_formats_every_action_flag_and_listener(fmt: str) -> None:
    """Each SCMP_ACT_* as the default and as a rule action, every filter flag, listenerPath and
    listenerMetadata: read, written, read back; decisions judged by the emulator."""
    from sysgate.formats.docker import ACTIONS, FLAGS

    for name, kind in ACTIONS.items():
        extra = {"errnoRet": 13} if kind in (ActionKind.ERRNO, ActionKind.TRACE) else {}
        default = "SCMP_ACT_LOG" if name != "SCMP_ACT_LOG" else "SCMP_ACT_ALLOW"
        doc = {"defaultAction": default, "architectures": ["SCMP_ARCH_X86_64"], "flags": list(FLAGS),
               "listenerPath": "/run/l.sock", "listenerMetadata": "meta",
               "syscalls": [{"names": ["getpid"], "action": name, **extra}]}
        if fmt == "k8s":
            text = write(load(json.dumps(doc), "docker"), "k8s").text
        else:
            text = json.dumps(doc)
        loaded = load(text, fmt)
        want = Action(kind, 13) if extra else Action(kind)
        assert decide(loaded.policy, "getpid") == want, name
        assert loaded.extras.flags == FLAGS and loaded.extras.listener_path == "/run/l.sock"
        assert loaded.extras.listener_metadata == "meta"
        out = write(loaded, fmt)
        assert not out.losses
        back = load(out.text, fmt)
        assert sampled_equivalent(loaded.policy, back.policy) is None and back.extras == loaded.extras, name
        if name == "SCMP_ACT_KILL":  # libseccomp's KILL is kill-thread; written by its explicit name
            assert "SCMP_ACT_KILL_THREAD" in out.text
    for a in ALL_ACTIONS:  # and each as the default action
        p = Policy(a, (), ("x86_64",))
        out = write(p, fmt)
        if fmt == "k8s" and a.kind in (ActionKind.ERRNO, ActionKind.TRACE) and a.data != 1:
            assert any("defaultErrnoRet" in x for x in out.losses)  # SPO's spec has no such field
            continue
        assert not out.losses
        back = load(out.text, fmt).policy
        assert back.default == a and sampled_equivalent(p, back) is None


def test_firecracker_every_action() -> None:
    names = {"allow": ALLOW, "trap": TRAP, "log": LOG, "kill_thread": KILL_THREAD, "kill_process": KILL_PROCESS,
             '{"errno": 13}': errno(13), '{"trace": 7}': Action(ActionKind.TRACE, 7)}
    for text, want in names.items():
        action = json.loads(text) if text.startswith("{") else text
        other = "allow" if want != ALLOW else "trap"
        doc = {"t": {"default_action": other, "filter_action": action, "filter": [{"syscall": "getpid"}]}}
        p = load(json.dumps(doc), "firecracker", thread="t").policy
        assert decide(p, "getpid") == want and decide(p, "read") != want
        doc = {"t": {"default_action": action, "filter_action": other, "filter": [{"syscall": "getpid"}]}}
        p = load(json.dumps(doc), "firecracker", thread="t").policy
        assert p.default == want
        back = load(write(p, "firecracker", thread="t").text, "firecracker", thread="t").policy
        assert sampled_equivalent(p, back) is None


def test_kafel_every_action() -> None:
    spelled = {"ALLOW": ALLOW, "LOG": LOG, "KILL": KILL_THREAD, "KILL_THREAD": KILL_THREAD, "DENY": KILL_THREAD,
               "KILL_PROCESS": KILL_PROCESS, "USER_NOTIF": Action(ActionKind.USER_NOTIF), "ERRNO(13)": errno(13),
               "TRACE(7)": Action(ActionKind.TRACE, 7), "TRAP(0)": TRAP}
    for text, want in spelled.items():
        p = load(f"POLICY p {{ {text} {{ getpid }} }}\nUSE p DEFAULT {'ALLOW' if want != ALLOW else 'LOG'}\n",
                 "kafel").policy
        assert decide(p, "getpid") == want, text
        q = load(f"POLICY p {{ ALLOW {{ read }} }}\nUSE p DEFAULT {text}\n", "kafel").policy
        assert q.default == want, text
        for pol in (p, q):
            assert sampled_equivalent(pol, load(write(pol, "kafel").text, "kafel").policy) is None


def test_minijail_every_action_and_operator() -> None:
    spelled = {"allow": ALLOW, "1": ALLOW, "kill-process": KILL_PROCESS, "kill-thread": KILL_THREAD,
               "kill": KILL_PROCESS,  # what minijail0 installs (see sysgate.formats.minijail)
               "trap": TRAP, "log": LOG, "user-notify": Action(ActionKind.USER_NOTIF),
               "return 13": errno(13), "return EACCES": errno(13)}
    for text, want in spelled.items():
        p = load(f"@default trap\ngetpid: {text}\n" if want != TRAP else f"getpid: {text}\n", "minijail").policy
        assert decide(p, "getpid") == want, text
    ops = {"arg0 == 5": (5, 6), "arg0 != 5": (6, 5), "arg0 < 5": (4, 5), "arg0 <= 5": (5, 6),
           "arg0 > 5": (6, 5), "arg0 >= 5": (5, 4), "arg0 & 4": (12, 8), "arg0 in 5": (4, 2),
           "arg0 in ~PROT_EXEC": (3, 7), "arg0 == 1 && arg1 == 2": ((1, 2), (1, 3)),
           "arg0 == 1 && arg1 == 2 || arg0 == 9": ((9, 0), (2, 2)), "arg0 == O_RDONLY|O_CLOEXEC": (0x80000, 0)}
    for expr, (yes, no) in ops.items():
        p = load(f"getpid: {expr}\n", "minijail").policy
        yes, no = (yes if isinstance(yes, tuple) else (yes,)), (no if isinstance(no, tuple) else (no,))
        assert decide(p, "getpid", *yes) == ALLOW and decide(p, "getpid", *no) == KILL_PROCESS, expr


def test_minijail_include_resolves_and_shares_first_match(tmp_path: Path) -> None:
    (tmp_path / "common.policy").write_text("# shared\nread: arg0 == 0\n@include ./more.policy\n")
    (tmp_path / "more.policy").write_text("write: arg0 == 1 || arg0 == 2\n")
    main = tmp_path / "main.policy"
    main.write_text("@include ./common.policy\nread: return EBADF\nexit_group: 1\n")
    p = read(str(main), arch="x86_64").policy
    assert decide(p, "read", 0) == ALLOW and decide(p, "read", 5) == errno(9)  # the include's filter first
    assert decide(p, "write", 2) == ALLOW and decide(p, "write", 3) == KILL_PROCESS
    assert decide(p, "exit_group") == ALLOW and decide(p, "getpid") == KILL_PROCESS
    (tmp_path / "more.policy").write_text("write: arg0 ==\n")
    with pytest.raises(ProfileError) as e:
        read(str(main), arch="x86_64")
    assert str(e.value).startswith(f"{tmp_path / 'more.policy'}:1:15: ")


# ----------------------------------------------------------------------------------------- groups in every format

@pytest.mark.parametrize("fmt,text", [
    ("docker", '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["@mount", "read"], '
               '"action": "SCMP_ACT_ALLOW"}]}'),
    ("oci", '{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["@mount", "read"], '
            '"action": "SCMP_ACT_ALLOW"}]}'),
    ("k8s", "apiVersion: security-profiles-operator.x-k8s.io/v1beta1\nkind: SeccompProfile\nspec:\n"
            "  defaultAction: SCMP_ACT_ERRNO\n  syscalls:\n  - names: ['@mount', read]\n    action: SCMP_ACT_ALLOW\n"),
    ("firecracker", '{"t": {"default_action": {"errno": 1}, "filter_action": "allow", "filter": '
                    '[{"syscall": "@mount"}, {"syscall": "read"}]}}'),
    ("minijail", "@default kill-process\n@mount: allow\nread: allow\n"),
    ("minijail", "@default kill-process\nmount@systemd: allow\nread: allow\n"),
    ("kafel", "POLICY p { ALLOW { @mount, read } }\nUSE p DEFAULT ERRNO(1)\n"),
    ("systemd", "[Service]\nSystemCallFilter=@mount read\n"),
])
def test_systemd_groups_usable_by_name_in_every_format(fmt: str, text: str) -> None:
    """``@mount`` (systemd's set) expands to its members for the policy's architecture."""
    from sysgate.syscall_groups import expand

    for a in ("x86_64", "aarch64"):
        p = load(text, fmt, a, arches=[a], thread="t" if fmt == "firecracker" else None).policy
        members = expand("@mount", a)
        assert {"mount", "umount2", "pivot_root", "fsopen"} <= set(members)
        for name in members + ["read"]:
            assert decide(p, name, a=a) == ALLOW, (fmt, a, name)
        assert decide(p, "ptrace", a=a) != ALLOW
