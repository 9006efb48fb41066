"""What ``sysgate compile`` loads and how its command line is read: the structure behind its
start-up time (the timings themselves live in bench/bench_compile.py, not here).

* the compile path imports no module it does not need (no typing, difflib, no jail, analysis or
  other format modules; argparse reads the command line, and builds the parser of ``compile``
  only).
"""
from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

import sysgate
from sysgate import cli
from sysgate.policy import Action, ActionKind, Op

SRC = Path(sysgate.__file__).resolve().parents[1]

# Modules ``sysgate compile`` must not import: the other commands' machinery, and stdlib
# modules whose import alone costs milliseconds.
NOT_ON_COMPILE_PATH = (
    "sysgate.jail", "sysgate.analysis", "sysgate.compat", "sysgate.kernel", "sysgate.commands.convert",
    "sysgate.commands.inspect", "sysgate.formats.minijail", "sysgate.formats.kafel", "sysgate.formats.systemd",
    "sysgate.formats.firecracker", "sysgate.formats.k8s", "sysgate.formats.oci", "sysgate.formats.logic",
    "sysgate.syscall_groups", "sysgate.constants", "sysgate.arch.constant_tables",
    "sysgate.bpf.emulator", "sysgate.bpf.disasm", "sysgate.bpf.asm",
    "typing", "difflib", "platform",
    "dataclasses", "inspect", "subprocess", "tempfile",
)


def _modules_of_compile(*args: str) -> set[str]:
    """sys.modules at the exit of ``python -m sysgate.cli compile ARGS`` (without site, whose .pth
    files may import anything), less those of the same interpreter doing nothing."""
    dump = "import atexit, sys; atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sys.modules) + '\\n'))"
    run = dump + "; import runpy; sys.argv = ['sysgate', *sys.argv[1:]]; runpy.run_module('sysgate.cli', " \
                 "run_name='__main__', alter_sys=True)"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    r = subprocess.run([sys.executable, "-S", "-c", run, "compile", *args], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    base = subprocess.run([sys.executable, "-S", "-c", dump + "; import runpy"], capture_output=True, text=True,
                          env=env, timeout=60)
    mods = [line for line in r.stderr.splitlines() if line.startswith("MODULES ")]
    base_mods = [line for line in base.stderr.splitlines() if line.startswith("MODULES ")]
    assert mods and base_mods
    return set(mods[-1].split()[1:]) - set(base_mods[-1].split()[1:])


@pytest.mark.parametrize("args", [
    ("docker-default", "-o", os.devnull),
    ("docker-default", "--arch", "x86_64,x86,x32", "--format", "hex"),
    ("docker-default", "--allow", "ptrace", "--deny", "write:EACCES", "-o", os.devnull),
])
def test_compile_imports_only_what_it_needs(args: tuple[str, ...]) -> None:
    loaded = _modules_of_compile(*args)
    # default options: the shipped precompiled program (tests/test_precompiled.py), no compiler at all
    shipped = list(args[1:]) == ["-o", os.devnull] and os.uname().machine in ("x86_64", "aarch64")
    ran = {"sysgate.precompiled"} if shipped else {"sysgate.compiler", "sysgate.formats.docker"}
    assert ran | {"sysgate.commands.core"} <= loaded  # it did run
    bad = sorted(m for m in loaded if any(m == x or m.startswith(x + ".") for x in NOT_ON_COMPILE_PATH))
    assert not bad, f"sysgate compile imported {bad}"


def test_compile_of_a_profile_file_imports_only_what_it_needs(tmp_path: Path) -> None:
    src = (SRC / "sysgate" / "profiles" / "docker-default.json").read_bytes()
    f = tmp_path / "profile.json"
    f.write_bytes(src)
    loaded = _modules_of_compile(str(f), "--arch", "x86_64", "-o", os.devnull)
    assert {"sysgate.formats.registry", "sysgate.formats.detect", "sysgate.formats.docker"} <= loaded
    bad = sorted(m for m in loaded if any(m == x or m.startswith(x + ".") for x in NOT_ON_COMPILE_PATH))
    assert not bad, f"sysgate compile imported {bad}"


# --------------------------------------------------------------------- the parser of one command

def _help(only: str | None, words: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.build_parser(only).parse_args(words)
    return out.getvalue()


def test_parsers_of_one_command_match_the_full_parser() -> None:
    for name in cli.COMMANDS:
        assert _help(name, [name, "--help"]) == _help(None, [name, "--help"])
    listing = _help(None, ["--help"])
    assert all(name in listing for name in cli.COMMANDS)


def test_main_in_process_leaves_the_collector_alone(tmp_path: Path) -> None:
    frozen = gc.get_freeze_count()
    assert cli.main(["compile", "strict", "--arch", "x86_64", "-o", str(tmp_path / "f.bpf")]) == 0
    assert gc.isenabled() and gc.get_freeze_count() == frozen


# The collector when ``sysgate run`` starts the sandbox, seen by a wrapper of the jail's run.
_GC_AT_RUN = """
import gc, sys
import sysgate.jail.sandbox as S
seen = []
real = S.run
def run(*args, **kwargs):
    seen.append((gc.isenabled(), gc.get_freeze_count() > frozen))
    return real(*args, **kwargs)
S.run = run
import sysgate.cli as C
frozen = gc.get_freeze_count()
def report(rc):
    print(rc, seen, gc.isenabled(), gc.get_freeze_count() > frozen, flush=True)
real_exit = C._exit_now
def exit_now(status):  # the program ends here, without the interpreter's exit
    report(status)
    real_exit(status)
C._exit_now = exit_now
if sys.argv[1] == "program":
    sys.argv = ["sysgate", "run", "--", "/bin/true"]
    C.main()
    print("main returned")
else:
    report(C.main(["run", "--", "/bin/true"]))
"""


@pytest.mark.parametrize("mode", ["program", "in-process"])
def test_run_holds_the_collector_during_start_up_only(mode: str) -> None:
    """The sysgate program holds the collector while it starts up and freezes what that made; the
    sandbox starts with the collector on (the command may run for hours). A caller of main()
    in-process keeps its collector as it was."""
    r = subprocess.run([sys.executable, "-S", "-c", _GC_AT_RUN, mode], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(SRC)), cwd="/", stdin=subprocess.DEVNULL, check=False)
    assert r.returncode == 0, r.stderr
    if mode == "program":
        assert r.stdout.split() == ["0", "[(True,", "True)]", "True", "True"], r.stdout
    else:
        assert r.stdout.split() == ["0", "[(True,", "False)]", "True", "False"], r.stdout


# --------------------------------------------------------------------- the policy enums

def test_policy_enums_parse_and_pickle() -> None:
    assert Op.parse("masked") is Op.MASKED_EQ and Action.from_ret(0x7FFF0000) == Action(ActionKind.ALLOW)
    assert pickle.loads(pickle.dumps(Action(ActionKind.ERRNO, 13))) == Action(ActionKind.ERRNO, 13)
