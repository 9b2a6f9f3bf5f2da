"""Tolerance policy: the tighter allowance wins, precedence supplier > category > default."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from governance.tolerances import DEFAULT_POLICY, Tolerance, TolerancePolicy, ToleranceSet
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


def test_tolerance_allowance_matches_what_findings_record() -> None:
    tol = Tolerance(percent=D(2), absolute=D(100))
    assert tol.allowance(D(1000)) == D(20)
    assert tol.allowance(D(10000)) == D(100)
    assert Tolerance().allowance(D(1000)) is None
    assert DEFAULT_POLICY(C.PRICE, None, None).resolved(D(1000)).allowed == D(20)


def test_defaults() -> None:
    allowed = {check: DEFAULT_POLICY(check, None, None).allowance_for(D(1000)) for check in C}
    assert allowed == {
        C.PRICE: D(20),  # 2 % of 1000.00, under the 100.00 cap
        C.QTY_ORDERED: D(0),
        C.QTY_RECEIVED: D(0),
        C.AMOUNT_OVER_PO: D(100),  # 10 % of 1000.00, under the 1000.00 cap
        C.TAX: D("1.00"),
        C.FREIGHT: D(0),
        C.ROUNDING: D("0.01"),
    }
    assert DEFAULT_POLICY.duplicate_window_days == 365


def test_a_partial_configuration_keeps_the_other_defaults() -> None:
    policy = TolerancePolicy.from_mapping(
        {
            "defaults": {"price": {"percent": 1, "absolute": "5.00"}, "tax": {"absolute": None}},
            "category_overrides": {"bulk": {"qty_received": {"percent": 5.0}}},
            "duplicate_window_days": 400,
        }
    )
    assert policy.defaults.price == Tolerance(percent=D(1), absolute=D("5.00"))
    assert policy(C.TAX, None, None).allowance_for(D(1000)) is None  # explicitly unlimited
    assert policy.defaults.freight == ToleranceSet().freight
    assert policy(C.QTY_RECEIVED, "S1", "bulk").allowance_for(D(200)) == D(10)
    assert policy.duplicate_window_days == 400


@pytest.mark.parametrize(
    "data",
    [
        {"defaults": {"prize": {"percent": "1"}}},  # misspelt check
        {"supplier_overrides": {"S1": {"discount": {"percent": "1"}}}},  # no such check
        {"defaults": {"price": {"percent": "1", "cap": "5"}}},  # unknown field
        {"duplicate_window_days": -1},
    ],
)
def test_bad_configuration_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        TolerancePolicy.from_mapping(data)
