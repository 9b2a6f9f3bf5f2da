"""The reason classifier (`tollgate-reason`): which canonical reasons explain a document.

Multi-label: one LightGBM binary classifier per reason code with enough training support, over
the case features of `models.features` plus MiniLM text (mean line-description embedding and
note embedding, each reduced by a PCA fitted on the training documents). Each classifier is
calibrated with isotonic regression on its out-of-fold predictions, and its decision threshold
is tuned on the same out-of-fold predictions. Codes without support fall back to the rule (the
model says 1.0 when the rules found the code, else 0.0). `explain` reads LightGBM's
`pred_contrib` and names each contribution in words a clerk understands.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray
from sklearn.decomposition import PCA
from sklearn.isotonic import IsotonicRegression
from sklearn.model_selection import StratifiedKFold

from models.embeddings import DIMENSIONS, TextEmbedder
from models.features import CaseFeatures, describe
from models.registry import Head, register_head_kind
from pipelines.reasons import ReasonCode

MIN_SUPPORT = 8  # positives (and negatives) a code needs in training to get its own model
FOLDS = 4
TEXT_COMPONENTS = 8  # PCA components kept per text field
TEXT_FIELDS = ("desc", "note")


def embed_texts(features: CaseFeatures, embedder: TextEmbedder) -> CaseFeatures:
    """Fill `features.text`: mean line-description embedding and note embedding per document."""
    flat = [d for descriptions in features.descriptions for d in descriptions]
    vectors = embedder.embed(flat) if flat else np.zeros((0, DIMENSIONS), np.float32)
    text = np.zeros((len(features), 2 * DIMENSIONS), dtype=np.float32)
    start = 0
    for row, descriptions in enumerate(features.descriptions):
        if descriptions:
            text[row, :DIMENSIONS] = vectors[start : start + len(descriptions)].mean(axis=0)
            start += len(descriptions)
    text[:, DIMENSIONS:] = embedder.embed(features.notes)
    features.text = text
    return features


def _classifier(seed: int) -> lgb.LGBMClassifier:
    # Small trees, few rounds and coarse bins: a few hundred positives per code at most, and
    # 19 codes x (folds + 1) fits must stay in a minute or two on two cores.
    return lgb.LGBMClassifier(
        n_estimators=120,
        learning_rate=0.1,
        max_bin=63,
        num_leaves=15,
        # Small leaves: an ambiguous scenario may have only a dozen examples in a small world.
        min_child_samples=4,
        colsample_bytree=0.8,
        reg_lambda=1.0,
        random_state=seed,
        n_jobs=2,
        verbose=-1,
    )


def best_threshold(probabilities: NDArray[np.float64], labels: NDArray[np.bool_]) -> float:
    """The probability cut with the best F1 (ties: the one nearest 0.5)."""
    best, best_f1 = 0.5, -1.0
    for cut in sorted(np.linspace(0.05, 0.95, 91), key=lambda c: abs(c - 0.5)):
        predicted = probabilities >= cut
        tp = float(np.sum(predicted & labels))
        denom = float(np.sum(predicted) + np.sum(labels))
        f1 = 2 * tp / denom if denom else 1.0
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(cut), f1
    return best


@dataclass
class CodeModel:
    """One code's classifier, its calibration and its decision threshold."""

    classifier: lgb.LGBMClassifier | BoosterClassifier  # the latter when read from a bundle
    calibrator: IsotonicRegression
    threshold: float
    support: int


