"""Read Tollgate's bulk CSV: many invoices, credit notes and claims in one UTF-8 file.

One row per document line; the document's header fields are repeated on every one of its rows.
Rows are grouped into documents by document_type + number + supplier (VAT id, else name), so a
file may hold any number of documents and their rows need not be adjacent. Comma (RFC 4180) is
the written delimiter; `;` and tab are accepted on reading, as is a UTF-8 byte-order mark.

Columns (header row required; `document_type` and `number` are mandatory, any other column may
be left out; unknown columns are refused so a misspelt header never silently drops data):

| column              | meaning                                                            |
|---------------------|--------------------------------------------------------------------|
| `document_type`     | `invoice`, `credit_note` or `claim`                                |
| `number`            | the supplier's document number                                     |
| `issue_date`        | ISO date, `YYYY-MM-DD`                                             |
| `due_date`          | ISO date                                                           |
| `currency`          | ISO 4217 code, e.g. `EUR`                                          |
| `supplier_name`     | seller name                                                        |
| `supplier_vat_id`   | seller VAT id                                                      |
| `supplier_iban`     | IBAN the seller asks to be paid to                                 |
| `buyer_name`        | buyer name                                                         |
| `buyer_vat_id`      | buyer VAT id                                                       |
| `po_reference`      | purchase order number                                              |
| `billing_reference` | credit notes and claims: the invoice number they refer to          |
| `claim_reason`      | claims only: why the supplier claims                               |
| `record`            | `line` (default when `line_id` is set), `charge` or `allowance`    |
|                     | (a document-level charge such as freight, or a discount), or empty |
|                     | on the single row of a document with neither                       |
| `line_id`           | line number within the document                                    |
| `item_id`           | seller's item id                                                   |
| `po_line_ref`       | the PO line this line bills                                        |
| `description`       | line text; for charge/allowance rows, the reason                   |
| `quantity`          | billed quantity                                                    |
| `unit_code`         | UN/ECE Rec. 20 unit (default `C62`)                                |
| `unit_price`        | net price per `price_base_quantity` units                          |
| `price_base_quantity` | default 1                                                        |
| `line_amount`       | net line amount; for charge/allowance rows, their amount           |
| `line_allowances`   | lines: sum of the line's allowances (BG-27), already deducted in   |
|                     | `line_amount`; default 0                                           |
| `line_charges`      | lines: sum of the line's charges (BG-28), already added in         |
|                     | `line_amount`; default 0                                           |
| `reason_code`       | charge/allowance rows: UNCL7161 / UNCL5189 code (`FC` = freight)   |
| `tax_category`      | UNCL5305 code (S, Z, E, AE, ...)                                   |
| `tax_rate`          | percent, e.g. `19`                                                 |
| `kind`              | goods, service, freight, surcharge, discount (derived from the     |
|                     | description when empty)                                            |
| `line_total`        | header: sum of line net amounts (BT-106)                           |
| `allowances`        | header: document-level allowances total (BT-107)                   |
| `charges`           | header: document-level charges total, e.g. freight (BT-108)        |
| `net_total`         | header: total without tax (BT-109)                                 |
| `tax_total`         | header: tax total (BT-110)                                         |
| `gross_total`       | header: total with tax (BT-112)                                    |
| `payable`           | header: amount due (BT-115)                                        |

Numbers are strict: digits with an optional sign and a `.` decimal point; no thousands
separators, no decimal comma, no exponent. An empty cell is "not given". Every unreadable value
is a ParseError INVALID_VALUE naming the row (the header is row 1, as in a spreadsheet) and the
column. Not carried: addresses, payment details other than the IBAN, VAT breakdown, notes.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from pipelines.canonical import (
    AllowanceCharge,
    Claim,
    CreditNote,
    DocumentLine,
    DocumentTotals,
    Invoice,
    LineKind,
    Party,
    SourceFormat,
)
from pipelines.parsers.common import line_kind
from pipelines.parsers.errors import ParseError, ParseErrorCode

if TYPE_CHECKING:
    from pipelines.parsers import ParseLimits

Document = Invoice | CreditNote | Claim

HEADER_COLUMNS: tuple[str, ...] = (
    "document_type",
    "number",
    "issue_date",
    "due_date",
    "currency",
    "supplier_name",
    "supplier_vat_id",
    "supplier_iban",
    "buyer_name",
    "buyer_vat_id",
    "po_reference",
    "billing_reference",
    "claim_reason",
    "line_total",
    "allowances",
    "charges",
    "net_total",
    "tax_total",
    "gross_total",
    "payable",
)
ROW_COLUMNS: tuple[str, ...] = (
    "record",
    "line_id",
    "item_id",
    "po_line_ref",
    "description",
    "quantity",
    "unit_code",
    "unit_price",
    "price_base_quantity",
    "line_amount",
    "line_allowances",
    "line_charges",
    "reason_code",
    "tax_category",
    "tax_rate",
    "kind",
)
# Header fields first, then the per-row ones: the order the writer uses.
COLUMNS: tuple[str, ...] = HEADER_COLUMNS[:13] + ROW_COLUMNS + HEADER_COLUMNS[13:]
REQUIRED_COLUMNS = frozenset({"document_type", "number"})

DOCUMENT_TYPES: dict[str, type[Document]] = {
    "invoice": Invoice,
    "credit_note": CreditNote,
    "claim": Claim,
}
RECORDS = ("line", "charge", "allowance")

_DELIMITERS = (",", ";", "\t")
# A plain decimal; length-capped so a hostile cell cannot make Decimal arithmetic expensive.
_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_MAX_NUMBER_CHARS = 40
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_CURRENCY = re.compile(r"[A-Z]{3}")
# Control characters no real export holds; refused here because XML (the UBL export to the ERP)
# cannot carry them either. Tab and line breaks are fine inside a description.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The csv module's own per-field bound; far above any real description.
_MAX_FIELD_CHARS = 64 * 1024


def _invalid(row: int, column: str, value: str, expected: str) -> ParseError:
    shown = value if len(value) <= 40 else value[:40] + "..."
    return ParseError(
        ParseErrorCode.INVALID_VALUE,
        f"Row {row}, column {column}: {shown!r} is not {expected}. Correct the file and upload "
        "it again.",
        detail=f"row={row};column={column}",
    )


class _Row:
    """One CSV record with typed accessors that name row and column in their errors."""

    def __init__(self, number: int, cells: dict[str, str]) -> None:
        self.number = number
        self.cells = cells

    def text(self, column: str) -> str | None:
        value = self.cells.get(column, "").strip()
        if _CONTROL.search(value):
            raise _invalid(self.number, column, value, "free of control characters")
        return value or None

    def decimal(self, column: str) -> Decimal | None:
        value = self.text(column)
        if value is None:
            return None
        if len(value) > _MAX_NUMBER_CHARS or not _DECIMAL.fullmatch(value):
            raise _invalid(
                self.number,
                column,
                value,
                "a plain number (digits, optional sign, '.' as decimal point, "
                "no thousands separators)",
            )
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern already excludes these
            raise _invalid(self.number, column, value, "a number") from None

    def required_decimal(self, column: str) -> Decimal:
        value = self.decimal(column)
        if value is None:
            raise _invalid(self.number, column, "", "given (it is required on a line)")
        return value

    def date(self, column: str) -> date | None:
        value = self.text(column)
        if value is None:
            return None
        if not _DATE.fullmatch(value):
            raise _invalid(self.number, column, value, "an ISO date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise _invalid(self.number, column, value, "a valid calendar date") from None

    def choice(self, column: str, allowed: tuple[str, ...]) -> str | None:
        value = self.text(column)
        if value is None:
            return None
        if value.lower() not in allowed:
            raise _invalid(self.number, column, value, "one of " + ", ".join(allowed))
        return value.lower()


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"The CSV file is not UTF-8 (byte {exc.start} cannot be read). Export it as UTF-8.",
            detail=f"offset={exc.start}",
        ) from None


def _header_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    return max(_DELIMITERS, key=first.count)


def read_header(data: bytes) -> list[str] | None:
    """The column names of Tollgate's CSV column set from the first line, else None."""
    head = data[:8192]
    text = head.decode("utf-8-sig", errors="replace").lstrip("\ufeff")
    first = text.split("\n", 1)[0].rstrip("\r")
    delimiter = max(_DELIMITERS, key=first.count)
    try:
        names = next(csv.reader([first], delimiter=delimiter))
    except (csv.Error, StopIteration):
        return None
    names = [name.strip().lower() for name in names]
    if not set(names) >= REQUIRED_COLUMNS or not set(names) <= set(COLUMNS):
        return None
    return names


