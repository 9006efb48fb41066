"""``sysgate run``: run a command in the jail (:mod:`sysgate.jail`), from the command line.

``sysgate run [OPTIONS] [--] CMD [ARGS...]``. The options are the jail's table
(:data:`sysgate.jail.options.FIELDS`) plus this command's own (:data:`COMMAND_FLAGS`: the
result as JSON, ``--strict``); the parser, the :class:`~sysgate.jail.options.Options` record and
the list in docs/jail.md all come from those two tables.

Exit status like bubblewrap (:mod:`sysgate.errors` names them): the command's code, 128+N when
signal N killed it (159: a seccomp kill), 124 on ``--timeout``, 125 with a one-line reason when
the sandbox could not be set up, 126/127 when the command could not be executed / was not found
inside; 2 for bad options.
"""
from __future__ import annotations

import os
import sys

from ..jail.options import FIELDS, GROUPS, Flag

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator, Sequence
    from typing import Any

    from ..jail.options import Options

__all__ = ["COMMAND_FLAGS", "flags", "add_parser", "Args", "read_plain", "command_of", "options_from_args", "cmd_run"]

#: ``sysgate run``'s own options: how it reports, and how strictly it reads a profile file (read
#: by the CLI's warning filter). They set no sandbox field.
COMMAND_FLAGS: tuple[Flag, ...] = (
    Flag("--strict", "switch", "refuse profile fields the format's own tool would ignore (default: one warning "
                               "line each)", group="seccomp"),
    Flag("--json", "switch", "print the result as one JSON line on stdout at the end", group="reporting"),
    Flag("--status-fd", help="write the JSON result to this fd", metavar="FD", type=int, group="reporting"),
    Flag(("-q", "--quiet"), "switch", "no note on stderr when the command is killed", group="reporting"),
)

DESCRIPTION = (
    "Run CMD in a sandbox: user, mount, PID, network, IPC, UTS and cgroup namespaces, a\n"
    "read-only view of the host root with private /tmp, minimal /dev and fresh /proc, all\n"
    "capabilities dropped, no_new_privs, every fd but 0-2 closed, a cleared environment,\n"
    "and a seccomp filter (docker-default) loaded last. Works as root and unprivileged.")

EPILOG = (
    "sizes take K, M or G (64M); cgroup limits use cgroup v2 or v1 (--json says which).\n\n"
    "exit status: the command's own; 128+N when signal N killed it (159: SIGSYS, a seccomp\n"
    "kill); 124 when --timeout expired; 125 when the sandbox could not be set up (one line on\n"
    "stderr); 126/127 when CMD could not be executed / was not found inside; 2 for bad options.\n\n"
    "examples:\n"
    "  sysgate run -- sh -c 'echo hi; id'\n"
    "  sysgate run --memory 64M --pids 32 --timeout 5 -- python3 job.py\n"
    "  sysgate run --bind ./work:/work --chdir /work --net host -- make\n"
    "  sysgate run --json --deny ptrace:kill-process -- gdb -p 1\n"
    "  sysgate run --profile strict -- /bin/true    # dies of SIGSYS at execve: status 159")


def flags() -> Iterator[Flag]:
    """Every flag of ``sysgate run``, in ``--help`` order: by group, the jail's then the command's."""
    for group in GROUPS:
        for field in FIELDS:
            yield from (f for f in field.flags if f.group == group)
        yield from (f for f in COMMAND_FLAGS if f.group == group)


def add_parser(subparsers: Any, func: Any) -> argparse.ArgumentParser:
    """Register ``run`` on an argparse subparsers object, with ``func`` as its ``func`` default."""
    import argparse

    p = subparsers.add_parser(
        "run", help="run a command in a sandbox (namespaces, limits, no privileges, seccomp)",
        usage="sysgate run [OPTIONS] -- CMD [ARGS...]", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=DESCRIPTION, epilog=EPILOG)
    groups: dict[str, Any] = {}
    for f in flags():
        group = f.group or "options"  # (every flag of the tables has one)
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        kw: dict[str, Any] = {"dest": f.dest, "help": argparse.SUPPRESS if f.hidden else f.help}
        if f.kind == "switch":
            kw["action"] = "store_true"
        else:
            kw["action"] = "append" if f.kind == "append" else "store"
            for key in ("metavar", "type", "choices"):
                if getattr(f, key) is not None:
                    kw[key] = getattr(f, key)
        groups[group].add_argument(*f.names, **kw)
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARGS...]", help="the command (after --)")
    p.set_defaults(func=func)
    return p


