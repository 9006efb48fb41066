"""seccomp(2): install a filter, and find out what the running kernel supports.

:func:`install` is meant to run in the forked child that is about to ``execve`` the sandboxed
program (never in a process that must keep running unfiltered): it does no import and starts
no thread, and it resolves everything it needs at module import time.
"""
from __future__ import annotations

import ctypes
import enum
import errno as E
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..bpf import insn as I
from ..bpf.emulator import InvalidProgram, check
from .syscall import (
    PR_GET_NO_NEW_PRIVS,
    PR_GET_SECCOMP,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_SECCOMP,
    SECCOMP_GET_ACTION_AVAIL,
    SECCOMP_GET_NOTIF_SIZES,
    SECCOMP_SET_MODE_FILTER,
    SECCOMP_SET_MODE_STRICT,
    SockFprog,
    errno_name,
    prctl,
    seccomp,
)

__all__ = [
    "SECCOMP_MODE_DISABLED", "SECCOMP_MODE_STRICT", "SECCOMP_MODE_FILTER",
    "SECCOMP_SET_MODE_STRICT", "SECCOMP_SET_MODE_FILTER", "SECCOMP_GET_ACTION_AVAIL", "SECCOMP_GET_NOTIF_SIZES",
    "SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_NEW_LISTENER", "SECCOMP_FILTER_FLAG_TSYNC_ESRCH", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    "PR_GET_SECCOMP", "PR_SET_SECCOMP", "PR_SET_NO_NEW_PRIVS", "PR_GET_NO_NEW_PRIVS",
    "ACTIONS", "Flag", "SockFprog", "SeccompError", "NotifSizes", "Features",
    "format_flags", "set_no_new_privs", "get_no_new_privs", "get_mode", "install",
    "action_available", "flag_supported", "notif_sizes", "features", "describe",
]

# seccomp modes (prctl(PR_GET_SECCOMP), /proc/PID/status "Seccomp:")
SECCOMP_MODE_DISABLED = 0
SECCOMP_MODE_STRICT = 1
SECCOMP_MODE_FILTER = 2

# seccomp(2) operations and the prctl options: from .syscall (re-exported)


class Flag(enum.IntFlag):
    """``SECCOMP_FILTER_FLAG_*`` for ``SECCOMP_SET_MODE_FILTER``."""

    TSYNC = 1               # apply to every thread of the process (3.17)
    LOG = 2                 # log every action but ALLOW (4.14)
    SPEC_ALLOW = 4          # do not force speculative-store-bypass mitigation (4.17)
    NEW_LISTENER = 8        # return a user-notification listener fd (5.0)
    TSYNC_ESRCH = 16        # TSYNC failure is ESRCH instead of a thread id (5.7)
    WAIT_KILLABLE_RECV = 32  # notified task waits killably once received (5.19)


SECCOMP_FILTER_FLAG_TSYNC = int(Flag.TSYNC)
SECCOMP_FILTER_FLAG_LOG = int(Flag.LOG)
SECCOMP_FILTER_FLAG_SPEC_ALLOW = int(Flag.SPEC_ALLOW)
SECCOMP_FILTER_FLAG_NEW_LISTENER = int(Flag.NEW_LISTENER)
SECCOMP_FILTER_FLAG_TSYNC_ESRCH = int(Flag.TSYNC_ESRCH)
SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = int(Flag.WAIT_KILLABLE_RECV)

#: Action names as ``/proc/sys/kernel/seccomp/actions_avail`` spells them -> ``SECCOMP_RET_*``.
ACTIONS: Mapping[str, int] = {
    "kill_process": I.RET_KILL_PROCESS, "kill_thread": I.RET_KILL_THREAD, "trap": I.RET_TRAP,
    "errno": I.RET_ERRNO, "user_notif": I.RET_USER_NOTIF, "trace": I.RET_TRACE, "log": I.RET_LOG,
    "allow": I.RET_ALLOW,
}

class SeccompError(OSError):
    """seccomp(2) or prctl(2) refused; ``str()`` is one line saying what failed and why.

    ``flags`` are the filter flags that were asked for; ``tid`` is the thread that made a TSYNC
    install fail when the kernel names it (the error is then ``ESRCH``, as with TSYNC_ESRCH).
    """

    def __init__(self, errno: int | None, message: str, *, flags: int = 0, tid: int | None = None) -> None:
        super().__init__(errno, message)
        self.flags = flags
        self.tid = tid

    def __str__(self) -> str:
        return str(self.strerror)


