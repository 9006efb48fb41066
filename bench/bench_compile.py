#!/usr/bin/env python3
"""Benchmark: sysgate's compiler against libseccomp 2.5.4 on moby's default seccomp profile.

    python3 bench/bench_compile.py [--runs 21] [--json] [--importtime] [--profile FILE]

For the profile compiled for x86_64 and for x86_64+x86+x32 it measures, for sysgate and for
libseccomp (default layout and the binary tree, ``CTL_OPTIMIZE`` 2) in the same run:

* program length;
* mean and max instructions executed over x86_64 syscall numbers 0-511 with zero arguments
  (our emulator runs both programs);
* compile time in-process (median): ``compile_policy`` on the resolved Policy, and libseccomp's
  rule adding + ``export_bpf`` for the same rules, in a ``/usr/bin/python3`` process;
* whole-process time (median of ``--runs``, runs interleaved): ``/usr/bin/python3 -m sysgate.cli
  compile PROFILE --arch ...`` with ``PYTHONPATH=src`` (so no site-packages ``.pth`` of the dev
  Python is imported), the installed ``sysgate`` console script (also under its interpreter's
  ``-S``, which shows what that Python's site-packages ``.pth`` files cost every start), and a
  ``/usr/bin/python3`` script that reads the same profile, resolves it as moby/runc do and builds
  + exports the filter with libseccomp.

Run it with the Python sysgate is installed in (the console script is looked up next to it).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

from sysgate import arch as A  # noqa: E402
from sysgate.bpf.emulator import check, emulate  # noqa: E402
from sysgate.bpf.insn import decode  # noqa: E402
from sysgate.compiler import compile_policy  # noqa: E402
from sysgate.policy import Op, Policy  # noqa: E402
from sysgate.profiles import resolve  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"
DEFAULT_PROFILE = ROOT.parent / "shared" / "corpus" / "moby-profiles-seccomp-default.json"
TARGETS = {"mean": 10.5, "max": 14}
CONFIGS = [("x86_64", ["x86_64"]), ("x86_64+x86+x32", ["x86_64", "x86", "x32"])]

# Builds pre-resolved rules (JSON on stdin) with libseccomp, timed in-process, and returns the
# programs of both layouts.
LIBSECCOMP_MEASURE = r"""
import json, statistics, sys, tempfile, time
import seccomp as S

def s32(v):
    return v - (1 << 32) if v >= 1 << 31 else v

def build(p, optimize, out):
    f = S.SyscallFilter(s32(p["default"]))
    for a in p["arches"]:
        arch = getattr(S.Arch, a)
        if not f.exist_arch(arch):
            f.add_arch(arch)
    if "X86_64" not in p["arches"]:
        f.remove_arch(S.Arch.NATIVE)
    f.set_attr(S.Attr.ACT_BADARCH, s32(p["badarch"]))
    if optimize:
        f.set_attr(S.Attr.CTL_OPTIMIZE, optimize)
    for r in p["rules"]:
        if S.resolve_syscall(S.Arch.NATIVE, r["name"]) == -1:
            continue  # a name libseccomp 2.5.4 does not know: runc skips it too
        f.add_rule(s32(r["action"]), r["name"], *[S.Arg(i, getattr(S, op), a, b) for i, op, a, b in r["args"]])
    f.export_bpf(out)

req = json.load(sys.stdin)
res = {}
with tempfile.TemporaryFile() as fh:
    for name, optimize in (("plain", 0), ("tree", 2)):
        times = []
        for _ in range(req["runs"]):
            fh.seek(0)
            fh.truncate()
            t = time.perf_counter()
            build(req["policy"], optimize, fh)
            times.append(time.perf_counter() - t)
        fh.seek(0)
        res[name] = {"bpf": fh.read().hex(), "ms": statistics.median(times) * 1000}
json.dump(res, sys.stdout)
"""

# A whole libseccomp process, as a runtime would do it: read the moby profile, resolve it for the
# host (archMap, includes/excludes by Docker's default caps, arch and kernel), build, export.
LIBSECCOMP_PROCESS = r"""
import json, os, sys
import seccomp as S

CAPS = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
        "CAP_AUDIT_WRITE"}
