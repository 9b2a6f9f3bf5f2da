"""1,000 random tamper trials on the audit table: every one is detected.

Each trial changes the stored log the way an attacker with direct database access could (on
PostgreSQL with the append-only trigger disabled, as its owner could), runs `verify`, and rolls
back. Byte flips, deletions, forged insertions, reordering and truncation break the chain or
its head. A full rewrite (an early event changed and every later hash and the head recomputed)
verifies on its own, and is caught only against a checkpoint kept outside the database.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.db.tables import AuditChainHead, AuditEvent
from governance.audit_chain import HASHED_FIELDS, event_hash

TRIALS = 1000
EVENTS = 40
ADMIN = Actor("admin", "admin")


def _events(session: Session) -> list[AuditEvent]:
    return list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))


def _flip(value: str, rng: random.Random) -> str:
    position = rng.randrange(len(value))
    replacement = chr((ord(value[position]) + rng.randrange(1, 25)) % 0x7E or 0x41)
    if replacement == value[position]:
        replacement = "#" if value[position] != "#" else "$"
    return value[:position] + replacement + value[position + 1 :]


def _byte_flip(session: Session, rng: random.Random) -> bool:
    event = rng.choice(_events(session))
    column = rng.choice(["actor", "action", "object_id", "hash", "prev_hash", "actor_role"])
    session.execute(
        update(AuditEvent)
        .where(AuditEvent.id == event.id)
        .values({column: _flip(getattr(event, column), rng)})
    )
    return False


def _edit_payload(session: Session, rng: random.Random) -> bool:
    event = rng.choice(_events(session))
    session.execute(
        update(AuditEvent)
        .where(AuditEvent.id == event.id)
        .values(after={"amount": str(rng.randrange(10**6))})
    )
    return False


def _delete(session: Session, rng: random.Random) -> bool:
    event = rng.choice(_events(session))
    session.execute(delete(AuditEvent).where(AuditEvent.id == event.id))
    return False


def _insert(session: Session, rng: random.Random) -> bool:
    events = _events(session)
    after = rng.choice(events)
    # A forged event chained onto `after`, squeezed in by shifting the later sequence numbers.
    session.execute(
        update(AuditEvent).where(AuditEvent.seq > after.seq).values(seq=AuditEvent.seq + 10_000)
    )
    fields: dict[str, Any] = {name: getattr(after, name) for name in HASHED_FIELDS}
    fields.update(seq=after.seq + 1, actor="mallory", action="case.signed")
    session.execute(
        insert(AuditEvent).values(
            **fields, prev_hash=after.hash, hash=event_hash(after.hash, fields)
        )
    )
    session.execute(
        update(AuditEvent).where(AuditEvent.seq > 10_000).values(seq=AuditEvent.seq - 10_000 + 1)
    )
    return False


def _reorder(session: Session, rng: random.Random) -> bool:
    a, b = rng.sample(_events(session), 2)
    (a_id, a_seq), (b_id, b_seq) = (a.id, a.seq), (b.id, b.seq)  # the updates refresh a and b
    session.execute(update(AuditEvent).where(AuditEvent.id == a_id).values(seq=-1))
    session.execute(update(AuditEvent).where(AuditEvent.id == b_id).values(seq=a_seq))
    session.execute(update(AuditEvent).where(AuditEvent.id == a_id).values(seq=b_seq))
    return False


def _truncate(session: Session, rng: random.Random) -> bool:
    events = _events(session)
    keep = rng.randrange(1, len(events) - 1)
    session.execute(delete(AuditEvent).where(AuditEvent.seq > events[keep - 1].seq))
    if rng.random() < 0.5:  # and move the head back so that it points at the new end
        last = events[keep - 1]
        session.execute(update(AuditChainHead).values(last_seq=last.seq, last_hash=last.hash))
        return True
    return False


def _rewrite(session: Session, rng: random.Random) -> bool:
    """Change an early event and recompute every later hash and the head: a clean chain."""
    events = _events(session)
    start = rng.randrange(len(events) - 1)
    prev = events[start - 1].hash if start else "0" * 64
    for index, event in enumerate(events[start:]):
        fields: dict[str, Any] = {name: getattr(event, name) for name in HASHED_FIELDS}
        if index == 0:
            fields["actor"] = "mallory"
        digest = event_hash(prev, fields)
        session.execute(
            update(AuditEvent)
            .where(AuditEvent.id == event.id)
            .values(actor=fields["actor"], prev_hash=prev, hash=digest)
        )
        prev = digest
    session.execute(update(AuditChainHead).values(last_seq=events[-1].seq, last_hash=prev))
    return True


# Each returns True when it also rewrote the chain head (then only a checkpoint can tell).
TAMPERS: list[Callable[[Session, random.Random], bool]] = [
    _byte_flip,
    _edit_payload,
    _delete,
    _insert,
    _reorder,
    _truncate,
    _rewrite,
]


def test_every_tamper_is_detected(session: Session) -> None:
    for i in range(EVENTS):
        audit.record(session, ADMIN, "test.event", "case", i, after={"n": i})
    session.flush()
    mark = audit.checkpoint(session)
    assert audit.verify(session, mark).ok
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    rng = random.Random(20261129)
    undetected: list[str] = []
    head_rewrites = caught_only_by_checkpoint = 0
    for trial in range(TRIALS):
        tamper = TAMPERS[trial % len(TAMPERS)]
        savepoint = session.begin_nested()
        rewrote_head = tamper(session, rng)
        session.flush()
        session.expire_all()
        alone, with_mark = audit.verify(session), audit.verify(session, mark)
        head_rewrites += rewrote_head
        if alone.ok:
            caught_only_by_checkpoint += 1
            assert rewrote_head, f"trial {trial}: {tamper.__name__} passed verify"
        if with_mark.ok:
            undetected.append(f"{trial}:{tamper.__name__}")
        savepoint.rollback()
        session.expire_all()
    assert undetected == []
    # What rewrote history and the head alike passed the chain check on its own, and only
    # that: the checkpoint is what caught it.
    assert 0 < caught_only_by_checkpoint == head_rewrites
    assert audit.verify(session, mark).ok
