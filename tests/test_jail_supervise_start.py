"""The supervisor thread's start (jail/supervisor.py, NotifySetup.start/go): with the vfork
launcher it sleeps until init has spawned the command, so it must still serve a command that
connects at once, and a launch that fails before the spawn must not leave it waiting.

Kernel-judged: the commands run in real sandboxes with the default connect mediation.
"""
from __future__ import annotations

import _thread
import time

import pytest

from jail_support import PY, needs_userns
from sysgate.jail import run
from sysgate.kernel.seccomp import features

pytestmark = [needs_userns,
              pytest.mark.skipif(not features().user_notif, reason="kernel without seccomp user notification")]

# An abstract socket is the sandbox network namespace's own: the supervisor connects it (emulated),
# so the command's first connect returns only if the supervisor thread is serving.
SELF_CONNECT = r"""
import socket
srv = socket.socket(socket.AF_UNIX)
srv.bind("\0sysgate-start-test")
srv.listen(1)
c = socket.socket(socket.AF_UNIX)
c.connect("\0sysgate-start-test")
print("connected")
"""


@pytest.mark.parametrize("launcher", ["vfork", "fork"])
def test_a_command_that_connects_at_once_is_served(launcher):
    r = run([PY, "-c", SELF_CONNECT], capture_output=True, timeout=30, launcher=launcher)
    assert r.status == "exited" and r.returncode == 0, (r, r.stderr)
    assert r.stdout.strip() == b"connected"


def _busy_threads() -> int:
    """Threads other than those sysgate keeps on purpose: parked supervisor workers (a pool: the
    first sandbox of a process adds one), the reaper of exiting supervisors."""
    from sysgate.jail import runner, supervisor

    return _thread._count() - len(supervisor._workers._idle) - (1 if runner._reaper_ident else 0)


def test_a_launch_that_fails_before_the_spawn_leaves_no_supervisor_thread():
    before = _busy_threads()
    with pytest.raises(Exception):  # noqa: B017 - the working directory's error, whatever its class
        r = run(["/bin/true"], cwd="/nonexistent-sysgate-start-test", timeout=30)
        assert not r.ok, r  # a result that reports the failure is also acceptable
        raise RuntimeError(r.status)
    deadline = time.monotonic() + 15
    while _busy_threads() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _busy_threads() == before  # the worker went back to the pool: it is not left waiting
