"""Duplicate-detector datasets from generated worlds, and the train-on-one, test-on-another check.

A world folder (`tollgate generate`) holds the UBL documents in arrival order, the master data
and `truth.jsonl`, whose `duplicate_of` names the original of each re-sent document. Pairs are
blocked as the detector blocks them in service; a pair is positive when the later document is
a duplicate of exactly the earlier one.

`evaluate_duplicates(train, test)` trains on one world, picks the document-level threshold on
the training world's out-of-fold scores (never on the test world) and reports the test world's
recall and precision beside the exact-key baseline's.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

from models.duplicates import (
    CandidateDocument,
    CandidatePairs,
    DuplicateDetector,
    PriceAnomalyScorer,
    build_pairs,
    choose_threshold,
    document_scores,
    exact_key_flags,
    ordered_quantities,
    pr_curve,
    precision_recall,
    supplier_key,
)
from pipelines.canonical import PurchaseOrder
from pipelines.parsers import parse_document

# The threshold is chosen on the training world with a margin above the 0.95 bar.
TARGET_PRECISION = 0.97
FOLDS = 5


@dataclass(frozen=True)
class LabelledWorld:
    """A world's documents in arrival order with their duplicate truth."""

    documents: list[CandidateDocument]
    duplicate_of: list[str | None]  # doc_id of the original, per document
    scenario: list[str]  # the duplicate scenario (or "" when not a duplicate)
    ordered: dict[str, dict[str, Decimal]]
    scenarios: list[list[str]] = field(default_factory=list)


