"""Pure-Python drop-in for libseccomp's Python bindings (``import seccomp``).

Same names, arguments, return values and exceptions as the bindings of libseccomp 2.5.x,
plus what 2.6 added (transactions, ``export_bpf_mem``, ``precompute``, ``CTL_WAITKILL``).
Which rules are accepted, merged or refused follows libseccomp's own rule database (ported
in :mod:`._db`); the program is built by sysgate's compiler and decides every call the way
libseccomp's rules do. See ``docs/compat.md``.

Actions: ``KILL_PROCESS``, ``KILL`` (= ``KILL_THREAD``), ``TRAP``, ``LOG``, ``ALLOW``,
``NOTIFY``, ``ERRNO(n)`` (the call fails with errno ``n``) and ``TRACE(n)`` (a tracer is told
``n``). Argument tests for :class:`Arg`: ``NE``, ``LT``, ``LE``, ``EQ``, ``GE``, ``GT``
compare the argument with ``datum_a``; ``MASKED_EQ`` checks ``(arg & datum_a) == datum_b``.

Errors look like the bindings' errors: ``RuntimeError("Library error (errno = -N)")`` carrying
libseccomp's negative errno, ``ValueError`` for an invalid architecture, attribute, action or
API level, ``TypeError``/``OverflowError`` for arguments that do not convert to the C types.

    from seccomp import *          # or: from sysgate.compat.seccomp import *

    f = SyscallFilter(defaction=KILL)
    f.add_rule(ALLOW, "rt_sigreturn")
    f.add_rule(ALLOW, "exit_group")
    f.add_rule(ALLOW, "write", Arg(0, EQ, 1))
    f.load()
"""
from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from typing import Any, BinaryIO

from . import _arches as _A
from . import _db as _D
from . import _system as _S

__author__ = "sysgate (API of libseccomp's bindings by Paul Moore <paul@paul-moore.com>)"
__date__ = "3 February 2017"

__all__ = [
    "KILL_PROCESS", "KILL_THREAD", "KILL", "TRAP", "LOG", "ALLOW", "NOTIFY", "ERRNO", "TRACE",
    "NE", "LT", "LE", "EQ", "GE", "GT", "MASKED_EQ", "Arch", "Attr", "Arg", "Notification",
    "NotificationResponse", "NotificationAddfd", "SyscallFilter", "system_arch", "resolve_syscall",
    "get_api", "set_api", "c_str",
]

_U32 = 0xFFFFFFFF


# -- C argument conversion, as Cython does it -------------------------------------------------------

def _as_int(v: Any) -> int:
    if isinstance(v, int):
        return int(v)
    conv = getattr(type(v), "__int__", None)
    if conv is None:
        raise TypeError("an integer is required")
    return int(conv(v))


def _c_int(v: Any) -> int:
    i = _as_int(v)
    if not -(1 << 31) <= i < (1 << 31):
        raise OverflowError("value too large to convert to int")
    return i


def _c_unsigned(v: Any, ctype: str, bits: int = 32) -> int:
    i = _as_int(v)
    if i < 0:
        raise OverflowError(f"can't convert negative value to {ctype}")
    if i >= 1 << bits:
        if bits == 64:
            raise OverflowError("Python int too large to convert to C unsigned long")
        raise OverflowError(f"value too large to convert to {ctype}")
    return i


def _c_signed(v: Any, ctype: str, bits: int) -> int:
    i = _as_int(v)
    if not -(1 << (bits - 1)) <= i < (1 << (bits - 1)):
        if bits == 64:
            raise OverflowError("Python int too large to convert to C long")
        raise OverflowError(f"value too large to convert to {ctype}")
    return i


def _c_field(name: str, convert: Any = None) -> property:
    """A field like the bindings' C struct members: read as an int; when ``convert`` is given,
    writable, each value converted (and range-checked) as Cython converts it to the C type."""
    attr = "_" + name

    def get(self: Any) -> Any:
        return getattr(self, attr)

    if convert is None:
        return property(get)

    def set_(self: Any, value: Any) -> None:
        setattr(self, attr, convert(value))

    return property(get, set_)


