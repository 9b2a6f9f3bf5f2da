"""The exact-key duplicate check: supplier + normalised number + gross amount + kind, in a window.

The supplier is implicit: callers pass only earlier documents of the same supplier. Fuzzy
duplicates (OCR swaps, new numbers on re-sent PDFs, cents differences) are the anomaly
model's job; this check is its baseline and never misses an exact re-send.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.canonical import SupplierDocument
from pipelines.matching.context import PriorDocument
from pipelines.normalise import normalise_invoice_number


def find_exact_duplicates(
    doc: SupplierDocument,
    supplier_ref: str | None,
    prior: Sequence[PriorDocument],
    window_days: int,
    document_id: str | None = None,
) -> list[PriorDocument]:
    """Earlier documents with the same key as this one (never the document itself)."""
    if supplier_ref is None or not doc.number or doc.gross is None:
        return []
    number = normalise_invoice_number(doc.number)
    found = []
    for other in prior:
        if document_id is not None and other.document_id == document_id:
            continue
        if other.kind != doc.kind or other.normalised_number != number:
            continue
        if other.gross is None or other.gross != doc.gross:
            continue
        if other.currency and doc.currency and other.currency != doc.currency:
            continue
        apart = (
            abs((doc.issue_date - other.issue_date).days)
            if doc.issue_date and other.issue_date
            else 0
        )
        if apart > window_days:
            continue
        found.append(other)
    return found