ACT = {"SCMP_ACT_ALLOW": lambda n: S.ALLOW, "SCMP_ACT_ERRNO": S.ERRNO, "SCMP_ACT_KILL": lambda n: S.KILL,
       "SCMP_ACT_KILL_PROCESS": lambda n: S.KILL_PROCESS, "SCMP_ACT_TRAP": lambda n: S.TRAP,
       "SCMP_ACT_TRACE": S.TRACE, "SCMP_ACT_LOG": lambda n: S.LOG}
OPS = {"SCMP_CMP_NE": S.NE, "SCMP_CMP_LT": S.LT, "SCMP_CMP_LE": S.LE, "SCMP_CMP_EQ": S.EQ, "SCMP_CMP_GE": S.GE,
       "SCMP_CMP_GT": S.GT, "SCMP_CMP_MASKED_EQ": S.MASKED_EQ}

def kver(text):
    parts = [int("".join(c for c in p if c.isdigit()) or 0) for p in text.split(".")[:2]]
    return tuple(parts + [0] * (2 - len(parts)))

profile, arches, out = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
with open(profile) as fh:
    doc = json.load(fh)
running = kver(os.uname().release)
f = S.SyscallFilter(ACT[doc["defaultAction"]](doc.get("defaultErrnoRet", 1)))
for a in arches:
    arch = getattr(S.Arch, a)
    if not f.exist_arch(arch):
        f.add_arch(arch)
f.set_attr(S.Attr.ACT_BADARCH, S.KILL_PROCESS)
for s in doc["syscalls"]:
    inc, exc = s.get("includes") or {}, s.get("excludes") or {}
    if "arches" in inc and "amd64" not in inc["arches"] or "amd64" in exc.get("arches", ()):
        continue
    if not all(c in CAPS for c in inc.get("caps", ())) or any(c in CAPS for c in exc.get("caps", ())):
        continue
    if "minKernel" in inc and running < kver(inc["minKernel"]):
        continue
    action = ACT[s["action"]](s.get("errnoRet", 1))
    args = [S.Arg(a["index"], OPS[a["op"]], a["value"], a.get("valueTwo", 0)) for a in s.get("args") or []]
    idx = [a["index"] for a in s.get("args") or []]
    groups = [[a] for a in args] if len(set(idx)) < len(idx) else [args]
    for name in s["names"]:
        for g in groups:
            if S.resolve_syscall(S.Arch.NATIVE, name) != -1:  # runc skips names libseccomp lacks
                f.add_rule(action, name, *g)
with open(out, "wb") as fh:
    f.export_bpf(fh)
