"""Escape suite, the process layer (issue 10: terminal, session and signals, launcher paths,
PID 1, results, working directory, concurrency). Each test is an attack run with the default
options (unless the attack needs a namespace shared), in a forked caller, as root and as nobody;
each failed on the code before the fix (the caller's terminal got the bytes, the caller's
process group died, signals were blocked, /proc/1 was the caller, "killed" was forged...).
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import forkrun
from jail_support import PY, ROOT, SYSTEM_PY, as_nobody, drop_to_nobody, needs_root, needs_userns, no_leftovers  # noqa: F401
from sysgate.jail import Sandbox, run
from sysgate.jail.result import SandboxError

pytestmark = [needs_userns, pytest.mark.usefixtures("no_leftovers")]

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
CALLERS = ["root", pytest.param("nobody", marks=needs_root)]


def _landlock_abi() -> int:
    from sysgate.jail import landlock

    return landlock.abi_version()


needs_scope = pytest.mark.skipif(_landlock_abi() < 6, reason="Landlock scoping needs ABI 6 (Linux 6.12)")


def as_caller(who: str, fn, *args, timeout: float = 60):
    """``fn(*args)`` in a forked caller (root, or dropped to nobody): an attack that escapes kills
    or hangs that child, not the test runner."""
    if who == "root":
        return forkrun.run(lambda a: fn(*a), args, timeout=timeout).unwrap()
    return as_nobody(fn, *args, timeout=timeout)


def py_for(who: str) -> str:
    return PY if who == "root" else SYSTEM_PY


# -- 1. terminal injection ------------------------------------------------------------------------

INJECT = r'''
import fcntl, os, termios
for fd in (0, "/dev/tty"):
    try:
        f = fd if fd == 0 else os.open(fd, os.O_RDWR)
        for c in b"echo pwned\n":
            fcntl.ioctl(f, termios.TIOCSTI, bytes([c]))
        print(fd, "injected (into its own terminal)")
    except OSError as e:
        print(fd, e.errno)
'''


@pytest.fixture
def tiocsti_enabled():
    """TIOCSTI must work on this kernel for the attack to mean anything (dev.tty.legacy_tiocsti)."""
    path = "/proc/sys/dev/tty/legacy_tiocsti"
    old = open(path).read().strip() if os.path.exists(path) else "1"
    if old != "1":
        if not ROOT:
            pytest.skip("TIOCSTI is disabled on this kernel (legacy_tiocsti=0)")
        with open(path, "w") as f:
            f.write("1")
    yield
    if old != "1":
        with open(path, "w") as f:
            f.write(old)


def _terminal_caller(who: str, tty: int) -> tuple[Any, dict[str, str]]:
    """The preexec function and environment of a ``sysgate run`` started by ``who`` from a login
    shell whose controlling terminal is the pty slave ``tty``."""
    def pre() -> None:
        os.setsid()
        fcntl.ioctl(tty, termios.TIOCSCTTY, 0)
        if who == "nobody":
            drop_to_nobody()

    env = dict(os.environ, PYTHONPATH=SRC)
    if who == "nobody":
        env["HOME"] = "/nonexistent"  # no filter cache of root's to write in
    return pre, env


@contextlib.contextmanager
def _sysgate_on_terminal(who: str, script: str, run_opts: tuple[str, ...] = (), stdin_tty: bool = True,
                         size: tuple[int, int] | None = None) -> Iterator[tuple[subprocess.Popen, int, int]]:
    """``sysgate run RUN_OPTS -- python3 -c SCRIPT`` started by ``who`` on a fresh pty that is the
    caller's controlling terminal (of ``size`` columns x rows); yields (process, master, slave) and
    at the end kills the process if it still runs and closes the pty."""
    m, s = os.openpty()
    try:
        if size is not None:
            fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", size[1], size[0], 0, 0))
        py = py_for(who)
        pre, env = _terminal_caller(who, s)
        p = subprocess.Popen([py, "-m", "sysgate", "run", *run_opts, "--", py, "-c", script],
                             stdin=s if stdin_tty else subprocess.DEVNULL, stdout=s, stderr=s, preexec_fn=pre,
                             env=env, cwd="/")
    except BaseException:
        os.close(m)
        os.close(s)
        raise
    try:
        yield p, m, s
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(m)
        os.close(s)


def _caller_terminal_after(who: str, stdin_tty: bool) -> tuple[int, bytes, bytes]:
    """Run ``sysgate run -- python3 INJECT`` on a terminal (the test's pty, the caller's controlling
    terminal as in a login shell); return its status, what it showed, and what was left queued as
    *input* of the caller's terminal once it ended (what the caller's shell would read and run)."""
    shown = b""
    deadline = time.monotonic() + 60
    with _sysgate_on_terminal(who, INJECT, stdin_tty=stdin_tty) as (p, m, s):
        while p.poll() is None and time.monotonic() < deadline:
            if select.select([m], [], [], 0.1)[0]:
                try:
                    shown += os.read(m, 4096)
                except OSError:
                    break
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
        while select.select([m], [], [], 0.1)[0]:
            try:
                b = os.read(m, 4096)
            except OSError:
                break
            if not b:
                break
            shown += b
        attrs = termios.tcgetattr(s)
        attrs[3] &= ~termios.ICANON  # read whatever is queued, line or not
        termios.tcsetattr(s, termios.TCSANOW, attrs)
        os.set_blocking(s, False)
        try:
            queued = os.read(s, 4096)
        except BlockingIOError:
            queued = b""
    return rc, shown, queued


@pytest.mark.usefixtures("tiocsti_enabled")
@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("stdin_tty", [True, False], ids=["stdin-tty", "stdout-tty"])
def test_tiocsti_never_reaches_the_callers_terminal(who: str, stdin_tty: bool) -> None:
    rc, shown, queued = _caller_terminal_after(who, stdin_tty)
    assert rc == 0, shown
    assert queued == b"", f"typed into the caller's terminal: {queued!r}"
    assert b"/dev/tty " in shown          # the command ran and tried: /dev/tty is its own terminal


INTERACTIVE = r"""
import os, signal, time
print("size", *os.get_terminal_size(0), flush=True)
got = []
signal.signal(signal.SIGWINCH, lambda *a: got.append(1))
print("ready", flush=True)
deadline = time.time() + 20
while not got and time.time() < deadline:
    time.sleep(0.05)
