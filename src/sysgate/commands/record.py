"""``sysgate record``: run a command, write the profile it needs (see :mod:`sysgate.recorder`).

Exit status: 0 when a profile was written (whatever the command's own status, which the report
gives); 125 with one line when the command cannot be started; 130 (Ctrl-C) or 124 (--timeout)
for an interrupted recording, which writes nothing unless ``--partial``; 2 for bad options.
The profile goes to ``-o`` (written whole or not at all) or stdout; the report to stderr.
"""
from __future__ import annotations

import os
import sys
from typing import Any

from ..errors import EXIT_CANNOT_START as EXIT_NOT_STARTED
from ..errors import EXIT_INTERRUPTED, EXIT_TIMEOUT, UserError

__all__ = ["cmd_record"]


def _split_jail(words: list[str] | None, command: list[str]) -> tuple[list[str] | None, list[str]]:
    """``--in-jail RUN-OPTIONS -- CMD``: the run options, and the command (argparse gives the
    words before ``--`` to --in-jail and the rest to the command, or all of them to --in-jail)."""
    if words is None:
        return None, command
    if "--" in words:
        i = words.index("--")
        return words[:i], words[i + 1:]
    return words, command


def buffer_size(text: str) -> int:
    """``--buffer``'s SIZE in bytes: a whole number, optionally followed by K, M or G (KiB, MiB,
    GiB; a trailing B or iB is allowed, case does not matter), within the range record() takes."""
    from ..recorder import BUFFER_MAX, BUFFER_MIN

    t = text.strip().upper()
    for suffix in ("IB", "B"):
        if t.endswith(suffix) and len(t) > len(suffix) and t[-len(suffix) - 1] in "KMG":
            t = t[:-len(suffix)]
            break
    shift = {"K": 10, "M": 20, "G": 30}.get(t[-1:], 0)
    digits = t[:-1] if shift else t
    if not (digits.isascii() and digits.isdigit()):
        raise UserError(f"record: --buffer {text!r}: not a size (a number of bytes, or with K, M or G: e.g. 16M)")
    n = int(digits[-12:]) << shift if len(digits.lstrip("0")) <= 12 else BUFFER_MAX + 1
    if not BUFFER_MIN <= n <= BUFFER_MAX:
        raise UserError(f"record: --buffer {text}: out of range (64K to 1G per CPU)")
    return n


def _load(spec: str, what: str, arch: str | None) -> Any:
    from ..profiles import resolve

    try:
        return resolve(spec, arch=arch)
    except UserError as e:
        raise UserError(f"{what} {spec}: {e}" if spec not in str(e) else f"{what}: {e}") from None


def cmd_record(args: Any) -> int:
    from ..formats.registry import write
    from ..recorder import CommandNotStarted, RecordingInterrupted, record, tracefs
    from .core import arch_option

    tracefs.detach_cleanup()  # this process exits right after: the instance's removal must not hold it

    in_jail, command = _split_jail(args.in_jail, list(args.command))
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UserError("record: no command given (sysgate record [OPTIONS] -- CMD [ARGS...])")
    arches = arch_option(args.arch) or None
    primary = arches[0] if arches else None
    merge = _load(args.merge, "--merge", primary) if args.merge else None
    base = _load(args.base, "--base", primary) if args.base else None
    buffer = buffer_size(args.buffer) if args.buffer is not None else None
    from ..outfile import preflight

    preflight(args.output)  # before the command runs, not after
    preflight(args.report)
    try:
        policy, report = record(command, method=args.method, default_action=args.default_action,
                                no_args=args.no_args, merge=merge, base=base, arches=arches,
                                timeout=args.timeout, partial=args.partial, in_jail=in_jail, buffer=buffer)
    except CommandNotStarted as e:
        print(f"sysgate: {e}", file=sys.stderr)
        return EXIT_NOT_STARTED
    except RecordingInterrupted as e:
        print(f"sysgate: {e}; nothing written (--partial writes what was seen)", file=sys.stderr)
        return EXIT_TIMEOUT if "timed out" in str(e) else EXIT_INTERRUPTED
    except KeyboardInterrupt:  # before the recording was under way
        print("sysgate: record: interrupted; nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    opts: dict[str, Any] = {}
    if args.to == "firecracker":
        opts["thread"] = "main"
    elif args.to == "k8s":
        stem = os.path.splitext(os.path.basename(args.output or "recorded"))[0].lower()
        opts["name"], opts["namespace"] = "".join(c if c.isalnum() or c in ".-" else "-" for c in stem) or "recorded", \
            "default"
    out = write(policy, args.to, **opts)
    if out.losses and not args.lossy:
        more = f" (and {len(out.losses) - 1} more)" if len(out.losses) > 1 else ""
        raise UserError(f"record: {args.to} cannot hold this profile exactly: {out.losses[0]}{more}; "
                        f"--lossy writes it anyway (--no-args or --default-action may avoid the loss)")
    for line in out.losses:
        print(f"sysgate: loss: {line}", file=sys.stderr)
    if args.report:
        import json

        from ..outfile import write_atomic

        write_atomic(args.report, json.dumps(report.to_dict(), indent=1).encode())
    if not args.quiet:
        print(report.text(), file=sys.stderr)
    from ..outfile import write_output

    write_output(args.output, out.text)
    return 0
