"""libkafel, built from the Kafel source in ``shared/oracles/kafel``, driven through ctypes.

Used by the Kafel differential tests: :func:`build` compiles the oracle's ``src`` into a temporary
directory (it needs ``cc``, ``make``, ``flex`` and ``bison``) and returns a :class:`Kafel` whose
:meth:`Kafel.compile` gives the program libkafel produces for a policy text and one target arch,
or raises :class:`KafelError` with libkafel's own message.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

# ../shared beside the checkout (CI), or SYSGATE_SHARED (a worktree elsewhere).
SHARED = Path(os.environ.get("SYSGATE_SHARED") or Path(__file__).resolve().parents[1].parent / "shared")
ORACLE = SHARED / "oracles" / "kafel"

# kafel.h's enum kafel_target_arch, by sysgate arch name.
TARGETS = {"arm": 1 << 1, "aarch64": 1 << 2, "x86": 1 << 3, "x86_64": 1 << 4, "mips": 1 << 5,
           "mips64": 1 << 6, "riscv64": 1 << 7, "m68k": 1 << 8}


class KafelError(Exception):
    """libkafel refused the policy; the message is libkafel's."""


class _Fprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def missing_tools() -> list[str]:
    return [t for t in ("cc", "make", "flex", "bison") if shutil.which(t) is None]


class Kafel:
    def __init__(self, so: str) -> None:
        lib = ctypes.CDLL(so)
        lib.kafel_ctxt_create.restype = ctypes.c_void_p
        lib.kafel_ctxt_destroy.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.kafel_set_input_string.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.kafel_set_target_archs.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.kafel_add_include_search_path.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.kafel_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Fprog)]
        lib.kafel_error_msg.argtypes = [ctypes.c_void_p]
        lib.kafel_error_msg.restype = ctypes.c_char_p
        self._lib = lib
        self._libc = ctypes.CDLL(None)

    def compile(self, text: str, arch: str, include_dirs: tuple[str, ...] = ()) -> bytes:
        """The raw ``sock_filter`` bytes libkafel produces for ``text`` on ``arch``."""
        lib = self._lib
        ctxt = ctypes.c_void_p(lib.kafel_ctxt_create())
        src = text.encode()  # kept alive for the call
        try:
            lib.kafel_set_input_string(ctxt, src)
            lib.kafel_set_target_archs(ctxt, TARGETS[arch])
            for d in include_dirs:
                lib.kafel_add_include_search_path(ctxt, d.encode())
            prog = _Fprog()
            if lib.kafel_compile(ctxt, ctypes.byref(prog)) != 0:
                raise KafelError((lib.kafel_error_msg(ctxt) or b"").decode(errors="replace").strip())
            data = ctypes.string_at(prog.filter, prog.len * 8)
            self._libc.free(ctypes.c_void_p(prog.filter))
            return data
        finally:
            lib.kafel_ctxt_destroy(ctypes.byref(ctxt))


def build(workdir: Path) -> Kafel:
    """Build libkafel from the oracle into ``workdir``; raises RuntimeError if that fails."""
    for part in ("src", "include", "build"):
        shutil.copytree(ORACLE / part, workdir / part)
    # Objects from another machine must not be reused.
    for stale in (workdir / "src").rglob("*.o"):
        stale.unlink()
    r = subprocess.run(["make", "-C", "src", "PROJECT_ROOT=../", "../libkafel.so"], cwd=workdir,
                       capture_output=True, text=True, timeout=300, env={**os.environ, "MAKEFLAGS": ""})
    if r.returncode != 0:
        raise RuntimeError(f"building libkafel failed: {r.stderr[-2000:]}")
    return Kafel(str(workdir / "libkafel.so"))
