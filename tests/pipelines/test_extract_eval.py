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


# Measured 2026-11-29 (21 distinct PDFs). Misses the text cannot fix (each checked by hand
# against the pypdf text): invalidPDF.pdf is a scan (no text layer); validXRechnung.pdf and
# invalidXRechnung.pdf print another invoice number and date (RE-20200620/508, 2020-06-20) than
# their XML (RE-20190610/507, 2019-06-10); MustangBeispiel20221026.pdf prints 963,12 where the
# XML says 963.11. The one miss in the text: validAvoir_FR_type380_BASICWL.pdf prints the seller
# as "Au bon moulin SARL", its XML says "Au bon moulin" (ratio 84 < 90).
_UNREACHED = {
    "invoice_number": "85.7% (18/21); 100% where the visible text holds the XML value",
    "issue_date": "85.7% (18/21); 100% where the visible text holds the XML value",
    "gross_total": "90.5% (19/21); 100% where the visible text holds the XML value",
    "supplier_name": "90.5% (19/21) without a vendor master (95.2% with one)",
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


def test_ground_truth_not_in_text_is_reported_with_its_reason_and_still_counted() -> None:
    report = facturx_report()
    absent = report.not_in_text
    base = "einvoice/mustang/"
    assert set(absent) == {
        base + "validator/src/test/resources/invalidPDF.pdf",
        base + "validator/src/test/resources/validXRechnung.pdf",
        base + "validator/src/test/resources/invalidXRechnung.pdf",
        base + "library/src/test/resources/MustangBeispiel20221026.pdf",
    }
    scan = absent[base + "validator/src/test/resources/invalidPDF.pdf"]
    assert {f.field for f in scan} == set(FACTURX_BARS)
    assert all("NO_TEXT_LAYER" in (f.reason or "") for f in scan)
    printed = {
        f.field: f.reason for f in absent[base + "validator/src/test/resources/validXRechnung.pdf"]
    }
    assert set(printed) == {"invoice_number", "issue_date"}
    assert "'RE-20200620/508'" in (printed["invoice_number"] or "")
    assert "'RE-20190610/507'" in (printed["invoice_number"] or "")
    rounding = absent[base + "library/src/test/resources/MustangBeispiel20221026.pdf"]
    assert [(f.field, f.expected, f.got) for f in rounding] == [("gross_total", "963.11", "963.12")]
    # Kept in the denominator: every document is scored on every field.
    assert all(s.total == len(report.documents) for s in report.fields.values())
    assert "ground truth not in text (4 documents" in report.summary(FACTURX_BARS)


def test_the_seller_is_the_name_that_spells_its_own_web_domain() -> None:
    # 103767 prints the buyer ("Adatum Corporation") and the seller ("CRONUS DE") side by side;
    # the footer with the seller's VAT id gives info@cronus.com.
    report = facturx_report()
    name = "einvoice/mustang/validator/src/test/resources/103767-Invoice-2026-03-24-1.pdf"
    assert name in report.documents
    assert not [f for f in report.failures if f.document == name and f.field == "supplier_name"]