def _u32(v: Any) -> int:
    return _c_unsigned(v, "uint32_t")


def _u64(v: Any) -> int:
    return _c_unsigned(v, "uint64_t", 64)


def _s32(v: Any) -> int:
    return _c_signed(v, "int32_t", 32)


def _s64(v: Any) -> int:
    return _c_signed(v, "int64_t", 64)


def _library_error(rc: int) -> RuntimeError:
    return RuntimeError(str.format("Library error (errno = {0})", rc))


def c_str(string: str) -> bytes:
    """ASCII bytes of ``string``, as the bindings pass names to C."""
    return bytes(string, "ascii")


def _c_name(name: str) -> str:
    # what C sees of the name: ASCII, up to the first NUL
    return c_str(name).split(b"\0", 1)[0].decode("ascii")


# -- actions and operators --------------------------------------------------------------------------

KILL_PROCESS = _A.to_signed32(_S.ACT_KILL_PROCESS)
KILL_THREAD = _S.ACT_KILL_THREAD
KILL = _S.ACT_KILL_THREAD
TRAP = _S.ACT_TRAP
LOG = _S.ACT_LOG
ALLOW = _S.ACT_ALLOW
NOTIFY = _S.ACT_NOTIFY


def ERRNO(errno: int) -> int:  # noqa: N802 - libseccomp's name
    """The action that makes the call fail with errno ``errno`` (its low 16 bits)."""
    return _S.ACT_ERRNO | (_c_int(errno) & 0x0000FFFF)


def TRACE(value: int) -> int:  # noqa: N802 - libseccomp's name
    """The action that stops the call for a ptrace tracer, which reads ``value`` (low 16 bits)."""
    return _S.ACT_TRACE | (_c_int(value) & 0x0000FFFF)


NE, LT, LE, EQ, GE, GT, MASKED_EQ = (_D.CMP_NE, _D.CMP_LT, _D.CMP_LE, _D.CMP_EQ, _D.CMP_GE, _D.CMP_GT,
                                     _D.CMP_MASKED_EQ)


# -- module functions ---------------------------------------------------------------------------------

def system_arch() -> int:
    """The ``SCMP_ARCH_*`` token of this process's architecture (unsigned)."""
    return _A.native().token


def _arch_of(token: int) -> _A.LSArch | None:
    return _A.native() if token == 0 else _A.lookup(token)


def resolve_syscall(arch: Any, syscall: Any) -> Any:
    """A name's number on ``arch`` (libseccomp's rewriting applied: ``socket`` on x86 is
    socketcall's number; -1 if unknown), or a number's name as bytes (``ValueError`` if
    unknown). ``arch`` is an ``Arch`` constant, 0 meaning the native arch."""
    if isinstance(syscall, str):
        name = _c_name(syscall)
        a = _arch_of(_c_int(arch))
        if a is None:
            return _A.NR_SCMP_ERROR
        nr = a.resolve_name(name)
        if nr == _A.NR_SCMP_ERROR:
            return nr
        rc, out = a.rewrite(nr)
        if rc == -errno.EDOM:
            return nr  # cannot be rewritten: pass the pseudo number through
        return out if rc == 0 else _A.NR_SCMP_ERROR
    if isinstance(syscall, int):
        token = _c_int(arch)
        num = _c_int(syscall)
        a = _arch_of(token)
        found = a.resolve_num(num) if a is not None else None
        if found is None:
            raise ValueError(f'Unknown syscall {syscall:d} on arch {arch:d}')
        return found.encode("ascii")
    raise TypeError("Syscall must either be an int or str type")


def get_api() -> int:
    """The API level the running kernel supports (1 to 7), probed once per process."""
    return _S.api_get()


def set_api(level: int) -> None:
    """Force the API level (and with it which actions and flags are believed supported)."""
    rc = _S.api_set(_c_unsigned(level, "unsigned int"))
    if rc == -errno.EINVAL:
        raise ValueError("Invalid level")
    if rc != 0:
        raise _library_error(rc)


