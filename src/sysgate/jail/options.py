"""What a sandbox should look like: one validated, immutable :class:`Options` record, made from
the option table :data:`FIELDS`.

Every layer is on by default where the kernel allows it; each field relaxes one. The same
record backs the Python API (``sysgate.run(argv, memory="64M", ...)``) and the CLI (whose
``sysgate run`` parser is made from the same table), so the string forms the CLI takes (sizes
with K/M/G, ``NAME=N`` rlimits, ``SRC:DST`` binds) are accepted by the API too, and a bad value
is refused alike: :class:`JailConfigError`, a :class:`sysgate.errors.BadArgument` whose one-line
message and ``option`` attribute name the option.
"""
from __future__ import annotations

import os

from ..errors import BadArgument
from ..immutable import Record

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from typing import Any

__all__ = ["DEFAULT_TMP_SIZE", "JailConfigError", "Bind", "Tmpfs", "Options", "FIELDS", "Field", "Flag", "GROUPS",
           "kwargs_from_flags", "PerOptions", "NAMESPACES", "SAFE_ENV", "DEFAULT_PATH",
           "parse_size", "parse_rlimit", "parse_bind", "parse_tmpfs", "RLIMITS", "DEVNULL", "PIPE", "STDOUT"]

#: Namespaces a sandbox unshares; ``share=`` names the ones to keep from the host.
NAMESPACES = ("user", "pid", "net", "ipc", "uts", "cgroup")

#: Size of each writable scratch tmpfs (/tmp, /var/tmp, /run, /dev/shm, --tmpfs without a size)
#: unless ``tmp_size`` says otherwise; inodes are bounded too (one per 16 KiB).
DEFAULT_TMP_SIZE = 512 << 20

#: Variables kept from the caller's environment (plus ``LC_*``); everything else is dropped.
SAFE_ENV = ("PATH", "TERM", "LANG", "LANGUAGE", "TZ", "COLORTERM")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: Standard-stream sentinels, as in :mod:`subprocess`.
DEVNULL = -3
PIPE = -1
STDOUT = -2

RLIMITS = {
    "as": 9, "core": 4, "cpu": 0, "data": 2, "fsize": 1, "locks": 10, "memlock": 8, "msgqueue": 12,
    "nice": 13, "nofile": 7, "nproc": 6, "rss": 5, "rtprio": 14, "rttime": 15, "sigpending": 11, "stack": 3,
}
_RLIM_INFINITY = (1 << 64) - 1
_SIZE_LIMITS = {"as", "core", "data", "fsize", "memlock", "msgqueue", "rss", "stack"}


class JailConfigError(BadArgument):
    """An option the sandbox cannot honour; the message is one line naming it (a
    :class:`sysgate.errors.BadArgument`, so a ``ValueError``)."""


#: Largest size accepted (cgroup memory.max and rlimits are 64-bit; 2^63 - 1 leaves no doubt
#: about signedness anywhere they are written).
MAX_SIZE = (1 << 63) - 1
#: Longest timeout accepted, in seconds (about 31 years; anything longer is a mistake).
MAX_TIMEOUT = 1e9


