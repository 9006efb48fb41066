#!/usr/bin/env python3
"""Slowdown of a workload while ``sysgate record`` watches it, next to strace -f, same run.

    python3 bench/bench_record.py [-n 5] [--json] [--only du|python]

Workloads: ``du -s /usr`` (a syscall storm: one newfstatat/getdents64 per file) and a Python
import-heavy start (``python3 -c "import json, decimal, sqlite3, email..., asyncio, ..."``).
Contenders, each run once per round in rotating order so they share the machine's noise:

* ``bare``: the workload alone (posix_spawn + waitpid);
* ``tracefs``: ``sysgate.record(argv, method="tracefs")`` in this interpreter, start to profile
  (instance set-up and removal included), root only;
* ``ptrace``: the same with ``method="ptrace"`` (the unprivileged fallback);
* ``strace``: ``strace -f -qq -o /dev/null`` (the peer: what people use to build profiles by hand).

For the recorders, ``(cmd)`` is the command's own run time as the recorder saw it (release to
exit), without the recorder's set-up (trace instance, filter) and hand-over.

Printed: the median wall time of each, and the slowdown (median / bare median).
Targets (issue 14): tracefs <= 1.5x (du) and <= 1.2x (python); ptrace <= strace -f.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from sysgate.recorder import record  # noqa: E402
from sysgate.recorder import tracefs  # noqa: E402

PY = os.path.realpath(sys.executable)
WORKLOADS = {
    "du": ["du", "-s", "/usr"],
    "python": [PY, "-c", "import json, decimal, sqlite3, csv, email.message, email.parser, http.client, asyncio, "
                         "unittest, xml.dom.minidom, argparse, logging, tarfile, zipfile, pathlib, typing, "
                         "dataclasses, inspect, ssl"],
}


def _spawn(argv: list[str]) -> float:
    exe = shutil.which(argv[0]) or argv[0]
    t = time.perf_counter()
    with open(os.devnull, "wb") as null:
        pid = os.posix_spawn(exe, argv, os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null.fileno(), 1)])
        _, st = os.waitpid(pid, 0)
    dt = time.perf_counter() - t
    if st != 0:
        raise SystemExit(f"{argv[:3]} failed: status {st:#x}")
    return dt


WORKLOAD_TIMES: dict[str, list[float]] = {}


def _recorded(argv: list[str], method: str) -> float:
    fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    try:
        t = time.perf_counter()
        _, report = record(argv, method=method)
        dt = time.perf_counter() - t
        tracefs.wait_cleanup()  # the instance's removal, in the background, must not overlap the next contender
    finally:
        os.dup2(fd, 1)
        os.close(fd)
        os.close(null)
    if report.returncode != 0:
        raise SystemExit(f"{argv[:3]} under {method}: status {report.returncode}")
    WORKLOAD_TIMES.setdefault(method, []).append(report.elapsed)
    return dt


def contenders(argv: list[str]) -> dict:
    out = {"bare": lambda: _spawn(argv)}
    if tracefs.available() is None:
        out["tracefs"] = lambda: _recorded(argv, "tracefs")
    out["ptrace"] = lambda: _recorded(argv, "ptrace")
    if shutil.which("strace"):
        out["strace"] = lambda: _spawn(["strace", "-f", "-qq", "-o", "/dev/null", "--", *argv])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="rounds (default 5)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", choices=list(WORKLOADS))
    a = ap.parse_args()
    results = {}
    for wname, argv in WORKLOADS.items():
        if a.only and wname != a.only:
            continue
        cs = contenders(argv)
        WORKLOAD_TIMES.clear()
        _spawn(argv)  # warm the page cache
        times: dict[str, list[float]] = {k: [] for k in cs}
        names = list(cs)
        for i in range(a.n):
            for k in names[i % len(names):] + names[:i % len(names)]:
                times[k].append(cs[k]())
        med = {k: statistics.median(v) for k, v in times.items()}
        results[wname] = {k: {"median_s": round(m, 4), "slowdown": round(m / med["bare"], 2)} for k, m in med.items()}
        for k, v in WORKLOAD_TIMES.items():  # the command's own time under the recorder, set-up excluded
            m = statistics.median(v)
            results[wname][k + " (cmd)"] = {"median_s": round(m, 4), "slowdown": round(m / med["bare"], 2)}
    if a.json:
        print(json.dumps(results, indent=1))
        return
    for wname, res in results.items():
        print(f"{wname}: {' '.join(WORKLOADS[wname])[:70]}")
        for k, r in res.items():
            print(f"  {k:8s} {r['median_s'] * 1000:9.1f} ms  {r['slowdown']:6.2f}x")


if __name__ == "__main__":
    main()
