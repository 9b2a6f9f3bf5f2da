"""Supplier hints that apply: learned from one corrected document, used on the next ones.

The supplier drawn here (fpdf2) prints its invoice number under a label no lexicon knows
("Docket"). Without a hint the number is missed; after `learn` from one clerk correction,
stored as JSON and read back, the next documents of that supplier are read right, in process
(`parse_document`) and in the sandboxed worker pool.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import pytest
from fpdf import FPDF

from pipelines.extract import SupplierHint, extract_pdf
from pipelines.parsers import parse_document
from pipelines.parsers.errors import ParseError
from pipelines.parsers.sandbox import SandboxLimits, SandboxPool

SUPPLIER = "Quirky Tools Ltd"


def docket_invoice(number: str, issued: date, net: Decimal) -> bytes:
    """One invoice of the supplier's layout: an unknown label for the invoice number."""
    tax = (net * Decimal("0.20")).quantize(Decimal("0.01"))
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    texts = [
        (50, 60, SUPPLIER),
        (50, 74, "12 Mill Lane, Leeds LS3 4BT"),
        (50, 150, "Bill to"),
        (50, 164, "Harbour Foods plc"),
        (350, 150, "Docket"),
        (430, 150, number),
        (350, 164, "Date"),
        (430, 164, issued.strftime("%d/%m/%Y")),
        (50, 300, "Net total"),
        (430, 300, f"GBP {net:,.2f}"),
        (50, 314, "VAT 20%"),
        (430, 314, f"GBP {tax:,.2f}"),
        (50, 328, "Total due"),
        (430, 328, f"GBP {net + tax:,.2f}"),
        (50, 780, "VAT No GB123456789"),
    ]
    for x, y, text in texts:
        pdf.text(x, y, text)
    return bytes(pdf.output())


DOCUMENTS = [
    ("DK-4471", date(2026, 3, 5), Decimal("100.00")),
    ("DK-4502", date(2026, 3, 19), Decimal("2480.50")),
    ("DK-4630", date(2026, 4, 2), Decimal("75.10")),
]


def test_the_unknown_label_is_missed_without_a_hint() -> None:
    for number, issued, net in DOCUMENTS:
        extraction = extract_pdf(docket_invoice(number, issued, net))
        assert extraction.value("invoice_number") != number
        # The rest of the layout is ordinary: the hint is needed for the one odd label only.
        assert extraction.value("issue_date") == issued
        assert extraction.value("net_total") == net


def learned_hint() -> SupplierHint:
    """The hint after a clerk corrected the first document's number, stored and read back."""
    number, issued, net = DOCUMENTS[0]
    first = extract_pdf(docket_invoice(number, issued, net))
    hint = SupplierHint(SUPPLIER).learn(first, "invoice_number", number)
    assert hint.labels == {"Docket": "invoice_number"}
    stored = hint.to_json()
    return SupplierHint.from_json(stored)


def test_after_one_correction_the_next_documents_are_read_right() -> None:
    hint = learned_hint()
    for number, issued, net in DOCUMENTS[1:]:
        parsed = parse_document(docket_invoice(number, issued, net), hint=hint)
        assert parsed.document.number == number
        assert parsed.fields is not None
        assert parsed.fields["invoice_number"]["label"] == "Docket"
        # Without the hint the same call still misses it: the hint is what changed.
        assert parse_document(docket_invoice(number, issued, net)).document.number != number


def test_a_canonical_value_teaches_the_label_of_its_printed_form() -> None:
    # Clerks enter canonical values (ISO dates, plain decimals), not the printed text.
    number, issued, net = DOCUMENTS[0]
    first = extract_pdf(docket_invoice(number, issued, net))
    hint = SupplierHint(SUPPLIER).learn(first, "issue_date", issued)
    assert hint.labels == {"Date": "issue_date"}
    assert SupplierHint(SUPPLIER).learn(first, "issue_date", "2026-03-05").labels == hint.labels
    assert SupplierHint(SUPPLIER).learn(first, "gross_total", "120.00").labels == {
        "Total due": "gross_total"
    }


def test_hint_json_round_trip_and_refusals() -> None:
    hint = SupplierHint(SUPPLIER, {"Docket": "invoice_number", "Raised": "issue_date"})
    assert SupplierHint.from_json(hint.to_json()) == hint
    assert SupplierHint.from_json(hint.to_json().encode()) == hint
    for bad in (
        "not json",
        "[]",
        '{"supplier": "x", "labels": {}}',  # no version
        '{"version": 1, "supplier": "x", "labels": {"Docket": "colour"}}',
        '{"version": 1, "supplier": 3, "labels": {}}',
        '{"version": 1, "supplier": "x", "labels": {"": "invoice_number"}}',
    ):
        with pytest.raises(ValueError):
            SupplierHint.from_json(bad)


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    with SandboxPool(SandboxLimits(wall_seconds=30), workers=1) as sandbox:
        yield sandbox


def test_the_hint_reaches_extraction_in_the_sandbox(pool: SandboxPool) -> None:
    hint = learned_hint()
    for number, issued, net in DOCUMENTS[1:]:
        data = docket_invoice(number, issued, net)
        taught = pool.parse(data, hint)
        assert not isinstance(taught, ParseError)
        assert taught[0].document.number == number
        plain = pool.parse(data)  # the same worker, no hint: nothing learned sticks to it
        assert not isinstance(plain, ParseError)
        assert plain[0].document.number != number


def test_learning_reads_the_pdf_in_the_sandbox_too(pool: SandboxPool) -> None:
    number, issued, net = DOCUMENTS[0]
    first = docket_invoice(number, issued, net)
    learned = pool.learn(first, SupplierHint(SUPPLIER), "invoice_number", number)
    assert learned == SupplierHint(SUPPLIER, {"Docket": "invoice_number"})
    # A canonical value (what a clerk types) finds its printed form: "05/03/2026".
    dated = pool.learn(first, learned, "issue_date", issued.isoformat())
    assert not isinstance(dated, ParseError)
    assert dated.labels == {"Docket": "invoice_number", "Date": "issue_date"}
    # Not a PDF: a typed error, and the pool keeps working.
    refused = pool.learn(b"<Invoice/>", learned, "invoice_number", number)
    assert isinstance(refused, ParseError)
    again = pool.parse(docket_invoice(*DOCUMENTS[2]), learned)
    assert not isinstance(again, ParseError)
    assert again[0].document.number == DOCUMENTS[2][0]


def test_the_app_parsers_take_the_hint_and_learn() -> None:
    from app.documents.parsing import InProcessParser, SandboxedParser
    from pipelines.parsers import ParseLimits

    number, issued, net = DOCUMENTS[0]
    nxt, nxt_issued, nxt_net = DOCUMENTS[1]
    sandboxed = SandboxedParser(SandboxLimits(wall_seconds=30), workers=1)
    try:
        for parser in (InProcessParser(ParseLimits()), sandboxed):
            first = docket_invoice(number, issued, net)
            hint = parser.learn(first, SupplierHint(SUPPLIER), "invoice_number", number)
            later = parser(docket_invoice(nxt, nxt_issued, nxt_net), hint=hint)
            assert later.document.number == nxt
        with pytest.raises(ParseError):
            sandboxed.learn(b"not a pdf", SupplierHint(SUPPLIER), "invoice_number", number)
    finally:
        sandboxed.close()