def parse_size(text: str | int, what: str = "size") -> int:
    """``64M`` -> 67108864. Suffixes K, M, G, T (powers of 1024), optional ``B``/``iB``."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise JailConfigError(f"{what}: expected a size such as 64M, got {text!r}")
    if isinstance(text, int):
        if text < 0:
            raise JailConfigError(f"{what}: negative size {text}")
        if text > MAX_SIZE:
            raise JailConfigError(f"{what}: {text} is larger than the largest size, {MAX_SIZE}")
        return text
    t = str(text).strip().upper()
    if t.endswith("IB"):
        t = t[:-2]
    elif t.endswith("B"):
        t = t[:-1]
    mult = 1
    if t[-1:] in ("K", "M", "G", "T"):
        mult = 1024 ** ("KMGT".index(t[-1]) + 1)
        t = t[:-1]
    import math

    try:
        # Whole numbers exactly (a float would round 2^64 + 1); decimals ("1.5G") through float.
        v = int(t) if t.isdigit() else float(t) if len(t) < 40 else math.inf
    except ValueError:
        raise JailConfigError(f"{what}: {text!r} is not a size (use a number with K, M or G)") from None
    if isinstance(v, float) and not math.isfinite(v) or v < 0:
        raise JailConfigError(f"{what}: {text!r} is not a size")
    size = v * mult if isinstance(v, int) else int(v * mult)
    if size > MAX_SIZE:
        raise JailConfigError(f"{what}: {text!r} is larger than the largest size, {MAX_SIZE} bytes")
    return size


def _limit_value(text: str, name: str) -> int:
    t = text.strip().lower()
    if t in ("unlimited", "infinity", "inf", "-1"):
        return _RLIM_INFINITY
    if name in _SIZE_LIMITS:
        return parse_size(t, f"--rlimit {name}")
    try:
        v = int(t, 0) if len(t) < 40 else None
    except ValueError:
        v = None
    if v is None:
        raise JailConfigError(f"--rlimit {name}: {text!r} is not a number") from None
    if v < 0:
        raise JailConfigError(f"--rlimit {name}: negative value {v}")
    if v > _RLIM_INFINITY:
        raise JailConfigError(f"--rlimit {name}: {v} does not fit 64 bits (use unlimited)")
    return v


def parse_rlimit(text: str) -> tuple[str, tuple[int, int]]:
    """``NAME=N`` or ``NAME=SOFT:HARD`` (``unlimited`` allowed; sizes take K/M/G)."""
    name, eq, value = text.partition("=")
    name = name.strip().lower().removeprefix("rlimit_")
    if not eq:
        raise JailConfigError(f"--rlimit {text!r}: expected NAME=N or NAME=SOFT:HARD")
    if name not in RLIMITS:
        raise JailConfigError(f"--rlimit {text!r}: unknown limit {name!r} (known: {', '.join(sorted(RLIMITS))})")
    soft, colon, hard = value.partition(":")
    s = _limit_value(soft, name)
    h = _limit_value(hard, name) if colon else s
    if s > h:
        raise JailConfigError(f"--rlimit {text!r}: soft limit above hard limit")
    return name, (s, h)


class Bind(Record):
    """Bind host path ``src`` at ``dst`` inside the sandbox (read-only unless ``readonly`` is False)."""

    __slots__ = ("src", "dst", "readonly")
    _defaults = {"readonly": True}
    src: str
    dst: str
    readonly: bool


class Tmpfs(Record):
    """A fresh tmpfs at ``dst`` (hides whatever was there); ``size`` in bytes or None for the default."""

    __slots__ = ("dst", "size")
    _defaults = {"size": None}
    dst: str
    size: int | None


def _abs(path: str, what: str) -> str:
    if not path or not path.startswith("/"):
        raise JailConfigError(f"{what}: {path!r} must be an absolute path")
    if "\0" in path:
        raise JailConfigError(f"{what}: path contains a NUL byte")
    return os.path.normpath(path) if path != "/" else "/"


def parse_bind(text: str, readonly: bool) -> Bind:
    """``SRC`` or ``SRC:DST``; a relative SRC is taken from the current directory (DST must be absolute)."""
    opt = "--ro-bind" if readonly else "--bind"
    src, colon, dst = text.partition(":")
    if src and not src.startswith("/") and "\0" not in src:
        src = os.path.abspath(src)
    return Bind(_abs(src, opt), _abs(dst if colon else src, opt), readonly)


def parse_tmpfs(text: str) -> Tmpfs:
    """``DST`` or ``DST:SIZE``."""
    dst, colon, size = text.partition(":")
    return Tmpfs(_abs(dst, "--tmpfs"), _scratch_size(size, f"--tmpfs {dst}") if colon else None)


# --------------------------------------------------------------------------- the option table
#
# Every sandbox option is declared once, in FIELDS below: the Options field (name, default, the
# check that validates and normalises what the API or the command line gives), and its
# ``sysgate run`` spellings. The Options record, the ``sysgate run`` parser
# (sysgate.commands.run) and the option list of docs/jail.md (tools/gen_run_options.py) are all
# made from it: adding an option is adding one Field.

#: The headings ``sysgate run --help`` lists the options under, in order.
GROUPS = ("seccomp", "supervision (seccomp user notification; see docs/jail.md)", "filesystem",
          "namespaces and identity", "limits", "process", "reporting")


class Flag:
    """One ``sysgate run`` spelling of an option.

    ``kind`` says how it sets its field: ``"value"`` (``--memory SIZE``: the last one given is
    the value), ``"append"`` (repeatable: each value adds ``items(value)``), ``"switch"`` (no value:
    the field becomes ``const``). ``items`` turns one value into what it adds (default: the value
    itself; ``--share a,b`` adds two); a ``"value"`` flag with ``items`` adds them too (``--net
    host`` adds ``net`` to ``share``). ``type`` and ``choices`` are argparse's; ``hidden`` flags are
    left out of ``--help`` and the docs. ``field`` is None for a flag of the command itself
    (``--json``); ``group`` is the heading it is listed under (default: its field's).
    """

    __slots__ = ("names", "kind", "help", "metavar", "type", "choices", "const", "items", "hidden", "group",
                 "field")

    def __init__(self, names: str | tuple[str, ...], kind: str = "value", help: str = "", *,
                 metavar: str | None = None, type: Any = None, choices: tuple[str, ...] | None = None,
                 const: Any = True, items: Any = None, hidden: bool = False, group: str | None = None) -> None:
        assert kind in ("value", "append", "switch"), kind
        self.names = (names,) if isinstance(names, str) else tuple(names)
        self.kind, self.help, self.metavar, self.type, self.choices = kind, help, metavar, type, choices
        self.const, self.items, self.hidden, self.group = const, items, hidden, group
        self.field: str | None = None

    @property
    def name(self) -> str:
        """The long spelling (``--quiet`` of ``-q``/``--quiet``)."""
        return self.names[-1]

    @property
    def dest(self) -> str:
        """The attribute argparse stores it under (``--ro-bind`` -> ``ro_bind``)."""
        return self.name.lstrip("-").replace("-", "_")


class Field:
    """One sandbox option: the :class:`Options` field ``name``, its ``default`` (a type is called
    for a fresh value), ``check`` (validates and normalises a value, raising
    :class:`JailConfigError` naming the option; None: taken as given), the ``group`` of its flags
    and its command-line ``flags``."""

    __slots__ = ("name", "default", "check", "group", "flags")

    def __init__(self, name: str, default: Any, check: Any, group: str, *flags: Flag) -> None:
        assert group in GROUPS, group
        self.name, self.default, self.check, self.group, self.flags = name, default, check, group, flags
        for f in flags:
            f.field = name
            f.group = f.group or group


def _split(value: str) -> list[str]:
    return [x.strip() for x in value.split(",")]  # an empty item is refused by the field's check


def _switch(v: Any, what: str) -> bool:
    if not isinstance(v, bool):  # "no" or 0 would read as a wish either way: refuse, do not guess
        raise JailConfigError(f"{what}: {v!r} is not True or False")
    return v


def _bools(*names: str) -> dict[str, Any]:
    return {n: (lambda v, n=n: _switch(v, n)) for n in names}


def _optional(check: Any) -> Any:
    return lambda v: None if v is None else check(v)


def _check_share(v: Any) -> frozenset[str]:
    share = set(_strs(v, "share"))
    bad = share - set(NAMESPACES)
    if bad:
        raise JailConfigError(f"--share: unknown namespace {sorted(bad)[0]!r} (known: {', '.join(NAMESPACES)})")
    return frozenset(share)


def _check_hostname(v: Any) -> Any:
    if v is not None and (not isinstance(v, str) or len(os.fsencode(v)) > 64 or not v or "\0" in v):
        raise JailConfigError(f"--hostname: {v!r} must be 1-64 bytes")
    return v


def _check_id(what: str) -> Any:
    def check(v: Any) -> Any:
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32 - 1):
            raise JailConfigError(f"--{what.replace('_', '-')}: {v!r} is not a valid id")
        return v
    return check


def _check_rlimits(v: Any) -> dict[str, tuple[int, int]]:
    rl: dict[str, tuple[int, int]] = {"core": (0, 0)}
    items = v.items() if _is_mapping(v) else [parse_rlimit(t) for t in _strs(v, "rlimit")]
    for k, val in items:
        if not isinstance(k, str):
            raise JailConfigError(f"--rlimit: {k!r} is not the name of a limit")
        if isinstance(val, str):
            k, val = parse_rlimit(f"{k}={val}")
        elif isinstance(val, int):
            val = (val, val)
        k = k.lower().removeprefix("rlimit_")
        if k not in RLIMITS:
            raise JailConfigError(f"--rlimit: unknown limit {k!r}")
        if not (isinstance(val, tuple) and len(val) == 2 and all(
                isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _RLIM_INFINITY for x in val)):
            raise JailConfigError(f"--rlimit {k}: {val!r} is not N, 'SOFT:HARD' or (soft, hard) of 64-bit numbers")
        rl[k] = (int(val[0]), int(val[1]))
    return rl


def _check_memory(v: Any) -> int:
    size = parse_size(v, "--memory")
    if size < 1 << 20:
        raise JailConfigError(f"--memory: {size} bytes is below the 1M minimum")
    return size


_PID_MAX_LIMIT = 4 << 20  # the kernel's most processes and threads (PID_MAX_LIMIT)


def _check_pids(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _PID_MAX_LIMIT:
        raise JailConfigError(f"--pids: {v!r} must be a whole number from 1 to {_PID_MAX_LIMIT}")
    return v


def _check_keep_env(v: Any) -> tuple[str, ...]:
    names = _strs(v, "keep_env")
    for n in names:
        if "=" in n:
            raise JailConfigError(f"--keep-env: {n!r} is not a variable name (to set one: --env NAME=VALUE)")
    return names


def _scratch_size(v: Any, what: str) -> int:
    """A tmpfs size: 0 would mean unbounded to the kernel, so it is refused rather than taken."""
    size = parse_size(v, what)
    if size < 4096:
        raise JailConfigError(f"{what}: {v!r} is below the smallest tmpfs, 4K")
    return size


def _check_cpus(v: Any) -> float:
    try:
        if isinstance(v, bool):
            raise TypeError
        c = float(v)
    except (TypeError, ValueError, OverflowError):
        raise JailConfigError(f"--cpus: {v!r} is not a number") from None
    if not 0.01 <= c <= 4096:
        raise JailConfigError(f"--cpus: {c} out of range 0.01-4096")
    return c


def _check_fds(v: Any) -> tuple[int, ...]:
    fds = tuple(v) if isinstance(v, (list, tuple, set, frozenset)) else None
    if fds is None or not all(isinstance(f, int) and not isinstance(f, bool) for f in fds):
        raise JailConfigError(f"--pass-fd: {v!r} is not a list of file descriptor numbers")
    for f in fds:
        if not 0 <= f < 1 << 31:
            raise JailConfigError(f"--pass-fd: {f} is not a file descriptor number")
    return fds


def _check_env(v: Any) -> dict[str, str]:
    env = dict(v) if _is_mapping(v) else dict(_kv(e) for e in _strs(v, "env"))
    for k, val in env.items():
        if not isinstance(k, str) or not k or "=" in k or "\0" in k:
            raise JailConfigError(f"--env: bad variable name {k!r}")
        if not isinstance(val, str) or "\0" in val:
            raise JailConfigError(f"--env {k}: the value must be a string without NUL bytes, not {val!r}")
    return env


def _check_timeout(v: Any) -> float:
    t = v
    if isinstance(t, str):
        try:
            t = float(t)
        except ValueError:
            t = None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= MAX_TIMEOUT:
        # (True is not "one second"; inf and nan fail the range test)
        raise JailConfigError(f"--timeout: {v!r} must be a number of seconds above 0 and at most {MAX_TIMEOUT:.0e}")
    return float(t)


def _check_launcher(v: Any) -> str:
    if v not in ("auto", "vfork", "fork"):
        raise JailConfigError(f"launcher: {v!r} must be auto, vfork or fork")
    return v


def _check_allow_paths(v: Any) -> tuple[str, ...]:
    paths = _strs(v, "allow_path")
    if paths:
        from .supervisor import parse_allow_path

        for t in paths:
            parse_allow_path(t)
    return paths


def _check_allow_connect(v: Any) -> tuple[str, ...]:
    targets = _strs(v, "allow_connect")
    if targets:
        from .supervisor import parse_allow_connect

        for t in targets:
            parse_allow_connect(t)
    return targets


def _check_allow_sockets(v: Any) -> tuple[str, ...]:
    socks = _strs(v, "allow_socket")
    for t in socks:
        if not t.startswith(("/", "@")) or "\0" in t:
            raise JailConfigError(f"--allow-socket {t!r}: give an absolute path (or @NAME for an abstract socket)")
    return socks


def _a_path(v: Any, what: str) -> str:
    """A path given as str, bytes or os.PathLike, as str (bytes undecodable as UTF-8 kept through
    surrogate escapes, as os.fsdecode does)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bytes) or hasattr(v, "__fspath__"):
        return os.fsdecode(v)
    raise JailConfigError(f"{what}: {v!r} is not a path")


