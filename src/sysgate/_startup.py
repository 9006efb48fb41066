"""Start-up fast paths: the one module of sysgate that uses private CPython modules.

``sysgate run`` starts a sandbox in a few milliseconds, so a public module that costs milliseconds
to import is a large share of it. Each trick below is kept because it measurably matters; the
budget is what it saves end to end, measured by bench/bench_startup.py --tricks (pip-installed in a
clean venv, CPython 3.11.7, medians of 30 interleaved rounds, machine at load 1.8): the extra wall
time (CPU time in parentheses) when that one module is the public one, for a script's first
sandbox (``python -I -c "import sysgate; sysgate.run(['/bin/true'])"``, +16.9 ms over
``python -I -S``) and for the command (``sysgate run -- /bin/true``, +15.6 ms).

==========  ====================  =========================================  =============  =============
name here   private module        public module (what it costs)              API saves      CLI saves
==========  ====================  =========================================  =============  =============
``ctypes``  ``_ctypes``           ``ctypes`` (thirty types, ``struct``,       1.3 (1.5) ms   0.6 (1.2) ms
                                  ``ctypes._endian``)
``signal``  ``_signal``           ``signal`` (``enum``, for ``Signals``)      5.0 (4.9) ms   4.1 (4.4) ms
``sha256``  ``_sha256``/``_sha2``  ``hashlib`` (OpenSSL's ``_hashlib``)        3.1 (3.0) ms   2.8 (3.1) ms
==========  ====================  =========================================  =============  =============

All three public: +9.3 (9.4) ms (API), +8.5 (8.8) ms (CLI). (``signal`` costs the command as much
as a script now that a plain command line is read without argparse, whose ``re`` imported ``enum``
anyway.) A fourth trick, ``_socket`` for ``socket``, is gone: the jail passes the supervisor's
listener through libc (:mod:`sysgate.kernel.fdpass`) and imports neither, which also saved the
0.6-0.7 ms of loading ``_socket`` itself. The run path needs ``ctypes`` and ``signal`` on every
run, ``sha256`` to check the precompiled built-in profiles. ``_thread`` is not among them: it is documented
(https://docs.python.org/3/library/_thread.html) and used as it is.

Each trick is used only on the CPython versions it was validated on (:data:`VALIDATED`); on any
other interpreter or version, or with ``SYSGATE_PUBLIC_STDLIB=1`` in the environment, every name
here is the public module itself, so a new CPython costs start-up time, never correctness.
The vfork launcher of :mod:`sysgate.jail.runner` (Python run on a foreign stack in a ``CLONE_VM``
child) is validated on the same versions and is used only where :data:`VALIDATED` holds
(``SYSGATE_PUBLIC_STDLIB`` does not change that).
"""
from __future__ import annotations

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
    return VALIDATED and _PUBLIC not in ("1", "all") and name not in _PUBLIC.split(",")


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
else:
    if _fast("signal"):
        import _signal as signal
    else:
        import signal
    if _fast("ctypes"):
        try:
            ctypes = _mini_ctypes()
        except ImportError:  # not LP64
            import ctypes
    else:
        import ctypes


def __getattr__(name: str) -> object:
    # sha256 is imported when first asked for: not every run needs it
    if name == "sha256":
        if not _fast("sha256"):
            from hashlib import sha256
        elif sys.version_info >= (3, 12):
            from _sha2 import sha256  # type: ignore[import-not-found]
        else:
            from _sha256 import sha256  # type: ignore[import-not-found,no-redef]
        globals()["sha256"] = sha256
        return sha256
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