def load_world(folder: Path) -> LabelledWorld:
    """Read a generated world's UBL documents, truth and purchase orders."""
    truth = [
        json.loads(line)
        for line in (folder / "truth.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    orders = [
        PurchaseOrder.model_validate(po)
        for po in json.loads((folder / "master" / "purchase_orders.json").read_text("utf-8"))
    ]
    documents: list[CandidateDocument] = []
    ubl = folder / "documents" / "ubl"
    # truth.jsonl is written in arrival order, and file names sort the same way.
    for record in sorted(truth, key=lambda r: r["file"]):
        parsed = parse_document((ubl / f"{record['file']}.xml").read_bytes()).document
        # The generator's master-data key stands in for supplier resolution, which runs before
        # scoring in service; unknown suppliers fall back to VAT id / IBAN / name.
        documents.append(
            CandidateDocument(
                record["doc_id"], parsed, supplier_key(parsed, record["supplier_ref"])
            )
        )
    ordered_truth = sorted(truth, key=lambda r: r["file"])
    return LabelledWorld(
        documents=documents,
        duplicate_of=[r["duplicate_of"] for r in ordered_truth],
        scenario=[
            next((s for s in r["scenarios"] if s.startswith("duplicate_")), "")
            for r in ordered_truth
        ],
        ordered=ordered_quantities(orders),
        scenarios=[list(r["scenarios"]) for r in ordered_truth],
    )


def pair_labels(world: LabelledWorld, pairs: CandidatePairs) -> NDArray[np.int64]:
    """1 where the later document of a pair is a duplicate of the earlier one."""
    ids = [d.doc_id for d in world.documents]
    return np.asarray(
        [
            int(world.duplicate_of[later] == ids[earlier])
            for later, earlier in zip(pairs.later, pairs.earlier, strict=True)
        ],
        dtype=np.int64,
    )


def world_pairs(
    world: LabelledWorld, detector: DuplicateDetector
) -> tuple[CandidatePairs, NDArray[np.int64]]:
    """Blocked, featurised and labelled pairs of a world."""
    pairs = build_pairs(
        world.documents,
        world.ordered,
        detector.window_days,
        detector.gross_band,
    )
    return pairs, pair_labels(world, pairs)


def out_of_fold_scores(
    detector: DuplicateDetector, pairs: CandidatePairs, labels: NDArray[np.int64]
) -> NDArray[np.float64]:
    """Pair scores on the training world where no pair is scored by a model that saw it.

    Folds group pairs by their later document, so a document's candidates share a fold.
    """
    scores = np.zeros(len(labels), dtype=np.float64)
    folds = GroupKFold(n_splits=FOLDS)
    for train_idx, test_idx in folds.split(pairs.features, labels, groups=pairs.later):
        fold = DuplicateDetector(seed=detector.seed)
        fold.fit(pairs.features[train_idx], labels[train_idx])
        scores[test_idx] = fold.pair_scores(pairs.features[test_idx])
    return scores


@dataclass(frozen=True)
class DuplicateReport:
    """How the detector did on a test world, beside the exact-key baseline."""

    threshold: float
    recall: float
    precision: float
    baseline_recall: float
    baseline_precision: float
    pr_curve: list[tuple[float, float, float]]  # (threshold, precision, recall), test world
    documents: int
    duplicates: int
    flagged: int
    blocking_recall: float  # share of duplicates whose original is among their candidates
    named_original_share: float  # of the duplicates caught, share naming the right original
    recall_by_scenario: dict[str, float]
    false_positive_scenarios: dict[str, int]
    train_pairs: int
    test_pairs: int
    seconds: dict[str, float]
    importance: dict[str, float]


def evaluate_duplicates(train_world: Path, test_world: Path) -> DuplicateReport:
    """Train on one world, choose the threshold there, report recall/precision on another."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    train = load_world(train_world)
    test = load_world(test_world)
    seconds["load"] = time.perf_counter() - start

    start = time.perf_counter()
    detector = DuplicateDetector()
    train_pairs, train_labels = world_pairs(train, detector)
    oof = out_of_fold_scores(detector, train_pairs, train_labels)
    train_docs = document_scores(train.documents, train_pairs, oof)
    detector.threshold = choose_threshold(
        [s.score for s in train_docs], [d is not None for d in train.duplicate_of], TARGET_PRECISION
    )
    detector.fit(train_pairs.features, train_labels)
    seconds["train"] = time.perf_counter() - start

    start = time.perf_counter()
    test_pairs, test_labels = world_pairs(test, detector)
    scored = document_scores(test.documents, test_pairs, detector.pair_scores(test_pairs.features))
    seconds["score"] = time.perf_counter() - start

    actual = [d is not None for d in test.duplicate_of]
    predicted = [s.score >= detector.threshold for s in scored]
    precision, recall = precision_recall(predicted, actual)
    baseline = exact_key_flags(test.documents)
    base_precision, base_recall = precision_recall([b is not None for b in baseline], actual)

    blocked = {(int(a), int(b)) for a, b in zip(test_pairs.later, test_pairs.earlier, strict=True)}
    index = {d.doc_id: i for i, d in enumerate(test.documents)}
    dup_positions = [i for i, d in enumerate(test.duplicate_of) if d is not None]
    in_block = sum(1 for i in dup_positions if (i, index[test.duplicate_of[i] or ""]) in blocked)
    caught = [i for i in dup_positions if predicted[i]]
    named = sum(1 for i in caught if scored[i].candidate_id == test.duplicate_of[i])

    by_scenario: dict[str, list[bool]] = {}
    for i in dup_positions:
        by_scenario.setdefault(test.scenario[i], []).append(predicted[i])
    false_positives = Counter(
        "+".join(test.scenarios[i]) or "clean"
        for i in range(len(actual))
        if predicted[i] and not actual[i]
    )
    return DuplicateReport(
        threshold=detector.threshold,
        recall=recall,
        precision=precision,
        baseline_recall=base_recall,
        baseline_precision=base_precision,
        pr_curve=pr_curve([s.score for s in scored], actual),
        documents=len(actual),
        duplicates=len(dup_positions),
        flagged=sum(predicted),
        blocking_recall=in_block / len(dup_positions) if dup_positions else 1.0,
        named_original_share=named / len(caught) if caught else 1.0,
        recall_by_scenario={k: sum(v) / len(v) for k, v in sorted(by_scenario.items())},
        false_positive_scenarios=dict(false_positives),
        train_pairs=len(train_labels),
        test_pairs=len(test_labels),
        seconds=seconds,
        importance=detector.feature_importance(),
    )


def format_report(report: DuplicateReport) -> str:
    """A short text summary of a report."""
    top = sorted(report.importance.items(), key=lambda kv: -kv[1])[:8]
    lines = [
        f"documents {report.documents}, duplicates {report.duplicates}, "
        f"pairs train/test {report.train_pairs}/{report.test_pairs}",
        f"model     recall {report.recall:.3f}  precision {report.precision:.3f}  "
        f"(threshold {report.threshold:.3f}, flagged {report.flagged})",
        f"exact key recall {report.baseline_recall:.3f}  precision {report.baseline_precision:.3f}",
        f"blocking recall {report.blocking_recall:.3f}, "
        f"right original named {report.named_original_share:.3f}",
        "recall by scenario: "
        + ", ".join(f"{k} {v:.2f}" for k, v in report.recall_by_scenario.items()),
        f"false positives: {report.false_positive_scenarios}",
        "seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()),
        "top features (gain): " + ", ".join(f"{k} {v:.0f}" for k, v in top),
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class PriceAnomalyReport:
    """How well the unsupervised price score ranks the price-anomaly scenarios of a test world."""

    auc: dict[str, float]  # per scenario: ROC AUC against the invoices with no PRICE_ANOMALY
    recall_at_top: dict[str, float]  # share of the scenario's invoices in the top `top_share`
    top_share: float
    invoices: int


PRICE_SCENARIOS = ("unusual_price", "split_below_limit")


def evaluate_price_anomaly(
    train_world: Path, test_world: Path, top_share: float = 0.02
) -> PriceAnomalyReport:
    """Fit the price scorer on one world, rank the invoices of another."""
    train, test = load_world(train_world), load_world(test_world)
    scorer = PriceAnomalyScorer().fit([d for d in train.documents if d.document.kind == "invoice"])
    scores = scorer.score(test.documents)
    invoices = [i for i, d in enumerate(test.documents) if d.document.kind == "invoice"]
    cut = np.quantile(scores[invoices], 1 - top_share)
    normal = [i for i in invoices if not set(PRICE_SCENARIOS) & set(test.scenarios[i])]
    auc: dict[str, float] = {}
    recall: dict[str, float] = {}
    for scenario in PRICE_SCENARIOS:
        hits = [i for i in invoices if scenario in test.scenarios[i]]
        if not hits:
            continue
        idx = hits + normal
        labels = [1] * len(hits) + [0] * len(normal)
        auc[scenario] = float(roc_auc_score(labels, scores[idx]))
        recall[scenario] = float(np.mean(scores[hits] >= cut))
    return PriceAnomalyReport(auc, recall, top_share, len(invoices))


if __name__ == "__main__":
    train_path, test_path = Path(sys.argv[1]), Path(sys.argv[2])
    print(format_report(evaluate_duplicates(train_path, test_path)))
    price = evaluate_price_anomaly(train_path, test_path)
    print(
        f"price anomaly AUC {price.auc}, recall in top {price.top_share:.0%} {price.recall_at_top}"
    )