def _path(what: str) -> Any:
    return lambda v: _abs(_a_path(v, what), what)


def _paths(what: str) -> Any:
    return lambda v: tuple(_abs(_a_path(p, what), what) for p in _seq(v, what))


def _check_profile(v: Any) -> Any:
    """A built-in name or a file (str, bytes, os.PathLike), a Policy, or None (no filter)."""
    if v is None:
        return None
    if isinstance(v, (str, bytes)) or hasattr(v, "__fspath__"):
        name = _a_path(v, "--profile")
        if not name or "\0" in name:
            raise JailConfigError(f"--profile: {v!r} is not a profile name or file")
        return name
    from ..policy import Policy

    if isinstance(v, Policy):
        return v
    raise JailConfigError(f"--profile: {v!r} is not a profile name, a file or a Policy")


def _check_action(v: Any) -> Any:
    if v is None:
        return None
    if not isinstance(v, str) or not v.strip() or "\0" in v:
        raise JailConfigError(f"--seccomp-action: {v!r} is not an action (e.g. kill-process, errno:EPERM, log)")
    from ..errors import UserError
    from ..policy import Action  # only when the option is given: the compile needs it then anyway

    try:
        Action.parse(v)
    except UserError as e:
        raise JailConfigError(f"--seccomp-action: {e}") from None
    return v


