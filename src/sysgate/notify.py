"""A seccomp user-notification supervisor: decide syscalls in Python, safely.

A filter that returns ``SECCOMP_RET_USER_NOTIF`` for a syscall suspends the calling thread and
queues a notification on the filter's *listener* fd (``Flag.NEW_LISTENER``, see
:func:`sysgate.kernel.seccomp.install`). A :class:`Supervisor` owns that fd: it receives each
notification, calls the handler registered for the syscall and answers with what the handler
returned:

- :data:`ALLOW` (:class:`Allow`): the kernel runs the call as if no filter had said anything
  (``SECCOMP_USER_NOTIF_FLAG_CONTINUE``). Only safe for decisions that look at *values* (the
  syscall number, integer arguments): pointer arguments live in the target's memory and another
  of its threads can rewrite them after the check (TOCTOU).
- :class:`Fail` ``(errno)``: the call fails with that errno, without running.
- :class:`Return` ``(value)``: the call returns ``value`` without running (emulation).
- :class:`InjectFd` ``(fd)``: our ``fd`` is installed in the target and the call returns its
  number, atomically (``SECCOMP_IOCTL_NOTIF_ADDFD`` with ``SECCOMP_ADDFD_FLAG_SEND``).

Decisions on pointer arguments must *emulate* the call: read the bytes once (:meth:`Call.read`,
which re-checks with ``SECCOMP_IOCTL_NOTIF_ID_VALID`` that the target is still the one that
asked), decide on that copy, perform the call in the supervisor on the copy (resolved in the
target's view: :meth:`Call.root`, :meth:`Call.take_fd`) and answer with its result.
:mod:`sysgate.jail.supervisor` does that for ``open``/``openat``/``openat2`` and ``connect``.

Failure is closed by construction: a handler that raises answers ``EPERM`` for that call and the
exception is reported (:attr:`Supervisor.errors`, ``on_error``); a notified syscall without a
handler fails with ``ENOSYS``; and if the supervisor dies or closes the listener, the kernel
fails every pending and later notified call with ``ENOSYS`` (never runs it). A target
interrupted by a signal while its call was pending is answered by nobody: the kernel withdraws
the notification (``SEND`` gets ``ENOENT``, counted in :attr:`Supervisor.interrupted`) and a
restarted call comes back as a new notification.

Where the kernel has it (6.6+), ``SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP`` is set on the listener: the
kernel then switches straight between target and supervisor on one CPU, which halves the round
trip. On those kernels a blocked ``RECV`` also returns once no task uses the filter, so
:meth:`Supervisor.serve` without a timeout blocks in ``RECV`` itself (no ``poll`` first: one
system call less per notification), and handlers given as constant answers (``ALLOW``,
``Fail(e)``, ``Return(v)``) are answered from a table without building a :class:`Call` (see
``bench/bench_notify.py``).
"""
from __future__ import annotations

import ctypes
import errno as E
import os
import select
import struct
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .arch import Arch, by_token, get, native
from .bpf import insn as I
from .bpf.insn import Insn
from .errors import BadArgument
from .kernel.memory import MemoryReadError, read_memory
from .kernel.notify import (
    SECCOMP_ADDFD_FLAG_SEND,
    SECCOMP_IOCTL_NOTIF_ADDFD,
    SECCOMP_IOCTL_NOTIF_ID_VALID,
    SECCOMP_IOCTL_NOTIF_RECV,
    SECCOMP_IOCTL_NOTIF_SEND,
    SECCOMP_USER_NOTIF_FLAG_CONTINUE,
    buffer_sizes,
    ioc,
)
from .kernel.syscall import errno_name, libc, nr, syscall

__all__ = [
    "ALLOW",
    "CONSTANT_REPLIES",
    "LATER",
    "SECCOMP_IOCTL_NOTIF_SET_FLAGS",
    "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP",
    "Allow",
    "Call",
    "CallGone",
    "Fail",
    "Handler",
    "HandlerError",
    "InjectFd",
    "Later",
    "Reply",
    "Return",
    "Supervisor",
    "companion_arches",
    "notify_program",
    "pidfd_getfd",
    "pidfd_open",
]

SECCOMP_IOCTL_NOTIF_SET_FLAGS = ioc("w", ord("!"), 4, 8)  # 6.6
SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1


class Reply:
    """What a handler answers; one of :class:`Allow`, :class:`Fail`, :class:`Return`, :class:`InjectFd`."""

    __slots__ = ()


@dataclass(frozen=True)
class Allow(Reply):
    """Let the kernel run the call (CONTINUE). Never after looking at pointer arguments."""


ALLOW = Allow()


@dataclass(frozen=True)
class Fail(Reply):
    """The call fails with ``errno`` (1-4095) without running."""

    errno: int

    def __post_init__(self) -> None:
        if not isinstance(self.errno, int) or not 0 < self.errno <= 4095:
            raise BadArgument(f"Fail: errno must be 1-4095, got {self.errno!r}")


