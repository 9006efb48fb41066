"""The ``sysgate`` command line: argument parsing only; the work lives in ``sysgate.commands``.

Bad input (a :class:`sysgate.errors.UserError`) ends with one line on stderr and exit status 2;
nothing is loaded or written. Any other exception is a bug: a short traceback and status 70.
Every status is named in :mod:`sysgate.errors`.

Start-up time is part of every command, so only the parser of the command given is built (a
command line that starts with a command name needs no other command's parser), and each
command's module is imported only when it runs.
"""
from __future__ import annotations

import os
import sys

from .errors import EXIT_BROKEN_PIPE, EXIT_INTERRUPTED, EXIT_SOFTWARE, EXIT_USAGE

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence
    from typing import Any, NoReturn

_PARSER_CLASS: Any = None


def _parser_class() -> type[argparse.ArgumentParser]:
    """argparse.ArgumentParser whose errors are one line with status 2 (made on first use, so that
    importing this module does not import argparse)."""
    global _PARSER_CLASS
    if _PARSER_CLASS is None:
        import argparse

        def width() -> int:
            # The width argparse would take, without its ``shutil.get_terminal_size()``: shutil
            # imports bz2 and lzma (~2.5 ms on every start), and argparse makes a formatter for
            # every add_argument, not only for help.
            columns = os.environ.get("COLUMNS", "")
            if columns.isdigit():
                return max(int(columns) - 2, 1)
            return (os.get_terminal_size(1).columns if os.isatty(1) else 80) - 2

        class _Parser(argparse.ArgumentParser):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                cls = kwargs.get("formatter_class") or argparse.HelpFormatter
                kwargs["formatter_class"] = lambda prog: cls(prog, width=width())
                super().__init__(*args, **kwargs)

            def error(self, message: str) -> NoReturn:  # one line, status 2, like every other bad input
                self.exit(EXIT_USAGE, f"sysgate: error: {message}\n")

        _PARSER_CLASS = _Parser
    return _PARSER_CLASS


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        __import__(module)  # what the import statement calls (importlib.import_module would add importlib)
        return getattr(sys.modules[module], func)(args)

    return run


def _formats() -> list[str]:
    from .formats.catalog import NAMES  # the format table (imported only to build a parser)

    return list(NAMES)


COMPILE_FORMATS = ["raw", "hex", "c", "disasm", "json"]


def _profile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow", action="append", default=[], metavar="NAME",
                   help="allow this syscall or @group whatever the profile says (repeatable, comma-separated)")
    p.add_argument("--deny", action="append", default=[], metavar="NAME[:ERRNO]",
                   help="deny this syscall or @group with ERRNO (default EPERM) or an action such as "
                        "kill-process (repeatable, comma-separated)")
    p.add_argument("--thread", help="the Firecracker filter to use (vmm, api, vcpu, ...)")
    p.add_argument("--skip-unknown", action="store_true",
                   help="leave out syscall names no architecture has (Docker/OCI/k8s profiles), reporting each, "
                        "instead of failing")
    p.add_argument("--name", dest="profile_name", metavar="NAME",
                   help="k8s: the SeccompProfile to read from a manifest holding several")
    _strict_option(p)


