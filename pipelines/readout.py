"""What `tollgate parse` prints for a document: stable, documented keys for people and scripts.

One record per document read (a bulk CSV file gives several):

- `file`: the path given; `index`: the document's position in the file (0 unless a CSV);
- `format`: what was detected (`ubl_invoice`, `cii`, `facturx_pdf`, `pdf`, `csv`, ...) or null;
- `error`: null, or `{"code", "message"}` with the typed parse error (`CORRUPT_PDF`, ...);
- `fields`: the header fields in FIELD_NAMES, each `{"value", "confidence", "source", "page",
  "span", "label"}`: `source` is `xml` (an e-invoice: exact, confidence 1.0) or `pdf-text`
  (read from the visible text; page, span and label say where); a field not found has value
  null and confidence 0;
- `document`: the canonical document as JSON (kind, parties, lines, tax breakdown, totals);
- `findings`: what the document fails on its own (required fields, EN 16931 arithmetic, VAT),
  each `{"code", "rule_id", "message", "line_id", "expected", "actual", "variance"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.canonical import Claim, CreditNote, Invoice
from pipelines.extract.lexicon import FIELDS
from pipelines.matching import ToleranceLookup, validate_document
from pipelines.parsers import ParsedDocument
from pipelines.parsers.errors import ParseError

# The header fields the PDF extractor reads, and so the ones every record reports.
FIELD_NAMES = FIELDS

Document = Invoice | CreditNote | Claim
_FROM_DOCUMENT: dict[str, Callable[[Document], object]] = {
    "supplier_name": lambda d: d.supplier.name,
    "supplier_vat_id": lambda d: d.supplier.vat_id,
    "iban": lambda d: d.bank_iban,
    "invoice_number": lambda d: d.number,
    "issue_date": lambda d: d.issue_date,
    "due_date": lambda d: d.due_date,
    "po_reference": lambda d: d.po_reference,
    "currency": lambda d: d.currency,
    "net_total": lambda d: d.totals.tax_exclusive,
    "tax_total": lambda d: d.totals.tax,
    "gross_total": lambda d: d.gross,
}


def _field(value: object, confidence: float, source: str, **where: object) -> dict[str, Any]:
    return {
        "value": None if value is None else str(value),
        "confidence": confidence,
        "source": source,
        "page": where.get("page"),
        "span": where.get("span"),
        "label": where.get("label"),
    }


def fields_of(parsed: ParsedDocument) -> dict[str, dict[str, Any]]:
    """Every header field of FIELD_NAMES with its confidence and provenance."""
    out: dict[str, dict[str, Any]] = {}
    for name in FIELD_NAMES:
        if parsed.fields is None:
            value = _FROM_DOCUMENT[name](parsed.document)
            out[name] = _field(value, 1.0 if value is not None else 0.0, "xml")
            continue
        reading = parsed.fields.get(name)
        if reading is None:
            out[name] = _field(None, 0.0, "pdf-text")
        else:
            out[name] = _field(
                reading.get("value"),
                float(reading.get("confidence") or 0.0),
                "pdf-text",
                page=reading.get("page"),
                span=reading.get("span"),
                label=reading.get("label"),
            )
    return out


def record(
    file: str,
    outcome: ParsedDocument | ParseError,
    tolerances: ToleranceLookup,
    index: int = 0,
) -> dict[str, Any]:
    """The record `tollgate parse` prints for one document (see the module docstring)."""
    if isinstance(outcome, ParseError):
        return {
            "file": file,
            "index": index,
            "format": None,
            "error": {"code": str(outcome.code), "message": outcome.message},
            "fields": None,
            "document": None,
            "findings": [],
        }
    findings = validate_document(outcome.document, tolerances)
    return {
        "file": file,
        "index": index,
        "format": str(outcome.format),
        "error": None,
        "fields": fields_of(outcome),
        "document": outcome.document.model_dump(mode="json"),
        "findings": [
            {
                "code": str(f.code),
                "rule_id": f.rule_id,
                "message": f.message,
                "line_id": f.line_id,
                "expected": None if f.expected is None else str(f.expected),
                "actual": None if f.actual is None else str(f.actual),
                "variance": None if f.variance is None else str(f.variance),
            }
            for f in findings
        ],
    }


def csv_row(rec: dict[str, Any]) -> dict[str, Any]:
    """One spreadsheet row: file, format, error, kind, then each field and its confidence."""
    row: dict[str, Any] = {
        "file": rec["file"],
        "index": rec["index"],
        "format": rec["format"] or "",
        "error_code": rec["error"]["code"] if rec["error"] else "",
        "kind": rec["document"]["kind"] if rec["document"] else "",
        "findings": " ".join(sorted({f["code"] for f in rec["findings"]})),
    }
    for name in FIELD_NAMES:
        field = (rec["fields"] or {}).get(name) or {}
        row[name] = field.get("value") or ""
        row[f"{name}_confidence"] = field.get("confidence", "")
    return row


CSV_COLUMNS = (
    "file",
    "index",
    "format",
    "error_code",
    "kind",
    "findings",
    *(column for name in FIELD_NAMES for column in (name, f"{name}_confidence")),
)
