"""Escape probes, run *inside* a sandbox by tests/test_jail_escape.py (stdlib only, any python3).

Usage: python3 jail_probe.py HOST_PID PORT [NAME ...]. Each probe runs in a forked child so that a
seccomp kill takes only that child; the result for each is printed as one JSON object:
{"name": {"errno": "EPERM"} | {"signal": 31} | {"ok": value}}. Besides the named probes,
``read:PATH``, ``write:PATH`` and ``list:PATH`` read a file, create one, or list a directory;
``connect_unix:PATH`` connects to a pathname unix socket.

Probes that would harm the host if they got through use arguments that make them harmless:
reboot with a bad magic, mount over the sandbox's own /tmp, swapon of a missing file, kexec and
init_module with empty images, clock_settime to the current time, acct of a missing file.
"""
import ctypes
import errno
import json
import mmap
import os
import socket
import sys
import time

libc = ctypes.CDLL(None, use_errno=True)
_sys = libc.syscall
_sys.restype = ctypes.c_long
L = ctypes.c_long

NR = {  # x86_64
    "mount": 165, "umount2": 166, "pivot_root": 155, "setns": 308, "unshare": 272, "ptrace": 101, "kill": 62,
    "keyctl": 250, "add_key": 248, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
    "io_uring_setup": 425, "kexec_load": 246, "init_module": 175, "reboot": 169, "swapon": 167,
    "open_by_handle_at": 304, "clock_settime": 227, "acct": 163, "clone": 56, "chroot": 161,
}
CLONE_NEWUSER = 0x10000000


def sc(name, *args):
    r = _sys(L(NR[name]), *[L(a) if isinstance(a, int) else a for a in args])
    if r == -1:
        raise OSError(ctypes.get_errno(), name)
    return r


def int80(nr, a=0, b=0, c=0):
    """An i386 syscall through int 0x80 (eax=nr, ebx, ecx, edx); returns the raw result."""
    code = (b"\x53"                                   # push rbx
            + b"\xb8" + nr.to_bytes(4, "little")      # mov eax, nr
            + b"\xbb" + a.to_bytes(4, "little")       # mov ebx, a
            + b"\xb9" + b.to_bytes(4, "little")       # mov ecx, b
            + b"\xba" + c.to_bytes(4, "little")       # mov edx, c
            + b"\xcd\x80"                             # int 0x80
            + b"\x5b\xc3")                            # pop rbx; ret
    m = mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    m.write(code)
    fn = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(m)))
    r = fn()
    if r < 0:
        raise OSError(-r, "int80")
    return r


