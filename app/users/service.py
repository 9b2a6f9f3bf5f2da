"""Users, passwords and login sessions.

Passwords are hashed with argon2id (argon2-cffi's defaults, which follow RFC 9106's second
recommendation). A login creates a server-side session: the browser gets a random token, the
database keeps only its sha256, and the session ends on logout, after an idle timeout or at its
absolute expiry. Every login, failed login and logout is audited.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.db.base import utcnow
from app.db.tables import User, UserSession
from app.errors import Conflict, InvalidInput, Unauthorized
from app.limits import LoginGuard, RateLimited, retry_after_header
from app.users import repository
from governance.signoff import Actor as Signer
from governance.signoff import Role

_HASHER = PasswordHasher()
# Verifying against this keeps a login for an unknown name as slow as one for a known name.
_DUMMY_HASH = _HASHER.hash("not a password anyone has")
MIN_PASSWORD_LENGTH = 12


@dataclass(frozen=True)
class LoggedIn:
    """A resolved login: the user, and the session's token and CSRF token."""

    user: User
    token: str
    csrf_token: str


def actor_of(user: User) -> Actor:
    """The audit actor for a user."""
    return Actor(user.username, user.role)


def signer_of(user: User) -> Signer:
    """The user as governance sees a signer."""
    return Signer(
        user_id=user.username,
        role=Role(user.role),
        approval_limit=user.approval_limit,
        limit_currency=user.limit_currency,
    )


def create_user(
    session: Session,
    *,
    username: str,
    display_name: str,
    role: str,
    password: str,
    actor: Actor,
    approval_limit: Decimal | None = None,
    limit_currency: str | None = None,
) -> User:
    """Add a user; the password is stored only as an argon2id hash."""
    try:
        Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}; choose one of {', '.join(r.value for r in Role)}",
            code="UNKNOWN_ROLE",
        ) from None
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"the password must have at least {MIN_PASSWORD_LENGTH} characters",
            code="WEAK_PASSWORD",
        )
    if approval_limit is not None and (approval_limit < 0 or not limit_currency):
        raise InvalidInput(
            "an approval limit must be positive and come with its currency",
            code="INVALID_LIMIT",
        )
    if repository.by_username(session, username) is not None:
        raise Conflict(f"the user {username} exists already", code="USER_EXISTS")
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        approval_limit=approval_limit,
        limit_currency=limit_currency.upper() if limit_currency else None,
        password_hash=_HASHER.hash(password),
        active=True,
    )
    repository.add(session, user)
    audit.record(
        session,
        actor,
        "user.created",
        "user",
        user.id,
        after={
            "username": username,
            "role": role,
            "approval_limit": approval_limit,
            "limit_currency": user.limit_currency,
        },
    )
    return user


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def log_in(
    session: Session,
    username: str,
    password: str,
    *,
    lifetime: timedelta,
    now: datetime | None = None,
    guard: LoginGuard | None = None,
) -> LoggedIn:
    """Check the password and open a session; the same error for every kind of failure."""
    now = now or utcnow()
    if guard is not None:
        _refuse_if_throttled(session, guard, username)
    user = repository.by_username(session, username)
    try:
        _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        ok = user is not None and user.active
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None:
        audit.record(
            session, Actor(username[:100] or "?", "anonymous"), "login.failed", "user", username
        )
        if guard is not None:
            guard.throttle.failed(username, guard.ip)
        raise Unauthorized("wrong user name or password", code="LOGIN_FAILED")
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    repository.add(
        session,
        UserSession(
            token_hash=_token_hash(token),
            user_id=user.id,
            csrf_token=csrf,
            created_at=now,
            last_seen_at=now,
            expires_at=now + lifetime,
        ),
    )
    audit.record(session, actor_of(user), "login", "user", user.id)
    if guard is not None:
        guard.throttle.succeeded(username)
    return LoggedIn(user, token, csrf)


def _refuse_if_throttled(session: Session, guard: LoginGuard, username: str) -> None:
    # Checked before the password: a throttled guess learns nothing and costs no argon2 time.
    wait = guard.throttle.blocked_for(username, guard.ip)
    if wait is None:
        return
    audit.record(
        session,
        Actor(username[:100] or "?", "anonymous"),
        "login.throttled",
        "user",
        username[:100],
        after={"ip": guard.ip, "retry_after": retry_after_header(wait)},
    )
    raise RateLimited(
        "too many failed logins; try again later", retry_after=wait, code="LOGIN_THROTTLED"
    )


def resolve(
    session: Session, token: str, *, idle_timeout: timedelta, now: datetime | None = None
) -> LoggedIn | None:
    """The live session for a cookie token (touching it), or None when missing or expired."""
    now = now or utcnow()
    row = repository.session_by_token_hash(session, _token_hash(token))
    if row is None or row.ended_at is not None:
        return None
    if now >= row.expires_at or now - row.last_seen_at >= idle_timeout:
        row.ended_at = now
        return None
    user = repository.by_id(session, row.user_id)
    if user is None or not user.active:
        return None
    row.last_seen_at = now
    return LoggedIn(user, token, row.csrf_token)


def log_out(session: Session, token: str, now: datetime | None = None) -> None:
    """End the session of a token (a no-op for unknown tokens)."""
    row = repository.session_by_token_hash(session, _token_hash(token))
    if row is None or row.ended_at is not None:
        return
    row.ended_at = now or utcnow()
    user = repository.by_id(session, row.user_id)
    if user is not None:
        audit.record(session, actor_of(user), "logout", "user", user.id)
