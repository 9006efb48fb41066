"""The jail's parts: option parsing, the filter cache, the launcher's effect on the caller's
interpreter (threads, recursion, dumpable flag), the network-namespace pool."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jail_support import PY, ROOT, needs_userns, no_leftovers  # noqa: F401
from sysgate.jail import JailConfigError, Options, Sandbox, filters, netpool, run, runner
from sysgate.jail.options import Bind, parse_bind, parse_rlimit, parse_size, parse_tmpfs
from sysgate.jail.result import RunResult, SandboxError

# -- options --------------------------------------------------------------------------------------

@settings(derandomize=True, max_examples=200)
@given(st.integers(0, 2**40), st.sampled_from(["", "K", "M", "G", "k", "m", "g", "KB", "MiB"]))
def test_parse_size_suffixes(n: int, suffix: str) -> None:
    mult = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[suffix[:1].upper()]
    if n * mult > (1 << 63) - 1:  # past the largest size: refused, never wrapped (issue 12)
        with pytest.raises(JailConfigError):
            parse_size(f"{n}{suffix}")
        return
    assert parse_size(f"{n}{suffix}") == n * mult


@pytest.mark.parametrize("bad", ["", "M", "12X", "-1", "1.2.3", "nan"])
def test_parse_size_rejects(bad: str) -> None:
    with pytest.raises(JailConfigError):
        parse_size(bad, "--memory")


def test_parse_rlimit_and_binds() -> None:
    assert parse_rlimit("nofile=64") == ("nofile", (64, 64))
    assert parse_rlimit("RLIMIT_AS=1G:unlimited") == ("as", (1 << 30, (1 << 64) - 1))
    for bad in ("nofile", "nofiles=3", "nofile=9:3", "nofile=x"):
        with pytest.raises(JailConfigError):
            parse_rlimit(bad)
    assert parse_bind("/a", True) == Bind("/a", "/a", True)
    assert parse_bind("/a/:/b/c/", False) == Bind("/a", "/b/c", False)
    assert parse_tmpfs("/x:2M").size == 2 << 20
    assert parse_bind("a/b:/b", True) == Bind(os.path.join(os.getcwd(), "a/b"), "/b", True)  # as bwrap takes it
    with pytest.raises(JailConfigError, match="absolute"):
        parse_bind("/a:b", True)


def test_options_validation_messages() -> None:
    cases = {"memory": "64Q", "pids": 0, "cpus": "fast", "share": ["time"], "hostname": "x" * 65,
             "uid": -1, "timeout": 0, "launcher": "posix", "pass_fds": [-1], "env": ["NOEQUALS"]}
    for k, v in cases.items():
        with pytest.raises(JailConfigError) as e:
            Options(**{k: v})
        assert "\n" not in str(e.value)
    with pytest.raises(JailConfigError, match="did you mean 'memory'"):
        Options.from_kwargs(memroy="1G")
    o = Options(rlimits={"nofile": 10, "cpu": "1:2"}, env={"A": "1"})
    assert o.rlimits == {"core": (0, 0), "nofile": (10, 10), "cpu": (1, 2)}
    assert o.environment({"PATH": "/p", "SECRET": "x", "LC_ALL": "C"}) == {"PATH": "/p", "LC_ALL": "C", "A": "1"}


def test_result_exit_codes() -> None:
    assert RunResult(["x"], "exited", returncode=3).exit_code == 3
    assert RunResult(["x"], "seccomp", signal=31).exit_code == 159
    assert RunResult(["x"], "timeout", signal=9).exit_code == 124
    assert RunResult(["x"], "oom", signal=9).exit_code == 137
    assert SandboxError(2, "x", "exec").exit_code == 127 and SandboxError(13, "x", "exec").exit_code == 126
    assert SandboxError(1, "x", "mount").exit_code == 125


# -- filters --------------------------------------------------------------------------------------

def test_filter_cache_memory_and_disk(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    filters.clear_cache()
    a = filters.get("docker-default", deny=("uname:EACCES",))
    d = tmp_path / "sysgate" / "jail"
    files = list(d.iterdir())
    assert len(files) == 1 and files[0].read_bytes().endswith(a.data) and files[0].stat().st_mode & 0o077 == 0
    assert filters.get("docker-default", deny=("uname:EACCES",)) is a       # memory hit
    filters.clear_cache()
    b = filters.get("docker-default", deny=("uname:EACCES",))               # disk hit
    assert b.data == a.data and b.supervisor_safe == a.supervisor_safe and b is not a
    c = filters.get("docker-default", deny=("uname:EPERM",))
    assert c.data != a.data and len(list(d.iterdir())) == 2
    fresh = filters._compile("docker-default", (), ("uname:EACCES",), None, (), "")
    assert fresh.data == a.data and fresh.supervisor_safe == a.supervisor_safe   # a hit is what a compile gives


def _tamper_and_reload(path, how: str) -> filters.FilterProgram:
    blob = bytearray(path.read_bytes())
    if how == "flip-program-byte":
        blob[-3] ^= 0x40
        path.write_bytes(bytes(blob))
    elif how == "flip-fast-path-flag":
        i = len(filters._MAGIC) + 32
        blob[i] ^= 1
        path.write_bytes(bytes(blob))
    elif how == "truncate":
        path.write_bytes(bytes(blob[:-8]))
    elif how == "group-writable":
        path.chmod(0o664)
    elif how == "other-owner":
        os.chown(path, 65534, 65534)
    filters.clear_cache()
    return filters.get("docker-default", deny=("uname:EACCES",))


@pytest.mark.parametrize("how", ["flip-program-byte", "flip-fast-path-flag", "truncate", "group-writable",
                                 pytest.param("other-owner", marks=pytest.mark.skipif(not ROOT, reason="chown"))])
def test_filter_cache_verified_on_read(tmp_path, monkeypatch, how: str) -> None:
    """A damaged or untrustworthy cache file is never loaded: the program is compiled again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    filters.clear_cache()
    good = filters.get("docker-default", deny=("uname:EACCES",))
    (path,) = (tmp_path / "sysgate" / "jail").iterdir()
    calls = []
    real = filters._compile
    monkeypatch.setattr(filters, "_compile", lambda *a: calls.append(a) or real(*a))
    again = _tamper_and_reload(path, how)
    assert len(calls) == 1 and (again.data, again.supervisor_safe) == (good.data, good.supervisor_safe)
    filters.clear_cache()
    assert filters.get("docker-default", deny=("uname:EACCES",)).data == good.data and len(calls) == 1  # rewritten


