"""Score cases with the three registered families: reasons, anomalies/duplicates, delay.

Pure: the caller hands over the documents (the cases to score and, before them, the earlier
documents their history features need) and the master data; nothing here reads a database.
Every `FamilyScore` names the model name, version and run id of the `LoadedModel` object that
computed it, so a score can never be attributed to a version that did not produce it, even when
an alias moves while a batch is being scored.

Explanations need per-feature contributions, which the registry's heads do not expose; importing
this module re-registers the `lightgbm` and `reason` head kinds with loaders that keep an
explainer (path attributions, or the reason model's TreeSHAP) in the head's metadata under
`EXPLAINER`. Outputs are unchanged.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models import reason as reason_module
from models.boosters import ServingBooster
from models.delay import delay_features
from models.duplicates import (
    FEATURE_NAMES as PAIR_FEATURE_NAMES,
)
from models.duplicates import (
    PRICE_FEATURE_NAMES,
    CandidateDocument,
    CandidateIndex,
    PriceHistory,
    block_candidates,
    ordered_quantities,
    pair_features,
    price_features,
    supplier_key,
)
from models.embeddings import DIMENSIONS, Encoder, TextEmbedder, minilm_encoder
from models.features import (
    FEATURE_NAMES,
    CaseFeatures,
    CaseInput,
    HistoryFeatures,
    MasterData,
    _document_facts,
    _finding_features,
    build_features,
)
from models.reason import ReasonModel, embed_texts
from models.registry import (
    Head,
    LoadedModel,
    _lightgbm_head,
    lightgbm_boosters,
    register_head_kind,
)
from pipelines.normalise import normalise_po_reference
from pipelines.reasons import ReasonCode

FloatArray = NDArray[np.float64]
EXPLAINER = "_explainer"  # head-meta key of the object that gives feature contributions
TOP_CONTRIBUTIONS = 5
MAX_CANDIDATES = 3  # duplicate candidates listed per case
# IsolationForest's own rule (`contamination="auto"`): a score above 0.5 is an outlier.
UNUSUAL_SCORE = 0.5


# -- explainable heads ---------------------------------------------------------------------


def path_attributions(booster: Any) -> Callable[[FloatArray], FloatArray]:
    """Per-feature contributions to a booster's raw output (`lgb.Booster` or `ServingBooster`).

    A node's value is the mean of its leaves weighted by their training rows (as TreeSHAP
    takes it; LightGBM's own `internal_value` is a gradient statistic, meaningless for the L1
    and quantile delay models). Each split on a row's way to its leaf moves the tree's value
    from the node's to the child's, and the move is credited to the split's feature; the
    contributions plus the last column (the trees' expected values, as `pred_contrib` gives
    them) add up to the raw prediction. This is XGBoost's `approx_contribs` (Saabas): exact
    TreeSHAP on the 897-tree delay model cost 4.8 ms per case, the largest single cost of a
    score request. LightGBM finds the leaves (`pred_leaf`); a table of per-leaf paths does
    the rest in about 0.3 ms.
    """
    serving = booster if isinstance(booster, ServingBooster) else ServingBooster(booster)
    width = serving.num_feature()
    tables: list[FloatArray] = []

    def mean(node: dict[str, Any]) -> tuple[float, float]:
        """(value, rows) of a node; each split node gets its `mean` on the way."""
        if "leaf_value" in node:
            return float(node["leaf_value"]), float(node.get("leaf_count", 0))
        left, n_left = mean(node["left_child"])
        right, n_right = mean(node["right_child"])
        rows = n_left + n_right
        node["mean"] = (left * n_left + right * n_right) / rows if rows else (left + right) / 2
        return node["mean"], rows

    for tree in serving.booster.dump_model()["tree_info"]:
        root = tree["tree_structure"]
        table = np.zeros((tree["num_leaves"], width + 1), dtype=np.float64)
        table[:, width] = mean(root)[0]
        stack = [(root, np.zeros(width, dtype=np.float64))] if "split_feature" in root else []
        while stack:
            node, credit = stack.pop()
            for side in ("left_child", "right_child"):
                child = node[side]
                step = credit.copy()
                value = child["leaf_value"] if "leaf_value" in child else child["mean"]
                step[node["split_feature"]] += value - node["mean"]
                if "leaf_value" in child:
                    table[child.get("leaf_index", 0), :width] = step
                else:
                    stack.append((child, step))
        tables.append(table)
    leaves = np.vstack(tables)
    offsets = np.cumsum([0] + [len(t) for t in tables[:-1]], dtype=np.intp)

    def contributions(x: FloatArray) -> FloatArray:
        landed = serving.predict(x, pred_leaf=True).astype(np.intp)
        return np.asarray(leaves[landed.reshape(len(x), -1) + offsets].sum(axis=1))

    return contributions


def _explainable_lightgbm(folder: Path, name: str, spec: Mapping[str, Any]) -> Head:
    """The registry's LightGBM head plus per-output path attributions (log-odds or raw units)."""
    boosters = lightgbm_boosters(folder, spec)  # read once, for the head and its explainers
    head = _lightgbm_head(folder, name, spec, boosters)
    explainers = {out: path_attributions(booster) for out, booster in boosters.items()}

    def contributions(x: FloatArray, output: str) -> FloatArray:
        return explainers[output](x)

    return replace(head, meta={**dict(head.meta), EXPLAINER: contributions})


