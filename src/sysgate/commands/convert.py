"""``sysgate convert`` and ``sysgate profiles``: profiles from one format to another, and the built-ins.

A conversion that cannot keep every decision fails with one line (exit status 2, nothing
written) unless ``--lossy`` is given; then each loss is listed on stderr and the closest
profile is written. ``--verify`` reads the output back and checks with the emulator that
it decides every boundary-valued call as the input does. ``--allow``/``--deny`` modify the
input first, as they do for ``compile``; ``--caps`` is checked against the kernel's names.
"""
from __future__ import annotations

import os
import re
import sys
from typing import Any

from ..errors import UserError
from .core import arch_option as _arches
from .core import caps_option as _caps
from .core import report_skipped

__all__ = ["cmd_convert", "cmd_profiles", "convert"]


def _k8s_name(source: str) -> str:
    stem = os.path.splitext(os.path.basename(source))[0].lower()
    stem = re.sub(r"[^a-z0-9.-]+", "-", stem).strip("-.")
    return stem or "sysgate"


def _read(source: str, args: Any, thread: str | None = None) -> Any:
    """The input as a registry.Loaded (a built-in name or a file); ``thread``: the Firecracker
    filter to read."""
    from ..formats.registry import Loaded, read
    from ..profiles import BUILTINS, builtin_path

    arches = _arches(getattr(args, "arch", None))
    primary = arches[0] if arches else None
    caps = _caps(getattr(args, "caps", None), source)
    if source in BUILTINS:
        from ..formats import docker

        prof = docker.load(builtin_path(source), arch=primary, caps=caps)
        if arches:
            prof = prof.replace(policy=prof.policy.with_arches(arches))
        from ..profiles.hardening import HARDENED
        from ..profiles.hardening import apply as harden

        if source in HARDENED:  # the name means the file plus sysgate's overlay, as resolve() says
            prof = prof.replace(policy=harden(prof.policy))
        return Loaded(prof.policy, "docker", source, prof)
    if source != "-" and not os.path.exists(source):
        from ..profiles import resolve

        resolve(source)  # raises the one-line "no such profile" error with suggestions
    skipped: list[str] | None = [] if getattr(args, "skip_unknown", False) else None
    loaded = read(source, getattr(args, "from_format", None), arch=primary, arches=arches, caps=caps,
                  thread=thread, unknown_names=skipped,
                  name=getattr(args, "k8s_name", None), rename=True)
    report_skipped(skipped)
    return loaded


def _modifiers(args: Any) -> bool:
    return bool(getattr(args, "allow", None) or getattr(args, "deny", None))


def _modified(policy: Any, args: Any) -> Any:
    """``--allow``/``--deny`` applied to a policy read from any format (as ``compile`` does)."""
    from ..profiles import apply_modifiers

    return apply_modifiers(policy, allow=getattr(args, "allow", ()) or (), deny=getattr(args, "deny", ()) or ())


