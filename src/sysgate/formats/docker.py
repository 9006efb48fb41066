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
* A systemd-style ``@group`` in ``names`` stands for its members (a sysgate extension).

The writer (:func:`dump`, :func:`export`) groups rules with the same action and arguments
into one entry; tests of the low 32 bits become masked tests, and two tests of one argument
are merged (or split into alternatives), because runc would OR them.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from typing import Any, Iterable

from .. import arch as _arch
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from ..immutable import Record
from . import ProfileError, jsondecode, read_file

__all__ = ["DockerProfile", "load", "loads", "parse", "dump", "dumps", "export", "DOCKER_DEFAULT_CAPS", "ACTIONS",
           "OPS"]

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

OCI_KEYS = ("defaultAction", "defaultErrnoRet", "architectures", "syscalls", "flags", "listenerPath",
            "listenerMetadata")

# What sysgate.formats.registry may pass to loads().
LOAD_OPTIONS = ("arch", "caps", "unknown_names")

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
    if op is Op.MASKED_EQ:
        # libseccomp (so runc and Docker) tests (arg & value) == (valueTwo & value): bits of valueTwo
        # outside the mask are dropped, not a never-true test (checked in tests/test_libseccomp_diff.py).
        return Condition(index, Op.MASKED_EQ, two & value, mask=value)
    return Condition(index, op, value)


def _names_ok(w: _Where, where: str, names: Iterable[Any], known: dict[str, int] | None = None,
              unknown_names: list[str] | None = None) -> list[str]:
    """Validated names; a systemd-style ``@group`` stands for its members. ``known``: a table whose
    names need no other check (the primary arch's, where almost every name is). A name no
    architecture has is an error, or, when the caller collects ``unknown_names``, left out and
    recorded there (``source: place: name``)."""
    out: list[str] = []
    seen: set[str] = set()
    for j, n in enumerate(names):
        if not isinstance(n, str) or not n:
            raise w.err(f"{where}[{j}]", f"syscall name must be a non-empty string, got {n!r}")
        if known is not None and n in known:
            members: tuple[str, ...] | list[str] = (n,)
        elif n[0] != "@" and _arch.is_syscall_name(n):  # what expand(n) checks, minus its call
            members = (n,)
        else:
            from .syscall_names import UnknownName, expand

            try:
                members = expand(n)
            except UnknownName as e:
                if unknown_names is None:
                    raise w.err(f"{where}[{j}]", str(e)) from None
                unknown_names.append(f"{w.source}: {where}[{j}]: {n}")
                continue
        for m in members:
            if m not in seen:
                seen.add(m)
                out.append(m)
    return out


