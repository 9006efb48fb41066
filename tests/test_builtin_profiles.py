"""The built-in profiles: listed, resolved for every architecture, round-tripped, modified with
--allow/--deny, and the ``python`` profile judged by the real kernel (forked children, and a fresh
interpreter through the after-exec bootstrap)."""
from __future__ import annotations

import ctypes
import errno
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from forkrun import run
from sysgate import arch
from sysgate.analysis.equivalence import sampled_equivalent
from sysgate.compiler import compile_policy
from sysgate.formats import ProfileError
from sysgate.formats.registry import read_bytes, write
from sysgate.policy import ALLOW, KILL_PROCESS, Action, ActionKind, Policy, Rule
from sysgate.policy import errno as errno_action
from sysgate.profiles import BUILTINS, apply_modifiers, builtin_names, builtin_path, resolve
from sysgate.profiles.bootstrap import DEFERRED, python_argv
from sysgate.profiles.hardening import HARDENED
from sysgate.reference import evaluate

linux_x86_64 = pytest.mark.skipif(not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
                                  reason="kernel tests run on x86_64 Linux")
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWPID, CLONE_FILES, SIGCHLD = 0x10000000, 0x20000, 0x20000000, 0x400, 17


def test_builtins_listed() -> None:
    assert builtin_names() == ["docker-default", "python", "strict"]
    assert all(len(desc) > 20 for _, desc in BUILTINS.values())
    assert DEFERRED == {"python"}


@pytest.mark.parametrize("name", ["docker-default", "python", "strict"])
@pytest.mark.parametrize("primary", ["x86_64", "aarch64", "s390x", "riscv64", "ppc64le", "x86"])
def test_builtins_compile_and_round_trip(name: str, primary: str) -> None:
    policy = resolve(name, arch=primary)
    assert policy.arches and policy.arches[0] == primary
    prog = compile_policy(policy)
    assert 0 < len(prog) <= 4096
    # The profile file itself round-trips exactly through Docker's format.
    plain = resolve(str(builtin_path(name)), arch=primary)
    out = write(plain, "docker")
    assert not out.losses
    back = read_bytes(out.text.encode(), "<docker>", "docker", arch=primary).policy
    assert sampled_equivalent(plain, back) is None
    if name in HARDENED:
        # The overlay refuses ioctl(TIOCSTI/TIOCLINUX) on the low 32 bits of an argument the profile
        # otherwise allows whole. libseccomp has no masked "not equal", but "allow the rest" is an OR
        # of single-bit tests (35 entries for ioctl, logic.absorb), so the built-in is exact too.
        hardened = write(policy, "docker")
        assert not hardened.losses, hardened.losses
        back = read_bytes(hardened.text.encode(), "<docker>", "docker", arch=primary).policy
        assert sampled_equivalent(policy, back) is None


def test_python_profile_decisions() -> None:
    """Argument checks as documented in PROVENANCE.md, on x86_64 and on s390x (clone's flags second)."""
    for a, flags_arg in (("x86_64", 0), ("aarch64", 0), ("s390x", 1)):
        p = resolve("python", arch=a)
        nr = arch.get(a).nr
        clone = [0] * 6
        clone[flags_arg] = CLONE_NEWUSER | SIGCHLD
        assert evaluate(p, a, nr("clone"), clone) == errno_action(1)
        clone[flags_arg] = 0x3D0F00 | SIGCHLD  # what pthread_create passes
        assert evaluate(p, a, nr("clone"), clone) == ALLOW
        assert evaluate(p, a, nr("clone3"), []) == errno_action(errno.ENOSYS)
        assert evaluate(p, a, nr("unshare"), [CLONE_FILES]) == ALLOW
        assert evaluate(p, a, nr("unshare"), [0x80]) == errno_action(1)  # CLONE_NEWTIME
        assert evaluate(p, a, nr("socket"), [2, 1, 0]) == errno_action(errno.EACCES)
        assert evaluate(p, a, nr("execve"), []) == errno_action(errno.EACCES)
        assert evaluate(p, a, nr("setns"), []) == errno_action(1)
        assert evaluate(p, a, nr("ptrace"), []) == errno_action(1)
        assert evaluate(p, a, nr("openat"), []) == ALLOW


