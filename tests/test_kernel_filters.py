"""Compiled filters decide real syscalls on the running kernel as the policy says (x86_64 only).

Every filter is loaded in a forked child (``forkrun``), never in the pytest process. Denied calls
get errno actions with distinct values, so no denied syscall runs and each result tells which
rule decided. The reference evaluator predicts each result and the emulator must agree with the
kernel: this is where the emulator is checked against the real thing.
"""
from __future__ import annotations

import ctypes
import errno as E
import mmap
import os
import random
import signal
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from forkrun import run
from strategies import boundary_args, conditions
from sysgate import arch as A
from sysgate.bpf.emulator import check, emulate
from sysgate.compiler import compile_policy
from sysgate.policy import (
    ALLOW,
    KILL_PROCESS,
    KILL_THREAD,
    LOG,
    NOTIFY,
    TRAP,
    Action,
    ActionKind,
    Condition,
    Op,
    Policy,
    Rule,
    errno,
    trace,
)
from sysgate.reference import evaluate

pytestmark = pytest.mark.skipif(A.native().name != "x86_64", reason="kernel tests are written for x86_64")

X64 = A.get("x86_64")
X86 = A.get("x86")
X32 = A.get("x32")
U64 = (1 << 64) - 1
PR_SET_DUMPABLE = 4
CLONE_NEWUSER = 0x10000000

# Syscalls that ignore their arguments and cannot harm the child: with any args, "allowed" means
# the value the call returns unfiltered, which the child records before loading the filter.
HARMLESS = ["getpid", "getppid", "getuid", "getgid", "geteuid", "getegid", "gettid", "sched_yield", "getpgrp"]


# --- helpers that run in the child ----------------------------------------------------------------

def _syscall(nr: int, *args: int) -> int:
    """The raw result: the return value, or -errno."""
    from sysgate.kernel.syscall import syscall

    try:
        return syscall(nr, *args)
    except OSError as e:
        return -e.errno


def _natural() -> dict[str, int]:
    return {"getpid": os.getpid(), "getppid": os.getppid(), "getuid": os.getuid(), "getgid": os.getgid(),
            "geteuid": os.geteuid(), "getegid": os.getegid(), "gettid": threading.get_native_id(),
            "sched_yield": 0, "getpgrp": os.getpgrp()}


def _no_core() -> None:
    """A child that is meant to die by SIGSYS must not write ./core (core_pattern may be "core")."""
    from sysgate.kernel.syscall import prctl

    prctl(PR_SET_DUMPABLE, 0)


def _install(prog: bytes, flags: int = 0) -> int:
    from sysgate.kernel.seccomp import install

    return install(prog, flags)


_INT80_CODE = bytes([
    0x89, 0xF8,  # mov eax, edi      (nr)
    0x53,        # push rbx
    0x89, 0xF3,  # mov ebx, esi      (arg0)
    0x87, 0xD1,  # xchg ecx, edx     (ecx = arg1, edx = arg2)
    0xCD, 0x80,  # int 0x80          (i386 syscall ABI from a 64-bit process)
    0x5B,        # pop rbx
    0xC3,        # ret
])


class Int80:
    """An i386 syscall made through ``int 0x80`` from this 64-bit process: ``Int80()(nr, a0, a1, a2)``."""

    def __init__(self) -> None:
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(_INT80_CODE)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)
        self._fn = proto(addr)

    def __call__(self, nr: int, a0: int = 0, a1: int = 0, a2: int = 0) -> int:
        return self._fn(nr, a0 & 0xFFFFFFFF, a1 & 0xFFFFFFFF, a2 & 0xFFFFFFFF)


# --- what this kernel offers (probed once, unfiltered, in a child) ----------------------------------

def _probe() -> tuple[int, int, int]:
    return os.getpid(), Int80()(X86.nr("getpid")), _syscall(X32.nr("getpid"))


@pytest.fixture(scope="module")
def abi() -> dict[str, bool]:
    pid, i386, x32 = run(_probe).unwrap()
    assert i386 in (pid, -E.ENOSYS), i386
    assert x32 in (pid, -E.ENOSYS), x32
    return {"ia32": i386 == pid, "x32": x32 == pid}


