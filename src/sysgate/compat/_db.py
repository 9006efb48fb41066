"""libseccomp's filter database, ported: how rules are merged per syscall, and when they clash.

The compat API must accept and refuse exactly the rules libseccomp accepts and refuses, and
must decide calls the way libseccomp's filters do. Both follow from libseccomp's per-syscall
*argument chain trees* (``src/db.c``): every rule becomes a chain of 32-bit word comparisons,
chains are merged into a tree whose levels are kept sorted by argument, operator and value,
shorter chains prune longer ones, and a chain that ends where another ends with a different
action is ``-EEXIST``. Which rule wins when several match a call is a consequence of that tree
(earlier nodes on a level are tried first), not of action strictness, so the tree itself is the
state kept here; :mod:`._translate` turns it into :class:`sysgate.policy.Policy` objects.

The port follows libseccomp 2.5.x closely, including reference counting, because node
lifetimes decide which nodes survive a prune. Functions return libseccomp's negative errno
codes; :mod:`.seccomp` turns them into the bindings' exceptions.
"""
from __future__ import annotations

import errno as E
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from . import _arches as A
from ._arches import LSArch

__all__ = ["ApiArg", "ApiRule", "Node", "SysEntry", "DBFilter", "Collection", "Attrs",
           "CMP_NE", "CMP_LT", "CMP_LE", "CMP_EQ", "CMP_GE", "CMP_GT", "CMP_MASKED_EQ"]

CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT, CMP_MASKED_EQ = range(1, 8)
ARG_COUNT_MAX = 6
DATUM_MAX = (1 << 64) - 1
U32 = 0xFFFFFFFF

_PRI_MASK_CHAIN = 0x0000FFFF
_PRI_MASK_USER = 0x00FF0000

# struct db_iter_state flags
_IST_MATCH = 0x1
_IST_MATCH_ONCE = 0x2
_IST_X_FINISHED = 0x10
_IST_N_FINISHED = 0x20
_IST_X_PREFIX = 0x100
_IST_N_PREFIX = 0x200
_IST_M_MATCHSET = _IST_MATCH | _IST_MATCH_ONCE
_IST_M_REDUNDANT = _IST_MATCH | _IST_X_FINISHED | _IST_N_PREFIX


@dataclass
class ApiArg:
    """One argument comparison of a rule (``struct db_api_arg``)."""

    valid: bool = False
    arg: int = 0
    op: int = 0
    mask: int = DATUM_MAX
    datum: int = 0


@dataclass
class ApiRule:
    """A rule as given to the API (``struct db_api_rule_list``); kept for replays."""

    action: int
    syscall: int
    strict: bool
    args: list[ApiArg]

    def dup(self) -> ApiRule:
        return ApiRule(self.action, self.syscall, self.strict, [replace(a) for a in self.args])


class Node:
    """A 32-bit word comparison in an argument chain tree (``struct db_arg_chain_tree``)."""

    __slots__ = ("arg", "arg_h_flg", "op", "op_orig", "mask", "datum", "datum_full", "nxt_t", "nxt_f",
                 "lvl_prv", "lvl_nxt", "act_t", "act_t_flg", "act_f", "act_f_flg", "refcnt")

    def __init__(self) -> None:
        self.arg = 0
        self.arg_h_flg = False
        self.op = 0
        self.op_orig = 0
        self.mask = 0
        self.datum = 0
        self.datum_full = 0
        self.nxt_t: Node | None = None
        self.nxt_f: Node | None = None
        self.lvl_prv: Node | None = None
        self.lvl_nxt: Node | None = None
        self.act_t = 0
        self.act_t_flg = False
        self.act_f = 0
        self.act_f_flg = False
        self.refcnt = 0


@dataclass
class SysEntry:
    """The filter for one syscall number (``struct db_sys_list``)."""

    num: int
    priority: int = 0
    valid: bool = False
    chains: Node | None = None
    action: int = 0
    node_cnt: int = 0


@dataclass
class DBFilter:
    """One architecture's rules (``struct db_filter``)."""

    arch: LSArch
    syscalls: list[SysEntry] = field(default_factory=list)  # sorted by number as unsigned int
    rules: list[ApiRule] = field(default_factory=list)

    def find(self, num: int) -> tuple[int, SysEntry | None]:
        # libseccomp keeps the number as an unsigned int: pseudo numbers sort last
        key = num & U32
        for i, s in enumerate(self.syscalls):
            if s.num & U32 >= key:
                return i, (s if s.num & U32 == key else None)
        return len(self.syscalls), None


