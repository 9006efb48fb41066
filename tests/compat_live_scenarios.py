"""Load filters through ``import seccomp`` in forked children and report what real syscalls did.

Run as a script by ``test_compat_live.py`` twice: with Debian's libseccomp bindings under
``/usr/bin/python3``, and with sysgate's module (its shim directory on ``PYTHONPATH``). Prints one
JSON object: scenario name -> outcome, where an outcome records each syscall's result (return
value or ``-errno``) and how the child ended. Standard library only. The filters are loaded in
forked children only, never in this process.
"""
from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import signal
import socket
import sys

import seccomp as S

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
NR = {"getppid": 110, "getuid": 102, "dup": 32, "kill": 62, "socket": 41, "lseek": 8, "uname": 63,
      "getpid": 39, "getgid": 104, "close": 3, "fcntl": 72, "umask": 95}


def sys_(name: str, *args: int) -> int:
    r = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if r == -1 else r


# i386 syscalls from this 64-bit process through ``int 0x80`` (the kernel sees AUDIT_ARCH_I386):
# how the x86 part of a filter is tried on a real kernel.
I386 = {"getpid": 20, "socketcall": 102, "socket": 359, "dup": 41, "umask": 60, "close": 6}
_INT80_CODE = bytes([
    0x89, 0xF8,  # mov eax, edi      (nr)
    0x53,        # push rbx
    0x89, 0xF3,  # mov ebx, esi      (arg0)
    0x87, 0xD1,  # xchg ecx, edx     (ecx = arg1, edx = arg2)
    0xCD, 0x80,  # int 0x80
    0x5B,        # pop rbx
    0xC3,        # ret
])
_int80 = None


def i386_(name: str, *args: int) -> int:
    """An i386 syscall; returns what the kernel returned (-errno on failure)."""
    global _int80
    if _int80 is None:
        page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        page.write(_INT80_CODE)
        addr = ctypes.addressof(ctypes.c_char.from_buffer(page))
        proto = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32)
        _int80 = (page, proto(addr))
    a = [x & 0xFFFFFFFF for x in list(args) + [0] * (3 - len(args))]
    return _int80[1](I386[name], *a)


def call(spec) -> object:
    """One call of a scenario: ("name", args) on x86_64, ("i386:name", args) through int 0x80.
    A new file descriptor is reported as "fd" (its number differs between interpreters) and closed."""
    name, args = spec
    if name.startswith("i386:"):
        r = i386_(name[5:], *args)
        if r >= 0 and name[5:] in ("socket", "dup"):
            os.close(r)
            return "fd"
        if name == "i386:getpid" and r == os.getpid():
            return "pid"
        return r
    r = sys_(name, *args)
    if r >= 0 and name in ("socket", "dup"):
        os.close(r)
        return "fd"
    return r