def parse(doc: Any, source: str = "<profile>", *, arch: str | None = None, caps: Iterable[str] | None = None,
          kernel: tuple[int, int] | None = None, oci: bool = False,
          unknown_names: list[str] | None = None) -> DockerProfile:
    """Resolve a Docker/OCI seccomp document (already JSON-decoded) for a host.

    ``arch`` is the primary architecture (default: the native one); ``caps`` the capability
    set (default: Docker's); ``kernel`` the (major, minor) kernel version (default: running).
    ``oci`` accepts only the OCI runtime-spec fields (no moby extensions). ``unknown_names``: when a
    list is given, syscall names no architecture has are left out and listed there instead of
    being an error (``--skip-unknown``).
    """
    w = _Where(source)
    if not isinstance(doc, dict):
        raise w.err("", "a seccomp profile must be a JSON object")
    known_keys = set(OCI_KEYS) if oci else set(OCI_KEYS) | {"archMap"}
    unknown = set(doc) - known_keys
    if unknown:
        bad = sorted(unknown)[0]
        raise w.err(bad, "moby extension, not an OCI runtime-spec field" if oci and bad == "archMap"
                    else "unknown field")
    if "defaultAction" not in doc:
        raise w.err("defaultAction", "missing")
    default = _action(w, "defaultAction", doc["defaultAction"], doc.get("defaultErrnoRet"))
    # One object per distinct action: the compiler compares actions a lot, and equal objects
    # that are the same object compare at once.
    interned: dict[Action, Action] = {default: default}
    try:
        primary = _arch.get(arch) if arch else _arch.native()
    except _arch.UnknownArch as e:
        raise ProfileError(str(e)) from None
    known = primary.syscalls  # its names need no other check (and lowering needs the table next)
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
        allowed = {"names", "action", "errnoRet", "args"}
        if not oci:
            allowed |= {"name", "comment", "includes", "excludes"}
        unknown = set(call) - allowed
        if unknown:
            bad = sorted(unknown)[0]
            raise w.err(f"{where}.{bad}", "moby extension, not an OCI runtime-spec field"
                        if oci and bad in ("name", "comment", "includes", "excludes") else "unknown field")
        if "names" in call:
            if not isinstance(call["names"], list):
                raise w.err(f"{where}.names", "expected a list of syscall names")
            names = _names_ok(w, f"{where}.names", call["names"], known, unknown_names)
        elif "name" in call:
            names = _names_ok(w, f"{where}.name", [call["name"]], known, unknown_names)
        else:
            raise w.err(where, "missing 'names'")
        if "action" not in call:
            raise w.err(f"{where}.action", "missing")
        action = _action(w, f"{where}.action", call["action"], call.get("errnoRet"))
        action = interned.setdefault(action, action)
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
        groups = [(c,) for c in conds] if len(set(idx)) < len(idx) else [tuple(conds)]
        decided = (action, where)
        for n in names:
            for g in groups:
                key = (n, g)
                prev = seen.get(key)
                if prev is not None and prev[0] != action:
                    raise w.err(where, f"syscall {n!r} has contradicting rules: {prev[0]} in {prev[1]} "
                                       f"and {action} here for the same arguments")
                seen[key] = decided
                try:
                    rules.append(Rule(n, action, g))
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
        doc = jsondecode.loads(text)  # json.loads, without importing json unless the text is bad
    except ValueError as e:
        import json

        if isinstance(e, json.JSONDecodeError):
            raise ProfileError(f"{source}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}") from None
        if isinstance(e, UnicodeDecodeError):
            raise ProfileError(f"{source}: not UTF-8 text ({e.reason})") from None
        raise
    return parse(doc, source, **kw)


def load(path: str, **kw: Any) -> DockerProfile:
    data = read_file(path)
    return loads(data, path, **kw)


# ----------------------------------------------------------------------------------------- writer

_ACTION_NAMES = {
    ActionKind.KILL_PROCESS: "SCMP_ACT_KILL_PROCESS", ActionKind.KILL_THREAD: "SCMP_ACT_KILL_THREAD",
    ActionKind.TRAP: "SCMP_ACT_TRAP", ActionKind.ERRNO: "SCMP_ACT_ERRNO", ActionKind.TRACE: "SCMP_ACT_TRACE",
    ActionKind.ALLOW: "SCMP_ACT_ALLOW", ActionKind.LOG: "SCMP_ACT_LOG", ActionKind.USER_NOTIF: "SCMP_ACT_NOTIFY",
}
_OP_NAMES = {op: name for name, op in OPS.items()}


def syscall_name(syscall: str | int, policy: Policy, fmt: str, losses: list[str]) -> str | None:
    """The name to write for a rule's syscall: raw numbers only translate for a one-arch policy."""
    if isinstance(syscall, str):
        return syscall
    if len(policy.arches) == 1:
        name = _arch.get(policy.arches[0]).name_of(syscall)
        if name:
            return name
    losses.append(f"syscall number {syscall}: {fmt} names syscalls, and the number has no one name "
                  f"for this policy's architectures; its rules were dropped")
    return None


def args_alternatives(conds: tuple[Condition, ...], wide: bool) -> tuple[tuple[Condition, ...], ...] | None:
    """A rule's conditions as alternatives that each test every argument at most once (runc ORs
    two tests of one argument). ``wide``: some covered ABI has 64-bit arguments, so tests of
    the low 32 bits must be re-expressed. None when that cannot be done exactly."""
    from . import logic as L

    try:
        d = L.TRUE
        for c in conds:
            if c.width == 32 and not wide:  # the kernel zero-extends: a full compare is the same
                c = Condition(c.arg, c.op, c.value, c.mask if c.op is Op.MASKED_EQ else (1 << 64) - 1)
            d = L.and_(d, L.as_64bit(c))
        out: list[tuple[Condition, ...]] = []
        for conj in d:
            per_arg: list[L.DNF] = []
            for index in sorted({c.arg for c in conj}):
                opts = L.single_arg_options(index, [c for c in conj if c.arg == index])
                if opts is None:
                    return None
                per_arg.append(opts)
            combos: L.DNF = L.TRUE
            for opts in per_arg:
                combos = L.and_(combos, opts)
            out.extend(combos)
            if len(out) > L.MAX_WRITTEN:
                return None
        return tuple(dict.fromkeys(out))
    except L.TooComplex:
        return None