class _Ref:
    """A C ``T **``: somewhere a node pointer is stored."""

    __slots__ = ("get", "set")

    def __init__(self, get: Callable[[], Node | None], set_: Callable[[Node | None], None]) -> None:
        self.get = get
        self.set = set_


def _attr_ref(obj: object, name: str) -> _Ref:
    return _Ref(lambda: getattr(obj, name), lambda v: setattr(obj, name, v))


# -- tree helpers (db.c) --------------------------------------------------------------------------

def _arg_priority(a: Node) -> int:
    return (a.arg << 1) + (1 if a.arg_h_flg else 0)


def _op_priority(op: int) -> int:
    if op in (CMP_MASKED_EQ, CMP_EQ, CMP_NE):
        return 3
    if op in (CMP_LE, CMP_LT):
        return 2
    if op in (CMP_GE, CMP_GT):
        return 1
    return 0


def _chain_lt(a: Node, b: Node) -> bool:
    a_arg, b_arg = _arg_priority(a), _arg_priority(b)
    if a_arg != b_arg:
        return a_arg < b_arg
    a_op, b_op = _op_priority(a.op_orig), _op_priority(b.op_orig)
    if a_op != b_op:
        return a_op < b_op
    if a.op_orig in (CMP_LE, CMP_LT):
        return a.datum > b.datum  # smaller values first for LT/LE
    return a.datum < b.datum


def _chain_eq(a: Node, b: Node) -> bool:
    return (_arg_priority(a) == _arg_priority(b) and a.op == b.op and a.datum == b.datum
            and a.mask == b.mask)


def _chain_leaf(n: Node) -> bool:
    return n.nxt_t is None and n.nxt_f is None


def _chain_zombie(n: Node) -> bool:
    return _chain_leaf(n) and not n.act_t_flg and not n.act_f_flg


def _node_get(n: Node | None) -> Node | None:
    if n is not None:
        n.refcnt += 1
    return n


def _level_clean(node: Node) -> int:
    cnt = 0
    n: Node | None = node
    while n.lvl_prv:  # type: ignore[union-attr]
        n = n.lvl_prv  # type: ignore[union-attr]
    start = n
    while n is not None:
        links = (1 if n.lvl_prv else 0) + (1 if n.lvl_nxt else 0)
        if n.refcnt > links:
            return cnt
        n = n.lvl_nxt
    n = start
    while n is not None:
        c, n = _node_put(n)
        cnt += c
    return cnt


def _tree_put(tree: Node | None) -> tuple[int, Node | None]:
    cnt, tree = _node_put(tree)
    if tree is not None:
        cnt += _level_clean(tree)
    return cnt, tree


def _node_put(n: Node | None) -> tuple[int, Node | None]:
    """Drop a reference; returns (nodes freed, what the caller's pointer now holds)."""
    if n is None:
        return 0, None
    cnt = 0
    n.refcnt -= 1
    if n.refcnt == 0:
        lvl_p, lvl_n, nxt_t, nxt_f = n.lvl_prv, n.lvl_nxt, n.nxt_t, n.nxt_f
        # split the current level (we still hold a ref on both neighbours)
        if lvl_p:
            lvl_p.lvl_nxt = None
        if lvl_n:
            lvl_n.lvl_prv = None
        if lvl_p:
            c, lvl_p = _node_put(lvl_p)
            cnt += c
        if lvl_n:
            c, lvl_n = _node_put(lvl_n)
            cnt += c
        if lvl_p:
            lvl_p.lvl_nxt = _node_get(lvl_n)
        if lvl_n:
            lvl_n.lvl_prv = _node_get(lvl_p)
        new = lvl_p if lvl_p else (lvl_n if lvl_n else None)
        cnt += _tree_put(nxt_t)[0]
        cnt += _tree_put(nxt_f)[0]
        cnt += 1
        return cnt, new
    return cnt, n


def _tree_remove(tree: _Ref, node: Node) -> int:
    cnt = 0
    if tree.get() is None or node is None:
        return 0
    c_iter: Node | None = tree.get()
    while c_iter.lvl_prv is not None:  # type: ignore[union-attr]
        c_iter = c_iter.lvl_prv  # type: ignore[union-attr]
    while True:
        assert c_iter is not None
        if c_iter is node:
            break
        cnt += _tree_remove(_attr_ref(c_iter, "nxt_t"), node)
        cnt += _tree_remove(_attr_ref(c_iter, "nxt_f"), node)
        if _chain_zombie(c_iter):
            break
        c_iter = c_iter.lvl_nxt
        if c_iter is None or cnt != 0:
            return cnt
    # remove c_iter
    if c_iter is tree.get():
        tree.set(c_iter.lvl_prv if c_iter.lvl_prv is not None else c_iter.lvl_nxt)
    if c_iter.lvl_prv:
        c_iter.lvl_prv.lvl_nxt = c_iter.lvl_nxt
    if c_iter.lvl_nxt:
        c_iter.lvl_nxt.lvl_prv = c_iter.lvl_prv
    c_iter.lvl_prv = None
    c_iter.lvl_nxt = None
    cnt += _node_put(c_iter)[0]
    return cnt


