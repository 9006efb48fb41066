"""A terminal of the sandbox's own, relayed to the caller's, as ``docker run -t`` does.

A command that shares the caller's terminal can type into it: ``ioctl(TIOCSTI)`` on the
caller's controlling terminal pushes bytes into its input queue, which the caller's shell reads
and runs once the sandbox has exited. So the command never gets the caller's terminal: it always
starts in a session of its own (no controlling terminal, so ``/dev/tty`` fails), and when the
caller's stdin or stdout *is* a terminal the sandbox gets a pseudo-terminal instead, opened in
the sandbox's own devpts instance by the supervisor. The command's standard streams that were
the caller's terminal become its slave (its controlling terminal, so ``^C`` becomes SIGINT for
the command's foreground process group); the master comes back to the caller over a socket
pair, and a relay thread here copies bytes both ways:

* the caller's terminal is put in raw mode while the sandbox runs (when stdin is the terminal),
  so every key, ``^C`` and ``^Z`` included, reaches the sandbox's terminal and its line
  discipline, as typed; the caller's settings are copied to the sandbox's terminal first and
  restored on the caller's at the end;
* the window size is copied at the start and whenever it changes (checked on every wake-up of
  the relay, at least every 100 ms, and on SIGWINCH for ``sysgate run``), so the sandbox's
  terminal sends SIGWINCH to its foreground group as a real one does.

The relay ends when the master reports EOF/EIO (every slave closed: the sandbox is gone).
"""
from __future__ import annotations

import _thread
import os

from ..kernel import fdpass as _fdpass
from ..kernel import syscall as N

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Relay", "tty_indices"]

_TCGETS, _TIOCGWINSZ, _TIOCSWINSZ = 0x5401, 0x5413, 0x5414
_TERMIOS_SIZE = 36  # the kernel's struct termios (TCGETS), the same on every Linux architecture we run on


def tty_indices(stdio: list[int | None]) -> tuple[int, ...]:
    """The standard streams (0-2) that would be a terminal of the caller's, if stdin or stdout is one."""
    def fd(i: int) -> int:
        src = stdio[i]
        return i if src is None else src

    ttys = tuple(i for i in range(3) if _isatty(fd(i)))
    return ttys if 0 in ttys or 1 in ttys else ()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _foreground(fd: int) -> bool:
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def _ioctl_get(fd: int, req: int, size: int) -> bytes | None:
    import fcntl

    try:
        return fcntl.ioctl(fd, req, bytes(size))
    except OSError:
        return None


