"""The kernel interface: raw syscalls, seccomp(2), user notification and ptrace, via ctypes only.

Submodules (import the one you need; nothing is imported here so the CLI stays fast):

- :mod:`sysgate.kernel.syscall`: ``syscall(nr, *args)`` over libc, errno -> :class:`OSError`.
- :mod:`sysgate.kernel.seccomp`: ``install()`` a filter, ``features()`` of the running kernel.
- :mod:`sysgate.kernel.notify`: ``SECCOMP_RET_USER_NOTIF`` supervisor side (receive / respond / add_fd).
- :mod:`sysgate.kernel.memory`: read another process's memory.
- :mod:`sysgate.kernel.ptrace`: dump a process's filters, trace the filters a command installs.

Syscall numbers come from :func:`sysgate.arch.native`, so the code is not tied to x86_64; the
register layouts ptrace needs exist for x86_64 and aarch64 only.
"""