def _records(text: str, limits: ParseLimits) -> Iterator[_Row]:
    delimiter = _header_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    previous_limit = csv.field_size_limit()
    csv.field_size_limit(_MAX_FIELD_CHARS)
    try:
        try:
            header = [name.strip().lower() for name in next(reader)]
        except StopIteration:
            raise ParseError(ParseErrorCode.EMPTY, "The CSV file has no header row.") from None
        unknown = [name for name in header if name not in COLUMNS]
        if unknown:
            raise ParseError(
                ParseErrorCode.INVALID_VALUE,
                f"Row 1: unknown column(s) {', '.join(map(repr, unknown))}. The columns are: "
                + ", ".join(COLUMNS)
                + ".",
                detail="row=1;column=" + unknown[0],
            )
        missing = sorted(REQUIRED_COLUMNS - set(header))
        if missing:
            raise ParseError(
                ParseErrorCode.INVALID_VALUE,
                f"Row 1: the column(s) {', '.join(missing)} are required.",
                detail="row=1;column=" + missing[0],
            )
        duplicated = sorted({name for name in header if header.count(name) > 1})
        if duplicated:
            raise ParseError(
                ParseErrorCode.INVALID_VALUE,
                f"Row 1: the column(s) {', '.join(duplicated)} appear more than once.",
                detail="row=1;column=" + duplicated[0],
            )
        number = 1
        for cells in reader:
            number += 1
            if number - 1 > limits.max_csv_rows:
                raise ParseError(
                    ParseErrorCode.TOO_LARGE,
                    f"The CSV file has more than {limits.max_csv_rows:,} rows; split it.",
                )
            if not any(cell.strip() for cell in cells):
                continue  # blank lines between documents are harmless
            if len(cells) != len(header):
                raise ParseError(
                    ParseErrorCode.INVALID_VALUE,
                    f"Row {number} has {len(cells)} cells but the header has {len(header)} "
                    "columns (check quoting and the delimiter).",
                    detail=f"row={number}",
                )
            yield _Row(number, dict(zip(header, cells, strict=True)))
    except csv.Error as exc:
        raise ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"Row {number + 1}: the CSV cannot be read ({exc}). Check the quoting.",
            detail=f"row={number + 1}",
        ) from None
    finally:
        csv.field_size_limit(previous_limit)