"""

OP_NAMES = {Op.EQ: "EQ", Op.NE: "NE", Op.LT: "LT", Op.LE: "LE", Op.GT: "GT", Op.GE: "GE", Op.MASKED_EQ: "MASKED_EQ"}


def libseccomp_request(policy: Policy) -> dict:
    rules = []
    for r in policy.rules:
        args = [[c.arg, OP_NAMES[c.op], c.mask, c.value] if c.op is Op.MASKED_EQ
                else [c.arg, OP_NAMES[c.op], c.value, 0]
                for c in r.conditions]
        rules.append({"action": r.action.ret, "name": str(r.syscall), "args": args})
    return {"default": policy.default.ret, "badarch": policy.bad_arch.ret, "rules": rules,
            "arches": [A.get(a).libseccomp.removeprefix("SCMP_ARCH_") for a in policy.arches]}


def executed(insns: tuple, arch: str = "x86_64", base: int = 0) -> tuple[float, int]:
    counts = [emulate(insns, arch, base + nr).executed for nr in range(512)]
    return statistics.mean(counts), max(counts)


def measure_config(profile: Path, arches: list[str], runs: int) -> dict:
    policy = resolve(str(profile), arch=arches[0], arches=arches)
    times = []
    for _ in range(max(runs, 5)):
        t = time.perf_counter()
        prog = compile_policy(policy)
        times.append(time.perf_counter() - t)
    check(prog.insns)
    t = time.perf_counter()
    resolve(str(profile), arch=arches[0], arches=arches)
    resolve_ms = (time.perf_counter() - t) * 1000
    r = subprocess.run([SYSTEM_PYTHON, "-c", LIBSECCOMP_MEASURE], input=json.dumps(
        {"policy": libseccomp_request(policy), "runs": max(runs, 5)}), capture_output=True, text=True, check=True)
    lib = json.loads(r.stdout)
    out: dict = {"arches": arches, "rules": len(policy.rules)}
    mean, mx = executed(prog.insns)
    out["sysgate"] = {"insns": len(prog), "mean": mean, "max": mx, "compile_ms": statistics.median(times) * 1000,
                      "resolve_ms": resolve_ms}
    for extra in arches[1:]:
        a = A.get(extra)
        out["sysgate"][f"mean_{extra}"] = executed(prog.insns, extra, a.nr_base)[0]
    for name in ("plain", "tree"):
        insns = decode(bytes.fromhex(lib[name]["bpf"]))
        check(insns)
        mean, mx = executed(insns)
        out[f"libseccomp_{name}"] = {"insns": len(insns), "mean": mean, "max": mx, "compile_ms": lib[name]["ms"]}
        for extra in arches[1:]:
            a = A.get(extra)
            out[f"libseccomp_{name}"][f"mean_{extra}"] = executed(insns, extra, a.nr_base)[0]
        # sanity: both programs decide each x86_64 number 0-511 the same way, except names this
        # libseccomp does not know (it leaves them to the default action, as runc would)
        unknown = {nr for nr in range(512) if (A.get("x86_64").name_of(nr) or "") in _LIBSECCOMP_UNKNOWN}
        diff = [nr for nr in range(512) if nr not in unknown
                and emulate(prog.insns, "x86_64", nr).ret != emulate(insns, "x86_64", nr).ret]
        out[f"libseccomp_{name}"]["decisions_differ"] = diff
    return out


_LIBSECCOMP_UNKNOWN: set[str] = set()


def _libseccomp_unknown(names: list[str]) -> set[str]:
    code = ("import json, sys, seccomp as S; n = json.load(sys.stdin); "
            "json.dump([x for x in n if S.resolve_syscall(S.Arch.X86_64, x) == -1], sys.stdout)")
    r = subprocess.run([SYSTEM_PYTHON, "-c", code], input=json.dumps(names), capture_output=True, text=True, check=True)
    return set(json.loads(r.stdout))


def console_script() -> str | None:
    """The real ``sysgate`` entry point of this Python (not a pyenv shim)."""
    cand = Path(sysconfig.get_path("scripts")) / "sysgate"
    if cand.exists():
        return str(cand)
    return shutil.which("sysgate")


def _shebang(script: str) -> str | None:
    """The interpreter a console script names on its ``#!`` line (None if it is not a plain one)."""
    with open(script, "rb") as fh:
        first = fh.readline().decode(errors="replace").strip()
    words = first[2:].split() if first.startswith("#!") else []
    return words[0] if len(words) == 1 and os.path.isabs(words[0]) else None


def _run_timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) milliseconds of one run; CPU time is less hurt by a busy machine."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = (time.perf_counter() - t) * 1000
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read() if proc.stderr else b""
    if proc.stderr:
        proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{cmd} failed ({proc.returncode}): {err.decode(errors='replace')}")
    return wall, (usage.ru_utime + usage.ru_stime) * 1000