def _strict_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--strict", action="store_true",
                   help="refuse profile fields the format's own tool would ignore (default: one warning line each)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or only of ``command`` (a name in :data:`COMMANDS`): a command
    line that starts with a command name needs no other command's parser."""
    parser_class = _parser_class()
    p = parser_class(prog="sysgate", description="Deny-by-default seccomp-bpf: compile, inspect and run under "
                                                 "filters.")
    p.add_argument("--version", action="version", version="sysgate 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=parser_class)
    sub.required = True
    for name, add in COMMANDS.items():
        if command is None or name == command:
            add(sub)
    return p


def _add_compile(sub: Any) -> None:
    c = sub.add_parser("compile", help="compile a profile to a BPF program")
    c.add_argument("profile", help="built-in profile name or profile file (Docker/OCI, Firecracker, minijail, "
                                   "Kafel, systemd drop-in or Kubernetes SeccompProfile; detected from content)")
    c.add_argument("--arch", help="architectures, comma-separated; the first is the host (default: the "
                                  "profile's archMap entry for this machine)")
    c.add_argument("--caps", help="capabilities for moby includes/excludes (default: Docker's default set)")
    c.add_argument("--format", choices=COMPILE_FORMATS, default="raw")
    c.add_argument("-o", "--output", help="output file (default: stdout)")
    c.add_argument("-v", "--verbose", action="store_true", help="report syscalls skipped per arch")
    c.add_argument("--no-optimize", action="store_true",
                   help="skip the optimization passes: the straightforward program (same decisions, longer)")
    _profile_options(c)
    c.set_defaults(func=_lazy("sysgate.commands.core", "cmd_compile"))


def _add_disasm(sub: Any) -> None:
    d = sub.add_parser("disasm", help="disassemble a BPF program (raw .bpf, or a profile compiled first)")
    d.add_argument("file")
    d.add_argument("--arch", help="arch(es) to resolve syscall names and byte order for")
    d.add_argument("-o", "--output")
    d.add_argument("--json", action="store_true", help="instructions, their text and the kernel's verdict as JSON")
    d.set_defaults(func=_lazy("sysgate.commands.core", "cmd_disasm"))


def _add_asm(sub: Any) -> None:
    a = sub.add_parser("asm", help="assemble seccomp-tools style assembly into a BPF program")
    a.add_argument("file")
    a.add_argument("--arch", help="arch for syscall names and byte order (default x86_64)")
    a.add_argument("--format", choices=["raw", "hex", "c"], default="raw")
    a.add_argument("-o", "--output")
    a.add_argument("--unchecked", action="store_true",
                   help="write the program even if the kernel would refuse it (default: refuse, exit 2)")
    a.set_defaults(func=_lazy("sysgate.commands.core", "cmd_asm"))


def _add_emulate(sub: Any) -> None:
    e = sub.add_parser("emulate", help="run a program or profile on one syscall")
    e.add_argument("program", help="raw .bpf, assembly, built-in profile or profile file")
    e.add_argument("syscall", help="syscall name or number")
    e.add_argument("args", nargs="*", help="up to 6 arguments (numbers or named constants)")
    e.add_argument("--arch", required=True, help="the arch the call is made through")
    e.add_argument("--program-arch", help="arches to compile a profile for (default: --arch)")
    e.add_argument("--caps", help="capabilities for moby includes/excludes")
    e.add_argument("--ip", help="instruction pointer")
    e.add_argument("--json", action="store_true")
    _strict_option(e)
    e.set_defaults(func=_lazy("sysgate.commands.core", "cmd_emulate"))


def _add_convert(sub: Any) -> None:
    v = sub.add_parser("convert", help="convert a profile to another format, keeping every decision")
    v.add_argument("input", help="profile file (format detected from content), built-in name, or - for stdin")
    v.add_argument("--to", required=True, choices=_formats(), help="output format")
    v.add_argument("--from", dest="from_format", choices=_formats(), help="input format (default: detected)")
    v.add_argument("-o", "--output", help="output file (default: stdout)")
    v.add_argument("--lossy", action="store_true", help="convert even when the output cannot keep every "
                                                        "decision; list each loss on stderr")
    v.add_argument("--arch", help="architectures, comma-separated; the first is the host")
    v.add_argument("--caps", help="capabilities for moby includes/excludes (default: Docker's default set)")
    v.add_argument("--thread", help="the Firecracker filter to read (input) or the name to write (output)")
    v.add_argument("--allow", action="append", default=[], metavar="NAME",
                   help="allow this syscall or @group in the output whatever the input says (repeatable)")
    v.add_argument("--deny", action="append", default=[], metavar="NAME[:ERRNO]",
                   help="deny this syscall or @group with ERRNO (default EPERM) or an action (repeatable)")
    v.add_argument("--skip-unknown", action="store_true",
                   help="leave out syscall names no architecture has (Docker/OCI/k8s input), reporting each")
    v.add_argument("--name", dest="k8s_name", help="k8s: the SeccompProfile's name (default: from the input file name)")
    v.add_argument("--namespace", help="k8s: its namespace (default: default)")
    _strict_option(v)
    v.add_argument("--verify", action="store_true", help="read the output back and check every decision "
                                                         "with the emulator")
    v.set_defaults(func=_lazy("sysgate.commands.convert", "cmd_convert"))


def _add_profiles(sub: Any) -> None:
    pr = sub.add_parser("profiles", help="list the built-in profiles, or show one")
    psub = pr.add_subparsers(dest="profiles_cmd", metavar="show", parser_class=_parser_class())
    ps = psub.add_parser("show", help="print a built-in profile (as shipped, or converted with --to)")
    ps.add_argument("name")
    ps.add_argument("--to", choices=_formats(), help="convert to this format")
    ps.add_argument("--lossy", action="store_true", help="with --to: convert even if inexact")
    ps.add_argument("--arch", help="architectures, comma-separated; the first is the host")
    ps.add_argument("--caps", help="capabilities for moby includes/excludes")
    ps.add_argument("-o", "--output", help="output file (default: stdout)")
    pr.set_defaults(func=_lazy("sysgate.commands.convert", "cmd_profiles"))


# dump, explain, diff, audit (sysgate.commands.inspect)
_TARGET_HELP = "raw .bpf, assembly, built-in profile, profile file, or the PID of a running process"
_INSPECT = "sysgate.commands.inspect"


def _add_dump(sub: Any) -> None:
    mod = _INSPECT
    dp = sub.add_parser("dump", help="dump the seccomp filters of a process, or those a command installs",
                        usage="sysgate dump [-o DIR] PID | sysgate dump [--kill] [-o DIR] -- CMD [ARGS...]")
    dp.add_argument("target", nargs="*", help="a PID, or -- and a command to run under ptrace")
    dp.add_argument("-o", "--output", metavar="DIR", help="write DIR/filter-N.bpf (raw, oldest first) instead "
                                                          "of printing the disassembly")
    dp.add_argument("--kill", action="store_true", help="kill the command once its first filter is installed")
    dp.add_argument("--timeout", type=float, help="stop tracing the command after this many seconds")
    dp.add_argument("--arch", help="arch(es) to name syscalls in the disassembly (default: this machine's)")
    dp.set_defaults(func=_lazy(mod, "cmd_dump"))


def _add_explain(sub: Any) -> None:
    target_help, mod = _TARGET_HELP, _INSPECT
    ex = sub.add_parser("explain", help="decompile a filter exactly: per arch, syscall and argument")
    ex.add_argument("target", nargs="+", help=target_help + " (several: one after the other)")
    ex.add_argument("--arch", help="show only these arches (comma-separated); for a profile, compile for them")
    ex.add_argument("--caps", help="capabilities for moby includes/excludes")
    ex.add_argument("--json", action="store_true", help="structured output")
    ex.add_argument("-v", "--verbose", action="store_true", help="also list the syscalls the default covers")
    ex.add_argument("--to", choices=["docker"], help="emit a profile that decides every call the same")
    ex.add_argument("--lossy", action="store_true", help="with --to: emit a profile at least as strict even "
                                                         "when an exact one is impossible (losses on stderr)")
    ex.add_argument("-o", "--output", help="output file (default: stdout)")
    _strict_option(ex)
    ex.set_defaults(func=_lazy(mod, "cmd_explain"))


def _add_diff(sub: Any) -> None:
    target_help, mod = _TARGET_HELP, _INSPECT
    df = sub.add_parser("diff", help="semantic difference of two filters; exit 0 equal, 1 B weaker, 3 B stricter")
    df.add_argument("a", help=target_help)
    df.add_argument("b", help=target_help)
    df.add_argument("--arch", help="compare only these arches (and compile profiles for them)")
    df.add_argument("--caps", help="capabilities for moby includes/excludes")
    df.add_argument("--json", action="store_true")
    _strict_option(df)
    df.set_defaults(func=_lazy(mod, "cmd_diff"))


def _add_audit(sub: Any) -> None:
    target_help, mod = _TARGET_HELP, _INSPECT
    au = sub.add_parser("audit", help="security findings for a filter, next to docker-default for scale")
    au.add_argument("target", help=target_help)
    au.add_argument("--arch", help="audit only these arches (and compile profiles for them)")
    au.add_argument("--caps", help="capabilities for moby includes/excludes")
    au.add_argument("--json", action="store_true")
    au.add_argument("--no-baseline", action="store_true", help="skip the docker-default comparison")
    _strict_option(au)
    au.set_defaults(func=_lazy(mod, "cmd_audit"))


def _add_features(sub: Any) -> None:
    fe = sub.add_parser("features", help="what the running kernel supports: seccomp actions and flags, user "
                                         "notification, Landlock, user namespaces, cgroups")
    fe.add_argument("--json", action="store_true")
    fe.set_defaults(func=_lazy("sysgate.commands.features", "cmd_features"))


def _add_run(sub: Any) -> None:
    from .commands.run import add_parser  # the options come from the jail's table

    add_parser(sub, _lazy("sysgate.commands.run", "cmd_run"))


def _add_record(sub: Any) -> None:
    import argparse

    r = sub.add_parser("record", help="run a command and write the least-privilege profile it needs",
                       usage="sysgate record [-o PROFILE] [--to FORMAT] [OPTIONS] [--in-jail [RUN OPTIONS]] "
                             "-- CMD [ARGS...]",
                       description="Run CMD, follow its whole process tree, and write a deny-by-default profile "
                                   "allowing exactly the syscalls it made (arguments refined where they are the "
                                   "attack surface), plus what 'sysgate run' needs to start it.")
    r.add_argument("-o", "--output", metavar="PROFILE", help="write the profile here (default: stdout)")
    r.add_argument("--to", choices=_formats(), default="docker", help="output format (default: docker)")
    r.add_argument("--arch", help="architectures the profile covers, comma-separated (default: those seen)")
    r.add_argument("--merge", metavar="OLD", help="add to this earlier profile (any format)")
    r.add_argument("--base", metavar="PROFILE", help="keep every call this profile denies denied")
    r.add_argument("--no-args", action="store_true", help="syscall names only, no argument conditions")
    r.add_argument("--default-action", default="errno(EPERM)", metavar="ACTION",
                   help="for every call not seen (default: errno(EPERM)); e.g. kill-process, log")
    r.add_argument("--partial", action="store_true", help="on Ctrl-C or --timeout, write what was seen")
    r.add_argument("--timeout", type=float, metavar="SECONDS", help="stop the command after this long")
    r.add_argument("--method", choices=["auto", "tracefs", "ptrace"], default="auto",
                   help="tracefs: kernel tracepoints, root (default when available); ptrace: anyone")
    r.add_argument("--lossy", action="store_true", help="write a --to format that cannot hold every condition")
    r.add_argument("--buffer", metavar="SIZE", help="tracefs ring buffer per CPU, e.g. 16M (64K to 1G; default: the "
                                                    "kernel's, at least 1M): more, if a storm of calls overflows it")
    r.add_argument("--report", metavar="FILE", help="also write the report as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="no report on stderr")
    r.add_argument("--in-jail", nargs=argparse.REMAINDER, metavar="RUN-OPTIONS -- CMD",
                   help="record CMD inside 'sysgate run RUN-OPTIONS' (without its filter); must come last")
    r.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARGS...]", help="the command (after --)")
    r.set_defaults(func=_lazy("sysgate.commands.record", "cmd_record"))


# Every command, in the order ``sysgate --help`` lists them.
COMMANDS: dict[str, Callable[[Any], None]] = {
    "compile": _add_compile, "disasm": _add_disasm, "asm": _add_asm, "emulate": _add_emulate,
    "convert": _add_convert, "profiles": _add_profiles, "dump": _add_dump, "explain": _add_explain,
    "diff": _add_diff, "audit": _add_audit, "features": _add_features, "run": _add_run,
    "record": _add_record,
}


def parse_args(words: Sequence[str]) -> argparse.Namespace:
    """The parsed command line (argparse exits with status 2 on errors, 0 after help). Only the
    parser of the command named first is built."""
    words = list(words)
    if words[:1] == ["run"]:  # the command whose start-up is the figure: plain command lines skip argparse
        from .commands.run import read_plain

        args = read_plain(words[1:], _lazy("sysgate.commands.run", "cmd_run"))
        if args is not None:  # (the attributes of argparse's Namespace)
            return args  # type: ignore[return-value]
    return build_parser(words[0] if words[:1] and words[0] in COMMANDS else None).parse_args(words)


class _Nowhere:
    """A text stream that drops what it is given (for a standard stream the process was started without)."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: this program's) and return the exit status."""
    words = sys.argv[1:] if argv is None else list(argv)
    program = argv is None  # this process is sysgate, and exits next (not a caller in-process)
    if program:
        import gc

        # Started with stdout or stderr closed (`>&-`), Python has None there, and print() to a
        # None stderr writes to stdout: our own lines go nowhere instead. Nothing is opened on the
        # closed descriptor: the command inherits it closed, as it was given.
        if sys.stdout is None:
            sys.stdout = _Nowhere()
        elif words[:1] != ["run"]:  # (run prints nothing there but --json, through os.write)
            from .outfile import CheckedStdout

            sys.stdout = CheckedStdout(sys.stdout)
        if sys.stderr is None:
            sys.stderr = _Nowhere()

        if words[:1] == ["compile"]:
            # A one-shot job whose objects (a DAG, records) hold no reference cycles: the
            # collector's passes during imports and compiling only cost time (~2 ms).
            gc.disable()
        elif words[:1] == ["run"]:
            # Start-up (imports, the parser) makes objects that live to the end: the collector's
            # passes over them find nothing (~0.6 ms). cmd_run freezes them and turns it back on
            # before the sandbox starts.
            gc.disable()
    try:
        status = _run(words)
    finally:
        if program:
            # At exit the interpreter runs full collections over every object the imports and
            # the command made, finding little garbage: milliseconds of each run. Frozen objects
            # are still freed, just not traversed.
            gc.freeze()
            if words[:1] == ["run"]:
                from . import _startup

                _startup.save_bundle()  # the modules it imported, read from one file next time
    if program and words[:1] == ["run"]:
        _exit_now(status)
    return status


def _exit_now(status: int) -> None:
    """End ``sysgate run`` once its sandbox has ended and been reported: what the interpreter's
    own exit would do now is tear down every module and object start-up made, ~2.6 ms of a
    ~40 ms run on the benchmark host (bench/bench_startup.py), and none of it is needed. Nothing
    on this path registers an exit handler (only :class:`sysgate.Sandbox` and ``record`` do);
    the streams are flushed here, and if that fails the usual exit reports it."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stream: the interpreter's exit reports it
        return
    os._exit(status)


def _run(words: Sequence[str]) -> int:
    from . import errors
    from .errors import ProfileWarning, UserError

    try:
        args = parse_args(words)
        strict = bool(getattr(args, "strict", False))

        def show(w: ProfileWarning) -> None:
            """The readers' warnings (an ignored field, a clamped errno) as one line each; with
            --strict, a refusal (a UserError: bad input)."""
            if strict:
                raise w
            print(f"sysgate: warning: {w}", file=sys.stderr)

        outer, errors.warning_sink = errors.warning_sink, show
        try:
            status = int(args.func(args) or 0)
        finally:
            errors.warning_sink = outer
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit as "Exception ignored"
        return status
    except KeyboardInterrupt:  # Ctrl-C: the user's wish, not an error to explain
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours. Point stdout at /dev/null so the
        # interpreter's final flush cannot raise again, and exit as a process killed by SIGPIPE would.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except UserError as e:  # bad input, and only that: one line
        from .errors import one_line

        msg = one_line(str(e))  # a newline in a file name must not split the line
        if getattr(e, "source_line", None) is not None:  # a text format's parse error: show where
            from .formats import caret_lines

            print(caret_lines(f"sysgate: error: {msg}", e), file=sys.stderr)
        else:
            print(f"sysgate: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # anything else is a bug of ours, never reported as bad input
        _internal_error(e)
        return EXIT_SOFTWARE


#: Frames of an internal error's traceback shown (the innermost ones: where it went wrong).
TRACEBACK_FRAMES = 8


def _internal_error(e: BaseException) -> None:
    import traceback

    lines = traceback.format_exception(type(e), e, e.__traceback__, limit=-TRACEBACK_FRAMES)
    sys.stderr.write("".join(lines))
    sys.stderr.write(f"sysgate: internal error (a bug in sysgate, not in what it was given): "
                     f"{type(e).__name__}; please report it with the traceback above\n")


def _silence_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
