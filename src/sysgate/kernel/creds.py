"""The calling thread's credentials, changed for a moment: acting as another task.

Linux keeps credentials per thread. glibc's ``set*id`` wrappers change every thread of the
process (its "setxid" broadcast); the raw syscalls change the caller only. The jail's supervisor
runs on a thread of the caller's process and, under ``--allow-path``, opens files on a sandboxed
task's behalf: with :class:`ActingAs` it does so with that task's uid, gid and supplementary
groups and none of its own capabilities, so every permission check (file modes, procfs's ptrace
checks, the owner of a file it creates) is the task's. A root thread keeps 0 as its real and saved
user id, which lets it return; the capabilities the switch clears come back from the permitted set.

What a thread cannot shed this way: the owner of a user namespace has every capability in it
whatever its capability sets say, so an unprivileged caller's thread keeps that power over its
own sandbox's namespace (see :mod:`sysgate.jail.mediation` for what it refuses on procfs for that
reason).
"""
from __future__ import annotations

import os

from .._startup import ctypes
from .syscall import nr, syscall

__all__ = ["ActingAs", "TaskIds", "task_ids"]

_CAP_V3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


class TaskIds:
    """A task's file-system user and group ids, supplementary groups and umask (host ids), and its
    thread-group and thread ids in its own (innermost) PID namespace, as bytes (``nspids``)."""

    def __init__(self, uid: int, gid: int, groups: tuple[int, ...], umask: int,
                 nspids: tuple[bytes, bytes] = (b"", b"")) -> None:
        self.uid, self.gid, self.groups, self.umask, self.nspids = uid, gid, groups, umask, nspids


def task_ids(pid: int) -> TaskIds:
    """The ids of task ``pid`` from one read of ``/proc/PID/status`` (raises ``OSError`` if it is
    gone, or its status lacks them)."""
    uid = gid = -1
    groups: tuple[int, ...] = ()
    umask = 0o022
    tgid = tid = b""
    with open(f"/proc/{pid}/status", "rb") as f:
        for line in f:
            if line.startswith(b"Uid:"):
                uid = int(line.split()[4])  # real, effective, saved, file system
            elif line.startswith(b"Gid:"):
                gid = int(line.split()[4])
            elif line.startswith(b"Groups:"):
                groups = tuple(int(g) for g in line.split()[1:])
            elif line.startswith(b"Umask:"):
                umask = int(line.split()[1], 8)
            elif line.startswith(b"NStgid:"):
                tgid = line.split()[-1]
            elif line.startswith(b"NSpid:"):
                tid = line.split()[-1]
    if uid < 0 or gid < 0 or not tgid.isdigit() or not tid.isdigit():
        raise OSError(3, f"process {pid}: no ids in its status")
    return TaskIds(uid, gid, groups, umask, (tgid, tid))


class ActingAs:
    """``with ActingAs(ids):`` the calling thread has ``ids``' uid, gid and groups (when it is root)
    and no effective capability; on leaving, its own again. Raises ``OSError`` if a change fails
    (then nothing is left changed)."""

    def __init__(self, ids: TaskIds) -> None:
        self.ids = ids
        self._caps = (_CapData * 2)()
        self._switched = False
        self._lowered = False
        self._egid = -1
        self._groups: list[int] = []

    def __enter__(self) -> ActingAs:
        ids = self.ids
        hdr = _CapHeader(_CAP_V3, 0)
        syscall(nr("capget"), ctypes.byref(hdr), self._caps)
        if os.geteuid() == 0 and (ids.uid, ids.gid, ids.groups) != (0, 0, tuple(os.getgroups())):
            self._egid = os.getegid()
            self._groups = os.getgroups()
            arr = (ctypes.c_uint32 * max(1, len(ids.groups)))(*ids.groups)
            try:
                syscall(nr("setgroups"), len(ids.groups), arr)
                syscall(nr("setresgid"), -1, ids.gid, -1)
                # the effective uid leaves 0: the effective capabilities go (the permitted stay)
                syscall(nr("setresuid"), -1, ids.uid, -1)
            except OSError:
                self._restore_ids()
                raise
            self._switched = True
        if self._caps[0].effective or self._caps[1].effective:
            low = (_CapData * 2)(_CapData(0, self._caps[0].permitted, self._caps[0].inheritable),
                                 _CapData(0, self._caps[1].permitted, self._caps[1].inheritable))
            try:
                syscall(nr("capset"), ctypes.byref(_CapHeader(_CAP_V3, 0)), low)
            except OSError:
                self._restore_ids()
                raise
            self._lowered = True
        return self

    def _restore_ids(self) -> None:
        if os.geteuid() != 0 and self._egid >= 0:
            syscall(nr("setresuid"), -1, 0, -1)  # the real and saved ids are still 0
        if self._egid >= 0:
            syscall(nr("setresgid"), -1, self._egid, -1)
            arr = (ctypes.c_uint32 * max(1, len(self._groups)))(*self._groups)
            syscall(nr("setgroups"), len(self._groups), arr)
        self._switched = False

    def __exit__(self, *exc: object) -> None:
        if self._switched:
            self._restore_ids()
        if self._lowered or self._egid >= 0:
            syscall(nr("capset"), ctypes.byref(_CapHeader(_CAP_V3, 0)), self._caps)  # exactly as before
            self._lowered = False
        self._egid = -1
