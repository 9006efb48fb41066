"""A small program written against libseccomp's Python bindings, the way such programs are.

It imports ``seccomp`` and nothing of sysgate: ``test_compat_live.py`` runs it unchanged with
Debian's bindings (``/usr/bin/python3``) and with sysgate's module made to answer ``import
seccomp`` (the shim directory on ``PYTHONPATH``, and the import hook), and the output must be the
same. The program denies a few things to itself, prints its filter as PFC, loads it and reports
what then works and what fails, in itself and in a program it runs. Standard library only.
"""
import errno
import os
import shutil
import socket
import subprocess
import sys
import tempfile

from seccomp import *  # noqa: F403 - how the bindings' own documentation uses them


def build_filter() -> "SyscallFilter":  # noqa: F405
    f = SyscallFilter(defaction=ALLOW)  # noqa: F405
    f.add_arch(Arch.X86)  # noqa: F405 - 32-bit code on this machine is held to the same rules
    for name in ("mkdir", "mkdirat"):
        f.add_rule(ERRNO(errno.EPERM), name)  # noqa: F405
    for family in (socket.AF_INET, socket.AF_INET6):
        f.add_rule(ERRNO(errno.EACCES), "socket", Arg(0, EQ, family))  # noqa: F405
    # nothing opened for creating (O_CREAT), whatever the other flags
    f.add_rule(ERRNO(errno.EROFS), "openat", Arg(2, MASKED_EQ, os.O_CREAT, os.O_CREAT))  # noqa: F405
    f.add_rule(ERRNO(errno.EROFS), "open", Arg(1, MASKED_EQ, os.O_CREAT, os.O_CREAT))  # noqa: F405
    f.add_rule(ERRNO(errno.EPERM), "ptrace")  # noqa: F405
    f.add_rule(KILL_PROCESS, "reboot")  # noqa: F405
    return f


def attempt(what: str, fn) -> None:
    try:
        fn()
        print(f"{what}: ok")
    except OSError as e:
        print(f"{what}: {errno.errorcode.get(e.errno, e.errno)}")


def main() -> int:
    work = tempfile.mkdtemp()
    existing = os.path.join(work, "existing")
    with open(existing, "w") as fh:
        fh.write("hello\n")
    f = build_filter()
    print(f"default action: {f.get_attr(Attr.ACT_DEFAULT):#x}, x86 too: {f.exist_arch(Arch.X86)}")  # noqa: F405
    sys.stdout.flush()
    f.export_pfc(sys.stdout)
    f.load()
    attempt("mkdir", lambda: os.mkdir(os.path.join(work, "new")))
    attempt("read existing file", lambda: open(existing).read())
    attempt("create file", lambda: open(os.path.join(work, "created"), "w"))
    attempt("append to existing file", lambda: open(existing, "a"))
    attempt("IPv4 socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close())
    attempt("IPv6 socket", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())
    attempt("unix socket", lambda: socket.socketpair()[0].close())
    # the filter is inherited by the programs this one runs
    r = subprocess.run(["mkdir", os.path.join(work, "by-child")], capture_output=True, text=True)
    print(f"mkdir(1) exit status: {r.returncode}, says: {r.stderr.strip().rsplit(': ', 1)[-1]}")
    r = subprocess.run(["cat", existing], capture_output=True, text=True)
    print(f"cat(1) exit status: {r.returncode}, prints: {r.stdout.strip()}")
    sys.stdout.flush()
    shutil.rmtree(work)
    print(f"cleaned up: {not os.path.exists(work)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
