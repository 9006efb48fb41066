"""systemd unit drop-ins: ``SystemCallFilter=``, ``SystemCallErrorNumber=``, ``SystemCallArchitectures=``.

::

    [Service]
    SystemCallArchitectures=native
    SystemCallFilter=@system-service
    SystemCallFilter=~@privileged @resources
    SystemCallErrorNumber=EPERM

Read as systemd does: the first ``SystemCallFilter=`` decides between an allow list and (with
``~``) a deny list; later lines of the same kind add names, of the other kind remove them; an
empty assignment resets. An allow list always includes ``@default`` (systemd adds it, so
that the service can exec and exit). A deny list may give one syscall its own errno
(``~mount:EACCES``). Denied calls fail with ``SystemCallErrorNumber=`` or, if unset (or
``kill``), kill the process. Groups are systemd's (:mod:`sysgate.syscall_groups`).
``SystemCallArchitectures=`` lists the ABIs allowed at all (``native`` is the machine's);
calls through any other are killed. Without it the policy covers the architectures it is
compiled for. Other settings of the unit are ignored.

systemd filters cannot test arguments nor use actions other than allow, errno and kill, so
writing a policy with those is lossy.
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from .. import arch as _arch
from ..policy import Action, ActionKind, Policy, PolicyError, Rule
from . import Exported, Loaded, ProfileError, decode_text, read_file

__all__ = ["SystemdDropIn", "loads", "load", "export", "detect_text", "SYSTEMD_ARCH"]

KEYS = ("SystemCallFilter", "SystemCallErrorNumber", "SystemCallArchitectures")
# systemd's names for architectures -> sysgate's.
SYSTEMD_ARCH = {a.systemd: a.name for a in _arch.ARCHES if a.systemd}
_TO_SYSTEMD = {v: k for k, v in SYSTEMD_ARCH.items()}
_KILL = Action(ActionKind.KILL_PROCESS)
_ALLOW = Action(ActionKind.ALLOW)
_WRAP = 100


SystemdDropIn = Loaded  # what loads() returns: the policy, and notes on settings that were ignored


def _short(text: str) -> str:
    """``text`` cut for an error message (a hostile file can have megabyte-long words)."""
    return text if len(text) <= 60 else text[:40] + f"... ({len(text)} characters)"


def _errno(value: str, arch: _arch.Arch, where: str) -> int:
    v = value.strip()
    if len(v) > 32:  # no errno name or number is this long (and int() refuses 4,300 digits)
        raise ProfileError(f"{where}: {v[:20]!r}... ({len(v)} characters) is not an errno name or number")
    try:
        n = int(v, 0)
    except ValueError:
        from ..constants import UnknownConstant, lookup

        if not v.upper().startswith("E"):
            raise ProfileError(f"{where}: {value!r} is not an errno name or number") from None
        try:
            n = lookup(v.upper(), arch)
        except UnknownConstant:
            raise ProfileError(f"{where}: unknown errno {value!r}") from None
    if not 0 <= n <= 4095:
        raise ProfileError(f"{where}: errno {n} out of range 0-4095")
    return n


class _Place:
    """Where the reader is (an assignment's first and last line, the word it reads), so that an
    error shows that line with a caret under the word."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.start = self.end = 0
        self.word = ""

    def show(self, e: ProfileError) -> ProfileError:
        if e.source_line is not None or not 0 < self.start <= len(self.lines):
            return e
        for n in range(self.start, min(self.end, len(self.lines)) + 1):
            raw = self.lines[n - 1]
            i = raw.find(self.word, raw.find("=") + 1 if n == self.start and self.word else 0) if self.word else -1
            if i >= 0:
                return e.at(raw, i + 1)
        return e.at(self.lines[self.start - 1], 0)


def _lines(text: str, source: str, at: _Place) -> Iterable[tuple[int, str, str, str]]:
    """(line number, section, key, value) for each assignment; continuation lines joined."""
    section = ""
    pending = ""
    start = 0
    for n, raw in enumerate(at.lines, 1):
        line = raw.strip()
        if pending:
            line = pending + " " + line
        elif not line or line[0] in "#;":
            continue
        else:
            start = n
        at.start, at.end, at.word = start, n, ""
        if line.endswith("\\"):
            pending = line[:-1].rstrip()
            continue
        pending = ""
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise ProfileError(f"{source}:{start}: expected KEY=VALUE or [Section], got {line[:40]!r}")
        yield start, section, key.strip(), value.strip()
    if pending:
        raise ProfileError(f"{source}:{start}: continuation line at end of file")


_SECTION = re.compile(r"(?m)^\s*\[[A-Za-z][A-Za-z0-9-]*\]\s*$")
_KEY = re.compile(r"(?m)^\s*SystemCall(?:Filter|ErrorNumber|Architectures|Log)\s*=")


def detect_text(text: str, name: str | None) -> float:
    """Near certain for a ``SystemCall*=`` key in a ``[Section]`` (a manifest saying ``kind:
    SeccompProfile`` wins); likely for the key alone in a ``.conf``."""
    if not _KEY.search(text):
        return 0.0
    if _SECTION.search(text):
        return 0.95
    return 0.6 if (name or "").lower().endswith(".conf") else 0.0


def loads(text: str, source: str = "<drop-in>", *, arch: str | None = None) -> SystemdDropIn:
    try:
        primary = _arch.get(arch) if arch else _arch.native()
    except _arch.UnknownArch as e:
        raise ProfileError(str(e)) from None
    at = _Place(text.splitlines())
    try:
        return _read(text, source, primary, at)
    except ProfileError as e:
        raise at.show(e) from None


def _read(text: str, source: str, primary: _arch.Arch, at: _Place) -> SystemdDropIn:
    from .syscall_names import UnknownName, expand

    mode: str | None = None
    names: dict[str, int | None] = {}  # name -> own errno (deny lists), None: the common action
    errno_setting: int | None = None  # None: kill
    arches: list[str] = []
    ignored: list[str] = []
    for n, _section, key, value in _lines(text, source, at):
        where = f"{source}:{n}: {key}="
        at.word = key
        if key == "SystemCallFilter":
            if not value:
                mode, names = None, {}
                continue
            invert = value.startswith("~")
            items = value[1:].split() if invert else value.split()
            if mode is None:
                mode = "deny" if invert else "allow"
                if mode == "allow":
                    names.update((m, None) for m in expand("@default"))
            adding = (mode == "deny") == invert
            for item in items:
                at.word = item
                name, colon, err = item.partition(":")
                try:
                    members = expand(name)
                except UnknownName as e:
                    raise ProfileError(f"{where}: {e}") from None
                own = None
                if colon:
                    if mode != "deny" or not adding:
                        raise ProfileError(f"{where}: an errno ({_short(item)}) is only allowed in a deny list (~)")
                    own = _errno(err, primary, where)
                for m in members:
                    if adding:
                        names[m] = own
                    else:
                        names.pop(m, None)
        elif key == "SystemCallErrorNumber":
            at.word = value
            errno_setting = None if value in ("", "kill") else _errno(value, primary, where)
        elif key == "SystemCallArchitectures":
            if not value:
                arches = []
                continue
            for word in value.split():
                at.word = word
                if word == "native":
                    a = primary.name
                elif word in SYSTEMD_ARCH:
                    a = SYSTEMD_ARCH[word]
                else:
                    raise ProfileError(f"{where}: unknown architecture {_short(word)!r} (expected native or one of "
                                       f"{', '.join(SYSTEMD_ARCH)})")
                if a not in arches:
                    arches.append(a)
        elif key.startswith("SystemCall"):
            raise ProfileError(f"{where}: not supported by sysgate (only {', '.join(KEYS)})")
        elif key not in ignored:
            ignored.append(key)
    deny = _KILL if errno_setting is None else Action(ActionKind.ERRNO, errno_setting)
    if mode == "allow":
        default, rules = deny, [Rule(m, _ALLOW) for m in names]
    elif mode == "deny":
        default = _ALLOW
        rules = [Rule(m, deny if own is None else Action(ActionKind.ERRNO, own)) for m, own in names.items()]
    else:
        default, rules = _ALLOW, []
    at.start = 0  # what follows is about the whole file
    notes = (f"{source}: ignored settings that are not about syscalls: {', '.join(ignored)}",) if ignored else ()
    try:
        return SystemdDropIn(Policy(default, tuple(rules), tuple(arches)), notes)
    except PolicyError as e:
        raise ProfileError(f"{source}: {e}") from None


def load(path: str, **kw: object) -> SystemdDropIn:
    text = decode_text(read_file(path), path)
    return loads(text, path, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------- writer

def _wrap(prefix: str, items: list[str]) -> list[str]:
    out: list[str] = []
    cur: list[str] = []
    for it in items:
        if cur and len(prefix) + len(" ".join(cur + [it])) > _WRAP:
            out.append(prefix + " ".join(cur))
            cur = []
        cur.append(it)
    if cur:
        out.append(prefix + " ".join(cur))
    return out


def export(policy: Policy, *, section: str = "Service") -> Exported:
    """The policy as a drop-in (``[Service]`` section), with its losses."""
    from collections import Counter

    from . import logic as L
    from .docker import syscall_name
    from .syscall_names import expand

    losses: list[str] = []
    # What each syscall gets unconditionally; argument tests cannot be written.
    decided: dict[str, Action] = {}
    for syscall in policy.syscalls():
        name = syscall_name(syscall, policy, "systemd", losses)
        if name is None:
            continue
        action = policy.default
        for conds, a in L.strictest_first(policy.rules_for(syscall)):
            if conds:
                losses.append(f"{name}: systemd cannot test arguments; rule '{Rule(syscall, a, conds)}' dropped")
            else:
                action = a
                break
        decided[name] = action
    d = policy.default
    lines = ["# generated by sysgate", f"[{section}]"]
    arch_names = []
    for arch_name in policy.arches:
        if arch_name in _TO_SYSTEMD:
            arch_names.append(_TO_SYSTEMD[arch_name])
        else:
            losses.append(f"systemd cannot name architecture {arch_name}")
    if arch_names:
        lines.append("SystemCallArchitectures=" + " ".join(arch_names))
    if policy.bad_arch != _KILL:
        losses.append(f"systemd kills calls through other architectures (policy: {policy.bad_arch})")

    def deny_ok(a: Action) -> bool:
        return a == _KILL or (a.kind is ActionKind.ERRNO and a.data > 0)

    if d == _ALLOW:
        denied = {n: a for n, a in decided.items() if a != _ALLOW}
        bad = {n: a for n, a in denied.items() if not deny_ok(a)}
        for n, a in bad.items():
            losses.append(f"{n}: systemd can only allow, fail with an errno or kill; {a} dropped")
        denied = {n: a for n, a in denied.items() if n not in bad}
        common = Counter(denied.values()).most_common(1)[0][0] if denied else _KILL
        if common.kind is ActionKind.ERRNO:
            lines.append(f"SystemCallErrorNumber={common.data}")
        items = []
        for n in sorted(denied):
            a = denied[n]
            if a == common:
                items.append(n)
            elif a.kind is ActionKind.ERRNO:
                items.append(f"{n}:{a.data}")
            else:
                losses.append(f"{n}: kill-process next to SystemCallErrorNumber={common.data} cannot be written; "
                              f"written as errno {common.data}")
                items.append(n)
        lines.extend(_wrap("SystemCallFilter=~", items))
    else:
        if not deny_ok(d):
            losses.append(f"systemd's default can only be allow, an errno (1-4095) or kill; the policy's is {d}, "
                          f"written as kill")
        elif d.kind is ActionKind.ERRNO:
            lines.append(f"SystemCallErrorNumber={d.data}")
        allowed = sorted(n for n, a in decided.items() if a == _ALLOW)
        for n, a in sorted(decided.items()):
            if a not in (_ALLOW, d):
                losses.append(f"{n}: an allow list cannot give one syscall its own action ({a}); "
                              f"written as the default ({d})")
        tables = [_arch.get(a) for a in policy.arches] or [_arch.native()]
        implied = [m for m in expand("@default")
                   if m not in allowed and any(t.has(m) for t in tables)]
        if implied:
            losses.append(f"systemd adds @default to every allow list, so these would be allowed too: "
                          f"{', '.join(implied)}")
        lines.extend(_wrap("SystemCallFilter=", allowed or ["@default"]))
    return Exported("\n".join(lines) + "\n", tuple(losses))
