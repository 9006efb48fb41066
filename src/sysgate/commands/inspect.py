"""dump, explain, diff and audit: look inside any seccomp filter.

Operands (``TARGET``) are a built-in profile name, a profile file, a raw ``.bpf`` program, an
assembly listing, or the PID of a running process (its whole filter stack, via
``PTRACE_SECCOMP_GET_FILTER``).
"""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ..errors import EXIT_USAGE, UserError
from .core import arch_option as _arches
from .core import caps_option as _caps
from .core import is_pid as _is_pid
from .core import write_output as _write


class TargetError(UserError):
    """An operand that cannot be read: a process that is gone or cannot be traced, a command that
    cannot be traced (the kernel's reason, one line)."""


def _filters_of(pid: int) -> list[bytes]:
    from ..kernel.ptrace import PtraceError, get_filters

    try:
        return get_filters(pid)
    except PtraceError as e:  # the PID the user named: gone, not traceable, ...
        raise TargetError(str(e)) from None


class Target:
    """A loaded operand: the filter stack (oldest first), its byte order and how to name syscalls."""

    def __init__(self, programs: list[tuple], byteorder: str, naming: Sequence[str], source: str, kind: str,
                 notes: Sequence[str] = ()) -> None:
        self.programs = programs
        self.byteorder = byteorder
        self.naming = tuple(naming)
        self.source = source
        self.kind = kind
        self.notes = tuple(notes)  # what the compiler did that the program alone does not say


def load_target(spec: str, arches: Sequence[str] | None, caps: Sequence[str] | None = None) -> Target:
    """Load ``spec``; every program is checked the way the kernel checks it."""
    from ..arch import UnknownArch, native
    from ..bpf.emulator import InvalidProgram, check
    from ..bpf.insn import decode

    try:
        host = native()
    except UnknownArch:
        host = None
    if _is_pid(spec):
        pid = int(spec)
        raw = _filters_of(pid)
        if not raw:
            raise TargetError(f"process {pid} has no seccomp filter")
        order = host.byteorder if host else sys.byteorder
        progs = [decode(r, order) for r in raw]
        for i, p in enumerate(progs):
            try:
                check(p)
            except InvalidProgram as e:
                raise TargetError(f"process {pid} filter {i}: {e}") from None
        return Target(progs, order, arches or ([host.name] if host else ["x86_64"]), f"pid {pid}", "pid")
    from ..arch import get
    from ..programs import load_program

    loaded = load_program(spec, arches, caps=caps)
    insns = loaded.insns
    if loaded.kind == "asm":
        from ..programs import check_program

        check_program(insns, spec, loaded.lines)  # names the line (no byte-order question for text)
    naming = list(loaded.arches or arches or ([host.name] if host else ["x86_64"]))
    order = get(naming[0]).byteorder if loaded.kind != "raw" or arches else "little"
    try:
        check(insns)
    except InvalidProgram as e:
        swapped = _big_endian_raw(spec) if loaded.kind == "raw" and not arches else None
        if swapped is None:
            raise UserError(f"{spec}: not a valid seccomp program (the kernel would refuse it): {e}") from None
        insns, order = swapped, "big"
    notes: list[str] = []
    if loaded.policy is not None:
        from ..compiler.multiplex import notes as mux_notes

        notes = mux_notes(loaded.policy, loaded.arches)  # type: ignore[arg-type]
    return Target([insns], order, naming, spec, loaded.kind, notes)


def _big_endian_raw(spec: str) -> Any:
    """The instructions of raw program ``spec`` read big-endian (s390x, ppc64, mips...), if valid
    that way; None otherwise. Used when it is invalid little-endian and no ``--arch`` says which:
    a program valid both ways is practically impossible (opcodes land in the other byte of the
    16-bit code), so the bytes tell the order."""
    from ..bpf.emulator import check
    from ..programs import load_program

    try:
        insns = load_program(spec, None, byteorder="big").insns
        check(insns)
    except UserError:  # (InvalidProgram is one)
        return None
    return insns