def format_flags(flags: int) -> str:
    """``"TSYNC|NEW_LISTENER"``; unknown bits as hex, 0 as ``"0"``."""
    names = [f.name or "" for f in Flag if flags & f]
    rest = flags & ~sum(Flag)
    if rest:
        names.append(hex(rest))
    return "|".join(names) or "0"


def set_no_new_privs() -> None:
    """``prctl(PR_SET_NO_NEW_PRIVS, 1)``: required to install a filter without CAP_SYS_ADMIN."""
    try:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    except OSError as e:
        raise SeccompError(e.errno, f"prctl(PR_SET_NO_NEW_PRIVS) failed: {errno_name(e.errno)} "
                                    f"({e.strerror})") from None


def get_no_new_privs() -> bool:
    return bool(prctl(PR_GET_NO_NEW_PRIVS))


def get_mode() -> int:
    """This process's seccomp mode (0 disabled, 2 filter); ``SeccompError`` without CONFIG_SECCOMP."""
    try:
        return prctl(PR_GET_SECCOMP)
    except OSError as e:
        raise SeccompError(e.errno, f"prctl(PR_GET_SECCOMP) failed: {errno_name(e.errno)} "
                                    "(kernel built without CONFIG_SECCOMP?)") from None


Program = bytes | bytearray | memoryview | Sequence[I.Insn]


def _program_bytes(program: Program) -> bytes:
    if isinstance(program, (bytes, bytearray, memoryview)):
        data = bytes(program)
        if len(data) % 8:
            raise ValueError(f"seccomp program is {len(data)} bytes, not a multiple of 8 "
                             "(struct sock_filter is 8 bytes)")
        return data
    return I.encode(program, sys.byteorder)


def _einval_reason(data: bytes, flags: int) -> str:
    try:
        check(I.decode(data, sys.byteorder))
    except InvalidProgram as e:
        return f"program invalid: {e}"
    names = format_flags(flags)
    if flags & Flag.TSYNC and flags & Flag.NEW_LISTENER and not flags & Flag.TSYNC_ESRCH:
        return f"flag combination refused: {names} (TSYNC with NEW_LISTENER needs TSYNC_ESRCH)"
    if flags & Flag.WAIT_KILLABLE_RECV and not flags & Flag.NEW_LISTENER:
        return f"flag combination refused: {names} (WAIT_KILLABLE_RECV needs NEW_LISTENER)"
    if flags:
        return f"program invalid or flag unsupported: {names}"
    return "program invalid, or the thread is in strict mode"


def _install_error(err: int, data: bytes, flags: int, via: str) -> SeccompError:
    n = len(data) // 8
    why = {
        E.EINVAL: lambda: _einval_reason(data, flags),
        E.EACCES: lambda: "no_new_privs is not set and the caller lacks CAP_SYS_ADMIN",
        E.EFAULT: lambda: "the program could not be read (bad address)",
        E.ENOMEM: lambda: f"out of memory, or the filters on this thread would exceed 32768 instructions "
                          f"(this one has {n}, each earlier one counts 4 extra)",
        E.EBUSY: lambda: "a filter with NEW_LISTENER is already installed on this thread",
        E.ESRCH: lambda: "TSYNC: another thread could not be synchronized and the kernel did not name it",
        E.ENOSYS: lambda: (f"seccomp(2) is not implemented, and flags {format_flags(flags)} cannot be passed "
                           "through prctl(PR_SET_SECCOMP)" if via == "seccomp" else
                           "prctl(PR_SET_SECCOMP) is not supported either"),
    }.get(err)
    reason = why() if why else os.strerror(err)
    return SeccompError(err, f"kernel refused the filter: {errno_name(err)} ({reason})", flags=flags)


