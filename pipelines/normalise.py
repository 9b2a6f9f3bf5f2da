"""Normalising identifiers so that the same thing compares equal however it was typed."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s#\-/_.:]+")
# A leading word that only says "this is an invoice number"; stripped when digits follow.
_PREFIX = re.compile(r"^(?:INVOICE|RECHNUNG|FACTURE|FAKTURA|INV|RE|NO|NR|N°)(?=\d)")


def normalise_invoice_number(number: str) -> str:
    """Uppercase, no separators, no invoice-word prefix, no leading zeros: INV-001 == 0001 == 1."""
    text = _SEPARATORS.sub("", number.upper())
    text = _PREFIX.sub("", text)
    stripped = text.lstrip("0")
    if not stripped and text:
        return "0"
    return stripped


def normalise_vat_id(vat_id: str) -> str:
    """Uppercase without spaces, dots or dashes (`de 123.456.789` -> `DE123456789`)."""
    return re.sub(r"[\s.\-]", "", vat_id.upper())


def normalise_iban(iban: str) -> str:
    """Uppercase without spaces (`gb29 nwbk …` -> `GB29NWBK…`)."""
    return re.sub(r"\s", "", iban.upper())


def normalise_po_reference(reference: str) -> str:
    """Uppercase without surrounding or inner spaces."""
    return re.sub(r"\s", "", reference.upper())
