"""`tollgate train` / `models list` / `eval models` through typer's CliRunner, and the bars."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.settings import get_settings
from training.model_cards import ModelCard, render_card
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world
from training.train import EvalInputs, bar_failures

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("TOLLGATE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["train", "--help"], "anomaly"),
        (["train", "anomaly", "--help"], "--test-world"),
        (["train", "delay", "--help"], "--xes"),
        (["train", "all", "--help"], "--world"),
        (["models", "list", "--help"], "--json"),
        (["eval", "models", "--help"], "--xes"),
    ],
)
def test_help(command: list[str], expected: str) -> None:
    result = runner.invoke(cli, command)
    assert result.exit_code == 0, result.output
    assert expected in result.output


def test_train_needs_a_world(env: Path) -> None:
    assert runner.invoke(cli, ["train", "anomaly"]).exit_code == 2
    assert runner.invoke(cli, ["train", "delay"]).exit_code == 2
    result = runner.invoke(cli, ["train", "all", "--world", str(env / "nowhere")])
    assert result.exit_code == 2


def test_train_list_eval_delay(env: Path) -> None:
    world = env / "world"
    write_world(generate_world(WorldConfig(invoices=600, seed=13)), world, pdf=False)
    cards = env / "cards"
    result = runner.invoke(
        cli, ["train", "delay", "--world", str(world), "--cards-dir", str(cards)]
    )
    assert result.exit_code == 0, result.output
    assert "tollgate-delay" in result.output
    # Default store: sqlite under the data dir, artifacts beside it.
    assert (env / "mlflow" / "mlflow.db").is_file()
    assert any((env / "mlflow" / "artifacts").rglob("delay_p50.txt"))
    assert (cards / "tollgate-delay.md").is_file()

    listed = runner.invoke(cli, ["models", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["name"], r["version"], r["aliases"]) for r in rows] == [
        ("tollgate-delay", "1", ["challenger"])
    ]

    evaluated = runner.invoke(cli, ["eval", "models", "--world", str(world), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.output)
    assert report["ok"] is True
    (model,) = report["models"]
    assert (model["name"], model["version"], model["alias"], model["serving"]) == (
        "tollgate-delay",
        "1",
        "challenger",
        True,
    )
    assert model["run_id"] == rows[0]["run_id"]
    metrics = model["metrics"]
    assert metrics["test/mae_hours"] < metrics["test/baseline_queue_median_mae_hours"]

    text = runner.invoke(cli, ["eval", "models", "--world", str(world)])
    assert text.exit_code == 0
    assert "tollgate-delay v1 (challenger" in text.output


def test_bars() -> None:
    world_only = EvalInputs(world=Path("w"), xes=None)
    with_xes = EvalInputs(world=Path("w"), xes=Path("DomesticDeclarations.xes.gz"))
    assert bar_failures("anomaly", {"test/recall": 0.99, "test/precision": 0.96}, world_only) == []
    assert bar_failures("anomaly", {"test/recall": 0.97, "test/precision": 0.99}, world_only)
    assert bar_failures("anomaly", {"test/recall": 1.0, "test/precision": 0.94}, world_only)
    domestic = "bpic_DomesticDeclarations/mae_days"
    assert bar_failures("delay", {domestic: 3.5}, with_xes)
    assert bar_failures("delay", {domestic: 3.3}, with_xes) == []
    assert bar_failures("delay", {domestic: 3.5}, world_only) == []  # no --xes: no BPIC bar


def test_model_card_text_changes_only_in_ids_and_dates() -> None:
    def card(version: str, run_id: str, day: str, sha: str) -> str:
        return render_card(
            ModelCard(
                name="tollgate-delay",
                family="delay",
                version=version,
                run_id=run_id,
                alias="challenger",
                trained_on=day,
                git_sha=sha,
                purpose="p",
                data=["world `w`"],
                data_hash="ab" * 32,
                params={"seed": 7, "max_rounds": 2000},
                metrics={"test/mae_hours": 17.5, "test/queue_clean/mae_hours": 3.25},
                baselines={"test/baseline_queue_median_mae_hours": 25.0},
                limits=["synthetic"],
                heads=["hours"],
            )
        )

    one = card("1", "run-a", "2026-01-01", "abc").splitlines()
    two = card("2", "run-b", "2026-02-01", "def").splitlines()
    changed = [(a, b) for a, b in zip(one, two, strict=True) if a != b]
    assert [a.split(":")[0] for a, _ in changed] == [
        "- registered version",
        "- MLflow run id",
        "- trained",
    ]
    text = "\n".join(one)
    assert "### test/queue_clean" in text
    assert "| mae_hours | 17.5000 |" in text