def _strings(what: str) -> Any:
    return lambda v: _strs(v, what)


_B = _bools("skip_unknown", "mediate", "log_denials", "ask", "keep_host_root", "clear_env", "new_session",
            "die_with_parent")
_SECCOMP, _SUPERVISION, _FS, _IDENTITY, _LIMITS, _PROCESS = GROUPS[:6]

#: Every sandbox option, in the order ``sysgate run --help`` lists them.
FIELDS: tuple[Field, ...] = (
    Field("profile", "docker-default", _check_profile, _SECCOMP,
          Flag("--profile", metavar="NAME|FILE",
               help="seccomp profile: a built-in name or a profile file (default: docker-default)"),
          Flag("--no-seccomp", "switch", "load no seccomp filter", const=None)),
    Field("allow", (), _strings("allow"), _SECCOMP,
          Flag("--allow", "append", "allow this syscall or @group whatever the profile says (repeatable, "
                                    "comma-separated)", metavar="NAME", items=_split)),
    Field("deny", (), _strings("deny"), _SECCOMP,
          Flag("--deny", "append", "make this syscall or @group fail with ERRNO (default EPERM) or take an action, "
                                   "e.g. ptrace:kill-process (repeatable, comma-separated)", metavar="NAME[:ERRNO]",
               items=_split)),
    Field("seccomp_action", None, _check_action, _SECCOMP,
          Flag("--seccomp-action", help="replace the profile's default action (e.g. kill-process, errno:EPERM, log)",
               metavar="ACTION")),
    Field("skip_unknown", False, _B["skip_unknown"], _SECCOMP,
          Flag("--skip-unknown", "switch", "leave out syscall names no architecture has (Docker/OCI/k8s profiles), "
                                           "reporting each")),
    Field("allow_sockets", (), _check_allow_sockets, _SUPERVISION,
          Flag("--allow-socket", "append",
               "allow connect() and sends to this unix socket (path inside the sandbox, or @NAME); "
               "every other pathname socket is refused with EACCES", metavar="PATH")),
    Field("allow_connect", (), _check_allow_connect, _SUPERVISION,
          Flag("--allow-connect", "append",
               "allow inet connect() and addressed sends to HOST:PORT only (repeatable; port * for any)",
               metavar="HOST:PORT")),
    Field("allow_paths", (), _check_allow_paths, _SUPERVISION,
          Flag("--allow-path", "append", "open/openat/openat2 only under these paths (repeatable; ro by default)",
               metavar="PATH[:ro|rw]")),
    Field("log_denials", False, _B["log_denials"], _SUPERVISION,
          Flag("--log-denials", "switch", "report every call the profile denies (name, arch, arguments) on stderr "
                                          "and in --json")),
    Field("ask", False, _B["ask"], _SUPERVISION,
          Flag("--ask", "switch", "ask on the terminal before denying a call (first of each name)")),
    Field("mediate", True, _B["mediate"], _SUPERVISION,
          Flag("--no-mediate", "switch",
               "do not mediate connect() and addressed sends (host unix sockets reachable)", const=False)),
    Field("rootfs", None, _optional(_path("--rootfs")), _FS,
          Flag("--rootfs", help="root directory of the sandbox (default: the host's /, read-only)", metavar="DIR")),
    Field("binds", (), lambda v: tuple(_bind(b) for b in _seq(v, "binds")), _FS,
          Flag("--bind", "append", "bind SRC read-write at DST", metavar="SRC[:DST]",
               items=lambda t: [parse_bind(t, readonly=False)]),
          Flag("--ro-bind", "append", "bind SRC read-only at DST", metavar="SRC[:DST]",
               items=lambda t: [parse_bind(t, readonly=True)])),
    Field("tmpfs", (), lambda v: tuple(_tmpfs(t) for t in _seq(v, "tmpfs")), _FS,
          Flag("--tmpfs", "append", "mount a fresh tmpfs at DST, hiding what is there (SIZE with K/M/G)",
               metavar="DST[:SIZE]")),
    Field("tmp_size", None, _optional(lambda v: _scratch_size(v, "--tmp-size")), _FS,
          Flag("--tmp-size", help="size of the private /tmp (a tmpfs)", metavar="SIZE")),
    Field("cwd", None, _optional(_path("--chdir")), _FS,
          Flag("--chdir", help="working directory inside; missing: a set-up failure (default: the current one if "
                               "visible inside, else / with a note)", metavar="DIR")),
    Field("landlock_ro", (), _paths("--ro"), _FS,
          Flag("--ro", "append", "Landlock: allow reading PATH; with any --ro/--rw nothing else is reachable (Landlock "
                                 "cannot refuse chmod, chown, utimes, xattrs or flock: --ro-bind for that)",
               metavar="PATH")),
    Field("landlock_rw", (), _paths("--rw"), _FS,
          Flag("--rw", "append", "Landlock: allow full access to PATH", metavar="PATH")),
    Field("share", frozenset(), _check_share, _IDENTITY,
          Flag("--share", "append", "keep the host's namespace NS: user, pid, net, ipc, uts, cgroup (repeatable, "
                                    "comma-separated). pid gives up the sandbox's own init: processes the command "
                                    "leaves in the background outlive it and sysgate (killed only with a cgroup limit, "
                                    "by the group), and the command does not die with sysgate; user needs "
                                    "--keep-host-root as root", metavar="NS", items=_split),
          Flag("--net", help="none: a private network with only loopback (default); host: share the host's",
               choices=("none", "host"), items=lambda v: ["net"] if v == "host" else [])),
    Field("hostname", "sysgate", _check_hostname, _IDENTITY,
          Flag("--hostname", help="hostname inside (default: sysgate)")),
    Field("uid", None, _check_id("uid"), _IDENTITY,
          Flag("--uid", help="user id inside (default: yours)", type=int)),
    Field("gid", None, _check_id("gid"), _IDENTITY,
          Flag("--gid", help="group id inside (default: yours)", type=int)),
    Field("host_uid", None, _check_id("host_uid"), _IDENTITY,
          Flag("--host-uid", help="root callers: the unprivileged host uid the sandbox runs as (default: the last of "
                                  "root's /etc/subuid range, else 65534)", metavar="N", type=int)),
    Field("host_gid", None, _check_id("host_gid"), _IDENTITY,
          Flag("--host-gid", help="root callers: the host gid likewise (/etc/subgid)", metavar="N", type=int)),
    Field("keep_host_root", False, _B["keep_host_root"], _IDENTITY,
          Flag("--keep-host-root", "switch", "root callers: let the sandbox's root be host root (files it creates "
                                             "are root's, root-only files readable); a warning is printed")),
    Field("cap_add", (), _strings("cap_add"), _IDENTITY,
          Flag("--cap-add", "append", "keep this capability (inside the sandbox's user namespace)", metavar="CAP",
               items=_split)),
    Field("rlimits", dict, _check_rlimits, _LIMITS,
          Flag("--rlimit", "append", "resource limit (nofile, nproc, cpu, as, fsize, ...; core is 0 unless set)",
               metavar="NAME=N[:HARD]")),
    Field("memory", None, _optional(_check_memory), _LIMITS,
          Flag("--memory", help="cgroup memory limit, e.g. 64M (no swap); reported as oom", metavar="SIZE")),
    Field("pids", None, _optional(_check_pids), _LIMITS,
          Flag("--pids", help="cgroup limit on processes and threads", metavar="N", type=int)),
    Field("cpus", None, _optional(_check_cpus), _LIMITS,
          Flag("--cpus", help="cgroup CPU quota in CPUs, e.g. 0.5", metavar="X", type=float)),
    Field("timeout", None, _optional(_check_timeout), _LIMITS,
          Flag("--timeout", help="kill the whole sandbox after this long (exit status 124)", metavar="SECONDS",
               type=float)),
    Field("env", dict, _check_env, _PROCESS,
          Flag("--env", "append", "set a variable", metavar="NAME=VALUE")),
    Field("keep_env", (), _check_keep_env, _PROCESS,
          Flag("--keep-env", "append", "keep this variable of yours", metavar="NAME")),
    Field("clear_env", True, _B["clear_env"], _PROCESS,
          Flag("--inherit-env", "switch", "keep your whole environment", const=False)),
    Field("pass_fds", (), _check_fds, _PROCESS,
          Flag("--pass-fd", "append", "keep fd N open", metavar="N", type=int)),
    Field("new_session", False, _B["new_session"], _PROCESS,
          Flag("--new-session", "switch", "accepted for compatibility: the command always has a session of its own "
                                          "(and a pseudo-terminal of its own when yours is a terminal)")),
    Field("die_with_parent", True, _B["die_with_parent"], _PROCESS,
          Flag("--no-die-with-parent", "switch",
               "let the sandbox outlive sysgate (the calling process, however it ends)", const=False)),
    Field("launcher", "auto", _check_launcher, _PROCESS,  # how the sandbox is started: for tests and benchmarks
          Flag("--launcher", choices=("auto", "vfork", "fork"), hidden=True)),
)

