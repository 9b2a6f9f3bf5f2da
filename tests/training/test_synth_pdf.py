"""Synthetic born-digital PDFs: every layout prints what the canonical document says, readably."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from io import BytesIO

import pytest
from pypdf import PdfReader

from pipelines.canonical import (
    Address,
    AllowanceCharge,
    Claim,
    CreditNote,
    DocumentLine,
    DocumentTotals,
    Invoice,
    Party,
    PaymentDetails,
    TaxSubtotal,
)
from training.synth.layouts import LAYOUTS, layout_names
from training.synth.pdf import UnknownLayoutError, render_pdf, win_ansi

CENT = Decimal("0.01")
ISSUE = date(2026, 3, 7)
DUE = date(2026, 4, 6)

SUPPLIER = Party(
    name="Müller & Söhne Präzisionsteile GmbH",
    vat_id="DE811234567",
    registration_id="HRB 123456",
    address=Address(
        street="Königstraße 12", postal_code="70173", city="Stuttgart", country_code="DE"
    ),
)
BUYER = Party(
    name="Société Générale d'Équipements Côte d'Azur SARL",
    vat_id="FR40303265045",
    address=Address(
        street="14 rue de l'Église", postal_code="06000", city="Nice", country_code="FR"
    ),
)
IBAN = "DE89370400440532013000"

ITEMS = [
    ("Sechskantschraube DIN 933 M12x60, verzinkt", Decimal(500), "C62", Decimal("0.4850")),
    ("Kugellager 6204-2RS, Größe 20x47x14", Decimal(120), "C62", Decimal("3.95")),
    ("Hydrauliköl HLP 46", Decimal("208.5"), "LTR", Decimal("2.79")),
    ("Montage vor Ort, Techniker", Decimal(16), "HUR", Decimal("89.00")),
    ("Flachstahl S235JR 40x8 mm", Decimal("1250"), "KGM", Decimal("1.12")),
]


def make_doc(
    kind: type[Invoice | CreditNote | Claim] = Invoice,
    n_lines: int = 5,
    number: str = "RE-2026-004711",
    rate: Decimal = Decimal(19),
) -> Invoice | CreditNote | Claim:
    """A realistic, balanced document: lines, freight, one VAT rate, payment details."""
    lines = []
    for i in range(n_lines):
        desc, qty, unit, price = ITEMS[i % len(ITEMS)]
        lines.append(
            DocumentLine(
                line_id=str(i + 1),
                item_id=f"ART-{10000 + i}",
                description=f"{desc} (Pos. {i + 1})",
                quantity=qty,
                unit_code=unit,
                unit_price=price,
                tax_category="S",
                tax_rate=rate,
                line_amount=(qty * price).quantize(CENT),
            )
        )
    freight = AllowanceCharge(
        is_charge=True, amount=Decimal("45.00"), reason_code="FC", tax_category="S", tax_rate=rate
    )
    line_total = sum((line.line_amount for line in lines), Decimal(0))
    net = line_total + freight.amount
    tax = (net * rate / 100).quantize(CENT)
    extra: dict[str, object] = {}
    if kind is not Invoice:
        extra["billing_reference"] = "RE-2026-003999"
    return kind(
        number=number,
        issue_date=ISSUE,
        due_date=DUE,
        currency="EUR",
        supplier=SUPPLIER,
        buyer=BUYER,
        po_reference="PO-45001234",
        lines=lines,
        allowance_charges=[freight],
        tax_breakdown=[TaxSubtotal(category="S", rate=rate, taxable_amount=net, tax_amount=tax)],
        totals=DocumentTotals(
            line_extension=line_total,
            charges=freight.amount,
            tax_exclusive=net,
            tax=tax,
            tax_inclusive=net + tax,
            payable=net + tax,
        ),
        payment=PaymentDetails(
            means_code="58", iban=IBAN, bic="COBADEFFXXX", terms="30 Tage netto"
        ),
        **extra,
    )


def page_texts(pdf: bytes) -> list[str]:
    """The extracted text of each page, as a downstream extractor would see it."""
    return [page.extract_text() for page in PdfReader(BytesIO(pdf)).pages]


def test_at_least_six_layouts_two_per_language() -> None:
    names = layout_names()
    assert len(names) >= 6
    assert set(names) == set(LAYOUTS)
    for language in ("en", "de", "fr"):
        assert sum(LAYOUTS[n].language == language for n in names) >= 2
    # Layouts are distinct styles, not copies under new names.
    styles = {(lay.date_style, lay.thousands_sep, lay.decimal_sep) for lay in LAYOUTS.values()}
    assert len(styles) >= 5


@pytest.mark.parametrize("kind", [Invoice, CreditNote])
@pytest.mark.parametrize("name", layout_names())
def test_key_fields_extract_as_the_layout_formats_them(name: str, kind: type[Invoice]) -> None:
    doc = make_doc(kind)
    lay = LAYOUTS[name]
    text = "\n".join(page_texts(render_pdf(doc, name)))
    assert doc.gross is not None and doc.gross > 1000  # thousands separators are exercised
    assert doc.number is not None and doc.number in text
    assert lay.format_date(ISSUE) in text
    assert lay.format_date(DUE) in text
    assert lay.format_amount(doc.gross) in text
    assert lay.format_money(doc.gross, "EUR") in text
    assert "PO-45001234" in text
    assert lay.format_iban(IBAN) in text
    assert "DE811234567" in text and "FR40303265045" in text
    # WinAnsi core fonts carry umlauts and French accents through to the text layer.
    assert "Müller & Söhne Präzisionsteile GmbH" in text
    assert "Société Générale d'Équipements Côte d'Azur SARL" in text
    assert lay.format_price(Decimal("0.4850")) in text
    title = lay.labels[f"title_{doc.kind}"]
    assert title in text


@pytest.mark.parametrize(
    ("name", "word"),
    [("de_din", "Gutschrift"), ("de_modern", "GUTSCHRIFT"), ("fr_classic", "AVOIR")],
)
def test_credit_notes_are_titled_as_credit_notes(name: str, word: str) -> None:
    credit_text = "\n".join(page_texts(render_pdf(make_doc(CreditNote), name)))
    invoice_text = "\n".join(page_texts(render_pdf(make_doc(Invoice), name)))
    assert word in credit_text and word not in invoice_text
    assert "RE-2026-003999" in credit_text  # the credited invoice is named


def test_claim_renders_with_its_own_title() -> None:
    text = "\n".join(page_texts(render_pdf(make_doc(Claim), "en_classic")))
    assert "DEBIT NOTE" in text and "RE-2026-004711" in text


@pytest.mark.parametrize("name", layout_names())
def test_same_input_same_bytes(name: str) -> None:
    doc = make_doc()
    first = render_pdf(doc, name)
    assert first.startswith(b"%PDF-")
    assert render_pdf(doc, name) == first
    assert render_pdf(make_doc(number="RE-2026-004712"), name) != first


@pytest.mark.parametrize("name", layout_names())
def test_long_table_spans_pages_and_total_is_on_the_last(name: str) -> None:
    doc = make_doc(n_lines=40)
    lay = LAYOUTS[name]
    pages = page_texts(render_pdf(doc, name))
    assert len(pages) >= 2
    assert doc.gross is not None
    gross = lay.format_money(doc.gross, "EUR")
    assert gross in pages[-1]
    assert all(gross not in page for page in pages[:-1])
    joined = "\n".join(pages)
    for i in range(1, 41):  # no line lost at a page break
        assert f"(Pos. {i})" in joined
    assert lay.labels["page"].format(n=len(pages), total=len(pages)) in pages[-1]
    # The running subtotal is carried to the next page, as paper invoices do.
    first_page_sum = sum(
        (line.line_amount for line in doc.lines if f"(Pos. {line.line_id})" in pages[0]),
        Decimal(0),
    )
    assert lay.format_amount(first_page_sum) in pages[1]


def test_missing_fields_are_not_printed() -> None:
    doc = make_doc().model_copy(update={"due_date": None, "po_reference": None, "payment": None})
    text = "\n".join(page_texts(render_pdf(doc, "de_din")))
    assert "Fällig am" not in text
    assert "Bestellnummer" not in text
    assert "IBAN" not in text
    assert "RE-2026-004711" in text


def test_empty_document_still_renders() -> None:
    pages = page_texts(render_pdf(Invoice(), "fr_modern"))
    assert len(pages) == 1
    assert "Facture" in pages[0]


def test_several_tax_rates_inline_and_as_table() -> None:
    doc = make_doc(rate=Decimal("5.5"))
    extra = TaxSubtotal(
        category="S", rate=Decimal(20), taxable_amount=Decimal("100.00"), tax_amount=Decimal(20)
    )
    doc = doc.model_copy(update={"tax_breakdown": [*doc.tax_breakdown, extra]})
    for name in ("fr_modern", "fr_classic"):
        text = "\n".join(page_texts(render_pdf(doc, name)))
        assert "5,5 %" in text and "20 %" in text
        assert LAYOUTS[name].format_amount(doc.tax_breakdown[0].tax_amount) in text


def test_formats_per_layout() -> None:
    d = date(2026, 3, 1)
    x = Decimal("1234567.895")
    expected = {
        "en_classic": ("01/03/2026", "1,234,567.90", "€1,234,567.90"),
        "en_modern": ("1 March 2026", "1,234,567.90", "EUR 1,234,567.90"),
        "en_iso": ("2026-03-01", "1 234 567.90", "1 234 567.90 EUR"),
        "de_din": ("01.03.2026", "1.234.567,90", "1.234.567,90 €"),
        "de_modern": ("1. März 2026", "1.234.567,90", "1.234.567,90 EUR"),
        "fr_classic": ("01/03/2026", "1 234 567,90", "1 234 567,90 €"),
        "fr_modern": ("1er mars 2026", "1.234.567,90", "1.234.567,90 EUR"),
    }
    for name, (day, amount, money) in expected.items():
        lay = LAYOUTS[name]
        assert lay.format_date(d) == day, name
        assert lay.format_amount(x) == amount, name
        assert lay.format_money(x, "EUR") == money, name
    de, en = LAYOUTS["de_din"], LAYOUTS["en_classic"]
    assert de.format_amount(Decimal("-45")) == "-45,00"
    assert en.format_money(Decimal("-45"), "GBP") == "-£45.00"
    assert en.format_money(Decimal(5), "CHF") == "5.00 CHF"  # no WinAnsi sign: code instead
    assert de.format_price(Decimal("0.4850")) == "0,485"
    assert de.format_price(Decimal("3.9")) == "3,90"
    assert de.format_quantity(Decimal("208.500")) == "208,5"
    assert de.format_quantity(Decimal("1250")) == "1.250"
    assert de.format_date(date(2026, 12, 24)) == "24.12.2026"
    assert LAYOUTS["fr_modern"].format_date(date(2026, 8, 15)) == "15 août 2026"
    assert LAYOUTS["de_din"].format_iban(IBAN) == "DE89 3704 0044 0532 0130 00"


def test_characters_outside_winansi_degrade_to_readable_letters() -> None:
    assert win_ansi("Łódź Żywność Sp. z o.o.") == "Lódz Zywnosc Sp. z o.o."
    assert win_ansi("Grüße à Noël €") == "Grüße à Noël €"
    doc = make_doc().model_copy(update={"buyer": Party(name="Łódź Żywność Sp. z o.o.")})
    text = "\n".join(page_texts(render_pdf(doc, "en_modern")))
    assert "Lódz Zywnosc Sp. z o.o." in text


def test_unknown_layout_is_a_typed_error() -> None:
    with pytest.raises(UnknownLayoutError, match="known: en_classic"):
        render_pdf(make_doc(), "comic_sans")
