"""Matching tolerances: percent and absolute, the tighter wins; defaults per company with
overrides per item category and per supplier.

Semantics (the same as `pipelines.findings.AppliedTolerance`, which matching records):
- `percent` is a share of the expected value, `absolute` an amount (money in the document
  currency, quantities in the PO line's unit). When both are set the smaller allowance wins.
- None in a dimension is unlimited there (Oracle's blank); 0 allows nothing. Both None: no
  variance is ever an exception for that check.
- A variance equal to the allowance is inside; matching only flags what exceeds it.

Precedence: a supplier override beats a category override, which beats the company default,
check by check (a supplier override for `price` leaves the other checks at category or default
level). The supplier is who we trust or distrust as a counterparty, so their agreement is the
most specific statement; the item category comes next. The finding records where its tolerance
came from (`default`, `category:<name>`, `supplier:<ref>`).

Defaults, from what AP policies in the field use (shared/notes/ap-domain.md):
- price: 2 % up to 100.00, whichever is tighter (one of the policies seen in the field; small
  per-unit rounding on cheap items passes, a large order cannot hide 100.00 of drift);
- quantity over ordered and over received: none. Billing more than was ordered or received is
  the control 3-way matching exists for; customers loosen it per category (bulk goods by weight);
- amount over PO: 10 % of the PO value up to 1,000.00 (the "reviewed by AP" band seen in the
  field: small overruns are routine, large ones need the buyer);
- tax: 1.00 absolute (suppliers round VAT per line or per document, and the two differ by cents
  on long invoices; "hold if off by more than 1.00" is the common policy);
- freight and surcharges beyond what the PO planned: none (any unplanned freight goes to a
  person, who usually accepts it; a silent allowance would let it creep);
- rounding (EN 16931 BR-CO totals): 0.01 absolute. Every total is a sum of amounts already
  rounded to cents, so a conforming invoice balances exactly; a sender that rounds two
  intermediate values separately is off by at most 2 x 0.005 = 0.01. Anything more is an error.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from pipelines.findings import AppliedTolerance
from pipelines.matching import ToleranceCheck


class Tolerance(BaseModel):
    """A percent and an absolute allowance; None means unlimited in that dimension."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    percent: Decimal | None = Field(default=None, ge=0)
    absolute: Decimal | None = Field(default=None, ge=0)

    def allowance(self, expected: Decimal) -> Decimal | None:
        """The variance allowed against `expected`, the tighter of the two; None is unlimited."""
        return self.applied("default").allowance_for(expected)

    def applied(self, source: str) -> AppliedTolerance:
        """This tolerance as a finding records it (its `allowed` filled in per comparison)."""
        return AppliedTolerance(percent=self.percent, absolute=self.absolute, source=source)


def _t(percent: str | None = None, absolute: str | None = None) -> Tolerance:
    return Tolerance(
        percent=Decimal(percent) if percent is not None else None,
        absolute=Decimal(absolute) if absolute is not None else None,
    )


class ToleranceSet(BaseModel):
    """One tolerance per check; a check a configuration leaves out keeps Tollgate's default.

    To make a check unlimited, say so explicitly: `{"percent": null, "absolute": null}`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: Tolerance = _t("2", "100.00")
    qty_ordered: Tolerance = _t("0", "0")
    qty_received: Tolerance = _t("0", "0")
    amount_over_po: Tolerance = _t("10", "1000.00")
    tax: Tolerance = _t(None, "1.00")
    freight: Tolerance = _t(None, "0")
    rounding: Tolerance = _t(None, "0.01")

    def get(self, check: ToleranceCheck) -> Tolerance:
        """The tolerance for one check."""
        value: Tolerance = getattr(self, check.value)
        return value


class TolerancePolicy(BaseModel):
    """The tolerances of one company, with overrides; callable as a matching ToleranceLookup."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    defaults: ToleranceSet = Field(default_factory=ToleranceSet)
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
        return self.defaults.get(check).applied("default")

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> TolerancePolicy:
        """Build a policy from JSON/YAML-shaped data (Decimals as strings or numbers)."""
        return cls.model_validate(data)

    def to_mapping(self) -> dict[str, Any]:
        """This policy as JSON-ready data (Decimals as strings), the inverse of from_mapping."""
        return self.model_dump(mode="json")


# Kept for callers that want the defaults check by check.
DEFAULT_TOLERANCES: dict[ToleranceCheck, Tolerance] = {
    check: ToleranceSet().get(check) for check in ToleranceCheck
}
DEFAULT_POLICY = TolerancePolicy()
