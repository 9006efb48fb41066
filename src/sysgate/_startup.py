"""Start-up fast paths: the one module of sysgate that uses private CPython modules.

``sysgate run`` starts a sandbox in a few milliseconds, so a public module that costs milliseconds
to import is a large share of it. Each trick below is kept because it measurably matters; the
budget is what it saves end to end, measured by bench/bench_startup.py --tricks (pip-installed in a
clean venv, CPython 3.11.7, medians of 30 interleaved rounds, a host where ``python -I -S`` takes
14.0 ms, load 1.6): the extra wall time (CPU time in parentheses) when that one trick is off, for
a script's first sandbox (``python -I -c "import sysgate; sysgate.run(['/bin/true'])"``, +28.0 ms
over ``python -I -S``) and for the command (``sysgate run -- /bin/true``, +22.6 ms).

==========  ====================  =========================================  =============  =============
name here   private module        public module (what it costs)              API saves      CLI saves
==========  ====================  =========================================  =============  =============
``ctypes``  ``_ctypes``           ``ctypes`` (thirty types, ``struct``,       2.3 (3.0) ms   3.5 (4.0) ms
                                  ``ctypes._endian``)
``signal``  ``_signal``           ``signal`` (``enum``, for ``Signals``)      10.3 (10.7) ms 7.8 (8.4) ms
``sha256``  ``_sha256``/``_sha2``  ``hashlib`` (OpenSSL's ``_hashlib``)        ~0 (unused)    ~0 (unused)
``bundle``  (none)                the usual import of ~27 ``.pyc`` files     2.2 (3.2) ms   4.4 (4.7) ms
==========  ====================  =========================================  =============  =============

All public, the bundle off: +11.8 (11.9) ms (API), +14.7 (14.4) ms (CLI). (``signal`` costs the
command as much as a script now that a plain command line is read without argparse, whose ``re``
imported ``enum`` anyway.) A fifth trick, ``_socket`` for ``socket``, is gone: the jail passes the
supervisor's listener through libc (:mod:`sysgate.kernel.fdpass`) and imports neither, which also
saved the 0.6-0.7 ms of loading ``_socket`` itself. The run path needs ``ctypes`` and ``signal`` on
every run, ``sha256`` only for the cache key of a profile given as a file (the shipped built-in
programs are checked against a copy of their sources, see :mod:`sysgate.precompiled`). ``_thread``
is not among them: it is documented (https://docs.python.org/3/library/_thread.html) and used as
it is.

The *bundle* (at the end of this module) uses no private module: the run path's compiled code
in one file beside the ``.pyc`` files, read with one open instead of thirty path searches and
reads. It works on any interpreter with a bytecode cache tag (``SYSGATE_PUBLIC_STDLIB=bundle``
switches it off); its budget is in its own comment.

Each private-module trick is used only on the CPython versions it was validated on (:data:`VALIDATED`); on any
other interpreter or version, or with ``SYSGATE_PUBLIC_STDLIB=1`` in the environment, every name
here is the public module itself, so a new CPython costs start-up time, never correctness.
The vfork launcher of :mod:`sysgate.jail.runner` (Python run on a foreign stack in a ``CLONE_VM``
child) is validated on the same versions and is used only where :data:`VALIDATED` holds
(``SYSGATE_PUBLIC_STDLIB`` does not change that).
"""
from __future__ import annotations

import _thread
import os
import sys

TYPE_CHECKING = False  # importing typing costs milliseconds on every start

__all__ = ["VALIDATED", "ctypes", "signal"]  # and, imported when first used, "sha256"

#: CPython versions whose private modules and interpreter internals the fast paths were tested on.
VALIDATED: bool = (sys.implementation.name == "cpython" and (3, 10) <= sys.version_info[:2] <= (3, 13)
                   and getattr(sys, "_is_gil_enabled", lambda: True)())

# SYSGATE_PUBLIC_STDLIB=1 (or a comma-separated list of the names above) takes the public modules:
# how the budgets are measured, and a way out should a trick misbehave.
_PUBLIC = os.environ.get("SYSGATE_PUBLIC_STDLIB", "")


def _fast(name: str) -> bool:
    return VALIDATED and _fast_public(name)


def _fast_public(name: str) -> bool:
    """Whether trick ``name`` is on (those of public modules only need this)."""
    return _PUBLIC not in ("1", "all") and name not in _PUBLIC.split(",")


