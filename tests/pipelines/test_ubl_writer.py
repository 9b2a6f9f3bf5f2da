"""UBL writer: read -> write -> read gives the same canonical document."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.canonical import (
    Address,
    AllowanceCharge,
    CreditNote,
    DocumentLine,
    DocumentTotals,
    Invoice,
    LineKind,
    Party,
    PaymentDetails,
    SourceFormat,
    TaxSubtotal,
)
from pipelines.parsers import DetectedFormat, parse_document
from pipelines.parsers.ubl import read_ubl
from pipelines.parsers.xml_safety import parse_xml
from pipelines.writers import write_ubl

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
EINVOICE = SHARED / "einvoice"

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}

REAL_FILES = [
    "en16931/testfiles/Invoice-Max_content.xml",
    "en16931/testfiles/CreditNote-Max_content.xml",
    "en16931/testfiles/BIS_Billing_30-Kreditering_med_kreditnota.xml",
    "en16931/testfiles/BIS_Billing_30-Rabatter_och_avgifter.xml",
    "en16931/testfiles/BIS_Billing_30-Valutor i faktura.xml",
    "en16931/ubl/ubl-tc434-example1.xml",
    "en16931/ubl/ubl-tc434-creditnote1.xml",
    "en16931/ubl/guide-example3.xml",
    "xrechnung/src/test/business-cases/standard/01.01a-INVOICE_ubl.xml",
    "xrechnung/src/test/business-cases/standard/03.05a-INVOICE_ubl.xml",
    "xrechnung/src/test/technical-cases/cius/01.01_comprehensive_test_ubl.xml",
]


def _round_trip(doc: Invoice | CreditNote) -> Invoice | CreditNote:
    return read_ubl(parse_xml(write_ubl(doc), max_bytes=50 * 1024 * 1024))


@pytest.mark.skipif(not EINVOICE.is_dir(), reason=f"shared data not found at {SHARED}")
@pytest.mark.parametrize("relative", REAL_FILES)
def test_real_files_round_trip(relative: str) -> None:
    original = parse_document((EINVOICE / relative).read_bytes()).document
    assert isinstance(original, Invoice | CreditNote)

    again = _round_trip(original)

    assert again == original
    assert type(again) is type(original)


def _hand_built_invoice() -> Invoice:
    return Invoice(
        number="INV-2024/0042 <&>",
        issue_date=date(2024, 3, 1),
        due_date=date(2024, 3, 31),
        tax_point_date=date(2024, 2, 29),
        currency="EUR",
        supplier=Party(
            name='Müller & Söhne "Stahl" GmbH',
            vat_id="DE123456789",
            registration_id="HRB 1234",
            address=Address(
                street="Hauptstraße 1",
                additional_street="Hof 2",
                city="Köln",
                postal_code="50667",
                subdivision="NRW",
                country_code="DE",
            ),
            email="ar@mueller.example",
        ),
        buyer=Party(name="Tollgate Buyer BV", vat_id="NL001234567B01", address=None),
        po_reference="PO-7781",
        contract_reference="C-2023-9",
        buyer_reference="04011000-12345-03",
        lines=[
            DocumentLine(
                line_id="10",
                item_id="BOLT-M8",
                buyer_item_id="100-200",
                description="Steel bolts M8 < 10 mm",
                quantity=Decimal("1000.000"),
                unit_code="C62",
                unit_price=Decimal("12.3400"),
                price_base_quantity=Decimal(100),
                tax_category="S",
                tax_rate=Decimal("19"),
                line_amount=Decimal("123.40"),
                po_line_ref="1",
                note="Batch 7\nsecond line",
            ),
            DocumentLine(
                line_id="20",
                description="Freight",
                quantity=Decimal(1),
                unit_price=Decimal("25.00"),
                tax_category="S",
                tax_rate=Decimal("19"),
                line_amount=Decimal("25.00"),
                kind=LineKind.FREIGHT,
            ),
            DocumentLine(
                line_id="30",
                description="Returned pallet",
                quantity=Decimal(-2),
                unit_code="XPX",
                unit_price=Decimal("0.000001"),
                line_amount=Decimal("-0.000002"),
            ),
        ],
        allowance_charges=[
            AllowanceCharge(
                is_charge=False,
                amount=Decimal("5.00"),
                reason="Early payment",
                reason_code="95",
                tax_category="S",
                tax_rate=Decimal(19),
            ),
            AllowanceCharge(is_charge=True, amount=Decimal("7.50"), reason_code="FC"),
            AllowanceCharge(is_charge=True, amount=Decimal("1E+1"), reason="Packaging"),
        ],
        tax_breakdown=[
            TaxSubtotal(
                category="S",
                rate=Decimal(19),
                taxable_amount=Decimal("155.90"),
                tax_amount=Decimal("29.62"),
            ),
            TaxSubtotal(
                category="E",
                rate=Decimal(0),
                taxable_amount=Decimal("0.00"),
                tax_amount=Decimal("0.00"),
                exemption_reason="Exempt under Art. 132",
            ),
        ],
        totals=DocumentTotals(
            line_extension=Decimal("148.400000"),
            allowances=Decimal("5.00"),
            charges=Decimal("17.50"),
            tax_exclusive=Decimal("160.90"),
            tax=Decimal("29.62"),
            tax_inclusive=Decimal("190.52"),
            prepaid=Decimal("50.00"),
            rounding=Decimal("-0.02"),
            payable=Decimal("140.50"),
        ),
        payment=PaymentDetails(
            means_code="58",
            iban="DE89370400440532013000",
            bic="COBADEFFXXX",
            account_name="Müller & Söhne",
            payment_reference="RF18539007547034",
            terms="2 % Skonto bis 10.03.2024\n30 Tage netto",
        ),
        notes=["First note", "Zweite Notiz: äöü ß €"],
        source_format=SourceFormat.UBL,
    )


def test_hand_built_invoice_round_trips() -> None:
    doc = _hand_built_invoice()
    assert _round_trip(doc) == doc


def test_hand_built_credit_note_round_trips() -> None:
    fields = _hand_built_invoice().model_dump(exclude={"kind"})
    doc = CreditNote(**fields, billing_reference="INV-2024/0001")
    again = _round_trip(doc)
    assert isinstance(again, CreditNote)
    assert again == doc
    assert again.due_date == date(2024, 3, 31)  # PaymentMeans/PaymentDueDate: no DueDate in UBL 2.1


def test_credit_note_due_date_without_payment_means_round_trips() -> None:
    doc = CreditNote(
        number="CN-1", currency="EUR", due_date=date(2024, 1, 31), source_format=SourceFormat.UBL
    )
    assert _round_trip(doc) == doc


def test_minimal_document_round_trips() -> None:
    doc = Invoice()
    assert _round_trip(doc) == doc.model_copy(update={"source_format": SourceFormat.UBL})


def test_output_is_peppol_shaped_ubl() -> None:
    data = write_ubl(_hand_built_invoice())
    assert parse_document(data).format is DetectedFormat.UBL_INVOICE
    root = ET.fromstring(data)
    assert root.tag == "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
    assert root.findtext("cbc:CustomizationID", namespaces=NS) == (
        "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
    )
    assert root.findtext("cbc:InvoiceTypeCode", namespaces=NS) == "380"
    # UBL 2.1 sequence: header basics, parties, payment, allowances, totals, then lines.
    order = [child.tag.rpartition("}")[2] for child in root]
    expected = [
        "CustomizationID",
        "ProfileID",
        "ID",
        "IssueDate",
        "DueDate",
        "InvoiceTypeCode",
        "Note",
        "Note",
        "TaxPointDate",
        "DocumentCurrencyCode",
        "BuyerReference",
        "OrderReference",
        "ContractDocumentReference",
        "AccountingSupplierParty",
        "AccountingCustomerParty",
        "PaymentMeans",
        "PaymentTerms",
        "AllowanceCharge",
        "AllowanceCharge",
        "AllowanceCharge",
        "TaxTotal",
        "LegalMonetaryTotal",
        "InvoiceLine",
        "InvoiceLine",
        "InvoiceLine",
    ]
    assert order == expected
    payable = root.find("cac:LegalMonetaryTotal/cbc:PayableAmount", NS)
    assert payable is not None
    assert (payable.text, payable.get("currencyID")) == ("140.50", "EUR")


def test_decimals_keep_precision_and_never_use_exponents() -> None:
    data = write_ubl(_hand_built_invoice()).decode()
    assert ">0.000001<" in data
    assert ">1000.000<" in data
    assert ">12.3400<" in data
    assert ">10<" in data  # Decimal("1E+1")
    assert "E+" not in data and "E-" not in data


def test_text_is_escaped() -> None:
    data = write_ubl(_hand_built_invoice())
    assert b"INV-2024/0042 &lt;&amp;&gt;" in data
    doc = parse_document(data).document
    assert doc.number == "INV-2024/0042 <&>"
    assert doc.supplier.name == 'Müller & Söhne "Stahl" GmbH'


def test_credit_note_root_and_lines() -> None:
    fields = _hand_built_invoice().model_dump(exclude={"kind"})
    root = ET.fromstring(write_ubl(CreditNote(**fields)))
    assert root.tag == "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
    assert root.findtext("cbc:CreditNoteTypeCode", namespaces=NS) == "381"
    assert root.find("cbc:DueDate", NS) is None
    assert len(root.findall("cac:CreditNoteLine", NS)) == 3
    assert root.find("cac:CreditNoteLine/cbc:CreditedQuantity", NS) is not None


def test_supplier_iban_without_payment_details_goes_into_payment_means() -> None:
    doc = Invoice(number="1", supplier=Party(name="S", iban="NL91ABNA0417164300"))
    again = _round_trip(doc)
    assert again.bank_iban == "NL91ABNA0417164300"


def test_control_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="XML cannot carry"):
        write_ubl(Invoice(number="bad\x01number"))