# -- value classes ------------------------------------------------------------------------------------

class Arch:
    """An architecture: the constants are libseccomp's signed ``SCMP_ARCH_*`` tokens (``NATIVE`` is 0),
    an instance converts to its token with ``int()``. Constants beyond 2.5: ``LOONGARCH64``,
    ``M68K`` (libseccomp 2.6), ``SH``/``SHEB`` (sysgate)."""

    NATIVE = 0
    X86 = _A.to_signed32(0x40000003)
    X86_64 = _A.to_signed32(0xC000003E)
    X32 = _A.to_signed32(0x4000003E)
    ARM = _A.to_signed32(0x40000028)
    AARCH64 = _A.to_signed32(0xC00000B7)
    LOONGARCH64 = _A.to_signed32(0xC0000102)
    M68K = _A.to_signed32(0x00000004)
    MIPS = _A.to_signed32(0x00000008)
    MIPS64 = _A.to_signed32(0x80000008)
    MIPS64N32 = _A.to_signed32(0xA0000008)
    MIPSEL = _A.to_signed32(0x40000008)
    MIPSEL64 = _A.to_signed32(0xC0000008)
    MIPSEL64N32 = _A.to_signed32(0xE0000008)
    PARISC = _A.to_signed32(0x0000000F)
    PARISC64 = _A.to_signed32(0x8000000F)
    PPC = _A.to_signed32(0x00000014)
    PPC64 = _A.to_signed32(0x80000015)
    PPC64LE = _A.to_signed32(0xC0000015)
    S390 = _A.to_signed32(0x00000016)
    S390X = _A.to_signed32(0x80000016)
    RISCV64 = _A.to_signed32(0xC00000F3)
    SH = _A.to_signed32(0x4000002A)
    SHEB = _A.to_signed32(0x0000002A)

    __slots__ = ("_token",)

    def __init__(self, arch: Any = 0) -> None:
        """``arch``: an ``Arch`` constant (0: native) or libseccomp's name (``"x86_64"``)."""
        if isinstance(arch, int):
            if arch == Arch.NATIVE:
                token = _A.to_signed32(_A.native().token)
            elif any(arch == _A.to_signed32(a.token) for a in _A.ARCHES):
                token = int(arch)
            else:
                token = 0
        elif isinstance(arch, str):
            a = _A.by_name(_c_name(arch))
            token = _A.to_signed32(a.token) if a is not None else 0
        else:
            raise TypeError("Architecture must be an int or str type")
        if token == 0:
            raise ValueError("Invalid architecture")
        self._token = token

    def __int__(self) -> int:
        """The (signed) token."""
        return self._token


class Attr:
    """Filter attributes for ``get_attr``/``set_attr``: the default and bad-arch actions,
    no_new_privs (``CTL_NNP``), thread sync (``CTL_TSYNC``), rules on syscall -1
    (``API_TSKIP``), logging (``CTL_LOG``), speculative store bypass (``CTL_SSB``), layout
    (``CTL_OPTIMIZE``, no effect here), raw kernel error codes (``API_SYSRAWRC``) and killable
    waits for notified calls (``CTL_WAITKILL``, libseccomp 2.6)."""

    ACT_DEFAULT = 1
    ACT_BADARCH = 2
    CTL_NNP = 3
    CTL_TSYNC = 4
    API_TSKIP = 5
    CTL_LOG = 6
    CTL_SSB = 7
    CTL_OPTIMIZE = 8
    API_SYSRAWRC = 9
    CTL_WAITKILL = 10


class Arg:
    """One argument test of a rule."""

    __slots__ = ("_arg",)

    def __init__(self, arg: Any, op: Any, datum_a: Any, datum_b: Any = 0) -> None:
        """Test argument ``arg`` (0-5) with ``op``: against ``datum_a``, or for ``MASKED_EQ``
        ``(arg & datum_a) == datum_b``."""
        self._arg = (_c_unsigned(arg, "unsigned int"), _c_unsigned(op, "enum scmp_compare"),
                     _c_unsigned(datum_a, "uint64_t", 64), _c_unsigned(datum_b, "uint64_t", 64))

    def to_c(self) -> tuple[int, int, int, int]:
        """(arg, op, datum_a, datum_b)."""
        return self._arg


