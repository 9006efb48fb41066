"""Escape suite, filesystem and identity half (issue 10, items 3-7, 10-12): each attack as a hostile
command would make it, with default options unless said, judged by the kernel (errnos and how
processes died, in forked children: tests/jail_probe.py), as root and as nobody where it applies.

Items: 3 host unix sockets in the runtime/scratch trees, 4 a root caller's sandbox as host root,
5 the python profile's bootstrap, 6 filter cache poisoning, 7 symbolic links planted in binds,
10 leases and terminal ioctls, 11 unbounded scratch, 12 leftover cgroups.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from jail_support import (  # noqa: F401
    PROBE,
    PY,
    ROOT,
    SYSTEM_PY,
    as_nobody,
    leave_deliberately,
    needs_root,
    needs_userns,
    no_leftovers,
    sysgate_cgroups,
)
from sysgate.jail import Options, SandboxError, filters, namespaces, run

pytestmark = [needs_userns, pytest.mark.usefixtures("no_leftovers")]

x86_only = pytest.mark.skipif(os.uname().machine != "x86_64", reason="the probes use x86_64 syscall numbers")
IN_PROBE = "/tmp/jail_probe.py"
PROBE_BIND = (PROBE, IN_PROBE, True)
CALLERS = ["root", pytest.param("nobody", marks=needs_root)]
# Somewhere the sandbox's view shows (not a hidden tree) and that the test may write.
VISIBLE_DIR = "/var/lib" if ROOT else os.path.expanduser("~")


def _probe(names: list[str], options: dict) -> dict:
    r = run([SYSTEM_PY, IN_PROBE, str(os.getpid()), "1", *names], capture_output=True, timeout=60,
            binds=[PROBE_BIND, *options.pop("binds", ())], **options)
    assert r.status == "exited", (r.status, r.stderr)
    return json.loads(r.stdout)


def probe_as(who: str, names: list[str], **options) -> dict:
    if who == "root":
        return _probe(names, options)
    return as_nobody(_probe, names, options, timeout=60)


def outcome(res: dict) -> str | int:
    return res.get("errno") or res.get("signal") or ("ok" if "ok" in res else str(res))


@pytest.fixture
def scratch():
    """A directory outside the hidden trees, open to everyone (the sandbox may be another host id)."""
    d = os.path.join(VISIBLE_DIR, f"sysgate-fs-{os.getpid()}-{time.monotonic_ns()}")
    os.mkdir(d)
    os.chmod(d, 0o777)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _listen(path: str) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    os.chmod(path, 0o777)
    s.listen(4)
    return s


# -- item 3: the runtime and scratch trees are hidden --------------------------------------------

@pytest.fixture
def planted_listeners(monkeypatch):
    """Listeners where daemons keep theirs: /run, /var/tmp and $XDG_RUNTIME_DIR (needs root for /run)."""
    made, socks = [], []
    tag = f"sysgate-listen-{os.getpid()}"
    bases = ["/var/tmp"] + (["/run"] if ROOT else [])
    xdg = os.path.join(VISIBLE_DIR, tag + "-xdg")
    os.mkdir(xdg)
    os.chmod(xdg, 0o755)
    made.append(xdg)
    monkeypatch.setenv("XDG_RUNTIME_DIR", xdg)
    paths = [os.path.join(xdg, "bus")]
    for b in bases:
        d = os.path.join(b, tag)
        os.mkdir(d)
        os.chmod(d, 0o755)
        made.append(d)
        paths.append(os.path.join(d, "daemon.sock"))
    try:
        socks = [_listen(p) for p in paths]
        yield paths
    finally:
        for s in socks:
            s.close()
        for d in made:
            shutil.rmtree(d, ignore_errors=True)


@x86_only
@pytest.mark.parametrize("who", CALLERS)
def test_host_listeners_in_hidden_trees_are_unreachable(planted_listeners: list[str], who: str) -> None:
    names = [f"connect_unix:{p}" for p in planted_listeners]
    got = probe_as(who, names)
    assert {k: outcome(got[k]) for k in names} == {k: "ENOENT" for k in names}, got
    # the probe notices an open door: the same socket bound in on purpose is reachable
    one = planted_listeners[0]
    got = probe_as(who, [f"connect_unix:{one}"], binds=[(os.path.dirname(one), os.path.dirname(one), True)])
    assert outcome(got[f"connect_unix:{one}"]) in ("ok", "EACCES", "EPERM"), got  # EACCES/EPERM: mediated


@x86_only
def test_hidden_trees_stay_hidden_under_a_bind_of_an_ancestor(planted_listeners: list[str]) -> None:
    """``--ro-bind /var:/mnt`` (or ``/``) must not show /var/tmp's sockets again."""
    var_tmp = next(p for p in planted_listeners if p.startswith("/var/tmp/"))
    names = ["connect_unix:/mnt" + var_tmp[len("/var"):], "list:/mnt/tmp"]
    got = _probe(names, {"binds": [("/var", "/mnt", True)]})
    assert outcome(got[names[0]]) == "ENOENT" and got["list:/mnt/tmp"] == {"ok": []}, got


