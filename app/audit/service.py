"""Writing and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from app.audit import repository
from app.db.base import utcnow
from app.webhooks import events as webhook_events
from governance.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainBreak,
    event_hash,
    to_canonical,
    verify_chain,
)


@dataclass(frozen=True)
class Actor:
    """Who acts: a person, a system key or Tollgate itself."""

    name: str
    role: str

    @classmethod
    def system(cls) -> Actor:
        """Tollgate's own automated steps."""
        return cls("tollgate", "system")


def record(
    session: Session,
    actor: Actor,
    action: str,
    object_type: str,
    object_id: str | int,
    *,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Append an event to the chain inside the caller's transaction; return the row written."""
    head = repository.lock_chain_head(session)
    fields: dict[str, Any] = {
        "seq": head.last_seq + 1,
        "occurred_at": utcnow(),
        "actor": actor.name,
        "actor_role": actor.role,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "before": to_canonical(before) if before is not None else None,
        "after": to_canonical(after) if after is not None else None,
        "model_name": model_name,
        "model_version": model_version,
        "request_id": structlog.contextvars.get_contextvars().get("request_id"),
    }
    digest = event_hash(head.last_hash, fields)
    row = {**fields, "prev_hash": head.last_hash, "hash": digest}
    repository.add_event(session, row)
    head.last_seq, head.last_hash = fields["seq"], digest
    webhook_events.on_audit_event(session, row)  # a case state change queues its webhooks
    return row


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of recomputing the chain."""

    events: int
    breaks: list[ChainBreak]
    head_matches: bool
    # None without a checkpoint; else whether the event at its seq still has its hash.
    checkpoint_matches: bool | None = None

    @property
    def ok(self) -> bool:
        """True when every event verifies, the head points at the last one, and the
        checkpoint (if given) still holds."""
        return not self.breaks and self.head_matches and self.checkpoint_matches is not False


@dataclass(frozen=True)
class Checkpoint:
    """The chain head at some moment, kept outside the database (`seq:hash`)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Read `seq:hash` as printed by `tollgate audit checkpoint`."""
        seq, sep, digest = text.strip().partition(":")
        if not sep or not seq.isdigit() or len(digest) != 64:
            raise ValueError("a checkpoint looks like 1234:<64 hex digits>")
        return cls(int(seq), digest.lower())


def checkpoint(session: Session) -> Checkpoint:
    """The current head of the chain, to store somewhere the database's owner cannot write."""
    head = repository.chain_head(session)
    return Checkpoint(head.last_seq, head.last_hash) if head else Checkpoint(0, GENESIS_HASH)


def verify(session: Session, at: Checkpoint | None = None) -> VerifyReport:
    """Recompute the whole chain and compare its end with the stored head (and a checkpoint).

    A chain rewritten from some event onwards, hashes and head recomputed, verifies on its own;
    only a checkpoint taken before the rewrite and kept elsewhere shows it.
    """
    fields = (*HASHED_FIELDS, "prev_hash", "hash")
    seen: dict[int, str] = {}

    def events() -> Iterator[dict[str, Any]]:
        for ev in repository.iter_events(session):
            row = {name: getattr(ev, name) for name in fields}
            if at is not None and row["seq"] == at.seq:
                seen[at.seq] = row["hash"]
            yield row

    chain = verify_chain(events())
    head = repository.chain_head(session)
    head_matches = (head is None and chain.events == 0) or (
        head is not None and (head.last_seq, head.last_hash) == (chain.last_seq, chain.last_hash)
    )
    matches = None
    if at is not None:
        matches = (at.seq == 0 and at.hash == GENESIS_HASH) or seen.get(at.seq) == at.hash
    return VerifyReport(chain.events, chain.breaks, head_matches, matches)
