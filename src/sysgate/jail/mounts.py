"""The sandbox's filesystem: a read-only view of the host root (or ``--rootfs``), rebuilt in a
private mount namespace and entered with ``pivot_root``.

How, and why this way (it is on the start-up path, so it is built for few syscalls):

1. The root and each ``--bind`` source are cloned into detached mounts with
   ``open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)`` *first*, while every host path still resolves
   (the staging directory below hides what is under it); device nodes are bound by path.
2. The root clone is made read-only, nosuid and nodev in one ``mount_setattr(AT_RECURSIVE)``
   call (no walk over submounts), then attached over a staging directory of the host view.
3. ``/dev`` (a bounded tmpfs holding ``/dev/shm``, bound device nodes, devpts), ``/proc`` (fresh, with
   ``sys``, ``sysrq-trigger``, ``irq`` and ``bus`` covered read-only as bubblewrap does), ``/tmp``,
   the *hidden trees* and the user's binds and tmpfs are mounted into it.
4. ``pivot_root(".", ".")`` and a lazy unmount of the old root leave only the new tree.

**Hidden trees.** A read-only view does not stop ``connect()`` to a pathname socket, and the
network namespace does not cover them: the runtime and scratch trees where daemons keep their
sockets (``/run`` and ``/var/run``, ``/var/tmp``, ``/var/lock``, ``$XDG_RUNTIME_DIR``, the
container engines' state directories: :data:`HIDDEN`) are covered by private empty tmpfs, as
``/tmp`` and ``/dev/shm`` are. ``/etc/resolv.conf`` pointing into ``/run`` (systemd-resolved) is
bound back as that one file. The filter cache directory is masked by an empty read-only tmpfs
wherever it is visible (the root, a bind of an ancestor).

**Scratch is bounded.** Every writable tmpfs (``/tmp``, ``/var/tmp``, ``/run``, ``/dev`` with
``/dev/shm`` in it, ``--tmpfs`` without a size) gets ``size=`` (``--tmp-size``, default
:data:`DEFAULT_TMP_SIZE`) and ``nr_inodes=``. Pages written to tmpfs are charged to the memory cgroup
of the process that writes them, which is the sandbox's when ``--memory`` is set.

**No path is trusted twice, no link is followed.** Bind sources are resolved once, by the caller
(:func:`os.path.realpath` of the parent, the last component must not be a symbolic link); init
opens that canonical path with ``openat2(RESOLVE_NO_SYMLINKS)``, so nothing swapped in since
is followed, and clones the tree from the descriptor. Every mount target is opened beneath the
new root with ``openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)`` and mounted
on through that descriptor; a link anywhere in a target is refused. A missing mount point is
created only inside a tmpfs this sandbox mounted itself (never on a host filesystem, such as a
writable bind a previous run could have planted links in), one component at a time relative
to descriptors.

In a new user namespace the copied host mounts are already slaves of the host's (the kernel
demotes shared mounts for a less privileged namespace), so nothing propagates back; without
one (``share=user``, or a root caller whose user namespace is entered after the mounts) the root
is made a recursive slave first.
Needs Linux 5.12 (mount_setattr) and 5.6 (openat2).
"""
from __future__ import annotations

import os
import stat

from .._startup import ctypes
from ..kernel import mount as M
from ..kernel import syscall as N
from .options import DEFAULT_TMP_SIZE, JailConfigError, Options, PerOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MountPlan", "plan", "apply", "DEV_NODES", "PROC_COVERS", "HIDDEN", "tmpfs_options"]

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
PROC_COVERS = ("sys", "sysrq-trigger", "irq", "bus")
#: Runtime and scratch trees hidden behind private empty tmpfs (when they are directories).
HIDDEN = ("/run", "/var/run", "/var/tmp", "/var/lock", "/var/lib/docker", "/var/lib/containerd",
          "/var/lib/lxd", "/var/snap/lxd/common/lxd", "/var/lib/libvirt", "/var/spool/postfix")