def test_hidden_trees_are_private_bounded_tmpfs() -> None:
    r = run([SYSTEM_PY, "-c", "import os, json; print(json.dumps({p: [os.statvfs(p).f_blocks * os.statvfs(p).f_frsize,"
             " os.statvfs(p).f_files, sorted(os.listdir(p))] for p in ('/run', '/var/tmp', '/tmp', '/dev/shm')}))"],
            capture_output=True, timeout=60)
    assert r.ok, r.stderr
    for path, (size, inodes, entries) in json.loads(r.stdout).items():
        assert entries == [] and 0 < size <= 512 << 20 and 0 < inodes <= 1 << 20, (path, size, inodes)


def test_a_bind_of_the_host_root_shows_none_of_what_the_sandbox_has_privately() -> None:
    """``--tmpfs /mnt --ro-bind /:/mnt/host``: /run and /var/tmp were masked there, but the host's
    /tmp, /dev/shm and procfs (every host process's command line) were visible."""
    import tempfile

    fd, marker = tempfile.mkstemp(prefix="sysgate-host-tmp-", dir="/tmp")
    os.close(fd)
    try:
        r = run([SYSTEM_PY, "-c", "import os, json; print(json.dumps({p: sorted(os.listdir(p)) for p in "
                 "('/mnt/host/tmp', '/mnt/host/dev/shm', '/mnt/host/proc', '/mnt/host/run')}))"],
                tmpfs=["/mnt"], binds=[("/", "/mnt/host", True)], capture_output=True, timeout=60)
        assert r.ok, r.stderr
        assert json.loads(r.stdout) == {"/mnt/host/tmp": [], "/mnt/host/dev/shm": [], "/mnt/host/proc": [],
                                        "/mnt/host/run": []}, r.stdout
    finally:
        os.unlink(marker)


def _capture_of_a_sparse_terabyte() -> tuple:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))  # the old code asked for 1 TiB
    r = run([SYSTEM_PY, "-c", "import os; os.write(1, b'head'); os.ftruncate(1, 1 << 40); "
                              "os.lseek(2, 1 << 40, 0); os.write(2, b'tail')"], capture_output=True, timeout=30)
    return r.status, len(r.stdout), r.stdout[:4], len(r.stderr)


def test_captured_output_is_what_was_written_not_a_claimed_size() -> None:
    """A command's ftruncate (or a seek past the end) of its captured stdout made the caller read
    a terabyte of holes (MemoryError, or the caller's memory exhausted): only what the file really
    holds is read."""
    import forkrun

    status, n_out, head, n_err = forkrun.run(lambda _: _capture_of_a_sparse_terabyte(), None, timeout=60).unwrap()
    assert status == "exited" and head == b"head" and n_out <= 1 << 16 and n_err <= 1 << 16, (status, n_out, n_err)


