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

from jail_support import ROOT, SYSTEM_PY, TESTS, as_nobody, needs_root, needs_userns, no_leftovers  # noqa: F401

import sysgate
from sysgate.jail import PIPE, JailConfigError, Sandbox, SandboxError, run

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
    r = run([sys.executable, "-c", code], capture_output=True)
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
        r = run([sys.executable, "-c", f"import os; os.write({w_fd}, b'via-fd\\n'); print('done')"],
                capture_output=True, pass_fds=[w_fd])
        assert r.ok and r.stdout == b"done\n", r.stderr
        assert os.read(r_fd, 100) == b"via-fd\n"
    finally:
        os.close(r_fd)
        os.close(w_fd)


def test_uid_gid_inside_and_cap_add() -> None:
    r = sh("id -u; id -g; grep CapEff /proc/self/status", uid=1234, gid=4321)
    assert r.stdout.decode().split()[:2] == ["1234", "4321"]
    r = sh("grep CapEff /proc/self/status", cap_add=["NET_BIND_SERVICE"])
    assert r.stdout.split()[-1] == b"0000000000000400"


def test_binds_and_tmpfs(tmp_path) -> None:
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "f").write_text("ro-data")
    (tmp_path / "rw").mkdir()
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


def test_seccomp_kill_reports_syscall() -> None:
    r = run([sys.executable, "-c", "import os; os.getppid()"], deny=["getppid:kill-process"])
    assert (r.status, r.signal, r.exit_code) == ("seccomp", signal.SIGSYS, 159)
    if ROOT:  # the audit record in /dev/kmsg is root-only; it is rate-limited, so allow a miss
        assert r.syscall in ("getppid", None) and r.arch in ("x86_64", None)


def test_deny_errno_and_allow() -> None:
    code = "import os\ntry:\n os.uname(); print('ok')\nexcept OSError as e: print(e.errno)"
    r = run([sys.executable, "-c", code], deny=["uname:EACCES"], capture_output=True)
    assert r.stdout == b"13\n"
    r = run([sys.executable, "-c", "import os; os.chroot('/tmp')"], allow=["chroot"], capture_output=True)
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
    r = run([sys.executable, "-c", "import os; os.getppid()"], deny=["getppid:kill-process"], launcher="fork")
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
    p = cli("--deny", "getppid:kill-process", "--", sys.executable, "-c", "import os; os.getppid()")
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
