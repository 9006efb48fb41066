"""Policy -> classic BPF seccomp program.

Pipeline (each stage its own module, each checked by differential tests against the
reference evaluator through the emulator):

1. :mod:`.lower` - names to numbers per arch, rule precedence, compile-time facts;
2. :mod:`.layout` - neighbouring numbers with equal decisions merged into ranges, then an
   optimal binary search tree over the ranges;
3. :mod:`.graph` - decisions and argument checks as a hash-consed DAG, redundant loads dropped;
4. :mod:`.emit` - linear code with far jumps handled.

The optimizations of stages 2-4 are named passes listed in :mod:`.passes`;
``compile_policy(..., optimize=False)`` builds the straightforward program.

Every program starts by checking the architecture token and returns the policy's
``bad_arch`` action for any token it does not cover. On x86_64, numbers with the x32 bit
(0x40000000) set get ``bad_arch`` unless x32 is covered, since they share x86_64's token,
except -1 (a tracer's skipped call), which gets what x86_64 gives it, as in libseccomp.
Rules on socket and IPC calls also cover their multiplexed forms (:mod:`.multiplex`).
"""
from __future__ import annotations

from .. import arch as _arch
from ..bpf import insn as I
from ..bpf.insn import Insn
from ..errors import UserError
from ..immutable import Record
from ..policy import Compare, Policy
from .emit import emit
from .graph import Graph, Node, drop_redundant_loads, equality_key, group_equality_tests
from .layout import build_tree, merge_equal_neighbours, ranges, weight_by_use
from .lower import Decision, Lowered, LoweringError, lower
from .passes import select

TYPE_CHECKING = False  # importing typing costs milliseconds on every start
if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["compile_policy", "CompiledProgram", "CompileError"]

U32 = 0xFFFFFFFF
X32 = _arch.X32_SYSCALL_BIT


class CompileError(UserError):  # a ValueError
    """The policy cannot become a loadable program (unknown name, too long, mixed byte order)."""


class CompiledProgram(Record):
    """A seccomp program and what it was compiled for (``skipped``: names absent per arch)."""

    __slots__ = ("insns", "arches", "byteorder", "skipped")
    _defaults = {"skipped": dict}
    insns: tuple[Insn, ...]
    arches: tuple[str, ...]
    byteorder: str
    skipped: dict[str, tuple[str, ...]]

    def __hash__(self) -> int:
        return hash((self.insns, self.arches, self.byteorder))

    def to_bytes(self) -> bytes:
        """Raw ``struct sock_filter[]`` in the target's byte order."""
        return I.encode(self.insns, self.byteorder)

    def __len__(self) -> int:
        return len(self.insns)


def _min_path(node: Node, memo: dict[int, int]) -> int:
    """Fewest instructions from ``node`` to a return, the return included.

    Iterative: a syscall with a few hundred argument rules makes a chain deeper than Python's
    recursion limit.
    """
    stack = [node]
    while stack:
        n = stack[-1]
        if id(n) in memo:
            stack.pop()
        elif n.kind == "ret":
            memo[id(n)] = 1
            stack.pop()
        else:
            todo = [s for s in n.succ() if id(s) not in memo]
            if todo:
                stack.extend(todo)
            else:
                memo[id(n)] = 1 + min(memo[id(s)] for s in n.succ())
                stack.pop()
    return memo[id(node)]


def _least_length(lowered: list[Lowered]) -> int:
    """A lower bound on the program's length, in time linear in the rules: every group of rules
    :func:`_decision_node` makes for a decision starts with a test of its own (its "else" differs
    from every other group's), and equal decisions are shared (so counted once)."""
    total = 0
    seen: set[Decision] = set()
    for lw in lowered:
        for d in lw.decisions.values():
            if d.rules and d not in seen:
                seen.add(d)
                prev = object()
                for conds, action in d.rules:
                    key = equality_key(conds, action)
                    if key is None or key != prev:
                        total += 1
                    prev = key
    return total