# -- item 4: a root caller's sandbox is not host root ---------------------------------------------

@needs_root
def test_root_caller_creates_files_as_an_unprivileged_host_id(scratch: str) -> None:
    uid, gid = namespaces.host_ids(Options())
    assert uid != 0 and gid != 0
    r = run(["/bin/sh", "-c", "id -u; echo x > /mnt/made"], binds=[(scratch, "/mnt", False)], capture_output=True,
            timeout=60)
    assert r.ok and r.stdout == b"0\n", r.stderr             # root inside
    st = os.stat(os.path.join(scratch, "made"))
    assert (st.st_uid, st.st_gid) == (uid, gid)                # an unprivileged id outside
    r = run(["/bin/sh", "-c", "echo x > /mnt/mine"], binds=[(scratch, "/mnt", False)], host_uid=70001, host_gid=70002,
            timeout=60)
    assert r.ok and os.stat(os.path.join(scratch, "mine")).st_uid == 70001


@needs_root
def test_host_processes_see_the_unprivileged_id() -> None:
    from sysgate.jail import Sandbox

    uid, _ = namespaces.host_ids(Options())
    with Sandbox(["/bin/sleep", "20"], timeout=30) as sb:
        deadline = time.monotonic() + 10
        kids: list[str] = []
        while not kids and time.monotonic() < deadline:
            with open(f"/proc/{sb.pid}/task/{sb.pid}/children") as f:
                kids = f.read().split()
            time.sleep(0.01)
        with open(f"/proc/{kids[0]}/status") as f:
            ids = next(line.split()[1:] for line in f if line.startswith("Uid:"))
        sb.kill()
    assert ids == [str(uid)] * 4


@needs_root
@x86_only
def test_root_only_files_and_planted_setuid_root(scratch: str) -> None:
    names = ["read:/etc/shadow"] + (["list:/root"] if not os.stat("/root").st_mode & 0o005 else [])
    got = _probe(names, {})
    assert {k: outcome(v) for k, v in got.items()} == {k: "EACCES" for k in names}
    # a setuid-root copy of cat planted where the sandbox can run it gives no privilege
    planted = os.path.join(scratch, "cat")
    shutil.copy("/bin/cat", planted)
    os.chown(planted, 0, 0)
    os.chmod(planted, 0o4755)
    for ro in (True, False):
        r = run(["/mnt/cat", "/etc/shadow"], binds=[(scratch, "/mnt", ro)], capture_output=True, timeout=60)
        assert r.returncode == 1 and b"Permission denied" in r.stderr and not r.stdout, r


@needs_root
def test_keep_host_root_is_the_old_behaviour_with_a_warning(scratch: str, capfd) -> None:
    r = run(["/bin/sh", "-c", "head -c1 /etc/shadow >/dev/null && echo x > /mnt/rootfile"],
            binds=[(scratch, "/mnt", False)], keep_host_root=True, timeout=60)
    assert r.ok and os.stat(os.path.join(scratch, "rootfile")).st_uid == 0
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "warning: --keep-host-root" in err


# -- item 5: --profile python holds before any module is imported ---------------------------------

