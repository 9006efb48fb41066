"""What a recording saw, independent of how it was seen (tracefs or ptrace).

Both recorders fill one :class:`Observations`: per architecture, the syscall numbers the
process tree entered (with a count that is exact up to 2 and "2 or more" beyond, because the
fast path stops watching a call once it is known), the numbers that returned successfully at
least once (when the recorder watches returns), and for the calls whose arguments are the
attack surface (:mod:`.refine`) the distinct argument values seen. The ptrace recorder runs in
a forked tracer, so the object travels as JSON (:meth:`to_json` / :meth:`from_json`).
"""
from __future__ import annotations

from ..errors import UserError

__all__ = ["Observations", "RecordError", "CommandNotStarted", "RecordingInterrupted"]


class RecordError(UserError):
    """Recording could not be done as asked (bad option, tracing unavailable): one line."""


class CommandNotStarted(RecordError):
    """The command could not be started (not found, not executable): ``sysgate record`` exits 125."""


class RecordingInterrupted(RecordError):
    """Ctrl-C or ``--timeout`` ended the recording; ``observations`` holds what was seen so far."""

    def __init__(self, message: str, observations: Observations) -> None:
        super().__init__(message)
        self.observations = observations


class Observations:
    """Syscalls seen, per arch name (sysgate arch names: ``x86_64``, ``x86``, ...).

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect`` (~15 ms on every
    ``sysgate record`` start, see :mod:`sysgate.immutable`).
    """

    def __init__(self, method: str, succeeded: dict[str, set[int]] | None = None) -> None:
        self.method = method                                    # "tracefs" or "ptrace"
        self.calls: dict[str, dict[int, int]] = {}             # arch -> nr -> count (capped: see module doc)
        self.succeeded = succeeded                              # arch -> nrs that returned >= 0; None: not watched
        self.args: dict[str, dict[int, set[tuple[int, ...]]]] = {}  # arch -> nr -> refined arg values
        self.args_missing: dict[str, set[int]] = {}             # arch -> refinable nrs seen without their args
        self.returncode: int | None = None                      # the command's, subprocess style
        self.tasks = 0                                          # processes and threads followed
        self.elapsed: float | None = None                       # seconds from the command's start to its end
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"Observations({self.method!r}, {sum(len(v) for v in self.calls.values())} numbers, tasks={self.tasks})"

    def saw(self, arch: str, nr: int, n: int = 1) -> None:
        per = self.calls.setdefault(arch, {})
        per[nr] = per.get(nr, 0) + n

    def saw_args(self, arch: str, nr: int, values: tuple[int, ...]) -> None:
        self.args.setdefault(arch, {}).setdefault(nr, set()).add(values)

    def saw_success(self, arch: str, nr: int) -> None:
        if self.succeeded is None:
            self.succeeded = {}
        self.succeeded.setdefault(arch, set()).add(nr)

    def to_json(self) -> str:
        import json  # the ptrace path only

        return json.dumps({
            "method": self.method,
            "calls": {a: {str(k): v for k, v in d.items()} for a, d in self.calls.items()},
            "succeeded": None if self.succeeded is None else {a: sorted(s) for a, s in self.succeeded.items()},
            "args": {a: {str(k): sorted(list(t) for t in v) for k, v in d.items()} for a, d in self.args.items()},
            "args_missing": {a: sorted(s) for a, s in self.args_missing.items()},
            "returncode": self.returncode, "tasks": self.tasks, "notes": self.notes, "elapsed": self.elapsed,
        })

    @classmethod
    def from_json(cls, text: str) -> Observations:
        import json

        d = json.loads(text)
        succ = d["succeeded"]
        obs = cls(d["method"], None if succ is None else {a: set(s) for a, s in succ.items()})
        obs.calls = {a: {int(k): v for k, v in m.items()} for a, m in d["calls"].items()}
        obs.args = {a: {int(k): {tuple(t) for t in v} for k, v in m.items()} for a, m in d["args"].items()}
        obs.args_missing = {a: set(s) for a, s in d["args_missing"].items()}
        obs.returncode, obs.tasks, obs.notes, obs.elapsed = d["returncode"], d["tasks"], list(d["notes"]), d["elapsed"]
        return obs
