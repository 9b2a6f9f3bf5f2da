"""Documents as received (content-addressed) and the invoices read from them."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigId, ExactDecimal, IdMixin, UTCDateTime, utcnow


class ParseStatus(StrEnum):
    """Whether a document could be read."""

    PARSED = "parsed"
    FAILED = "failed"


class Document(IdMixin, Base):
    """The bytes that arrived, stored once by sha256, with the outcome of reading them."""

    __tablename__ = "documents"

    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    media_type: Mapped[str | None] = mapped_column(String(100))
    filename: Mapped[str | None] = mapped_column(String(255))
    storage_path: Mapped[str] = mapped_column(String(255))
    intake_channel: Mapped[str] = mapped_column(String(16))
    uploaded_by: Mapped[str | None] = mapped_column(String(100))
    detected_format: Mapped[str | None] = mapped_column(String(32))
    parse_status: Mapped[str] = mapped_column(String(16), index=True)
    parse_error_code: Mapped[str | None] = mapped_column(String(32))
    parse_error_message: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class InvoiceRow(IdMixin, Base):
    """A parsed invoice, credit note or claim: canonical JSON plus indexed header fields."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_supplier_number", "supplier_id", "normalised_number"),)

    document_id: Mapped[int] = mapped_column(BigId, ForeignKey("documents.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    number: Mapped[str | None] = mapped_column(String(64))
    normalised_number: Mapped[str | None] = mapped_column(String(64))
    supplier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("suppliers.id"))
    supplier_name: Mapped[str | None] = mapped_column(String(255))
    supplier_vat_id: Mapped[str | None] = mapped_column(String(32))
    iban: Mapped[str | None] = mapped_column(String(34))
    issue_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    currency: Mapped[str | None] = mapped_column(String(3))
    net_total: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    tax_total: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    gross_total: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    payable_total: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    po_reference: Mapped[str | None] = mapped_column(String(64))
    purchase_order_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("purchase_orders.id"), index=True
    )
    billing_reference: Mapped[str | None] = mapped_column(String(64))
    canonical: Mapped[dict[str, Any]] = mapped_column(JSON)
    # For documents read from a PDF's text: each header field's value, confidence and where it
    # was read (page, text span, label), so clerks see what to check and corrections can teach.
    extraction: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
