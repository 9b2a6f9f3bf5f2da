"""Findings: what a check found, in the canonical reason vocabulary."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from pipelines.reasons import REASONS, ReasonCode


class Severity(StrEnum):
    """Whether a finding stops posting until someone acts on it."""

    BLOCKING = "blocking"
    WARNING = "warning"


class AppliedTolerance(BaseModel):
    """The tolerance a comparison used: percent of expected and absolute, the tighter wins."""

    model_config = ConfigDict(frozen=True)

    percent: Decimal | None = None
    absolute: Decimal | None = None
    allowed: Decimal | None = None  # the allowance that applied (None: unlimited)
    source: str = "default"  # default | supplier:<ref> | category:<name> | rule

    def allowance_for(self, expected: Decimal) -> Decimal | None:
        """The variance allowed against `expected`: the tighter of percent and absolute.

        None in a dimension means unlimited there, 0 means nothing allowed; None in both is
        unlimited (Oracle's blank), so no variance is ever an exception.
        """
        limits = []
        if self.percent is not None:
            limits.append(abs(expected) * self.percent / 100)
        if self.absolute is not None:
            limits.append(self.absolute)
        return min(limits) if limits else None

    def resolved(self, expected: Decimal) -> AppliedTolerance:
        """This tolerance with `allowed` filled in for a comparison against `expected`."""
        return self.model_copy(update={"allowed": self.allowance_for(expected)})


class Finding(BaseModel):
    """One reason a document does not match, with the numbers behind it."""

    model_config = ConfigDict(extra="forbid")

    code: ReasonCode
    message: str
    severity: Severity = Severity.BLOCKING
    line_id: str | None = None  # invoice line, when the finding is about a line
    po_line_no: str | None = None
    expected: Decimal | None = None
    actual: Decimal | None = None
    variance: Decimal | None = None
    unit: str | None = None  # currency code, unit code or "%"
    tolerance: AppliedTolerance | None = None
    rule_id: str | None = None  # e.g. BR-CO-15 for NOT_BALANCED
    details: dict[str, str] = Field(default_factory=dict)


def finding(code: ReasonCode, message: str, **kwargs: object) -> Finding:
    """Build a finding whose severity defaults to the reason's own."""
    if "severity" not in kwargs:
        kwargs["severity"] = Severity.BLOCKING if REASONS[code].blocking else Severity.WARNING
    return Finding(code=code, message=message, **kwargs)
