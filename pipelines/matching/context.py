"""What matching needs to know besides the document, and what it returns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Literal, Protocol

from pipelines.canonical import GoodsReceipt, LineKind, PurchaseOrder
from pipelines.findings import AppliedTolerance, Finding


class ToleranceCheck(StrEnum):
    """The comparisons a tolerance can be set for."""

    PRICE = "price"
    QTY_ORDERED = "qty_ordered"
    QTY_RECEIVED = "qty_received"
    AMOUNT_OVER_PO = "amount_over_po"
    TAX = "tax"
    FREIGHT = "freight"
    ROUNDING = "rounding"


class ToleranceLookup(Protocol):
    """Where matching gets its tolerances (governance implements it)."""

    def __call__(
        self, check: ToleranceCheck, supplier_ref: str | None, category: str | None
    ) -> AppliedTolerance:
        """The tolerance for a check, supplier and item category."""
        ...


@dataclass(frozen=True)
class SupplierRecord:
    """The master-data supplier a document was resolved to (identifiers normalised)."""

    ref: str
    name: str
    vat_id: str | None = None
    ibans: tuple[str, ...] = ()
    blocked: bool = False


@dataclass(frozen=True)
class PriorDocument:
    """An earlier document of the same supplier, for duplicate and credit checks."""

    document_id: str
    kind: str
    number: str | None
    normalised_number: str | None
    issue_date: date | None
    gross: Decimal | None
    currency: str | None
    billing_reference: str | None = None  # normalised; credits name the invoice they credit


@dataclass(frozen=True)
class MatchContext:
    """Master data and history around one document."""

    supplier: SupplierRecord | None
    po: PurchaseOrder | None
    receipts: Sequence[GoodsReceipt] = ()
    already_invoiced_qty: Mapping[str, Decimal] = field(default_factory=dict)
    already_invoiced_amount: Decimal = Decimal(0)
    prior_documents: Sequence[PriorDocument] = ()
    item_uom_factors: Mapping[tuple[str, str, str], Decimal] = field(default_factory=dict)
    duplicate_window_days: int = 365
    document_id: str | None = None


@dataclass
class LineMatch:
    """How one document line was paired, in the PO line's unit."""

    line_id: str
    po_line_no: str | None
    kind: LineKind
    status: Literal["matched", "exception", "unmatched", "charge"]
    invoiced_qty: Decimal | None = None
    invoiced_unit_price: Decimal | None = None
    ordered_qty: Decimal | None = None
    received_qty: Decimal | None = None
    previously_invoiced_qty: Decimal | None = None
    uom_factor: Decimal | None = None


@dataclass
class MatchResult:
    """Findings, the line table and whether the match was 3-way, 2-way or without a PO."""

    findings: list[Finding]
    lines: list[LineMatch]
    match_type: Literal["3-way", "2-way", "none"]
