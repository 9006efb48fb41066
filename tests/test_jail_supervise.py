"""The sandbox's supervisor (jail/supervisor.py): connect mediation, --allow-path, --log-denials.

Kernel-judged: the commands run in real sandboxes and report what their syscalls returned.
Race and multiplexer attacks are small static C programs, compiled here (skipped without gcc).
"""
from __future__ import annotations

import errno
import os
import shutil
import socket
import subprocess
import sys

import pytest

from jail_support import PY, ROOT, needs_userns, scratch_dir
from sysgate.jail import run
from sysgate.kernel.seccomp import features

pytestmark = [needs_userns,
              pytest.mark.skipif(not features().user_notif, reason="kernel without seccomp user notification")]

GCC = shutil.which("gcc")
needs_gcc = pytest.mark.skipif(GCC is None, reason="needs gcc")

CONNECT = r"""
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p)
        print(p, 0)
    except OSError as e:
        print(p, e.errno)
"""


def _listeners(paths):
    socks = []
    for p in paths:
        os.makedirs(os.path.dirname(p), exist_ok=True)
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass
        s = socket.socket(socket.AF_UNIX)
        s.bind(p)
        os.chmod(p, 0o777)
        s.listen(16)
        socks.append(s)
    return socks


def _connects(paths, **opts):
    res = run([PY, "-c", CONNECT, *paths], capture_output=True, timeout=60, **opts)
    assert res.returncode == 0, res.stderr
    return {p: int(e) for p, e in (line.rsplit(" ", 1) for line in res.stdout.decode().splitlines())}


@pytest.fixture
def planted():
    """Listeners where daemons keep theirs; root can plant in the system trees, anyone in $HOME."""
    tag = f"sysgate-test-{os.getpid()}"
    home = scratch_dir(".sysgate-sock-")
    paths = [os.path.join(home, "agent.sock")]
    dirs = [home]
    if ROOT:
        for d in (f"/var/lib/{tag}", f"/srv/{tag}", f"/root/{tag}", f"/run/{tag}", f"/var/tmp/{tag}",
                  f"/home/{tag}"):
            paths.append(os.path.join(d, "daemon.sock"))
            dirs.append(d)
    socks = _listeners(paths)
    yield paths
    for s in socks:
        s.close()
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)


def test_no_host_pathname_socket_is_connectable_by_default(planted):
    got = _connects(planted)
    # EACCES where the socket is visible (refused by the supervisor), ENOENT where a private mount hides it
    assert all(got[p] in (errno.EACCES, errno.ENOENT) for p in planted), got
    assert any(got[p] == errno.EACCES for p in planted), got


def test_allow_socket_opts_one_in(planted):
    chosen = planted[0]
    got = _connects(planted, allow_sockets=(chosen,))
    assert got[chosen] == 0
    assert all(got[p] != 0 for p in planted if p != chosen), got


def test_connect_through_a_symlink_is_judged_on_the_socket_itself(planted):
    """A link inside the sandbox's view to an allowed socket works; a link to a refused one does not."""
    home_sock = planted[0]
    d = os.path.dirname(home_sock)
    os.symlink(home_sock, os.path.join(d, "link-ok"))
    code = CONNECT
    got = _connects([os.path.join(d, "link-ok")], allow_sockets=(home_sock,))
    assert got[os.path.join(d, "link-ok")] == 0
    got = _connects([os.path.join(d, "link-ok")])
    assert got[os.path.join(d, "link-ok")] == errno.EACCES
    del code


def test_without_mediation_the_socket_is_reachable(planted):
    """The control: the refusal above is the supervisor's, not the mount layout's."""
    got = _connects(planted[:1], mediate=False)
    assert got[planted[0]] == 0