def install(program: Program, flags: int = 0, *, no_new_privs: bool = True) -> int:
    """Install ``program`` as a seccomp filter on the calling thread (or process with TSYNC).

    ``program`` is raw ``struct sock_filter[]`` bytes in native byte order, or a sequence of
    :class:`~sysgate.bpf.insn.Insn`. Returns the listener fd with ``Flag.NEW_LISTENER``, else 0.
    Sets no_new_privs first unless told not to. Uses seccomp(2), falling back to
    ``prctl(PR_SET_SECCOMP)`` only when seccomp(2) is ENOSYS and ``flags`` is 0.

    Raises :class:`SeccompError`; for a TSYNC failure its ``tid`` is the offending thread.
    Irreversible: call it only in a process that is meant to be filtered.
    """
    data = _program_bytes(program)
    n = len(data) // 8
    if n > 0xFFFF:  # sock_fprog.len is 16 bits: do not let it wrap into a different program
        raise SeccompError(E.EINVAL, f"kernel refused the filter: EINVAL (program invalid: program has {n} "
                                     f"instructions; the kernel accepts 1 to {I.BPF_MAXINSNS})", flags=flags)
    buf = ctypes.create_string_buffer(data, len(data) or 1)
    fprog = SockFprog(n, ctypes.addressof(buf))
    if no_new_privs:
        set_no_new_privs()
    try:
        ret = seccomp(SECCOMP_SET_MODE_FILTER, flags, ctypes.byref(fprog))
    except OSError as e:
        assert e.errno is not None  # syscall.check raised it, with the errno set
        if e.errno != E.ENOSYS or flags:
            raise _install_error(e.errno, data, flags, "seccomp") from None
        try:
            prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog))
        except OSError as e2:
            assert e2.errno is not None
            raise _install_error(e2.errno, data, flags, "prctl") from None
        return 0
    if flags & Flag.NEW_LISTENER:
        return ret
    if ret > 0:  # TSYNC without TSYNC_ESRCH: the id of a thread that could not be synchronized
        raise SeccompError(E.ESRCH, f"kernel refused the filter: TSYNC failed on thread {ret} (it has "
                                    "filters that are not an ancestor of ours, or is in strict mode)",
                           flags=flags, tid=ret)
    return 0


def action_available(action: int | str) -> bool:
    """SECCOMP_GET_ACTION_AVAIL for an action (``SECCOMP_RET_*`` value or ``actions_avail`` name)."""
    ret = ACTIONS[action] if isinstance(action, str) else action
    val = ctypes.c_uint32(ret & I.RET_ACTION_FULL)
    try:
        seccomp(SECCOMP_GET_ACTION_AVAIL, 0, ctypes.byref(val))
    except OSError as e:
        if e.errno in (E.EOPNOTSUPP, E.EINVAL):  # EINVAL: kernel older than GET_ACTION_AVAIL
            return False
        raise
    return True


def flag_supported(flag: int) -> bool | None:
    """Whether the kernel knows filter flag(s) ``flag``, without installing anything.

    seccomp(SECCOMP_SET_MODE_FILTER, flag, NULL) validates the flags before it reads the program:
    EFAULT means the flags were accepted, EINVAL that they were not (the kernel selftest
    ``detect_seccomp_filter_flags`` relies on this). WAIT_KILLABLE_RECV is only valid together
    with NEW_LISTENER, so it is probed that way. None if the answer was something else (e.g. a
    filter on this process blocks seccomp(2)).
    """
    if flag & Flag.WAIT_KILLABLE_RECV:
        flag |= Flag.NEW_LISTENER
    try:
        seccomp(SECCOMP_SET_MODE_FILTER, flag, None)
    except OSError as e:
        if e.errno == E.EFAULT:
            return True
        if e.errno in (E.EINVAL, E.ENOSYS):
            return False
        return None
    return None  # cannot happen: NULL is never a valid program


@dataclass(frozen=True)
class NotifSizes:
    """``struct seccomp_notif_sizes``: the kernel's sizes of the notification structs."""

    notif: int
    resp: int
    data: int


def notif_sizes() -> NotifSizes:
    """SECCOMP_GET_NOTIF_SIZES (Linux 5.0+); ``SeccompError`` if the kernel lacks it."""
    sizes = (ctypes.c_uint16 * 3)()
    try:
        seccomp(SECCOMP_GET_NOTIF_SIZES, 0, ctypes.byref(sizes))
    except OSError as e:
        raise SeccompError(e.errno, f"seccomp(SECCOMP_GET_NOTIF_SIZES) failed: {errno_name(e.errno)} "
                                    "(user notification needs Linux 5.0)") from None
    return NotifSizes(*sizes)


