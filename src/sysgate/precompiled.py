"""The built-in profiles' programs, shipped precompiled in the package.

``sysgate/profiles/compiled/STEM.MACHINE.bpf`` (written by ``tools/gen_precompiled.py``;
``tests/test_precompiled.py`` recompiles each and compares, so a stale file fails CI) spares the
two commands whose start-up matters the compile of a built-in: ``sysgate run`` (the jail's
programs, :data:`JAIL`) and ``sysgate compile NAME`` with no option that changes the program
(:data:`COMPILE`). A file is ``MAGIC``, the length (4 bytes, little-endian) and the bytes of the
profile sources it was made from (:func:`sources`), one flag byte (the program is safe under the
jail's supervisor filter) and the program; it is used only when those sources are still the same
byte for byte (an edited profile is compiled afresh), and only if it is a regular file that nobody
but root or us can have written. A copy of the sources rather than a digest of them: comparing is
a ``memcmp``, where hashing needed ``_sha256`` loaded (0.3-0.4 ms of every ``sysgate run``).

This module imports nothing of the policy model or the compiler: that is its point.
"""
from __future__ import annotations

import os

__all__ = ["JAIL", "COMPILE", "SHIPPED", "MAGIC", "path", "sources", "read", "compile_default"]

_PROFILES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles")
_COMPILED_DIR = os.path.join(_PROFILES_DIR, "compiled")
MAGIC = b"sysgate-precompiled-2\n"

#: The jail's programs: stem -> (built-in profile, ``--allow`` names); resolved with no capabilities
#: (a sandbox drops them all) for the machine's architecture.
JAIL: dict[str, tuple[str, tuple[str, ...]]] = {
    "docker-default": ("docker-default", ()), "python": ("python", ()),
    "python-exec": ("python", ("execve", "execveat")), "strict": ("strict", ())}
#: ``sysgate compile NAME``'s program with its default options: built-in name -> stem. Only
#: docker-default needs a file of its own: compile resolves Docker's default capability set
#: (which allows ``chroot``), the jail none.
COMPILE: dict[str, str] = {"docker-default": "docker-default-caps", "python": "python", "strict": "strict"}
#: Every stem shipped: stem -> (built-in profile, ``--allow`` names, Docker's default capabilities).
SHIPPED: dict[str, tuple[str, tuple[str, ...], bool]] = {
    **{stem: (prof, allow, False) for stem, (prof, allow) in JAIL.items()},
    "docker-default-caps": ("docker-default", (), True)}


def path(stem: str, machine: str | None = None) -> str:
    """The shipped file of ``stem`` for ``machine`` (``uname -m``; default: this one)."""
    return os.path.join(_COMPILED_DIR, f"{stem}.{machine or os.uname().machine}.bpf")


def sources(profile: str) -> bytes:
    """What a built-in's program is made from besides the compiler, its file and the overlay: each
    one's length (4 bytes, little-endian) and bytes."""
    out = []
    for rel in (profile + ".json", "hardening.py"):
        # os.read, not open(): the io objects cost more than the read (this is on every sysgate run).
        # One read of the size fstat gives, as read() below: a file that changes meanwhile differs
        # from the copy, and the program is compiled afresh.
        fd = os.open(os.path.join(_PROFILES_DIR, rel), os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, os.fstat(fd).st_size + 1)
        finally:
            os.close(fd)
        out.append(len(data).to_bytes(4, "little") + data)
    return b"".join(out)


def read(stem: str) -> tuple[bytes, bool] | None:
    """(program bytes, safe under the supervisor filter) of the shipped file ``stem`` for this
    machine, or None when there is none or it fails a check (then compile instead)."""
    try:
        fd = os.open(path(stem), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if st.st_uid not in (0, os.geteuid()) or st.st_mode & 0o022 or st.st_size > 1 << 20:
            return None
        blob = os.read(fd, st.st_size + 1)
        made_from = sources(SHIPPED[stem][0])
    except OSError:
        return None
    finally:
        os.close(fd)
    n = len(MAGIC)
    m = n + 4 + len(made_from)
    if (blob[:n] != MAGIC or blob[n:n + 4] != len(made_from).to_bytes(4, "little") or blob[n + 4:m] != made_from
            or blob[m:m + 1] not in (b"\0", b"\1")):
        return None
    data = blob[m + 1:]
    if not data or len(data) % 8:
        return None
    return data, blob[m:m + 1] == b"\1"


def compile_default(name: str) -> bytes | None:
    """The program ``sysgate compile NAME`` writes with its default options, from the shipped file,
    or None (not a built-in, no file for this machine, or a check failed: compile instead)."""
    stem = COMPILE.get(name)
    got = read(stem) if stem is not None else None
    return got[0] if got is not None else None
