#!/usr/bin/env python3
"""Benchmark: ``sysgate explain`` of moby's default profile for x86_64+x86+aarch64 (target < 1 s).

    python3 bench/bench_explain.py [--runs 7] [--json]

x86_64 and aarch64 are both little-endian, so one program holds all three arches. Measured
(median of ``--runs``, in-process):

* compile: resolving the profile and ``compile_policy`` (what ``sysgate explain PROFILE`` does
  first), for scale;
* explain: symbolic execution + the per-arch tables + rendering the text (and the JSON) of the
  program we compile;
* the same explain of the program libseccomp 2.5.4 builds from the same rules (default layout:
  long compare chains, ~3x the instructions), for scale;
* whole process: ``python3 -m sysgate explain docker-default --arch ...`` wall time;
* emulator throughput: ``bpf.emulator.run`` of the same program on 2,000 random calls (runs
  per second; the emulator, flow analysis and explain share ``bpf.decoder``).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from sysgate.analysis.explain import explain  # noqa: E402
from sysgate.compiler import compile_policy  # noqa: E402
from sysgate.profiles import resolve  # noqa: E402

ARCHES = ["x86_64", "x86", "aarch64"]
TARGET_S = 1.0


def median_time(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def emulate_throughput(prog, runs: int) -> float:  # type: ignore[no-untyped-def]
    """``emulator.run`` calls per second on random x86_64 calls (median of ``runs`` rounds)."""
    import random

    from sysgate import arch as A
    from sysgate.bpf.emulator import SeccompData, run

    prog = tuple(prog)
    rng = random.Random(1)
    token = A.get("x86_64").token
    datas = [SeccompData(rng.randrange(460), token, 0,
                         tuple(rng.choice((0, 1, 0x7E020000, 1 << 31)) for _ in range(6))).pack("little")
             for _ in range(2000)]

    def once() -> None:
        for d in datas:
            run(prog, d, "little")
    return len(datas) / median_time(once, runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    policy = resolve("docker-default", arch=ARCHES[0], arches=ARCHES)
    ours = compile_policy(policy).insns
    out: dict = {"arches": ARCHES, "target_s": TARGET_S, "ours_insns": len(ours)}

    def explain_render(prog):  # type: ignore[no-untyped-def]
        e = explain(prog)
        e.render()
        return e

    explain_render(ours)  # warm imports (constants tables, argument names)
    out["compile_s"] = median_time(lambda: compile_policy(resolve("docker-default", arch=ARCHES[0], arches=ARCHES)),
                                   args.runs)
    out["explain_s"] = median_time(lambda: explain_render(ours), args.runs)
    out["explain_json_s"] = median_time(lambda: explain(ours).to_json(), args.runs)
    out["paths"] = len(explain(ours).leaves)

    try:
        import libseccomp_build

        if libseccomp_build.available():
            lib = libseccomp_build.build([policy])[0]
            if not isinstance(lib, str):
                out["libseccomp_insns"] = len(lib)
                out["libseccomp_explain_s"] = median_time(lambda: explain_render(lib), args.runs)
                out["libseccomp_paths"] = len(explain(lib).leaves)
    except (ImportError, OSError, RuntimeError) as e:  # no libseccomp: the comparison is optional
        out["libseccomp_error"] = str(e)

    out["emulate_runs_per_s"] = emulate_throughput(ours, args.runs)

    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "sysgate", "explain", "docker-default", "--arch", ",".join(ARCHES)],
                       capture_output=True, text=True, cwd=ROOT)
    out["cli_s"] = time.perf_counter() - t
    out["cli_ok"] = r.returncode == 0
    out["ok"] = out["explain_s"] < TARGET_S

    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(f"moby default for {'+'.join(ARCHES)}: {out['ours_insns']} instructions, {out['paths']} paths")
        print(f"  compile (profile -> program):      {out['compile_s'] * 1000:8.1f} ms")
        print(f"  explain + render text:             {out['explain_s'] * 1000:8.1f} ms   (target < {TARGET_S:.0f} s)")
        print(f"  explain + JSON:                    {out['explain_json_s'] * 1000:8.1f} ms")
        if "libseccomp_explain_s" in out:
            print(f"  libseccomp's program ({out['libseccomp_insns']} insns, {out['libseccomp_paths']} paths): "
                  f"{out['libseccomp_explain_s'] * 1000:8.1f} ms")
        print(f"  emulator (bpf.emulator.run):       {out['emulate_runs_per_s']:8.0f} runs/s")
        print(f"  whole CLI process:                 {out['cli_s'] * 1000:8.1f} ms")
        print("OK" if out["ok"] else "SLOWER THAN TARGET")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
