"""People and their work on cases: users, login sessions, decisions, and the ERP outbox."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigId, ExactDecimal, IdMixin, UTCDateTime, utcnow


class User(IdMixin, Base):
    """Someone who works in Tollgate, with one role and, for approvers, a signing limit."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    approval_limit: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    limit_currency: Mapped[str | None] = mapped_column(String(3))
    password_hash: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class UserSession(IdMixin, Base):
    """A server-side login session; the cookie holds only a random token, stored hashed."""

    __tablename__ = "user_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DecisionAction(StrEnum):
    """What a person did to a case."""

    SIGN = "sign"  # approve: one signature; the last one required approves the case
    REJECT = "reject"
    HOLD = "hold"  # waiting for information (from the supplier, the warehouse, a buyer)
    RELEASE = "release"  # back from hold into review
    REASSIGN = "reassign"
    CORRECT = "correct"  # corrected extracted fields
    CONFIRM_REASONS = "confirm_reasons"


class FeedbackKind(StrEnum):
    """Why a person overrode what a model said (structured, so retraining can use it)."""

    MODEL_WRONG = "model_wrong"
    POLICY_EXCEPTION = "policy_exception"
    BUSINESS_OVERRIDE = "business_override"


class Decision(IdMixin, Base):
    """One decision on a case, in the order they were made; signatures are SIGN decisions."""

    __tablename__ = "decisions"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(24))
    reason: Mapped[str | None] = mapped_column(Text)
    feedback_kind: Mapped[str | None] = mapped_column(String(24))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    case_version: Mapped[int] = mapped_column(Integer)
    # A signature stops counting when the case is edited after it (set, never deleted).
    superseded: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PostingState(StrEnum):
    """Where an outbox row is on its way to the ERP."""

    PENDING = "pending"
    SENDING = "sending"
    POSTED = "posted"
    FAILED = "failed"  # dead letter after the last retry; a human can act on it


class ErpPosting(IdMixin, Base):
    """The outbox: written in the transaction that approves a case, sent by a worker."""

    __tablename__ = "erp_postings"
    __table_args__ = (UniqueConstraint("case_id", name="uq_erp_postings_case_id"),)

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    erp_reference: Mapped[str | None] = mapped_column(String(128))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
