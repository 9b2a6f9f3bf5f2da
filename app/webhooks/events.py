"""Case state changes become webhook deliveries, in the transaction that changes the state.

`app.audit.service.record` calls `on_audit_event` for every event it writes: every state change
of a case is audited (creation, triage, decisions, sign-off, ERP posting), so this one hook sees
them all, whichever service made them. It imports nothing that imports the audit service.
"""

from __future__ import annotations

import fnmatch
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from app.db.base import utcnow
from app.db.tables import DeliveryStatus, WebhookDelivery
from app.webhooks import repository
from app.webhooks.repository import SubscriptionRef

EVENT_PREFIX = "case."


def _state(values: Mapping[str, Any] | None) -> Any:
    if not values:
        return None
    return values.get("state", values.get("case_state"))


def wants(patterns: list[Any], event_type: str) -> bool:
    """True when one of a subscription's patterns (e.g. "case.*") matches the event type."""
    return any(fnmatch.fnmatchcase(event_type, str(p)) for p in patterns)


def _subscriptions(session: Session) -> list[SubscriptionRef]:
    # Read once per transaction: a worker moving many cases in one transaction pays one query.
    transaction = session.get_transaction()
    cached = session.info.get("webhook_subscriptions")
    if cached is not None and cached[0] is transaction:
        return list(cached[1])
    found = repository.active_subscription_refs(session)
    session.info["webhook_subscriptions"] = (transaction, found)
    return found


def forget_subscriptions(session: Session) -> None:
    """Drop the transaction's cached subscriptions (after one was added or changed)."""
    session.info.pop("webhook_subscriptions", None)


def on_audit_event(session: Session, row: Mapping[str, Any]) -> int:
    """Queue a delivery per interested subscription when `row` moves a case; the count queued."""
    if row.get("object_type") != "case":
        return 0
    to_state = _state(row.get("after"))
    from_state = _state(row.get("before"))
    if to_state is None or to_state == from_state:
        return 0
    event_type = f"{EVENT_PREFIX}{to_state}"
    targets = [s for s in _subscriptions(session) if wants(s.events, event_type)]
    if not targets:
        return 0
    occurred = row["occurred_at"]
    payload = {
        "id": str(uuid.uuid4()),
        "type": event_type,
        "occurred_at": occurred.isoformat(),
        "data": {
            "case_id": int(row["object_id"]),
            "from_state": from_state,
            "to_state": to_state,
            "action": row.get("action"),
            "actor": row.get("actor"),
            "audit_seq": row.get("seq"),
        },
    }
    now = utcnow()
    for subscription in targets:
        repository.add(
            session,
            WebhookDelivery(
                subscription_id=subscription.id,
                event_id=payload["id"],
                event_type=event_type,
                payload=payload,
                status=DeliveryStatus.PENDING.value,
                attempts=0,
                next_at=now,
                created_at=now,
            ),
        )
    return len(targets)
