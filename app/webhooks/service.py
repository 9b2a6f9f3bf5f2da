"""Webhook subscriptions, signatures, and the outcome of each delivery attempt.

A delivery is a POST of the event as JSON with these headers:
`Tollgate-Event` (type), `Tollgate-Event-Id`, `Tollgate-Delivery` (row id, attempt) and
`Tollgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`. A receiver
recomputes the HMAC over the raw body with its secret and refuses stale timestamps (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.backoff import capped_backoff
from app.db.base import utcnow
from app.db.tables import DeliveryStatus, WebhookDelivery, WebhookSubscription
from app.errors import InvalidInput, NotFound
from app.settings import Settings
from app.webhooks import events as webhook_events
from app.webhooks import repository

SIGNATURE_HEADER = "Tollgate-Signature"
DEFAULT_TOLERANCE = 300  # seconds a receiver should accept between our timestamp and its clock


@dataclass(frozen=True)
class NewSubscription:
    """A subscription just created, with its secret (shown once by the CLI)."""

    subscription: WebhookSubscription
    secret: str


def add_subscription(
    session: Session, *, url: str, events: list[str], actor: Actor, secret: str | None = None
) -> NewSubscription:
    """Subscribe `url` to events (patterns such as `case.approved` or `case.*`)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"not an http(s) URL: {url!r}", code="INVALID_URL")
    patterns = [e.strip() for e in events if e.strip()]
    if not patterns or any(not (p.startswith("case.") or p == "*") for p in patterns):
        raise InvalidInput(
            "events must be case events, e.g. case.approved, case.posted or case.*",
            code="INVALID_EVENTS",
        )
    secret = secret or secrets.token_urlsafe(32)
    if len(secret) < 16:
        raise InvalidInput("a webhook secret needs at least 16 characters", code="WEAK_SECRET")
    row = WebhookSubscription(
        url=url, secret=secret, events=patterns, active=True, created_by=actor.name
    )
    repository.add(session, row)
    webhook_events.forget_subscriptions(session)
    audit.record(
        session,
        actor,
        "webhook.subscribed",
        "webhook",
        row.id,
        after={"url": url, "events": patterns},
    )
    return NewSubscription(row, secret)


def set_active(session: Session, subscription_id: int, active: bool, actor: Actor) -> None:
    """Pause or resume a subscription."""
    row = repository.subscription(session, subscription_id)
    if row is None:
        raise NotFound(f"no webhook subscription {subscription_id}")
    if row.active != active:
        row.active = active
        webhook_events.forget_subscriptions(session)
        audit.record(session, actor, "webhook.updated", "webhook", row.id, after={"active": active})


def list_subscriptions(session: Session) -> Sequence[WebhookSubscription]:
    """All subscriptions."""
    return repository.subscriptions(session)


def list_deliveries(
    session: Session, status: str | None = None, limit: int = 50
) -> Sequence[WebhookDelivery]:
    """The delivery log, newest first."""
    if status is not None and status not in {s.value for s in DeliveryStatus}:
        raise InvalidInput(f"unknown delivery status {status!r}", code="INVALID_STATUS")
    return repository.deliveries(session, status=status, limit=limit)


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body` sent at `timestamp` (unix seconds)."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify(
    secret: str, header: str, body: bytes, *, now: float | None = None, tolerance: int = 300
) -> bool:
    """True when `header` signs `body` with `secret` and is recent (the receiver's check)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        t = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(secret, body, t).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a delivery is retried."""

    max_attempts: int = 8
    base: timedelta = timedelta(seconds=10)
    cap: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=1)
    timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy configured by TOLLGATE_WEBHOOK_* settings."""
        return cls(
            max_attempts=settings.webhook_max_attempts,
            base=timedelta(seconds=settings.webhook_backoff_base_seconds),
            cap=timedelta(seconds=settings.webhook_backoff_cap_seconds),
            lease=timedelta(seconds=settings.webhook_lease_seconds),
            timeout=settings.webhook_timeout_seconds,
        )


def record_success(
    session: Session, delivery_id: int, attempt: int, status_code: int, now: datetime | None = None
) -> bool:
    """The endpoint took the event; False when the claim was lost meanwhile."""
    return repository.finish(
        session,
        delivery_id,
        attempt,
        status=DeliveryStatus.DELIVERED.value,
        delivered_at=now or utcnow(),
        last_status_code=status_code,
        last_error=None,
    )


def record_failure(
    session: Session,
    delivery_id: int,
    attempt: int,
    *,
    error: str,
    status_code: int | None,
    policy: RetryPolicy,
    rng: random.Random,
    now: datetime | None = None,
) -> DeliveryStatus | None:
    """Schedule a retry, or give up after the last attempt; the new status (None: claim lost)."""
    now = now or utcnow()
    final = attempt >= policy.max_attempts
    status = DeliveryStatus.FAILED if final else DeliveryStatus.PENDING
    landed = repository.finish(
        session,
        delivery_id,
        attempt,
        status=status.value,
        next_at=now if final else now + capped_backoff(attempt, policy.base, policy.cap, rng),
        last_status_code=status_code,
        last_error=error[:1000],
    )
    return status if landed else None