def _python_workload() -> dict:
    """What a sandboxed CPython program may and may not do (runs in the filtered child)."""
    import hashlib
    import socket
    import tempfile
    import threading

    libc = ctypes.CDLL(None, use_errno=True)

    def outcome(f) -> str:
        try:
            f()
            return "ok"
        except OSError as e:
            return errno.errorcode.get(e.errno, str(e.errno))

    def raw(nr: int, *args: int) -> None:
        ret = libc.syscall(nr, *args)
        if ret == 0 and nr in (56, 435):  # a new process or thread was created after all: leave
            os._exit(0)
        if ret < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))

    out: dict = {}
    out["compute"] = sum(i * i for i in range(10 ** 5)) == 333328333350000 and \
        hashlib.sha256(b"x").hexdigest().startswith("2d71")
    d = tempfile.mkdtemp()
    path = os.path.join(d, "f.txt")
    with open(path, "w") as fh:
        fh.write("hello")
    os.rename(path, path + ".2")
    with open(path + ".2") as fh:
        out["files"] = fh.read() == "hello" and os.listdir(d) == ["f.txt.2"]
    os.unlink(path + ".2")
    os.rmdir(d)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.write(w, b"from child")
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    out["pipe_fork"] = [os.read(r, 100).decode(), os.waitstatus_to_exitcode(status)]
    got: list[int] = []
    t = threading.Thread(target=lambda: got.append(sum(range(1000))))
    t.start()
    t.join()
    out["thread"] = got == [499500]
    out["socket"] = outcome(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    out["socketpair"] = outcome(socket.socketpair)
    out["unshare_newuser"] = outcome(lambda: raw(272, CLONE_NEWUSER))
    out["unshare_newns"] = outcome(lambda: raw(272, CLONE_NEWNS))
    out["unshare_files"] = outcome(lambda: raw(272, CLONE_FILES))
    out["clone_newpid"] = outcome(lambda: raw(56, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0))
    out["clone3"] = outcome(lambda: raw(435, 0, 0))
    fd = os.open("/proc/self/ns/uts", os.O_RDONLY)
    out["setns"] = outcome(lambda: raw(308, fd, 0))
    out["execve"] = outcome(lambda: os.execv("/bin/true", ["true"]))
    out["execveat"] = outcome(lambda: raw(322, -100, ctypes.c_char_p(b"/bin/true"), 0, 0, 0))
    return out


EXPECTED = {"compute": True, "files": True, "pipe_fork": ["from child", 3], "thread": True,
            "socket": "EACCES", "socketpair": "EACCES", "unshare_newuser": "EPERM", "unshare_newns": "EPERM",
            "unshare_files": "ok", "clone_newpid": "EPERM", "clone3": "ENOSYS", "setns": "EPERM",
            "execve": "EACCES", "execveat": "EACCES"}


@linux_x86_64
def test_python_profile_in_the_kernel() -> None:
    """Loaded into a forked child of this interpreter (after its start, as the profile requires)."""
    from sysgate.profiles.bootstrap import install_in_process

    def child() -> dict:
        install_in_process("python")
        return _python_workload()

    out = run(child, timeout=30)
    assert out.unwrap() == EXPECTED


@linux_x86_64
def test_python_profile_through_the_bootstrap(tmp_path: Path) -> None:
    """A fresh interpreter: the jail's path. The filter arrives on a descriptor and is installed
    before the program runs; the program then cannot exec, open sockets or unshare."""
    script = tmp_path / "job.py"
    script.write_text(f"import json, sys, os\nsys.path.insert(0, {str(Path(__file__).parent)!r})\nfrom test_builtin_profiles import "
                      "_python_workload\nresult = _python_workload()\nresult['argv'] = sys.argv\n"
                      "print(json.dumps(result))\n")
    prog = compile_policy(resolve("python")).to_bytes()
    r, w = os.pipe()
    os.write(w, prog)
    os.close(w)
    try:
        # outside a sandbox the interpreter's own files are writable (by root, or a pyenv's owner): unchecked
        argv = python_argv([sys.executable, "-S", str(script), "one", "two"], r, check_paths=False)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        p = subprocess.run(argv, pass_fds=[r], capture_output=True, text=True, timeout=60, env=env)
    finally:
        os.close(r)
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout)
    assert result.pop("argv") == [str(script), "one", "two"]
    assert result == EXPECTED
    # a filter that cannot be installed stops the program before it starts
    r, w = os.pipe()
    os.write(w, b"\x06\x00\x00\x00")  # 4 bytes: not a program
    os.close(w)
    p = subprocess.run(python_argv([sys.executable, "-c", "print('ran')"], r, check_paths=False), pass_fds=[r],
                       capture_output=True, text=True, timeout=60)
    os.close(r)
    assert p.returncode == 126 and "ran" not in p.stdout and "cannot install the seccomp filter" in p.stderr


def test_python_argv_forms() -> None:
    assert python_argv(["python3", "-m", "json.tool", "x"], 5)[1:4] == ["-I", "-S", "-c"]
    argv = python_argv(["python3", "-u", "-X", "dev", "s.py", "a"], 7)
    assert argv[:7] == ["python3", "-I", "-S", "-u", "-X", "dev", "-c"]
    assert argv[-7:] == ["7", "checked", "0", "0", "0", "s.py", "a"]       # the user's -I, -S, -E: none
    assert python_argv(["python3", "-SE", "s.py"], 7)[-4:-1] == ["0", "1", "1"]
    for bad in ([], ["python3"], ["python3", "-"], ["python3", "-c"]):
        with pytest.raises(ValueError):
            python_argv(bad, 3)


