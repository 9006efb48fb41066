"""``sysgate record`` (tracefs) leaves nothing behind, and a flood of calls loses no event.

The command's own process does not wait for its trace instance's removal (RCU grace periods,
~100 ms): it switches tracing and every event of the instance off, then a detached ``rmdir``
removes it. These tests check, from the kernel's side (the instance's files), that the instance
is gone soon after the command exits, and inert if its removal failed; that the API's background removal
leaves no instance or mount; and that a late flood of a call not yet learned (the reader backed
off to its slow pace by then) is caught by the buffer watermark before the buffer overflows.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sysgate
from sysgate.recorder import record, tracefs
from sysgate.recorder.observations import RecordError

SRC = str(Path(sysgate.__file__).resolve().parents[1])
ENV = {**os.environ, "PYTHONPATH": SRC}
pytestmark = pytest.mark.skipif(tracefs.available() is not None, reason="tracefs needs root")


def _instances(prefix: str) -> dict[str, str]:
    """The instances named ``prefix...`` that exist now -> their state (read through a tracefs
    mount of our own when the system has none mounted)."""
    fs = tracefs._Tracefs()
    try:
        root = os.path.join(fs.root, "instances")
        out = {}
        for d in os.listdir(root):
            if d.startswith(prefix):
                p = os.path.join(root, d)
                try:
                    with open(os.path.join(p, "tracing_on")) as f:
                        on = f.read().strip()
                    with open(os.path.join(p, "set_event")) as f:
                        events = f.read().split()
                except FileNotFoundError:  # removed while we looked
                    continue
                except OSError:  # ENODEV: being removed right now
                    out[d] = "removing"
                    continue
                out[d] = f"tracing_on={on} events={events}"
        return out
    finally:
        fs.close()


def test_cli_exits_with_its_instance_removed_soon(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    proc = subprocess.Popen([sys.executable, "-m", "sysgate", "record", "-q", "-o", str(out), "--", "true"],
                            env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    assert out.exists()
    prefix = f"sysgate-{proc.pid}-"
    deadline = time.monotonic() + 30
    while _instances(prefix) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _instances(prefix), "the detached cleaner did not remove the instance"


@contextlib.contextmanager
def _cli_instance_held(tmp_path: Path) -> Iterator[tuple[int, str, Callable[[], None]]]:
    """``sysgate record -- sleep 1`` with a file of its trace instance held open across its exit
    (the instance cannot be removed while held). Yields the finished CLI's pid, the instance's
    name, and a function that lets go of the file; removes the instance at the end if it is left."""
    fs = tracefs._Tracefs()
    held = [-1]
    name = None

    def let_go() -> None:
        if held[0] >= 0:
            os.close(held[0])
            held[0] = -1

    try:
        proc = subprocess.Popen([sys.executable, "-m", "sysgate", "record", "-q", "-o", str(tmp_path / "p.json"),
                                 "--", "sleep", "1"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        root = os.path.join(fs.root, "instances")
        deadline = time.monotonic() + 60
        while name is None and time.monotonic() < deadline and proc.poll() is None:
            name = next((d for d in os.listdir(root) if d.startswith(f"sysgate-{proc.pid}-")), None)
            time.sleep(0.01)
        assert name is not None, "the CLI's instance never appeared"
        held[0] = os.open(os.path.join(root, name, "tracing_on"), os.O_RDONLY)
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        yield proc.pid, name, let_go
    finally:
        let_go()
        if name is not None:
            for _ in range(100):  # ours to remove now, if left (EBUSY while the reference goes away)
                try:
                    os.rmdir(os.path.join(fs.root, "instances", name))
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)
        fs.close()


def test_cli_instance_left_by_a_failed_removal_is_inert(tmp_path: Path) -> None:
    # Held open, the instance cannot be removed (the detached cleaner meets EBUSY), as if the
    # cleaner were killed. It must cost nothing: tracing off, no event enabled (an enabled
    # syscall event in any instance slows every task of the system).
    with _cli_instance_held(tmp_path) as (pid, name, _):
        assert _instances(f"sysgate-{pid}-") == {name: "tracing_on=0 events=[]"}


def test_cli_instance_busy_for_a_moment_is_still_removed(tmp_path: Path) -> None:
    # The detached cleaner can run before the exiting CLI's trace pipes are released (EBUSY):
    # it retries. The held file plays that reader.
    with _cli_instance_held(tmp_path) as (pid, _, let_go):
        time.sleep(0.5)  # the cleaner has met EBUSY by now
        let_go()
        deadline = time.monotonic() + 30
        while _instances(f"sysgate-{pid}-") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _instances(f"sysgate-{pid}-"), "the detached cleaner gave up on a busy instance"


def test_api_removes_its_instance_and_mount() -> None:
    from jail_support import mount_ids

    tracefs.wait_cleanup()  # earlier tests' recordings
    before = mount_ids()
    record(["true"], method="tracefs", timeout=60)
    tracefs.wait_cleanup()
    assert mount_ids() == before
    assert not _instances(f"sysgate-{os.getpid()}-")


def test_late_flood_of_a_new_call_loses_nothing() -> None:
    # A quiet start (the reader backs off to its slow pace), then a storm of a call not seen yet
    # (dd copying byte by byte: a write per byte, at C speed): the watermark wakes the reader, the
    # filter drops the call. How soon the reader runs depends on the machine's load, so with the
    # default buffer the outcome is one of two, never a third: the whole profile, or (the reader
    # starved while the buffer filled, seen with two suites at once on 2 CPUs) the recording
    # refused as incomplete — never a profile that lacks a call.
    argv = ["sh", "-c", "sleep 0.5; exec dd if=/dev/zero of=/dev/null bs=1 count=300000 status=none"]
    try:
        _, report = record(argv, method="tracefs", timeout=120)
    except RecordError as e:
        assert "lost" in str(e) and "events" in str(e), e
    else:
        assert report.returncode == 0
        assert "write" in report.allowed and "write" not in report.seen_once
    # With room for the whole storm (32 MiB a CPU: --buffer 32M), the reader's pace cannot matter:
    # always whole.
    _, report = record(argv, method="tracefs", timeout=120, buffer=32 << 20)
    assert report.returncode == 0
    assert "write" in report.allowed and "write" not in report.seen_once


def test_reader_without_watermark_still_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # A kernel without buffer_percent (before 5.1): the reader polls trace_pipe itself.
    monkeypatch.setattr(tracefs, "_watermark_fds", lambda inst: [])
    _, report = record(["sh", "-c", "ls / > /dev/null; exit 3"], method="tracefs", timeout=60)
    assert report.returncode == 3
    assert {"execve", "getdents64", "wait4", "exit_group"} <= set(report.allowed)
