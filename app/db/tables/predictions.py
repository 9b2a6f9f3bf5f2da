"""Model outputs on cases, each naming the registered model version that produced it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigId, IdMixin, UTCDateTime, utcnow


class Prediction(IdMixin, Base):
    """One model family's output on a case (reason probabilities, anomaly score, delay)."""

    __tablename__ = "predictions"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    family: Mapped[str] = mapped_column(String(16))  # reason | anomaly | delay
    model_name: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(32))
    run_id: Mapped[str | None] = mapped_column(String(64))
    output: Mapped[dict[str, Any]] = mapped_column(JSON)
    explanation: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