def _tree_act_check(tree: Node | None, action: int) -> int:
    if tree is None:
        return 0
    c: Node | None = tree
    while c.lvl_prv is not None:  # type: ignore[union-attr]
        c = c.lvl_prv  # type: ignore[union-attr]
    while c is not None:
        if c.act_t_flg and c.act_t != action:
            return -E.EEXIST
        if c.act_f_flg and c.act_f != action:
            return -E.EEXIST
        rc = _tree_act_check(c.nxt_t, action)
        if rc < 0:
            return rc
        rc = _tree_act_check(c.nxt_f, action)
        if rc < 0:
            return rc
        c = c.lvl_nxt
    return 0


@dataclass
class _IterState:
    flags: int = 0
    action: int = 0
    sx: SysEntry | None = None


def _tree_prune(existing: Node | None, new: Node | None, state: _IterState) -> int:
    cnt = 0
    state_new = replace(state)
    x_iter = existing
    n_iter = new

    def done() -> int:
        if state_new.flags & _IST_MATCH:
            state.flags |= state_new.flags
        else:
            state.flags &= ~_IST_MATCH
        return cnt

    if n_iter is None or x_iter is None:
        return done()
    if (state.flags & _IST_M_MATCHSET) == _IST_MATCH_ONCE:
        return done()
    while x_iter.lvl_prv:
        x_iter = x_iter.lvl_prv

    while x_iter is not None:
        x_iter_next = x_iter.lvl_nxt
        if _chain_eq(x_iter, n_iter):
            state_new.flags |= _IST_M_MATCHSET
            if _chain_leaf(n_iter):
                state_new.flags |= _IST_N_FINISHED
            if _chain_leaf(x_iter):
                state_new.flags |= _IST_X_FINISHED
            # don't remove nodes if we have more actions/levels
            if (x_iter.act_t_flg or x_iter.nxt_t) and not (n_iter.act_t_flg or n_iter.nxt_t):
                return done()
            if (x_iter.act_f_flg or x_iter.nxt_f) and not (n_iter.act_f_flg or n_iter.nxt_f):
                return done()
            if (state_new.flags & _IST_N_FINISHED) and (state_new.flags & _IST_X_FINISHED):
                if n_iter.act_t_flg != x_iter.act_t_flg or n_iter.act_t != x_iter.act_t:
                    return done()
                if n_iter.act_f_flg != x_iter.act_f_flg or n_iter.act_f != x_iter.act_f:
                    return done()
            next_node = False
            for branch in ("nxt_t", "nxt_f"):
                n_sub = getattr(n_iter, branch)
                if n_sub is None:
                    continue
                _node_get(x_iter)
                state_nxt = replace(state)
                state_nxt.flags |= _IST_M_MATCHSET
                cnt += _tree_prune(getattr(x_iter, branch), n_sub, state_nxt)
                c, x_iter = _node_put(x_iter)
                cnt += c
                if state_nxt.flags & _IST_MATCH:
                    state_new.flags |= state_nxt.flags
                if x_iter is None:
                    next_node = True
                    break
            if not next_node:
                ok = _tree_act_check(x_iter, state_new.action) == 0
                if (ok and state_new.flags & _IST_MATCH and state_new.flags & _IST_N_FINISHED
                        and state_new.flags & _IST_X_PREFIX):
                    # the new tree is "shorter": drop the existing node
                    assert state.sx is not None
                    cnt += _tree_remove(_attr_ref(state.sx, "chains"), x_iter)  # type: ignore[arg-type]
                    if state.sx.chains is None:
                        return done()
                elif (ok and state_new.flags & _IST_MATCH and state_new.flags & _IST_X_FINISHED
                      and state_new.flags & _IST_N_PREFIX):
                    return done()  # the new tree is "longer"
        else:
            # libseccomp writes the two cases out: the existing chain sorts first (descend into it,
            # it is a prefix of the new one) or the new one does (descend into the new one)
            in_x = _chain_lt(x_iter, n_iter)
            if state.flags & (_IST_N_PREFIX if in_x else _IST_X_PREFIX):
                return done()
            for branch in ("nxt_t", "nxt_f"):
                sub = getattr(x_iter if in_x else n_iter, branch)
                if sub is None:
                    continue
                _node_get(x_iter)
                state_nxt = replace(state)
                state_nxt.flags &= ~_IST_MATCH
                state_nxt.flags |= _IST_X_PREFIX if in_x else _IST_N_PREFIX
                cnt += _tree_prune(sub, n_iter, state_nxt) if in_x else _tree_prune(x_iter, sub, state_nxt)
                c, x_iter = _node_put(x_iter)
                cnt += c
                if state_nxt.flags & _IST_MATCH:
                    state_new.flags |= state_nxt.flags
                    return done()
                if x_iter is None:
                    break
        x_iter = x_iter_next
    # falling through: nothing matched
    state_new.flags &= ~_IST_MATCH
    return done()


