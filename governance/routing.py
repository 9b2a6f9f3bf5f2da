"""Routing policy: which queue a case goes to, its priority, SLA and the signatures it needs."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import BaseModel

from pipelines.reasons import ReasonCode

# Queues are named by the work they need; the first matching rule wins.
QUEUE_RULES: tuple[tuple[str, frozenset[ReasonCode]], ...] = (
    ("intake", frozenset({ReasonCode.MISSING_DATA, ReasonCode.NOT_BALANCED})),
    (
        "fraud-risk",
        frozenset(
            {ReasonCode.BANK_DETAILS_CHANGED, ReasonCode.DUPLICATE, ReasonCode.PRICE_ANOMALY}
        ),
    ),
    (
        "vendor",
        frozenset({ReasonCode.VENDOR_UNKNOWN, ReasonCode.VENDOR_BLOCKED}),
    ),
    ("po", frozenset({ReasonCode.NO_PO, ReasonCode.INVALID_PO, ReasonCode.AMOUNT_OVER_PO})),
    ("receiving", frozenset({ReasonCode.NO_RECEIPT, ReasonCode.QTY_OVER_RECEIVED})),
    ("credits", frozenset({ReasonCode.CREDIT_UNMATCHED})),
)


class RoutingPolicy(BaseModel):
    """Configurable routing defaults (versioned with the other policies)."""

    high_value_amount: Decimal = Decimal("10000")
    four_eyes_amount: Decimal = Decimal("25000")
    sla_hours_exception: int = 72
    sla_hours_clean: int = 24
    sla_hours_high_value: int = 24


@dataclass(frozen=True)
class Route:
    """Where a case goes and how urgent it is."""

    queue: str
    priority: int
    sla_due_at: datetime
    required_signatures: int


DEFAULT_ROUTING = RoutingPolicy()


def route_case(
    codes: Collection[ReasonCode],
    gross: Decimal | None,
    due_date: date | None,
    now: datetime,
    policy: RoutingPolicy = DEFAULT_ROUTING,
) -> Route:
    """Pick the queue, a 0-100 priority, the SLA due time and the number of signatures."""
    queue = "clean" if not codes else "exceptions"
    for name, triggers in QUEUE_RULES:
        if triggers & set(codes):
            queue = name
            break
    amount = abs(gross) if gross is not None else Decimal(0)
    high_value = amount >= policy.high_value_amount
    hours = policy.sla_hours_clean if not codes else policy.sla_hours_exception
    if high_value:
        hours = min(hours, policy.sla_hours_high_value)
    sla_due_at = now + timedelta(hours=hours)

    priority = 20 if not codes else 40
    if high_value:
        priority += 20
    if queue == "fraud-risk":
        priority += 20
    if due_date is not None:
        days_left = (due_date - now.date()).days
        priority += 20 if days_left <= 3 else 10 if days_left <= 10 else 0
    signatures = (
        2 if (amount >= policy.four_eyes_amount or ReasonCode.BANK_DETAILS_CHANGED in codes) else 1
    )
    return Route(queue, min(priority, 100), sla_due_at, signatures)
