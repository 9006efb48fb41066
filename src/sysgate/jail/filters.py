"""The sandbox's seccomp program: profile + ``--allow``/``--deny``/``--seccomp-action``,
compiled once and cached in memory and on disk.

Resolving docker-default and compiling it costs tens of milliseconds, far more than starting a
sandbox, so programs are cached by a hash of everything they depend on (the profile file's
bytes, the modifiers, the capabilities, sysgate's version, the machine, and the size and mtime
of the compiler's source files). A cache hit imports neither the profile reader nor the
compiler. The cache lives in ``$XDG_CACHE_HOME/sysgate/jail`` (``~/.cache``); files are
written atomically and checked on read (a digest over key and program; owned by us and not
writable by others), anything else is recompiled; unwritable caches are simply skipped.

Each program also records whether the sandbox's init may load it *before* spawning the
command (the fast path): that requires every syscall the init makes after loading it (spawn,
wait, signal, memory management) to be allowed, which is checked by running the program in
the emulator with the real arguments. Otherwise the command's own process loads it.
"""
from __future__ import annotations

import os

from . import _ffi as ctypes  # the few ctypes names the jail needs, without ctypes' import cost

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FilterProgram", "get", "apply_modifiers", "clear_cache"]

_VERSION = b"sysgate-jail-filter-1"
_MEM: dict[Any, "FilterProgram"] = {}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class FilterProgram:
    """A loadable program: raw bytes, a ready ``struct sock_fprog`` and the fast-path verdict."""

    data: bytes
    supervisor_safe: bool
    key: str
    unknown_names: tuple = ()  # names --skip-unknown left out (never cached: each run reports them)

    def __init__(self, data: bytes, supervisor_safe: bool, key: str) -> None:
        self.data = data
        self.supervisor_safe = supervisor_safe
        self.key = key
        self._buf = ctypes.create_string_buffer(self.data, len(self.data))
        self.fprog = _SockFprog(len(self.data) // 8, ctypes.addressof(self._buf))

    def __len__(self) -> int:
        return len(self.data) // 8


def _cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "sysgate", "jail")


def clear_cache() -> None:
    _MEM.clear()


def get(profile: Any, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), action: str | None = None,
        caps: tuple[str, ...] = (), skip_unknown: bool = False) -> FilterProgram:
    """The program for a profile name/file/Policy and modifiers (cached). With ``skip_unknown``
    the profile is compiled afresh each time, so the names left out are known to report."""
    if skip_unknown and isinstance(profile, str):
        unknown: list[str] = []
        prog = _compile(profile, allow, deny, action, caps, "", unknown)
        prog.unknown_names = tuple(unknown)
        return prog
    mem_key = (profile if not isinstance(profile, str) else ("spec", profile, _file_stamp(profile)),
               allow, deny, action, caps)
    hit = _MEM.get(mem_key)
    if hit is not None:
        return hit
    disk_key = None
    if isinstance(profile, str):
        disk_key = _disk_key(profile, allow, deny, action, caps)
        prog = _load_disk(disk_key)
        if prog is not None:
            _MEM[mem_key] = prog
            return prog
    prog = _compile(profile, allow, deny, action, caps, disk_key or "")
    if disk_key is not None:
        _store_disk(prog)
    _MEM[mem_key] = prog
    return prog


_PROFILES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "profiles")


def _profile_path(spec: str) -> str:
    # Built-ins are <name>.json next to sysgate.profiles; checking that here keeps the profile
    # reader (and its imports) off the path of a cache hit. Anything else goes through the module.
    if "/" not in spec:
        guess = os.path.join(_PROFILES_DIR, spec + ".json")
        if os.path.exists(guess):
            return guess
    from ..profiles import BUILTINS, builtin_path

    return builtin_path(spec) if spec in BUILTINS else spec


def _file_stamp(spec: str) -> tuple[int, int] | None:
    try:
        st = os.stat(_profile_path(spec))
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def _sha256(data: bytes) -> Any:
    try:  # the builtin module: hashlib would load OpenSSL on the CLI's start-up path
        from _sha256 import sha256  # type: ignore[import-not-found]  # Python < 3.12
    except ImportError:
        try:
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef]
        except ImportError:
            from hashlib import sha256  # type: ignore[no-redef]
    return sha256(data)


# The source files the compiled program depends on besides the profile itself (relative to the
# package; a directory stands for its *.py). Their (size, mtime) are part of the key, so a changed
# compiler in a working tree never gets an old program back; tests check the list is complete.
_CODE = ("policy.py", "record.py", "errors.py", "syscall_groups.py", "syscall_groups_data.py", "compiler", "formats",
         "profiles", "arch/__init__.py", "arch/syscall_tables.py", "bpf/__init__.py", "bpf/insn.py",
         "bpf/emulator.py", "jail/filters.py")
_PKG = os.path.dirname(_PROFILES_DIR)


def _code_stamp() -> bytes:
    out = []
    for rel in _CODE:
        path = os.path.join(_PKG, rel)
        try:
            names = sorted(n for n in os.listdir(path) if n.endswith(".py")) if "." not in rel else [""]
        except OSError:
            names = [""]
        for n in names:
            try:
                st = os.stat(os.path.join(path, n) if n else path)
                out.append(f"{rel}/{n}:{st.st_size}:{st.st_mtime_ns}")
            except OSError:
                out.append(f"{rel}/{n}:missing")
    return "\n".join(out).encode()


