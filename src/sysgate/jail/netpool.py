"""A spare network namespace, made ahead of time (root only).

Creating a network namespace is the single most expensive part of starting a sandbox
(about 0.8 ms of kernel work: per-namespace IPv4/IPv6 setup and sysctl tables). When the
caller is root and has started more than one sandbox, a daemon thread keeps one fresh namespace
ready, with ``lo`` already up; the
launching thread ``setns``\\ es into it just around ``clone()`` so the sandbox's init is born in
it, and a new spare is made in the background. Each namespace serves exactly one sandbox.

Such a namespace is owned by the host's user namespace, so nothing inside the sandbox can
reconfigure it (it has only ``lo``, already up) — stricter than one the sandbox creates.
Unprivileged callers, or ``SYSGATE_NETNS_POOL=0``, get a namespace created by ``clone()``.
"""
from __future__ import annotations

import _thread
import os

from ..kernel import process as P
from ..kernel import syscall as N
from .namespaces import loopback_up

__all__ = ["take", "refill", "shutdown", "enabled", "enter", "leave"]

_setns = P.setns
_unshare = P.unshare


def enabled() -> bool:
    return P.host_root() and os.environ.get("SYSGATE_NETNS_POOL", "1") != "0"


class _Pool:
    # _thread rather than threading: importing threading cost the second sandbox of a script
    # several milliseconds (the pool starts then), more than the pool saves it.
    def __init__(self) -> None:
        from .runner import start_thread

        self.lock = _thread.allocate_lock()
        self._wake = _thread.allocate_lock()  # released: a spare is wanted (an event that clears when taken)
        self._wake.acquire()
        self._done = _thread.allocate_lock()  # released when the thread has ended
        self._done.acquire()
        self.fd = -1
        self.stop = False
        self.failed = False
        start_thread(self._run)  # returns once the thread runs: exiting while it starts would crash

    @property
    def alive(self) -> bool:
        """Whether the pool's thread still runs."""
        return self._done.locked()

    def wake(self) -> None:
        try:
            self._wake.release()
        except RuntimeError:  # already woken
            pass

    def take(self) -> int:
        with self.lock:
            fd, self.fd = self.fd, -1
        return fd

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._done.release()

    def _loop(self) -> None:
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.failed = True
            return
        try:
            while not self.stop:
                self._wake.acquire()
                if self.stop:
                    break
                with self.lock:
                    if self.fd >= 0:
                        continue
                fd = self._make(home)
                if fd < 0:
                    self.failed = True
                    break
                with self.lock:
                    if self.stop or self.fd >= 0:
                        os.close(fd)
                    else:
                        self.fd = fd
        finally:
            os.close(home)

    @staticmethod
    def _make(home: int) -> int:
        if _unshare(P.CLONE_NEWNET) != 0:  # this thread only
            return -1
        fd = -1
        try:
            fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            loopback_up()
        except OSError:
            if fd >= 0:
                os.close(fd)
            fd = -1
        finally:
            if _setns(home, P.CLONE_NEWNET) != 0:  # stuck elsewhere: harmless for this thread, but stop using it
                if fd >= 0:
                    os.close(fd)
                fd = -1
        return fd

    def close(self) -> None:
        self.stop = True
        self.wake()
        if self._done.acquire(True, 5):
            self._done.release()  # released again: it marks the thread's end for good
        with self.lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1


_POOL: _Pool | None = None
_POOL_LOCK = _thread.allocate_lock()


def take() -> int:
    """A ready network namespace fd (the caller owns it), or -1 (then clone makes one)."""
    global _POOL
    if not enabled():
        return -1
    with _POOL_LOCK:
        if _POOL is None or (_POOL.failed and not _POOL.alive):
            if _POOL is not None and _POOL.failed:
                return -1
            _POOL = _Pool()
            _POOL.wake()
            return -1
    return _POOL.take()


def refill() -> None:
    """Make the next spare now (called when a sandbox has ended, off its start-up path)."""
    pool = _POOL
    if pool is not None:
        pool.wake()


def shutdown() -> None:
    """Stop the pool thread and close the spare namespace (tests, clean exits)."""
    global _POOL
    with _POOL_LOCK:
        pool, _POOL = _POOL, None
    if pool is not None:
        pool.close()


def enter(fd: int) -> int:
    """Move the calling thread into netns ``fd``; returns an fd to :func:`leave` back with."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    if _setns(fd, P.CLONE_NEWNET) != 0:
        os.close(home)
        N.check(-1, "enter the prepared network namespace")
    return home


def leave(home: int) -> None:
    try:
        if _setns(home, P.CLONE_NEWNET) != 0:
            N.check(-1, "return to the caller's network namespace")
    finally:
        os.close(home)