def _decision_node(g: Graph, d: Decision, lo_hi: dict[int, tuple[int, int]], full: bool, grouped: bool) -> Node:
    if d.is_leaf:
        return g.ret(d.default.ret)
    groups = group_equality_tests(d.rules) if grouped else [[r] for r in d.rules]
    nxt = g.ret(d.default.ret)
    for group in reversed(groups):
        conds, action = group[0]
        if len(group) > 1:
            firsts = [cs[0] for cs, _ in group]  # group_equality_tests groups plain equality tests only
            eqs = [t for t in firsts if not isinstance(t, Compare)]
            c = eqs[0]
            lo, hi = lo_hi[c.arg]
            nxt = g.eq_set([t.value for t in eqs], c.width, lo, hi, full, g.ret(action.ret), nxt)
            continue
        node = g.ret(action.ret)
        for c in reversed(conds):
            if isinstance(c, Compare):
                node = g.compare(c, lo_hi, node, nxt)
                continue
            lo, hi = lo_hi[c.arg]
            node = g.cond(c, lo, hi, full, node, nxt)
        nxt = node
    return nxt


def _token_block(g: Graph, policy: Policy, members: list[Lowered], domains: list[tuple[str, int, int]],
                 passes: frozenset[str]) -> Node:
    """Dispatch on the syscall number for all covered ABIs that share one arch token."""
    by_name = {lw.arch.name: lw for lw in members}
    bad = policy.bad_arch
    points: dict[int, object] = {}
    cuts: list[tuple[int, object]] = []
    defined: list[int] = []
    key_default = ("leaf", policy.default)
    key_bad = ("leaf", bad)
    decisions: dict[object, Decision] = {}
    covered: list[tuple[int, int, bool]] = []
    for name, lo, hi in domains:
        lw = by_name.get(name)
        covered.append((lo, hi, lw is not None))
        cuts.append((lo, key_default if lw is not None else key_bad))
        if lw is None:
            continue
        leaf_keys: dict[int, tuple] = {}  # id(plain verdict) -> its key: lowering shares verdicts
        for nr, d in lw.decisions.items():
            if lo <= nr < hi:
                key: object
                if d.is_leaf:
                    leaf = leaf_keys.get(id(d))
                    if leaf is None:
                        leaf = leaf_keys[id(d)] = ("leaf", d.default)
                        decisions[leaf] = d
                    key = leaf
                else:
                    key = d
                    decisions[key] = d
                points[nr] = key
        defined.extend(n for n in lw.arch.syscalls.values() if lo <= n < hi)
    decisions[key_default] = Decision((), policy.default)
    decisions[key_bad] = Decision((), bad)
    cut_map = sorted(cuts, key=lambda c: c[0])

    def fill(n: int) -> object:
        val: object = key_bad
        for start, v in cut_map:
            if n >= start:
                val = v
        return val

    rs = ranges(points, fill, 0, U32 + 1, cuts)
    if "merge_equal_neighbours" in passes:
        rs = merge_equal_neighbours(rs)
    defined.sort()
    arch0 = members[0].arch
    big = arch0.big_endian
    lo_hi = {i: ((I.OFF_ARGS + 8 * i + 4, I.OFF_ARGS + 8 * i) if big else
                 (I.OFF_ARGS + 8 * i, I.OFF_ARGS + 8 * i + 4)) for i in range(6)}
    full = arch0.bits == 64
    grouped = "group_equality_tests" in passes
    leaves = [_decision_node(g, decisions[k], lo_hi, full, grouped) for _, _, k in rs]
    if "weight_by_use" in passes:
        memo: dict[int, int] = {}
        # x32 calls are rare next to x86_64's: keep them out of x86_64's way
        weights = weight_by_use(rs, defined, [_min_path(n, memo) for n in leaves],
                                domains[1][1] if len(domains) > 1 else None)
    else:
        weights = [1.0] * len(rs)
    starts = [s for s, _, _ in rs]
    tree = build_tree(starts, weights, lambda i: leaves[i],
                      lambda th, left, right: g.jmp(I.JGE, th, right, left))  # type: ignore[arg-type]
    return g.ld(I.OFF_NR, tree)  # type: ignore[arg-type]


