"""The model promotion gate (DESIGN §7): who may move `champion`, and on what evidence.

A promotion request names a registered version, who asked for it and who trained it, and
carries an evaluation: challenger and champion scored on the same held-out data, metric by
metric and slice by slice. A controller (or an admin) approves it only if

- they are neither the requester nor the person who trained the version (four eyes; a version
  whose trainer is unknown cannot be checked, so it is refused),
- an evaluation is attached, and
- no metric of the challenger is worse than the champion's by more than the margin, unless the
  approver writes down why it should be promoted anyway (the override reason is audited).

Pure: plain values in, a ruling out. The app stores requests and moves the alias.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class PromotionDenial(StrEnum):
    """Why an approval is refused (stable codes: they go into the audit log and the API)."""

    NOT_AN_APPROVER = "NOT_AN_APPROVER"
    SELF_APPROVAL = "SELF_APPROVAL"
    TRAINER_APPROVAL = "TRAINER_APPROVAL"
    TRAINER_UNKNOWN = "TRAINER_UNKNOWN"
    NO_EVALUATION = "NO_EVALUATION"
    REGRESSION = "REGRESSION"


# Metric names (the last part of "slice/metric") where smaller is better.
_LOWER_IS_BETTER = ("mae", "brier", "loss", "error", "rmse", "ece")
# Counts and baselines describe the data or a reference, not the model's quality.
_NOT_QUALITY = ("documents", "baseline", "count", "support", "n_")


class PromotionPolicy(BaseModel):
    """Configurable gate: who approves and how much worse than the champion is tolerated."""

    approver_roles: frozenset[str] = frozenset({"controller", "admin"})
    # A metric may be worse by max(absolute_margin, relative_margin * |champion value|).
    absolute_margin: float = Field(default=0.005, ge=0)
    relative_margin: float = Field(default=0.01, ge=0)


DEFAULT_PROMOTION = PromotionPolicy()


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of this metric ("slice/name") is the better one."""
    name = metric.rsplit("/", 1)[-1].lower()
    return any(token in name for token in _LOWER_IS_BETTER)


def is_quality_metric(metric: str) -> bool:
    """Whether the metric measures the model (not a count of rows or a baseline's score)."""
    name = metric.rsplit("/", 1)[-1].lower()
    return not any(token in name for token in _NOT_QUALITY)


@dataclass(frozen=True)
class MetricComparison:
    """One metric of one slice, challenger beside champion."""

    metric: str
    challenger: float | None
    champion: float | None
    lower_is_better: bool
    tolerance: float
    regression: bool

    @property
    def delta(self) -> float | None:
        """Challenger minus champion (None when either is missing)."""
        if self.challenger is None or self.champion is None:
            return None
        return self.challenger - self.champion


@dataclass(frozen=True)
class Evaluation:
    """Challenger vs champion on the same held-out data, per "slice/metric"."""

    family: str
    challenger_version: str
    champion_version: str | None
    data: str  # what the metrics were computed on (a held-out world and its hash, or "stored")
    metrics: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form stored with the request and written into the audit log."""
        return {
            "family": self.family,
            "challenger_version": self.challenger_version,
            "champion_version": self.champion_version,
            "data": self.data,
            "metrics": {k: dict(v) for k, v in sorted(self.metrics.items())},
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Evaluation:
        """Read the JSON form back."""
        return cls(
            family=str(raw["family"]),
            challenger_version=str(raw["challenger_version"]),
            champion_version=(
                None if raw.get("champion_version") is None else str(raw["champion_version"])
            ),
            data=str(raw.get("data", "")),
            metrics={str(k): dict(v) for k, v in dict(raw.get("metrics", {})).items()},
        )


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def compare(
    evaluation: Evaluation, policy: PromotionPolicy = DEFAULT_PROMOTION
) -> list[MetricComparison]:
    """Every quality metric of the evaluation, with whether the challenger regresses on it."""
    rows: list[MetricComparison] = []
    for metric in sorted(evaluation.metrics):
        if not is_quality_metric(metric):
            continue
        pair = evaluation.metrics[metric]
        new, old = _finite(pair.get("challenger")), _finite(pair.get("champion"))
        lower = lower_is_better(metric)
        tolerance = max(policy.absolute_margin, policy.relative_margin * abs(old or 0.0))
        worse = False
        if new is not None and old is not None:
            worse = (new - old > tolerance) if lower else (old - new > tolerance)
        elif old is not None:
            worse = True  # the champion was measured on this, the challenger was not
        rows.append(MetricComparison(metric, new, old, lower, tolerance, worse))
    return rows


def regressions(evaluation: Evaluation, policy: PromotionPolicy = DEFAULT_PROMOTION) -> list[str]:
    """The metrics on which the challenger is worse than the champion beyond the margin."""
    return [row.metric for row in compare(evaluation, policy) if row.regression]


@dataclass(frozen=True)
class PromotionFacts:
    """What the gate needs to know about one request."""

    family: str
    version: str
    requested_by: str
    trained_by: str | None
    evaluation: Evaluation | None


@dataclass(frozen=True)
class PromotionRuling:
    """The gate's answer: allowed, or refused with a code and a sentence for the person."""

    allowed: bool
    denial: PromotionDenial | None = None
    message: str = ""
    regressions: tuple[str, ...] = ()
    overridden: bool = False


def check_approval(
    facts: PromotionFacts,
    approver: str,
    approver_role: str,
    override_reason: str | None = None,
    policy: PromotionPolicy = DEFAULT_PROMOTION,
) -> PromotionRuling:
    """May `approver` (with `approver_role`) approve this promotion now?"""
    if approver_role not in policy.approver_roles:
        return PromotionRuling(
            False,
            PromotionDenial.NOT_AN_APPROVER,
            f"only {' or '.join(sorted(policy.approver_roles))} may approve a promotion",
        )
    if approver == facts.requested_by:
        return PromotionRuling(
            False, PromotionDenial.SELF_APPROVAL, "the requester may not approve their own request"
        )
    if not facts.trained_by:
        return PromotionRuling(
            False,
            PromotionDenial.TRAINER_UNKNOWN,
            "the version does not say who trained it (tag tollgate.trained_by); retrain it",
        )
    if approver == facts.trained_by:
        return PromotionRuling(
            False,
            PromotionDenial.TRAINER_APPROVAL,
            "whoever trained a model may not approve its promotion",
        )
    if facts.evaluation is None or not facts.evaluation.metrics:
        return PromotionRuling(
            False, PromotionDenial.NO_EVALUATION, "no evaluation is attached to the request"
        )
    worse = tuple(regressions(facts.evaluation, policy))
    if worse and not (override_reason and override_reason.strip()):
        return PromotionRuling(
            False,
            PromotionDenial.REGRESSION,
            f"the challenger is worse than the champion on {', '.join(worse)}; "
            "record an override reason to promote it anyway",
            regressions=worse,
        )
    return PromotionRuling(True, regressions=worse, overridden=bool(worse))