def _agree(policy: Policy, prog: bytes | tuple, arch: str, nr: int, args: list[int]) -> Action:
    """Reference and emulator agree on a call; returns the action."""
    want = evaluate(policy, arch, nr, args)
    insns = prog if isinstance(prog, tuple) else compile_policy(policy).insns
    assert emulate(insns, arch, nr, args).ret == want.ret, (arch, nr, args, str(want))
    return want


# --- random policies --------------------------------------------------------------------------------

@st.composite
def kernel_policies(draw: st.DrawFn) -> Policy:
    n = draw(st.integers(1, 8))
    errnos = draw(st.lists(st.integers(0, 4095), min_size=n, max_size=n, unique=True))
    rules = []
    for i in range(n):
        action = ALLOW if draw(st.integers(0, 3)) == 0 else errno(errnos[i])
        conds = draw(st.lists(conditions(), max_size=3))
        rules.append(Rule(draw(st.sampled_from(HARMLESS)), action, tuple(conds)))
    # The default must be allow: the child's Python runtime keeps running under the filter.
    return Policy(ALLOW, tuple(rules), ("x86_64",))


def _batch_child(prog: bytes, calls: list[tuple[int, list[int]]]) -> tuple[dict[str, int], list[int]]:
    natural = _natural()
    _install(prog)
    return natural, [_syscall(nr, *args) for nr, args in calls]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(kernel_policies(), st.integers(0, 2**32))
def test_random_policies_kernel_agrees_with_reference_and_emulator(policy: Policy, seed: int) -> None:
    rnd = random.Random(seed)
    prog = compile_policy(policy)
    check(prog.insns)
    bounds = boundary_args(policy)
    named = [r.syscall for r in policy.rules]
    calls: list[tuple[str, list[int]]] = []
    for _i in range(40):
        name = rnd.choice(named) if rnd.random() < 0.8 else rnd.choice(HARMLESS)
        args = [rnd.choice(bounds) if rnd.random() < 0.8 else rnd.randrange(0, 1 << 64) for _ in range(6)]
        calls.append((str(name), args))
    natural, got = run(_batch_child, prog.to_bytes(), [(X64.nr(n), a) for n, a in calls]).unwrap()
    for (name, args), result in zip(calls, got):
        nr = X64.nr(name)
        want = evaluate(policy, "x86_64", nr, args)
        emu = emulate(prog.insns, X64, nr, args)
        assert emu.ret == want.ret, (name, [hex(a) for a in args], hex(emu.ret), str(want))
        expect = -want.data if want.kind is ActionKind.ERRNO else natural[name]
        assert want.kind in (ActionKind.ERRNO, ActionKind.ALLOW)
        assert result == expect, (name, [hex(a) for a in args], result, str(want))


def test_each_comparison_edge_on_the_kernel() -> None:
    """Every operator at values around its constant's word boundaries, on the real kernel, in one child."""
    nr = X64.nr("getppid")
    values = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 1 << 32, (1 << 32) + 1, 0x1_FFFF_FFFF,
              (1 << 63) - 1, 1 << 63, U64 - 1, U64]
    rules = []
    for i, op in enumerate(Op):
        for j, v in enumerate(values):
            kw = {"mask": 0xFFFF0000FFFF0000 if v & 1 else 0xFFFFFFFF} if op is Op.MASKED_EQ else {}
            val = v & kw["mask"] if kw else v
            rules.append(Rule("getppid", errno(100 + 16 * i + j), (Condition(0, op, val, **kw), Condition(1, Op.EQ, 100 * i + j))))
    policy = Policy(ALLOW, tuple(rules), ("x86_64",))
    prog = compile_policy(policy)
    calls = []
    for i, _op in enumerate(Op):
        for j in range(len(values)):
            for v in sorted({(x + d) & U64 for x in values for d in (-1, 0, 1)}):
                calls.append((nr, [v, 100 * i + j]))
    natural, got = run(_batch_child, prog.to_bytes(), calls).unwrap()
    assert len(got) > 1500
    for (n, args), result in zip(calls, got):
        want = _agree(policy, prog.insns, "x86_64", n, args)
        assert result == (-want.data if want.kind is ActionKind.ERRNO else natural["getppid"]), (args, str(want))


