"""`tollgate parse` on the public documents: fields per format, --text-only, CSV, exit codes."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from pipelines.readout import CSV_COLUMNS, FIELD_NAMES

runner = CliRunner()
DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
UBL = DATA / "einvoice/xrechnung/src/test/business-cases/standard/01.01a-INVOICE_ubl.xml"
CII = DATA / "einvoice/xrechnung/src/test/business-cases/standard/01.01a-INVOICE_uncefact.xml"
HYBRID = "MustangGnuaccountingBeispielRE-20170509_505.pdf"  # Factur-X: PDF with CII inside
I2D = DATA / "pdf/invoice2data/tests/compare"


def _records(output: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of one UBL, its CII twin, a Factur-X PDF, a real vendor PDF and a corrupt PDF."""
    shutil.copy(UBL, tmp_path / "a.xml")
    shutil.copy(CII, tmp_path / "b.xml")
    hybrid = next(
        (DATA / "einvoice/mustang").rglob("MustangGnuaccountingBeispielRE-20170509_505.pdf")
    )
    shutil.copy(hybrid, tmp_path / "c.pdf")
    shutil.copy(I2D / "AmazonWebServices.pdf", tmp_path / "d.pdf")
    (tmp_path / "e.pdf").write_bytes(hybrid.read_bytes()[:900])  # cut off: corrupt
    (tmp_path / "notes.txt").write_text("not a document, not read")
    return tmp_path


def test_a_folder_gives_one_record_per_document_and_exit_2_for_the_corrupt_one(
    folder: Path,
) -> None:
    result = runner.invoke(cli, ["parse", str(folder)])
    assert result.exit_code == 2
    records = {Path(r["file"]).name: r for r in _records(result.stdout)}
    assert sorted(records) == ["a.xml", "b.xml", "c.pdf", "d.pdf", "e.pdf"]
    assert records["e.pdf"]["error"]["code"] == "CORRUPT_PDF"
    ubl, cii = records["a.xml"], records["b.xml"]
    assert ubl["format"] == "ubl_invoice" and cii["format"] == "cii"
    # The two syntaxes of one invoice read the same; XML is exact.
    for name in FIELD_NAMES:
        assert ubl["fields"][name]["value"] == cii["fields"][name]["value"], name
    assert ubl["fields"]["invoice_number"] == {
        "value": "123456XX",
        "confidence": 1.0,
        "source": "xml",
        "page": None,
        "span": None,
        "label": None,
    }
    assert ubl["document"]["lines"] and ubl["findings"] == []
    hybrid = records["c.pdf"]
    assert hybrid["format"] == "facturx_pdf"
    assert hybrid["fields"]["gross_total"]["source"] == "xml"
    vendor = records["d.pdf"]
    assert vendor["format"] == "pdf"
    expected = json.loads((I2D / "AmazonWebServices.json").read_text())
    expected = expected[0] if isinstance(expected, list) else expected
    assert vendor["fields"]["invoice_number"]["value"] == expected["invoice_number"]
    assert vendor["fields"]["invoice_number"]["source"] == "pdf-text"
    assert 0 < vendor["fields"]["invoice_number"]["confidence"] <= 1
    assert vendor["fields"]["invoice_number"]["page"] == 0
    assert vendor["fields"]["invoice_number"]["span"]


def test_text_only_reads_what_a_person_sees(folder: Path) -> None:
    result = runner.invoke(cli, ["parse", "--text-only", str(folder / "c.pdf")])
    assert result.exit_code == 0, result.output
    (record,) = _records(result.stdout)
    assert record["format"] == "pdf"
    assert record["fields"]["gross_total"]["source"] == "pdf-text"
    assert record["fields"]["gross_total"]["value"] == "571.04"
    assert record["fields"]["invoice_number"]["value"] == "RE-20170509/505"


def test_csv_output_has_a_row_per_document_with_confidences(folder: Path) -> None:
    out = folder / "out.csv"
    result = runner.invoke(
        cli, ["parse", "--format", "csv", "--output", str(out), str(folder / "a.xml")]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["invoice_number"] == "123456XX"
    assert rows[0]["invoice_number_confidence"] == "1.0"
    assert rows[0]["gross_total"] and rows[0]["error_code"] == ""


def test_usage_errors_exit_1() -> None:
    for args in (["parse", "--format", "xml", str(UBL)], ["parse", "/no/such/file"], ["parse"]):
        result = subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1, (args, result.stderr)
        assert "Traceback" not in result.stderr
