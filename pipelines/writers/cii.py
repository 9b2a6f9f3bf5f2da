"""Write canonical documents as UN/CEFACT CII D16B (Factur-X / ZUGFeRD 2.x, EN 16931 profile).

The inverse of `pipelines.parsers.cii.read_cii`: `read_cii(parse_xml(write_cii(doc)))` gives back
the same canonical fields (except `source_format`), with the caveats the CII syntax imposes, as
for the UBL writer: a line's `kind` is re-derived from its description on reading, and a
party-level `iban` (CII has none) is written into the payment means only when the payment details
lack one. A claim is written, as by the UBL writer, as a debit note (type code 383) with its
billing reference, which the readers take for a claim; its `claim_reason` has no CII element, so a
claim carries its reason in `notes`. Only fields the document holds are written: a document
missing a field EN 16931 requires gives CII that a validator will reject, which is the honest
result.

Elements are appended in the D16B XSD sequence order; ElementTree escapes text and attributes.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal

from pipelines.canonical import (
    AllowanceCharge,
    Claim,
    CreditNote,
    DocumentLine,
    Invoice,
    Party,
    PaymentDetails,
    TaxSubtotal,
)
from pipelines.parsers.cii import NS_CII

_UNECE = "urn:un:unece:uncefact:data:standard:"
NS_RAM = _UNECE + "ReusableAggregateBusinessInformationEntity:100"
NS_UDT = _UNECE + "UnqualifiedDataType:100"
NS_QDT = _UNECE + "QualifiedDataType:100"

# The EN 16931 guideline id (BT-24) that Factur-X 1.0 uses for its EN 16931 ("COMFORT") profile.
GUIDELINE_ID = "urn:cen.eu:en16931:2017"

INVOICE_TYPE_CODE = "380"
CREDIT_NOTE_TYPE_CODE = "381"
CLAIM_TYPE_CODE = "383"  # UNCL1001 debit note

# Characters XML 1.0 cannot carry at all; ElementTree would write them and break the document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# The EN 16931 UBL binding's "#CODE#text" note form: split back into SubjectCode and Content.
_SUBJECT_NOTE = re.compile(r"#([A-Z]{3})#(.*\S.*)", re.DOTALL)
# An IBAN goes into ram:IBANID; any other account number (outside SEPA) into ram:ProprietaryID.
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")

# Double-quoted, upper-case UTF-8: the declaration Factur-X samples and validators show.
_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'


def _format(value: str | Decimal) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write the non-finite amount {value} to CII")
        # "f" keeps the given precision (1.50 stays 1.50) and never uses exponent notation.
        return format(value, "f")
    if _NOT_XML.search(value):
        raise ValueError(f"{value[:40]!r} holds characters XML cannot carry")
    return value


def _add(parent: ET.Element, tag: str, value: str | Decimal | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if value is not None:
        element.text = _format(value)
    return element


def _text(parent: ET.Element, tag: str, value: str | Decimal | None) -> None:
    if value is not None:
        _add(parent, tag, value)


def _date(
    parent: ET.Element, tag: str, value: date | None, string: str = "udt:DateTimeString"
) -> None:
    # UNTDID 2379 format 102 (CCYYMMDD), the only one EN 16931 allows.
    if value is not None:
        container = ET.SubElement(parent, tag)
        ET.SubElement(container, string, format="102").text = value.strftime("%Y%m%d")


class _Builder:
    """Appends `ram:` elements for one document; amounts that need a currency get it here."""

    def __init__(self, currency: str | None) -> None:
        self.currency = currency

    def tax(
        self,
        parent: ET.Element,
        tag: str,
        category: str | None,
        rate: Decimal | None,
        exemption_reason: str | None = None,
    ) -> None:
        """A line or allowance/charge tax (TypeCode, ExemptionReason, CategoryCode, Rate)."""
        if category is None and rate is None and exemption_reason is None:
            return
        element = _add(parent, tag)
        _add(element, "ram:TypeCode", "VAT")
        _text(element, "ram:ExemptionReason", exemption_reason)
        _text(element, "ram:CategoryCode", category)
        _text(element, "ram:RateApplicablePercent", rate)

    def party(self, parent: ET.Element, tag: str, party: Party) -> None:
        element = _add(parent, tag)
        _text(element, "ram:Name", party.name)
        if party.registration_id is not None:
            legal = _add(element, "ram:SpecifiedLegalOrganization")
            _add(legal, "ram:ID", party.registration_id)
        if party.email is not None:
            contact = _add(element, "ram:DefinedTradeContact")
            mail = _add(contact, "ram:EmailURIUniversalCommunication")
            _add(mail, "ram:URIID", party.email)
        address = party.address
        if address is not None:
            postal = _add(element, "ram:PostalTradeAddress")
            _text(postal, "ram:PostcodeCode", address.postal_code)
            _text(postal, "ram:LineOne", address.street)
            _text(postal, "ram:LineTwo", address.additional_street)
            _text(postal, "ram:CityName", address.city)
            _text(postal, "ram:CountryID", address.country_code)
            _text(postal, "ram:CountrySubDivisionName", address.subdivision)
        if party.vat_id is not None:
            registration = _add(element, "ram:SpecifiedTaxRegistration")
            ET.SubElement(registration, "ram:ID", schemeID="VA").text = _format(party.vat_id)

    def payment_means(self, parent: ET.Element, payment: PaymentDetails, iban: str | None) -> None:
        means = _add(parent, "ram:SpecifiedTradeSettlementPaymentMeans")
        _text(means, "ram:TypeCode", payment.means_code)
        if iban is not None or payment.account_name is not None:
            account = _add(means, "ram:PayeePartyCreditorFinancialAccount")
            if iban is not None:
                compact = iban.replace(" ", "").upper()
                _add(
                    account, "ram:IBANID" if _IBAN.fullmatch(compact) else "ram:ProprietaryID", iban
                )
            _text(account, "ram:AccountName", payment.account_name)
        if payment.bic is not None:
            institution = _add(means, "ram:PayeeSpecifiedCreditorFinancialInstitution")
            _add(institution, "ram:BICID", payment.bic)

    def tax_subtotal(
        self, parent: ET.Element, item: TaxSubtotal, tax_point_date: date | None
    ) -> None:
        element = _add(parent, "ram:ApplicableTradeTax")
        _add(element, "ram:CalculatedAmount", item.tax_amount)
        _add(element, "ram:TypeCode", "VAT")
        _text(element, "ram:ExemptionReason", item.exemption_reason)
        _add(element, "ram:BasisAmount", item.taxable_amount)
        _text(element, "ram:CategoryCode", item.category)
        # BT-7 has no header element in CII: it is repeated on every VAT breakdown row.
        _date(element, "ram:TaxPointDate", tax_point_date, "udt:DateString")
        _text(element, "ram:RateApplicablePercent", item.rate)

    def allowance_charge(self, parent: ET.Element, item: AllowanceCharge) -> None:
        element = _add(parent, "ram:SpecifiedTradeAllowanceCharge")
        indicator = _add(element, "ram:ChargeIndicator")
        _add(indicator, "udt:Indicator", "true" if item.is_charge else "false")
        _add(element, "ram:ActualAmount", item.amount)
        _text(element, "ram:ReasonCode", item.reason_code)
        _text(element, "ram:Reason", item.reason)
        self.tax(element, "ram:CategoryTradeTax", item.tax_category, item.tax_rate)

    def line(self, parent: ET.Element, line: DocumentLine) -> None:
        element = _add(parent, "ram:IncludedSupplyChainTradeLineItem")
        document = _add(element, "ram:AssociatedDocumentLineDocument")
        _add(document, "ram:LineID", line.line_id)
        if line.note is not None:
            _note(document, line.note)
        product = _add(element, "ram:SpecifiedTradeProduct")
        _text(product, "ram:SellerAssignedID", line.item_id)
        _text(product, "ram:BuyerAssignedID", line.buyer_item_id)
        _text(product, "ram:Name", line.description)
        agreement = _add(element, "ram:SpecifiedLineTradeAgreement")
        if line.po_line_ref is not None:
            order = _add(agreement, "ram:BuyerOrderReferencedDocument")
            _add(order, "ram:LineID", line.po_line_ref)
        price = _add(agreement, "ram:NetPriceProductTradePrice")
        _add(price, "ram:ChargeAmount", line.unit_price)
        if line.price_base_quantity != 1:
            basis = _add(price, "ram:BasisQuantity", line.price_base_quantity)
            basis.set("unitCode", line.unit_code)
        delivery = _add(element, "ram:SpecifiedLineTradeDelivery")
        quantity = _add(delivery, "ram:BilledQuantity", line.quantity)
        quantity.set("unitCode", line.unit_code)
        settlement = _add(element, "ram:SpecifiedLineTradeSettlement")
        self.tax(settlement, "ram:ApplicableTradeTax", line.tax_category, line.tax_rate)
        # BG-27/BG-28 follow the line tax and precede the summation (D16B sequence); the
        # canonical line holds only the sums, so each sign is written once.
        for is_charge, amount in ((False, line.allowances), (True, line.charges)):
            if amount != 0:
                adjustment = _add(settlement, "ram:SpecifiedTradeAllowanceCharge")
                indicator = _add(adjustment, "ram:ChargeIndicator")
                _add(indicator, "udt:Indicator", "true" if is_charge else "false")
                _add(adjustment, "ram:ActualAmount", amount)
        summation = _add(settlement, "ram:SpecifiedTradeSettlementLineMonetarySummation")
        _add(summation, "ram:LineTotalAmount", line.line_amount)


def _note(parent: ET.Element, note: str) -> None:
    element = _add(parent, "ram:IncludedNote")
    match = _SUBJECT_NOTE.fullmatch(note)
    if match is None:
        _add(element, "ram:Content", note)
    else:
        _add(element, "ram:Content", match.group(2))
        _add(element, "ram:SubjectCode", match.group(1))


def _type_code(doc: Invoice | CreditNote | Claim) -> str:
    if isinstance(doc, CreditNote):
        return CREDIT_NOTE_TYPE_CODE
    return CLAIM_TYPE_CODE if isinstance(doc, Claim) else INVOICE_TYPE_CODE


def write_cii(doc: Invoice | CreditNote | Claim) -> bytes:
    """Serialise a canonical invoice, credit note or claim as a CII D16B (EN 16931) document."""
    root = ET.Element(
        "rsm:CrossIndustryInvoice",
        {"xmlns:rsm": NS_CII, "xmlns:qdt": NS_QDT, "xmlns:ram": NS_RAM, "xmlns:udt": NS_UDT},
    )
    b = _Builder(doc.currency)
    context = _add(root, "rsm:ExchangedDocumentContext")
    _add(_add(context, "ram:GuidelineSpecifiedDocumentContextParameter"), "ram:ID", GUIDELINE_ID)

    header = _add(root, "rsm:ExchangedDocument")
    _text(header, "ram:ID", doc.number)
    _add(header, "ram:TypeCode", _type_code(doc))
    _date(header, "ram:IssueDateTime", doc.issue_date)
    for note in doc.notes:
        _note(header, note)

    transaction = _add(root, "rsm:SupplyChainTradeTransaction")
    for line in doc.lines:
        b.line(transaction, line)

    agreement = _add(transaction, "ram:ApplicableHeaderTradeAgreement")
    _text(agreement, "ram:BuyerReference", doc.buyer_reference)
    b.party(agreement, "ram:SellerTradeParty", doc.supplier)
    b.party(agreement, "ram:BuyerTradeParty", doc.buyer)
    if doc.po_reference is not None:
        order = _add(agreement, "ram:BuyerOrderReferencedDocument")
        _add(order, "ram:IssuerAssignedID", doc.po_reference)
    if doc.contract_reference is not None:
        contract = _add(agreement, "ram:ContractReferencedDocument")
        _add(contract, "ram:IssuerAssignedID", doc.contract_reference)

    _add(transaction, "ram:ApplicableHeaderTradeDelivery")

    settlement = _add(transaction, "ram:ApplicableHeaderTradeSettlement")
    payment = doc.payment or PaymentDetails()
    _text(settlement, "ram:PaymentReference", payment.payment_reference)
    _text(settlement, "ram:InvoiceCurrencyCode", doc.currency)
    # CII has no party-level account: the supplier's IBAN travels in the payment means.
    iban = payment.iban if payment.iban is not None else doc.supplier.iban
    if (
        payment.means_code is not None
        or payment.bic is not None
        or payment.account_name is not None
        or iban is not None
    ):
        b.payment_means(settlement, payment, iban)
    for subtotal in doc.tax_breakdown:
        b.tax_subtotal(settlement, subtotal, doc.tax_point_date)
    if not doc.tax_breakdown and doc.tax_point_date is not None:
        # A tax point date without a VAT breakdown still needs a tax element to sit on; with no
        # CalculatedAmount the reader does not take it for a breakdown row.
        element = _add(settlement, "ram:ApplicableTradeTax")
        _add(element, "ram:TypeCode", "VAT")
        _date(element, "ram:TaxPointDate", doc.tax_point_date, "udt:DateString")
    for item in doc.allowance_charges:
        b.allowance_charge(settlement, item)
    if payment.terms is not None or doc.due_date is not None:
        terms = _add(settlement, "ram:SpecifiedTradePaymentTerms")
        _text(terms, "ram:Description", payment.terms)
        _date(terms, "ram:DueDateDateTime", doc.due_date)

    totals = doc.totals
    summation = _add(settlement, "ram:SpecifiedTradeSettlementHeaderMonetarySummation")
    _text(summation, "ram:LineTotalAmount", totals.line_extension)
    # Zero defaults are left out: absent means zero when read back, and EN 16931 allows omission.
    if totals.charges != 0:
        _add(summation, "ram:ChargeTotalAmount", totals.charges)
    if totals.allowances != 0:
        _add(summation, "ram:AllowanceTotalAmount", totals.allowances)
    _text(summation, "ram:TaxBasisTotalAmount", totals.tax_exclusive)
    if totals.tax is not None:
        tax_total = _add(summation, "ram:TaxTotalAmount", totals.tax)
        if doc.currency is not None:
            tax_total.set("currencyID", doc.currency)
    if totals.rounding != 0:
        _add(summation, "ram:RoundingAmount", totals.rounding)
    _text(summation, "ram:GrandTotalAmount", totals.tax_inclusive)
    if totals.prepaid != 0:
        _add(summation, "ram:TotalPrepaidAmount", totals.prepaid)
    _text(summation, "ram:DuePayableAmount", totals.payable)

    billing = doc.billing_reference if isinstance(doc, CreditNote | Claim) else None
    if billing is not None:
        referenced = _add(settlement, "ram:InvoiceReferencedDocument")
        _add(referenced, "ram:IssuerAssignedID", billing)
    ET.indent(root, space="  ")
    return _DECLARATION + ET.tostring(root, encoding="utf-8", xml_declaration=False)
