"""Live tests: filters loaded through ``sysgate.compat.seccomp`` act on real syscalls.

Filters are only ever loaded in forked children. ``compat_live_scenarios.py`` runs the same
scenarios through Debian's libseccomp bindings and through sysgate's module (``import seccomp``
via the shim directory) and the outcomes must be identical: syscall results, signals, load
errors, a user-notification round trip and i386 calls (``int 0x80``) against the x86 part of a
filter. The other tests drive the module in-process (loading in ``forkrun`` children): the 2.6
notification API (explicit fd, ``notify_addfd``, ``CTL_WAITKILL``), attributes that reach the
kernel (no_new_privs, TSYNC), transactions, exports, the import hook, and an unchanged program
written for the bindings (``compat_app_example.py``) run through both import routes.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from forkrun import run, start
from sysgate.compat import install_import_hook, shim_path, uninstall_import_hook
from sysgate.compat import seccomp as S
from sysgate.kernel.syscall import nr, syscall

HERE = Path(__file__).resolve().parent
SYSTEM_PYTHON = "/usr/bin/python3"

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="scenarios use x86_64 syscall numbers")


def _has_libseccomp() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode == 0


def _shim_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([shim_path(), os.environ.get("PYTHONPATH", "")]))


def _scenarios(python: str, env: dict[str, str] | None = None) -> dict:
    r = subprocess.run([python, str(HERE / "compat_live_scenarios.py")], capture_output=True, text=True,
                       timeout=60, env=env, cwd="/")
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.mark.skipif(not _has_libseccomp(), reason="python3-seccomp not installed")
def test_scenarios_match_libseccomp() -> None:
    real = _scenarios(SYSTEM_PYTHON)
    ours = _scenarios(sys.executable, _shim_env())
    assert ours == real
    # and they are the outcomes the rules ask for (not two modules failing alike)
    assert real["errno"]["results"] == [-errno.EACCES, -errno.E2BIG, "fd", -errno.EDOM, 0, -errno.EAFNOSUPPORT,
                                        -errno.EIO, 0, -errno.ENOTTY, -errno.EBADF, -errno.ENOTTY]
    assert real["allowlist"]["results"] == [-errno.EBADF, -errno.EPERM, -errno.EPERM, 0o22, -errno.EPERM]
    for name in ("kill_process", "trap", "kill_thread_default", "bad_arch"):
        assert real[name]["signal"] == 31, name  # SIGSYS
    assert real["trace_log"]["results"] == [-errno.ENOSYS, os.getuid()]
    assert real["load_error"]["results"] == "RuntimeError: Library error (errno = -125)"
    assert real["notify"]["child"]["results"] == [4242, -errno.EROFS, 0o22, 7]
    # the x86 (i386) part of a filter, tried through int 0x80 where the kernel has ia32 emulation
    if "i386" not in real:
        pytest.skip("this kernel runs no i386 syscalls (no ia32 emulation)")
    r = real["i386"]["results"]
    assert r[:7] == [-errno.EAFNOSUPPORT,  # socketcall(SYS_SOCKET, ...): rewritten rule, arg0 test dropped
                     -errno.EFAULT,  # socketcall(SYS_BIND, NULL): not filtered, the kernel ran it
                     -errno.EAFNOSUPPORT, "fd",  # direct socket(2) keeps its domain test
                     -errno.E2BIG,  # dup(1): only the low word of (7 << 32) | 1 is compared
                     -errno.EDOM,  # umask(0o22) > (1 << 32): low words 0o22 > 0
                     "pid"]
    assert r[7:11] == [-errno.EAFNOSUPPORT, "fd", "fd", -errno.E2BIG]  # x86_64 compares all 64 bits
    assert r[11] >= 0 and r[12] == -errno.EDOM
    assert real["i386_bad_arch_kill"]["signal"] == 31
    assert real["i386_bad_arch_errno"]["results"] == [-errno.EPERM, -errno.EXDEV]


# -- in-process module, filters in forkrun children ------------------------------------------------

def _errno_child() -> list[int]:
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.ERRNO(errno.EXDEV), "getppid")
    f.add_rule(S.ERRNO(errno.EDOM), "dup", S.Arg(0, S.GE, 1000))
    f.add_rule(S.ERRNO(errno.ERANGE), "dup3", S.Arg(0, S.LT, 1000), S.Arg(2, S.MASKED_EQ, 0xFF, 0x2A))
    f.load()
    out = []
    for args in ((nr("getppid"),), (nr("dup"), 1500), (nr("dup"), 999), (nr("dup3"), 998, 999, 0x12A),
                 (nr("dup3"), 998, 999, 0x12B)):
        try:
            out.append(syscall(*args))
        except OSError as e:
            out.append(-e.errno)
    return out


def test_rules_act_in_child() -> None:
    assert run(_errno_child).unwrap() == [-errno.EXDEV, -errno.EDOM, -errno.EBADF, -errno.ERANGE, -errno.EINVAL]


def _status_field(name: str) -> str:
    for line in open("/proc/self/status"):
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def _nnp_child(nnp: int) -> tuple[str, str]:
    f = S.SyscallFilter(S.ALLOW)
    f.set_attr(S.Attr.CTL_NNP, nnp)
    f.add_rule(S.ERRNO(errno.EPERM), "getppid")
    f.load()
    return _status_field("NoNewPrivs"), _status_field("Seccomp")


def test_no_new_privs_attribute() -> None:
    if os.geteuid() != 0:
        pytest.skip("loading without no_new_privs needs CAP_SYS_ADMIN")
    assert run(_nnp_child, 1).unwrap() == ("1", "2")
    assert run(_nnp_child, 0).unwrap() == ("0", "2")


def _tsync_child(tsync: int) -> int:
    ready, go, done = threading.Event(), threading.Event(), []

    def other() -> None:
        ready.set()
        go.wait()
        try:
            done.append(syscall(nr("getppid")))
        except OSError as e:
            done.append(-e.errno)

    t = threading.Thread(target=other)
    t.start()
    ready.wait()
    f = S.SyscallFilter(S.ALLOW)
    f.set_attr(S.Attr.CTL_TSYNC, tsync)
    f.add_rule(S.ERRNO(errno.ENOLINK), "getppid")
    f.load()
    go.set()
    t.join()
    return done[0]


def test_tsync_attribute_filters_other_threads() -> None:
    assert run(_tsync_child, 1).unwrap() == -errno.ENOLINK
    assert run(_tsync_child, 0).unwrap() > 0  # the thread started before load is unfiltered


def _notify_target(sock: socket.socket) -> list[int]:
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.NOTIFY, "getppid")
    f.load()
    socket.send_fds(sock, [b"x"], [f.get_notify_fd()])
    out = []
    for _ in range(2):
        try:
            out.append(syscall(nr("getppid")))
        except OSError as e:
            out.append(-e.errno)
    return out


def test_notify_round_trip_with_fd() -> None:
    """libseccomp 2.6 API: the supervisor (this process, unfiltered) names the listener fd."""
    parent, child = socket.socketpair()
    with parent, child, start(_notify_target, child) as c:
        _, fds, _, _ = socket.recv_fds(parent, 4, 1)
        fd = fds[0]
        try:
            sup = S.SyscallFilter(S.ALLOW)
            n = sup.receive_notify(fd)
            assert (n.syscall, n.syscall_arch, n.pid) == (nr("getppid"), S.system_arch(), c.pid)
            sup.respond_notify(S.NotificationResponse(n, 31337, 0, 0), fd)
            n = sup.receive_notify(fd)
            r = S.NotificationResponse(n)
            r.error = -errno.ENOMSG
            sup.respond_notify(r, fd)
            assert c.wait(10).unwrap() == [31337, -errno.ENOMSG]
            with pytest.raises(RuntimeError, match=r"errno = -125"):
                sup.respond_notify(r, fd)  # already answered
        finally:
            os.close(fd)


def _addfd_target(sock: socket.socket) -> tuple[int, bytes, bytes, bool]:
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.NOTIFY, "getppid")
    f.load()
    socket.send_fds(sock, [b"x"], [f.get_notify_fd()])
    first = syscall(nr("getppid"))  # answered with the number of a new fd (ADDFD_FLAG_SEND)
    second = syscall(nr("getppid"))  # answered with 200, where the supervisor put a fd
    cloexec = bool(fcntl.fcntl(second, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)
    return first, os.read(first, 100), os.read(second, 100), cloexec


def test_notify_addfd() -> None:
    """libseccomp 2.6's notify_addfd(): the supervisor hands the target a file descriptor."""
    from sysgate.kernel import notify as N

    parent, child = socket.socketpair()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    os.write(w1, b"first")
    os.write(w2, b"second")
    with parent, child, start(_addfd_target, child) as c:
        _, fds, _, _ = socket.recv_fds(parent, 4, 1)
        fd = fds[0]
        try:
            sup = S.SyscallFilter(S.ALLOW)
            n = sup.receive_notify(fd)
            sent = sup.notify_addfd(S.NotificationAddfd(n, N.SECCOMP_ADDFD_FLAG_SEND, r1), fd)
            n = sup.receive_notify(fd)
            add = S.NotificationAddfd(n, 0, r2)
            add.flags, add.newfd, add.newfd_flags = N.SECCOMP_ADDFD_FLAG_SETFD, 200, os.O_CLOEXEC
            assert sup.notify_addfd(add, fd) == 200
            with pytest.raises(RuntimeError, match=r"errno = -125"):  # a bad fd: the kernel says EBADF
                sup.notify_addfd(S.NotificationAddfd(n, 0, 987654), fd)
            sup.respond_notify(S.NotificationResponse(n, 200), fd)
            assert c.wait(10).unwrap() == (sent, b"first", b"second", True)
        finally:
            for x in (fd, r1, w1, r2, w2):
                os.close(x)
    with pytest.raises(OverflowError):
        S.NotificationAddfd(n, -1, 0)


