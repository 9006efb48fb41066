"""The sandbox's seccomp program: profile + ``--allow``/``--deny``/``--seccomp-action``,
compiled once and cached in memory and on disk.

**Nothing a sandbox could have written is trusted.** The built-in profiles as the jail uses them
(``docker-default``, ``python``, ``python`` with execve allowed for the interpreter's bootstrap,
``strict``; no modifiers, no capabilities) are shipped *precompiled* in the package
(``sysgate/profiles/compiled/NAME.MACHINE.bpf``, written by ``tools/gen_precompiled.py``; a test
recompiles and compares). A precompiled file holds a copy of the profile sources it was made from
and is used only when they are still the same byte for byte (an edited profile is compiled
afresh), and only if it is owned by root or the caller and writable by nobody else
(:mod:`sysgate.precompiled`).

Everything else is compiled (tens of milliseconds for docker-default, far more than starting a
sandbox) and cached by a hash of what it depends on (the profile file's bytes, the modifiers, the
capabilities, sysgate's version, the machine, the size and mtime of the compiler's sources) in
``$XDG_CACHE_HOME/sysgate/jail`` (``~/.cache``). The cache is:

* reached without following any symbolic link (``openat2(RESOLVE_NO_SYMLINKS)`` for the base,
  ``O_NOFOLLOW`` below it), and used only when the base directory belongs to the caller (a root
  caller never writes into a user's ``XDG_CACHE_HOME``); ``sysgate/`` and ``jail/`` must be the
  caller's and closed to others (0700), entries the caller's, regular and 0600;
* authenticated: each entry carries an HMAC-SHA256 over key, fast-path flag and program, with a
  random 32-byte key in ``sysgate/key`` (0600);
* hidden from every sandbox: :func:`mask_paths` names ``sysgate/`` (made beforehand, so a sandbox
  cannot be first to make it), and the jail covers it with an empty read-only tmpfs wherever the
  sandbox's view would show it, through the root or any bind. A root caller's sandbox runs as
  another host uid as well, which cannot read the 0700 directory.

Anything that fails a check is ignored and the program compiled again; an unusable cache is
simply skipped. A cache hit imports neither the profile reader nor the compiler.

Each program also records whether the sandbox's init may load it *before* spawning the
command (the fast path): that requires every syscall the init makes after loading it (spawn,
wait, signal, memory management) to be allowed, which is checked by running the program in
the emulator with the real arguments. Otherwise the command's own process loads it.
"""
from __future__ import annotations

import os

from .. import precompiled as _pre
from .._startup import ctypes
from ..kernel.syscall import SockFprog

TYPE_CHECKING = False  # typing costs milliseconds on the CLI's start-up path
if TYPE_CHECKING:
    from typing import Any

__all__ = ["FilterProgram", "get", "apply_modifiers", "clear_cache", "mask_paths", "PRECOMPILED",
           "precompiled_path", "precompile"]

_VERSION = b"sysgate-jail-filter-1"
_MEM: dict[Any, FilterProgram] = {}


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
        self.fprog = SockFprog(len(self.data) // 8, ctypes.addressof(self._buf))

    def __len__(self) -> int:
        return len(self.data) // 8


def _cache_base() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or ""
    if not base.startswith("/"):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.normpath(base)


def _cache_dir() -> str:
    return os.path.join(_cache_base(), "sysgate", "jail")


def _open_nofollow(path: str) -> int:
    """An O_PATH descriptor of directory ``path``, no symbolic link followed anywhere (-1 if not)."""
    from ..kernel import mount as M

    how = M.OpenHow(os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, 0, M.RESOLVE_NO_SYMLINKS | M.RESOLVE_NO_MAGICLINKS)
    fd = M.openat2(M.AT_FDCWD, os.fsencode(path), how)
    return fd if fd >= 0 else -1


def _private_dir(parent: int, name: str, create: bool) -> int:
    """Directory ``name`` under ``parent``: ours, 0700-ish, not a link; made if ``create``. -1 if unusable."""
    if create:
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError:
            return -1
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=parent)
    except OSError:
        return -1
    st = os.fstat(fd)
    if st.st_uid != os.geteuid() or st.st_mode & 0o022:  # another's, or others could have planted files
        os.close(fd)
        return -1
    if st.st_mode & 0o077:  # readable by others (made by an older sysgate): close it
        try:
            os.fchmod(fd, 0o700)
        except OSError:
            os.close(fd)
            return -1
    return fd


