"""A warm caller's repeated runs (jail/mounts.py's plan per Options, jail/runner.py's stack pools):
what a run remembers from the last one must never outlive a change of the host or of the caller.

Kernel-judged: each command runs in a real sandbox and reports what it sees.
"""
from __future__ import annotations

import os
import shutil
import time

from jail_support import PY, needs_userns, scratch_dir
from sysgate.jail import run

pytestmark = [needs_userns]

LIST = "import os, sys\np = sys.argv[1]\nprint(sorted(os.listdir(p)) if os.path.isdir(p) else 'absent')"


def test_a_runtime_dir_made_between_runs_is_hidden_on_the_next(monkeypatch) -> None:
    """The same options twice (so the same Options object and the remembered plan): a
    $XDG_RUNTIME_DIR that appears between the runs is covered by an empty tmpfs in the second."""
    base = scratch_dir(".sysgate-warm-")
    try:
        xdg = os.path.join(base, "xdg")
        monkeypatch.setenv("XDG_RUNTIME_DIR", xdg)
        r = run([PY, "-c", LIST, xdg], capture_output=True, timeout=60)
        assert r.ok and r.stdout.strip() == b"absent", (r, r.stderr)
        os.mkdir(xdg)
        with open(os.path.join(xdg, "agent.sock"), "w") as f:
            f.write("x")
        os.chmod(xdg, 0o755)
        os.chmod(os.path.join(xdg, "agent.sock"), 0o644)
        r = run([PY, "-c", LIST, xdg], capture_output=True, timeout=60)
        assert r.ok and r.stdout.strip() == b"[]", (r, r.stderr)  # hidden: an empty private tmpfs
        shutil.rmtree(xdg)
        r = run([PY, "-c", LIST, xdg], capture_output=True, timeout=60)
        assert r.ok and r.stdout.strip() == b"absent", (r, r.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_each_run_starts_in_the_callers_current_directory() -> None:
    """The remembered plan is per working directory: a chdir between two runs is followed."""
    base = scratch_dir(".sysgate-warm-")
    here = os.getcwd()
    try:
        for name in ("a", "b", "a"):
            d = os.path.join(base, name)
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
            os.chdir(d)
            r = run([PY, "-c", "import os; print(os.getcwd())"], capture_output=True, timeout=60)
            assert r.ok and r.stdout.strip() == os.fsencode(os.path.realpath(d)), (r, r.stderr)
    finally:
        os.chdir(here)
        shutil.rmtree(base, ignore_errors=True)


def test_many_warm_runs_keep_every_layer_and_leak_nothing() -> None:
    """Stacks come from pools and the bounding-set drop from ready-made arguments: run after run,
    the command still has no capability, no_new_privs and the filter, and no fd is left behind."""
    script = "grep -E '^(CapBnd|CapPrm|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '"
    for _ in range(3):  # what a process keeps once (the netns pool's spare, the prepared user namespace...)
        assert run(["/bin/true"], timeout=60).ok
    time.sleep(0.2)  # their fds closed in the background (below)
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(30):
        r = run(["/bin/sh", "-c", script], capture_output=True, timeout=60)
        assert r.ok, (r, r.stderr)
        assert sorted(r.stdout.decode().split("\n")[:4]) == ["CapBnd: 0000000000000000", "CapPrm: 0000000000000000",
                                                             "NoNewPrivs: 1", "Seccomp: 2"], r.stdout
    assert _settled_fds(before) <= before


def _settled_fds(limit: int) -> int:
    """Our fd count once it is at most ``limit`` (some fds of a finished sandbox are closed by a
    background thread, in batches every 50 ms); waits at most 2 s."""
    deadline = time.monotonic() + 2
    n = len(os.listdir("/proc/self/fd"))
    while n > limit and time.monotonic() < deadline:
        time.sleep(0.06)
        n = len(os.listdir("/proc/self/fd"))
    return n
