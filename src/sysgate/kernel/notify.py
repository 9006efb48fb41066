"""Seccomp user notification (``SECCOMP_RET_USER_NOTIF``), supervisor side.

A filter installed with ``Flag.NEW_LISTENER`` yields a listener fd (see
:func:`sysgate.kernel.seccomp.install`); hand it to a supervisor process, which calls
:func:`receive` for each notified syscall and answers it with :func:`respond` (an error, a
return value, or ``SECCOMP_USER_NOTIF_FLAG_CONTINUE`` to let the kernel run the syscall) or
:func:`add_fd` (install one of its fds in the target). Anything the supervisor reads from the
target's memory must be re-checked with :func:`id_valid` before acting on it: the target may have
died and its pid been reused.
"""
from __future__ import annotations

import ctypes
import errno as E
import os
import select
import time
from dataclasses import dataclass

from ..arch import Arch, by_token, get, native
from ..bpf.emulator import SeccompData
from .seccomp import SeccompError, notif_sizes
from .syscall import errno_name, libc

__all__ = [
    "SECCOMP_USER_NOTIF_FLAG_CONTINUE", "SECCOMP_ADDFD_FLAG_SETFD", "SECCOMP_ADDFD_FLAG_SEND",
    "SECCOMP_IOCTL_NOTIF_RECV", "SECCOMP_IOCTL_NOTIF_SEND", "SECCOMP_IOCTL_NOTIF_ID_VALID",
    "SECCOMP_IOCTL_NOTIF_ADDFD", "SeccompDataStruct", "SeccompNotif", "SeccompNotifResp", "SeccompNotifAddfd",
    "NotifyError", "ListenerClosed", "Notification", "ioc", "ioctl_numbers", "receive", "respond",
    "id_valid", "add_fd",
]

SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
SECCOMP_ADDFD_FLAG_SETFD = 1  # put the fd at newfd in the target (like dup2)
SECCOMP_ADDFD_FLAG_SEND = 2   # add the fd and answer the notification with its number, atomically (5.14)


class SeccompDataStruct(ctypes.Structure):
    _fields_ = [("nr", ctypes.c_int32), ("arch", ctypes.c_uint32), ("instruction_pointer", ctypes.c_uint64),
                ("args", ctypes.c_uint64 * 6)]