def _cache_fds(create: bool) -> tuple[int, int]:
    """(``sysgate/``, ``sysgate/jail/``) descriptors of a trustworthy cache, or -1s."""
    base = _open_nofollow(_cache_base())
    if base < 0:
        if not create:
            return -1, -1
        try:  # ~/.cache itself may be missing: make it (0700) unless its parent is not ours
            parent = _open_nofollow(os.path.dirname(_cache_base()))
            if parent < 0:
                return -1, -1
            try:
                if os.fstat(parent).st_uid != os.geteuid():
                    return -1, -1
                os.mkdir(os.path.basename(_cache_base()), 0o700, dir_fd=parent)
            finally:
                os.close(parent)
        except OSError:
            return -1, -1
        base = _open_nofollow(_cache_base())
        if base < 0:
            return -1, -1
    try:
        if os.fstat(base).st_uid != os.geteuid():  # a root caller with a user's XDG_CACHE_HOME: not ours
            return -1, -1
        top = _private_dir(base, "sysgate", create)
    finally:
        os.close(base)
    if top < 0:
        return -1, -1
    jail = _private_dir(top, "jail", create)
    if jail < 0:
        os.close(top)
        return -1, -1
    return top, jail


_MASKS: tuple[tuple, tuple[str, ...]] | None = None  # ((pid, euid, base), paths) last verified


def mask_paths() -> tuple[str, ...]:
    """Host directories every sandbox's view must hide: the disk cache's ``sysgate/`` (made now if
    missing, so that no sandbox can be the one to make it). Canonical: reached without links."""
    global _MASKS
    base = _cache_base()
    d = os.path.join(base, "sysgate")
    ident = (os.getpid(), os.geteuid(), base)
    if _MASKS is not None and _MASKS[0] == ident:
        try:  # verified before in this process: still a directory, not a link?
            if os.lstat(d).st_mode & 0o170000 == 0o040000:
                return _MASKS[1]
        except OSError:
            pass
    top, jail = _cache_fds(create=True)
    if top < 0:
        _MASKS = None
        return (os.path.realpath(d),) if os.path.isdir(d) else ()
    os.close(top)
    os.close(jail)
    _MASKS = (ident, (d,))
    return (d,)


def clear_cache() -> None:
    _MEM.clear()


def get(profile: Any, allow: tuple[str, ...] = (), deny: tuple[str, ...] = (), action: str | None = None,
        caps: tuple[str, ...] = (), skip_unknown: bool = False) -> FilterProgram:
    """The program for a profile name/file/Policy and modifiers (cached). With ``skip_unknown``
    the profile is compiled afresh each time, so the names left out are known to report."""
    if skip_unknown and isinstance(profile, str):
        unknown: list[str] = []
        fresh = _compile(profile, allow, deny, action, caps, "", unknown)
        fresh.unknown_names = tuple(unknown)
        return fresh
    mem_key = (profile if not isinstance(profile, str) else ("spec", profile, _file_stamp(profile)),
               allow, deny, action, caps)
    hit = _MEM.get(mem_key)
    if hit is not None:
        return hit
    if isinstance(profile, str) and not deny and not action and not caps:
        prog = _load_precompiled(profile, allow)
        if prog is not None:
            _MEM[mem_key] = prog
            return prog
    disk_key = None
    if isinstance(profile, str):
        disk_key = _disk_key(profile, allow, deny, action, caps)
        prog = _load_disk(disk_key)
        if prog is not None:
            _MEM[mem_key] = prog
            return prog
    from .. import errors

    issued = errors.warnings_issued
    prog = _compile(profile, allow, deny, action, caps, disk_key or "")
    if errors.warnings_issued != issued:
        # the profile was read with warnings: not cached, so that every run shows them (and
        # --strict refuses the profile every time, not only while no cache entry exists)
        return prog
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
    if "/" not in spec:  # a built-in's file, found with the one stat (as _profile_path would find it)
        try:
            st = os.stat(os.path.join(_PROFILES_DIR, spec + ".json"))
            return (st.st_mtime_ns, st.st_size)
        except OSError:
            pass
    try:
        st = os.stat(_profile_path(spec))
        return (st.st_mtime_ns, st.st_size)
    except OSError:
        return None