class _ServingReasonBooster(reason_module.BoosterClassifier):
    """The reason model's booster, predicting as the registry's heads do (models/boosters.py)."""

    def __init__(self, booster: Any) -> None:
        super().__init__(booster)
        self._serving = ServingBooster(booster)

    def predict_proba(self, x: FloatArray) -> FloatArray:
        """Columns P(no), P(yes)."""
        p = self._serving.predict(x)
        return np.column_stack([1.0 - p, p])

    def predict(self, x: FloatArray, pred_contrib: bool = False) -> FloatArray:
        """Probabilities, or per-feature log-odds contributions."""
        return self._serving.predict(x, pred_contrib=pred_contrib)


def _explainable_reason(folder: Path, name: str, spec: Mapping[str, Any]) -> Head:
    """The reason head (as `models.reason.reason_head` computes it) plus its `ReasonModel`.

    OpenMP start-up and spin-waiting made LightGBM's default threads cost 15 ms per call on a
    busy 2-core box, against well under 1 ms on one thread; the numbers are the same.
    """
    model = reason_module.from_bundle(folder, spec)
    for code_model in model.codes.values():
        if isinstance(code_model.classifier, reason_module.BoosterClassifier):
            code_model.classifier = _ServingReasonBooster(code_model.classifier.booster_)
    return reason_module.head_for(model, name, spec, {**spec.get("meta", {}), EXPLAINER: model})


def _fast_isolation_forest(folder: Path, name: str, spec: Mapping[str, Any]) -> Head:
    """An IsolationForest head that walks the trees directly, giving sklearn's exact scores.

    `score_samples` dispatches each of the 200 trees through joblib with input checks and
    warning filters: 250 ms for one row. Here the nodes of all trees sit in flat arrays and
    the rows step down every tree at once, one level per step (at most 9 levels for 256
    samples); the path lengths are then added tree by tree in sklearn's order. About 0.2 ms.
    """
    import skops.io as sio

    path = folder / spec["file"]
    untrusted = sio.get_untrusted_types(file=path)
    # Our own store, still refuse anything outside scikit-learn and numpy.
    allowed = [t for t in untrusted if t.startswith(("sklearn.", "numpy."))]
    if len(allowed) != len(untrusted):
        raise ValueError(f"{path.name} holds types outside scikit-learn/numpy: {untrusted}")
    forest = sio.load(path, trusted=allowed)
    output = spec["outputs"][0]
    from sklearn.ensemble._iforest import _average_path_length

    subsample = forest._max_features != forest.n_features_in_
    feature, threshold, left, right, length, roots = [], [], [], [], [], []
    offset = 0
    for tree, features, dpl, apl in zip(
        forest.estimators_,
        forest.estimators_features_,
        forest._decision_path_lengths,
        forest._average_path_length_per_tree,
        strict=True,
    ):
        t = tree.tree_
        leaf = t.children_left == -1
        local = np.where(leaf, 0, t.feature)
        # Features index the tree's own subset of columns when the forest subsamples them.
        feature.append(np.asarray(features, dtype=np.intp)[local] if subsample else local)
        threshold.append(np.where(leaf, np.inf, t.threshold))  # a leaf stays where it is
        left.append(np.where(leaf, np.arange(t.node_count), t.children_left) + offset)
        right.append(np.where(leaf, np.arange(t.node_count), t.children_right) + offset)
        length.append(np.asarray(dpl + apl - 1.0, dtype=np.float64))
        roots.append(offset)
        offset += t.node_count
    node_feature = np.concatenate(feature).astype(np.intp)
    node_threshold = np.concatenate(threshold).astype(np.float64)
    node_left = np.concatenate(left).astype(np.intp)
    node_right = np.concatenate(right).astype(np.intp)
    node_length = np.concatenate(length)
    tree_roots = np.asarray(roots, dtype=np.intp)
    denominator = len(forest.estimators_) * float(_average_path_length([forest._max_samples])[0])

    def compute(x: FloatArray) -> dict[str, FloatArray]:
        # sklearn compares the float32 value, widened, with the float64 threshold.
        values = np.ascontiguousarray(x, dtype=np.float32).astype(np.float64)
        if np.isnan(values).any():  # missing values follow sklearn's own rules
            scores = -forest.score_samples(x)
            return {output: np.asarray(scores, dtype=np.float64)}
        rows = np.arange(len(values))[:, None]
        nodes = np.broadcast_to(tree_roots, (len(values), len(tree_roots)))
        while True:
            at = values[rows, node_feature[nodes]] <= node_threshold[nodes]
            moved = np.where(at, node_left[nodes], node_right[nodes])
            if np.array_equal(moved, nodes):
                break
            nodes = moved
        # Tree by tree, left to right, as sklearn adds them (cumsum is sequential).
        depths = np.cumsum(node_length[nodes], axis=1)[:, -1] if len(values) else np.zeros(0)
        if denominator == 0:
            return {output: np.ones_like(depths)}
        return {output: np.asarray(2.0 ** (-(depths / denominator)), dtype=np.float64)}

    return Head(
        name=name,
        features=tuple(spec["features"]),
        outputs=tuple(spec["outputs"]),
        categorical={},
        compute=compute,
        meta={**spec.get("meta", {}), EXPLAINER: forest},
    )