print("size", *os.get_terminal_size(0), flush=True)
time.sleep(30)
"""


def _read_until(m: int, want: bytes, seen: bytearray, timeout: float = 20) -> bool:
    deadline = time.monotonic() + timeout
    while want not in seen and time.monotonic() < deadline:
        if select.select([m], [], [], 0.1)[0]:
            try:
                seen += os.read(m, 4096)
            except OSError:
                return False
    return want in seen


@pytest.mark.parametrize("who", CALLERS)
def test_terminal_relay_size_and_ctrl_c(who: str) -> None:
    """As ``docker run -t``: the window size reaches the sandbox's terminal (and a resize sends
    SIGWINCH there), and ^C typed on the caller's terminal becomes SIGINT for the command."""
    seen = bytearray()
    with _sysgate_on_terminal(who, INTERACTIVE, ("-q",), size=(101, 33)) as (p, m, s):
        assert _read_until(m, b"ready", seen), bytes(seen)
        assert b"size 101 33" in seen
        fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        assert _read_until(m, b"size 120 40", seen), bytes(seen)
        os.write(m, b"\x03")
        rc = p.wait(timeout=20)
    assert rc == 128 + signal.SIGINT, bytes(seen)


# -- 2. session, process group, signals and abstract sockets -----------------------------------

def _kill_callers_group(py: str, share: tuple) -> tuple:
    os.setpgid(0, 0)  # the caller leads a process group with a bystander in it, as a shell job would
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        target = f"-{os.getpgrp()}" if share else "0"
        r = run([py, "-c", f"import os; os.kill({target}, 9)"], capture_output=True, share=list(share), timeout=20)
        time.sleep(0.1)
        return r.status, r.stderr.decode()[-200:], bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.parametrize("who", CALLERS)
