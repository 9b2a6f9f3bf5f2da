"""API keys for other systems: scoped, revocable, stored hashed, shown once.

A key looks like `tg_<key id>_<secret>`. The key id is public (it names the key in the audit
log); the secret is 32 random bytes, stored only as its sha256 (a random secret that long needs
no slow hash) and compared in constant time. Scopes: `score`, `documents:write`, `cases:read`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.apikeys import repository
from app.audit import service as audit
from app.audit.service import Actor
from app.db.base import utcnow
from app.db.tables import ApiKey
from app.errors import Forbidden, InvalidInput, NotFound, Unauthorized

SCOPES = ("score", "documents:write", "cases:read")
PREFIX = "tg_"


@dataclass(frozen=True)
class NewKey:
    """A key just created: the only moment its full text exists outside the caller's hands."""

    key: ApiKey
    token: str


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, name: str, scopes: list[str], actor: Actor) -> NewKey:
    """Create a key with the given scopes; the returned token is shown once, never stored."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(
            f"unknown or missing scopes {unknown}; choose from {', '.join(SCOPES)}",
            code="UNKNOWN_SCOPE",
        )
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    key = ApiKey(
        key_id=key_id,
        secret_hash=_hash(secret),
        name=name,
        scopes=sorted(set(scopes)),
        created_by=actor.name,
    )
    repository.add(session, key)
    audit.record(
        session, actor, "api_key.created", "api_key", key_id, after={"name": name, "scopes": scopes}
    )
    return NewKey(key, f"{PREFIX}{key_id}_{secret}")


def revoke(session: Session, key_id: str, actor: Actor, now: datetime | None = None) -> ApiKey:
    """Revoke a key at once; later calls with it get 401."""
    key = repository.by_key_id(session, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    if key.revoked_at is None:
        key.revoked_at = now or utcnow()
        audit.record(session, actor, "api_key.revoked", "api_key", key_id)
    return key


ACTOR_PREFIX = "api-key:"


def identify(session: Session, token: str) -> ApiKey:
    """The key a bearer token names, if its secret matches (revoked or not)."""
    key_id, _, secret = token.removeprefix(PREFIX).partition("_")
    key = repository.by_key_id(session, key_id) if token.startswith(PREFIX) else None
    if key is None or not secrets.compare_digest(key.secret_hash, _hash(secret)):
        raise Unauthorized("the API key is not valid", code="INVALID_API_KEY")
    return key


def admit(key: ApiKey, scope: str) -> Actor:
    """The system behind an identified key, if the key is live and has the scope."""
    if key.revoked_at is not None:
        raise Unauthorized("the API key was revoked", code="REVOKED_API_KEY")
    if scope not in key.scopes:
        raise Forbidden(
            f"the API key {key.key_id} lacks the scope {scope}",
            code="MISSING_SCOPE",
            details={"scope": scope},
        )
    # No write here: `last_used_at` is kept by the call recorder (app/apikeys/calls.py).
    return Actor(f"{ACTOR_PREFIX}{key.key_id}", "system")


def authenticate(session: Session, token: str, scope: str) -> Actor:
    """The system behind a bearer token, if the key is live and has the scope."""
    return admit(identify(session, token), scope)