def _sha256(data: bytes) -> Any:
    from .._startup import sha256

    return sha256(data)


# The source files the compiled program depends on besides the profile itself (relative to the
# package; a directory stands for its *.py). Their (size, mtime) are part of the key, so a changed
# compiler in a working tree never gets an old program back; tests check the list is complete.
_CODE = ("policy.py", "immutable.py", "errors.py", "syscall_groups.py", "syscall_groups_data.py", "compiler",
         "formats", "profiles", "arch/__init__.py", "arch/tables", "bpf/__init__.py", "bpf/insn.py",
         "bpf/decoder.py",
         "bpf/emulator.py", "jail/filters.py", "arch/multiplexed.py", "multiplexing.py", "capabilities.py",
         "_startup.py", "kernel/__init__.py", "kernel/syscall.py", "precompiled.py")
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
        h.update(b"missing:" + os.fsencode(spec))  # compile will report the error
    h.update(repr((sorted(allow), sorted(deny), action, sorted(caps))).encode())
    return h.hexdigest()


# File layout: magic, HMAC-SHA256(key; cache key, flag, program), flag (1: init may load it, see
# supervisor_safe), program.
_MAGIC = b"sysgate-bpf-2\n"


def _hmac(secret: bytes, msg: bytes) -> bytes:
    """RFC 2104 over the builtin sha256 (the hmac module would load OpenSSL on the CLI's path)."""
    k = secret.ljust(64, b"\0")
    inner = _sha256(bytes(b ^ 0x36 for b in k) + msg).digest()
    return _sha256(bytes(b ^ 0x5C for b in k) + inner).digest()


def _digest(secret: bytes, key: str, flag: bytes, data: bytes) -> bytes:
    return _hmac(secret, key.encode() + b"\0" + flag + data)


def _read_private(dirfd: int, name: str, limit: int) -> bytes | None:
    """A regular file of ours, closed to others, read whole; None otherwise."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077 or not (st.st_mode & 0o170000 == 0o100000) \
                or st.st_size > limit:
            return None
        return os.read(fd, st.st_size + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _secret(top: int, create: bool) -> bytes | None:
    """The cache's HMAC key (32 random bytes in ``sysgate/key``), made if missing and ``create``."""
    got = _read_private(top, "key", 64)
    if got is not None and len(got) == 32:
        return got
    if got is not None or not create:
        return None
    try:
        fd = os.open("key", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=top)
    except OSError:
        return None
    try:
        os.write(fd, os.urandom(32))
    finally:
        os.close(fd)
    got = _read_private(top, "key", 64)
    return got if got is not None and len(got) == 32 else None


def _load_disk(key: str) -> FilterProgram | None:
    """The cached program, if the file is intact and authenticated with our key."""
    top, jail = _cache_fds(create=False)
    if top < 0:
        return None
    try:
        secret = _secret(top, False)
        blob = _read_private(jail, key + ".bpf", 1 << 20) if secret is not None else None
    finally:
        os.close(top)
        os.close(jail)
    if blob is None or secret is None:
        return None
    n = len(_MAGIC)
    head, digest, flag, data = blob[:n], blob[n:n + 32], blob[n + 32:n + 33], blob[n + 33:]
    if head != _MAGIC or flag not in (b"\0", b"\1") or not data or len(data) % 8 \
            or digest != _digest(secret, key, flag, data):
        return None
    return FilterProgram(data, flag == b"\1", key)


def _store_disk(prog: FilterProgram) -> None:
    """Write atomically (a temporary file renamed into place): readers see all of it or nothing."""
    top, jail = _cache_fds(create=True)
    if top < 0:
        return
    tmp = f".{prog.key}.{os.getpid()}.tmp"
    try:
        secret = _secret(top, True)
        if secret is None:
            return
        flag = b"\1" if prog.supervisor_safe else b"\0"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600, dir_fd=jail)
        try:
            os.write(fd, _MAGIC + _digest(secret, prog.key, flag, prog.data) + flag + prog.data)
        finally:
            os.close(fd)
        os.replace(tmp, prog.key + ".bpf", src_dir_fd=jail, dst_dir_fd=jail)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=jail)
        except OSError:
            pass
    finally:
        os.close(top)
        os.close(jail)


