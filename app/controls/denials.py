"""Audit refusals that happen before a request has a transaction worth committing.

A request refused by a dependency (no login, no or a bad API key) raises, so the request's own
transaction rolls back; an auditor must still see the attempt. These refusals are written in a
transaction of their own. Nothing has been written by the request yet at that point, so the
audit chain's head is free to lock.
"""

from __future__ import annotations

from fastapi import Request

from app.audit import service as audit
from app.audit.service import Actor
from app.db.session import transaction


def record_refusal(request: Request, actor: Actor, reason: str) -> None:
    """Append an `access.denied` event for this request in its own transaction."""
    factory = request.app.state.session_factory
    with transaction(factory) as session:
        audit.record(
            session,
            actor,
            "access.denied",
            "route",
            request.url.path[:64],
            after={"method": request.method, "reason": reason},
        )
