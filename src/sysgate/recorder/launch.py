"""Starting the recorded command held back, and telling the architecture of an executable.

:func:`spawn_held` forks a child that waits on a pipe until the recorder has armed its tracing
with the child's pid, then ``execve``\\ s the command (resolved on ``PATH`` beforehand, so the
child makes no other syscall between being released and its ``execve``): nothing the command
does is missed, and nothing of the recorder's own is recorded. A command that cannot be
started raises :class:`~.observations.CommandNotStarted` (``sysgate record`` exits 125).
"""
from __future__ import annotations

import os
import shutil
import signal
import struct
from collections.abc import Callable, Mapping, Sequence

from .observations import CommandNotStarted

__all__ = ["resolve", "HeldChild", "spawn_held", "elf_arch"]


def resolve(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The path ``argv[0]`` runs, as execvp would find it; CommandNotStarted if there is none."""
    if not argv:
        raise CommandNotStarted("record: no command given")
    name = argv[0]
    path = (env if env is not None else os.environ).get("PATH", os.defpath)
    exe = name if "/" in name else shutil.which(name, path=path)
    if exe is None or not os.path.exists(exe):
        raise CommandNotStarted(f"record: command not found: {name!r}")
    if os.path.isdir(exe) or not os.access(exe, os.X_OK):
        raise CommandNotStarted(f"record: not an executable file: {exe!r}")
    return exe


class HeldChild:
    """A forked child waiting to exec: :meth:`release` lets it go, then it is the command."""

    def __init__(self, pid: int, go: int, err: int) -> None:
        self.pid = pid
        self._go = go
        self._err = err
        self.reaped = False  # its pid may belong to someone else now: never signal it

    def release(self, wait: bool = True) -> None:
        """Let the child exec; CommandNotStarted (child reaped) if its execve failed.

        With ``wait=False`` only let it go (a ptrace tracer must keep serving its stops until
        the exec); :meth:`exec_error` then tells, once the child has exec'd or ended.
        """
        os.write(self._go, b"g")
        os.close(self._go)
        self._go = -1
        if wait:
            msg = self.exec_error()
            if msg:
                os.waitpid(self.pid, 0)
                self.reaped = True
                raise CommandNotStarted(msg)

    def exec_error(self) -> str:
        """Why the child's execve failed ("" if it succeeded); blocks until it exec'd or ended."""
        data = b""
        while True:  # EOF: the close-on-exec end went away with a successful execve
            chunk = os.read(self._err, 512)
            if not chunk:
                break
            data += chunk
        os.close(self._err)
        self._err = -1
        return f"record: cannot run the command: {data.decode(errors='replace')}" if data else ""

    def abandon(self) -> None:
        """The recorder could not arm: the child exits without running anything."""
        for fd in (self._go, self._err):
            if fd >= 0:
                os.close(fd)
        self._go = self._err = -1
        if self.reaped:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass


def spawn_held(argv: Sequence[str], env: Mapping[str, str] | None = None,
               before_exec: Callable[[], None] | None = None) -> HeldChild:
    """Fork the command, held before its ``execve`` until :meth:`HeldChild.release`.

    ``before_exec`` runs in the child after release and before the execve (the ptrace
    recorder installs its filter there); it must not return on failure but raise.
    """
    exe = resolve(argv, env)
    environ = dict(os.environ if env is None else env)
    go_r, go_w = os.pipe()
    err_r, err_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(go_w)
            os.close(err_r)
            if os.read(go_r, 1) != b"g":  # the recorder gave up: run nothing
                os._exit(125)
            os.close(go_r)
            if before_exec is not None:
                before_exec()
            os.execve(exe, list(argv), environ)
        except OSError as e:
            os.write(err_w, f"{exe}: {e.strerror}".encode())
        except BaseException as e:  # noqa: BLE001 - never return into the caller's stack
            os.write(err_w, f"{type(e).__name__}: {e}".encode())
        os._exit(127)
    os.close(go_r)
    os.close(err_w)
    return HeldChild(pid, go_w, err_r)


# (ELF class, e_machine) -> sysgate arch name; EI_CLASS 1 is 32-bit, 2 is 64-bit.
_ELF_ARCHES = {(2, 62): "x86_64", (1, 62): "x32", (1, 3): "x86", (2, 183): "aarch64", (1, 40): "arm",
               (2, 243): "riscv64", (2, 258): "loongarch64", (2, 22): "s390x", (2, 21): "ppc64le"}


def elf_arch(path: str) -> str | None:
    """The arch of the ELF executable at ``path`` (None: not an ELF file we know, or unreadable).

    This is how the fast path learns a task's ABI: trace events carry syscall numbers but no
    arch, so the recorder looks at each image a task execs (a 32-bit child of a 64-bit
    program makes its syscalls through the ia32 table).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    order = "<" if head[5] == 1 else ">"
    machine = struct.unpack(order + "H", head[18:20])[0]
    arch = _ELF_ARCHES.get((head[4], machine))
    if arch == "ppc64le" and order == ">":
        arch = "ppc64"
    return arch
