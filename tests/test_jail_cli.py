"""``sysgate run`` on the command line: the argparse-free reader agrees with the parser, ``--help``
documents every option, the README-level command lines work, and the run path stays lean."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from jail_support import ROOT, TESTS, needs_userns, no_leftovers  # noqa: F401

from sysgate.jail import cgroups
from sysgate.jail.cli_args import _CHOICES, _FLAGS, _VALUES, add_run_parser, options_from_args, run_args
from sysgate.jail.options import Options

SRC = os.path.join(os.path.dirname(TESTS), "src")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sysgate")
    add_run_parser(p.add_subparsers(dest="command"))
    return p


def argparse_vars(words: list[str]) -> dict:
    d = vars(parser().parse_args(["run", *words]))
    d.pop("func")
    return d


# -- the argparse-free reader ---------------------------------------------------------------------

_plain = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), max_size=8)
_value = _plain.filter(lambda v: not v.startswith("-"))


def _option_words(opt: str) -> st.SearchStrategy[list[str]]:
    dest, conv = _VALUES[opt]
    if dest in _CHOICES:
        values = st.sampled_from(_CHOICES[dest])
    elif conv is int:
        values = st.integers(0, 70000).map(str)
    elif conv is float:
        values = st.floats(0.01, 1000, allow_nan=False).map(repr)
    else:
        values = _value
    return values.flatmap(lambda v: st.sampled_from([[opt, v], [f"{opt}={v}"]]))


_option = st.one_of(st.sampled_from(sorted(_FLAGS)).map(lambda f: [f]),
                    st.sampled_from(sorted(_VALUES)).flatmap(_option_words))
_command = st.one_of(
    st.lists(_plain, max_size=3).map(lambda c: ["--", *c]),
    st.tuples(_value.filter(bool), st.lists(_plain, max_size=3)).map(lambda t: [t[0], *t[1]]),
    st.just([]))


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.lists(_option, max_size=8), _command)
def test_fast_reader_matches_argparse(options: list[list[str]], command: list[str]) -> None:
    words = [w for o in options for w in o] + command
    fast = run_args(words)
    assert fast is not None, words
    d = vars(fast)
    assert d.pop("func").__name__ == "run_command"
    assert d == argparse_vars(words)


@pytest.mark.parametrize("words", [
    ["-h"], ["--help"], ["--mem", "64M", "--", "true"], ["--pids", "x", "true"], ["--net", "bridge", "true"],
    ["--timeout", "-1", "true"], ["--json=1", "true"], ["-qq", "true"], ["--no-such-option", "true"],
    ["--memory"], ["-", "true"], ["--launcher", "clone", "true"],
])
def test_fast_reader_leaves_the_rest_to_argparse(words: list[str]) -> None:
    assert run_args(words) is None


def test_every_option_is_documented_and_reaches_options() -> None:
    p = parser()
    run_p = p._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    help_text = run_p.format_help()
    strings = [s for a in run_p._actions if a.help != argparse.SUPPRESS for s in a.option_strings]
    assert all(s in help_text for s in strings)
    assert set(_VALUES) | set(_FLAGS) == {s for a in run_p._actions for s in a.option_strings} - {"-h", "--help"}
    # each Options field is set by some option (launcher is for tests; the rest must differ from the default)
    sample = {"profile": ["--profile", "strict"], "allow": ["--allow", "uname"], "deny": ["--deny", "uname"],
              "seccomp_action": ["--seccomp-action", "log"], "rootfs": ["--rootfs", "/"],
              "binds": ["--bind", "/usr"], "tmpfs": ["--tmpfs", "/mnt"], "tmp_size": ["--tmp-size", "1M"],
              "share": ["--net", "host"], "hostname": ["--hostname", "h"], "uid": ["--uid", "7"],
              "gid": ["--gid", "7"], "rlimits": ["--rlimit", "nofile=9"], "memory": ["--memory", "64M"],
              "pids": ["--pids", "9"], "cpus": ["--cpus", "0.5"], "cap_add": ["--cap-add", "CHOWN"],
              "pass_fds": ["--pass-fd", "1"], "env": ["--env", "A=1"], "keep_env": ["--keep-env", "HOME"],
              "clear_env": ["--inherit-env"], "timeout": ["--timeout", "3"], "cwd": ["--chdir", "/"],
              "landlock_ro": ["--ro", "/usr"], "landlock_rw": ["--rw", "/tmp"],
              "die_with_parent": ["--no-die-with-parent"], "new_session": ["--new-session"],
              "launcher": ["--launcher", "fork"], "skip_unknown": ["--skip-unknown"],
              "keep_host_root": ["--keep-host-root"], "host_uid": ["--host-uid", "70000"],
              "host_gid": ["--host-gid", "70000"],
              "mediate": ["--no-mediate"], "allow_paths": ["--allow-path", "/usr"],
              "allow_connect": ["--allow-connect", "localhost:80"], "allow_sockets": ["--allow-socket", "/x.sock"],
              "log_denials": ["--log-denials"], "ask": ["--ask"]}
    assert set(sample) == set(Options.__slots__)
    base = options_from_args(run_args(["--", "true"]))
    for field, words in sample.items():
        opts = options_from_args(run_args([*words, "--", "true"]))
        assert getattr(opts, field) != getattr(base, field), field
    assert options_from_args(run_args(["--no-seccomp", "--", "true"])).profile is None
    assert options_from_args(run_args(["--share", "ipc,uts", "--share", "pid", "true"])).share == {"ipc", "uts", "pid"}


# -- the command line as a user types it ------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", "run", *args], capture_output=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=SRC))


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_readme_command_lines() -> None:
    p = cli("--", "sh", "-c", "echo hi; id")
    assert p.returncode == 0 and p.stdout.startswith(b"hi\nuid=%d" % os.geteuid()) and p.stderr == b""
    p = cli("--profile", "strict", "--", "/bin/true")       # strict allows no execve: killed right there
    assert p.returncode == 159 and p.stdout == b""
    assert p.stderr.startswith(b"sysgate: /bin/true: killed by seccomp (SIGSYS)") and p.stderr.count(b"\n") == 1
    p = cli("--json", "--", "/bin/false")
    st_ = json.loads(p.stdout)
    assert p.returncode == 1 and p.stdout.count(b"\n") == 1 and p.stderr == b""
    assert (st_["status"], st_["returncode"], st_["exit_code"], st_["signal"]) == ("exited", 1, 1, None)
    assert st_["argv"] == ["/bin/false"] and st_["wall_time"] > 0 and st_["cgroup"] is None
    p = cli("--help")
    assert p.returncode == 0 and b"--memory SIZE" in p.stdout and b"--profile NAME|FILE" in p.stdout


@pytest.mark.skipif(not ROOT, reason="cgroup limits need root (or a delegated cgroup)")
@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_readme_limits_command_line() -> None:
    try:
        cgroups.create(Options(pids=4)).cleanup()  # type: ignore[union-attr]
    except OSError as e:
        pytest.skip(f"no usable cgroups: {e}")
    p = cli("--memory", "64M", "--pids", "32", "--timeout", "5", "--json", "--", "sh", "-c", "echo ok")
    out = p.stdout.decode().splitlines()
    st_ = json.loads(out[1])
    assert p.returncode == 0 and out[0] == "ok" and st_["status"] == "exited" and st_["cgroup"] in ("v1", "v2")


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_run_path_imports_stay_lean() -> None:
    """What ``sysgate run`` loads: none of the modules that cost milliseconds at start-up."""
    code = ("import sys; from sysgate.cli import main; rc = main(['run', '--', '/bin/true']); "
            "print(rc, ' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=SRC))  # no terminal: that path loads the relay
    rc, mods = p.stdout.decode().split(" ", 1)
    assert rc == "0", p.stderr
    heavy = {"argparse", "typing", "enum", "re", "json", "threading", "collections", "subprocess", "hashlib",
             "signal", "sysgate.compiler", "sysgate.profiles", "sysgate.policy", "sysgate.jail.cgroups",
             "sysgate.jail.netpool", "sysgate.jail.audit_log", "sysgate.jail.terminal", "socket", "select"}
    # sysgate.jail.landlock is on the path (it scopes every sandbox's signals): it imports nothing new
    assert not heavy & set(mods.split()), heavy & set(mods.split())


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_signals_to_the_cli_on_a_terminal_reach_the_command() -> None:
    """With a terminal (the pty relay's thread runs): ``kill <pid of sysgate run>`` is passed on
    too. Before, the relay thread started before the signals were blocked and took SIGTERM's
    default action: sysgate died (-15) and the command never got it."""
    import pty
    import select
    import signal
    import time

    script = "trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execve(sys.executable, [sys.executable, "-m", "sysgate", "run", "--", "sh", "-c", script],
                      dict(os.environ, PYTHONPATH=SRC))
        finally:
            os._exit(127)
    out, sent, reaped = b"", False, False
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if select.select([fd], [], [], 0.2)[0]:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: sysgate and the terminal's last user are gone
                    break
                if not chunk:
                    break
                out += chunk
                if not sent and b"ready" in out:
                    os.kill(pid, signal.SIGTERM)
                    sent = True
        assert sent, out
        for _ in range(2000):  # the terminal hung up: sysgate is exiting (at most 20 s)
            done, st = os.waitpid(pid, os.WNOHANG)
            if done:
                reaped = True
                break
            time.sleep(0.01)
        assert reaped, out
        assert (os.waitstatus_to_exitcode(st), b"got-term" in out) == (7, True), out
    finally:
        if not reaped:  # ours and not reaped yet: the pid cannot have been reused
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
@pytest.mark.parametrize("launcher", ["vfork", "fork"])
def test_signals_to_the_cli_reach_the_command(launcher: str) -> None:
    """``kill <pid of sysgate run>`` is passed on to the command (not held until it ends), and ^C
    (SIGINT to the whole process group) ends it without a traceback."""
    import select
    import signal
    import time

    script = "trap 'echo got-$1; exit 7' TERM; echo ready; while :; do sleep 0.05; done"
    cases = [(signal.SIGTERM, False, ["sh", "-c", script.replace("$1", "term"), "x"], 7, b"ready\ngot-term\n"),
             (signal.SIGHUP, False, ["sh", "-c", "echo ready; exec sleep 30"], 128 + signal.SIGHUP, b"ready\n"),
             (signal.SIGINT, True, ["sh", "-c", "echo ready; exec sleep 30"], 128 + signal.SIGINT, b"ready\n")]
    for sig, group, cmd, status, out in cases:
        p = subprocess.Popen([sys.executable, "-m", "sysgate", "run", "--launcher", launcher, "--", *cmd],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                             env=dict(os.environ, PYTHONPATH=SRC))
        try:
            assert select.select([p.stdout], [], [], 20)[0], "the sandbox did not start"
            assert p.stdout.readline() == b"ready\n"
            t = time.monotonic()
            (os.killpg if group else os.kill)(p.pid, sig)
            rest, err = p.communicate(timeout=20)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert time.monotonic() - t < 5, sig                  # not held until the command ends by itself
        assert (p.returncode, b"ready\n" + rest) == (status, out), (sig, err)
        assert b"Traceback" not in err and err.count(b"\n") <= 1, err
