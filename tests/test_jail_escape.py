"""Escape probes: each attempt fails, and the test checks *how* (the errno, or SIGSYS).

The probes themselves are in tests/jail_probe.py and run inside the sandbox, each in its own
process. They run as root and, through a forked runner that drops to nobody, unprivileged.
"""
from __future__ import annotations

import json
import os
import signal
import socket

import pytest

from jail_support import PROBE, PY, SYSTEM_PY, as_nobody, needs_root, needs_userns, no_leftovers  # noqa: F401
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
    "write_etc": "EROFS", "write_root": "EROFS",
    # root-owned files that exist: the permission check (EACCES) comes before the read-only one; a root
    # caller's sandbox is an unprivileged host id too
    "write_core_pattern": "EACCES", "write_cgroup": "EACCES",
    "ptrace_init": "EPERM", "proc1_mem": "ENOENT",           # PID 1 is not dumpable: hidepid hides it
    "i386_socket_vsock": "EPERM", "x32_socket_vsock": "EPERM",  # socket's family rule holds on every ABI
}

# The probes the filter itself must stop: with kill-process as the default action each dies of SIGSYS,
# which shows the filter (not a missing capability) is what refuses them, on all three x86 ABIs.
SECCOMP_PROBES = ["mount", "umount2", "pivot_root", "chroot", "setns", "unshare_user", "clone_newuser", "keyctl",
                  "add_key", "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "kexec_load", "init_module",
                  "reboot", "swapon", "open_by_handle_at", "clock_settime", "acct", "i386_reboot", "x32_reboot",
                  "i386_socket_vsock", "x32_socket_vsock"]


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


def probe(port: int, *names: str, python: str = PY, **options) -> dict:
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
    expected = DEFAULT_EXPECTED
    assert {k: outcome(got[k]) for k in expected} == expected
    assert got["write_tmp"] == {"ok": "written"}


def _probe_as_caller(port: int, host_pid: int, names: list[str], options: dict) -> dict:
    r = run([SYSTEM_PY, IN_PROBE, str(host_pid), str(port), *names], capture_output=True, timeout=60,
            binds=[PROBE_BIND, *options.pop("binds", ())], **options)
    assert r.status == "exited", (r.status, r.stderr)
    return json.loads(r.stdout)


def probe_as(who: str, port: int, names: list[str], **options) -> dict:
    """Run probes ``names`` in a sandbox started by root or by nobody (a forked caller that dropped to 65534)."""
    if who == "root":
        return _probe_as_caller(port, os.getpid(), names, options)
    return as_nobody(_probe_as_caller, port, os.getpid(), names, options, timeout=60)


CALLERS = ["root", pytest.param("nobody", marks=needs_root)]


@x86_only
@pytest.mark.parametrize("who", CALLERS)
def test_kill_default_action_gives_sigsys(listener: int, who: str) -> None:
    got = probe_as(who, listener, [*SECCOMP_PROBES, "ptrace_host", "i386_getpid"], seccomp_action="kill-process")
    assert {k: outcome(got[k]) for k in SECCOMP_PROBES} == {k: signal.SIGSYS for k in SECCOMP_PROBES}
    assert outcome(got["ptrace_host"]) == "ESRCH"             # allowed by the filter; the PID namespace hides it
    assert "ok" in got["i386_getpid"]                          # the i386 part of the filter allows what it should


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
@pytest.mark.parametrize("who", CALLERS)
def test_layers_hold_without_seccomp(listener: int, who: str) -> None:
    """No filter at all: capabilities, namespaces and read-only mounts still stop these."""
    expected = {"mount": "EPERM", "umount2": "EPERM", "pivot_root": "EPERM", "chroot": "EPERM",
                "setns": "EPERM", "ptrace_host": "ESRCH", "kill_host": "ESRCH", "reboot": "EPERM",
                "ptrace_init": "EPERM", "proc1_mem": "ENOENT",
                "swapon": "EPERM", "clock_settime": "EPERM", "acct": "EPERM",
                "open_by_handle_at": "EPERM", "connect_host": "ECONNREFUSED", "write_etc": "EROFS",
                "write_root": "EROFS", "write_core_pattern": "EACCES", "write_cgroup": "EACCES"}
    got = probe_as(who, listener, list(expected), profile=None)
    assert {k: outcome(got[k]) for k in expected} == expected


@x86_only
def test_probe_would_notice_an_open_door(listener: int) -> None:
    """The same probe succeeds where the door is open on purpose, so a failure above means something."""
    got = probe(listener, "connect_host", share=["net"])
    assert got["connect_host"] == {"ok": "connected"}


# Somewhere the sandbox's view shows (/tmp, /var/tmp and /run are hidden trees).
VISIBLE_DIR = "/var/lib" if os.geteuid() == 0 else os.path.expanduser("~")