@pytest.mark.skipif(not ROOT, reason="a root supervisor's own rights are what must not leak")
def test_allowed_socket_behind_a_directory_the_sandbox_cannot_search():
    """--allow-socket opens the mediation, not the file permissions: the supervisor resolves the
    path with the command's ids, so a socket under a root-only directory stays out of reach of a
    root caller's sandbox (its unprivileged host id), as it is without the supervisor."""
    top = scratch_dir(".sysgate-priv-")
    try:
        os.chmod(top, 0o700)
        path = os.path.join(top, "agent.sock")
        socks = _listeners([path])
        try:
            assert _connects([path], allow_sockets=(path,))[path] == errno.EACCES
            assert _connects([path], mediate=False)[path] == errno.EACCES  # the kernel's own answer
            os.chmod(top, 0o711)  # the control: searchable, the same socket connects
            assert _connects([path], allow_sockets=(path,))[path] == 0
        finally:
            for s_ in socks:
                s_.close()
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_inet_connect_is_free_unless_allow_connect_lists_some():
    code = r"""
import socket
srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(4)
port = srv.getsockname()[1]
for target in (port, port + 1 if port < 65535 else port - 1):
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", target)); print(target == port, 0)
    except OSError as e:
        print(target == port, e.errno)
"""
    res = run([PY, "-c", code], capture_output=True, timeout=60)
    lines = res.stdout.decode().split()
    assert lines[:2] == ["True", "0"] and lines[3] == str(errno.ECONNREFUSED), res.stdout
    res = run([PY, "-c", code], capture_output=True, timeout=60, allow_connect=("10.9.9.9:1",))
    lines = res.stdout.decode().split()
    assert lines[:2] == ["True", str(errno.EACCES)], res.stdout


ADDRESS_FORMS = r"""
import ctypes, errno, json, socket, struct
libc = ctypes.CDLL(None, use_errno=True)
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
rx.setblocking(False)
port = rx.getsockname()[1]
def raw_sendto(sock, addr):
    if libc.sendto(sock.fileno(), b"x", 1, 0, addr, len(addr)) < 0:
        return ctypes.get_errno()
    return 0
def sin(family, p):  # struct sockaddr_in with any family field
    return struct.pack("=H", family) + struct.pack(">H", p) + socket.inet_aton("127.0.0.1") + bytes(8)
res = {}
s4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
res["v4"] = raw_sendto(s4, sin(socket.AF_INET, port))
res["unspec_on_v4"] = raw_sendto(s4, sin(0, port))
res["v4_on_v6"] = raw_sendto(s6, sin(socket.AF_INET, port))
try:
    s6.sendto(b"x", ("::ffff:127.0.0.1", port)); res["v4mapped"] = 0
except OSError as e:
    res["v4mapped"] = e.errno
c6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
try:
    c6.connect(("::ffff:127.0.0.1", port)); c6.send(b"x"); res["v4mapped_connect"] = 0
except OSError as e:
    res["v4mapped_connect"] = e.errno
res["allowed_v4"] = raw_sendto(s4, sin(socket.AF_INET, 53))
try:
    s6.sendto(b"x", ("::ffff:127.0.0.1", 53)); res["allowed_v4mapped"] = 0
except OSError as e:
    res["allowed_v4mapped"] = e.errno
got = 0
while True:
    try:
        rx.recv(16); got += 1
    except BlockingIOError:
        break
res["received"] = got
print(json.dumps(res))
"""


def test_allow_connect_judges_an_address_as_the_kernel_reads_it():
    """--allow-connect 127.0.0.1:53 was bypassed with an AF_UNSPEC address on an IPv4 socket and an
    IPv4 address on an IPv6 socket (only an address whose family field was the socket's was
    judged); a v4-mapped IPv6 address is the IPv4 one. Nothing reaches the listener."""
    import json

    res = run([PY, "-I", "-S", "-c", ADDRESS_FORMS], capture_output=True, timeout=60, allow_connect=("127.0.0.1:53",))
    assert res.ok, res.stderr
    got = json.loads(res.stdout)
    assert got == {"v4": errno.EACCES, "unspec_on_v4": errno.EACCES, "v4_on_v6": errno.EACCES,
                   "v4mapped": errno.EACCES, "v4mapped_connect": errno.EACCES, "allowed_v4": 0,
                   "allowed_v4mapped": 0, "received": 0}, got


REDIRECT = r"""
import os, socket, sys
def connect(p):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(p); return 0
    except OSError as e:
        return e.errno
out = [connect("/run/app/app.sock"), connect("/mnt/daemon.sock")]
os.rename("/run/app", "/run/app.old")          # the bind of the allowed socket moves with it
os.mkdir("/run/app")
os.symlink("/mnt/daemon.sock", "/run/app/app.sock")
out += [connect("/run/app/app.sock"), connect("/run/app.old/app.sock")]
print(*out)
"""


