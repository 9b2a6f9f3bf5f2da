"""The fuzzy duplicate detector: OCR-aware numbers, blocking, and the bar on generated worlds."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest

from models.duplicates import (
    FEATURE_NAMES,
    PRICE_FEATURE_NAMES,
    CandidateDocument,
    DuplicateDetector,
    PriceAnomalyScorer,
    block_candidates,
    choose_threshold,
    digit_overlap,
    exact_key_flags,
    ocr_key,
    ocr_number_similarity,
    ocr_numbers_equal,
    ordered_quantities,
    pair_features,
    price_features,
    supplier_key,
)
from pipelines.canonical import (
    CreditNote,
    DocumentLine,
    DocumentTotals,
    Invoice,
    Party,
    PurchaseOrder,
    PurchaseOrderLine,
    SupplierDocument,
)
from training.duplicates_data import DuplicateReport, evaluate_duplicates, format_report
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world


def _invoice(
    number: str,
    gross: str,
    day: date = date(2026, 3, 2),
    *,
    po: str | None = "4500000001",
    qty: str = "10",
    vat: str = "DE123456789",
    net: str | None = None,
) -> Invoice:
    price = Decimal(gross) / Decimal(qty)
    return Invoice(
        number=number,
        issue_date=day,
        currency="EUR",
        supplier=Party(name="Acme GmbH", vat_id=vat),
        po_reference=po,
        lines=[
            DocumentLine(
                line_id="1",
                item_id="A-1",
                quantity=Decimal(qty),
                unit_price=price,
                line_amount=Decimal(gross),
                po_line_ref="10",
            )
        ],
        totals=DocumentTotals(
            tax_exclusive=Decimal(net) if net is not None else Decimal(gross),
            tax_inclusive=Decimal(gross),
        ),
    )


def _docs(*invoices: SupplierDocument) -> list[CandidateDocument]:
    return [
        CandidateDocument(f"D{i}", doc, supplier_key(doc, None)) for i, doc in enumerate(invoices)
    ]


# -- OCR-aware number similarity ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("original", "misread"),
    [
        ("INV-01058", "INV-O1058"),  # 0 read as O
        ("2026-1181", "2026-I181"),  # 1 read as I
        ("RE202604078", "RE2O26O4078"),  # two zeros read as O
        ("F2026/0815", "F2026/08l5"),  # 1 read as lower-case l
        ("0005381", "000S381"),  # 5 read as S
        ("INV260818", "INV26O81B"),  # 0 as O and 8 as B
        ("INV-00123", "1NV-00123"),  # a misread prefix must not defeat the comparison
    ],
)
def test_ocr_misreads_compare_equal(original: str, misread: str) -> None:
    assert ocr_numbers_equal(original, misread)
    assert ocr_number_similarity(original, misread) == 1.0


def test_ocr_key_folds_look_alikes_and_separators() -> None:
    assert ocr_key("2O26/0Bl-S") == "20260815"
    assert ocr_key("inv 0815") == "1NV0815"  # letters fold too: both sides fold alike


def test_different_numbers_are_not_ocr_equal() -> None:
    assert not ocr_numbers_equal("INV-01058", "INV-01059")
    assert not ocr_numbers_equal("2026-1181", "2026-1191")
    assert not ocr_numbers_equal(None, "2026-1181")
    assert ocr_number_similarity("2026-1181", "2026-1191") < 1.0
    assert ocr_number_similarity("2026-1181", "2026-1191") > ocr_number_similarity(
        "2026-1181", "INV-77777"
    )
    assert ocr_number_similarity("", "INV-1") == 0.0


def test_digit_overlap() -> None:
    assert digit_overlap("1234", "4321") == 1.0
    assert digit_overlap("1234", "1299") == 0.5
    assert digit_overlap("ABC", "123") == 0.0


# -- blocking ----------------------------------------------------------------------------------


def test_blocking_keeps_same_supplier_kind_window_and_amount_band() -> None:
    docs = _docs(
        _invoice("1001", "1000.00", date(2026, 1, 5)),  # 0: the original
        _invoice("1002", "1040.00", date(2026, 1, 6)),  # 1: +4 %: in the band
        _invoice("1003", "1100.00", date(2026, 1, 7)),  # 2: +10 % of 0, +5.8 % of 1: neither
        _invoice("1004", "1000.00", date(2026, 1, 8), vat="FR11111111111"),  # 3: other supplier
        _invoice("1005", "1000.01", date(2027, 3, 1)),  # 4: 420 days after 0: outside window
        _invoice("1006", "5000.00", date(2026, 1, 9), net="1000.00"),  # 5: equal net to 0
    )
    blocks = block_candidates(docs, window_days=365, gross_band=Decimal("0.05"))
    assert blocks[0] == []
    assert blocks[1] == [0]
    assert blocks[2] == []
    assert blocks[3] == []
    assert blocks[4] == []
    assert blocks[5] == [0]


def test_blocking_compares_only_earlier_documents_and_missing_dates_pass() -> None:
    first = _invoice("1001", "1000.00", date(2026, 1, 5))
    undated = first.model_copy(update={"issue_date": None})
    blocks = block_candidates(_docs(first, undated, first), window_days=30)
    assert blocks == [[], [0], [0, 1]]


def test_blocking_separates_kinds() -> None:
    invoice = _invoice("1001", "1000.00")
    credit = CreditNote(**invoice.model_dump(exclude={"kind"}))
    assert block_candidates(_docs(invoice, credit)) == [[], []]


def test_supplier_key_prefers_the_resolved_reference() -> None:
    doc = _invoice("1", "10.00", vat="de 123.456.789")
    assert supplier_key(doc, "S0001") == "ref:S0001"
    assert supplier_key(doc, None) == "vat:DE123456789"


# -- pair features -----------------------------------------------------------------------------


def test_po_billed_ratio_separates_a_duplicate_from_a_split() -> None:
    po = PurchaseOrder(
        number="4500000001",
        supplier_ref="S1",
        currency="EUR",
        lines=[PurchaseOrderLine(line_no="10", item_id="A-1", quantity=Decimal(20), unit_price=1)],
    )
    ordered = ordered_quantities([po])
    half = _invoice("1001", "100.00", qty="10")
    other_half = _invoice("1002", "100.00", qty="10")
    full = _invoice("1003", "200.00", qty="20")
    full_again = _invoice("1004", "200.00", qty="20")
    column = FEATURE_NAMES.index("po_billed_ratio")
    assert pair_features(other_half, half, ordered)[column] == pytest.approx(1.0)
    assert pair_features(full_again, full, ordered)[column] == pytest.approx(2.0)
    assert len(pair_features(full_again, full, ordered)) == len(FEATURE_NAMES)


def test_exact_key_baseline_flags_only_same_number_and_gross() -> None:
    docs = _docs(
        _invoice("INV-1001", "1000.00"),
        _invoice("1001", "1000.00"),  # same normalised number and gross
        _invoice("INV-1OO1", "1000.00"),  # OCR misread: the exact key misses it
        _invoice("INV-1001", "1000.01"),  # a cent off: missed too
    )
    assert exact_key_flags(docs) == [None, "D0", None, None]


def test_choose_threshold_reaches_the_precision() -> None:
    scores = [0.99, 0.95, 0.9, 0.6, 0.4, 0.1]
    actual = [True, True, False, True, False, False]
    threshold = choose_threshold(scores, actual, min_precision=0.7)
    assert 0.4 < threshold <= 0.6
    assert choose_threshold(scores, actual, min_precision=1.0) > 0.9


def test_untrained_detector_refuses_to_score() -> None:
    with pytest.raises(RuntimeError):
        DuplicateDetector().pair_scores(np.zeros((1, len(FEATURE_NAMES))))
    with pytest.raises(ValueError, match="both"):
        DuplicateDetector().fit(np.zeros((3, len(FEATURE_NAMES))), np.zeros(3, dtype=np.int64))


# -- the bar on generated worlds ---------------------------------------------------------------

RECALL_BAR, PRECISION_BAR = 0.98, 0.95


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> DuplicateReport:
    folders = []
    for seed in (21, 22):
        folder = tmp_path_factory.mktemp(f"dup-world-{seed}")
        write_world(generate_world(WorldConfig(invoices=3000, seed=seed)), folder, pdf=False)
        folders.append(folder)
    return evaluate_duplicates(folders[0], folders[1])


def test_detector_reaches_the_bar_on_an_unseen_world(report: DuplicateReport) -> None:
    print(format_report(report))
    assert report.duplicates >= 20  # the world must hold enough duplicates to measure
    assert report.baseline_precision >= 0.95
    # The exact key misses the fuzzy variants; the model must not.
    assert report.baseline_recall < report.recall
    assert report.recall >= RECALL_BAR
    assert report.precision >= PRECISION_BAR
    assert report.pr_curve[-1][2] == 1.0  # every duplicate has a candidate and some score


# -- price anomaly -----------------------------------------------------------------------------


def test_price_anomaly_ranks_a_tripled_price_above_usual_ones() -> None:
    history = [
        _invoice(f"{1000 + n}", f"{100 + n % 7}.00", date(2026, 1, 5 + n % 20), po=f"45{n:08d}")
        for n in range(60)
    ]
    usual = _invoice("2001", "103.00", date(2026, 2, 2), po="4599999998")
    tripled = _invoice("2002", "310.00", date(2026, 2, 3), po="4599999999")
    scorer = PriceAnomalyScorer().fit(_docs(*history))
    scores = scorer.score(_docs(*history, usual, tripled))
    assert scores[-1] > scores[-2]
    features = price_features(_docs(*history, tripled))
    column = PRICE_FEATURE_NAMES.index("unit_price_vs_history")
    assert features[-1, column] == pytest.approx(np.log(3.1 / 1.03), abs=0.05)
    with pytest.raises(RuntimeError):
        PriceAnomalyScorer().score(_docs(usual))