def test_filter_cache_key_follows_the_compiler_source(monkeypatch) -> None:
    k1 = filters._disk_key("docker-default", (), (), None, ())
    monkeypatch.setattr(filters, "_code_stamp", lambda: b"another compiler")
    assert filters._disk_key("docker-default", (), (), None, ()) != k1
    # every sysgate module a compile loads is covered by the stamp
    code = ("import sys; from sysgate.jail import filters; filters._compile('docker-default', ('@mount',), "
            "('uname',), 'kill-process', ('CAP_SYS_ADMIN',), ''); "
            "print(' '.join(m for m in sys.modules if m.startswith('sysgate.')))")
    src = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=src)).stdout.split()
    covered = set(filters._CODE)
    for mod in out:
        parts = mod.split(".")[1:]
        if parts[0] == "jail" and parts[-1] != "filters":
            continue  # the jail's own modules are not part of the compile
        rel = "/".join(parts)
        dirs = {"/".join(parts[:i]) for i in range(1, len(parts) + 1)}  # a listed folder covers its modules
        assert {rel + ".py", rel + "/__init__.py", *dirs} & covered, mod


def test_supervisor_safety_verdicts() -> None:
    assert filters.get("docker-default").supervisor_safe
    assert not filters.get("strict").supervisor_safe            # init could not even wait for the command
    assert not filters.get("docker-default", deny=("wait4",)).supervisor_safe
    assert filters.get("docker-default", deny=("ptrace",)).supervisor_safe


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("name", ["setsid", "rt_sigaction", "getppid"])
def test_a_filter_refusing_a_launcher_step_is_loaded_right_before_execve(name: str) -> None:
    """posix_spawn's child makes the command a session leader and resets its signals after the fast
    path has loaded the filter in init: a filter refusing one of those steps (or a call the supervisor
    makes later) is loaded by the command's own process instead, and the command runs."""
    assert not filters.get("docker-default", deny=(name,)).supervisor_safe
    r = run(["/bin/sh", "-c", "echo ran"], deny=[name], capture_output=True, timeout=60)
    assert r.ok and r.stdout == b"ran\n", (r.status, r.stderr)


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_profile_object_accepted() -> None:
    from sysgate.policy import ALLOW, Policy, Rule, errno

    pol = Policy(ALLOW, (Rule("uname", errno(13)),))
    r = run([PY, "-c", "import os; os.uname()"], profile=pol, capture_output=True)
    assert b"PermissionError" in r.stderr


