"""Round trip of one notified syscall: sysgate.notify's Supervisor (Python) beside C supervisors.

    python3 bench/bench_notify.py [--calls N] [--threads T] [--rounds R]

A C target (compiled here with gcc) installs a filter that returns USER_NOTIF for ``getppid``,
hands the listener out over fd 3, and times each ``getppid`` (clock_gettime around the call:
the full target -> supervisor -> target round trip). The supervisor answers with a value.
Four supervisors serve the same target program, in the same run, rounds interleaved (so each
sees the same load; the load average is printed):

- ``C, poll + RECV + SEND``: the floor as a plain C supervisor writes it, SYNC_WAKE_UP set
  where the kernel has it;
- ``C, blocking RECV + SEND``: the same without poll (Linux 6.6+ ends a blocked RECV when the
  last target exits), the loop sysgate.notify uses there;
- ``sysgate.notify, Return(1)``: :class:`sysgate.notify.Supervisor` with the constant answer
  ``{"getppid": Return(1)}`` (served from a table, no Python handler call);
- ``sysgate.notify, handler``: the same with a handler ``lambda call: Return(1)`` (a Call is
  built and the handler called, as for any decision that needs code).

Printed: median round trip (µs) over ``R`` rounds (each round's median of N calls), throughput
with T target threads calling at once (notifications/s: the supervisor answers them one by one,
so this is its service rate with a queue that never runs dry), and the ratio to the first C
floor; once with the processes free to run on any CPU and once pinned to one CPU (where
SYNC_WAKE_UP's same-CPU hand-over applies). Targets (issue 15): median <= 10 µs, >= 100k/s.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

TARGET_C = r"""
#define _GNU_SOURCE
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <linux/audit.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static long calls;
static double *lat;
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return (x > y) - (x < y); }
static void *worker(void *a) { (void)a; for (long i = 0; i < calls; i++) syscall(SYS_getppid); return NULL; }