#: Host trees the sandbox has its own of: masked where a bind of an ancestor (``--ro-bind /:/host``)
#: would show the host's (its scratch files, every host process in its procfs).
_REPLACED = ("/tmp", "/dev/shm", "/proc")
_DEV_LINKS = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"))
_STAGES = ("/tmp", "/mnt", "/run", "/proc")
# hidepid "ptraceable" (4, Linux 5.8): only processes the viewer may ptrace are there, whatever its
# gid ("invisible" lets the gid= group, root's by default, see everything).
PROC_HIDEPID = b"4"
PROC_OPTIONS = b"hidepid=" + PROC_HIDEPID
_MASK_OPTS = b"mode=555,size=4096,nr_inodes=4"

RESOLVE_NO_MAGICLINKS = M.RESOLVE_NO_MAGICLINKS
RESOLVE_NO_SYMLINKS = M.RESOLVE_NO_SYMLINKS
RESOLVE_BENEATH = M.RESOLVE_BENEATH
_AT_SYMLINK_NOFOLLOW = M.AT_SYMLINK_NOFOLLOW


# Init's calls keep the GIL (libc_gil): they are quick and never block, and with the vfork launcher
# init runs on the caller's thread, so each release would let another thread of the caller (the
# network namespace pool, say) take the interpreter in the middle of building the sandbox.
_kclose = N.libc_gil["close"]
_kclose.argtypes = [ctypes.c_int]
_kmknodat = N.libc_gil["mknodat"]
_kmknodat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_ulong]
_kmkdirat = N.libc_gil["mkdirat"]
_kmkdirat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
_ksymlinkat = N.libc_gil["symlinkat"]
_ksymlinkat.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
_kfchmodat = N.libc_gil["fchmodat"]
_kfchmodat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint, ctypes.c_int]
_kmount = N.libc_gil["mount"]  # mount(2) without M.mount's wrapper, for apply's loops
_kmount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_OpenHow = M.OpenHow
# What apply's loops pass, made once: each start runs them cold, where every Python step counts.
_NODE_MODE = 0o666 | stat.S_IFREG
_DEV_LINKS_B = tuple((target.encode(), link.encode()) for link, target in _DEV_LINKS)
_PROC_COVERS_B = tuple(b"/" + d.encode() for d in PROC_COVERS)
_COVER_RO = M.MS_REMOUNT | M.MS_BIND | M.MS_RDONLY | M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC


def _fail(what: str) -> None:
    """Raise for the call that just returned -1 (its errno), naming ``what``: messages are made
    only on failure."""
    N.check(-1, what)


def _close(fd: int) -> None:
    _kclose(fd)


