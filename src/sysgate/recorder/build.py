"""From observations to a profile and a report: names, refined arguments, merge and base.

The profile is deny-by-default (``errno(EPERM)`` unless told otherwise) and allows exactly the
calls seen, per architecture seen. sysgate's policy model names calls across all the arches a
policy covers, so a call seen on one ABI is allowed by name on each covered ABI (the report
lists the arches; a call number with no name on its ABI cannot be written and is reported).
Added to what was seen: what the jail's own exec path needs once the filter is loaded
(:data:`EXEC_PATH`), so that ``sysgate run --profile`` starts the command it was recorded on.

``merge``: an earlier profile's allow rules are OR-ed with the new ones (an unconditional allow
absorbs conditional ones), its other rules kept; the report says what this run added.
``base``: every call the base profile denies stays denied: names it refuses outright are
dropped (and reported), its conditional denials are carried over (the strictest rule wins),
and where the base allows a name only under conditions those conditions are kept.
"""
from __future__ import annotations

from ..arch import get as get_arch
from ..policy import ALLOW, Action, ActionKind, Policy, Rule
from . import refine
from .observations import Observations

__all__ = ["EXEC_PATH", "Report", "build"]

#: Calls the jail makes itself under the loaded filter: its execve of the command (the recorder
#: sees the command's own first execve only from its exec event on), and reporting a failed one.
EXEC_PATH = ("execve", "write", "exit_group")

# Never "returned": their absence among successful returns is no error path.
_NO_RETURN = {"exit", "exit_group", "rt_sigreturn", "sigreturn", "restart_syscall", "execve", "execveat"}