register_head_kind("lightgbm", _explainable_lightgbm)
register_head_kind(reason_module.HEAD_KIND, _explainable_reason)
register_head_kind("skops-isolation-forest", _fast_isolation_forest)


# -- inputs and outputs --------------------------------------------------------------------


@dataclass(frozen=True)
class DelayContext:
    """What the delay model knows of a case at intake beyond the document itself."""

    queue: str | None = None
    queue_load: int | None = None  # open cases ahead of this one in its queue
    received_at: datetime | None = None
    sla_hours: float | None = None
    company: str | None = None
    language: str | None = None


@dataclass(frozen=True)
class PriorDocument:
    """An earlier document (any supplier) in arrival order: history for the cases after it."""

    ref: str
    case: CaseInput


@dataclass(frozen=True)
class ScoreItem:
    """One case to score: its reference, document with rule findings, and delay context."""

    ref: str
    case: CaseInput
    delay: DelayContext = field(default_factory=DelayContext)


def _candidate(ref: str, case: CaseInput) -> CandidateDocument:
    return CandidateDocument(ref, case.document, supplier_key(case.document, case.supplier_ref))


@dataclass(frozen=True)
class HistoryIndex:
    """What a run of history documents tells the documents after it, worked out once.

    Scoring one document against its supplier's last 200 went through all 200 for the case
    features, the duplicate candidates and the price history: a fifth of a score request.
    Serving keeps one index per history (app/scoring/inputs.py). Nothing changes it after
    `build`, so concurrent requests may share it.
    """

    history: tuple[PriorDocument, ...]
    features: HistoryFeatures  # observed; read against each batch's own master data
    candidates: CandidateIndex
    prices: PriceHistory

    @classmethod
    def build(cls, history: Sequence[PriorDocument]) -> HistoryIndex:
        """Observe the documents in order."""
        features = HistoryFeatures(MasterData({}, {}))
        candidates = CandidateIndex()
        prices = PriceHistory()
        for prior in history:
            features.observe(prior.case)
            document = _candidate(prior.ref, prior.case)
            candidates.add(document)
            prices.observe(document)
        features.settle()
        return cls(tuple(history), features, candidates, prices)