def bench_env(pythonpath: str | None = None, no_bytecode: bool = False) -> dict[str, str]:
    """The environment of timed runs: nothing but ``pythonpath`` on the path, no startup file."""
    env = dict(os.environ)
    for k in ("PYTHONSTARTUP", "PYTHONPATH", "PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE"):
        env.pop(k, None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if no_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def compiled_copy(dest: Path) -> Path:
    """A copy of the package with its bytecode, as an installed package has it; the tree we
    run from may have none (PYTHONDONTWRITEBYTECODE), and nothing is written into it."""
    pkg = dest / "pkg"
    shutil.copytree(SRC / "sysgate", pkg / "sysgate", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([SYSTEM_PYTHON, "-m", "compileall", "-q", str(pkg)], check=True, env=bench_env())
    return pkg


LIB = "libseccomp: /usr/bin/python3 script"
OURS = "sysgate: /usr/bin/python3 -m sysgate.cli"
# `sysgate compile docker-default` (the built-in: moby's file plus the hardening overlay, for the
# machine's archMap set, x86_64+x86+x32 here): served from the shipped precompiled program.
BUILTIN = "sysgate: /usr/bin/python3 -m sysgate.cli compile docker-default (built-in)"


def time_processes(profile: Path, arches: list[str], runs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        pkg = str(compiled_copy(Path(tmp)))
        lib_script = Path(tmp) / "libseccomp_compile.py"
        lib_script.write_text(LIBSECCOMP_PROCESS)
        out = str(Path(tmp) / "out.bpf")
        scmp = ",".join(A.get(a).libseccomp.removeprefix("SCMP_ARCH_") for a in arches)
        args = ["compile", str(profile), "--arch", ",".join(arches), "-o", out]
        cmds: dict[str, tuple[list[str], dict[str, str]]] = {
            "python3 -c pass": ([SYSTEM_PYTHON, "-c", "pass"], bench_env()),
            OURS: ([SYSTEM_PYTHON, "-m", "sysgate.cli", *args], bench_env(pkg)),
            LIB: ([SYSTEM_PYTHON, str(lib_script), str(profile), scmp, out], bench_env()),
            OURS + " (no bytecode)": ([SYSTEM_PYTHON, "-m", "sysgate.cli", *args], bench_env(str(SRC), True)),
        }
        if len(arches) > 1:  # the built-in covers the machine's archMap set, as this config does
            cmds[BUILTIN] = ([SYSTEM_PYTHON, "-m", "sysgate.cli", "compile", "docker-default", "-o", out],
                             bench_env(pkg))
        script = console_script()
        if script:
            cmds["sysgate: console script"] = ([script, *args], bench_env(pkg))
            interpreter = _shebang(script)
            if interpreter:
                cmds["sysgate: console script, its python -S (no site)"] = ([interpreter, "-S", script, *args],
                                                                          bench_env(pkg))
        times: dict[str, list[tuple[float, float]]] = {k: [] for k in cmds}
        for cmd, env in cmds.values():  # warm-up, and fail loudly if a command is broken
            _run_timed(cmd, env)
        for _ in range(runs):
            for k, (cmd, env) in cmds.items():
                times[k].append(_run_timed(cmd, env))
    res: dict = {k: {"median_ms": statistics.median(w for w, _ in v), "min_ms": min(w for w, _ in v),
                     "cpu_median_ms": statistics.median(c for _, c in v), "runs": len(v)} for k, v in times.items()}
    if script:
        res["console_script"] = script
    return res


def importtime(profile: Path, arches: list[str], top: int = 15) -> list[tuple[str, int, int]]:
    """(module, self us, cumulative us) of the slowest imports of ``sysgate compile``."""
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(str(compiled_copy(Path(tmp))))
        cmd = [SYSTEM_PYTHON, "-X", "importtime", "-m", "sysgate.cli", "compile", str(profile), "--arch",
               ",".join(arches), "-o", os.devnull]
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    rows = []
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if m:
            rows.append((m.group(4), int(m.group(1)), int(m.group(2)), len(m.group(3))))
    total = sum(s for _, s, _, _ in rows)
    top_level = sorted((r for r in rows if r[3] <= 1), key=lambda r: -r[2])[:top]
    return [("(all imports, self total)", total, total)] + [(n, s, c) for n, s, c, _ in top_level]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", type=Path, default=DEFAULT_PROFILE)
    ap.add_argument("--runs", type=int, default=21, help="whole-process runs per command (>= 15)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--importtime", action="store_true", help="always show the import-time profile")
    args = ap.parse_args(argv)
    if not args.profile.exists():
        print(f"bench_compile: {args.profile}: no such profile", file=sys.stderr)
        return 2
    if subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode:
        print("bench_compile: /usr/bin/python3 has no seccomp module (apt install python3-seccomp)", file=sys.stderr)
        return 2
    _LIBSECCOMP_UNKNOWN.update(_libseccomp_unknown(sorted(A.get("x86_64").syscalls)))
    result: dict = {"profile": str(args.profile), "kernel": platform.release(), "python": sys.version.split()[0],
                    "configs": {}, "process": {}}
    for label, arches in CONFIGS:
        result["configs"][label] = measure_config(args.profile, arches, args.runs)
        result["process"][label] = time_processes(args.profile, arches, max(args.runs, 15))
    x = result["configs"]["x86_64"]
    p = result["process"]["x86_64"]
    ours_proc = p[OURS]["median_ms"]
    lib_proc = p[LIB]["median_ms"]
    result["targets"] = {
        "fewer insns than libseccomp default": x["sysgate"]["insns"] < x["libseccomp_plain"]["insns"],
        f"mean executed <= {TARGETS['mean']}": x["sysgate"]["mean"] <= TARGETS["mean"],
        f"max executed <= {TARGETS['max']}": x["sysgate"]["max"] <= TARGETS["max"],
        "whole process no slower than libseccomp": ours_proc <= lib_proc,
    }
    multi = [p for label, p in result["process"].items() if BUILTIN in p]
    if multi:
        result["targets"]["built-in compile no slower than libseccomp (same arches)"] = \
            multi[0][BUILTIN]["median_ms"] <= multi[0][LIB]["median_ms"]
    if args.importtime or not result["targets"]["whole process no slower than libseccomp"]:
        result["importtime_us"] = importtime(args.profile, ["x86_64"])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_table(result)
    return 0


def print_table(r: dict) -> None:
    print(f"profile {r['profile']}\nkernel {r['kernel']}, sysgate under Python {r['python']}, "
          "libseccomp 2.5.4 under /usr/bin/python3\n")
    cols = ["sysgate", "libseccomp_plain", "libseccomp_tree"]
    head = f"{'':16}{'':22}{'sysgate':>10}{'libseccomp':>12}{'lsc tree':>10}{'ours/lsc':>10}{'ours/tree':>10}"
    for label, c in r["configs"].items():
        print(f"{label}  ({c['rules']} rules)")
        print(head)
        rows = [("program length", "insns", "{:.0f}"), ("mean executed", "mean", "{:.2f}"),
                ("max executed", "max", "{:.0f}"), ("compile ms", "compile_ms", "{:.2f}")]
        rows += [(f"mean executed {a}", f"mean_{a}", "{:.2f}") for a in c["arches"][1:]]
        for name, key, fmt in rows:
            vals = [c[k].get(key) for k in cols]
            cells = "".join(f"{fmt.format(v):>{w}}" for v, w in zip(vals, (10, 12, 10)))
            ratios = "".join(f"{(vals[0] / v if v else float('nan')):>10.2f}" for v in vals[1:])
            print(f"{'':16}{name:22}{cells}{ratios}")
        print(f"{'':16}{'(resolve profile ms)':22}{c['sysgate']['resolve_ms']:>10.2f}")
        for k in cols[1:]:
            if c[k]["decisions_differ"]:
                print(f"{'':16}WARNING: {k} decides x86_64 numbers differently: {c[k]['decisions_differ']}")
        print()
    print("whole process over interleaved runs (with bytecode unless said): wall median (min), CPU median; "
          "ratio to libseccomp (wall, CPU)")
    for label, p in r["process"].items():
        lib, lib_cpu = p[LIB]["median_ms"], p[LIB]["cpu_median_ms"]
        print(f"  {label}")
        for k, v in p.items():
            if isinstance(v, dict):
                print(f"    {k:58}{v['median_ms']:7.1f} ({v['min_ms']:5.1f}) ms  cpu {v['cpu_median_ms']:6.1f} ms"
                      f"{v['median_ms'] / lib:7.2f}x{v['cpu_median_ms'] / lib_cpu:6.2f}x")
        if "console_script" in p:
            print(f"    (console script: {p['console_script']})")
    print("\ntargets (x86_64):")
    for k, ok in r["targets"].items():
        print(f"  {'PASS' if ok else 'MISS'}  {k}")
    if "importtime_us" in r:
        print("\nimport time of `sysgate compile` (python3 -X importtime), top-level modules, us:")
        for name, self_us, cum_us in r["importtime_us"]:
            print(f"  {name:45}{self_us:>8}{cum_us:>10}")


if __name__ == "__main__":
    sys.exit(main())
