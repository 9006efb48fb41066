"""``Condition.holds`` (production: the formats' logic uses it) decides as the reference evaluator's
own ``condition_holds`` (the oracle, which deliberately shares no code with production)."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sysgate.policy import U32, U64, Condition, Op
from sysgate.reference import condition_holds

_EDGES = st.sampled_from([0, 1, 2, U32 - 1, U32, U32 + 1, 1 << 63, U64 - 1, U64])
_VALUES = st.one_of(_EDGES, st.integers(0, U64))


@st.composite
def conditions(draw: st.DrawFn) -> Condition:
    op = draw(st.sampled_from(list(Op)))
    width = draw(st.sampled_from([32, 64]))
    top = U32 if width == 32 else U64
    value = draw(st.one_of(_EDGES, st.integers(0, U64)).filter(lambda v: v <= top))
    if op is Op.MASKED_EQ:
        return Condition(draw(st.integers(0, 5)), op, value, mask=draw(_VALUES), width=width)
    return Condition(draw(st.integers(0, 5)), op, value, width=width)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(conditions(), _VALUES)
def test_holds_is_the_reference(cond: Condition, value: int) -> None:
    assert cond.holds(value) == condition_holds(cond, value)


def test_holds_on_a_32_bit_condition_ignores_the_high_word() -> None:
    c = Condition(0, Op.EQ, 5, width=32)
    assert c.holds(5) and c.holds((1 << 32) | 5) and not c.holds(6)
    assert not Condition(0, Op.EQ, 5).holds((1 << 32) | 5)
