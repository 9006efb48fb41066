"""The ``sysgate`` command line: argument parsing only; the work lives in ``sysgate.commands``.

Bad input ends with one line on stderr and exit status 2; nothing is loaded or written.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, like every other bad input
        self.exit(EXIT_BAD_INPUT, f"sysgate: error: {message}\n")


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return getattr(importlib.import_module(module), func)(args)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sysgate", description="Deny-by-default seccomp-bpf: compile, inspect and run under filters.")
    p.add_argument("--version", action="version", version="sysgate 0.1.0")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    c = sub.add_parser("compile", help="compile a profile to a BPF program")
    c.add_argument("profile", help="built-in profile name or profile file (Docker/OCI JSON)")
    c.add_argument("--arch", help="architectures, comma-separated; the first is the host (default: the "
                                  "profile's archMap entry for this machine)")
    c.add_argument("--caps", help="capabilities for moby includes/excludes (default: Docker's default set)")
    c.add_argument("--format", choices=["raw", "hex", "c", "disasm", "json"], default="raw")
    c.add_argument("-o", "--output", help="output file (default: stdout)")
    c.add_argument("-v", "--verbose", action="store_true", help="report syscalls skipped per arch")
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
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