@dataclass(frozen=True)
class Return(Reply):
    """The call returns ``value`` without running (the supervisor emulated it)."""

    value: int


@dataclass(frozen=True)
class InjectFd(Reply):
    """Install our ``fd`` in the target; the call returns its number there.

    ``cloexec`` sets O_CLOEXEC on the target's copy; ``close`` closes ours afterwards (also when
    the target has gone in the meantime).
    """

    fd: int
    cloexec: bool = False
    close: bool = True


@dataclass(frozen=True)
class Later(Reply):
    """The handler answers later, from another thread, with :meth:`Supervisor.respond` (e.g. an
    emulated call that would block: the receiving thread goes on serving the other calls)."""


LATER = Later()
#: what a handler may be instead of a callable: a constant answer, sent by :meth:`Supervisor.serve`
#: from a table, without building a :class:`Call` or calling Python code (the fast path)
CONSTANT_REPLIES = (Allow, Fail, Return)


class CallGone(Exception):
    """The target died, or its call was interrupted, while we looked at it: nothing to answer."""


class HandlerError(Exception):
    """A handler raised or returned something that is not a :class:`Reply` (reported, answered EPERM)."""


Handler = Callable[["Call"], Reply]

# struct seccomp_notif: id u64, pid u32, flags u32, then seccomp_data: nr s32, arch u32, ip u64, args 6*u64
_NOTIF = struct.Struct("=QIIiIQ6Q")
_RESP = struct.Struct("=QqiI")
_ADDFD = struct.Struct("=QIIII")

_ioctl = libc.ioctl
_ioctl.restype = ctypes.c_int
_ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p]
_get_errno = ctypes.get_errno
# The serving loop's own ioctl: a separate function object without argtypes (their conversion
# costs about 0.7 µs a call), called with an int fd, a request number (ctypes passes it as a C
# int; the kernel reads the request as 32 bits) and a prebuilt c_void_p of a fixed buffer.
_ioctl_fast = libc["ioctl"]
_ioctl_fast.restype = ctypes.c_int
# what the constant-answer path reads of struct seccomp_notif: id, and nr + arch as one word
_HEAD = struct.Struct("=Q8xQ")


def _key(nr_: int, token: int) -> int:
    """The table key of (nr, arch token): the native 64-bit word at offset 16 of seccomp_notif
    (``nr`` then ``arch``), so the serving loop reads it from the buffer with no arithmetic."""
    return int.from_bytes(struct.pack("=iI", nr_ if nr_ < 1 << 31 else nr_ - (1 << 32), token), sys.byteorder)

_NR_PIDFD_OPEN = nr("pidfd_open")
_NR_PIDFD_GETFD = nr("pidfd_getfd")


def pidfd_open(pid: int) -> int:
    """A pidfd for ``pid`` (close-on-exec)."""
    return syscall(_NR_PIDFD_OPEN, pid, 0)


def pidfd_getfd(pidfd: int, targetfd: int) -> int:
    """A close-on-exec duplicate of fd ``targetfd`` of the process behind ``pidfd`` (5.6+)."""
    return syscall(_NR_PIDFD_GETFD, pidfd, targetfd, 0)


_COMPANIONS = {"x86_64": ("x86_64", "x86", "x32"), "aarch64": ("aarch64", "arm")}


def companion_arches(arch: str | Arch | None = None) -> tuple[Arch, ...]:
    """The ABIs a process of ``arch`` (default native) can call: x86_64 also has x86 (``int 0x80``)
    and x32; aarch64 also has arm (compat). A filter that mediates a syscall must catch it on each."""
    a = get(arch) if arch is not None else native()
    return tuple(get(n) for n in _COMPANIONS.get(a.name, (a.name,)))


