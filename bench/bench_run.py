#!/usr/bin/env python3
"""Start-to-exit latency of ``/bin/true`` in a sandbox: sysgate's Python API, sysgate's CLI, and
bubblewrap with an equivalent filter, measured in the same run.

    python3 bench/bench_run.py [-n 60] [--json]

Every round runs each contender once, in rotating order, so they share the machine's noise.
Contenders:

* ``api``: ``sysgate.run(["/bin/true"])`` in this (warm) interpreter, full default isolation
  (user, mount, PID, network, IPC, UTS, cgroup namespaces; read-only root, /dev, /proc, /tmp;
  capabilities dropped; no_new_privs; docker-default).
* ``api-no-mediate``: ``api`` without the default connect mediation (``mediate=False``): the
  difference is what the listener filter, its hand-over and the supervisor thread cost.
* ``api-cold-netns``: the same with the spare network namespace disabled (every run creates its
  own inside ``clone()``), i.e. what a process pays for its first sandbox.
* ``api-host-root`` (root only): ``api`` with ``keep_host_root=True``: the difference is what running
  a root caller's command as an unprivileged host id costs (its user namespace, PID 1 made with the
  sandbox's ids).
* ``api-fork``: ``api`` with the fork launcher, which CPython versions the vfork launcher is not
  validated on use (see ``sysgate._startup.VALIDATED``).
* ``cli``: ``python3 -m sysgate run -- /bin/true`` (a new interpreter each time, with ``site``;
  bytecode cached in a private PYTHONPYCACHEPREFIX, as an installed package would have it).
* ``cli-S``: the same with ``python3 -S`` (no site-packages scan; the package found by PYTHONPATH).
* ``bwrap``: ``bwrap --unshare-all --die-with-parent --ro-bind / / --dev /dev --proc /proc
  --seccomp FD /bin/true`` with FD holding sysgate's compiled docker-default program.
* ``python`` and ``python -S``: ``python3 [-S] -c pass``, the floors under ``cli`` and ``cli-S``
  (with ``site``, whatever the installation's ``.pth`` files import is included: compare
  ``cli - python`` across machines, not ``cli`` alone).
* ``cli-system`` and ``python-system``: the same with ``/usr/bin/python3`` (>= 3.10, if it is
  another interpreter), whose ``site`` usually imports little: the CLI as a distribution
  package would run.

Processes are started with ``posix_spawn`` and reaped with ``waitpid``, the cheapest way Python has.
Each start follows an idle gap (``--gap``, 5 ms): ``sysgate.run`` returns before its supervisor has
finished exiting (the kernel tears the namespaces down then), and that work must not be charged to
whichever contender comes next.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
sys.path.insert(0, SRC)

import sysgate  # noqa: E402
from sysgate.jail import filters, netpool  # noqa: E402


def spawn_wait(argv: list[str], env: dict[str, str] | None = None, fds: tuple[int, ...] = ()) -> float:
    t = time.perf_counter()
    actions = [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in fds]  # dup2 onto itself clears close-on-exec
    pid = os.posix_spawn(argv[0], argv, env if env is not None else os.environ, file_actions=actions)
    _, st = os.waitpid(pid, 0)
    dt = time.perf_counter() - t
    if st != 0:
        raise SystemExit(f"{argv[:3]}... failed with status {st:#x}")
    return dt


def spawn_ok(argv: list[str]) -> bool:
    pid = os.posix_spawn(argv[0], argv, os.environ)
    return os.waitpid(pid, 0)[1] == 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=60, help="rounds (>= 50 for the published figures)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI contenders")
    ap.add_argument("--gap", type=float, default=5.0, help="idle milliseconds before each start (default 5)")
    args = ap.parse_args()

    bwrap = shutil.which("bwrap")
    prog = filters.get("docker-default")  # what the API and CLI load; cached on disk for the CLI too
    # An installed package has its bytecode compiled; this checkout may run with PYTHONDONTWRITEBYTECODE,
    # so the CLI contenders get a private bytecode cache instead of recompiling sysgate every time.
    pycache = tempfile.mkdtemp(prefix="sysgate-bench-pyc-")
    env_s = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env_s.update(PYTHONPATH=SRC, PYTHONPYCACHEPREFIX=pycache)

    contenders: dict[str, object] = {}

    def api() -> float:
        t = time.perf_counter()
        r = sysgate.run(["/bin/true"])
        dt = time.perf_counter() - t
        assert r.ok, r
        return dt

    def api_cold() -> float:
        os.environ["SYSGATE_NETNS_POOL"] = "0"
        try:
            return api()
        finally:
            del os.environ["SYSGATE_NETNS_POOL"]

    def api_no_mediate() -> float:  # what the default connect mediation (jail/supervisor.py) costs
        t = time.perf_counter()
        r = sysgate.run(["/bin/true"], mediate=False)
        dt = time.perf_counter() - t
        assert r.ok, r
        return dt

    def api_with(**kw: object):  # type: ignore[no-untyped-def]
        def f() -> float:
            t = time.perf_counter()
            r = sysgate.run(["/bin/true"], **kw)  # type: ignore[arg-type]
            dt = time.perf_counter() - t
            assert r.ok, r
            return dt
        return f

    contenders["api"] = api
    contenders["api-no-mediate"] = api_no_mediate
    if os.geteuid() == 0:  # what running a root caller's command as an unprivileged host id costs
        keep = api_with(keep_host_root=True)
        quiet = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)

        def api_host_root() -> float:  # its warning (one line per run) kept off the benchmark's output
            saved = os.dup(2)
            os.dup2(quiet, 2)
            try:
                return keep()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
        contenders["api-host-root"] = api_host_root
    contenders["api-fork"] = api_with(launcher="fork")  # where the vfork launcher is not validated (new CPythons)
    if netpool.enabled():
        contenders["api-cold-netns"] = api_cold
    if not args.no_cli:
        contenders["cli"] = lambda: spawn_wait([sys.executable, "-m", "sysgate", "run", "--", "/bin/true"], env_s)
        contenders["cli-S"] = lambda: spawn_wait([sys.executable, "-S", "-m", "sysgate", "run", "--", "/bin/true"],
                                                 env_s)
        contenders["python"] = lambda: spawn_wait([sys.executable, "-c", "pass"], env_s)
        contenders["python -S"] = lambda: spawn_wait([sys.executable, "-S", "-c", "pass"], env_s)
        system = "/usr/bin/python3"  # the distribution's interpreter, with its own (usually plain) site
        if os.path.exists(system) and os.path.realpath(system) != os.path.realpath(sys.executable) and \
                spawn_ok([system, "-c", "import sys; assert sys.version_info >= (3, 10)"]):
            contenders["cli-system"] = lambda: spawn_wait([system, "-m", "sysgate", "run", "--", "/bin/true"], env_s)
            contenders["python-system"] = lambda: spawn_wait([system, "-c", "pass"], env_s)
    if bwrap:
        mfd = os.memfd_create("bwrap-seccomp")
        os.write(mfd, prog.data)

        def bw() -> float:
            os.lseek(mfd, 0, os.SEEK_SET)
            return spawn_wait([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                               "--proc", "/proc", "--seccomp", str(mfd), "/bin/true"], fds=(mfd,))
        contenders["bwrap"] = bw

    for fn in contenders.values():  # warm up: caches, the spare netns, page cache
        for _ in range(3):
            fn()  # type: ignore[operator]
    times: dict[str, list[float]] = {k: [] for k in contenders}
    names = list(contenders)
    for i in range(args.n):
        for k in names[i % len(names):] + names[:i % len(names)]:
            # An idle gap first: what a contender leaves to finish in the background (sysgate's
            # exiting supervisor, the kernel freeing a network namespace) must not slow the next one.
            time.sleep(args.gap / 1e3)
            times[k].append(contenders[k]())  # type: ignore[operator]

    def stats(v: list[float]) -> dict[str, float]:
        s = sorted(v)
        return {"median_ms": statistics.median(s) * 1e3, "p90_ms": s[int(0.9 * (len(s) - 1))] * 1e3}

    shutil.rmtree(pycache, ignore_errors=True)
    res = {k: stats(v) for k, v in times.items()}
    out: dict[str, object] = {"rounds": args.n, "results": res, "load": os.getloadavg(),
                              "python": sys.version.split()[0], "filter_insns": len(prog)}
    if "bwrap" in res:
        b = res["bwrap"]["median_ms"]
        out["ratios"] = {k: v["median_ms"] / b for k, v in res.items() if k != "bwrap"}
    if not args.no_cli:
        out["cli_overhead_ms"] = {k: res[k]["median_ms"] - res[f]["median_ms"]
                                  for k, f in (("cli", "python"), ("cli-S", "python -S"),
                                               ("cli-system", "python-system")) if k in res}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"start-to-exit of /bin/true, {args.n} rounds, load {os.getloadavg()[0]:.2f}, "
          f"docker-default = {len(prog)} BPF instructions")
    print(f"{'':16} {'median ms':>10} {'p90 ms':>8} {'x bwrap':>8}")
    for k, v in res.items():
        ratio = out.get("ratios", {}).get(k)  # type: ignore[union-attr]
        print(f"{k:16} {v['median_ms']:10.2f} {v['p90_ms']:8.2f} {'' if ratio is None else f'{ratio:8.2f}'}")
    if not args.no_cli:
        over = out["cli_overhead_ms"]  # type: ignore[assignment]
        print("sysgate's own share of the CLI (median minus its interpreter's start): "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in over.items()))
    if "bwrap" in res:
        r = out["ratios"]  # type: ignore[index]
        # (the CLI's start-up figure is bench_startup.py's: sysgate's own share over its interpreter)
        print(f"target (issue 10): api <= 0.6x bwrap: {'met' if r['api'] <= 0.6 else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
