"""SQL for users and their login sessions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import User, UserSession


def by_username(session: Session, username: str) -> User | None:
    """A user by login name."""
    return session.scalars(select(User).where(User.username == username)).one_or_none()


def by_id(session: Session, user_id: int) -> User | None:
    """A user by id."""
    return session.get(User, user_id)


def by_ids(session: Session, user_ids: Sequence[int]) -> dict[int, User]:
    """Users by id, for labelling decisions."""
    if not user_ids:
        return {}
    return {u.id: u for u in session.scalars(select(User).where(User.id.in_(user_ids)))}


def all_users(session: Session) -> Sequence[User]:
    """Every user, by name."""
    return session.scalars(select(User).order_by(User.username)).all()


def add(session: Session, row: User | UserSession) -> None:
    """Stage a new row."""
    session.add(row)
    session.flush()


def session_by_token_hash(session: Session, token_hash: str) -> UserSession | None:
    """A login session by the hash of its cookie token."""
    return session.scalars(
        select(UserSession).where(UserSession.token_hash == token_hash)
    ).one_or_none()
