"""A small MLflow store with the three families, trained on a written world (for API tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from training.train import TrainResult, train_family

FAMILIES = ("reason", "anomaly", "delay")


def train_store(
    root: Path, world: Path, extra_delay_seed: int | None = None
) -> tuple[str, Path, dict[str, TrainResult]]:
    """Findings by the rules, then each family trained into `root/mlflow`: (uri, embeddings, runs).

    With `extra_delay_seed`, a second delay version is trained last (it carries `challenger`).
    """
    findings = world / "findings.jsonl"
    result = CliRunner().invoke(
        cli, ["eval", "match", "--world", str(world), "--findings-out", str(findings)]
    )
    assert result.exit_code in (0, 1), result.output  # 1: a rule bar missed; findings written
    (root / "mlflow").mkdir()
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    embeddings = root / "embeddings"
    with pytest.MonkeyPatch.context() as patch:
        # MLflow's set_tracking_uri exports MLFLOW_TRACKING_URI; setting it here first makes
        # the context restore the original (delenv of an unset name records nothing).
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.setenv("TOLLGATE_EMBEDDING_CACHE", str(embeddings))
        trained = {
            family: train_family(family, world=world, tracking_uri=uri, cards_dir=root / "cards")
            for family in FAMILIES
        }
        if extra_delay_seed is not None:
            trained["delay"] = train_family(
                "delay",
                world=world,
                tracking_uri=uri,
                cards_dir=root / "cards",
                params={"seed": extra_delay_seed},
            )
    return uri, embeddings, trained
