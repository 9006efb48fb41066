"""libseccomp's pseudo syscall numbers (``__PNR_*``), part of its public API.

libseccomp resolves a syscall name that an architecture lacks to a negative "pseudo"
number, and ``resolve_syscall()`` returns it, so the values must be libseccomp's own:
they come from libseccomp ``include/seccomp-syscalls.h`` (LGPL-2.1; these are interface
constants). -101..-120 are the socketcall(2) calls and -201..-224 the ipc(2) calls, which
the multiplexing architectures rewrite; the rest (-10001 and below) name calls that are
simply absent on some architecture.

The last block holds names that syscalls.csv marks as missing somewhere but whose upstream
value could not be checked here; sysgate gives them numbers after the last known one.
"""
from __future__ import annotations

__all__ = ["PNR", "SOCKET_CALLS", "IPC_CALLS"]

#: socketcall(2) sub-calls in ``SYS_*`` order: the pseudo number is ``-(100 + call)``.
SOCKET_CALLS: tuple[str, ...] = (
    "socket", "bind", "connect", "listen", "accept", "getsockname", "getpeername", "socketpair",
    "send", "recv", "sendto", "recvfrom", "shutdown", "setsockopt", "getsockopt", "sendmsg", "recvmsg",
    "accept4", "recvmmsg", "sendmmsg",
)

#: ipc(2) sub-calls and their ``call`` numbers: the pseudo number is ``-(200 + call)``.
IPC_CALLS: dict[str, int] = {
    "semop": 1, "semget": 2, "semctl": 3, "semtimedop": 4, "msgsnd": 11, "msgrcv": 12, "msgget": 13,
    "msgctl": 14, "shmat": 21, "shmdt": 22, "shmget": 23, "shmctl": 24,
}

_SINGLE = """
arch_prctl bdflush break chown32 epoll_ctl_old epoll_wait_old fadvise64_64 fchown32 fcntl64 fstat64
fstatat64 fstatfs64 ftime ftruncate64 getegid32 geteuid32 getgid32 getgroups32 getresgid32 getresuid32
getuid32 gtty idle ipc lchown32 _llseek lock lstat64 mmap2 mpx newfstatat _newselect nice oldfstat
oldlstat oldolduname oldstat olduname prof profil readdir security sendfile64 setfsgid32 setfsuid32
setgid32 setgroups32 setregid32 setresgid32 setresuid32 setreuid32 setuid32 sgetmask sigaction signal
sigpending sigprocmask sigreturn sigsuspend socketcall ssetmask stat64 statfs64 stime stty truncate64
tuxcall ugetrlimit ulimit umount vm86 vm86old waitpid create_module get_kernel_syms get_thread_area
nfsservctl query_module set_thread_area _sysctl uselib vserver arm_fadvise64_64 arm_sync_file_range
"""
# From -10086 on the header skips numbers; listed as explicit pairs.
_SPARSE = """
pciconfig_iobase=10086 pciconfig_read=10087 pciconfig_write=10088 sync_file_range2=10089 syscall=10090
afs_syscall=10091 fadvise64=10092 getpmsg=10093 ioperm=10094 iopl=10095 migrate_pages=10097
modify_ldt=10098 putpmsg=10099 sync_file_range=10100 select=10101 vfork=10102 cachectl=10103
cacheflush=10104 sysmips=10106 timerfd=10107 time=10108 getrandom=10109 memfd_create=10110
kexec_file_load=10111 sysfs=10145 oldwait4=10146 access=10147 alarm=10148 chmod=10149 chown=10150
creat=10151 dup2=10152 epoll_create=10153 epoll_wait=10154 eventfd=10155 fork=10156 futimesat=10157
getdents=10158 getpgrp=10159 inotify_init=10160 lchown=10161 link=10162 lstat=10163 mkdir=10164
mknod=10165 open=10166 pause=10167 pipe=10168 poll=10169 readlink=10170 rename=10171 rmdir=10172
signalfd=10173 stat=10174 symlink=10175 unlink=10176 ustat=10177 utime=10178 utimes=10179
getrlimit=10180 mmap=10181 breakpoint=10182 set_tls=10183 usr26=10184 usr32=10185 multiplexer=10186
rtas=10187 spu_create=10188 spu_run=10189 swapcontext=10190 sys_debug_setcontext=10191
switch_endian=10191 get_mempolicy=10192 move_pages=10193 mbind=10194 set_mempolicy=10195
s390_runtime_instr=10196 s390_pci_mmio_read=10197 s390_pci_mmio_write=10198 membarrier=10199
userfaultfd=10200 pkey_mprotect=10201 pkey_alloc=10202 pkey_free=10203 get_tls=10204
s390_guarded_storage=10205 s390_sthyi=10206 subpage_prot=10207 statx=10208 io_pgetevents=10209
rseq=10210 setrlimit=10211 clock_adjtime64=10212 clock_getres_time64=10213 clock_gettime64=10214
clock_nanosleep_time64=10215 clock_settime64=10216 clone3=10217 fsconfig=10218 fsmount=10219
fsopen=10220 fspick=10221 futex_time64=10222 io_pgetevents_time64=10223 move_mount=10224
mq_timedreceive_time64=10225 mq_timedsend_time64=10226 open_tree=10227 pidfd_open=10228
pidfd_send_signal=10229 ppoll_time64=10230 pselect6_time64=10231 recvmmsg_time64=10232
rt_sigtimedwait_time64=10233 sched_rr_get_interval_time64=10234 semtimedop_time64=10235
timer_gettime64=10236 timer_settime64=10237 timerfd_gettime64=10238 timerfd_settime64=10239
utimensat_time64=10240 ppoll=10241 renameat=10242 riscv_flush_icache=10243 memfd_secret=10244 map_shadow_stack=10245
"""
# Not verified against an upstream header (see the module docstring).
_UNVERIFIED = "atomic_barrier atomic_cmpxchg_32 getpagesize riscv_hwprobe uprobe uretprobe listns rseq_slice_yield"


def _build() -> dict[str, int]:
    pnr: dict[str, int] = {name: -(101 + i) for i, name in enumerate(SOCKET_CALLS)}
    pnr.update({name: -(200 + call) for name, call in IPC_CALLS.items()})
    for i, name in enumerate(_SINGLE.split()):
        pnr[name] = -(10001 + i)
    for item in _SPARSE.split():
        name, _, value = item.partition("=")
        pnr[name] = -int(value)
    for i, name in enumerate(_UNVERIFIED.split()):
        pnr.setdefault(name, -(10246 + i))
    return pnr


#: name -> pseudo syscall number.
PNR: dict[str, int] = _build()
