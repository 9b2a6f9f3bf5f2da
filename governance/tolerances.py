"""Matching tolerances: percent and absolute, the tighter wins; defaults per company with
overrides per item category and per supplier.

Precedence: a supplier override beats a category override, which beats the company default,
check by check (an override for `price` leaves the other checks at their defaults). Money
allowances are in the document currency; quantity allowances in the PO line's unit.

Defaults follow what AP policies in the field use (see shared/notes/ap-domain.md):
- price: 2 % up to 100.00, whichever is tighter;
- quantity over ordered and over received: none (billing more than was ordered or received is
  the control 3-way matching exists for; customers loosen it per category);
- amount over PO: 10 % of the PO value up to 1,000.00;
- tax: 1.00 absolute (suppliers round VAT per line or per document);
- freight/surcharges not on the PO: none;
- rounding (EN 16931 totals): 0.01 absolute.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.findings import AppliedTolerance
from pipelines.matching import ToleranceCheck


class Tolerance(BaseModel):
    """A percent and an absolute allowance; None means unlimited in that dimension."""

    model_config = ConfigDict(frozen=True)

    percent: Decimal | None = Field(default=None, ge=0)
    absolute: Decimal | None = Field(default=None, ge=0)

    def applied(self, source: str) -> AppliedTolerance:
        """This tolerance as a finding records it."""
        return AppliedTolerance(percent=self.percent, absolute=self.absolute, source=source)


def _t(percent: str | None = None, absolute: str | None = None) -> Tolerance:
    return Tolerance(
        percent=Decimal(percent) if percent is not None else None,
        absolute=Decimal(absolute) if absolute is not None else None,
    )


DEFAULT_TOLERANCES: dict[ToleranceCheck, Tolerance] = {
    ToleranceCheck.PRICE: _t("2", "100.00"),
    ToleranceCheck.QTY_ORDERED: _t("0", "0"),
    ToleranceCheck.QTY_RECEIVED: _t("0", "0"),
    ToleranceCheck.AMOUNT_OVER_PO: _t("10", "1000.00"),
    ToleranceCheck.TAX: _t(None, "1.00"),
    ToleranceCheck.FREIGHT: _t(None, "0"),
    ToleranceCheck.ROUNDING: _t(None, "0.01"),
}


class TolerancePolicy(BaseModel):
    """The tolerances of one company, with overrides; callable as a matching ToleranceLookup."""

    model_config = ConfigDict(frozen=True)

    defaults: dict[ToleranceCheck, Tolerance] = Field(
        default_factory=lambda: dict(DEFAULT_TOLERANCES)
    )
    category_overrides: dict[str, dict[ToleranceCheck, Tolerance]] = Field(default_factory=dict)
    supplier_overrides: dict[str, dict[ToleranceCheck, Tolerance]] = Field(default_factory=dict)
    duplicate_window_days: int = Field(default=365, ge=0)

    def __call__(
        self, check: ToleranceCheck, supplier_ref: str | None, category: str | None
    ) -> AppliedTolerance:
        """The tolerance for a check, from the most specific level that sets it."""
        if supplier_ref is not None:
            override = self.supplier_overrides.get(supplier_ref, {}).get(check)
            if override is not None:
                return override.applied(f"supplier:{supplier_ref}")
        if category is not None:
            override = self.category_overrides.get(category, {}).get(check)
            if override is not None:
                return override.applied(f"category:{category}")
        return self.defaults.get(check, Tolerance()).applied("default")

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> TolerancePolicy:
        """Build a policy from JSON/YAML-shaped data (Decimals as strings or numbers)."""
        return cls.model_validate(data)

    def to_mapping(self) -> dict[str, Any]:
        """This policy as JSON-ready data, the inverse of from_mapping."""
        return self.model_dump(mode="json")


DEFAULT_POLICY = TolerancePolicy()
