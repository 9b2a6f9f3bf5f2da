"""Header extraction on generated worlds, the rules it needed, and `tollgate eval parse`.

The small PDFs here are drawn with fpdf2 at known positions (y from the top, in points), in
the shapes the synthetic layouts print: values under column heads, a prefixed PO number, a
German tax-total label, documents without an issue date.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fpdf import FPDF
from typer.testing import CliRunner

from app.cli import cli
from pipelines.extract import extract_pdf
from training.eval_parse import (
    DATA_ROOT,
    SETS,
    WORLD_FIELDS,
    below_bars,
    en16931_documents,
    evaluate_en16931,
    evaluate_world,
    world_layouts,
)
from training.synth.generator import Generator, WorldConfig
from training.synth.output import write_world

Text = tuple[float, float, str]  # x, y from the top, text


def draw(texts: Sequence[Text]) -> bytes:
    """A one-page PDF (Helvetica 9 pt) with each text at its position."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=9)
    for x, y, text in texts:
        pdf.text(x, y, text)
    return bytes(pdf.output())


def fields(texts: Sequence[Text], known: Sequence[str] = ()) -> dict[str, object]:
    """The extracted header values of the drawn page."""
    extraction = extract_pdf(draw(texts), known_suppliers=known)
    return {name: extraction.value(name) for name in WORLD_FIELDS}


def test_a_prefixed_po_number_under_a_po_column_head_keeps_its_prefix() -> None:
    got = fields(
        [
            (50, 200, "Invoice number"),
            (174, 200, "Date of issue"),
            (298, 200, "Date due"),
            (421, 200, "PO"),
            (50, 212, "RE202601137"),
            (174, 212, "23 February 2026"),
            (298, 212, "25 March 2026"),
            (421, 212, "PO 00000074"),
        ]
    )
    assert got["po_reference"] == "PO 00000074"
    assert got["invoice_number"] == "RE202601137"
    assert (got["issue_date"], got["due_date"]) == (date(2026, 2, 23), date(2026, 3, 25))


def test_a_prefixed_po_number_right_of_its_label_keeps_its_prefix() -> None:
    got = fields([(340, 150, "Invoice no"), (500, 150, "INV263635"), (340, 185, "Purchase order")])
    assert got["po_reference"] is None  # no value printed: nothing invented
    got = fields(
        [
            (340, 150, "Invoice no"),
            (500, 150, "INV263635"),
            (340, 185, "Purchase order"),
            (492, 185, "PO 00000037"),
        ]
    )
    assert got["po_reference"] == "PO 00000037"


GERMAN_TOTALS = [
    (50, 100, "Jopich & Bärer GmbH"),
    (340, 150, "Rechnungsnummer"),
    (502, 150, "INV-01206"),
    (340, 162, "Rechnungsdatum"),
    (500, 162, "20.02.2026"),
    (320, 344, "Nettobetrag"),
    (507, 344, "1.184,00"),
    (320, 358, "Umsatzsteuer"),
    (520, 358, "82,88"),
    (320, 380, "Gesamtbetrag"),
    (493, 380, "1.293,44 EUR"),
]


def test_printed_totals_are_read_as_printed_even_when_they_do_not_add_up() -> None:
    # 1,184.00 + 82.88 is not 1,293.44: the document is wrong, and the extraction must say
    # what it prints so that the arithmetic check downstream can flag it.
    got = fields(GERMAN_TOTALS)
    assert got["net_total"] == Decimal("1184.00")
    assert got["tax_total"] == Decimal("82.88")
    assert got["gross_total"] == Decimal("1293.44")


def test_a_missing_issue_date_is_not_taken_from_the_due_date() -> None:
    got = fields(
        [
            (429, 40, "Otto & Hartung KG"),
            (50, 200, "Rechnung Nr."),
            (174, 200, "Zahlbar bis"),
            (298, 200, "Ihre Bestellung"),
            (50, 212, "INV264228"),
            (174, 212, "28. Mai 2026"),
            (298, 212, "4500000178"),
        ]
    )
    assert got["due_date"] == date(2026, 5, 28)
    assert got["issue_date"] is None
    assert got["invoice_number"] == "INV264228"


def test_a_credit_note_number_label_beats_the_title_word() -> None:
    got = fields(
        [
            (428, 40, "Groupe Morvan SA"),
            (50, 52, "Avoir"),
            (441, 52, "345, avenue Sylvie Thibault"),
            (50, 200, "Avoir n°"),
            (174, 200, "Date"),
            (50, 212, "F2026/3428"),
            (174, 212, "23 mars 2026"),
        ]
    )
    assert got["invoice_number"] == "F2026/3428"


def test_a_subtotal_followed_by_freight_is_not_the_net_total() -> None:
    got = fields(
        [
            (320, 300, "Subtotal"),
            (516, 300, "718.59"),
            (320, 315, "Freight"),
            (521, 315, "21.75"),
            (320, 330, "Net Total"),
            (516, 330, "740.34"),
            (320, 345, "VAT 21 % on 740.34"),
            (516, 345, "155.47"),
            (320, 366, "Total"),
            (507, 366, "949.40"),
        ]
    )
    assert got["net_total"] == Decimal("740.34")


