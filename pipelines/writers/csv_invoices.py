"""Write canonical documents as Tollgate's bulk CSV (columns: pipelines.parsers.csv_invoices).

UTF-8 without a byte-order mark, comma-delimited, CRLF line ends and minimal quoting (RFC 4180).
`read_csv(write_csv(docs))` gives back the documents for the fields the CSV carries (see the
reader's docstring); an empty text field comes back as None.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from pipelines.canonical import AllowanceCharge, Claim, CreditNote, DocumentLine, Invoice
from pipelines.parsers.csv_invoices import COLUMNS

Cell = str | Decimal | date | None


def _cell(value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write the non-finite amount {value} to CSV")
        # "f" keeps the given precision and never uses exponent notation, which the reader refuses.
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _header(doc: Invoice | CreditNote | Claim) -> dict[str, Cell]:
    totals = doc.totals
    return {
        "document_type": doc.kind,
        "number": doc.number,
        "issue_date": doc.issue_date,
        "due_date": doc.due_date,
        "currency": doc.currency,
        "supplier_name": doc.supplier.name,
        "supplier_vat_id": doc.supplier.vat_id,
        "supplier_iban": doc.bank_iban,
        "buyer_name": doc.buyer.name,
        "buyer_vat_id": doc.buyer.vat_id,
        "po_reference": doc.po_reference,
        "billing_reference": getattr(doc, "billing_reference", None),
        "claim_reason": getattr(doc, "claim_reason", None),
        "line_total": totals.line_extension,
        "allowances": totals.allowances,
        "charges": totals.charges,
        "net_total": totals.tax_exclusive,
        "tax_total": totals.tax,
        "gross_total": totals.tax_inclusive,
        "payable": totals.payable,
    }


def _line(line: DocumentLine) -> dict[str, Cell]:
    return {
        "record": "line",
        "line_id": line.line_id,
        "item_id": line.item_id,
        "po_line_ref": line.po_line_ref,
        "description": line.description,
        "quantity": line.quantity,
        "unit_code": line.unit_code,
        "unit_price": line.unit_price,
        "price_base_quantity": line.price_base_quantity,
        "line_amount": line.line_amount,
        # Zero is left empty: the reader's default, and most lines have neither.
        "line_allowances": line.allowances or None,
        "line_charges": line.charges or None,
        "tax_category": line.tax_category,
        "tax_rate": line.tax_rate,
        "kind": line.kind.value,
    }


def _allowance_charge(item: AllowanceCharge) -> dict[str, Cell]:
    return {
        "record": "charge" if item.is_charge else "allowance",
        "description": item.reason,
        "line_amount": item.amount,
        "reason_code": item.reason_code,
        "tax_category": item.tax_category,
        "tax_rate": item.tax_rate,
    }


def write_csv(docs: Iterable[Invoice | CreditNote | Claim]) -> bytes:
    """Write documents as one bulk CSV, one row per line or document-level charge/allowance."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=",", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(COLUMNS)
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        if not doc.number:
            raise ValueError("a document without a number cannot be written: rows group by it")
        supplier = (doc.supplier.vat_id or "").upper().replace(" ", "") or (doc.supplier.name or "")
        key = (doc.kind, doc.number, supplier.casefold())
        if key in seen:
            # The reader would merge the two into one document.
            raise ValueError(f"{doc.kind} {doc.number} appears twice for the same supplier")
        seen.add(key)
        header = _header(doc)
        rows = [_line(line) for line in doc.lines]
        rows += [_allowance_charge(item) for item in doc.allowance_charges]
        for row in rows or [{}]:
            cells = {**header, **row}
            writer.writerow([_cell(cells.get(column)) for column in COLUMNS])
    return out.getvalue().encode("utf-8")