def _mini_ctypes() -> object:
    """The dozen ctypes names sysgate's kernel layer uses, defined as ``ctypes/__init__.py`` does
    on the same ``_ctypes`` types (so objects of either mix: a ``ctypes.c_long`` is a fine
    argument to a function loaded here)."""
    import _ctypes
    from _ctypes import CFuncPtr, _SimpleCData

    m = type(sys)("sysgate._startup.ctypes")
    ns = m.__dict__
    for name, code in (("c_int", "i"), ("c_uint", "I"), ("c_long", "l"), ("c_ulong", "L"), ("c_ushort", "H"),
                       ("c_char", "c"), ("c_char_p", "z"), ("c_void_p", "P")):
        ns[name] = type(name, (_SimpleCData,), {"_type_": code, "__module__": "ctypes"})
    c_int, c_long, c_void_p, c_char = ns["c_int"], ns["c_long"], ns["c_void_p"], ns["c_char"]
    if not _ctypes.sizeof(c_long) == _ctypes.sizeof(c_void_p) == 8 or _ctypes.sizeof(c_int) != 4:
        raise ImportError("not LP64")  # the aliases below are LP64's
    ns.update(c_size_t=ns["c_ulong"], c_uint64=ns["c_ulong"], c_uint32=ns["c_uint"], c_int32=c_int,
              Structure=_ctypes.Structure, POINTER=_ctypes.POINTER, byref=_ctypes.byref, sizeof=_ctypes.sizeof,
              addressof=_ctypes.addressof, get_errno=_ctypes.get_errno, set_errno=_ctypes.set_errno)

    def create_string_buffer(init: bytes, size: int) -> object:
        """A writable ``char[size]`` holding ``init`` (NUL bytes included)."""
        buf = (c_char * size)()
        buf.value = init  # copies every byte of init, and a terminating NUL if there is room
        return buf

    functypes: dict = {}

    def CFUNCTYPE(restype: type, *argtypes: type) -> type:
        t = functypes.get((restype, argtypes))
        if t is None:
            t = functypes[(restype, argtypes)] = type(
                "CFunctionType", (CFuncPtr,),
                {"_argtypes_": argtypes, "_restype_": restype, "_flags_": _ctypes.FUNCFLAG_CDECL})
        return t

    class CDLL:
        """A loaded library; ``lib.name`` is its function ``name`` (returns ``int``)."""

        _func_flags_ = _ctypes.FUNCFLAG_CDECL

        def __init__(self, name: str | None, use_errno: bool = False) -> None:
            self._name = name
            self._handle = _ctypes.dlopen(name, _ctypes.RTLD_LOCAL)  # type: ignore[arg-type]  # None: the program
            flags = self._func_flags_ | (_ctypes.FUNCFLAG_USE_ERRNO if use_errno else 0)
            self._FuncPtr = type("_FuncPtr", (CFuncPtr,), {"_flags_": flags, "_restype_": c_int})

        def __getattr__(self, name: str) -> object:
            if name.startswith("__") and name.endswith("__"):
                raise AttributeError(name)
            func = self._FuncPtr((name, self))
            func.__name__ = name
            setattr(self, name, func)
            return func

        def __getitem__(self, name: str) -> object:  # a fresh function object (argtypes of its own)
            func = self._FuncPtr((name, self))
            func.__name__ = name
            return func

    class PyDLL(CDLL):
        """Like :class:`CDLL`, but calls keep the GIL."""

        _func_flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI

    ns.update(create_string_buffer=create_string_buffer, CFUNCTYPE=CFUNCTYPE, CDLL=CDLL, PyDLL=PyDLL)
    return m


if TYPE_CHECKING:  # the type checker sees the public modules that these stand in for
    import ctypes
    import signal
    from hashlib import sha256 as sha256
    from typing import Any


_made = _thread.allocate_lock()


def __getattr__(name: str) -> object:
    # Each is made when first asked for: ``import sysgate`` imports this module (for the bundle
    # below), and not every command needs ctypes, signal or sha256. Made once under a lock: two
    # threads' first sandboxes must share one set of ctypes types.
    with _made:
        value = globals().get(name)
        if value is None:
            value = globals()[name] = _make(name)
    return value


def _make(name: str) -> object:
    value: object = None
    if name == "signal":
        if _fast("signal"):
            import _signal  # type: ignore[import-not-found]

            value = _signal
        else:
            import signal

            value = signal
    elif name == "ctypes":
        if _fast("ctypes"):
            try:
                value = _mini_ctypes()
            except ImportError:  # not LP64
                pass
        if value is None:
            import ctypes

            value = ctypes
    elif name == "sha256":
        if not _fast("sha256"):
            from hashlib import sha256
        elif sys.version_info >= (3, 12):
            from _sha2 import sha256  # type: ignore[import-not-found,no-redef]
        else:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef]
        value = sha256
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return value