def notify_program(calls: Iterable[str | int], *, arches: tuple[Arch, ...] | None = None,
                   otherwise: int | None = None, if_nonzero: Mapping[str, int] | None = None,
                   unless: Mapping[str, tuple[int, int]] | None = None) -> list[Insn]:
    """A filter returning USER_NOTIF for ``calls`` (names or native numbers) on every ABI of ``arches``
    (default: :func:`companion_arches`) and ``otherwise`` (default ALLOW) for everything else.

    ``if_nonzero`` maps more syscall names to an argument index: those notify only when that
    argument is not 0 (both 32-bit halves tested), e.g. ``{"sendto": 4}``: a ``sendto`` without a
    destination address never reaches the supervisor. A value, judged by the kernel: safe.
    ``unless`` maps names of ``calls`` to ``(index, value)``: on the first ABI of ``arches`` only,
    that call does not notify when the argument is exactly ``value`` (64 bits). The jail hands
    the listener out with such a ``sendmsg`` and then seals that route with an ERRNO filter.

    Install it with ``Flag.NEW_LISTENER`` on top of the real profile: the kernel takes the strictest
    answer of stacked filters and USER_NOTIF ranks below ERRNO and the kills, so the profile's
    denials still win and only what the profile allows reaches the supervisor.
    """
    arches = arches or companion_arches()
    rest = I.RET_ALLOW if otherwise is None else otherwise
    per_token: dict[int, list[int]] = {}
    for a in arches:
        nrs = per_token.setdefault(a.token, [])
        for c in calls:
            if isinstance(c, int):
                if a is arches[0]:
                    nrs.append(c)
            elif a.has(c):
                nrs.append(a.nr(c))
    cond: dict[int, list[tuple[int, int, int]]] = {}  # token -> (nr, offset of low word, of high word)
    for a in arches:
        per_token.setdefault(a.token, [])
        for name, idx in (if_nonzero or {}).items():
            if a.has(name):
                lo = 16 + 8 * idx
                lo, hi = (lo, lo + 4) if a.byteorder == "little" else (lo + 4, lo)
                cond.setdefault(a.token, []).append((a.nr(name), lo, hi))
    exempt: dict[int, tuple[int, int, int, int]] = {}  # nr -> (lo offset, hi offset, lo value, hi value)
    first = arches[0]
    for name, (idx, value) in (unless or {}).items():
        if first.has(name):
            lo = 16 + 8 * idx
            lo, hi = (lo, lo + 4) if first.byteorder == "little" else (lo + 4, lo)
            exempt[first.nr(name)] = (lo, hi, value & 0xFFFFFFFF, value >> 32)
    prog: list[Insn] = [I.stmt(I.LD | I.W | I.ABS, 4)]
    for token, nrs in per_token.items():
        block = [I.stmt(I.LD | I.W | I.ABS, 0)]
        for n in sorted(set(nrs)):
            if token == first.token and n in exempt:  # jeq n; ld lo; jne v; ld hi; jne v; allow; notify
                lo, hi, vlo, vhi = exempt[n]
                block += [I.jump(I.JMP | I.JEQ | I.K, n, 0, 6), I.stmt(I.LD | I.W | I.ABS, lo),
                          I.jump(I.JMP | I.JEQ | I.K, vlo, 0, 3), I.stmt(I.LD | I.W | I.ABS, hi),
                          I.jump(I.JMP | I.JEQ | I.K, vhi, 0, 1), I.stmt(I.RET | I.K, rest),
                          I.stmt(I.RET | I.K, I.RET_USER_NOTIF)]
                continue
            block += [I.jump(I.JMP | I.JEQ | I.K, n, 0, 1), I.stmt(I.RET | I.K, I.RET_USER_NOTIF)]
        for n, lo, hi in sorted(set(cond.get(token, ()))):
            # A still holds nr when the test fails; a match ends in a return either way
            block += [I.jump(I.JMP | I.JEQ | I.K, n, 0, 6), I.stmt(I.LD | I.W | I.ABS, lo),
                      I.jump(I.JMP | I.JEQ | I.K, 0, 0, 2), I.stmt(I.LD | I.W | I.ABS, hi),
                      I.jump(I.JMP | I.JEQ | I.K, 0, 1, 0), I.stmt(I.RET | I.K, I.RET_USER_NOTIF),
                      I.stmt(I.RET | I.K, rest)]
        block.append(I.stmt(I.RET | I.K, rest))
        prog.append(I.jump(I.JMP | I.JEQ | I.K, token, 0, len(block)))
        prog += block
    prog.append(I.stmt(I.RET | I.K, rest))
    return prog


def _arch_of(token: int, nr_: int) -> Arch | None:
    cands = by_token(token)
    for a in cands:
        if a.name_of(nr_) is not None:
            return a
    return cands[0] if cands else None


