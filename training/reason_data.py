"""Reason-classifier datasets from generated worlds, and the train-on-one, test-on-another check.

A world folder (`tollgate generate`) holds the UBL documents in arrival order, the master data
and `truth.jsonl` (true `reasons`, `rule_decidable`, `supplier_ref`); `tollgate eval match
--findings-out <world>/findings.jsonl` adds the rule findings per document. The rules' own
codes are the baseline the model must beat.

`evaluate_reasons(train, test)` trains on one world (thresholds and calibration from its
out-of-fold predictions, never the test world) and scores the test world per code, overall and
on the ambiguous slice (`rule_decidable` false), beside the rules, with the expected
calibration error of all (document, code) probabilities.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.embeddings import TextEmbedder
from models.features import CaseFeatures, CaseInput, MasterData, RuleFinding, build_features
from models.reason import (
    ReasonModel,
    embed_texts,
    expected_calibration_error,
    macro_f1,
    per_code_scores,
)
from pipelines.canonical import GoodsReceipt, Invoice, PurchaseOrder, SupplierDocument
from pipelines.parsers import parse_document
from pipelines.parsers.errors import ParseError
from pipelines.reasons import ReasonCode

Scores = dict[str, tuple[float, float, float, int]]  # code -> precision, recall, F1, support


def default_cache_dir() -> Path:
    """Where embeddings are cached between runs (TOLLGATE_EMBEDDING_CACHE overrides)."""
    configured = os.environ.get("TOLLGATE_EMBEDDING_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "tollgate" / "embeddings"


@dataclass
class ReasonWorld:
    """A world's documents in arrival order with features, rule codes and true reasons."""

    files: list[str]
    features: CaseFeatures
    truth: list[set[str]]
    rules: list[set[str]]
    decidable: list[bool]
    scenarios: list[list[str]]


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def read_master(folder: Path) -> MasterData:
    """POs and (on-time) goods receipts from a world's `master/` folder."""
    master = folder / "master"
    orders = [
        PurchaseOrder.model_validate(po)
        for po in json.loads((master / "purchase_orders.json").read_text("utf-8"))
    ]
    receipts = [
        GoodsReceipt.model_validate(gr)
        for gr in json.loads((master / "goods_receipts.json").read_text("utf-8"))
    ]
    return MasterData.of(orders, receipts)


def load_world(folder: Path) -> ReasonWorld:
    """Parse a world's documents and read its truth, rule findings and master data."""
    findings_path = folder / "findings.jsonl"
    if not findings_path.is_file():
        raise FileNotFoundError(
            f"{findings_path} missing: run `tollgate eval match --world {folder} "
            f"--findings-out {findings_path}` first"
        )
    found = {r["file"]: r["findings"] for r in _read_jsonl(findings_path)}
    # truth.jsonl is written in arrival order, and file names sort the same way.
    truth = sorted(_read_jsonl(folder / "truth.jsonl"), key=lambda r: r["file"])
    cases: list[CaseInput] = []
    ubl = folder / "documents" / "ubl"
    for record in truth:
        document: SupplierDocument
        try:
            document = parse_document((ubl / f"{record['file']}.xml").read_bytes()).document
        except ParseError:
            # Unreadable: the rules report MISSING_DATA; the model sees an empty document.
            document = Invoice()
        findings = [RuleFinding.from_record(f) for f in found.get(record["file"], [])]
        cases.append(CaseInput(document, findings, record.get("supplier_ref")))
    features = build_features(cases, read_master(folder))
    return ReasonWorld(
        files=[r["file"] for r in truth],
        features=features,
        truth=[set(r["reasons"]) for r in truth],
        rules=[{f.code.value for f in case.findings} for case in cases],
        decidable=[bool(r["rule_decidable"]) for r in truth],
        scenarios=[list(r["scenarios"]) for r in truth],
    )


@dataclass
class SliceResult:
    """Per-code scores of the model and of the rules on one slice of the test world."""

    name: str
    documents: int
    model: Scores
    rules: Scores

    @property
    def model_macro_f1(self) -> float:
        """Macro-F1 of the model over the codes present in this slice's truth."""
        return macro_f1(self.model)

    @property
    def rules_macro_f1(self) -> float:
        """Macro-F1 of the rules over the codes present in this slice's truth."""
        return macro_f1(self.rules)


@dataclass
class ReasonReport:
    """What `evaluate_reasons` measured on the test world, with the fitted model."""

    model: ReasonModel
    slices: dict[str, SliceResult]
    ece: float  # over all (document, code) pairs, the bar's definition
    ece_active: float  # over pairs with probability >= 0.01 or a true code: the hard part
    modelled_codes: list[str]
    fallback_codes: list[str]
    train_documents: int
    test_documents: int
    test: ReasonWorld | None = None  # the scored test world (features, truth, scenarios)
    timings: dict[str, float] = field(default_factory=dict)
    texts_encoded: int = 0

    @property
    def overall_macro_f1(self) -> float:
        """The model's macro-F1 over all test documents."""
        return self.slices["overall"].model_macro_f1

    @property
    def ambiguous_gain(self) -> float:
        """Model minus rules macro-F1 on the ambiguous slice."""
        s = self.slices["ambiguous"]
        return s.model_macro_f1 - s.rules_macro_f1


