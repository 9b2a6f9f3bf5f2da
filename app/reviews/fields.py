"""The header fields a clerk can correct: where each lives in the canonical document.

The names are the PDF extractor's (`pipelines.extract.lexicon.FIELDS`), so a correction of a
field read from a PDF can teach the extractor, and the stored extraction JSON lines up.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pipelines.extract.lexicon import FIELDS
from pipelines.normalise import normalise_iban

LOW_CONFIDENCE = 0.8  # below this a clerk should check the value against the document


@dataclass(frozen=True)
class FieldSpec:
    """One correctable header field."""

    name: str
    label: str
    kind: str  # text | date | amount | currency | iban


SPECS: dict[str, FieldSpec] = {
    s.name: s
    for s in (
        FieldSpec("supplier_name", "Supplier name", "text"),
        FieldSpec("supplier_vat_id", "Supplier VAT id", "text"),
        FieldSpec("iban", "IBAN", "iban"),
        FieldSpec("invoice_number", "Invoice number", "text"),
        FieldSpec("issue_date", "Issue date", "date"),
        FieldSpec("due_date", "Due date", "date"),
        FieldSpec("po_reference", "PO reference", "text"),
        FieldSpec("currency", "Currency", "currency"),
        FieldSpec("net_total", "Net total", "amount"),
        FieldSpec("tax_total", "Tax total", "amount"),
        FieldSpec("gross_total", "Gross total", "amount"),
    )
}
assert tuple(SPECS) == FIELDS, "keep the correctable fields in step with the extractor's"


def read(canonical: dict[str, Any], name: str) -> str | None:
    """A field's current value in a canonical document (JSON form), as text."""
    supplier = canonical.get("supplier") or {}
    totals = canonical.get("totals") or {}
    payment = canonical.get("payment") or {}
    value: Any = {
        "supplier_name": supplier.get("name"),
        "supplier_vat_id": supplier.get("vat_id"),
        "iban": payment.get("iban") or supplier.get("iban"),
        "invoice_number": canonical.get("number"),
        "issue_date": canonical.get("issue_date"),
        "due_date": canonical.get("due_date"),
        "po_reference": canonical.get("po_reference"),
        "currency": canonical.get("currency"),
        "net_total": totals.get("tax_exclusive"),
        "tax_total": totals.get("tax"),
        "gross_total": totals.get("tax_inclusive"),
    }[name]
    return None if value is None else str(value)


def clean(name: str, raw: str) -> str | None:
    """The value a clerk typed, normalised for its field; ValueError says what is wrong."""
    spec = SPECS.get(name)
    if spec is None:
        raise ValueError(f"{name!r} is not a field that can be corrected")
    text = raw.strip()
    if not text:
        return None
    if spec.kind == "date":
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(f"{spec.label}: write the date as YYYY-MM-DD") from None
    if spec.kind == "amount":
        try:
            amount = Decimal(text.replace(" ", "").replace(",", ""))
        except InvalidOperation:
            raise ValueError(f"{spec.label}: write the amount as digits, e.g. 1234.50") from None
        if not amount.is_finite() or abs(amount) >= Decimal("1e15"):
            raise ValueError(f"{spec.label}: {text!r} is not a usable amount")
        return f"{amount:f}"
    if spec.kind == "currency":
        code = text.upper()
        if len(code) != 3 or not code.isalpha():
            raise ValueError(f"{spec.label}: use the three-letter ISO code, e.g. EUR")
        return code
    if spec.kind == "iban":
        return normalise_iban(text)
    if len(text) > 200:
        raise ValueError(f"{spec.label}: at most 200 characters")
    return text


def write(canonical: dict[str, Any], name: str, value: str | None) -> dict[str, Any]:
    """A copy of a canonical document (JSON form) with one field set."""
    doc = {**canonical}
    if name in ("supplier_name", "supplier_vat_id"):
        doc["supplier"] = {**(doc.get("supplier") or {}), name.removeprefix("supplier_"): value}
    elif name == "iban":
        # The payment details win when both are present (SupplierDocument.bank_iban).
        if (doc.get("payment") or {}).get("iban"):
            doc["payment"] = {**doc["payment"], "iban": value}
        else:
            doc["supplier"] = {**(doc.get("supplier") or {}), "iban": value}
    elif name in ("net_total", "tax_total", "gross_total"):
        key = {"net_total": "tax_exclusive", "tax_total": "tax", "gross_total": "tax_inclusive"}
        doc["totals"] = {**(doc.get("totals") or {}), key[name]: value}
    else:
        doc[{"invoice_number": "number"}.get(name, name)] = value
    return doc
