"""SQL for the audit log."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.db.tables import AuditChainHead, AuditEvent
from governance.audit_chain import GENESIS_HASH


def lock_chain_head(session: Session) -> AuditChainHead:
    """The chain head row, locked for this transaction (created on first use).

    The lock is taken once per transaction: later events in the same transaction reuse it.
    """
    transaction = session.get_transaction()
    cached = session.info.get("audit_head")
    if cached is not None and cached[0] is transaction:
        return cached[1]
    head = session.scalars(
        select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    ).one_or_none()
    if head is None:
        head = AuditChainHead(id=1, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
        session.flush()
    session.info["audit_head"] = (transaction, head)
    return head


def add_event(session: Session, row: dict[str, Any]) -> None:
    """Append one event row (a plain INSERT: events are never updated through the ORM)."""
    session.execute(insert(AuditEvent), [row])


def iter_events(session: Session, batch: int = 5000) -> Iterator[AuditEvent]:
    """Every event in chain order, read in batches."""
    last = 0
    while True:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def events_for(session: Session, object_type: str, object_id: str) -> Sequence[AuditEvent]:
    """The events about one object, oldest first."""
    return session.scalars(
        select(AuditEvent)
        .where(AuditEvent.object_type == object_type, AuditEvent.object_id == object_id)
        .order_by(AuditEvent.seq)
    ).all()


def chain_head(session: Session) -> AuditChainHead | None:
    """The chain head without locking it."""
    return session.get(AuditChainHead, 1)