@dataclass
class ReasonModel:
    """Per-code calibrated LightGBM over case features and reduced MiniLM text."""

    min_support: int = MIN_SUPPORT
    folds: int = FOLDS
    seed: int = 0
    embedding_cache: Path | None = None
    codes: dict[str, CodeModel] = field(default_factory=dict)
    fallback: list[str] = field(default_factory=list)  # codes decided by the rules
    feature_names: list[str] = field(default_factory=list)
    oof: dict[str, NDArray[np.float64]] = field(default_factory=dict)  # calibrated, training
    _pca: dict[str, PCA | None] = field(default_factory=dict)
    _embedder: TextEmbedder | None = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # The embedder holds a loaded transformer: rebuild it lazily after unpickling.
        state = dict(self.__dict__)
        state["_embedder"] = None
        return state

    # -- inputs --------------------------------------------------------------------------

    def _text(self, features: CaseFeatures) -> NDArray[np.float32]:
        if features.text is None:
            if self._embedder is None:
                self._embedder = TextEmbedder(self.embedding_cache)
            embed_texts(features, self._embedder)
        assert features.text is not None
        return features.text

    def _matrix(self, features: CaseFeatures, *, fit: bool = False) -> NDArray[np.float64]:
        text = self._text(features)
        parts: list[NDArray[Any]] = [features.matrix]
        names = list(features.names)
        for index, name in enumerate(TEXT_FIELDS):
            block = text[:, index * DIMENSIONS : (index + 1) * DIMENSIONS]
            empty = np.abs(block).sum(axis=1) == 0
            if fit:
                distinct = np.unique(block[~empty], axis=0)
                # Fewer than two distinct texts carry no signal a PCA could keep.
                self._pca[name] = (
                    PCA(min(TEXT_COMPONENTS, len(distinct) - 1), random_state=self.seed).fit(
                        block[~empty]
                    )
                    if len(distinct) >= 2
                    else None
                )
            pca = self._pca[name]
            if pca is None:
                continue
            reduced = _project(pca, block)
            # No text at all stays distinguishable from text near the mean.
            reduced[empty] = np.nan
            parts.append(reduced)
            names += [f"{name}_text_{i}" for i in range(reduced.shape[1])]
        if fit:
            self.feature_names = names
        return np.hstack(parts).astype(np.float64)

    # -- training ------------------------------------------------------------------------

    def fit(self, features: CaseFeatures, labels: Sequence[set[str]]) -> ReasonModel:
        """Train one calibrated classifier per code with support; the rest use the rules."""
        x = self._matrix(features, fit=True)
        self.codes, self.fallback, self.oof = {}, [], {}
        for code in ReasonCode:
            y = np.array([code.value in truth for truth in labels], dtype=bool)
            positives = int(y.sum())
            if positives < self.min_support or len(y) - positives < self.min_support:
                self.fallback.append(code.value)
                continue
            raw = np.zeros(len(y))
            splitter = StratifiedKFold(self.folds, shuffle=True, random_state=self.seed)
            for train, held in splitter.split(x, y):
                clf = _classifier(self.seed).fit(x[train], y[train])
                raw[held] = np.asarray(clf.predict_proba(x[held]))[:, 1]
            calibrator = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
            calibrator.fit(raw, y.astype(float))
            calibrated = calibrator.predict(raw)
            self.oof[code.value] = calibrated
            self.codes[code.value] = CodeModel(
                classifier=_classifier(self.seed).fit(x, y),
                calibrator=calibrator,
                threshold=best_threshold(calibrated, y),
                support=positives,
            )
        return self

    # -- inference -----------------------------------------------------------------------

    def probability_matrix(self, features: CaseFeatures) -> NDArray[np.float64]:
        """Calibrated probabilities, one column per `ReasonCode` in declaration order."""
        x = self._matrix(features)
        out = np.zeros((len(features), len(ReasonCode)))
        for column, code in enumerate(ReasonCode):
            model = self.codes.get(code.value)
            if model is None:
                present = features.names.index(f"{code.value.lower()}:present")
                out[:, column] = features.matrix[:, present]
                continue
            raw = np.asarray(model.classifier.predict_proba(x))[:, 1]
            out[:, column] = calibrate(model.calibrator, raw)
        return out

    def thresholds(self) -> NDArray[np.float64]:
        """The decision threshold per code (0.5 for rule fallbacks, whose output is 0 or 1)."""
        return np.array(
            [self.codes[c.value].threshold if c.value in self.codes else 0.5 for c in ReasonCode]
        )

    def predict_proba(self, features: CaseFeatures) -> list[dict[str, float]]:
        """Per document: calibrated probability per reason code."""
        matrix = self.probability_matrix(features)
        return [
            {code.value: float(p) for code, p in zip(ReasonCode, row, strict=True)}
            for row in matrix
        ]

    def predict(self, features: CaseFeatures) -> list[set[str]]:
        """Per document: the reason codes at or above their threshold."""
        matrix = self.probability_matrix(features) >= self.thresholds()
        return [{c.value for c, on in zip(ReasonCode, row, strict=True) if on} for row in matrix]

    def explain(
        self, features: CaseFeatures, top: int = 5, *, row: int = 0, code: str | None = None
    ) -> list[tuple[str, float, str]]:
        """The `top` feature contributions (log-odds) behind one document's most likely code.

        Text components are summed per field and quoted, since a PCA axis means nothing to a
        clerk; a rule-fallback code is explained by the rule finding itself. The document's
        inputs are projected on their own: a projection inside a larger matrix may differ in
        the last bit (BLAS), and an explanation must not depend on what it was scored beside.
        """
        single = features.rows([row])
        if code is None:
            probabilities = self.predict_proba(single)[0]
            code = max(probabilities, key=lambda c: probabilities[c])
        model = self.codes.get(code)
        if model is None:
            name = f"{code.lower()}:present"
            value = float(single.matrix[0, single.names.index(name)])
            return [(name, 1.0 if value else -1.0, describe(name, value) + " (rule decides)")]
        x = self._matrix(single)
        contrib = np.asarray(model.classifier.predict(x, pred_contrib=True))[0, :-1]
        grouped: dict[str, float] = {}
        column: dict[str, int] = {}  # a case feature's column; text fields have none
        for index, name in enumerate(self.feature_names):
            if "_text_" in name:
                field_name = name.split("_text_")[0]
                grouped[field_name] = grouped.get(field_name, 0.0) + float(contrib[index])
            else:
                grouped[name] = float(contrib[index])
                column[name] = index
        ranked = sorted(grouped.items(), key=lambda item: -abs(item[1]))
        # Words for the few that are shown only: describing all ~120 cost more than the rest.
        return [
            (
                name,
                c,
                describe(name, float(x[0, column[name]]))
                if name in column
                else _text_words(name, single),
            )
            for name, c in ranked[:top]
            if c != 0.0
        ]