@dataclass(frozen=True)
class ScoreBatch:
    """Cases to score after the documents before them; later items see earlier ones as history.

    `index`, when given, is `HistoryIndex.build(history)`: a batch of one item is then scored
    from it without going through the history again (the same numbers).
    """

    master: MasterData
    history: Sequence[PriorDocument]
    items: Sequence[ScoreItem]
    index: HistoryIndex | None = None

    @property
    def indexed(self) -> HistoryIndex | None:
        """The index to score from: given, and one item (later items would extend it)."""
        return self.index if len(self.items) == 1 else None


@dataclass(frozen=True)
class FamilyScore:
    """One family's output on one case, naming the model version that computed it."""

    family: str
    model_name: str
    version: str
    run_id: str
    output: dict[str, Any]
    explanation: list[dict[str, Any]]


def _clean(value: float) -> float | None:
    """JSON-safe float (NaN and infinities have no JSON form; PostgreSQL refuses them)."""
    return None if not math.isfinite(value) else float(value)


def _entry(feature: str, contribution: float, text: str) -> dict[str, Any]:
    return {"feature": feature, "contribution": _clean(contribution), "text": text}


# -- words for the anomaly and delay features -----------------------------------------------


def _yes(words_yes: str, words_no: str) -> Callable[[float], str]:
    return lambda v: words_yes if v > 0 else words_no


_PAIR_WORDS: dict[str, Callable[[float], str]] = {
    "number_equal": _yes("same document number", "different document number"),
    "number_ocr_equal": _yes("number equal once OCR look-alikes are folded", "numbers differ"),
    "number_ocr_ratio": lambda v: f"numbers {v * 100:.0f} % alike (OCR-aware)",
    "number_levenshtein": lambda v: f"numbers {v:.0f} character(s) apart",
    "number_digit_overlap": lambda v: f"{v * 100:.0f} % of the digits in common",
    "number_length_diff": lambda v: f"number lengths differ by {v:.0f}",
    "gross_equal": _yes("same gross amount", "different gross amount"),
    "net_equal": _yes("same net amount", "different net amount"),
    "gross_abs_diff": lambda v: f"gross amounts {v:,.2f} apart",
    "gross_rel_diff": lambda v: f"gross amounts {v * 100:.1f} % apart",
    "net_abs_diff": lambda v: f"net amounts {v:,.2f} apart",
    "cents_only": _yes("gross differs by cents only", "gross differs by more than cents"),
    "day_gap": lambda v: f"issued {v:.0f} day(s) apart",
    "same_po": _yes("both on the same PO", "not on the same PO"),
    "both_have_po": _yes("both quote a PO", "a PO is missing on one"),
    "same_currency": _yes("same currency", "different currency"),
    "same_line_count": _yes("same number of lines", "different number of lines"),
    "item_overlap": lambda v: f"{v * 100:.0f} % of the items in common",
    "qty_overlap": lambda v: f"{v * 100:.0f} % of the quantities in common",
    "price_overlap": lambda v: f"{v * 100:.0f} % of the prices in common",
    "line_amount_overlap": lambda v: f"{v * 100:.0f} % of the line amounts in common",
    "po_billed_ratio": lambda v: f"together they bill {v:.2f}x what was ordered",
    "po_known": _yes("the PO is known", "the PO is unknown"),
    "same_iban": _yes("same bank account", "different or missing bank account"),
    "log_gross": lambda v: f"gross about {10**v - 1:,.0f}",
}

_PRICE_WORDS: dict[str, Callable[[float], str]] = {
    "unit_price_vs_history": lambda v: f"a line price {math.exp(v):.2f}x this supplier's usual",
    "unit_price_history_known": _yes("item prices known", "no price history for the items"),
    "net_vs_supplier_history": lambda v: f"net {math.exp(v):.2f}x this supplier's usual net",
    "same_day_same_po": lambda v: f"{v:.0f} earlier invoice(s) on this PO the same day",
    "log_net": lambda v: f"net about {10**v - 1:,.0f}",
}

_DELAY_WORDS: dict[str, Callable[[Any], str]] = {
    "queue": lambda v: f"queue {v}",
    "kind": lambda v: f"document is a {str(v).replace('_', ' ')}",
    "currency": lambda v: f"currency {v}",
    "company": lambda v: f"company {v}",
    "language": lambda v: f"language {v}",
    "supplier_ref": lambda v: f"supplier {v}",
    "lines": lambda v: f"{v} line(s)",
    "log_gross": lambda v: f"gross about {10 ** float(v) - 1:,.0f}",
    "queue_load": lambda v: f"{v} case(s) already waiting in the queue",
    "received_hour": lambda v: f"received at {int(v):02d}:{int(float(v) % 1 * 60):02d}",
    "received_weekday": lambda v: (
        "received on " + ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[int(v) % 7]
    ),
    "sla_hours": lambda v: f"SLA of {float(v):.0f} hours",
    "n_reasons": lambda v: f"{v} reason(s) found by the rules",
    "has_po": lambda v: "quotes a PO" if v else "no PO quoted",
}


