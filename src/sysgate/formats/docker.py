"""Docker/moby and OCI runtime-spec seccomp JSON.

Reads ``defaultAction``/``defaultErrnoRet``, ``architectures``, moby's ``archMap``,
``syscalls[]`` (``names`` or the legacy single ``name``, ``action``, ``errnoRet``,
``args[index,value,valueTwo,op]``, ``includes``/``excludes`` by ``caps``, ``arches`` and
``minKernel``), ``flags``, ``listenerPath`` and ``listenerMetadata``.

Resolution follows Docker (moby ``setupSeccomp`` + runc):

* ``includes``/``excludes`` are judged for one host: the *primary* arch (the one Docker
  would run on; its ``archMap`` entry gives the sub-architectures the filter also covers),
  a capability set (Docker's default unless given) and a kernel version (the running one
  unless given). ``includes.caps`` needs every listed cap; ``excludes.caps`` any.
* ``args`` of one entry are AND-ed, except that runc adds each condition as its own rule
  (OR) when two of them test the same argument index; we do the same.
* ``SCMP_ACT_KILL`` is kill-thread, as in libseccomp; ``SCMP_ACT_ERRNO`` and
  ``SCMP_ACT_TRACE`` without ``errnoRet`` use EPERM (1), as runc does.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

from .. import arch as _arch
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from ..record import Record
from . import ProfileError

__all__ = ["DockerProfile", "load", "loads", "parse", "DOCKER_DEFAULT_CAPS", "ACTIONS", "OPS"]

# moby's oci/caps/defaults.go DefaultCapabilities()
DOCKER_DEFAULT_CAPS: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
    "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

ACTIONS: dict[str, ActionKind] = {
    "SCMP_ACT_KILL": ActionKind.KILL_THREAD,
    "SCMP_ACT_KILL_THREAD": ActionKind.KILL_THREAD,
    "SCMP_ACT_KILL_PROCESS": ActionKind.KILL_PROCESS,
    "SCMP_ACT_TRAP": ActionKind.TRAP,
    "SCMP_ACT_ERRNO": ActionKind.ERRNO,
    "SCMP_ACT_TRACE": ActionKind.TRACE,
    "SCMP_ACT_ALLOW": ActionKind.ALLOW,
    "SCMP_ACT_LOG": ActionKind.LOG,
    "SCMP_ACT_NOTIFY": ActionKind.USER_NOTIF,
}

OPS: dict[str, Op] = {
    "SCMP_CMP_NE": Op.NE, "SCMP_CMP_LT": Op.LT, "SCMP_CMP_LE": Op.LE, "SCMP_CMP_EQ": Op.EQ,
    "SCMP_CMP_GE": Op.GE, "SCMP_CMP_GT": Op.GT, "SCMP_CMP_MASKED_EQ": Op.MASKED_EQ,
}

FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")

# moby's Go arch names, as used in includes/excludes.arches, for each sysgate arch.
GO_ARCH = {
    "x86_64": "amd64", "x86": "x86", "x32": "x32", "aarch64": "arm64", "arm": "arm", "mips": "mips",
    "mipsel": "mipsle", "mips64": "mips64", "mips64el": "mips64le", "mips64n32": "mips64n32",
    "mips64n32el": "mips64n32le", "ppc": "ppc", "ppc64": "ppc64", "ppc64le": "ppc64le", "s390": "s390",
    "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64", "parisc": "parisc",
    "parisc64": "parisc64", "m68k": "m68k", "sh": "sh", "sheb": "sheb",
}


class DockerProfile(Record):
    """A resolved Docker/OCI profile: the policy plus what the policy model does not carry.

    ``skipped`` lists the names of entries left out by includes/excludes, for reports.
    """

    __slots__ = ("policy", "flags", "listener_path", "listener_metadata", "skipped")
    _defaults = {"flags": (), "listener_path": None, "listener_metadata": None, "skipped": ()}
    policy: Policy
    flags: tuple[str, ...]
    listener_path: str | None
    listener_metadata: str | None
    skipped: tuple[str, ...]


def _kernel_version() -> tuple[int, int]:
    rel = os.uname().release
    parts = rel.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _parse_kver(text: str) -> tuple[int, int]:
    parts = str(text).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, field_: str, msg: str) -> ProfileError:
        return ProfileError(f"{self.source}: {field_}: {msg}" if field_ else f"{self.source}: {msg}")


def _action(w: _Where, where: str, name: Any, errno_ret: Any) -> Action:
    if not isinstance(name, str) or name not in ACTIONS:
        raise w.err(where, f"unknown action {name!r} (expected one of {', '.join(ACTIONS)})")
    kind = ACTIONS[name]
    if kind in (ActionKind.ERRNO, ActionKind.TRACE):
        data = 1 if errno_ret is None else errno_ret
        if isinstance(data, bool) or not isinstance(data, int):
            raise w.err(where, f"errnoRet must be an integer, not {data!r}")
        limit = 4095 if kind is ActionKind.ERRNO else 65535
        if not 0 <= data <= limit:
            raise w.err(where, f"errnoRet {data} out of range 0-{limit}")
        return Action(kind, data)
    return Action(kind)


def _int(w: _Where, where: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise w.err(where, f"expected an integer, got {v!r}")
    if not lo <= v <= hi:
        raise w.err(where, f"{v} out of range {lo}-{hi}")
    return v


def _condition(w: _Where, where: str, a: Any) -> Condition:
    if not isinstance(a, dict):
        raise w.err(where, f"expected an object, got {type(a).__name__}")
    unknown = set(a) - {"index", "value", "valueTwo", "op"}
    if unknown:
        raise w.err(where, f"unknown field {sorted(unknown)[0]!r}")
    for k in ("index", "op"):
        if k not in a:
            raise w.err(where, f"missing {k!r}")
    index = _int(w, where + ".index", a["index"], 0, 5)
    op = OPS.get(a["op"]) if isinstance(a["op"], str) else None
    if op is None:
        raise w.err(where + ".op", f"unknown operator {a['op']!r} (expected one of {', '.join(OPS)})")
    value = _int(w, where + ".value", a.get("value", 0), 0, 2**64 - 1)
    two = _int(w, where + ".valueTwo", a.get("valueTwo", 0), 0, 2**64 - 1)
    if op is Op.MASKED_EQ:  # libseccomp: (arg & value) == valueTwo
        if two & ~value:
            # Never true; keep it expressible: a mask that keeps the value's bits is a contradiction
            # the compiler proves false. Represent faithfully as (arg & mask) == value.
            pass
        return Condition(index, Op.MASKED_EQ, two, mask=value)
    return Condition(index, op, value)


def _names_ok(w: _Where, where: str, names: Iterable[Any]) -> list[str]:
    out = []
    known = _arch.all_syscall_names()
    for j, n in enumerate(names):
        if not isinstance(n, str) or not n:
            raise w.err(f"{where}[{j}]", f"syscall name must be a non-empty string, got {n!r}")
        if n not in known:
            raise w.err(f"{where}[{j}]", _arch.unknown_syscall_message(n))
        out.append(n)
    return out


def parse(doc: Any, source: str = "<profile>", *, arch: str | None = None, caps: Iterable[str] | None = None,
          kernel: tuple[int, int] | None = None) -> DockerProfile:
    """Resolve a Docker/OCI seccomp document (already JSON-decoded) for a host.

    ``arch`` is the primary architecture (default: the native one); ``caps`` the capability
    set (default: Docker's); ``kernel`` the (major, minor) kernel version (default: running).
    """
    w = _Where(source)
    if not isinstance(doc, dict):
        raise w.err("", "a seccomp profile must be a JSON object")
    known_keys = {"defaultAction", "defaultErrnoRet", "architectures", "archMap", "syscalls", "flags",
                  "listenerPath", "listenerMetadata"}
    unknown = set(doc) - known_keys
    if unknown:
        raise w.err(sorted(unknown)[0], "unknown field")
    if "defaultAction" not in doc:
        raise w.err("defaultAction", "missing")
    default = _action(w, "defaultAction", doc["defaultAction"], doc.get("defaultErrnoRet"))
    try:
        primary = _arch.get(arch) if arch else _arch.native()
    except _arch.UnknownArch as e:
        raise ProfileError(str(e)) from None
    cap_set = {c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
               for c in (DOCKER_DEFAULT_CAPS if caps is None else caps)}
    kver = kernel or _kernel_version()

    # Architectures: archMap entry of the primary arch, else the listed ones, else native only.
    arches: list[str] = []
    listed = doc.get("architectures") or []
    if not isinstance(listed, list):
        raise w.err("architectures", "expected a list")
    for i, a in enumerate(listed):
        try:
            arches.append(_arch.get(a).name)
        except (_arch.UnknownArch, AttributeError):
            raise w.err(f"architectures[{i}]", f"unknown architecture {a!r}") from None
    amap = doc.get("archMap")
    if amap is not None:
        if not isinstance(amap, list):
            raise w.err("archMap", "expected a list")
        arches = []
        for i, entry in enumerate(amap):
            if not isinstance(entry, dict) or "architecture" not in entry:
                raise w.err(f"archMap[{i}]", "expected an object with 'architecture'")
            try:
                main = _arch.get(entry["architecture"])
                subs = [_arch.get(s) for s in entry.get("subArchitectures") or []]
            except (_arch.UnknownArch, AttributeError) as e:
                raise w.err(f"archMap[{i}]", str(e)) from None
            if main == primary:
                arches = [main.name] + [s.name for s in subs]
        if not arches:
            arches = [primary.name]
    if not arches:
        arches = [primary.name]
    host = GO_ARCH.get(primary.name, primary.name)

    flags = doc.get("flags") or []
    if not isinstance(flags, list):
        raise w.err("flags", "expected a list")
    for i, f in enumerate(flags):
        if f not in FLAGS:
            raise w.err(f"flags[{i}]", f"unknown flag {f!r} (expected one of {', '.join(FLAGS)})")
    for k in ("listenerPath", "listenerMetadata"):
        if k in doc and not isinstance(doc[k], str):
            raise w.err(k, "expected a string")

    syscalls = doc.get("syscalls") or []
    if not isinstance(syscalls, list):
        raise w.err("syscalls", "expected a list")
    rules: list[Rule] = []
    skipped: list[str] = []
    seen: dict[tuple, tuple[Action, str]] = {}
    for i, call in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(call, dict):
            raise w.err(where, "expected an object")
        unknown = set(call) - {"names", "name", "action", "errnoRet", "args", "comment", "includes", "excludes"}
        if unknown:
            raise w.err(f"{where}.{sorted(unknown)[0]}", "unknown field")
        if "names" in call:
            if not isinstance(call["names"], list):
                raise w.err(f"{where}.names", "expected a list of syscall names")
            names = _names_ok(w, f"{where}.names", call["names"])
        elif "name" in call:
            names = _names_ok(w, f"{where}.name", [call["name"]])
        else:
            raise w.err(where, "missing 'names'")
        if "action" not in call:
            raise w.err(f"{where}.action", "missing")
        action = _action(w, f"{where}.action", call["action"], call.get("errnoRet"))
        args = call.get("args") or []
        if not isinstance(args, list):
            raise w.err(f"{where}.args", "expected a list")
        conds = [_condition(w, f"{where}.args[{j}]", a) for j, a in enumerate(args)]

        inc, exc = call.get("includes") or {}, call.get("excludes") or {}
        for label, filt in (("includes", inc), ("excludes", exc)):
            if not isinstance(filt, dict) or set(filt) - {"caps", "arches", "minKernel"}:
                raise w.err(f"{where}.{label}", "expected an object with caps, arches, minKernel")
        if not _applies(w, where, inc, exc, host, cap_set, kver):
            skipped.extend(names)
            continue
        # runc: conditions on one index more than once become separate (OR-ed) rules.
        idx = [c.arg for c in conds]
        groups = [[c] for c in conds] if len(set(idx)) < len(idx) else [conds]
        for n in names:
            for g in groups:
                key = (n, tuple(g))
                prev = seen.get(key)
                if prev is not None and prev[0] != action:
                    raise w.err(where, f"syscall {n!r} has contradicting rules: {prev[0]} in {prev[1]} "
                                       f"and {action} here for the same arguments")
                seen[key] = (action, where)
                try:
                    rules.append(Rule(n, action, tuple(g)))
                except PolicyError as e:
                    raise w.err(where, str(e)) from None
    try:
        policy = Policy(default, tuple(rules), tuple(arches))
    except PolicyError as e:
        raise w.err("", str(e)) from None
    return DockerProfile(policy, tuple(flags), doc.get("listenerPath"), doc.get("listenerMetadata"),
                         tuple(skipped))


def _applies(w: _Where, where: str, inc: dict, exc: dict, host: str, caps: set[str],
             kver: tuple[int, int]) -> bool:
    def caplist(v: Any, label: str) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
            raise w.err(f"{where}.{label}.caps", "expected a list of capability names")
        return [c.upper() for c in v]

    def archlist(v: Any, label: str) -> list[str]:
        if not isinstance(v, list) or not all(isinstance(c, str) for c in v):
            raise w.err(f"{where}.{label}.arches", "expected a list of arch names")
        return v

    if "arches" in inc and host not in archlist(inc["arches"], "includes"):
        return False
    if "arches" in exc and host in archlist(exc["arches"], "excludes"):
        return False
    if "caps" in inc and not all(c in caps for c in caplist(inc["caps"], "includes")):
        return False
    if "caps" in exc and any(c in caps for c in caplist(exc["caps"], "excludes")):
        return False
    if "minKernel" in inc:
        try:
            need = _parse_kver(inc["minKernel"])
        except (ValueError, IndexError):
            raise w.err(f"{where}.includes.minKernel", f"bad kernel version {inc['minKernel']!r}") from None
        if kver < need:
            return False
    if "minKernel" in exc:
        raise w.err(f"{where}.excludes.minKernel", "minKernel is only valid in includes")
    return True


def loads(text: str | bytes, source: str = "<profile>", **kw: Any) -> DockerProfile:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfileError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ProfileError(f"{source}: not UTF-8 text ({e.reason})") from None
    return parse(doc, source, **kw)


def load(path: str, **kw: Any) -> DockerProfile:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror}") from None
    return loads(data, path, **kw)
