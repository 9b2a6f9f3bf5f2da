"""SQL for API keys."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import ApiKey


def by_key_id(session: Session, key_id: str) -> ApiKey | None:
    """A key by its public id."""
    return session.scalars(select(ApiKey).where(ApiKey.key_id == key_id)).one_or_none()


def all_keys(session: Session) -> Sequence[ApiKey]:
    """Every key, newest first."""
    return session.scalars(select(ApiKey).order_by(ApiKey.id.desc())).all()


def add(session: Session, key: ApiKey) -> None:
    """Stage a new key."""
    session.add(key)
    session.flush()
