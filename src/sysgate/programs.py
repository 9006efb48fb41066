"""Turn a command-line operand into a BPF program: a profile (built-in name or file) is
compiled, a raw ``.bpf`` file is decoded, an assembly/disassembly listing is assembled.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from .bpf.insn import Insn
from .errors import UserError
from .immutable import Record

__all__ = ["LoadedProgram", "load_program", "looks_like_profile", "check_program", "asm_error"]


#: Longest raw program read: sock_fprog counts instructions in 16 bits.
MAX_RAW_INSNS = 0xFFFF


class LoadedProgram(Record):
    """A program and where it came from: ``arches`` it was compiled for (() for a raw program),
    ``kind`` "profile" | "raw" | "asm", the ``policy`` when compiled from a profile, and for
    assembly the source ``lines`` of each instruction."""

    __slots__ = ("insns", "arches", "source", "kind", "policy", "lines")
    _defaults = {"policy": None, "lines": None}
    insns: tuple[Insn, ...]
    arches: tuple[str, ...]
    source: str
    kind: str
    policy: object
    lines: tuple[int, ...] | None


def looks_like_profile(data: bytes) -> bool:
    """A policy in any format sysgate reads, rather than BPF assembly or a raw program."""
    from .formats import ProfileError
    from .formats.detect import detect, is_policy

    try:
        return is_policy(detect(data))
    except ProfileError:
        return False


def load_program(spec: str, arches: Sequence[str] | None = None, *, caps: Sequence[str] | None = None,
                 byteorder: str | None = None) -> LoadedProgram:
    """Load ``spec`` as a program for ``arches`` (the first is the primary arch)."""
    from .profiles import BUILTINS

    if spec in BUILTINS or ((spec == "-" or os.path.exists(spec)) and _is_profile_file(spec)):
        from .compiler import compile_policy
        from .profiles import resolve

        primary = arches[0] if arches else None
        policy = resolve(spec, arch=primary, caps=caps, arches=arches or None)
        prog = compile_policy(policy)
        return LoadedProgram(prog.insns, prog.arches, spec, "profile", policy)
    from .formats import decode_text, read_file

    data = read_file(spec)
    if not data.strip():
        raise UserError(f"{spec}: empty file")
    if b"\0" not in data:  # text (see formats.detect: every BPF program has a NUL byte)
        from .bpf.asm import AsmError, asm_lines

        text = decode_text(data, spec)
        try:
            insns, lines = asm_lines(text, arch=arches[0] if arches else None)
        except AsmError as e:
            raise asm_error(spec, e, text) from None
        return LoadedProgram(insns, tuple(arches or ()), spec, "asm", lines=lines)
    from .arch import get
    from .bpf.insn import decode
    from .formats.detect import nul_in_text

    damaged = nul_in_text(data, spec)
    if damaged is not None:
        raise damaged
    if len(data) > MAX_RAW_INSNS * 8:
        raise UserError(f"{spec}: {len(data) // 8} instructions; no program over {MAX_RAW_INSNS} can even be "
                        f"handed to the kernel (it loads at most 4096)")
    order = byteorder or (get(arches[0]).byteorder if arches else "little")
    try:
        insns = decode(data, order)
    except ValueError as e:
        raise UserError(f"{spec}: {e}") from None
    if not insns:
        raise UserError(f"{spec}: empty program")
    return LoadedProgram(insns, tuple(arches or ()), spec, "raw")


def _is_profile_file(path: str) -> bool:
    """A policy in any format sysgate reads (not a raw program or an assembly listing)."""
    from .formats import ProfileError
    from .formats.detect import detect_file, is_policy

    try:
        return is_policy(detect_file(path))
    except ProfileError:
        return False


def asm_error(source: str, e: Exception, text: str | None = None) -> UserError:
    """An :class:`~sysgate.bpf.asm.AsmError` as one line ``FILE:LINE: message``; given the
    listing's ``text``, the command line also shows that line with a caret under the column."""
    err = UserError(f"{source}:{getattr(e, 'line', '?')}: {getattr(e, 'message', e)}")
    line = getattr(e, "line", 0)
    if text is not None and isinstance(line, int):
        err.at_line(text.splitlines(), line, getattr(e, "col", 0))
    return err


def check_program(insns: tuple, source: str, lines: tuple | None = None, text: str | None = None) -> None:
    """The kernel's verdict on ``insns`` from ``source``: a refusal is one UserError line
    ``FILE[:LINE]: the kernel would refuse this program: instruction N: ...`` (with the listing's
    ``text``, the line is shown too, a caret under its statement)."""
    from .bpf.emulator import InvalidProgram, check

    try:
        check(insns)
    except InvalidProgram as e:
        line = lines[e.pc] if lines and e.pc is not None and e.pc < len(lines) else None
        err = UserError(f"{source}:{line}: the kernel would refuse this program: {e}" if line
                        else f"{source}: the kernel would refuse this program: {e}")
        if line and text is not None:
            err.at_line(text.splitlines(), line, 0)  # the statement as a whole
        raise err from None
