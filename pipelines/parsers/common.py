"""Helpers shared by the e-invoice readers, so every syntax gives the same canonical values."""

from __future__ import annotations

import re

from pipelines.canonical import LineKind

# Freight lines are matched against planned freight, not ordered goods. Kept deliberately narrow:
# a word that only sometimes means freight ("port", "delivery") counts only in a freight phrase.
_FREIGHT = re.compile(
    r"\b(?:freight|shipping|carriage|postage|porto|fracht\w*|versand\w*|transport(?:kosten)?"
    r"|livraison|frais\s+de\s+(?:port|transport|livraison)|franco\s+de\s+port"
    r"|port\s+(?:et|&)\s+emballage|delivery\s+(?:charge|fee|cost)s?)\b",
    re.IGNORECASE,
)


def line_kind(*texts: str | None) -> LineKind:
    """FREIGHT when the item text clearly says freight or shipping, else GOODS."""
    for text in texts:
        if text and _FREIGHT.search(text):
            return LineKind.FREIGHT
    return LineKind.GOODS