def _explain(t: Target) -> Any:
    from ..analysis.explain import explain_programs

    return explain_programs(t.programs, t.byteorder, naming=t.naming, sources=[t.source])


# ---------------------------------------------------------------------------- explain

def cmd_explain(args: Any) -> int:
    arches = _arches(args.arch)
    targets = [args.target] if isinstance(args.target, str) else list(args.target)
    caps = _caps(args.caps, *targets)
    if args.lossy and not args.to:
        raise UserError("explain: --lossy: only with --to (it lets the exported profile be inexact)")
    if args.to and (args.json or args.verbose):  # --to writes a profile, not the explanation they shape
        raise UserError(f"explain: {'--json' if args.json else '--verbose'}: not with --to (the output is a "
                        f"{args.to} profile)")
    if len(targets) == 1:
        t = load_target(targets[0], arches, caps)
        e = _explain(t)
        if args.to:
            return _explain_to(args, e, arches)
        _write(args.output, json.dumps(dict(e.to_json(arches), notes=list(t.notes)), indent=1) + "\n" if args.json
               else e.render(arches, verbose=args.verbose) + "".join(n + "\n" for n in t.notes))
        return 0
    if args.to:
        raise UserError("explain --to: give one program (it becomes one profile)")
    # Several operands (e.g. a directory of filters): each in turn, like head(1); a bad one is
    # reported and skipped, and the exit status says so at the end.
    status = 0
    docs: list[Any] = []
    parts: list[str] = []
    for spec in targets:
        try:
            e = _explain(load_target(spec, arches, caps))
        except UserError as err:
            print(f"sysgate: error: {err}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        if args.json:
            docs.append(e.to_json(arches))
        else:
            parts.append(f"==> {spec} <==\n" + e.render(arches, verbose=args.verbose))
    _write(args.output, json.dumps(docs, indent=1) + "\n" if args.json else "\n".join(parts))
    return status


def _explain_to(args: Any, e: Any, arches: list[str] | None) -> int:
    from ..analysis.export import NotExpressible, to_policy
    from ..formats import docker

    exp = to_policy(e, arches, lossy=args.lossy)
    doc, losses = docker.dump(exp.policy)
    text = json.dumps(doc, indent=2) + "\n"
    # Read the written profile back and compare it with the program, exactly.
    back = docker.loads(text, "<exported profile>", arch=exp.policy.arches[0]).policy
    from ..analysis.export import verify

    problems = [text for text, _kind in verify(e, back, exp.views)]
    if (losses or problems) and not args.lossy:
        raise NotExpressible((losses + problems)[0])
    for w in dict.fromkeys(exp.warnings + losses + problems):
        print(f"sysgate: lossy: {w}", file=sys.stderr)
    _write(args.output, text)
    return 0


# ---------------------------------------------------------------------------- diff

def cmd_diff(args: Any) -> int:
    from ..analysis.diff import diff

    arches = _arches(args.arch)
    caps = _caps(args.caps, args.a, args.b)
    ta = load_target(args.a, arches, caps)
    tb = load_target(args.b, arches, caps)
    ea, eb = _explain(ta), _explain(tb)
    res = diff(ea, eb, arches)
    if args.json:
        print(json.dumps(res.to_json(), indent=1))
    else:
        sys.stdout.write(res.render())
    return res.status


# ---------------------------------------------------------------------------- audit

def cmd_audit(args: Any) -> int:
    from ..analysis.audit import audit

    arches = _arches(args.arch)
    t = load_target(args.target, arches, _caps(args.caps, args.target))
    e = _explain(t)
    report = audit(e, arches)
    baseline = None if args.no_baseline else audit(_baseline(e, arches), arches)
    if args.json:
        print(json.dumps(report.to_json(baseline), indent=1))
    else:
        sys.stdout.write(report.render(baseline) + "".join(n + "\n" for n in t.notes))
    return 0


def _baseline(e: Any, arches: list[str] | None) -> Any:
    """docker-default as Docker installs it next to the audited filter, explained.

    With ``--arch``, compiled for those arches; otherwise for the archMap entry of the
    filter's first 64-bit architecture (x86_64 -> x86_64, x86, x32), as ``sysgate audit
    docker-default`` shows it on such a machine, so that the two summaries compare.
    """
    from ..arch import UnknownArch, native
    from ..compiler import compile_policy
    from ..profiles import resolve

    if arches:
        policy = resolve("docker-default", arch=arches[0], arches=arches)
    else:
        known = [v.arch for v in e.views() if v.arch is not None and v.token is not None
                 and v.arch.byteorder == e.byteorder]
        primary = next((a for a in known if a.bits == 64), known[0] if known else None)
        if primary is None:
            try:
                primary = native()
            except UnknownArch:
                primary = None
        policy = resolve("docker-default", arch=primary.name if primary else None)
    prog = compile_policy(policy)
    from ..analysis.explain import explain_programs

    return explain_programs([prog.insns], prog.byteorder, sources=["docker-default"])


# ---------------------------------------------------------------------------- dump

def cmd_dump(args: Any) -> int:
    from ..arch import native
    from ..bpf.disasm import disasm
    from ..bpf.insn import decode

    if args.timeout is not None and not 0 < args.timeout <= 1e9:  # inf and nan too, before anything runs
        from ..errors import BadArgument

        raise BadArgument(f"--timeout: {args.timeout} must be a number of seconds above 0 and at most 1e+09")
    if args.output and args.arch:  # before anything runs: -o writes raw programs, named by nothing
        raise UserError("dump: --arch: names syscalls in the disassembly, which -o DIR does not write "
                        "(disassemble the files with sysgate disasm --arch)")
    target = list(args.target)
    if target and target[0] == "--":
        target = target[1:]
    if not target:
        raise UserError("dump: give a PID, or -- and a command to run")
    if args.output:
        from ..outfile import preflight

        preflight(args.output, directory=True)  # before a command runs, not after
    if len(target) == 1 and _is_pid(target[0]):
        # --kill and --timeout act on a command dump starts; a running process is only read
        given = [o for o, v in (("--kill", args.kill), ("--timeout", args.timeout is not None)) if v]
        if given:
            raise UserError(f"dump: {' and '.join(given)}: for a command dump runs (dump -- CMD), not a running pid")
        pid = int(target[0])
        filters = _filters_of(pid)
        what = f"process {pid}"
    else:
        from ..kernel.ptrace import PtraceError, trace

        try:
            tr = trace(target, kill=args.kill, timeout=args.timeout)
        except PtraceError as e:
            raise TargetError(str(e)) from None
        filters = [f.program for f in tr.filters]
        for w in tr.warnings:
            print(f"sysgate: {w}", file=sys.stderr)
        what = f"command {target[0]}"
    if not filters:
        print(f"sysgate: {what} has no seccomp filter", file=sys.stderr)
        return 0
    arches = _arches(args.arch) or [native().name]
    if args.output:
        try:
            os.makedirs(args.output, exist_ok=True)
        except OSError as e:
            from ..outfile import OutputError

            raise OutputError(f"{args.output}: cannot make the directory: {e.strerror}") from None
        for i, raw in enumerate(filters):
            path = os.path.join(args.output, f"filter-{i}.bpf")
            from ..outfile import write_atomic

            write_atomic(path, raw)
            print(f"{path}: {len(raw) // 8} instructions" + (" (oldest)" if i == 0 and len(filters) > 1 else ""))
        return 0
    out = []
    for i, raw in enumerate(filters):
        order = "oldest" if i == 0 else ("newest" if i == len(filters) - 1 else "")
        out.append(f"# filter {i} of {len(filters)}{' (' + order + ')' if len(filters) > 1 and order else ''}: "
                   f"{len(raw) // 8} instructions\n")
        out.append(disasm(decode(raw, sys.byteorder), arches))
    _write(None, "".join(out))
    return 0
