"""``sysgate run`` on the command line: the parser, the Options record and docs/jail.md come from
one table, ``--help`` documents every option, the README-level command lines work, and the run
path stays lean."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import pytest

from jail_support import ROOT, TESTS, needs_userns, no_leftovers  # noqa: F401
from sysgate import cli as sysgate_cli
from sysgate.commands.run import COMMAND_FLAGS, flags, options_from_args
from sysgate.errors import BadArgument
from sysgate.jail import cgroups
from sysgate.jail.options import FIELDS, Options

SRC = os.path.join(os.path.dirname(TESTS), "src")


def run_parser() -> argparse.ArgumentParser:
    p = sysgate_cli.build_parser("run")
    return p._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]


def parse(words: list[str]) -> argparse.Namespace:
    return sysgate_cli.parse_args(["run", *words])


# -- one table ---------------------------------------------------------------------------------------

def test_the_parser_and_the_record_come_from_the_table() -> None:
    p = run_parser()
    strings = {s for a in p._actions for s in a.option_strings} - {"-h", "--help"}
    assert strings == {n for f in flags() for n in f.names}
    assert Options.__slots__ == tuple(f.name for f in FIELDS) == tuple(Options.__annotations__)
    assert {f.field for f in COMMAND_FLAGS} == {None}  # the command's own flags set no sandbox field
    help_text = p.format_help()
    for f in flags():
        assert (f.name in help_text) != f.hidden, f.name


def test_every_option_is_documented_and_reaches_options() -> None:
    # each Options field is set by some option (the rest must differ from the default)
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
    base = options_from_args(parse(["--", "true"]))
    assert base == Options()  # no option: the API's defaults
    for field, words in sample.items():
        opts = options_from_args(parse([*words, "--", "true"]))
        assert getattr(opts, field) != getattr(base, field), field
    assert options_from_args(parse(["--no-seccomp", "--", "true"])).profile is None
    # --profile and --no-seccomp each set the profile: the later one silently undid the other
    with pytest.raises(BadArgument, match="--profile and --no-seccomp: they contradict"):
        options_from_args(parse(["--no-seccomp", "--profile", "strict", "true"]))
    with pytest.raises(BadArgument, match="--allow: empty value"):
        options_from_args(parse(["--allow", "read,", "true"]))
    assert options_from_args(parse(["--share", "ipc,uts", "--share", "pid", "true"])).share == {"ipc", "uts", "pid"}
    assert options_from_args(parse(["--net", "host", "--share", "ipc", "true"])).share == {"net", "ipc"}
    assert options_from_args(parse(["--net", "host", "--net", "none", "true"])).share == frozenset()
    b = options_from_args(parse(["--ro-bind", "/usr", "--bind", "/tmp:/mnt", "true"])).binds
    assert [(x.src, x.dst, x.readonly) for x in b] == [("/tmp", "/mnt", False), ("/usr", "/usr", True)]


@pytest.mark.parametrize("words, api", [
    (["--memory", "64K"], {"memory": "64K"}), (["--timeout", "0"], {"timeout": 0}),
    (["--share", "time"], {"share": ["time"]}), (["--bind", "rel:dst"], {"binds": [("/a", "dst")]}),
    (["--rlimit", "nofile=x"], {"rlimits": ["nofile=x"]}), (["--pids", "0"], {"pids": 0}),
    (["--cpus", "1e9"], {"cpus": 1e9}), (["--env", "NOEQ"], {"env": ["NOEQ"]}),
])
def test_cli_and_api_refuse_alike(words: list[str], api: dict) -> None:
    """The command line and sysgate.run() are checked by the same table: the same option named."""
    from sysgate.errors import BadArgument

    with pytest.raises(BadArgument) as by_cli:
        options_from_args(parse([*words, "true"]))
    with pytest.raises(BadArgument) as by_api:
        Options.from_kwargs(**api)
    assert by_cli.value.option == by_api.value.option == words[0].partition("=")[0] != None  # noqa: E711
    assert "\n" not in str(by_cli.value)


def test_api_switches_take_only_booleans() -> None:
    from sysgate.errors import BadArgument

    for name in ("mediate", "ask", "clear_env", "die_with_parent", "skip_unknown"):
        with pytest.raises(BadArgument, match=name):
            Options.from_kwargs(**{name: "no"})
    assert Options(mediate=False).mediate is False


# -- the command line as a user types it ------------------------------------------------------------

def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sysgate", "run", *args], capture_output=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=SRC))


def _sh(script: str) -> subprocess.CompletedProcess:
    """``script`` in sh, with ``$SG`` running ``python -m sysgate run``."""
    env = dict(os.environ, PYTHONPATH=SRC, SG=f"{sys.executable} -m sysgate run")
    return subprocess.run(["sh", "-c", script], capture_output=True, timeout=60, env=env)


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_closed_streams_json_on_set_up_failures_and_sigpipe() -> None:
    """Found by trying the CLI: with stdout closed it ran the command, then failed with an
    AttributeError (exit 70); with stderr closed its "not found" went into stdout; --json and
    --status-fd said nothing of a set-up failure; `... -- yes | head -1` printed "killed by SIGPIPE"."""
    p = _sh("$SG -- true >&-; echo rc=$?")
    assert p.stdout == b"rc=0\n" and b"Traceback" not in p.stderr and b"internal error" not in p.stderr, p
    p = _sh("$SG -- nonexistent-sysgate-cmd 2>&-; echo rc=$?")
    assert p.stdout == b"rc=127\n", p
    p = cli("--json", "--", "nonexistent-sysgate-cmd")
    got = json.loads(p.stdout.splitlines()[-1])
    assert p.returncode == 127 and got["status"] == "setup-failed" and got["stage"] == "exec" and got["exit_code"] == 127
    p = _sh("$SG --status-fd 3 --chdir /nonexistent-sysgate-dir -- true 3>&1 2>/dev/null; echo rc=$?")
    first, last = p.stdout.splitlines()
    assert json.loads(first)["exit_code"] == 125 and last == b"rc=125", p
    p = _sh("$SG -- yes | head -1")
    assert p.stdout == b"y\n" and p.stderr == b"", p


@needs_userns
@pytest.mark.usefixtures("no_leftovers")
def test_strict_refuses_a_profile_however_often_it_ran_before(tmp_path) -> None:
    """A profile read with a warning was cached, and --strict then found nothing to refuse."""
    prof = tmp_path / "warned.json"
    prof.write_text('{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [], "sysgateTestUnknown": 3}')
    for _ in range(2):
        p = cli("--profile", str(prof), "--", "true")
        assert p.returncode == 0 and b"sysgateTestUnknown: unknown field" in p.stderr, p
    p = cli("--strict", "--profile", str(prof), "--", "true")
    assert p.returncode == 2 and b"sysgateTestUnknown" in p.stderr, p


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
            "from sysgate.jail import runner; print(rc, runner._reaper_ident, ' '.join(sorted(sys.modules)))")
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, PYTHONPATH=SRC))  # no terminal: that path loads the relay
    rc, reaper, mods = p.stdout.decode().split(" ", 2)
    assert rc == "0", p.stderr
    # The command exits right after its one sandbox: its exiting init is left to the adopter, no
    # thread is started to reap it (runner.exit_after_run).
    assert reaper == "0"
    # A plain command line is read without argparse (commands.run.read_plain): no argparse, nor the
    # re, gettext and locale it brings; records are never compared on this path: no operator.
    # Profile warnings go to the CLI's sink: no warnings. The listener crosses through libc
    # (kernel.fdpass): no _socket; init reaps and sets limits through libc (kernel.process): no
    # resource. The judging half of the supervisor loads on a first notification only.
    heavy = {"typing", "json", "threading", "subprocess", "hashlib", "sysgate.compiler", "sysgate.profiles",
             "sysgate.policy", "sysgate.jail.cgroups", "sysgate.jail.netpool", "sysgate.jail.audit_log",
             "sysgate.jail.terminal", "socket", "select", "argparse", "re", "gettext", "locale", "operator",
             "warnings", "_socket", "resource", "sysgate.jail.mediation", "sysgate.jail.send_mediation"}
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
