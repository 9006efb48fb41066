"""Multiplexed syscalls: socketcall(2) and ipc(2), facts only.

Older ABIs reach the socket and System V IPC calls through one syscall whose first argument
says which call to make (``socketcall(SYS_SOCKET, args)``, ``ipc(SEMOP, ...)``); the call's own
arguments are then behind a pointer (socketcall) or shifted (ipc), where a filter cannot check
them. An ABI multiplexes when its table has ``socketcall``/``ipc``: x86, ppc, ppc64(le),
s390, s390x, mips o32, m68k and sh, the arches libseccomp rewrites rules for
(``abi_rule_add``). How the kernel reads the selector:

* socketcall: ``int call`` (net/socket.c), so only the low 32 bits count;
* ipc: ``call & 0xffff`` (ipc/syscall.c); the high half of the low word is a version.

The sub-call numbers are the kernel's ``SYS_*`` (<linux/net.h>) and ``SEMOP``... (<linux/ipc.h>).
"""
from __future__ import annotations

__all__ = ["SOCKETCALL", "IPC", "SELECTOR_MASK", "multiplexer"]

#: socketcall(2) sub-calls: name -> SYS_* number.
SOCKETCALL: dict[str, int] = {
    "socket": 1, "bind": 2, "connect": 3, "listen": 4, "accept": 5, "getsockname": 6, "getpeername": 7,
    "socketpair": 8, "send": 9, "recv": 10, "sendto": 11, "recvfrom": 12, "shutdown": 13, "setsockopt": 14,
    "getsockopt": 15, "sendmsg": 16, "recvmsg": 17, "accept4": 18, "recvmmsg": 19, "sendmmsg": 20,
}

#: ipc(2) sub-calls: name -> call number.
IPC: dict[str, int] = {
    "semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12, "msgget": 13,
    "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24,
}

#: The bits of the selector (argument 0) the kernel uses, per multiplexer.
SELECTOR_MASK: dict[str, int] = {"socketcall": 0xFFFFFFFF, "ipc": 0xFFFF}


def multiplexer(name: str) -> tuple[str, int] | None:
    """(multiplexer name, sub-call number) for a multiplexed call name, else None."""
    if name in SOCKETCALL:
        return "socketcall", SOCKETCALL[name]
    if name in IPC:
        return "ipc", IPC[name]
    return None
