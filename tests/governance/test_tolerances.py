"""Tolerance policy: the tighter allowance wins, precedence supplier > category > default."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from governance.tolerances import DEFAULT_POLICY, Tolerance, TolerancePolicy
from pipelines.findings import AppliedTolerance
from pipelines.matching import ToleranceCheck as C


@pytest.mark.parametrize(
    ("percent", "absolute", "expected", "allowed"),
    [
        (D(2), D(100), D(1000), D(20)),  # percent is tighter
        (D(2), D(5), D(1000), D(5)),  # absolute is tighter
        (None, D(5), D(1000), D(5)),
        (D(10), None, D(-300), D(30)),  # percent of the magnitude
        (D(0), D(100), D(1000), D(0)),  # 0 % means nothing allowed
        (None, None, D(1000), None),  # blank means unlimited
    ],
)
def test_allowance(percent: D | None, absolute: D | None, expected: D, allowed: D | None) -> None:
    assert AppliedTolerance(percent=percent, absolute=absolute).allowance_for(expected) == allowed


def test_precedence_and_source() -> None:
    policy = TolerancePolicy(
        category_overrides={"food": {C.PRICE: Tolerance(percent=D(5))}},
        supplier_overrides={"S9": {C.PRICE: Tolerance(absolute=D(1))}},
    )
    assert policy(C.PRICE, None, None).source == "default"
    assert policy(C.PRICE, "S1", "food").source == "category:food"
    assert policy(C.PRICE, "S9", "food").source == "supplier:S9"
    # An override for one check leaves the others at their defaults.
    assert policy(C.TAX, "S9", "food") == DEFAULT_POLICY(C.TAX, None, None)


def test_round_trips_through_json_shaped_data() -> None:
    policy = TolerancePolicy(supplier_overrides={"S1": {C.QTY_RECEIVED: Tolerance(percent=D(5))}})
    data = policy.to_mapping()
    assert data["supplier_overrides"]["S1"]["qty_received"] == {"percent": "5", "absolute": None}
    assert TolerancePolicy.from_mapping(data) == policy


def test_negative_allowances_are_refused() -> None:
    with pytest.raises(ValueError):
        Tolerance(percent=D(-1))