def _tree_add(existing: _Ref, new: Node, state: _IterState) -> int:
    x_iter: Node | None = existing.get()
    n_iter = new
    while x_iter is not None:
        if _chain_eq(x_iter, n_iter):
            for flg, act, nxt in (("act_t_flg", "act_t", "nxt_t"), ("act_f_flg", "act_f", "nxt_f")):
                if not getattr(n_iter, flg):
                    continue
                if not getattr(x_iter, flg):
                    # the new node has an action here: do the existing sub-tree's actions match?
                    rc = _tree_act_check(getattr(x_iter, nxt), getattr(n_iter, act))
                    if rc != 0:
                        return rc
                    rc, _ = _node_put(getattr(x_iter, nxt))
                    setattr(x_iter, nxt, None)
                    setattr(x_iter, act, getattr(n_iter, act))
                    setattr(x_iter, flg, True)
                    assert state.sx is not None
                    state.sx.node_cnt -= rc
                elif getattr(n_iter, act) != getattr(x_iter, act):
                    # libseccomp adjusts act_t for 64-bit GT/GE and LT/LE ranges (both
                    # branches set act_t: ported as is)
                    if n_iter.arg_h_flg:
                        if act == "act_t" and n_iter.datum_full > x_iter.datum_full:
                            x_iter.act_t = n_iter.act_t
                        elif act == "act_f" and n_iter.datum_full < x_iter.datum_full:
                            x_iter.act_t = n_iter.act_t
                    if _chain_leaf(x_iter) or _chain_leaf(n_iter):
                        return -E.EEXIST
            for flg, nxt in (("act_t_flg", "nxt_t"), ("act_f_flg", "nxt_f")):
                n_sub = getattr(n_iter, nxt)
                if n_sub is None:
                    continue
                if getattr(x_iter, nxt) is not None:
                    rc = _tree_add(_attr_ref(x_iter, nxt), n_sub, state)
                    if rc != 0:
                        return rc
                elif not getattr(x_iter, flg):
                    setattr(x_iter, nxt, _node_get(n_sub))
                else:
                    return 0  # the existing tree is "shorter"
            return 0
        elif not _chain_lt(x_iter, n_iter):
            if x_iter.lvl_nxt is None:
                n_iter.lvl_prv = _node_get(x_iter)
                x_iter.lvl_nxt = _node_get(n_iter)
                return 0
            x_iter = x_iter.lvl_nxt
        else:
            # add before the existing node on this level
            if x_iter.lvl_prv is not None:
                x_iter.lvl_prv.lvl_nxt = _node_get(n_iter)
                n_iter.lvl_prv = x_iter.lvl_prv
                x_iter.lvl_prv = _node_get(n_iter)
                n_iter.lvl_nxt = x_iter
            else:
                x_iter.lvl_prv = _node_get(n_iter)
                n_iter.lvl_nxt = _node_get(x_iter)
            if existing.get() is x_iter:
                existing.set(_node_get(n_iter))
                _node_put(x_iter)
            return 0
    return 0


def _need_lo(a: ApiArg) -> bool:
    return not (a.op == CMP_MASKED_EQ and (a.mask & U32) == 0)


def _need_hi(a: ApiArg) -> bool:
    return not (a.op == CMP_MASKED_EQ and (a.mask >> 32) == 0)


def _new_node(arg: int, hi: bool, op: int, op_orig: int, mask: int, datum: int, datum_full: int) -> Node:
    n = Node()
    n.arg, n.arg_h_flg, n.op, n.op_orig = arg, hi, op, op_orig
    n.mask = mask & U32
    n.datum = datum & U32 & n.mask  # _db_node_mask_fixup
    n.datum_full = datum_full
    return n


