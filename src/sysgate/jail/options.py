"""What a sandbox should look like: one validated, immutable :class:`Options` record.

Every layer is on by default where the kernel allows it; each field relaxes one. The same
record backs the Python API (``sysgate.run(argv, memory="64M", ...)``) and the CLI, so the
string forms the CLI takes (sizes with K/M/G, ``NAME=N`` rlimits, ``SRC:DST`` binds) are
accepted by the API too. Bad values raise :class:`JailConfigError` (a ``ValueError``) with a
one-line message naming the option.
"""
from __future__ import annotations

import os
from _collections_abc import Mapping  # what collections.abc re-exports; os has loaded it already

from ..errors import BadArgument
from ..immutable import Record

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from typing import Any, Iterable

__all__ = ["DEFAULT_TMP_SIZE", "JailConfigError", "Bind", "Tmpfs", "Options", "NAMESPACES", "SAFE_ENV", "DEFAULT_PATH",
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


class Tmpfs(Record):
    """A fresh tmpfs at ``dst`` (hides whatever was there); ``size`` in bytes or None for the default."""

    __slots__ = ("dst", "size")
    _defaults = {"size": None}


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
    return Tmpfs(_abs(dst, "--tmpfs"), parse_size(size, f"--tmpfs {dst}") if colon else None)


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
    """

    __slots__ = (
        "profile", "allow", "deny", "seccomp_action", "rootfs", "binds", "tmpfs", "tmp_size", "share",
        "hostname", "uid", "gid", "rlimits", "memory", "pids", "cpus", "cap_add", "pass_fds", "env",
        "keep_env", "clear_env", "timeout", "cwd", "landlock_ro", "landlock_rw", "die_with_parent",
        "new_session", "launcher", "skip_unknown", "keep_host_root", "host_uid", "host_gid",
        "mediate", "allow_paths", "allow_connect", "allow_sockets", "log_denials", "ask",
    )
    _defaults = {
        "profile": "docker-default",
        "allow": (),
        "deny": (),
        "seccomp_action": None,
        "rootfs": None,
        "binds": (),
        "tmpfs": (),
        "tmp_size": None,
        "share": frozenset(),
        "hostname": "sysgate",
        "uid": None,
        "gid": None,
        "rlimits": dict,
        "memory": None,
        "pids": None,
        "cpus": None,
        "cap_add": (),
        "pass_fds": (),
        "env": dict,
        "keep_env": (),
        "clear_env": True,
        "timeout": None,
        "cwd": None,
        "landlock_ro": (),
        "landlock_rw": (),
        "die_with_parent": True,
        "new_session": False,
        "launcher": "auto",
        "skip_unknown": False,
        "keep_host_root": False,
        "host_uid": None,
        "host_gid": None,
        # supervision (jail/supervisor.py): connect mediation on by default
        "mediate": True,
        "allow_paths": (),
        "allow_connect": (),
        "allow_sockets": (),
        "log_denials": False,
        "ask": False,
    }

    def _check(self) -> None:
        s = object.__setattr__
        s(self, "allow", _strs(self.allow, "allow"))
        s(self, "deny", _strs(self.deny, "deny"))
        if self.rootfs is not None:
            s(self, "rootfs", _abs(os.fspath(self.rootfs), "--rootfs"))
        s(self, "binds", tuple(_bind(b) for b in _seq(self.binds)))
        s(self, "tmpfs", tuple(_tmpfs(t) for t in _seq(self.tmpfs)))
        if self.tmp_size is not None:
            s(self, "tmp_size", parse_size(self.tmp_size, "tmp_size"))
        share = {self.share} if isinstance(self.share, str) else set(self.share)
        bad = share - set(NAMESPACES)
        if bad:
            raise JailConfigError(f"--share: unknown namespace {sorted(bad)[0]!r} (known: {', '.join(NAMESPACES)})")
        s(self, "share", frozenset(share))
        if self.hostname is not None and (len(self.hostname.encode()) > 64 or not self.hostname):
            raise JailConfigError(f"--hostname: {self.hostname!r} must be 1-64 bytes")
        for what in ("uid", "gid", "host_uid", "host_gid"):
            v = getattr(self, what)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**32 - 1):
                raise JailConfigError(f"--{what.replace('_', '-')}: {v!r} is not a valid id")
        rl: dict[str, tuple[int, int]] = {"core": (0, 0)}
        items = self.rlimits.items() if isinstance(self.rlimits, Mapping) else [parse_rlimit(t) for t in self.rlimits]
        for k, v in items:
            if isinstance(v, str):
                k, v = parse_rlimit(f"{k}={v}")
            elif isinstance(v, int):
                v = (v, v)
            k = k.lower().removeprefix("rlimit_")
            if k not in RLIMITS:
                raise JailConfigError(f"--rlimit: unknown limit {k!r}")
            if not (isinstance(v, tuple) and len(v) == 2 and all(
                    isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _RLIM_INFINITY for x in v)):
                raise JailConfigError(f"--rlimit {k}: {v!r} is not N, 'SOFT:HARD' or (soft, hard) of 64-bit numbers")
            rl[k] = (int(v[0]), int(v[1]))
        s(self, "rlimits", rl)
        if self.memory is not None:
            s(self, "memory", parse_size(self.memory, "--memory"))
            if self.memory < 1 << 20:
                raise JailConfigError(f"--memory: {self.memory} bytes is below the 1M minimum")
        if self.pids is not None:
            if isinstance(self.pids, bool) or not isinstance(self.pids, int) or not 1 <= self.pids < 1 << 31:
                raise JailConfigError(f"--pids: {self.pids!r} must be a positive integer below 2^31")
        if self.cpus is not None:
            try:
                if isinstance(self.cpus, bool):
                    raise TypeError
                c = float(self.cpus)
            except (TypeError, ValueError, OverflowError):
                raise JailConfigError(f"--cpus: {self.cpus!r} is not a number") from None
            if not 0.01 <= c <= 4096:
                raise JailConfigError(f"--cpus: {c} out of range 0.01-4096")
            s(self, "cpus", c)
        s(self, "cap_add", _strs(self.cap_add, "cap_add"))
        fds = tuple(self.pass_fds) if isinstance(self.pass_fds, (list, tuple, set, frozenset)) else None
        if fds is None or not all(isinstance(f, int) and not isinstance(f, bool) for f in fds):
            raise JailConfigError(f"--pass-fd: {self.pass_fds!r} is not a list of file descriptor numbers")
        if any(not 0 <= f < 1 << 31 for f in fds):
            raise JailConfigError(f"--pass-fd: {fds} has a number that is not a file descriptor")
        s(self, "pass_fds", fds)
        env = dict(self.env) if isinstance(self.env, Mapping) else dict(_kv(e) for e in self.env)
        for k in env:
            if not k or "=" in k or "\0" in k:
                raise JailConfigError(f"--env: bad variable name {k!r}")
        s(self, "env", env)
        s(self, "keep_env", _strs(self.keep_env, "keep_env"))
        if self.timeout is not None:
            t = self.timeout
            if isinstance(t, str):
                try:
                    t = float(t)
                except ValueError:
                    t = None
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not 0 < t <= MAX_TIMEOUT:
                # (True is not "one second"; inf and nan fail the range test)
                raise JailConfigError(f"--timeout: {self.timeout!r} must be a number of seconds above 0 and at "
                                      f"most {MAX_TIMEOUT:.0e}")
            s(self, "timeout", float(t))
        if self.cwd is not None:
            s(self, "cwd", _abs(os.fspath(self.cwd), "--chdir"))
        s(self, "landlock_ro", tuple(_abs(os.fspath(p), "--ro") for p in _seq(self.landlock_ro)))
        s(self, "landlock_rw", tuple(_abs(os.fspath(p), "--rw") for p in _seq(self.landlock_rw)))
        if self.launcher not in ("auto", "vfork", "fork"):
            raise JailConfigError(f"launcher: {self.launcher!r} must be auto, vfork or fork")
        s(self, "allow_paths", _strs(self.allow_paths, "allow_path"))
        s(self, "allow_connect", _strs(self.allow_connect, "allow_connect"))
        s(self, "allow_sockets", _strs(self.allow_sockets, "allow_socket"))
        if self.allow_paths or self.allow_connect:
            from .supervisor import parse_allow_connect, parse_allow_path

            for t in self.allow_paths:
                parse_allow_path(t)
            for t in self.allow_connect:
                parse_allow_connect(t)
        for t in self.allow_sockets:
            if not t.startswith(("/", "@")) or "\0" in t:
                raise JailConfigError(f"--allow-socket {t!r}: give an absolute path (or @NAME for an abstract socket)")
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

    @classmethod
    def from_kwargs(cls, **kw: Any) -> "Options":
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
                keep_b = {k.encode() for k in (*SAFE_ENV, *self.keep_env)}
                base = {os.fsdecode(k): os.fsdecode(v) for k, v in raw.items() if k in keep_b or k.startswith(b"LC_")}
        if not self.clear_env:
            out = dict(base)
        else:
            keep = set(SAFE_ENV) | set(self.keep_env)
            out = {k: v for k, v in base.items() if k in keep or k.startswith("LC_")}
        out.setdefault("PATH", DEFAULT_PATH)
        out.update(self.env)
        return out


def _seq(v: "Any") -> "Iterable[Any]":
    if v is None:
        return ()
    if isinstance(v, (str, bytes, Bind, Tmpfs)):
        return (v,)
    return v


def _strs(v: Any, what: str) -> tuple[str, ...]:
    out = tuple(str(x) for x in _seq(v))
    for x in out:
        if not x:
            raise JailConfigError(f"--{what.replace('_', '-')}: empty value")
    return out


def _bind(b: Any) -> Bind:
    if isinstance(b, Bind):
        return Bind(_abs(b.src, "--bind"), _abs(b.dst, "--bind"), b.readonly)
    if isinstance(b, str):
        return parse_bind(b, readonly=True)
    if isinstance(b, tuple) and 2 <= len(b) <= 3:
        return Bind(_abs(str(b[0]), "--bind"), _abs(str(b[1]), "--bind"), bool(b[2]) if len(b) == 3 else True)
    raise JailConfigError(f"binds: {b!r} is not a Bind, 'SRC[:DST]' or (src, dst[, readonly])")


def _tmpfs(t: Any) -> Tmpfs:
    if isinstance(t, Tmpfs):
        return Tmpfs(_abs(t.dst, "--tmpfs"), None if t.size is None else parse_size(t.size, "--tmpfs"))
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
