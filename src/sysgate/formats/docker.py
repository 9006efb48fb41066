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
* Entries go in file order as runc adds them to libseccomp: one whose action is the default is
  skipped, the first without ``args`` decides every call of its syscall (see :func:`parse`).
* Every value is type-checked (:mod:`.jsonfields`); fields Docker/podman write are read, other
  unknown fields are ignored with a :class:`~sysgate.formats.ProfileWarning` (near misses of known
  fields are errors); an errno above 4095 is clamped to 4095, as the kernel clamps it.

The writer (:func:`dump`, :func:`export`) groups rules with the same action and arguments
into one entry; tests of the low 32 bits become masked tests, and two tests of one argument
are merged (or split into alternatives), because runc would OR them.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from . import Exported

from .. import arch as _arch
from .. import capabilities
from ..immutable import Record
from ..policy import Action, ActionKind, Condition, Op, Policy, PolicyError, Rule
from . import ProfileError, load_json, read_file, warn
from . import jsonfields as F

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


MAX_ERRNO = 4095  # the kernel returns -min(data, MAX_ERRNO) for SECCOMP_RET_ERRNO

FLAGS = ("SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
         "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")

# moby's Go arch names, as used in includes/excludes.arches, for each sysgate arch.
GO_ARCH = {a.name: a.go for a in _arch.ARCHES}


class DockerProfile(Record):
    """A resolved Docker/OCI profile: the policy plus what the policy model does not carry.

    ``skipped`` lists the names of entries left out by includes/excludes, for reports;
    ``shadowed`` the ``syscalls[i]: name`` places of entries runc + libseccomp would not use (an
    earlier unconditional entry decides that syscall; see :func:`parse`).
    """

    __slots__ = ("policy", "flags", "listener_path", "listener_metadata", "skipped", "shadowed")
    _defaults = {"flags": (), "listener_path": None, "listener_metadata": None, "skipped": (), "shadowed": ()}
    policy: Policy
    flags: tuple[str, ...]
    listener_path: str | None
    listener_metadata: str | None
    skipped: tuple[str, ...]
    shadowed: tuple[str, ...]

    def dropped_settings(self, fmt: str) -> list[str]:
        """One line per setting that a format without them (``fmt``) cannot carry: the filter
        flags and the notification listener are how a runtime installs the filter, not decisions."""
        out = []
        if self.flags:
            out.append(f"{fmt} has no filter flags: {', '.join(self.flags)} not written")
        if self.listener_path is not None or self.listener_metadata is not None:
            out.append(f"{fmt} has no notification listener settings: listenerPath/listenerMetadata not written")
        return out


def _kernel_version() -> tuple[int, int]:
    rel = os.uname().release
    parts = rel.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _parse_kver(text: str) -> tuple[int, int]:
    """moby's ``"<kernel>.<major>"`` (both decimal); ValueError otherwise."""
    major, dot, minor = text.partition(".")
    if not (dot and major.isascii() and major.isdigit() and minor.isascii() and minor.isdigit()):
        raise ValueError(text)
    return int(major), int(minor)


# Fields real producers write. moby: archMap, comment, includes/excludes, the legacy name;
# containers/common (podman): defaultErrno and a rule's errno, errno *names* that Go reads and
# ignores (errnoRet/defaultErrnoRet are what counts).
_MOBY_TOP = ("archMap", "defaultErrno")
_RULE_OCI = ("names", "action", "errnoRet", "args")
_MOBY_RULE = ("name", "comment", "includes", "excludes", "errno")
_ARG_KEYS = ("index", "value", "valueTwo", "op")
_FILTER_KEYS = ("caps", "arches", "minKernel")
_IGNORED_BY = "Go's encoding/json (Docker, runc, podman)"


class _Where:
    def __init__(self, source: str) -> None:
        self.source = source

    def err(self, field_: str, msg: str) -> ProfileError:
        return ProfileError(f"{self.source}: {field_}: {msg}" if field_ else f"{self.source}: {msg}")


def _action(w: _Where, where: str, name: Any, errno_ret: Any, ret_where: str) -> Action:
    if not isinstance(name, str) or name not in ACTIONS:
        raise w.err(where, f"unknown action {name!r} (expected one of {', '.join(ACTIONS)})")
    kind = ACTIONS[name]
    if errno_ret is not None and (isinstance(errno_ret, bool) or not isinstance(errno_ret, int)):
        raise w.err(ret_where, f"expected an integer, got {F.type_name(errno_ret)}")
    if kind in (ActionKind.ERRNO, ActionKind.TRACE):
        data = 1 if errno_ret is None else errno_ret
        if not 0 <= data <= 65535:
            # runc truncates to 16 bits (70000 would become errno 4464, 65536 a fake success)
            raise w.err(ret_where, f"{data} out of range 0-65535 (the filter's return data is 16 bits)")
        if kind is ActionKind.ERRNO and data > MAX_ERRNO:
            # Docker reads it (moby's own fixture example.json has 12345); the kernel returns
            # -min(data, MAX_ERRNO) (kernel/seccomp.c), so that is what the policy says.
            warn(f"{w.source}: {ret_where}: errno {data} above {MAX_ERRNO}: the kernel returns {MAX_ERRNO} "
                 f"(MAX_ERRNO) for it, and so does this filter")
            data = MAX_ERRNO
        return Action(kind, data)
    return Action(kind)