def test_kill_process_group_misses_the_caller(who: str) -> None:
    status, err, alive = as_caller(who, _kill_callers_group, py_for(who), ())
    assert alive and status in ("exited", "signaled"), err   # kill(0, SIGKILL): only the command's own group


@needs_scope
@pytest.mark.parametrize("who", CALLERS)
def test_kill_callers_group_by_pgid_with_shared_pids(who: str) -> None:
    status, err, alive = as_caller(who, _kill_callers_group, py_for(who), ("pid",))
    assert alive and status == "exited" and "PermissionError" in err   # Landlock scope: EPERM


def _abstract_connect(py: str, share: tuple, mediate: bool = True) -> str:
    name = f"\0sysgate-escape-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(name)
    srv.listen(1)
    code = ("import socket, sys\ns = socket.socket(socket.AF_UNIX)\ntry:\n"
            "    s.connect(sys.argv[1].replace('@', '\\0'))\n    print('connected')\nexcept OSError as e:\n"
            "    print(e.errno)")
    try:
        r = run([py, "-c", code, name.replace("\0", "@")], capture_output=True, share=list(share), timeout=20,
                mediate=mediate)
        return r.stdout.decode().strip() or r.stderr.decode()[-200:]
    finally:
        srv.close()


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("mediate", [True, False], ids=["mediated", "no-mediate"])
@pytest.mark.parametrize("share", [(), pytest.param(("net",), marks=needs_scope)], ids=["default", "net-host"])
def test_host_abstract_socket_unreachable(who: str, share: tuple, mediate: bool) -> None:
    """Own network: the name does not exist there (ECONNREFUSED). The host's network: the
    supervisor's connect mediation (on by default) refuses it first with EACCES, since it connects
    on the command's behalf outside the command's Landlock domain; with --no-mediate the Landlock
    scope refuses it (EPERM)."""
    got = as_caller(who, _abstract_connect, py_for(who), share, mediate)
    assert got == (("13" if mediate else "1") if share else "111"), got


def _signal_host_process(py: str) -> str:
    bystander = subprocess.Popen(["sleep", "30"])
    try:
        r = run([py, "-c", f"import os\ntry:\n    os.kill({bystander.pid}, 0); print('reached')\n"
                           "except OSError as e:\n    print(e.errno)"], capture_output=True, share=["pid"], timeout=20)
        return r.stdout.decode().strip()
    finally:
        bystander.kill()
        bystander.wait()


@needs_scope
@pytest.mark.parametrize("who", CALLERS)
def test_signals_scoped_with_shared_pids(who: str) -> None:
    assert as_caller(who, _signal_host_process, py_for(who)) == "1"


# -- 8. every launcher path: empty signal mask, default dispositions ----------------------------

# The glibc-internal real-time signals 32 and 33 (never visible to glibc programs, which install
# their own handlers) are left ignored by glibc's posix_spawn in every child it starts.
_GLIBC_INTERNAL = (1 << 31) | (1 << 32)

PATHS = {
    "default": {},
    "vfork": {"launcher": "vfork"},
    "fork-launcher": {"launcher": "fork"},
    "as-rlimit": {"rlimits": {"as": "8G"}},
    "data-rlimit": {"rlimits": {"data": "8G"}},
    "memory": {"memory": "256M"},
    "pids": {"pids": 64},
    "cpus": {"cpus": 1},
}
CGROUP_PATHS = {"memory", "pids", "cpus"}


