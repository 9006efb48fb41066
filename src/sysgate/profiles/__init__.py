"""Built-in profiles and the one entry point that turns a profile name or file into a Policy.

``resolve("docker-default")`` and ``resolve("/path/profile")`` are interchangeable
everywhere a profile is taken (``sysgate compile``, ``sysgate run --profile``); a file may be
in any format :mod:`sysgate.formats` reads (detected from its content).
:func:`apply_modifiers` is what ``--allow`` and ``--deny`` do to a profile.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..policy import Action

from ..formats import ProfileError
from ..policy import Policy

__all__ = ["resolve", "builtin_names", "builtin_path", "apply_modifiers", "parse_deny", "BUILTINS",
           "ProfileError"]

_DIR = os.path.dirname(os.path.abspath(__file__))

BUILTINS: dict[str, tuple[str, str]] = {
    # name: (file, one-line description)
    "docker-default": ("docker-default.json", "Docker's default seccomp profile (moby/profiles, Apache-2.0) plus "
                                              "sysgate's hardening overlay (F_SETLEASE, TIOCSTI, TIOCLINUX)"),
    "python": ("python.json", "CPython computing, with files and pipes: no sockets, no new namespaces, no "
                              "exec (install it after the interpreter has started)"),
    "strict": ("strict.json", "read, write, exit, exit_group, sigreturn; everything else kills the process"),
}


def builtin_names() -> list[str]:
    return sorted(BUILTINS)


def builtin_path(name: str) -> str:
    return os.path.join(_DIR, BUILTINS[name][0])


def resolve(spec: str, *, arch: str | None = None, caps: Iterable[str] | None = None,
            arches: Iterable[str] | None = None, thread: str | None = None,
            allow: Iterable[str] = (), deny: Iterable[str] = (), unknown_names: list[str] | None = None,
            name: str | None = None) -> Policy:
    """The Policy for a built-in name or a profile file.

    A built-in name is its file plus :mod:`sysgate.profiles.hardening`'s overlay (``docker-default``,
    ``python``); the file given by path (:func:`builtin_path`) is the file alone.

    ``arch`` is the primary architecture the profile is resolved for (moby's
    ``includes.arches`` and ``archMap``, the values of named constants); ``arches`` overrides
    the covered set; ``caps`` the capability set for moby's ``includes.caps`` (Docker's
    default set when None); ``thread`` picks a Firecracker filter; ``allow``/``deny`` are
    applied last (:func:`apply_modifiers`); ``unknown_names``: a list to collect the syscall names no
    architecture has instead of failing on them (``--skip-unknown``); ``name`` picks the profile of a
    Kubernetes manifest holding several (``--name``).
    """
    archlist = list(arches) if arches else None
    if spec in BUILTINS:
        for opt, value, what in (("--thread", thread, "a filter of a Firecracker file"),
                                 ("--name", name, "a profile of a Kubernetes manifest")):
            if value is not None:  # a built-in is one Docker profile: nothing to select
                raise ProfileError(f"{spec}: {opt}: selects {what}; {spec} is a built-in Docker profile")
        from ..formats import docker

        policy = docker.load(builtin_path(spec), arch=arch, caps=caps, unknown_names=unknown_names).policy
        if archlist:
            policy = policy.with_arches(archlist)
        from .hardening import HARDENED
        from .hardening import apply as harden

        if spec in HARDENED:  # the file stays upstream's; the name means it plus the overlay
            policy = harden(policy)
    else:
        if spec != "-" and not os.path.exists(spec):  # (-: standard input)
            import difflib

            close = difflib.get_close_matches(spec, list(BUILTINS), n=2)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ProfileError(f"{spec}: no such profile file or built-in profile{hint}; built-ins: "
                               + ", ".join(builtin_names()))
        from ..formats.registry import read

        policy = read(spec, arch=arch, arches=archlist, caps=caps, thread=thread, unknown_names=unknown_names,
                      name=name).policy
    allow, deny = list(allow), list(deny)
    if allow or deny:
        policy = apply_modifiers(policy, allow=allow, deny=deny)
    return policy


def parse_deny(spec: str) -> tuple[str, Action]:
    """``NAME`` (errno EPERM), ``NAME:ERRNO`` (a number or ``EACCES``) or ``NAME:ACTION``
    (``kill-process``, ``trap``, ...) -> (name, action)."""
    from ..policy import Action, ActionKind, PolicyError, parse_errno

    name, colon, what = spec.partition(":")
    name = name.strip()
    if not name:
        raise ProfileError(f"--deny {spec!r}: missing syscall name")
    if not colon:
        return name, Action(ActionKind.ERRNO, 1)
    what = what.strip()
    try:
        return name, Action(ActionKind.ERRNO, parse_errno(what))
    except PolicyError:
        pass
    try:
        action = Action.parse(what)
    except PolicyError:
        raise ProfileError(f"--deny {spec!r}: {what!r} is neither an errno (number or name such as EACCES) "
                           f"nor an action") from None
    if action.kind is ActionKind.ALLOW:
        raise ProfileError(f"--deny {spec!r}: use --allow to allow a syscall")
    return name, action


def _names(spec: str, flag: str) -> list[str | int]:
    from ..formats.syscall_names import UnknownName, expand

    try:
        return [int(spec, 0)]
    except ValueError:
        pass
    try:
        return list(expand(spec))
    except UnknownName as e:
        raise ProfileError(f"{flag} {spec}: {e}") from None


def apply_modifiers(policy: Policy, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> Policy:
    """``policy`` with each ``allow`` name allowed and each ``deny`` spec denied, whatever it said.

    A name is a syscall, a ``@group`` or a number; its rules are replaced by one unconditional
    rule. ``deny`` entries are ``NAME[:ERRNO]`` (EPERM by default) or ``NAME:ACTION``
    (:func:`parse_deny`); when a name is both allowed and denied, the denial wins.
    """
    from ..policy import Action, ActionKind, Rule

    decided: dict[str | int, Action] = {}
    for spec in allow:
        for part in str(spec).split(","):
            if part.strip():
                for n in _names(part.strip(), "--allow"):
                    decided[n] = Action(ActionKind.ALLOW)
    for spec in deny:
        for part in str(spec).split(","):
            if part.strip():
                name, action = parse_deny(part)
                for n in _names(name, "--deny"):
                    decided[n] = action
    if not decided:
        return policy
    rules = [r for r in policy.rules if r.syscall not in decided]
    rules += [Rule(n, a) for n, a in decided.items() if a != policy.default]
    return policy.with_rules(rules)
