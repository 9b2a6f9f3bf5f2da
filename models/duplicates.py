"""Fuzzy duplicate detection: candidate blocking, pair features and a LightGBM pair classifier.

The exact-key check (`pipelines.matching.duplicates`) catches re-sends with the same number and
gross. What it misses are the fuzzy re-sends: an OCR misread of the number (O/0, I/1, B/8,
S/5), a new number on a re-sent document, a price a cent off. This module finds them in three
steps:

1. *blocking*: each document is compared only with earlier documents of the same supplier and
   kind, inside a date window and an amount band, so the pairs stay few;
2. *pair features*: number similarity (plain and OCR-aware), amount differences, day gap, same
   PO, line overlap, how much of the PO the two would bill together, same IBAN;
3. a class-weighted LightGBM classifier gives P(duplicate) per pair; a document's score is the
   maximum over its candidates, and the candidate that gave it is named.

The hard negatives are what the features are for: two invoices on one PO for two deliveries
(different quantities) and an order billed as two identical invoices on one day (together they
bill exactly what was ordered, where a duplicate bills it twice).
"""

from __future__ import annotations

import sys
from bisect import bisect_left, bisect_right, insort
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein
from sklearn.ensemble import IsolationForest

from pipelines.canonical import PurchaseOrder, SupplierDocument
from pipelines.matching.context import PriorDocument
from pipelines.matching.duplicates import find_exact_duplicates
from pipelines.normalise import (
    normalise_iban,
    normalise_invoice_number,
    normalise_po_reference,
    normalise_vat_id,
)

# The world a detector sees is half a year of documents; a re-send may come months later.
DEFAULT_WINDOW_DAYS = 365
# A re-send may differ by cents or a changed line, never by a different order of magnitude.
DEFAULT_GROSS_BAND = Decimal("0.05")
EXACT_KEY_WINDOW_DAYS = 365