class MountPlan:
    """Paths and flags resolved in the parent; :func:`apply` runs it in the sandbox's init."""

    root: bytes
    stage: bytes
    slave_root: bool
    dev_nodes: list[bytes]
    fresh_proc: bool
    tmp_opts: bytes
    user: list[tuple]  # ("bind", src, dst, ro, is_dir) | ("tmpfs", dst, opts)
    cwd: bytes
    attr_root: M.MountAttr | None
    attr_ro: M.MountAttr | None
    attr_rw: M.MountAttr | None
    hidden: list[tuple[bytes, bytes]]  # (dst, tmpfs options) covered before the user's mounts
    files: list[tuple[bytes, bytes]]  # (canonical host file, dst): bound back read-only after them
    masks: list[bytes]  # dsts covered by an empty read-only tmpfs, last
    shm_opts: bytes  # /dev's tmpfs, which holds /dev/shm
    # Mounts the fresh /proc on the path given (the runner's, when the procfs must be of a PID
    # namespace the mounting process is not in); None: mount(2) here, of our own PID namespace.
    proc_mounter: Any = None

    def __init__(self, root: bytes, stage: bytes, slave_root: bool, dev_nodes: list[bytes], fresh_proc: bool,
                 tmp_opts: bytes, user: list[tuple] | None = None, cwd: bytes = b"/",
                 attr_root: M.MountAttr | None = None, attr_ro: M.MountAttr | None = None,
                 attr_rw: M.MountAttr | None = None, hidden: list | None = None,
                 files: list | None = None, masks: list | None = None, shm_opts: bytes = b"mode=1777") -> None:
        self.root = root
        self.stage = stage
        self.slave_root = slave_root
        self.dev_nodes = dev_nodes
        self.fresh_proc = fresh_proc
        self.tmp_opts = tmp_opts
        self.user = [] if user is None else user
        self.cwd = cwd
        self.attr_root = attr_root
        self.attr_ro = attr_ro
        self.attr_rw = attr_rw
        self.hidden = [] if hidden is None else hidden
        self.files = [] if files is None else files
        self.masks = [] if masks is None else masks
        self.shm_opts = shm_opts
        # No O_NOFOLLOW: with it a trailing link would be opened itself; without it, RESOLVE_NO_SYMLINKS
        # refuses it (ELOOP) like every other component.
        self._how = _OpenHow(os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
        self._how_abs = _OpenHow(os.O_PATH | os.O_CLOEXEC, 0, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

    def copy(self) -> MountPlan:
        """This plan for one more sandbox: its init sets :attr:`proc_mounter` on it; everything else
        (the lists, the ctypes structures) :func:`apply` only reads, so the copy shares them."""
        new = MountPlan.__new__(MountPlan)
        new.__dict__.update(self.__dict__)
        return new


def tmpfs_options(size: int | None, mode: bytes, owner: tuple[int, int] | None = None) -> bytes:
    """``mode=...,size=...,nr_inodes=...[,uid=...,gid=...]`` for a bounded scratch tmpfs."""
    size = DEFAULT_TMP_SIZE if not size else size
    out = mode + b",size=%d,nr_inodes=%d" % (size, max(1024, size // 16384))
    if owner is not None:
        out += b",uid=%d,gid=%d" % owner
    return out


def _canonical_source(src: str, what: str) -> str:
    """``src`` resolved once: the parent through its links, the last component never a link."""
    parent, name = os.path.split(src.rstrip("/") or "/")
    real = os.path.join(os.path.realpath(parent), name) if name else "/"
    try:
        st = os.lstat(real)
    except OSError:
        raise JailConfigError(f"{what}: source {src} does not exist") from None
    if stat.S_ISLNK(st.st_mode):
        raise JailConfigError(f"{what}: source {src} is a symbolic link (give the path it points to)")
    return real


# The last plan made for an Options with the host's root and no mounts of the user's (the default
# sandbox), per Options object: (cwd, owner, masks, _hidden's answer, the plan). Such a plan depends
# on nothing else of the host but the hidden trees, which _hidden checks on every call (a stat per
# parent directory) and answers with the very same object while they are unchanged.
_PLANS = PerOptions()


def plan(opts: Options, cwd: str | None = None, owner: tuple[int, int] | None = None,
         masks: tuple[str, ...] = ()) -> MountPlan:
    """Check what can be checked on the host and precompute every path as bytes.

    ``owner``: host (uid, gid) owning the sandbox's own tmpfs when its init builds them as another
    user (a root caller's sandbox); ``masks``: host directories no sandbox may see (the filter cache).
    The default sandbox's plan is made once and copied for each run while its inputs are the same.
    """
    if opts.rootfs or opts.binds or opts.tmpfs:  # sources to check on the host every time
        return _plan(opts, cwd, owner, masks)
    got = _hidden(opts, "/", owner)
    hit = _PLANS.get(opts)
    if hit is not None and hit[0] == cwd and hit[1] == owner and hit[2] == masks and hit[3] is got:
        return hit[4].copy()
    p = _plan(opts, cwd, owner, masks, got)
    _PLANS.put(opts, (cwd, owner, masks, got, p))
    return p.copy()


def _plan(opts: Options, cwd: str | None, owner: tuple[int, int] | None, masks: tuple[str, ...],
          hidden_files: tuple[list, list] | None = None) -> MountPlan:
    root = _canonical_source(opts.rootfs, "--rootfs") if opts.rootfs else "/"
    if not os.path.isdir(root):
        raise JailConfigError(f"--rootfs: {root} is not a directory")
    if opts.rootfs:
        for d in ("dev", "proc", "tmp"):
            p = os.path.join(root, d)
            if os.path.islink(p) or not os.path.isdir(p):
                raise JailConfigError(f"--rootfs: {root} has no /{d} directory to mount on (or it is a link)")
    stage, dev_nodes = _host_layout()
    if stage is None:
        raise JailConfigError("no directory to stage the new root on (/tmp, /mnt, /run or /proc)")
    user: list[tuple] = []
    for m in _user_mounts(opts):
        if m[0] == "bind":
            _, src, dst, ro = m
            what = f"--{'ro-' if ro else ''}bind"
            real = _canonical_source(src, what)
            user.append(("bind", os.fsencode(real), os.fsencode(dst), ro, os.path.isdir(real)))
        else:
            _, dst, size = m
            user.append(("tmpfs", os.fsencode(dst), tmpfs_options(size, b"mode=755", owner)))
    hidden, files = _hidden(opts, root, owner) if hidden_files is None else hidden_files
    wd = opts.cwd or cwd or "/"
    ro = M.MOUNT_ATTR_RDONLY | M.MOUNT_ATTR_NOSUID | M.MOUNT_ATTR_NODEV
    return MountPlan(
        root=os.fsencode(root), stage=os.fsencode(stage),
        slave_root=not opts.ns("user") or owner is not None,
        dev_nodes=dev_nodes,
        fresh_proc=opts.ns("pid"),
        tmp_opts=tmpfs_options(opts.tmp_size, b"mode=1777"),
        user=user, cwd=os.fsencode(wd),
        attr_root=M.MountAttr(ro, 0, 0, 0),
        attr_ro=M.MountAttr(ro, 0, 0, 0),
        attr_rw=M.MountAttr(M.MOUNT_ATTR_NOSUID | M.MOUNT_ATTR_NODEV, 0, 0, 0),
        hidden=hidden, files=files,
        # the cache wherever visible; a hidden tree, and the host's own of what the sandbox has
        # privately (/tmp, /dev/shm, /proc), also where a bind of an ancestor would show it again
        masks=_masks(root, user, masks) + _masks(None, user, (*(os.fsdecode(h[0]) for h in hidden), *_REPLACED),
                                                 strict=True),
        shm_opts=tmpfs_options(opts.tmp_size, b"mode=755"),
    )


def _follow_once(path: str) -> str | None:
    """Where link ``path`` points (one step, made absolute), or None. Cheaper than realpath, which
    lstat()s every component: this runs for every sandbox."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return os.path.normpath(target if target.startswith("/") else os.path.join(os.path.dirname(path), target))


_HIDDEN_CACHE: dict[tuple, tuple[tuple, tuple[list, list]]] = {}
_HIDDEN_PARENTS: dict[tuple, tuple[list[str], tuple[str, ...]]] = {}  # (root, xdg) -> (candidates, parents)


def _hidden(opts: Options, root: str, owner: tuple[int, int] | None) -> tuple[list, list]:
    """The hidden trees that are real directories of the sandbox's root, and /etc/resolv.conf.

    Remembered per process while the directories holding the candidates keep their inode, mtime
    and link count (creating, removing or renaming an entry changes them): a stat per parent
    instead of an lstat per candidate on every start. Returns the same object while they do."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    where = _HIDDEN_PARENTS.get((root, xdg))
    if where is None:
        cands = list(HIDDEN)
        if xdg and xdg.startswith("/") and "\0" not in xdg:
            cands.append(os.path.normpath(xdg))
        prefix = "" if root == "/" else root.rstrip("/")
        where = (cands, tuple(prefix + d for d in sorted({os.path.dirname(c) for c in cands} | {"/etc"})))
        if len(_HIDDEN_PARENTS) > 16:
            _HIDDEN_PARENTS.clear()
        _HIDDEN_PARENTS[(root, xdg)] = where
    cands, parents = where
    stamp: list[tuple[int, int, int] | None] = []
    for d in parents:
        try:
            st = os.stat(d)
            stamp.append((st.st_ino, st.st_mtime_ns, st.st_nlink))
        except OSError:
            stamp.append(None)
    key = (root, xdg, opts.tmp_size, owner)
    hit = _HIDDEN_CACHE.get(key)
    if hit is not None and hit[0] == tuple(stamp):
        return hit[1]
    got = _hidden_scan(opts, root, owner, cands)
    if len(_HIDDEN_CACHE) > 16:
        _HIDDEN_CACHE.clear()
    _HIDDEN_CACHE[key] = (tuple(stamp), got)
    return got


def _hidden_scan(opts: Options, root: str, owner: tuple[int, int] | None, cands: list[str]) -> tuple[list, list]:
    out: list[str] = []
    prefix = "" if root == "/" else root.rstrip("/")
    for path in cands:
        try:
            st = os.lstat(prefix + path)
            if stat.S_ISLNK(st.st_mode) and root == "/":
                path = _follow_once(path) or path  # /var/run -> /run: hide what it points to
                st = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(st.st_mode) and path != "/" and not any(_under(path, h) for h in out):
            out = [h for h in out if not _under(h, path)] + [path]
    out.sort(key=lambda p: p.count("/"))
    hidden = [(os.fsencode(p), tmpfs_options(opts.tmp_size, b"mode=1777" if p == "/var/tmp" else b"mode=755",
                                             owner if p != "/var/tmp" else None)) for p in out]
    files: list[tuple[bytes, bytes]] = []
    if root == "/":
        real = _follow_once("/etc/resolv.conf")
        if real is not None and any(_under(real, h) for h in out):
            real = os.path.realpath(real)  # rare: resolved fully, and bound only if a plain file
            if os.path.isfile(real) and any(_under(real, h) for h in out):
                files.append((os.fsencode(real), os.fsencode(real)))  # the one file, where the link leads
    return hidden, files


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def _masks(root: str | None, user: list[tuple], masks: tuple[str, ...], strict: bool = False) -> list[bytes]:
    """Every place inside where a masked host directory would be visible (``masks`` and the bind
    sources are canonical paths already); through the root view too unless ``root`` is None; with
    ``strict``, not through a bind of the directory itself (binding it is asking for it)."""
    out: list[bytes] = []
    for real in masks:
        if root is not None and _under(real, root):
            out.append(os.fsencode("/" + os.path.relpath(real, root)) if root != "/" else os.fsencode(real))
        for u in user:
            if (u[0] == "bind" and u[4] and _under(real, os.fsdecode(u[1]))
                    and not (strict and real == os.fsdecode(u[1]))):
                rel = os.path.relpath(real, os.fsdecode(u[1]))
                out.append(os.fsencode(os.path.normpath(os.path.join(os.fsdecode(u[2]), rel))))
    return [b"/" + o.lstrip(b"/") for o in dict.fromkeys(out)]


_LAYOUT: tuple[str | None, list[bytes]] | None = None


def _host_layout() -> tuple[str | None, list[bytes]]:
    """Staging directory and the host's device nodes; looked up once per process."""
    global _LAYOUT
    if _LAYOUT is None:
        stage = next((s for s in _STAGES if os.path.isdir(s) and not os.path.islink(s)), None)
        _LAYOUT = (stage, [n.encode() for n in DEV_NODES if os.path.exists("/dev/" + n)])
    return _LAYOUT


def _user_mounts(opts: Options) -> list[tuple]:
    out: list[tuple] = [("bind", b.src, b.dst, b.readonly) for b in opts.binds]
    out += [("tmpfs", t.dst, t.size) for t in opts.tmpfs]
    both = {b.dst for b in opts.binds} & {t.dst for t in opts.tmpfs}
    if both:
        # The options keep binds and tmpfs apart (the command line's order is not theirs to keep):
        # one would silently hide the other, so say so instead.
        d = sorted(both)[0]
        raise JailConfigError(f"--tmpfs {d} and a --bind to {d}: one would hide the other; give one of them")
    # Shallower targets first, so that a bind inside a tmpfs lands on top of it; otherwise keep order.
    return sorted(out, key=lambda m: m[2 if m[0] == "bind" else 1].count("/"))


def _openat2(dirfd: int, path: bytes, how: M.OpenHow) -> int:
    return M.openat2(dirfd, path, how)


def _open_source(p: MountPlan, path: bytes, what: str) -> int:
    """An O_PATH descriptor of a canonical host path, no symbolic link followed on the way."""
    fd = _openat2(M.AT_FDCWD, path, p._how_abs)
    if fd < 0:
        e = N.errno_of()
        hint = " (a symbolic link appeared in it)" if e == 40 else ""
        raise N.KernelError(e, f"{what}: {path.decode(errors='replace')}: {os.strerror(e)}{hint}")
    return fd


def _clone_fd(fd: int, what: str) -> int:
    try:
        return N.check(M.open_tree(fd, b"", M.OPEN_TREE_CLONE | M.AT_RECURSIVE | M.OPEN_TREE_CLOEXEC | M.AT_EMPTY_PATH),
                       what)
    finally:
        _close(fd)


def _setattr(fd: int, attr: M.MountAttr | None, what: str) -> None:
    assert attr is not None  # plan() sets the plan's three attributes
    N.check(M.mount_setattr(fd, b"", M.AT_EMPTY_PATH | M.AT_RECURSIVE, attr), what)


def _attach(fd: int, target: bytes, what: str) -> None:
    N.check(M.move_mount(fd, b"", M.AT_FDCWD, target, M.MOVE_MOUNT_F_EMPTY_PATH), what)
    _close(fd)


def _attach_fd(fd: int, tfd: int, what: str) -> None:
    try:
        N.check(M.move_mount(fd, b"", tfd, b"", M.MOVE_MOUNT_F_EMPTY_PATH | M.MOVE_MOUNT_T_EMPTY_PATH), what)
    finally:
        _close(fd)


def _mount(src: bytes | None, target: bytes, fstype: bytes | None, flags: int, data: bytes | None, what: str) -> None:
    if _kmount(src, target, fstype, flags, data) < 0:
        _fail(what)


def _fdpath(fd: int) -> bytes:
    return b"/proc/self/fd/%d" % fd


class _Tree:
    """The new root while it is built: targets are opened beneath it, never through a link, and
    mount points are made only in tmpfs mounted here (``private``)."""

    def __init__(self, p: MountPlan, rootfd: int) -> None:
        self.p = p
        self.rootfd = rootfd
        self.mounted: list[tuple[bytes, bool]] = [(b"/", False)]  # (dst, a tmpfs of ours)

    def open(self, dst: bytes, what: str) -> int:
        rel = dst.strip(b"/") or b"."
        fd = _openat2(self.rootfd, rel, self.p._how)
        if fd < 0:
            e = N.errno_of()
            hint = " (a symbolic link is in the way: targets are never followed through links)" if e == 40 else ""
            raise N.KernelError(e, f"{what}: {os.strerror(e)}{hint}")
        return fd

    def target(self, dst: bytes, is_dir: bool, what: str) -> int:
        """An O_PATH descriptor of mount point ``dst``, made first if missing and allowed."""
        rel = dst.strip(b"/")
        fd = _openat2(self.rootfd, rel or b".", self.p._how)
        if fd >= 0:
            return fd
        if N.errno_of() != 2:  # ENOENT is the only thing we repair
            return self.open(dst, what)
        home = max((m for m in self.mounted if _bunder(dst, m[0])), key=lambda m: len(m[0]))
        if not home[1]:
            host = home[0].decode(errors="replace")
            raise N.KernelError(2, f"{what}: mount point does not exist and cannot be created (only inside a "
                                   f"tmpfs of the sandbox's own, not on {host} from the host)")
        base = home[0].strip(b"/")
        parts = rel[len(base):].strip(b"/").split(b"/")
        cur = self.open(home[0], what)
        try:
            for i, name in enumerate(parts):
                last = i == len(parts) - 1
                fd = _openat2(cur, name, self.p._how)
                if fd < 0:
                    if last and not is_dir:
                        _close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                                         0o644, dir_fd=cur))
                    else:
                        os.mkdir(name, 0o755, dir_fd=cur)
                    fd = _openat2(cur, name, self.p._how)
                    if fd < 0:
                        N.check(-1, what)
                _close(cur)
                cur = fd
        except OSError as e:
            _close(cur)
            raise N.KernelError(e.errno,
                                f"{what}: cannot create the mount point: {os.strerror(e.errno or 0)}") from None
        return cur

    def tmpfs(self, dst: bytes, opts: bytes, what: str, flags: int = 0, create: bool = True) -> None:
        fd = self.target(dst, True, what) if create else self.open(dst, what)
        try:
            _mount(b"tmpfs", _fdpath(fd), b"tmpfs", M.MS_NOSUID | M.MS_NODEV | flags, opts, what)
        finally:
            _close(fd)
        self.mounted.append((dst, not flags & M.MS_RDONLY))

    def bind(self, src_fd: int, dst: bytes, is_dir: bool, what: str) -> None:
        tfd = self.target(dst, is_dir, what)
        try:
            _attach_fd(src_fd, tfd, what)
        finally:
            _close(tfd)
        self.mounted.append((dst, False))


def _bunder(path: bytes, top: bytes) -> bool:
    return top == b"/" or path == top or path.startswith(top.rstrip(b"/") + b"/")


def apply(p: MountPlan) -> None:
    """Build the tree and pivot into it. Runs in the sandbox's init, in its new mount namespace."""
    if p.slave_root:
        _mount(None, b"/", None, M.MS_REC | M.MS_SLAVE, None, "make / a slave mount")
    root_fd = _clone_fd(_open_source(p, p.root, "the root"), "clone the root tree (open_tree; needs Linux 5.2)")
    user_fds = [_clone_fd(_open_source(p, m[1], "bind source"), "clone bind source " + m[1].decode(errors="replace"))
                if m[0] == "bind" else -1 for m in p.user]
    file_fds = [_clone_fd(_open_source(p, src, "bind"), "clone " + src.decode(errors="replace")) for src, _ in p.files]
    proc_fd = -1 if p.fresh_proc else _clone_fd(_open_source(p, b"/proc", "/proc"), "clone /proc")
    _setattr(root_fd, p.attr_root, "make the root read-only (mount_setattr; needs Linux 5.12)")
    st = p.stage
    _attach(root_fd, st, "attach the new root")
    rootfd = os.open(st, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW)
    tree = _Tree(p, rootfd)

    tree.tmpfs(b"/dev", p.shm_opts, "mount tmpfs on /dev", create=False)
    dev = tree.open(b"/dev", "open /dev")
    devp = _fdpath(dev)
    for name in p.dev_nodes:  # the staging directory is never /dev, so host paths still resolve here
        if _kmknodat(dev, name, _NODE_MODE, 0) < 0:
            _fail("make /dev/" + name.decode(errors="replace"))
        if _kmount(b"/dev/" + name, devp + b"/" + name, None, M.MS_BIND, None) < 0:
            _fail("bind /dev/" + name.decode(errors="replace"))
    if _kmkdirat(dev, b"pts", 0o755) < 0:
        _fail("make /dev/pts")
    if _kmkdirat(dev, b"shm", 0o755) < 0:
        _fail("make /dev/shm")
    if _kfchmodat(dev, b"shm", 0o1777, 0) < 0:  # scratch in /dev's bounded tmpfs
        _fail("chmod /dev/shm")
    _mount(b"devpts", devp + b"/pts", b"devpts", M.MS_NOSUID | M.MS_NOEXEC,
           b"newinstance,ptmxmode=0666,mode=620", "mount devpts on /dev/pts")
    for target, link in _DEV_LINKS_B:
        if _ksymlinkat(target, dev, link) < 0:
            _fail("link /dev/" + link.decode(errors="replace"))
    _close(dev)

    pfd = tree.open(b"/proc", "open /proc")
    try:
        if p.fresh_proc and p.proc_mounter is not None:
            p.proc_mounter(_fdpath(pfd))
        elif p.fresh_proc:  # hidepid: processes the command may not trace (the sandbox's PID 1) are not there
            _mount(b"proc", _fdpath(pfd), b"proc", M.MS_NOSUID | M.MS_NODEV | M.MS_NOEXEC, PROC_OPTIONS,
                   "mount /proc")
        else:
            _attach_fd(proc_fd, pfd, "bind the host's /proc")
    finally:
        _close(pfd)
    proc = _fdpath(tree.open(b"/proc", "open /proc"))
    for d in _PROC_COVERS_B:
        path = proc + d
        if _kmount(path, path, None, M.MS_BIND | M.MS_REC, None) == 0:
            if _kmount(None, path, None, _COVER_RO, None) < 0:
                _fail(f"make /proc{d.decode(errors='replace')} read-only")
        elif N.errno_of() != 2:  # absent in this kernel (ENOENT) is fine
            _fail(f"cover /proc{d.decode(errors='replace')}")
    _close(int(proc.rsplit(b"/", 1)[1]))

    tree.tmpfs(b"/tmp", p.tmp_opts, "mount tmpfs on /tmp", create=False)
    for dst, opts in p.hidden:
        tree.tmpfs(dst, opts, "hide " + dst.decode(errors="replace"), create=False)

    for m, fd in zip(p.user, user_fds):
        if m[0] == "bind":
            what = "--bind " + m[2].decode(errors="replace")
            try:
                _setattr(fd, p.attr_ro if m[3] else p.attr_rw, "set flags of bind " + m[2].decode(errors="replace"))
            except OSError:
                _close(fd)
                raise
            tree.bind(fd, m[2], m[4], what)
        else:
            tree.tmpfs(m[1], m[2], "--tmpfs " + m[1].decode(errors="replace"))
    for (_, dst), fd in zip(p.files, file_fds):
        _setattr(fd, p.attr_ro, "set flags of " + dst.decode(errors="replace"))
        tree.bind(fd, dst, False, "bind " + dst.decode(errors="replace"))
    for dst in p.masks:
        try:
            tree.tmpfs(dst, _MASK_OPTS, "mask " + dst.decode(errors="replace"), M.MS_RDONLY, create=False)
        except OSError as e:
            if e.errno != 2:  # not visible there after all (under a hidden tree or a --tmpfs)
                raise
    _close(rootfd)

    os.chdir(st)
    N.check(N.sysc("pivot_root", b".", b"."), "pivot_root into the new root")
    N.check(M.umount2(b".", M.MNT_DETACH), "detach the old root")
    try:
        os.chdir(p.cwd)
    except OSError:
        os.chdir(b"/")