class Relay:
    """Copies bytes between the caller's terminal and the sandbox's pseudo-terminal (a thread)."""

    def __init__(self, stdio: list[int | None], indices: tuple[int, ...], interactive: bool = True) -> None:
        """``interactive``: relay the caller's keys too (``run``); a ``Sandbox`` running alongside its
        caller gets the terminal's output only, and leaves the caller's keyboard alone."""
        self.indices = indices
        src = [i if (fd := stdio[i]) is None else fd for i in range(3)]
        # Keys are relayed only by a foreground job: a background one reading (or setting raw mode on)
        # the terminal would be stopped (SIGTTIN, SIGTTOU), as any background reader is.
        self.in_fd = src[0] if 0 in indices and interactive and _foreground(src[0]) else -1
        self.out_fd = src[1] if 1 in indices else src[2] if 2 in indices else -1
        term = self.in_fd if self.in_fd >= 0 else self.out_fd
        self.termios = _ioctl_get(term, _TCGETS, _TERMIOS_SIZE)
        self.winsize = _ioctl_get(term, _TIOCGWINSZ, 8)
        self._term = term
        self._sock, self._child = _fdpass.socketpair()  # the master comes back over it
        # one message buffer per side: init sends on one while the relay thread waits on the other
        self._out, self._in = _fdpass.FdMessage(b"M"), _fdpass.FdMessage()
        self._saved: Any = None
        self._stop = False
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._master = -1
        self._started = False
        # Held by the relay thread while it may read the caller's keys; pause() takes it so that
        # another reader of the terminal (the supervisor's --ask prompt) gets them instead.
        self._gate = _thread.allocate_lock()
        self._paused = False

    def plan(self) -> tuple:
        """What the supervisor needs (see runner.Plan.pty)."""
        return (self._child, self.indices, self.termios, self.winsize, self._send_master)

    def _close_sock(self) -> None:
        fd, self._sock = self._sock, -1
        if fd >= 0:
            os.close(fd)

    def _send_master(self, sock: int, fd: int) -> None:
        """In init: pass the master ``fd`` to the relay (imports nothing, allocates nothing)."""
        N.check(self._out.send(sock, fd), "hand the terminal to the relay")

    def start(self) -> None:
        if self.in_fd >= 0:
            import termios
            import tty

            try:
                self._saved = termios.tcgetattr(self.in_fd)
                tty.setraw(self.in_fd, termios.TCSANOW)
            except termios.error:
                self._saved = None
        from .runner import start_thread

        start_thread(self._run)  # running before the sandbox starts (and so before we can exit)
        self._started = True

    def close_child_end(self) -> None:
        """Once the supervisor has its copy: EOF then means it is gone."""
        fd, self._child = self._child, -1
        if fd >= 0:
            os.close(fd)

    def sync_size(self) -> None:
        """Copy the caller's window size to the sandbox's terminal if it changed."""
        ws = _ioctl_get(self._term, _TIOCGWINSZ, 8)
        if ws is not None and ws != self.winsize and self._master >= 0:
            import fcntl

            try:
                fcntl.ioctl(self._master, _TIOCSWINSZ, ws)
                self.winsize = ws
            except OSError:
                pass

    def _run(self) -> None:
        import select

        try:
            got = self._in.recv(self._sock)
            if got < 0:  # an error, or init went away before it made the terminal
                return
            self._master = m = got
            poller = select.poll()
            poller.register(m, select.POLLIN)
            out_only = select.poll()  # while paused: the command's output only
            out_only.register(m, select.POLLIN)
            if self.in_fd >= 0:
                poller.register(self.in_fd, select.POLLIN)
            while True:
                if not self._gate.acquire(False):  # paused: leave the keys to the prompt
                    events = out_only.poll(100)
                    gated = False
                else:
                    gated = True
                    try:
                        events = poller.poll(100)
                    except BaseException:
                        self._gate.release()
                        raise
                try:
                    self._relay_events(m, events, poller)
                finally:
                    if gated:
                        self._gate.release()
                if self._master < 0:
                    return
                if self._stop and not events:
                    return
        finally:
            self._restore()
            if self._master >= 0:
                os.close(self._master)
                self._master = -1
            self._close_sock()
            self._done.release()

    def _relay_events(self, m: int, events: list, poller: Any) -> None:
        """Copy what ``events`` say is ready; the master's EOF ends the relay (``_master`` -1)."""
        self.sync_size()
        for fd, _ev in events:
            if fd == m:
                try:
                    data = os.read(m, 65536)
                except OSError:  # EIO: no slave open any more
                    data = b""
                if not data:
                    os.close(m)
                    self._master = -1
                    return
                if self.out_fd >= 0:
                    _write_all(self.out_fd, data)
            else:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                else:
                    _write_all(m, data)

    def pause(self, timeout: float = 2.0) -> None:
        """Stop reading the caller's keys and give the terminal back its own mode (cooked), until
        :meth:`resume`: for a prompt on the same terminal (``--ask``). Waits for the relay to be
        between two reads (at most one poll period, or ``timeout`` if it is stuck writing)."""
        self._paused = self._gate.acquire(True, timeout)
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass

    def resume(self) -> None:
        """Raw mode again, and the keys relayed again."""
        if self._saved is not None:
            import termios
            import tty

            try:
                tty.setraw(self.in_fd, termios.TCSANOW)
            except termios.error:
                pass
        if self._paused:
            self._paused = False
            self._gate.release()

    def _restore(self) -> None:
        if self._saved is not None:
            import termios

            try:
                termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved)
            except termios.error:
                pass
            self._saved = None

    def stop(self, grace: float = 2.0) -> None:
        """The sandbox is over: let the relay copy what is left, then restore the caller's terminal."""
        self._stop = True
        self.close_child_end()
        if not self._started:  # set-up failed before the sandbox was launched
            self._restore()
            self._close_sock()
            return
        if not self._done.acquire(timeout=grace):
            self._restore()  # the thread is stuck writing to the caller's terminal; it ends with the process


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            import select

            select.select([], [fd], [], 1.0)
            continue
        except OSError:
            return
        view = view[n:]
