"""The ``sysgate`` command line: argument parsing only; the work lives in ``sysgate.commands``.

Bad input ends with one line on stderr and exit status 2; nothing is loaded or written.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable, Sequence

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"sysgate: error: {message}\n")


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), func)(args)

    return run


FORMATS = ["docker", "oci", "firecracker", "minijail", "kafel", "systemd", "k8s"]


def _profile_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow", action="append", default=[], metavar="NAME",
                   help="allow this syscall or @group whatever the profile says (repeatable, comma-separated)")
    p.add_argument("--deny", action="append", default=[], metavar="NAME[:ERRNO]",
                   help="deny this syscall or @group with ERRNO (default EPERM) or an action such as "
                        "kill-process (repeatable, comma-separated)")
    p.add_argument("--thread", help="the Firecracker filter to use (vmm, api, vcpu, ...)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sysgate", description="Deny-by-default seccomp-bpf: compile, inspect and run under filters.")
    p.add_argument("--version", action="version", version="sysgate 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("compile", help="compile a profile to a BPF program")
    c.add_argument("profile", help="built-in profile name or profile file (Docker/OCI, Firecracker, minijail, "
                                   "Kafel, systemd drop-in or Kubernetes SeccompProfile; detected from content)")
    c.add_argument("--arch", help="architectures, comma-separated; the first is the host (default: the "
                                  "profile's archMap entry for this machine)")
    c.add_argument("--caps", help="capabilities for moby includes/excludes (default: Docker's default set)")
    c.add_argument("--format", choices=["raw", "hex", "c", "disasm", "json"], default="raw")
    c.add_argument("-o", "--output", help="output file (default: stdout)")
    c.add_argument("-v", "--verbose", action="store_true", help="report syscalls skipped per arch")
    _profile_options(c)
    c.set_defaults(func=_lazy("sysgate.commands.core", "cmd_compile"))

    d = sub.add_parser("disasm", help="disassemble a BPF program (raw .bpf, or a profile compiled first)")
    d.add_argument("file")
    d.add_argument("--arch", help="arch(es) to resolve syscall names and byte order for")
    d.add_argument("-o", "--output")
    d.set_defaults(func=_lazy("sysgate.commands.core", "cmd_disasm"))

    a = sub.add_parser("asm", help="assemble seccomp-tools style assembly into a BPF program")
    a.add_argument("file")
    a.add_argument("--arch", help="arch for syscall names and byte order (default x86_64)")
    a.add_argument("--format", choices=["raw", "hex", "c"], default="raw")
    a.add_argument("-o", "--output")
    a.set_defaults(func=_lazy("sysgate.commands.core", "cmd_asm"))

    e = sub.add_parser("emulate", help="run a program or profile on one syscall")
    e.add_argument("program", help="raw .bpf, assembly, built-in profile or profile file")
    e.add_argument("syscall", help="syscall name or number")
    e.add_argument("args", nargs="*", help="up to 6 arguments (numbers or named constants)")
    e.add_argument("--arch", required=True, help="the arch the call is made through")
    e.add_argument("--program-arch", help="arches to compile a profile for (default: --arch)")
    e.add_argument("--caps", help="capabilities for moby includes/excludes")
    e.add_argument("--ip", help="instruction pointer")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_lazy("sysgate.commands.core", "cmd_emulate"))

    v = sub.add_parser("convert", help="convert a profile to another format, keeping every decision")
    v.add_argument("input", help="profile file (format detected from content), built-in name, or - for stdin")
    v.add_argument("--to", required=True, choices=FORMATS, help="output format")
    v.add_argument("--from", dest="from_format", choices=FORMATS, help="input format (default: detected)")
    v.add_argument("-o", "--output", help="output file (default: stdout)")
    v.add_argument("--lossy", action="store_true", help="convert even when the output cannot keep every "
                                                        "decision; list each loss on stderr")
    v.add_argument("--arch", help="architectures, comma-separated; the first is the host")
    v.add_argument("--caps", help="capabilities for moby includes/excludes (default: Docker's default set)")
    v.add_argument("--thread", help="the Firecracker filter to read (input) or the name to write (output)")
    v.add_argument("--name", dest="k8s_name", help="k8s: the SeccompProfile's name (default: from the input file name)")
    v.add_argument("--namespace", help="k8s: its namespace (default: default)")
    v.add_argument("--verify", action="store_true", help="read the output back and check every decision "
                                                         "with the emulator")
    v.set_defaults(func=_lazy("sysgate.commands.convert", "cmd_convert"))

    pr = sub.add_parser("profiles", help="list the built-in profiles, or show one")
    psub = pr.add_subparsers(dest="profiles_cmd", metavar="show", parser_class=_Parser)
    ps = psub.add_parser("show", help="print a built-in profile (as shipped, or converted with --to)")
    ps.add_argument("name")
    ps.add_argument("--to", choices=FORMATS, help="convert to this format")
    ps.add_argument("--lossy", action="store_true", help="with --to: convert even if inexact")
    ps.add_argument("--arch", help="architectures, comma-separated; the first is the host")
    ps.add_argument("--caps", help="capabilities for moby includes/excludes")
    ps.add_argument("-o", "--output", help="output file (default: stdout)")
    pr.set_defaults(func=_lazy("sysgate.commands.convert", "cmd_profiles"))

    _add_inspect_parsers(sub)

    from .jail.cli_args import add_run_parser  # "run": the jail's options live with the jail

    add_run_parser(sub)
    return p


def _add_inspect_parsers(sub: Any) -> None:
    """dump, explain, diff, audit (sysgate.commands.inspect)."""
    target_help = "raw .bpf, assembly, built-in profile, profile file, or the PID of a running process"
    mod = "sysgate.commands.inspect"
    dp = sub.add_parser("dump", help="dump the seccomp filters of a process, or those a command installs",
                        usage="sysgate dump [-o DIR] PID | sysgate dump [--kill] [-o DIR] -- CMD [ARGS...]")
    dp.add_argument("target", nargs="*", help="a PID, or -- and a command to run under ptrace")
    dp.add_argument("-o", "--output", metavar="DIR", help="write DIR/filter-N.bpf (raw, oldest first) instead "
                                                          "of printing the disassembly")
    dp.add_argument("--kill", action="store_true", help="kill the command once its first filter is installed")
    dp.add_argument("--timeout", type=float, help="stop tracing the command after this many seconds")
    dp.add_argument("--arch", help="arch(es) to name syscalls in the disassembly (default: this machine's)")
    dp.set_defaults(func=_lazy(mod, "cmd_dump"))

    ex = sub.add_parser("explain", help="decompile a filter exactly: per arch, syscall and argument")
    ex.add_argument("target", help=target_help)
    ex.add_argument("--arch", help="show only these arches (comma-separated); for a profile, compile for them")
    ex.add_argument("--caps", help="capabilities for moby includes/excludes")
    ex.add_argument("--json", action="store_true", help="structured output")
    ex.add_argument("-v", "--verbose", action="store_true", help="also list the syscalls the default covers")
    ex.add_argument("--to", choices=["docker"], help="emit a profile that decides every call the same")
    ex.add_argument("--lossy", action="store_true", help="with --to: emit a profile at least as strict even "
                                                         "when an exact one is impossible (losses on stderr)")
    ex.add_argument("-o", "--output", help="output file (default: stdout)")
    ex.set_defaults(func=_lazy(mod, "cmd_explain"))

    df = sub.add_parser("diff", help="semantic difference of two filters; exit 0 equal, 1 B weaker, 3 B stricter")
    df.add_argument("a", help=target_help)
    df.add_argument("b", help=target_help)
    df.add_argument("--arch", help="compare only these arches (and compile profiles for them)")
    df.add_argument("--caps", help="capabilities for moby includes/excludes")
    df.add_argument("--json", action="store_true")
    df.set_defaults(func=_lazy(mod, "cmd_diff"))

    au = sub.add_parser("audit", help="security findings for a filter, next to docker-default for scale")
    au.add_argument("target", help=target_help)
    au.add_argument("--arch", help="audit only these arches (and compile profiles for them)")
    au.add_argument("--caps", help="capabilities for moby includes/excludes")
    au.add_argument("--json", action="store_true")
    au.add_argument("--no-baseline", action="store_true", help="skip the docker-default comparison")
    au.set_defaults(func=_lazy(mod, "cmd_audit"))


def _run_only_parser() -> argparse.ArgumentParser:
    """Just ``sysgate run``: starting a sandbox should not pay for building every other command."""
    from .jail.cli_args import add_run_parser

    p = _Parser(prog="sysgate")
    add_run_parser(p.add_subparsers(dest="command", parser_class=_Parser))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    parser = _run_only_parser() if words[:1] == ["run"] else build_parser()
    args = parser.parse_args(words)
    try:
        return int(args.func(args) or 0)
    except (ValueError, KeyError, OSError) as e:
        # Bad input (our errors subclass ValueError; unknown names are KeyError subclasses).
        msg = str(e) if not isinstance(e, OSError) or not e.filename else f"{e.filename}: {e.strerror}"
        print(f"sysgate: error: {msg}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
