#!/usr/bin/env python3
"""Benchmark: how sysgate's costs grow with the input (issue 12), next to libseccomp's.

    python3 bench/bench_scale.py [--runs 5] [--quick] [--json]

Medians of ``--runs`` runs, in-process (no interpreter start-up), each figure beside its peer
measured in the same run where one exists:

* **argument rules**: a Docker profile of N argument rules (EQ on args 0-2, spread over x86_64
  syscalls 0-299) read, resolved and compiled by sysgate, against libseccomp 2.5 adding the
  same rules and exporting (``/usr/bin/python3`` with Debian's bindings, timed inside that
  process). Past about 1,300 rules no program fits the kernel's 4,096 instructions: sysgate's
  figure is then the time to its refusal (libseccomp exports the oversized program anyway;
  it is measured up to 3,000 rules only: beyond, it takes minutes).
  Also printed: time per rule relative to N=1,000 (flat is linear; n log n grows slowly).
* **one rule of N ``&&`` terms** (minijail and Kafel syntax): read + compile. libseccomp allows
  one comparison per argument in a rule, so it has no figure here.
* **explain**: the slowest of random kernel-accepted programs (seeded; up to 60 instructions)
  and compiled policies near the 4,096-instruction limit.
* **explain, adversarial families** (``tests/adversarial_programs.py``): chains of n diamonds
  (tests whose arms re-join) on different arguments, on one argument with overlapping ranges,
  with scratch-memory stores, with ALU steps on A and X, and a counter of true tests; the worst
  time per family over seeds and sizes up to the instruction limit, whether explained or refused.
* **explain --to docker --lossy** (``analysis.export.to_policy``): the slowest random program.
* **disasm of a 10 MB raw file**: time to the refusal.

Targets (issue 12): 3,000 rules <= 0.5 s; growth no worse than n log n; 1,000 terms <= 1 s;
explain <= 1 s on any accepted program; oversized disasm refused quickly.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from bench_explain import median_time  # bench/ is the script's own directory on sys.path

from sysgate import arch as A
from sysgate.compiler import CompileError, compile_policy
from sysgate.profiles import resolve

SYSTEM_PYTHON = "/usr/bin/python3"

LIBSECCOMP = r"""
import json, statistics, sys, tempfile, time
import seccomp as S
req = json.load(sys.stdin)
times = []
with tempfile.TemporaryFile() as fh:
    for _ in range(req["runs"]):
        fh.seek(0); fh.truncate()
        t = time.perf_counter()
        f = S.SyscallFilter(S.ERRNO(1))
        for name, idx, val in req["rules"]:
            f.add_rule(S.ALLOW, name, S.Arg(idx, S.EQ, val))
        f.export_bpf(fh)
        times.append(time.perf_counter() - t)
