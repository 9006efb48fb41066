"""The sandbox's filesystem: a read-only view of the host root (or ``--rootfs``), rebuilt in a
private mount namespace and entered with ``pivot_root``.

How, and why this way (it is on the start-up path, so it is built for few syscalls):

1. The root and each ``--bind`` source are cloned into detached mounts with
   ``open_tree(OPEN_TREE_CLONE|AT_RECURSIVE)`` *first*, while every host path still resolves
   (the staging directory below hides what is under it); device nodes are bound by path.
2. The root clone is made read-only, nosuid and nodev in one ``mount_setattr(AT_RECURSIVE)``
   call (no walk over submounts), then attached over a staging directory of the host view.
3. ``/dev`` (tmpfs + bound device nodes + devpts), ``/proc`` (fresh, with ``sys``,
   ``sysrq-trigger``, ``irq`` and ``bus`` covered read-only as bubblewrap does: the sandbox's
   root may be the host's root user), ``/tmp`` and the user's binds and tmpfs are mounted into it.
4. ``pivot_root(".", ".")`` and a lazy unmount of the old root leave only the new tree.

In a new user namespace the copied host mounts are already slaves of the host's (the kernel
demotes shared mounts for a less privileged namespace), so nothing propagates back; without
one (root, ``share=user``) the root is made a recursive slave first.
Needs Linux 5.12 (mount_setattr).
"""
from __future__ import annotations

import os
import stat

from . import _ffi as ctypes  # the few ctypes names the jail needs, without ctypes' import cost
from . import _native as N
from .options import JailConfigError, Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["MountPlan", "plan", "apply", "DEV_NODES", "PROC_COVERS"]

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
PROC_COVERS = ("sys", "sysrq-trigger", "irq", "bus")
_DEV_LINKS = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"), ("core", "/proc/kcore"))
_STAGES = ("/tmp", "/mnt", "/run", "/proc")
# hidepid "ptraceable" (4, Linux 5.8): only processes the viewer may ptrace are there, whatever its
# gid ("invisible" lets the gid= group, root's by default, see everything).
PROC_HIDEPID = b"4"
PROC_OPTIONS = b"hidepid=" + PROC_HIDEPID


class MountPlan:
    """Paths and flags resolved in the parent; :func:`apply` runs it in the sandbox's init."""

    root: bytes
    stage: bytes
    slave_root: bool
    dev_nodes: list[bytes]
    fresh_proc: bool
    tmp_opts: bytes
    user: list[tuple]  # ("bind", src, dst, ro) | ("tmpfs", dst, opts)
    cwd: bytes
    attr_root: "N.MountAttr"  # type: ignore[assignment]
    attr_ro: "N.MountAttr"  # type: ignore[assignment]
    attr_rw: "N.MountAttr"  # type: ignore[assignment]
    # Mounts the fresh /proc on the path given (the runner's, when the procfs must be of a PID
    # namespace the mounting process is not in); None: mount(2) here, of our own PID namespace.
    proc_mounter: Any = None

    def __init__(self, root: bytes, stage: bytes, slave_root: bool, dev_nodes: list[bytes], fresh_proc: bool,
                 tmp_opts: bytes, user: list[tuple] = None, cwd: bytes = b"/", attr_root: N.MountAttr = None,
                 attr_ro: N.MountAttr = None, attr_rw: N.MountAttr = None) -> None:
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


def plan(opts: Options, cwd: str | None = None) -> MountPlan:
    """Check what can be checked on the host and precompute every path as bytes."""
    root = opts.rootfs or "/"
    if not os.path.isdir(root):
        raise JailConfigError(f"--rootfs: {root} is not a directory")
    if opts.rootfs:
        for d in ("dev", "proc", "tmp"):
            if not os.path.isdir(os.path.join(root, d)):
                raise JailConfigError(f"--rootfs: {root} has no /{d} directory to mount on")
    stage, dev_nodes = _host_layout()
    if stage is None:
        raise JailConfigError("no directory to stage the new root on (/tmp, /mnt, /run or /proc)")
    user: list[tuple] = []
    for m in _user_mounts(opts):
        if m[0] == "bind":
            _, src, dst, ro = m
            if not os.path.exists(src):
                raise JailConfigError(f"--{'ro-' if ro else ''}bind: source {src} does not exist")
            user.append(("bind", os.fsencode(src), os.fsencode(dst), ro, os.path.isdir(src)))
        else:
            _, dst, size = m
            user.append(("tmpfs", os.fsencode(dst), _tmpfs_opts(size, b"mode=755")))
    wd = opts.cwd or cwd or "/"
    ro = N.MOUNT_ATTR_RDONLY | N.MOUNT_ATTR_NOSUID | N.MOUNT_ATTR_NODEV
    return MountPlan(
        root=os.fsencode(root), stage=os.fsencode(stage),
        slave_root=not opts.ns("user"),
        dev_nodes=dev_nodes,
        fresh_proc=opts.ns("pid"),
        tmp_opts=_tmpfs_opts(opts.tmp_size, b"mode=1777"),
        user=user, cwd=os.fsencode(wd),
        attr_root=N.MountAttr(ro, 0, 0, 0),
        attr_ro=N.MountAttr(ro, 0, 0, 0),
        attr_rw=N.MountAttr(N.MOUNT_ATTR_NOSUID | N.MOUNT_ATTR_NODEV, 0, 0, 0),
    )


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
    # Shallower targets first, so that a bind inside a tmpfs lands on top of it; otherwise keep order.
    return sorted(out, key=lambda m: m[2 if m[0] == "bind" else 1].count("/"))


