"""Line items from a PDF's text: rows that multiply out, under a column-head row.

Small tables are drawn with fpdf2 at known positions (y from the top, in points); whole
generated worlds are scored against the lines of each PDF's UBL twin, per layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from fpdf import FPDF

from pipelines.canonical import LineKind
from pipelines.extract import extract_pdf
from pipelines.parsers import parse_document
from training.eval_parse import LINE_FIELDS, SETS, evaluate_world_lines, world_layouts
from training.synth.generator import Generator, WorldConfig
from training.synth.output import write_world

Text = tuple[float, float, str]


def draw(texts: Sequence[Text]) -> bytes:
    """A one-page PDF (Helvetica 9 pt) with each text at its position."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=9)
    for x, y, text in texts:
        pdf.text(x, y, text)
    return bytes(pdf.output())


HEADER: list[Text] = [
    (50, 60, "Kleinteile Schmidt GmbH"),
    (50, 72, "Werkstr. 3, 70173 Stuttgart"),
    (350, 120, "Rechnungsnr.:"),
    (450, 120, "R-2026-118"),
    (350, 132, "Rechnungsdatum:"),
    (450, 132, "12.03.2026"),
]
# Quantity before price; a thousands mark in a quantity ("2.126"), a number in a description
# ("Rolle 50 m"), a description running on to the next row, freight under the table.
TABLE: list[Text] = [
    (50, 250, "Pos."),
    (80, 250, "Bezeichnung"),
    (300, 250, "Menge"),
    (380, 250, "Einzelpreis"),
    (480, 250, "Gesamtpreis"),
    (50, 266, "1"),
    (80, 266, "Luftpolsterfolie Rolle 50 m"),
    (300, 266, "50 Stk."),
    (380, 266, "16,00"),
    (480, 266, "800,00"),
    (50, 280, "2"),
    (80, 280, "Schraube M4 x 20,"),
    (300, 280, "2.126 Stk."),
    (380, 280, "0,05"),
    (480, 280, "106,30"),
    (80, 292, "verzinkt"),
    (50, 306, "3"),
    (80, 306, "Montage"),
    (300, 306, "3 Std."),
    (380, 306, "60,00"),
    (480, 306, "180,00"),
    (300, 330, "Summe Positionen"),
    (480, 330, "1.086,30"),
    (300, 342, "Fracht"),
    (480, 342, "13,70"),
    (300, 354, "Nettobetrag"),
    (480, 354, "1.100,00"),
    (300, 366, "zzgl. 19 % MwSt."),
    (480, 366, "209,00"),
    (300, 378, "Gesamtbetrag"),
    (480, 378, "1.309,00 EUR"),
]


def test_rows_that_multiply_out_become_the_canonical_lines() -> None:
    extraction = extract_pdf(draw(HEADER + TABLE))
    assert extraction.lines_consistent
    invoice = parse_document(draw(HEADER + TABLE)).document
    got = [(x.description, x.quantity, x.unit_price, x.line_amount) for x in invoice.lines]
    assert got == [
        ("Luftpolsterfolie Rolle 50 m", Decimal(50), Decimal("16.00"), Decimal("800.00")),
        ("Schraube M4 x 20, verzinkt", Decimal(2126), Decimal("0.05"), Decimal("106.30")),
        ("Montage", Decimal(3), Decimal("60.00"), Decimal("180.00")),
    ]
    assert [x.line_id for x in invoice.lines] == ["1", "2", "3"]
    assert invoice.lines[2].unit_code == "HUR"
    # Freight under the table is a document-level charge: lines + charges = net.
    assert [(c.is_charge, c.amount, c.reason_code) for c in invoice.allowance_charges] == [
        (True, Decimal("13.70"), "FC")
    ]
    assert invoice.totals.line_extension == Decimal("1086.30")
    assert invoice.totals.charges == Decimal("13.70")
    assert invoice.totals.tax_exclusive == Decimal("1100.00")


def test_a_decimal_quantity_and_price_before_quantity() -> None:
    table: list[Text] = [
        (50, 250, "Description"),
        (300, 250, "Unit price"),
        (380, 250, "Quantity"),
        (480, 250, "Amount"),
        (50, 266, "Diesel"),
        (300, 266, "1.80"),
        (380, 266, "1.250 l"),
        (480, 266, "2.25"),
        (50, 280, "Delivery charge"),
        (300, 280, "25.00"),
        (380, 280, "1"),
        (480, 280, "25.00"),
        (300, 300, "Net total"),
        (480, 300, "27.25"),
        (300, 312, "VAT 20 %"),
        (480, 312, "5.45"),
        (300, 324, "Total due"),
        (480, 324, "GBP 32.70"),
    ]
    invoice = parse_document(draw(HEADER[:2] + table)).document
    got = [(x.quantity, x.unit_price, x.line_amount, x.unit_code) for x in invoice.lines]
    assert got == [
        (Decimal("1.250"), Decimal("1.80"), Decimal("2.25"), "LTR"),
        (Decimal(1), Decimal("25.00"), Decimal("25.00"), "C62"),
    ]
    assert invoice.lines[1].kind is LineKind.FREIGHT  # as the e-invoice readers classify it


def test_lines_that_do_not_add_up_stay_off_the_document() -> None:
    broken = [t if t[2] != "106,30" else (t[0], t[1], "116,30") for t in TABLE]
    extraction = extract_pdf(draw(HEADER + broken))
    assert not extraction.lines_consistent  # row 2 does not multiply out
    assert len(extraction.items.lines) == 2  # seen, reported, but not surfaced
    assert parse_document(draw(HEADER + broken)).document.lines == []
    # Rows that multiply out but miss the net total stay off as well.
    short = [t for t in TABLE if t[1] not in (280, 292)]
    extraction = extract_pdf(draw(HEADER + short))
    assert extraction.items.rows_add_up and not extraction.lines_consistent
    assert extraction.to_invoice().lines == []


def test_no_table_no_lines() -> None:
    extraction = extract_pdf(draw(HEADER + TABLE[-6:]))
    assert extraction.items.lines == ()
    assert extraction.to_invoice().lines == []


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A world of 60 invoices (seed 5: seven layouts, one of them, en_iso, not in seed 11)."""
    folder = tmp_path_factory.mktemp("lines_world")
    write_world(Generator(WorldConfig(invoices=60, seed=5)).build(), folder, pdf=True)
    return folder


def test_world_lines_per_layout_against_the_ubl_twins(world: Path) -> None:
    report = evaluate_world_lines(world)
    print(report.summary())
    assert set(report.groups) == set(world_layouts(world).values())
    assert set(report.fields) == {*LINE_FIELDS, "document_lines"}
    for layout, scores in report.groups.items():
        for name, score in scores.items():
            assert score.accuracy >= 0.99, (layout, name, report.summary())
    assert SETS["world-lines"].needs_world
