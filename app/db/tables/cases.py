"""Cases (one per invoice), their findings and the line-level match table."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, BigId, ExactDecimal, IdMixin, TimestampMixin, UTCDateTime, utcnow


class CaseState(StrEnum):
    """Where a case is on its way to the ERP (DESIGN §5)."""

    NEW = "new"
    TRIAGED = "triaged"
    IN_REVIEW = "in_review"
    ON_HOLD = "on_hold"
    APPROVED = "approved"
    POSTING = "posting"
    POSTED = "posted"
    REJECTED = "rejected"
    POSTING_FAILED = "posting_failed"


class Case(IdMixin, TimestampMixin, Base):
    """The unit of work in the review queue: one invoice and what is known about it."""

    __tablename__ = "cases"

    invoice_id: Mapped[int] = mapped_column(BigId, ForeignKey("invoices.id"), unique=True)
    supplier_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("suppliers.id"), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    queue: Mapped[str | None] = mapped_column(String(32), index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    match_type: Mapped[str | None] = mapped_column(String(8))
    required_signatures: Mapped[int] = mapped_column(Integer, default=1)
    # The claim: who works on the case now, proven by a token, until the lease expires.
    claimed_by_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    claim_token: Mapped[str | None] = mapped_column(String(64))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Chosen for the controller's audit queue (5 % of clean sign-offs, deterministic per case).
    audit_sampled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    __mapper_args__ = {"version_id_col": version}
    __table_args__ = (
        # The queue order, over open cases only: claim-next walks it and stops at the first
        # unclaimed row instead of sorting every open case on each claim.
        Index(
            "ix_cases_queue_order",
            priority.desc(),
            sla_due_at,
            "id",
            postgresql_where=state.in_(("new", "triaged", "in_review", "on_hold")),
            sqlite_where=state.in_(("new", "triaged", "in_review", "on_hold")),
        ),
    )


class FindingRow(IdMixin, Base):
    """One finding on a case, with the numbers and the tolerance that applied."""

    __tablename__ = "findings"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    code: Mapped[str] = mapped_column(String(32), index=True)
    severity: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    line_id: Mapped[str | None] = mapped_column(String(32))
    po_line_no: Mapped[str | None] = mapped_column(String(16))
    expected: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    actual: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    variance: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    unit: Mapped[str | None] = mapped_column(String(8))
    tolerance: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    rule_id: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(16), default="rules")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class MatchLine(IdMixin, Base):
    """How one invoice line was paired with a PO line, in the PO's unit."""

    __tablename__ = "match_lines"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    purchase_order_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("purchase_orders.id"), index=True
    )
    line_id: Mapped[str] = mapped_column(String(32))
    po_line_no: Mapped[str | None] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    invoiced_qty: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    invoiced_unit_price: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    ordered_qty: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    received_qty: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    previously_invoiced_qty: Mapped[Decimal | None] = mapped_column(ExactDecimal())
    uom_factor: Mapped[Decimal | None] = mapped_column(ExactDecimal())
