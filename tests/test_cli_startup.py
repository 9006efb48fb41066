"""What ``sysgate compile`` loads and how its command line is read: the structure behind its
start-up time (the timings themselves live in bench/bench_compile.py, not here).

* the compile path imports no module it does not need (no json, typing, difflib, no jail,
  analysis or other format modules; argparse reads the command line, and builds the parser of
  ``compile`` only);
* the pieces that replace slower stdlib paths (json decoding, syscall-name checks, the policy
  enums) behave as what they replace.
"""
from __future__ import annotations

import contextlib
import copy
import enum
import gc
import io
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sysgate
from sysgate import arch as A
from sysgate import cli
from sysgate.formats import jsondecode
from sysgate.policy import Action, ActionKind, Op

SRC = Path(sysgate.__file__).resolve().parents[1]

# Modules ``sysgate compile`` must not import: the other commands' machinery, and stdlib
# modules whose import alone costs milliseconds.
NOT_ON_COMPILE_PATH = (
    "sysgate.jail", "sysgate.analysis", "sysgate.compat", "sysgate.kernel", "sysgate.commands.convert",
    "sysgate.commands.inspect", "sysgate.formats.minijail", "sysgate.formats.kafel", "sysgate.formats.systemd",
    "sysgate.formats.firecracker", "sysgate.formats.k8s", "sysgate.formats.oci", "sysgate.formats.logic",
    "sysgate.syscall_groups", "sysgate.constants", "sysgate.arch.constants",
    "sysgate.bpf.emulator", "sysgate.bpf.disasm", "sysgate.bpf.asm",
    "json", "typing", "difflib", "platform",
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
    assert {"sysgate.compiler", "sysgate.formats.docker", "sysgate.commands.core"} <= loaded  # it did run
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


# --------------------------------------------------------------------- stand-ins for the stdlib

def _outcome(f, arg) -> tuple:  # type: ignore[no-untyped-def]
    try:
        return ("ok", repr(f(arg)))
    except (ValueError, RecursionError) as e:
        return ("error", type(e).__name__, str(e))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=5), kids, max_size=4),
                    max_leaves=20)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(JSON, st.sampled_from(["", " ", "\n\t ", "x", " 1", "]", "\ufeff"]), st.sampled_from(["", " \r\n", "{"]),
       st.booleans())
def test_jsondecode_is_json_loads(value: object, after: str, before: str, as_bytes: bool) -> None:
    text = before + json.dumps(value, indent=1 if as_bytes else None) + after
    arg: str | bytes = text.encode("utf-8") if as_bytes else text
    assert _outcome(jsondecode.loads, arg) == _outcome(json.loads, arg)


@pytest.mark.parametrize("text", ["", "{", '{"a": 1,', "[1, 2", "1 2", "\ufeff{}", "[" * 100000, '{"a": NaN}',
                                  b"\xff\xfe{\x00}\x00", b"{\"a\": \"\xed\xa0\x80\"}", b"\x00{}", b"\xef\xbb\xbf{}"])
def test_jsondecode_errors_are_json_errors(text: str | bytes) -> None:
    code = ("import sys, json; from sysgate.formats import jsondecode\n"
            "def out(f):\n"
            "    try: return ('ok', repr(f(ARG)))\n"
            "    except Exception as e: return ('error', type(e).__name__, str(e))\n"
            "first = out(jsondecode.loads)\n"  # before json is imported: the scanner alone
            "print(first == out(json.loads), first)\n").replace("ARG", repr(text))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.startswith("True"), r.stdout + r.stderr


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.one_of(st.sampled_from(sorted(A.all_syscall_names())), st.text(max_size=12),
                 st.from_regex(r"[a-z_0-9= ]{1,12}", fullmatch=True)))
def test_is_syscall_name_is_membership_of_all_names(name: str) -> None:
    assert A.is_syscall_name(name) == A._in_tables_text(name) == (name in A.all_syscall_names())


def test_policy_enums_behave_as_enums() -> None:
    class Ref(enum.Enum):
        EQ = "=="
        NE = "!="

    assert [m.name for m in Op][:2] == [m.name for m in Ref] and len(Op) == 7
    assert repr(Op.EQ) == repr(Ref.EQ).replace("Ref", "Op") and str(Op.EQ) == "Op.EQ" and f"{Op.EQ:>6}" == " Op.EQ"
    assert Op("==") is Op.EQ and Op["NE"] is Op.NE and Op.EQ.value == "==" and Op.EQ.name == "EQ"
    assert ActionKind(0x7FFF0000) is ActionKind.ALLOW and list(ActionKind)[0] is ActionKind.KILL_PROCESS
    with pytest.raises(ValueError, match="5 is not a valid ActionKind"):
        ActionKind(5)
    with pytest.raises(KeyError):
        Op["parse"]
    for m in (*Op, *ActionKind):
        assert pickle.loads(pickle.dumps(m)) is m and copy.deepcopy(m) is m and copy.copy(m) is m
        assert isinstance(m, type(m)) and m in type(m) and {m: 1}[m] == 1
    with pytest.raises(AttributeError):
        Op.EQ = Op.NE  # type: ignore[misc]
    with pytest.raises(AttributeError):
        Op.EQ.x = 1  # type: ignore[attr-defined]
    assert Op.parse("masked") is Op.MASKED_EQ and Action.from_ret(0x7FFF0000) == Action(ActionKind.ALLOW)
    assert pickle.loads(pickle.dumps(Action(ActionKind.ERRNO, 13))) == Action(ActionKind.ERRNO, 13)
