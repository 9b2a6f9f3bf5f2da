"""Identifier normalisation: the same number however it was typed."""

from __future__ import annotations

import pytest

from pipelines.normalise import (
    normalise_iban,
    normalise_invoice_number,
    normalise_po_reference,
    normalise_vat_id,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("INV-001", "1"),
        ("INV001", "1"),
        ("0001", "1"),
        ("inv 0002231", "2231"),
        ("#2231", "2231"),
        ("RE-2024/17", "202417"),
        ("Rechnung 17", "17"),
        ("FA-2024-001", "FA2024001"),  # a prefix that is not a word for "invoice" stays
        ("000", "0"),
        ("INVENTORY-7", "INVENTORY7"),  # INV only goes when digits follow
    ],
)
def test_invoice_numbers(raw: str, key: str) -> None:
    assert normalise_invoice_number(raw) == key


def test_other_identifiers() -> None:
    assert normalise_vat_id("de 123.456-789") == "DE123456789"
    assert normalise_iban("gb29 nwbk 6016 1331 9268 19") == "GB29NWBK60161331926819"
    assert normalise_po_reference(" po 4500 ") == "PO4500"
