"""Normalising identifiers so that the same thing compares equal however it was typed.

These run on every ingested document (about 200 documents per second), so each is a couple of
precompiled regex passes and nothing more.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s#\-/_.:]+")
# Leading words that only say "this is an invoice number"; stripped when digits follow. They
# may repeat ("Invoice No. 17", "Rechnung Nr. 17"), so the group is matched one or more times.
_PREFIX = re.compile(r"^(?:INVOICE|RECHNUNG|FACTURE|FAKTURA|INV|RE|NO|NR|N°)+(?=\d)")
_VAT_NOISE = re.compile(r"[\s.\-]+")
_SPACES = re.compile(r"\s+")


def normalise_invoice_number(number: str) -> str:
    """Uppercase, no separators, no invoice-word prefix, no leading zeros: INV-001 == 0001 == 1."""
    text = _PREFIX.sub("", _SEPARATORS.sub("", number.upper()))
    stripped = text.lstrip("0")
    # An all-zero number is still a number: "000" keys as "0", never as "" (which means none).
    if not stripped and text:
        return "0"
    return stripped


def normalise_vat_id(vat_id: str) -> str:
    """Uppercase without spaces, dots or dashes (`de 123.456.789` -> `DE123456789`)."""
    return _VAT_NOISE.sub("", vat_id.upper())


def normalise_iban(iban: str) -> str:
    """Uppercase without spaces (`gb29 nwbk …` -> `GB29NWBK…`)."""
    return _SPACES.sub("", iban.upper())


def normalise_po_reference(reference: str) -> str:
    """Uppercase without surrounding or inner spaces."""
    return _SPACES.sub("", reference.upper())