def _text_words(field_name: str, features: CaseFeatures) -> str:
    if field_name == "note":
        note = features.notes[0]
        return f'note says "{_clip(note)}"' if note else "no note on the document"
    lines = features.descriptions[0]
    return f'line text "{_clip("; ".join(lines))}"' if lines else "no line descriptions"


def _clip(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def expected_calibration_error(
    probabilities: NDArray[np.float64], labels: NDArray[np.bool_], bins: int = 10
) -> float:
    """ECE: 10 equal-width bins over all probabilities, weighted |accuracy - confidence|.

    Confidence is the predicted probability of the positive label and accuracy the share of
    positives in the bin (the reliability-diagram reading for multi-label outputs).
    """
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.size == 0:
        return math.nan
    index = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.sum() / p.size * abs(float(y[mask].mean()) - float(p[mask].mean()))
    return total


def per_code_scores(
    predicted: Sequence[set[str]], actual: Sequence[set[str]], codes: Sequence[str]
) -> dict[str, tuple[float, float, float, int]]:
    """Precision, recall, F1 and support per code (an empty denominator scores 1.0)."""
    out: dict[str, tuple[float, float, float, int]] = {}
    for code in codes:
        tp = sum(1 for p, a in zip(predicted, actual, strict=True) if code in p and code in a)
        fp = sum(1 for p, a in zip(predicted, actual, strict=True) if code in p and code not in a)
        fn = sum(1 for p, a in zip(predicted, actual, strict=True) if code not in p and code in a)
        precision = tp / (tp + fp) if tp + fp else 1.0
        recall = tp / (tp + fn) if tp + fn else 1.0
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 1.0
        out[code] = (precision, recall, f1, tp + fn)
    return out


def macro_f1(scores: Mapping[str, tuple[float, float, float, int]]) -> float:
    """Mean F1 over the codes that occur in the truth (support > 0)."""
    f1s = [f1 for _, _, f1, support in scores.values() if support > 0]
    return float(np.mean(f1s)) if f1s else math.nan


# -- bundles (`tollgate-reason` in the MLflow registry): no pickle ----------------------------

HEAD_KIND = "reason"
MODEL_FILE = "reason_model.json"
CALIBRATORS_FILE = "reason_calibrators.json"


class BoosterClassifier:
    """A binary LightGBM booster loaded from its text file, with the classifier calls we use."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster_ = booster

    def predict_proba(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Columns P(no), P(yes), as `LGBMClassifier.predict_proba` returns them."""
        p = np.asarray(self.booster_.predict(x), dtype=np.float64)
        return np.column_stack([1.0 - p, p])

    def predict(self, x: NDArray[np.float64], pred_contrib: bool = False) -> NDArray[np.float64]:
        """Probabilities, or per-feature log-odds contributions (`pred_contrib=True`)."""
        return np.asarray(self.booster_.predict(x, pred_contrib=pred_contrib), dtype=np.float64)


def text_input_names() -> list[str]:
    """Head input columns of the raw MiniLM vectors: `desc_emb_0..383`, `note_emb_0..383`."""
    return [f"{name}_emb_{i}" for name in TEXT_FIELDS for i in range(DIMENSIONS)]


def case_feature_names(model: ReasonModel) -> list[str]:
    """The case feature columns the model was fitted on (its features minus text components)."""
    return [n for n in model.feature_names if "_text_" not in n]


def head_matrix(features: CaseFeatures) -> NDArray[np.float64]:
    """The reason head's input rows: case features, then the raw text vectors (embedded first)."""
    if features.text is None:
        raise ValueError("embed the texts first (models.reason.embed_texts)")
    return np.hstack([features.matrix, features.text.astype(np.float64)])


def _state_to_json(state: Mapping[str, Any]) -> dict[str, Any]:
    # Arrays keep their dtype so the rebuilt estimator computes bit for bit the same.
    out: dict[str, Any] = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            out[key] = {"array": value.tolist(), "dtype": str(value.dtype)}
        elif isinstance(value, np.generic):
            out[key] = {"scalar": value.item(), "dtype": str(value.dtype)}
        elif value is None or isinstance(value, bool | int | float | str):
            out[key] = {"value": value}
        else:
            raise TypeError(f"cannot store {key}={type(value).__name__} as JSON")
    return out


def _state_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, item in data.items():
        if "array" in item:
            out[key] = np.asarray(item["array"], dtype=item["dtype"])
        elif "scalar" in item:
            out[key] = np.dtype(item["dtype"]).type(item["scalar"])
        else:
            out[key] = item["value"]
    return out


def _project(pca: PCA, block: NDArray[np.float32]) -> NDArray[Any]:
    """`pca.transform(block)` for a dense block, without scikit-learn's input checks.

    The same two products in the same order (so the same numbers): the checks cost more than
    the projection of one document, and a score request projects two text blocks.
    """
    if pca.whiten:
        return np.asarray(pca.transform(block))
    reduced = block @ pca.components_.T
    reduced -= pca.mean_.reshape(1, -1) @ pca.components_.T
    return np.asarray(reduced)


def calibrate(calibrator: IsotonicRegression, raw: NDArray[np.float64]) -> NDArray[np.float64]:
    """`calibrator.predict(raw)` for a fitted `out_of_bounds="clip"` isotonic calibrator.

    The same piecewise-linear curve through its thresholds, clipped at both ends, without
    scikit-learn's input checks: 3 µs instead of 180 µs a call, and a score request calibrates
    every code (tests/models/test_reason.py compares the two).
    """
    return np.asarray(
        np.interp(raw, calibrator.X_thresholds_, calibrator.y_thresholds_), dtype=np.float64
    )


def calibrator_to_json(calibrator: IsotonicRegression) -> dict[str, Any]:
    """An isotonic calibrator's fitted state (thresholds and values) as plain JSON."""
    return _state_to_json(calibrator.__getstate__())


def calibrator_from_json(data: Mapping[str, Any]) -> IsotonicRegression:
    """Rebuild an isotonic calibrator through scikit-learn's own `__setstate__`."""
    calibrator = IsotonicRegression()
    calibrator.__setstate__(_state_from_json(data))
    return calibrator


def _load_skops(path: Path) -> Any:
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=path)
    # Our own store, still refuse anything outside scikit-learn and numpy.
    allowed = [t for t in untrusted if t.startswith(("sklearn.", "numpy."))]
    if len(allowed) != len(untrusted):
        raise ValueError(f"{path.name} holds types outside scikit-learn/numpy: {untrusted}")
    return sio.load(path, trusted=allowed)


