"""Webhooks: who is told about case state changes, and each delivery of each event."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigId, IdMixin, UTCDateTime, utcnow


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands."""

    PENDING = "pending"  # due at next_at (a first try or a retry)
    SENDING = "sending"  # claimed by a worker until next_at (its lease)
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after the last attempt


class WebhookSubscription(IdMixin, Base):
    """An endpoint told about the events it asked for, signed with its own secret."""

    __tablename__ = "webhook_subscriptions"

    url: Mapped[str] = mapped_column(String(500))
    # Kept as given: the worker needs it to sign (HMAC), so it cannot be stored as a hash.
    secret: Mapped[str] = mapped_column(String(200))
    events: Mapped[list[Any]] = mapped_column(JSON)  # patterns such as "case.approved", "case.*"
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class WebhookDelivery(IdMixin, Base):
    """One event for one subscription: its payload, tries, and what the endpoint last said."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_status_next_at", "status", "next_at"),)

    subscription_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_subscriptions.id"))
    event_id: Mapped[str] = mapped_column(String(36))  # the same for every subscription
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(1000))
