"""Routing: queue by reason, priority by amount and due date, four eyes where required."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from governance.routing import RoutingPolicy, route_case
from pipelines.reasons import ReasonCode as R

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("codes", "queue"),
    [
        ([], "clean"),
        ([R.PRICE_VARIANCE], "exceptions"),
        ([R.NO_RECEIPT, R.PRICE_VARIANCE], "receiving"),
        ([R.DUPLICATE, R.NO_RECEIPT], "fraud-risk"),
        ([R.MISSING_DATA, R.DUPLICATE], "intake"),
        ([R.VENDOR_UNKNOWN], "vendor"),
        ([R.INVALID_PO], "po"),
        ([R.CREDIT_UNMATCHED], "credits"),
    ],
)
def test_queue_by_reason(codes: list[R], queue: str) -> None:
    assert route_case(codes, Decimal(100), None, NOW).queue == queue


def test_four_eyes_above_limit_and_for_bank_changes() -> None:
    policy = RoutingPolicy(four_eyes_amount=Decimal(25000))
    assert route_case([], Decimal("24999.99"), None, NOW, policy).required_signatures == 1
    assert route_case([], Decimal("25000"), None, NOW, policy).required_signatures == 2
    assert route_case([R.BANK_DETAILS_CHANGED], Decimal(10), None, NOW).required_signatures == 2


def test_priority_and_sla() -> None:
    clean = route_case([], Decimal(100), None, NOW)
    urgent = route_case([R.DUPLICATE], Decimal(50000), NOW.date() + timedelta(days=2), NOW)
    assert urgent.priority > clean.priority
    assert clean.sla_due_at == NOW + timedelta(hours=24)
    exception = route_case([R.PRICE_VARIANCE], Decimal(100), date(2027, 1, 1), NOW)
    assert exception.sla_due_at == NOW + timedelta(hours=72)
    assert 0 <= urgent.priority <= 100