def _waitkill_target(sock: socket.socket, waitkill: int) -> int:
    signal.signal(signal.SIGUSR1, lambda *_: None)
    f = S.SyscallFilter(S.ALLOW)
    f.set_attr(S.Attr.CTL_WAITKILL, waitkill)
    f.add_rule(S.NOTIFY, "getppid")
    f.load()
    socket.send_fds(sock, [b"x"], [f.get_notify_fd()])
    try:
        return syscall(nr("getppid"))
    except OSError as e:
        return -e.errno


def _waitkill(waitkill: int) -> tuple[bool, int]:
    """A signal reaches the target after its notification was received; does the supervisor's
    answer still count? (returns: answer accepted, what the target's call returned)"""
    parent, child = socket.socketpair()
    with parent, child, start(_waitkill_target, child, waitkill) as c:
        _, fds, _, _ = socket.recv_fds(parent, 4, 1)
        fd = fds[0]
        try:
            sup = S.SyscallFilter(S.ALLOW)
            n = sup.receive_notify(fd)
            os.kill(c.pid, signal.SIGUSR1)
            time.sleep(0.3)
            try:
                sup.respond_notify(S.NotificationResponse(n, 4242), fd)
                accepted = True
            except RuntimeError:
                accepted = False  # the call was interrupted (the handler has no SA_RESTART: EINTR)
            return accepted, c.wait(10).unwrap()
        finally:
            os.close(fd)


