"""Train a model family, log it to MLflow, register it as `challenger` and write its model card.

`train_family(family, world=..., ...)` looks the family up in `FAMILY_TRAINERS`. A trainer
takes a `TrainContext` and returns a `FamilyOutput`: the bundle heads it wrote into
`ctx.bundle_dir` (native LightGBM text files, skops for scikit-learn, JSON for encoders), the
metrics per slice, the plots and what the model card says. Everything MLflow-specific (run,
params, tags, artifacts, signature, registration, alias, card) is done here, once, for all
families. A new family (the reason classifier) registers itself with `@register_family("reason")`
in its own module and is imported by `load_family_trainers()`.
"""

from __future__ import annotations

import getpass
import hashlib
import importlib
import importlib.metadata
import json
import math
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from models.delay import DELAY_CATEGORICAL, delay_feature_names, delay_features
from models.registry import (
    BUNDLE_DIR,
    BUNDLE_FORMAT,
    CHALLENGER,
    EXPERIMENT,
    LoadedModel,
    artifact_root_for,
    default_tracking_uri,
    normalise_version,
    registered_name,
    use_store,
)
from models.runs import SNAPSHOT_TAG, TRAINED_BY_TAG
from training.model_cards import ModelCard, write_card

REPO_ROOT = Path(__file__).resolve().parents[1]
Progress = Callable[[str, int, int], None]  # (step, done, total)

# Bars that `tollgate eval models` enforces (DESIGN section 6 and the issue).
DUPLICATE_MIN_RECALL = 0.98
DUPLICATE_MIN_PRECISION = 0.95
BPIC_DOMESTIC_MAX_MAE_DAYS = 3.4

# Model requirements are written out, not inferred: inference takes 8-14 s in a subprocess and
# leaks the CUDA torch pin of the training venv into requirements.txt.
_MODEL_PACKAGES = ("mlflow-skinny", "lightgbm", "numpy", "pandas", "scikit-learn", "skops")


def pip_requirements() -> list[str]:
    """Exact pins of what loading a bundle needs, read from the installed distributions."""
    out = []
    for dist in _MODEL_PACKAGES:
        try:
            out.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            out.append(dist)
    return out


# -- the family extension point --------------------------------------------------------------


@dataclass
class TrainContext:
    """Inputs of one training run."""

    family: str
    world: Path | None
    test_world: Path | None
    xes: Path | None
    bundle_dir: Path  # write the bundle files here
    plots_dir: Path  # write PNG plots here
    progress: Progress
    params: dict[str, object] = field(default_factory=dict)  # overrides, e.g. {"seed": 3}


@dataclass
class FamilyOutput:
    """What a family trainer hands back; `heads` is the bundle.json `heads` mapping."""

    heads: dict[str, dict[str, Any]]
    default_head: str
    metrics: dict[str, float]  # "slice/metric" -> value
    params: dict[str, object]
    input_example: Any  # pandas DataFrame of raw records for the default head
    output_example: Any  # pandas DataFrame of its outputs
    data: list[str]  # card lines: data source and size
    data_files: list[Path]  # hashed into the data hash
    purpose: str
    limits: list[str]
    baselines: dict[str, float] = field(default_factory=dict)
    bars: list[str] = field(default_factory=list)


FamilyTrainer = Callable[[TrainContext], FamilyOutput]
FAMILY_TRAINERS: dict[str, FamilyTrainer] = {}
# Modules that register further families when imported (kept optional: a family whose code is
# not there yet is simply not offered).
EXTRA_FAMILY_MODULES: tuple[str, ...] = ("training.reason_train",)


def register_family(name: str) -> Callable[[FamilyTrainer], FamilyTrainer]:
    """Decorator: make a trainer available to `train_family(name, ...)` and the CLI."""

    def wrap(trainer: FamilyTrainer) -> FamilyTrainer:
        FAMILY_TRAINERS[name] = trainer
        return trainer

    return wrap


def load_family_trainers() -> dict[str, FamilyTrainer]:
    """The registered trainers, after importing the optional family modules that exist."""
    for module in EXTRA_FAMILY_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
    return dict(FAMILY_TRAINERS)


# -- provenance ------------------------------------------------------------------------------


def data_hash(files: Iterable[Path]) -> str:
    """sha256 over the files' names and bytes, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(set(files), key=lambda p: (p.name, str(p))):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def world_files(world: Path) -> list[Path]:
    """The files that define a world's labels and master data."""
    return [world / "truth.jsonl", *sorted((world / "master").glob("*.json"))]


