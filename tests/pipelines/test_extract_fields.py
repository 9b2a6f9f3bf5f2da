"""Template-free header extraction on small PDFs written here, text placed at known positions."""

from __future__ import annotations

import io
from collections.abc import Sequence
from datetime import date
from decimal import Decimal

import pytest
from pypdf import PdfWriter

from pipelines.canonical import SourceFormat
from pipelines.extract import ExtractedField, SupplierHint, extract_pdf
from pipelines.parsers.errors import ParseError, ParseErrorCode

Text = tuple[float, float, str]  # x, y (from the bottom), text


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: Sequence[Sequence[Text]], size: int = 10) -> bytes:
    """A minimal PDF (Helvetica, WinAnsi) with each text drawn at its position."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * i for i in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for page_id, texts in zip(page_ids, pages, strict=True):
        ops = "".join(
            f"BT /F1 {size} Tf 1 0 0 1 {x} {y} Tm ({_escape(t)}) Tj ET\n" for x, y, t in texts
        )
        stream = ops.encode("cp1252")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_id + 1} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


GERMAN = [
    (50, 800, "Muster Werkzeuge GmbH - Hauptstr. 5 - 80331 München"),
    (50, 740, "Kunden AG"),
    (50, 728, "Kundenweg 1"),
    (350, 700, "Rechnungsnr.:"),
    (450, 700, "RE-2026-0042"),
    (350, 688, "Rechnungsdatum:"),
    (450, 688, "7. März 2026"),
    (350, 676, "Fällig am:"),
    (450, 676, "06.04.2026"),
    (350, 664, "Ihre Bestellnummer:"),
    (450, 664, "PO-77812"),
    (50, 600, "Pos. Beschreibung Menge Preis Betrag"),
    (50, 585, "1 Schraubenschlüssel 10 100,00 1.000,00"),
    (300, 500, "Nettobetrag"),
    (450, 500, "1.000,00 EUR"),
    (300, 488, "zzgl. 19 % MwSt."),
    (450, 488, "190,00 EUR"),
    (300, 476, "Gesamtbetrag"),
    (450, 476, "1.190,00 EUR"),
    (50, 100, "Muster Werkzeuge GmbH"),
    (50, 88, "USt-IdNr.: DE 123 456 789"),
    (50, 76, "IBAN DE89 3704 0044 0532 0130 00"),
]


def value(fields: dict[str, ExtractedField], name: str) -> object:
    return fields[name].value if name in fields else None


def test_german_invoice_header_and_totals() -> None:
    extraction = extract_pdf(make_pdf([GERMAN]))
    f = extraction.fields
    assert value(f, "invoice_number") == "RE-2026-0042"
    assert value(f, "issue_date") == date(2026, 3, 7)
    assert value(f, "due_date") == date(2026, 4, 6)
    assert value(f, "po_reference") == "PO-77812"
    assert value(f, "currency") == "EUR"
    assert value(f, "net_total") == Decimal("1000.00")
    assert value(f, "tax_total") == Decimal("190.00")
    assert value(f, "gross_total") == Decimal("1190.00")
    assert value(f, "supplier_name") == "Muster Werkzeuge GmbH"
    assert value(f, "supplier_vat_id") == "DE123456789"
    assert value(f, "iban") == "DE89370400440532013000"
    for found in f.values():
        assert 0.0 <= found.confidence <= 1.0
        assert found.page == 0
    assert f["invoice_number"].label == "Rechnungsnr."
    assert f["gross_total"].span == "1.190,00"


def test_values_below_labels_in_a_us_layout() -> None:
    page = [
        (50, 800, "Acme Supplies Inc."),
        (50, 700, "Invoice Date:"),
        (200, 700, "Due Date:"),
        (350, 700, "Invoice #"),
        (50, 688, "03/07/2026"),
        (200, 688, "04/06/2026"),
        (350, 688, "INV/2026/0099"),
        (50, 660, "Billed on 03/15/2026 for services"),
        (300, 500, "Subtotal"),
        (450, 500, "$1,234.50"),
        (300, 488, "Sales Tax"),
        (450, 488, "$98.76"),
        (300, 476, "Total Due"),
        (450, 476, "$1,333.26"),
    ]
    f = extract_pdf(make_pdf([page])).fields
    # 03/15/2026 only reads month first, so the whole document is month first.
    assert value(f, "issue_date") == date(2026, 3, 7)
    assert value(f, "due_date") == date(2026, 4, 6)
    assert value(f, "invoice_number") == "INV/2026/0099"
    assert value(f, "currency") == "USD"
    assert value(f, "gross_total") == Decimal("1333.26")
    assert value(f, "net_total") == Decimal("1234.50")
    assert value(f, "supplier_name") == "Acme Supplies Inc."


def test_french_invoice_with_spaces_in_amounts() -> None:
    page = [
        (50, 800, "Société Exemple SARL - 12 rue de Paris - 75001 Paris"),
        (50, 700, "Facture n° F2026-118 du 7 mars 2026"),
        (50, 680, "Date d'échéance : 06/04/2026"),
        (300, 500, "Total HT"),
        (450, 500, "1 234,56 €"),
        (300, 488, "TVA 20 %"),
        (450, 488, "246,91 €"),
        (300, 476, "Total TTC"),
        (450, 476, "1 481,47 €"),
    ]
    f = extract_pdf(make_pdf([page])).fields
    assert value(f, "invoice_number") == "F2026-118"
    assert value(f, "issue_date") == date(2026, 3, 7)
    assert value(f, "due_date") == date(2026, 4, 6)
    assert value(f, "net_total") == Decimal("1234.56")
    assert value(f, "tax_total") == Decimal("246.91")
    assert value(f, "gross_total") == Decimal("1481.47")
    assert value(f, "currency") == "EUR"
    assert value(f, "supplier_name") == "Société Exemple SARL"


def test_arithmetic_cross_check_picks_the_consistent_total() -> None:
    # Two "Total" labels: a running total (wrong) and the grand total; only the second one
    # satisfies net + tax = gross, so it wins although both labels weigh the same.
    page = [
        (50, 700, "Invoice No: 5521"),
        (300, 520, "Total"),
        (450, 520, "750.00"),
        (300, 500, "Net amount"),
        (450, 500, "1,000.00"),
        (300, 488, "VAT 20%"),
        (450, 488, "200.00"),
        (300, 476, "Total"),
        (450, 476, "1,200.00"),
    ]
    f = extract_pdf(make_pdf([page])).fields
    assert value(f, "gross_total") == Decimal("1200.00")
    assert f["gross_total"].confidence > 0.5


def test_missing_third_total_is_derived_with_lower_confidence() -> None:
    page = [
        (300, 500, "Net total"),
        (450, 500, "100.00"),
        (300, 480, "Amount due"),
        (450, 480, "119.00"),
    ]
    f = extract_pdf(make_pdf([page])).fields
    assert value(f, "tax_total") == Decimal("19.00")
    assert f["tax_total"].confidence < f["gross_total"].confidence
    assert f["tax_total"].span == "gross - net"


def test_known_suppliers_pick_the_master_data_name() -> None:
    page = [
        (50, 800, "MUSTER WERKZEUGE"),
        (50, 700, "Rechnung Nr. 4711"),
    ]
    f = extract_pdf(
        make_pdf([page]), known_suppliers=["Muster-Werkzeuge", "Other Supplier Ltd"]
    ).fields
    assert value(f, "supplier_name") == "Muster-Werkzeuge"


def test_to_invoice_maps_header_and_totals() -> None:
    invoice = extract_pdf(make_pdf([GERMAN])).to_invoice()
    assert invoice.source_format is SourceFormat.PDF
    assert invoice.number == "RE-2026-0042"
    assert invoice.issue_date == date(2026, 3, 7)
    assert invoice.currency == "EUR"
    assert invoice.totals.tax_inclusive == Decimal("1190.00")
    assert invoice.totals.tax_exclusive == Decimal("1000.00")
    assert invoice.supplier.vat_id == "DE123456789"
    assert invoice.bank_iban == "DE89370400440532013000"
    assert invoice.po_reference == "PO-77812"
    assert invoice.lines == []


def test_multi_page_totals_and_page_provenance() -> None:
    first = [(50, 700, "Invoice Number: A-100"), (50, 680, "Invoice Date: 2026-03-07")]
    second = [
        (300, 500, "Subtotal"),
        (450, 500, "10.00"),
        (300, 480, "Grand Total"),
        (450, 480, "12.00"),
    ]
    f = extract_pdf(make_pdf([first, second])).fields
    assert f["invoice_number"].page == 0
    assert f["gross_total"].page == 1
    assert value(f, "gross_total") == Decimal("12.00")


def test_max_pages_bounds_the_pages_read() -> None:
    first = [(50, 700, "Invoice Number: A-100")]
    second = [(300, 480, "Grand Total"), (450, 480, "12.00")]
    f = extract_pdf(make_pdf([first, second]), max_pages=1).fields
    assert "gross_total" not in f
    assert value(f, "invoice_number") == "A-100"


# --- learning from clerk corrections -------------------------------------------------------

ODD_LABELS = [
    (50, 800, "Odd Labels Trading GmbH"),
    (50, 700, "Vorgang"),
    (150, 700, "VG-2026-777"),
    (50, 680, "Ausgestellt"),
    (150, 680, "07.03.2026"),
    (50, 660, "Kundennummer"),
    (150, 660, "K-55512"),
]


def test_supplier_hint_boosts_values_next_to_a_learned_label() -> None:
    plain = extract_pdf(make_pdf([ODD_LABELS]))
    assert value(plain.fields, "invoice_number") != "VG-2026-777"
    hint = SupplierHint("Odd Labels Trading GmbH", {"Vorgang": "invoice_number"})
    taught = extract_pdf(make_pdf([ODD_LABELS]), hint=hint)
    assert value(taught.fields, "invoice_number") == "VG-2026-777"
    assert taught.fields["invoice_number"].label == "Vorgang"


def test_supplier_hint_learns_the_label_from_a_correction() -> None:
    extraction = extract_pdf(make_pdf([ODD_LABELS]))
    hint = SupplierHint("Odd Labels Trading GmbH").learn(extraction, "issue_date", "07.03.2026")
    assert hint.labels == {"Ausgestellt": "issue_date"}
    hint = hint.learn(extraction, "invoice_number", "VG-2026-777")
    assert hint.labels["Vorgang"] == "invoice_number"
    again = extract_pdf(make_pdf([ODD_LABELS]), hint=hint)
    assert value(again.fields, "invoice_number") == "VG-2026-777"
    assert value(again.fields, "issue_date") == date(2026, 3, 7)
    # An unknown field name or a value not on the page teaches nothing.
    assert hint.learn(extraction, "colour", "VG-2026-777") is hint
    assert hint.learn(extraction, "invoice_number", "not printed") is hint


# --- typed errors --------------------------------------------------------------------------


def test_encrypted_pdf_is_a_typed_error() -> None:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt("secret", algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ParseError) as info:
        extract_pdf(buffer.getvalue())
    assert info.value.code is ParseErrorCode.ENCRYPTED_PDF


@pytest.mark.parametrize(
    "data", [b"%PDF-1.7\n1 0 obj << /Type /Catalog >>\ngarbage", b"not a pdf at all"]
)
def test_unreadable_pdf_is_corrupt(data: bytes) -> None:
    with pytest.raises(ParseError) as info:
        extract_pdf(data)
    assert info.value.code is ParseErrorCode.CORRUPT_PDF


def test_pdf_without_text_is_no_text_layer() -> None:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buffer = io.BytesIO()
    writer.write(buffer)
    with pytest.raises(ParseError) as info:
        extract_pdf(buffer.getvalue())
    assert info.value.code is ParseErrorCode.NO_TEXT_LAYER


def test_empty_input_is_empty() -> None:
    with pytest.raises(ParseError) as info:
        extract_pdf(b"")
    assert info.value.code is ParseErrorCode.EMPTY
