"""Write canonical invoices and credit notes as UBL 2.1 (PEPPOL BIS Billing 3 shaped).

`read_ubl(parse_xml(write_ubl(doc)))` gives back the same canonical fields, with two caveats the
UBL syntax imposes: a line's `kind` is re-derived from its description on reading, and a
party-level `iban` (UBL has none) is written into PaymentMeans only when the payment details lack
one. Only fields the document holds are written: a document missing a field EN 16931 requires
(number, dates, currency, ...) gives UBL that a validator will reject, which is the honest result.
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
from pipelines.parsers.ubl import NS_CAC, NS_CBC, NS_CREDIT_NOTE, NS_INVOICE

CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"

# Characters XML 1.0 cannot carry at all; ElementTree would write them and break the document.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

Value = str | Decimal | date | None


def _format(value: str | Decimal | date) -> str:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"cannot write the non-finite amount {value} to UBL")
        # "f" keeps the given precision (1.50 stays 1.50) and never uses exponent notation.
        return format(value, "f")
    if isinstance(value, date):
        return value.isoformat()
    if _NOT_XML.search(value):
        raise ValueError(f"{value[:40]!r} holds characters XML cannot carry")
    return value


class _Builder:
    """Appends prefixed elements in UBL schema order; None values are skipped."""

    def __init__(self, currency: str | None) -> None:
        self.currency = currency

    @staticmethod
    def add(parent: ET.Element, tag: str, value: Value = None, **attrs: str) -> ET.Element:
        element = ET.SubElement(parent, tag, attrs)
        if value is not None:
            element.text = _format(value)
        return element

    def text(self, parent: ET.Element, tag: str, value: Value, **attrs: str) -> None:
        if value is not None:
            self.add(parent, tag, value, **attrs)

    def amount(self, parent: ET.Element, tag: str, value: Decimal | None) -> None:
        if value is not None:
            if self.currency:
                self.add(parent, tag, value, currencyID=self.currency)
            else:
                self.add(parent, tag, value)

    def tax_category(
        self,
        parent: ET.Element,
        tag: str,
        category: str | None,
        rate: Decimal | None,
        exemption_reason: str | None = None,
    ) -> None:
        if category is None and rate is None and exemption_reason is None:
            return
        element = self.add(parent, tag)
        self.text(element, "cbc:ID", category)
        self.text(element, "cbc:Percent", rate)
        self.text(element, "cbc:TaxExemptionReason", exemption_reason)
        self.add(self.add(element, "cac:TaxScheme"), "cbc:ID", "VAT")

    def party(self, parent: ET.Element, tag: str, party: Party) -> None:
        wrapper = self.add(parent, tag)
        element = self.add(wrapper, "cac:Party")
        if party.name is not None:
            self.add(self.add(element, "cac:PartyName"), "cbc:Name", party.name)
        address = party.address
        if address is not None:
            postal = self.add(element, "cac:PostalAddress")
            self.text(postal, "cbc:StreetName", address.street)
            self.text(postal, "cbc:AdditionalStreetName", address.additional_street)
            self.text(postal, "cbc:CityName", address.city)
            self.text(postal, "cbc:PostalZone", address.postal_code)
            self.text(postal, "cbc:CountrySubentity", address.subdivision)
            if address.country_code is not None:
                country = self.add(postal, "cac:Country")
                self.add(country, "cbc:IdentificationCode", address.country_code)
        if party.vat_id is not None:
            scheme = self.add(element, "cac:PartyTaxScheme")
            self.add(scheme, "cbc:CompanyID", party.vat_id)
            self.add(self.add(scheme, "cac:TaxScheme"), "cbc:ID", "VAT")
        if party.name is not None or party.registration_id is not None:
            # PEPPOL requires the legal name (BT-27); the canonical party has one name for both.
            legal = self.add(element, "cac:PartyLegalEntity")
            self.text(legal, "cbc:RegistrationName", party.name)
            self.text(legal, "cbc:CompanyID", party.registration_id)
        if party.email is not None:
            self.add(self.add(element, "cac:Contact"), "cbc:ElectronicMail", party.email)

    def payment_means(
        self, root: ET.Element, payment: PaymentDetails, iban: str | None, due: date | None
    ) -> None:
        means = self.add(root, "cac:PaymentMeans")
        self.text(means, "cbc:PaymentMeansCode", payment.means_code)
        self.text(means, "cbc:PaymentDueDate", due)
        self.text(means, "cbc:PaymentID", payment.payment_reference)
        if iban is not None or payment.account_name is not None or payment.bic is not None:
            account = self.add(means, "cac:PayeeFinancialAccount")
            self.text(account, "cbc:ID", iban)
            self.text(account, "cbc:Name", payment.account_name)
            if payment.bic is not None:
                branch = self.add(account, "cac:FinancialInstitutionBranch")
                self.add(branch, "cbc:ID", payment.bic)

    def allowance_charge(self, root: ET.Element, item: AllowanceCharge) -> None:
        element = self.add(root, "cac:AllowanceCharge")
        self.add(element, "cbc:ChargeIndicator", "true" if item.is_charge else "false")
        self.text(element, "cbc:AllowanceChargeReasonCode", item.reason_code)
        self.text(element, "cbc:AllowanceChargeReason", item.reason)
        self.amount(element, "cbc:Amount", item.amount)
        self.tax_category(element, "cac:TaxCategory", item.tax_category, item.tax_rate)

    def tax_subtotal(self, parent: ET.Element, item: TaxSubtotal) -> None:
        element = self.add(parent, "cac:TaxSubtotal")
        self.amount(element, "cbc:TaxableAmount", item.taxable_amount)
        self.amount(element, "cbc:TaxAmount", item.tax_amount)
        self.tax_category(
            element, "cac:TaxCategory", item.category, item.rate, item.exemption_reason
        )

    def line(self, root: ET.Element, line: DocumentLine, credit: bool) -> None:
        element = self.add(root, "cac:CreditNoteLine" if credit else "cac:InvoiceLine")
        self.add(element, "cbc:ID", line.line_id)
        self.text(element, "cbc:Note", line.note)
        quantity_tag = "cbc:CreditedQuantity" if credit else "cbc:InvoicedQuantity"
        self.add(element, quantity_tag, line.quantity, unitCode=line.unit_code)
        self.amount(element, "cbc:LineExtensionAmount", line.line_amount)
        if line.po_line_ref is not None:
            self.add(self.add(element, "cac:OrderLineReference"), "cbc:LineID", line.po_line_ref)
        # BG-27/BG-28 sit between OrderLineReference and Item; the canonical line holds only
        # the sums, so each sign is written once (no reason: the canonical line has none).
        for is_charge, amount in ((False, line.allowances), (True, line.charges)):
            if amount != 0:
                adjustment = self.add(element, "cac:AllowanceCharge")
                self.add(adjustment, "cbc:ChargeIndicator", "true" if is_charge else "false")
                self.amount(adjustment, "cbc:Amount", amount)
        item = self.add(element, "cac:Item")
        self.text(item, "cbc:Name", line.description)
        if line.buyer_item_id is not None:
            buyers = self.add(item, "cac:BuyersItemIdentification")
            self.add(buyers, "cbc:ID", line.buyer_item_id)
        if line.item_id is not None:
            self.add(self.add(item, "cac:SellersItemIdentification"), "cbc:ID", line.item_id)
        self.tax_category(item, "cac:ClassifiedTaxCategory", line.tax_category, line.tax_rate)
        price = self.add(element, "cac:Price")
        self.amount(price, "cbc:PriceAmount", line.unit_price)
        if line.price_base_quantity != 1:
            self.add(price, "cbc:BaseQuantity", line.price_base_quantity, unitCode=line.unit_code)


def write_ubl(doc: Invoice | CreditNote | Claim) -> bytes:
    """Serialise a canonical invoice, credit note or claim as a UBL 2.1 (PEPPOL BIS 3) document.

    A claim is written as an Invoice with type code 383 (debit note) and a billing reference;
    its `claim_reason` has no UBL element, so a claim carries its reason in `notes`.
    """
    credit = isinstance(doc, CreditNote)
    root = ET.Element(
        "CreditNote" if credit else "Invoice",
        {
            "xmlns": NS_CREDIT_NOTE if credit else NS_INVOICE,
            "xmlns:cac": NS_CAC,
            "xmlns:cbc": NS_CBC,
        },
    )
    b = _Builder(doc.currency)
    b.add(root, "cbc:CustomizationID", CUSTOMIZATION_ID)
    b.add(root, "cbc:ProfileID", PROFILE_ID)
    b.text(root, "cbc:ID", doc.number)
    b.text(root, "cbc:IssueDate", doc.issue_date)
    # Element order differs between the two roots (UBL 2.1 XSD sequences); UBL 2.1 credit notes
    # have no DueDate, so theirs goes into PaymentMeans (PEPPOL) or PaymentTerms below.
    if credit:
        b.text(root, "cbc:TaxPointDate", doc.tax_point_date)
        b.add(root, "cbc:CreditNoteTypeCode", "381")
    else:
        b.text(root, "cbc:DueDate", doc.due_date)
        b.add(root, "cbc:InvoiceTypeCode", "383" if isinstance(doc, Claim) else "380")
    for note in doc.notes:
        b.add(root, "cbc:Note", note)
    if not credit:
        b.text(root, "cbc:TaxPointDate", doc.tax_point_date)
    b.text(root, "cbc:DocumentCurrencyCode", doc.currency)
    b.text(root, "cbc:BuyerReference", doc.buyer_reference)
    if doc.po_reference is not None:
        b.add(b.add(root, "cac:OrderReference"), "cbc:ID", doc.po_reference)
    if isinstance(doc, CreditNote | Claim) and doc.billing_reference is not None:
        reference = b.add(b.add(root, "cac:BillingReference"), "cac:InvoiceDocumentReference")
        b.add(reference, "cbc:ID", doc.billing_reference)
    if doc.contract_reference is not None:
        b.add(b.add(root, "cac:ContractDocumentReference"), "cbc:ID", doc.contract_reference)
    b.party(root, "cac:AccountingSupplierParty", doc.supplier)
    b.party(root, "cac:AccountingCustomerParty", doc.buyer)

    payment = doc.payment or PaymentDetails()
    # UBL has no party-level account: the supplier's IBAN travels in PaymentMeans.
    iban = payment.iban if payment.iban is not None else doc.supplier.iban
    credit_due = doc.due_date if credit else None
    has_means = (
        any(
            value is not None
            for value in (
                payment.means_code,
                payment.bic,
                payment.account_name,
                payment.payment_reference,
            )
        )
        or iban is not None
    )
    if has_means:
        b.payment_means(root, payment, iban, credit_due)
    if payment.terms is not None or (credit_due is not None and not has_means):
        terms = b.add(root, "cac:PaymentTerms")
        b.text(terms, "cbc:Note", payment.terms)
        if not has_means:
            b.text(terms, "cbc:PaymentDueDate", credit_due)

    for item in doc.allowance_charges:
        b.allowance_charge(root, item)
    totals = doc.totals
    if totals.tax is not None or doc.tax_breakdown:
        tax_total = b.add(root, "cac:TaxTotal")
        b.amount(tax_total, "cbc:TaxAmount", totals.tax)
        for subtotal in doc.tax_breakdown:
            b.tax_subtotal(tax_total, subtotal)
    monetary = b.add(root, "cac:LegalMonetaryTotal")
    b.amount(monetary, "cbc:LineExtensionAmount", totals.line_extension)
    b.amount(monetary, "cbc:TaxExclusiveAmount", totals.tax_exclusive)
    b.amount(monetary, "cbc:TaxInclusiveAmount", totals.tax_inclusive)
    # Zero defaults are left out: absent means zero when read back, and PEPPOL allows omission.
    for tag, value in (
        ("cbc:AllowanceTotalAmount", totals.allowances),
        ("cbc:ChargeTotalAmount", totals.charges),
        ("cbc:PrepaidAmount", totals.prepaid),
        ("cbc:PayableRoundingAmount", totals.rounding),
    ):
        if value != 0:
            b.amount(monetary, tag, value)
    b.amount(monetary, "cbc:PayableAmount", totals.payable)

    for line in doc.lines:
        b.line(root, line, credit)
    ET.indent(root, space="  ")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)
