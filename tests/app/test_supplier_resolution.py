"""Supplier resolution against master data: a name is vetoed by a VAT id that says otherwise."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.cases.service import CasePolicies, assess, resolve_known_supplier
from app.masterdata.schemas import BankAccountIn, MasterData, SupplierIn
from app.masterdata.service import load_master_data
from pipelines.canonical import Invoice, Party, PaymentDetails
from pipelines.reasons import ReasonCode

ADMIN = Actor("tester", "admin")
KNOWN_IBAN = "DE20005320067552727458"


def _load(session: Session) -> None:
    load_master_data(
        session,
        MasterData(
            suppliers=[
                SupplierIn(
                    ref="S0121",
                    name="Hendriks AG",
                    vat_id="DE769233899",
                    bank_accounts=[BankAccountIn(iban=KNOWN_IBAN)],
                ),
                SupplierIn(
                    ref="S0214",
                    name="Hendriks KG",
                    vat_id="DE581334277",
                    bank_accounts=[BankAccountIn(iban="DE47554652579791584206")],
                ),
                SupplierIn(ref="S0300", name="Ostrowski Facility Services", vat_id=None),
            ]
        ),
        ADMIN,
    )
    session.flush()


def _invoice(name: str, vat_id: str | None = None, iban: str | None = None) -> Invoice:
    return Invoice(
        number="4695",
        supplier=Party(name=name, vat_id=vat_id),
        payment=PaymentDetails(means_code="58", iban=iban) if iban else None,
    )


def _ref(session: Session, doc: Invoice) -> str | None:
    supplier = resolve_known_supplier(session, doc)
    return supplier.ref if supplier else None


def test_namesake_with_its_own_vat_id_and_iban_is_unknown(session: Session) -> None:
    _load(session)
    doc = _invoice("Hendriks AG", "DE499091302", "DE89717380343729338968")
    assert resolve_known_supplier(session, doc) is None
    codes = {f.code for f in assess(session, doc, CasePolicies()).result.findings}
    assert ReasonCode.VENDOR_UNKNOWN in codes
    assert ReasonCode.BANK_DETAILS_CHANGED not in codes


def test_name_variant_with_the_suppliers_vat_id_resolves(session: Session) -> None:
    _load(session)
    doc = _invoice("HENDRIKS Aktiengesellschaft", "de 769.233.899", "DE89717380343729338968")
    assert _ref(session, doc) == "S0121"
    codes = {f.code for f in assess(session, doc, CasePolicies()).result.findings}
    assert ReasonCode.VENDOR_UNKNOWN not in codes
    assert ReasonCode.BANK_DETAILS_CHANGED in codes


def test_known_name_with_a_new_iban_and_no_vat_id_is_bank_details_changed(
    session: Session,
) -> None:
    _load(session)
    doc = _invoice("Hendriks AG.", None, "DE89717380343729338968")
    assert _ref(session, doc) == "S0121"
    codes = {f.code for f in assess(session, doc, CasePolicies()).result.findings}
    assert ReasonCode.BANK_DETAILS_CHANGED in codes
    assert ReasonCode.VENDOR_UNKNOWN not in codes


def test_close_name_resolves_when_no_vat_id_contradicts_it(session: Session) -> None:
    _load(session)
    assert _ref(session, _invoice("hendriks ag")) == "S0121"
    # No VAT id on file: the document's VAT id cannot contradict the name.
    assert _ref(session, _invoice("Ostrowski Facility Services", "PL5213000001")) == "S0300"
