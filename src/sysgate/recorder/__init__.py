"""``sysgate record``: learn a least-privilege profile from real runs of a command.

:func:`record` runs a command, watches its whole process tree and returns a
:class:`Recording`: the profile (a deny-by-default :class:`~sysgate.policy.Policy` allowing
what the tree used, with arguments refined where they are the attack surface) and a
:class:`~.build.Report`. Two recorders, one model (:class:`~.observations.Observations`):

- :mod:`.tracefs` (root, tracefs): kernel tracepoints with filters that grow as calls are
  learned; the program never stops. The default when available.
- :mod:`.ptracer` (anyone): ptrace with seccomp-assisted stops, one stop per call.

:mod:`.refine` turns argument values into conditions, :mod:`.build` turns observations into a
profile (merging an earlier one, honouring a base) and the report. ``sysgate.record`` is this
package's :func:`record` function (the package is ``sysgate.recorder`` so that the attribute
``sysgate.record`` is never rebound to a module by an import).
"""
from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from ..policy import Action, Policy
from .build import EXEC_PATH, Report, build
from .observations import CommandNotStarted, Observations, RecordError, RecordingInterrupted

__all__ = ["record", "Recording", "Report", "Observations", "RecordError", "CommandNotStarted",
           "RecordingInterrupted", "EXEC_PATH", "jail_argv", "METHODS", "BUFFER_MIN", "BUFFER_MAX"]

METHODS = ("auto", "tracefs", "ptrace")
# The tracefs ring buffer a caller may ask for, per CPU: below 64 KiB the 5% watermark would wake
# the reader every few events; above 1 GiB (times the CPUs) it is memory a recording should not take.
BUFFER_MIN, BUFFER_MAX = 64 << 10, 1 << 30


class Recording(NamedTuple):
    """What :func:`record` returns: ``policy, report = sysgate.record([...])``."""

    policy: Policy
    report: Report


def jail_argv(argv: Sequence[str], run_options: Sequence[str] = ()) -> list[str]:
    """The command line that runs ``argv`` inside ``sysgate run`` without a filter (``--in-jail``).

    This very sysgate is run (its directory put on ``sys.path`` by the bootstrap, not through
    PYTHONPATH, which would reach the recorded command's environment with ``--inherit-env``).
    """
    import os

    where = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    boot = f"import sys; sys.path.insert(0, {os.path.dirname(where)!r}); from sysgate.cli import main; sys.exit(main())"
    return [sys.executable, "-c", boot, "run", "--no-seccomp", *run_options, "--", *argv]


def record(argv: Sequence[str], *, method: str = "auto", default_action: Action | str = "errno(EPERM)",
           no_args: bool = False, merge: Policy | None = None, base: Policy | None = None,
           arches: Sequence[str] | None = None, timeout: float | None = None, partial: bool = False,
           in_jail: Sequence[str] | None = None, env: Mapping[str, str] | None = None,
           buffer: int | None = None) -> Recording:
    """Run ``argv`` and return the profile its process tree needs, and a report.

    ``method``: ``auto`` (tracefs when root and available, else ptrace), ``tracefs`` or
    ``ptrace``. ``default_action`` for everything not seen (errno EPERM). ``no_args``: names
    only. ``merge``: an earlier recording to add to. ``base``: a profile whose denials stay
    denied. ``arches``: the ABIs to cover (default: those seen). ``timeout`` seconds, after which
    the tree is killed. An interrupted recording (timeout, Ctrl-C) raises
    :class:`RecordingInterrupted` unless ``partial``, which returns what was seen (report
    ``partial``). ``in_jail``: ``sysgate run`` options; the command is recorded inside the jail
    (without its filter), the jail's own set-up left out. ``buffer``: bytes of tracefs ring
    buffer per CPU (default: the kernel's size for a new instance, at least 1 MiB), for a command
    that makes a storm of calls at once: events lost to a full buffer fail the recording. Raises
    :class:`CommandNotStarted` when the command cannot be started, :class:`RecordError` for
    anything else.
    """
    if method not in METHODS:
        raise RecordError(f"record: unknown method {method!r} (expected one of {', '.join(METHODS)})")
    if buffer is not None:
        if not BUFFER_MIN <= buffer <= BUFFER_MAX:
            raise RecordError(f"record: --buffer {buffer} bytes: out of range (64K to 1G per CPU)")
        if method == "ptrace":
            raise RecordError("record: --buffer sizes the tracefs recorder's ring buffer; --method ptrace has none")
    default = default_action if isinstance(default_action, Action) else Action.parse(default_action)
    if default.kind.name == "ALLOW":
        raise RecordError("record: --default-action allow would make the profile allow everything")
    if isinstance(argv, str):
        raise RecordError(f"record: argv is a list of words, not a string ({argv!r}: give [{argv!r}] or split it)")
    if timeout is not None:
        import math

        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) \
                or not 0 < timeout <= 1e9:
            raise RecordError(f"record: --timeout {timeout!r}: a number of seconds above 0 and at most 1e9")
    argv = list(argv)
    if not argv:
        raise CommandNotStarted("record: no command given")
    jail = in_jail is not None
    if jail:
        # the run options are checked here, as `sysgate run` checks them: a bad one must not
        # be recorded as the inner run failing (exit 0 and a profile of that)
        from ..commands.run import check_run_words

        check_run_words(list(in_jail or ()))
    if jail:
        from .launch import resolve

        resolve(argv, env)  # the jail would report it too, but only after its set-up
        argv = jail_argv(argv, list(in_jail or ()))
    from . import tracefs

    chosen = method
    if method == "auto":
        chosen = "tracefs" if tracefs.available() is None else "ptrace"
    was_partial = False
    try:
        if chosen == "tracefs":
            obs = tracefs.record(argv, env=env, timeout=timeout, jail=jail,
                                 buffer_kb=None if buffer is None else -(-buffer // 1024))
        else:
            from . import ptracer  # ctypes and the tracer only on this path

            # Calls a merged profile already allows outright need no stop (the filter lets them
            # through, as strace --seccomp-bpf does for calls it is not asked to trace).
            known = sorted({r.syscall for r in merge.rules if r.action.kind.name == "ALLOW" and not r.conditions
                            and isinstance(r.syscall, str)}) if merge is not None else []
            obs = ptracer.record(argv, env=env, timeout=timeout, jail=jail, known=known)
            if buffer is not None:
                obs.notes.append("--buffer is unused: the ptrace recorder has no ring buffer")
            if known:
                obs.notes.append(f"{len(known)} calls the merged profile allows were not traced")
    except RecordingInterrupted as e:
        if not partial:
            raise
        obs, was_partial = e.observations, True
    policy, report = build(obs, default=default, no_args=no_args, merge=merge, base=base,
                           arches=list(arches) if arches else None, partial=was_partial)
    if method == "auto" and chosen == "ptrace":
        report.notes.insert(0, f"fast path unavailable ({tracefs.available()}): used ptrace")
    return Recording(policy, report)