def to_bundle(model: ReasonModel, folder: Path) -> dict[str, Any]:
    """Write a fitted model into a bundle folder; returns its `bundle.json` head spec."""
    import json

    import skops.io as sio

    if not model.feature_names:
        raise ValueError("the reason model is not fitted")
    files: dict[str, str] = {}
    for code, code_model in model.codes.items():
        files[code] = f"reason_{code.lower()}.txt"
        code_model.classifier.booster_.save_model(str(folder / files[code]))
    pca_files: dict[str, str | None] = {}
    for name in TEXT_FIELDS:
        pca = model._pca.get(name)
        pca_files[name] = None if pca is None else f"reason_pca_{name}.skops"
        if pca is not None:
            sio.dump(pca, folder / f"reason_pca_{name}.skops")
    calibrators = {c: calibrator_to_json(m.calibrator) for c, m in model.codes.items()}
    (folder / CALIBRATORS_FILE).write_text(json.dumps(calibrators), encoding="utf-8")
    state = {
        "min_support": model.min_support,
        "folds": model.folds,
        "seed": model.seed,
        "feature_names": model.feature_names,
        "fallback": model.fallback,
        "thresholds": {c: m.threshold for c, m in model.codes.items()},
        "support": {c: m.support for c, m in model.codes.items()},
    }
    (folder / MODEL_FILE).write_text(json.dumps(state, indent=1), encoding="utf-8")
    return {
        "kind": HEAD_KIND,
        "files": files,
        "pca": pca_files,
        "calibrators": CALIBRATORS_FILE,
        "model": MODEL_FILE,
        "features": [*case_feature_names(model), *text_input_names()],
        "outputs": [code.value for code in ReasonCode],
        "meta": {
            "thresholds": {
                c.value: float(t) for c, t in zip(ReasonCode, model.thresholds(), strict=True)
            },
            "modelled_codes": sorted(model.codes),
            "fallback_codes": list(model.fallback),
            "text_dimensions": DIMENSIONS,
            "inputs": "case features (models.features), then mean line-description and note "
            "MiniLM vectors (models.reason.head_matrix)",
        },
    }


