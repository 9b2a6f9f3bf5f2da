"""The contract every ERP adapter keeps (DESIGN §2 step 9, §8).

Posting is at-least-once on Tollgate's side (a worker may crash after the ERP accepted and
before the local commit), so it is exactly-once only because the ERP side is idempotent: every
post carries the outbox row's idempotency key, stored in the ERP, and `find_posted` is asked
before any post. Adapters raise `ErpUnavailable` for faults worth retrying (down, timeout, 5xx)
and `ErpRejected` for answers that retrying will not change (validation errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Protocol

from pipelines.canonical import AnySupplierDocument, GoodsReceipt, PurchaseOrder


class ErpError(Exception):
    """Something went wrong talking to the ERP; `message` is shown to clerks."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message[:2000]


class ErpUnavailable(ErpError):
    """The ERP could not be reached or failed on its side: try again later."""


class ErpRejected(ErpError):
    """The ERP refused the document: retrying the same request will not help."""


@dataclass(frozen=True)
class SupplierData:
    """A supplier as the ERP holds it."""

    ref: str
    name: str
    vat_id: str | None = None
    ibans: tuple[str, ...] = ()
    blocked: bool = False


@dataclass(frozen=True)
class PostingRequest:
    """What Tollgate sends for one approved case."""

    idempotency_key: str
    case_id: int
    document: AnySupplierDocument
    supplier_ref: str | None
    po_number: str | None
    signers: tuple[str, ...] = ()
    model_versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PostedDocument:
    """A supplier invoice as the ERP holds it (for reconciliation)."""

    idempotency_key: str
    erp_reference: str
    supplier_ref: str | None
    currency: str | None
    gross: Decimal | None
    posted_at: datetime | None = None


class ErpAdapter(Protocol):
    """One ERP: master data in, approved invoices out, idempotently."""

    name: str

    def check(self) -> str:
        """Reach the ERP and say what it is (raises ErpUnavailable)."""
        ...

    def fetch_suppliers(self) -> list[SupplierData]:
        """Every supplier."""
        ...

    def fetch_purchase_orders(self, since: datetime | None = None) -> list[PurchaseOrder]:
        """Confirmed purchase orders changed since the watermark (all when None)."""
        ...

    def fetch_receipts(self, since: datetime | None = None) -> list[GoodsReceipt]:
        """Goods receipts (and returns) since the watermark."""
        ...

    def post_invoice(self, request: PostingRequest) -> str:
        """Create the supplier invoice in the ERP; return its reference (e.g. invoice number)."""
        ...

    def find_posted(self, idempotency_key: str) -> str | None:
        """The reference of a document posted with this key, or None."""
        ...

    def list_posted(self, start: date, end: date) -> list[PostedDocument]:
        """Documents Tollgate posted in a period, as the ERP holds them."""
        ...
