"""The scorer's fast paths compute exactly what the training-time code computes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from models.duplicates import PRICE_FEATURE_NAMES, PriceAnomalyScorer, price_features
from models.features import CaseInput, build_features
from models.scoring import (
    PriorDocument,
    ScoreBatch,
    ScoreItem,
    _fast_isolation_forest,
    target_features,
)
from pipelines.parsers import parse_document
from training.duplicates_data import load_world as load_duplicate_world
from training.reason_data import read_master
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("scoring-world") / "world"
    write_world(generate_world(WorldConfig(invoices=160, seed=17)), folder, pdf=False)
    return folder


def test_target_features_equal_build_features(world: Path) -> None:
    truth = [json.loads(x) for x in (world / "truth.jsonl").read_text().splitlines() if x]
    truth.sort(key=lambda r: r["file"])
    cases = [
        CaseInput(
            parse_document(
                (world / "documents" / "ubl" / f"{r['file']}.xml").read_bytes()
            ).document,
            (),
            r.get("supplier_ref"),
        )
        for r in truth
    ]
    master = read_master(world)
    every = build_features(cases, master)
    split = len(cases) - 25
    batch = ScoreBatch(
        master,
        [PriorDocument(str(i), c) for i, c in enumerate(cases[:split])],
        [ScoreItem(str(i), c) for i, c in enumerate(cases[split:], start=split)],
    )
    fast = target_features(batch)
    np.testing.assert_array_equal(fast.matrix, every.matrix[split:])
    assert fast.names == every.names
    assert fast.descriptions == every.descriptions[split:]
    assert fast.notes == every.notes[split:]


def test_fast_isolation_forest_gives_sklearns_scores(world: Path, tmp_path: Path) -> None:
    loaded = load_duplicate_world(world)
    invoices = [d for d in loaded.documents if d.document.kind == "invoice"]
    scorer = PriceAnomalyScorer(seed=3).fit(invoices)
    assert scorer.forest is not None
    sio.dump(scorer.forest, tmp_path / "price.skops")
    spec = {
        "kind": "skops-isolation-forest",
        "file": "price.skops",
        "features": list(PRICE_FEATURE_NAMES),
        "outputs": ["price_anomaly"],
    }
    head = _fast_isolation_forest(tmp_path, "price", spec)
    x = price_features(loaded.documents)
    expected = -scorer.forest.score_samples(x)
    np.testing.assert_array_equal(head.compute(x)["price_anomaly"], expected)
    np.testing.assert_array_equal(head.compute(x[:1])["price_anomaly"], expected[:1])
    # Far outside what it was fitted on, on split values exactly, and a missing value.
    rng = np.random.default_rng(5)
    odd = np.vstack([rng.normal(scale=50.0, size=(200, x.shape[1])), x[:20] * 1e6, x[:5]])
    odd[-5:] = x[:5].astype(np.float32)  # float32 values equal to the fitted ones
    np.testing.assert_array_equal(
        head.compute(odd)["price_anomaly"], -scorer.forest.score_samples(odd)
    )
    odd[3, 1] = np.nan
    assert np.isfinite(head.compute(odd[:5])["price_anomaly"]).all()
    assert head.compute(np.zeros((0, x.shape[1])))["price_anomaly"].shape == (0,)