class Report:
    """What a recording found and decided; :meth:`text` is the human form.

    A plain class, not a dataclass: ``dataclasses`` imports ``inspect`` (~15 ms on every
    ``sysgate record`` start, see :mod:`sysgate.immutable`).
    """

    def __init__(self, method: str, arches: list[str], allowed: list[str], added: list[str], *,
                 refined: list[str] | None = None, names_only: list[str] | None = None,
                 seen_once: list[str] | None = None, error_only: list[str] | None = None,
                 denied_by_base: list[str] | None = None, exec_path: list[str] | None = None,
                 notes: list[str] | None = None, returncode: int | None = None, tasks: int = 0,
                 partial: bool = False, elapsed: float | None = None) -> None:
        self.method = method
        self.arches = arches
        self.allowed = allowed                          # names the profile allows
        self.added = added                              # of those, what this run added (all, without --merge)
        self.refined = refined or []                    # one phrase per refined call
        self.names_only = names_only or []              # refinable calls kept as names, and why
        self.seen_once = seen_once or []
        self.error_only = error_only                    # None: returns not watched (ptrace path)
        self.denied_by_base = denied_by_base or []
        self.exec_path = exec_path or []                # added for the jail, not seen
        self.notes = notes or []
        self.returncode = returncode
        self.tasks = tasks
        self.partial = partial
        self.elapsed = elapsed                          # the command's own run time, seconds

    def __repr__(self) -> str:
        return f"Report({self.method!r}, allowed={len(self.allowed)}, returncode={self.returncode})"

    def text(self) -> str:
        lines = [f"recorded with {self.method}: {self.tasks} task(s), exit status {self.returncode}"
                 + (" (PARTIAL: interrupted)" if self.partial else ""),
                 f"arches: {', '.join(self.arches)}",
                 f"allowed: {len(self.allowed)} syscalls; added by this run: "
                 + (", ".join(self.added) if self.added else "nothing new")]
        if self.exec_path:
            lines.append("added for the jail's exec path: " + ", ".join(self.exec_path))
        for r in self.refined:
            lines.append(f"refined: {r}")
        for r in self.names_only:
            lines.append(f"names only: {r}")
        if self.denied_by_base:
            lines.append("kept denied by the base profile: " + ", ".join(self.denied_by_base))
        if self.seen_once:
            lines.append("warning: seen only once (a rarer path may need more): " + ", ".join(self.seen_once))
        if self.error_only is None:
            lines.append("note: returns not watched on this path: error-only calls not detected")
        elif self.error_only:
            lines.append("warning: seen only failing (error paths): " + ", ".join(self.error_only))
        lines.extend(f"note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The fields, in the order above, as JSON-ready values (lists copied)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in vars(self).items()}


def _allowed_names(policy: Policy) -> set[str]:
    return {r.syscall for r in policy.rules if r.action.kind is ActionKind.ALLOW and isinstance(r.syscall, str)}


def _combine(rules: list[Rule]) -> list[Rule]:
    """OR-ed allow rules of one name, without duplicates; an unconditional one absorbs the rest."""
    out: list[Rule] = []
    for r in rules:
        if not r.conditions:
            return [Rule(r.syscall, ALLOW, ())]
        if r not in out:
            out.append(r)
    return out


def build(obs: Observations, *, default: Action, no_args: bool = False, merge: Policy | None = None,
          base: Policy | None = None, arches: list[str] | None = None, partial: bool = False) -> tuple[Policy, Report]:
    """The profile and report for ``obs`` (see the module doc)."""
    notes = list(obs.notes)
    seen_arches = [a for a in obs.calls if obs.calls[a]]
    # name -> arches it was seen on; name -> total count; name -> refined values (None: unknown)
    where: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    values: dict[str, set[tuple[int, ...]] | None] = {}
    for arch, per in obs.calls.items():
        try:
            table = get_arch(arch)
        except ValueError:
            notes.append(f"calls of unknown ABI {arch} cannot be written")
            continue
        for nr, n in per.items():
            name = table.name_of(nr)
            if name is None:
                notes.append(f"{arch} syscall number {nr} has no name: not allowed")
                continue
            where.setdefault(name, []).append(arch)
            counts[name] = counts.get(name, 0) + n
            if name in refine.SPECS and not no_args:
                known = values.get(name, set())
                if known is None or nr in obs.args_missing.get(arch, ()) or nr not in obs.args.get(arch, {}):
                    values[name] = None
                else:
                    values[name] = known | obs.args[arch][nr]
    exec_path = [n for n in EXEC_PATH if n not in where]
    rules: dict[str, list[Rule]] = {}
    refined, names_only = [], []
    for name in sorted(where):
        if name in refine.SPECS and not no_args:
            vals = values.get(name)
            rules[name] = refine.rules(name, vals)
            if vals and rules[name][0].conditions:
                refined.append(refine.describe(name, vals))
            elif vals is None:
                names_only.append(f"{name}: arguments not seen on {', '.join(where[name])}")
        else:
            rules[name] = [Rule(name, ALLOW, ())]
            if name in refine.BEHIND_POINTER and not no_args:
                names_only.append(f"{name}: {refine.BEHIND_POINTER[name]}")
    for name in exec_path:
        rules[name] = [Rule(name, ALLOW, ())]
    other: list[Rule] = []  # non-allow rules carried over from merge/base
    before: set[str] = set()
    if merge is not None:
        before = _allowed_names(merge)
        for r in merge.rules:
            if r.action.kind is ActionKind.ALLOW and isinstance(r.syscall, str):
                rules.setdefault(r.syscall, []).append(r)
            elif r not in other:
                other.append(r)
    denied_by_base: list[str] = []
    if base is not None:
        for name in sorted(rules):
            brules = base.rules_for(name)
            allows = [r for r in brules if r.action.kind is ActionKind.ALLOW]
            if not brules and base.default.kind is not ActionKind.ALLOW or \
                    any(not r.conditions and r.action.kind is not ActionKind.ALLOW for r in brules) or \
                    (brules and not allows and base.default.kind is not ActionKind.ALLOW):
                denied_by_base.append(name)
                del rules[name]
                continue
            other.extend(r for r in brules if r.action.kind is not ActionKind.ALLOW and r not in other)
            if allows and all(r.conditions for r in allows) and base.default.kind is not ActionKind.ALLOW:
                mine = _combine(rules[name])
                if not mine[0].conditions:  # ours allows any arguments: the base's conditions bound it
                    rules[name] = allows
                else:
                    notes.append(f"{name}: both the base and the recording restrict arguments; the recorded "
                                 f"conditions are kept, check them against the base's")
    final: list[Rule] = []
    for name in sorted(rules):
        final.extend(_combine(rules[name]))
    final.extend(other)
    covered = list(arches) if arches else list(seen_arches)
    if merge is not None:
        covered += [a for a in merge.arches if a not in covered]
    if not covered:
        from ..arch import native

        covered = [native().name]
    for a in seen_arches:
        if arches and a not in [get_arch(c).name for c in covered]:
            notes.append(f"calls were made through {a}, which --arch leaves out: the profile refuses that ABI "
                         f"outright")
    policy = Policy(default, tuple(final), tuple(covered))
    allowed = sorted(_allowed_names(policy))
    error_only = None
    if obs.succeeded is not None:
        ok_names = set()
        for arch, nrs in obs.succeeded.items():
            try:
                t = get_arch(arch)
            except ValueError:
                continue
            ok_names |= {t.name_of(n) for n in nrs}
        error_only = sorted(n for n in where if n not in ok_names and n not in _NO_RETURN)
    report = Report(
        method=obs.method, arches=list(policy.arches), allowed=allowed,
        added=sorted(n for n in where if n not in before and n not in denied_by_base),
        refined=refined, names_only=names_only,
        seen_once=sorted(n for n, c in counts.items() if c == 1 and n not in _NO_RETURN),
        error_only=error_only, denied_by_base=denied_by_base, exec_path=exec_path, notes=notes,
        returncode=obs.returncode, tasks=obs.tasks, partial=partial, elapsed=obs.elapsed)
    return policy, report
