"""Supplier resolution: VAT id, then IBAN, then a clearly best fuzzy name, else nobody."""

from __future__ import annotations

from pipelines.canonical import Party
from pipelines.resolve import SupplierCandidate, resolve_supplier

CANDIDATES = [
    SupplierCandidate("S1", "Acme Office Supplies Ltd", "GB123456789", ("GB29NWBK60161331926819",)),
    SupplierCandidate("S2", "Nordfrost Lebensmittel GmbH", "DE298765432", ()),
    SupplierCandidate("S3", "Nordfrost Logistik GmbH", None, ()),
]


def test_vat_id_wins() -> None:
    found = resolve_supplier("DE298765432", None, Party(name="Someone else"), CANDIDATES)
    assert found is not None and (found.ref, found.method) == ("S2", "vat_id")


def test_iban_when_no_vat() -> None:
    found = resolve_supplier(None, "GB29NWBK60161331926819", Party(), CANDIDATES)
    assert found is not None and (found.ref, found.method) == ("S1", "iban")


def test_fuzzy_name_with_a_clear_margin() -> None:
    found = resolve_supplier(None, None, Party(name="ACME Office Supplies Limited"), CANDIDATES)
    assert found is not None and (found.ref, found.method) == ("S1", "name")


def test_ambiguous_or_unknown_name_resolves_to_nobody() -> None:
    assert resolve_supplier(None, None, Party(name="Nordfrost GmbH"), CANDIDATES) is None
    assert resolve_supplier(None, None, Party(name="Unheard Of Ltd"), CANDIDATES) is None
    assert resolve_supplier(None, None, Party(), CANDIDATES) is None