json.dump({"s": statistics.median(times)}, sys.stdout)
"""


def _rules(n: int) -> list[tuple[str, int, int]]:
    rng = random.Random(n)
    # x86_64 numbers 0-299: old enough that libseccomp 2.5 knows every name
    names = sorted(name for name, nr in A.get("x86_64").syscalls.items() if nr < 300)
    return [(names[i % len(names)], rng.randrange(3), rng.randrange(1 << 20)) for i in range(n)]


def _compile_file(path: str) -> str:
    try:
        return f"{len(compile_policy(resolve(path, arch='x86_64')))} insns"
    except CompileError:
        return "refused: too long"


def argument_rules(sizes: list[int], runs: int, tmp: str) -> list[dict]:
    out = []
    for n in sizes:
        rules = _rules(n)
        doc = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
               "syscalls": [{"names": [nm], "action": "SCMP_ACT_ALLOW",
                             "args": [{"index": i, "value": v, "op": "SCMP_CMP_EQ"}]} for nm, i, v in rules]}
        path = os.path.join(tmp, f"rules{n}.json")
        Path(path).write_text(json.dumps(doc))
        result = _compile_file(path)
        ours = median_time(lambda p=path: _compile_file(p), runs)
        peer = None
        if os.path.exists(SYSTEM_PYTHON) and n <= 3000:  # beyond, libseccomp takes minutes
            r = subprocess.run([SYSTEM_PYTHON, "-c", LIBSECCOMP], input=json.dumps({"runs": max(1, runs // 2),
                                                                                   "rules": rules}),
                               capture_output=True, text=True, timeout=1800)
            peer = json.loads(r.stdout)["s"] if r.returncode == 0 else None
        out.append({"rules": n, "sysgate_s": ours, "libseccomp_s": peer, "result": result})
    return out


def and_terms(sizes: list[int], runs: int, tmp: str) -> list[dict]:
    out = []
    for n in sizes:
        row: dict = {"terms": n}
        mj = os.path.join(tmp, f"and{n}.minijail.policy")
        Path(mj).write_text("read: " + " && ".join(f"arg{i % 6} != {1000 + i}" for i in range(n)) + "\n")
        kf = os.path.join(tmp, f"and{n}.kafel.policy")
        Path(kf).write_text("POLICY p { ALLOW { read(a, b, c, d, e, f) { "
                            + " && ".join(f"{'abcdef'[i % 6]} != {1000 + i}" for i in range(n))
                            + " } } }\nUSE p DEFAULT KILL\n")
        row["minijail_s"] = median_time(lambda p=mj: _compile_file(p), runs)
        row["kafel_s"] = median_time(lambda p=kf: _compile_file(p), runs)
        out.append(row)
    return out


def explain_worst(count: int) -> dict:
    from bpf_random import accepted_program
    from sysgate.analysis.explain import explain_programs
    from sysgate.analysis.export import NotExpressible, to_policy

    rng = random.Random(12)
    worst_explain = worst_export = 0.0
    for _ in range(count):
        p = accepted_program(rng, 60)
        t = time.perf_counter()
        e = explain_programs([p], "little", naming=["x86_64"])
        e.render()
        worst_explain = max(worst_explain, time.perf_counter() - t)
        t = time.perf_counter()
        try:
            to_policy(e, None, lossy=True)
        except (NotExpressible, ValueError):
            pass
        worst_export = max(worst_export, time.perf_counter() - t)
    # Long programs: compiled policies of many argument rules, just under the limit.
    big = 0.0
    length = 0
    for n in (600, 1200):
        from sysgate.policy import Action, Condition, Op, Policy, Rule

        rules = tuple(Rule(nm, Action.parse("allow"), (Condition(i, Op.EQ, v),)) for nm, i, v in _rules(n))
        try:
            prog = compile_policy(Policy(Action.parse("errno:1"), rules, ("x86_64",)))
        except CompileError:
            continue
        t = time.perf_counter()
        explain_programs([prog.insns], "little").render()
        big = max(big, time.perf_counter() - t)
        length = max(length, len(prog))
    return {"random_programs": count, "explain_worst_s": worst_explain, "export_lossy_worst_s": worst_export,
            "explain_long_worst_s": big, "long_program_insns": length}


def explain_families(seeds: int) -> dict:
    """Worst explain + render time per adversarial family (wall, and CPU: this process's own time,
    which a loaded machine disturbs less), and how many were explained / refused."""
    from adversarial_programs import FAMILIES, family
    from sysgate.analysis.explain import explain_programs
    from sysgate.analysis.symexec import AnalysisError

    out = {}
    for name in FAMILIES:
        worst, worst_cpu, worst_n, explained, refused = 0.0, 0.0, 0, 0, 0
        for n in (4, 16, 64, 256, 1000):
            for seed in range(seeds):
                try:
                    p = family(name, random.Random(seed * 7919 + n), n)
                except ValueError:  # over the kernel's 4,096 instructions
                    continue
                t, c = time.perf_counter(), time.process_time()
                try:
                    explain_programs([p], "little", naming=["x86_64"]).render()
                    explained += 1
                except AnalysisError:
                    refused += 1
                dt, dc = time.perf_counter() - t, time.process_time() - c
                worst_cpu = max(worst_cpu, dc)
                if dt > worst:
                    worst, worst_n = dt, n
        out[name] = {"worst_s": worst, "worst_cpu_s": worst_cpu, "worst_diamonds": worst_n, "explained": explained,
                     "refused": refused}
    return out


def disasm_oversized(tmp: str) -> float:
    from sysgate.bpf import insn as I
    from sysgate.cli import main

    path = os.path.join(tmp, "big.bpf")
    Path(path).write_bytes(I.encode([I.stmt(I.RET | I.RET_K, I.RET_ALLOW)]) * (10_000_000 // 8))
    devnull = open(os.devnull, "w")
    old = sys.stderr
    sys.stderr = devnull
    try:
        t = time.perf_counter()
        status = main(["disasm", path])
        dt = time.perf_counter() - t
    finally:
        sys.stderr = old
        devnull.close()
    assert status == 2
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--explain-only", action="store_true", help="only the explain figures")
    args = ap.parse_args()
    if args.explain_only:
        res = {"explain": explain_worst(100 if args.quick else 400),
               "explain_families": explain_families(3 if args.quick else 10)}
        print(json.dumps(res, indent=1))
        return
    sizes = [300, 1000, 3000] if args.quick else [300, 1000, 3000, 10000, 30000]
    with tempfile.TemporaryDirectory() as tmp:
        res = {
            "argument_rules": argument_rules(sizes, args.runs, tmp),
            "and_terms": and_terms([250, 500, 1000], args.runs, tmp),
            "explain": explain_worst(100 if args.quick else 400),
            "explain_families": explain_families(3 if args.quick else 10),
            "disasm_10MB_refused_s": disasm_oversized(tmp),
        }
    if args.json:
        print(json.dumps(res, indent=1))
        return
    print("argument rules (Docker profile -> program), medians:")
    base = next((r for r in res["argument_rules"] if r["rules"] == 1000), res["argument_rules"][0])
    for r in res["argument_rules"]:
        peer = r["libseccomp_s"]
        ratio = f"{r['sysgate_s'] / peer:5.2f}x libseccomp" if peer else "libseccomp n/a"
        growth = (r["sysgate_s"] / r["rules"]) / (base["sysgate_s"] / base["rules"])
        print(f"  {r['rules']:6d} rules: sysgate {r['sysgate_s']:7.3f} s  libseccomp "
              f"{peer if peer is None else round(peer, 3)!s:>7} s  ({ratio}; per-rule cost x{growth:.2f} of "
              f"1k)  [{r['result']}]")
    print("one rule of N && terms (read + compile; libseccomp: one comparison per argument, n/a):")
    for r in res["and_terms"]:
        print(f"  {r['terms']:5d} terms: minijail {r['minijail_s']:.3f} s, kafel {r['kafel_s']:.3f} s")
    e = res["explain"]
    print(f"explain: worst of {e['random_programs']} random accepted programs {e['explain_worst_s']:.3f} s; "
          f"{e['long_program_insns']}-instruction compiled program {e['explain_long_worst_s']:.3f} s")
    print("explain, adversarial families (chains of n diamonds, n up to 1,000; worst of explained or refused):")
    for name, r in res["explain_families"].items():
        print(f"  {name:9s} worst {r['worst_s']:.3f} s (n={r['worst_diamonds']}; CPU {r['worst_cpu_s']:.3f} s), "
              f"{r['explained']} explained, "
              f"{r['refused']} refused as too complex")
    print(f"explain --to docker --lossy (to_policy): worst {e['export_lossy_worst_s']:.3f} s")
    print(f"disasm of a 10 MB raw file: refused in {res['disasm_10MB_refused_s']:.3f} s")


if __name__ == "__main__":
    main()