def _rule_gen_64(rule: ApiRule) -> SysEntry:
    s_new = SysEntry(num=rule.syscall, valid=True)
    c_prev: list[Node | None] = [None, None, None]
    c_iter: list[Node | None] = [None, None, None]
    op_prev = 0
    for a in rule.args:
        if not a.valid:
            continue
        if not _need_hi(a) and not _need_lo(a):
            continue
        arg, mask, datum = a.arg, a.mask, a.datum
        hi_m, lo_m, hi_d, lo_d = mask >> 32, mask & U32, datum >> 32, datum & U32
        if a.op in (CMP_GT, CMP_GE, CMP_LE, CMP_LT):
            lo_op = CMP_GT if a.op in (CMP_GT, CMP_LE) else CMP_GE
            c_iter = [_new_node(arg, True, CMP_GT, a.op, hi_m, hi_d, datum),
                      _new_node(arg, True, CMP_EQ, a.op, hi_m, hi_d, datum),
                      _new_node(arg, False, lo_op, a.op, lo_m, lo_d, datum)]
            c_iter[0].nxt_f = _node_get(c_iter[1])  # type: ignore[union-attr]
            c_iter[1].nxt_t = _node_get(c_iter[2])  # type: ignore[union-attr]
        else:  # EQ, MASKED_EQ, NE
            op = CMP_MASKED_EQ if a.op == CMP_MASKED_EQ else CMP_EQ
            c_iter = [_new_node(arg, True, op, a.op, hi_m, hi_d, datum),
                      _new_node(arg, False, op, a.op, lo_m, lo_d, datum), None]
            c_iter[0].nxt_t = _node_get(c_iter[1])  # type: ignore[union-attr]
        if c_prev[0] is not None:
            if op_prev in (CMP_GT, CMP_GE):
                c_prev[0].nxt_t = _node_get(c_iter[0])
                c_prev[2].nxt_t = _node_get(c_iter[0])  # type: ignore[union-attr]
            elif op_prev in (CMP_EQ, CMP_MASKED_EQ):
                c_prev[1].nxt_t = _node_get(c_iter[0])  # type: ignore[union-attr]
            elif op_prev in (CMP_LE, CMP_LT):
                c_prev[1].nxt_f = _node_get(c_iter[0])  # type: ignore[union-attr]
                c_prev[2].nxt_f = _node_get(c_iter[0])  # type: ignore[union-attr]
            else:  # NE
                c_prev[0].nxt_f = _node_get(c_iter[0])
                c_prev[1].nxt_f = _node_get(c_iter[0])  # type: ignore[union-attr]
        else:
            s_new.chains = _node_get(c_iter[0])
        s_new.node_cnt += 2 if a.op in (CMP_NE, CMP_EQ, CMP_MASKED_EQ) else 3
        c_prev = list(c_iter)
        op_prev = a.op
    if c_iter[0] is not None:
        act = rule.action
        if op_prev in (CMP_GT, CMP_GE):
            c_iter[0].act_t_flg, c_iter[0].act_t = True, act
            c_iter[2].act_t_flg, c_iter[2].act_t = True, act  # type: ignore[union-attr]
        elif op_prev in (CMP_LE, CMP_LT):
            c_iter[1].act_f_flg, c_iter[1].act_f = True, act  # type: ignore[union-attr]
            c_iter[2].act_f_flg, c_iter[2].act_f = True, act  # type: ignore[union-attr]
        elif op_prev in (CMP_EQ, CMP_MASKED_EQ):
            c_iter[1].act_t_flg, c_iter[1].act_t = True, act  # type: ignore[union-attr]
        else:  # NE
            c_iter[0].act_f_flg, c_iter[0].act_f = True, act
            c_iter[1].act_f_flg, c_iter[1].act_f = True, act  # type: ignore[union-attr]
    else:
        s_new.action = rule.action
    return s_new


def _rule_gen_32(rule: ApiRule) -> SysEntry:
    s_new = SysEntry(num=rule.syscall, valid=True)
    c_prev: Node | None = None
    c_iter: Node | None = None
    tf_flag = True
    for a in rule.args:
        if not a.valid or not _need_lo(a):
            continue
        # the upper 32 bits of mask and datum are dropped
        c_iter = _new_node(a.arg, False, a.op, a.op, a.mask, a.datum, a.datum)
        if c_prev is not None:
            if tf_flag:
                c_prev.nxt_t = _node_get(c_iter)
            else:
                c_prev.nxt_f = _node_get(c_iter)
        else:
            s_new.chains = _node_get(c_iter)
        s_new.node_cnt += 1
        if c_iter.op == CMP_NE:
            c_iter.op, tf_flag = CMP_EQ, False
        elif c_iter.op == CMP_LT:
            c_iter.op, tf_flag = CMP_GE, False
        elif c_iter.op == CMP_LE:
            c_iter.op, tf_flag = CMP_GT, False
        else:
            tf_flag = True
        c_prev = c_iter
    if c_iter is not None:
        if tf_flag:
            c_iter.act_t_flg, c_iter.act_t = True, rule.action
        else:
            c_iter.act_f_flg, c_iter.act_f = True, rule.action
    else:
        s_new.action = rule.action
    return s_new


