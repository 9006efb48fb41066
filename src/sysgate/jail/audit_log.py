"""Which syscall a seccomp kill was for, from the kernel's audit record.

A process killed by seccomp dies of SIGSYS; the wait status carries no syscall number (the
``si_syscall`` of the forced signal is never seen by a parent). The kernel does log every
``kill_process``/``kill_thread`` verdict (``/proc/sys/kernel/seccomp/actions_logged``) as an
audit record of type 1326 (``AUDIT_SECCOMP``) with the host pid, ``arch`` and ``syscall``;
without auditd it reaches the kernel log, readable through ``/dev/kmsg`` by root (or anyone
when ``dmesg_restrict`` is 0). Records go through the kauditd thread and the printk rate
limit, so this is best effort: the lookup retries briefly and gives up with None.
"""
from __future__ import annotations

import os
import re
import time

__all__ = ["SeccompRecord", "find_seccomp_kill"]

_REC = re.compile(r"type=1326 .*?\bpid=(\d+)\b.*?\bsig=(\d+)\b.*?\barch=([0-9a-fA-F]+)\b.*?\bsyscall=(\d+)\b"
                  r"(?:.*?\bcode=(0x[0-9a-fA-F]+)\b)?")
# The filter's verdict in the record: only these end the process (a trap's SIGSYS is logged too,
# with the filter's log flag, and a command can die of it by having no handler).
_KILL_ACTIONS = (0x80000000, 0x00000000)  # SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD


class SeccompRecord(tuple):
    """(pid, signal, arch token, syscall number)."""

    __slots__ = ()

    @property
    def pid(self) -> int:
        return self[0]

    @property
    def arch_token(self) -> int:
        return self[2]

    @property
    def nr(self) -> int:
        return self[3]


def _records(since_usec: int) -> list[SeccompRecord]:
    out: list[SeccompRecord] = []
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return out
    try:
        while True:
            try:
                raw = os.read(fd, 8192)
            except BlockingIOError:
                break
            except OSError as e:  # EPIPE: a record was overwritten while reading; keep going
                if e.errno == 32:
                    continue
                break
            if not raw:
                break
            head, _, msg = raw.decode("utf-8", "replace").partition(";")
            fields = head.split(",")
            if len(fields) < 3 or not fields[2].isdigit() or int(fields[2]) < since_usec:
                continue
            m = _REC.search(msg)
            if m and (m[5] is None or int(m[5], 16) & 0xFFFF0000 in _KILL_ACTIONS):
                out.append(SeccompRecord((int(m[1]), int(m[2]), int(m[3], 16), int(m[4]))))
    finally:
        os.close(fd)
    return out


def find_seccomp_kill(host_pid: int | None, since_monotonic: float, wait: float = 0.25) -> SeccompRecord | None:
    """The audit record of the seccomp kill of ``host_pid`` logged after ``since_monotonic``.

    Without a pid, the only such record in the window is taken (None if several).
    """
    since = max(0, int((since_monotonic - 0.5) * 1e6))  # kmsg stamps are CLOCK_MONOTONIC-based
    deadline = time.monotonic() + wait
    while True:
        recs = [r for r in _records(since) if r[1] == 31]
        if host_pid is not None:
            mine = [r for r in recs if r.pid == host_pid]
            if mine:
                return mine[-1]
        elif len(recs) == 1:
            return recs[0]
        if time.monotonic() >= deadline or not os.access("/dev/kmsg", os.R_OK):
            return None
        time.sleep(0.01)


def describe(rec: SeccompRecord) -> tuple[str | None, str | None]:
    """(syscall name, arch name) for a record, as far as the tables know them."""
    from ..arch import by_token

    arches = by_token(rec.arch_token)
    if not arches:
        return None, f"token {rec.arch_token:#x}"
    nr = rec.nr
    a = arches[0]
    if len(arches) > 1 and nr & 0x40000000:  # x32 shares x86_64's token; its numbers carry this bit
        a = next((x for x in arches if x.name == "x32"), a)
    try:
        name = a.name_of(nr)
    except Exception:  # noqa: BLE001 - unknown number: report the number only
        name = None
    return name, a.name
