"""3-way matching: invoice against purchase order and goods receipts, with tolerances."""

from pipelines.matching.context import (
    LineMatch,
    MatchContext,
    MatchResult,
    PriorDocument,
    SupplierRecord,
    ToleranceCheck,
    ToleranceLookup,
)
from pipelines.matching.duplicates import find_exact_duplicates
from pipelines.matching.engine import classify_line_kind, match_document, validate_document
from pipelines.matching.uom import conversion_factor

__all__ = [
    "LineMatch",
    "MatchContext",
    "MatchResult",
    "PriorDocument",
    "SupplierRecord",
    "ToleranceCheck",
    "ToleranceLookup",
    "classify_line_kind",
    "conversion_factor",
    "find_exact_duplicates",
    "match_document",
    "validate_document",
]
