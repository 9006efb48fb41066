"""sysgate.kernel.fdpass: a descriptor handed over a unix socket through libc (SCM_RIGHTS), as the
jail hands the supervisor's listener and the terminal's master from init to the caller."""
from __future__ import annotations

import fcntl
import os
import select
import socket

import forkrun
from sysgate.kernel import fdpass
from sysgate.kernel.syscall import errno_of


def _cloexec(fd: int) -> bool:
    return bool(fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC)


def test_socketpair_is_a_connected_close_on_exec_unix_stream_pair() -> None:
    a, b = fdpass.socketpair()
    try:
        assert _cloexec(a) and _cloexec(b)
        for fd in (a, b):
            s = socket.socket(fileno=os.dup(fd))
            assert (s.family, s.type) == (socket.AF_UNIX, socket.SOCK_STREAM)
            s.close()
        os.write(a, b"x")
        assert os.read(b, 1) == b"x"
    finally:
        os.close(a)
        os.close(b)


def _send_a_file_of_its_own(sock: int) -> int:
    """In the child: open a file only it has and send it, with the jail's hand-off flags."""
    fd = os.open("/proc/self/stat", os.O_RDONLY)
    return fdpass.FdMessage(b"L").send(sock, fd, 0x4062)


def test_a_descriptor_crosses_to_another_process() -> None:
    a, b = fdpass.socketpair()
    try:
        with forkrun.start(_send_a_file_of_its_own, b) as child:
            os.close(b)
            b = -1
            assert select.select([a], [], [], 30)[0], "the child sent nothing"  # every wait bounded
            got = fdpass.FdMessage().recv(a)
            assert child.wait(30).unwrap() == 1  # one byte sent
        assert got >= 0 and _cloexec(got)  # MSG_CMSG_CLOEXEC: never leaks into a command we spawn
        assert os.readlink(f"/proc/self/fd/{got}") == f"/proc/{child.pid}/stat"
        os.close(got)
        assert fdpass.FdMessage().recv(a) == -3  # the sender is gone: end of file
    finally:
        os.close(a)
        if b >= 0:
            os.close(b)


def test_the_same_message_object_sends_again_and_each_fd_is_its_own() -> None:
    a, b = fdpass.socketpair()
    out, inn = fdpass.FdMessage(), fdpass.FdMessage()
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    try:
        assert out.send(b, r1) == 1 and out.send(b, r2) == 1
        g1, g2 = inn.recv(a), inn.recv(a)
        assert os.stat(g1).st_ino == os.stat(r1).st_ino and os.stat(g2).st_ino == os.stat(r2).st_ino
        os.write(w2, b"2")
        assert os.read(g2, 1) == b"2"
        for fd in (g1, g2):
            os.close(fd)
    finally:
        for fd in (a, b, r1, w1, r2, w2):
            os.close(fd)


def test_a_byte_without_a_descriptor_and_errors_are_told_apart() -> None:
    a, b = fdpass.socketpair()
    try:
        os.write(b, b"L")  # what a peer that never had the listener could send
        assert fdpass.FdMessage().recv(a) == -2
    finally:
        os.close(a)
        os.close(b)
    assert fdpass.FdMessage().recv(a) == -1 and errno_of() == 9  # EBADF: a closed socket
    r, w = os.pipe()
    try:
        assert fdpass.FdMessage().send(w, r) == -1 and errno_of() == 88  # ENOTSOCK
    finally:
        os.close(r)
        os.close(w)
