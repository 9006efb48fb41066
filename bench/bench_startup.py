#!/usr/bin/env python3
"""``sysgate run -- /bin/true`` as pip installs it in a clean venv, against that venv's bare interpreter
and bubblewrap, measured in the same run.

    python3 bench/bench_startup.py [-n 40] [--tricks] [--json]

It builds a wheel of this checkout (setuptools' PEP 517 backend, no network), makes a venv in a
temporary directory (``--without-pip``; this Python's pip installs the wheel into it, so the
``sysgate`` command is what ``pip install sysgate`` makes), and starts, in rotating order, each
round (median of ``-n`` rounds; posix_spawn + waitpid, cwd ``/``):

* ``sysgate``: the installed command, ``sysgate run -- /bin/true``;
* ``pip wrapper``: the same through the wrapper pip generates for a ``[project.scripts]`` entry
  (it imports ``re`` to strip ``-script.pyw`` from ``argv[0]``), which sysgate's own script
  (``scripts/sysgate``, installed as written) replaces: what that choice saves;
* ``argparse path``: ``sysgate run --prof docker-default -- /bin/true``, a command line the plain
  reader leaves to argparse (an abbreviation): what argparse costs when it reads the words;
* ``python -m``: ``python -I -m sysgate run -- /bin/true``;
* ``public-stdlib``: ``sysgate`` with ``SYSGATE_PUBLIC_STDLIB=1`` (none of sysgate._startup's
  private modules); with ``--tricks``, also each trick switched off alone;
* ``api``: ``python -I -c "import sysgate; sysgate.run(['/bin/true'])"``, a script's first
  sandbox (no argparse), and ``api public`` the same with the public modules (per trick with
  ``--tricks``);
* ``python -I -S``, ``python``: the venv's interpreter doing nothing (the floors);
* ``warm sandbox``: one process that runs ``sysgate.run(['/bin/true'])`` ``1 + --warm`` times and
  reports the wall time of the later ones (``SYSGATE_NETNS_POOL=0``: each makes its own network
  namespace, as the command's one sandbox does): the kernel's and init's work for a sandbox, with
  no first-use cost left in the caller;
* ``bwrap``: bubblewrap with an equivalent sandbox (as bench_run.py).

Wall time is the figure; CPU time (of the process and its descendants, from ``wait4``) is printed
beside it, as a loaded machine inflates it far less.

The figure of issue 13: ``sysgate`` minus ``python -I -S`` <= 10 ms. The floor under it, printed
beside it: ``site`` (``python`` over ``python -I -S``: the venv's site-packages must be found) and a
warm sandbox (the kernel's and init's work); what is left is sysgate's own share (its imports,
reading the command line, and the first run's set-up in the caller).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET_MS = 10.0
# The wrapper pip generates for a [project.scripts] entry (distlib's template).
PIP_WRAPPER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from sysgate.cli import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""
# 1 + k sandboxes in one process; the wall times of the k later ones go to the fd in argv[1].
WARM = """import os, sys, time, sysgate
fd, k = int(sys.argv[1]), int(sys.argv[2])
assert sysgate.run(['/bin/true']).returncode == 0
times = []
for _ in range(k):
    t = time.perf_counter()
    r = sysgate.run(['/bin/true'])
    times.append(time.perf_counter() - t)
    assert r.returncode == 0, r
