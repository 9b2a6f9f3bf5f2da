"""Bulk CSV intake: round trip, grouping, delimiters, strict values, detection, parse_documents."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import pytest

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
from pipelines.parsers import ParseLimits, parse_document, parse_documents
from pipelines.parsers.csv_invoices import COLUMNS, read_csv, split_csv
from pipelines.parsers.detect import DetectedFormat, detect_format
from pipelines.parsers.errors import ParseError, ParseErrorCode
from pipelines.writers.csv_invoices import write_csv

LIMITS = ParseLimits()
SUPPLIER = Party(name="Acme GmbH", vat_id="DE123456789", iban="DE02120300000000202051")
BUYER = Party(name="Tollgate Buyer AG", vat_id="DE987654321")


def _samples() -> list[Invoice | CreditNote | Claim]:
    invoice = Invoice(
        number="INV-1001",
        issue_date=date(2024, 3, 1),
        due_date=date(2024, 3, 31),
        currency="EUR",
        supplier=SUPPLIER,
        buyer=BUYER,
        po_reference="PO-77",
        lines=[
            DocumentLine(
                line_id="1",
                item_id="BOLT-8",
                po_line_ref="10",
                description='Bolts M8, "zinc", 100 per box\nsecond line of text',
                quantity=Decimal("12"),
                unit_code="BX",
                unit_price=Decimal("4.50"),
                price_base_quantity=Decimal("1"),
                tax_category="S",
                tax_rate=Decimal("19"),
                line_amount=Decimal("54.00"),
            ),
            DocumentLine(
                line_id="2",
                description="Freight",
                quantity=Decimal("1"),
                unit_price=Decimal("12.50"),
                tax_category="S",
                tax_rate=Decimal("19"),
                line_amount=Decimal("12.50"),
                kind=LineKind.FREIGHT,
            ),
        ],
        allowance_charges=[
            AllowanceCharge(
                is_charge=True,
                amount=Decimal("7.00"),
                reason="Freight; express",
                reason_code="FC",
                tax_category="S",
                tax_rate=Decimal("19"),
            ),
            AllowanceCharge(is_charge=False, amount=Decimal("1.00"), reason="Loyalty"),
        ],
        totals=DocumentTotals(
            line_extension=Decimal("66.50"),
            allowances=Decimal("1.00"),
            charges=Decimal("7.00"),
            tax_exclusive=Decimal("72.50"),
            tax=Decimal("13.78"),
            tax_inclusive=Decimal("86.28"),
            payable=Decimal("86.28"),
        ),
        source_format=SourceFormat.CSV,
    )
    credit = CreditNote(
        number="CN-5",
        issue_date=date(2024, 3, 5),
        currency="EUR",
        supplier=SUPPLIER,
        billing_reference="INV-1001",
        lines=[
            DocumentLine(
                line_id="1",
                item_id="BOLT-8",
                description="Returned bolts",
                quantity=Decimal("2"),
                unit_code="BX",
                unit_price=Decimal("4.50"),
                line_amount=Decimal("9.00"),
                tax_category="S",
                tax_rate=Decimal("19.0"),
            )
        ],
        totals=DocumentTotals(tax_exclusive=Decimal("9.00"), payable=Decimal("10.71")),
        source_format=SourceFormat.CSV,
    )
    claim = Claim(
        number="CL-9",
        currency="USD",
        supplier=Party(name="No VAT Supplier Ltd"),
        billing_reference="INV-1001",
        claim_reason="Price protection",
        totals=DocumentTotals(payable=Decimal("-0.005")),
        source_format=SourceFormat.CSV,
    )
    # Same number as the invoice, other supplier: a distinct document.
    other = Invoice(
        number="INV-1001",
        supplier=Party(name="Other Supplier", vat_id="FR11222333444"),
        lines=[
            DocumentLine(
                line_id="A",
                quantity=Decimal("0.001"),
                unit_price=Decimal("1000"),
                line_amount=Decimal("1"),
            )
        ],
        source_format=SourceFormat.CSV,
    )
    return [invoice, credit, claim, other]


def test_round_trip_gives_back_the_documents() -> None:
    originals = _samples()
    data = write_csv(originals)
    assert data.decode("utf-8").splitlines()[0] == ",".join(COLUMNS)
    assert b"\r\n" in data and not data.startswith(b"\xef\xbb\xbf")
    assert read_csv(data, LIMITS) == originals


def test_split_gives_one_readable_csv_per_document() -> None:
    originals = _samples()
    rows = list(csv.reader(io.StringIO(write_csv(originals).decode())))
    semicolons = io.StringIO()
    csv.writer(semicolons, delimiter=";").writerows(rows)
    # Semicolons on input: the parts are written back in the standard comma form.
    parts = split_csv(semicolons.getvalue().encode(), LIMITS)
    assert [name for name, _ in parts] == [f"{d.kind} {d.number}" for d in originals]
    assert [parse_document(part).document for _, part in parts] == originals


def test_split_refuses_what_read_refuses() -> None:
    with pytest.raises(ParseError) as caught:
        split_csv(b"document_type,number,colour\ninvoice,1,red\n", LIMITS)
    assert caught.value.code is ParseErrorCode.INVALID_VALUE


def test_decimal_precision_survives_as_written() -> None:
    back = read_csv(write_csv(_samples()), LIMITS)
    assert str(back[1].lines[0].tax_rate) == "19.0"
    assert str(back[0].lines[0].unit_price) == "4.50"


def test_semicolon_delimiter_bom_and_interleaved_rows() -> None:
    text = (
        "\ufeffdocument_type;number;supplier_name;line_id;quantity;unit_price;line_amount;"
        "description\r\n"
        "invoice;A-1;Acme;1;1;10;10;Shipping costs\r\n"
        "invoice;B-2;Acme;1;2;5;10;Widget\r\n"
        "invoice;A-1;Acme;2;3;1.5;4.5;Widget\r\n"
    )
    docs = read_csv(text.encode("utf-8"), LIMITS)
    assert [d.number for d in docs] == ["A-1", "B-2"]
    assert [line.line_id for line in docs[0].lines] == ["1", "2"]
    # An empty kind is derived from the description, as the XML readers do.
    assert docs[0].lines[0].kind is LineKind.FREIGHT
    assert docs[0].lines[1].kind is LineKind.GOODS


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("quantity", "1,5"),
        ("quantity", "1.000,00"),
        ("unit_price", "1e3"),
        ("unit_price", "NaN"),
        ("line_amount", "Infinity"),
        ("line_amount", "12 EUR"),
        ("tax_rate", "19%"),
        ("issue_date", "01.03.2024"),
        ("issue_date", "2024-02-30"),
        ("issue_date", "20240301"),
        ("currency", "eur"),
        ("kind", "gadgets"),
        ("document_type", "order"),
        ("quantity", "1" * 41),
        ("description", "bell\x07"),
        ("supplier_name", "nul\x00byte"),
    ],
)
def test_bad_values_name_row_and_column(column: str, value: str) -> None:
    row = {
        "document_type": "invoice",
        "number": "X-1",
        "line_id": "1",
        "quantity": "1",
        "unit_price": "2",
        "line_amount": "2",
    }
    good = dict(row)
    row[column] = value
    header = sorted(set(row) | {column})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerows([header, [good.get(c, "") for c in header], [row.get(c, "") for c in header]])
    with pytest.raises(ParseError) as caught:
        read_csv(out.getvalue().encode(), LIMITS)
    assert caught.value.code is ParseErrorCode.INVALID_VALUE
    assert "Row 3" in caught.value.message or "Rows 2-3" in caught.value.message
    assert column in caught.value.message


def test_header_fields_must_agree_within_a_document() -> None:
    text = (
        "document_type,number,supplier_name,currency,line_id,quantity,unit_price,line_amount\n"
        "invoice,A-1,Acme,EUR,1,1,1,1\n"
        "invoice,A-1,Acme,USD,2,1,1,1\n"
    )
    with pytest.raises(ParseError) as caught:
        read_csv(text.encode(), LIMITS)
    assert caught.value.detail == "row=3;column=currency"


@pytest.mark.parametrize(
    ("text", "code", "detail"),
    [
        ("document_type,number,colour\ninvoice,1,red\n", ParseErrorCode.INVALID_VALUE, "colour"),
        ("document_type,line_id\ninvoice,1\n", ParseErrorCode.INVALID_VALUE, "number"),
        ("document_type,number,line_id\ninvoice,1,1\n", ParseErrorCode.INVALID_VALUE, "quantity"),
        ("document_type,number\ninvoice,1,extra\n", ParseErrorCode.INVALID_VALUE, "row=2"),
        ('document_type,number\ninvoice,"1\n', ParseErrorCode.INVALID_VALUE, "row="),
        ("document_type,number\ninvoice,\n", ParseErrorCode.INVALID_VALUE, "number"),
        (
            "document_type,number,billing_reference\ninvoice,1,X\n",
            ParseErrorCode.INVALID_VALUE,
            "billing_reference",
        ),
    ],
)
def test_structural_errors_are_typed(text: str, code: ParseErrorCode, detail: str) -> None:
    with pytest.raises(ParseError) as caught:
        read_csv(text.encode(), LIMITS)
    assert caught.value.code is code
    assert detail in (caught.value.detail or "")


def test_not_utf8_and_row_limit() -> None:
    with pytest.raises(ParseError) as caught:
        read_csv(b"document_type,number,supplier_name\ninvoice,1,M\xfcller\n", LIMITS)
    assert caught.value.code is ParseErrorCode.INVALID_VALUE
    rows = "".join(f"invoice,{i}\n" for i in range(11))
    with pytest.raises(ParseError) as caught:
        read_csv(f"document_type,number\n{rows}".encode(), ParseLimits(max_csv_rows=10))
    assert caught.value.code is ParseErrorCode.TOO_LARGE


def test_writer_refuses_what_the_reader_would_merge_or_cannot_group() -> None:
    invoice = _samples()[0]
    with pytest.raises(ValueError, match="twice"):
        write_csv([invoice, invoice])
    with pytest.raises(ValueError, match="number"):
        write_csv([Invoice()])


def test_detection_recognises_the_column_set() -> None:
    one_row = write_csv(_samples()[2:3])
    assert len(one_row.splitlines()) == 2
    assert detect_format(one_row) is DetectedFormat.CSV
    # Multi-line quoted descriptions confuse the generic heuristic, not the column set.
    assert detect_format(write_csv(_samples()[:1])) is DetectedFormat.CSV
    assert detect_format(b"\xef\xbb\xbfdocument_type;number\n") is DetectedFormat.CSV


def test_parse_documents_and_parse_document() -> None:
    samples = _samples()
    parsed = parse_documents(write_csv(samples))
    assert [p.document for p in parsed] == samples
    assert {p.format for p in parsed} == {DetectedFormat.CSV}
    single = parse_document(write_csv(samples[1:2]))
    assert single.document == samples[1]
    with pytest.raises(ParseError) as caught:
        parse_document(write_csv(samples))
    assert caught.value.code is ParseErrorCode.UNSUPPORTED_DOCUMENT
    with pytest.raises(ParseError) as caught:
        parse_documents(b"document_type,number\n")
    assert caught.value.code is ParseErrorCode.EMPTY
    # A CSV in some other column set is still an unsupported format, as before.
    with pytest.raises(ParseError) as caught:
        parse_documents(b"invoice_no;date;amount\nA-1;2024-01-02;100.00\n")
    assert caught.value.code is ParseErrorCode.UNSUPPORTED_FORMAT


def test_parse_documents_gives_one_for_xml() -> None:
    ubl = (
        b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
        b'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
        b"<cbc:ID>U-1</cbc:ID></Invoice>"
    )
    parsed = parse_documents(ubl)
    assert len(parsed) == 1 and parsed[0].document.number == "U-1"
