"""``sysgate record`` keeps the last calls of tasks that end together with (or after) the command:
threads whose final call comes right before the process exits, and an orphan that outlives the
command's top task. Each task makes a call that nothing else in the run makes, so a recording that
stops early, or drops a task's last events, leaves that name out of the profile.
"""
from __future__ import annotations

import pytest

from jail_support import PY
from sysgate.policy import ActionKind, Policy
from sysgate.recorder import record, tracefs

NO_TRACEFS = tracefs.available() is not None
METHODS = [pytest.param("tracefs", marks=pytest.mark.skipif(NO_TRACEFS, reason="tracefs needs root")), "ptrace"]

# Calls a bare ``python -S`` never makes (checked with strace -f), one per task.
RARE = {"getpriority": "os.getpriority(0, 0)", "getsid": "os.getsid(0)", "getpgid": "os.getpgid(0)",
        "sched_getscheduler": "os.sched_getscheduler(0)", "getresuid": "os.getresuid()",
        "getresgid": "os.getresgid()", "sched_rr_get_interval": "os.sched_rr_get_interval(0)",
        "sched_get_priority_max": "os.sched_get_priority_max(0)"}

# Each thread makes its rare call, then says so; the main thread exits the moment all have said so,
# while the threads are still on their way out: the recording ends with their last calls just made.
RACING = ("import os, threading\n"
          "done = threading.Semaphore(0)\n"
          "def tail(f):\n"
          "    f(); done.release()\n"
          f"ts = [threading.Thread(target=tail, args=(lambda c=c: eval(c),)) for c in {list(RARE.values())!r}]\n"
          "for t in ts: t.start()\n"
          "for t in ts:\n"
          "    if not done.acquire(timeout=20): os._exit(3)\n"
          "os._exit(0)\n")

# The top task forks and exits at once; the child waits until it is orphaned, then makes the rare
# calls: the tree has not ended when the top task has.
ORPHAN = ("import os, time\n"
          "parent = os.getpid()\n"
          "if os.fork() == 0:\n"
          "    end = time.monotonic() + 20\n"
          "    while os.getppid() == parent and time.monotonic() < end: time.sleep(0.005)\n"
          f"    for c in {list(RARE.values())!r}: eval(c)\n"
          "    os._exit(0)\n"
          "os._exit(0)\n")


def _allowed(policy: Policy) -> set[str]:
    return {r.syscall for r in policy.rules if r.action.kind is ActionKind.ALLOW}


@pytest.mark.parametrize("method", METHODS)
def test_threads_last_calls_before_exit_are_recorded(method: str) -> None:
    # Repeated: the race this catches (the process ending just after its threads' last calls)
    # does not show on every run; each round is a fraction of a second.
    for _ in range(6 if method == "tracefs" else 2):
        policy, report = record([PY, "-S", "-c", RACING], method=method, timeout=50)
        assert report.returncode == 0
        missing = set(RARE) - _allowed(policy)
        assert not missing, f"{method} recorder missed the threads' last calls: {sorted(missing)}"


@pytest.mark.parametrize("method", METHODS)
def test_orphan_outliving_the_command_is_recorded(method: str) -> None:
    for _ in range(4 if method == "tracefs" else 2):
        policy, report = record([PY, "-S", "-c", ORPHAN], method=method, timeout=50)
        assert report.returncode == 0
        missing = set(RARE) - _allowed(policy)
        assert not missing, f"{method} recorder missed the orphan's calls: {sorted(missing)}"