def test_waitkill_attribute_reaches_the_kernel() -> None:
    """CTL_WAITKILL (libseccomp 2.6): once received, a notified call is not interrupted by
    non-fatal signals, so the supervisor's answer stands."""
    from sysgate.compat import _system

    if _system.flag_supported(_system.F_WAIT_KILLABLE_RECV) != 1:
        pytest.skip("kernel without SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
    assert _waitkill(1) == (True, 4242)
    assert _waitkill(0) == (False, -errno.EINTR)


def test_notify_fd_needs_a_loaded_listener() -> None:
    f = S.SyscallFilter(S.ALLOW)
    with pytest.raises(RuntimeError, match="Notifications not enabled/active"):
        f.get_notify_fd()
    with pytest.raises(RuntimeError, match="Notifications not enabled/active"):
        f.receive_notify()


# -- exports, transactions, import paths ---------------------------------------------------------------

def _filter() -> S.SyscallFilter:
    f = S.SyscallFilter(S.KILL)
    f.add_arch(S.Arch.X86)
    f.add_rule(S.ALLOW, "read", S.Arg(0, S.EQ, 0))
    f.add_rule(S.ALLOW, "socket", S.Arg(0, S.EQ, socket.AF_UNIX))
    f.add_rule(S.ERRNO(errno.EACCES), "openat")
    return f


def _pfc(f: S.SyscallFilter) -> str:
    with tempfile.TemporaryFile() as t:
        f.export_pfc(t)
        t.seek(0)
        return t.read().decode()


def test_exports_agree() -> None:
    f = _filter()
    f.precompute()
    with tempfile.TemporaryFile() as t:
        f.export_bpf(t)
        t.seek(0)
        data = t.read()
    assert data == bytes(f.export_bpf_mem()) and len(data) % 8 == 0 and data
    text = _pfc(f)
    assert 'filter for syscall "socketcall" (102)' in text and "if ($a0 == 1)" in text
    with pytest.raises(AttributeError):
        f.export_bpf(object())  # needs a file with fileno()


def test_transactions_nest_and_roll_back() -> None:
    f = _filter()
    before = _pfc(f)
    f.start_transaction()
    f.add_rule(S.ALLOW, "write")
    f.start_transaction()
    f.add_rule(S.ALLOW, "close")
    f.reject_transaction()  # drops close only
    middle = _pfc(f)
    assert '"write"' in middle and '"close"' not in middle
    f.reject_transaction()  # drops write as well
    assert _pfc(f) == before
    f.start_transaction()
    f.add_rule(S.ALLOW, "close")
    f.commit_transaction()
    assert '"close"' in _pfc(f)
    with pytest.raises(RuntimeError, match=r"errno = -22"):
        f.commit_transaction()  # nothing to commit
    f.reject_transaction()  # nothing to reject: no effect
    assert '"close"' in _pfc(f)


def test_failed_rule_rolls_back_like_libseccomp() -> None:
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.ERRNO(1), "read", S.Arg(0, S.EQ, 1))
    f.add_arch(S.Arch.X86)  # added after the last successful rule ...
    with pytest.raises(RuntimeError, match=r"errno = -17"):
        f.add_rule(S.ERRNO(2), "read", S.Arg(0, S.EQ, 1))  # EEXIST
    assert not f.exist_arch(S.Arch.X86)  # ... so libseccomp's rollback drops it


