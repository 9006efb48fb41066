"""The emulator's load-time checker must say what the kernel says, on every program.

The kernel judges: a forked child (no_new_privs set) calls seccomp(SECCOMP_SET_MODE_FILTER)
on thousands of seeded random programs built to sit on the edges of the rules
(:mod:`bpf_random`) and the verdict of each is compared with :func:`sysgate.bpf.emulator.check`.

To test thousands of programs in one child without installing any of them, the child passes
SECCOMP_FILTER_FLAG_NEW_LISTENER with RLIMIT_NOFILE at 0: the kernel checks the program
first (EINVAL if refused), then fails to allocate the listener fd (EMFILE) and installs
nothing. ``test_listener_trick_matches_real_installs`` checks that shortcut against real
installs, one forked child per program. More cases: ``SYSGATE_FUZZ_CASES=100000``.
"""
from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
import resource
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bpf_random import program
from forkrun import run, start
from sysgate.bpf import insn as I
from sysgate.bpf.emulator import InvalidProgram, check
from sysgate.kernel.syscall import nr, prctl, syscall

CASES = int(os.environ.get("SYSGATE_FUZZ_CASES", "3000"))
_NR_SECCOMP = nr("seccomp")
_NEW_LISTENER = 8


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _load(data: bytes, flags: int) -> int:
    """seccomp(SECCOMP_SET_MODE_FILTER): 0 or the listener fd, else the errno."""
    buf = ctypes.create_string_buffer(data, len(data) or 1)
    fprog = _Fprog(len(data) // 8, ctypes.addressof(buf))
    try:
        syscall(_NR_SECCOMP, 1, flags, ctypes.byref(fprog))
    except OSError as e:
        return e.errno
    return 0


def _kernel_verdicts(programs: list[bytes]) -> bytes:
    """In the child: one byte per program, 1 accepted (EMFILE), 0 refused (EINVAL), 2 other."""
    prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
    resource.setrlimit(resource.RLIMIT_NOFILE, (0, 0))
    out = bytearray()
    for data in programs:
        err = _load(data, _NEW_LISTENER)
        out.append(1 if err == errno.EMFILE else 0 if err == errno.EINVAL else 2)
    return bytes(out)


def _ours(p: tuple) -> bool:
    try:
        check(p)
    except InvalidProgram:
        return True
    return False


def _verdicts(progs: list[tuple]) -> list[bool]:
    """Kernel verdicts: True where it accepts."""
    got = run(_kernel_verdicts, [I.encode(p) for p in progs], timeout=120).unwrap()
    assert 2 not in got, "the kernel answered something other than EINVAL or EMFILE"
    return [b == 1 for b in got]


def _disagreements(progs: list[tuple]) -> list[str]:
    out = []
    for p, accepted in zip(progs, _verdicts(progs)):
        ours_ok = not _ours(p)
        if ours_ok != accepted:
            try:
                check(p)
                why = "check() accepts"
            except InvalidProgram as e:
                why = f"check() says {e}"
            out.append(f"kernel {'accepts' if accepted else 'refuses'}, {why}: {p[:12]}{'...' if len(p) > 12 else ''}")
    return out


S, J = I.stmt, I.jump
_ALLOW = S(I.RET | I.RET_K, I.RET_ALLOW)

# The issue's list, with the kernel's verdict as measured (True: loads).
KNOWN = {
    "mod": ([S(I.LD | I.IMM, 7), S(I.ALU | I.MOD | I.K, 3), _ALLOW], False),
    "mod_x": ([S(I.ALU | I.MOD | I.X), _ALLOW], False),
    "scratch_load_after_ret": ([_ALLOW, S(I.LD | I.MEM, 0), _ALLOW], False),
    "4096": ([_ALLOW] * 4096, True),
    "4097": ([_ALLOW] * 4097, False),
    "data3": ([S(I.LD | I.W | I.ABS, 3), _ALLOW], False),
    "data64": ([S(I.LD | I.W | I.ABS, 64), _ALLOW], False),
    "div_zero": ([S(I.ALU | I.DIV | I.K, 0), _ALLOW], False),
    "return_x": ([S(I.RET | I.RET_X), _ALLOW], False),
    "errno_4096": ([S(I.RET | I.RET_K, I.RET_ERRNO | 4096)], True),  # runtime clamps it to 4095
    "no_final_return": ([_ALLOW, S(I.LD | I.IMM, 0)], False),
    "ja_ignores_jt_jf": ([I.Insn(I.JMP | I.JA, 5, 7, 0), _ALLOW], True),
    "store_then_load": ([S(I.ST, 3), S(I.LDX | I.MEM, 3), _ALLOW], True),
    "store_on_one_path": ([J(I.JMP | I.JEQ | I.K, 1, 0, 1), S(I.ST, 0), S(I.LD | I.MEM, 0), _ALLOW], False),
}


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_issue_cases(name: str) -> None:
    prog, loads = KNOWN[name]
    assert _verdicts([tuple(prog)]) == [loads]
    assert (not _ours(tuple(prog))) == loads


def test_random_programs_agree_with_kernel() -> None:
    rng = random.Random(20261206)
    progs = [program(rng) for _ in range(CASES)]
    accepted = sum(_verdicts(progs))
    # the generator must exercise both sides
    assert CASES // 10 < accepted < CASES * 9 // 10, accepted
    bad = _disagreements(progs)
    assert not bad, f"{len(bad)} disagreements, e.g.\n" + "\n".join(bad[:5])


def _real_install(data: bytes, shared: mmap.mmap) -> None:
    # The filter may deny every later syscall, so the verdict goes through shared memory.
    err = _load(data, 0)
    shared[0] = 1 if err == 0 else 0 if err == errno.EINVAL else 2
    os._exit(0)


def test_listener_trick_matches_real_installs() -> None:
    rng = random.Random(7)
    progs = [program(rng) for _ in range(60)]
    trick = _verdicts(progs)
    for p, t in zip(progs, trick):
        shared = mmap.mmap(-1, 1)
        shared[0] = 3

        def child(data: bytes = I.encode(p), shared: mmap.mmap = shared) -> None:
            prctl(38, 1)
            _real_install(data, shared)

        with start(child):  # a filter denying exit_group can leave it spinning: killed on exit
            deadline = time.monotonic() + 10
            while shared[0] == 3 and time.monotonic() < deadline:
                time.sleep(0.001)
        assert shared[0] == (1 if t else 0), p
        shared.close()