_FIELDS = {f.name: f for f in FIELDS}


class PerOptions:
    """What a warm caller's runs remember per :class:`Options` object (the mount plan, the
    supervisor's filters): :meth:`get` is what :meth:`put` stored for that very object, or None.

    Keyed by identity, not by value: hashing an Options reads every field, on every run. An entry
    holds its Options, so no other object can take its id while it is remembered. At most
    ``limit`` objects are (a caller making a new Options per run just starts over)."""

    __slots__ = ("_by_id", "_limit")

    def __init__(self, limit: int = 16) -> None:
        self._by_id: dict[int, tuple[Options, Any]] = {}
        self._limit = limit

    def get(self, opts: Options) -> Any:
        hit = self._by_id.get(id(opts))
        return hit[1] if hit is not None and hit[0] is opts else None

    def put(self, opts: Options, value: Any) -> None:
        if len(self._by_id) > self._limit:
            self._by_id.clear()
        self._by_id[id(opts)] = (opts, value)


def kwargs_from_flags(value_of: Any) -> dict[str, Any]:
    """The :class:`Options` keyword arguments a command line gives: ``value_of(dest)`` is what
    argparse stored for each flag (None or empty when it was not given). Flags that add to one
    field are applied in table order (``--bind``s come before ``--ro-bind``s); two that each set
    it (``--profile`` and ``--no-seccomp``) are refused together."""
    kw: dict[str, Any] = {}
    for field in FIELDS:
        setter = None  # the flag that gave the field its one value (--profile, --no-seccomp)
        for flag in field.flags:
            v = value_of(flag.dest)
            if flag.kind == "append" or flag.items is not None:
                values = (v or ()) if flag.kind == "append" else (() if v is None else (v,))
                for one in values:
                    kw.setdefault(field.name, []).extend(flag.items(one) if flag.items else (one,))
                continue
            if not (v if flag.kind == "switch" else v is not None):
                continue
            if setter is not None:  # one would silently undo the other
                raise JailConfigError(f"{setter} and {flag.name}: they contradict each other; give one")
            setter = flag.name
            kw[field.name] = flag.const if flag.kind == "switch" else v
    return kw