def convert(source: str, fmt: str, args: Any) -> tuple[Any, Any]:
    """Read ``source`` and write it as ``fmt``: (Exported, the registry.Loaded input or None)."""
    from ..formats import Exported, ProfileError
    from ..formats.registry import write

    thread = getattr(args, "thread", None)
    if fmt == "firecracker" and thread is None and source != "-" and os.path.exists(source):
        from ..formats.detect import detect_file

        if (getattr(args, "from_format", None) or detect_file(source)) == "firecracker":
            from ..formats import firecracker

            arches = _arches(getattr(args, "arch", None))
            ff = firecracker.load(source, arches=arches)
            if _modifiers(args):
                ff = ff.replace(filters={t: _modified(p, args) for t, p in ff.filters.items()})
            return firecracker.export(ff), None
    # --thread selects the filter of a Firecracker input, and names the filter of a Firecracker
    # output; with neither it would change nothing, which is an error rather than ignored.
    read_thread = thread
    if thread is not None:  # (the input is read once more only when --thread asks it)
        from .core import input_kind, kind_phrase

        kind = getattr(args, "from_format", None) or input_kind(source)
        if kind != "firecracker" and fmt != "firecracker":
            raise ProfileError(f"--thread: selects a filter of a Firecracker input or names one of --to "
                               f"firecracker; {source} is {kind_phrase(kind) if kind else 'not Firecracker'} "
                               f"and the output {fmt}")
        if kind not in ("firecracker", None):
            read_thread = None  # it names the output only
    loaded = _read(source, args, read_thread)
    if _modifiers(args):
        policy = _modified(loaded.policy, args)
        extras = loaded.extras.replace(policy=policy) if loaded.extras is not None else None
        loaded = loaded.replace(policy=policy, extras=extras)
    from ..formats import catalog

    # The export options a format takes (formats.catalog), from the command line or their defaults.
    takes = catalog.get(fmt).export_options
    given = {"thread": thread or "main", "name": getattr(args, "k8s_name", None) or _k8s_name(source),
             "namespace": getattr(args, "namespace", None) or "default"}
    opts: dict[str, Any] = {k: v for k, v in given.items() if k in takes}
    if "name" not in takes and (getattr(args, "k8s_name", None) or getattr(args, "namespace", None)):
        raise ProfileError("--name and --namespace are for --to k8s")
    out: Exported = write(loaded, fmt, **opts)
    if loaded.notes:
        out = out.replace(notes=tuple(loaded.notes) + tuple(out.notes))
    return out, loaded


def _verify(text: str, fmt: str, loaded: Any, args: Any) -> None:
    from ..analysis.equivalence import sampled_equivalent
    from ..formats.registry import read_bytes

    arches = _arches(getattr(args, "arch", None)) or list(loaded.policy.arches) or None
    back = read_bytes(text.encode(), f"<{fmt} output>", fmt, arch=arches[0] if arches else None,
                      arches=arches, thread=(getattr(args, "thread", None) or "main") if fmt == "firecracker"
                      else None)
    diff = sampled_equivalent(loaded.policy, back.policy, arches)
    if diff is not None:
        raise UserError(f"--verify: the {fmt} output decides differently: {diff}")


def _emit(out: Any, args: Any, fmt: str, source: str, loaded: Any = None) -> int:
    losses = list(out.losses)
    if losses and not args.lossy:
        more = f" (and {len(losses) - 1} more)" if len(losses) > 1 else ""
        raise UserError(f"{source}: cannot convert exactly to {fmt}: {losses[0]}{more}; "
                        f"--lossy converts anyway and lists every loss")
    for line in losses:
        print(f"sysgate: loss: {line}", file=sys.stderr)
    for line in out.notes:
        print(f"sysgate: note: {line}", file=sys.stderr)
    if getattr(args, "verify", False) and loaded is not None and not losses:
        _verify(out.text, fmt, loaded, args)
    from ..outfile import write_output

    write_output(args.output, out.text)
    return 0


def cmd_convert(args: Any) -> int:
    out, loaded = convert(args.input, args.to, args)
    return _emit(out, args, args.to, args.input, loaded)


def cmd_profiles(args: Any) -> int:
    from ..profiles import BUILTINS, builtin_names, builtin_path

    if getattr(args, "profiles_cmd", None) != "show":
        width = max(len(n) for n in BUILTINS)
        for name in builtin_names():
            print(f"{name:<{width}}  {BUILTINS[name][1]}")
        return 0
    name = args.name
    if name not in BUILTINS:
        import difflib

        close = difflib.get_close_matches(name, list(BUILTINS), n=2)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"{name}: no such built-in profile{hint}; built-ins: {', '.join(builtin_names())}")
    if not args.to:
        # the file as shipped; the options that shape a conversion have nothing to act on
        given = [o for o, v in (("--arch", args.arch), ("--caps", args.caps), ("--lossy", args.lossy)) if v]
        if given:
            raise UserError(f"profiles show: {', '.join(given)} only apply with --to (a conversion)")
        from ..outfile import write_output

        with open(builtin_path(name), "rb") as fh:
            write_output(args.output, fh.read())
        return 0
    out, loaded = convert(name, args.to, args)
    return _emit(out, args, args.to, name, loaded)