def _delay_words(name: str, value: object) -> str:
    if value is None:
        return f"{name.replace('_', ' ')}: unknown"
    if name.startswith("reason_"):
        code = name.removeprefix("reason_")
        return f"rules found {code}" if value else f"rules did not find {code}"
    words = _DELAY_WORDS.get(name)
    return words(value) if words is not None else f"{name} = {value}"


def _pair_words(ref: str, values: FloatArray) -> Callable[[int], str]:
    def words(i: int) -> str:
        return f"vs {ref}: " + _PAIR_WORDS[PAIR_FEATURE_NAMES[i]](float(values[i]))

    return words


def _delay_row_words(head: Head, raw: Mapping[str, object]) -> Callable[[int], str]:
    def words(j: int) -> str:
        return _delay_words(head.features[j], raw.get(head.features[j]))

    return words


def _top(
    names: Sequence[str], contrib: FloatArray, words: Callable[[int], str], top: int
) -> list[dict[str, Any]]:
    order = sorted(range(len(names)), key=lambda i: -abs(float(contrib[i])))
    return [_entry(names[i], float(contrib[i]), words(i)) for i in order[:top] if contrib[i] != 0.0]


# -- the scorer ----------------------------------------------------------------------------


def tune_for_serving() -> None:
    """Tune a process that serves requests side by side: one native thread, quick GIL hand-off.

    Measured with two server processes on two cores (bench/score_load.py, PostgreSQL): 90 score
    requests/s with the libraries' default OpenMP/BLAS pools (their threads spin and fight the
    other process), 103 with one thread each. A request thread back from a database round trip
    waits for the GIL behind the thread running the models; a 0.5 ms switch interval instead
    of 5 ms took 32 clients from 73 to 89 requests/s. Environment first, for libraries loaded
    later (LightGBM's OpenMP); then the pools already loaded.
    """
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    sys.setswitchinterval(0.0005)


def serving_encoder() -> Encoder:
    """MiniLM for serving: torch on one thread (the process serves requests side by side).

    Measured on a loaded 2-core box: 3 short texts took 200-370 ms with torch's default two
    threads and 50 ms with one. Training keeps the default (large batches use both cores).
    """
    base = minilm_encoder()

    def encode(texts: list[str]) -> NDArray[np.float32]:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
        return base(texts)

    return encode