def test_many_argument_rules_on_one_syscall() -> None:
    """300 rules on one syscall (a chain deeper than Python's recursion limit once compiled)."""
    policy = Policy(ALLOW, tuple(Rule("getppid", errno(1 + i), (Condition(0, Op.EQ, i * 3),)) for i in range(300)),
                    ("x86_64",))
    prog = compile_policy(policy)
    check(prog.insns)
    calls = [(X64.nr("getppid"), [v]) for v in (0, 1, 3, 450, 897, 898, 900, 1 << 32)]
    natural, got = run(_batch_child, prog.to_bytes(), calls).unwrap()
    assert got == [-1, natural["getppid"], -2, -151, -300, natural["getppid"], natural["getppid"],
                   natural["getppid"]]
    for (nr, args), result in zip(calls, got):
        want = _agree(policy, prog.insns, "x86_64", nr, args)
        assert result == (-want.data if want.kind is ActionKind.ERRNO else natural["getppid"])


# --- other ABIs through the x86_64 token ------------------------------------------------------------

def _int80_child(prog: bytes, calls: list[tuple[int, int]]) -> tuple[int, list[int]]:
    gate = Int80()
    pid = os.getpid()
    _no_core()
    _install(prog)
    return pid, [gate(nr, a0) for nr, a0 in calls]


def test_native_only_policy_kills_int80(abi: dict[str, bool]) -> None:
    if not abi["ia32"]:
        pytest.skip("kernel without IA32 emulation")
    policy = Policy(ALLOW, (), ("x86_64",))
    prog = compile_policy(policy)
    assert _agree(policy, prog.insns, "x86", X86.nr("getpid"), []) == KILL_PROCESS
    out = run(_int80_child, prog.to_bytes(), [(X86.nr("getpid"), 0)])
    assert out.signal == signal.SIGSYS, out


def test_int80_follows_x86_rules(abi: dict[str, bool]) -> None:
    if not abi["ia32"]:
        pytest.skip("kernel without IA32 emulation")
    # getpid: errno when arg0 == 7; getppid: errno when arg0 == 2^32+7, which a 32-bit ABI never sees
    # (the kernel zero-extends its 32-bit registers), so on x86 getppid(7) runs.
    policy = Policy(ALLOW, (Rule("getpid", errno(1111), (Condition(0, Op.EQ, 7),)),
                            Rule("getppid", errno(2222), (Condition(0, Op.EQ, (1 << 32) | 7),)),
                            Rule("getuid", errno(3333))), ("x86_64", "x86"))
    prog = compile_policy(policy)
    calls = [(X86.nr("getpid"), 7), (X86.nr("getpid"), 8), (X86.nr("getppid"), 7), (X86.nr("getuid"), 0),
             (X86.nr("getuid32"), 0), (X64.nr("getuid"), 0)]  # i386 102 is socketcall: not getuid there
    pid, got = run(_int80_child, prog.to_bytes(), calls).unwrap()
    for (nr, a0), _result in zip(calls, got):
        _agree(policy, prog.insns, "x86", nr, [a0])
    assert got[0] == -1111 and got[1] == pid
    assert got[2] == os.getpid()  # the child's parent is us
    assert got[3] == -3333 and got[4] == os.getuid()  # getuid32 is a different syscall: not ruled
    assert got[5] == -E.EINVAL  # socketcall(0, NULL) ran (and failed): x86_64 numbers mean nothing here
    # and the x86_64 rules still hold in the same filter
    natural, got64 = run(_batch_child, prog.to_bytes(), [(X64.nr("getppid"), [(1 << 32) | 7]),
                                                         (X64.nr("getppid"), [7])]).unwrap()
    assert got64 == [-2222, natural["getppid"]]


def _x32_child(prog: bytes) -> tuple[int, int]:
    pid = os.getpid()
    _no_core()
    _install(prog)
    return pid, _syscall(X32.nr("getpid"))


def test_native_only_policy_kills_x32_numbers() -> None:
    policy = Policy(ALLOW, (), ("x86_64",))
    prog = compile_policy(policy)
    assert _agree(policy, prog.insns, "x86_64", X32.nr("getpid"), []) == KILL_PROCESS
    out = run(_x32_child, prog.to_bytes())
    assert out.signal == signal.SIGSYS, out


