"""Model promotion requests (and rollbacks) and the kill switch that turns model outputs off."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, IdMixin, UTCDateTime, utcnow


class PromotionState(StrEnum):
    """Where a request is: waiting for a controller, decided, or undone by a rollback."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    ROLLED_BACK = "rolled_back"  # was approved; a rollback moved champion back
    APPLIED = "applied"  # a rollback row: applied when it was written


class PromotionKind(StrEnum):
    """A request to promote a version, or the record of a rollback."""

    PROMOTION = "promotion"
    ROLLBACK = "rollback"


class PromotionRequest(IdMixin, Base):
    """One request to move `champion` of a family to a version, with its evidence and outcome."""

    __tablename__ = "promotion_requests"
    __table_args__ = (Index("ix_promotion_requests_family_state", "family", "state"),)

    kind: Mapped[str] = mapped_column(String(16))
    family: Mapped[str] = mapped_column(String(32))
    model_name: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    # The champion when the request was made (None: the family had none), for rollback.
    previous_version: Mapped[str | None] = mapped_column(String(16))
    run_id: Mapped[str] = mapped_column(String(64))
    trained_by: Mapped[str | None] = mapped_column(String(100))
    requested_by: Mapped[str] = mapped_column(String(100))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    state: Mapped[str] = mapped_column(String(16))
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_role: Mapped[str | None] = mapped_column(String(16))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision_reason: Mapped[str | None] = mapped_column(Text)
    override_reason: Mapped[str | None] = mapped_column(Text)


class ModelSwitch(IdMixin, Base):
    """One flip of the kill switch (append-only); the newest row per family is in force."""

    __tablename__ = "model_switches"
    __table_args__ = (Index("ix_model_switches_family_id", "family", "id"),)

    family: Mapped[str] = mapped_column(String(32))  # a family, or "all"
    enabled: Mapped[bool] = mapped_column(Boolean)  # True: models are OFF (manual review only)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    reason: Mapped[str | None] = mapped_column(Text)
