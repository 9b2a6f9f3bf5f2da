"""Template-free PDF extraction against the public ground truth in ../shared/data.

Set 1 scores the visible text of Factur-X/ZUGFeRD PDFs against their embedded XML; set 2
scores real vendor PDFs against invoice2data's expected JSON. The bars come from issue 4;
a bar not reached is an xfail with the measured number, never a lowered bar.
"""

from __future__ import annotations

from functools import cache

import pytest

from training.eval_parse import (
    DATA_ROOT,
    FACTURX_BARS,
    INVOICE2DATA_BAR,
    ParseReport,
    evaluate_facturx,
    evaluate_invoice2data,
    facturx_documents,
)

pytestmark = pytest.mark.skipif(
    not (DATA_ROOT / "einvoice").is_dir(), reason="shared public data not present"
)


@cache
def facturx_report(with_master: bool = False) -> ParseReport:
    report = evaluate_facturx(with_master=with_master)
    print(report.summary(FACTURX_BARS))  # shown with -s: where we stand against the bars
    return report


@cache
def invoice2data_report() -> ParseReport:
    report = evaluate_invoice2data()
    print(report.summary())
    return report


def test_facturx_set_is_the_distinct_pdfs_with_an_embedded_invoice() -> None:
    paths = facturx_documents()
    assert len(paths) >= 20
    assert len({p.read_bytes() for p in paths}) == len(paths)
    assert all(p.suffix == ".pdf" for p in paths)


def test_invoice2data_reaches_its_bar() -> None:
    report = invoice2data_report()
    assert len(report.documents) == 11
    assert report.pooled_accuracy >= INVOICE2DATA_BAR, report.summary()


# Measured 2026-11-29 (21 distinct PDFs). Misses the text cannot fix: invalidPDF.pdf is a scan
# (no text layer); validXRechnung.pdf and invalidXRechnung.pdf print another invoice number and
# date than their XML; MustangBeispiel20221026.pdf prints 963,12 where the XML says 963.11.
_UNREACHED = {
    "invoice_number": "85.7% (18/21); 100% where the visible text holds the XML value",
    "issue_date": "85.7% (18/21); 100% where the visible text holds the XML value",
    "gross_total": "90.5% (19/21); 100% where the visible text holds the XML value",
    "supplier_name": "85.7% (18/21) without a vendor master (95.2% with one)",
}


@pytest.mark.parametrize(
    "field",
    [
        pytest.param(
            name,
            marks=pytest.mark.xfail(strict=True, reason=f"measured {_UNREACHED[name]}")
            if name in _UNREACHED
            else (),
        )
        for name in FACTURX_BARS
    ],
)
def test_facturx_text_reaches_the_bar(field: str) -> None:
    report = facturx_report()
    assert report.accuracy(field) >= FACTURX_BARS[field], report.summary(FACTURX_BARS)


@pytest.mark.parametrize("field", ["invoice_number", "issue_date", "gross_total", "currency"])
def test_facturx_text_is_right_wherever_the_text_holds_the_value(field: str) -> None:
    assert facturx_report().reachable_accuracy(field) >= FACTURX_BARS[field]


def test_facturx_supplier_name_with_a_vendor_master() -> None:
    report = facturx_report(with_master=True)
    assert report.accuracy("supplier_name") >= FACTURX_BARS["supplier_name"], report.summary()


def test_failures_name_the_documents() -> None:
    report = facturx_report()
    assert "einvoice/mustang/validator/src/test/resources/invalidPDF.pdf" in report.errors
    assert report.failed_documents == sorted({f.document for f in report.failures})
