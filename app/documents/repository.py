"""SQL for documents and invoices."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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


def supplier_invoices_by_numbers(
    session: Session,
    supplier_id: int,
    normalised_numbers: Sequence[str],
    before_invoice_id: int | None = None,
) -> Sequence[InvoiceRow]:
    """Stored documents of a supplier with any of the given normalised numbers."""
    query = select(InvoiceRow).where(
        InvoiceRow.supplier_id == supplier_id,
        InvoiceRow.normalised_number.in_(normalised_numbers),
    )
    if before_invoice_id is not None:
        query = query.where(InvoiceRow.id < before_invoice_id)
    return session.scalars(query).all()


def supplier_credits_for(
    session: Session,
    supplier_id: int,
    billing_reference: str,
    before_invoice_id: int | None = None,
) -> Sequence[InvoiceRow]:
    """Stored credit notes and claims of a supplier against the same invoice number."""
    query = select(InvoiceRow).where(
        InvoiceRow.supplier_id == supplier_id,
        InvoiceRow.kind != "invoice",
        InvoiceRow.billing_reference == billing_reference,
    )
    if before_invoice_id is not None:
        query = query.where(InvoiceRow.id < before_invoice_id)
    return session.scalars(query).all()


def add(session: Session, row: object) -> None:
    """Stage a new row."""
    session.add(row)


def hint_for(session: Session, supplier_id: int) -> SupplierHintRow | None:
    """The extraction hint learnt for a supplier."""
    return session.scalars(
        select(SupplierHintRow).where(SupplierHintRow.supplier_id == supplier_id)
    ).one_or_none()