# -- the launcher and the caller's interpreter -----------------------------------------------------

@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_many_runs_keep_the_interpreter_sane() -> None:
    def depth(n: int) -> int:
        return n if n == 0 else 1 + depth(n - 1)

    before = ctypes.CDLL(None).prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    for _ in range(150):
        assert run(["true"]).ok
    assert depth(sys.getrecursionlimit() - 50) == sys.getrecursionlimit() - 50  # no leaked recursion depth
    assert ctypes.CDLL(None).prctl(3, 0, 0, 0, 0) == before
    try:
        raise ValueError("tb")
    except ValueError as e:
        assert e.__traceback__.tb_frame.f_code.co_name == "test_many_runs_keep_the_interpreter_sane"


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_concurrent_sandboxes_and_busy_threads() -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def busy() -> None:  # Python work and allocation while inits run on borrowed stacks
        x = 0
        while not stop.is_set():
            x += len([str(i) for i in range(200)])

    def worker(k: int) -> None:
        try:
            for i in range(15):
                r = run(["sh", "-c", f"echo {k}-{i}"], capture_output=True)
                assert r.stdout == f"{k}-{i}\n".encode(), r
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    busies = [threading.Thread(target=busy) for _ in range(2)]
    workers = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
    for t in busies + workers:
        t.start()
    for t in workers:
        t.join(120)
    stop.set()
    for t in busies:
        t.join()
    assert not errors, errors
    with Sandbox(["sleep", "5"]) as a, Sandbox(["sh", "-c", "echo b"], stdout=-1) as b:
        assert b.communicate(timeout=10).stdout == b"b\n"
        a.kill()
        assert a.wait(10).status == "killed"


