"""The part of :mod:`ctypes` the jail uses, built straight on ``_ctypes``.

``import ctypes`` defines some thirty types, loaders and helpers (and imports ``struct``,
``types`` and ``ctypes._endian``): a few milliseconds on every ``sysgate run``, which starts a
sandbox in about as long. The jail needs a dozen of those names; this module defines them the
way ``ctypes/__init__.py`` does, on the same C types, so objects from either module mix (a
``ctypes.c_long`` is a fine argument to a function made here). Modules of the jail import it
as ``ctypes``.
"""
from __future__ import annotations

import _ctypes
from _ctypes import (FUNCFLAG_CDECL as _CDECL, FUNCFLAG_PYTHONAPI as _PYTHONAPI, FUNCFLAG_USE_ERRNO as _USE_ERRNO,
                     POINTER, RTLD_LOCAL, Structure, addressof, byref, get_errno, sizeof)
from _ctypes import CFuncPtr as _CFuncPtr, _SimpleCData

__all__ = ["c_int", "c_uint", "c_long", "c_ulong", "c_ushort", "c_char", "c_char_p", "c_void_p", "c_size_t",
           "c_uint64", "c_uint32", "c_int32", "Structure", "POINTER", "byref", "sizeof", "addressof",
           "get_errno", "create_string_buffer", "CFUNCTYPE", "CDLL", "PyDLL"]


class c_int(_SimpleCData):
    _type_ = "i"


class c_uint(_SimpleCData):
    _type_ = "I"


class c_long(_SimpleCData):
    _type_ = "l"


class c_ulong(_SimpleCData):
    _type_ = "L"


class c_ushort(_SimpleCData):
    _type_ = "H"


class c_char(_SimpleCData):
    _type_ = "c"


class c_char_p(_SimpleCData):
    _type_ = "z"


class c_void_p(_SimpleCData):
    _type_ = "P"


# LP64 (every architecture the jail runs on): what ctypes aliases these to there.
if not sizeof(c_long) == sizeof(c_void_p) == 8 or sizeof(c_int) != 4:
    raise ImportError("sysgate.jail needs an LP64 platform")
c_size_t = c_ulong
c_uint64 = c_ulong
c_uint32 = c_uint
c_int32 = c_int


def create_string_buffer(init: bytes, size: int) -> "_ctypes.Array":
    """A writable ``char[size]`` holding ``init`` (all of it: NUL bytes included)."""
    buf = (c_char * size)()
    buf.value = init  # copies len(init) bytes, NULs too, and a terminating NUL if there is room
    return buf


_FUNCTYPES: dict[tuple, type] = {}


def CFUNCTYPE(restype: type, *argtypes: type) -> type:
    """The type of a C function pointer (and of Python callbacks C may call)."""
    key = (restype, argtypes)
    t = _FUNCTYPES.get(key)
    if t is None:
        t = type("CFunctionType", (_CFuncPtr,), {"_argtypes_": argtypes, "_restype_": restype, "_flags_": _CDECL})
        _FUNCTYPES[key] = t
    return t


class CDLL:
    """A loaded library; ``lib.name`` is its function ``name`` (returns ``int``, sets errno)."""

    _func_flags_ = _CDECL

    def __init__(self, name: str | None, use_errno: bool = False) -> None:
        self._name = name
        self._handle = _ctypes.dlopen(name, RTLD_LOCAL)
        flags = self._func_flags_ | (_USE_ERRNO if use_errno else 0)
        self._FuncPtr = type("_FuncPtr", (_CFuncPtr,), {"_flags_": flags, "_restype_": c_int})

    def __getattr__(self, name: str) -> object:
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        func = self._FuncPtr((name, self))
        func.__name__ = name
        setattr(self, name, func)
        return func


class PyDLL(CDLL):
    """Like :class:`CDLL`, but calls keep the GIL (and check for a Python error after each)."""

    _func_flags_ = _CDECL | _PYTHONAPI