def _slice(
    name: str, world: ReasonWorld, predicted: list[set[str]], mask: list[bool]
) -> SliceResult:
    truth = [t for t, m in zip(world.truth, mask, strict=True) if m]
    model = [p for p, m in zip(predicted, mask, strict=True) if m]
    rules = [r for r, m in zip(world.rules, mask, strict=True) if m]
    codes = [c.value for c in ReasonCode]
    return SliceResult(
        name,
        len(truth),
        per_code_scores(model, truth, codes),
        per_code_scores(rules, truth, codes),
    )


def evaluate_reasons(
    train_world: Path, test_world: Path, cache_dir: Path | None = None
) -> ReasonReport:
    """Train on one world, score the other per code and slice beside the rules."""
    timings: dict[str, float] = {}
    cache = cache_dir if cache_dir is not None else default_cache_dir()
    started = time.perf_counter()
    train, test = load_world(train_world), load_world(test_world)
    timings["load_and_featurise_s"] = time.perf_counter() - started
    started = time.perf_counter()
    embedder = TextEmbedder(cache)
    embed_texts(train.features, embedder)
    embed_texts(test.features, embedder)
    timings["embed_s"] = time.perf_counter() - started
    started = time.perf_counter()
    model = ReasonModel(embedding_cache=cache).fit(train.features, train.truth)
    timings["fit_s"] = time.perf_counter() - started
    started = time.perf_counter()
    probabilities = model.probability_matrix(test.features)
    predicted = [
        {c.value for c, on in zip(ReasonCode, row, strict=True) if on}
        for row in probabilities >= model.thresholds()
    ]
    timings["predict_s"] = time.perf_counter() - started
    labels = np.array([[c.value in t for c in ReasonCode] for t in test.truth], dtype=bool)
    # Most (document, code) pairs are confidently 0 and right; these are the rest.
    active = (probabilities >= 0.01) | labels
    everyone = [True] * len(test.truth)
    ambiguous = [not d for d in test.decidable]
    return ReasonReport(
        model=model,
        slices={
            "overall": _slice("overall", test, predicted, everyone),
            "ambiguous": _slice("ambiguous", test, predicted, ambiguous),
            "decidable": _slice("decidable", test, predicted, list(test.decidable)),
        },
        ece=expected_calibration_error(probabilities, labels),
        ece_active=expected_calibration_error(probabilities[active], labels[active]),
        modelled_codes=sorted(model.codes),
        fallback_codes=sorted(model.fallback),
        train_documents=len(train.truth),
        test_documents=len(test.truth),
        test=test,
        timings=timings,
        texts_encoded=embedder.encoded,
    )


def format_report(report: ReasonReport) -> str:
    """Per-code precision / recall / F1 for model and rules, per slice, and the headline bars."""
    out = [
        f"trained on {report.train_documents} documents, tested on {report.test_documents}; "
        f"modelled codes {len(report.modelled_codes)}, rule fallbacks {report.fallback_codes}",
    ]
    for s in report.slices.values():
        out.append(f"\n[{s.name}] {s.documents} documents")
        out.append(f"{'code':22} {'supp':>5}  {'model P/R/F1':>20}  {'rules P/R/F1':>20}")
        for code, (p, r, f1, support) in s.model.items():
            rp, rr, rf1, _ = s.rules[code]
            if support == 0 and p == 1.0 and rp == 1.0:
                continue  # nothing true, nothing predicted by either: no row to read
            model_prf = f"{p:6.3f} {r:6.3f} {f1:6.3f}"
            out.append(f"{code:22} {support:5d}  {model_prf}  {rp:6.3f} {rr:6.3f} {rf1:6.3f}")
        out.append(
            f"macro-F1 model {s.model_macro_f1:.4f}  rules {s.rules_macro_f1:.4f}  "
            f"(over codes with support)"
        )
    out.append(
        f"\nbars: overall macro-F1 {report.overall_macro_f1:.4f} (>= 0.95); ambiguous gain "
        f"{report.ambiguous_gain:+.4f} (>= +0.15); ECE {report.ece:.4f} (<= 0.05); "
        f"ECE on active pairs {report.ece_active:.4f}"
    )
    timing = ", ".join(f"{k} {v:.1f}" for k, v in report.timings.items())
    out.append(f"timings: {timing}; texts encoded this run: {report.texts_encoded}")
    return "\n".join(out)


if __name__ == "__main__":
    print(format_report(evaluate_reasons(Path(sys.argv[1]), Path(sys.argv[2]))))
