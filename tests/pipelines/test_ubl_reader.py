"""UBL reader against the public EN 16931 and XRechnung test suites (../shared/data/einvoice).

Sources: CEN TC434 `ConnectingEurope/eInvoicing-EN16931` (EUPL-1.2) and KoSIT
`itplr-kosit/xrechnung-testsuite` (Apache-2.0); see each folder's MANIFEST.txt.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pipelines.canonical import CreditNote, Invoice, LineKind, SourceFormat
from pipelines.parsers import DetectedFormat, ParseError, ParseErrorCode, parse_document
from pipelines.parsers.ubl import read_ubl
from pipelines.parsers.xml_safety import parse_xml

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
EINVOICE = SHARED / "einvoice"

NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
UBL_ROOTS = {
    "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice",
    "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote",
}


def _is_ubl_document(path: Path) -> bool:
    # Trusted test data, so the plain stdlib parser is fine for picking the files.
    return ET.parse(path).getroot().tag in UBL_ROOTS


def _ubl_files() -> list[Path]:
    if not EINVOICE.is_dir():
        return []
    en16931 = [
        path
        for folder in ("ubl", "testfiles")
        for path in sorted((EINVOICE / "en16931" / folder).iterdir())
        if path.suffix.lower() == ".xml" and _is_ubl_document(path)
    ]
    xrechnung = sorted((EINVOICE / "xrechnung").glob("**/*_ubl.xml"))
    return en16931 + xrechnung


UBL_FILES = _ubl_files()
needs_data = pytest.mark.skipif(not UBL_FILES, reason=f"shared data not found at {SHARED}")


def _id(path: Path) -> str:
    return str(path.relative_to(EINVOICE))


def _read(relative: str) -> Invoice | CreditNote:
    document = parse_document((EINVOICE / relative).read_bytes()).document
    assert isinstance(document, Invoice | CreditNote)
    return document


@needs_data
def test_the_suites_are_all_there() -> None:
    folders = [path.relative_to(EINVOICE).parts[:2] for path in UBL_FILES]
    assert folders.count(("en16931", "ubl")) == 19
    assert folders.count(("en16931", "testfiles")) == 29
    assert sum(1 for parts in folders if parts[0] == "xrechnung") == 45


@needs_data
@pytest.mark.parametrize("path", UBL_FILES, ids=_id)
def test_every_ubl_file_parses_with_the_totals_the_xml_states(path: Path) -> None:
    data = path.read_bytes()
    xml_root = ET.fromstring(data)

    parsed = parse_document(data)
    document = parsed.document

    payable = xml_root.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS)
    assert payable is not None
    assert document.totals.payable == Decimal(payable.strip())
    currency = xml_root.findtext("cbc:DocumentCurrencyCode", namespaces=NS)
    assert currency is not None
    assert document.currency == currency.strip()
    xml_lines = xml_root.findall("cac:InvoiceLine", NS) + xml_root.findall("cac:CreditNoteLine", NS)
    assert len(document.lines) == len(xml_lines)
    assert document.number == (xml_root.findtext("cbc:ID", namespaces=NS) or "").strip()
    assert document.source_format is SourceFormat.UBL
    type_code = (xml_root.findtext("cbc:InvoiceTypeCode", namespaces=NS) or "").strip()
    if xml_root.tag.endswith("}CreditNote") or type_code == "381":
        assert isinstance(document, CreditNote)
        assert parsed.format in (DetectedFormat.UBL_CREDIT_NOTE, DetectedFormat.UBL_INVOICE)
    else:
        assert isinstance(document, Invoice)
        assert parsed.format is DetectedFormat.UBL_INVOICE


@needs_data
def test_invoice_max_content_fields() -> None:
    doc = _read("en16931/testfiles/Invoice-Max_content.xml")

    assert isinstance(doc, Invoice)
    assert doc.number == "2018210"
    assert doc.issue_date == date(2018, 2, 8)
    assert doc.due_date == date(2018, 3, 7)
    assert doc.tax_point_date == date(2018, 2, 8)
    assert doc.currency == "SEK"
    assert doc.po_reference == "20180117"
    assert doc.contract_reference == "2017-123"
    assert doc.buyer_reference == "Buyer reference"
    assert doc.supplier.name == "Global Trade Chain"
    assert doc.supplier.vat_id == "SE123456789001"  # not the F-skatt "TAX" scheme entry
    assert doc.supplier.registration_id == "1234567890"
    assert doc.supplier.email == "info@UCS.se"
    assert doc.supplier.address is not None
    assert doc.supplier.address.city == "Big City"
    assert doc.supplier.address.country_code == "SE"
    assert doc.buyer.name == "Project Services"
    assert doc.buyer.vat_id == "SE123451234501"
    assert doc.payment is not None
    assert doc.payment.means_code == "30"
    assert doc.payment.iban == "SE1212341234123412341234"
    assert doc.payment.bic == "BANKSBIC"
    assert doc.payment.payment_reference == "1800355"
    assert doc.payment.terms is not None and doc.payment.terms.startswith("30 days net.")
    assert doc.notes == ["Document level Note\nLine break should be respected here."]
    # The second TaxTotal is in the tax currency (EUR 249); the document one is SEK 2500.
    assert doc.totals.tax == Decimal("2500")
    assert doc.totals.tax_inclusive == Decimal("12500")
    assert [(t.category, t.rate, t.taxable_amount) for t in doc.tax_breakdown] == [
        ("S", Decimal(25), Decimal(10000)),
        ("E", Decimal(0), Decimal(0)),
    ]
    assert doc.tax_breakdown[1].exemption_reason == "EU Direcive Article 132, section 1(g)"
    assert [(a.is_charge, a.reason_code, a.reason) for a in doc.allowance_charges] == [
        (False, "95", "Discount"),
        (True, "WH", "Warehousing"),
    ]
    first = doc.lines[0]
    assert first.line_id == "1"
    assert first.quantity == Decimal(500)
    assert first.unit_code == "MTR"
    assert first.unit_price == Decimal(20)
    assert first.line_amount == Decimal(10000)
    assert first.description == "Universal product"
    assert first.item_id == "UNI+X"
    assert first.buyer_item_id == "Buyer's ID"
    assert first.po_line_ref == "20080117/JM"
    assert (first.tax_category, first.tax_rate) == ("S", Decimal(25))
    assert first.kind is LineKind.GOODS


@needs_data
def test_xrechnung_01_01a_fields() -> None:
    doc = _read("xrechnung/src/test/business-cases/standard/01.01a-INVOICE_ubl.xml")

    assert isinstance(doc, Invoice)
    assert doc.number == "123456XX"
    assert doc.issue_date == date(2016, 4, 4)
    assert doc.due_date is None  # absent in the file: a MISSING_DATA finding later, not an error
    assert doc.buyer_reference == "04011000-12345-03"
    assert doc.supplier.name == "[Seller trading name]"
    assert doc.supplier.vat_id == "DE 123456789"
    assert doc.buyer.name == "[Buyer name]"  # no PartyName: the registration name is used
    assert doc.payment is not None
    assert doc.payment.means_code == "58"
    assert doc.payment.iban == "DE79000000001234567890"
    assert doc.payment.terms == "Zahlbar sofort ohne Abzug."
    assert doc.bank_iban == "DE79000000001234567890"
    assert doc.totals.tax == Decimal("22.04")
    assert doc.totals.payable == Decimal("336.9")
    first, postage = doc.lines
    assert first.quantity == Decimal(1)
    assert first.unit_code == "XPP"
    assert first.unit_price == Decimal("288.79")
    assert first.line_amount == Decimal("288.79")
    assert first.po_line_ref == "6171175.1"
    assert first.item_id == "246"
    assert first.kind is LineKind.GOODS
    assert postage.description == "Porto + Versandkosten"
    assert postage.kind is LineKind.FREIGHT


@needs_data
def test_credit_note_fields() -> None:
    doc = _read("en16931/testfiles/BIS_Billing_30-Kreditering_med_kreditnota.xml")

    assert isinstance(doc, CreditNote)
    assert doc.number == "2018140"
    assert doc.issue_date == date(2018, 2, 10)
    assert doc.billing_reference == "2018133"
    assert doc.po_reference == "2018117"
    assert doc.supplier.name == "Produtionsbolaget Sverige AB"
    assert doc.supplier.vat_id == "SE123456789001"
    assert doc.payment is not None and doc.payment.iban == "1234567"
    assert doc.totals.allowances == Decimal(1912)
    assert doc.totals.charges == Decimal(1020)
    assert doc.totals.prepaid == Decimal("834.9")
    assert doc.totals.rounding == Decimal("-0.10")
    assert doc.totals.payable == Decimal(10000)
    assert [(a.is_charge, a.amount, a.tax_rate) for a in doc.allowance_charges] == [
        (False, Decimal(1912), Decimal(25)),
        (True, Decimal(1020), Decimal(25)),
    ]
    first, second = doc.lines[:2]
    assert first.quantity == Decimal(2000)
    assert first.unit_price == Decimal(10)
    assert first.price_base_quantity == Decimal(2)
    assert first.line_amount == Decimal(10200)
    assert first.description == "Protection cover (plastic)"
    assert second.quantity == Decimal(-800)
    assert second.note == "This item is handled under industry recycling poslicy no. 2017/09"


# Hand-written documents for the rules the suites do not exercise.

_HEAD = (
    '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"'
    ' xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"'
    ' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
)


def _invoice(body: str, line: str = "") -> bytes:
    return (_HEAD + body + line + "</Invoice>").encode()


_LINE = (
    "<cac:InvoiceLine><cbc:ID>1</cbc:ID>"
    '<cbc:InvoicedQuantity unitCode="KGM">{qty}</cbc:InvoicedQuantity>'
    "<cbc:LineExtensionAmount>{amount}</cbc:LineExtensionAmount>"
    "<cac:Item><cbc:Name>{name}</cbc:Name></cac:Item>"
    "<cac:Price><cbc:PriceAmount>{price}</cbc:PriceAmount></cac:Price>"
    "</cac:InvoiceLine>"
)


def test_invoice_root_with_type_381_is_a_credit_note() -> None:
    data = _invoice(
        "<cbc:ID>CN-1</cbc:ID><cbc:DueDate>2024-05-01</cbc:DueDate>"
        "<cbc:InvoiceTypeCode>381</cbc:InvoiceTypeCode>"
        "<cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>INV-9</cbc:ID>"
        "</cac:InvoiceDocumentReference></cac:BillingReference>"
    )
    parsed = parse_document(data)
    assert isinstance(parsed.document, CreditNote)
    assert parsed.document.billing_reference == "INV-9"
    assert parsed.document.due_date == date(2024, 5, 1)


def test_prepayment_invoice_386_stays_an_invoice() -> None:
    data = _invoice("<cbc:ID>P-1</cbc:ID><cbc:InvoiceTypeCode>386</cbc:InvoiceTypeCode>")
    assert isinstance(parse_document(data).document, Invoice)


def test_missing_optional_fields_stay_none() -> None:
    doc = parse_document(_invoice("")).document
    assert doc.number is None
    assert doc.issue_date is None
    assert doc.currency is None
    assert doc.totals.payable is None
    assert doc.payment is None
    assert doc.supplier.name is None
    assert doc.lines == []


def test_credit_note_due_date_from_payment_means() -> None:
    data = (
        b'<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"'
        b' xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"'
        b' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
        b"<cbc:ID>7</cbc:ID><cac:PaymentMeans><cbc:PaymentMeansCode>58</cbc:PaymentMeansCode>"
        b"<cbc:PaymentDueDate>2024-02-29</cbc:PaymentDueDate></cac:PaymentMeans></CreditNote>"
    )
    doc = parse_document(data).document
    assert isinstance(doc, CreditNote)
    assert doc.due_date == date(2024, 2, 29)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Freight charges", LineKind.FREIGHT),
        ("Frachtkosten", LineKind.FREIGHT),
        ("Versandpauschale", LineKind.FREIGHT),
        ("Frais de port", LineKind.FREIGHT),
        ("Shipping &amp; handling", LineKind.FREIGHT),
        ("USB port hub", LineKind.GOODS),
        ("Steel bolts M8", LineKind.GOODS),
    ],
)
def test_line_kind_from_the_item_name(name: str, kind: LineKind) -> None:
    data = _invoice("", _LINE.format(qty="1", amount="10", name=name, price="10"))
    assert parse_document(data).document.lines[0].kind is kind


def test_amounts_keep_their_precision() -> None:
    data = _invoice("", _LINE.format(qty="2.500", amount="31.2500", name="x", price="12.5000"))
    line = parse_document(data).document.lines[0]
    assert str(line.quantity) == "2.500"
    assert str(line.unit_price) == "12.5000"
    assert line.unit_code == "KGM"


@pytest.mark.parametrize(
    ("body", "line", "element"),
    [
        ("", _LINE.format(qty="1", amount="10", name="x", price="ten"), "cbc:PriceAmount"),
        ("", _LINE.format(qty="1e3", amount="10", name="x", price="1"), "cbc:InvoicedQuantity"),
        ("", _LINE.format(qty="1", amount="NaN", name="x", price="1"), "cbc:LineExtensionAmount"),
        ("", _LINE.format(qty="1", amount="1,50", name="x", price="1"), "cbc:LineExtensionAmount"),
        ("<cbc:IssueDate>2024-02-30</cbc:IssueDate>", "", "cbc:IssueDate"),
        ("<cbc:IssueDate>04.04.2016</cbc:IssueDate>", "", "cbc:IssueDate"),
        (
            "<cac:LegalMonetaryTotal><cbc:PayableAmount>12 EUR</cbc:PayableAmount>"
            "</cac:LegalMonetaryTotal>",
            "",
            "cbc:PayableAmount",
        ),
        (
            "<cac:AllowanceCharge><cbc:ChargeIndicator>yes</cbc:ChargeIndicator>"
            "<cbc:Amount>1</cbc:Amount></cac:AllowanceCharge>",
            "",
            "cbc:ChargeIndicator",
        ),
        ("<cbc:DocumentCurrencyCode>EURO</cbc:DocumentCurrencyCode>", "", "currency"),
    ],
)
def test_invalid_values_are_parse_errors_naming_the_element(
    body: str, line: str, element: str
) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(_invoice(body, line))
    assert caught.value.code is ParseErrorCode.INVALID_VALUE
    assert element in caught.value.message


def test_a_line_without_a_price_is_an_invalid_value() -> None:
    line = _LINE.format(qty="1", amount="10", name="x", price="1").replace(
        "<cac:Price><cbc:PriceAmount>1</cbc:PriceAmount></cac:Price>", ""
    )
    with pytest.raises(ParseError) as caught:
        parse_document(_invoice("", line))
    assert caught.value.code is ParseErrorCode.INVALID_VALUE
    assert "InvoiceLine 1" in caught.value.message


def test_read_ubl_refuses_other_roots() -> None:
    root = parse_xml(b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>', 1000)
    with pytest.raises(ParseError) as caught:
        read_ubl(root)
    assert caught.value.code is ParseErrorCode.UNSUPPORTED_DOCUMENT