def _tmpfs_opts(size: int | None, mode: bytes) -> bytes:
    return mode + (b",size=%d" % size if size else b"")


def _clone_tree(path: bytes, what: str) -> int:
    return N.check(N.sysc("open_tree", N.c_long(N.AT_FDCWD), path,
                          N.c_long(N.OPEN_TREE_CLONE | N.AT_RECURSIVE | N.OPEN_TREE_CLOEXEC)), what)


def _setattr(fd: int, attr: "N.MountAttr", what: str) -> None:
    N.check(N.sysc("mount_setattr", N.c_long(fd), b"", N.c_long(N.AT_EMPTY_PATH | N.AT_RECURSIVE),
                   ctypes.byref(attr), N.c_long(ctypes.sizeof(attr))), what)


def _attach(fd: int, target: bytes, what: str) -> None:
    N.check(N.sysc("move_mount", N.c_long(fd), b"", N.c_long(N.AT_FDCWD), target,
                   N.c_long(N.MOVE_MOUNT_F_EMPTY_PATH)), what)
    os.close(fd)


def _mount(src: bytes | None, target: bytes, fstype: bytes | None, flags: int, data: bytes | None, what: str) -> None:
    N.check(N.mount(src, target, fstype, flags, data), what)


def _mountpoint(path: bytes, is_dir: bool, what: str) -> None:
    """Create a missing mount point if the tree allows it (only tmpfs parts are writable)."""
    if os.path.lexists(path):
        return
    try:
        if is_dir:
            os.makedirs(path, 0o755)
        else:
            os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    except OSError as e:
        raise N.JailOSError(e.errno, f"{what}: mount point does not exist and cannot be created "
                                     f"({os.strerror(e.errno or 0)}; the root is read-only)") from None


def apply(p: MountPlan) -> None:
    """Build the tree and pivot into it. Runs in the sandbox's init, in its new mount namespace."""
    if p.slave_root:
        _mount(None, b"/", None, N.MS_REC | N.MS_SLAVE, None, "make / a slave mount")
    root_fd = _clone_tree(p.root, "clone the root tree (open_tree; needs Linux 5.2)")
    user_fds = [_clone_tree(m[1], "clone bind source " + m[1].decode()) if m[0] == "bind" else -1 for m in p.user]
    proc_fd = -1 if p.fresh_proc else _clone_tree(b"/proc", "clone /proc")
    _setattr(root_fd, p.attr_root, "make the root read-only (mount_setattr; needs Linux 5.12)")
    st = p.stage
    _attach(root_fd, st, "attach the new root")

    dev = st + b"/dev"
    _mount(b"tmpfs", dev, b"tmpfs", N.MS_NOSUID | N.MS_NODEV, b"mode=755", "mount tmpfs on /dev")
    for name in p.dev_nodes:  # the staging directory is never /dev, so host paths still resolve here
        path = dev + b"/" + name
        os.mknod(path, 0o666 | stat.S_IFREG)
        _mount(b"/dev/" + name, path, None, N.MS_BIND, None, "bind /dev/" + name.decode())
    os.mkdir(dev + b"/pts", 0o755)
    os.mkdir(dev + b"/shm")
    os.chmod(dev + b"/shm", 0o1777)
    _mount(b"devpts", dev + b"/pts", b"devpts", N.MS_NOSUID | N.MS_NOEXEC,
           b"newinstance,ptmxmode=0666,mode=620", "mount devpts on /dev/pts")
    for name, target in _DEV_LINKS:
        os.symlink(target, dev + b"/" + name.encode())

    proc = st + b"/proc"
    if p.fresh_proc and p.proc_mounter is not None:
        p.proc_mounter(proc)
    elif p.fresh_proc:  # hidepid: processes the command may not trace (the sandbox's PID 1) are not there
        _mount(b"proc", proc, b"proc", N.MS_NOSUID | N.MS_NODEV | N.MS_NOEXEC, PROC_OPTIONS, "mount /proc")
    else:
        _attach(proc_fd, proc, "bind the host's /proc")
    for d in PROC_COVERS:
        path = proc + b"/" + d.encode()
        if N.mount(path, path, None, N.MS_BIND | N.MS_REC, None) == 0:
            _mount(None, path, None, N.MS_REMOUNT | N.MS_BIND | N.MS_RDONLY | N.MS_NOSUID | N.MS_NODEV | N.MS_NOEXEC,
                   None, f"make /proc/{d} read-only")
        elif N.errno_of() != 2:  # absent in this kernel (ENOENT) is fine
            N.check(-1, f"cover /proc/{d}")

    _mount(b"tmpfs", st + b"/tmp", b"tmpfs", N.MS_NOSUID | N.MS_NODEV, p.tmp_opts, "mount tmpfs on /tmp")

    for m, fd in zip(p.user, user_fds):
        target = st + m[2 if m[0] == "bind" else 1]
        if m[0] == "bind":
            _mountpoint(target, m[4], "--bind " + m[2].decode())
            _setattr(fd, p.attr_ro if m[3] else p.attr_rw, "set flags of bind " + m[2].decode())
            _attach(fd, target, "bind " + m[1].decode() + " on " + m[2].decode())
        else:
            _mountpoint(target, True, "--tmpfs " + m[1].decode())
            _mount(b"tmpfs", target, b"tmpfs", N.MS_NOSUID | N.MS_NODEV, m[2], "mount tmpfs on " + m[1].decode())

    os.chdir(st)
    N.check(N.sysc("pivot_root", b".", b"."), "pivot_root into the new root")
    N.check(N.umount2(b".", N.MNT_DETACH), "detach the old root")
    try:
        os.chdir(p.cwd)
    except OSError:
        os.chdir(b"/")
