"""The kernel interface, one layer for all of sysgate (the jail, compat, inspect, notify, the recorder).

Submodules (import the one you need; nothing is imported here so the CLI stays fast):

- :mod:`sysgate.kernel.syscall`: the one libc handle (and its GIL-keeping view), ``syscall(2)``
  (raising :class:`OSError`, or raw for the jail's init), ``prctl(2)``, ``seccomp(2)`` and
  ``struct sock_fprog``, :data:`~sysgate.kernel.syscall.NR` (the host's syscall table).
- :mod:`sysgate.kernel.mount`: ``mount``/``umount2``, the new mount API, ``openat2``.
- :mod:`sysgate.kernel.process`: glibc's ``clone()``, namespaces, stacks, ``pidfd_open``.
- :mod:`sysgate.kernel.fdpass`: a unix socketpair and one descriptor sent over it (``SCM_RIGHTS``).
- :mod:`sysgate.kernel.seccomp`: ``install()`` a filter, ``features()`` of the running kernel.
- :mod:`sysgate.kernel.notify`: ``SECCOMP_RET_USER_NOTIF`` supervisor side (receive / respond / add_fd).
- :mod:`sysgate.kernel.memory`: read another process's memory.
- :mod:`sysgate.kernel.ptrace`: dump a process's filters, trace the filters a command installs.

Syscall numbers come from :func:`sysgate.arch.native`'s table, never from literals, so the code is
not tied to x86_64; the register layouts ptrace needs exist for x86_64 and aarch64 only. The jail's
run path imports only ``syscall``, ``mount``, ``process`` and ``fdpass`` (ctypes through :mod:`sysgate._startup`).
Landlock's and capabilities' structures live with their single users (:mod:`sysgate.jail.landlock`,
:mod:`sysgate.jail.caps`) and call through :mod:`.syscall`.
"""
