"""Delay predictor: prefix features of a running case -> remaining time (p50, p90) with LightGBM."""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import lightgbm as lgb
import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
CaseValue = str | int | Decimal | float | bool | datetime | None

_SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ProcessEvent:
    """One event of a running case, as the delay model sees it."""

    activity: str
    timestamp: datetime
    resource: str | None = None
    role: str | None = None


def _days(seconds: float) -> float:
    return seconds / _SECONDS_PER_DAY


def _slug(text: str) -> str:
    """LightGBM refuses JSON-special characters in feature names; keep names readable."""
    return re.sub(r"[^0-9A-Za-z]+", "_", text).strip("_")


def _as_float(value: CaseValue) -> float:
    """Numeric case attribute to a model input; money stays Decimal upstream, float only here."""
    if value is None or isinstance(value, str | datetime):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


@dataclass
class PrefixEncoder:
    """Turns a case prefix (+ case attributes known at start) into one feature row.

    Vocabularies come from training cases only (`fit`); unseen values become missing (NaN),
    so validation and test data never shape the encoding.
    """

    numeric_case_keys: tuple[str, ...] = ()
    categorical_case_keys: tuple[str, ...] = ()
    min_category_count: int = 5
    activities: dict[str, int] = field(default_factory=dict)
    roles: dict[str, int] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)
    case_categories: dict[str, dict[str, int]] = field(default_factory=dict)

    def fit(
        self, cases: Iterable[tuple[Sequence[ProcessEvent], Mapping[str, CaseValue]]]
    ) -> PrefixEncoder:
        """Learn the vocabularies (activities, roles, resources, case categories) from cases."""
        acts: Counter[str] = Counter()
        roles: Counter[str] = Counter()
        resources: Counter[str] = Counter()
        cats: dict[str, Counter[str]] = {k: Counter() for k in self.categorical_case_keys}
        for events, attrs in cases:
            for ev in events:
                acts[ev.activity] += 1
                if ev.role is not None:
                    roles[ev.role] += 1
                if ev.resource is not None:
                    resources[ev.resource] += 1
            for key in self.categorical_case_keys:
                value = attrs.get(key)
                if value is not None:
                    cats[key][str(value)] += 1
        self.activities = {a: i for i, a in enumerate(sorted(acts))}
        self.roles = {r: i for i, r in enumerate(sorted(roles))}
        self.resources = {r: i for i, r in enumerate(sorted(resources))}
        # Rare categories carry no signal a tree can use and invite overfitting: drop them.
        self.case_categories = {
            key: {
                v: i
                for i, v in enumerate(
                    sorted(v for v, n in c.items() if n >= self.min_category_count)
                )
            }
            for key, c in cats.items()
        }
        return self

    @property
    def feature_names(self) -> list[str]:
        """Names of the columns `encode` returns, in order."""
        names = [
            "prefix_len",
            "elapsed_days",
            "since_prev_days",
            "mean_gap_days",
            "max_gap_days",
            "last_activity",
            "prev_activity",
            "first_activity",
            "last_role",
            "last_resource",
            "n_rejected",
            "n_approved",
            "n_distinct_activities",
            "last_hour",
            "last_weekday",
            "last_day_of_month",
            "last_day_of_year",
            "first_hour",
            "first_weekday",
        ]
        # The index keeps names unique even if two activities slug to the same text.
        names += [f"count_{i}_{_slug(a)}" for i, a in enumerate(self.activities)]
        names += [f"case_{_slug(k)}" for k in self.numeric_case_keys]
        names += [f"case_cat_{_slug(k)}" for k in self.categorical_case_keys]
        return names

    @property
    def categorical_features(self) -> list[str]:
        """Columns holding integer category codes (LightGBM categorical features)."""
        names = ["last_activity", "prev_activity", "first_activity", "last_role", "last_resource"]
        return names + [f"case_cat_{_slug(k)}" for k in self.categorical_case_keys]

    def encode(self, prefix: Sequence[ProcessEvent], case: Mapping[str, CaseValue]) -> list[float]:
        """Encode one prefix; uses only `prefix` and the start-time case attributes `case`."""
        if not prefix:
            raise ValueError("a prefix needs at least one event")
        first, last = prefix[0], prefix[-1]
        stamps = [ev.timestamp for ev in prefix]
        gaps = [_days((b - a).total_seconds()) for a, b in itertools.pairwise(stamps)]
        nan = math.nan

        def code(table: Mapping[str, int], key: str | None) -> float:
            return float(table[key]) if key is not None and key in table else nan

        counts = Counter(ev.activity for ev in prefix)
        row = [
            float(len(prefix)),
            _days((last.timestamp - first.timestamp).total_seconds()),
            gaps[-1] if gaps else nan,
            float(np.mean(gaps)) if gaps else nan,
            max(gaps) if gaps else nan,
            code(self.activities, last.activity),
            code(self.activities, prefix[-2].activity) if len(prefix) > 1 else nan,
            code(self.activities, first.activity),
            code(self.roles, last.role),
            code(self.resources, last.resource),
            float(sum(n for a, n in counts.items() if "REJECTED" in a.upper())),
            float(sum(n for a, n in counts.items() if "APPROVED" in a.upper())),
            float(len(counts)),
            last.timestamp.hour + last.timestamp.minute / 60.0,
            float(last.timestamp.weekday()),
            float(last.timestamp.day),
            float(last.timestamp.timetuple().tm_yday),
            first.timestamp.hour + first.timestamp.minute / 60.0,
            float(first.timestamp.weekday()),
        ]
        row += [float(counts.get(a, 0)) for a in self.activities]
        row += [_as_float(case.get(k)) for k in self.numeric_case_keys]
        for key in self.categorical_case_keys:
            value = case.get(key)
            row.append(
                code(self.case_categories.get(key, {}), None if value is None else str(value))
            )
        return row


