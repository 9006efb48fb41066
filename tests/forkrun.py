"""Run a function in a forked child; get back how the child ended and a small result.

Seccomp filters cannot be removed, so every test that loads one does it in a forked child:

    from forkrun import run, start

    out = run(fn, arg, timeout=10)        # fork, call fn(arg) in the child, wait
    assert out.signal == signal.SIGSYS    # ... or out.exitcode, or out.unwrap() == fn's return value

    with start(fn, arg) as child:         # the parent works with child.pid while fn runs
        ...
        out = child.wait(timeout=10)

The child pickles ``fn``'s return value (keep it small: ints, bytes, tuples) to the parent through
a pipe and leaves with ``os._exit(0)``; if ``fn`` raises, the traceback text comes back as
``Outcome.error`` and the exit code is 1. If the child dies by a signal or calls ``os._exit``
itself, ``value`` is None and ``status`` tells what happened. The child never returns into the
caller's stack (no pytest teardown, no atexit handlers run twice). Write diagnostics with
``os.write(2, ...)``: buffered ``print`` output is lost at ``os._exit``.

A child still running when its ``with`` block ends, or after a ``wait`` timeout, is killed
(SIGKILL, by PID) and reaped.
"""
from __future__ import annotations

import os
import pickle
import select
import signal
import struct
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "Child", "start", "run", "read_within"]


@dataclass(frozen=True)
class Outcome:
    """How a forked child ended: raw wait ``status``, ``fn``'s return ``value``, or its ``error``."""

    status: int
    value: Any = None
    error: str | None = None

    @property
    def exitcode(self) -> int | None:
        return os.waitstatus_to_exitcode(self.status) if os.WIFEXITED(self.status) else None

    @property
    def signal(self) -> int | None:
        return os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None

    @property
    def ok(self) -> bool:
        return self.exitcode == 0 and self.error is None

    def unwrap(self) -> Any:
        """``value`` if the child returned normally, else AssertionError saying what happened."""
        if self.error is not None:
            raise AssertionError(f"child raised:\n{self.error}")
        if self.signal is not None:
            raise AssertionError(f"child killed by {signal.Signals(self.signal).name}")
        if self.exitcode != 0:
            raise AssertionError(f"child exited with status {self.exitcode}")
        return self.value


class Child:
    """A running forked child; use :meth:`wait` to collect its :class:`Outcome`."""

    def __init__(self, pid: int, rfd: int) -> None:
        self.pid = pid
        self._rfd = rfd
        self._data = b""
        self.outcome: Outcome | None = None

    def _read_result(self, deadline: float) -> bool:
        """Read the length-prefixed result until complete or EOF; False on timeout."""
        while self._rfd >= 0:
            if len(self._data) >= 8 and len(self._data) >= 8 + struct.unpack("<Q", self._data[:8])[0]:
                break
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._rfd], [], [], left)[0]:
                return False
            chunk = os.read(self._rfd, 65536)
            if not chunk:
                break
            self._data += chunk
        return True

    def _reap(self, deadline: float) -> int | None:
        try:
            pidfd = os.pidfd_open(self.pid)
        except OSError:
            pidfd = -1
        try:
            while True:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid:
                    return status
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if pidfd >= 0:
                    select.select([pidfd], [], [], left)
                else:
                    time.sleep(min(left, 0.005))
        finally:
            if pidfd >= 0:
                os.close(pidfd)

    def wait(self, timeout: float = 10.0) -> Outcome:
        """Wait for the child to end; after ``timeout`` s kill it and raise ``TimeoutError``."""
        if self.outcome is not None:
            return self.outcome
        deadline = time.monotonic() + timeout
        status = self._reap(deadline) if self._read_result(deadline) else None
        if status is None:
            self.kill()
            raise TimeoutError(f"forked child {self.pid} still running after {timeout} s (killed)")
        self._close()
        value, error = None, None
        if len(self._data) >= 8:
            kind, payload = pickle.loads(self._data[8:])
            value, error = (payload, None) if kind == "value" else (None, payload)
        self.outcome = Outcome(status, value, error)
        return self.outcome

    def kill(self) -> None:
        """SIGKILL the child (by PID) if it still runs, and reap it."""
        if self.outcome is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                _, status = os.waitpid(self.pid, 0)
            except ChildProcessError:
                status = 0
            self.outcome = Outcome(status)
        self._close()

    def _close(self) -> None:
        if self._rfd >= 0:
            os.close(self._rfd)
            self._rfd = -1

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def _child_main(wfd: int, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
    code = 1
    try:
        try:
            msg: tuple[str, Any] = ("value", fn(*args, **kwargs))
            code = 0
        except BaseException:  # the traceback text goes back to the parent
            msg = ("error", traceback.format_exc())
        try:
            data = pickle.dumps(msg)
        except Exception:
            data, code = pickle.dumps(("error", traceback.format_exc())), 1
        data = struct.pack("<Q", len(data)) + data
        while data:
            data = data[os.write(wfd, data):]
    finally:
        os._exit(code)


def read_within(fd: int, n: int, timeout: float = 10.0) -> bytes:
    """Read up to ``n`` bytes from ``fd``, waiting at most ``timeout`` s: a test never blocks for ever
    on a pipe whose writer died or never wrote (TimeoutError then)."""
    if not select.select([fd], [], [], timeout)[0]:
        raise TimeoutError(f"nothing to read on fd {fd} within {timeout} s")
    return os.read(fd, n)


def start(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Child:
    """Fork; the child runs ``fn(*args, **kwargs)`` and exits. Returns at once in the parent."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            _child_main(wfd, fn, args, kwargs)
        finally:
            os._exit(1)
    os.close(wfd)
    return Child(pid, rfd)


def run(fn: Callable[..., Any], *args: Any, timeout: float = 10.0, **kwargs: Any) -> Outcome:
    """``start(fn, ...)`` then ``wait(timeout)``."""
    with start(fn, *args, **kwargs) as child:
        return child.wait(timeout)
