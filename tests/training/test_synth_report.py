"""Realism report of a generated world: benchmark table, plots that are real PNGs, determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world
from training.synth.report import WorldError, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small generated world (no PDFs) shared by the tests of this module."""
    root = tmp_path_factory.mktemp("world")
    write_world(generate_world(WorldConfig(invoices=300, seed=3)), root, pdf=False)
    return root


@pytest.fixture(scope="module")
def markdown(world: Path) -> str:
    """The report of `world`, written once: drawing the plots is the slow part."""
    path = write_report(world)
    assert path == world / "report.md"
    return path.read_text(encoding="utf-8")


def _truth(world: Path) -> list[dict[str, Any]]:
    lines = (world / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _table_row(markdown: str, measure: str) -> list[str]:
    """The cells of the benchmark table row whose first cell starts with `measure`."""
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0].startswith(measure):
            return cells
    raise AssertionError(f"no table row for {measure!r}")


def test_report_shows_the_recomputed_exception_rate(world: Path, markdown: str) -> None:
    invoices = [r for r in _truth(world) if r["kind"] == "invoice"]
    with_reason = sum(1 for r in invoices if r["reasons"])
    assert len(invoices) == 300 and 0 < with_reason < 300
    assert "| Measure | Generated | Published | Where it lands |" in markdown
    row = _table_row(markdown, "Invoice exception rate")
    assert row[1] == f"{100 * with_reason / len(invoices):.1f} %"
    assert "22.6 %" in row[2] and "10.1 %" in row[2]
    assert f"{with_reason} of {len(invoices)} invoices" in markdown
    # Every published figure in the table points at a footnote that names its source.
    assert "[^ardent]: Ardent Partners" in markdown and "[^apqc]: APQC" in markdown


def test_report_resolution_days_match_truth(world: Path, markdown: str) -> None:
    days = sorted(
        r["review"]["hours_to_resolution"] / 24
        for r in _truth(world)
        if r["kind"] == "invoice" and r["reasons"]
    )
    middle = len(days) // 2
    median = days[middle] if len(days) % 2 else (days[middle - 1] + days[middle]) / 2
    assert _table_row(markdown, "Days to resolve an exception invoice, median")[1] == (
        f"{median:.1f}"
    )
    assert _table_row(markdown, "Days to resolve an exception invoice, mean")[1] == (
        f"{sum(days) / len(days):.1f}"
    )


def test_every_referenced_plot_is_a_real_png(world: Path, markdown: str) -> None:
    referenced = IMAGE.findall(markdown)
    assert len(referenced) == 5
    for relative in referenced:
        assert relative.startswith("report/") and relative.endswith(".png")
        data = (world / relative).read_bytes()
        assert data[:8] == PNG_MAGIC, relative
        assert len(data) > 10_000, relative  # a drawn chart, not an empty canvas
        assert b"IEND" in data[-12:], relative  # the file was written to the end


def test_running_twice_gives_identical_output(world: Path, markdown: str) -> None:
    first = markdown.encode("utf-8")
    plots = {p.name: p.read_bytes() for p in sorted((world / "report").glob("*.png"))}
    second = write_report(world).read_bytes()
    assert first == second
    assert plots == {p.name: p.read_bytes() for p in sorted((world / "report").glob("*.png"))}
    assert b"Software" not in b"".join(plots.values())


def _record(kind: str, reasons: list[str], hours: float, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "kind": kind,
        "reasons": reasons,
        "rule_decidable": extra.get("decidable", True),
        "gross": extra.get("gross", "1000.00"),
        "currency": "EUR",
        "supplier_ref": extra.get("supplier", "S0001"),
        "supplier_name": "Acme",
        "review": {
            "queue": "exceptions" if reasons else "clean",
            "received_at": "2026-02-02T09:00:00",
            "hours_to_resolution": hours,
            "sla_breached": extra.get("breached", False),
        },
    }
    return record


def _hand_world(root: Path, records: list[dict[str, Any]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    manifest = {"config": {"seed": 11, "invoices": 4, "start": "2026-01-05", "months": 1}}
    (root / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    (root / "truth.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    return root


def test_hand_made_world_lands_in_the_right_bands(tmp_path: Path) -> None:
    records = [
        _record("invoice", ["PRICE_VARIANCE", "AMOUNT_OVER_PO"], 96.0, breached=True),
        _record("invoice", [], 24.0, supplier="S0002"),
        _record("invoice", [], 24.0),
        _record("invoice", [], 48.0),
        _record("credit_note", ["DUPLICATE"], 12.0, decidable=False),
    ]
    markdown = write_report(_hand_world(tmp_path / "w", records)).read_text(encoding="utf-8")
    # 1 of 4 invoices: 25 % is above Ardent's 22.6 % average.
    assert _table_row(markdown, "Invoice exception rate")[1::2] == ["25.0 %", "worse than average"]
    # One exception invoice of 96 h = 4 days: between APQC's top quartile (3) and median (5).
    median = _table_row(markdown, "Days to resolve an exception invoice, median")
    assert median[1::2] == ["4.0", "between top quartile and median"]
    # Cycle time (96 + 24 + 24 + 48) / 4 h = 2.0 days: better than Ardent's 2.9 best-in-class.
    cycle = _table_row(markdown, "Invoice cycle time")
    assert cycle[1::2] == ["2.0", "at or better than best-in-class"]
    assert _table_row(markdown, "SLA breached, all documents")[1] == "20.0 %"
    assert _table_row(markdown, "SLA breached, documents with an exception")[1] == "50.0 %"
    assert _table_row(markdown, "Ambiguous documents")[1] == "20.0 %"
    assert _table_row(markdown, "Exception invoices with ≥ 2 true reasons")[1] == "100.0 %"
    assert "- Documents: 5 (1 credit notes, 4 invoices)" in markdown
    assert "- Invoice gross by currency: EUR 4,000.00" in markdown
    assert "- Period: 2026-01-05 to 2026-02-04 (1 months)" in markdown


def test_empty_world_still_gives_a_report(tmp_path: Path) -> None:
    markdown = write_report(_hand_world(tmp_path / "w", [])).read_text(encoding="utf-8")
    assert _table_row(markdown, "Invoice exception rate")[1] == "n/a"
    for relative in IMAGE.findall(markdown):
        assert (tmp_path / "w" / relative).read_bytes()[:8] == PNG_MAGIC


def test_missing_truth_is_a_typed_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")
    with pytest.raises(WorldError, match=r"truth\.jsonl"):
        write_report(tmp_path)


def test_broken_truth_line_names_the_line(tmp_path: Path) -> None:
    root = _hand_world(tmp_path / "w", [_record("invoice", [], 1.0)])
    with (root / "truth.jsonl").open("a", encoding="utf-8") as truth:
        truth.write('{"kind": "invoice", "reasons": []}\n')
    with pytest.raises(WorldError, match=r"truth\.jsonl:2"):
        write_report(root)
    (root / "truth.jsonl").write_text("{not json\n", encoding="utf-8")
    with pytest.raises(WorldError, match=r"truth\.jsonl:1: not valid JSON"):
        write_report(root)