def _path_checks(py: str, opts: dict) -> dict:
    st = run(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"], capture_output=True, timeout=20, **opts)
    fields = dict(line.split(":\t") for line in st.stdout.decode().split("\n") if line)
    sh = run(["sh", "-c", "(sleep 0.2 & wait); echo waited; yes | head -1"], capture_output=True, timeout=20, **opts)
    t = run(["sleep", "30"], timeout=1, **opts)
    with Sandbox(["sleep", "30"], **opts) as sb:
        sb.terminate()
        try:
            term = sb.wait(10)
            term_st = (term.status, term.signal)
        except TimeoutError:
            term_st = ("still running", None)
    return {"blk": int(fields["SigBlk"], 16), "ign": int(fields["SigIgn"], 16), "sh": sh.stdout.decode(),
            "sh_err": sh.stderr.decode(), "sh_status": sh.status, "timeout": (t.status, round(t.wall_time)),
            "term": term_st}


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("path", list(PATHS))
def test_every_launcher_path_starts_clean(who: str, path: str) -> None:
    if path in CGROUP_PATHS and (who != "root" or not ROOT):
        pytest.skip("cgroup limits need root (or a delegated cgroup)")
    got = as_caller(who, _path_checks, py_for(who), PATHS[path], timeout=90)
    assert got["blk"] == 0, hex(got["blk"])
    assert got["ign"] & ~_GLIBC_INTERNAL == 0, hex(got["ign"])
    assert (got["sh_status"], got["sh"], got["sh_err"]) == ("exited", "waited\ny\n", "")   # no "Broken pipe"
    assert got["timeout"][0] == "timeout" and got["timeout"][1] <= 5
    assert got["term"] == ("signaled", signal.SIGTERM)


# -- 13. nothing of the caller through PID 1 -------------------------------------------------------

PROC1 = r'''
import errno, json, os, resource, signal
out = {}
for name, mode in (("cmdline", "r"), ("status", "r"), ("mountinfo", "r"), ("environ", "r"), ("maps", "r"),
                   ("coredump_filter", "w"), ("clear_refs", "w")):
    try:
        with open("/proc/1/" + name, mode) as f:
            out[name] = f.read(4096) if mode == "r" else f.write("0" if name == "coredump_filter" else "1")
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
cmdlines = []
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            cmdlines.append(open(f"/proc/{p}/cmdline").read())
        except OSError:
            pass
out["cmdlines"] = cmdlines
try:  # a CPU limit of 0 on PID 1, then wake it up: would kill it while it runs (and holds the GIL)
    resource.prlimit(1, resource.RLIMIT_CPU, (0, 0))
    out["prlimit"] = "set"
except OSError as e:
    out["prlimit"] = errno.errorcode[e.errno]
for _ in range(200):
    try:
        os.kill(1, signal.SIGWINCH)
    except OSError:
        pass
print(json.dumps(out))
'''


def _proc1(py: str, launcher: str) -> tuple:
    mine = open("/proc/self/cmdline").read()
    before = open("/proc/self/coredump_filter").read()
    r = run([py, "-c", PROC1], capture_output=True, launcher=launcher, timeout=30)
    after = open("/proc/self/coredump_filter").read()
    return r.status, r.stderr.decode()[-300:], json.loads(r.stdout or b"{}"), mine, before, after


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize("launcher", ["vfork", "fork"])
def test_pid1_gives_nothing_of_the_caller(who: str, launcher: str) -> None:
    status, err, got, mine, before, after = as_caller(who, _proc1, py_for(who), launcher, timeout=60)
    assert status == "exited", err
    for name in ("cmdline", "status", "mountinfo", "environ", "maps", "coredump_filter", "clear_refs"):
        assert got[name] == "ENOENT", (name, got[name])   # hidden: PID 1 is not traceable by the command
    assert mine not in got["cmdlines"] and all("sysgate" not in c and "pytest" not in c for c in got["cmdlines"])
    assert before == after                                   # the caller's mm flags untouched


# -- 14. results only from facts the command cannot forge -----------------------------------------

def _results(py: str) -> dict:
    out = {}
    r = run(["sh", "-c", "kill -s RTMIN+2 1; sleep 0.3"], timeout=20)
    out["ctrl_to_pid1"] = r.status
    r = run([py, "-c", "import os, signal, time\ntry:\n    os.kill(os.getppid(), signal.SIGRTMIN + 2)\n"
                       "except OSError:\n    pass\ntime.sleep(0.3)"], share=["pid"], timeout=20)
    out["ctrl_to_parent"] = r.status
    r = run([py, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSYS)"], timeout=20)
    out["raise_sigsys"] = (r.status, r.signal, r.exit_code)
    r = run([py, "-c", "import os; os.getppid()"], deny=["getppid:kill-process"], timeout=20)
    out["seccomp_kill"] = (r.status, r.signal, r.exit_code)
    # a limit's signal raised by the command itself, with no limit set, or one not reached
    r = run(["sh", "-c", "kill -s XCPU $$"], timeout=20)
    out["raise_xcpu"] = (r.status, r.signal)
    r = run(["sh", "-c", "kill -s XFSZ $$"], timeout=20)
    out["raise_xfsz"] = (r.status, r.signal)
    r = run(["sh", "-c", "kill -s XCPU $$"], rlimits=["cpu=60"], timeout=20)
    out["raise_xcpu_under_limit"] = (r.status, r.signal)
    r = run(["sh", "-c", "kill -s KILL $$"], rlimits=["cpu=60"], timeout=20)
    out["raise_kill_under_limit"] = (r.status, r.signal)
    return out


@pytest.mark.parametrize("who", CALLERS)
def test_results_cannot_be_forged(who: str) -> None:
    got = as_caller(who, _results, py_for(who))
    assert got == {"ctrl_to_pid1": "exited", "ctrl_to_parent": "exited",
                   "raise_sigsys": ("signaled", signal.SIGSYS, 159), "seccomp_kill": ("seccomp", signal.SIGSYS, 159),
                   "raise_xcpu": ("signaled", signal.SIGXCPU), "raise_xfsz": ("signaled", signal.SIGXFSZ),
                   "raise_xcpu_under_limit": ("signaled", signal.SIGXCPU),
                   "raise_kill_under_limit": ("signaled", signal.SIGKILL)}


def test_kill_still_ends_the_sandbox() -> None:
    for launcher in ("vfork", "fork"):
        with Sandbox(["sleep", "30"], launcher=launcher) as sb:
            sb.kill()
            r = sb.wait(10)
        assert r.status == "killed", (launcher, r)


# -- 15. working directory --------------------------------------------------------------------------

def _cwd_runs(py: str) -> tuple:
    import tempfile

    d = tempfile.mkdtemp(prefix="sysgate-cwd-", dir="/tmp")  # the sandbox's /tmp is its own
    try:
        os.chdir(d)
        hidden = run(["pwd"], capture_output=True, timeout=20)
        os.chdir("/usr")
        seen = run(["pwd"], capture_output=True, timeout=20)
        try:
            run(["pwd"], cwd="/nonexistent-sysgate-dir", timeout=20)
            missing = "ran"
        except SandboxError as e:
            missing = (e.stage, e.exit_code, str(e))
        return hidden.stdout, hidden.stderr.decode(), seen.stdout, seen.stderr, missing, d
    finally:
        os.chdir("/")
        os.rmdir(d)


@pytest.mark.parametrize("who", CALLERS)
def test_working_directory_as_bubblewrap(who: str) -> None:
    hidden, note, seen, quiet, missing, d = as_caller(who, _cwd_runs, py_for(who))
    assert hidden == b"/\n" and note == f"sysgate: note: the current directory {d} is not visible in the sandbox; " \
                                        "starting in /\n"
    assert (seen, quiet) == (b"/usr\n", b"")
    assert missing[:2] == ("cwd", 125) and "/nonexistent-sysgate-dir" in missing[2] and "\n" not in missing[2]


def test_cli_chdir_missing_is_a_setup_failure() -> None:
    p = subprocess.run([sys.executable, "-m", "sysgate", "run", "--chdir", "/nonexistent-sysgate-dir", "--", "true"],
                       capture_output=True, timeout=60, env=dict(os.environ, PYTHONPATH=SRC), cwd="/")
    assert p.returncode == 125 and p.stderr.count(b"\n") == 1 and b"/nonexistent-sysgate-dir" in p.stderr, p.stderr


# -- 16. concurrent sandboxes, every launcher path --------------------------------------------------

def _stress(threads: int, runs: int, variants: list[dict]) -> list:
    bad: list = []

    def worker(k: int) -> None:
        opts = variants[k % len(variants)]
        for i in range(runs):
            try:
                r = run(["/bin/sh", "-c", f"echo {k}-{i}"], capture_output=True, timeout=20, **opts)
                if r.stdout != f"{k}-{i}\n".encode() or not r.ok:
                    bad.append((k, i, r.status, r.stderr[-200:]))
            except Exception as e:  # noqa: BLE001
                bad.append((k, i, repr(e)))

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return bad


def _stress_processes(variants: list[dict]) -> list:
    kids = [forkrun.start(_stress, 2, 5, variants) for _ in range(2)]  # two callers at once, two threads each
    out = []
    for k in kids:
        with k:
            out.append(k.wait(timeout=120).unwrap())
    return out


def test_timeout_counts_from_the_first_set_up_step() -> None:
    """A timeout shorter than the set-up itself ends the sandbox before the command runs."""
    for opts in ({}, {"launcher": "fork"}, {"rlimits": {"as": "8G"}}):
        r = run(["sh", "-c", "echo ran"], capture_output=True, timeout=1e-6, **opts)
        assert (r.status, r.exit_code, r.stdout) == ("timeout", 124, b""), (opts, r)


LIMITS = {"memory": "64M", "pids": 32}
MIXED = [LIMITS, {}, {"rlimits": {"as": "8G"}}, {"launcher": "fork"}]


@needs_root
def test_concurrent_sandboxes_with_limits_all_finish() -> None:
    """The issue's shape: threads starting sandboxes with cgroup limits (a fork inside a process
    whose other threads hold locks used to hang for ever), then every launcher path at once."""
    out = forkrun.run(lambda _: (_stress(4, 10, [LIMITS]), _stress(4, 5, MIXED)), None, timeout=240)
    assert out.unwrap() == ([], [])


@needs_root
def test_concurrent_sandboxes_from_processes() -> None:
    assert _stress_processes(MIXED) == [[], []]


FIRST_USE = r"""
import sys, threading
import sysgate
opts = eval(sys.argv[1])
bad = []
def one(k):
    try:
        r = sysgate.run(["/bin/sh", "-c", "echo %d" % k], capture_output=True, timeout=60, **opts[k % len(opts)])
        if not r.ok or r.stdout != b"%d\n" % k:
            bad.append((k, r.status, r.stderr[-200:]))
    except Exception as e:
        bad.append((k, repr(e)))
ts = [threading.Thread(target=one, args=(k,)) for k in range(8)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(repr(bad))
"""


@pytest.mark.parametrize("variants", [[{}], MIXED], ids=["plain", "mixed"])
def test_concurrent_first_sandboxes_of_a_fresh_process(variants: list) -> None:
    """Eight threads start a new interpreter's first sandboxes at once: a module one thread was
    still importing was handed to the others half made (AttributeError: partially initialized
    module 'sysgate.jail.supervisor' has no attribute 'prepare'), and most runs failed."""
    if not ROOT:
        variants = [v for v in variants if v is not LIMITS]
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    for _ in range(3):
        p = subprocess.run([sys.executable, "-c", FIRST_USE, repr(variants)], capture_output=True, timeout=120,
                           env=dict(os.environ, PYTHONPATH=src), cwd="/")
        assert p.returncode == 0 and p.stdout.strip() == b"[]", (p.stdout[-2000:], p.stderr[-2000:])


def test_stress_shape_unprivileged_without_limits() -> None:
    if ROOT:
        got = as_nobody(_stress, 4, 5, [{}, {"launcher": "fork"}, {"rlimits": {"as": "8G"}}], timeout=180)
    else:
        got = _stress(4, 5, [{}, {"launcher": "fork"}, {"rlimits": {"as": "8G"}}])
    assert got == []