def _bootstrap_imports() -> list[str]:
    code = ("import ctypes, struct, runpy, site, sys; print(' '.join(sorted({m.split('.')[0] for m in sys.modules} "
            "- set(sys.builtin_module_names))))")
    out = subprocess.run([SYSTEM_PY, "-I", "-S", "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.split()


PLANTED = """
with open("/proc/self/status") as _f:
    _st = dict(l.split(":", 1) for l in _f.read().splitlines() if l.startswith("Seccomp"))
with open("/mnt/markers/%s-" + __name__, "w") as _f:
    _f.write(_st.get("Seccomp_filters", "0").strip())
"""


def test_python_profile_planted_modules_run_only_under_the_filter(scratch: str) -> None:
    """A module for every name the bootstrap imports, in the working directory (a writable bind),
    in PYTHONPATH and in a writable bind on the path: none runs before the filter holds."""
    names = _bootstrap_imports()
    assert "ctypes" in names and "runpy" in names
    os.mkdir(os.path.join(scratch, "markers"))
    for where in ("cwd", "pp"):
        d = os.path.join(scratch, where)
        os.makedirs(d, exist_ok=True)
        for n in names:
            with open(os.path.join(d, n + ".py"), "w") as f:
                f.write(PLANTED % where)
    for d, _, _files in os.walk(scratch):
        os.chmod(d, 0o777)
    job = ("with open('/proc/self/status') as f: st = dict(l.split(':', 1) for l in f.read().splitlines() "
           "if l.startswith('Seccomp'))\nimport posix\ntry:\n    posix.execv('/bin/true', ['true'])\n"
           "except OSError as e:\n    print(st['Seccomp'].strip(), st['Seccomp_filters'].strip(), e.errno)\n")
    r = run([SYSTEM_PY, "-c", job], profile="python", binds=[(scratch, "/mnt", False)], cwd="/mnt/cwd",
            env={"PYTHONPATH": "/mnt/pp"}, capture_output=True, timeout=60)
    assert r.ok, r.stderr
    mode, count, err = r.stdout.split()
    assert mode == b"2" and err == b"13"                                  # filtered, and exec refused (EACCES)
    markers = {m: open(os.path.join(scratch, "markers", m)).read() for m in os.listdir(os.path.join(scratch, "markers"))}
    assert all(v == count.decode() for v in markers.values()), markers    # whatever ran, ran under the filter


def test_python_profile_refuses_a_writable_standard_library(scratch: str) -> None:
    import sysconfig

    dynload = subprocess.run([SYSTEM_PY, "-I", "-S", "-c", "import sys; print([p for p in sys.path if "
                              "p.endswith('lib-dynload')][0])"], capture_output=True, text=True, timeout=60).stdout.strip()
    assert sysconfig and dynload.startswith("/")
    r = run([SYSTEM_PY, "-c", "print('ran')"], profile="python", binds=[(scratch, dynload, False)],
            capture_output=True, timeout=60)
    assert r.returncode == 126 and b"ran" not in r.stdout and b"writable from the sandbox" in r.stderr, r


# -- item 6: the filter cache cannot be poisoned ---------------------------------------------------

MOD = ("uname:EACCES",)  # a modified built-in: compiled, cached on disk


def _uname_errno(**options) -> str:
    r = run([SYSTEM_PY, "-c", "import os\ntry:\n os.uname(); print('ok')\nexcept OSError as e: print(e.errno)"],
            capture_output=True, timeout=60, deny=MOD, **options)
    assert r.ok, r.stderr
    return r.stdout.decode().strip()


@pytest.fixture
def cache_home(scratch: str, monkeypatch):
    home = os.path.join(scratch, "cache")
    os.mkdir(home, 0o700)
    monkeypatch.setenv("XDG_CACHE_HOME", home)
    filters.clear_cache()
    yield home
    filters.clear_cache()


@x86_only
def test_cache_is_masked_in_every_view(cache_home: str) -> None:
    assert _uname_errno() == "13"
    jail = os.path.join(cache_home, "sysgate", "jail")
    (entry,) = os.listdir(jail)
    names = [f"list:{cache_home}/sysgate", f"write:{jail}/{entry}", "list:/mnt/sysgate", f"write:/mnt/sysgate/jail/{entry}",
             "write:/mnt/sysgate/key", "write:/mnt/other"]
    got = _probe(names, {"binds": [(cache_home, "/mnt", False)], "keep_host_root": ROOT})
    assert {k: outcome(got[k]) for k in names} == {
        f"list:{cache_home}/sysgate": "ok", f"write:{jail}/{entry}": "ENOENT",   # an empty mask over the root view's
        "list:/mnt/sysgate": "ok", f"write:/mnt/sysgate/jail/{entry}": "ENOENT",   # and over the writable bind's
        "write:/mnt/sysgate/key": "EROFS", "write:/mnt/other": "ok"}
    assert got[f"list:{cache_home}/sysgate"] == {"ok": []} and got["list:/mnt/sysgate"] == {"ok": []}


def test_forged_cache_entry_is_not_loaded(cache_home: str) -> None:
    """An allow-all program written over the entry, with the digest the old layout used: ignored."""
    import hashlib

    from sysgate.compiler import compile_policy
    from sysgate.policy import ALLOW, Policy

    assert _uname_errno() == "13"
    jail = os.path.join(cache_home, "sysgate", "jail")
    (entry,) = os.listdir(jail)
    key = entry[:-4]
    data = compile_policy(Policy(ALLOW, ())).to_bytes()
    for magic in (b"sysgate-bpf-1\n", filters._MAGIC):
        forged = magic + hashlib.sha256(key.encode() + b"\0" + b"\1" + data).digest() + b"\1" + data
        with open(os.path.join(jail, entry), "wb") as f:
            f.write(forged)
        filters.clear_cache()
        assert _uname_errno() == "13"                       # the kernel still refuses uname


@needs_root
def test_root_never_follows_links_in_a_users_cache(scratch: str, monkeypatch) -> None:
    """XDG_CACHE_HOME of another user, with sysgate/ a link to a victim directory: nothing is written."""
    user_cache = os.path.join(scratch, "usercache")
    victim = os.path.join(scratch, "victim")
    os.mkdir(user_cache)
    os.mkdir(victim)
    os.symlink(victim, os.path.join(user_cache, "sysgate"))
    os.chown(user_cache, 65534, 65534)
    monkeypatch.setenv("XDG_CACHE_HOME", user_cache)
    filters.clear_cache()
    assert _uname_errno() == "13"
    assert os.listdir(victim) == [] and os.path.islink(os.path.join(user_cache, "sysgate"))
    # our own base, but a link in it: not followed either
    os.chown(user_cache, 0, 0)
    filters.clear_cache()
    assert _uname_errno() == "13" and os.listdir(victim) == []
    filters.clear_cache()


# -- item 7: symbolic links planted in binds -------------------------------------------------------

@pytest.fixture
def planted(scratch: str):
    """A writable bind source where a previous run planted links, and a victim directory on the host."""
    w, victim = os.path.join(scratch, "w"), os.path.join(scratch, "victim")
    for d in (w, victim, os.path.join(w, "real")):
        os.mkdir(d)
        os.chmod(d, 0o777)
    os.symlink(victim, os.path.join(w, "abs"))
    os.symlink("../victim", os.path.join(w, "rel"))
    with open(os.path.join(scratch, "src"), "w") as f:
        f.write("data")
    return scratch, w, victim


@pytest.mark.parametrize("link", ["abs", "rel"])
@pytest.mark.parametrize("depth", [0, 1, 2])
def test_mount_targets_never_follow_planted_links(planted, link: str, depth: int) -> None:
    """A link at each component of a target under a writable bind: refused, nothing made on the host."""
    scratch, w, victim = planted
    tail = "/".join(["d"] * depth)
    parts = ["/mnt", link] + ([tail] if tail else [])
    dst = "/".join(parts)
    for extra in ({"binds": [(w, "/mnt", False), (os.path.join(scratch, "src"), dst + "/f", True)]},
                  {"binds": [(w, "/mnt", False)], "tmpfs": [dst + "/t"]},
                  {"binds": [(w, "/mnt", False), (os.path.join(scratch, "w", "real"), dst, True)]}):
        with pytest.raises(SandboxError, match="symbolic link|mount point does not exist"):
            run(["/bin/true"], timeout=60, **extra)
        assert os.listdir(victim) == []


def test_mount_points_are_made_only_in_the_sandboxs_own_tmpfs(planted) -> None:
    scratch, w, victim = planted
    with pytest.raises(SandboxError, match="mount point does not exist"):
        run(["/bin/true"], binds=[(w, "/mnt", False), (os.path.join(scratch, "src"), "/mnt/new/f", True)], timeout=60)
    assert sorted(os.listdir(w)) == ["abs", "real", "rel"]      # nothing made in the host directory
    r = run(["/bin/cat", "/mnt/a/b/f"], tmpfs=["/mnt"], binds=[(os.path.join(scratch, "src"), "/mnt/a/b/f", True)],
            capture_output=True, timeout=60)
    assert r.ok and r.stdout == b"data"                          # inside a tmpfs of its own: made there
    with pytest.raises(SandboxError, match="mount point does not exist"):
        run(["/bin/true"], tmpfs=["/usr/sysgate-new"], timeout=60)   # never on the host's root


def test_bind_sources_are_resolved_once_and_never_a_link(planted) -> None:
    scratch, w, victim = planted
    for src in ("abs", "rel", "abs/"):
        with pytest.raises(ValueError, match="is a symbolic link"):
            run(["/bin/true"], binds=[(os.path.join(w, src), "/x", False)])
    assert os.listdir(victim) == []


@pytest.mark.parametrize("planted", ["dev", "proc", "tmp"])
def test_rootfs_with_planted_links(scratch: str, planted: str) -> None:
    """A --rootfs a previous run could write: a link where the jail mounts /dev, /proc or /tmp, or in a
    --tmpfs target, is refused, and nothing is mounted or made where it points."""
    root = os.path.join(scratch, "root")
    victim = os.path.join(scratch, "victim")
    os.mkdir(victim)
    for d in ("dev", "proc", "tmp", "usr"):
        if d != planted:
            os.makedirs(os.path.join(root, d))
    os.symlink(victim, os.path.join(root, planted))
    with pytest.raises(ValueError, match=f"no /{planted} directory to mount on"):
        run(["/bin/true"], rootfs=root)
    os.unlink(os.path.join(root, planted))
    os.mkdir(os.path.join(root, planted))
    os.makedirs(os.path.join(root, "var"))
    os.symlink(victim, os.path.join(root, "var", "tmp"))   # a hidden tree that is a link: left alone
    with pytest.raises(SandboxError, match="symbolic link"):
        run(["/bin/true"], rootfs=root, tmpfs=["/var/tmp/x"], binds=["/usr"], timeout=60)
    assert os.listdir(victim) == []


# -- item 10: leases and terminal ioctls -----------------------------------------------------------

OVERLAY = ["tiocsti", "tiocsti_hi", "tioclinux", "setlease"]


@x86_only
@pytest.mark.parametrize("who", CALLERS)
def test_builtins_refuse_leases_and_terminal_injection(who: str) -> None:
    from sysgate.profiles import builtin_path

    got = probe_as(who, OVERLAY)
    assert {k: outcome(got[k]) for k in OVERLAY} == {k: "EPERM" for k in OVERLAY}
    # moby's file alone lets them through to the kernel (no terminal on /dev/null; a lease on a file
    # of the read-only view that is not ours)
    got = probe_as(who, OVERLAY, profile=builtin_path("docker-default"))
    assert {k: outcome(got[k]) for k in OVERLAY} == {"tiocsti": "ENOTTY", "tiocsti_hi": "ENOTTY",
                                                     "tioclinux": "ENOTTY", "setlease": "EACCES"}


def test_python_profile_refuses_them_too() -> None:
    code = ("import fcntl, errno\nout = []\nfor cmd in (0x5412, 0x541C):\n    try:\n"
            "        fcntl.ioctl(0, cmd, b'x'); out.append('ok')\n    except OSError as e:\n"
            "        out.append(errno.errorcode[e.errno])\nfd = open('/etc/hostname')\ntry:\n"
            "    fcntl.fcntl(fd, 1024, 0); out.append('ok')\nexcept OSError as e:\n"
            "    out.append(errno.errorcode[e.errno])\nprint(*out)")
    r = run([SYSTEM_PY, "-c", code], profile="python", capture_output=True, stdin=subprocess.DEVNULL, timeout=60)
    assert r.ok and r.stdout.split() == [b"EPERM", b"EPERM", b"EPERM"], (r.stdout, r.stderr)


# -- item 11: bounded scratch ------------------------------------------------------------------------

def test_scratch_tmpfs_are_bounded_by_tmp_size() -> None:
    code = ("import errno\nfor p in ('/tmp', '/dev/shm', '/var/tmp', '/run'):\n"
            "    try:\n        with open(p + '/big', 'wb') as f:\n"
            "            for _ in range(3):\n                f.write(bytes(1 << 20)); f.flush()\n"
            "        print('ok')\n    except OSError as e:\n        print(errno.errorcode[e.errno])\n")
    r = run([SYSTEM_PY, "-c", code], tmp_size="1M", capture_output=True, timeout=60)
    assert r.ok and r.stdout.split() == [b"ENOSPC"] * 4, (r.stdout, r.stderr)


@needs_root
def test_scratch_is_charged_to_the_memory_cgroup() -> None:
    code = "with open('/dev/shm/big', 'wb') as f:\n    for _ in range(96):\n        f.write(bytes(1 << 20))\n"
    r = run([SYSTEM_PY, "-c", code], memory="48M", capture_output=True, timeout=60)
    assert r.status == "oom", (r.status, r.stderr)


# -- item 12: cgroups of a killed sysgate are removed by a later run -----------------------------------

@needs_root
def test_leftover_cgroups_of_a_sigkilled_run_are_removed() -> None:
    before = set(sysgate_cgroups())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    p = subprocess.Popen([sys.executable, "-m", "sysgate", "run", "--memory", "64M", "--", "/bin/sleep", "30"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        mine: set[str] = set()
        while not mine and time.monotonic() < deadline:
            mine = {g for g in set(sysgate_cgroups()) - before if f"sysgate-{p.pid}-" in g}
            time.sleep(0.02)
        assert mine, "the run made no cgroup"
        (group,) = mine
        leave_deliberately(group)  # no other test run on this machine counts it as its leftover
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the command runs in it
            with open(os.path.join(group, "cgroup.procs")) as f:
                if f.read().split():
                    break
            time.sleep(0.02)
        p.send_signal(signal.SIGKILL)
    finally:
        p.wait(30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # the sandbox dies with it (init's parent-death signal)
        with open(os.path.join(group, "cgroup.procs")) as f:
            if not f.read().split():
                break
        time.sleep(0.02)
    assert os.path.isdir(group)                                # left behind: nobody could remove it
    assert run(["/bin/true"], memory="64M", timeout=60).ok     # the next run with a cgroup cleans up
    assert not os.path.exists(group)


def test_live_owners_groups_are_kept(tmp_path) -> None:
    from sysgate.jail import cgroups

    mine = tmp_path / f"sysgate-{cgroups.owner_tag()}-0"
    reused = tmp_path / f"sysgate-{os.getpid()}-1-0"           # our pid, another start time: a dead owner
    old = tmp_path / "sysgate-1-0"                             # old layout: never guessed at
    other = tmp_path / "not-ours"
    for d in (mine, reused, old, other):
        d.mkdir()
    assert cgroups.reap_leftovers(str(tmp_path)) == [reused.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, old.name, other.name])


def test_mode_bits_of_the_shipped_files() -> None:
    for stem in filters.PRECOMPILED:
        st = os.stat(filters.precompiled_path(stem, "x86_64"))
        assert stat.S_ISREG(st.st_mode) and not st.st_mode & 0o022
