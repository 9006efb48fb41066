"""The supervisor threads of sandboxes started together, and of one that fails (jail/supervisor.py):
several sandboxes at once must each be served by their own supervisor, and a supervisor that fails
must leave its sandbox's calls failing (ENOSYS), never waiting: nothing but the supervisor thread
may hold the listener (init hands it out and closes it, and tells the thread when the run is over).

Kernel-judged: the commands run in real sandboxes with the default connect mediation and report
what their connect() returned.
"""
from __future__ import annotations

import threading

import pytest

from jail_support import PY, needs_userns
from sysgate.jail import run
from sysgate.kernel.seccomp import features

pytestmark = [needs_userns,
              pytest.mark.skipif(not features().user_notif, reason="kernel without seccomp user notification")]

# An abstract socket of the sandbox's own network namespace: the supervisor emulates the connect,
# so it returns only if a supervisor thread serves this very sandbox.
CONNECT = r"""
import socket, sys
srv = socket.socket(socket.AF_UNIX)
srv.bind("\0sysgate-failure-" + sys.argv[1])
srv.listen(1)
c = socket.socket(socket.AF_UNIX)
try:
    c.connect("\0sysgate-failure-" + sys.argv[1])
    print("connected", sys.argv[1])
except OSError as e:
    print("errno", e.errno)
"""


def test_sandboxes_started_together_are_each_served() -> None:
    out: dict[int, object] = {}

    def one(i: int) -> None:
        out[i] = run([PY, "-c", CONNECT, str(i)], capture_output=True, timeout=60)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(out) == [0, 1, 2, 3]
    for i, r in out.items():
        assert r.ok and r.stdout.split() == [b"connected", str(i).encode()], (i, r, r.stderr)  # type: ignore[attr-defined]
    assert run(["/bin/true"], timeout=60).ok  # and the next one


def test_a_failing_supervisor_leaves_the_call_failing_not_waiting(monkeypatch) -> None:
    """The worker receives the listener, then fails (here: making the Supervisor raises). The
    listener is closed with it and held nowhere else, so the kernel answers the command's connect
    with ENOSYS at once; the run reports the failure."""
    import sysgate.notify as notify

    def broken(*_a: object, **_k: object) -> None:
        raise RuntimeError("injected supervisor failure")

    monkeypatch.setattr(notify, "Supervisor", broken)
    r = run([PY, "-c", CONNECT, "f"], capture_output=True, timeout=60)
    assert r.status == "exited", (r, r.stderr)  # not a timeout: nothing waited for a dead supervisor
    assert r.stdout.split() == [b"errno", b"38"], (r.stdout, r.stderr)  # ENOSYS
    assert any(e.get("event") == "supervisor-failed" for e in r.denials or []), r.denials