@pytest.mark.parametrize("action", [ALLOW, errno(3210)], ids=str)
def test_x32_numbers_follow_x32_rules(abi: dict[str, bool], action: Action) -> None:
    policy = Policy(ALLOW, (Rule("getpid", action),), ("x86_64", "x32"))
    prog = compile_policy(policy)
    assert _agree(policy, prog.insns, "x86_64", X32.nr("getpid"), []) == action
    pid, got = run(_x32_child, prog.to_bytes()).unwrap()
    if action.kind is ActionKind.ERRNO:
        assert got == -3210  # the filter decides before the kernel looks for an x32 table
    else:
        assert got == (pid if abi["x32"] else -E.ENOSYS)


# --- each action's real semantics -------------------------------------------------------------------

def _one_call_child(prog: bytes, name: str, args: tuple[int, ...] = (), flags: int = 0,
                    close_listener: bool = False) -> tuple[int, int]:
    natural = _natural()[name] if name in HARMLESS else 0
    _no_core()
    fd = _install(prog, flags)
    if close_listener:
        os.close(fd)
    return natural, _syscall(X64.nr(name), *args)


def _policy_one(action: Action, name: str = "getppid") -> tuple[Policy, bytes]:
    policy = Policy(ALLOW, (Rule(name, action, (Condition(0, Op.EQ, 0x5151),)),), ("x86_64",))
    return policy, compile_policy(policy).to_bytes()


@pytest.mark.parametrize("action", [KILL_PROCESS, TRAP, KILL_THREAD], ids=str)
def test_kill_and_trap_end_the_child_with_sigsys(action: Action) -> None:
    """kill-process, trap (no SIGSYS handler) and kill-thread of the only thread all end it by SIGSYS."""
    policy, prog = _policy_one(action)
    assert _agree(policy, compile_policy(policy).insns, "x86_64", X64.nr("getppid"), [0x5151]) == action
    out = run(_one_call_child, prog, "getppid", (0x5151,))
    assert out.signal == signal.SIGSYS, out
    # the same call with another argument runs
    assert run(_one_call_child, prog, "getppid", (0x5150,)).unwrap() == (os.getpid(), os.getpid())


def _kill_thread_child(prog: bytes) -> tuple[bool, bool, int, int]:
    _no_core()
    _install(prog)  # threads started afterwards inherit the filter
    box: list[object] = []

    def worker() -> None:
        box.append(threading.get_native_id())
        _syscall(X64.nr("getppid"), 0x5151)
        box.append("survived")

    threading.Thread(target=worker, daemon=True).start()
    deadline = time.monotonic() + 5
    while not box and time.monotonic() < deadline:
        time.sleep(0.001)
    task = f"/proc/self/task/{box[0]}"
    while os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.001)
    # the main thread is still here and still filtered
    return (not os.path.exists(task), "survived" in box, _syscall(X64.nr("getppid"), 0), os.getppid())


def test_kill_thread_kills_only_the_thread() -> None:
    _, prog = _policy_one(KILL_THREAD)
    gone, survived, ppid, ppid2 = run(_kill_thread_child, prog).unwrap()
    assert gone and not survived
    assert ppid == ppid2 == os.getpid()


def test_log_allows() -> None:
    policy, prog = _policy_one(LOG)
    assert _agree(policy, compile_policy(policy).insns, "x86_64", X64.nr("getppid"), [0x5151]) == LOG
    natural, got = run(_one_call_child, prog, "getppid", (0x5151,)).unwrap()
    assert got == natural == os.getpid()


def test_trace_without_tracer_is_enosys() -> None:
    policy, prog = _policy_one(trace(7))
    assert _agree(policy, compile_policy(policy).insns, "x86_64", X64.nr("getppid"), [0x5151]) == trace(7)
    assert run(_one_call_child, prog, "getppid", (0x5151,)).unwrap() == (os.getpid(), -E.ENOSYS)


