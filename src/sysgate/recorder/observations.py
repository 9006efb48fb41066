"""What a recording saw, independent of how it was seen (tracefs or ptrace).

Both recorders fill one :class:`Observations`: per architecture, the syscall numbers the
process tree entered (with a count that is exact up to 2 and "2 or more" beyond, because the
fast path stops watching a call once it is known), the numbers that returned successfully at
least once (when the recorder watches returns), and for the calls whose arguments are the
attack surface (:mod:`.refine`) the distinct argument values seen. The ptrace recorder runs in
a forked tracer, so the object travels as JSON (:meth:`to_json` / :meth:`from_json`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import UserError

__all__ = ["Observations", "RecordError", "CommandNotStarted", "RecordingInterrupted"]


class RecordError(UserError):
    """Recording could not be done as asked (bad option, tracing unavailable): one line."""


class CommandNotStarted(RecordError):
    """The command could not be started (not found, not executable): ``sysgate record`` exits 125."""


class RecordingInterrupted(RecordError):
    """Ctrl-C or ``--timeout`` ended the recording; ``observations`` holds what was seen so far."""

    def __init__(self, message: str, observations: "Observations") -> None:
        super().__init__(message)
        self.observations = observations


@dataclass
class Observations:
    """Syscalls seen, per arch name (sysgate arch names: ``x86_64``, ``x86``, ...)."""

    method: str                                                     # "tracefs" or "ptrace"
    calls: dict[str, dict[int, int]] = field(default_factory=dict)  # arch -> nr -> count (capped: see module doc)
    succeeded: dict[str, set[int]] | None = None                    # arch -> nrs that returned >= 0; None: not watched
    args: dict[str, dict[int, set[tuple[int, ...]]]] = field(default_factory=dict)  # arch -> nr -> refined arg values
    args_missing: dict[str, set[int]] = field(default_factory=dict)  # arch -> refinable nrs seen without their args
    returncode: int | None = None                                   # the command's, subprocess style
    tasks: int = 0                                                  # processes and threads followed
    elapsed: float | None = None                                    # seconds from the command's start to its end
    notes: list[str] = field(default_factory=list)

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
        return json.dumps({
            "method": self.method,
            "calls": {a: {str(k): v for k, v in d.items()} for a, d in self.calls.items()},
            "succeeded": None if self.succeeded is None else {a: sorted(s) for a, s in self.succeeded.items()},
            "args": {a: {str(k): sorted(list(t) for t in v) for k, v in d.items()} for a, d in self.args.items()},
            "args_missing": {a: sorted(s) for a, s in self.args_missing.items()},
            "returncode": self.returncode, "tasks": self.tasks, "notes": self.notes, "elapsed": self.elapsed,
        })

    @classmethod
    def from_json(cls, text: str) -> "Observations":
        d = json.loads(text)
        succ = d["succeeded"]
        return cls(
            method=d["method"],
            calls={a: {int(k): v for k, v in m.items()} for a, m in d["calls"].items()},
            succeeded=None if succ is None else {a: set(s) for a, s in succ.items()},
            args={a: {int(k): {tuple(t) for t in v} for k, v in m.items()} for a, m in d["args"].items()},
            args_missing={a: set(s) for a, s in d["args_missing"].items()},
            returncode=d["returncode"], tasks=d["tasks"], notes=list(d["notes"]), elapsed=d["elapsed"],
        )
