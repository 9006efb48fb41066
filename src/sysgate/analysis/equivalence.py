"""Semantic equality of policies and programs by sampling: the emulator runs both on every call
that could tell them apart, and they are equal when every call gets the same action (hence the
names :func:`sampled_equivalent`, :class:`SampledDifference`; :mod:`.diff` is the exact one).

"Every call that could tell them apart" is, per architecture token:

* syscall numbers: every number of the arch's table (x86_64 and x32 share a token, so both
  tables), every number a rule names, every number a program compares with, each of those
  +-1, and the edges of the number space (0, the x32 bit, 2^31, 2^32-1, MIPS ABI bases);
* arguments, for the numbers whose decision reads an argument (seen from the instructions
  executed with all-zero arguments): the values each policy condition or program constant
  sits on and next to, the 32- and 64-bit edges, tried one argument at a time on top of an
  all-zero call and of a call that satisfies each rule's conditions (so AND-ed tests are met);
* other architecture tokens of the same byte order, and an unknown token.

That is not an exhaustive proof (:mod:`sysgate.analysis` has exact analyses for programs),
but it is the boundary-value check the format round trips need, and it is fast: each side is
compiled once (cached), and data words are packed once per call.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .. import arch as _arch
from ..bpf import insn as I
from ..immutable import Record
from ..policy import Action, Compare, Condition, Op, Policy, Term

__all__ = ["SampledDifference", "sampled_equivalent", "sampled_differences", "program_of"]

U32 = 0xFFFFFFFF
U64 = (1 << 64) - 1
_EDGES = (0, 1, 2, 0x7FFFFFFF, 0x80000000, U32 - 1, U32, 1 << 32, (1 << 32) + 1, (1 << 63) - 1, 1 << 63,
          U64 - 1, U64)
_NR_EDGES = (0, 1, 0x3FFFFFFF, 0x40000000, 0x40000001, 0x7FFFFFFF, 0x80000000, U32 - 1, U32)
_BOGUS_TOKEN = 0x12345678


class SampledDifference(Record):
    """One call two sides decide differently (``arch`` None: they cannot run on one machine)."""

    __slots__ = ("arch", "token", "nr", "args", "a", "b", "reason")
    _defaults = {"reason": ""}
    arch: str | None
    token: int
    nr: int
    args: tuple[int, ...]
    a: Action | None
    b: Action | None
    reason: str

    def __str__(self) -> str:
        if self.arch is None and self.a is None:
            return self.reason
        where = self.arch or f"arch token {self.token:#x}"
        name = _arch.get(self.arch).name_of(self.nr) if self.arch else None
        args = ", ".join(hex(v) for v in self.args)
        return f"{where} {name or self.nr}({args}): {self.a} vs {self.b}"


class _Side:
    """One side, as a program: instructions, byte order, what it covers, and its policy if any."""

    def __init__(self, obj: Any, arches: Sequence[str] | None) -> None:
        from ..compiler import CompiledProgram

        self.policy: Policy | None = None
        self.arches: tuple[str, ...] = ()
        if isinstance(obj, Policy):
            self.policy = obj
            prog = program_of(obj, None if obj.arches else arches)
            self.insns, self.byteorder, self.arches = prog.insns, prog.byteorder, prog.arches
        elif isinstance(obj, CompiledProgram):
            self.insns, self.byteorder, self.arches = tuple(obj.insns), obj.byteorder, tuple(obj.arches)
        elif hasattr(obj, "insns") and hasattr(obj, "arches"):  # a LoadedProgram
            self.insns, self.arches = tuple(obj.insns), tuple(obj.arches)
            self.policy = getattr(obj, "policy", None)
            self.byteorder = _arch.get(self.arches[0]).byteorder if self.arches else ""
        else:
            self.insns = tuple(I.Insn(*i) for i in obj)
            self.byteorder = ""
        self.consts = _program_constants(self.insns)


_CACHE: dict[tuple, Any] = {}


def program_of(policy: Policy, arches: Sequence[str] | None = None) -> Any:
    """``compile_policy(policy, arches)``, cached (round-trip tests compile the same policies often)."""
    from ..compiler import compile_policy

    key = (policy, tuple(arches or ()))
    prog = _CACHE.get(key)
    if prog is None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        prog = _CACHE[key] = compile_policy(policy, list(arches) if arches else None, skip_unknown=True)
    return prog


def _program_constants(insns: Sequence[I.Insn]) -> dict[int, set[int]]:
    """Constants each loaded word is compared with (offset -> constants), from a linear scan."""
    out: dict[int, set[int]] = {}
    src: int | None = None
    for code, _jt, _jf, k in insns:
        cls = code & 7
        if cls == I.LD:
            src = k if code & 0xE0 == I.ABS else None
        elif cls in (I.JMP, I.ALU) and src is not None and not code & I.X and code & 0xF0 != I.JA:
            out.setdefault(src, set()).add(k & U32)
        elif cls in (I.MISC, I.LDX):
            src = None
    return out


def _reads_args(path: Iterable[int], insns: Sequence[I.Insn]) -> bool:
    for pc in path:
        code, _, _, k = insns[pc]
        if code & 7 == I.LD and code & 0xE0 == I.ABS and k >= I.OFF_IP:
            return True
    return False


def _values_for(c: Condition) -> set[int]:
    top = U32 if c.width == 32 else U64
    v = c.value
    vals = {v, (v + 1) & top, (v - 1) & top}
    if c.op is Op.MASKED_EQ:
        m = c.mask & top
        vals |= {v | (~m & top), v ^ (m & -m), v ^ (1 << (m.bit_length() - 1)) if m else v}
    if c.width == 32:  # the high word must not matter
        vals |= {x | (U32 << 32) for x in list(vals)} | {x | (1 << 32) for x in list(vals)}
    return vals


def _term_consts(t: Term) -> set[int]:
    if t.kind == "const":
        return {t.value}
    if t.left is None or t.right is None:
        return set()
    return _term_consts(t.left) | _term_consts(t.right)


def _compare_values(c: Compare) -> set[int]:
    """Values worth trying for each argument an argument-to-argument compare reads."""
    vals = {0, U32, U64}
    for k in _term_consts(c.left) | _term_consts(c.right):
        for x in (k, (k + 1) & U64, (k - 1) & U64, ~k & U64):
            vals |= {x, x & U32, (x & U32) | (U32 << 32)}
    return vals


def _satisfying(c: Condition) -> int:
    v = c.value
    if c.op is Op.NE:
        return v + 1 if v < (U32 if c.width == 32 else U64) else 0
    if c.op is Op.LT:
        return v - 1 if v else 0
    if c.op is Op.GT:
        return v + 1
    return v


def _conditions(side: _Side, a: _arch.Arch, nr: int) -> list[tuple[Condition | Compare, ...]]:
    if side.policy is None:
        return []
    out = []
    for r in side.policy.rules:
        rnr = r.syscall if isinstance(r.syscall, int) else a.syscalls.get(r.syscall)
        if rnr == nr and r.conditions:
            out.append(r.conditions)
    return out


def _arg_vectors(sides: Sequence[_Side], a: _arch.Arch, nr: int, big: bool) -> list[tuple[int, ...]]:
    rules = [conds for s in sides for conds in _conditions(s, a, nr)]
    # Arguments nothing tests get a few edges; tested ones every edge and every value that matters.
    per_arg: list[set[int]] = [{U32, 1 << 32, U64} for _ in range(6)]
    compares: list[Compare] = []
    for conds in rules:
        for c in conds:
            if isinstance(c, Compare):
                compares.append(c)
                for i in c.reads():
                    per_arg[i] |= _compare_values(c) | set(_EDGES)
                continue
            per_arg[c.arg] |= _values_for(c) | set(_EDGES)
    for s in sides:  # a program without a policy: its constants, on the word they are compared with
        if s.policy is not None:
            continue
        for off, ks in s.consts.items():
            if off < I.OFF_ARGS or off >= I.OFF_ARGS + 48:
                continue
            idx, word = divmod(off - I.OFF_ARGS, 8)
            high = (word == 4) != big
            per_arg[idx] |= set(_EDGES)
            for k in sorted(ks)[:64]:
                for x in (k, (k + 1) & U32, (k - 1) & U32):
                    per_arg[idx].add(x << 32 if high else x)
    bases: list[list[int]] = [[0] * 6]
    for conds in rules:
        base = [0] * 6
        for c in conds:
            if not isinstance(c, Compare):
                base[c.arg] = _satisfying(c)
        bases.append(base)
    if compares:
        # Arguments compared with each other: equal values, and a fixed sample of combinations.
        import random

        rnd = random.Random(nr)
        pool = [sorted(v) for v in per_arg]
        for v in sorted(set().union(*(_compare_values(c) for c in compares)))[:64]:
            bases.append([v] * 6)
        for _ in range(256):
            bases.append([rnd.choice(p) for p in pool])
    out: dict[tuple[int, ...], None] = {}
    for base in bases:
        out[tuple(base)] = None
        for i in range(6):
            for v in sorted(per_arg[i]):
                vec = list(base)
                vec[i] = v
                out[tuple(vec)] = None
    return list(out)


def _key(ret: int) -> int:
    """The return value reduced to what the kernel acts on (as Action.from_ret, but cheap)."""
    kind = ret & 0xFFFF0000
    if kind == I.RET_ERRNO:
        return kind | min(ret & 0xFFFF, I.MAX_ERRNO)
    if kind == I.RET_TRACE:
        return ret
    if kind in _KINDS:
        return kind
    return I.RET_KILL_PROCESS


_KINDS = frozenset({I.RET_KILL_PROCESS, I.RET_KILL_THREAD, I.RET_TRAP, I.RET_USER_NOTIF, I.RET_LOG, I.RET_ALLOW})


def _numbers(sides: Sequence[_Side], members: Sequence[_arch.Arch]) -> list[int]:
    nums: set[int] = set(_NR_EDGES)
    for a in members:
        nums.update(a.syscalls.values())
        nums.update(((a.nr_base - 1) & U32, a.nr_base))
    for s in sides:
        if s.policy is not None:
            nums.update(r.syscall for r in s.policy.rules if isinstance(r.syscall, int))
        nums.update(s.consts.get(I.OFF_NR, ()))
    for n in list(nums):
        nums.update(((n - 1) & U32, (n + 1) & U32))
    return sorted(nums)


def sampled_differences(a: Any, b: Any, arches: Sequence[str] | None = None, *,
                        limit: int = 1) -> Iterator[SampledDifference]:
    """Calls that ``a`` and ``b`` decide differently (at most ``limit``; 0 for all).

    ``a`` and ``b`` are each a :class:`~sysgate.policy.Policy`, a compiled program, a loaded
    program or a sequence of instructions. ``arches`` are the architectures to call through
    (default: those the sides cover; a policy without architectures is compiled for them).
    """
    from ..bpf.emulator import SeccompData, run

    names = [_arch.get(x).name for x in arches] if arches else None
    sa, sb = _Side(a, names), _Side(b, names)
    if names is None:
        names = list(dict.fromkeys(sa.arches + sb.arches)) or [_arch.native().name]
    order = sa.byteorder or sb.byteorder or _arch.get(names[0]).byteorder
    if sa.byteorder and sb.byteorder and sa.byteorder != sb.byteorder:
        yield SampledDifference(None, 0, 0, (), None, None,
                         f"the programs are for different byte orders ({sa.byteorder}, {sb.byteorder})")
        return
    tested = [_arch.get(x) for x in names if _arch.get(x).byteorder == order]
    found = 0
    tokens: dict[int, list[_arch.Arch]] = {}
    for x in tested:
        tokens.setdefault(x.token, []).append(x)
    big = order == "big"
    pack = SeccompData.pack
    for token, members in tokens.items():
        main = members[0]
        x32 = next((m for m in members if m.name == "x32"), None)
        for nr in _numbers((sa, sb), members):
            # x86_64 and x32 share a token: the x32 bit says which ABI (and table) the call uses,
            # and so which rules' conditions give the argument values worth trying.
            via = x32 if x32 is not None and nr & _arch.X32_SYSCALL_BIT else main
            data = pack(SeccompData(nr, token), order)
            ra, rb = run(sa.insns, data, order, True), run(sb.insns, data, order, True)
            vectors: list[tuple[int, ...]] = [(0,) * 6]
            if _reads_args(ra.path, sa.insns) or _reads_args(rb.path, sb.insns):
                vectors = _arg_vectors((sa, sb), via, nr, big)
            for vec in vectors:
                if any(vec):
                    args = tuple(v & U32 for v in vec) if via.bits == 32 else vec
                    data = pack(SeccompData(nr, token, 0, args), order)
                    ra, rb = run(sa.insns, data, order), run(sb.insns, data, order)
                else:
                    args = vec
                if _key(ra.ret) != _key(rb.ret):
                    acta, actb = Action.from_ret(ra.ret), Action.from_ret(rb.ret)
                    yield SampledDifference(via.name, token, nr, args, acta, actb)
                    found += 1
                    if limit and found >= limit:
                        return
    covered = {x.token for x in tested}
    others = sorted({x.token for x in _arch.ARCHES if x.byteorder == order} - covered) + [_BOGUS_TOKEN]
    for token in others:
        for nr in (0, 1, 59, 231, 4001, 5001):
            data = pack(SeccompData(nr, token), order)
            acta = Action.from_ret(run(sa.insns, data, order).ret)
            actb = Action.from_ret(run(sb.insns, data, order).ret)
            if acta != actb:
                names_t = [x.name for x in _arch.by_token(token)]
                yield SampledDifference(names_t[0] if names_t else None, token, nr, (), acta, actb)
                found += 1
                if limit and found >= limit:
                    return


def sampled_equivalent(a: Any, b: Any, arches: Sequence[str] | None = None) -> SampledDifference | None:
    """None when ``a`` and ``b`` decide every tested call alike, else the first :class:`SampledDifference`."""
    for d in sampled_differences(a, b, arches, limit=1):
        return d
    return None