def db_rule_add(db: DBFilter, rule: ApiRule) -> int:
    """``db_rule_add``: merge one (already translated) rule into ``db``."""
    s_new = _rule_gen_64(rule) if db.arch.size == 64 else _rule_gen_32(rule)
    idx, s_iter = db.find(rule.syscall)
    s_new.priority = _PRI_MASK_CHAIN - s_new.node_cnt
    rm_flag = False
    while True:  # add_reset
        if s_iter is None:
            db.syscalls.insert(idx, s_new)
            return 0
        if s_iter.chains is None:
            if rm_flag or not s_iter.valid:
                # the previous pass cleared the chain, or the entry is a priority placeholder
                s_iter.chains = s_new.chains
                s_iter.action = s_new.action
                s_iter.node_cnt = s_new.node_cnt
                if s_iter.valid:
                    s_iter.priority = s_new.priority
                s_iter.valid = True
                _update_priority(s_iter)
                return 0
            # the syscall has no chains: it already matches everything
            _tree_put(s_new.chains)
            _update_priority(s_iter)
            return 0
        if s_new.chains is None:
            # a rule without chains replaces all chains
            _tree_put(s_iter.chains)
            s_iter.chains = None
            s_iter.node_cnt = 0
            s_iter.action = rule.action
            _tree_put(s_new.chains)
            _update_priority(s_iter)
            return 0
        state = _IterState(0, rule.action, s_iter)
        rc = _tree_prune(s_iter.chains, s_new.chains, state)
        if rc > 0:
            rm_flag = True
            s_iter.node_cnt -= rc
            if s_iter.chains is None:
                continue  # we pruned the entire tree
        elif (state.flags & _IST_M_REDUNDANT) == _IST_M_REDUNDANT:
            _tree_put(s_new.chains)  # the existing tree is "shorter"
            _update_priority(s_iter)
            return 0
        break
    state = _IterState(0, 0, s_iter)
    rc = _tree_add(_attr_ref(s_iter, "chains"), s_new.chains, state)
    if rc < 0:
        _tree_put(s_new.chains)
        return rc
    s_iter.node_cnt += s_new.node_cnt
    s_iter.node_cnt -= _tree_put(s_new.chains)[0]
    _update_priority(s_iter)
    return 0


def _update_priority(s: SysEntry) -> None:
    s.priority &= ~_PRI_MASK_CHAIN
    s.priority |= _PRI_MASK_CHAIN - s.node_cnt


def _syscall_priority(db: DBFilter, syscall: int, priority: int) -> int:
    sys_pri = (priority << 16) & _PRI_MASK_USER
    idx, s = db.find(syscall)
    if s is not None:
        if sys_pri > (s.priority & _PRI_MASK_USER):
            s.priority = (s.priority & ~_PRI_MASK_USER) | sys_pri
        return 0
    db.syscalls.insert(idx, SysEntry(num=syscall, priority=sys_pri, valid=False))
    return 0


# -- arch specific rule handling (arch.c, syscalls.c) ---------------------------------------------

def syscall_translate(arch: LSArch, syscall: int) -> tuple[int, int]:
    """``arch_syscall_translate``: a native-numbered syscall in ``arch``'s numbering."""
    if syscall == -1:
        return 0, syscall
    nat = A.native()
    if arch.token != nat.token:
        name = nat.resolve_num(syscall)
        if name is None:
            return -E.EFAULT, syscall
        num = arch.resolve_name(name)
        if num == A.NR_SCMP_ERROR:
            return -E.EFAULT, syscall
        syscall = num
    return 0, syscall


def _socket_test(arch: LSArch, sys: int) -> bool:
    if -120 <= sys <= -100:
        return True
    name = arch.resolve_num_raw(sys)
    return name is not None and name in A.SOCKET_NAMES


def _ipc_test(arch: LSArch, sys: int) -> bool:
    if -224 <= sys <= -200:
        return True
    name = arch.resolve_num_raw(sys)
    return name is not None and name in A.IPC_NAMES