def from_bundle(folder: Path, spec: Mapping[str, Any]) -> ReasonModel:
    """Rebuild a `ReasonModel` from bundle files (boosters as text, calibrators as JSON)."""
    import json

    state = json.loads((folder / spec["model"]).read_text(encoding="utf-8"))
    calibrators = json.loads((folder / spec["calibrators"]).read_text(encoding="utf-8"))
    model = ReasonModel(
        min_support=int(state["min_support"]), folds=int(state["folds"]), seed=int(state["seed"])
    )
    model.feature_names = list(state["feature_names"])
    model.fallback = list(state["fallback"])
    for code, file in spec["files"].items():
        model.codes[code] = CodeModel(
            classifier=BoosterClassifier(lgb.Booster(model_file=str(folder / file))),
            calibrator=calibrator_from_json(calibrators[code]),
            threshold=float(state["thresholds"][code]),
            support=int(state["support"][code]),
        )
    for name in TEXT_FIELDS:
        file = spec["pca"].get(name)
        model._pca[name] = None if file is None else _load_skops(folder / file)
    return model


def head_for(
    model: ReasonModel, name: str, spec: Mapping[str, Any], meta: Mapping[str, Any] | None = None
) -> Head:
    """A registry head over `model`: `head_matrix` rows -> calibrated P per code."""
    features = tuple(spec["features"])
    case_names = list(features[: len(features) - len(TEXT_FIELDS) * DIMENSIONS])
    width = len(case_names)

    def compute(x: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        n = x.shape[0]
        # Embeddings are float32 upstream; the PCA must see the same dtype as in training.
        case = CaseFeatures(
            case_names,
            x[:, :width],
            [[] for _ in range(n)],
            [""] * n,
            x[:, width:].astype(np.float32),
        )
        matrix = model.probability_matrix(case)
        return {code.value: matrix[:, i] for i, code in enumerate(ReasonCode)}

    return Head(
        name=name,
        features=features,
        outputs=tuple(spec["outputs"]),
        categorical={},
        compute=compute,
        meta=spec.get("meta", {}) if meta is None else meta,
    )


def reason_head(folder: Path, name: str, spec: Mapping[str, Any]) -> Head:
    """The registry head of kind "reason", read from its bundle."""
    return head_for(from_bundle(folder, spec), name, spec)


# Importing this module teaches `ModelRegistry.load("reason")` the head kind.
register_head_kind(HEAD_KIND, reason_head)