@dataclass(frozen=True)
class Features:
    """What the running kernel offers, and this process's own seccomp state.

    ``actions`` is what ``/proc/sys/kernel/seccomp/actions_avail`` lists (empty if unreadable);
    ``actions_probed`` is SECCOMP_GET_ACTION_AVAIL per action; ``flags`` maps each
    :class:`Flag` name to True/False (None: the probe was inconclusive).
    """

    available: bool            # CONFIG_SECCOMP
    filter_mode: bool          # CONFIG_SECCOMP_FILTER
    syscall: bool              # seccomp(2) exists (else only prctl)
    mode: int | None           # this process: 0 disabled, 1 strict, 2 filter
    filters: int | None        # this process's filter count ("Seccomp_filters", Linux 5.9+)
    no_new_privs: bool | None  # this process
    actions: tuple[str, ...] = ()
    actions_logged: tuple[str, ...] = ()
    actions_probed: Mapping[str, bool] = field(default_factory=dict)
    flags: Mapping[str, bool | None] = field(default_factory=dict)
    notif_sizes: NotifSizes | None = None

    @property
    def user_notif(self) -> bool:
        return self.notif_sizes is not None and bool(self.actions_probed.get("user_notif"))

    def describe(self) -> str:
        """Several lines of plain text for people."""
        def yn(v: bool | None) -> str:
            return "?" if v is None else ("yes" if v else "no")

        modes = {0: "disabled", 1: "strict", 2: "filter"}
        if not self.available:
            return "seccomp: not available (kernel built without CONFIG_SECCOMP)"
        this = f"mode {modes.get(self.mode, self.mode) if self.mode is not None else '?'}"
        if self.filters is not None:
            this += f", {self.filters} filter{'s' if self.filters != 1 else ''}"
        this += f", no_new_privs {yn(self.no_new_privs)}"
        lines = [f"seccomp: available (this process: {this})",
                 f"filter mode: {yn(self.filter_mode)}"
                 + (" via seccomp(2)" if self.syscall else " via prctl(PR_SET_SECCOMP) only")]
        probed = [a for a, ok in self.actions_probed.items() if ok]
        lines.append("actions: " + (" ".join(self.actions) if self.actions else "(actions_avail unreadable)"))
        if self.actions and set(probed) != set(self.actions):
            lines.append("actions by SECCOMP_GET_ACTION_AVAIL: " + " ".join(probed))
        if self.actions_logged:
            lines.append("actions logged: " + " ".join(self.actions_logged))
        lines.append("filter flags: " + (", ".join(f"{k} {yn(v)}" for k, v in self.flags.items()) or "not probed"))
        if self.notif_sizes:
            s = self.notif_sizes
            lines.append(f"user notification: yes (struct sizes: notif {s.notif}, resp {s.resp}, data {s.data})")
        else:
            lines.append("user notification: no")
        return "\n".join(lines)


def _proc_status_fields(path: str = "/proc/self/status") -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open(path) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def _read_words(path: str) -> tuple[str, ...]:
    try:
        with open(path) as f:
            return tuple(f.read().split())
    except OSError:
        return ()


def features() -> Features:
    """Probe the kernel. Installs nothing; safe in any process."""
    status = _proc_status_fields()
    mode: int | None
    try:
        mode = prctl(PR_GET_SECCOMP)
        available = True
    except OSError:
        mode = int(status["Seccomp"]) if "Seccomp" in status else None
        available = mode is not None
    filters = int(status["Seccomp_filters"]) if status.get("Seccomp_filters", "").isdigit() else None
    try:
        nnp: bool | None = get_no_new_privs()
    except OSError:
        nnp = None
    has_syscall, filter_mode = True, False
    try:
        seccomp(SECCOMP_SET_MODE_FILTER, 0, None)
    except OSError as e:
        has_syscall = e.errno != E.ENOSYS
        filter_mode = e.errno == E.EFAULT
        if not has_syscall:
            try:
                prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, None)
            except OSError as e2:
                filter_mode = e2.errno == E.EFAULT
    flags: dict[str, bool | None] = {}
    if has_syscall and filter_mode:
        flags = {f.name or "": flag_supported(f) for f in Flag}
    probed: dict[str, bool] = {}
    sizes = None
    if has_syscall:
        probed = {name: action_available(ret) for name, ret in ACTIONS.items()}
        try:
            sizes = notif_sizes()
        except SeccompError:
            pass
    return Features(available=available, filter_mode=filter_mode, syscall=has_syscall, mode=mode,
                    filters=filters, no_new_privs=nnp,
                    actions=_read_words("/proc/sys/kernel/seccomp/actions_avail"),
                    actions_logged=_read_words("/proc/sys/kernel/seccomp/actions_logged"),
                    actions_probed=probed, flags=flags, notif_sizes=sizes)


def describe() -> str:
    """``features().describe()``."""
    return features().describe()