class SeccompNotif(ctypes.Structure):
    """``struct seccomp_notif`` (80 bytes in the UAPI this module is written against)."""

    _fields_ = [("id", ctypes.c_uint64), ("pid", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("data", SeccompDataStruct)]


class SeccompNotifResp(ctypes.Structure):
    """``struct seccomp_notif_resp``: ``error`` is a negative errno, or 0 to return ``val``."""

    _fields_ = [("id", ctypes.c_uint64), ("val", ctypes.c_int64), ("error", ctypes.c_int32),
                ("flags", ctypes.c_uint32)]


class SeccompNotifAddfd(ctypes.Structure):
    """``struct seccomp_notif_addfd``."""

    _fields_ = [("id", ctypes.c_uint64), ("flags", ctypes.c_uint32), ("srcfd", ctypes.c_uint32),
                ("newfd", ctypes.c_uint32), ("newfd_flags", ctypes.c_uint32)]


def ioc(direction: str, type_: int, number: int, size: int, arch: str | Arch | None = None) -> int:
    """``_IOC(dir, type, nr, size)`` as ``arch``'s ``<asm/ioctl.h>`` defines it.

    ``direction`` is ``""``, ``"r"``, ``"w"`` or ``"rw"`` (from user space's point of view, as
    ``_IOR``/``_IOW``/``_IOWR``). Most arches use 2 direction bits (write 1, read 2) and 14 size
    bits; powerpc, mips, sparc and alpha use 3 direction bits (none 1, read 2, write 4) and 13 size
    bits; parisc swaps read and write.
    """
    name = (get(arch) if arch is not None else native()).name
    if name.startswith(("ppc", "mips", "sparc", "alpha")):
        none, rd, wr, sizebits = 1, 2, 4, 13
    elif name.startswith("parisc"):
        none, rd, wr, sizebits = 0, 1, 2, 14
    else:
        none, rd, wr, sizebits = 0, 2, 1, 14
    if not 0 <= size < 1 << sizebits:
        raise ValueError(f"ioctl argument size {size} does not fit in {sizebits} bits")
    d = {"": none, "r": rd, "w": wr, "rw": rd | wr}[direction]
    return (d << (16 + sizebits)) | (size << 16) | ((type_ & 0xFF) << 8) | (number & 0xFF)


_MAGIC = ord("!")  # SECCOMP_IOC_MAGIC


def ioctl_numbers(arch: str | Arch | None = None) -> dict[str, int]:
    """The seccomp notification ioctl request numbers for ``arch`` (default: native)."""
    return {
        "SECCOMP_IOCTL_NOTIF_RECV": ioc("rw", _MAGIC, 0, ctypes.sizeof(SeccompNotif), arch),
        "SECCOMP_IOCTL_NOTIF_SEND": ioc("rw", _MAGIC, 1, ctypes.sizeof(SeccompNotifResp), arch),
        # Linux 5.0-5.6 defined ID_VALID as _IOR by mistake; the kernel accepts both, we use _IOW.
        "SECCOMP_IOCTL_NOTIF_ID_VALID": ioc("w", _MAGIC, 2, 8, arch),
        "SECCOMP_IOCTL_NOTIF_ADDFD": ioc("w", _MAGIC, 3, ctypes.sizeof(SeccompNotifAddfd), arch),
    }


_NUMBERS = ioctl_numbers()
SECCOMP_IOCTL_NOTIF_RECV = _NUMBERS["SECCOMP_IOCTL_NOTIF_RECV"]
SECCOMP_IOCTL_NOTIF_SEND = _NUMBERS["SECCOMP_IOCTL_NOTIF_SEND"]
SECCOMP_IOCTL_NOTIF_ID_VALID = _NUMBERS["SECCOMP_IOCTL_NOTIF_ID_VALID"]
SECCOMP_IOCTL_NOTIF_ADDFD = _NUMBERS["SECCOMP_IOCTL_NOTIF_ADDFD"]

_ioctl = libc.ioctl
_ioctl.restype = ctypes.c_int


class NotifyError(OSError):
    """A notification ioctl failed; ``str()`` is one line naming the ioctl and the reason."""

    def __str__(self) -> str:
        return str(self.strerror)


class ListenerClosed(NotifyError):
    """No task uses the filter any more (the listener hung up): no notification will come."""


def _call(fd: int, request: int, arg: object, what: str, reasons: dict[int, str]) -> int:
    while True:  # ctypes releases the GIL, so a blocking ioctl does not stall other threads
        ret = _ioctl(fd, ctypes.c_ulong(request), arg)
        if ret >= 0:
            return ret
        err = ctypes.get_errno()
        if err != E.EINTR:
            break
    reason = reasons.get(err) or os.strerror(err)
    raise NotifyError(err, f"{what}: {errno_name(err)} ({reason})")


@dataclass(frozen=True)
class Notification:
    """One notified syscall: ``id`` (answer with it), the target's ``pid`` and what it called.

    ``data`` is the ``seccomp_data`` the filter saw (nr, arch token, instruction pointer, args).
    """

    id: int
    pid: int
    flags: int
    data: SeccompData

    def arch(self) -> Arch | None:
        """The ABI of the call (x32 told from x86_64 by the number's x32 bit)."""
        for a in by_token(self.data.arch):
            if a.name_of(self.data.nr) is not None:
                return a
        cands = by_token(self.data.arch)
        return cands[0] if cands else None

    def syscall_name(self) -> str | None:
        a = self.arch()
        return a.name_of(self.data.nr) if a else None


_sizes: tuple[int, int] | None = None


def buffer_sizes() -> tuple[int, int]:
    """(notification, response) buffer sizes: the structs' or, if the kernel grew them, the sizes it
    reports (it writes/reads that many bytes); probed once."""
    global _sizes
    if _sizes is None:
        try:
            s = notif_sizes()
            _sizes = (max(s.notif, ctypes.sizeof(SeccompNotif)), max(s.resp, ctypes.sizeof(SeccompNotifResp)))
        except SeccompError:
            _sizes = (ctypes.sizeof(SeccompNotif), ctypes.sizeof(SeccompNotifResp))
    return _sizes


def _wait_readable(fd: int, timeout: float | None, deadline: float | None) -> None:
    p = select.poll()
    p.register(fd, select.POLLIN)
    while True:
        ms = -1 if deadline is None else max(0, int((deadline - time.monotonic()) * 1000))
        events = p.poll(ms)
        if not events:
            raise TimeoutError(f"no seccomp notification within {timeout} s")
        ev = events[0][1]
        if ev & select.POLLIN:
            return
        if ev & (select.POLLHUP | select.POLLERR):
            raise ListenerClosed(E.ESRCH, "seccomp listener: no task uses the filter any more")
        if ev & select.POLLNVAL:
            raise NotifyError(E.EBADF, f"seccomp listener: fd {fd} is not open")


def receive(fd: int, timeout: float | None = None) -> Notification:
    """Wait for the next notification on listener ``fd`` (SECCOMP_IOCTL_NOTIF_RECV).

    Raises ``TimeoutError`` after ``timeout`` seconds, :class:`ListenerClosed` once no task uses
    the filter. A notification whose target died before we got it is skipped.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    size = buffer_sizes()[0]
    while True:
        _wait_readable(fd, timeout, deadline)
        buf = ctypes.create_string_buffer(size)  # the kernel insists on a zeroed buffer
        try:
            _call(fd, SECCOMP_IOCTL_NOTIF_RECV, buf, "SECCOMP_IOCTL_NOTIF_RECV",
                  {E.EINVAL: "not a seccomp listener fd, or the buffer was not zeroed"})
        except NotifyError as e:
            if e.errno == E.ENOENT:  # target killed between poll and receive: wait for the next one
                continue
            raise
        n = SeccompNotif.from_buffer_copy(buf.raw[:ctypes.sizeof(SeccompNotif)])
        d = n.data
        return Notification(n.id, n.pid, n.flags,
                            SeccompData(d.nr, d.arch, d.instruction_pointer, tuple(d.args)))


def _send_buffer(resp: SeccompNotifResp) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(buffer_sizes()[1])
    ctypes.memmove(buf, ctypes.byref(resp), ctypes.sizeof(resp))
    return buf


def respond(fd: int, id: int, val: int = 0, error: int = 0, flags: int = 0) -> None:
    """Answer notification ``id`` (SECCOMP_IOCTL_NOTIF_SEND).

    ``error`` is a positive errno (e.g. ``errno.EPERM``): the syscall fails with it. Otherwise the
    syscall returns ``val``. With ``flags=SECCOMP_USER_NOTIF_FLAG_CONTINUE`` the kernel runs the
    syscall itself (``val`` and ``error`` must be 0); never use that to enforce a policy based on
    pointer arguments, the target can change the memory after the check.
    """
    if not 0 <= error <= 4095:
        raise ValueError(f"error must be a positive errno value (0 to 4095), got {error}")
    if flags & SECCOMP_USER_NOTIF_FLAG_CONTINUE and (val or error):
        raise ValueError("SECCOMP_USER_NOTIF_FLAG_CONTINUE needs val=0 and error=0")
    resp = SeccompNotifResp(id, val, -error, flags)
    _call(fd, SECCOMP_IOCTL_NOTIF_SEND, _send_buffer(resp), f"SECCOMP_IOCTL_NOTIF_SEND for notification {id}",
          {E.ENOENT: "no such notification: the target died, its syscall was interrupted, "
                     "or it was already answered",
           E.EINVAL: "invalid response (flags, or CONTINUE with a value or error)",
           E.EINPROGRESS: "the notification was not received yet, or was answered already"})


def id_valid(fd: int, id: int) -> bool:
    """Whether notification ``id`` is still pending (its target alive and still in the syscall)."""
    v = ctypes.c_uint64(id)
    try:
        _call(fd, SECCOMP_IOCTL_NOTIF_ID_VALID, ctypes.byref(v), "SECCOMP_IOCTL_NOTIF_ID_VALID", {})
    except NotifyError as e:
        if e.errno == E.ENOENT:
            return False
        raise
    return True


def add_fd(fd: int, id: int, srcfd: int, newfd: int | None = None, *, cloexec: bool = False,
           send: bool = False) -> int:
    """Copy our ``srcfd`` into notification ``id``'s target (SECCOMP_IOCTL_NOTIF_ADDFD, 5.9+).

    With ``newfd`` the fd lands at that number (replacing what was there, like dup2); ``cloexec``
    sets O_CLOEXEC on it; ``send`` also answers the notification with the new fd number,
    atomically (5.14+), so no :func:`respond` follows. Returns the fd number in the target.
    """
    flags = (SECCOMP_ADDFD_FLAG_SETFD if newfd is not None else 0) | (SECCOMP_ADDFD_FLAG_SEND if send else 0)
    req = SeccompNotifAddfd(id, flags, srcfd, newfd or 0, os.O_CLOEXEC if cloexec else 0)
    return _call(fd, SECCOMP_IOCTL_NOTIF_ADDFD, ctypes.byref(req), f"SECCOMP_IOCTL_NOTIF_ADDFD for notification {id}",
                 {E.ENOENT: "no such notification: the target died or its syscall was interrupted",
                  E.EINPROGRESS: "the notification was not received yet, or was already answered",
                  E.EBADF: f"bad source fd {srcfd}, or newfd {newfd} out of range",
                  E.EBUSY: "SEND was asked but another ADDFD is still pending for this notification",
                  E.EMFILE: "the target has too many open files",
                  E.EINVAL: "invalid flags"})