def test_apply_modifiers() -> None:
    base = Policy(errno_action(1), (Rule("read", ALLOW), Rule("ptrace", KILL_PROCESS)), ("x86_64",))
    p = apply_modifiers(base, allow=["ptrace", "write"], deny=["read:EACCES", "0x3b"])
    nr = arch.get("x86_64").nr
    assert evaluate(p, "x86_64", nr("ptrace"), []) == ALLOW
    assert evaluate(p, "x86_64", nr("write"), []) == ALLOW
    assert evaluate(p, "x86_64", nr("read"), []) == errno_action(errno.EACCES)
    assert evaluate(p, "x86_64", 59, []) == errno_action(1)  # execve, by number
    both = apply_modifiers(base, allow=["read"], deny=["read"])
    assert evaluate(both, "x86_64", nr("read"), []) == errno_action(1)  # the denial wins
    assert apply_modifiers(base) is base
    g = apply_modifiers(Policy(ALLOW, (), ("x86_64",)), deny=["@mount:kill-process"])
    for name in ("mount", "umount2", "pivot_root"):
        assert evaluate(g, "x86_64", nr(name), []) == KILL_PROCESS
    assert evaluate(g, "x86_64", nr("read"), []) == ALLOW
    for bad in (["nosuch"], ["@nosuch"], ["read:allow"], [":EPERM"]):
        with pytest.raises(ProfileError):
            apply_modifiers(base, deny=bad)


def test_modifiers_reach_the_kernel_view() -> None:
    """``resolve(..., allow=, deny=)`` is what compile and the jail use."""
    p = resolve("strict", arch="x86_64", allow=["getpid"], deny=["write:EBADF"])
    nr = arch.get("x86_64").nr
    assert evaluate(p, "x86_64", nr("getpid"), []) == ALLOW
    assert evaluate(p, "x86_64", nr("write"), []) == Action(ActionKind.ERRNO, errno.EBADF)
    assert evaluate(p, "x86_64", nr("read"), []) == ALLOW
    assert evaluate(p, "x86_64", nr("uname"), []) == KILL_PROCESS


def test_resolve_errors() -> None:
    with pytest.raises(ProfileError, match="did you mean docker-default"):
        resolve("docker-defualt")


CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def test_docker_default_is_the_moby_profile_unmodified() -> None:
    """Decision for decision moby's default: the very file (when the corpus is here), resolved by the
    same reader for every architecture it names; provenance and licence are written down."""
    from sysgate.profiles import builtin_path

    shipped = Path(builtin_path("docker-default")).read_bytes()
    if CORPUS.is_dir():
        assert shipped == (CORPUS / "moby-profiles-seccomp-default.json").read_bytes()
    doc = json.loads(shipped)
    named = [m["architecture"] for m in doc["archMap"]]
    assert len(named) >= 8
    for primary in named:
        a = arch.get(primary).name
        p = resolve("docker-default", arch=a)
        main_entry = next(m for m in doc["archMap"] if m["architecture"] == primary)
        assert p.arches == tuple(arch.get(x).name for x in [primary] + (main_entry.get("subArchitectures") or []))
    prov = (Path(builtin_path("docker-default")).parent / "PROVENANCE.md").read_text()
    assert "moby/profiles" in prov and "cd3bed8061c7b7378b61fc6827c7885779417a75" in prov
    assert "Apache License 2.0" in prov


def test_builtins_are_accepted_by_name_everywhere(tmp_path: Path) -> None:
    """compile, emulate, explain, diff, convert and profiles show take the built-in names."""
    def cli(*argv: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sysgate.cli", *argv], capture_output=True, timeout=60)

    for name in builtin_names():
        assert cli("compile", name, "--arch", "x86_64", "-o", str(tmp_path / f"{name}.bpf")).returncode == 0
        r = cli("emulate", name, "exit_group", "--arch", "x86_64")
        assert r.returncode == 0 and b"-> allow" in r.stdout, r
        assert cli("explain", name, "--arch", "x86_64").returncode == 0
        r = cli("convert", name, "--to", "oci", "--arch", "x86_64")
        assert r.returncode == 0 and not r.stderr, r
        if name in HARDENED:  # the overlay is written too (OR-ed single-bit tests), not named as a loss
            back = read_bytes(r.stdout, "<oci>", "oci", arch="x86_64").policy
            ioctl = arch.get("x86_64").nr("ioctl")
            assert evaluate(back, "x86_64", ioctl, [0, (1 << 32) | 0x5412]) == errno_action(1)  # TIOCSTI
            assert evaluate(back, "x86_64", ioctl, [0, 0x5413]) == ALLOW
        assert cli("profiles", "show", name).returncode == 0
    r = cli("diff", "strict", "python", "--arch", "x86_64")
    assert r.returncode not in (0, 2) and b"execve" not in r.stderr, r  # they differ: a status of its own
