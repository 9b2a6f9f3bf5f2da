"""SQL for webhook subscriptions and deliveries: guarded claims and outcomes, as the outbox does.

`attempts` is the fencing token of a claim: an outcome lands only if nobody reclaimed the row
after its lease ran out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.orm import Session

from app.db.tables import DeliveryStatus, WebhookDelivery, WebhookSubscription

OPEN = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)


def add(session: Session, row: WebhookSubscription | WebhookDelivery) -> None:
    """Stage a row and give it its id."""
    session.add(row)
    session.flush()


@dataclass(frozen=True)
class SubscriptionRef:
    """What queueing an event needs to know of a subscription."""

    id: int
    events: list[Any]


def active_subscription_refs(session: Session) -> list[SubscriptionRef]:
    """Id and event patterns of the subscriptions that want events."""
    rows = session.execute(
        select(WebhookSubscription.id, WebhookSubscription.events)
        .where(WebhookSubscription.active.is_(True))
        .order_by(WebhookSubscription.id)
    )
    return [SubscriptionRef(r.id, list(r.events)) for r in rows]


def subscriptions(session: Session) -> Sequence[WebhookSubscription]:
    """Every subscription, oldest first."""
    return session.scalars(select(WebhookSubscription).order_by(WebhookSubscription.id)).all()


def subscription(session: Session, subscription_id: int) -> WebhookSubscription | None:
    """One subscription by id."""
    return session.get(WebhookSubscription, subscription_id)


def deliveries(
    session: Session, *, status: str | None = None, limit: int = 50
) -> Sequence[WebhookDelivery]:
    """Newest deliveries first, optionally of one status."""
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if status:
        query = query.where(WebhookDelivery.status == status)
    return session.scalars(query).all()


def _due(now: datetime) -> Any:
    # A sending row's next_at is its lease end: one condition covers new rows, retries and the
    # claims of a worker that died.
    return and_(WebhookDelivery.status.in_(OPEN), WebhookDelivery.next_at <= now)


def due_ids(session: Session, now: datetime, limit: int, skip_locked: bool) -> list[int]:
    """Ids of deliveries due now, oldest first (skipped when locked by others on PostgreSQL)."""
    query = (
        select(WebhookDelivery.id)
        .where(_due(now))
        .order_by(WebhookDelivery.next_at, WebhookDelivery.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def try_claim(session: Session, delivery_id: int, now: datetime, lease_until: datetime) -> bool:
    """Move a due row to `sending` with a lease and one more attempt; True when this caller won."""
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, _due(now))
        .values(
            status=DeliveryStatus.SENDING.value,
            attempts=WebhookDelivery.attempts + 1,
            next_at=lease_until,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def claimed(session: Session, delivery_id: int) -> tuple[WebhookDelivery, WebhookSubscription]:
    """A claimed delivery and its subscription."""
    row = session.execute(
        select(WebhookDelivery, WebhookSubscription)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .where(WebhookDelivery.id == delivery_id)
    ).one()
    return row[0], row[1]


def finish(session: Session, delivery_id: int, attempt: int, **values: Any) -> bool:
    """Record an outcome if the row is still this attempt's claim; False when it was reclaimed."""
    result = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.SENDING.value,
            WebhookDelivery.attempts == attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
