"""Seeded, bounded fuzzing of the JSON formats (Docker, OCI, Kubernetes, Firecracker), structure-aware.

Valid documents get values replaced by values of every JSON type (the falsy ones above all: ``{}``,
``""``, ``0``, ``false``, ``[]``, ``null``), keys deleted, near-miss and unknown keys added, list items
duplicated. Each case must be read successfully or refused with one ValueError line naming the
source; never a traceback, never a hang. And a value of the wrong type where the format wants a
list, an object, a string or an integer is never accepted: ``"args": {}`` must not mean "no
conditions". A slice of the cases goes through ``sysgate compile`` and ``sysgate convert``
(in-process): status 0, or status 2 with exactly one ``sysgate: error:`` line and no output file.

``SYSGATE_FUZZ_CASES`` sets the number of cases per format (default 1500: 6,000 in all).
"""
from __future__ import annotations

import copy
import json
import os
import random
import warnings
from typing import Any

import pytest

from sysgate.errors import UserError
from sysgate.formats import ProfileWarning
from sysgate.formats.registry import read_bytes
from test_formats_fuzz import alarm, cli_compile_and_convert

CASES = int(os.environ.get("SYSGATE_FUZZ_CASES", "1500"))
CLI_EVERY = 16  # every 16th case also through the CLI
LIMIT_S = 5