def _demux(arch: LSArch, sys: int) -> int:
    from ._pnr import PNR

    for name in (*A.SOCKET_NAMES, *A.IPC_NAMES):
        if PNR[name] == sys:
            num = arch.resolve_name_raw(name)
            return A.NR_SCMP_UNDEF if num == A.NR_SCMP_ERROR else num
    return A.NR_SCMP_ERROR


def _mux(arch: LSArch, sys: int) -> int:
    from ._pnr import PNR

    name = arch.resolve_num_raw(sys)
    if name is None or (name not in A.SOCKET_NAMES and name not in A.IPC_NAMES):
        return A.NR_SCMP_ERROR
    return PNR[name]


def _abi_rule_add(db: DBFilter, rule: ApiRule) -> int:
    """``abi_rule_add``: socket/IPC calls become a socketcall/ipc rule plus the direct call."""
    sys = rule.syscall
    socket = _socket_test(db.arch, sys)
    if socket or _ipc_test(db.arch, sys):
        if rule.strict and any(a.valid for a in rule.args):
            return -E.EINVAL
        if sys > 0:
            sys_a = _mux(db.arch, sys)
            if sys_a == A.NR_SCMP_ERROR:
                return A.NR_SCMP_ERROR
            sys_b = sys
        else:
            sys_a = sys
            sys_b = _demux(db.arch, sys)
            if sys_b == A.NR_SCMP_ERROR:
                return A.NR_SCMP_ERROR
        rule_a: ApiRule | None
        rule_b: ApiRule | None
        if sys_a == A.NR_SCMP_UNDEF:
            rule_a, rule_b = None, rule
        elif sys_b == A.NR_SCMP_UNDEF:
            rule_a, rule_b = rule, None
        else:
            rule_a, rule_b = rule, rule.dup()
        if rule_a is not None:
            # the multiplexer's first argument selects the call; a rule's own arg0 is replaced
            rule_a.syscall = db.arch.sys_socketcall if socket else db.arch.sys_ipc
            rule_a.args[0] = ApiArg(True, 0, CMP_EQ, DATUM_MAX, (-sys_a) % (100 if socket else 200))
        if rule_b is not None:
            rule_b.syscall = sys_b
        for r in (rule_a, rule_b):
            if r is not None:
                rc = db_rule_add(db, r)
                if rc < 0:
                    return rc
        return 0
    if sys >= 0:
        return db_rule_add(db, rule)
    if rule.strict:
        return -E.EDOM
    return 0


def arch_filter_rule_add(db: DBFilter, rule: ApiRule) -> int:
    dup = rule.dup()
    rc, dup.syscall = syscall_translate(db.arch, dup.syscall)
    if rc < 0:
        return rc
    if dup.syscall == -1 or not db.arch.mux:
        if dup.syscall < -1 and dup.strict:
            return -E.EDOM
        return db_rule_add(db, dup)
    return _abi_rule_add(db, dup)


# -- the filter collection (db.c db_col_*, api.c) ---------------------------------------------------

@dataclass
class Attrs:
    """Filter attributes (``struct db_filter_attr``), with libseccomp's defaults."""

    act_default: int = 0
    act_badarch: int = 0  # SCMP_ACT_KILL
    nnp_enable: int = 1
    tsync_enable: int = 0
    api_tskip: int = 0
    log_enable: int = 0
    spec_allow: int = 0
    optimize: int = 1
    api_sysrawrc: int = 0
    wait_killable_recv: int = 0


