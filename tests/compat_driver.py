"""Replay a sequence of libseccomp-bindings API calls and record every outcome (JSON in, JSON out).

Used by ``test_compat_diff.py`` on both modules: Debian's ``seccomp`` (run as a script under
``/usr/bin/python3``, which has it) and ``sysgate.compat.seccomp`` (imported in-process).
Standard library only, so either interpreter can run it.

A case is a list of operations on one filter, e.g. ``["add_rule", action, syscall, args]``;
the outcome of each is ``["ok", value]`` or ``["exc", type name, message]``. ``export``
records the ``export_bpf`` bytes as hex (``export_mem`` those of 2.6's ``export_bpf_mem``).
Architectures are written as ``Arch`` constant names
(``"X86"``) or raw ints, actions as ``["ERRNO", n]``/``["TRACE", n]``/constant names/raw ints.
"""
from __future__ import annotations

import json
import sys
import tempfile
from typing import Any


def _arch(m: Any, a: Any) -> Any:
    return getattr(m.Arch, a) if isinstance(a, str) else a


def _action(m: Any, a: Any) -> Any:
    if isinstance(a, list):
        return getattr(m, a[0])(a[1])
    if isinstance(a, str):
        return getattr(m, a)
    return a


def _value(v: Any) -> Any:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"bytes": bytes(v).hex()}
    if isinstance(v, (bool, int, str)) or v is None:
        return v
    if isinstance(v, (list, dict)):
        return v  # already recorded outcomes
    return repr(type(v).__name__)


def _pfc(f: Any) -> str:
    with tempfile.TemporaryFile() as t:
        f.export_pfc(t)
        t.seek(0)
        return t.read().decode()


def _export(f: Any) -> str:
    with tempfile.TemporaryFile() as t:
        f.export_bpf(t)
        t.seek(0)
        return t.read().hex()


def run_op(m: Any, f: Any, op: list) -> Any:
    name, args = op[0], op[1:]
    if name == "add_rule" or name == "add_rule_exactly":
        action, syscall, cmps = args
        return getattr(f, name)(_action(m, action), syscall, *[m.Arg(*c) for c in cmps])
    if name in ("add_arch", "remove_arch", "exist_arch"):
        return getattr(f, name)(_arch(m, args[0]))
    if name == "set_attr":
        return f.set_attr(args[0], _action(m, args[1]))
    if name == "get_attr":
        return f.get_attr(args[0])
    if name == "syscall_priority":
        return f.syscall_priority(args[0], args[1])
    if name == "reset":
        return f.reset() if args[0] is None else f.reset(_action(m, args[0]))
    if name == "export":
        return _export(f)
    if name == "pfc":
        return _pfc(f)
    if name == "resolve":
        return m.resolve_syscall(_arch(m, args[0]), args[1])
    if name in ("start_transaction", "commit_transaction", "reject_transaction", "precompute"):
        return getattr(f, name)()  # libseccomp 2.6: only sysgate's module has them here
    if name == "export_mem":
        return bytes(f.export_bpf_mem()).hex()
    if name == "merge":
        # the second filter's own calls are recorded too; the merge never raises out of here
        g = m.SyscallFilter(_action(m, args[0]))
        subs = [_outcome(m, g, sub) for sub in args[1]]
        return {"subs": subs, "merge": _outcome(m, f, ["_merge", g])}
    if name == "_merge":
        return f.merge(args[0])
    raise ValueError(f"unknown op {name!r}")


def _outcome(m: Any, f: Any, op: list) -> list:
    try:
        return ["ok", _value(run_op(m, f, op))]
    except Exception as e:  # noqa: BLE001 - recorded, compared
        return ["exc", type(e).__name__, str(e)]


def run_case(m: Any, case: dict, keep: list | None = None) -> list:
    """Run one case; the filter object is appended to ``keep`` if given."""
    out: list = []
    try:
        f = m.SyscallFilter(_action(m, case["default"]))
    except Exception as e:  # noqa: BLE001 - recorded, compared
        return [["exc", type(e).__name__, str(e)]]
    if keep is not None:
        keep.append(f)
    out.append(["ok", None])
    out += [_outcome(m, f, op) for op in case["ops"]]
    return out


def run_cases(m: Any, cases: list[dict]) -> list[list]:
    return [run_case(m, c) for c in cases]


if __name__ == "__main__":
    import seccomp  # the module under test: whatever this interpreter finds

    json.dump(run_cases(seccomp, json.load(sys.stdin)), sys.stdout)