def test_an_allowed_socket_name_cannot_be_redirected_by_the_sandbox():
    """--allow-socket /run/app/app.sock: the command renamed /run/app away (its /run is its own)
    and planted a link there to another socket it could see: the allowed name, looked up again,
    led to it and the connect was allowed."""
    tmp = scratch_dir(".sysgate-redirect-")
    try:
        app, daemon = os.path.join(tmp, "app.sock"), os.path.join(tmp, "daemon.sock")
        socks = _listeners([app, daemon])
        res = run([PY, "-I", "-S", "-c", REDIRECT], capture_output=True, timeout=60,
                  binds=[(app, "/run/app/app.sock", True), (tmp, "/mnt", True)], allow_sockets=["/run/app/app.sock"])
        for s_ in socks:
            s_.close()
        assert res.ok, res.stderr
        # after the swap the allowed name leads nowhere (a link is on it): both routes are refused
        assert res.stdout.split() == [b"0"] + [str(errno.EACCES).encode()] * 3, res.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


SOCKETCALL_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <errno.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(int argc, char **argv) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char *low = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_32BIT, -1, 0);
    struct sockaddr_un *sun = (struct sockaddr_un *)(low + 64);
    sun->sun_family = AF_UNIX;
    strncpy(sun->sun_path, argv[1], sizeof sun->sun_path - 1);
    uint32_t *args = (uint32_t *)low;
    args[0] = fd; args[1] = (uint32_t)(uintptr_t)sun; args[2] = sizeof *sun;
    long ret;
    /* socketcall(SYS_CONNECT, args) through the 32-bit entry point */
    __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(102), "b"(3), "c"((uint32_t)(uintptr_t)args) : "memory");
    printf("%ld\n", ret);
    return 0;
}
"""


def _compile(tmp, name, src, *extra):
    c = os.path.join(tmp, name + ".c")
    with open(c, "w") as f:
        f.write(src)
    exe = os.path.join(tmp, name)
    r = subprocess.run([GCC, "-O2", "-static", "-o", exe, c, *extra], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        pytest.skip(f"cannot build a static test program: {r.stderr.strip().splitlines()[-1:]}")
    os.chmod(tmp, 0o755)
    return exe


@needs_gcc
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="int 0x80 is x86")
def test_socketcall_through_int80_does_not_bypass_the_mediation(planted):
    tmp = scratch_dir(".sysgate-sc-")
    try:
        exe = _compile(tmp, "sc", SOCKETCALL_C)
        target = planted[0]
        res = run([exe, target], capture_output=True, timeout=60)
        ret = int(res.stdout)
        assert ret in (-errno.EACCES, -errno.EPERM, -errno.ENOSYS), ret  # refused (by us, or the profile)
        allowed = run([exe, target], capture_output=True, timeout=60, allow_sockets=(target,))
        if ret == -errno.EACCES:  # the profile lets socketcall through: then we emulate it, and allow works
            assert int(allowed.stdout) == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


RACE_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static char path[64];
static volatile int stop;
static void *flip(void *a) {
    (void)a;
    while (!stop) { memcpy(path, "/mnt/data/secret.txt", 21);
        __asm__ volatile("" ::: "memory");  /* keep both stores */
        memcpy(path, "/mnt/data/public.txt", 21);
        __asm__ volatile("" ::: "memory"); }
    return NULL;
}
int main(int argc, char **argv) {
    /* no argument: 1000 opens (each one notified, under --allow-path: ~0.3 ms, 5 ms on a loaded
       machine); "until": open until both files were read (at most 30 s), so that the outcome does
       not depend on whether the flippers got a CPU during a short loop of unnotified opens */
    int until = argc > 1;
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pthread_t t[2];
    memcpy(path, "/mnt/data/public.txt", 21);
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, flip, NULL);
    int pub = 0, sec = 0, denied = 0;
    for (int i = 0; until || i < 1000; i++) {
        if (until && (i & 255) == 0) {
            if (pub > 0 && sec > 0) break;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - t0.tv_sec > 30) break;
            sched_yield();
        }
        int fd = open(path, O_RDONLY);
        if (fd < 0) { denied++; continue; }
        char b[16] = {0};
        read(fd, b, 6);
        if (!memcmp(b, "SECRET", 6)) sec++; else pub++;
        close(fd);
    }
    stop = 1;
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf("%d %d %d\n", pub, sec, denied);
    return 0;
}
"""