def _tasks_named(comm: bytes) -> list[str]:
    """Host pids whose command name is ``comm``: also zombies and tasks still exiting (their
    /proc entry stays until they are reaped)."""
    found = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat", "rb") as f:
                    if f.read().split(b") ", 1)[0].split(b" (", 1)[-1] == comm:
                        found.append(p)
            except OSError:
                pass
    return found


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("kw", [{}, {"mediate": False}, {"launcher": "fork"}])
def test_every_sandboxed_process_is_gone_when_run_returns(kw: dict) -> None:
    """run() may return while init is still exiting (the kernel tearing its namespaces down; it is
    reaped in the background), but never before the command's PID namespace is empty: the
    background processes the command left are reaped by then, not merely signalled."""
    name = f"sgbg{os.getpid() % 100000}"  # the command name of the command's background processes
    script = f"ln -s /bin/sleep /tmp/{name} && for i in $(seq 40); do /tmp/{name} 1000 & done; exit 0"
    for _ in range(3):
        r = run(["sh", "-c", script], **kw)
        assert r.ok, r
        assert not _tasks_named(name.encode()), "a sandboxed process outlived run()"


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_a_forked_child_runs_sandboxes_without_the_parents_supervisor_threads() -> None:
    """Supervisor threads are kept between runs; a forked child has none of them and must not wait
    for one (it would hang on the first mediated connect, or at the end of its first run)."""
    assert run(["true"]).ok
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's verdict is its exit status
        import signal

        signal.alarm(8)  # a run that waits for a thread it does not have takes 10 s (NotifySetup.finish)
        try:
            ok = run(["sh", "-c", "exec 3<>/dev/null; true"]).ok and run(["true"]).ok
            # its own exiting supervisors are reaped (by a reaper of its own, not the parent's)
            me = f"/proc/self/task/{os.getpid()}/children"
            deadline = time.monotonic() + 5
            while open(me).read().split() and time.monotonic() < deadline:
                time.sleep(0.01)
            os._exit(0 if ok and not open(me).read().split() else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not done:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    assert done and os.waitstatus_to_exitcode(status) == 0, status


@needs_userns
def test_a_script_whose_last_act_is_a_sandbox_exits_cleanly() -> None:
    """Threads sysgate keeps (the reaper of exiting supervisors, the supervisor workers) are running
    before run() returns: an interpreter that exits while a thread starts crashes (SIGSEGV), which
    is how `sysgate run` on a terminal died under load when the reaper was started at the end."""
    env = dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
    # (the reaper runs already when the first run returns: no thread is left starting)
    code = ("import sysgate, sys; from sysgate.jail import runner; ok = sysgate.run(['true']).ok; "
            "sys.exit(0 if ok and runner._reaper_ident else 1)")
    for _ in range(12):
        ps = [subprocess.Popen([sys.executable, "-c", code], env=env, cwd="/") for _ in range(3)]
        for p in ps:
            assert p.wait(timeout=60) == 0


@pytest.mark.skipif(not ROOT, reason="the namespace pool is for root")
@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_netns_pool_gives_each_sandbox_its_own_namespace(monkeypatch) -> None:
    """Each namespace the pool hands out is held open here, so its inode number cannot be given to a
    later namespace: a freed namespace's number is reused by the kernel, and since a sandbox's end no
    longer waits for its teardown, comparing bare numbers across runs failed once in CI."""
    from sysgate.jail import sandbox

    held: list[int] = []
    given: list[str | None] = []
    real = sandbox._take_netns

    def take() -> int:
        fd = real()
        if fd >= 0:
            held.append(os.dup(fd))
            given.append(f"net:[{os.fstat(fd).st_ino}]")
        else:
            given.append(None)
        return fd

    monkeypatch.setattr(sandbox, "_take_netns", take)
    seen: list[str] = []
    try:
        for _ in range(8):
            r = run(["readlink", "/proc/self/ns/net"], capture_output=True)
            seen.append(r.stdout.decode().strip())
            deadline = time.monotonic() + 5  # let the pool refill, so that most runs take from it
            while netpool._POOL is not None and netpool._POOL.fd < 0 and time.monotonic() < deadline:
                time.sleep(0.005)
    finally:
        for fd in held:
            os.close(fd)
    pooled = [(g, s) for g, s in zip(given, seen) if g is not None]
    assert len(given) == len(seen) and len(pooled) >= 4, (given, seen)
    assert all(g == s for g, s in pooled), pooled  # the sandbox ran in the namespace it was given
    assert len({g for g, _ in pooled}) == len(pooled)  # never the same one twice
    assert os.readlink("/proc/self/ns/net") not in seen
    assert os.readlink("/proc/thread-self/ns/net") == os.readlink("/proc/self/ns/net")
    pool = netpool._POOL
    netpool.shutdown()
    assert pool is not None and not pool.alive and pool.fd < 0  # its thread has ended, its spare is closed


def test_vfork_supported_here() -> None:
    assert runner.vfork_supported() == ((3, 10) <= sys.version_info[:2] <= (3, 13))


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_garbage_collector_is_held_off_inside_init(monkeypatch) -> None:
    """A collection in a vfork-launched init would finalize the caller's objects in the sandbox."""
    import gc

    from sysgate.jail import mounts

    seen: list[tuple[int, bool]] = []
    real = mounts.apply

    def spy(plan) -> None:  # runs in init: record who we are and whether the collector could run
        seen.append((os.getpid(), gc.isenabled()))
        real(plan)

    monkeypatch.setattr(mounts, "apply", spy)
    assert gc.isenabled()
    assert run(["true"], launcher="vfork").ok
    assert seen == [(1, False)] and gc.isenabled()


def test_subordinate_id_reads_the_callers_first_range(tmp_path) -> None:
    """The last id of the first valid range for uid 0 (by number or as root), or None."""
    from sysgate.jail import namespaces

    cases = [("root:100000:65536\n0:300000:10\n", 165535), ("alice:1:9\n0:300000:10\n", 300009),
             ("root:0:10\nroot:x:10\nroot:5:0\n\xff\xfe:1:2\nroot:70000:2\n", 70001), ("", None),
             ("root:4294967290:100\n", None)]
    for i, (text, want) in enumerate(cases):
        f = tmp_path / f"subuid{i}"
        f.write_bytes(text.encode("latin-1"))
        namespaces._SUBIDS.pop(str(f), None)
        assert namespaces.subordinate_id(str(f)) == want, text
    assert namespaces.subordinate_id(str(tmp_path / "missing")) is None
