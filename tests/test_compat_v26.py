"""libseccomp 2.6 behaviour of sysgate.compat.seccomp that 2.5.4 (the differential oracle) cannot show.

* ``CTL_WAITKILL`` is recorded at any API level (2.6's db.c sets it unconditionally; the load adds
  ``SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`` only next to ``NEW_LISTENER``).
* 2.6.0's regression test ``05-sim-long_jumps`` (100 three-condition rules on chdir, 100 syscalls with
  one condition each) exports, decides as its ``.tests`` table says, and the kernel loads it.
"""
from __future__ import annotations

import ctypes
import errno
import os
import signal
import sys
import tempfile

import pytest

import forkrun
from sysgate.bpf.emulator import emulate
from sysgate.bpf.insn import RET_ALLOW, RET_KILL_THREAD, decode
from sysgate.compat import seccomp as S

LINUX_X86_64 = sys.platform.startswith("linux") and os.uname().machine == "x86_64"


@pytest.fixture
def api_level():
    old = S.get_api()
    yield
    S.set_api(old)


@pytest.mark.parametrize("level", [1, 3, 5, 6, 7])
def test_ctl_waitkill_is_set_at_every_api_level(api_level: None, level: int) -> None:
    S.set_api(level)
    f = S.SyscallFilter(S.ALLOW)
    f.set_attr(S.Attr.CTL_WAITKILL, 1)
    assert f.get_attr(S.Attr.CTL_WAITKILL) == 1
    f.set_attr(S.Attr.CTL_WAITKILL, 0)
    assert f.get_attr(S.Attr.CTL_WAITKILL) == 0


def _long_jumps() -> S.SyscallFilter:
    """tests/05-sim-long_jumps.py of libseccomp 2.6.0, as written there."""
    f = S.SyscallFilter(S.KILL)
    f.add_rule(S.ALLOW, "brk")
    for i in range(100):
        f.add_rule(S.ALLOW, "chdir", S.Arg(0, S.EQ, i), S.Arg(1, S.NE, 0), S.Arg(2, S.LT, sys.maxsize))
    i = ctr = 0
    while i < 10000 and ctr < 100:
        sc = i
        i += 1
        if sc == S.resolve_syscall(S.Arch(), "chdir"):
            continue
        try:
            S.resolve_syscall(S.Arch(), sc)
        except ValueError:
            continue
        f.add_rule(S.ALLOW, sc, S.Arg(0, S.NE, 0))
        ctr += 1
    f.add_rule(S.ALLOW, "close")
    return f


def _program() -> tuple:
    with tempfile.TemporaryFile() as fh:  # export_bpf writes to the file descriptor
        _long_jumps().export_bpf(fh)
        fh.seek(0)
        return decode(fh.read())


@pytest.mark.skipif(not LINUX_X86_64, reason="the native arch of the test is x86_64")
def test_long_jumps_exports_and_decides_as_its_table_says() -> None:
    insns = _program()
    assert 0 < len(insns) <= 4096
    chdir, brk, close = 80, 12, 3
    big = 0x7FFFFFFFFFFFFFFE
    assert emulate(insns, "x86_64", brk, [1, 2, 3, 4, 5, 6]).ret == RET_ALLOW
    assert emulate(insns, "x86_64", 9999, [0] * 6).ret == RET_KILL_THREAD
    for a0 in list(range(0, 6)) + list(range(95, 100)):
        assert emulate(insns, "x86_64", chdir, [a0, 0x856B008, big, 0, 0, 0]).ret == RET_ALLOW, a0
    assert emulate(insns, "x86_64", chdir, [100, 0x856B008, big, 0, 0, 0]).ret == RET_KILL_THREAD
    assert emulate(insns, "x86_64", close, [1, 0, 0, 0, 0, 0]).ret == RET_ALLOW
    # each condition on its own, at its edges
    assert emulate(insns, "x86_64", chdir, [5, 0, big, 0, 0, 0]).ret == RET_KILL_THREAD
    assert emulate(insns, "x86_64", chdir, [5, 1 << 32, 0, 0, 0, 0]).ret == RET_ALLOW
    assert emulate(insns, "x86_64", chdir, [5, 1, big + 1, 0, 0, 0]).ret == RET_KILL_THREAD
    assert emulate(insns, "x86_64", chdir, [(1 << 32) | 5, 1, 0, 0, 0, 0]).ret == RET_KILL_THREAD
    assert emulate(insns, "x86_64", 0, [0] * 6).ret == RET_KILL_THREAD  # read(0, ...): arg0 != 0 fails
    assert emulate(insns, "x86_64", 0, [7] + [0] * 5).ret == RET_ALLOW


def _load_and_call(wfd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    call = libc.syscall
    call.restype = ctypes.c_long
    f = _long_jumps()
    f.load()
    # chdir(99, 1, 2): allowed, so the kernel's EFAULT for the bad pointer comes back; write(wfd != 0)
    # is allowed too (arg0 != 0). chdir(100, ...) matches no rule: the thread is killed.
    call(ctypes.c_long(80), ctypes.c_ulong(99), ctypes.c_ulong(1), ctypes.c_ulong(2))
    os.write(wfd, bytes([ctypes.get_errno()]))
    call(ctypes.c_long(80), ctypes.c_ulong(100), ctypes.c_ulong(1), ctypes.c_ulong(2))


@pytest.mark.skipif(not LINUX_X86_64, reason="kernel tests run on x86_64 Linux")
def test_long_jumps_loads_in_the_kernel() -> None:
    r, w = os.pipe()
    try:
        out = forkrun.run(_load_and_call, w, timeout=20)
        os.close(w)
        w = -1
        got = os.read(r, 16)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    assert got == bytes([errno.EFAULT]), (got, out)
    assert out.signal == signal.SIGSYS, out
