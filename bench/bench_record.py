#!/usr/bin/env python3
"""Slowdown of a workload while ``sysgate record`` watches it, next to its peers, same run.

    python3 bench/bench_record.py [-n 5] [--json] [--only fixed|du|python]

Workloads: ``true`` (``fixed``: what each contender costs around a command that does nothing),
``du -s /usr`` (a syscall storm: one newfstatat/getdents64 per file) and a Python import-heavy
start (``python3 -c "import json, decimal, sqlite3, email..., asyncio, ..."``).
Contenders, each run once per round in rotating order so they share the machine's noise:

* ``bare``: the workload alone (posix_spawn + waitpid);
* ``tracefs``: ``sysgate.record(argv, method="tracefs")`` in this interpreter, start to profile
  (instance set-up included; its removal runs in the background, waited for outside the
  timed region), root only;
* ``cli``: the whole ``sysgate record -q -o FILE -- CMD`` process (interpreter start, imports,
  recording, profile written), root only: what a user waits for;
* ``ptrace``: ``sysgate.record(argv, method="ptrace")`` (the unprivileged fallback);
* ``strace``: ``strace -f -qq -o /dev/null`` (what people build profiles from by hand);
* ``bpftrace``: a per-syscall counter (``raw_syscalls:sys_enter /pid == cpid/``, top process
  only) under ``bpftrace -c``, run in a private mount namespace with tracefs mounted, when
  bpftrace is installed and we are root.

For the API recorders, ``(cmd)`` is the command's own run time as the recorder saw it (release
to exit), without the recorder's set-up and hand-over. Printed per contender: the median wall
time and its slowdown (median / bare median), and the median CPU time: the processes it
reaped (the command, strace, the CLI and its command) plus, for the API recorders, the
recorder's own (this process), also shown apart ("recorder cpu"), with the wall time of the
trace instance's removal (in the background, not in the timed region). The load average is
printed before and after: on a shared machine the wall-time ratios move with it, the CPU
times much less.

Targets (issue 14): tracefs <= 1.5x (du) and <= 1.2x (python); ptrace <= strace -f.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path.insert(0, SRC)

from sysgate.recorder import (
    record,  # noqa: E402
    tracefs,  # noqa: E402
)

PY = os.path.realpath(sys.executable)
WORKLOADS = {
    "fixed": ["true"],  # the recorders' fixed costs: set-up, hand-over, profile, on a command doing nothing
    "du": ["du", "-s", "/usr"],
    "python": [PY, "-c", "import json, decimal, sqlite3, csv, email.message, email.parser, http.client, asyncio, "
                         "unittest, xml.dom.minidom, argparse, logging, tarfile, zipfile, pathlib, typing, "
                         "dataclasses, inspect, ssl"],
}
# The CLI as a user runs it, importing this tree's sysgate without PYTHONPATH (which would
# reach the recorded Python's environment and change its start-up).
CLI = [PY, "-c", f"import sys; sys.path.insert(0, {SRC!r}); from sysgate.cli import main; sys.exit(main())"]


def _cpu(who: int) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def _spawn(argv: list[str]) -> float:
    exe = shutil.which(argv[0]) or argv[0]
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        pid = os.posix_spawn(exe, argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1),
                                                                  (os.POSIX_SPAWN_DUP2, null.fileno(), 2)])
        _, st = os.waitpid(pid, 0)
    dt = time.perf_counter() - t
    if st != 0:
        raise SystemExit(f"{argv[:3]} failed: status {st:#x}")
    return dt


WORKLOAD_TIMES: dict[str, list[float]] = {}
RECORDER_CPU: dict[str, list[float]] = {}


REMOVAL_TIMES: list[float] = []


def _recorded(argv: list[str], method: str) -> float:
    fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        t = time.perf_counter()
        _, report = record(argv, method=method)
        dt = time.perf_counter() - t
        t = time.perf_counter()
        tracefs.wait_cleanup()  # the instance's removal, in the background, must not overlap the next contender
        if method == "tracefs":
            REMOVAL_TIMES.append(time.perf_counter() - t)
    finally:
        os.dup2(fd, 1)
        os.close(fd)
        os.close(null)
    if report.returncode != 0:
        raise SystemExit(f"{argv[:3]} under {method}: status {report.returncode}")
    WORKLOAD_TIMES.setdefault(method, []).append(report.elapsed)
    return dt


def _bpftrace(argv: list[str]) -> list[str]:
    import shlex

    argv = [shutil.which(argv[0]) or argv[0], *argv[1:]]  # bpftrace -c wants one path, not a name
    prog = "tracepoint:raw_syscalls:sys_enter /pid == cpid/ { @[args->id] = count(); }"
    inner = (f"mount -t tracefs tracefs /sys/kernel/tracing && exec bpftrace -q -e {shlex.quote(prog)} "
             f"-c {shlex.quote(shlex.join(argv))}")
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", inner]


def contenders(argv: list[str], out_file: str) -> dict:
    out = {"bare": lambda: _spawn(argv)}
    if tracefs.available() is None:
        out["tracefs"] = lambda: _recorded(argv, "tracefs")
        out["cli"] = lambda: _spawn([*CLI, "record", "-q", "-o", out_file, "--", *argv])
    out["ptrace"] = lambda: _recorded(argv, "ptrace")
    if shutil.which("strace"):
        out["strace"] = lambda: _spawn(["strace", "-f", "-qq", "-o", "/dev/null", "--", *argv])
    if os.geteuid() == 0 and shutil.which("bpftrace") and shutil.which("unshare"):
        probe = subprocess.run(_bpftrace([shutil.which("true") or "/bin/true"]), capture_output=True, check=False)
        if probe.returncode == 0:
            out["bpftrace"] = lambda: _spawn(_bpftrace(argv))
    return out


def _load() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=[*WORKLOADS, "fixed"])
    a = ap.parse_args()
    results: dict = {"load_before": _load()}
    tmp = tempfile.mkdtemp(prefix="bench-record-")
    try:
        for wname, argv in WORKLOADS.items():
            if a.only and wname != a.only:
                continue
            cs = contenders(argv, os.path.join(tmp, "profile.json"))
            WORKLOAD_TIMES.clear()
            RECORDER_CPU.clear()
            REMOVAL_TIMES.clear()
            _spawn(argv)  # warm the page cache
            times: dict[str, list[float]] = {k: [] for k in cs}
            cpus: dict[str, list[float]] = {k: [] for k in cs}
            names = list(cs)
            for i in range(a.n):
                for k in names[i % len(names):] + names[:i % len(names)]:
                    c0, s0 = _cpu(resource.RUSAGE_CHILDREN), _cpu(resource.RUSAGE_SELF)
                    times[k].append(cs[k]())
                    cpu = _cpu(resource.RUSAGE_CHILDREN) - c0
                    if k in ("tracefs", "ptrace"):  # the recorder itself runs in this process
                        cpu += _cpu(resource.RUSAGE_SELF) - s0
                    cpus[k].append(cpu)
                    if k in ("tracefs", "ptrace"):
                        RECORDER_CPU.setdefault(k, []).append(_cpu(resource.RUSAGE_SELF) - s0)
            med = {k: statistics.median(v) for k, v in times.items()}
            res = results[wname] = {}
            for k, m in med.items():
                res[k] = {"median_s": round(m, 4), "slowdown": round(m / med["bare"], 2),
                          "cpu_s": round(statistics.median(cpus[k]), 4)}
            for k, v in WORKLOAD_TIMES.items():  # the command's own time under the recorder, set-up excluded
                m = statistics.median(v)
                res[k + " (cmd)"] = {"median_s": round(m, 4), "slowdown": round(m / med["bare"], 2)}
            res["parts"] = {f"{k} recorder cpu_ms": round(statistics.median(v) * 1000, 1)
                            for k, v in RECORDER_CPU.items()}
            if REMOVAL_TIMES:  # waited for outside the timed region (a thread in the API, detached in the CLI)
                res["parts"]["tracefs instance removal_ms"] = round(statistics.median(REMOVAL_TIMES) * 1000, 1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_after"] = _load()
    if a.json:
        print(json.dumps(results, indent=1))
        return
    print(f"load average before: {results['load_before']}, after: {results['load_after']}; {a.n} rounds, medians")
    for wname, argv in WORKLOADS.items():
        if wname not in results:
            continue
        print(f"{wname}: {' '.join(argv)[:70]}")
        for k, r in results[wname].items():
            if k == "parts":
                print("  " + ", ".join(f"{n} {v}" for n, v in r.items()))
                continue
            cpu = f"  cpu {r['cpu_s'] * 1000:8.1f} ms" if "cpu_s" in r else ""
            print(f"  {k:14s} {r['median_s'] * 1000:9.1f} ms  {r['slowdown']:6.2f}x{cpu}")


if __name__ == "__main__":
    main()
