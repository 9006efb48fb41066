"""sysgate.notify's fast paths, judged by the kernel: constant answers served from a table, and the
loop that blocks in RECV (no poll) on kernels with SYNC_WAKE_UP (6.6+)."""
from __future__ import annotations

import errno
import os
import socket
import time

import pytest

from sysgate.kernel.seccomp import features
from sysgate.kernel.syscall import syscall
from sysgate.notify import ALLOW, Fail, InjectFd, Return, Supervisor
from test_notify import DUP, GETPID, GETPPID, GETUID, _errno_of, _target, _wait

pytestmark = pytest.mark.skipif(not features().user_notif, reason="kernel without seccomp user notification")


def _listener(calls, body) -> tuple[int, int]:
    a, b = socket.socketpair()
    pid = _target(b, calls, body)
    b.close()
    _, fds, _, _ = socket.recv_fds(a, 1, 1)
    a.close()
    return pid, fds[0]


def test_constant_answers_and_handlers_in_the_blocking_loop():
    """Return/Fail/ALLOW given as values (the table) and as handlers; serve() without a timeout
    returns by itself once the target has exited (the kernel's hang-up), within the bound."""
    r, w = os.pipe()

    def body() -> int:
        ok = True
        for _ in range(200):  # many, so that both paths run in the same loop, interleaved
            ok &= syscall(GETPPID) == 4242                 # Return(4242), constant
            ok &= _errno_of(GETPID) == errno.EROFS          # Fail(EROFS), constant
            ok &= syscall(GETUID) == os.getuid()            # ALLOW, constant: the kernel ran it
        newfd = syscall(DUP, 0)                             # a handler: InjectFd
        os.write(newfd, b"handler ran")
        return 0 if ok else 1

    pid, lfd = _listener(["getppid", "getpid", "getuid", "dup"], body)
    sup = Supervisor(lfd, {"getppid": Return(4242), "getpid": Fail(errno.EROFS), "getuid": ALLOW,
                           "dup": lambda c: InjectFd(os.dup(w))})
    assert len(sup._const) >= 3  # served from the table
    t = sup.start()  # no timeout: the blocking loop where the kernel has SYNC_WAKE_UP
    try:
        assert _wait(pid) == 0
        t.join(20)
        assert not t.is_alive(), "serve() did not return after the target exited"
        assert sup.failure is None
        assert sup.handled >= 601 and not sup.errors
        os.close(w)
        assert os.read(r, 100) == b"handler ran"
    finally:
        sup.close()


def test_on_reply_sees_constant_answers_too():
    """With on_reply every call is built and reported: no table."""
    seen = []
    pid, lfd = _listener(["getppid"], lambda: 0 if syscall(GETPPID) == 7 else 1)
    sup = Supervisor(lfd, {"getppid": Return(7)}, on_reply=lambda c, rep: seen.append((c.name, rep)))
    assert not sup._const
    sup.serve(timeout=20)
    assert _wait(pid) == 0
    assert seen == [("getppid", Return(7))]
    sup.close()


def test_a_handler_that_is_neither_callable_nor_a_constant_is_refused():
    with pytest.raises(TypeError, match="getppid"):
        Supervisor(-1, {"getppid": 42})


def test_stop_while_blocked_in_recv_fails_the_next_call_closed():
    """stop()/close() while the loop is blocked in RECV return at once; the next notified call
    is received, left unanswered and the listener closed: the target gets ENOSYS, never an allow."""
    r, w = os.pipe()
    go_r, go_w = os.pipe()

    def body() -> int:
        os.read(go_r, 1)  # wait until the supervisor has been stopped
        return _errno_of(GETPPID)

    pid, lfd = _listener(["getppid"], body)
    sup = Supervisor(lfd, {"getppid": Return(1)})
    if not sup.blocking_recv:
        sup.close()
        os.write(go_w, b"x")
        _wait(pid)
        pytest.skip("kernel without SYNC_WAKE_UP: serve() polls, stop() is immediate (tested elsewhere)")
    t = sup.start()
    deadline = time.monotonic() + 10
    while not sup._blocked and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sup._blocked
    t0 = time.monotonic()
    sup.close()
    assert time.monotonic() - t0 < 2
    os.write(go_w, b"x")
    assert _wait(pid) == errno.ENOSYS
    t.join(10)
    assert not t.is_alive() and sup.listener == -1
    for fd in (r, w, go_r, go_w):
        os.close(fd)
