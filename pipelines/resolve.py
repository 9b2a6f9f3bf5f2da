"""Supplier resolution: which master-data supplier sent this document.

Order of evidence: VAT id (exact, normalised), then IBAN (exact, normalised), then the name
by rapidfuzz. A fuzzy name wins only when it is clearly better than the runner-up, because a
wrong supplier is worse than none: none becomes a VENDOR_UNKNOWN finding a clerk resolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process, utils

from pipelines.canonical import Party

NAME_MIN_SCORE = 90.0
NAME_MIN_MARGIN = 5.0


@dataclass(frozen=True)
class SupplierCandidate:
    """A master-data supplier as the resolver sees it (identifiers already normalised)."""

    ref: str
    name: str
    vat_id: str | None = None
    ibans: tuple[str, ...] = ()


@dataclass(frozen=True)
class SupplierResolution:
    """The supplier found, how, and how sure."""

    ref: str
    method: str  # vat_id | iban | name
    score: float


def resolve_supplier(
    vat_id: str | None,
    iban: str | None,
    party: Party,
    candidates: Sequence[SupplierCandidate],
) -> SupplierResolution | None:
    """Find the supplier of a document among candidates; None when the evidence is not clear."""
    if vat_id:
        hits = [c for c in candidates if c.vat_id == vat_id]
        if len(hits) == 1:
            return SupplierResolution(hits[0].ref, "vat_id", 100.0)
    if iban:
        hits = [c for c in candidates if iban in c.ibans]
        if len(hits) == 1:
            return SupplierResolution(hits[0].ref, "iban", 100.0)
    if not party.name or not candidates:
        return None
    names = [c.name for c in candidates]
    best = process.extract(
        party.name, names, scorer=fuzz.WRatio, processor=utils.default_process, limit=2
    )
    if not best or best[0][1] < NAME_MIN_SCORE:
        return None
    if len(best) > 1 and best[0][1] - best[1][1] < NAME_MIN_MARGIN:
        return None
    return SupplierResolution(candidates[best[0][2]].ref, "name", float(best[0][1]))