os.write(fd, ' '.join(map(repr, times)).encode())
"""


def build_wheel(out: str) -> str:
    """A wheel of this checkout, built by the first interpreter whose setuptools can."""
    code = ("import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))")
    for py in (sys.executable, "/usr/bin/python3"):
        if not os.path.exists(py):
            continue
        src = tempfile.mkdtemp(prefix="sysgate-src-")  # a copy: the build writes build/ and *.egg-info
        try:
            shutil.copytree(ROOT, src, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__",
                                                          ".pytest_cache"))
            r = subprocess.run([py, "-c", code, out], cwd=src, capture_output=True, text=True, check=False)
        finally:
            shutil.rmtree(src, ignore_errors=True)
        if r.returncode == 0:
            return os.path.join(out, r.stdout.split()[-1])
    raise SystemExit("no interpreter here can build a wheel (setuptools, and wheel for setuptools < 70.1)")


def make_venv(where: str, wheel: str) -> str:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", where], check=True)
    py = os.path.join(where, "bin", "python")
    subprocess.run([sys.executable, "-m", "pip", "--python", py, "install", "-q", "--no-deps", "--no-index",
                    "--disable-pip-version-check", wheel], check=True)
    return py


def spawn_wait(argv: list[str], env: dict[str, str], fds: tuple[int, ...] = ()) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; CPU is the process's and its reaped descendants' (wait4), which
    a loaded machine inflates far less than wall time."""
    actions = [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in fds]  # dup2 onto itself clears close-on-exec
    t = time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, env, file_actions=actions)
    _, st, ru = os.wait4(pid, 0)
    dt = time.perf_counter() - t
    if st != 0:
        raise SystemExit(f"{argv[:4]}... failed with status {st:#x}")
    return dt, ru.ru_utime + ru.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=40, help="rounds")
    ap.add_argument("--warm", type=int, default=5, help="later sandboxes timed in each warm-sandbox process")
    ap.add_argument("--tricks", action="store_true", help="also time each sysgate._startup trick switched off alone")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.mkdtemp(prefix="sysgate-bench-venv-")
    os.chdir("/")  # visible in the sandbox: no note about the working directory
    try:
        py = make_venv(os.path.join(tmp, "venv"), build_wheel(tmp))
        bindir = os.path.dirname(py)
        ep = os.path.join(bindir, "sysgate-pip-wrapper")
        with open(ep, "w") as f:
            f.write(PIP_WRAPPER.format(python=py))
        os.chmod(ep, 0o755)
        env = {"PATH": "/usr/bin:/bin", "LANG": os.environ.get("LANG", "C.UTF-8")}
        run = ["run", "--", "/bin/true"]
        cmd = os.path.join(bindir, "sysgate")
        api = [py, "-I", "-c", "import sys, sysgate; sys.exit(sysgate.run(['/bin/true']).returncode)"]
        c: dict[str, tuple[list[str], dict[str, str], tuple[int, ...]]] = {
            "sysgate": ([cmd, *run], env, ()),
            "pip wrapper": ([ep, *run], env, ()),
            "argparse path": ([cmd, "run", "--prof", "docker-default", "--", "/bin/true"], env, ()),
            "python -m": ([py, "-I", "-m", "sysgate", *run], env, ()),
            "public-stdlib": ([cmd, *run], dict(env, SYSGATE_PUBLIC_STDLIB="1"), ()),
            "api": (api, env, ()),
            "api public": (api, dict(env, SYSGATE_PUBLIC_STDLIB="1"), ()),
            "python -I -S": ([py, "-I", "-S", "-c", "pass"], env, ()),
            "python": ([py, "-c", "pass"], env, ()),
        }
        if args.tricks:
            for t in ("ctypes", "signal", "sha256", "bundle"):
                c[f"public {t}"] = ([cmd, *run], dict(env, SYSGATE_PUBLIC_STDLIB=t), ())
                c[f"api public {t}"] = (api, dict(env, SYSGATE_PUBLIC_STDLIB=t), ())
        bwrap = shutil.which("bwrap")
        if bwrap:
            sys.path.insert(0, os.path.join(ROOT, "src"))
            from sysgate.jail import filters

            mfd = os.memfd_create("bwrap-seccomp", 0)  # inherited by bwrap (dup2 below clears CLOEXEC)
            os.write(mfd, filters.get("docker-default").data)
            c["bwrap"] = ([bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--dev", "/dev",
                           "--proc", "/proc", "--seccomp", str(mfd), "/bin/true"], env, (mfd,))

        wr, ww = os.pipe()  # the warm-sandbox process writes its times here
        c["warm sandbox"] = ([py, "-I", "-c", WARM, str(ww), str(args.warm)], dict(env, SYSGATE_NETNS_POOL="0"),
                             (ww,))
        warm: list[float] = []

        def once(k: str) -> tuple[float, float]:
            argv, e, fds = c[k]
            if k == "bwrap":
                os.lseek(fds[0], 0, os.SEEK_SET)
            got = spawn_wait(argv, e, fds)
            if k == "warm sandbox":
                warm.extend(float(t) for t in os.read(wr, 65536).split())
            return got

        names = list(c)
        for k in names:  # warm up: page cache, bytecode, the filter cache
            for _ in range(3):
                once(k)
        warm.clear()
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in names}
        for i in range(args.n):
            for k in names[i % len(names):] + names[:i % len(names)]:
                times[k].append(once(k))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    med = {k: statistics.median(w for w, _ in v) * 1e3 for k, v in times.items()}
    cpu = {k: statistics.median(c for _, c in v) * 1e3 for k, v in times.items()}
    own = med["sysgate"] - med["python -I -S"]
    # The floor under the figure, and what is left of it for sysgate's own code.
    floor = {"site (python over python -I -S)": med["python"] - med["python -I -S"],
             "warm sandbox (in-process)": statistics.median(warm) * 1e3}
    share = own - sum(floor.values())
    out = {"rounds": args.n, "python": sys.version.split()[0], "load": os.getloadavg()[0], "median_ms": med,
           "cpu_median_ms": cpu, "sysgate_minus_python_I_S_ms": own,
           "cpu_sysgate_minus_python_I_S_ms": cpu["sysgate"] - cpu["python -I -S"], "target_ms": TARGET_MS,
           "floor_ms": floor, "sysgate_own_share_ms": share, "sysgate_over_python_I_S": own / med["python -I -S"],
           "pip_wrapper_saved_ms": med["pip wrapper"] - med["sysgate"],
           "argparse_path_extra_ms": med["argparse path"] - med["sysgate"],
           "warm_runs": len(warm)}
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"start-up of the installed command, {args.n} rounds, Python {out['python']}, load {out['load']:.2f}")
    print(f"  {'':16} {'wall ms':>8} {'over -I -S':>10} {'cpu ms':>8} {'over -I -S':>10}")
    for k, v in med.items():
        if k == "warm sandbox":  # a process of several sandboxes: its own times are below
            continue
        print(f"  {k:16} {v:8.2f} {v - med['python -I -S']:+10.2f} {cpu[k]:8.2f} {cpu[k] - cpu['python -I -S']:+10.2f}")
    print(f"sysgate run -- /bin/true minus python -I -S: {own:.2f} ms wall, "
          f"{out['cpu_sysgate_minus_python_I_S_ms']:.2f} ms CPU (target <= {TARGET_MS:.0f} ms: "
          f"{'met' if own <= TARGET_MS else 'NOT met'}); {out['sysgate_over_python_I_S']:.2f}x python -I -S's "
          f"own start (the host's speed swings; this ratio less)")
    print("  of which the floor:")
    for k, v in floor.items():
        print(f"    {k:32} {v:6.2f} ms")
    print(f"    {'floor in all':32} {sum(floor.values()):6.2f} ms"
          f"   (warm sandbox: median of {len(warm)} later runs, {args.warm} per process)")
    print(f"  sysgate's own share (figure - floor): {share:.2f} ms (its imports, reading the command line, "
          f"the first run's set-up)")
    print(f"  saved by sysgate's own script over pip's wrapper: {out['pip_wrapper_saved_ms']:.2f} ms; "
          f"argparse reading the command line would add {out['argparse_path_extra_ms']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