def _domains(token_arches: list[_arch.Arch]) -> list[tuple[str, int, int]]:
    """How the 2^32 syscall numbers of one token split between ABIs (only x86_64/x32 share)."""
    names = {a.name for a in token_arches}
    if names == {"x86_64"}:
        # nr -1 has the x32 bit, but it is how a tracer skips a call (seccomp runs again after
        # the tracer, since Linux 4.8): as libseccomp does, x86_64 decides it (the default).
        return [("x86_64", 0, X32), ("x32", X32, U32), ("x86_64", U32, U32 + 1)]
    if names & {"x86_64", "x32"}:
        return [("x86_64", 0, X32), ("x32", X32, U32 + 1)]
    return [(token_arches[0].name, 0, U32 + 1)]


def compile_policy(policy: Policy, arches: list[str] | tuple[str, ...] | None = None, *,
                   skip_unknown: bool = False, narrow: bool = True,
                   optimize: bool | Iterable[str] = True) -> CompiledProgram:
    """Compile ``policy`` for ``arches`` (default: the policy's, else the native arch).

    ``narrow=False`` compares 64-bit ABIs' ``int`` arguments on all 64 bits, as libseccomp does
    (for :mod:`sysgate.compat`); by default they are decided on the low word the kernel uses
    (:mod:`.lower`).

    ``optimize``: apply every optimization pass (True), none (False: the straightforward
    program, which decides every call alike), or the passes named (see :mod:`.passes`).
    Raises :class:`CompileError` with a one-line message for anything that cannot be compiled.
    """
    try:
        passes = select(optimize)
    except ValueError as e:
        raise CompileError(str(e)) from None
    try:
        names = list(arches) if arches else list(policy.arches) or [_arch.native().name]
        targets = []
        for n in names:
            a = _arch.get(n)
            if a not in targets:
                targets.append(a)
    except _arch.UnknownArch as e:
        raise CompileError(str(e)) from None
    orders = {a.byteorder for a in targets}
    if len(orders) > 1:
        raise CompileError("cannot mix big- and little-endian architectures in one program: "
                           + ", ".join(f"{a.name} ({a.byteorder})" for a in targets))
    try:
        lowered = [lower(policy, a, skip_unknown, narrow) for a in targets]
    except LoweringError as e:
        raise CompileError(str(e)) from None

    least = _least_length(lowered)
    if least > I.BPF_MAXINSNS:  # refuse before building a graph the size of the input
        raise CompileError(f"program needs at least {least} instructions; the kernel accepts at most "
                           f"{I.BPF_MAXINSNS} (split the policy or drop argument rules)")
    g = Graph(passes)
    # One block per arch token, in the order the arches were given.
    tokens: list[int] = []
    for a in targets:
        if a.token not in tokens:
            tokens.append(a.token)
    chain: Node = g.ret(policy.bad_arch.ret)
    for tok in reversed(tokens):
        members = [lw for lw in lowered if lw.arch.token == tok]
        try:
            block = _token_block(g, policy, members, _domains([lw.arch for lw in members]), passes)
        except UserError as e:  # an argument expression too large for the scratch memory
            raise CompileError(str(e)) from None
        chain = g.jmp(I.JEQ, tok, block, chain)
    root = g.ld(I.OFF_ARCH, chain)
    if "drop_redundant_loads" in passes:
        root = drop_redundant_loads(root, None)
    insns = emit(root, "reuse_returns" in passes)
    if len(insns) > I.BPF_MAXINSNS:
        raise CompileError(f"program needs {len(insns)} instructions; the kernel accepts at most "
                           f"{I.BPF_MAXINSNS} (split the policy or drop argument rules)")
    skipped = {lw.arch.name: tuple(lw.skipped) for lw in lowered if lw.skipped}
    return CompiledProgram(insns, tuple(a.name for a in targets), targets[0].byteorder, skipped)
