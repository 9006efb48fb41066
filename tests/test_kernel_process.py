"""sysgate.kernel.process's wait4 and prlimit through libc (the jail's init reaps and sets limits
with them, without os.wait4's import of resource), judged against the kernel and os/resource.

Each test runs in a forked child of its own: ``reap_any`` waits for *any* child, and the test
process has others (the jail's reaper thread waits for them)."""
from __future__ import annotations

import os
import resource
import signal
import time

import forkrun
from sysgate.kernel import process as P
from sysgate.kernel.syscall import errno_of


def _in_child(fn) -> bytes:  # type: ignore[no-untyped-def]
    """``fn()``'s bytes, computed in a forked child (forkrun: bounded, killed on timeout)."""
    out = forkrun.run(fn, timeout=60)
    assert out.exitcode == 0, out
    return out.unwrap()


def _reap_until(pid: int, limit: float = 10.0) -> tuple[int, int, float, float, int]:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        got = P.reap_any()
        assert got is not None  # the child is ours until reaped
        if got[0] == pid:
            return got
        assert got[0] == 0, got
        time.sleep(0.005)
    raise AssertionError("the child did not end")


def test_reap_any_reports_status_and_usage_of_the_child() -> None:
    def body() -> bytes:
        pid = os.fork()
        if pid == 0:
            t = time.process_time()
            while time.process_time() - t < 0.05:  # some CPU time
                pass
            blob = bytearray(32 << 20)  # and 32 MiB touched
            for i in range(0, len(blob), 4096):
                blob[i] = 1
            os._exit(7)
        got = _reap_until(pid)
        assert os.waitstatus_to_exitcode(got[1]) == 7, got
        assert got[2] + got[3] >= 0.04 and got[2] > 0, got  # user and system seconds (the loop counts both)
        assert got[4] >= 32 << 10, got  # KiB, as ru_maxrss
        assert P.reap_any() is None  # no child left
        return b"ok"

    assert _in_child(body) == b"ok"


def test_reap_any_sees_a_signal_death() -> None:
    def body() -> bytes:
        pid = os.fork()
        if pid == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        got = _reap_until(pid)
        assert os.WIFSIGNALED(got[1]) and os.WTERMSIG(got[1]) == signal.SIGKILL, got
        return b"ok"

    assert _in_child(body) == b"ok"


def test_prlimit_sets_what_getrlimit_reads_and_refuses_what_the_kernel_refuses() -> None:
    def body() -> bytes:
        assert P.prlimit(resource.RLIMIT_NOFILE, 50, 60) == 0
        assert resource.getrlimit(resource.RLIMIT_NOFILE) == (50, 60)
        assert P.prlimit(resource.RLIMIT_CORE, 0, P.RLIM_INFINITY) == 0
        assert resource.getrlimit(resource.RLIMIT_CORE) == (0, resource.RLIM_INFINITY)
        assert P.prlimit(resource.RLIMIT_NOFILE, 70, 60) == -1 and errno_of() == 22  # soft above hard
        return b"ok"

    assert _in_child(body) == b"ok"