def _arg_json(c: Condition) -> dict[str, Any]:
    if c.op is Op.MASKED_EQ:  # libseccomp: (arg & value) == valueTwo
        return {"index": c.arg, "value": c.mask, "valueTwo": c.value, "op": "SCMP_CMP_MASKED_EQ"}
    return {"index": c.arg, "value": c.value, "op": _OP_NAMES[c.op]}


def dump(src: "Policy | DockerProfile", *, oci: bool = False, fmt: str = "") -> tuple[dict[str, Any], list[str]]:
    """The Docker (or OCI ``linux.seccomp``) document for a policy, and the list of losses.

    Rules with the same action and arguments share one entry's ``names``. ``DockerProfile``
    extras (flags, listener path and metadata) are kept.
    """
    from . import logic as L

    prof = src if isinstance(src, DockerProfile) else DockerProfile(src)
    policy = prof.policy
    fmt = fmt or ("OCI" if oci else "Docker")
    losses: list[str] = []
    doc: dict[str, Any] = {"defaultAction": _ACTION_NAMES[policy.default.kind]}
    if policy.default.kind in (ActionKind.ERRNO, ActionKind.TRACE):
        doc["defaultErrnoRet"] = policy.default.data
    if policy.arches:
        doc["architectures"] = [_arch.get(a).libseccomp for a in policy.arches]
    if prof.flags:
        doc["flags"] = list(prof.flags)
    if prof.listener_path is not None:
        doc["listenerPath"] = prof.listener_path
    if prof.listener_metadata is not None:
        doc["listenerMetadata"] = prof.listener_metadata
    if policy.bad_arch != Action(ActionKind.KILL_PROCESS):
        losses.append(f"{fmt} profiles cannot choose the action for other architectures "
                      f"(policy: {policy.bad_arch}; runtimes kill the process)")
    wide = not policy.arches or any(_arch.get(a).bits == 64 for a in policy.arches)
    groups: dict[tuple, list[str]] = {}
    for syscall in policy.syscalls():
        name = syscall_name(syscall, policy, fmt, losses)
        if name is None:
            continue
        for conds, action in L.strictest_first(policy.rules_for(syscall)):
            alts = args_alternatives(conds, wide)
            if alts is None:
                rule = Rule(syscall, action, conds)
                losses.append(f"{name}: rule '{rule}' cannot be written with one test per argument "
                              f"(runc ORs tests of the same argument) in at most {L.MAX_WRITTEN} entries; "
                              f"dropped")
                continue
            for alt in alts:
                key = (action, tuple(sorted(alt, key=lambda c: c.arg)))
                names = groups.setdefault(key, [])
                if name not in names:
                    names.append(name)
    entries = []
    for (action, args), names in sorted(groups.items(), key=lambda kv: (len(kv[0][1]) > 0,)):
        entry: dict[str, Any] = {"names": sorted(names), "action": _ACTION_NAMES[action.kind]}
        if action.kind in (ActionKind.ERRNO, ActionKind.TRACE):
            entry["errnoRet"] = action.data
        if args:
            entry["args"] = [_arg_json(c) for c in args]
        entries.append(entry)
    doc["syscalls"] = entries
    return doc, losses


def dumps(src: "Policy | DockerProfile", *, oci: bool = False) -> str:
    import json

    doc, _ = dump(src, oci=oci)
    return json.dumps(doc, indent=2) + "\n"


def export(src: "Policy | DockerProfile", *, oci: bool = False) -> "Exported":
    """The profile as Docker (``oci``: OCI) JSON text, with its losses."""
    import json

    from . import Exported

    doc, losses = dump(src, oci=oci)
    return Exported(json.dumps(doc, indent=2) + "\n", tuple(losses))
