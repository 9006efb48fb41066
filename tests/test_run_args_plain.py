"""``sysgate run``'s command line read without argparse (:func:`sysgate.commands.run.read_plain`).

The plain reader exists for start-up time only, so it must never read a command line differently
from argparse: it either gives exactly what argparse's parser of ``run`` gives, or declines (None)
and argparse reads it. Checked here on generated command lines made of every option name, values
that argparse takes, refuses or reads as options, abbreviations, ``--`` and commands; and the
command's start-up path: argparse for what the plain reader declines (that a plain run imports
neither argparse nor ``re`` is test_jail_cli.py's test_run_path_imports_stay_lean).
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sysgate
from sysgate import cli
from sysgate.commands.run import command_of, flags, read_plain

SRC = Path(sysgate.__file__).resolve().parents[1]
FUNC = object()

NAMES = sorted({n for f in flags() for n in f.names})
VALUES = ["1", "0", "7", "-1", "64M", "1.5", "nan", "x", "", "host", "none", "auto", "fork", "vfork", "a,b",
          "/tmp:/x", "net", "nofile=5", "NAME=V", "--", "-", "-q", "--json", "0x10", " 3", "1e3"]
COMMAND = ["true", "--", "-", "--json", "-q", "sh", "-c", "--memory", "x"]


def _argparse(words: list[str]) -> dict | None:
    """What argparse's parser of ``run`` reads (None: it refuses, or prints help)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            ns = cli.build_parser("run").parse_args(["run", *words])
    except SystemExit:
        return None
    d = vars(ns)
    d.pop("func")
    return d


def _plain(words: list[str]) -> dict | None:
    args = read_plain(words, FUNC)
    if args is None:
        return None
    d = dict(vars(args))
    assert d.pop("func") is FUNC
    return d


def _word() -> st.SearchStrategy[str]:
    name = st.sampled_from(NAMES)
    abbreviation = name.filter(lambda n: n.startswith("--") and len(n) > 4).map(lambda n: n[:-1])
    return st.one_of(name, name, name.flatmap(lambda n: st.sampled_from(VALUES).map(lambda v: f"{n}={v}")),
                     st.sampled_from(VALUES), abbreviation, st.sampled_from(["-h", "--help", "-qq", "--no"]))


@settings(max_examples=1500, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(st.lists(_word(), max_size=8), st.lists(st.sampled_from(COMMAND), max_size=4))
def test_plain_reader_reads_as_argparse_does_or_declines(options: list[str], command: list[str]) -> None:
    words = options + command
    plain = _plain(words)
    if plain is None:
        return  # argparse reads it (the CLI's fallback)
    assert plain == _argparse(words), words
    assert command_of(type("A", (), plain)) == command_of(type("A", (), _argparse(words)))


@pytest.mark.parametrize("words", [
    ["--", "true"], ["true"], ["--json", "--memory", "64M", "--pids=32", "--", "sh", "-c", "echo hi"],
    ["--bind", "/tmp:/x", "--bind=/var:/y", "-q", "--timeout", "2.5", "--", "true", "--json"],
    ["--net", "host", "--share", "ipc,uts", "--profile", "strict", "true"], [],
    ["--status-fd", "3", "--rlimit", "nofile=64", "--env", "A=B", "--", "--", "x"],
])
def test_plain_command_lines_take_the_plain_reader(words: list[str]) -> None:
    """The usual command lines do not fall back (the start-up figure depends on it)."""
    plain = _plain(words)
    assert plain is not None and plain == _argparse(words)


@pytest.mark.parametrize("words", [
    ["-h"], ["--help"], ["--mem", "64M", "true"], ["--memory"], ["--pids", "x", "true"], ["--uid", "-1", "true"],
    ["--launcher", "spoon", "true"], ["--json=1", "true"], ["-qq", "true"], ["--chdir", "--", "true"],
])
def test_other_command_lines_are_argparses(words: list[str]) -> None:
    assert read_plain(words, FUNC) is None


def _modules_after(*words: str) -> set[str]:
    """sys.modules at the end of ``sysgate WORDS`` run as the installed script does (-S: no site,
    whose .pth files may import anything)."""
    code = ("import atexit, sys; atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sys.modules) + "
            "'\\n')); from sysgate.cli import main; sys.exit(main())")
    r = subprocess.run([sys.executable, "-S", "-c", code, *words], capture_output=True, text=True, cwd="/",
                       env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    lines = [line for line in r.stderr.splitlines() if line.startswith("MODULES ")]
    assert lines, r.stderr
    return set(lines[-1].split()[1:])


def test_help_is_argparses() -> None:
    mods = _modules_after("run", "--help")
    assert "argparse" in mods


def test_the_shipped_script_imports_no_re() -> None:
    """pip's generated console wrapper imports ``re`` (milliseconds of every start): the command is
    the script in scripts/, installed as written."""
    script = SRC.parent / "scripts" / "sysgate"
    if not script.exists():
        pytest.skip("not a source checkout")
    text = script.read_text()
    assert text.startswith("#!python\n")
    code = compile(text, str(script), "exec")
    assert "re" not in code.co_names
    r = subprocess.run([sys.executable, "-S", str(script), "run", "--help"], capture_output=True, text=True,
                       cwd="/", env=dict(os.environ, PYTHONPATH=str(SRC)), timeout=60)
    assert r.returncode == 0 and "sysgate run" in r.stdout