@pytest.mark.parametrize("listener", ["none", "closed"])
def test_user_notify_without_listener_is_enosys(listener: str) -> None:
    """No listener (no NEW_LISTENER flag, or its fd closed): the kernel fails the call with ENOSYS."""
    from sysgate.kernel.seccomp import Flag

    policy, prog = _policy_one(NOTIFY)
    assert _agree(policy, compile_policy(policy).insns, "x86_64", X64.nr("getppid"), [0x5151]) == NOTIFY
    flags = int(Flag.NEW_LISTENER) if listener == "closed" else 0
    got = run(_one_call_child, prog, "getppid", (0x5151,), flags, listener == "closed").unwrap()
    assert got == (os.getpid(), -E.ENOSYS)


def test_errno_zero_returns_zero_without_running() -> None:
    policy, prog = _policy_one(errno(0), "getpid")
    natural, got = run(_one_call_child, prog, "getpid", (0x5151,)).unwrap()
    assert natural > 0 and got == 0


# --- docker-default, compiled by us ----------------------------------------------------------------

@pytest.fixture(scope="module")
def docker_default() -> tuple[Policy, bytes, tuple]:
    from sysgate.profiles import resolve

    policy = resolve("docker-default", arch="x86_64")
    assert set(policy.arches) == {"x86_64", "x86", "x32"}
    prog = compile_policy(policy)
    check(prog.insns)
    return policy, prog.to_bytes(), prog.insns


def _exec_child(prog: bytes, argv: list[str]) -> None:
    _install(prog)
    os.execv(argv[0], argv)


def test_docker_default_runs_a_shell(docker_default: tuple) -> None:
    _, prog, _ = docker_default
    script = ("grep -q '^Seccomp:[[:space:]]*2$' /proc/self/status || exit 1; "
              "test \"$(echo hi | cat)\" = hi || exit 2; ls / >/dev/null || exit 3; exit 7")
    out = run(_exec_child, prog, ["/bin/sh", "-c", script], timeout=20)
    assert out.exitcode == 7, out


def _denied_child(prog: bytes | None, gate_nr: int) -> dict[str, int]:
    gate = Int80()
    if prog is not None:
        _install(prog)
    s = _syscall(X64.nr("socket"), 2, 2, 0)  # AF_INET, SOCK_DGRAM
    return {
        "unshare": _syscall(X64.nr("unshare"), CLONE_NEWUSER),
        "keyctl": _syscall(X64.nr("keyctl"), 0, (-3) & U64, 0),  # KEYCTL_GET_KEYRING_ID, session
        "socket_vsock": _syscall(X64.nr("socket"), 40, 1, 0),
        "socket_inet": s,
        "personality_query": _syscall(X64.nr("personality"), 0xFFFFFFFF),
        "personality_other": _syscall(X64.nr("personality"), 0x1234),
        "clone3": _syscall(X64.nr("clone3"), 0, 0),
        "i386_getpid": gate(gate_nr),
        "pid": os.getpid(),
    }


def test_docker_default_denies_with_eperm(docker_default: tuple, abi: dict[str, bool]) -> None:
    policy, prog, insns = docker_default
    free = run(_denied_child, None, X86.nr("getpid")).unwrap()
    got = run(_denied_child, prog, X86.nr("getpid")).unwrap()
    assert free["unshare"] == 0 and got["unshare"] == -E.EPERM  # as root it works unfiltered
    assert got["keyctl"] == -E.EPERM
    assert got["socket_vsock"] == -E.EPERM and got["socket_inet"] >= 0
    assert got["personality_query"] >= 0 and got["personality_other"] == -E.EPERM
    assert free["clone3"] != -E.ENOSYS and got["clone3"] == -E.ENOSYS  # moby: clone3 -> errnoRet 38
    if abi["ia32"]:
        assert got["i386_getpid"] == got["pid"]  # x86 is a covered sub-arch
    # the emulator and the reference say the same for each of these calls
    for name, args, kind in [("unshare", [CLONE_NEWUSER], ActionKind.ERRNO), ("keyctl", [0, U64 - 2], ActionKind.ERRNO),
                             ("socket", [40, 1], ActionKind.ERRNO), ("socket", [2, 2], ActionKind.ALLOW),
                             ("personality", [0xFFFFFFFF], ActionKind.ALLOW),
                             ("personality", [0x1234], ActionKind.ERRNO), ("clone3", [], ActionKind.ERRNO)]:
        assert _agree(policy, insns, "x86_64", X64.nr(name), args).kind is kind, name
