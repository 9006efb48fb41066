"""Turn a command-line operand into a BPF program: a profile (built-in name or file) is
compiled, a raw ``.bpf`` file is decoded, an assembly/disassembly listing is assembled.
"""
from __future__ import annotations

import os
from typing import Sequence

from .bpf.insn import Insn
from .immutable import Record

__all__ = ["LoadedProgram", "load_program", "looks_like_profile"]


class LoadedProgram(Record):
    """A program and where it came from: ``arches`` it was compiled for (() for a raw program),
    ``kind`` "profile" | "raw" | "asm", and the ``policy`` when compiled from a profile."""

    __slots__ = ("insns", "arches", "source", "kind", "policy")
    _defaults = {"policy": None}
    insns: tuple[Insn, ...]
    arches: tuple[str, ...]
    source: str
    kind: str
    policy: object


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

    if spec in BUILTINS or (os.path.exists(spec) and _is_profile_file(spec)):
        from .compiler import compile_policy
        from .profiles import resolve

        primary = arches[0] if arches else None
        policy = resolve(spec, arch=primary, caps=caps, arches=arches or None)
        prog = compile_policy(policy)
        return LoadedProgram(prog.insns, prog.arches, spec, "profile", policy)
    try:
        with open(spec, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise ValueError(f"{spec}: cannot read: {e.strerror}") from None
    if _is_text(data):
        from .bpf.asm import asm

        insns = asm(data.decode(), arch=arches[0] if arches else None)
        return LoadedProgram(tuple(insns), tuple(arches or ()), spec, "asm")
    from .arch import get
    from .bpf.insn import decode

    order = byteorder or (get(arches[0]).byteorder if arches else "little")
    try:
        insns = decode(data, order)
    except ValueError as e:
        raise ValueError(f"{spec}: {e}") from None
    if not insns:
        raise ValueError(f"{spec}: empty program")
    return LoadedProgram(insns, tuple(arches or ()), spec, "raw")


def _is_profile_file(path: str) -> bool:
    """A policy in any format sysgate reads (not a raw program or an assembly listing)."""
    from .formats import ProfileError
    from .formats.detect import detect_file, is_policy

    try:
        return is_policy(detect_file(path))
    except ProfileError:
        return False


def _is_text(data: bytes) -> bool:
    if not data or b"\0" in data[:4096]:
        return False
    try:
        data[:4096].decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