def probes(host_pid, port):
    p = {}
    p["mount"] = lambda: sc("mount", b"none", b"/tmp", b"tmpfs", 0, None)
    p["umount2"] = lambda: sc("umount2", b"/tmp", 0)
    p["pivot_root"] = lambda: sc("pivot_root", b"/tmp", b"/tmp")
    p["chroot"] = lambda: sc("chroot", b"/tmp")

    def setns():
        fd = os.open("/proc/self/ns/mnt", os.O_RDONLY)
        return sc("setns", fd, 0)
    p["setns"] = setns
    p["unshare_user"] = lambda: sc("unshare", CLONE_NEWUSER)
    p["clone_newuser"] = lambda: sc("clone", CLONE_NEWUSER | 17, 0, 0, 0, 0)
    p["ptrace_host"] = lambda: sc("ptrace", 16, host_pid, 0, 0)  # PTRACE_ATTACH
    p["kill_host"] = lambda: sc("kill", host_pid, 0)
    p["keyctl"] = lambda: sc("keyctl", 0, -3, 0)  # KEYCTL_GET_KEYRING_ID of the session keyring
    p["add_key"] = lambda: sc("add_key", b"user", b"probe", b"x", 1, -3)
    p["bpf"] = lambda: sc("bpf", 0, None, 0)  # BPF_MAP_CREATE with a NULL attr
    p["perf_event_open"] = lambda: sc("perf_event_open", None, 0, -1, -1, 0)
    p["userfaultfd"] = lambda: sc("userfaultfd", 0)
    p["io_uring_setup"] = lambda: sc("io_uring_setup", 1, ctypes.create_string_buffer(120))
    p["kexec_load"] = lambda: sc("kexec_load", 0, 0, None, 0)
    p["init_module"] = lambda: sc("init_module", None, 0, b"")
    p["reboot"] = lambda: sc("reboot", 0, 0, 0, None)  # bad magic: EINVAL even if it got through
    p["swapon"] = lambda: sc("swapon", b"/nonexistent-swap", 0)
    p["open_by_handle_at"] = lambda: sc("open_by_handle_at", -100, ctypes.create_string_buffer(
        (8).to_bytes(4, sys.byteorder), 128), 0)  # handle_bytes 8: the capability check comes next

    def clock_settime():
        ts = (ctypes.c_long * 2)(int(time.time()), 0)
        return sc("clock_settime", 0, ts)
    p["clock_settime"] = clock_settime
    p["acct"] = lambda: sc("acct", b"/nonexistent-acct")
    p["i386_reboot"] = lambda: int80(88, 0, 0, 0)          # i386 reboot, bad magic
    p["i386_getpid"] = lambda: int80(20)
    p["x32_reboot"] = lambda: sc_raw(0x40000000 | 169)
    p["x32_getpid"] = lambda: sc_raw(0x40000000 | 39)

    def i386_socket(family):
        """socketcall(SYS_SOCKET, {family, SOCK_STREAM, 0}) through int 0x80: the arguments sit
        behind a pointer, which must be below 4 GiB (MAP_32BIT)."""
        def f():
            libc.mmap.restype = ctypes.c_void_p
            libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                  ctypes.c_long]
            page = libc.mmap(None, 4096, mmap.PROT_READ | mmap.PROT_WRITE, 0x22 | 0x40, -1, 0)
            ctypes.memmove(page, (ctypes.c_uint32 * 3)(family, socket.SOCK_STREAM, 0), 12)
            return int80(102, 1, page, 0)
        return f
    p["i386_socket_vsock"] = i386_socket(socket.AF_VSOCK)
    # x32 handlers read the int family from the low word: 0x1_00000028 is AF_VSOCK to them
    p["x32_socket_vsock"] = lambda: sc_raw(0x40000000 | 41, (1 << 32) | socket.AF_VSOCK, socket.SOCK_STREAM, 0)

    def connect_host():
        s = socket.socket()
        s.settimeout(2)
        s.connect(("127.0.0.1", port))
        return "connected"
    p["connect_host"] = connect_host

    def write_file(path):
        def f():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, b"x")
            return "written"
        return f
    p["write_etc"] = write_file("/etc/sysgate-probe")
    p["write_root"] = write_file("/sysgate-probe")
    p["write_tmp"] = write_file("/tmp/sysgate-probe")
    p["write_core_pattern"] = write_file("/proc/sys/kernel/core_pattern")
    p["write_cgroup"] = write_file("/sys/fs/cgroup/pids/cgroup.procs")
    # The sandbox's init (PID 1) may share the caller's memory: nothing inside may trace or read it.
    p["ptrace_init"] = lambda: sc("ptrace", 16, 1, 0, 0)  # PTRACE_ATTACH
    p["proc1_mem"] = lambda: os.open("/proc/1/mem", os.O_RDONLY)

    def read_file(path):
        def f():
            with open(path, "rb") as fh:
                return fh.read(64).decode("latin-1")
        return f

    # The hardening overlay of the built-in profiles (fd 0 may be anything: /dev/null gives ENOTTY
    # when nothing refuses the call first). cmd is 32-bit in the kernel: the upper half is ignored.
    def ioctl(cmd):
        def f():
            fd = os.open("/dev/null", os.O_RDONLY)
            return libc_call("ioctl", fd, cmd, ctypes.c_char_p(b"x"))
        return f
    p["tiocsti"] = ioctl(0x5412)
    p["tiocsti_hi"] = ioctl(0xDEAD00005412)
    p["tioclinux"] = ioctl(0x541C)

    def setlease():
        fd = os.open("/etc/hostname", os.O_RDONLY)
        return sc_raw(72, fd, 1024, 0)  # fcntl(fd, F_SETLEASE, F_RDLCK)
    p["setlease"] = setlease

    def connect_unix(path):
        def f():
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(2)
            s.connect(path)
            return "connected"
        return f

    for name in list(_paths):
        kind, _, path = name.partition(":")
        p[name] = {"read": read_file, "write": write_file, "list": lambda q: lambda: sorted(os.listdir(q)),
                   "connect_unix": connect_unix}[kind](path)
    return p


_paths = []  # read:/write:/list: probes named on the command line


def libc_call(name, *args):
    f = getattr(libc, name)
    r = f(*[L(a) if isinstance(a, int) else a for a in args])
    if r == -1:
        raise OSError(ctypes.get_errno(), name)
    return r


def sc_raw(nr, *args):
    r = _sys(L(nr), *[L(a) for a in args])
    if r == -1:
        raise OSError(ctypes.get_errno(), str(nr))
    return r


def main():
    host_pid, port = int(sys.argv[1]), int(sys.argv[2])
    _paths.extend(n for n in sys.argv[3:] if n.partition(":")[0] in ("read", "write", "list", "connect_unix"))
    ps = probes(host_pid, port)
    names = sys.argv[3:] or list(ps)
    out = {}
    for name in names:
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            try:
                res = {"ok": ps[name]()}
            except OSError as e:
                res = {"errno": errno.errorcode.get(e.errno, str(e.errno))}
            except Exception as e:  # noqa: BLE001
                res = {"error": repr(e)}
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        os.close(w)
        data = b""
        while True:
            b = os.read(r, 4096)
            if not b:
                break
            data += b
        os.close(r)
        _, st = os.waitpid(pid, 0)
        if os.WIFSIGNALED(st):
            out[name] = {"signal": os.WTERMSIG(st)}
        else:
            out[name] = json.loads(data or b"{}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
