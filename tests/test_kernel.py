"""sysgate.kernel against the real kernel. Every filter is loaded in a forked child (tests/forkrun.py)."""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forkrun import read_within, run, start
from sysgate.arch import get, native
from sysgate.bpf import insn as I
from sysgate.bpf.emulator import SeccompData, emulate
from sysgate.kernel import memory, notify, ptrace
from sysgate.kernel import seccomp as S
from sysgate.kernel.syscall import errno_name, prctl, syscall

ARCH = native()
NR = ARCH.nr


def action_for(syscall_name: str, ret: int, *, other: int = I.RET_ALLOW) -> list[I.Insn]:
    """ld arch; jeq native -> go on, else kill; ld nr; jeq name -> ret; else other."""
    return [
        I.stmt(I.LD | I.W | I.ABS, I.OFF_ARCH),
        I.jump(I.JMP | I.JEQ | I.K, ARCH.token, 1, 0),
        I.stmt(I.RET | I.K, I.RET_KILL_PROCESS),
        I.stmt(I.LD | I.W | I.ABS, I.OFF_NR),
        I.jump(I.JMP | I.JEQ | I.K, NR(syscall_name), 0, 1),
        I.stmt(I.RET | I.K, ret),
        I.stmt(I.RET | I.K, other),
    ]


ALLOW_ALL = [I.stmt(I.RET | I.K, I.RET_ALLOW)]


def call(name: str, *args: int) -> int:
    """Raw syscall; -errno on failure (so children can return it through the pipe)."""
    try:
        return syscall(NR(name), *args)
    except OSError as e:
        return -e.errno


def status_field(name: str, pid: int | str = "self") -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return line.split(":", 1)[1].strip()
    return ""