@needs_gcc
def test_racing_threads_never_open_the_denied_file():
    """Two threads rewrite the path between check and use; the supervisor reads it once and opens
    what it judged, so the secret is never read, while both outcomes (open, refused) do occur."""
    tmp = scratch_dir(".sysgate-race-")
    try:
        _compile(tmp, "race", RACE_C, "-pthread")
        data = os.path.join(tmp, "data")
        os.mkdir(data)
        with open(os.path.join(data, "public.txt"), "w") as f:
            f.write("PUBLIC")
        with open(os.path.join(data, "secret.txt"), "w") as f:
            f.write("SECRET")
        os.chmod(data, 0o755)
        for n in ("public.txt", "secret.txt"):
            os.chmod(os.path.join(data, n), 0o644)
        res = run(["/mnt/race"], capture_output=True, timeout=120, binds=[(tmp, "/mnt")],
                  allow_paths=("/mnt/data/public.txt",))
        pub, sec, denied = map(int, res.stdout.split())
        assert sec == 0, (pub, sec, denied)
        assert pub > 0 and denied > 0, (pub, sec, denied)
        # the control: without --allow-path the same program does read the secret (it opens until
        # it has, at most 30 s: a short loop may never see the flippers run on a loaded machine)
        res = run(["/mnt/race", "until"], capture_output=True, timeout=120, binds=[(tmp, "/mnt")])
        pub, sec, denied = map(int, res.stdout.split())
        assert sec > 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_allow_path_read_only_and_read_write():
    tmp = scratch_dir(".sysgate-ap-")
    try:
        os.chmod(tmp, 0o777)
        code = r"""
import os, sys
def tryopen(p, fl):
    try:
        os.close(os.open(p, fl, 0o644)); return 0
    except OSError as e:
        return e.errno
print(tryopen("/mnt/new.txt", os.O_WRONLY | os.O_CREAT), tryopen("/opt/x", os.O_RDONLY),
      tryopen("/opt/x", os.O_WRONLY), tryopen("/etc/hostname", os.O_RDONLY))
"""
        with open(os.path.join(tmp, "x"), "w") as f:
            f.write("x")
        os.chmod(os.path.join(tmp, "x"), 0o666)
        w = os.path.join(tmp, "w")
        os.mkdir(w)
        os.chmod(w, 0o777)
        res = run([PY, "-I", "-S", "-c", code], capture_output=True, timeout=60,
                  binds=[(w, "/mnt", False), (tmp, "/opt", False)],
                  allow_paths=("/usr", "/lib", "/lib64", "/etc/ld.so.cache", "/proc", "/dev", "/mnt:rw", "/opt:ro",
                               os.path.dirname(os.path.dirname(os.path.realpath(PY)))))
        assert res.stdout.split() == [b"0", b"0", str(errno.EACCES).encode(), str(errno.EACCES).encode()], res
        assert os.path.exists(os.path.join(w, "new.txt"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_log_denials_is_complete_under_10000_denials():
    code = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
for i in range(10000):
    libc.syscall(163, ctypes.c_long(i))   # acct(2): docker-default refuses it with EPERM
"""
    res = run([PY, "-c", code], capture_output=True, timeout=120, log_denials=True)
    assert res.returncode == 0, res.stderr
    acct = [d for d in res.denials if d.get("syscall") == "acct"]
    assert sorted(int(d["args"][0], 16) for d in acct) == list(range(10000))
    assert all(d["errno"] == "EPERM" and d["arch"] == "x86_64" for d in acct) or os.uname().machine != "x86_64"
    assert res.stderr.count(b"sysgate: denied: acct(") == 0  # the supervisor reports on sysgate's stderr, not the command's


def test_cli_log_denials_json_and_bad_options(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    r = subprocess.run([sys.executable, "-m", "sysgate", "run", "--log-denials", "--json", "--", PY, "-c",
                        "import ctypes; ctypes.CDLL(None).syscall(163, 0)"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert "sysgate: denied: acct(NULL) [" in r.stderr, r.stderr
    import json

    d = json.loads(r.stdout.strip().splitlines()[-1])
    assert any(x.get("syscall") == "acct" for x in d["denials"])
    r = subprocess.run([sys.executable, "-m", "sysgate", "run", "--log-denials", "--", "sh", "-c",
                        "mount -t tmpfs none /mnt 2>/dev/null"], capture_output=True, text=True, timeout=60, env=env)
    assert 'sysgate: denied: mount("none", "/mnt", "tmpfs", 0x' in r.stderr, r.stderr
    r = subprocess.run([sys.executable, "-m", "sysgate", "run", "--allow-path", "relative", "--", "true"],
                       capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "--allow-path" in r.stderr
    r = subprocess.run([sys.executable, "-m", "sysgate", "run", "--ask", "--", "true"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60, env=env, start_new_session=True)
    assert r.returncode == 2 and "--ask needs a terminal" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_the_listener_never_stays_inside():
    """No fd of the sandboxed command is a seccomp listener (anon_inode:seccomp notify)."""
    code = "import os\nprint([os.readlink('/proc/self/fd/'+f) for f in os.listdir('/proc/self/fd')])"
    res = run([PY, "-c", code], capture_output=True, timeout=60, allow_sockets=("/nonexistent",))
    assert b"seccomp" not in res.stdout, res.stdout
    res = run([PY, "-c", code], capture_output=True, timeout=60, log_denials=True)
    assert b"seccomp" not in res.stdout, res.stdout


@pytest.mark.skipif(not ROOT, reason="the credential drop is for root supervisors")
def test_a_root_supervisor_connects_with_the_targets_ids(tmp_path):
    """SO_PEERCRED at the daemon names the target's uid, never the supervisor's 0; and a socket
    the target's uid may not write stays refused."""
    from sysgate.jail.mediation import _connect_as

    path = str(tmp_path / "d.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(4)
    os.chmod(tmp_path, 0o755)
    r, w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the "target": an unprivileged process that just waits
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        os.write(ready_w, b"r")
        os.read(r, 1)
        os._exit(0)
    os.close(ready_w)
    assert os.read(ready_r, 1) == b"r"
    try:
        import struct

        os.chmod(path, 0o777)
        opath = os.open(path, os.O_PATH)  # as the supervisor does: the judged inode, through a magic link
        addr = b"\x01\x00" + b"/proc/self/fd/%d" % opath + b"\0"
        c = socket.socket(socket.AF_UNIX)
        assert _connect_as(pid, c.fileno(), addr) == 0
        conn, _ = srv.accept()
        _, uid, gid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
        assert (uid, gid) == (65534, 65534)
        os.chmod(path, 0o700)  # root's only: the target's uid may not connect
        c2 = socket.socket(socket.AF_UNIX)
        assert _connect_as(pid, c2.fileno(), addr) == -errno.EACCES
        assert os.geteuid() == 0  # the process kept its ids: only the helper thread changed
    finally:
        os.write(w, b"x")
        os.waitpid(pid, 0)


def _ask_run(answer: bytes) -> tuple[int, bytes]:
    """``sysgate run --ask`` on a pseudo-terminal; the command unshares a user namespace, which
    docker-default refuses (EPERM) but which works without privileges if allowed."""
    import pty
    import select
    import time

    code = ("import ctypes,sys; l=ctypes.CDLL(None,use_errno=True); "
            "sys.exit(0 if l.unshare(0x10000000)==0 else 10+ctypes.get_errno())")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(sys.executable, [sys.executable, "-m", "sysgate", "run", "--ask", "--", PY, "-c", code], env)
        finally:
            os._exit(127)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    reaped = False
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if r:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                out += chunk
                if not answered and b"[y/N]" in out:
                    os.write(fd, answer + b"\n")
                    answered = True
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return os.waitstatus_to_exitcode(st), out
        while time.monotonic() < deadline:  # the terminal hung up: sysgate is exiting
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                return os.waitstatus_to_exitcode(st), out
            time.sleep(0.01)
        raise AssertionError(f"sysgate run --ask did not finish: {out!r}")
    finally:
        if not reaped:  # ours and not reaped yet: the pid cannot have been reused
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


def test_ask_allows_or_denies_on_the_terminal():
    code, out = _ask_run(b"y")
    assert b"profile denies unshare(" in out and code == 0, out
    code, out = _ask_run(b"n")
    assert code == 10 + errno.EPERM, out