class CaseScorer:
    """Scores batches of cases with whichever families are loaded (any may be missing)."""

    def __init__(
        self,
        models: Mapping[str, LoadedModel],
        embedder: TextEmbedder | None = None,
        *,
        embedding_cache: Path | None = None,
        top: int = TOP_CONTRIBUTIONS,
    ) -> None:
        self.models = dict(models)
        self.top = top
        self._embedder = embedder
        self._embedding_cache = embedding_cache

    @property
    def families(self) -> list[str]:
        """The families this scorer has a model for."""
        return sorted(self.models)

    @property
    def embedder(self) -> TextEmbedder:
        """The text embedder (MiniLM loads on the first uncached text)."""
        if self._embedder is None:
            self._embedder = TextEmbedder(self._embedding_cache, serving_encoder())
        return self._embedder

    def score(self, batch: ScoreBatch) -> list[list[FamilyScore]]:
        """Per item of the batch, one `FamilyScore` per loaded family (reason, anomaly, delay)."""
        return self.score_many([batch])[0]

    def score_many(self, batches: Sequence[ScoreBatch]) -> list[list[list[FamilyScore]]]:
        """Score independent batches in one pass: each sees only its own history.

        The outputs are those of `score` on each batch alone; the models run once over the
        rows of all of them, which is what makes concurrent requests cheap together.
        """
        items = [item for batch in batches for item in batch.items]
        flat: list[list[FamilyScore]] = [[] for _ in items]
        if items:
            for family, scorer in (
                ("reason", self._reason),
                ("anomaly", self._anomaly),
                ("delay", self._delay),
            ):
                model = self.models.get(family)
                if model is None:
                    continue
                for row, (output, explanation) in enumerate(scorer(model, batches)):
                    flat[row].append(
                        FamilyScore(
                            family, model.name, model.version, model.run_id, output, explanation
                        )
                    )
        out: list[list[list[FamilyScore]]] = []
        start = 0
        for batch in batches:
            out.append(flat[start : start + len(batch.items)])
            start += len(batch.items)
        return out

    # -- reason ------------------------------------------------------------------------------

    def _reason(
        self, model: LoadedModel, batches: Sequence[ScoreBatch]
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        target = _concat([target_features(batch) for batch in batches])
        embed_texts(target, self.embedder)
        assert target.text is not None
        head = model.head("reason")
        width = len(head.features) - 2 * DIMENSIONS
        case_names = list(head.features[:width])
        index = {name: i for i, name in enumerate(target.names)}
        case_matrix = np.column_stack(
            [
                target.matrix[:, index[n]] if n in index else np.full(len(target), np.nan)
                for n in case_names
            ]
        )
        thresholds = head.meta.get("thresholds", {})
        explainer = head.meta.get(EXPLAINER)
        single = CaseFeatures(
            case_names, case_matrix, target.descriptions, target.notes, target.text
        )
        x = np.hstack([case_matrix, target.text.astype(np.float64)])
        outputs = model.predict(x, "reason").outputs
        results = []
        for row in range(len(target)):
            probabilities = {code: float(outputs[code][row]) for code in head.outputs}
            predicted = [
                code
                for code in head.outputs
                if probabilities[code] >= float(thresholds.get(code, 0.5))
            ]
            explanation: list[dict[str, Any]] = []
            if isinstance(explainer, ReasonModel):
                best = max(probabilities, key=lambda c: probabilities[c])
                explanation = [
                    _entry(name, c, f"{best}: {words}")
                    for name, c, words in explainer.explain(single, self.top, row=row, code=best)
                ]
            results.append(
                (
                    {
                        "probabilities": {k: _clean(v) for k, v in probabilities.items()},
                        "predicted": predicted,
                    },
                    explanation,
                )
            )
        return results

    # -- anomaly -----------------------------------------------------------------------------

    def _anomaly(
        self, model: LoadedModel, batches: Sequence[ScoreBatch]
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        duplicate = model.head("duplicate") if "duplicate" in model.heads else None
        threshold = float(duplicate.meta.get("threshold", 0.5)) if duplicate is not None else 0.5
        inputs = [_anomaly_inputs(batch, duplicate) for batch in batches]
        pair_x = np.vstack([i.pair_x for i in inputs])
        pair_p = (
            np.asarray(model.predict(pair_x, "duplicate").outputs["p_duplicate"])
            if len(pair_x)
            else np.zeros(0)
        )
        price_x = np.vstack([i.price_x for i in inputs])
        price = (
            np.asarray(model.predict(price_x, "price").outputs["price_anomaly"])
            if "price" in model.heads and len(price_x)
            else None
        )
        contrib_fn = duplicate.meta.get(EXPLAINER) if duplicate is not None else None
        results: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        pair_base = row_base = 0
        for batch_inputs in inputs:
            by_later: dict[int, list[tuple[float, int]]] = {}
            for k, (later, _earlier) in enumerate(batch_inputs.pairs):
                by_later.setdefault(later, []).append((float(pair_p[pair_base + k]), k))
            documents, pairs = batch_inputs.documents, batch_inputs.pairs
            for row in range(batch_inputs.items):
                later = batch_inputs.start + row
                found = sorted(by_later.get(later, []), key=lambda t: (-t[0], t[1]))
                best_p = found[0][0] if found else 0.0
                candidates = [
                    {"ref": documents[pairs[k][1]].doc_id, "probability": _clean(p)}
                    for p, k in found[:MAX_CANDIDATES]
                ]
                score = float(price[row_base + row]) if price is not None else None
                unusual = score is not None and score > UNUSUAL_SCORE
                explanation: list[dict[str, Any]] = []
                if found and callable(contrib_fn):
                    k = found[0][1]
                    values = batch_inputs.pair_x[k]
                    contrib = contrib_fn(batch_inputs.pair_x[k : k + 1], "p_duplicate")[0, :-1]
                    explanation = _top(
                        PAIR_FEATURE_NAMES,
                        contrib,
                        _pair_words(documents[pairs[k][1]].doc_id, values),
                        self.top,
                    )
                elif duplicate is not None:
                    explanation = [
                        _entry(
                            "candidates",
                            0.0,
                            "no earlier document of this supplier is close in amount and date",
                        )
                    ]
                if unusual:
                    values = batch_inputs.price_x[row]
                    strongest = max(range(len(PRICE_FEATURE_NAMES)), key=lambda i: abs(values[i]))
                    name = PRICE_FEATURE_NAMES[strongest]
                    explanation.append(
                        _entry(
                            name, float(values[strongest]), _PRICE_WORDS[name](values[strongest])
                        )
                    )
                results.append(
                    (
                        {
                            "duplicate_probability": _clean(best_p),
                            "duplicate_of": candidates[0]["ref"]
                            if found and best_p >= threshold
                            else None,
                            "candidates": candidates,
                            "anomaly_score": None if score is None else _clean(score),
                            "unusual": bool(unusual),
                        },
                        explanation,
                    )
                )
            pair_base += len(pairs)
            row_base += batch_inputs.items
        return results

    # -- delay -------------------------------------------------------------------------------

    def _delay(
        self, model: LoadedModel, batches: Sequence[ScoreBatch]
    ) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        items = [item for batch in batches for item in batch.items]
        if "hours" not in model.heads:
            return [({}, []) for _ in items]
        rows = [delay_record(item) for item in items]
        head = model.head("hours")
        x = head.encode(rows)
        outputs = model.predict(x, "hours").outputs
        contrib_fn = head.meta.get(EXPLAINER)
        contrib = contrib_fn(x, "hours_p50")[:, :-1] if callable(contrib_fn) else None
        results = []
        for i, raw in enumerate(rows):
            explanation: list[dict[str, Any]] = []
            if contrib is not None:
                explanation = [
                    {**e, "text": e["text"] + " (hours)"}
                    for e in _top(head.features, contrib[i], _delay_row_words(head, raw), self.top)
                ]
            results.append(
                (
                    {
                        "p50_hours": _clean(float(outputs["hours_p50"][i])),
                        "p90_hours": _clean(float(outputs["hours_p90"][i])),
                        "p_sla_breach": _clean(float(outputs["p_sla_breach"][i])),
                    },
                    explanation,
                )
            )
        return results


def _concat(parts: Sequence[CaseFeatures]) -> CaseFeatures:
    """The rows of several feature tables with the same columns, one after the other."""
    if len(parts) == 1:
        return parts[0]
    return CaseFeatures(
        parts[0].names,
        np.vstack([p.matrix for p in parts]),
        [d for p in parts for d in p.descriptions],
        [n for p in parts for n in p.notes],
    )


@dataclass(frozen=True)
class _AnomalyInputs:
    """One batch's duplicate-pair and price feature rows (its items only)."""

    documents: list[CandidateDocument]
    start: int  # index of the batch's first item in `documents` (history comes before)
    items: int
    pairs: list[tuple[int, int]]  # (later item, earlier document) indices into `documents`
    pair_x: FloatArray
    price_x: FloatArray


def _anomaly_inputs(batch: ScoreBatch, duplicate: Head | None) -> _AnomalyInputs:
    index = batch.indexed
    start = len(batch.history)
    items = [_candidate(i.ref, i.case) for i in batch.items]
    if index is not None:
        documents = index.candidates.documents + items
    else:
        documents = [_candidate(p.ref, p.case) for p in batch.history] + items
    pairs: list[tuple[int, int]] = []
    pair_rows: list[list[float]] = []
    if duplicate is not None:
        window = int(duplicate.meta.get("window_days", 365))
        band = Decimal(str(duplicate.meta.get("gross_band", "0.05")))
        blocks = (
            [index.candidates.candidates(items[0], window, band)]
            if index is not None
            else block_candidates(documents, window, band, start)[start:]
        )
        pairs = [(start + row, earlier) for row, found in enumerate(blocks) for earlier in found]
        if pairs:  # most documents have no candidate: skip indexing the POs' quantities
            # Only the POs the pairs quote (the master data holds the items' other POs too).
            quoted = {
                normalise_po_reference(reference)
                for pair in pairs
                for i in pair
                if (reference := documents[i].document.po_reference)
            }
            ordered = ordered_quantities(
                [
                    po
                    for po in batch.master.purchase_orders.values()
                    if normalise_po_reference(po.number) in quoted
                ]
            )
            pair_rows = [
                pair_features(documents[later].document, documents[earlier].document, ordered)
                for later, earlier in pairs
            ]
    pair_x = np.asarray(pair_rows, dtype=np.float64).reshape(-1, len(PAIR_FEATURE_NAMES))
    price_x = (
        np.asarray([index.prices.row(items[0])], dtype=np.float64)
        if index is not None
        else price_features(documents, start)
    )
    return _AnomalyInputs(documents, start, len(batch.items), pairs, pair_x, price_x)


def target_features(batch: ScoreBatch) -> CaseFeatures:
    """`build_features` rows of the batch's items, history documents only observed.

    The same loop as `models.features.build_features` (so the same numbers), minus the feature
    rows of the history documents, which nobody reads: a third of single-case latency.
    """
    index = batch.indexed
    if index is not None:
        history = index.features.reading(batch.master)
    else:
        history = HistoryFeatures(batch.master)
        for prior in batch.history:
            history.observe(prior.case)
    rows: list[list[float]] = []
    descriptions: list[list[str]] = []
    notes: list[str] = []
    for position, item in enumerate(batch.items):
        doc = item.case.document
        values = _finding_features(item.case.findings)
        values.update(_document_facts(doc, batch.master))
        values.update(history.features(item.case))
        if position < len(batch.items) - 1:  # the last one has nobody after it to tell
            history.observe(item.case)
        rows.append([values[name] for name in FEATURE_NAMES])
        descriptions.append([ln.description for ln in doc.lines if ln.description])
        notes.append(" ".join(doc.notes + [ln.note for ln in doc.lines if ln.note]))
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return CaseFeatures(list(FEATURE_NAMES), matrix, descriptions, notes)


def delay_record(item: ScoreItem) -> dict[str, object]:
    """The delay head's raw features of a case, from the same function training uses."""
    doc = item.case.document
    ctx = item.delay
    record = {
        "kind": doc.kind,
        "currency": doc.currency,
        "company": ctx.company,
        "language": ctx.language,
        "supplier_ref": item.case.supplier_ref,
        "lines": len(doc.lines),
        "gross": None if doc.gross is None else str(doc.gross),
        "po_number": doc.po_reference,
        "reasons": sorted({f.code.value for f in item.case.findings}),
        "review": {
            "queue": ctx.queue,
            "queue_load": ctx.queue_load,
            "received_at": ctx.received_at.isoformat() if ctx.received_at else None,
            "sla_hours": ctx.sla_hours,
        },
    }
    return delay_features(record)


# -- similar cases -------------------------------------------------------------------------

_CODE_COLUMNS = [f"{code.value.lower()}:present" for code in ReasonCode]


def similarity_vectors(features: CaseFeatures, embedder: TextEmbedder) -> FloatArray:
    """Unit vectors for cosine similarity: text (line descriptions, notes), reasons, size."""
    if features.text is None:
        embed_texts(features, embedder)
    assert features.text is not None
    index = {name: i for i, name in enumerate(features.names)}
    codes = np.column_stack([features.matrix[:, index[c]] for c in _CODE_COLUMNS])
    gross = np.nan_to_num(features.matrix[:, index["gross"]], nan=0.0)
    size = np.log10(1.0 + np.abs(gross))[:, None] / 6.0
    lines = np.log1p(np.nan_to_num(features.matrix[:, index["lines"]]))[:, None] / 4.0
    # Weights: what went wrong (the reasons) matters as much as what was bought (the text).
    parts = [
        features.text[:, :DIMENSIONS].astype(np.float64) * 0.6,
        features.text[:, DIMENSIONS:].astype(np.float64) * 0.4,
        codes / math.sqrt(3.0),
        size,
        lines,
    ]
    vectors = np.hstack(parts)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float64)


def nearest(query: FloatArray, pool: FloatArray, k: int) -> list[tuple[int, float]]:
    """The `k` rows of `pool` most similar to `query` (cosine of unit vectors), best first."""
    if len(pool) == 0 or k <= 0:
        return []
    sims = pool @ query
    order = np.argsort(-sims, kind="stable")[:k]
    return [(int(i), float(sims[i])) for i in order]


def features_of(cases: Sequence[CaseInput]) -> CaseFeatures:
    """Document facts and findings of unrelated cases (no master data, history ignored)."""
    return build_features(cases, MasterData({}, {}))