# ---------------------------------------------------------------- the run path's code in one file
#
# ``sysgate run`` imports about thirty of sysgate's modules. Each costs the import system a path
# search, stats, and an open and a read of its ``.pyc``; for thirty that is ~1.5 ms of a ~7 ms
# interpreter start (~3 ms where the interpreter takes 14). The bundle holds their compiled code
# in one file, read with one open: the finder below serves a module from it when its source file
# still has the size and modification time it had when compiled, and leaves every other module
# to the usual import system. ``sysgate run`` writes the bundle as it exits when it imported a
# module the bundle did not serve (the first run after an install or an edit).
#
# The file lies in the package's ``__pycache__`` next to the ``.pyc`` files, and is trusted as
# they are: whoever can write there can already change what sysgate runs. It is read only if it
# is a regular file owned by root or by this user and writable by no one else, and written only
# where the interpreter would write bytecode (not under ``PYTHONDONTWRITEBYTECODE``). Budget (the
# table above, ``public bundle`` in bench/bench_startup.py --tricks): the command 4.4 ms wall, a
# script's first sandbox 2.2 ms; the same venv with it switched off, 100 interleaved rounds: 2.4-2.9 ms.

#: The file: this tag, the length of the index (8 bytes, little-endian), the index (marshalled:
#: the interpreter's version and, per module name, its source path, whether it is a package, the
#: source's mtime_ns and size, where its code lies after the index, and its ``.pyc`` path for
#: ``__cached__``, which the import system would otherwise work out per module), then the code.
_BUNDLE_FORMAT = b"sysgate-bundle-3"


_PKG = os.path.dirname(__file__)  # the package's directory: the bundle serves its files only


def _bundle_path() -> str | None:
    tag = sys.implementation.cache_tag
    if tag is None:
        return None
    return os.path.join(_PKG, "__pycache__", f"_startup.bundle.{tag}.opt{sys.flags.optimize}")


def _source_code(path: str) -> Any:
    """The module source ``path`` compiled, as the import system compiles it."""
    with open(path, "rb") as f:
        return compile(f.read(), path, "exec", dont_inherit=True)


class _BundleFinder:
    """A meta path finder (and its modules' loader) serving code objects from the bundle."""

    def __init__(self, index: dict, code: memoryview | None) -> None:
        #: module name -> (source path, is a package, source mtime_ns, source size, offset, length, pyc path)
        self.index = index
        self.code = code  # the marshalled code objects, one after the other
        self.served: set[str] = set()

    def find_spec(self, name: str, path: object = None, target: object = None) -> object:
        e = self.index.get(name)
        if e is None:
            return None
        origin, is_pkg, mtime_ns, size, offset, length, cached = e
        try:
            st = os.stat(origin)
        except OSError:
            return None
        if st.st_mtime_ns != mtime_ns or st.st_size != size:
            return None  # edited since: the import system compiles it anew, and the bundle is rewritten
        spec = _ModuleSpec(name, self, origin=origin, is_package=is_pkg)
        spec.has_location = True  # __file__ is the source file, as for any module
        spec.cached = cached
        if is_pkg:
            spec.submodule_search_locations = [os.path.dirname(origin)]
        spec.loader_state = (offset, length)
        self.served.add(name)
        return spec

    def create_module(self, spec: object) -> None:
        return None  # the default module object

    def exec_module(self, module: object) -> None:
        import marshal

        spec = module.__spec__  # type: ignore[attr-defined]
        offset, length = spec.loader_state
        try:
            code = marshal.loads(self.code[offset:offset + length])  # type: ignore[index]
        except (EOFError, ValueError, TypeError):  # a damaged file: the source, as the import system would
            self.served.discard(spec.name)  # and the bundle is written anew
            code = _source_code(spec.origin)
        exec(code, module.__dict__)

    def blob(self, name: str) -> bytes:
        """The marshalled code of module ``name``."""
        offset, length = self.index[name][4:6]
        return bytes(self.code[offset:offset + length])  # type: ignore[index]


#: importlib's ModuleSpec, the type of every module's __spec__ (importing importlib costs ~1 ms).
_ModuleSpec: Any = type(__spec__)
_finder: _BundleFinder | None = None