def _int(w: _Where, where: str, v: Any, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise w.err(where, f"expected an integer, got {F.type_name(v)}")
    if not lo <= v <= hi:
        raise w.err(where, f"{v} out of range {lo}-{hi}")
    return v


def _condition(w: _Where, where: str, a: Any) -> Condition:
    if not isinstance(a, dict):
        raise w.err(where, f"expected an object, got {F.type_name(a)}")
    F.check_keys(w.source, where, a, _ARG_KEYS, ignored_by=_IGNORED_BY)
    index = _int(w, where + ".index", a.get("index"), 0, 5) if a.get("index") is not None else None
    if index is None:
        raise w.err(where, "missing 'index'")
    op_name = F.get_str(w.source, where, a, "op", required=True)
    op = OPS.get(op_name)  # type: ignore[arg-type]
    if op is None:
        raise w.err(where + ".op", f"unknown operator {op_name!r} (expected one of {', '.join(OPS)})")
    # absent or null: 0, as Go reads them
    value = 0 if a.get("value") is None else _int(w, where + ".value", a["value"], 0, 2**64 - 1)
    two = 0 if a.get("valueTwo") is None else _int(w, where + ".valueTwo", a["valueTwo"], 0, 2**64 - 1)
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


def _arch_name(w: _Where, where: str, v: Any) -> str:
    if not isinstance(v, str):
        raise w.err(where, f"expected an architecture name, got {F.type_name(v)}")
    try:
        return _arch.get(v).name
    except _arch.UnknownArch as e:
        raise w.err(where, str(e)) from None


def _arches(w: _Where, doc: dict, primary: _arch.Arch) -> list[str]:
    """The covered arches: the primary's archMap entry, else ``architectures``, else the primary."""
    arches = [_arch_name(w, f"architectures[{i}]", a)
              for i, a in enumerate(F.get_list(w.source, "", doc, "architectures") or ())]
    amap = F.get_list(w.source, "", doc, "archMap")
    if amap is not None:
        arches = []
        for i, entry in enumerate(amap):
            where = f"archMap[{i}]"
            if not isinstance(entry, dict):
                raise w.err(where, f"expected an object, got {F.type_name(entry)}")
            F.check_keys(w.source, where, entry, ("architecture", "subArchitectures"), ignored_by=_IGNORED_BY)
            main = _arch_name(w, f"{where}.architecture", F.get_str(w.source, where, entry, "architecture",
                                                                    required=True))
            subs = [_arch_name(w, f"{where}.subArchitectures[{j}]", s)
                    for j, s in enumerate(F.get_list(w.source, where, entry, "subArchitectures") or ())]
            if main == primary.name:
                arches = [main] + subs
    return list(dict.fromkeys(arches)) or [primary.name]


def _filter(w: _Where, where: str, filt: Any, label: str) -> dict[str, Any]:
    """An includes/excludes object, validated whether or not the entry is reached: a misspelt cap
    or arch or a bad minKernel would otherwise never match and go unnoticed."""
    if filt is None:
        return {}
    here = f"{where}.{label}"
    if not isinstance(filt, dict):
        raise w.err(here, f"expected an object with caps, arches, minKernel; got {F.type_name(filt)}")
    F.check_keys(w.source, here, filt, _FILTER_KEYS, ignored_by=_IGNORED_BY)
    out: dict[str, Any] = {}
    caps = F.get_list(w.source, here, filt, "caps")
    if caps is not None:
        for i, c in enumerate(F.str_list(w.source, f"{here}.caps", caps, "a capability name")):
            if c not in capabilities.NAMES:
                raise w.err(f"{here}.caps[{i}]", f"unknown capability {c!r}{capabilities.hint(c)}")
        out["caps"] = caps
    arches = F.get_list(w.source, here, filt, "arches")
    if arches is not None:
        go_names = set(GO_ARCH.values())
        for i, a in enumerate(F.str_list(w.source, f"{here}.arches", arches, "an architecture name")):
            if a not in go_names:
                try:
                    want: str | None = GO_ARCH.get(_arch.get(a).name)
                except _arch.UnknownArch:
                    want = None
                hint = f" (Go's name for it is {want!r})" if want else ""
                raise w.err(f"{here}.arches[{i}]", f"unknown architecture {a!r}{hint}; expected Go's names: "
                                                   f"{', '.join(sorted(go_names))}")
        out["arches"] = arches
    mk = filt.get("minKernel")
    if mk is not None:
        if label == "excludes":
            raise w.err(f"{here}.minKernel", "minKernel is only valid in includes")
        if not isinstance(mk, str):
            raise w.err(f"{here}.minKernel", f'expected a string "<kernel>.<major>", got {F.type_name(mk)}')
        try:
            out["minKernel"] = _parse_kver(mk)
        except ValueError:
            raise w.err(f"{here}.minKernel", f'bad kernel version {mk!r} (expected "<kernel>.<major>", '
                                             f'such as "5.8")') from None
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

    Entries are resolved as runc adds them to libseccomp, in file order: an entry whose action is
    the default action is skipped (runc skips it; libseccomp would refuse it); the first entry
    without ``args`` for a syscall decides every call of it, replacing the conditional entries
    before it, and later entries for that syscall are ignored (listed in ``shadowed``); two
    conditional entries with the same conditions and different actions are an error (libseccomp:
    EEXIST, so runc fails).
    """
    w = _Where(source)
    if not isinstance(doc, dict):
        raise w.err("", "a seccomp profile must be a JSON object")
    if oci:
        for bad in sorted(set(doc) & set(_MOBY_TOP) - {"defaultErrno"}):
            raise w.err(bad, "moby extension, not an OCI runtime-spec field")
    F.check_keys(source, "", doc, OCI_KEYS if oci else OCI_KEYS + _MOBY_TOP, ignored_by=_IGNORED_BY)
    F.get_str(source, "", doc, "defaultErrno")
    default = _action(w, "defaultAction", F.get_str(source, "", doc, "defaultAction", required=True),
                      doc.get("defaultErrnoRet"), "defaultErrnoRet")
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
    arches = _arches(w, doc, primary)
    host = GO_ARCH.get(primary.name, primary.name)

    flags = F.get_list(source, "", doc, "flags") or []
    for i, f in enumerate(flags):
        if f not in FLAGS:
            raise w.err(f"flags[{i}]", f"unknown flag {f!r} (expected one of {', '.join(FLAGS)})")
    listener_path = F.get_str(source, "", doc, "listenerPath")
    listener_metadata = F.get_str(source, "", doc, "listenerMetadata")

    syscalls = F.get_list(source, "", doc, "syscalls") or []
    rule_keys = _RULE_OCI if oci else _RULE_OCI + _MOBY_RULE
    # name -> its rules so far, in order; a name decided by an unconditional entry maps to its place
    by_name: dict[str, list[Rule]] = {}
    decided: dict[str, str] = {}
    skipped: list[str] = []
    shadowed: list[str] = []
    seen: dict[tuple, tuple[Action, str]] = {}
    for i, call in enumerate(syscalls):
        where = f"syscalls[{i}]"
        if not isinstance(call, dict):
            raise w.err(where, f"expected an object, got {F.type_name(call)}")
        if oci:
            for bad in sorted(set(call) & set(_MOBY_RULE)):
                raise w.err(f"{where}.{bad}", "moby extension, not an OCI runtime-spec field")
        F.check_keys(source, where, call, rule_keys, ignored_by=_IGNORED_BY)
        F.get_str(source, where, call, "comment")
        F.get_str(source, where, call, "errno")
        listed = F.get_list(source, where, call, "names")
        single = F.get_str(source, where, call, "name")
        if listed and single:
            raise w.err(where, "both 'name' and 'names' (moby refuses that: use one)")
        if listed is not None:
            names = _names_ok(w, f"{where}.names", listed, known, unknown_names)
        elif single is not None:
            names = _names_ok(w, f"{where}.name", [single], known, unknown_names)
        else:
            raise w.err(where, "missing 'names'")
        action = _action(w, f"{where}.action", F.get_str(source, where, call, "action", required=True),
                         call.get("errnoRet"), f"{where}.errnoRet")
        action = interned.setdefault(action, action)
        args = F.get_list(source, where, call, "args") or []
        conds = [_condition(w, f"{where}.args[{j}]", a) for j, a in enumerate(args)]
        inc = _filter(w, where, call.get("includes"), "includes")
        exc = _filter(w, where, call.get("excludes"), "excludes")
        if not _applies(inc, exc, host, cap_set, kver):
            skipped.extend(names)
            continue
        if action == default:
            continue  # runc skips it: libseccomp refuses a rule with the default action (EACCES)
        # runc: conditions on one index more than once become separate (OR-ed) rules.
        idx = [c.arg for c in conds]
        groups = [(c,) for c in conds] if len(set(idx)) < len(idx) else [tuple(conds)]
        place = (action, where)
        for n in names:
            if n in decided:
                shadowed.append(f"{where}: {n} (decided by {decided[n]})")
                continue
            if not conds:
                # libseccomp: an unconditional rule replaces the syscall's conditional ones, and
                # keeps its place against any later rule for the syscall (first one wins).
                decided[n] = where
                try:
                    by_name[n] = [Rule(n, action, ())]
                except PolicyError as e:
                    raise w.err(where, str(e)) from None
                continue
            rules = by_name.setdefault(n, [])
            for g in groups:
                key = (n, g)
                prev = seen.get(key)
                if prev is not None and prev[0] != action:
                    raise w.err(where, f"syscall {n!r} has contradicting rules: {prev[0]} in {prev[1]} "
                                       f"and {action} here for the same arguments (libseccomp refuses "
                                       f"the second, EEXIST)")
                seen[key] = place
                try:
                    rules.append(Rule(n, action, g))
                except PolicyError as e:
                    raise w.err(where, str(e)) from None
    rules_out = tuple(r for rs in by_name.values() for r in rs)
    try:
        policy = Policy(default, rules_out, tuple(arches))
    except PolicyError as e:
        raise w.err("", str(e)) from None
    return DockerProfile(policy, tuple(flags), listener_path, listener_metadata, tuple(skipped), tuple(shadowed))


def _applies(inc: dict, exc: dict, host: str, caps: set[str], kver: tuple[int, int]) -> bool:
    """moby's setupSeccomp: includes need every listed cap, excludes any; arches against the host."""
    if "arches" in inc and host not in inc["arches"]:
        return False
    if "arches" in exc and host in exc["arches"]:
        return False
    if "caps" in inc and not all(c in caps for c in inc["caps"]):
        return False
    if "caps" in exc and any(c in caps for c in exc["caps"]):
        return False
    if "minKernel" in inc and kver < inc["minKernel"]:
        return False
    return True


def loads(text: str | bytes, source: str = "<profile>", **kw: Any) -> DockerProfile:
    return parse(load_json(text, source), source, **kw)


def load_doc(doc: Any, source: str = "<profile>", **kw: Any) -> DockerProfile:
    """:func:`parse`: the reader of an already decoded document (see formats.catalog)."""
    return parse(doc, source, **kw)


# Keys only a Docker/OCI seccomp object has at its top (and moby's extensions).
_TOP_KEYS = frozenset(OCI_KEYS + _MOBY_TOP)


def detect_json(doc: Any) -> float:
    """Certain for an object of seccomp profile keys only; less sure when it has others (a wrapper's)."""
    if not isinstance(doc, dict) or not ("defaultAction" in doc or isinstance(doc.get("syscalls"), list)):
        return 0.0
    return 1.0 if _TOP_KEYS.issuperset(doc) else 0.5


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


def dump(src: Policy | DockerProfile, *, oci: bool = False, fmt: str = "") -> tuple[dict[str, Any], list[str]]:
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
        # runc + libseccomp do not let the strictest rule win: a rule without args decides every call
        # of its syscall, and overlapping rules go by libseccomp's tree. So each rule is written as the
        # part of its region no stricter rule decides: regions that never overlap, whatever the order.
        before: list[tuple[tuple[Condition, ...], Action]] = []
        for conds, action in L.strictest_first(policy.rules_for(syscall)):
            rule = Rule(syscall, action, conds)
            try:
                # only stricter rules with another action that can hold together with this one matter
                over = tuple(c for c, a in before if a != action and L.and_((conds,), (c,)))
                region = L.and_((conds,), L.not_(over)) if over else (conds,)
            except L.TooComplex:
                region = None
            before.append((conds, action))
            if region is not None and len(region) > L.MAX_WRITTEN:
                region = None
            if region is None:
                losses.append(f"{name}: rule '{rule}' minus the stricter rules of {name} cannot be written in at "
                              f"most {L.MAX_WRITTEN} entries; dropped")
                continue
            if action == policy.default:
                continue  # what no rule decides gets the default; runc skips such entries anyway
            for conj in region:
                alts = args_alternatives(conj, wide)
                if alts is None:
                    losses.append(f"{name}: rule '{rule}' cannot be written with one test per argument "
                                  f"(runc ORs tests of the same argument) in at most {L.MAX_WRITTEN} entries; "
                                  f"dropped")
                    break
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


def dumps(src: Policy | DockerProfile, *, oci: bool = False) -> str:
    import json

    doc, _ = dump(src, oci=oci)
    return json.dumps(doc, indent=2) + "\n"


def export(src: Policy | DockerProfile, *, oci: bool = False) -> Exported:
    """The profile as Docker (``oci``: OCI) JSON text, with its losses."""
    import json

    from . import Exported

    doc, losses = dump(src, oci=oci)
    return Exported(json.dumps(doc, indent=2) + "\n", tuple(losses))