class Options(Record):
    """Everything a sandbox can be told. All fields have safe defaults.

    Filesystem: a read-only view of the host root (or ``rootfs``), private ``/tmp`` (``tmp_size``),
    minimal ``/dev``, fresh ``/proc``; ``binds``/``tmpfs`` add mounts, in order, after those.
    ``landlock_ro``/``landlock_rw`` turn on Landlock: only those trees are reachable at all.
    Namespaces: all of :data:`NAMESPACES` unless named in ``share``. Limits: ``rlimits`` (core is
    0 unless set), cgroup ``memory``/``pids``/``cpus``, ``timeout`` seconds for the whole tree.
    Privileges: every capability dropped but ``cap_add``; no_new_privs; ``uid``/``gid`` inside.
    A root caller's sandbox runs as an unprivileged host id (``host_uid``/``host_gid``, default: a
    subordinate id of root's, else 65534) unless ``keep_host_root``.
    Seccomp: ``profile`` (name, file, a :class:`~sysgate.policy.Policy`, or None for no filter)
    with ``allow``/``deny`` (``NAME`` or ``NAME:errno``) and ``seccomp_action`` as the default;
    ``skip_unknown`` leaves out syscall names no architecture has, one stderr line each.
    Supervision (:mod:`.supervisor`): ``mediate`` (default on) refuses ``connect()`` to every
    pathname unix socket but ``allow_sockets``; ``allow_connect`` (``HOST:PORT``) limits inet
    connects; ``allow_paths`` (``PATH[:ro|rw]``) limits open/openat/openat2; ``log_denials``
    reports every call the profile denies; ``ask`` asks on the terminal before denying.

    The fields, their defaults and checks are :data:`FIELDS` (docs/jail.md lists them).
    """

    __slots__ = tuple(f.name for f in FIELDS)
    _defaults = {f.name: f.default for f in FIELDS}

    # The fields' types after the checks, for type checkers (tests/test_jail_cli.py keeps these
    # names equal to FIELDS).
    profile: Any
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    seccomp_action: str | None
    skip_unknown: bool
    allow_sockets: tuple[str, ...]
    allow_connect: tuple[str, ...]
    allow_paths: tuple[str, ...]
    log_denials: bool
    ask: bool
    mediate: bool
    rootfs: str | None
    binds: tuple[Bind, ...]
    tmpfs: tuple[Tmpfs, ...]
    tmp_size: int | None
    cwd: str | None
    landlock_ro: tuple[str, ...]
    landlock_rw: tuple[str, ...]
    share: frozenset[str]
    hostname: str
    uid: int | None
    gid: int | None
    host_uid: int | None
    host_gid: int | None
    keep_host_root: bool
    cap_add: tuple[str, ...]
    rlimits: dict[str, tuple[int, int]]
    memory: int | None
    pids: int | None
    cpus: float | None
    timeout: float | None
    env: dict[str, str]
    keep_env: tuple[str, ...]
    clear_env: bool
    pass_fds: tuple[int, ...]
    new_session: bool
    die_with_parent: bool
    launcher: str

    def _check(self) -> None:
        s = object.__setattr__
        for field in FIELDS:  # each value on its own, by the table
            if field.check is not None:
                s(self, field.name, field.check(getattr(self, field.name)))
        # then the rules across fields
        if "user" in self.share and os.geteuid() != 0:
            raise JailConfigError("--share user: without a user namespace the sandbox needs root")
        if (self.host_uid is not None or self.host_gid is not None) and self.keep_host_root:
            raise JailConfigError("--host-uid/--host-gid: cannot be combined with --keep-host-root")
        if self.host_uid == 0 or self.host_gid == 0:
            raise JailConfigError("--host-uid/--host-gid: 0 is host root (use --keep-host-root to mean that)")
        if "user" in self.share and not self.keep_host_root:
            raise JailConfigError("--share user: without a user namespace a root caller's sandbox is host root; "
                                  "add --keep-host-root to accept that")
        if (self.host_uid is not None or self.host_gid is not None) and "user" in self.share:
            raise JailConfigError("--host-uid/--host-gid: need the sandbox's user namespace (not --share user)")
        if self.cap_add and "user" in self.share:
            # without a user namespace of its own a kept capability is the host's: CAP_SYS_ADMIN
            # there unmounts the sandbox's masks and remounts / read-write
            raise JailConfigError("--cap-add: needs the sandbox's user namespace (with --share user the command "
                                  "would keep host capabilities)")

    @classmethod
    def from_kwargs(cls, **kw: Any) -> Options:
        names = set(cls.__slots__)
        for k in kw:
            if k not in names:
                import difflib

                close = difflib.get_close_matches(k, sorted(names), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise JailConfigError(f"unknown sandbox option {k!r}{hint}")
        return cls(**kw)

    def ns(self, name: str) -> bool:
        """Whether namespace ``name`` is unshared."""
        return name not in self.share

    def environment(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The sandbox's environment: the safe list (+ ``keep_env``) from ``base``, then ``env``."""
        if base is None:
            base = os.environ
            raw = getattr(os.environ, "_data", None)  # bytes -> bytes: scanning it skips decoding every entry
            if self.clear_env and isinstance(raw, dict):
                keep_b = {os.fsencode(k) for k in (*SAFE_ENV, *self.keep_env)}
                base = {os.fsdecode(k): os.fsdecode(v) for k, v in raw.items() if k in keep_b or k.startswith(b"LC_")}
        if not self.clear_env:
            out = dict(base)
        else:
            keep = set(SAFE_ENV) | set(self.keep_env)
            out = {k: v for k, v in base.items() if k in keep or k.startswith("LC_")}
        out.setdefault("PATH", DEFAULT_PATH)
        out.update(self.env)
        return out


def _is_mapping(v: Any) -> bool:
    """``isinstance(v, collections.abc.Mapping)``, importing collections only for a value that is
    none of the usual types: where ``re`` has not loaded it (a script's first sandbox), the
    collections package costs about 2.5 ms."""
    if isinstance(v, dict):
        return True
    if isinstance(v, (str, bytes, list, tuple, set, frozenset)) or v is None:
        return False
    from collections.abc import Mapping

    return isinstance(v, Mapping)


def _seq(v: Any, what: str = "option") -> Iterable[Any]:
    """``v`` as a sequence of values: one value (a string, a Bind, a Tmpfs) or an iterable of them
    (not a mapping, whose keys alone would be taken)."""
    if v is None:
        return ()
    if isinstance(v, (str, bytes, Bind, Tmpfs)):
        return (v,)
    if isinstance(v, (list, tuple, set, frozenset)):
        return v
    if _is_mapping(v) or not hasattr(v, "__iter__"):
        raise JailConfigError(f"{_flag(what)}: {v!r} is not a value or a list of values")
    return tuple(v)


def _flag(what: str) -> str:
    return what if what.startswith("-") else "--" + what.replace("_", "-")


def _strs(v: Any, what: str) -> tuple[str, ...]:
    out = tuple(_seq(v, what))
    for x in out:
        if not isinstance(x, str):
            raise JailConfigError(f"{_flag(what)}: {x!r} is not a string")
        if not x:
            raise JailConfigError(f"{_flag(what)}: empty value")
        if "\0" in x:
            raise JailConfigError(f"{_flag(what)}: {x!r} has a NUL byte")
    return out


def _bind(b: Any) -> Bind:
    if isinstance(b, Bind):
        return Bind(_abs(b.src, "--bind"), _abs(b.dst, "--bind"), b.readonly)
    if isinstance(b, str):
        return parse_bind(b, readonly=True)
    if isinstance(b, (tuple, list)) and 2 <= len(b) <= 3:
        if len(b) == 3 and not isinstance(b[2], bool):
            raise JailConfigError(f"binds: {b!r}: readonly must be True or False")
        return Bind(_abs(_a_path(b[0], "--bind"), "--bind"), _abs(_a_path(b[1], "--bind"), "--bind"),
                    b[2] if len(b) == 3 else True)
    raise JailConfigError(f"binds: {b!r} is not a Bind, 'SRC[:DST]' or (src, dst[, readonly])")


def _tmpfs(t: Any) -> Tmpfs:
    if isinstance(t, Tmpfs):
        return Tmpfs(_abs(t.dst, "--tmpfs"), None if t.size is None else _scratch_size(t.size, "--tmpfs"))
    if isinstance(t, str):
        return parse_tmpfs(t)
    raise JailConfigError(f"tmpfs: {t!r} is not a Tmpfs or 'DST[:SIZE]'")


def _kv(text: str) -> tuple[str, str]:
    k, eq, v = str(text).partition("=")
    if not eq:
        raise JailConfigError(f"--env {text!r}: expected NAME=VALUE")
    return k, v


def signal_number(name: str | int) -> int:
    """``TERM``, ``SIGTERM`` or ``15`` -> 15."""
    if isinstance(name, int):
        return name
    t = name.strip().upper()
    if t.isdigit():
        return int(t)
    import signal as _signal

    try:
        return int(getattr(_signal, t if t.startswith("SIG") else "SIG" + t))
    except AttributeError:
        raise JailConfigError(f"unknown signal {name!r}") from None