int main(int argc, char **argv) {
    calls = atol(argv[1]);
    int threads = atoi(argv[2]);
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {4, f};
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    int lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (lfd < 0) { perror("seccomp"); return 1; }
    char cbuf[CMSG_SPACE(sizeof(int))] = {0};
    char b = 'L';
    struct iovec io = {&b, 1};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET; c->cmsg_type = SCM_RIGHTS; c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &lfd, sizeof(int));
    int out = atoi(argv[3]);
    if (sendmsg(out, &m, 0) < 0) { perror("sendmsg"); return 1; }
    close(lfd); close(out);
    for (int i = 0; i < 2000; i++) syscall(SYS_getppid);  /* warm up */
    lat = malloc(sizeof(double) * calls);
    for (long i = 0; i < calls; i++) {
        double t0 = now();
        long r = syscall(SYS_getppid);
        lat[i] = now() - t0;
        if (r != 1) { fprintf(stderr, "getppid returned %ld\n", r); return 1; }
    }
    qsort(lat, calls, sizeof(double), cmp);
    pthread_t t[64];
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    double el = now() - t0;
    printf("%.3f %.0f\n", lat[calls / 2], threads * calls / (el / 1e6));
    return 0;
}
"""

SUPERVISOR_C = r"""
#define _GNU_SOURCE
#include <linux/seccomp.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP 1
#endif
int main(int argc, char **argv) {
    char b, cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec io = {&b, 1};
    struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    if (recvmsg(atoi(argv[1]), &m, 0) <= 0) return 1;
    int fd;
    memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
    int sync = ioctl(fd, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, 0) == 0;
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    struct pollfd p = {fd, POLLIN, 0};
    int block = argc > 2 && argv[2][0] == 'b';  /* RECV blocks itself (6.6+ returns ENOENT on hang-up) */
    for (;;) {
        if (!block) {
            if (poll(&p, 1, -1) < 0) continue;
            if (!(p.revents & POLLIN)) break;
        }
        memset(&req, 0, sizeof req);
        if (ioctl(fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
            if (block && errno == ENOENT && poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) break;
            continue;
        }
        resp.id = req.id; resp.val = 1; resp.error = 0; resp.flags = 0;
        ioctl(fd, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    }
    fprintf(stderr, "%d\n", sync);
    return 0;
}
"""


def build(tmp: str) -> tuple[str, str]:
    gcc = shutil.which("gcc")
    if gcc is None:
        sys.exit("bench_notify: needs gcc for the target and the C supervisor")
    out = []
    for name, src, extra in (("target", TARGET_C, ["-pthread"]), ("supervisor", SUPERVISOR_C, [])):
        c = os.path.join(tmp, name + ".c")
        with open(c, "w") as f:
            f.write(src)
        exe = os.path.join(tmp, name)
        subprocess.run([gcc, "-O2", "-o", exe, c, *extra], check=True)
        out.append(exe)
    return out[0], out[1]


def _target(exe: str, calls: int, threads: int, sock: socket.socket, pin: str | None) -> subprocess.Popen:
    cmd = [exe, str(calls), str(threads), str(sock.fileno())]
    if pin:
        cmd = ["taskset", "-c", pin, *cmd]
    return subprocess.Popen(cmd, pass_fds=(sock.fileno(),), stdout=subprocess.PIPE)


def round_c(target: str, sup: str, calls: int, threads: int, pin: str | None, mode: str) -> tuple[float, float]:
    a, b = socket.socketpair()
    cmd = [sup, str(a.fileno()), mode] if not pin else ["taskset", "-c", pin, sup, str(a.fileno()), mode]
    s = subprocess.Popen(cmd, pass_fds=(a.fileno(),), stderr=subprocess.DEVNULL)
    t = _target(target, calls, threads, b, pin)
    a.close()
    b.close()
    out, _ = t.communicate(timeout=300)
    s.wait(timeout=30)
    med, tput = out.split()
    return float(med), float(tput)


def round_py(target: str, calls: int, threads: int, pin: str | None, constant: bool) -> tuple[float, float, bool]:
    from sysgate.notify import Return, Supervisor

    a, b = socket.socketpair()
    old = os.sched_getaffinity(0)
    if pin:
        os.sched_setaffinity(0, {int(pin)})
    try:
        t = _target(target, calls, threads, b, pin)
        b.close()
        _, fds, _, _ = socket.recv_fds(a, 1, 1)
        a.close()
        one = Return(1)
        sup = Supervisor(fds[0], {"getppid": one if constant else (lambda c: one)})
        sup.serve()  # bounded by the target, which exits (the loop returns on the hang-up)
        sync = sup.sync_wakeup
        sup.close()
        out, _ = t.communicate(timeout=300)
    finally:
        os.sched_setaffinity(0, old)
    med, tput = out.split()
    return float(med), float(tput), sync


SUPERVISORS = (
    ("C, poll + RECV + SEND", lambda t, s, a, pin: round_c(t, s, a.calls, a.threads, pin, "poll")),
    ("C, blocking RECV + SEND", lambda t, s, a, pin: round_c(t, s, a.calls, a.threads, pin, "block")),
    ("sysgate.notify, Return(1)", lambda t, s, a, pin: round_py(t, a.calls, a.threads, pin, True)),
    ("sysgate.notify, handler", lambda t, s, a, pin: round_py(t, a.calls, a.threads, pin, False)),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=20000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        target, sup = build(tmp)
        for label, pin in (("any CPU", None), ("one CPU", "0")):
            res: dict[str, list[tuple]] = {name: [] for name, _ in SUPERVISORS}
            for _ in range(args.rounds):  # interleaved: every supervisor sees the same load
                for name, fn in SUPERVISORS:
                    res[name].append(fn(target, sup, args, pin))
            load = os.getloadavg()[0]
            sync = res[SUPERVISORS[2][0]][0][2]
            print(f"[{label}] SYNC_WAKE_UP: {'yes' if sync else 'no'}; {args.rounds} rounds x {args.calls} calls "
                  f"(medians); throughput with {args.threads} target threads; load average {load:.2f}")
            floor = statistics.median(x[0] for x in res[SUPERVISORS[0][0]])
            for name, _ in SUPERVISORS:
                m = statistics.median(x[0] for x in res[name])
                t = statistics.median(x[1] for x in res[name])
                print(f"  {name:27} median round trip {m:7.2f} us (x{m / floor:.2f})   {t:10,.0f} notifications/s")
            print("  targets: <= 10 us, >= 100,000/s")


if __name__ == "__main__":
    main()
