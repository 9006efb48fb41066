"""Read another process's memory (a tracee's, or a notified target's).

Needs ptrace access to the target (same user and ``ptrace_scope`` allowing it, or root, or being
its tracer). Uses process_vm_readv(2), falling back to ``/proc/PID/mem`` where that syscall is
missing or forbidden.
"""
from __future__ import annotations

import ctypes
import errno as E
import os

from .syscall import errno_name, nr, syscall

__all__ = ["MemoryReadError", "read_memory"]

_NR_PROCESS_VM_READV = nr("process_vm_readv")


class _IOVec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]


class MemoryReadError(OSError):
    """Reading the target's memory failed (unmapped address, target gone, no permission)."""

    def __str__(self) -> str:
        return str(self.strerror)


def _vm_readv(pid: int, addr: int, size: int) -> bytes:
    buf = ctypes.create_string_buffer(size)
    local = _IOVec(ctypes.addressof(buf), size)
    remote = _IOVec(addr, size)
    got = 0
    while got < size:  # a read that crosses into an unmapped page comes back short
        local.base, local.len = ctypes.addressof(buf) + got, size - got
        remote.base, remote.len = addr + got, size - got
        n = syscall(_NR_PROCESS_VM_READV, pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if n == 0:
            raise OSError(E.EFAULT, os.strerror(E.EFAULT))
        got += n
    return buf.raw


def _proc_mem(pid: int, addr: int, size: int) -> bytes:
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.pread(fd, size, addr)
    finally:
        os.close(fd)
    if len(data) != size:
        raise OSError(E.EFAULT, os.strerror(E.EFAULT))
    return data


def read_memory(pid: int, addr: int, size: int) -> bytes:
    """Exactly ``size`` bytes at ``addr`` in process ``pid``; :class:`MemoryReadError` otherwise."""
    if size == 0:
        return b""
    if addr == 0:
        raise MemoryReadError(E.EFAULT, f"cannot read {size} bytes at NULL in process {pid}")
    try:
        return _vm_readv(pid, addr, size)
    except OSError as e:
        first = e
    if first.errno in (E.ENOSYS, E.EPERM):
        try:
            return _proc_mem(pid, addr, size)
        except OSError as e:
            first = e
    err = first.errno or E.EIO
    raise MemoryReadError(err, f"cannot read {size} bytes at {addr:#x} in process {pid}: "
                            f"{errno_name(err)} ({os.strerror(err)})")
