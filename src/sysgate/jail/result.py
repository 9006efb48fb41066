"""How a sandboxed command ended, and the exit status the CLI gives for it.

Exit statuses follow bubblewrap: the command's own code; 128+N when a signal killed it
(159 for SIGSYS: a seccomp kill, or the command's own SIGSYS); 124 when ``--timeout`` expired (as timeout(1) does);
125 when the sandbox could not be set up; 126/127 when the command could not be executed
or was not found inside the sandbox (as env(1) and Docker do).
"""
from __future__ import annotations

from ..errors import EXIT_CANNOT_EXEC, EXIT_CANNOT_START, EXIT_NOT_FOUND, EXIT_TIMEOUT, exit_for_signal

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["RunResult", "SandboxError", "EXITED", "SIGNALED", "SECCOMP", "TIMEOUT", "OOM", "LIMIT", "KILLED",
           "EXIT_SETUP", "EXIT_TIMEOUT", "EXIT_CANNOT_EXEC", "EXIT_NOT_FOUND"]

EXITED = "exited"          # the command returned a code
SIGNALED = "signaled"      # a signal killed it
SECCOMP = "seccomp"        # a filter killed it, on the kernel's word (``syscall``/``arch``: which call, if known)
TIMEOUT = "timeout"        # --timeout expired and the whole tree was killed
OOM = "oom"                # the cgroup's OOM killer killed it (memory limit)
LIMIT = "limit"            # a resource limit killed it (SIGXCPU, SIGXFSZ, SIGKILL at the CPU hard limit)
KILLED = "killed"          # Sandbox.kill() ended it

EXIT_SETUP = EXIT_CANNOT_START  # (every exit status is named in sysgate.errors)


class SandboxError(OSError):
    """The sandbox could not be set up, or the command could not be started in it.

    ``stage`` names the step (``mount``, ``cgroup``, ``exec``...); ``str()`` is one line. The CLI
    exits 125 for these, except 127 (not found) and 126 (not executable) at the ``exec`` stage.
    """

    def __init__(self, errno: int, message: str, stage: str = "setup") -> None:
        super().__init__(errno, message)
        self.stage = stage

    def __str__(self) -> str:
        return str(self.strerror)

    @property
    def exit_code(self) -> int:
        if self.stage == "exec":
            import errno as E

            return EXIT_NOT_FOUND if self.errno == E.ENOENT else EXIT_CANNOT_EXEC
        return EXIT_SETUP


class RunResult:
    """The outcome of one sandboxed run.

    ``status`` is one of exited, signaled, seccomp, timeout, oom, limit, killed. ``returncode`` is
    the command's exit code (None if a signal ended it) and ``signal`` the signal that did;
    ``exit_code`` is the bubblewrap-style status the CLI exits with. ``syscall``/``arch`` name the
    call a seccomp kill was for when the kernel's audit log could tell (root only). Times are
    seconds. ``peak_memory`` is bytes: the cgroup's peak when a memory limit was set, otherwise the
    largest ``ru_maxrss`` of the sandbox's processes (an upper bound: Linux charges a process that
    was vfork'ed and exec'd with its parent's peak). ``cgroup`` is ``"v1"``, ``"v2"`` or None.
    """

    _FIELDS = {
        "argv": None, "status": None, "returncode": None, "signal": None, "syscall": None, "syscall_nr": None,
        "arch": None, "wall_time": 0.0, "user_time": 0.0, "system_time": 0.0, "peak_memory": None,
        "stdout": None, "stderr": None, "cgroup": None, "oom_kills": 0, "pids_limit_hits": 0, "launcher": "",
        "denials": None,  # the supervisor's reports (jail/supervisor.py): denied calls, handler errors
    }
    __slots__ = tuple(_FIELDS)

    argv: list[str]
    status: str
    returncode: int | None
    signal: int | None
    syscall: str | None
    syscall_nr: int | None
    arch: str | None
    wall_time: float
    user_time: float
    system_time: float
    peak_memory: int | None
    stdout: bytes | None
    stderr: bytes | None
    cgroup: str | None
    oom_kills: int
    pids_limit_hits: int
    launcher: str
    denials: list[dict] | None

    def __init__(self, argv: list[str], status: str, **kw: Any) -> None:
        self.argv, self.status = argv, status
        for name, default in self._FIELDS.items():
            if name not in ("argv", "status"):
                setattr(self, name, kw.pop(name, default))
        if kw:
            raise TypeError(f"RunResult got unknown field {next(iter(kw))!r}")

    def __repr__(self) -> str:
        return "RunResult(" + ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__) + ")"

    def __eq__(self, other: object) -> bool:
        return type(other) is RunResult and all(getattr(self, n) == getattr(other, n) for n in self.__slots__)

    def __reduce__(self) -> tuple:
        return (_rebuild, ({n: getattr(self, n) for n in self.__slots__},))

    @property
    def cpu_time(self) -> float:
        return self.user_time + self.system_time

    @property
    def exit_code(self) -> int:
        if self.status == TIMEOUT:
            return EXIT_TIMEOUT
        if self.returncode is not None:
            return self.returncode
        return exit_for_signal(self.signal or 9)  # SIGKILL

    @property
    def ok(self) -> bool:
        return self.status == EXITED and self.returncode == 0

    def describe(self) -> str:
        """One line for people: ``exited with 0``, ``killed by seccomp (ptrace, x86_64)``..."""
        if self.status == EXITED:
            return f"exited with {self.returncode}"
        if self.status == SECCOMP:
            known = self.syscall or self.syscall_nr is not None
            what = f" ({self.syscall or self.syscall_nr}, {self.arch})" if known else ""
            return f"killed by seccomp (SIGSYS){what}"
        name = _signame(self.signal)
        if self.status == TIMEOUT:
            return "timed out; the sandbox was killed"
        if self.status == OOM:
            return f"killed by the out-of-memory killer ({name})"
        if self.status == LIMIT:
            return f"killed by a resource limit ({name})"
        if self.status == KILLED:
            return f"killed ({name})"
        return f"killed by {name}"

    def to_dict(self) -> dict[str, Any]:
        d = {n: getattr(self, n) for n in self.__slots__}
        d["argv"] = list(self.argv)
        for k in ("stdout", "stderr"):
            v = d[k]
            if v is not None:
                d[k] = v.decode("utf-8", "replace")
        d["exit_code"] = self.exit_code
        d["cpu_time"] = self.cpu_time
        d["signal_name"] = _signame(self.signal) if self.signal else None
        return d

    def to_json(self) -> str:
        import json

        return json.dumps(self.to_dict(), sort_keys=True)


def _rebuild(d: dict[str, Any]) -> RunResult:
    return RunResult(**d)


def _signame(sig: int | None) -> str:
    if not sig:
        return "?"
    import signal as _signal

    try:
        return _signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"