def _group_key(row: _Row) -> tuple[str, str, str]:
    document_type = row.choice("document_type", tuple(DOCUMENT_TYPES))
    if document_type is None:
        raise _invalid(row.number, "document_type", "", "given (invoice, credit_note or claim)")
    number = row.text("number")
    if number is None:
        raise _invalid(row.number, "number", "", "given (rows are grouped by document number)")
    vat_id = row.text("supplier_vat_id")
    supplier = vat_id.upper().replace(" ", "") if vat_id else (row.text("supplier_name") or "")
    return document_type, number, supplier.casefold()


def _line(row: _Row) -> DocumentLine:
    line_id = row.text("line_id")
    if line_id is None:
        raise _invalid(row.number, "line_id", "", "given (it is required on a line)")
    kind_text = row.choice("kind", tuple(kind.value for kind in LineKind))
    description = row.text("description")
    fields: dict[str, Any] = {
        "line_id": line_id,
        "item_id": row.text("item_id"),
        "po_line_ref": row.text("po_line_ref"),
        "description": description,
        "quantity": row.required_decimal("quantity"),
        "unit_price": row.required_decimal("unit_price"),
        "line_amount": row.required_decimal("line_amount"),
        "allowances": row.decimal("line_allowances") or Decimal(0),
        "charges": row.decimal("line_charges") or Decimal(0),
        "tax_category": row.text("tax_category"),
        "tax_rate": row.decimal("tax_rate"),
        "kind": LineKind(kind_text) if kind_text else line_kind(description, row.text("item_id")),
    }
    unit_code = row.text("unit_code")
    if unit_code is not None:
        if len(unit_code) > 8:
            raise _invalid(row.number, "unit_code", unit_code, "a unit code of 1 to 8 characters")
        fields["unit_code"] = unit_code
    base = row.decimal("price_base_quantity")
    if base is not None:
        if base <= 0:
            raise _invalid(row.number, "price_base_quantity", str(base), "a positive number")
        fields["price_base_quantity"] = base
    return DocumentLine(**fields)


def _allowance_charge(row: _Row, is_charge: bool) -> AllowanceCharge:
    return AllowanceCharge(
        is_charge=is_charge,
        amount=row.required_decimal("line_amount"),
        reason=row.text("description"),
        reason_code=row.text("reason_code"),
        tax_category=row.text("tax_category"),
        tax_rate=row.decimal("tax_rate"),
    )


