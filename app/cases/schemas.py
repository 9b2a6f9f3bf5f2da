"""API schemas for cases (stable, versioned under /api/v1)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from pipelines.reasons import ReasonCode


class SupplierRef(BaseModel):
    """The supplier a case was resolved to."""

    id: int
    ref: str
    name: str


class InvoiceHeader(BaseModel):
    """The header fields a queue shows."""

    id: int
    kind: str
    number: str | None
    issue_date: date | None
    due_date: date | None
    currency: str | None
    net_total: Decimal | None
    tax_total: Decimal | None
    gross_total: Decimal | None
    payable_total: Decimal | None
    po_reference: str | None
    supplier_name: str | None


class FindingOut(BaseModel):
    """A finding with its numbers and the tolerance that applied."""

    code: ReasonCode
    severity: str
    message: str
    line_id: str | None
    po_line_no: str | None
    expected: Decimal | None
    actual: Decimal | None
    variance: Decimal | None
    unit: str | None
    tolerance: dict[str, Any] | None
    rule_id: str | None
    details: dict[str, Any]
    source: str


class MatchLineOut(BaseModel):
    """One row of the match table, quantities and prices in the PO's unit."""

    line_id: str
    po_line_no: str | None
    kind: str
    status: str
    invoiced_qty: Decimal | None
    invoiced_unit_price: Decimal | None
    ordered_qty: Decimal | None
    received_qty: Decimal | None
    previously_invoiced_qty: Decimal | None
    uom_factor: Decimal | None


class AuditEventOut(BaseModel):
    """One entry of a case's history."""

    seq: int
    occurred_at: datetime
    actor: str
    actor_role: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    model_name: str | None
    model_version: str | None


class CaseSummary(BaseModel):
    """A case as a queue row."""

    id: int
    state: str
    queue: str | None
    priority: int
    sla_due_at: datetime | None
    match_type: str | None
    required_signatures: int
    reasons: list[ReasonCode]
    supplier: SupplierRef | None
    invoice: InvoiceHeader
    document_id: int
    created_at: datetime
    version: int


class CaseDetail(CaseSummary):
    """A case with everything a reviewer needs."""

    findings: list[FindingOut]
    match_lines: list[MatchLineOut]
    document: dict[str, Any]
    canonical: dict[str, Any]
    history: list[AuditEventOut]


class CasePage(BaseModel):
    """A page of cases."""

    items: list[CaseSummary]
    total: int
    page: int
    page_size: int
    pages: int = Field(description="number of pages at this page size")
