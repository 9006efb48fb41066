"""Bad values given to ``sysgate.run`` and ``sysgate run``: one clear error naming the option,
before anything runs; and a bug in the sandbox's set-up shown as a bug, never as a set-up failure.

Found by trying the API and the command line from outside: wrong types gave TypeError or
AttributeError from deep inside (or were silently misread: ``binds={"/tmp": "/mnt"}`` bound /tmp
at /tmp), ``env={"A": 1}`` failed after set-up as "exec: TypeError" (exit 125), a bind source
whose name is not UTF-8 failed as "mount: UnicodeDecodeError", and ``--hostname`` or
``--keep-env`` with such bytes ended in a traceback.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

import forkrun
from jail_support import TESTS, needs_userns, scratch_dir
from sysgate.errors import BadArgument
from sysgate.jail import SandboxError, run, runner
from sysgate.jail.options import FIELDS

SRC = os.path.join(os.path.dirname(TESTS), "src")

BAD = [
    ("binds", 5), ("binds", {"/tmp": "/mnt"}), ("binds", [("/tmp", "/mnt", "")]), ("tmpfs", 5),
    ("rlimits", 5), ("rlimits", [5]), ("rlimits", {5: 1}), ("env", 5), ("env", {1: "x"}), ("env", {"A": 1}),
    ("env", {"A": "x\0y"}), ("share", 5), ("share", [5]), ("deny", 5), ("allow", [5]), ("cap_add", 5),
    ("keep_env", [1]), ("keep_env", [b"PATH"]), ("keep_env", ["A=B"]), ("allow_sockets", 5), ("allow_connect", 5),
    ("allow_paths", 5), ("allow_paths", ["/usr:rx"]), ("cwd", 5), ("rootfs", 5), ("landlock_ro", [5]),
    ("profile", ["strict"]), ("profile", 5), ("seccomp_action", 5), ("seccomp_action", "foo"),
    ("seccomp_action", "errno:99999"), ("tmp_size", 0), ("pids", 1 << 31), ("hostname", "a\0b"),
    ("stdin", 999), ("capture_output", "yes"), ("forward_signals", "x"),
]


@pytest.mark.parametrize("name,value", BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_a_bad_value_is_refused_naming_its_option(name: str, value: object) -> None:
    with pytest.raises(BadArgument) as e:
        run(["true"], timeout=10, **{name: value})  # type: ignore[arg-type]
    said = str(e.value)
    # named as the API calls it or as the command line does (--chdir for cwd)
    spellings = {name, *(n for f in FIELDS if f.name == name for fl in f.flags for n in fl.names)}
    assert "\n" not in said and any(s in said for s in spellings), (said, spellings)


@needs_userns
def test_paths_and_names_that_are_not_utf8() -> None:
    d = scratch_dir(".sysgate-bytes-")
    odd = os.path.join(os.fsencode(d), b"d\xff")
    try:
        os.mkdir(odd)
        r = run(["/bin/ls", "-d", "/mnt"], binds=[(os.fsdecode(odd), "/mnt", True)], capture_output=True, timeout=30)
        assert r.ok and r.stdout == b"/mnt\n", r
        r = run(["/bin/hostname"], hostname=os.fsdecode(b"h\xff"), capture_output=True, timeout=30)
        assert r.ok and r.stdout == b"h\xff\n", r
        r = run(["/bin/true"], keep_env=[os.fsdecode(b"V\xff")], timeout=30)
        assert r.ok, r
    finally:
        os.rmdir(odd)
        os.rmdir(d)
    p = subprocess.run([sys.executable, "-m", "sysgate", "run", "--profile", b"/no-such-\xff.json", "--", "true"],
                       capture_output=True, timeout=60, env=dict(os.environ, PYTHONPATH=SRC))
    assert p.returncode == 2 and p.stderr.count(b"\n") == 1 and b"Traceback" not in p.stderr, p.stderr


def _bug_in_init(launcher: str) -> tuple:
    def broken(plan: object) -> None:
        raise TypeError("a bug planted by the test")

    runner._chdir = broken  # a forked child's copy: the test runner keeps its own
    try:
        run(["true"], timeout=30, launcher=launcher)
    except SandboxError as e:
        return ("set-up failure", str(e))
    except runner.SetupBug as e:
        return ("bug", e.stage, e.text, "_chdir" in e.where or "broken" in e.where)
    return ("ran",)


@needs_userns
@pytest.mark.parametrize("launcher", ["vfork", "fork"])
def test_a_bug_in_the_sandboxs_set_up_is_a_bug_not_a_set_up_failure(launcher: str) -> None:
    got = forkrun.run(lambda _: _bug_in_init(launcher), None, timeout=60).unwrap()
    assert got == ("bug", "cwd", "TypeError: a bug planted by the test", True), got


def test_a_tmpfs_and_a_bind_at_one_place_are_refused() -> None:
    """``--tmpfs /mnt --bind SRC:/mnt``: the tmpfs silently hid the bind, whatever the order."""
    with pytest.raises(BadArgument, match="--tmpfs /mnt and a --bind to /mnt"):
        run(["true"], binds=[("/usr", "/mnt", True)], tmpfs=["/mnt"], timeout=10)


def test_kept_capabilities_need_the_sandboxs_user_namespace() -> None:
    """--share user --keep-host-root --cap-add SYS_ADMIN gave the command host CAP_SYS_ADMIN: it
    unmounted the filter cache's mask, read the cache key and remounted / read-write."""
    with pytest.raises(BadArgument, match="--cap-add: needs the sandbox's user namespace"):
        run(["true"], share=["user"], keep_host_root=True, cap_add=["SYS_ADMIN"], timeout=10)
