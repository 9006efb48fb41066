"""Handing a file descriptor to another process over a unix stream socket (``SCM_RIGHTS``).

The jail passes the supervisor's listener from the sandbox's init to the caller this way (and the
terminal's master side from init to the relay). It goes through libc rather than the socket
module for two reasons. Init runs between ``clone`` and ``execve`` (with the vfork launcher, on
the caller's memory): it may import nothing and should allocate nothing, so a :class:`FdMessage`
has its ``msghdr``, ``iovec`` and control buffer laid out once, beforehand, and sending only
writes the descriptor's number into it. And ``_socket`` is a shared library in many CPython builds:
loading it was 0.6-0.7 ms of ``sysgate run``'s start (``python -X importtime``), for three calls.

Layouts are glibc's and the kernel's on Linux: ``struct msghdr`` is seven pointer-sized slots
(``msg_namelen`` and ``msg_flags`` are ints padded to a slot), ``struct cmsghdr`` a ``size_t``
length and two ints, its data aligned to ``size_t``.
"""
from __future__ import annotations

import os
import sys

from .._startup import ctypes
from .syscall import libc, libc_gil

__all__ = ["AF_UNIX", "FdMessage", "socketpair"]

AF_UNIX = 1
SOCK_STREAM = 1
SOCK_CLOEXEC = 0o2000000
SOL_SOCKET = 1
SCM_RIGHTS = 1
MSG_CMSG_CLOEXEC = 0x40000000

_P = ctypes.sizeof(ctypes.c_void_p)  # a pointer, size_t and (padded) socklen_t/int slot of msghdr
_HDR = _P + 8  # CMSG_LEN(0): size_t cmsg_len, int cmsg_level, int cmsg_type
_SPACE = _HDR + ((4 + _P - 1) // _P) * _P  # CMSG_SPACE(sizeof(int))
_ORDER = sys.byteorder
_EINTR = 4

_socketpair = libc["socketpair"]  # function objects of their own: the argtypes below are theirs
_socketpair.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
_sendmsg = libc_gil["sendmsg"]  # keeps the GIL: init calls it (see sysgate.kernel.syscall)
_sendmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_sendmsg.restype = ctypes.c_long
_recvmsg = libc["recvmsg"]  # releases the GIL: the receiver may block
_recvmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
_recvmsg.restype = ctypes.c_long


def socketpair() -> tuple[int, int]:
    """A connected pair of ``AF_UNIX`` stream sockets, close-on-exec; raises OSError."""
    fds = (ctypes.c_int * 2)()
    if _socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctypes.addressof(fds)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"socketpair: {os.strerror(e)}")
    return fds[0], fds[1]


class FdMessage:
    """One message of one byte carrying one descriptor, laid out in advance.

    Use one object per direction and per user: :meth:`send` and :meth:`recv` write into the same
    buffers, so two threads must never share one."""

    def __init__(self, byte: bytes = b"F") -> None:
        c_char = ctypes.c_char
        self._data = (c_char * 1)()
        self._data.raw = byte[:1]
        self._iov = (c_char * (2 * _P))()
        self._iov.raw = ctypes.addressof(self._data).to_bytes(_P, _ORDER) + (1).to_bytes(_P, _ORDER)
        self._control = (c_char * _SPACE)()
        self._msg = (c_char * (7 * _P))()
        slots = [0, 0, ctypes.addressof(self._iov), 1, ctypes.addressof(self._control), _SPACE, 0]
        #: msg_name NULL, msg_iov -> one iovec, msg_control -> room for one descriptor
        self._msg_raw = b"".join(v.to_bytes(_P, _ORDER) for v in slots)
        self._header = (_HDR + 4).to_bytes(_P, _ORDER) + SOL_SOCKET.to_bytes(4, _ORDER) + SCM_RIGHTS.to_bytes(4, _ORDER)
        self._addr = ctypes.addressof(self._msg)

    def send(self, sock: int, fd: int, flags: int = 0) -> int:
        """``sendmsg(sock)`` of the byte with ``fd`` attached, keeping the GIL; the byte count, or
        -1 with errno set (see :func:`sysgate.kernel.syscall.check`)."""
        self._control.raw = (self._header + fd.to_bytes(4, _ORDER, signed=True)).ljust(_SPACE, b"\0")
        self._msg.raw = self._msg_raw
        while True:
            n = int(_sendmsg(sock, self._addr, flags))
            if n >= 0 or ctypes.get_errno() != _EINTR:
                return n

    def recv(self, sock: int) -> int:
        """``recvmsg(sock)``, blocking without the GIL: the descriptor that came with the byte
        (close-on-exec), -2 if a byte came without one, -3 at end of file, or -1 with errno set."""
        while True:
            self._control.raw = bytes(_SPACE)
            self._msg.raw = self._msg_raw  # the kernel rewrites msg_controllen and msg_flags
            n = int(_recvmsg(sock, self._addr, MSG_CMSG_CLOEXEC))
            if n >= 0:
                break
            if ctypes.get_errno() != _EINTR:  # a signal for another thread: retry, as Python's own calls do
                return -1
        if n == 0:
            return -3
        controllen = int.from_bytes(self._msg.raw[5 * _P:6 * _P], _ORDER)
        ctl = self._control.raw
        if controllen < _HDR + 4 or ctl[:_HDR] != self._header:
            return -2
        return int.from_bytes(ctl[_HDR:_HDR + 4], _ORDER, signed=True)