class Call:
    """One notified syscall, as handlers see it.

    ``pid`` is the calling thread's id as the supervisor sees it; ``arch`` the ABI it used
    (x32 told from x86_64 by the number), ``name`` the syscall's name there (None if unknown),
    ``args`` the six raw register values. Memory reads (:meth:`read`, :meth:`read_string`) are
    copies taken once and re-validated; decide on them, never on the target's memory again.
    """

    __slots__ = ("_arch", "_fds", "_pidfd", "_root", "_sup", "arch_token", "args", "id", "ip", "nr", "pid")

    def __init__(self, sup: Supervisor, id: int, pid: int, nr_: int, arch_token: int, ip: int,
                 args: tuple[int, ...]) -> None:
        self.id = id
        self.pid = pid
        self.nr = nr_
        self.arch_token = arch_token
        self.ip = ip
        self.args = args
        self._sup = sup
        self._arch: Arch | None | bool = False
        self._root = -1
        self._pidfd = -1
        self._fds: list[int] = []

    @property
    def arch(self) -> Arch | None:
        if self._arch is False:
            self._arch = _arch_of(self.arch_token, self.nr)
        return self._arch  # type: ignore[return-value]

    @property
    def name(self) -> str | None:
        a = self.arch
        return a.name_of(self.nr) if a is not None else None

    def valid(self) -> bool:
        """Whether the call is still pending (target alive, not interrupted): ID_VALID."""
        return self._sup._id_valid(self.id)

    def check(self) -> None:
        """Raise :class:`CallGone` unless the call is still pending."""
        if not self.valid():
            raise CallGone(f"notification {self.id}: the target died or the call was interrupted")

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes of the target's memory at ``addr``, then ID_VALID (the pid is still the target).

        Raises :class:`~sysgate.kernel.memory.MemoryReadError` for a bad address (answer EFAULT).
        """
        data = read_memory(self.pid, addr, size)
        self.check()
        return data

    def read_string(self, addr: int, limit: int = 4096) -> bytes:
        """The NUL-terminated string at ``addr`` (without the NUL); ENAMETOOLONG past ``limit`` bytes.

        Reads page by page so that a string ending right before an unmapped page is read.
        """
        out = bytearray()
        while len(out) < limit:
            chunk = min(4096 - (addr + len(out)) % 4096, limit - len(out))
            data = read_memory(self.pid, addr + len(out), chunk)
            i = data.find(b"\0")
            if i >= 0:
                out += data[:i]
                self.check()
                return bytes(out)
            out += data
        raise MemoryReadError(E.ENAMETOOLONG, f"string at {addr:#x} in process {self.pid} is longer than {limit}")

    def pidfd(self) -> int:
        """A pidfd of the target (closed when the call is answered)."""
        if self._pidfd < 0:
            self._pidfd = pidfd_open(self.pid)
            self._fds.append(self._pidfd)
            self.check()  # the pid was the target's when we opened it: the pidfd is the target's
        return self._pidfd

    def take_fd(self, fd: int) -> int:
        """Our duplicate of the target's fd ``fd`` (pidfd_getfd; closed when the call is answered)."""
        dup = pidfd_getfd(self.pidfd(), fd)
        self._fds.append(dup)
        return dup

    def root(self) -> int:
        """An O_PATH fd of the target's root directory (``/proc/PID/root``; closed when answered)."""
        if self._root < 0:
            self._root = os.open(f"/proc/{self.pid}/root", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fds.append(self._root)
            self.check()
        return self._root

    def cwd(self) -> int:
        """An O_PATH fd of the target's working directory (closed when the call is answered)."""
        fd = os.open(f"/proc/{self.pid}/cwd", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        self._fds.append(fd)
        self.check()
        return fd

    def describe(self, decode: bool = False) -> str:
        """``connect(0x3, 0x7ffc..., 0x6e) [x86_64]``: name, arguments, ABI.

        With ``decode``, known arguments are shown by kind: fds in decimal (``AT_FDCWD``), paths as
        the strings the target's memory holds *now* (read for the log only, never to decide),
        modes in octal. Unknown syscalls show six raw values.
        """
        a = self.arch
        name = self.name or f"syscall_{self.nr}"
        kinds = _KINDS.get(name)
        if kinds is None:
            kinds = "x" * _ARGC.get(name, 6)
        if not decode:
            kinds = "x" * len(kinds)
        bits = a.bits if a is not None else 64
        shown = ", ".join(self._arg(k, v, bits) for k, v in zip(kinds, self.args))
        return f"{name}({shown}) [{a.name if a else hex(self.arch_token)}]"

    def _arg(self, kind: str, v: int, bits: int) -> str:
        v &= (1 << bits) - 1
        signed = v - (1 << bits) if v >> (bits - 1) else v
        if kind == "f":
            s32 = (v & 0xFFFFFFFF) - (1 << 32) if v & 0x80000000 else v & 0xFFFFFFFF
            return "AT_FDCWD" if s32 == -100 else str(s32)
        if kind == "i":
            return str(signed)
        if kind == "o":
            return oct(v)
        if kind == "p":
            if v == 0:
                return "NULL"
            try:
                text = read_memory_string(self.pid, v, 256)
            except OSError:
                return hex(v)
            return '"' + text.decode("utf-8", "backslashreplace").replace('"', '\\"') + '"'
        return hex(v)

    def _release(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []


def read_memory_string(pid: int, addr: int, limit: int) -> bytes:
    """The NUL-terminated string at ``addr`` in ``pid`` (truncated at ``limit``), page by page."""
    out = bytearray()
    while len(out) < limit:
        chunk = min(4096 - (addr + len(out)) % 4096, limit - len(out))
        data = read_memory(pid, addr + len(out), chunk)
        i = data.find(b"\0")
        if i >= 0:
            return bytes(out + data[:i])
        out += data
    return bytes(out)


# Argument kinds for describe(decode=True): f fd, p path (string in the target), i signed int,
# o octal mode, x hex. Names not listed show _ARGC's count (else 6) of raw values.
_KINDS = {
    "open": "pxo", "openat": "fpxo", "openat2": "fpxi", "creat": "po", "execve": "pxx", "execveat": "fpxxx",
    "mount": "pppxx", "umount2": "px", "umount": "p", "chroot": "p", "pivot_root": "pp", "chdir": "p",
    "mkdir": "po", "mkdirat": "fpo", "rmdir": "p", "unlink": "p", "unlinkat": "fpx", "rename": "pp",
    "renameat": "fpfp", "renameat2": "fpfpx", "link": "pp", "linkat": "fpfpx", "symlink": "pp",
    "symlinkat": "pfp", "chmod": "po", "fchmodat": "fpo", "chown": "pii", "lchown": "pii", "fchownat": "fpiix",
    "stat": "px", "lstat": "px", "newfstatat": "fpxx", "statx": "fpxxx", "access": "po", "faccessat": "fpo",
    "faccessat2": "fpox", "truncate": "pi", "readlink": "pxi", "readlinkat": "fpxi", "acct": "p",
    "swapon": "px", "swapoff": "p", "mknod": "pox", "mknodat": "fpox", "utimensat": "fpxx",
    "kill": "ii", "tkill": "ii", "tgkill": "iii", "ptrace": "iixx", "unshare": "x", "setns": "fx",
    "socket": "iii", "socketpair": "iiix", "connect": "fxi", "bind": "fxi", "ioctl": "fxx", "close": "f",
    "dup": "f", "dup2": "ff", "dup3": "ffx", "read": "fxi", "write": "fxi", "personality": "x",
    "bpf": "ixi", "keyctl": "ixxxx", "add_key": "ppxii", "request_key": "pppi", "init_module": "xip",
    "finit_module": "fpx", "delete_module": "px", "setuid": "i", "setgid": "i", "sethostname": "xi",
    "setdomainname": "xi", "reboot": "xxxx", "kexec_load": "xixx", "syslog": "ixi", "quotactl": "xpix",
    "open_by_handle_at": "fxx", "name_to_handle_at": "fpxxx", "fanotify_mark": "fxxfp",
    "inotify_add_watch": "fpx", "perf_event_open": "xiifx", "userfaultfd": "x", "clone": "xxxxx",
    "clone3": "xi", "socketcall": "ix", "prctl": "ixxxx", "seccomp": "xxx", "getppid": "", "getpid": "",
    "fsopen": "px", "fsmount": "fxx", "move_mount": "fpfpx", "open_tree": "fpx", "mount_setattr": "fpxxi",
}

# How many arguments to show per syscall in describe() (the rest are register garbage).
_ARGC = {"acct": 1, "close": 1, "dup": 1, "dup2": 2, "dup3": 3, "read": 3, "write": 3, "execve": 3, "chdir": 1,
         "setuid": 1, "setgid": 1, "sethostname": 2, "swapon": 2, "swapoff": 1, "init_module": 3,
         "delete_module": 2, "kexec_load": 4, "syslog": 3, "perf_event_open": 5, "userfaultfd": 1,
         "clock_settime": 2, "settimeofday": 2, "quotactl": 4, "move_pages": 6, "mbind": 6, "open_by_handle_at": 3,
         "connect": 3, "openat": 4, "open": 3, "openat2": 4, "socketcall": 2, "getppid": 0, "getpid": 0,
         "ptrace": 4, "kill": 2, "mount": 5, "umount2": 2, "unshare": 1, "setns": 2, "socket": 3, "ioctl": 3,
         "bpf": 3, "keyctl": 5, "personality": 1, "reboot": 4, "chroot": 1, "pivot_root": 2}


def _resolve_handlers(handlers: Mapping[str | int | tuple, Handler | Reply],
                      arches: tuple[Arch, ...]) -> dict[tuple[int, int], Handler | Reply]:
    out: dict[tuple[int, int], Handler | Reply] = {}
    for key, h in handlers.items():
        if not callable(h) and type(h) not in CONSTANT_REPLIES:
            raise TypeError(f"handler for {key!r} is neither callable nor ALLOW, Fail(...) or Return(...)")
        if isinstance(key, tuple):  # (arch, nr) or (arch, name)
            a = get(key[0])
            out[(a.token, key[1] if isinstance(key[1], int) else a.nr(key[1]))] = h
            continue
        found = False
        for a in arches:
            if isinstance(key, int):
                out[(a.token, key)] = h
                found = True
            elif a.has(key):
                out[(a.token, a.nr(key))] = h
                found = True
        if not found:
            raise BadArgument(f"handler for {key!r}: no such syscall on {', '.join(a.name for a in arches)}")
    return out


_LOOKUP = object()  # _dispatch's "find the handler yourself"


class Supervisor:
    """Serve the notifications of one listener fd.

    ``handlers`` maps syscall names (on every ABI of ``arches``, default the native ones, see
    :func:`companion_arches`), ``(arch, name_or_nr)`` pairs or plain numbers to handlers, or to
    a constant answer (:data:`ALLOW`, ``Fail(e)``, ``Return(v)``: sent from a table, without a
    :class:`Call` or any handler code, unless ``on_reply`` wants to see every call);
    ``default`` handles the rest (None: ``ENOSYS``). ``on_error(call, exc)`` is told about every
    handler that raised (the call was answered EPERM); ``on_reply(call, reply)`` about every
    answer (for logs). The supervisor owns ``listener`` and closes it in :meth:`close`.

    Run it with :meth:`serve` (returns when no task uses the filter any more, or on :meth:`stop`)
    or on a thread with :meth:`start`. One receiving thread answers in order; a slow handler
    delays the calls behind it but never loses one.

    Without a ``timeout``, on kernels with ``SET_FLAGS`` (6.6+, whose ``RECV`` also returns once
    no task uses the filter) the loop blocks in ``RECV`` itself instead of ``poll`` + ``RECV``: one
    system call less per notification. :meth:`stop` then takes effect when the next notification
    arrives (it is not answered: the target gets ENOSYS once the listener is closed) or the last
    target exits.
    """

    def __init__(self, listener: int, handlers: Mapping[str | int | tuple, Handler] | None = None,
                 default: Handler | None = None, *, arches: tuple[Arch, ...] | None = None,
                 on_error: Callable[[Call, BaseException], None] | None = None,
                 on_reply: Callable[[Call, Reply], None] | None = None, sync_wakeup: bool = True) -> None:
        self.listener = listener
        self._handlers = _resolve_handlers(handlers or {}, arches or companion_arches())
        self.default = default
        self.on_error = on_error
        self.on_reply = on_reply
        self.errors: list[tuple[str, BaseException]] = []   # (call description, exception)
        self.handled = 0        # notifications answered
        self.interrupted = 0    # answers the kernel refused because the target was interrupted or died
        self._stop_r, self._stop_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        self._thread: threading.Thread | None = None
        notif_size, resp_size = buffer_sizes()
        self._recv_buf = ctypes.create_string_buffer(notif_size)
        self._resp_buf = ctypes.create_string_buffer(resp_size)
        self._resp_ptr = ctypes.c_void_p(ctypes.addressof(self._resp_buf))
        self._addfd_buf = ctypes.create_string_buffer(_ADDFD.size)
        self._id_buf = ctypes.c_uint64(0)
        self.sync_wakeup = sync_wakeup and self._set_flags(SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP)
        #: the kernel has SET_FLAGS (6.6+), and so a RECV that returns when no task is left: serve()
        #: may block in RECV without polling first
        self.blocking_recv = self.sync_wakeup or self._set_flags(0)
        self.failure: BaseException | None = None  # why serve() stopped, if not the listener hanging up
        self._stopping = False
        self._close_pending = False
        self._blocked = False  # a thread is in the blocking loop (close() then leaves the fds to it)
        self._close_lock = threading.Lock()
        # by _key(nr, token): constant answers as (val, -errno, flags), and every handler
        self._const: dict[int, tuple[int, int, int]] = {}
        self._by_key = {_key(n, token): h for (token, n), h in self._handlers.items()}
        if on_reply is None:
            for (token, n), h in self._handlers.items():
                t = type(h)
                if t is Return:
                    self._const[_key(n, token)] = (h.value, 0, 0)  # type: ignore[union-attr]
                elif t is Fail:
                    self._const[_key(n, token)] = (0, -h.errno, 0)  # type: ignore[union-attr]
                elif t is Allow:
                    self._const[_key(n, token)] = (0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)

    # -- kernel calls -------------------------------------------------------------------------
    def _set_flags(self, flags: int) -> bool:
        # The flags are the ioctl's argument itself, not a pointer to them.
        return _ioctl(self.listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) == 0

    def _id_valid(self, id: int) -> bool:
        self._id_buf.value = id
        if _ioctl(self.listener, SECCOMP_IOCTL_NOTIF_ID_VALID, ctypes.addressof(self._id_buf)) == 0:
            return True
        err = _get_errno()
        if err == E.ENOENT:
            return False
        raise OSError(err, f"SECCOMP_IOCTL_NOTIF_ID_VALID: {errno_name(err)}")

    def _send(self, id: int, val: int, error: int, flags: int) -> None:
        _RESP.pack_into(self._resp_buf, 0, id, val, -error, flags)
        if _ioctl_fast(self.listener, SECCOMP_IOCTL_NOTIF_SEND, self._resp_ptr) == 0:
            self.handled += 1
            return
        err = _get_errno()
        if err == E.ENOENT:  # interrupted by a signal or died: the kernel withdrew it; a restart is a new id
            self.interrupted += 1
            return
        raise OSError(err, f"SECCOMP_IOCTL_NOTIF_SEND: {errno_name(err)}")

    def _addfd_send(self, id: int, fd: int, cloexec: bool) -> None:
        _ADDFD.pack_into(self._addfd_buf, 0, id, SECCOMP_ADDFD_FLAG_SEND, fd, 0, os.O_CLOEXEC if cloexec else 0)
        if _ioctl(self.listener, SECCOMP_IOCTL_NOTIF_ADDFD, ctypes.addressof(self._addfd_buf)) >= 0:
            self.handled += 1
            return
        err = _get_errno()
        if err == E.ENOENT:
            self.interrupted += 1
            return
        if err == E.EMFILE:  # the target's table is full: the call fails as open would
            self._send(id, 0, E.EMFILE, 0)
            return
        raise OSError(err, f"SECCOMP_IOCTL_NOTIF_ADDFD: {errno_name(err)}")

    def respond(self, id: int, val: int = 0, error: int = 0) -> bool:
        """Answer notification ``id`` from any thread (after a handler returned :data:`LATER`):
        the call returns ``val``, or fails with the positive errno ``error``. False if the target
        was interrupted or died meanwhile (nothing to answer)."""
        buf = ctypes.create_string_buffer(ctypes.sizeof(self._resp_buf))  # not the serving thread's
        _RESP.pack_into(buf, 0, id, val, -error, 0)
        if _ioctl(self.listener, SECCOMP_IOCTL_NOTIF_SEND, ctypes.addressof(buf)) == 0:
            return True
        err = _get_errno()
        if err == E.ENOENT:
            return False
        raise OSError(err, f"SECCOMP_IOCTL_NOTIF_SEND: {errno_name(err)}")

    # -- serving -------------------------------------------------------------------------------
    def answer(self, call: Call, reply: Reply) -> None:
        """Send ``reply`` for ``call`` (what :meth:`serve` does with a handler's result)."""
        t = type(reply)
        if t is Return:
            self._send(call.id, reply.value, 0, 0)  # type: ignore[attr-defined]  # t, type(reply) read once, says which
        elif t is Allow:
            self._send(call.id, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE)
        elif t is Fail:
            self._send(call.id, 0, reply.errno, 0)  # type: ignore[attr-defined]
        elif t is InjectFd:
            try:
                self._addfd_send(call.id, reply.fd, reply.cloexec)  # type: ignore[attr-defined]
            finally:
                if reply.close:  # type: ignore[attr-defined]
                    os.close(reply.fd)  # type: ignore[attr-defined]
        elif t is not Later:
            raise HandlerError(f"handler returned {reply!r}, not a Reply")

    def _dispatch(self, call: Call, h: Handler | Reply | None = _LOOKUP) -> None:  # type: ignore[assignment]
        if h is _LOOKUP:
            h = self._handlers.get((call.arch_token, call.nr), self.default)
        try:
            if h is None:
                reply: Reply = Fail(E.ENOSYS)
            elif type(h) in CONSTANT_REPLIES:
                reply = h  # type: ignore[assignment]
            else:
                reply = h(call)  # type: ignore[operator]
            if self.on_reply is not None:
                self.on_reply(call, reply)
            self.answer(call, reply)
        except CallGone:
            self.interrupted += 1
        except Exception as e:  # noqa: BLE001 - a handler's bug must never leave the target hanging
            self.errors.append((call.describe(), e))
            try:
                self._send(call.id, 0, E.EPERM, 0)
            finally:
                if self.on_error is not None:
                    self.on_error(call, e)
        finally:
            if call._fds:
                call._release()

    def serve(self, timeout: float | None = None) -> None:
        """Answer notifications until no task uses the filter (or :meth:`stop`, or ``timeout`` s idle)."""
        if timeout is None and self.blocking_recv:
            with self._close_lock:
                if self.listener < 0:
                    return
                self._blocked = True
            try:
                self._serve_blocking()
            finally:
                with self._close_lock:
                    self._blocked = False
                    if self._close_pending:  # close() was called while we were blocked in RECV
                        self._close_fds()
            return
        p = select.poll()
        p.register(self.listener, select.POLLIN)
        p.register(self._stop_r, select.POLLIN)
        ms = -1 if timeout is None else int(timeout * 1000)
        buf, lfd = self._recv_buf, self.listener
        zero = bytes(ctypes.sizeof(buf))
        addr = ctypes.addressof(buf)
        unpack, dispatch, stop_r = _NOTIF.unpack_from, self._dispatch, self._stop_r
        while True:
            ready = p.poll(ms)
            if not ready:
                raise TimeoutError(f"no seccomp notification within {timeout} s")
            got = False
            for fd, ev in ready:
                if fd == stop_r:
                    return
                if ev & select.POLLIN:
                    got = True
                elif ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                    return  # every task of the filter has gone: nothing more will come
            if not got:
                continue
            buf.raw = zero  # RECV insists on a zeroed buffer (a ctypes memset call costs 10x more)
            if _ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, addr) < 0:
                err = _get_errno()
                if err in (E.ENOENT, E.EINTR):  # the target died between poll and receive
                    continue
                raise OSError(err, f"SECCOMP_IOCTL_NOTIF_RECV: {errno_name(err)}")
            if self._const and self._answer_constant(buf):
                continue
            id_, pid, _flags, nr_, arch, ip, *args = unpack(buf)
            dispatch(Call(self, id_, pid, nr_, arch, ip, tuple(args)))

    def _answer_constant(self, buf: ctypes.Array[ctypes.c_char]) -> bool:
        id_, key = _HEAD.unpack_from(buf)
        c = self._const.get(key)
        if c is None:
            return False
        self._send(id_, c[0], -c[1], c[2])  # c is the response's (val, -errno, flags)
        return True

    def _serve_blocking(self) -> None:
        """serve() without poll: block in RECV (6.6+: it returns ENOENT once the filter has no task).

        The hot loop keeps everything in locals and reads the buffers through 64-bit views: the
        id is word 0 of ``seccomp_notif`` and word 2 (``nr`` and ``arch`` side by side) is the
        table key as it stands (:func:`_key`); a constant answer writes only the id into a
        response buffer that already holds its value. Per notification: RECV, SEND and about a
        microsecond of Python; a :class:`Call` and the handler only for handler-served calls."""
        buf, lfd = self._recv_buf, self.listener
        zero = bytes(ctypes.sizeof(buf))
        rq = memoryview(buf).cast("B").cast("Q")
        rptr = ctypes.c_void_p(ctypes.addressof(buf))
        sb = memoryview(self._resp_buf).cast("B")
        sq = sb.cast("Q")
        sptr = self._resp_ptr
        ioctl, RECV, SEND, get_errno = _ioctl_fast, SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND, _get_errno
        unpack, dispatch = _NOTIF.unpack_from, self._dispatch
        const = {k: (v, bytes(8) + _RESP.pack(0, *v)[8:]) for k, v in self._const.items()}
        by_key, default = self._by_key, self.default
        hup = select.poll()
        hup.register(lfd, select.POLLIN)
        last = None  # the constant the response buffer holds
        handled = interrupted = 0
        try:
            while True:
                buf.raw = zero  # RECV insists on a zeroed buffer
                if ioctl(lfd, RECV, rptr) < 0:
                    err = get_errno()
                    if err == E.ENOENT:  # the target died or was interrupted, or no task is left
                        ev = hup.poll(0)
                        if ev and ev[0][1] & (select.POLLHUP | select.POLLERR | select.POLLNVAL):
                            return
                        continue
                    if err == E.EINTR:
                        continue
                    raise OSError(err, f"SECCOMP_IOCTL_NOTIF_RECV: {errno_name(err)}")
                if self._stopping:
                    return  # received after stop(): left unanswered, ENOSYS once the listener is closed
                key = rq[2]
                c = const.get(key)
                if c is not None:
                    if c is not last:
                        sb[:24] = c[1]
                        last = c
                    sq[0] = rq[0]
                    if ioctl(lfd, SEND, sptr) == 0:
                        handled += 1
                    elif get_errno() == E.ENOENT:  # interrupted or gone: withdrawn by the kernel
                        interrupted += 1
                    else:
                        err = get_errno()
                        raise OSError(err, f"SECCOMP_IOCTL_NOTIF_SEND: {errno_name(err)}")
                    continue
                last = None  # _dispatch writes its own answers into the same buffer
                v = unpack(buf)
                dispatch(Call(self, v[0], v[1], v[3], v[4], v[5], v[6:]), by_key.get(key, default))
        finally:
            self.handled += handled
            self.interrupted += interrupted

    def start(self, timeout: float | None = None) -> threading.Thread:
        """Serve on a daemon thread; :attr:`failure` holds what ended it if it was not a hang-up."""
        def body() -> None:
            try:
                self.serve(timeout)
            except BaseException as e:  # noqa: BLE001 - reported through .failure
                self.failure = e
        self._thread = threading.Thread(target=body, name="sysgate-supervisor", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        """Make :meth:`serve` return after the call it is handling (pending calls get ENOSYS on close).

        A loop blocked in RECV (see the class) returns at the next notification or hang-up."""
        self._stopping = True
        try:
            os.write(self._stop_w, b"x")
        except OSError:
            pass

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the serving thread; True if it has ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def close(self) -> None:
        """Stop and close the listener: from now on the kernel fails notified calls with ENOSYS."""
        if self._stop_w < 0:
            return  # closed already: never close the numbers twice (they may belong to others now)
        self.stop()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(0.2 if self._blocked else 5)
        with self._close_lock:
            if self._blocked and self._thread is not threading.current_thread():
                # another thread is blocked in RECV on the listener: closing the number now could
                # hand it to another file under that thread's next ioctl; it closes everything when
                # its RECV returns (the next notification, left unanswered: ENOSYS; or the hang-up)
                self._close_pending = True
                return
            self._close_fds()

    def _close_fds(self) -> None:
        for fd in (self.listener, self._stop_r, self._stop_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self.listener = self._stop_r = self._stop_w = -1

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
