"""logic.absorb and logic.not_: absorbing keeps negations exact and small (the hardening overlay's
"low word neither TIOCSTI nor TIOCLINUX" must fit the Docker writer's MAX_WRITTEN entries)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from strategies import EDGES, conditions
from sysgate.formats import logic as L
from sysgate.policy import Condition, Op
from sysgate.reference import condition_holds

U64 = (1 << 64) - 1
LOW32 = 0xFFFFFFFF
values = st.one_of(st.sampled_from(EDGES + [0x5412, 0x541C, 0x100005412, 0x5413]), st.integers(0, U64))


def _holds(d: L.DNF, x: int) -> bool:
    return any(all(condition_holds(c, x) for c in conj) for conj in d)


@settings(max_examples=150, derandomize=True)
@given(d=st.lists(st.lists(conditions(), max_size=3), max_size=4), x=values)
def test_absorb_and_not_are_exact(d: list, x: int) -> None:
    dnf = tuple(tuple(Condition(0, c.op, c.value, c.mask, c.width) for c in conj) for conj in d)
    assert _holds(L.absorb(dnf), x) == _holds(dnf, x)
    try:
        neg = L.not_(dnf)
    except L.TooComplex:
        return
    assert _holds(neg, x) == (not _holds(dnf, x))


def test_two_excluded_low_words_stay_small() -> None:
    excluded = ((Condition(1, Op.MASKED_EQ, 0x5412, mask=LOW32),), (Condition(1, Op.MASKED_EQ, 0x541C, mask=LOW32),))
    neg = L.not_(excluded)
    # one alternative per bit the two values share (29), two-bit ones on the 3 bits where they differ
    assert len(neg) == 35
    for x in (0x5412, 0x541C, 0xFFFFFFFF00005412, 1 << 40 | 0x541C):
        assert not _holds(neg, x)
    for x in (0, 0x5413, 0x5410, 0x541D, 0x15412, LOW32):
        assert _holds(neg, x)
