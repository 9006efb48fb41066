"""Bad input versus bugs (issue 13, item 6): the CLI reports a :class:`sysgate.errors.UserError` as
one line with status 2, and anything else -- a KeyError or ValueError from a bug included -- as an
internal error: a short traceback and status 70. Exit statuses are named once, in sysgate.errors."""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sysgate
from sysgate import cli, errors
from sysgate.errors import EXIT_SOFTWARE, EXIT_USAGE, BadArgument, UserError

SRC = Path(sysgate.__file__).resolve().parents[1]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as e:  # argparse's own errors
            status = int(e.code or 0)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("exc", [KeyError("bpf"), ValueError("invalid literal for int()"), TypeError("x"),
                                 IndexError("list index out of range"), OSError(5, "Input/output error")])
def test_an_internal_error_is_a_traceback_and_70(monkeypatch: pytest.MonkeyPatch, exc: Exception) -> None:
    import sysgate.compiler

    def broken(*a: object, **kw: object) -> None:
        raise exc

    monkeypatch.setattr(sysgate.compiler, "compile_policy", broken)
    status, out, err = run_cli("compile", "strict", "--arch", "x86_64", "--format", "hex")
    assert status == EXIT_SOFTWARE == 70
    assert err.startswith("Traceback (most recent call last):"), err
    assert f"{type(exc).__name__}: " in err and "in broken" in err  # where it went wrong
    assert err.rstrip("\n").splitlines()[-1].startswith("sysgate: internal error")
    assert "sysgate: error:" not in err and out == ""
    assert err.count("\n  File ") <= cli.TRACEBACK_FRAMES  # short: the innermost frames


def test_an_internal_error_in_a_subprocess_exits_70(tmp_path: Path) -> None:
    """The same through ``python -m sysgate``: a bug in a reader (a KeyError from a lookup) is not
    "bad input"."""
    code = ("import sys, sysgate.profiles as p\n"
            "def bug(*a, **k): return {}['archMap']\n"
            "p.resolve = bug\n"
            "from sysgate.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    prof = tmp_path / "p.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": []}')
    r = subprocess.run([sys.executable, "-c", code, "compile", str(prof), "--format", "hex"], capture_output=True,
                       text=True, timeout=60, env=dict(os.environ, PYTHONPATH=str(SRC)))
    assert r.returncode == 70, r.stderr
    assert "Traceback" in r.stderr and "KeyError: 'archMap'" in r.stderr and r.stdout == ""


@pytest.mark.parametrize("argv, needle", [
    (["compile", "no-such-profile"], "no-such-profile"),
    (["compile", "strict", "--arch", "vax"], "vax"),
    (["compile", "strict", "--allow", "no_such_call"], "no_such_call"),
    (["emulate", "strict", "no_such_call", "--arch", "x86_64"], "no_such_call"),
    (["emulate", "strict", "read", "1", "2", "3", "4", "5", "6", "7", "--arch", "x86_64"], "6"),
    (["emulate", "strict", "read", "NO_SUCH_CONST", "--arch", "x86_64"], "NO_SUCH_CONST"),
    (["run", "--memory", "12Q", "--", "true"], "--memory"),
    (["run", "--share", "time", "--", "true"], "--share"),
    (["run"], "no command"),
    (["profiles", "show", "nope"], "nope"),
    (["compile", "--no-such-option", "strict"], "--no-such-option"),
])
def test_bad_input_is_one_line_and_2(argv: list[str], needle: str) -> None:
    status, out, err = run_cli(*argv)
    assert status == EXIT_USAGE == 2, err
    assert err.count("\n") == 1 and err.startswith("sysgate: error: ") and needle in err, err
    assert "Traceback" not in err


def test_every_bad_input_class_is_a_user_error() -> None:
    """The exception types of bad input (what the CLI turns into exit 2) are UserErrors, and stay
    ValueErrors (KeyError too, for UnknownSyscall) for callers of the Python API."""
    from sysgate.analysis.export import NotExpressible
    from sysgate.analysis.symexec import AnalysisError
    from sysgate.arch import UnknownArch, UnknownSyscall
    from sysgate.bpf.asm import AsmError
    from sysgate.bpf.emulator import InvalidProgram
    from sysgate.compiler import CompileError
    from sysgate.compiler.lower import LoweringError
    from sysgate.constants import BadExpression, UnknownConstant
    from sysgate.formats import ProfileError, ProfileWarning
    from sysgate.formats.logic import TooComplex
    from sysgate.formats.syscall_names import UnknownName
    from sysgate.jail.options import JailConfigError
    from sysgate.kernel.ptrace import CommandNotFound
    from sysgate.outfile import OutputError
    from sysgate.policy import PolicyError
    from sysgate.recorder import RecordError
    from sysgate.syscall_groups import GroupLoop, UnknownGroup

    for cls in (NotExpressible, AnalysisError, UnknownArch, UnknownSyscall, AsmError, InvalidProgram, CompileError,
                LoweringError, BadExpression, UnknownConstant, ProfileError, ProfileWarning, TooComplex,
                UnknownName, JailConfigError, CommandNotFound, OutputError, PolicyError, RecordError, GroupLoop,
                UnknownGroup, BadArgument):
        assert issubclass(cls, UserError) and issubclass(cls, ValueError), cls
    assert issubclass(UnknownSyscall, KeyError)
    assert str(UnknownSyscall("no such syscall 'x'")) == "no such syscall 'x'"  # not quoted as KeyError would


def test_the_cli_catches_user_errors_only() -> None:
    """No ``except ValueError``/``KeyError``/``OSError`` around a command in cli.py: those are bugs
    unless a UserError says otherwise."""
    text = (SRC / "sysgate" / "cli.py").read_text()
    handlers = re.findall(r"except ([^:]+):", text)
    assert not [h for h in handlers if re.search(r"\b(ValueError|KeyError|OSError|LookupError)\b", h)], handlers


def test_exit_statuses_are_named_once() -> None:
    """Every exit status sysgate gives is a name in sysgate.errors; the CLI, the commands and the
    jail's result do not spell one as a number (the child-side os._exit of a launcher aside)."""
    assert (errors.EXIT_USAGE, errors.EXIT_SOFTWARE, errors.EXIT_TIMEOUT, errors.EXIT_CANNOT_START,
            errors.EXIT_CANNOT_EXEC, errors.EXIT_NOT_FOUND, errors.EXIT_BROKEN_PIPE, errors.EXIT_INTERRUPTED) == \
        (2, 70, 124, 125, 126, 127, 141, 130)
    assert errors.exit_for_signal(31) == 159
    literal = re.compile(r"\b(return|exit\(|status =)\s*(2|70|12[4-7]|1[3-5][0-9]|128 \+ \d+)\b")
    offenders = []
    pkg = SRC / "sysgate"
    for path in [pkg / "cli.py", pkg / "__main__.py", pkg / "jail" / "result.py", *(pkg / "commands").glob("*.py")]:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if literal.search(line) and "_exit(" not in line:
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not offenders, offenders


def test_ctrl_c_is_130_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    import sysgate.compiler

    def interrupted(*a: object, **kw: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sysgate.compiler, "compile_policy", interrupted)
    status, out, err = run_cli("compile", "strict", "--arch", "x86_64", "--format", "hex")
    assert (status, out, err) == (errors.EXIT_INTERRUPTED, "", "")