@dataclass(frozen=True)
class DelayModelConfig:
    """LightGBM settings for the delay models; defaults checked on BPIC 2020 validation MAE."""

    learning_rate: float = 0.03
    num_leaves: int = 31
    min_data_in_leaf: int = 40
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 1.0
    max_rounds: int = 3000
    early_stopping_rounds: int = 150
    # One thread by default: on ~20k rows the trees are cheap and OpenMP's spin-waiting made two
    # threads 5x slower in wall time on a shared 2-core box (measured); results are identical.
    num_threads: int = 1
    seed: int = 7
    threshold_days: float = 14.0
    log_target: bool = False


@dataclass
class DelayModel:
    """Median (L1) and p90 (quantile) remaining-time regressors plus P(remaining > threshold)."""

    feature_names: list[str]
    categorical_features: list[str]
    config: DelayModelConfig = field(default_factory=DelayModelConfig)
    p50_model: lgb.Booster | None = None
    p90_model: lgb.Booster | None = None
    over_model: lgb.Booster | None = None
    best_iterations: dict[str, int] = field(default_factory=dict)

    def _params(self, **extra: object) -> dict[str, object]:
        cfg = self.config
        return {
            "learning_rate": cfg.learning_rate,
            "num_leaves": cfg.num_leaves,
            "min_data_in_leaf": cfg.min_data_in_leaf,
            "feature_fraction": cfg.feature_fraction,
            "bagging_fraction": cfg.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": cfg.lambda_l2,
            "num_threads": cfg.num_threads,
            "seed": cfg.seed,
            "deterministic": True,
            "force_col_wise": True,
            "verbose": -1,
            **extra,
        }

    def _dataset(self, x: FloatArray, y: FloatArray, ref: lgb.Dataset | None = None) -> lgb.Dataset:
        return lgb.Dataset(
            x,
            label=y,
            feature_name=self.feature_names,
            categorical_feature=self.categorical_features,
            reference=ref,
            free_raw_data=False,
        )

    def _train(
        self, name: str, params: dict[str, object], train: lgb.Dataset, valid: lgb.Dataset
    ) -> lgb.Booster:
        booster = lgb.train(
            params,
            train,
            num_boost_round=self.config.max_rounds,
            valid_sets=[valid],
            callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)],
        )
        self.best_iterations[name] = int(booster.best_iteration or booster.current_iteration())
        return booster

    def _target(self, y: FloatArray) -> FloatArray:
        # Quantiles commute with monotone maps, so a log target still yields the median in days.
        return np.log1p(np.maximum(y, 0.0)) if self.config.log_target else y

    def _untarget(self, y: FloatArray) -> FloatArray:
        return np.expm1(y) if self.config.log_target else y

    def fit(
        self,
        x_train: FloatArray,
        y_train: FloatArray,
        x_valid: FloatArray,
        y_valid: FloatArray,
        *,
        quantiles: bool = True,
    ) -> DelayModel:
        """Fit on training rows with early stopping on validation rows (targets in days)."""
        train = self._dataset(x_train, self._target(y_train))
        valid = self._dataset(x_valid, self._target(y_valid), ref=train)
        self.p50_model = self._train("p50", self._params(objective="l1", metric="l1"), train, valid)
        if not quantiles:
            return self
        self.p90_model = self._train(
            "p90",
            self._params(objective="quantile", alpha=0.9, metric="quantile"),
            train,
            valid,
        )
        over_train = self._dataset(x_train, (y_train > self.config.threshold_days).astype(float))
        over_valid = self._dataset(
            x_valid, (y_valid > self.config.threshold_days).astype(float), ref=over_train
        )
        self.over_model = self._train(
            "over",
            self._params(objective="binary", metric="binary_logloss"),
            over_train,
            over_valid,
        )
        return self

    def predict_p50(self, features: FloatArray) -> FloatArray:
        """Median remaining time in days (the point estimate scored by MAE)."""
        if self.p50_model is None:
            raise RuntimeError("DelayModel is not fitted")
        raw = np.asarray(self.p50_model.predict(features), dtype=np.float64)
        return np.maximum(self._untarget(raw), 0.0)

    def predict(self, features: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Return (p50, p90) remaining time in days; p90 is never below p50."""
        p50 = self.predict_p50(features)
        if self.p90_model is None:
            raise RuntimeError("DelayModel was fitted without quantile models")
        raw = np.asarray(self.p90_model.predict(features), dtype=np.float64)
        return p50, np.maximum(self._untarget(raw), p50)

    def predict_over_threshold(self, features: FloatArray) -> FloatArray:
        """P(remaining time > config.threshold_days)."""
        if self.over_model is None:
            raise RuntimeError("DelayModel was fitted without the threshold classifier")
        return np.asarray(self.over_model.predict(features), dtype=np.float64)


# -- the world head (`tollgate-delay`, head "hours"): raw features of a document at intake ----

DELAY_CATEGORICAL = ("queue", "kind", "currency", "company", "language", "supplier_ref")
DELAY_NUMERIC = (
    "lines",
    "log_gross",
    "queue_load",
    "received_hour",
    "received_weekday",
    "sla_hours",
    "n_reasons",
    "has_po",
)


def _reason_codes() -> list[str]:
    from pipelines.reasons import ReasonCode

    return [code.value for code in ReasonCode]


def delay_features(record: Mapping[str, Any]) -> dict[str, object]:
    """Raw features of one document as known at intake (truth record or service equivalent)."""
    review = record.get("review") or {}
    received = review.get("received_at")
    stamp = datetime.fromisoformat(received) if received else None
    gross = record.get("gross")
    reasons = set(record.get("reasons") or [])
    row: dict[str, object] = {
        "queue": review.get("queue"),
        "kind": record.get("kind"),
        "currency": record.get("currency"),
        "company": record.get("company"),
        "language": record.get("language"),
        "supplier_ref": record.get("supplier_ref"),
        "lines": record.get("lines"),
        # Money stays Decimal upstream; the log amount is a model input, float only here.
        "log_gross": math.log10(1.0 + abs(float(gross))) if gross not in (None, "") else None,
        "queue_load": review.get("queue_load"),
        "received_hour": (stamp.hour + stamp.minute / 60.0) if stamp else None,
        "received_weekday": stamp.weekday() if stamp else None,
        "sla_hours": review.get("sla_hours"),
        "n_reasons": len(reasons),
        "has_po": bool(record.get("po_number")),
    }
    for code in _reason_codes():
        row[f"reason_{code}"] = code in reasons
    return row


def delay_feature_names() -> list[str]:
    """Columns of the world head, in order: categories, numbers, one flag per reason code."""
    return [*DELAY_CATEGORICAL, *DELAY_NUMERIC, *(f"reason_{c}" for c in _reason_codes())]