def git_sha() -> str:
    """The checked-out commit, or "" outside a git checkout."""
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        done = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [git, "rev-parse", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _read_truth(world: Path) -> list[dict[str, Any]]:
    text = (world / "truth.jsonl").read_text(encoding="utf-8")
    return sorted((json.loads(x) for x in text.splitlines() if x.strip()), key=lambda r: r["file"])


def _require_world(world: Path | None, family: str) -> Path:
    if world is None or not (world / "truth.jsonl").is_file():
        raise ValueError(f"family {family} needs a generated world folder (with truth.jsonl)")
    return world


# -- plots -----------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never a display
    import matplotlib.pyplot as plt

    return plt


def plot_importance(path: Path, importance: Mapping[str, float], title: str) -> Path:
    """Horizontal bar chart of the top 20 features by gain."""
    plt = _pyplot()
    top = sorted(importance.items(), key=lambda kv: -kv[1])[:20][::-1]
    fig, ax = plt.subplots(figsize=(7, 6))
    ax.barh([k for k, _ in top], [v for _, v in top])
    ax.set_xlabel("gain")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_pr_curve(
    path: Path,
    curve: Sequence[tuple[float, float, float]],
    baseline: tuple[float, float],
    threshold: float,
    title: str,
) -> Path:
    """Precision-recall curve of the document scores, the threshold and the baseline point."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([r for _, _, r in curve], [p for _, p, _ in curve], label="model")
    at = [(p, r) for t, p, r in curve if t >= threshold]
    if at:
        ax.scatter([at[-1][1]], [at[-1][0]], color="red", zorder=3, label="threshold")
    ax.scatter([baseline[1]], [baseline[0]], marker="x", color="black", label="exact key")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_predicted_vs_actual(
    folder: Path, predicted: np.ndarray, actual: np.ndarray, unit: str, stem: str
) -> list[Path]:
    """Scatter of predicted against actual, and a histogram of residuals."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(actual, predicted, s=4, alpha=0.4)
    top = float(max(np.max(actual, initial=1.0), np.max(predicted, initial=1.0)))
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set_xlabel(f"actual ({unit})")
    ax.set_ylabel(f"predicted p50 ({unit})")
    ax.set_title(f"{stem}: predicted vs actual")
    fig.tight_layout()
    scatter = folder / f"{stem}_predicted_vs_actual.png"
    fig.savefig(scatter, dpi=90)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.hist(predicted - actual, bins=60)
    ax.set_xlabel(f"predicted - actual ({unit})")
    ax.set_title(f"{stem}: residuals")
    fig.tight_layout()
    hist = folder / f"{stem}_residuals.png"
    fig.savefig(hist, dpi=90)
    plt.close(fig)
    return [scatter, hist]


# -- anomaly family --------------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateMetrics:
    """Document-level duplicate metrics of one scored world."""

    recall: float
    precision: float
    baseline_recall: float
    baseline_precision: float
    average_precision: float
    documents: int
    duplicates: int
    curve: list[tuple[float, float, float]]
    recall_by_scenario: dict[str, float]


def duplicate_metrics(
    world: Any, doc_scores: Sequence[float], threshold: float
) -> DuplicateMetrics:
    """Recall/precision at the threshold, average precision and the exact-key baseline."""
    from sklearn.metrics import average_precision_score

    from models.duplicates import exact_key_flags, pr_curve, precision_recall

    actual = [d is not None for d in world.duplicate_of]
    predicted = [s >= threshold for s in doc_scores]
    precision, recall = precision_recall(predicted, actual)
    baseline = [b is not None for b in exact_key_flags(world.documents)]
    base_precision, base_recall = precision_recall(baseline, actual)
    by_scenario: dict[str, list[bool]] = defaultdict(list)
    for i, is_dup in enumerate(actual):
        if is_dup:
            by_scenario[world.scenario[i] or "unlabelled"].append(predicted[i])
    ap = float(average_precision_score(actual, doc_scores)) if any(actual) else math.nan
    return DuplicateMetrics(
        recall=recall,
        precision=precision,
        baseline_recall=base_recall,
        baseline_precision=base_precision,
        average_precision=ap,
        documents=len(actual),
        duplicates=sum(actual),
        curve=pr_curve(list(doc_scores), actual),
        recall_by_scenario={k: sum(v) / len(v) for k, v in sorted(by_scenario.items())},
    )


def _duplicate_metric_dict(prefix: str, m: DuplicateMetrics) -> dict[str, float]:
    out = {
        f"{prefix}/recall": m.recall,
        f"{prefix}/precision": m.precision,
        f"{prefix}/average_precision": m.average_precision,
        f"{prefix}/baseline_exact_key_recall": m.baseline_recall,
        f"{prefix}/baseline_exact_key_precision": m.baseline_precision,
        f"{prefix}/documents": float(m.documents),
        f"{prefix}/duplicates": float(m.duplicates),
    }
    for scenario, value in m.recall_by_scenario.items():
        out[f"{prefix}/scenario_{scenario}/recall"] = value
    return out


def price_auc(scores: np.ndarray, scenarios: Sequence[Sequence[str]], kinds: Sequence[str]) -> dict:
    """ROC AUC of the price score per price scenario, against invoices with neither scenario."""
    from sklearn.metrics import roc_auc_score

    from training.duplicates_data import PRICE_SCENARIOS

    invoices = [i for i, k in enumerate(kinds) if k == "invoice"]
    normal = [i for i in invoices if not set(PRICE_SCENARIOS) & set(scenarios[i])]
    out: dict[str, float] = {}
    for scenario in PRICE_SCENARIOS:
        hits = [i for i in invoices if scenario in scenarios[i]]
        if hits and normal:
            labels = [1] * len(hits) + [0] * len(normal)
            out[scenario] = float(roc_auc_score(labels, scores[hits + normal]))
    return out


def score_anomaly_world(model: LoadedModel, world_dir: Path) -> dict[str, float]:
    """Score a held-out world with a loaded anomaly model: duplicate and price metrics."""
    from models.duplicates import build_pairs, document_scores, price_features
    from training.duplicates_data import load_world

    world = load_world(world_dir)
    meta = model.head("duplicate").meta
    from decimal import Decimal

    pairs = build_pairs(
        world.documents, world.ordered, int(meta["window_days"]), Decimal(str(meta["gross_band"]))
    )
    scores = np.asarray(model.predict(pairs.features, "duplicate").outputs["p_duplicate"])
    docs = document_scores(world.documents, pairs, scores)
    metrics = _duplicate_metric_dict(
        "test", duplicate_metrics(world, [d.score for d in docs], float(meta["threshold"]))
    )
    if "price" in model.heads:
        price = np.asarray(
            model.predict(price_features(world.documents), "price").outputs["price_anomaly"]
        )
        kinds = [d.document.kind for d in world.documents]
        for scenario, auc in price_auc(price, world.scenarios, kinds).items():
            metrics[f"test/price_{scenario}/auc"] = auc
    return metrics


@register_family("anomaly")
def train_anomaly(ctx: TrainContext) -> FamilyOutput:
    """Duplicate pair classifier (threshold from out-of-fold scores) and price IsolationForest."""
    import pandas as pd
    import skops.io as sio

    from models.duplicates import (
        FEATURE_NAMES,
        PRICE_FEATURE_NAMES,
        DuplicateDetector,
        PriceAnomalyScorer,
        choose_threshold,
        document_scores,
    )
    from training.duplicates_data import (
        TARGET_PRECISION,
        load_world,
        out_of_fold_scores,
        world_pairs,
    )

    world_dir = _require_world(ctx.world, "anomaly")
    seed = int(str(ctx.params.get("seed", 0)))
    steps = 6 if ctx.test_world else 5
    ctx.progress("reading world", 0, steps)
    train = load_world(world_dir)
    ctx.progress("blocking pairs", 1, steps)
    detector = DuplicateDetector(seed=seed)
    pairs, labels = world_pairs(train, detector)
    ctx.progress("out-of-fold scores", 2, steps)
    oof = out_of_fold_scores(detector, pairs, labels)
    oof_docs = [s.score for s in document_scores(train.documents, pairs, oof)]
    detector.threshold = choose_threshold(
        oof_docs, [d is not None for d in train.duplicate_of], TARGET_PRECISION
    )
    ctx.progress("fitting", 3, steps)
    detector.fit(pairs.features, labels)
    invoices = [d for d in train.documents if d.document.kind == "invoice"]
    price = PriceAnomalyScorer(seed=seed).fit(invoices)
    assert detector.classifier is not None and price.forest is not None
    detector.classifier.booster_.save_model(str(ctx.bundle_dir / "duplicate.txt"))
    sio.dump(price.forest, ctx.bundle_dir / "price.skops")

    oof_metrics = duplicate_metrics(train, oof_docs, detector.threshold)
    metrics = _duplicate_metric_dict("train_oof", oof_metrics)
    metrics["train_oof/pairs"] = float(len(labels))
    shown, shown_name = oof_metrics, "out-of-fold, training world"
    ctx.progress("scoring", 4, steps)
    if ctx.test_world is not None:
        from models.duplicates import build_pairs

        test = load_world(ctx.test_world)
        test_pairs = build_pairs(
            test.documents, test.ordered, detector.window_days, detector.gross_band
        )
        test_docs = document_scores(
            test.documents, test_pairs, detector.pair_scores(test_pairs.features)
        )
        shown = duplicate_metrics(test, [d.score for d in test_docs], detector.threshold)
        shown_name = "held-out test world"
        metrics.update(_duplicate_metric_dict("test", shown))
        price_scores = price.score(test.documents)
        kinds = [d.document.kind for d in test.documents]
        for scenario, auc in price_auc(price_scores, test.scenarios, kinds).items():
            metrics[f"test/price_{scenario}/auc"] = auc
        ctx.progress("plots", 5, steps)
    plot_pr_curve(
        ctx.plots_dir / "duplicates_pr_curve.png",
        shown.curve,
        (shown.baseline_precision, shown.baseline_recall),
        detector.threshold,
        f"duplicates: {shown_name}",
    )
    plot_importance(
        ctx.plots_dir / "duplicates_feature_importance.png",
        detector.feature_importance(),
        "duplicate pair classifier: gain",
    )
    ctx.progress("done", steps, steps)

    example = pd.DataFrame(pairs.features[:5], columns=list(FEATURE_NAMES))
    out_example = pd.DataFrame({"p_duplicate": detector.pair_scores(pairs.features[:5])})
    data = [
        f"training world `{world_dir.name}`: {len(train.documents)} documents, "
        f"{sum(d is not None for d in train.duplicate_of)} duplicates, {len(labels)} pairs"
    ]
    files = world_files(world_dir)
    if ctx.test_world is not None:
        data.append(f"test world `{ctx.test_world.name}` (held out; metrics slice `test`)")
    held = "test" if ctx.test_world is not None else "train_oof"
    return FamilyOutput(
        heads={
            "duplicate": {
                "kind": "lightgbm",
                "files": {"p_duplicate": "duplicate.txt"},
                "features": list(FEATURE_NAMES),
                "outputs": ["p_duplicate"],
                "meta": {
                    "threshold": detector.threshold,
                    "window_days": detector.window_days,
                    "gross_band": str(detector.gross_band),
                    "score": "max over blocked earlier candidates of P(duplicate)",
                },
            },
            "price": {
                "kind": "skops-isolation-forest",
                "file": "price.skops",
                "features": list(PRICE_FEATURE_NAMES),
                "outputs": ["price_anomaly"],
            },
        },
        default_head="duplicate",
        metrics=metrics,
        params={
            "seed": seed,
            "threshold": round(detector.threshold, 6),
            "target_precision": TARGET_PRECISION,
            "window_days": detector.window_days,
            "gross_band": str(detector.gross_band),
            "n_estimators": 200,
            "world": world_dir.name,
            "test_world": ctx.test_world.name if ctx.test_world else "",
        },
        input_example=example,
        output_example=out_example,
        data=data,
        data_files=files,
        purpose=(
            "Flags fuzzy duplicates (OCR-misread numbers, re-sends with a new number, cent "
            "differences) among a supplier's earlier documents, and scores how unusual an "
            "invoice's prices and amount are against that supplier's history (IsolationForest)."
        ),
        limits=[
            "Trained and evaluated on synthetic worlds (`tollgate generate`); real suppliers "
            "re-send in ways the generator does not simulate.",
            "Blocking needs the same supplier and kind, a gross within 5 % and a date within "
            "365 days: a duplicate outside the block is never scored.",
            "The threshold is chosen on out-of-fold scores of the training world for precision "
            f"{TARGET_PRECISION}; a new world with other duplicate shares shifts precision.",
            "The price score is unsupervised and ranks; it has no calibrated threshold.",
            "Supplier keys come from master data in training; in service from resolution.",
        ],
        baselines={
            f"{held}/exact_key_recall": shown.baseline_recall,
            f"{held}/exact_key_precision": shown.baseline_precision,
        },
        bars=[
            f"duplicates: recall >= {DUPLICATE_MIN_RECALL} at precision >= "
            f"{DUPLICATE_MIN_PRECISION} on a held-out world"
        ],
    )


# -- delay family ----------------------------------------------------------------------------


def _vocab(rows: Sequence[Mapping[str, object]], key: str, min_count: int = 5) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.get(key) is not None:
            counts[str(row[key])] += 1
    return {v: i for i, v in enumerate(sorted(v for v, n in counts.items() if n >= min_count))}


def _reviewed(world: Path) -> list[dict[str, Any]]:
    records = [r for r in _read_truth(world) if r.get("review")]
    return sorted(records, key=lambda r: (r["review"]["received_at"], r["file"]))


def _lgb_params(seed: int, **extra: object) -> dict[str, object]:
    return {
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "num_threads": 1,  # small data: OpenMP spin-waiting costs more than it saves
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "verbose": -1,
        **extra,
    }


def _delay_world_head(ctx: TrainContext, seed: int) -> tuple[dict[str, Any], dict[str, float], Any]:
    """Hours-to-resolution p50/p90 and P(SLA breach) from a world's review history."""
    import lightgbm as lgb
    from sklearn.metrics import brier_score_loss, roc_auc_score

    world_dir = _require_world(ctx.world, "delay")
    records = _reviewed(world_dir)
    if ctx.test_world is not None:
        n_valid = max(1, len(records) // 5)
        train_recs, valid_recs = records[:-n_valid], records[-n_valid:]
        test_recs = _reviewed(ctx.test_world)
    else:
        # Chronological 64/16/20, as in the BPIC protocol: the future is never in training.
        a, b = int(len(records) * 0.64), int(len(records) * 0.80)
        train_recs, valid_recs, test_recs = records[:a], records[a:b], records[b:]
    if min(len(train_recs), len(valid_recs), len(test_recs)) < 10:
        raise ValueError("too few reviewed documents to train the delay model")
    raw = {
        split: [delay_features(r) for r in recs]
        for split, recs in (("train", train_recs), ("valid", valid_recs), ("test", test_recs))
    }
    names = delay_feature_names()
    categorical = {k: _vocab(raw["train"], k) for k in DELAY_CATEGORICAL}
    from models.registry import Head, _lightgbm_head

    spec: dict[str, Any] = {
        "kind": "lightgbm",
        "files": {
            "hours_p50": "delay_p50.txt",
            "hours_p90": "delay_p90.txt",
            "p_sla_breach": "delay_breach.txt",
        },
        "features": names,
        "categorical": categorical,
        "outputs": ["hours_p50", "hours_p90", "p_sla_breach"],
        "floor_at_zero": ["hours_p50", "hours_p90"],
        "at_least": {"hours_p90": "hours_p50"},
        "meta": {"unit": "hours", "source": "world review history"},
    }
    # Encode with the same code serving uses, so training and serving cannot drift apart.
    encoder = Head("hours", tuple(names), (), categorical, lambda x: {})
    x = {split: encoder.encode(rows) for split, rows in raw.items()}
    hours = {
        s: np.asarray([r["review"]["hours_to_resolution"] for r in recs], dtype=np.float64)
        for s, recs in (("train", train_recs), ("valid", valid_recs), ("test", test_recs))
    }
    breach = {
        s: np.asarray([float(r["review"]["sla_breached"]) for r in recs], dtype=np.float64)
        for s, recs in (("train", train_recs), ("valid", valid_recs), ("test", test_recs))
    }
    cats = list(DELAY_CATEGORICAL)

    def fit(target: dict[str, np.ndarray], params: dict[str, object]) -> Any:
        train = lgb.Dataset(
            x["train"],
            target["train"],
            feature_name=names,
            categorical_feature=cats,
            free_raw_data=False,
        )
        valid = lgb.Dataset(x["valid"], target["valid"], reference=train)
        return lgb.train(
            params,
            train,
            num_boost_round=2000,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(100, verbose=False)],
        )

    boosters = {
        "hours_p50": fit(hours, _lgb_params(seed, objective="l1", metric="l1")),
        "hours_p90": fit(
            hours, _lgb_params(seed, objective="quantile", alpha=0.9, metric="quantile")
        ),
        "p_sla_breach": fit(breach, _lgb_params(seed, objective="binary", metric="binary_logloss")),
    }
    for out, file in spec["files"].items():
        boosters[out].save_model(str(ctx.bundle_dir / file))
    head = _lightgbm_head(ctx.bundle_dir, "hours", spec)
    pred = head.compute(x["test"])
    y, yb = hours["test"], breach["test"]
    # Baseline: the median hours and breach rate of the document's queue in training.
    by_queue: dict[str, list[float]] = defaultdict(list)
    rate_by_queue: dict[str, list[float]] = defaultdict(list)
    for row, h, b in zip(raw["train"], hours["train"], breach["train"], strict=True):
        by_queue[str(row["queue"])].append(float(h))
        rate_by_queue[str(row["queue"])].append(float(b))
    overall = float(np.median(hours["train"]))
    base = np.asarray(
        [
            float(np.median(by_queue[str(r["queue"])])) if str(r["queue"]) in by_queue else overall
            for r in raw["test"]
        ]
    )
    base_rate = np.asarray(
        [
            float(np.mean(rate_by_queue.get(str(r["queue"]), [float(np.mean(breach["train"]))])))
            for r in raw["test"]
        ]
    )
    metrics = {
        "test/mae_hours": float(np.mean(np.abs(pred["hours_p50"] - y))),
        "test/baseline_queue_median_mae_hours": float(np.mean(np.abs(base - y))),
        "test/p90_coverage": float(np.mean(y <= pred["hours_p90"])),
        "test/breach_brier": float(brier_score_loss(yb, pred["p_sla_breach"])),
        "test/baseline_queue_rate_breach_brier": float(brier_score_loss(yb, base_rate)),
        "test/documents": float(len(y)),
        "train/documents": float(len(hours["train"])),
    }
    if 0 < yb.sum() < len(yb):
        metrics["test/breach_auc"] = float(roc_auc_score(yb, pred["p_sla_breach"]))
        metrics["test/baseline_queue_rate_breach_auc"] = float(roc_auc_score(yb, base_rate))
    queues = np.asarray([str(r["queue"]) for r in raw["test"]])
    for queue in sorted(set(queues.tolist())):
        mask = queues == queue
        metrics[f"test/queue_{queue}/mae_hours"] = float(
            np.mean(np.abs(pred["hours_p50"] - y)[mask])
        )
        metrics[f"test/queue_{queue}/baseline_mae_hours"] = float(np.mean(np.abs(base - y)[mask]))
        metrics[f"test/queue_{queue}/documents"] = float(mask.sum())
    plot_predicted_vs_actual(ctx.plots_dir, pred["hours_p50"], y, "hours", "delay_world")
    gains = boosters["hours_p50"].feature_importance(importance_type="gain")
    plot_importance(
        ctx.plots_dir / "delay_world_feature_importance.png",
        {n: float(g) for n, g in zip(names, gains, strict=True)},
        "delay p50 (hours): gain",
    )
    example = raw["train"][:5]
    spec["meta"]["best_iterations"] = {k: int(b.best_iteration) for k, b in boosters.items()}
    return spec, metrics, example


def _delay_bpic_head(ctx: TrainContext, xes: Path) -> tuple[dict[str, Any], dict[str, float]]:
    """The BPIC 2020 remaining-time protocol; the encoder state travels as JSON in the bundle."""
    from training.bpic import START_ATTRIBUTES, evaluate_cases, to_case
    from training.xes import iter_traces

    log_name = xes.name.split(".", 1)[0]
    numeric, categorical = START_ATTRIBUTES.get(log_name, ((), ()))

    def on_read(done: int, total: int) -> None:
        ctx.progress(f"reading {xes.name}", done * 50 // max(total, 1), 100)

    cases = [to_case(t, numeric + categorical) for t in iter_traces(xes, progress=on_read)]

    def on_step(done: int, total: int) -> None:
        ctx.progress(f"BPIC protocol {log_name}", 50 + 50 * done // total, 100)

    report, model, encoder = evaluate_cases(
        cases,
        log_name=log_name,
        numeric_keys=numeric,
        categorical_keys=categorical,
        progress=on_step,
    )
    assert model.p50_model and model.p90_model and model.over_model
    files = {"days_p50": "bpic_p50.txt", "days_p90": "bpic_p90.txt", "p_over": "bpic_over.txt"}
    for out, booster in (
        ("days_p50", model.p50_model),
        ("days_p90", model.p90_model),
        ("p_over", model.over_model),
    ):
        booster.save_model(str(ctx.bundle_dir / files[out]))
    spec = {
        "kind": "lightgbm",
        "files": files,
        "features": encoder.feature_names,
        "outputs": ["days_p50", "days_p90", "p_over"],
        "floor_at_zero": ["days_p50", "days_p90"],
        "at_least": {"days_p90": "days_p50"},
        "meta": {
            "unit": "days",
            "log_name": log_name,
            "threshold_days": model.config.threshold_days,
            # The prefix encoder's vocabularies: rows for this head are PrefixEncoder.encode().
            "encoder": {
                "numeric_case_keys": list(encoder.numeric_case_keys),
                "categorical_case_keys": list(encoder.categorical_case_keys),
                "min_category_count": encoder.min_category_count,
                "activities": encoder.activities,
                "roles": encoder.roles,
                "resources": encoder.resources,
                "case_categories": encoder.case_categories,
            },
        },
    }
    prefix = f"bpic_{log_name}"
    metrics = {
        f"{prefix}/mae_days": report.mae_model_days,
        f"{prefix}/baseline_mean_mae_days": report.mae_baseline_days,
        f"{prefix}/p90_coverage": report.p90_coverage,
        f"{prefix}/test_prefixes": float(report.n_test_prefixes),
        f"{prefix}/best_iteration": float(report.best_iteration),
    }
    gains = model.p50_model.feature_importance(importance_type="gain")
    plot_importance(
        ctx.plots_dir / "delay_bpic_feature_importance.png",
        {n: float(g) for n, g in zip(encoder.feature_names, gains, strict=True)},
        f"BPIC {log_name} p50 (days): gain",
    )
    return spec, metrics


def prefix_encoder_from(meta: Mapping[str, Any]) -> Any:
    """Rebuild the BPIC head's PrefixEncoder from its bundle metadata."""
    from models.delay import PrefixEncoder

    e = meta["encoder"]
    return PrefixEncoder(
        numeric_case_keys=tuple(e["numeric_case_keys"]),
        categorical_case_keys=tuple(e["categorical_case_keys"]),
        min_category_count=int(e["min_category_count"]),
        activities=dict(e["activities"]),
        roles=dict(e["roles"]),
        resources=dict(e["resources"]),
        case_categories={k: dict(v) for k, v in e["case_categories"].items()},
    )


def score_bpic(model: LoadedModel, xes: Path) -> dict[str, float]:
    """MAE in days of a loaded delay model's BPIC head on the protocol's test split of a log."""
    from training.bpic import START_ATTRIBUTES, build_matrix, chronological_split, to_case
    from training.xes import iter_traces

    if "bpic" not in model.heads:
        raise LookupError(f"{model.name} v{model.version} has no BPIC head (train with --xes)")
    meta = model.head("bpic").meta
    log_name = xes.name.split(".", 1)[0]
    if log_name != meta["log_name"]:
        raise ValueError(f"the model's BPIC head is for {meta['log_name']}, not {log_name}")
    numeric, categorical = START_ATTRIBUTES.get(log_name, ((), ()))
    cases = [to_case(t, numeric + categorical) for t in iter_traces(xes)]
    train, _, test = chronological_split(cases)
    x_test, y_test = build_matrix(test, prefix_encoder_from(meta))
    _, y_train = build_matrix(train, prefix_encoder_from(meta))
    pred = np.asarray(model.predict(x_test, "bpic").outputs["days_p50"])
    prefix = f"bpic_{log_name}"
    return {
        f"{prefix}/mae_days": float(np.mean(np.abs(pred - y_test))),
        f"{prefix}/baseline_mean_mae_days": float(np.mean(np.abs(np.mean(y_train) - y_test))),
        f"{prefix}/test_prefixes": float(len(y_test)),
    }


def score_delay_world(model: LoadedModel, world_dir: Path) -> dict[str, float]:
    """MAE in hours and P(breach) quality of a loaded delay model on a held-out world."""
    from sklearn.metrics import brier_score_loss

    if "hours" not in model.heads:
        raise LookupError(f"{model.name} v{model.version} has no world head")
    records = _reviewed(world_dir)
    pred = model.predict_records([delay_features(r) for r in records], "hours").outputs
    y = np.asarray([r["review"]["hours_to_resolution"] for r in records], dtype=np.float64)
    yb = np.asarray([float(r["review"]["sla_breached"]) for r in records], dtype=np.float64)
    queues = [str(r["review"]["queue"]) for r in records]
    # Baseline without training data at hand: the queue median of this world (an upper bound
    # on what a per-queue median can do, so the comparison is not flattering to the model).
    by_queue: dict[str, list[float]] = defaultdict(list)
    for q, h in zip(queues, y, strict=True):
        by_queue[q].append(float(h))
    base = np.asarray([float(np.median(by_queue[q])) for q in queues])
    return {
        "test/mae_hours": float(np.mean(np.abs(np.asarray(pred["hours_p50"]) - y))),
        "test/baseline_queue_median_mae_hours": float(np.mean(np.abs(base - y))),
        "test/p90_coverage": float(np.mean(y <= np.asarray(pred["hours_p90"]))),
        "test/breach_brier": float(brier_score_loss(yb, pred["p_sla_breach"])),
        "test/documents": float(len(y)),
    }


@register_family("delay")
def train_delay(ctx: TrainContext) -> FamilyOutput:
    """World head (hours p50/p90, P(SLA breach)) and, with an XES log, the BPIC head (days)."""
    import pandas as pd

    if ctx.world is None and ctx.xes is None:
        raise ValueError("the delay family needs --world and/or --xes")
    seed = int(str(ctx.params.get("seed", 7)))
    heads: dict[str, dict[str, Any]] = {}
    metrics: dict[str, float] = {}
    data: list[str] = []
    files: list[Path] = []
    example: Any = None
    out_example: Any = None
    if ctx.world is not None:
        ctx.progress("delay: world review history", 0, 3)
        spec, m, rows = _delay_world_head(ctx, seed)
        heads["hours"] = spec
        metrics.update(m)
        files += world_files(ctx.world)
        data.append(
            f"world `{ctx.world.name}`: {int(m['train/documents'])} reviewed documents in "
            "training"
            + (
                f", test world `{ctx.test_world.name}`"
                if ctx.test_world
                else " (chronological 64/16/20 split)"
            )
        )
        from models.registry import _lightgbm_head

        head = _lightgbm_head(ctx.bundle_dir, "hours", spec)
        example = pd.DataFrame(rows)
        numeric = [c for c in example.columns if c not in DELAY_CATEGORICAL]
        # Doubles, not ints: a missing value at serving time must not break schema checks.
        example[numeric] = example[numeric].astype("float64")
        out_example = pd.DataFrame(head.compute(head.encode(rows)))
    if ctx.xes is not None:
        spec, m = _delay_bpic_head(ctx, ctx.xes)
        heads["bpic"] = spec
        metrics.update(m)
        files.append(ctx.xes)
        data.append(f"event log `{ctx.xes.name}` (BPIC 2020 protocol, 64/16/20 by case start)")
        if example is None:
            from models.registry import _lightgbm_head

            head = _lightgbm_head(ctx.bundle_dir, "bpic", spec)
            x = np.zeros((3, len(spec["features"])))
            example = pd.DataFrame(x, columns=spec["features"])
            out_example = pd.DataFrame(head.compute(x))
    ctx.progress("delay: done", 3, 3)
    baselines = {k: v for k, v in metrics.items() if "baseline" in k.rsplit("/", 1)[-1]}
    return FamilyOutput(
        heads=heads,
        default_head="hours" if "hours" in heads else "bpic",
        metrics=metrics,
        params={
            "seed": seed,
            "objective_p50": "l1",
            "p90_alpha": 0.9,
            "max_rounds": 2000,
            "world": ctx.world.name if ctx.world else "",
            "xes": ctx.xes.name if ctx.xes else "",
        },
        input_example=example,
        output_example=out_example,
        data=data,
        data_files=files,
        purpose=(
            "Predicts how long a document will take to resolve (median and p90 hours) and the "
            "probability that it breaches its queue's SLA, for queue priority and staffing. "
            "An optional BPIC 2020 head checks the method on real approval logs (days)."
        ),
        limits=[
            "World head: learnt from synthetic review histories; real queues have holidays, "
            "staff changes and backlogs the generator does not simulate.",
            "Reasons come from the world's truth in training; in service they come from the "
            "rule findings (eval match >= 0.99 per reason), so errors there carry over.",
            "p90 is a quantile regression, not a calibrated interval; coverage is reported.",
            "The BPIC head takes PrefixEncoder rows of an approval log, not invoices.",
        ],
        baselines=baselines,
        bars=[f"BPIC DomesticDeclarations MAE <= {BPIC_DOMESTIC_MAX_MAE_DAYS} days (with --xes)"],
    )


# -- the run ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainResult:
    """What one training run registered."""

    family: str
    name: str
    version: str
    run_id: str
    metrics: dict[str, float]
    data_hash: str
    card: Path | None
    seconds: float


_PYFUNC_ENTRY = '''"""MLflow pyfunc entry (models from code): scores a bundle's default head."""
import mlflow

try:
    from models.registry import BundlePyfunc
except ImportError:  # loaded elsewhere: registry.py is shipped in the model's code/ folder
    from registry import BundlePyfunc

mlflow.models.set_model(BundlePyfunc.make())
'''


def _experiment(tracking_uri: str) -> str:
    """Create (once) the experiment, with artifacts next to a sqlite store."""
    import mlflow

    found = mlflow.get_experiment_by_name(EXPERIMENT)
    if found is not None:
        return str(found.experiment_id)
    return str(
        mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_root_for(tracking_uri))
    )


def _safe_metric_key(key: str) -> str:
    # MLflow allows letters, digits, _ - . / and spaces in metric names.
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in key)


def _log_model(
    mlflow: Any, uri: str, name: str, entry: Path, bundle_dir: Path, output: FamilyOutput
) -> Any:
    """Log the bundle as a pyfunc (models from code, no pickle) and register it."""
    from mlflow.models import infer_signature

    return mlflow.pyfunc.log_model(
        name="model",
        python_model=str(entry),
        artifacts={BUNDLE_DIR: str(bundle_dir)},
        code_paths=[str(Path(__file__).resolve().parents[1] / "models" / "registry.py")],
        signature=infer_signature(output.input_example, output.output_example),
        input_example=output.input_example,
        pip_requirements=pip_requirements(),
        registered_model_name=name,
    )


def train_family(
    family: str,
    *,
    world: Path | None,
    test_world: Path | None = None,
    xes: Path | None = None,
    tracking_uri: str | None = None,
    progress: Progress | None = None,
    cards_dir: Path | None = None,
    params: Mapping[str, object] | None = None,
    trained_by: str | None = None,
    snapshot: Path | None = None,
) -> TrainResult:
    """Train one family, log and register it as `challenger`, write its model card.

    `trained_by` (default: the OS user) is tagged for the promotion gate; `snapshot` is the
    review snapshot the world was mixed with, logged by hash and as an artifact.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    trainers = load_family_trainers()
    if family not in trainers:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(sorted(trainers))}")
    started = time.perf_counter()
    uri = tracking_uri or default_tracking_uri()
    use_store(uri)
    experiment_id = _experiment(uri)
    name = registered_name(family)
    report: Progress = progress or (lambda step, done, total: None)
    with tempfile.TemporaryDirectory(prefix=f"tollgate-train-{family}-") as tmp:
        bundle_dir, plots_dir = Path(tmp) / BUNDLE_DIR, Path(tmp) / "plots"
        bundle_dir.mkdir()
        plots_dir.mkdir()
        ctx = TrainContext(
            family=family,
            world=world,
            test_world=test_world,
            xes=xes,
            bundle_dir=bundle_dir,
            plots_dir=plots_dir,
            progress=report,
            params=dict(params or {}),
        )
        sha = git_sha()
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=f"{family}-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        ) as run:
            output = trainers[family](ctx)
            digest = data_hash(output.data_files)
            (bundle_dir / "bundle.json").write_text(
                json.dumps(
                    {
                        "format": BUNDLE_FORMAT,
                        "family": family,
                        "heads": output.heads,
                        "default_head": output.default_head,
                        "meta": {"data_hash": digest, "git_sha": sha},
                    },
                    indent=1,
                    sort_keys=True,
                ),
                encoding="utf-8",
            )
            if test_world is not None and (test_world / "truth.jsonl").is_file():
                mlflow.set_tag("test_data_hash", data_hash(world_files(test_world)))
            trainer = trained_by or getpass.getuser()
            snapshot_sha = snapshot.name.split(".", 1)[0] if snapshot is not None else ""
            if snapshot is not None:
                # The file is named by its sha256 (training.snapshot); the artifact is the proof.
                output.params["snapshot_sha256"] = snapshot_sha
                output.params.update(
                    {k: v for k, v in ctx.params.items() if k.startswith("snapshot_")}
                )
                mlflow.set_tag(SNAPSHOT_TAG, snapshot_sha)
                mlflow.log_artifact(str(snapshot), artifact_path="snapshot")
            mlflow.set_tag(TRAINED_BY_TAG, trainer)
            mlflow.log_params({k: str(v)[:500] for k, v in output.params.items()})
            mlflow.set_tags(
                {
                    "family": family,
                    "data_hash": digest,
                    "git_sha": sha or "unknown",
                    "world": world.name if world else "",
                    "heads": ",".join(output.heads),
                }
            )
            finite = {_safe_metric_key(k): v for k, v in output.metrics.items() if math.isfinite(v)}
            mlflow.log_metrics(finite)
            mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
            entry = Path(tmp) / "tollgate_pyfunc.py"
            entry.write_text(_PYFUNC_ENTRY, encoding="utf-8")
            report("registering", 0, 1)
            info = _log_model(mlflow, uri, name, entry, bundle_dir, output)
            version = normalise_version(info.registered_model_version)
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.set_registered_model_alias(name, CHALLENGER, version)
            client.update_model_version(
                name, version, description=f"{family}: data {digest[:12]}, git {sha[:12]}"
            )
            card_path = write_card(
                ModelCard(
                    name=name,
                    family=family,
                    version=version,
                    run_id=run.info.run_id,
                    alias=CHALLENGER,
                    trained_on=f"{datetime.now(UTC):%Y-%m-%d}",
                    git_sha=sha,
                    purpose=output.purpose,
                    data=output.data,
                    data_hash=digest,
                    params=output.params,
                    metrics=output.metrics,
                    baselines=output.baselines,
                    bars=output.bars,
                    limits=output.limits,
                    heads=list(output.heads),
                    trained_by=trainer,
                    snapshot=snapshot_sha,
                ),
                cards_dir,
            )
            mlflow.log_artifact(str(card_path), artifact_path="model_card")
            report("registering", 1, 1)
    return TrainResult(
        family=family,
        name=name,
        version=version,
        run_id=run.info.run_id,
        metrics=dict(output.metrics),
        data_hash=digest,
        card=card_path,
        seconds=time.perf_counter() - started,
    )


# -- evaluation of registered versions (`tollgate eval models`) -----------------------------


@dataclass(frozen=True)
class EvalInputs:
    """Held-out data to score registered versions on."""

    world: Path | None
    xes: Path | None


FamilyEvaluator = Callable[[LoadedModel, EvalInputs], dict[str, float]]
FAMILY_EVALUATORS: dict[str, FamilyEvaluator] = {}
FamilyBars = Callable[[Mapping[str, float], EvalInputs], list[str]]
FAMILY_BARS: dict[str, FamilyBars] = {}


def register_evaluator(
    name: str, bars: FamilyBars | None = None
) -> Callable[[FamilyEvaluator], FamilyEvaluator]:
    """Decorator: how `tollgate eval models` scores a family, and the bars it must meet."""

    def wrap(evaluator: FamilyEvaluator) -> FamilyEvaluator:
        FAMILY_EVALUATORS[name] = evaluator
        if bars is not None:
            FAMILY_BARS[name] = bars
        return evaluator

    return wrap


def _anomaly_bars(metrics: Mapping[str, float], inputs: EvalInputs) -> list[str]:
    recall, precision = metrics.get("test/recall", 0.0), metrics.get("test/precision", 0.0)
    if recall >= DUPLICATE_MIN_RECALL and precision >= DUPLICATE_MIN_PRECISION:
        return []
    return [
        f"duplicates recall {recall:.3f} / precision {precision:.3f} below "
        f"{DUPLICATE_MIN_RECALL} / {DUPLICATE_MIN_PRECISION}"
    ]


def _delay_bars(metrics: Mapping[str, float], inputs: EvalInputs) -> list[str]:
    mae = metrics.get("bpic_DomesticDeclarations/mae_days")
    if inputs.xes is None or mae is None:
        return []
    if mae <= BPIC_DOMESTIC_MAX_MAE_DAYS:
        return []
    return [f"BPIC Domestic MAE {mae:.2f} d above {BPIC_DOMESTIC_MAX_MAE_DAYS} d"]


@register_evaluator("anomaly", _anomaly_bars)
def evaluate_anomaly(model: LoadedModel, inputs: EvalInputs) -> dict[str, float]:
    """Duplicate recall/precision (and price AUC) of a registered version on a world."""
    if inputs.world is None:
        return {}
    return score_anomaly_world(model, inputs.world)


@register_evaluator("delay", _delay_bars)
def evaluate_delay(model: LoadedModel, inputs: EvalInputs) -> dict[str, float]:
    """Hours MAE on a world and, with an XES log and a BPIC head, the protocol's MAE in days."""
    metrics: dict[str, float] = {}
    if inputs.world is not None and "hours" in model.heads:
        metrics.update(score_delay_world(model, inputs.world))
    if inputs.xes is not None:
        metrics.update(score_bpic(model, inputs.xes))
    return metrics


def bar_failures(family: str, metrics: Mapping[str, float], inputs: EvalInputs) -> list[str]:
    """Which release bars a family's metrics miss (empty: all met, or none defined)."""
    bars = FAMILY_BARS.get(family)
    return bars(metrics, inputs) if bars is not None else []
