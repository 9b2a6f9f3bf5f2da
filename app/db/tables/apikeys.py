"""API keys for other systems (an ERP, a supplier portal, an RPA bot) and the log of their calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, UTCDateTime, utcnow


class ApiKey(IdMixin, Base):
    """A scoped, revocable key; only a hash of its secret is stored, the secret is shown once."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(24), unique=True)  # public part: tg_<key_id>_…
    secret_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    scopes: Mapped[list[Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Written by the call recorder (app/apikeys/calls.py) with each flush, not by the request.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ApiCall(IdMixin, Base):
    """One call made with an API key; written in batches by the call recorder.

    `key_id` is the key's public id, not a foreign key: this is a log, and a batch must never
    be refused because of one row.
    """

    __tablename__ = "api_calls"
    __table_args__ = (
        Index("ix_api_calls_key_id_at", "key_id", "at"),
        Index("ix_api_calls_at", "at"),  # `tollgate api-keys calls` without --key
    )

    at: Mapped[datetime] = mapped_column(UTCDateTime())  # when the request arrived
    key_id: Mapped[str] = mapped_column(String(24))
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))  # the route template, not the raw path
    status: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Float)
    request_id: Mapped[str | None] = mapped_column(String(64))