class Args:
    """A parsed ``sysgate run`` command line, as :func:`read_plain` makes it: the attributes
    argparse's ``Namespace`` would have."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"Args({vars(self)!r})"


def read_plain(words: Sequence[str], func: Any) -> Args | None:
    """``sysgate run``'s words read without argparse, or None: then argparse reads them.

    The command's start-up is the figure of this program (argparse and the ``re`` it imports are
    ~10 ms of a ~12 ms ``python -I -S`` on the benchmark host), and most command lines are plain:
    exact option names from the same table the argparse parser is made from, each value as a
    separate word or after ``=``, then the command. Anything else (``-h``, an abbreviation, a
    missing or option-like value, a type or choice argparse would refuse) returns None, so every
    message and every corner of argparse's reading stays argparse's own. A property test checks that
    both read every command line alike."""
    table: dict[str, Flag] = {}
    values: dict[str, Any] = {}
    for f in flags():
        for name in f.names:
            table[name] = f
        values[f.dest] = False if f.kind == "switch" else None
    i, n = 0, len(words)
    while i < n:
        word = words[i]
        if word[:1] != "-" or word in ("-", "--"):
            break  # the command (argparse's REMAINDER: everything from here, a "--" included)
        name, eq, value = word.partition("=") if word[:2] == "--" else (word, "", "")
        flag = table.get(name)
        if flag is None:
            return None
        i += 1
        if flag.kind == "switch":
            if eq:
                return None
            values[flag.dest] = True
            continue
        if not eq:
            if i == n:
                return None
            value, i = words[i], i + 1
        if value[:1] == "-":
            return None  # a negative number or an option where a value is due: argparse's rules
        if flag.type is not None:
            try:
                value = flag.type(value)
            except (TypeError, ValueError):
                return None
        if flag.choices is not None and value not in flag.choices:
            return None
        values[flag.dest] = (values[flag.dest] or []) + [value] if flag.kind == "append" else value
    for word in words[i:]:
        if word == "--":
            break  # argparse reads no option after it
        if word[:1] == "-" and word not in table and _abbreviates(word, table):
            return None  # argparse refuses an ambiguous abbreviation even inside the command
    values["command"] = list(words[i:])
    values["func"] = func
    return Args(values)


def _abbreviates(word: str, table: dict[str, Flag]) -> bool:
    """Whether argparse could take ``word`` for an abbreviation of an option (of ``table`` or its
    ``-h``/``--help``)."""
    names = (*table, "-h", "--help")
    if word[:2] == "--":
        prefix = word.partition("=")[0]
        return any(n.startswith(prefix) for n in names)
    return len(word) > 1 and any(n == word[:2] or n.startswith(word) for n in names)


def check_run_words(words: list[str]) -> Options:
    """``sysgate run`` option words (``record --in-jail``'s) checked as ``sysgate run`` checks them:
    the Options they make, or :class:`~sysgate.errors.BadArgument` naming the bad one."""
    import argparse

    from ..errors import BadArgument

    class Refusing(argparse.ArgumentParser):
        def error(self, message: str) -> Any:
            raise BadArgument(f"--in-jail: {message}")

    sub = Refusing(prog="sysgate", add_help=False).add_subparsers(parser_class=Refusing)
    parser = add_parser(sub, None)
    args = parser.parse_args([*words, "--", "true"])
    return options_from_args(args)


def command_of(args: Any) -> list[str]:
    """The command a parsed command line runs (argparse keeps the ``--`` before it)."""
    cmd = list(args.command)
    return cmd[1:] if cmd[:1] == ["--"] else cmd


def options_from_args(args: Any) -> Options:
    """The sandbox :class:`~sysgate.jail.options.Options` a parsed ``sysgate run`` command line asks for."""
    from ..jail.options import Options, kwargs_from_flags

    return Options(**kwargs_from_flags(lambda dest: getattr(args, dest, None)))


def _status_fd(fd: int | None) -> None:
    """``--status-fd``: checked before the command runs, not when its result is written."""
    if fd is None:
        return
    from ..errors import BadArgument

    if not 0 <= fd < 1 << 31:
        raise BadArgument(f"--status-fd: {fd} is not a file descriptor number")
    try:
        os.fstat(fd)
    except OSError as e:
        raise BadArgument(f"--status-fd: {fd}: {e.strerror}") from None


def cmd_run(args: Any) -> int:
    """Run the sandbox; returns the exit status. Bad options raise :class:`~sysgate.errors.BadArgument`."""
    from ..errors import BadArgument

    cmd = command_of(args)
    if not cmd:
        raise BadArgument("run: no command given (sysgate run [OPTIONS] -- CMD [ARGS...])")
    opts = options_from_args(args)
    _status_fd(args.status_fd)
    import gc

    from .._startup import signal  # the jail's (the public module would add its enum classes)
    from ..jail import runner
    from ..jail.result import SandboxError
    from ..jail.sandbox import run

    if not gc.isenabled():
        # The sysgate program holds the collector during start-up (cli.main): what start-up made
        # (modules, the parser, options) lives as long as the process. Frozen, it is never
        # traversed again; the collector is back on for the command, which may run for hours.
        gc.freeze()
        gc.enable()

    # ^C reaches the sandbox (same process group) and ends the command; this process just reports
    # how it ended. Default handling rather than KeyboardInterrupt: never a traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    runner.exit_after_run()  # one sandbox, then exit: no thread to reap its init
    try:
        res = run(cmd, options=opts, forward_signals=True)
    except SandboxError as e:
        print(f"sysgate: {e}", file=sys.stderr)
        if args.json or args.status_fd is not None:  # the machine reader learns of it too
            import json

            _report(args, (json.dumps({"status": "setup-failed", "stage": e.stage, "error": str(e),
                                       "exit_code": e.exit_code}) + "\n").encode())
        return e.exit_code
    # SIGPIPE: the reader went away (`sysgate run -- yes | head -1`); a shell says nothing either
    if not args.quiet and res.status != "exited" and not (res.status == "signaled" and res.signal == signal.SIGPIPE):
        print(f"sysgate: {cmd[0]}: {res.describe()}", file=sys.stderr)
    if args.json or args.status_fd is not None:
        _report(args, (res.to_json() + "\n").encode())
    return res.exit_code


def _report(args: Any, line: bytes) -> None:
    """The JSON line to --status-fd and, with --json, to stdout."""
    if args.status_fd is not None:
        try:
            os.write(args.status_fd, line)
        except OSError as e:
            print(f"sysgate: --status-fd {args.status_fd}: {e.strerror}", file=sys.stderr)
    if args.json:
        sys.stdout.flush()
        try:
            os.write(1, line)
        except OSError as e:
            print(f"sysgate: --json: cannot write the result to stdout: {e.strerror}", file=sys.stderr)