def _document(rows: list[_Row]) -> Document:
    first = rows[0]
    # Header fields must agree on every row, or the file was assembled wrongly.
    for row in rows[1:]:
        for column in HEADER_COLUMNS:
            if (row.text(column) or "") != (first.text(column) or ""):
                raise _invalid(
                    row.number,
                    column,
                    row.text(column) or "",
                    f"the same as on row {first.number} ({first.text(column) or ''!r}), "
                    "where this document starts",
                )
    document_type = first.choice("document_type", tuple(DOCUMENT_TYPES))
    assert document_type is not None  # _group_key checked it
    currency = first.text("currency")
    if currency is not None and not _CURRENCY.fullmatch(currency):
        raise _invalid(first.number, "currency", currency, "an ISO 4217 code such as EUR")
    lines: list[DocumentLine] = []
    allowance_charges: list[AllowanceCharge] = []
    for row in rows:
        record = row.choice("record", RECORDS)
        if record is None and row.text("line_id") is not None:
            record = "line"
        if record == "line":
            lines.append(_line(row))
        elif record is not None:
            allowance_charges.append(_allowance_charge(row, is_charge=record == "charge"))
        elif len(rows) > 1:
            raise _invalid(row.number, "record", "", "given: line, charge or allowance")
    totals = DocumentTotals(
        line_extension=first.decimal("line_total"),
        allowances=first.decimal("allowances") or Decimal(0),
        charges=first.decimal("charges") or Decimal(0),
        tax_exclusive=first.decimal("net_total"),
        tax=first.decimal("tax_total"),
        tax_inclusive=first.decimal("gross_total"),
        payable=first.decimal("payable"),
    )
    fields: dict[str, Any] = {
        "number": first.text("number"),
        "issue_date": first.date("issue_date"),
        "due_date": first.date("due_date"),
        "currency": currency,
        "supplier": Party(
            name=first.text("supplier_name"),
            vat_id=first.text("supplier_vat_id"),
            iban=first.text("supplier_iban"),
        ),
        "buyer": Party(name=first.text("buyer_name"), vat_id=first.text("buyer_vat_id")),
        "po_reference": first.text("po_reference"),
        "lines": lines,
        "allowance_charges": allowance_charges,
        "totals": totals,
        "source_format": SourceFormat.CSV,
    }
    for column in ("billing_reference", "claim_reason"):
        value = first.text(column)
        if value is not None:
            owner = "claim" if column == "claim_reason" else "credit_note or claim"
            if document_type not in owner.split(" or "):
                raise _invalid(first.number, column, value, f"empty on a {document_type}")
            fields[column] = value
    try:
        return DOCUMENT_TYPES[document_type](**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        raise ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"Rows {first.number}-{rows[-1].number}: {where}: {error['msg']}.",
            detail=f"row={first.number};field={where}",
        ) from None


def read_csv(data: bytes, limits: ParseLimits) -> list[Document]:
    """Read every document in a Tollgate bulk CSV, in order of first appearance."""
    if len(data) > limits.max_bytes:
        raise ParseError(
            ParseErrorCode.TOO_LARGE,
            f"The CSV file is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes.",
        )
    groups: dict[tuple[str, str, str], list[_Row]] = {}
    for row in _records(_decode(data), limits):
        groups.setdefault(_group_key(row), []).append(row)
    return [_document(rows) for rows in groups.values()]


def split_csv(data: bytes, limits: ParseLimits) -> list[tuple[str, bytes]]:
    """One single-document CSV (the header and that document's rows) per document in `data`.

    Bulk intake stores each document of a file on its own, content-addressed like any upload:
    the rows are copied as they were, so what is stored is exactly what the supplier sent.
    Each part is named `<document_type> <number>`.
    """
    if len(data) > limits.max_bytes:
        raise ParseError(
            ParseErrorCode.TOO_LARGE,
            f"The CSV file is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes.",
        )
    header: list[str] | None = None
    groups: dict[tuple[str, str, str], list[_Row]] = {}
    for row in _records(_decode(data), limits):
        header = header or list(row.cells)
        groups.setdefault(_group_key(row), []).append(row)
    parts = []
    for (document_type, number, _supplier), rows in groups.items():
        out = io.StringIO(newline="")
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(header or [])
        writer.writerows([row.cells[name] for name in row.cells] for row in rows)
        parts.append((f"{document_type} {number}", out.getvalue().encode("utf-8")))
    return parts
