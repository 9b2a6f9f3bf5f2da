"""Unit-of-measure conversion (UN/ECE Recommendation 20 codes)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

# Each code maps to (dimension, size in that dimension's base unit). Codes that mean "one
# piece" share the piece dimension, so EA, C62 and H87 convert 1:1.
_UNITS: dict[str, tuple[str, Decimal]] = {
    "C62": ("piece", Decimal(1)),
    "EA": ("piece", Decimal(1)),
    "H87": ("piece", Decimal(1)),
    "PCE": ("piece", Decimal(1)),
    "XPP": ("piece", Decimal(1)),
    "PR": ("piece", Decimal(2)),
    "DZN": ("piece", Decimal(12)),
    "GRO": ("piece", Decimal(144)),
    "HD": ("piece", Decimal(100)),
    "TH": ("piece", Decimal(1000)),
    "KGM": ("mass", Decimal(1000)),
    "GRM": ("mass", Decimal(1)),
    "MGM": ("mass", Decimal("0.001")),
    "TNE": ("mass", Decimal(1000000)),
    "LTR": ("volume", Decimal(1000)),
    "MLT": ("volume", Decimal(1)),
    "CLT": ("volume", Decimal(10)),
    "MTQ": ("volume", Decimal(1000000)),
    "MTR": ("length", Decimal(1000)),
    "CMT": ("length", Decimal(10)),
    "MMT": ("length", Decimal(1)),
    "KMT": ("length", Decimal(1000000)),
    "MTK": ("area", Decimal(1)),
    "HUR": ("time", Decimal(60)),
    "MIN": ("time", Decimal(1)),
    "DAY": ("time", Decimal(1440)),
}


Ratio = tuple[Decimal, Decimal]


def conversion_ratio(
    from_unit: str,
    to_unit: str,
    item_id: str | None = None,
    item_factors: Mapping[tuple[str, str, str], Decimal] | None = None,
) -> Ratio | None:
    """(numerator, denominator): one `from_unit` is numerator / denominator `to_unit`.

    Kept as a fraction so that converting divides last: 6 PR -> DZN is 6 x 2 / 12 = 1 exactly,
    where 6 x (2 / 12) would be 1.00000000000000000000000002 and read as billed over ordered.
    Item-specific factors (a box of 24 of this item) win over the standard table, and are used
    in either direction; a factor of 0 or less is a data-entry error and is ignored.
    """
    source, target = from_unit.upper(), to_unit.upper()
    if source == target:
        return Decimal(1), Decimal(1)
    if item_id is not None and item_factors:
        if (factor := item_factors.get((item_id, source, target))) is not None and factor > 0:
            return factor, Decimal(1)
        if (factor := item_factors.get((item_id, target, source))) is not None and factor > 0:
            return Decimal(1), factor
    a, b = _UNITS.get(source), _UNITS.get(target)
    if a is None or b is None or a[0] != b[0]:
        return None
    return a[1], b[1]


def conversion_factor(
    from_unit: str,
    to_unit: str,
    item_id: str | None = None,
    item_factors: Mapping[tuple[str, str, str], Decimal] | None = None,
) -> Decimal | None:
    """How many `to_unit` one `from_unit` is (DZN -> C62 = 12); None when unknown."""
    ratio = conversion_ratio(from_unit, to_unit, item_id, item_factors)
    return None if ratio is None else ratio[0] / ratio[1]


def convert_quantity(quantity: Decimal, ratio: Ratio) -> Decimal:
    """A quantity in the target unit, multiplying before dividing."""
    return quantity * ratio[0] / ratio[1]


def convert_unit_price(price: Decimal, ratio: Ratio) -> Decimal:
    """A price per source unit as a price per target unit."""
    return price * ratio[1] / ratio[0]
