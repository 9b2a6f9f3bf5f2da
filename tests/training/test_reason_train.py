"""`tollgate-reason` via the training layer: trained, registered, loaded, scored unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pytest
from typer.testing import CliRunner

import models.reason
from app.cli import cli
from models.embeddings import TextEmbedder
from models.reason import (
    ReasonModel,
    calibrate,
    embed_texts,
    from_bundle,
    head_matrix,
    to_bundle,
)
from models.registry import CHALLENGER, ModelRegistry
from pipelines.reasons import ReasonCode
from training.reason_data import ReasonWorld, load_world
from training.reason_train import evaluate_reason, reason_bars, reason_metrics
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world
from training.train import EvalInputs, TrainResult, bar_failures, data_hash, train_family

CODES = [c.value for c in ReasonCode]


@dataclass(frozen=True)
class Trained:
    uri: str
    world: Path
    cards: Path
    result: TrainResult
    model: ReasonModel  # the in-memory model the trainer wrote into the bundle
    loaded: ReasonWorld  # the world's features with texts embedded


def _make_world(folder: Path, seed: int, invoices: int) -> None:
    write_world(generate_world(WorldConfig(invoices=invoices, seed=seed)), folder, pdf=False)
    findings = folder / "findings.jsonl"
    result = CliRunner().invoke(
        cli, ["eval", "match", "--world", str(folder), "--findings-out", str(findings)]
    )
    # Exit 1 only says a rule bar was missed; the findings are written either way.
    assert result.exit_code in (0, 1), result.output
    assert findings.is_file()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Trained]:
    root = tmp_path_factory.mktemp("reason-train")
    world = root / "world"
    _make_world(world, seed=41, invoices=800)
    (root / "mlflow").mkdir()
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    captured: list[ReasonModel] = []
    original = models.reason.to_bundle

    def spy(model: ReasonModel, folder: Path) -> dict[str, Any]:
        captured.append(model)
        return original(model, folder)

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOLLGATE_EMBEDDING_CACHE", str(root / "embeddings"))
        patch.setattr(models.reason, "to_bundle", spy)
        result = train_family("reason", world=world, tracking_uri=uri, cards_dir=root / "cards")
        loaded = load_world(world)
        embed_texts(loaded.features, TextEmbedder(root / "embeddings"))
        (model,) = captured
        yield Trained(uri, world, root / "cards", result, model, loaded)


def test_registered_as_challenger_with_card_plots_and_provenance(trained: Trained) -> None:
    assert (trained.result.name, trained.result.version) == ("tollgate-reason", "1")
    client = mlflow.tracking.MlflowClient(trained.uri)
    run = client.get_run(trained.result.run_id)
    files = [trained.world / "truth.jsonl", *sorted((trained.world / "master").glob("*.json"))]
    assert run.data.tags["data_hash"] == data_hash([*files, trained.world / "findings.jsonl"])
    assert run.data.params["metrics_slice"] == "train_oof"
    # No test world: the numbers are out-of-fold on the training world, and named so.
    assert not any(k.startswith("test/") for k in run.data.metrics)
    for key in (
        "train_oof/overall/macro_f1",
        "train_oof/decidable/macro_f1",
        "train_oof/ambiguous/macro_f1",
        "train_oof/ambiguous/baseline_rules_macro_f1",
        "train_oof/calibration/ece",
    ):
        assert key in run.data.metrics
    assert run.data.metrics["train_oof/overall/macro_f1"] > 0.8
    plots = {a.path for a in client.list_artifacts(trained.result.run_id, "plots")}
    assert plots == {"plots/reason_code_f1.png", "plots/reason_calibration.png"}

    card = (trained.cards / "tollgate-reason.md").read_text()
    assert trained.result.run_id in card
    assert "### train_oof/ambiguous" in card
    assert "out-of-fold, training world" in card
    assert "rule fallbacks" in card
    assert "ambiguous macro-F1 >= rules + 0.15" in card


def test_bundle_has_no_pickle(trained: Trained) -> None:
    root = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri="models:/tollgate-reason/1", tracking_uri=trained.uri
        )
    )
    (bundle_json,) = root.rglob("bundle.json")
    bundle = bundle_json.parent
    spec = json.loads(bundle_json.read_text())["heads"]["reason"]
    assert spec["kind"] == "reason"
    assert set(spec["files"]) == set(trained.model.codes)
    names = {p.name for p in bundle.iterdir()}
    assert not any(n.endswith((".pkl", ".pickle", ".joblib")) for n in names)
    for file in spec["files"].values():
        assert (bundle / file).read_text().startswith("tree")  # LightGBM's text format
    calibrators = json.loads((bundle / spec["calibrators"]).read_text())
    assert set(calibrators) == set(trained.model.codes)


def test_a_fresh_process_loads_the_reason_bundle(trained: Trained) -> None:
    # `tollgate eval models` loads every family in a process that never imported models.reason;
    # the registry must find the reason head's loader by itself.
    root = mlflow.artifacts.download_artifacts(
        artifact_uri="models:/tollgate-reason/1", tracking_uri=trained.uri
    )
    (bundle_json,) = Path(root).rglob("bundle.json")
    code = (
        "import sys; from pathlib import Path; from models.registry import load_bundle; "
        "print(sorted(load_bundle(Path(sys.argv[1])).heads))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(bundle_json.parent)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['reason']"


def test_registry_predictions_equal_the_in_memory_model(trained: Trained) -> None:
    loaded = ModelRegistry(trained.uri).load("reason")
    assert (loaded.name, loaded.version, loaded.alias) == ("tollgate-reason", "1", CHALLENGER)
    assert loaded.run_id == trained.result.run_id
    features = trained.loaded.features
    expected = trained.model.probability_matrix(features)
    assert expected.shape == (len(features), len(CODES))
    assert 0.0 < expected.mean() < 1.0  # not a constant model

    prediction = loaded.predict(head_matrix(features))
    assert (prediction.name, prediction.version, prediction.head) == (
        "tollgate-reason",
        "1",
        "reason",
    )
    got = np.column_stack([prediction.outputs[c] for c in CODES])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)

    # Raw records by feature name (what a service sends) give the same numbers.
    head = loaded.head()
    records = [dict(zip(head.features, row, strict=True)) for row in head_matrix(features)[:40]]
    by_record = loaded.predict_records(records)
    assert by_record.version == "1"
    got = np.column_stack([by_record.outputs[c] for c in CODES])
    np.testing.assert_allclose(got, expected[:40], rtol=0, atol=1e-9)
    thresholds = head.meta["thresholds"]
    np.testing.assert_array_equal([thresholds[c] for c in CODES], trained.model.thresholds())


def test_from_bundle_round_trip_keeps_predictions_and_explanations(
    trained: Trained, tmp_path: Path
) -> None:
    spec = to_bundle(trained.model, tmp_path)
    again = from_bundle(tmp_path, spec)
    features = trained.loaded.features
    assert again.predict(features) == trained.model.predict(features)
    row = next(i for i, truth in enumerate(trained.loaded.truth) if truth)
    code = next(iter(trained.loaded.truth[row] & set(trained.model.codes)), None)
    if code is None:
        code = next(iter(trained.model.codes))
    assert again.explain(features, row=row, code=code) == trained.model.explain(
        features, row=row, code=code
    )
    # A bundle written from a bundle is the same bundle.
    (tmp_path / "again").mkdir()
    assert to_bundle(again, tmp_path / "again") == spec


def test_calibration_shortcut_equals_scikit_learn(trained: Trained) -> None:
    # Out-of-range, exactly-on-threshold and in-between raw scores, per code.
    grid = np.concatenate([[-1.0, 0.0, 1.0, 2.0], np.linspace(0.0, 1.0, 2001)])
    for code, model in trained.model.codes.items():
        raw = np.concatenate([grid, model.calibrator.X_thresholds_])
        expected = model.calibrator.predict(raw)
        assert np.allclose(calibrate(model.calibrator, raw), expected, rtol=0, atol=1e-12), code


def test_text_projection_is_scikit_learns(trained: Trained) -> None:
    text = trained.loaded.features.text
    assert text is not None
    for index, name in enumerate(models.reason.TEXT_FIELDS):
        pca = trained.model._pca[name]
        if pca is None:
            continue
        block = text[:50, index * models.reason.DIMENSIONS : (index + 1) * models.reason.DIMENSIONS]
        assert np.array_equal(models.reason._project(pca, block), pca.transform(block))


def test_evaluator_scores_the_registered_version(trained: Trained) -> None:
    model = ModelRegistry(trained.uri).load_version("reason", "1")
    inputs = EvalInputs(world=trained.world, xes=None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TOLLGATE_EMBEDDING_CACHE", str(trained.world.parent / "embeddings"))
        metrics = evaluate_reason(model, inputs)
    probabilities = trained.model.probability_matrix(trained.loaded.features)
    expected = reason_metrics("test", probabilities, trained.model.thresholds(), trained.loaded)
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert bar_failures("reason", metrics, inputs) == reason_bars(metrics, inputs)


def test_missing_findings_say_how_to_make_them(tmp_path: Path) -> None:
    world = tmp_path / "bare"
    write_world(generate_world(WorldConfig(invoices=30, seed=3)), world, pdf=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ValueError, match="tollgate eval match --world") as caught:
        train_family("reason", world=world, tracking_uri=uri, cards_dir=tmp_path / "cards")
    assert "--findings-out" in str(caught.value)
    failures = reason_bars({}, EvalInputs(world=world, xes=None))
    assert len(failures) == 1 and "findings.jsonl" in failures[0]


def test_bars() -> None:
    inputs = EvalInputs(world=Path("w"), xes=None)
    good = {
        "test/overall/macro_f1": 0.96,
        "test/ambiguous/gain_over_rules": 0.2,
        "test/calibration/ece": 0.01,
    }
    assert bar_failures("reason", good, inputs) == []
    assert len(bar_failures("reason", {**good, "test/overall/macro_f1": 0.94}, inputs)) == 1
    assert len(bar_failures("reason", {**good, "test/ambiguous/gain_over_rules": 0.1}, inputs)) == 1
    assert len(bar_failures("reason", {**good, "test/calibration/ece": 0.06}, inputs)) == 1
    nan = {**good, "test/overall/macro_f1": float("nan")}
    assert len(bar_failures("reason", nan, inputs)) == 1  # no support is not a pass
    assert bar_failures("reason", {}, EvalInputs(world=None, xes=None)) == []