# --- precompiled built-ins (sysgate.precompiled) --------------------------------------------------

#: The jail's shipped programs: file stem -> (built-in profile, --allow names).
PRECOMPILED = _pre.JAIL
precompiled_path = _pre.path


def _load_precompiled(profile: str, allow: tuple) -> FilterProgram | None:
    stem = next((k for k, v in PRECOMPILED.items() if v == (profile, tuple(allow))), None)
    if stem is None:
        return None
    got = _pre.read(stem)
    if got is None:
        return None
    return FilterProgram(got[0], got[1], "precompiled:" + stem)


def precompile(stem: str, machine: str | None = None) -> bytes:
    """The bytes of the shipped file ``stem`` (any of :data:`sysgate.precompiled.SHIPPED`) for
    ``machine`` (default: this one), compiled afresh."""
    from ..arch import from_machine
    from ..compiler import compile_policy
    from ..profiles import resolve

    profile, allow, docker_caps = _pre.SHIPPED[stem]
    a = from_machine(machine or os.uname().machine).name
    policy = apply_modifiers(resolve(profile, arch=a, caps=None if docker_caps else []), allow, (), None)
    compiled = compile_policy(policy)
    flag = b"\1" if supervisor_safe(compiled.insns, a) else b"\0"
    made_from = _pre.sources(profile)
    return _pre.MAGIC + len(made_from).to_bytes(4, "little") + made_from + flag + compiled.to_bytes()


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


def supervisor_safe(insns: Any, arch: str | None = None) -> bool:
    """Whether the sandbox's init can keep working (spawn, wait, signal) after loading ``insns``
    (on ``arch``, default this machine's): every call it and posix_spawn's child make after the
    filter is loaded must be allowed (see runner.py's fast path). Otherwise the filter is loaded
    last, right before execve, in the command's own process (so ``python``, which refuses setsid
    the spawn needs for the command's own session, takes that path)."""
    from ..arch import get, native
    from ..bpf.emulator import emulate
    from ..policy import Action, ActionKind

    a = native() if arch is None else get(arch)
    import errno as E
    import signal

    spawn_flags = 0x100 | 0x4000 | signal.SIGCHLD  # CLONE_VM|CLONE_VFORK|SIGCHLD, as posix_spawn
    anon = 0x02 | 0x20  # MAP_PRIVATE|MAP_ANONYMOUS
    required: list[tuple[str, tuple[int, ...]]] = [
        # the supervisor: posix_spawn (glibc blocks every signal around its clone)
        ("clone", (spawn_flags, 0, 0, 0, 0, 0)), ("rt_sigprocmask", ()),
        ("mmap", (0, 1 << 20, 3, anon | 0x20000, 2**64 - 1, 0)), ("munmap", ()), ("mprotect", (0, 4096, 0)),
        # posix_spawn's child, after the filter (runner.py: setsid=True, setsigdef, setsigmask=(), the
        # stdio dup2s, the pty slave's open): any refusal fails the spawn
        ("setsid", ()), ("rt_sigaction", ()), ("dup2", ()), ("dup3", (0, 1, 0)), ("openat", (2**64 - 100, 0, 2)),
        ("execve", ()), ("execveat", ()), ("exit", (0,)), ("exit_group", (127,)),
        # the supervisor while the command runs: waits, signals, the facts of a kill read from /proc
        ("wait4", (2**64 - 1, 0, 1, 0)), ("waitid", (1, 0, 0, 4 | 1 | 0x01000000)), ("rt_sigtimedwait", ()),
        ("kill", (1, 15)), ("getppid", ()), ("openat", (0, 0, os.O_RDONLY | os.O_CLOEXEC)), ("read", ()),
        ("readlinkat", ()),
        ("brk", ()), ("futex", (0, 0x81, 1)), ("futex", (0, 0x80, 0)),
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