DOCKER: dict[str, Any] = {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "defaultErrno": "EPERM",
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
        {"names": ["read", "write", "close"], "action": "SCMP_ACT_ALLOW", "comment": "io"},
        {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
        {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
         "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
        {"names": ["setns"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "errno": "EPERM",
         "includes": {"caps": ["CAP_SYS_ADMIN"], "minKernel": "4.8"}},
        {"name": "mmap", "action": "SCMP_ACT_TRACE", "errnoRet": 7, "includes": {"arches": ["amd64"]},
         "args": [{"index": 2, "value": 4, "op": "SCMP_CMP_GE"}, {"index": 2, "value": 9, "op": "SCMP_CMP_LT"}]},
    ],
}
OCI: dict[str, Any] = {"ociVersion": "1.2.0", "linux": {"seccomp": {
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1, "architectures": ["SCMP_ARCH_X86_64"],
    "flags": ["SECCOMP_FILTER_FLAG_LOG"], "listenerPath": "/run/x.sock",
    "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                 {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}}}
K8S: dict[str, Any] = {"apiVersion": "security-profiles-operator.x-k8s.io/v1beta1", "kind": "SeccompProfile",
                       "metadata": {"name": "x"}, "spec": {
                           "defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                           "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                                        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": "13",
                                         "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}]}}
FIRECRACKER: dict[str, Any] = {
    "vmm": {"mismatch_action": "trap", "match_action": "allow", "filter": [
        {"syscall": "read"},
        {"syscall": "ioctl", "comment": "c", "args": [{"index": 1, "type": "dword", "op": "eq", "val": 21505}]},
        {"syscall": "mmap", "args": [{"index": 2, "type": "qword", "op": {"masked_eq": 4}, "val": 4,
                                      "comment": "x"}]}]},
    "api": {"default_action": {"errno": 13}, "filter_action": "allow", "filter": [{"syscall": "write"}]},
}
SEEDS = {"docker": DOCKER, "oci": OCI, "k8s": K8S, "firecracker": FIRECRACKER}

VALUES: list[Any] = [None, False, True, 0, 1, -1, 6, 4095, 4096, 65536, 2**64, 2**64 - 1, 1.5, "", "x", "read",
                     "SCMP_ACT_ALLOW", "SCMP_CMP_EQ", "5.8", "CAP_SYS_ADMIN", "amd64", "dword", "eq", "allow",
                     [], [1], ["read"], [{}], {}, {"a": 1}, {"errno": 1}, {"masked_eq": 1}]
# what each field must be, where a value of another type (but null) has to be refused
TYPES: dict[str, dict[str, tuple[type, ...]]] = {
    "docker": {"names": (list,), "args": (list,), "syscalls": (list,), "architectures": (list,),
               "archMap": (list,), "subArchitectures": (list,), "includes": (dict,), "excludes": (dict,),
               "caps": (list,), "arches": (list,), "index": (int,), "value": (int,), "valueTwo": (int,),
               "op": (str,), "action": (str,), "defaultAction": (str,), "errnoRet": (int,),
               "defaultErrnoRet": (int,), "flags": (list,), "comment": (str,), "minKernel": (str,),
               "architecture": (str,), "name": (str,), "errno": (str,), "defaultErrno": (str,),
               "listenerPath": (str,)},
    "firecracker": {"syscall": (str,), "args": (list,), "index": (int,), "type": (str,), "op": (str, dict),
                    "val": (int,), "filter": (list,), "comment": (str,), "mismatch_action": (str, dict),
                    "match_action": (str, dict), "default_action": (str, dict), "filter_action": (str, dict)},
}
TYPES["oci"] = TYPES["docker"]
TYPES["k8s"] = dict(TYPES["docker"], errnoRet=(int, str))
EXTRA_KEYS = ["sycalls", "defualtAction", "DefaultAction", "nmes", "argz", "indx", "vale", "comments",
              "x-vendor-note", "annotations", "match_actio", "filters", "Syscall", "unknownThing"]


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, prefix + (i,))
    return out


def _mutate(fmt: str, rnd: random.Random) -> tuple[bytes, list[str]]:
    """A mutated document, and the fields given a value of a type they cannot have."""
    doc = copy.deepcopy(SEEDS[fmt])
    wrong: list[tuple[tuple, Any]] = []
    for _ in range(rnd.randint(1, 3)):
        paths = _paths(doc)[1:]
        if not paths:  # everything deleted
            break
        path = rnd.choice(paths)
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        last = path[-1]
        kind = rnd.random()
        if kind < 0.65:
            value = copy.deepcopy(rnd.choice(VALUES))
            parent[last] = value
            want = TYPES[fmt].get(last) if isinstance(last, str) else None
            bad_type = want is not None and value is not None and (
                not isinstance(value, want) or (isinstance(value, bool) and bool not in want))
            if bad_type:
                wrong.append((path, value))
        elif kind < 0.8 and isinstance(parent, dict):
            del parent[last]
        elif kind < 0.9 and isinstance(parent, dict):
            parent[rnd.choice(EXTRA_KEYS)] = copy.deepcopy(rnd.choice(VALUES))
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return json.dumps(doc).encode(), [".".join(map(str, p)) for p, v in wrong if _still(doc, p, v)]


def _still(doc: Any, path: tuple, value: Any) -> bool:
    """Does ``doc`` still hold ``value`` at ``path`` (a later mutation may have replaced a parent)?"""
    node = doc
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    return node is value


def _read(fmt: str, data: bytes) -> Exception | None:
    """None on success, else the UserError (checked to be one line naming the source)."""
    with alarm(LIMIT_S), warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileWarning)
        try:
            read_bytes(data, "fuzz.json", fmt, arch="x86_64", thread="vmm" if fmt == "firecracker" else None)
        except UserError as e:
            msg = str(e)
            assert msg and "\n" not in msg, repr(e)
            return e
    return None


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_json_fuzz(fmt: str) -> None:
    assert _read(fmt, json.dumps(SEEDS[fmt]).encode()) is None  # the seed itself is valid
    rnd = random.Random(f"sysgate-json-fuzz-{fmt}")
    refused = 0
    for case in range(CASES):
        data, wrong = _mutate(fmt, rnd)
        err = _read(fmt, data)
        if wrong:
            assert err is not None, f"case {case}: wrong type at {wrong} accepted: {data.decode()}"
        refused += err is not None
        if case % CLI_EVERY == 0:
            cli_compile_and_convert(data, "in.json", "docker")
    assert 0 < refused < CASES  # the mutations reach both outcomes
