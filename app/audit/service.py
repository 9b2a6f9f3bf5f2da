"""Writing and verifying the audit chain."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.orm import Session

from app.audit import repository
from app.db.base import utcnow
from governance.audit_chain import (
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
    return row


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of recomputing the chain."""

    events: int
    breaks: list[ChainBreak]
    head_matches: bool

    @property
    def ok(self) -> bool:
        """True when every event verifies and the head points at the last one."""
        return not self.breaks and self.head_matches


def verify(session: Session) -> VerifyReport:
    """Recompute the whole chain and compare its end with the stored head."""
    fields = (*HASHED_FIELDS, "prev_hash", "hash")
    chain = verify_chain(
        {name: getattr(ev, name) for name in fields} for ev in repository.iter_events(session)
    )
    head = repository.chain_head(session)
    head_matches = (head is None and chain.events == 0) or (
        head is not None and (head.last_seq, head.last_hash) == (chain.last_seq, chain.last_hash)
    )
    return VerifyReport(chain.events, chain.breaks, head_matches)