def _disk_key(spec: str, allow: tuple, deny: tuple, action: str | None, caps: tuple) -> str:
    h = _sha256(_VERSION)
    from .. import __version__

    h.update(__version__.encode() + b"\0" + os.uname().machine.encode() + b"\0" + _code_stamp() + b"\0")
    from ..formats import read_limited  # capped, and refuses /dev/zero and FIFOs (no endless read)

    try:
        h.update(read_limited(_profile_path(spec)))
    except OSError:
        h.update(b"missing:" + spec.encode())  # compile will report the error
    h.update(repr((sorted(allow), sorted(deny), action, sorted(caps))).encode())
    return h.hexdigest()


# File layout: magic, sha256(key, flag, program), flag (1: init may load it, see supervisor_safe), program.
_MAGIC = b"sysgate-bpf-1\n"


def _digest(key: str, flag: bytes, data: bytes) -> bytes:
    return _sha256(key.encode() + b"\0" + flag + data).digest()


def _load_disk(key: str) -> FilterProgram | None:
    """The cached program, if the file is intact and could only have been written by us."""
    try:
        fd = os.open(os.path.join(_cache_dir(), key + ".bpf"), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # Another user's file, or one others may write, could hold any program: never trust it.
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or st.st_size > 1 << 20:
            return None
        blob = os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    n = len(_MAGIC)
    head, digest, flag, data = blob[:n], blob[n:n + 32], blob[n + 32:n + 33], blob[n + 33:]
    if head != _MAGIC or flag not in (b"\0", b"\1") or not data or len(data) % 8 or digest != _digest(key, flag, data):
        return None
    return FilterProgram(data, flag == b"\1", key)


def _store_disk(prog: FilterProgram) -> None:
    """Write atomically (a temporary file renamed into place): readers see all of it or nothing."""
    d = _cache_dir()
    tmp = os.path.join(d, f".{prog.key}.{os.getpid()}.tmp")
    try:
        os.makedirs(d, 0o700, exist_ok=True)
        flag = b"\1" if prog.supervisor_safe else b"\0"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, _MAGIC + _digest(prog.key, flag, prog.data) + flag + prog.data)
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(d, prog.key + ".bpf"))
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def apply_modifiers(policy: Any, allow: tuple[str, ...], deny: tuple[str, ...], action: str | None) -> Any:
    """``--seccomp-action`` replaces the default action first; then ``--allow NAME`` and
    ``--deny NAME[:ERRNO|:ACTION]`` replace the rules for NAME
    (:func:`sysgate.profiles.apply_modifiers`: names, ``@groups``, numbers; EPERM by default).
    """
    from ..policy import Action, Policy
    from ..profiles import apply_modifiers as modify

    if action:
        policy = Policy(Action.parse(action), policy.rules, policy.arches, policy.bad_arch)
    return modify(policy, allow=allow, deny=deny)


def _compile(profile: Any, allow: tuple, deny: tuple, action: str | None, caps: tuple, key: str,
             unknown_names: list[str] | None = None) -> FilterProgram:
    from ..compiler import compile_policy
    from ..policy import Policy

    if isinstance(profile, Policy):
        policy = profile
    else:
        from ..profiles import resolve

        policy = resolve(str(profile), caps=list(caps), unknown_names=unknown_names)
    policy = apply_modifiers(policy, allow, deny, action)
    compiled = compile_policy(policy)
    data = compiled.to_bytes()
    return FilterProgram(data, supervisor_safe(compiled.insns), key)


def supervisor_safe(insns: Any) -> bool:
    """Whether the sandbox's init can keep working (spawn, wait, signal) after loading ``insns``."""
    from ..arch import native
    from ..bpf.emulator import emulate
    from ..policy import Action, ActionKind

    a = native()
    import errno as E
    import signal

    spawn_flags = 0x100 | 0x4000 | signal.SIGCHLD  # CLONE_VM|CLONE_VFORK|SIGCHLD, as posix_spawn
    anon = 0x02 | 0x20  # MAP_PRIVATE|MAP_ANONYMOUS
    required: list[tuple[str, tuple[int, ...]]] = [
        ("clone", (spawn_flags, 0, 0, 0, 0, 0)),
        ("execve", ()), ("execveat", ()), ("exit", (0,)), ("exit_group", (127,)),
        ("wait4", (2**64 - 1, 0, 1, 0)), ("rt_sigtimedwait", ()), ("rt_sigprocmask", ()),
        ("mmap", (0, 1 << 20, 3, anon | 0x20000, 2**64 - 1, 0)), ("munmap", ()), ("mprotect", (0, 4096, 0)),
        ("brk", ()), ("futex", (0, 0x81, 1)), ("futex", (0, 0x80, 0)), ("kill", (1, 15)),
        ("write", ()), ("close", ()),
    ]
    for name, args in required:
        if not a.has(name):
            continue
        act = Action.from_ret(emulate(insns, a, a.nr(name), args).ret)
        if act.kind is not ActionKind.ALLOW and not (name == "execveat" and act.kind is ActionKind.ERRNO):
            return False
    for name in ("clone3", "madvise"):
        if a.has(name):
            act = Action.from_ret(emulate(insns, a, a.nr(name), ()).ret)
            if act.kind is ActionKind.ALLOW:
                continue
            if act.kind is ActionKind.ERRNO and (name == "madvise" or act.data == E.ENOSYS):
                continue
            return False
    return True
