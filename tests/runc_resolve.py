"""An independent reading of Docker/OCI/podman/SPO seccomp JSON, as moby + runc hand it to libseccomp.

Written from moby's ``profiles/seccomp`` (setupSeccomp: archMap, includes/excludes) and runc's
``libcontainer/seccomp`` (InitSeccomp/matchCall), not from sysgate's reader, for the differential
test against libseccomp (tests/test_json_libseccomp_diff.py). :func:`request` returns what
``libseccomp_build.build_requests`` builds: rules in file order, as runc adds them.

* moby keeps an entry when ``includes.arches`` has the host's Go arch name, ``excludes.arches`` has
  not, every ``includes.caps`` and no ``excludes.caps`` cap is in the set, and the kernel is at least
  ``includes.minKernel``.
* archMap: the entry whose ``architecture`` is the host's gives it and its ``subArchitectures``;
  without one, ``architectures``; runc's filter always has the native arch too.
* runc skips an entry whose action (with its errnoRet) is the default action; an entry whose args
  test one index twice is added as one rule per arg; MASKED_EQ passes value (the mask) then
  valueTwo; ERRNO/TRACE without errnoRet return EPERM (1).
"""
from __future__ import annotations

from collections import Counter
from typing import Any

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1

ACT = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
       "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7FF00000,
       "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000, "SCMP_ACT_NOTIFY": 0x7FC00000}
OP = {"SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE", "SCMP_CMP_EQ": "EQ", "SCMP_CMP_GE": "GE",
      "SCMP_CMP_GT": "GT", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
# host (sysgate name) -> (libseccomp arch constant, Go's runtime.GOARCH)
HOSTS = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64")}
KILL_PROCESS = 0x80000000
# libseccomp refuses ERRNO(n) for n >= 4095 (EINVAL); the kernel returns -min(n, 4095). Such an
# errno is built as this stand-in, which the comparison reads as 4095.
ERRNO_STANDIN = 4094


class Refused(Exception):
    """runc (or moby) would refuse the profile."""


def _action(name: str, ret: Any, clamped: list[int]) -> int:
    base = ACT[name]
    if base in (0x00050000, 0x7FF00000):
        n = 1 if ret is None else int(ret)
        if base == 0x00050000 and n >= 4095:
            clamped.append(n)
            n = ERRNO_STANDIN
        return base | (n & 0xFFFF)
    return base


def _kver(text: str) -> tuple[int, int]:
    a, b = text.split(".")[:2]
    return int(a), int(b)


def request(doc: dict, host: str, caps: set[str], kernel: tuple[int, int]) -> dict:
    """The libseccomp build request for ``doc`` on ``host`` with ``caps`` and ``kernel``;
    ``clamped`` lists the errno values that stand in as ERRNO_STANDIN."""
    scmp_host, go_host = HOSTS[host]
    clamped: list[int] = []
    default = _action(doc["defaultAction"], doc.get("defaultErrnoRet"), clamped)
    arches: list[str] = []
    if doc.get("archMap"):
        for entry in doc["archMap"]:
            if entry["architecture"] == scmp_host:
                arches = [entry["architecture"]] + list(entry.get("subArchitectures") or [])
    elif doc.get("architectures"):
        arches = list(doc["architectures"])
    if scmp_host not in arches:
        arches.insert(0, scmp_host)  # runc's filter keeps the native arch
    rules = []
    for call in doc.get("syscalls") or []:
        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        if inc.get("arches") and go_host not in inc["arches"]:
            continue
        if exc.get("arches") and go_host in exc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if exc.get("caps") and any(c in caps for c in exc["caps"]):
            continue
        if inc.get("minKernel") and kernel < _kver(inc["minKernel"]):
            continue
        names = list(call.get("names") or []) or ([call["name"]] if call.get("name") else [])
        ret = call.get("errnoRet")
        act = _action(call["action"], int(ret) if isinstance(ret, str) else ret, clamped)
        if act == default:
            continue  # runc: "the default action would apply anyway"
        conds = [[a["index"], OP[a["op"]], a.get("value") or 0, a.get("valueTwo") or 0] for a in call.get("args") or []]
        counts = Counter(c[0] for c in conds)
        groups = [[c] for c in conds] if any(n > 1 for n in counts.values()) else [conds]
        for name in names:
            for g in groups:
                rules.append({"action": act, "name": name, "args": g})
    return {"default": default, "badarch": KILL_PROCESS, "rules": rules, "clamped": clamped,
            "arches": [a.removeprefix("SCMP_ARCH_") for a in arches]}