def in_child(build, calls, setup=None) -> dict:
    """Fork; the child builds and loads the filter, makes ``calls`` and reports their results."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            f = build()
            f.load()
            out = [call(c) for c in calls]
            os.write(w, json.dumps(out).encode())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, json.dumps(f"{type(e).__name__}: {e}").encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
    return {"results": json.loads(data) if data else None, "signal": sig,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None}


def errno_rules():
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.ERRNO(errno.EACCES), "getppid")
    f.add_rule(S.ERRNO(errno.E2BIG), "dup", S.Arg(0, S.EQ, 1))
    f.add_rule(S.ERRNO(errno.EDOM), "kill", S.Arg(1, S.EQ, 0))
    f.add_rule(S.ERRNO(errno.EAFNOSUPPORT), "socket", S.Arg(0, S.EQ, socket.AF_INET))
    f.add_rule(S.ERRNO(errno.EIO), "lseek", S.Arg(1, S.GT, 1 << 40))
    f.add_rule(S.ERRNO(errno.ENOTTY), "fcntl", S.Arg(1, S.MASKED_EQ, 0xF0, 0x00), S.Arg(0, S.LE, 2))
    return f


ERRNO_CALLS = [("getppid", ()), ("dup", (1,)), ("dup", (2,)), ("kill", (0, 0)), ("kill", (0, signal.SIGCONT)),
               ("socket", (socket.AF_INET, socket.SOCK_DGRAM, 0)), ("lseek", (0, (1 << 41), 0)),
               ("lseek", (0, 5, 0)), ("fcntl", (1, 1)), ("fcntl", (5, 1)), ("fcntl", (1, 0x401))]


def allowlist():
    # default EPERM; what the child needs to report and exit is allowed
    f = S.SyscallFilter(S.ERRNO(errno.EPERM))
    for name in ("write", "exit_group", "exit", "rt_sigreturn", "brk", "mmap", "munmap", "madvise", "getppid",
                 "close", "getpid"):
        f.add_rule(S.ALLOW, name)
    f.add_rule(S.ALLOW, "umask", S.Arg(0, S.LT, 0o100))
    return f


ALLOW_CALLS = [("close", (-1,)), ("getuid", ()), ("getgid", ()), ("umask", (0o22,)), ("umask", (0o777,))]


def kill_process():
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.KILL_PROCESS, "uname")
    return f


def trap():
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.TRAP, "getgid")
    f.add_rule(S.ERRNO(errno.EBUSY), "getuid")
    return f


def trace_log():
    # TRACE with no tracer attached: the call fails with ENOSYS; LOG lets it through
    f = S.SyscallFilter(S.ALLOW)
    f.add_rule(S.TRACE(7), "getgid")
    f.add_rule(S.LOG, "getuid")
    return f


def kill_thread_default():
    f = S.SyscallFilter(S.KILL)
    f.add_rule(S.ALLOW, "write")
    f.add_rule(S.ALLOW, "getppid")
    return f


def bad_arch_only():
    # a filter for another arch only: every native call is a "bad arch"
    f = S.SyscallFilter(S.ALLOW)
    f.remove_arch(S.Arch.NATIVE)
    f.add_arch(S.Arch.AARCH64)
    f.set_attr(S.Attr.ACT_BADARCH, S.TRAP)
    return f


def foreign_only(rawrc: bool):
    def build():
        # big-endian code the kernel cannot take: load() fails, libseccomp-style
        f = S.SyscallFilter(S.ALLOW)
        f.remove_arch(S.Arch.NATIVE)
        f.add_arch(S.Arch.S390X)
        f.add_rule(S.ERRNO(1), "getuid")
        if rawrc:
            f.set_attr(S.Attr.API_SYSRAWRC, 1)
        return f
    return build


def i386_rules():
    # x86 (via int 0x80) next to x86_64: socket() becomes socketcall(SYS_SOCKET, ...), whose own
    # arg0 test is dropped, plus the direct socket call; x86 compares only the low 32 bits
    f = S.SyscallFilter(S.ALLOW)
    f.add_arch(S.Arch.X86)
    f.add_rule(S.ERRNO(errno.EAFNOSUPPORT), "socket", S.Arg(0, S.EQ, socket.AF_INET))
    f.add_rule(S.ERRNO(errno.E2BIG), "dup", S.Arg(0, S.EQ, (7 << 32) | 1))
    f.add_rule(S.ERRNO(errno.EDOM), "umask", S.Arg(0, S.GT, 1 << 32))
    return f


I386_CALLS = [("i386:socketcall", (1, 0)), ("i386:socketcall", (2, 0)),
              ("i386:socket", (socket.AF_INET, socket.SOCK_DGRAM, 0)),
              ("i386:socket", (socket.AF_UNIX, socket.SOCK_DGRAM, 0)), ("i386:dup", (1,)), ("i386:umask", (0o22,)),
              ("i386:getpid", ()), ("socket", (socket.AF_INET, socket.SOCK_DGRAM, 0)),
              ("socket", (socket.AF_UNIX, socket.SOCK_DGRAM, 0)), ("dup", (1,)), ("dup", ((7 << 32) | 1,)),
              ("umask", (0o22,)), ("umask", ((1 << 32) | 0o22,))]


def i386_bad_arch(action):
    def build():
        # x86_64 only: an i386 call is a bad arch
        f = S.SyscallFilter(S.ALLOW)
        f.add_rule(S.ERRNO(errno.EPERM), "getppid")
        if action is not None:
            f.set_attr(S.Attr.ACT_BADARCH, action)
        return f
    return build


def ia32_works() -> bool:
    """Whether this kernel runs i386 syscalls of 64-bit processes (probed without a filter)."""
    return i386_("getpid") == os.getpid()


def notify() -> dict:
    """A supervisor answers the notified calls of a process under the filter.

    libseccomp 2.5's ``receive_notify()`` takes no fd (it uses the listener of the filter this
    process loaded) and holds the GIL while it waits, so the supervisor is the process that
    loaded the filter, and the calls come from a child it forks afterwards (which inherits the
    filter). Everything runs in a forked child of this script.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            f = S.SyscallFilter(S.ALLOW)
            f.add_rule(S.NOTIFY, "getppid")
            f.add_rule(S.NOTIFY, "umask", S.Arg(0, S.EQ, 0o77))
            f.load()
            cr, cw = os.pipe()
            target = os.fork()
            if target == 0:
                out = [sys_("getppid"), sys_("getppid"), sys_("umask", 0o22), sys_("umask", 0o77)]
                os.write(cw, json.dumps(out).encode())
                os._exit(0)
            os.close(cw)
            seen = []
            for val, err in ((4242, 0), (0, -errno.EROFS), (7, 0)):
                n = f.receive_notify()
                seen.append([n.syscall, n.syscall_arch == S.system_arch(), n.pid == target,
                             n.syscall_args[0] if n.syscall == NR["umask"] else None, n.flags])
                f.respond_notify(S.NotificationResponse(n, val, err, 0))
            data = b""
            while chunk := os.read(cr, 65536):
                data += chunk
            os.waitpid(target, 0)
            report = {"results": json.loads(data), "seen": seen, "fd": f.get_notify_fd() >= 0}
            os.write(w, json.dumps(report).encode())
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            os.write(w, json.dumps(f"{type(e).__name__}: {e}").encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return {"child": json.loads(data) if data else None, "exit": os.WEXITSTATUS(status)}


def main() -> None:
    out = {
        "errno": in_child(errno_rules, ERRNO_CALLS),
        "allowlist": in_child(allowlist, ALLOW_CALLS),
        "kill_process": in_child(kill_process, [("getppid", ()), ("uname", (0,)), ("getppid", ())]),
        "trap": in_child(trap, [("getuid", ()), ("getgid", ())]),
        "trace_log": in_child(trace_log, [("getgid", ()), ("getuid", ())]),
        "kill_thread_default": in_child(kill_thread_default, [("getppid", ()), ("getuid", ())]),
        "bad_arch": in_child(bad_arch_only, [("getppid", ()), ("getuid", ())]),
        "load_error": in_child(foreign_only(False), [("getuid", ())]),
        "load_error_raw": in_child(foreign_only(True), [("getuid", ())]),
        "notify": notify(),
    }
    if ia32_works():
        out["i386"] = in_child(i386_rules, I386_CALLS)
        out["i386_bad_arch_kill"] = in_child(i386_bad_arch(None), [("getppid", ()), ("i386:getpid", ())])
        out["i386_bad_arch_errno"] = in_child(i386_bad_arch(S.ERRNO(errno.EXDEV)),
                                              [("getppid", ()), ("i386:getpid", ())])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