# OCR confuses letters and digits of similar shape; mapping both to the digit makes a misread
# number compare equal to the original. Lower-case l is handled before upper-casing.
_OCR_TABLE = str.maketrans({"O": "0", "Q": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2"})
_SEPARATORS = str.maketrans("", "", " -/_.:#")

FEATURE_NAMES: tuple[str, ...] = (
    "number_equal",
    "number_ocr_equal",
    "number_ocr_ratio",
    "number_levenshtein",
    "number_digit_overlap",
    "number_length_diff",
    "gross_equal",
    "net_equal",
    "gross_abs_diff",
    "gross_rel_diff",
    "net_abs_diff",
    "cents_only",
    "day_gap",
    "same_po",
    "both_have_po",
    "same_currency",
    "same_line_count",
    "item_overlap",
    "qty_overlap",
    "price_overlap",
    "line_amount_overlap",
    "po_billed_ratio",
    "po_known",
    "same_iban",
    "log_gross",
)


def ocr_key(number: str) -> str:
    """The number with OCR look-alikes folded to digits and separators dropped (`I0B` -> `108`)."""
    text = number.replace("l", "1").upper().translate(_SEPARATORS)
    return text.translate(_OCR_TABLE)


def _ocr_keys(number: str) -> tuple[str, str]:
    """OCR keys before and after normalising: a misread prefix (`1NV`) defeats normalising."""
    return ocr_key(number), ocr_key(normalise_invoice_number(number))


def ocr_number_similarity(a: str | None, b: str | None) -> float:
    """OCR-aware similarity of two document numbers in [0, 1] (1 = same after OCR folding)."""
    if not a or not b:
        return 0.0
    best = 0.0
    for x in _ocr_keys(a):
        for y in _ocr_keys(b):
            if x and y:
                best = max(best, fuzz.ratio(x, y) / 100.0)
    return best


def ocr_numbers_equal(a: str | None, b: str | None) -> bool:
    """True when the two numbers are the same once OCR look-alikes and separators are folded."""
    if not a or not b:
        return False
    keys_a, keys_b = _ocr_keys(a), _ocr_keys(b)
    return any(x and x == y for x in keys_a for y in keys_b)


def digit_overlap(a: str | None, b: str | None) -> float:
    """Share of digits two numbers have in common (as multisets), 0 when either has none."""
    da = [ch for ch in (a or "") if ch.isdigit()]
    db = [ch for ch in (b or "") if ch.isdigit()]
    if not da or not db:
        return 0.0
    counts: dict[str, int] = defaultdict(int)
    for ch in da:
        counts[ch] += 1
    common = 0
    for ch in db:
        if counts[ch] > 0:
            counts[ch] -= 1
            common += 1
    return common / max(len(da), len(db))


def supplier_key(document: SupplierDocument, supplier_ref: str | None) -> str:
    """Blocking key: the resolved supplier, else its VAT id, else its IBAN, else its name."""
    if supplier_ref:
        return f"ref:{supplier_ref}"
    party = document.supplier
    if party.vat_id:
        return f"vat:{normalise_vat_id(party.vat_id)}"
    if document.bank_iban:
        return f"iban:{normalise_iban(document.bank_iban)}"
    return f"name:{' '.join((party.name or '').lower().split())}"


@dataclass(frozen=True)
class CandidateDocument:
    """A document as the detector sees it: its id, content and blocking key."""

    doc_id: str
    document: SupplierDocument
    supplier: str  # from `supplier_key`

    @property
    def number_key(self) -> str | None:
        """The normalised document number, None when the document has none."""
        return normalise_invoice_number(self.document.number) if self.document.number else None


# PO number (normalised) -> line key (PO line number and item id) -> ordered quantity.
OrderedQuantities = Mapping[str, Mapping[str, Decimal]]


def ordered_quantities(purchase_orders: Sequence[PurchaseOrder]) -> dict[str, dict[str, Decimal]]:
    """Ordered quantity per PO and line, keyed by both line number and item id."""
    out: dict[str, dict[str, Decimal]] = {}
    for po in purchase_orders:
        lines: dict[str, Decimal] = {}
        for line in po.lines:
            lines[f"line:{line.line_no}"] = lines.get(f"line:{line.line_no}", Decimal(0)) + (
                line.quantity
            )
            if line.item_id:
                lines[f"item:{line.item_id}"] = lines.get(f"item:{line.item_id}", Decimal(0)) + (
                    line.quantity
                )
        out[normalise_po_reference(po.number)] = lines
    return out


def _days_apart(a: date | None, b: date | None) -> int | None:
    if a is None or b is None:
        return None
    return abs((b - a).days)


@dataclass
class _Block:
    """Earlier documents of one supplier and kind, indexed by gross and by net amount."""

    by_gross: list[tuple[Decimal, int]] = field(default_factory=list)  # sorted
    by_net: dict[Decimal, list[int]] = field(default_factory=lambda: defaultdict(list))
    no_gross: list[int] = field(default_factory=list)
    every: list[int] = field(default_factory=list)

    def add(self, index: int, document: SupplierDocument) -> None:
        self.every.append(index)
        if document.gross is None:
            self.no_gross.append(index)
        else:
            insort(self.by_gross, (document.gross, index))
        if document.totals.tax_exclusive is not None:
            self.by_net[document.totals.tax_exclusive].append(index)

    def near(self, document: SupplierDocument, band: Decimal) -> set[int]:
        gross = document.gross
        if gross is None:
            return set(self.every)
        # |a - g| <= band * max(|a|, |g|), for positive amounts: g(1-band) <= a <= g/(1-band).
        low, high = sorted((gross * (1 - band), gross / (1 - band)))
        lo = bisect_left(self.by_gross, (low, -1))
        hi = bisect_right(self.by_gross, (high, sys.maxsize))
        found = {index for _, index in self.by_gross[lo:hi]}
        found.update(self.no_gross)
        if document.totals.tax_exclusive is not None:
            found.update(self.by_net.get(document.totals.tax_exclusive, ()))
        return found


class CandidateIndex:
    """Documents in arrival order, blocked by supplier and kind and indexed by amount."""

    def __init__(self) -> None:
        self.documents: list[CandidateDocument] = []
        self._blocks: dict[tuple[str, str], _Block] = defaultdict(_Block)

    def add(self, current: CandidateDocument) -> None:
        """Index the next document (its position is `len(documents)` before the call)."""
        self._blocks[(current.supplier, current.document.kind)].add(
            len(self.documents), current.document
        )
        self.documents.append(current)

    def candidates(
        self, current: CandidateDocument, window_days: int, gross_band: Decimal
    ) -> list[int]:
        """Positions of the indexed documents worth comparing with `current`, ascending."""
        block = self._blocks.get((current.supplier, current.document.kind))
        if block is None:
            return []
        found: list[int] = []
        for earlier in sorted(block.near(current.document, gross_band)):
            apart = _days_apart(
                self.documents[earlier].document.issue_date, current.document.issue_date
            )
            if apart is None or apart <= window_days:
                found.append(earlier)
        return found


def block_candidates(
    documents: Sequence[CandidateDocument],
    window_days: int = DEFAULT_WINDOW_DAYS,
    gross_band: Decimal = DEFAULT_GROSS_BAND,
    start: int = 0,
) -> list[list[int]]:
    """For each document (in arrival order), the indices of earlier documents worth comparing.

    Earlier documents of the same supplier and kind, whose gross is within `gross_band` of
    this one's (or whose net is equal, or either amount is unreadable), at most `window_days`
    apart when both dates are known. Documents before `start` are history only: indexed, and
    given no candidates of their own (an empty list).
    """
    index = CandidateIndex()
    out: list[list[int]] = []
    for position, current in enumerate(documents):
        out.append(index.candidates(current, window_days, gross_band) if position >= start else [])
        index.add(current)
    return out


def _line_key(line_po_ref: str | None, item_id: str | None, description: str | None) -> str:
    if item_id:
        return f"item:{item_id}"
    if line_po_ref:
        return f"line:{line_po_ref}"
    return f"text:{(description or '').lower()}"


def _overlap(a: Sequence[object], b: Sequence[object]) -> float:
    """Multiset overlap of two lists, relative to the longer."""
    if not a and not b:
        return 1.0
    if not a or not b:
        return 0.0
    counts: dict[object, int] = defaultdict(int)
    for x in a:
        counts[x] += 1
    common = 0
    for y in b:
        if counts[y] > 0:
            counts[y] -= 1
            common += 1
    return common / max(len(a), len(b))


@dataclass(frozen=True)
class _Prepared:
    """What pair features need of one document, computed once per document, not per pair."""

    number: str
    ocr_keys: tuple[str, str]
    gross: Decimal | None
    net: Decimal | None
    issue_date: date | None
    po: str | None
    currency: str | None
    line_keys: tuple[str, ...]
    quantities: tuple[tuple[str, Decimal], ...]
    prices: tuple[tuple[str, Decimal], ...]
    amounts: tuple[Decimal, ...]
    billed: Mapping[str, Decimal]  # PO line key -> quantity this document bills on it
    iban: str | None


def _prepare(document: SupplierDocument, ordered: OrderedQuantities) -> _Prepared:
    keys = tuple(_line_key(ln.po_line_ref, ln.item_id, ln.description) for ln in document.lines)
    po = normalise_po_reference(document.po_reference) if document.po_reference else None
    billed: dict[str, Decimal] = defaultdict(Decimal)
    po_lines = ordered.get(po) if po is not None else None
    if po_lines is not None:
        for line in document.lines:
            key = f"line:{line.po_line_ref}" if line.po_line_ref else None
            if (key is None or key not in po_lines) and line.item_id:
                key = f"item:{line.item_id}"
            if key is not None and key in po_lines:
                billed[key] += line.quantity
    return _Prepared(
        number=normalise_invoice_number(document.number) if document.number else "",
        ocr_keys=_ocr_keys(document.number) if document.number else ("", ""),
        gross=document.gross,
        net=document.totals.tax_exclusive,
        issue_date=document.issue_date,
        po=po,
        currency=document.currency,
        line_keys=keys,
        quantities=tuple(zip(keys, (ln.quantity for ln in document.lines), strict=True)),
        prices=tuple(zip(keys, (ln.unit_price for ln in document.lines), strict=True)),
        amounts=tuple(ln.line_amount for ln in document.lines),
        billed=dict(billed),
        iban=normalise_iban(document.bank_iban) if document.bank_iban else None,
    )


def _po_billed_ratio(a: _Prepared, b: _Prepared, ordered: OrderedQuantities) -> float | None:
    """Most any PO line would be billed by the two together, as a share of what was ordered.

    A duplicate of a full invoice bills the order twice (about 2); two deliveries or an order
    split over two invoices bill it once (at most about 1). None when the PO is unknown.
    """
    if a.po is None or a.po != b.po or a.po not in ordered:
        return None
    lines = ordered[a.po]
    ratios = [
        (a.billed.get(k, Decimal(0)) + b.billed.get(k, Decimal(0))) / lines[k]
        for k in set(a.billed) | set(b.billed)
        if lines[k] > 0
    ]
    return float(max(ratios)) if ratios else None


def _as_float(value: Decimal | None, default: float = -1.0) -> float:
    # Features are model inputs, not money: the Decimal amounts are only read here.
    return float(value) if value is not None else default


def _features(a: _Prepared, b: _Prepared, ordered: OrderedQuantities) -> list[float]:
    """Features of the pair (earlier a, later b), in the order of FEATURE_NAMES."""
    na, nb = a.number, b.number
    gross_diff = abs(a.gross - b.gross) if a.gross is not None and b.gross is not None else None
    net_diff = abs(a.net - b.net) if a.net is not None and b.net is not None else None
    scale = max(abs(a.gross), abs(b.gross)) if a.gross is not None and b.gross is not None else None
    rel = gross_diff / scale if gross_diff is not None and scale else None
    apart = _days_apart(a.issue_date, b.issue_date)
    billed = _po_billed_ratio(a, b, ordered)
    ocr_ratio = max(
        (fuzz.ratio(x, y) / 100.0 for x in a.ocr_keys for y in b.ocr_keys if x and y),
        default=0.0,
    )
    return [
        float(bool(na) and na == nb),
        float(any(x and x == y for x in a.ocr_keys for y in b.ocr_keys)),
        ocr_ratio,
        float(Levenshtein.distance(na, nb)) if na and nb else -1.0,
        digit_overlap(na, nb),
        float(abs(len(na) - len(nb))),
        float(gross_diff == 0) if gross_diff is not None else -1.0,
        float(net_diff == 0) if net_diff is not None else -1.0,
        _as_float(gross_diff),
        _as_float(rel),
        _as_float(net_diff),
        float(gross_diff is not None and Decimal(0) < gross_diff < Decimal(1)),
        float(apart) if apart is not None else -1.0,
        float(a.po is not None and a.po == b.po),
        float(a.po is not None and b.po is not None),
        float(a.currency == b.currency),
        float(len(a.line_keys) == len(b.line_keys)),
        _overlap(a.line_keys, b.line_keys),
        _overlap(a.quantities, b.quantities),
        _overlap(a.prices, b.prices),
        _overlap(a.amounts, b.amounts),
        billed if billed is not None else -1.0,
        float(billed is not None),
        float(a.iban is not None and a.iban == b.iban),
        float(np.log10(1.0 + abs(float(b.gross)))) if b.gross is not None else -1.0,
    ]


def pair_features(
    later: SupplierDocument, earlier: SupplierDocument, ordered: OrderedQuantities
) -> list[float]:
    """The features of one candidate pair, in the order of FEATURE_NAMES."""
    return _features(_prepare(earlier, ordered), _prepare(later, ordered), ordered)


@dataclass(frozen=True)
class CandidatePairs:
    """All blocked pairs of a document sequence with their features."""

    later: NDArray[np.int64]  # index of the later document of each pair
    earlier: NDArray[np.int64]
    features: NDArray[np.float64]


def build_pairs(
    documents: Sequence[CandidateDocument],
    ordered: OrderedQuantities,
    window_days: int = DEFAULT_WINDOW_DAYS,
    gross_band: Decimal = DEFAULT_GROSS_BAND,
) -> CandidatePairs:
    """Block the documents and compute the features of every candidate pair."""
    later: list[int] = []
    earlier: list[int] = []
    rows: list[list[float]] = []
    prepared: dict[int, _Prepared] = {}

    def get(index: int) -> _Prepared:
        if index not in prepared:
            prepared[index] = _prepare(documents[index].document, ordered)
        return prepared[index]

    for index, candidates in enumerate(block_candidates(documents, window_days, gross_band)):
        for other in candidates:
            later.append(index)
            earlier.append(other)
            rows.append(_features(get(other), get(index), ordered))
    features = (
        np.asarray(rows, dtype=np.float64)
        if rows
        else np.zeros((0, len(FEATURE_NAMES)), dtype=np.float64)
    )
    return CandidatePairs(
        np.asarray(later, dtype=np.int64), np.asarray(earlier, dtype=np.int64), features
    )


@dataclass(frozen=True)
class DuplicateScore:
    """A document's duplicate score and the earlier document that gave it (None: no candidate)."""

    doc_id: str
    score: float
    candidate_id: str | None


def document_scores(
    documents: Sequence[CandidateDocument], pairs: CandidatePairs, pair_scores: NDArray[np.float64]
) -> list[DuplicateScore]:
    """Per document, the highest pair score over its candidates and the candidate named."""
    best = np.zeros(len(documents), dtype=np.float64)
    best_other = np.full(len(documents), -1, dtype=np.int64)
    for later, earlier, score in zip(pairs.later, pairs.earlier, pair_scores, strict=True):
        if best_other[later] < 0 or score > best[later]:
            best[later] = score
            best_other[later] = earlier
    return [
        DuplicateScore(
            doc.doc_id,
            float(best[i]),
            documents[int(best_other[i])].doc_id if best_other[i] >= 0 else None,
        )
        for i, doc in enumerate(documents)
    ]


@dataclass
class DuplicateDetector:
    """A class-weighted LightGBM pair classifier with a document-level decision threshold."""

    threshold: float = 0.5
    window_days: int = DEFAULT_WINDOW_DAYS
    gross_band: Decimal = DEFAULT_GROSS_BAND
    seed: int = 0
    classifier: lgb.LGBMClassifier | None = field(default=None, repr=False)

    def new_classifier(self) -> lgb.LGBMClassifier:
        """An untrained classifier with this detector's settings."""
        return lgb.LGBMClassifier(
            n_estimators=200,
            learning_rate=0.08,
            num_leaves=15,
            min_child_samples=5,
            subsample=0.9,
            subsample_freq=1,
            colsample_bytree=0.9,
            # The pairs are nearly separable and the weights large: without an L2 penalty the
            # leaf values blow up once the hessians vanish, and the scores become nonsense.
            reg_lambda=1.0,
            class_weight="balanced",  # duplicates are about 1 % of the pairs
            random_state=self.seed,
            deterministic=True,
            force_row_wise=True,
            n_jobs=1,  # small data: threads cost more than they save
            verbose=-1,
        )

    def fit(self, features: NDArray[np.float64], labels: NDArray[np.int64]) -> DuplicateDetector:
        """Train the pair classifier on labelled pairs."""
        if len(set(labels.tolist())) < 2:
            raise ValueError("training pairs need both duplicates and non-duplicates")
        self.classifier = self.new_classifier()
        self.classifier.fit(features, labels)
        return self

    def pair_scores(self, features: NDArray[np.float64]) -> NDArray[np.float64]:
        """P(duplicate) per pair."""
        if self.classifier is None:
            raise RuntimeError("the detector is not trained; call fit() first")
        if len(features) == 0:
            return np.zeros(0, dtype=np.float64)
        proba = np.asarray(self.classifier.predict_proba(features), dtype=np.float64)
        return proba[:, 1]

    def score(
        self, documents: Sequence[CandidateDocument], ordered: OrderedQuantities
    ) -> list[DuplicateScore]:
        """Score documents given in arrival order; each is compared with earlier ones only."""
        pairs = build_pairs(documents, ordered, self.window_days, self.gross_band)
        return document_scores(documents, pairs, self.pair_scores(pairs.features))

    def feature_importance(self) -> dict[str, float]:
        """Gain importance per feature name, for explanations and reports."""
        if self.classifier is None:
            raise RuntimeError("the detector is not trained; call fit() first")
        gains = self.classifier.booster_.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(FEATURE_NAMES, gains, strict=True)}


def exact_key_flags(
    documents: Sequence[CandidateDocument], window_days: int = EXACT_KEY_WINDOW_DAYS
) -> list[str | None]:
    """The exact-key baseline per document: the id of the earlier document it repeats, or None."""
    prior: dict[str, list[PriorDocument]] = defaultdict(list)
    out: list[str | None] = []
    for current in documents:
        doc = current.document
        found = find_exact_duplicates(doc, current.supplier, prior[current.supplier], window_days)
        out.append(found[0].document_id if found else None)
        prior[current.supplier].append(
            PriorDocument(
                document_id=current.doc_id,
                kind=doc.kind,
                number=doc.number,
                normalised_number=current.number_key,
                issue_date=doc.issue_date,
                gross=doc.gross,
                currency=doc.currency,
            )
        )
    return out


def precision_recall(predicted: Sequence[bool], actual: Sequence[bool]) -> tuple[float, float]:
    """Precision and recall of boolean predictions (precision 1.0 when nothing is predicted)."""
    tp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and a)
    fp = sum(1 for p, a in zip(predicted, actual, strict=True) if p and not a)
    fn = sum(1 for p, a in zip(predicted, actual, strict=True) if a and not p)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall


def pr_curve(scores: Sequence[float], actual: Sequence[bool]) -> list[tuple[float, float, float]]:
    """(threshold, precision, recall) at every distinct score, highest threshold first."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    positives = sum(actual)
    points: list[tuple[float, float, float]] = []
    tp = fp = 0
    for rank, i in enumerate(order):
        if actual[i]:
            tp += 1
        else:
            fp += 1
        last = rank == len(order) - 1 or scores[order[rank + 1]] != scores[i]
        if last:
            points.append((float(scores[i]), tp / (tp + fp), tp / positives if positives else 1.0))
    return points


def choose_threshold(
    scores: Sequence[float], actual: Sequence[bool], min_precision: float
) -> float:
    """The threshold with the best recall whose precision is at least `min_precision`.

    Among thresholds with that recall the midpoint to the next lower score is taken, so a
    slightly different world does not fall just under the cut.
    """
    curve = pr_curve(scores, actual)
    ok = [(t, p, r) for t, p, r in curve if p >= min_precision]
    if not ok:
        return 0.5
    best_recall = max(r for _, _, r in ok)
    # The highest threshold reaching the best recall keeps the most precision.
    t_best = max(t for t, _, r in ok if r == best_recall)
    lower = [t for t, _, _ in curve if t < t_best]
    return (t_best + max(lower)) / 2 if lower else t_best / 2


# -- price anomaly (unsupervised) ---------------------------------------------------------------

PRICE_FEATURE_NAMES: tuple[str, ...] = (
    "unit_price_vs_history",  # log ratio of the line price to the supplier/item median, max
    "unit_price_history_known",
    "net_vs_supplier_history",  # log ratio of the net to the supplier's median net
    "same_day_same_po",  # earlier invoices of this supplier on this day and PO
    "log_net",
)


def _log_ratio(value: Decimal, history: list[Decimal]) -> float | None:
    if not history or value <= 0:
        return None
    ordered = sorted(history)
    median = ordered[len(ordered) // 2]
    if median <= 0:
        return None
    # A log ratio: 3x the usual price and a third of it are equally far from normal.
    return float(np.log(float(value / median)))


class PriceHistory:
    """Each supplier's earlier prices per item, nets and invoices per day and PO.

    `row` only reads, so a history built once may serve many documents after it.
    """

    def __init__(self) -> None:
        self.prices: dict[tuple[str, str], list[Decimal]] = defaultdict(list)
        self.nets: dict[str, list[Decimal]] = defaultdict(list)
        self.same_day: dict[tuple[str, date | None, str | None], int] = defaultdict(int)

    @staticmethod
    def _day_key(current: CandidateDocument) -> tuple[str, date | None, str | None]:
        doc = current.document
        po = normalise_po_reference(doc.po_reference) if doc.po_reference else None
        return (current.supplier, doc.issue_date, po)

    def row(self, current: CandidateDocument) -> list[float]:
        """The price features of `current` against what was observed before it."""
        doc = current.document
        ratios = [
            r
            for line in doc.lines
            if line.item_id
            for r in [
                _log_ratio(line.unit_price, self.prices.get((current.supplier, line.item_id), []))
            ]
            if r is not None
        ]
        net = doc.totals.tax_exclusive
        net_ratio = (
            _log_ratio(net, self.nets.get(current.supplier, [])) if net is not None else None
        )
        day_key = self._day_key(current)
        return [
            max(ratios, key=abs) if ratios else 0.0,
            float(bool(ratios)),
            net_ratio if net_ratio is not None else 0.0,
            float(self.same_day.get(day_key, 0)) if day_key[2] is not None else 0.0,
            float(np.log10(1.0 + abs(float(net)))) if net is not None else 0.0,
        ]

    def observe(self, current: CandidateDocument) -> None:
        """Add an invoice's prices, net and day to its supplier's history."""
        doc = current.document
        if doc.kind != "invoice":
            return
        self.same_day[self._day_key(current)] += 1
        for line in doc.lines:
            if line.item_id:
                self.prices[(current.supplier, line.item_id)].append(line.unit_price)
        if doc.totals.tax_exclusive is not None:
            self.nets[current.supplier].append(doc.totals.tax_exclusive)


def price_features(documents: Sequence[CandidateDocument], start: int = 0) -> NDArray[np.float64]:
    """Per document from `start` on (in arrival order), amounts against the earlier ones.

    The documents before `start` are history only: observed, not given a row of their own.
    """
    history = PriceHistory()
    rows: list[list[float]] = []
    for index, current in enumerate(documents):
        if index >= start:
            rows.append(history.row(current))
        history.observe(current)
    return np.asarray(rows, dtype=np.float64).reshape(-1, len(PRICE_FEATURE_NAMES))


@dataclass
class PriceAnomalyScorer:
    """IsolationForest over prices and amounts relative to the supplier's history."""

    seed: int = 0
    forest: IsolationForest | None = field(default=None, repr=False)

    def fit(self, documents: Sequence[CandidateDocument]) -> PriceAnomalyScorer:
        """Fit on a history of documents (no labels: what is usual is learnt, not told)."""
        self.forest = IsolationForest(n_estimators=200, random_state=self.seed, n_jobs=1)
        self.forest.fit(price_features(documents))
        return self

    def score(self, documents: Sequence[CandidateDocument]) -> NDArray[np.float64]:
        """Anomaly score per document, higher is more unusual."""
        if self.forest is None:
            raise RuntimeError("the scorer is not fitted; call fit() first")
        return np.asarray(-self.forest.score_samples(price_features(documents)), dtype=np.float64)