def install_bundle() -> None:
    """Serve sysgate's modules from the bundle, if there is a trustworthy one (see above)."""
    global _finder
    path = _bundle_path()
    if path is None or _finder is not None or not _fast_public("bundle"):
        return
    index: dict = {}
    code = None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        fd = -1
    if fd >= 0:
        try:
            st = os.fstat(fd)
            if (st.st_mode & 0o170000) == 0o100000 and st.st_uid in (0, os.geteuid()) and not st.st_mode & 0o022:
                data = os.read(fd, st.st_size + 1)
                n = len(_BUNDLE_FORMAT)
                if data[:n] == _BUNDLE_FORMAT:
                    import marshal

                    start = n + 8 + int.from_bytes(data[n:n + 8], "little")
                    version, got = marshal.loads(memoryview(data)[n + 8:start])
                    if version == sys.version and isinstance(got, dict):
                        code = memoryview(data)[start:]
                        # Only this package's own files: a copied tree (cp -a) must not serve the
                        # modules of the tree it was copied from.
                        index = {k: v for k, v in got.items() if isinstance(v, tuple) and len(v) == 7
                                 and isinstance(v[0], str) and v[0].startswith(_PKG + os.sep)
                                 and v[4] + v[5] <= len(code)}
        except Exception:  # noqa: BLE001 - unreadable or damaged: the usual import system does the work
            index, code = {}, None
        finally:
            os.close(fd)
    _finder = _BundleFinder(index, code)
    sys.meta_path.insert(0, _finder)  # type: ignore[arg-type]  # a finder by duck typing, as importlib's are


def save_bundle() -> None:
    """Write the bundle if a module of sysgate was imported without it (called as ``sysgate run``
    exits). Failing to write (a read-only install, another user's) changes nothing."""
    path = _bundle_path()
    if path is None or _finder is None or sys.dont_write_bytecode:
        return
    mods = {}
    for name, m in list(sys.modules.items()):
        spec = getattr(m, "__spec__", None)
        origin = getattr(spec, "origin", None)
        if (name.startswith("sysgate.") and name != __name__ and isinstance(origin, str)
                and origin.endswith(".py") and origin.startswith(_PKG + os.sep)):
            mods[name] = (origin, spec.submodule_search_locations is not None)  # type: ignore[union-attr]
    if set(mods) <= _finder.served:
        return
    try:
        _write_bundle(path, mods, _finder)
    except (OSError, SyntaxError, ValueError):
        pass


def _write_bundle(path: str, mods: dict, old: _BundleFinder) -> None:
    import importlib.util
    import marshal

    index, blobs, offset = {}, [], 0
    # The modules this process imported, and those of the old bundle it did not: each start
    # (sysgate run, python -m sysgate, a script) finds all of its own, and none rewrites it again.
    kept = {name: e[:2] for name, e in old.index.items() if name not in mods}
    for name, (origin, is_pkg) in sorted({**kept, **mods}.items()):
        try:
            st = os.stat(origin)
        except FileNotFoundError:
            if name in kept:
                continue  # gone from the package since
            raise
        e = old.index.get(name)
        code = None
        cached = importlib.util.cache_from_source(origin)
        if e is not None and (name in old.served or name in kept) and e[:4] == (origin, is_pkg, st.st_mtime_ns,
                                                                               st.st_size):
            code = old.blob(name)
        elif name in kept:
            continue  # edited since, and not imported here: the next run that imports it adds it
        else:
            try:  # the .pyc the import system just wrote, if it matches the source
                with open(cached, "rb") as f:
                    pyc = f.read()
                if (pyc[:4] == importlib.util.MAGIC_NUMBER and pyc[4:8] == bytes(4)
                        and int.from_bytes(pyc[8:12], "little") == int(st.st_mtime) & 0xFFFFFFFF
                        and int.from_bytes(pyc[12:16], "little") == st.st_size & 0xFFFFFFFF):
                    code = pyc[16:]
            except OSError:
                pass
        if code is None:
            code = marshal.dumps(_source_code(origin))
        index[name] = (origin, is_pkg, st.st_mtime_ns, st.st_size, offset, len(code), cached)
        blobs.append(code)
        offset += len(code)
    head = marshal.dumps((sys.version, index))
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(_BUNDLE_FORMAT + len(head).to_bytes(8, "little") + head + b"".join(blobs))
        os.replace(tmp, path)  # whole or not at all, for a run that starts meanwhile
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