def test_import_hook() -> None:
    saved = sys.modules.pop("seccomp", None)
    try:
        install_import_hook()
        install_import_hook()  # idempotent
        import seccomp  # type: ignore[import-not-found]

        assert seccomp is S
        assert seccomp.SyscallFilter is S.SyscallFilter
    finally:
        uninstall_import_hook()
        sys.modules.pop("seccomp", None)
        if saved is not None:
            sys.modules["seccomp"] = saved


def test_shim_directory() -> None:
    code = "import seccomp; print(seccomp.__name__, seccomp.resolve_syscall(seccomp.Arch.X86, 'socket'))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_shim_env(), cwd="/")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["sysgate.compat.seccomp", "102"]


APP = HERE / "compat_app_example.py"
APP_RESULTS = ["mkdir: EPERM", "read existing file: ok", "create file: EROFS", "append to existing file: EROFS",
               "IPv4 socket: EACCES", "IPv6 socket: EACCES", "unix socket: ok",
               "mkdir(1) exit status: 1, says: Operation not permitted", "cat(1) exit status: 0, prints: hello",
               "cleaned up: True"]


def _app(argv: list[str], env: dict[str, str] | None = None) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, cwd="/")
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_unchanged_program_through_import_seccomp() -> None:
    """A program written for libseccomp's bindings runs unchanged on sysgate's module, both
    documented ways (shim directory on PYTHONPATH, import hook), and does what it does on
    libseccomp: same PFC printed, same syscalls failing with the same errors, also in the
    programs it runs."""
    shim = _app([sys.executable, str(APP)], _shim_env())
    hook = _app([sys.executable, "-c", "import runpy, sys, sysgate.compat as c; c.install_import_hook(); "
                 f"sys.argv = [{str(APP)!r}]; runpy.run_path({str(APP)!r}, run_name='__main__')"])
    assert shim == hook
    lines = shim.splitlines()
    assert lines[0] == f"default action: {S.ALLOW:#x}, x86 too: True"
    assert lines[-len(APP_RESULTS):] == APP_RESULTS
    pfc = "\n".join(lines[1:-len(APP_RESULTS)])
    assert 'filter for syscall "socketcall" (102)' in pfc and "action KILL_PROCESS;" in pfc
    if _has_libseccomp():
        assert _app([SYSTEM_PYTHON, str(APP)]) == shim


def test_filter_size_stays_small() -> None:
    """An allowlist in libseccomp's usual style compiles to one chained program per arch."""
    f = S.SyscallFilter(S.KILL_PROCESS)
    f.add_arch(S.Arch.X86)
    f.add_arch(S.Arch.X32)
    for name in ("read", "write", "close", "mmap", "munmap", "brk", "rt_sigreturn", "exit_group", "futex",
                 "openat", "fstat", "lseek", "ioctl", "getpid", "socket", "connect", "sendto", "recvfrom"):
        f.add_rule(S.ALLOW, name)
    f.add_rule(S.ALLOW, "ioctl", S.Arg(1, S.EQ, 0x5401))
    data = bytes(f.export_bpf_mem())
    assert len(data) // 8 < 200
