"""Training registers `tollgate-anomaly` in MLflow; the registry serves it by alias, named."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.duplicates import FEATURE_NAMES, DuplicateDetector
from models.registry import CHALLENGER, CHAMPION, ModelRegistry, normalise_version
from training.duplicates_data import load_world, world_pairs
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world
from training.train import TrainResult, data_hash, train_family, world_files


@dataclass(frozen=True)
class Store:
    uri: str
    world: Path
    cards: Path
    first: TrainResult
    second: TrainResult
    features: np.ndarray  # candidate pair features of the world
    labels: np.ndarray


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("registry")
    world = root / "world"
    write_world(generate_world(WorldConfig(invoices=600, seed=11)), world, pdf=False)
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    (root / "mlflow").mkdir()
    cards = root / "cards"
    first = train_family("anomaly", world=world, tracking_uri=uri, cards_dir=cards)
    # Another seed changes LightGBM's bagging, so the two versions score differently.
    second = train_family(
        "anomaly", world=world, tracking_uri=uri, cards_dir=cards, params={"seed": 5}
    )
    pairs, labels = world_pairs(load_world(world), DuplicateDetector())
    return Store(uri, world, cards, first, second, pairs.features, labels)


def test_normalise_version() -> None:
    assert normalise_version(3) == "3"
    assert normalise_version("3") == "3"


def test_training_registers_challenger_with_card_and_provenance(store: Store) -> None:
    assert (store.first.version, store.second.version) == ("1", "2")
    registry = ModelRegistry(store.uri)
    versions = registry.versions("anomaly")
    assert [v.version for v in versions] == ["2", "1"]
    assert versions[0].aliases == (CHALLENGER,)  # the alias follows the newest training
    assert versions[1].aliases == ()
    assert versions[0].run_id == store.second.run_id

    run = mlflow.tracking.MlflowClient(store.uri).get_run(store.second.run_id)
    assert run.data.tags["data_hash"] == data_hash(world_files(store.world))
    assert run.data.params["seed"] == "5"
    assert "train_oof/recall" in run.data.metrics
    artifacts = {
        a.path
        for a in mlflow.tracking.MlflowClient(store.uri).list_artifacts(
            store.second.run_id, "plots"
        )
    }
    assert artifacts == {"plots/duplicates_pr_curve.png", "plots/duplicates_feature_importance.png"}

    info = mlflow.models.get_model_info("models:/tollgate-anomaly/2")
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(FEATURE_NAMES)
    assert info.saved_input_example_info is not None
    requirements = Path(
        mlflow.artifacts.download_artifacts("models:/tollgate-anomaly/2/requirements.txt")
    ).read_text()
    assert "lightgbm==" in requirements
    assert "torch" not in requirements

    card = (store.cards / "tollgate-anomaly.md").read_text()
    assert store.second.run_id in card
    assert "registered version: 2" in card
    assert data_hash(world_files(store.world)) in card
    assert "### train_oof" in card


def test_registry_loads_challenger_and_names_every_prediction(store: Store) -> None:
    registry = ModelRegistry(store.uri)
    model = registry.load("anomaly")  # fresh install: no champion yet
    assert (model.name, model.version, model.alias) == ("tollgate-anomaly", "2", CHALLENGER)
    assert model.run_id == store.second.run_id
    assert set(model.heads) == {"duplicate", "price"}

    prediction = model.predict(store.features, "duplicate")
    assert (prediction.name, prediction.version, prediction.run_id) == (
        "tollgate-anomaly",
        "2",
        store.second.run_id,
    )
    scores = np.asarray(prediction.outputs["p_duplicate"])
    assert ((scores >= 0) & (scores <= 1)).all()
    # The model separates what it was trained on: duplicates score high, the rest low.
    assert scores[store.labels == 1].min() > 0.5
    assert np.mean(scores[store.labels == 0] > 0.5) < 0.01

    # The pyfunc face of the same version gives the native booster's numbers.
    pyfunc = mlflow.pyfunc.load_model("models:/tollgate-anomaly/2")
    frame = pd.DataFrame(store.features[:50], columns=list(FEATURE_NAMES))
    wrapped = np.asarray(pyfunc.predict(frame)["p_duplicate"])
    np.testing.assert_allclose(wrapped, scores[:50])


def test_load_resolves_once_until_refresh(store: Store) -> None:
    registry = ModelRegistry(store.uri)
    first = registry.load("anomaly")
    assert registry.load("anomaly") is first
    registry.set_alias("anomaly", CHAMPION, "1")
    try:
        assert registry.load("anomaly").version == first.version  # still the cached version
        registry.refresh("anomaly")
        promoted = registry.load("anomaly")
        assert (promoted.version, promoted.alias) == ("1", CHAMPION)  # champion before challenger
    finally:
        mlflow.tracking.MlflowClient(store.uri).delete_registered_model_alias(
            "tollgate-anomaly", CHAMPION
        )


def test_alias_move_while_scoring_names_the_version_that_scored(store: Store) -> None:
    rows = store.features[:200]
    serving = ModelRegistry(store.uri)
    expected = {
        v: serving.load_version("anomaly", v).predict(rows, "duplicate").outputs["p_duplicate"]
        for v in ("1", "2")
    }
    assert expected["1"] != expected["2"]  # otherwise the test could not tell them apart
    admin = ModelRegistry(store.uri)  # an ML engineer moving the alias from elsewhere
    admin.set_alias("anomaly", CHAMPION, "1")
    moves = {10: "2", 20: "1"}
    seen: list[str] = []
    stale: list[str] = []
    try:
        for i in range(30):
            if i in moves:
                mover = threading.Thread(
                    target=admin.set_alias, args=("anomaly", CHAMPION, moves[i])
                )
                mover.start()
                mover.join()
                # Until the service refreshes, it keeps scoring with the version it resolved.
                before = serving.load("anomaly").predict(rows, "duplicate")
                stale.append(before.version)
                assert before.outputs["p_duplicate"] == expected[before.version]
                serving.refresh()
            prediction = serving.load("anomaly").predict(rows, "duplicate")
            assert prediction.outputs["p_duplicate"] == expected[prediction.version]
            assert prediction.run_id == (
                store.first.run_id if prediction.version == "1" else store.second.run_id
            )
            seen.append(prediction.version)
    finally:
        mlflow.tracking.MlflowClient(store.uri).delete_registered_model_alias(
            "tollgate-anomaly", CHAMPION
        )
    assert seen == ["1"] * 10 + ["2"] * 10 + ["1"] * 10
    assert stale == ["1", "2"]
