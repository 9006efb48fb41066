"""Pseudo filter code (PFC): libseccomp's human-readable rendering of a filter's rules.

The layout follows ``seccomp_export_pfc()``: one block per architecture, syscalls in the order
the filter checks them (highest priority first), each syscall's argument tree as nested
``if``/``else`` on 32-bit words (``$a1.hi32``/``$a1.lo32`` on 64-bit arches). It describes the
libseccomp rule state; the program sysgate loads decides the same way but is laid out by
sysgate's compiler.
"""
from __future__ import annotations

from . import _db as D

__all__ = ["action_name", "render"]


def action_name(action: int) -> str:
    """``_pfc_action``: libseccomp 2.5 spells the actions it knew first and hex for the rest."""
    action &= 0xFFFFFFFF
    kind, data = action & 0xFFFF0000, action & 0xFFFF
    if kind == 0x00050000:
        return f"ERRNO({data})"
    if kind == 0x7FF00000:
        return f"TRACE({data})"
    names = {0x80000000: "KILL_PROCESS", 0x00000000: "KILL", 0x00030000: "TRAP", 0x7FFC0000: "LOG",
             0x7FFF0000: "ALLOW"}
    return names.get(action, f"0x{action:x}")


def _node_test(n: D.Node, bits64: bool) -> str:
    word = f"$a{n.arg}" + ((".hi32" if n.arg_h_flg else ".lo32") if bits64 else "")
    op = {D.CMP_EQ: " == ", D.CMP_GT: " > ", D.CMP_GE: " >= "}.get(n.op, f" & 0x{n.mask:08x} == ")
    return f"{word}{op}{n.datum}"


def _level(node: D.Node, depth: int, bits64: bool, out: list[str]) -> None:
    while node.lvl_prv is not None:
        node = node.lvl_prv
    n: D.Node | None = node
    pad = "  " * depth
    while n is not None:
        out.append(f"{pad}if ({_node_test(n, bits64)})")
        if n.act_t_flg:
            out.append(f"{pad}  action {action_name(n.act_t)};")
        elif n.nxt_t is not None:
            _level(n.nxt_t, depth + 1, bits64, out)
        if n.act_f_flg:
            out += [f"{pad}else", f"{pad}  action {action_name(n.act_f)};"]
        elif n.nxt_f is not None:
            out.append(f"{pad}else")
            _level(n.nxt_f, depth + 1, bits64, out)
        n = n.lvl_nxt


def _by_priority(entries: list[D.SysEntry]) -> list[D.SysEntry]:
    # libseccomp inserts each entry (in number order) before the first one of lower or equal
    # priority, so equal priorities come out in reverse number order
    out: list[D.SysEntry] = []
    for s in entries:
        i = 0
        while i < len(out) and s.priority < out[i].priority:
            i += 1
        out.insert(i, s)
    return out


def render(col: D.Collection) -> str:
    """The PFC text of ``col``, line for line as libseccomp 2.5 writes it (except that with
    ``CTL_OPTIMIZE`` 2 and many syscalls libseccomp nests them in a binary search tree)."""
    out = ["#", "# pseudo filter code start", "#"]
    for f in col.filters:
        bits64 = f.arch.size == 64
        out.append(f"# filter for arch {f.arch.name} ({f.arch.token_bpf})")
        out.append(f"if ($arch == {f.arch.token_bpf})")
        # with CTL_OPTIMIZE 2 libseccomp lists them by number (and nests them in a binary search
        # tree once there are enough of them; sysgate keeps the flat list)
        order = (sorted(f.syscalls, key=lambda e: e.num & 0xFFFFFFFF, reverse=True) if col.attr.optimize == 2
                 else _by_priority(f.syscalls))
        for s in order:
            if not s.valid:
                continue
            name = f.arch.resolve_num(s.num) or "UNKNOWN"
            num = s.num & 0xFFFFFFFF
            out.append(f'  # filter for syscall "{name}" ({num}) [priority: {s.priority}]')
            out.append(f"  if ($syscall == {num})")
            if s.chains is None:
                out.append(f"    action {action_name(s.action)};")
            else:
                _level(s.chains, 2, bits64, out)
        out.append("  # default action")
        out.append(f"  action {action_name(col.attr.act_default)};")
    out.append("# invalid architecture action")
    out.append(f"action {action_name(col.attr.act_badarch)};")
    out += ["#", "# pseudo filter code end", "#", ""]
    return "\n".join(out)