class Collection:
    """``struct db_filter_col``: the arch filters, attributes and transaction snapshots."""

    def __init__(self, def_action: int) -> None:
        self.filters: list[DBFilter] = []
        self.attr = Attrs()
        self.endian = ""
        self.notify_used = False
        self.snapshots: list[list[DBFilter]] = []  # user transactions (libseccomp 2.6)
        self.shadow: list[DBFilter] | None = None  # snapshot left by the last successful rule add
        self.reset(def_action)

    def reset(self, def_action: int) -> int:
        self.filters = []
        self.endian = ""
        self.attr = Attrs(act_default=def_action)
        self.notify_used = def_action == 0x7FC00000
        self.db_add(DBFilter(A.native()))
        self.snapshots = []
        self.shadow = None
        return 0

    # arches
    def arch_exist(self, token: int) -> bool:
        return any(f.arch.token == token for f in self.filters)

    def db_add(self, db: DBFilter) -> int:
        endian = "big" if db.arch.big_endian else "little"
        if self.endian and self.endian != endian:
            return -E.EDOM
        if self.arch_exist(db.arch.token):
            return -E.EEXIST
        self.filters.append(db)
        if not self.endian:
            self.endian = endian
        return 0

    def db_remove(self, token: int) -> int:
        if not self.filters or not self.arch_exist(token):
            return -E.EINVAL
        self.filters = [f for f in self.filters if f.arch.token != token]
        if not self.filters:
            self.endian = ""
        return 0

    def merge(self, src: Collection) -> int:
        if self.endian != src.endian:
            return -E.EDOM
        for a in self.filters:
            for b in src.filters:
                if a.arch.token == b.arch.token:
                    return -E.EEXIST
        self.filters.extend(src.filters)
        src.filters = []
        return 0

    # rules
    def _rebuild(self, filters: list[DBFilter]) -> list[DBFilter]:
        """A snapshot, made as libseccomp makes them: by replaying each filter's rules."""
        out = []
        for f in filters:
            g = DBFilter(f.arch)
            for r in f.rules:
                if arch_filter_rule_add(g, r) == 0:
                    g.rules.append(r)
            out.append(g)
        return out

    def rule_add(self, strict: bool, action: int, syscall: int, args: list[tuple[int, int, int, int]]) -> int:
        """``db_col_rule_add``: ``args`` are (arg, op, datum_a, datum_b) as the API gives them.

        Like libseccomp, a failed add rolls back to a snapshot, and that snapshot is the
        "shadow" left by the previous successful add when there is one: arches added since
        then are dropped by the rollback, as in libseccomp 2.5.
        """
        chain = [ApiArg() for _ in range(ARG_COUNT_MAX)]
        for arg, op, datum_a, datum_b in args:
            if not (0 <= arg < ARG_COUNT_MAX) or chain[arg].valid:
                return -E.EINVAL
            if op in (CMP_NE, CMP_LT, CMP_LE, CMP_EQ, CMP_GE, CMP_GT):
                chain[arg] = ApiArg(True, arg, op, DATUM_MAX, datum_a)
            elif op == CMP_MASKED_EQ:
                chain[arg] = ApiArg(True, arg, op, datum_a, datum_b)
            else:
                return -E.EINVAL
        # transaction start: reuse the shadow, or snapshot the current state
        snap = self.shadow if self.shadow is not None else self._rebuild(self.filters)
        self.shadow = None
        rc = 0
        for db in self.filters:
            rule = ApiRule(action, syscall, strict, [replace(a) for a in chain])
            rc_tmp = arch_filter_rule_add(db, rule)
            if rc_tmp == 0:
                db.rules.append(rule)
            elif rc == 0:
                rc = rc_tmp
        if rc != 0:
            self.filters = snap  # abort (the byte order is left as it is)
            return rc
        self.shadow = self._make_shadow(snap)
        if action == 0x7FC00000:
            self.notify_used = True
        return rc

    def _make_shadow(self, snap: list[DBFilter]) -> list[DBFilter] | None:
        """``db_col_transaction_commit``: bring ``snap`` up to date, filter by filter *index*."""
        snap = list(snap)
        if len(self.filters) > len(snap):
            snap += [DBFilter(f.arch) for f in self.filters[len(snap):]]
        del snap[len(self.filters):]
        for f_o, f_s in zip(self.filters, snap):
            ro, rs = f_o.rules, f_s.rules
            if not ro:
                continue
            start = len(rs) % len(ro) if rs else 0
            if rs and start == 0:
                continue  # no new rules
            for r in ro[start:]:
                if arch_filter_rule_add(f_s, r) != 0:
                    return None  # could not build the shadow: no shadow
                f_s.rules.append(r)
        return snap

    def syscall_priority(self, syscall: int, priority: int) -> int:
        rc = 0
        for f in self.filters:
            rc_tmp, sc = syscall_translate(f.arch, syscall)
            if rc_tmp >= 0 and sc < -1:
                rc_tmp, sc = f.arch.rewrite(sc)
                if rc_tmp == -E.EDOM:
                    continue
            if rc_tmp >= 0:
                rc_tmp = _syscall_priority(f, sc, priority)
            if rc == 0 and rc_tmp < 0:
                rc = rc_tmp
        return rc

    # user transactions (libseccomp 2.6)
    def transaction_start(self) -> int:
        self.snapshots.append(self._rebuild(self.filters))
        return 0

    def transaction_reject(self) -> None:
        if self.snapshots:
            self.filters = self.snapshots.pop()  # libseccomp leaves the byte order as it is
            self.shadow = None

    def transaction_commit(self) -> int:
        if not self.snapshots:
            return -E.EINVAL
        self.snapshots.pop()
        return 0
