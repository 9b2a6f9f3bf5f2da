"""SQL for documents and invoices."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.db.base import AFTER_EVERY_ROW
from app.db.tables import Document, InvoiceRow, SupplierHintRow


def by_sha256(session: Session, sha256: str) -> Document | None:
    """The document stored under this digest."""
    return session.scalars(select(Document).where(Document.sha256 == sha256)).one_or_none()


def get(session: Session, document_id: int) -> Document | None:
    """A document by id."""
    return session.get(Document, document_id)


def invoice_for_document(session: Session, document_id: int) -> InvoiceRow | None:
    """The invoice read from a document."""
    return session.scalars(
        select(InvoiceRow).where(InvoiceRow.document_id == document_id)
    ).one_or_none()


def get_invoice(session: Session, invoice_id: int) -> InvoiceRow | None:
    """An invoice by id."""
    return session.get(InvoiceRow, invoice_id)


def list_documents(
    session: Session, status: str | None, offset: int, limit: int
) -> tuple[Sequence[Document], int]:
    """A page of documents, newest first, with the total count."""
    query = select(Document)
    if status:
        query = query.where(Document.parse_status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Document.id.desc()).offset(offset).limit(limit)).all()
    return rows, total


# Built once: matching runs them for every document, and building and keying a statement
# costs more CPU than running it.
_BY_NUMBERS = select(InvoiceRow).where(
    InvoiceRow.supplier_id == bindparam("supplier_id"),
    InvoiceRow.normalised_number.in_(bindparam("numbers", expanding=True)),
    InvoiceRow.id < bindparam("before"),
)
_CREDITS_FOR = select(InvoiceRow).where(
    InvoiceRow.supplier_id == bindparam("supplier_id"),
    InvoiceRow.kind != "invoice",
    InvoiceRow.billing_reference == bindparam("reference"),
    InvoiceRow.id < bindparam("before"),
)


def supplier_invoices_by_numbers(
    session: Session,
    supplier_id: int,
    normalised_numbers: Sequence[str],
    before_invoice_id: int | None = None,
) -> Sequence[InvoiceRow]:
    """Stored documents of a supplier with any of the given normalised numbers."""
    params = {
        "supplier_id": supplier_id,
        "numbers": list(normalised_numbers),
        "before": AFTER_EVERY_ROW if before_invoice_id is None else before_invoice_id,
    }
    return session.scalars(_BY_NUMBERS, params).all()


def supplier_credits_for(
    session: Session,
    supplier_id: int,
    billing_reference: str,
    before_invoice_id: int | None = None,
) -> Sequence[InvoiceRow]:
    """Stored credit notes and claims of a supplier against the same invoice number."""
    params = {
        "supplier_id": supplier_id,
        "reference": billing_reference,
        "before": AFTER_EVERY_ROW if before_invoice_id is None else before_invoice_id,
    }
    return session.scalars(_CREDITS_FOR, params).all()


def add(session: Session, row: object) -> None:
    """Stage a new row."""
    session.add(row)


def hint_for(session: Session, supplier_id: int) -> SupplierHintRow | None:
    """The extraction hint learnt for a supplier."""
    return session.scalars(
        select(SupplierHintRow).where(SupplierHintRow.supplier_id == supplier_id)
    ).one_or_none()