class Notification:
    """A notified syscall: ``id``, the caller's ``pid``, ``flags``, and the call (``syscall``,
    ``syscall_arch``, ``syscall_ip``, ``syscall_args``). Read-only."""

    __slots__ = ("_id", "_pid", "_flags", "_syscall", "_syscall_arch", "_syscall_ip", "_syscall_args")

    def __init__(self, id: Any, pid: Any, flags: Any, syscall: Any, arch: Any, ip: Any,
                 args: Sequence[Any]) -> None:
        self._id = _u64(id)
        self._pid = _u32(pid)
        self._flags = _u32(flags)
        self._syscall = _c_int(syscall)
        self._syscall_arch = _u32(arch)
        self._syscall_ip = _u64(ip)
        self._syscall_args = [_u64(args[i]) for i in range(6)]

    id = _c_field("id")
    pid = _c_field("pid")
    flags = _c_field("flags")
    syscall = _c_field("syscall")
    syscall_arch = _c_field("syscall_arch")
    syscall_ip = _c_field("syscall_ip")

    @property
    def syscall_args(self) -> list[int]:
        return list(self._syscall_args)


class NotificationResponse:
    """The answer to ``notify``: the call returns ``val``, or fails with ``error`` when that is a
    negative errno (``-errno.EPERM``); ``flags`` 1 lets the kernel run the call instead."""

    __slots__ = ("_id", "_val", "_error", "_flags")

    def __init__(self, notify: Any, val: Any = 0, error: Any = 0, flags: Any = 0) -> None:
        self._id = _u64(notify.id)
        self._val = _s64(val)
        self._error = _s32(error)
        self._flags = _u32(flags)

    id = _c_field("id", _u64)
    val = _c_field("val", _s64)
    error = _c_field("error", _s32)
    flags = _c_field("flags", _u32)


class NotificationAddfd:
    """A request to copy our fd ``srcfd`` into a notification's target (``notify_addfd``, 2.6):
    ``flags`` are ``SECCOMP_ADDFD_FLAG_*`` (1 SETFD: put it at ``newfd``; 2 SEND: also answer
    the notification with its number), ``newfd_flags`` may be ``os.O_CLOEXEC``."""

    __slots__ = ("_id", "_flags", "_srcfd", "_newfd", "_newfd_flags")

    def __init__(self, notify: Any, flags: Any, srcfd: Any, newfd: Any = 0, newfd_flags: Any = 0) -> None:
        self.id = notify.id
        self.flags = flags
        self.srcfd = srcfd
        self.newfd = newfd
        self.newfd_flags = newfd_flags

    id = _c_field("id", _u64)
    flags = _c_field("flags", _u32)
    srcfd = _c_field("srcfd", _u32)
    newfd = _c_field("newfd", _u32)
    newfd_flags = _c_field("newfd_flags", _u32)


# -- the filter -----------------------------------------------------------------------------------------