def test_an_unknown_supplier_is_the_first_part_of_a_sender_line_with_a_uk_postcode() -> None:
    got = fields(
        [
            (397, 52, "Storey Supplies PLC"),
            (50, 138, "Storey Supplies PLC · Flat 50 · LS3 4BT Gregoryport"),
            (50, 156, "Tollgate Retail UK Ltd"),
            (50, 166, "1 Dock Road"),
            (50, 198, "VAT no: GB811111111"),
            (340, 198, "VAT no: GB117802374"),
        ],
        known=["Hellwig AG", "Otto & Hartung KG"],
    )
    assert got["supplier_name"] == "Storey Supplies PLC"


# --- whole generated worlds --------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small world (30 invoices, seed 11: six layouts) with its PDFs."""
    folder = tmp_path_factory.mktemp("world")
    write_world(Generator(WorldConfig(invoices=30, seed=11)).build(), folder, pdf=True)
    return folder


def test_a_small_world_reaches_the_bar_on_every_field_and_layout(world: Path) -> None:
    report = evaluate_world(world)
    assert len(report.documents) == len(list((world / "documents" / "pdf").glob("*.pdf")))
    assert set(report.groups) == set(world_layouts(world).values())
    assert len(report.groups) >= 5
    assert set(report.fields) == set(WORLD_FIELDS)
    assert below_bars(report, SETS["world"]) == [], report.summary()


@pytest.mark.parametrize("seed", [3, 11])
def test_the_300_invoice_worlds_of_seeds_3_and_11_reach_the_bar(
    seed: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The acceptance worlds of the extractor (`tollgate generate --invoices 300 --seed N`).
    folder = tmp_path_factory.mktemp(f"world{seed}")
    write_world(Generator(WorldConfig(invoices=300, seed=seed)).build(), folder, pdf=True)
    report = evaluate_world(folder)
    assert len(report.documents) >= 300
    assert below_bars(report, SETS["world"]) == [], report.summary()


def test_eval_parse_world_prints_json_and_exits_0(world: Path) -> None:
    result = CliRunner().invoke(cli, ["eval", "parse", "--set", "world", "--world", str(world)])
    assert result.exit_code == 0, result.output
    assert "PASS" in result.output
    result = CliRunner().invoke(
        cli, ["eval", "parse", "--set", "world", "--world", str(world), "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["set"] == "world"
    assert payload["passed"] is True and payload["below_bar"] == []
    assert payload["documents"] == len(list((world / "documents" / "pdf").glob("*.pdf")))
    assert set(payload["fields"]) == set(WORLD_FIELDS)
    for score in payload["fields"].values():
        assert score["accuracy"] >= score["bar"] == 0.99
        assert score["total"] == payload["documents"]
    assert set(payload["layouts"]) == set(world_layouts(world).values())


def test_eval_parse_refuses_an_unknown_set_and_a_world_set_without_a_world() -> None:
    result = CliRunner().invoke(cli, ["eval", "parse", "--set", "nope"])
    assert result.exit_code == 2
    result = CliRunner().invoke(cli, ["eval", "parse", "--set", "world"])
    assert result.exit_code == 2


@pytest.mark.skipif(not (DATA_ROOT / "einvoice").is_dir(), reason="shared public data not present")
def test_eval_parse_xrechnung_pairs_agree_except_the_known_data_difference() -> None:
    result = CliRunner().invoke(
        cli, ["eval", "parse", "--set", "xrechnung", "--json", "--data", str(DATA_ROOT)]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["documents"] == 40
    # 01.21a states two different seller VAT ids in its UBL and CII files (see the CII tests).
    assert [(f["document"], f["field"]) for f in payload["failures"]] == [
        ("01.21a-INVOICE", "supplier_vat_id")
    ]


@pytest.mark.skipif(not (DATA_ROOT / "einvoice").is_dir(), reason="shared public data not present")
def test_eval_parse_exits_1_below_the_bar_and_names_the_failures() -> None:
    # The Mustang PDFs include a scan and two PDFs printing other numbers than their XML.
    result = CliRunner().invoke(cli, ["eval", "parse", "--set", "mustang", "--json"])
    assert result.exit_code == 1
    payload = json.loads(result.stdout)
    assert payload["passed"] is False and payload["below_bar"]
    assert any(d.endswith("invalidPDF.pdf") for d in payload["errors"])


@pytest.mark.skipif(not (DATA_ROOT / "einvoice").is_dir(), reason="shared public data not present")
def test_en16931_examples_parse_to_the_header_values_their_xml_states() -> None:
    report = evaluate_en16931()
    assert len(report.documents) == len(en16931_documents()) >= 60
    assert report.errors == {}
    assert report.pooled_accuracy == 1.0, report.summary()
