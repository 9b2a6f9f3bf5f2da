"""What clerks' corrections taught the PDF extractor about each supplier's layout."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigId, IdMixin, UTCDateTime, utcnow


class SupplierHintRow(IdMixin, Base):
    """One supplier's extraction hint: printed label -> the field it announces."""

    __tablename__ = "supplier_hints"

    supplier_id: Mapped[int] = mapped_column(BigId, ForeignKey("suppliers.id"), unique=True)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
