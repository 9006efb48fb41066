"""Escape probes: each attempt fails, and the test checks *how* (the errno, or SIGSYS).

The probes themselves are in tests/jail_probe.py and run inside the sandbox, each in its own
process. They run as root and, through a forked runner that drops to nobody, unprivileged.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sys

import pytest

from jail_support import PROBE, SYSTEM_PY, as_nobody, needs_root, needs_userns, no_leftovers  # noqa: F401

from sysgate.jail import run

pytestmark = [needs_userns, pytest.mark.usefixtures("no_leftovers")]

IS_X86_64 = os.uname().machine == "x86_64"
x86_only = pytest.mark.skipif(not IS_X86_64, reason="the probes use x86_64 syscall numbers and int 0x80")

# docker-default, as root or not: what each probe must end with.
DEFAULT_EXPECTED = {
    "mount": "EPERM", "umount2": "EPERM", "pivot_root": "EPERM", "chroot": "EPERM", "setns": "EPERM",
    "unshare_user": "EPERM", "clone_newuser": "EPERM",
    "ptrace_host": "ESRCH", "kill_host": "ESRCH",           # the host's pids do not exist in here
    "keyctl": "EPERM", "add_key": "EPERM", "bpf": "EPERM", "perf_event_open": "EPERM", "userfaultfd": "EPERM",
    "io_uring_setup": "EPERM", "kexec_load": "EPERM", "init_module": "EPERM", "reboot": "EPERM",
    "swapon": "EPERM", "open_by_handle_at": "EPERM", "clock_settime": "EPERM", "acct": "EPERM",
    "i386_reboot": "EPERM", "x32_reboot": "EPERM",           # the filter covers the compat ABIs too
    "connect_host": "ECONNREFUSED",                          # own loopback: nothing listens there
    "write_etc": "EROFS", "write_root": "EROFS", "write_core_pattern": "EROFS", "write_cgroup": "EROFS",
}


@pytest.fixture(scope="module")
def listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(8)
    yield s.getsockname()[1]
    s.close()


# The checkout may live under /tmp, which is private in the sandbox: bind the probe in read-only.
IN_PROBE = "/tmp/jail_probe.py"
PROBE_BIND = (PROBE, IN_PROBE, True)


def probe(port: int, *names: str, python: str = sys.executable, **options) -> dict:
    r = run([python, IN_PROBE, str(os.getpid()), str(port), *names], capture_output=True, timeout=60,
            binds=[PROBE_BIND], **options)
    assert r.ok, (r.status, r.stderr)
    return json.loads(r.stdout)


def outcome(res: dict) -> str | int:
    return res.get("errno") or res.get("signal") or ("ok" if "ok" in res else str(res))


@x86_only
def test_default_profile_as_root(listener: int) -> None:
    got = probe(listener)
    assert {k: outcome(got[k]) for k in DEFAULT_EXPECTED} == DEFAULT_EXPECTED
    assert got["write_tmp"] == {"ok": "written"}          # the private /tmp is writable
    assert "ok" in got["i386_getpid"]                      # allowed calls still work through int 0x80


def _probe_unprivileged(port: int, host_pid: int) -> dict:
    r = run([SYSTEM_PY, IN_PROBE, str(host_pid), str(port)], capture_output=True, timeout=60, binds=[PROBE_BIND])
    return {"status": r.status, "stderr": r.stderr, "out": json.loads(r.stdout or b"{}")}


@x86_only
@needs_root
def test_default_profile_unprivileged(listener: int) -> None:
    res = as_nobody(_probe_unprivileged, listener, os.getpid(), timeout=60)
    assert res["status"] == "exited", res["stderr"]
    got = res["out"]
    # root-owned files that exist: the permission check (EACCES) comes before the read-only one
    expected = {**DEFAULT_EXPECTED, "write_core_pattern": "EACCES", "write_cgroup": "EACCES"}
    assert {k: outcome(got[k]) for k in expected} == expected
    assert got["write_tmp"] == {"ok": "written"}


@x86_only
def test_kill_default_action_gives_sigsys(listener: int) -> None:
    names = ["mount", "pivot_root", "keyctl", "bpf", "reboot", "init_module", "clone_newuser", "ptrace_host"]
    got = probe(listener, *names, seccomp_action="kill-process")
    assert {k: outcome(got[k]) for k in names} == {**{k: signal.SIGSYS for k in names[:-1]}, "ptrace_host": "ESRCH"}


@x86_only
def test_other_arches_killed_when_not_covered(listener: int, tmp_path) -> None:
    prof = tmp_path / "x86_64-only.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                "syscalls": [{"names": ["reboot"], "action": "SCMP_ACT_ERRNO"}]}))
    got = probe(listener, "i386_getpid", "x32_getpid", "reboot", profile=str(prof))
    assert outcome(got["i386_getpid"]) == signal.SIGSYS     # int 0x80: an arch the filter does not know
    assert outcome(got["x32_getpid"]) == signal.SIGSYS      # x32 numbers on the x86_64 token
    assert outcome(got["reboot"]) == "EPERM"


@x86_only
def test_layers_hold_without_seccomp(listener: int) -> None:
    """No filter at all: capabilities, namespaces and read-only mounts still stop these."""
    expected = {"mount": "EPERM", "umount2": "EPERM", "pivot_root": "EPERM", "chroot": "EPERM",
                "setns": "EPERM", "ptrace_host": "ESRCH", "kill_host": "ESRCH", "reboot": "EPERM",
                "swapon": "EPERM", "clock_settime": "EPERM", "acct": "EPERM",
                "open_by_handle_at": "EPERM", "connect_host": "ECONNREFUSED", "write_etc": "EROFS",
                "write_root": "EROFS", "write_core_pattern": "EROFS", "write_cgroup": "EROFS"}
    got = probe(listener, *expected, profile=None)
    assert {k: outcome(got[k]) for k in expected} == expected


@x86_only
def test_probe_would_notice_an_open_door(listener: int) -> None:
    """The same probe succeeds where the door is open on purpose, so a failure above means something."""
    got = probe(listener, "connect_host", share=["net"])
    assert got["connect_host"] == {"ok": "connected"}


def test_tmpfs_hides_host_path(tmp_path) -> None:
    secret_dir = f"/var/tmp/sysgate-escape-{os.getpid()}"
    os.makedirs(secret_dir, exist_ok=True)
    try:
        with open(f"{secret_dir}/secret", "w") as f:
            f.write("top secret")
        seen = run(["cat", f"{secret_dir}/secret"], capture_output=True)
        assert seen.stdout == b"top secret"                 # visible (read-only) without --tmpfs
        hidden = run(["cat", f"{secret_dir}/secret"], capture_output=True, tmpfs=[secret_dir])
        assert hidden.returncode == 1 and b"No such file" in hidden.stderr
    finally:
        os.unlink(f"{secret_dir}/secret")
        os.rmdir(secret_dir)


def test_rootfs_hides_everything_else(tmp_path) -> None:
    root = tmp_path / "root"
    for d in ("dev", "proc", "tmp", "usr"):
        (root / d).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.isdir(f"/usr/{link}"):
            (root / link).symlink_to(f"usr/{link}")
    r = run(["/bin/sh", "-c", "ls /; cat /etc/hostname; ls /root"], capture_output=True, rootfs=str(root),
            binds=["/usr"], cwd="/")
    assert set(r.stdout.split()) == {e.encode() for e in os.listdir(root)}
    assert b"/etc/hostname: No such file" in r.stderr and b"/root': No such file" in r.stderr
    w = run(["/bin/sh", "-c", "echo x > /usr/x"], capture_output=True, rootfs=str(root), binds=["/usr"], cwd="/")
    assert b"Read-only file system" in w.stderr


@needs_root
def test_landlock_limits_reachable_paths() -> None:
    from sysgate.jail import landlock

    if landlock.abi_version() <= 0:
        pytest.skip("kernel without Landlock")
    r = run(["/bin/sh", "-c", "cat /etc/hostname >/dev/null && echo etc-ok; ls /work >/dev/null 2>&1 || "
                              "echo work-denied; echo x > /tmp/f && echo tmp-ok"],
            capture_output=True, landlock_ro=["/usr", "/lib", "/lib64", "/bin", "/etc"], landlock_rw=["/tmp"])
    assert r.stdout.split() == [b"etc-ok", b"work-denied", b"tmp-ok"], r.stderr
