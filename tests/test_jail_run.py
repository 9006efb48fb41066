"""The jail doing ordinary work under the default profile, its Python API and its CLI."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import sysgate
from jail_support import PY, ROOT, SYSTEM_PY, TESTS, as_nobody, needs_root, needs_userns, no_leftovers  # noqa: F401
from sysgate.arch import native as sysgate_arch
from sysgate.jail import PIPE, JailConfigError, RunResult, Sandbox, SandboxError, run

pytestmark = [needs_userns, pytest.mark.usefixtures("no_leftovers")]

SRC = os.path.join(os.path.dirname(TESTS), "src")


def sh(script: str, **kw):
    return run(["sh", "-c", script], capture_output=True, **kw)


# -- ordinary work --------------------------------------------------------------------------------

def test_sh_exit_code_and_output() -> None:
    r = sh("echo out; echo err >&2; exit 7")
    assert (r.status, r.returncode, r.exit_code) == ("exited", 7, 7)
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")
    assert r.wall_time > 0 and r.launcher in ("vfork", "fork")


def test_python_imports_and_subprocess() -> None:
    code = textwrap.dedent("""
        import json, ssl, sqlite3, subprocess, hashlib
        db = sqlite3.connect(":memory:"); db.execute("create table t(x)"); db.execute("insert into t values (42)")
        out = subprocess.run(["echo", "sub"], capture_output=True, text=True).stdout.strip()
        print(json.dumps([db.execute("select x from t").fetchone()[0], out, ssl.OPENSSL_VERSION[:7],
                          hashlib.sha256(b"x").hexdigest()[:8]]))
    """)
    r = run([PY, "-c", code], capture_output=True)
    assert r.ok, r.stderr
    assert json.loads(r.stdout) == [42, "sub", "OpenSSL", "2d711642"]


def test_reads_stdin_writes_stdout() -> None:
    data = os.urandom(300_000)
    r = run(["cat"], input=data, capture_output=True)
    assert r.ok and r.stdout == data


def test_tar_roundtrip_in_private_tmp() -> None:
    r = sh("cd /tmp && mkdir d && echo hello > d/f && tar cf a.tar d && rm -r d && tar xf a.tar && cat d/f")
    assert r.ok and r.stdout == b"hello\n", r.stderr


@pytest.mark.skipif(not shutil.which("gcc"), reason="gcc not installed")
def test_gcc_hello_world() -> None:
    r = sh("cd /tmp && printf '#include <stdio.h>\\nint main(void){puts(\"hi from gcc\");return 0;}\\n' > h.c"
           " && gcc -O0 -o h h.c && ./h")
    assert r.ok and r.stdout == b"hi from gcc\n", r.stderr


# -- what the sandbox looks like from inside ------------------------------------------------------

def test_isolation_view() -> None:
    r = sh("echo $$; hostname; id -u; grep -E '^(CapEff|CapBnd|CapAmb|CapInh|NoNewPrivs|Seccomp):' "
           "/proc/self/status | tr -s '\\t' ' '; ls /dev | tr '\\n' ' '; echo; ls /proc | grep -c '^[0-9]'; "
           "readlink /proc/1/exe >/dev/null 2>&1 && echo leak || echo no-exe; ls /proc/self/fd | tr '\\n' ' '")
    assert r.ok, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "2"                      # the command is PID 2; PID 1 is the sandbox's init
    assert lines[1] == "sysgate"
    assert lines[2] == str(os.geteuid())
    status = dict(x.split(" ", 1) for x in lines[3:9])
    assert status == {"CapInh:": "0000000000000000", "CapEff:": "0000000000000000",
                      "CapBnd:": "0000000000000000", "CapAmb:": "0000000000000000",
                      "NoNewPrivs:": "1", "Seccomp:": "2"}
    assert set(lines[9].split()) >= {"null", "zero", "full", "random", "urandom", "tty", "pts", "shm", "ptmx"}
    assert "vda" not in lines[9] and "sda" not in lines[9]
    assert int(lines[10]) <= 4                  # only init, sh and its helpers in this /proc
    assert lines[11] == "no-exe"                # init is not dumpable: its /proc entries are closed to us
    assert set(lines[12].split()) <= {"0", "1", "2", "3"}  # stdio and ls's own directory fd only


NS_NAMES = ("user", "mnt", "pid", "net", "ipc", "uts", "cgroup")
NS_SCRIPT = "for n in " + " ".join(NS_NAMES) + "; do readlink /proc/self/ns/$n; done"


def test_every_namespace_is_new_unless_shared() -> None:
    host = [os.readlink(f"/proc/self/ns/{n}") for n in NS_NAMES]
    r = sh(NS_SCRIPT)
    inside = r.stdout.decode().split()
    assert r.ok and len(inside) == len(NS_NAMES)
    assert [a != b for a, b in zip(host, inside)] == [True] * len(NS_NAMES), (host, inside)
    shared = ["pid", "net", "ipc", "uts", "cgroup"] + (["user"] if ROOT else [])
    r = sh(NS_SCRIPT, share=shared, keep_host_root=ROOT)  # no user namespace: root stays root, on purpose
    same = {n for n, a, b in zip(NS_NAMES, host, r.stdout.decode().split()) if a == b}
    assert same == set(shared) | ({"user"} if "user" in shared else set()), (host, r.stdout, r.stderr)


def test_network_is_loopback_only_and_up() -> None:
    code = textwrap.dedent("""
        import socket
        s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
        c = socket.create_connection(s.getsockname(), timeout=2); a, _ = s.accept(); c.sendall(b"ping")
        print(a.recv(4).decode())
        print(sorted(l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]))
    """)
    r = run([PY, "-c", code], capture_output=True)
    assert r.ok, r.stderr
    assert r.stdout.decode().splitlines() == ["ping", "['lo']"]


def test_hostname_and_uts() -> None:
    r = sh("hostname; cat /proc/sys/kernel/hostname", hostname="box-1")
    assert r.stdout == b"box-1\nbox-1\n"
    assert os.uname().nodename != "box-1"


def test_dev_is_minimal_and_works() -> None:
    code = textwrap.dedent("""
        import errno, json, os, stat
        out = {"ls": sorted(os.listdir("/dev"))}
        try:
            os.write(os.open("/dev/full", os.O_WRONLY), b"x")
        except OSError as e:
            out["full"] = errno.errorcode[e.errno]
        out["zero"] = open("/dev/zero", "rb").read(4).hex()
        out["urandom"] = len(set(open("/dev/urandom", "rb").read(64)))
        out["null"] = [os.write(os.open("/dev/null", os.O_WRONLY), b"abc"), open("/dev/null", "rb").read().decode()]
        out["chr"] = sorted(n for n in os.listdir("/dev") if stat.S_ISCHR(os.lstat("/dev/" + n).st_mode))
        m, sl = os.openpty()
        out["pty"] = os.ttyname(sl)
        fd = os.open("/dev/shm/seg", os.O_CREAT | os.O_RDWR, 0o600)
        out["shm"] = os.write(fd, b"shm")
        mounts = [l.split() for l in open("/proc/self/mountinfo")]
        out["fs"] = {l[4]: l[l.index("-") + 1] for l in mounts if l[4] in ("/dev", "/dev/pts", "/proc", "/tmp")}
        print(json.dumps(out))
    """)
    r = run([PY, "-c", code], capture_output=True)
    assert r.ok, r.stderr
    out = json.loads(r.stdout)
    assert out["ls"] == sorted(["null", "zero", "full", "random", "urandom", "tty", "pts", "ptmx", "shm", "fd",
                                "stdin", "stdout", "stderr", "core"])    # no disks, no host ttys, nothing else
    assert out["full"] == "ENOSPC" and out["zero"] == "00000000" and out["urandom"] > 16
    assert out["null"] == [3, ""] and out["shm"] == 3
    assert out["chr"] == sorted(["full", "null", "random", "tty", "urandom", "zero"])  # ptmx: a link into pts
    assert out["pty"] == "/dev/pts/0"                          # a devpts instance of its own: numbering starts at 0
    assert out["fs"] == {"/dev": "tmpfs", "/dev/pts": "devpts", "/proc": "proc", "/tmp": "tmpfs"}


def test_init_reaps_orphans() -> None:
    code = textwrap.dedent("""
        import os, subprocess, time
        p = subprocess.run(["sh", "-c", "sleep 0.4 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
        orphan = int(p.stdout)
        ppid = open(f"/proc/{orphan}/stat").read().rsplit(")", 1)[1].split()[1]
        time.sleep(0.8)
        print(ppid, os.path.exists(f"/proc/{orphan}"))
    """)
    r = run([PY, "-c", code], capture_output=True)
    assert r.stdout == b"1 False\n", r.stderr          # adopted by the sandbox's PID 1, then reaped (no zombie)


def test_new_session_and_chdir(monkeypatch) -> None:
    code = "import os; print(os.getsid(0) == os.getpid(), os.getcwd())"
    monkeypatch.chdir("/usr")
    assert run([PY, "-c", code], capture_output=True).stdout == b"True /usr\n"   # a session of its own, always
    r = run([PY, "-c", code], capture_output=True, new_session=True, cwd="/etc")
    assert r.stdout == b"True /etc\n"


def test_environment_is_cleared() -> None:
    os.environ["SYSGATE_SECRET_TEST"] = "s3cret"
    try:
        r = run(["env"], capture_output=True, env={"FOO": "bar"}, keep_env=["HOME"])
        env = dict(line.split("=", 1) for line in r.stdout.decode().splitlines())
        assert "SYSGATE_SECRET_TEST" not in env and env["FOO"] == "bar" and "PATH" in env
        assert env.get("HOME") == os.environ.get("HOME")
        r = run(["env"], capture_output=True, clear_env=False)
        assert b"SYSGATE_SECRET_TEST=s3cret" in r.stdout
    finally:
        del os.environ["SYSGATE_SECRET_TEST"]


def test_inherited_fds_closed_unless_passed() -> None:
    r_fd, w_fd = os.pipe()
    os.set_inheritable(w_fd, True)
    try:
        r = sh(f"[ -e /proc/self/fd/{w_fd} ] && echo open || echo closed")
        assert r.stdout == b"closed\n"
        r = run([PY, "-c", f"import os; os.write({w_fd}, b'via-fd\\n'); print('done')"],
                capture_output=True, pass_fds=[w_fd])
        assert r.ok and r.stdout == b"done\n", r.stderr
        assert os.read(r_fd, 100) == b"via-fd\n"
    finally:
        os.close(r_fd)
        os.close(w_fd)


def test_uid_gid_inside_and_cap_add() -> None:
    r = sh("id -u; id -g; grep CapEff /proc/self/status", uid=1234, gid=4321)
    assert r.stdout.decode().split()[:2] == ["1234", "4321"]
    r = sh("grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status", cap_add=["NET_BIND_SERVICE"], uid=1000)
    caps = dict(line.split() for line in r.stdout.decode().splitlines())
    assert caps == dict.fromkeys(["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"], "0000000000000400")


def test_binds_and_tmpfs(tmp_path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "f").write_text("ro-data")
    (tmp_path / "rw").mkdir()
    (tmp_path / "rw").chmod(0o777)  # a root caller's sandbox is an unprivileged host id
    r = sh("cat /mnt/ro/f; echo; echo x > /mnt/ro/g 2>/dev/null || echo ro-refused; echo w > /srv/rw/new; "
           "ls /var/tmp | wc -l", binds=[f"{tmp_path}/ro:/mnt/ro", (str(tmp_path / "rw"), "/srv/rw", False)],
           tmpfs=["/var/tmp", "/mnt", "/srv"])
    assert r.ok, r.stderr
    assert r.stdout.decode().split() == ["ro-data", "ro-refused", "0"]
    assert (tmp_path / "rw" / "new").read_text() == "w\n"


def test_host_tmp_untouched() -> None:
    marker = f"/tmp/sysgate-jail-test-{os.getpid()}"
    r = sh(f"echo x > {marker} && cat {marker}")
    assert r.ok and not os.path.exists(marker)


# -- results and exit statuses ---------------------------------------------------------------------

def test_signal_exit_status() -> None:
    r = sh("kill -SEGV $$")
    assert (r.status, r.signal, r.exit_code, r.returncode) == ("signaled", signal.SIGSEGV, 139, None)


def _kill_logged() -> bool:
    try:
        with open("/proc/sys/kernel/seccomp/actions_logged") as f:
            return "kill_process" in f.read().split() and os.access("/dev/kmsg", os.R_OK)
    except OSError:
        return False


def _attributed(argv: list[str], **kw) -> RunResult:
    """Run until the kill is attributed. The kernel's log is rate-limited (printk_ratelimit: 10
    messages per 5 s, shared by every process of the machine, so other test runs' kills count):
    keep trying for longer than two such windows before concluding."""
    deadline = time.monotonic() + 15
    while True:
        r = run(argv, **kw)
        assert (r.status, r.signal, r.exit_code) == ("seccomp", signal.SIGSYS, 159)
        if r.syscall is not None or not _kill_logged() or time.monotonic() >= deadline:
            return r
        time.sleep(0.5)


def test_seccomp_kill_reports_syscall() -> None:
    r = _attributed([PY, "-c", "import os; os.getppid()"], deny=["getppid:kill-process"])
    if _kill_logged():  # the kernel logs kills to /dev/kmsg, which we can read (root, or dmesg_restrict=0)
        assert (r.syscall, r.arch, r.syscall_nr) == ("getppid", os.uname().machine, sysgate_arch().nr("getppid"))
        assert "getppid" in r.describe()
    else:
        assert r.syscall is None


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="int 0x80 is x86")
def test_seccomp_kill_names_the_i386_call(tmp_path) -> None:
    prof = tmp_path / "x86_64-only.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"]}))
    code = "import sys; sys.path.insert(0, '/tmp/p'); import jail_probe; jail_probe.int80(20)"
    r = _attributed([PY, "-c", code], profile=str(prof),
                    binds=[(os.path.join(TESTS, "jail_probe.py"), "/tmp/p/jail_probe.py", True)])
    if _kill_logged():
        assert (r.syscall, r.arch, r.syscall_nr) == ("getpid", "x86", 20)


def test_peak_memory_and_cpu_time() -> None:
    r = run([PY, "-c", "import time\nb = b'x' * (200 << 20)\nt = time.process_time()\n"
                                   "while time.process_time() - t < 0.3: pass"])
    assert r.ok and r.peak_memory >= 200 << 20
    assert 0.3 <= r.user_time + r.system_time == r.cpu_time < 5 and r.wall_time >= r.user_time - 0.05


def test_deny_errno_and_allow() -> None:
    code = "import os\ntry:\n os.uname(); print('ok')\nexcept OSError as e: print(e.errno)"
    r = run([PY, "-c", code], deny=["uname:EACCES"], capture_output=True)
    assert r.stdout == b"13\n"
    r = run([PY, "-c", "import os; os.chroot('/tmp')"], allow=["chroot"], capture_output=True)
    assert b"PermissionError" in r.stderr  # allowed by seccomp, refused by the kernel: no capability left


def test_command_not_found_and_setup_failure() -> None:
    with pytest.raises(SandboxError) as e:
        run(["definitely-not-a-command-xyz"])
    assert e.value.stage == "exec" and e.value.exit_code == 127
    with pytest.raises(SandboxError) as e:
        run(["true"], binds=["/etc/hostname:/no/such/dir/x"])
    assert e.value.stage == "mount" and e.value.exit_code == 125 and "\n" not in str(e.value)


def test_bad_options_are_value_errors() -> None:
    for kw in ({"memory": "lots"}, {"rlimits": ["nofiles=3"]}, {"share": ["time"]}, {"binds": ["rel/path"]},
               {"nosuch_option": 1}, {"profile": "/no/such/profile.json"}, {"deny": ["notasyscall"]}):
        with pytest.raises(ValueError):
            run(["true"], **kw)
    with pytest.raises(JailConfigError):
        run("echo hi")


def test_fork_launcher_equivalent() -> None:
    r = sh("echo $$; exit 3", launcher="fork")
    assert (r.returncode, r.stdout, r.launcher) == (3, b"2\n", "fork")
    r = run([PY, "-c", "import os; os.getppid()"], deny=["getppid:kill-process"], launcher="fork")
    assert r.status == "seccomp"


def test_forked_command_path_for_unsafe_profile(tmp_path) -> None:
    prof = tmp_path / "p.json"  # wait4 denied: init cannot work under it, so the command loads it itself
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["wait4"], "action": "SCMP_ACT_ERRNO"}]}))
    r = sh("echo fine", profile=str(prof))
    assert r.ok and r.stdout == b"fine\n"


# -- Sandbox: start, stream, signal, wait, kill ---------------------------------------------------

def test_sandbox_streams() -> None:
    with Sandbox(["sh", "-c", "while read l; do echo got:$l; done; echo bye >&2"],
                 stdin=PIPE, stdout=PIPE, stderr=PIPE) as sb:
        assert sb.pid and sb.pid != os.getpid()
        sb.stdin.write(b"a\nb\n")
        assert sb.stdout.readline() == b"got:a\n"
        res = sb.communicate(b"c\n", timeout=10)
    assert res.ok and res.stdout == b"got:b\ngot:c\n" and res.stderr == b"bye\n"


def test_sandbox_signal_forwarding_and_kill() -> None:
    sb = Sandbox(["sh", "-c", "trap 'echo TERM; exit 5' TERM; echo ready; while :; do sleep 0.05; done"],
                 stdout=PIPE).start()
    assert sb.stdout.readline() == b"ready\n"
    sb.terminate()
    res = sb.communicate(timeout=10)
    assert res.returncode == 5 and res.stdout == b"TERM\n"
    sb = Sandbox(["sleep", "30"]).start()
    with pytest.raises(TimeoutError):
        sb.wait(0.05)
    t = time.monotonic()
    sb.kill()
    res = sb.wait(10)
    assert res.status == "killed" and time.monotonic() - t < 5


def test_sandbox_setup_error_raises_at_start() -> None:
    with pytest.raises(SandboxError):
        Sandbox(["no-such-command-here"]).start()


# -- CLI ------------------------------------------------------------------------------------------

def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "sysgate", "run", *args], capture_output=True, env=env,
                          timeout=60, **kw)


def test_cli_exit_statuses() -> None:
    assert cli("--", "sh", "-c", "exit 9").returncode == 9
    p = cli("--", "sh", "-c", "kill -TERM $$")
    assert p.returncode == 128 + 15 and b"SIGTERM" in p.stderr
    p = cli("--deny", "getppid:kill-process", "--", PY, "-c", "import os; os.getppid()")
    assert p.returncode == 159 and b"seccomp" in p.stderr
    p = cli("--", "no-such-command-xyz")
    assert p.returncode == 127 and p.stderr.count(b"\n") == 1 and b"Traceback" not in p.stderr
    p = cli("--bind", "/etc/hostname:/no/such/dir/x", "--", "true")
    assert p.returncode == 125 and p.stderr.count(b"\n") == 1 and b"Traceback" not in p.stderr
    p = cli("--memory", "much", "--", "true")
    assert p.returncode == 2 and b"--memory" in p.stderr and b"Traceback" not in p.stderr
    p = cli("--timeout", "0.2", "--", "sleep", "10")
    assert p.returncode == 124


def test_cli_json_status() -> None:
    r, w = os.pipe()
    p = cli("--json", "--status-fd", str(w), "--", "sh", "-c", "echo hi", pass_fds=(w,))
    os.close(w)
    st = json.loads(os.read(r, 65536))
    os.close(r)
    out = p.stdout.decode().splitlines()
    assert out[0] == "hi" and json.loads(out[1]) == st
    assert st["status"] == "exited" and st["exit_code"] == 0 and st["argv"] == ["sh", "-c", "echo hi"]


def test_public_names() -> None:
    assert sysgate.run is run and sysgate.Sandbox is Sandbox


# -- unprivileged ---------------------------------------------------------------------------------

def _unpriv_work(launcher: str) -> tuple:
    r = run(["sh", "-c", "id -u; echo $$; grep NoNewPrivs /proc/self/status"], capture_output=True,
            launcher=launcher)
    p = run([SYSTEM_PY, "-c", "import json, sqlite3; print(json.dumps(sqlite3.sqlite_version_info[:1]))"],
            capture_output=True, launcher=launcher)
    return r.status, r.stdout, r.launcher, p.status, p.stdout, p.stderr


@needs_root
@pytest.mark.parametrize("launcher", ["vfork", "fork"])
def test_unprivileged_caller(launcher: str) -> None:
    st, out, used, pst, pout, perr = as_nobody(_unpriv_work, launcher)
    assert st == "exited" and out.split()[:2] == [b"65534", b"2"] and out.split()[-1] == b"1"
    assert used == launcher
    assert pst == "exited" and pout == b"[3]\n", perr


def test_python_profile_is_installed_by_the_interpreter() -> None:
    """--profile python refuses execve, so the interpreter installs it before the program runs: the
    program computes, writes and reads files and uses pipes; sockets, exec and new namespaces fail
    in the kernel with the profile's errno, and the result names the user's own command line."""
    code = textwrap.dedent("""
        import ctypes, errno, json, os, socket, subprocess
        out = {}
        with open("/tmp/f", "w") as f:
            f.write("data")
        out["file"] = open("/tmp/f").read()
        r, w = os.pipe(); os.write(w, b"hi"); out["pipe"] = os.read(r, 2).decode()
        for name, fn in [("socket", lambda: socket.socket()),
                         ("exec", lambda: subprocess.run(["true"])),
                         ("execv", lambda: os.execv("/bin/true", ["true"]))]:
            try:
                fn(); out[name] = "ok"
            except OSError as e:
                out[name] = errno.errorcode[e.errno]
        libc = ctypes.CDLL(None, use_errno=True)
        out["unshare"] = "ok" if libc.unshare(0x10000000) == 0 else errno.errorcode[ctypes.get_errno()]
        out["unshare_files"] = "ok" if libc.unshare(0x400) == 0 else errno.errorcode[ctypes.get_errno()]
        with open("/proc/self/status") as f:
            out["seccomp"] = [l.split()[1] for l in f if l.startswith("Seccomp:")][0]
        print(json.dumps(out))
    """)
    r = run([PY, "-c", code], capture_output=True, profile="python")
    assert r.ok, r.stderr
    got = json.loads(r.stdout)
    assert got["file"] == "data" and got["pipe"] == "hi" and got["seccomp"] == "2"
    assert {k: got[k] for k in ("socket", "exec", "execv", "unshare", "unshare_files")} == {
        "socket": "EACCES", "exec": "EACCES", "execv": "EACCES",       # the profile's own errno
        "unshare": "EPERM", "unshare_files": "ok"}, got                # CLONE_NEWUSER refused, CLONE_FILES not
    assert r.argv == [PY, "-c", code]


def test_python_profile_needs_a_python_command() -> None:
    from sysgate.jail import sandbox
    from sysgate.profiles.bootstrap import DEFERRED

    assert sandbox.DEFERRED == DEFERRED
    with pytest.raises(ValueError, match="--profile python: .*must be python3"):
        run(["/bin/sh", "-c", "true"], profile="python")
    with pytest.raises(ValueError, match="--profile python: python_argv: give a script"):
        run([PY], profile="python")


def test_skip_unknown_profile_names(tmp_path, capfd) -> None:
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["frobnicate", "mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}))
    with pytest.raises(ValueError, match=r"names\[0\]: unknown syscall 'frobnicate'"):
        run(["/bin/true"], profile=str(prof))
    r = run(["/bin/sh", "-c", "mkdir /tmp/d 2>/dev/null; echo $?"], profile=str(prof), skip_unknown=True,
            capture_output=True)
    assert r.ok and r.stdout == b"1\n"                       # the known names still deny (EACCES)
    assert capfd.readouterr().err.count("skipped unknown syscall: ") == 1