def error_info(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    """Run fn; return (exception type name, errno, message, tid) or None if it did not raise."""
    try:
        fn(*args, **kwargs)
    except S.SeccompError as e:
        return (type(e).__name__, e.errno, str(e), e.tid)
    except Exception as e:  # noqa: BLE001 - the test inspects whatever came out
        return (type(e).__name__, getattr(e, "errno", None), str(e), None)
    return None


# --------------------------------------------------------------------------- forkrun itself

def test_forkrun_reports_value_error_signal_and_timeout() -> None:
    assert run(lambda: (1, b"x")).unwrap() == (1, b"x")
    out = run(lambda: 1 / 0)
    assert out.exitcode == 1 and "ZeroDivisionError" in (out.error or "")
    assert run(lambda: os.kill(os.getpid(), signal.SIGUSR1)).signal == signal.SIGUSR1
    assert run(lambda: os._exit(7)).exitcode == 7
    with pytest.raises(TimeoutError):
        run(time.sleep, 30, timeout=0.2)


# --------------------------------------------------------------------------- syscall()

def test_syscall_passes_64_bit_and_negative_arguments() -> None:
    assert syscall(NR("getpid")) == os.getpid()
    with tempfile.TemporaryFile() as f:
        assert syscall(NR("lseek"), f.fileno(), 1 << 40, os.SEEK_SET) == 1 << 40
        for bad in (-1, 2**64 - 1):  # the same 64-bit value, signed or not
            with pytest.raises(OSError) as ei:
                syscall(NR("lseek"), f.fileno(), bad, os.SEEK_SET)
            assert ei.value.errno == errno.EINVAL
    with pytest.raises(OSError) as ei:
        syscall(100000)
    assert ei.value.errno == errno.ENOSYS and errno_name(ei.value.errno) == "ENOSYS"
    with pytest.raises(TypeError):
        syscall(NR("getpid"), 1, 2, 3, 4, 5, 6, 7)


# --------------------------------------------------------------------------- install(): kernel verdicts

def _errno_child(program: object) -> tuple[int, bool, str, str]:
    S.install(program)  # type: ignore[arg-type]
    return call("getpid"), call("getppid") == os.getppid(), status_field("Seccomp"), status_field("Seccomp_filters")


@pytest.mark.parametrize("as_bytes", [False, True])
def test_errno_filter_denies_getpid_only(as_bytes: bool) -> None:
    prog = action_for("getpid", I.RET_ERRNO | 77)
    program = I.encode(prog, sys.byteorder) if as_bytes else prog
    assert run(_errno_child, program).unwrap() == (-77, True, "2", "1")


@settings(max_examples=20, derandomize=True, deadline=None)
@given(name=st.sampled_from(["getpid", "getppid", "getuid", "getgid", "gettid"]),
       data=st.integers(1, 0xFFFF))
def test_errno_data_reaches_the_caller(name: str, data: int) -> None:
    def child() -> tuple[int, int]:
        S.install(action_for(name, I.RET_ERRNO | data))
        other = "getegid" if name != "getegid" else "geteuid"
        return call(name), call(other)

    got, other = run(child).unwrap()
    assert got == -min(data, I.MAX_ERRNO)  # the kernel caps errno at MAX_ERRNO
    assert other >= 0


def test_kill_process_ends_child_with_sigsys() -> None:
    def child() -> None:
        S.install(action_for("getpid", I.RET_KILL_PROCESS))
        call("getppid")
        call("getpid")
        os._exit(0)  # not reached

    assert run(child).signal == signal.SIGSYS


class _Sigaction(ctypes.Structure):
    _fields_ = [("sa_sigaction", ctypes.c_void_p), ("sa_mask", ctypes.c_ulong * 16),
                ("sa_flags", ctypes.c_int), ("sa_restorer", ctypes.c_void_p)]


def test_trap_delivers_sigsys_with_seccomp_siginfo() -> None:
    def child() -> tuple[int, bytes]:
        seen: list[bytes] = []
        handler_t = ctypes.CFUNCTYPE(None, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
        handler = handler_t(lambda sig, info, ctx: seen.append(ctypes.string_at(info, 32)))
        libc = ctypes.CDLL(None, use_errno=True)
        act = _Sigaction(ctypes.cast(handler, ctypes.c_void_p), sa_flags=4)  # SA_SIGINFO
        assert libc.sigaction(signal.SIGSYS, ctypes.byref(act), None) == 0
        S.install(action_for("getpid", I.RET_TRAP | 0x1234))
        call("getpid")  # the handler runs on the way back from this syscall
        return len(seen), seen[0]

    count, info = run(child).unwrap()
    # siginfo_t for SIGSYS: si_signo, si_errno (= SECCOMP_RET_DATA), si_code, pad, si_call_addr,
    # si_syscall, si_arch
    signo, si_errno, si_code, _, _, si_syscall, si_arch = struct.unpack("=iiiiQiI", info)
    assert (count, signo, si_errno, si_code) == (1, signal.SIGSYS, 0x1234, 1)  # si_code SYS_SECCOMP
    assert (si_syscall, si_arch) == (NR("getpid"), ARCH.token)


def _tsync_child(flags: int) -> int:
    go, done = threading.Event(), threading.Event()
    result: list[int] = []

    def worker() -> None:
        go.wait()
        result.append(call("getpid"))
        done.set()

    t = threading.Thread(target=worker)
    t.start()
    S.install(action_for("getpid", I.RET_ERRNO | 77), flags)
    go.set()
    t.join()
    return result[0]


def test_tsync_filters_other_threads() -> None:
    assert run(_tsync_child, S.SECCOMP_FILTER_FLAG_TSYNC).unwrap() == -77
    assert run(_tsync_child, 0).unwrap() > 0  # control: without TSYNC the thread is not filtered


def _tsync_conflict_child(flags: int) -> tuple[object, int]:
    installed, finish = threading.Event(), threading.Event()
    tid: list[int] = []

    def worker() -> None:
        tid.append(threading.get_native_id())
        S.install(action_for("getppid", I.RET_ERRNO | 5))  # the thread now has a filter main lacks
        installed.set()
        finish.wait()

    t = threading.Thread(target=worker)
    t.start()
    installed.wait()
    info = error_info(S.install, action_for("getpid", I.RET_ERRNO | 77), flags)
    finish.set()
    t.join()
    return info, tid[0]


def test_tsync_failure_names_the_offending_thread() -> None:
    info, tid = run(_tsync_conflict_child, S.SECCOMP_FILTER_FLAG_TSYNC).unwrap()
    kind, err, msg, got_tid = info
    assert (kind, err, got_tid) == ("SeccompError", errno.ESRCH, tid)
    assert f"TSYNC failed on thread {tid}" in msg
    info, _ = run(_tsync_conflict_child, S.SECCOMP_FILTER_FLAG_TSYNC | S.SECCOMP_FILTER_FLAG_TSYNC_ESRCH).unwrap()
    assert info[:2] == ("SeccompError", errno.ESRCH) and info[3] is None


def test_install_error_messages() -> None:
    def child() -> dict[str, object]:
        ok = action_for("getpid", I.RET_ERRNO | 1)
        bad_jump = [I.jump(I.JMP | I.JEQ | I.K, 0, 5, 0), I.stmt(I.RET | I.K, I.RET_ALLOW)]
        out = {
            "bad_program": error_info(S.install, bad_jump),
            "empty": error_info(S.install, b""),
            "odd_size": error_info(S.install, b"\x06\x00\x00\x00"),
            "tsync_listener": error_info(S.install, ok, S.SECCOMP_FILTER_FLAG_TSYNC | S.SECCOMP_FILTER_FLAG_NEW_LISTENER),
            "unknown_flag": error_info(S.install, ok, 1 << 20),
            "killable_alone": error_info(S.install, ok, S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV),
        }
        fd = S.install(ok, S.SECCOMP_FILTER_FLAG_NEW_LISTENER | S.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV)
        out["listener_fd"] = fd > 2
        out["second_listener"] = error_info(S.install, ok, S.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        return out

    out = run(child).unwrap()
    assert out["bad_program"][:2] == ("SeccompError", errno.EINVAL)
    assert out["bad_program"][2] == ("kernel refused the filter: EINVAL (program invalid: instruction 0: "
                                     "jump past the end)")
    assert "program invalid: program has 0 instructions" in out["empty"][2]
    assert out["odd_size"][0] == "ValueError" and "not a multiple of 8" in out["odd_size"][2]
    assert out["tsync_listener"][2] == ("kernel refused the filter: EINVAL (flag combination refused: "
                                        "TSYNC|NEW_LISTENER (TSYNC with NEW_LISTENER needs TSYNC_ESRCH))")
    assert out["unknown_flag"][2] == "kernel refused the filter: EINVAL (program invalid or flag unsupported: 0x100000)"
    assert "WAIT_KILLABLE_RECV needs NEW_LISTENER" in out["killable_alone"][2]
    assert out["listener_fd"] is True
    assert out["second_listener"][1] == errno.EBUSY and "already installed" in out["second_listener"][2]


@pytest.mark.skipif(S.get_no_new_privs(), reason="no_new_privs is already set on the test process")
def test_install_without_no_new_privs_or_cap_sys_admin() -> None:
    def child() -> object:
        os.setgid(65534)
        os.setuid(65534)  # no CAP_SYS_ADMIN any more
        return error_info(S.install, ALLOW_ALL, no_new_privs=False), status_field("Seccomp")

    info, mode = run(child).unwrap()
    assert info == ("SeccompError", errno.EACCES, "kernel refused the filter: EACCES (no_new_privs is not set "
                    "and the caller lacks CAP_SYS_ADMIN)", None)
    assert mode == "0"


def test_install_imports_nothing_in_the_child() -> None:
    """The jail calls install() between fork and execve: no import (and so no import lock) there."""
    def child() -> tuple[list[str], object, int, bool]:
        import builtins

        imported: list[str] = []
        real = builtins.__import__

        def spy(name, *args, **kwargs):  # type: ignore[no-untyped-def]
            imported.append(name)
            return real(name, *args, **kwargs)

        builtins.__import__ = spy
        try:
            bad = error_info(S.install, [I.stmt(I.LD | I.W | I.ABS, 1), I.stmt(I.RET | I.K, 0)])
            S.install(I.encode(action_for("getpid", I.RET_ERRNO | 3), sys.byteorder))
            fd = S.install(ALLOW_ALL, S.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        finally:
            builtins.__import__ = real
        return imported, bad, call("getpid"), fd > 2

    imported, bad, denied, got_fd = run(child).unwrap()
    assert imported == [] and denied == -3 and got_fd
    assert bad[2] == ("kernel refused the filter: EINVAL (program invalid: instruction 0: load from offset 1 "
                      "outside seccomp_data or unaligned)")


def test_prctl_fallback_when_seccomp_syscall_is_enosys() -> None:
    def child() -> tuple[int, object, str]:
        S.install(action_for("seccomp", I.RET_ERRNO | errno.ENOSYS))  # seccomp(2) now looks absent
        S.install(action_for("getpid", I.RET_ERRNO | 77))  # must go through prctl(PR_SET_SECCOMP)
        denied = call("getpid")
        info = error_info(S.install, ALLOW_ALL, S.SECCOMP_FILTER_FLAG_LOG)
        return denied, info, status_field("Seccomp_filters")

    denied, info, count = run(child).unwrap()
    assert denied == -77 and count == "2"
    assert info[1] == errno.ENOSYS and "cannot be passed through prctl(PR_SET_SECCOMP)" in info[2] and "LOG" in info[2]


# --------------------------------------------------------------------------- features()

def test_features_match_proc() -> None:
    before = status_field("Seccomp_filters")
    f = S.features()
    avail = Path("/proc/sys/kernel/seccomp/actions_avail")
    if avail.exists():
        assert f.actions == tuple(avail.read_text().split())
        assert {a for a, ok in f.actions_probed.items() if ok} == set(f.actions)
    assert f.available and f.filter_mode and f.syscall
    assert f.mode == int(status_field("Seccomp"))
    assert f.filters == int(before)
    assert status_field("Seccomp_filters") == before  # probing installed nothing
    assert f.notif_sizes == S.NotifSizes(ctypes.sizeof(notify.SeccompNotif), ctypes.sizeof(notify.SeccompNotifResp),
                                         I.SECCOMP_DATA_SIZE)
    kernel = tuple(int(x) for x in os.uname().release.split(".")[:2])
    if kernel >= (5, 19):
        assert all(f.flags.values()) and list(f.flags) == [fl.name for fl in S.Flag]
    text = f.describe()
    assert "filter mode: yes via seccomp(2)" in text and "NEW_LISTENER yes" in text
    assert "actions: " + " ".join(f.actions) in text


def test_flag_probe_semantics() -> None:
    """seccomp(SET_MODE_FILTER, flag, NULL): EFAULT for a known flag, EINVAL for an unknown one."""
    for flag, want in ((S.SECCOMP_FILTER_FLAG_TSYNC, errno.EFAULT), (S.SECCOMP_FILTER_FLAG_LOG, errno.EFAULT),
                       (1 << 30, errno.EINVAL)):
        with pytest.raises(OSError) as ei:
            syscall(NR("seccomp"), S.SECCOMP_SET_MODE_FILTER, flag, None)
        assert ei.value.errno == want
    assert S.flag_supported(1 << 30) is False and S.flag_supported(S.SECCOMP_FILTER_FLAG_SPEC_ALLOW) is True
    assert S.action_available("log") and not S.action_available(0x7FFE0000)


def test_features_in_a_filtered_child() -> None:
    def child() -> tuple[int | None, int | None, bool | None]:
        S.install(ALLOW_ALL)
        S.install(ALLOW_ALL)
        f = S.features()
        return f.mode, f.filters, f.no_new_privs

    assert run(child).unwrap() == (2, 2, True)


# --------------------------------------------------------------------------- user notification

def test_ioctl_numbers_match_the_uapi_headers() -> None:
    # values of the C macros from <linux/seccomp.h> on x86_64 (generic <asm-generic/ioctl.h>)
    generic = {"SECCOMP_IOCTL_NOTIF_RECV": 0xC0502100, "SECCOMP_IOCTL_NOTIF_SEND": 0xC0182101,
               "SECCOMP_IOCTL_NOTIF_ID_VALID": 0x40082102, "SECCOMP_IOCTL_NOTIF_ADDFD": 0x40182103}
    for arch in ("x86_64", "aarch64", "riscv64", "s390x", "loongarch64"):
        assert notify.ioctl_numbers(arch) == generic
    # powerpc: 3 direction bits, write = 4
    assert notify.ioctl_numbers("ppc64le") == {**generic, "SECCOMP_IOCTL_NOTIF_ID_VALID": 0x80082102,
                                               "SECCOMP_IOCTL_NOTIF_ADDFD": 0x80182103}
    if ARCH.name in ("x86_64", "aarch64"):
        assert notify.SECCOMP_IOCTL_NOTIF_RECV == 0xC0502100
    assert [ctypes.sizeof(c) for c in (notify.SeccompNotif, notify.SeccompNotifResp, notify.SeccompNotifAddfd)] \
        == [80, 24, 24]


def test_notification_names_the_syscall_per_abi() -> None:
    x86_64, x32 = get("x86_64"), get("x32")
    n = notify.Notification(1, 2, 0, SeccompData(x86_64.nr("getpid"), x86_64.token))
    assert n.arch() == x86_64 and n.syscall_name() == "getpid"
    n = notify.Notification(1, 2, 0, SeccompData(x32.nr("getpid"), x32.token))
    assert n.arch() == x32 and n.syscall_name() == "getpid"


def _notified_child(sock: socket.socket) -> tuple[int, int, int, bytes]:
    fd = S.install(action_for("getpid", I.RET_USER_NOTIF), S.SECCOMP_FILTER_FLAG_NEW_LISTENER)
    socket.send_fds(sock, [b"L"], [fd])
    os.close(fd)
    denied = call("getpid")     # supervisor: error 42
    real = call("getpid")       # supervisor: CONTINUE
    faked = call("getpid")      # supervisor: val 12345
    newfd = call("getpid")      # supervisor: add_fd(send=True) of a pipe with data in it
    return denied, real, faked, os.read(newfd, 100)


def test_user_notification_supervisor() -> None:
    parent_sock, child_sock = socket.socketpair()
    with parent_sock, child_sock, start(_notified_child, child_sock) as child:
        _, fds, _, _ = socket.recv_fds(parent_sock, 1, 1)
        listener = fds[0]
        try:
            n = notify.receive(listener, timeout=10)
            assert (n.pid, n.data.nr, n.data.arch, n.syscall_name()) == (child.pid, NR("getpid"), ARCH.token, "getpid")
            assert notify.id_valid(listener, n.id)
            notify.respond(listener, n.id, error=42)
            assert not notify.id_valid(listener, n.id)
            with pytest.raises(notify.NotifyError) as ei:
                notify.respond(listener, n.id, error=1)
            # ENOENT once the target resumed, EINPROGRESS while the answered notification is still listed
            assert ei.value.errno in (errno.ENOENT, errno.EINPROGRESS)
            assert str(ei.value).startswith(f"SECCOMP_IOCTL_NOTIF_SEND for notification {n.id}: E")

            n = notify.receive(listener, timeout=10)
            notify.respond(listener, n.id, flags=notify.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
            n = notify.receive(listener, timeout=10)
            notify.respond(listener, n.id, val=12345)
            n = notify.receive(listener, timeout=10)
            r, w = os.pipe()
            os.write(w, b"through addfd")
            remote = notify.add_fd(listener, n.id, r, send=True)
            os.close(r)
            os.close(w)
            out = child.wait(10)
            assert out.unwrap() == (-42, child.pid, 12345, b"through addfd")
            assert remote > 2
            with pytest.raises(notify.ListenerClosed):
                notify.receive(listener, timeout=5)
        finally:
            os.close(listener)


def test_receive_times_out_and_respond_validates() -> None:
    def child(sock: socket.socket) -> int:
        fd = S.install(action_for("getpid", I.RET_USER_NOTIF), S.SECCOMP_FILTER_FLAG_NEW_LISTENER)
        socket.send_fds(sock, [b"L"], [fd])
        sock.recv(1)  # blocks without a notified syscall
        return 0

    a, b = socket.socketpair()
    with a, b, start(child, b) as c:
        _, fds, _, _ = socket.recv_fds(a, 1, 1)
        try:
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                notify.receive(fds[0], timeout=0.2)
            assert time.monotonic() - t0 < 2
            with pytest.raises(ValueError):
                notify.respond(fds[0], 1, error=-1)
            with pytest.raises(ValueError):
                notify.respond(fds[0], 1, val=3, flags=notify.SECCOMP_USER_NOTIF_FLAG_CONTINUE)
            a.send(b"x")
            assert c.wait(10).unwrap() == 0
        finally:
            os.close(fds[0])


# --------------------------------------------------------------------------- memory

def test_read_memory_of_self_and_child() -> None:
    buf = ctypes.create_string_buffer(b"sysgate memory probe", 32)
    assert memory.read_memory(os.getpid(), ctypes.addressof(buf), 20) == b"sysgate memory probe"
    with start(time.sleep, 30) as c:  # same address space layout right after fork
        assert memory.read_memory(c.pid, ctypes.addressof(buf), 20) == b"sysgate memory probe"
    for addr in (0, 8):
        with pytest.raises(memory.MemoryReadError) as ei:
            memory.read_memory(os.getpid(), addr, 8)
        assert ei.value.errno == errno.EFAULT and "cannot read 8 bytes" in str(ei.value)


# --------------------------------------------------------------------------- ptrace: get_filters

def _numbered_filter(i: int) -> bytes:
    """Distinct programs of different lengths, allowing everything the child still does."""
    prog = [I.stmt(I.LD | I.W | I.ABS, I.OFF_NR)]
    for j in range(i + 1):
        prog.append(I.jump(I.JMP | I.JEQ | I.K, 5000 + 10 * i + j, 0, 1))
        prog.append(I.stmt(I.RET | I.K, I.RET_ERRNO | (i + 1)))
    prog.append(I.stmt(I.RET | I.K, I.RET_ALLOW))
    return I.encode(prog, sys.byteorder)


def _stacked_child(count: int, ready: int, release: int) -> int:
    for i in range(count):
        S.install(_numbered_filter(i))
    os.write(ready, b"r")
    os.read(release, 1)  # get_filters interrupts this read; it must resume transparently
    return call("getppid")


@pytest.mark.parametrize("count", [0, 1, 3])
def test_get_filters_returns_install_order_byte_for_byte(count: int) -> None:
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        with start(_stacked_child, count, w1, r2) as c:
            assert read_within(r1, 1) == b"r"
            got = ptrace.get_filters(c.pid)
            assert got == [_numbered_filter(i) for i in range(count)]
            os.write(w2, b"g")
            assert c.wait(10).unwrap() > 0  # the child resumed and ran on after the detach
    finally:
        for fd in (r1, w1, r2, w2):
            os.close(fd)


def test_get_filters_errors() -> None:
    with start(lambda: None) as c:
        c.wait()
        gone = c.pid
    with pytest.raises(ptrace.PtraceError) as ei:
        ptrace.get_filters(gone)
    assert ei.value.errno == errno.ESRCH and f"no such process {gone}" in str(ei.value)

    def grandchild(w: int) -> None:
        S.install(ALLOW_ALL)
        os.write(w, b"r")
        time.sleep(30)

    def filtered_caller() -> object:
        S.install(ALLOW_ALL)  # a tracer under seccomp may not dump filters
        r, w = os.pipe()
        with start(grandchild, w) as g:
            read_within(r, 1)
            try:
                ptrace.get_filters(g.pid)
            except ptrace.PtraceError as e:
                return e.errno, str(e)
        return None

    err, msg = run(filtered_caller).unwrap()
    assert err == errno.EACCES
    assert msg.startswith("PTRACE_SECCOMP_GET_FILTER on process ") and "CAP_SYS_ADMIN" in msg

    def unprivileged_caller(target: int) -> object:
        os.setgid(65534)
        os.setuid(65534)
        try:
            ptrace.get_filters(target)
        except ptrace.PtraceError as e:
            return e.errno, str(e)
        return None

    r, w = os.pipe()
    with start(grandchild, w) as target:
        read_within(r, 1)
        err, msg = run(unprivileged_caller, target.pid).unwrap()
        assert err == errno.EPERM and msg.startswith(f"not permitted to trace process {target.pid}")

    # Two pipes, one per direction: with one, the child could read back its own "ready" byte and the
    # parent would then wait for ever.
    release_r, release_w = os.pipe()

    def strict(w: int) -> None:
        os.write(w, b"r")
        prctl(S.PR_SET_SECCOMP, S.SECCOMP_MODE_STRICT)
        os.read(release_r, 1)  # read(2) is allowed in strict mode; leaving (exit_group) is not: SIGKILL

    with start(strict, w) as c:
        read_within(r, 1)
        deadline = time.monotonic() + 5
        while status_field("Seccomp", c.pid) != "1" and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ptrace.PtraceError) as ei:
            ptrace.get_filters(c.pid)
        assert ei.value.errno == errno.EINVAL and "strict seccomp mode" in str(ei.value)
        os.write(release_w, b"x")
        assert c.wait(10).signal == signal.SIGKILL
    for fd in (r, w, release_r, release_w):
        os.close(fd)


# --------------------------------------------------------------------------- ptrace: trace_filters

SYSTEM_PYTHON = "/usr/bin/python3"


def _has_libseccomp_python() -> bool:
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode == 0
    except OSError:
        return False


def _load_and_probe(program: bytes) -> tuple[int, bool]:
    S.install(program)
    return call("getpid"), call("getppid") == os.getppid()


@pytest.mark.skipif(not _has_libseccomp_python(), reason="Debian python3-seccomp not installed")
def test_trace_captures_libseccomp_filter(tmp_path: Path) -> None:
    exported = tmp_path / "exported.bpf"
    code = ("import seccomp; f=seccomp.SyscallFilter(seccomp.ALLOW); f.add_rule(seccomp.ERRNO(1), 'getpid'); "
            f"f.export_bpf(open({str(exported)!r}, 'wb')); f.load()")
    t = ptrace.trace([SYSTEM_PYTHON, "-c", code], timeout=30)
    assert t.returncode == 0 and not t.timed_out
    assert [f.via for f in t.filters] == ["seccomp"]  # libseccomp's NULL-pointer probes are not captured
    prog = t.filters[0].program
    assert prog == exported.read_bytes()  # byte for byte what libseccomp generated
    assert ptrace.trace_filters([SYSTEM_PYTHON, "-c", code], timeout=30) == [prog]
    assert run(_load_and_probe, prog).unwrap() == (-1, True)  # and the kernel agrees on its meaning
    assert emulate(I.decode(prog, sys.byteorder), ARCH, NR("getpid")).ret == I.RET_ERRNO | 1


RAW_INSTALLER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]
def fprog(hexprog):
    buf = ctypes.create_string_buffer(bytes.fromhex(hexprog))
    return Fprog(len(buf.raw) // 8, ctypes.addressof(buf)), buf
def prctl(*a):
    return libc.prctl(*[ctypes.c_ulong(x) if isinstance(x, int) else x for x in a])
assert prctl(38, 1, 0, 0, 0) == 0                           # PR_SET_NO_NEW_PRIVS
assert prctl(22, 2, None, 0, 0) == -1                       # NULL probe: EFAULT, not a filter
bad, keep1 = fprog("0000000000000000")                    # last instruction is not a return
assert prctl(22, 2, ctypes.byref(bad), 0, 0) == -1          # EINVAL, not captured
a, keep2 = fprog(sys.argv[1])
assert prctl(22, 2, ctypes.byref(a), 0, 0) == 0             # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
pid = os.fork()
if pid == 0:
    b, keep3 = fprog(sys.argv[2])
    r = libc.syscall(ctypes.c_long(int(sys.argv[3])), ctypes.c_long(1), ctypes.c_long(2), ctypes.byref(b))
    os._exit(0 if r == 0 else 1)                            # seccomp(SET_MODE_FILTER, LOG, &b)
_, st = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(st))
"""


def test_trace_captures_raw_prctl_and_forked_seccomp() -> None:
    a = _numbered_filter(0)
    b = _numbered_filter(2)
    t = ptrace.trace([sys.executable, "-c", RAW_INSTALLER, a.hex(), b.hex(), str(NR("seccomp"))], timeout=30)
    assert t.returncode == 0, t
    assert [f.program for f in t.filters] == [a, b]
    assert [(f.via, f.flags) for f in t.filters] == [("prctl", 0), ("seccomp", S.SECCOMP_FILTER_FLAG_LOG)]
    assert t.filters[0].pid != t.filters[1].pid  # the second came from the forked child


def test_trace_kill_stops_after_first_filter(tmp_path: Path) -> None:
    code = ("import subprocess, sys, time; from sysgate.kernel import seccomp; "
            "p = subprocess.Popen(['sleep', '60']); open(sys.argv[2], 'w').write(str(p.pid)); "
            "seccomp.install(bytes.fromhex(sys.argv[1])); time.sleep(60)")
    allow = I.encode(ALLOW_ALL, sys.byteorder)
    pidfile = tmp_path / "pid"
    t0 = time.monotonic()
    t = ptrace.trace([sys.executable, "-c", code, allow.hex(), str(pidfile)], kill=True, timeout=30)
    assert time.monotonic() - t0 < 20
    assert t.killed and t.returncode == -signal.SIGKILL and not t.timed_out
    assert [f.program for f in t.filters] == [allow]
    # the command's own child was killed and reaped too: not even a zombie is left
    assert not Path(f"/proc/{pidfile.read_text()}").exists()


def _processes_with_arg(arg: str) -> list[int]:
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if arg.encode() in (p / "cmdline").read_bytes().split(b"\0"):
                    pids.append(int(p.name))
            except OSError:
                pass
    return pids


def test_trace_timeout_kills_the_command() -> None:
    marker = "31.4159"
    t0 = time.monotonic()
    t = ptrace.trace(["sh", "-c", f"sleep {marker} & sleep {marker}; wait"], timeout=0.5)
    assert t.timed_out and t.returncode is None and t.filters == ()
    assert time.monotonic() - t0 < 5
    deadline = time.monotonic() + 5
    while _processes_with_arg(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with_arg(marker) == []


def test_trace_reports_missing_command_and_exit_status() -> None:
    with pytest.raises(ptrace.CommandNotFound) as ei:
        ptrace.trace(["/nonexistent/sysgate-cmd"])
    assert isinstance(ei.value, ValueError) and "sysgate-cmd" in str(ei.value)
    t = ptrace.trace(["sh", "-c", "exit 3"], timeout=30)
    assert (t.returncode, t.filters, t.killed) == (3, (), False)


def test_prctl_helper_and_no_new_privs() -> None:
    def child() -> tuple[bool, bool, int]:
        before = S.get_no_new_privs()
        S.set_no_new_privs()
        return before, S.get_no_new_privs(), prctl(S.PR_GET_SECCOMP)

    assert run(child).unwrap() == (S.get_no_new_privs(), True, S.get_mode())
