"""sysgate.notify: the supervisor, judged by the kernel (targets are forked children under a filter)."""
from __future__ import annotations

import errno
import os
import select
import signal
import socket
import threading
import time

import pytest

from sysgate.kernel.seccomp import Flag, features, install
from sysgate.kernel.syscall import nr, syscall
from sysgate.notify import (
    ALLOW,
    Fail,
    InjectFd,
    Return,
    Supervisor,
    companion_arches,
    notify_program,
)

pytestmark = pytest.mark.skipif(not features().user_notif, reason="kernel without seccomp user notification")

GETPPID, GETPID, GETUID, DUP = nr("getppid"), nr("getpid"), nr("getuid"), nr("dup")


def _target(sock: socket.socket, calls: list[str], body) -> int:
    """In a forked child: install the listener filter, hand the fd out, close it, run ``body``."""
    pid = os.fork()
    if pid == 0:
        code = 99
        try:
            fd = install(notify_program(calls), Flag.NEW_LISTENER)
            socket.send_fds(sock, [b"L"], [fd])
            os.close(fd)
            code = body()
        except BaseException as e:  # noqa: BLE001
            os.write(2, f"target: {e!r}\n".encode())
        finally:
            os._exit(code)
    return pid


def _wait(pid: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p:
            return os.waitstatus_to_exitcode(st)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    raise AssertionError(f"target {pid} still running after {timeout} s")


def _errno_of(n: int, *args: int) -> int:
    try:
        syscall(n, *args)
    except OSError as e:
        return e.errno
    return 0


def test_replies_are_what_the_target_gets():
    a, b = socket.socketpair()
    r, w = os.pipe()

    def body() -> int:
        ok = syscall(GETPPID) == 4242                      # Return
        ok &= _errno_of(GETPID) == errno.EROFS              # Fail
        ok &= syscall(GETUID) == os.getuid()               # ALLOW: the kernel ran it
        newfd = syscall(DUP, 0)                            # InjectFd: our pipe's write end
        os.write(newfd, b"via injected fd")
        return 0 if ok else 1

    pid = _target(b, ["getppid", "getpid", "getuid", "dup"], body)
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    sup = Supervisor(fds[0], {"getppid": lambda c: Return(4242), "getpid": lambda c: Fail(errno.EROFS),
                              "getuid": lambda c: ALLOW, "dup": lambda c: InjectFd(os.dup(w))})
    sup.serve(timeout=20)
    assert _wait(pid) == 0
    os.close(w)
    assert os.read(r, 100) == b"via injected fd"
    assert sup.handled >= 4 and not sup.errors
    sup.close()


def test_handler_that_raises_answers_eperm_and_is_reported():
    a, b = socket.socketpair()
    seen = []

    def boom(call):
        raise RuntimeError("handler bug")

    pid = _target(b, ["getppid"], lambda: _errno_of(GETPPID))
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    sup = Supervisor(fds[0], {"getppid": boom}, on_error=lambda c, e: seen.append((c.name, str(e))))
    sup.serve(timeout=20)
    assert _wait(pid) == errno.EPERM
    assert seen == [("getppid", "handler bug")]
    assert "getppid" in sup.errors[0][0]
    sup.close()


def test_unhandled_notified_call_fails_enosys():
    a, b = socket.socketpair()
    pid = _target(b, ["getppid"], lambda: _errno_of(GETPPID))
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    sup = Supervisor(fds[0], {})
    sup.serve(timeout=20)
    assert _wait(pid) == errno.ENOSYS
    sup.close()


def test_supervisor_killed_mid_call_leaves_the_target_with_enosys():
    """The supervisor is its own process; it receives the call and is SIGKILLed before answering."""
    a, b = socket.socketpair()
    r, w = os.pipe()
    sup_pid = os.fork()
    if sup_pid == 0:
        try:
            b.close()
            os.close(r)
            _, fds, _, _ = socket.recv_fds(a, 1, 1)

            def stall(call):
                os.write(w, b"G")
                time.sleep(60)
                return ALLOW  # never reached: the test kills us first

            Supervisor(fds[0], {"getppid": stall}).serve(timeout=30)
        finally:
            os._exit(0)
    os.close(w)
    a.close()
    tgt = _target(b, ["getppid"], lambda: _errno_of(GETPPID))
    b.close()
    assert select.select([r], [], [], 20)[0], "the supervisor never received the call"
    assert os.read(r, 1) == b"G"
    os.kill(sup_pid, signal.SIGKILL)
    os.waitpid(sup_pid, 0)
    assert _wait(tgt) == errno.ENOSYS  # never an allow: getppid would have returned our pid
    os.close(r)


def test_many_threads_and_processes_at_once():
    """4 processes x 6 threads x 300 calls, each answered with a value derived from its arguments."""
    a, b = socket.socketpair()
    n_proc, n_thr, n_calls = 4, 6, 300

    def body() -> int:
        # the filter is inherited: the forked workers are notified on the same listener
        kids = []
        for p in range(n_proc):
            k = os.fork()
            if k == 0:
                bad: list[int] = []

                def worker(t: int, p: int = p, bad: list[int] = bad) -> None:
                    for i in range(n_calls):
                        v = p * 1_000_000 + t * 1000 + i
                        if syscall(GETPPID, v) != v + 1:
                            bad.append(v)
                ts = [threading.Thread(target=worker, args=(t,)) for t in range(n_thr)]
                for t in ts:
                    t.start()
                for t in ts:
                    t.join()
                os._exit(1 if bad else 0)
            kids.append(k)
        return max(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids)

    pid = _target(b, ["getppid"], body)
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    sup = Supervisor(fds[0], {"getppid": lambda c: Return(c.args[0] + 1)})
    sup.serve(timeout=60)
    assert _wait(pid, 60) == 0
    assert sup.handled == n_proc * n_thr * n_calls
    sup.close()


def test_interrupted_call_is_withdrawn_and_restarted():
    """A signal while the call waits: the kernel withdraws it (SEND gets ENOENT), the restart is answered."""
    a, b = socket.socketpair()

    def body() -> int:
        signal.signal(signal.SIGUSR1, lambda *_: None)
        signal.siginterrupt(signal.SIGUSR1, False)  # SA_RESTART: the kernel restarts the call after the handler
        return 0 if syscall(GETPPID) == 7 else 1

    pid = _target(b, ["getppid"], body)
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    first = []

    def slow(call):
        if not first:
            first.append(call.id)
            os.kill(call.pid, signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while call.valid() and time.monotonic() < deadline:
                time.sleep(0.001)
            return Return(1)  # too late: the kernel withdrew this one
        return Return(7)

    sup = Supervisor(fds[0], {"getppid": slow})
    sup.serve(timeout=20)
    assert _wait(pid) == 0
    assert sup.interrupted >= 1
    sup.close()


def test_companion_arches_cover_the_32bit_abi():
    names = [a.name for a in companion_arches("x86_64")]
    assert names == ["x86_64", "x86", "x32"]
    assert [a.name for a in companion_arches("aarch64")] == ["aarch64", "arm"]


def test_reply_validation():
    with pytest.raises(ValueError):
        Fail(0)
    with pytest.raises(ValueError):
        Fail(5000)
