"""Numbers no invoice carries are refused at the canonical types; matching stays exact below."""

from __future__ import annotations

from decimal import Decimal

import pytest
from pydantic import ValidationError

from pipelines.canonical import DECIMAL_LIMIT, DocumentLine, TaxSubtotal
from pipelines.matching.engine import money


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity", "1e15", "-6.88e16"])
def test_non_finite_or_huge_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="finite"):
        TaxSubtotal(
            category="S", taxable_amount=Decimal(bad), tax_amount=Decimal(1), rate=Decimal(19)
        )


def test_the_largest_allowed_numbers_still_round_to_cents() -> None:
    big = DECIMAL_LIMIT - Decimal("0.01")
    line = DocumentLine(line_id="1", quantity=big, unit_price=big, line_amount=big)
    # The product (rounded to 28 digits by the default context) has 30 integer digits: the
    # default context could not quantize it to cents; money() can.
    assert money(line.quantity * line.unit_price) == Decimal("999999999999999980000000000000.00")
