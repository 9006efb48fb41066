"""Build seccomp programs with libseccomp (Debian ``python3-seccomp`` under /usr/bin/python3).

Used by the explain/diff tests and ``bench/bench_explain.py``: a :class:`~sysgate.policy.Policy`
is sent as JSON to one ``/usr/bin/python3`` process that builds each filter and returns
``export_bpf`` bytes. Names libseccomp does not know are skipped, as runc does.
"""
from __future__ import annotations

import json
import os
import subprocess

from sysgate import arch as A
from sysgate.bpf.insn import decode
from sysgate.policy import Op, Policy

SYSTEM_PYTHON = "/usr/bin/python3"

# Each request is built once per layout in ``layouts`` (CTL_OPTIMIZE levels; default: its
# ``optimize``). Names libseccomp does not know are skipped, as runc does, and listed.
_BUILD = r"""
import json, sys, tempfile
import seccomp as S

def s32(v):  # the bindings take actions as C int
    return v - (1 << 32) if v >= 1 << 31 else v

def build(p, optimize, unknown):
    f = S.SyscallFilter(s32(p["default"]))
    if "X86_64" not in p["arches"]:  # first: a big-endian arch cannot join the native one
        f.remove_arch(S.Arch.NATIVE)
    for a in p["arches"]:
        arch = getattr(S.Arch, a)
        if not f.exist_arch(arch):
            f.add_arch(arch)
    f.set_attr(S.Attr.ACT_BADARCH, s32(p["badarch"]))
    if optimize:
        f.set_attr(S.Attr.CTL_OPTIMIZE, optimize)
    for r in p["rules"]:
        if S.resolve_syscall(S.Arch.NATIVE, r["name"]) == -1:
            unknown.add(r["name"])
            continue
        try:
            f.add_rule(s32(r["action"]), r["name"], *[S.Arg(i, getattr(S, op), a, b) for i, op, a, b in r["args"]])
        except Exception as e:
            raise type(e)(f"{e} adding {r}") from None
    with tempfile.TemporaryFile() as fh:
        f.export_bpf(fh)
        fh.seek(0)
        return fh.read().hex()

out = []
for p in json.load(sys.stdin):
    try:
        unknown = set()
        bpf = [build(p, level, unknown) for level in p.get("layouts") or [p.get("optimize", 0)]]
        out.append({"bpf": bpf, "unknown": sorted(unknown)})
    except Exception as e:
        out.append({"error": f"{type(e).__name__}: {e}"})
json.dump(out, sys.stdout)
"""

OPS = {Op.EQ: "EQ", Op.NE: "NE", Op.LT: "LT", Op.LE: "LE", Op.GT: "GT", Op.GE: "GE", Op.MASKED_EQ: "MASKED_EQ"}


def available() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", "import seccomp"], capture_output=True).returncode == 0


def request(policy: Policy, optimize: int = 0) -> dict:
    rules = []
    for r in policy.rules:
        args = [[c.arg, OPS[c.op], c.mask, c.value] if c.op is Op.MASKED_EQ
                else [c.arg, OPS[c.op], c.value, 0] for c in r.conditions]
        rules.append({"action": r.action.ret, "name": str(r.syscall), "args": args})
    return {"default": policy.default.ret, "badarch": policy.bad_arch.ret, "rules": rules, "optimize": optimize,
            "arches": [A.get(a).libseccomp.removeprefix("SCMP_ARCH_") for a in policy.arches]}


def build_requests(requests: list[dict]) -> list[dict]:
    """Build raw requests (:func:`request`'s form, plus ``layouts``) in one /usr/bin/python3 process:
    for each, ``{"bpf": [hex per layout], "unknown": [names]}`` or ``{"error": text}``."""
    r = subprocess.run([SYSTEM_PYTHON, "-c", _BUILD], input=json.dumps(requests), capture_output=True, text=True,
                       timeout=120)
    if r.returncode:
        raise RuntimeError(r.stderr)
    return json.loads(r.stdout)


def build(policies: list[Policy], optimize: int = 0) -> list[tuple | str]:
    """The libseccomp program for each policy (decoded Insns), or the error text libseccomp gave."""
    out: list[tuple | str] = []
    for p, o in zip(policies, build_requests([request(p, optimize) for p in policies])):
        order = A.get(p.arches[0]).byteorder if p.arches else "little"
        out.append(o["error"] if "error" in o else decode(bytes.fromhex(o["bpf"][0]), order))
    return out


def zero_extended(a: A.Arch | str, nr: int, args: list[int]) -> list[int]:
    """``args`` as the kernel's handler of call ``nr`` sees them, written as libseccomp reads that
    value: the high word of each argument a 64-bit ABI's handler reads as 32 bits cleared, and
    the bits above 16 of each argument any ABI's handler reads as 16 bits (``umode_t``, the 16-bit
    uid calls' ids).

    sysgate decides those arguments on the bits the handler reads, libseccomp on all 64 (32 on
    32-bit ABIs); on these vectors the two agree (when no condition value on a 32-bit argument is
    sign-extended), so a difference on ``args`` that vanishes here is the deliberate one
    (tests/test_int_args.py, tests/test_short_args.py)."""
    from sysgate.compiler.lower import narrow_args, short_args

    a = A.get(a)
    short = short_args(a, nr)
    low = () if a.compare_bits == 32 else narrow_args(a, nr)
    return [v & 0xFFFF if i in short else v & 0xFFFFFFFF if i in low else v for i, v in enumerate(args)]
