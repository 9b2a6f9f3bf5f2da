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
        ("Invoice No. 00123", "123"),  # prefix words repeat
        ("Rechnung Nr. 17", "17"),
        ("Facture n° 2024_05", "202405"),
        ("INV-000", "0"),  # all zeros after the prefix is still a number
        ("0", "0"),
        ("", ""),
        ("NOVA-12", "NOVA12"),  # NO is a prefix only before digits
        ("re: 1.234", "1234"),
    ],
)
def test_invoice_numbers(raw: str, key: str) -> None:
    assert normalise_invoice_number(raw) == key


def test_other_identifiers() -> None:
    assert normalise_vat_id("de 123.456-789") == "DE123456789"
    assert normalise_iban("gb29 nwbk 6016 1331 9268 19") == "GB29NWBK60161331926819"
    assert normalise_po_reference(" po 4500 ") == "PO4500"


def test_identifiers_that_are_already_normal_stay_so() -> None:
    for key in ("DE123456789", "GB29NWBK60161331926819", "PO4500", "2231"):
        assert normalise_vat_id(key) == normalise_iban(key) == normalise_po_reference(key) == key
        if key.isdigit():
            assert normalise_invoice_number(key) == key