class SyscallFilter:
    """A seccomp filter under construction (libseccomp's filter context)."""

    def __init__(self, defaction: Any) -> None:
        """A filter for the native arch whose calls get ``defaction`` unless a rule says otherwise."""
        action = _c_int(defaction) & _U32
        _S.api_get()
        if not _S.action_valid(action):
            raise RuntimeError("Library error")
        # libseccomp's bindings never store the default they were built with, so reset()
        # without an argument resets to 0 (KILL); kept for compatibility.
        self._defaction = 0
        self._col: _D.Collection | None = _D.Collection(action)
        self._program: tuple[int, bytes] | None = None  # (state version, bytes) for precompute
        self._version = 0

    # helpers
    def _valid(self) -> _D.Collection | None:
        """The collection if it is usable (``db_col_valid``), else None."""
        col = self._col
        return col if col is not None and col.filters else None

    def _changed(self) -> None:
        self._version += 1

    def _bpf(self) -> tuple[int, bytes]:
        """(0, program bytes) or (negative errno, b"")."""
        col = self._valid()
        if col is None:
            return -errno.EINVAL, b""
        if self._program is not None and self._program[0] == self._version:
            return 0, self._program[1]
        from ..bpf import insn as I
        from ._translate import TranslateError, build_program

        try:
            insns, byteorder = build_program(col)
        except TranslateError:
            return -errno.EFAULT, b""
        data = I.encode(insns, byteorder)
        self._program = (self._version, data)
        return 0, data

    def _action_valid(self, col: _D.Collection, action: int) -> int:
        """``db_col_action_valid``."""
        if (_S.flag_supported(_S.F_TSYNC_ESRCH) < 1 and col.attr.tsync_enable
                and action == _S.ACT_NOTIFY):
            return -errno.EINVAL
        return 0 if _S.action_valid(action) else -errno.EINVAL

    # state
    def reset(self, defaction: Any = -1) -> None:
        """Start over with default action ``defaction``: rules, extra arches and attributes go.

        Without an argument the bindings reset to 0 (KILL), not to the original default: kept."""
        action = _c_int(defaction)
        if action == -1:
            action = self._defaction
        action &= _U32
        if not _S.action_valid(action):
            raise ValueError("Invalid action")
        if self._col is None:
            self._col = _D.Collection(action)
        else:
            self._col.reset(action)
        self._changed()

    def merge(self, filter: SyscallFilter) -> None:
        """Take over the architectures and rules of ``filter``, which is used up. Both must have
        the same default action, NNP and TSYNC settings, byte order, and no arch in common."""
        if not isinstance(filter, SyscallFilter):
            raise TypeError("Argument 'filter' has incorrect type (expected seccomp.SyscallFilter, "
                            f"got {type(filter).__name__})")
        dst, src = self._valid(), filter._valid()
        if dst is None or src is None:
            rc = -errno.EINVAL
        elif (dst.attr.act_default != src.attr.act_default or dst.attr.nnp_enable != src.attr.nnp_enable
              or dst.attr.tsync_enable != src.attr.tsync_enable):
            rc = -errno.EINVAL
        else:
            rc = dst.merge(src)
        if rc != 0:
            raise _library_error(rc)
        filter._col = None  # released, as libseccomp does
        filter._changed()
        self._changed()

    def exist_arch(self, arch: Any) -> bool:
        """Whether ``arch`` is in the filter."""
        a = _arch_of(_c_int(arch))
        col = self._col
        if a is None or col is None:
            raise ValueError("Invalid architecture")
        return col.arch_exist(a.token)

    def add_arch(self, arch: Any) -> None:
        """Add ``arch``; rules added from now on apply to it too, earlier ones do not."""
        a = _arch_of(_c_int(arch))
        col = self._col
        if a is None or col is None:
            raise ValueError("Invalid architecture")
        rc = -errno.EEXIST if col.arch_exist(a.token) else col.db_add(_D.DBFilter(a))
        if rc == -errno.EINVAL:
            raise ValueError("Invalid architecture")
        if rc != 0:
            raise _library_error(rc)
        self._changed()

    def remove_arch(self, arch: Any) -> None:
        """Remove ``arch`` and its rules."""
        a = _arch_of(_c_int(arch))
        col = self._col
        if a is None or col is None:
            raise ValueError("Invalid architecture")
        rc = col.db_remove(a.token) if col.arch_exist(a.token) else -errno.EEXIST
        if rc == -errno.EINVAL:
            raise ValueError("Invalid architecture")
        if rc != 0:
            raise _library_error(rc)
        self._changed()

    def load(self) -> None:
        """Install the filter on this thread (all threads with ``CTL_TSYNC``); it cannot be removed."""
        col = self._valid()
        rc, data = self._bpf()
        if rc == 0 and col is not None:
            a = col.attr
            rc = _S.load(data, nnp=bool(a.nnp_enable), tsync=bool(a.tsync_enable), log=bool(a.log_enable),
                         spec_allow=bool(a.spec_allow), notify_used=col.notify_used,
                         wait_killable=bool(a.wait_killable_recv), rawrc=bool(a.api_sysrawrc))
        if rc != 0:
            raise _library_error(rc)

    # attributes
    _ATTR_FIELDS = {1: "act_default", 2: "act_badarch", 3: "nnp_enable", 4: "tsync_enable", 5: "api_tskip",
                    6: "log_enable", 7: "spec_allow", 8: "optimize", 9: "api_sysrawrc", 10: "wait_killable_recv"}

    def get_attr(self, attr: Any) -> int:
        """The value of attribute ``attr`` (an ``Attr`` constant)."""
        attr = _c_unsigned(attr, "enum scmp_filter_attr")
        col = self._valid()
        if col is None or attr not in self._ATTR_FIELDS:
            raise ValueError("Invalid attribute")
        return getattr(col.attr, self._ATTR_FIELDS[attr]) & _U32

    def set_attr(self, attr: Any, value: Any) -> None:
        """Set attribute ``attr``; ``ACT_DEFAULT`` is read-only."""
        attr = _c_unsigned(attr, "enum scmp_filter_attr")
        value = _c_int(value) & _U32
        col = self._valid()
        rc = -errno.EINVAL if col is None else self._attr_set(col, attr, value)
        if rc == -errno.EINVAL:
            raise ValueError("Invalid attribute")
        if rc != 0:
            raise _library_error(rc)
        self._changed()

    def _attr_set(self, col: _D.Collection, attr: int, value: int) -> int:
        a = col.attr
        flag_attrs = {Attr.CTL_LOG: (_S.F_LOG, "log_enable"), Attr.CTL_SSB: (_S.F_SPEC_ALLOW, "spec_allow")}
        if attr == Attr.ACT_DEFAULT:
            return -errno.EACCES  # read only
        if attr == Attr.ACT_BADARCH:
            if self._action_valid(col, value) != 0:
                return -errno.EINVAL
            a.act_badarch = value
        elif attr == Attr.CTL_NNP:
            a.nnp_enable = 1 if value else 0
        elif attr == Attr.CTL_TSYNC:
            if _S.flag_supported(_S.F_TSYNC) != 1:
                return -errno.EOPNOTSUPP
            if _S.flag_supported(_S.F_TSYNC_ESRCH) < 1 and value and col.notify_used:
                return -errno.EINVAL
            a.tsync_enable = 1 if value else 0
        elif attr == Attr.API_TSKIP:
            a.api_tskip = 1 if value else 0
        elif attr in flag_attrs:
            flag, name = flag_attrs[attr]
            if _S.flag_supported(flag) != 1:
                return -errno.EOPNOTSUPP
            setattr(a, name, 1 if value else 0)
        elif attr == Attr.CTL_OPTIMIZE:
            if value not in (1, 2):
                return -errno.EOPNOTSUPP
            a.optimize = value
        elif attr == Attr.API_SYSRAWRC:
            a.api_sysrawrc = 1 if value else 0
        elif attr == Attr.CTL_WAITKILL:
            # libseccomp 2.6 (db.c) records it whatever the kernel or API level: load() adds
            # WAIT_KILLABLE_RECV only next to NEW_LISTENER, so it never fails a load where unsupported.
            a.wait_killable_recv = 1 if value else 0
        else:
            return -errno.EINVAL
        return 0

    # rules
    @staticmethod
    def _syscall_num(syscall: Any) -> Any:
        if isinstance(syscall, str):
            return _A.native().resolve_name(syscall.encode().split(b"\0", 1)[0].decode("utf-8", "replace"))
        if isinstance(syscall, int):
            return syscall
        raise TypeError("Syscall must either be an int or str type")

    def _syscall_valid(self, col: _D.Collection, syscall: int) -> bool:
        if col.attr.api_tskip and syscall == -1:
            return True
        return not -99 <= syscall <= -1

    def syscall_priority(self, syscall: Any, priority: Any) -> None:
        """Give a syscall a priority hint (0-255). Checked as libseccomp does; it does not change
        sysgate's program layout."""
        priority = _c_int(priority)
        if priority < 0 or priority > 255:
            raise ValueError("Syscall priority must be between 0 and 255")
        num = _c_int(self._syscall_num(syscall))
        col = self._valid()
        if col is None or not self._syscall_valid(col, num):
            rc = -errno.EINVAL
        else:
            rc = col.syscall_priority(num, priority)
        if rc != 0:
            raise _library_error(rc)
        self._changed()

    def _add(self, strict: bool, action: Any, syscall: Any, args: tuple) -> None:
        action = _c_int(action) & _U32
        num = self._syscall_num(syscall)
        if len(args) > 6:
            raise RuntimeError("Maximum number of arguments exceeded")
        cargs = []
        for a in args:
            if not isinstance(a, Arg):
                raise TypeError(f"Cannot convert {type(a).__name__} to seccomp.Arg")
            cargs.append(a.to_c())
        num = _c_int(num)
        col = self._valid()
        if col is None or not self._syscall_valid(col, num):
            rc = -errno.EINVAL
        else:
            rc = self._action_valid(col, action)
            if rc == 0 and action == col.attr.act_default:
                rc = -errno.EACCES
            if rc == 0 and strict and len(col.filters) > 1:
                rc = -errno.EOPNOTSUPP
            if rc == 0:
                rc = col.rule_add(strict, action, num, cargs)
                self._changed()
        if rc != 0:
            raise _library_error(_rc_filter(rc))

    def add_rule(self, action: Any, syscall: Any, *args: Arg) -> None:
        """Add a rule: ``action`` when ``syscall`` (name or native number) is called and every
        :class:`Arg` test holds (at most one per argument).

        On arches that multiplex socket and IPC calls the rule is rewritten to socketcall/ipc
        plus the direct call, where the arch has one."""
        self._add(False, action, syscall, args)

    def add_rule_exactly(self, action: Any, syscall: Any, *args: Arg) -> None:
        """Like :meth:`add_rule`, but refuse (instead of rewrite) what an arch cannot take as
        given; only allowed with a single arch in the filter."""
        self._add(True, action, syscall, args)

    # notifications
    def _notify_fd(self, fd: Any) -> int:
        if fd is None:
            fd = _S.state.notify_fd if self._valid() is not None else -errno.EINVAL
        if fd < 0:
            raise RuntimeError("Notifications not enabled/active")
        return fd

    def receive_notify(self, fd: Any = None) -> Notification:
        """Wait for the next user notification and return it as a :class:`Notification`.

        ``fd`` is the listener; by default the one of the filter this process loaded."""
        from ..kernel import notify as N

        fd = self._notify_fd(fd)
        if not _S.action_valid(_S.ACT_NOTIFY):
            raise _library_error(-errno.EOPNOTSUPP)
        try:
            n = N.receive(fd)
        except OSError:
            raise _library_error(-errno.ECANCELED) from None
        try:
            valid = N.id_valid(fd, n.id)
        except OSError:
            raise _library_error(-errno.ECANCELED) from None
        if not valid:
            raise _library_error(-errno.ENOENT)
        d = n.data
        return Notification(n.id, n.pid, n.flags, _A.to_signed32(d.nr), d.arch, d.instruction_pointer,
                            list(d.args))

    def respond_notify(self, response: Any, fd: Any = None) -> None:
        """Answer a notification with a :class:`NotificationResponse` (on ``fd``, or this process's listener)."""
        fd = self._notify_fd(fd)
        rid, val, err, flags = response.id, response.val, response.error, response.flags
        if not _S.action_valid(_S.ACT_NOTIFY):
            raise _library_error(-errno.EOPNOTSUPP)
        try:
            _respond(fd, rid, val, err, flags)
        except OSError:
            raise _library_error(-errno.ECANCELED) from None

    def get_notify_fd(self) -> int:
        """The listener fd of the filter this process loaded with a NOTIFY rule."""
        return self._notify_fd(None)

    def notify_addfd(self, addfd: NotificationAddfd, fd: Any = None) -> int:
        """Add a file descriptor to the target of a notification; returns its number there."""
        import ctypes

        from ..kernel import notify as N

        fd = self._notify_fd(fd)
        # the request goes to the kernel as given (flags and newfd_flags unchecked), as in libseccomp
        req = N.SeccompNotifAddfd(addfd.id, addfd.flags, addfd.srcfd, addfd.newfd, addfd.newfd_flags)
        rc = N.libc.ioctl(fd, ctypes.c_ulong(N.SECCOMP_IOCTL_NOTIF_ADDFD), ctypes.byref(req))
        if rc < 0:
            raise _library_error(-errno.ECANCELED)
        return rc

    # export
    def export_pfc(self, file: BinaryIO) -> None:
        """Write the rules to ``file`` (anything with ``fileno()``) as libseccomp's pseudo filter code."""
        from ._pfc import render

        fd = file.fileno()
        col = self._valid()
        if col is None:
            raise _library_error(-errno.EINVAL)
        _write_all(fd, render(col).encode(), col)

    def export_bpf(self, file: BinaryIO) -> None:
        """Write the program ``load()`` would install to ``file`` (raw ``struct sock_filter`` array)."""
        fd = file.fileno()
        rc, data = self._bpf()
        if rc != 0:
            raise _library_error(rc)
        _write_all(fd, data, self._valid())

    def export_bpf_mem(self) -> memoryview:
        """The program ``load()`` would install, as a buffer of bytes."""
        rc, data = self._bpf()
        if rc != 0:
            raise _library_error(rc)
        return memoryview(bytearray(data))

    # transactions (libseccomp 2.6)
    def start_transaction(self) -> None:
        """Begin a transaction; they nest, and commit/reject apply to the newest."""
        col = self._valid()
        rc = -errno.EINVAL if col is None else col.transaction_start()
        if rc != 0:
            raise _library_error(rc)

    def reject_transaction(self) -> None:
        """Undo everything since the newest transaction began, and end it."""
        col = self._valid()
        if col is not None:
            col.transaction_reject()
            self._changed()

    def commit_transaction(self) -> None:
        """End the newest transaction, keeping its changes."""
        col = self._valid()
        rc = -errno.EINVAL if col is None else col.transaction_commit()
        if rc != 0:
            raise _library_error(rc)

    def precompute(self) -> None:
        """Build the program now (later exports and loads reuse it until the filter changes)."""
        rc, _ = self._bpf()
        if rc != 0:
            raise _library_error(rc)


def _rc_filter(rc: int) -> int:
    """libseccomp passes only its documented error codes; anything else is -EFAULT."""
    if rc >= 0 or -rc in (errno.EACCES, errno.ECANCELED, errno.EDOM, errno.EEXIST, errno.EINVAL,
                          errno.ENOENT, errno.ENOMEM, errno.EOPNOTSUPP, errno.ESRCH):
        return rc
    return -errno.EFAULT


def _write_all(fd: int, data: bytes, col: _D.Collection | None) -> None:
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError as e:
        raw = col is not None and col.attr.api_sysrawrc
        raise _library_error(-(e.errno or errno.EIO) if raw else -errno.ECANCELED) from None


def _respond(fd: int, rid: int, val: int, err: int, flags: int) -> None:
    from ..kernel import notify as N

    if -4095 <= err <= 0:
        N.respond(fd, rid, val=val, error=-err, flags=flags)
        return
    # a value the sysgate helper refuses (libseccomp passes it to the kernel as is)
    import ctypes

    resp = N.SeccompNotifResp(rid, val, err, flags)
    if N.libc.ioctl(fd, ctypes.c_ulong(N.SECCOMP_IOCTL_NOTIF_SEND), ctypes.byref(resp)) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