@pytest.fixture
def fs_tree():
    """A tree nobody can traverse, outside the hidden trees: a secret, bind sources and a minimal rootfs."""
    import shutil

    base = os.path.join(VISIBLE_DIR, f"sysgate-escape-{os.getpid()}")
    os.makedirs(base, 0o755)
    os.chmod(base, 0o755)
    try:
        for d, mode in (("secret", 0o755), ("ro", 0o755), ("rw", 0o777)):
            os.mkdir(f"{base}/{d}")
            os.chmod(f"{base}/{d}", mode)
        for path, text in (("secret/secret", "top secret"), ("ro/f", "ro-data")):
            with open(f"{base}/{path}", "w") as f:
                f.write(text)
            os.chmod(f"{base}/{path}", 0o644)
        root = f"{base}/root"
        for d in ("dev", "proc", "tmp", "usr"):
            os.makedirs(f"{root}/{d}")
        for d in ("", "dev", "proc", "tmp", "usr"):
            os.chmod(f"{root}/{d}", 0o755)
        for link in ("bin", "lib", "lib64", "sbin"):
            if os.path.isdir(f"/usr/{link}"):
                os.symlink(f"usr/{link}", f"{root}/{link}")
        yield base
    finally:
        shutil.rmtree(base)


@x86_only
@pytest.mark.parametrize("who", CALLERS)
def test_filesystem_probes(listener: int, fs_tree: str, who: str) -> None:
    """Hidden under --tmpfs, absent from --rootfs, and every write outside the writable binds: refused, and how."""
    b = fs_tree
    seen = probe_as(who, listener, [f"read:{b}/secret/secret"])
    assert seen[f"read:{b}/secret/secret"] == {"ok": "top secret"}        # visible (read-only) without --tmpfs
    names = [f"read:{b}/secret/secret", f"list:{b}/secret", "write:/mnt/rw/new", "write:/mnt/ro/new",
             "read:/mnt/ro/f", "write:/mnt/scratch", f"write:{b}/rw/via-host-path", "write:/var/tmp/x",
             "write:/usr/x", "write:/proc/x", "write:/sys/x"]
    got = probe_as(who, listener, names, tmpfs=[f"{b}/secret", "/mnt"],
                   binds=[(f"{b}/rw", "/mnt/rw", False), (f"{b}/ro", "/mnt/ro", True)])
    assert {k: outcome(got[k]) for k in names} == {
        f"read:{b}/secret/secret": "ENOENT", f"list:{b}/secret": "ok",      # an empty tmpfs hides the secret
        "write:/mnt/rw/new": "ok", "write:/mnt/ro/new": "EROFS", "read:/mnt/ro/f": "ok",
        "write:/mnt/scratch": "ok",                                          # a --tmpfs is writable
        f"write:{b}/rw/via-host-path": "EROFS",                              # the bind source through the root
        "write:/var/tmp/x": "ok",                                            # a private tmpfs hides the host's
        "write:/usr/x": "EROFS",
        "write:/proc/x": "ENOENT", "write:/sys/x": "EROFS",
    }
    assert got[f"list:{b}/secret"] == {"ok": []} and got["read:/mnt/ro/f"] == {"ok": "ro-data"}
    assert os.listdir(f"{b}/rw") == ["new"]                                  # the write went to the host's dir
    # --rootfs: only what is in it (plus /dev, /proc, /tmp, the binds) exists
    names = ["list:/", "read:/etc/hostname", f"read:{b}/secret/secret", "list:/root", "write:/x", "write:/usr/x"]
    got = probe_as(who, listener, names, rootfs=f"{b}/root", binds=["/usr"], cwd="/")
    assert got["list:/"] == {"ok": sorted(os.listdir(f"{b}/root"))}
    assert {k: outcome(got[k]) for k in names[1:]} == {
        "read:/etc/hostname": "ENOENT", f"read:{b}/secret/secret": "ENOENT", "list:/root": "ENOENT",
        "write:/x": "EROFS", "write:/usr/x": "EROFS"}


@needs_root
def test_landlock_limits_reachable_paths() -> None:
    from sysgate.jail import landlock

    if landlock.abi_version() <= 0:
        pytest.skip("kernel without Landlock")
    r = run(["/bin/sh", "-c", "cat /etc/hostname >/dev/null && echo etc-ok; ls /work >/dev/null 2>&1 || "
                              "echo work-denied; echo x > /tmp/f && echo tmp-ok"],
            capture_output=True, landlock_ro=["/usr", "/lib", "/lib64", "/bin", "/etc"], landlock_rw=["/tmp"])
    assert r.stdout.split() == [b"etc-ok", b"work-denied", b"tmp-ok"], r.stderr
