"""Read UBL 2.1 invoices and credit notes (PEPPOL BIS 3 / EN 16931, XRechnung) into canonical types.

Only the fields the canonical model holds are read. A field the document lacks stays None (it
becomes a MISSING_DATA finding later); a field that is present but unreadable (an amount that is
not a number, a bad date) is a ParseError naming the element.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import ValidationError

from pipelines.canonical import (
    Address,
    AllowanceCharge,
    Claim,
    CreditNote,
    DocumentLine,
    DocumentTotals,
    Invoice,
    Party,
    PaymentDetails,
    SourceFormat,
    TaxSubtotal,
)
from pipelines.parsers.common import line_kind
from pipelines.parsers.errors import ParseError, ParseErrorCode

Element = ET.Element

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

_CAC = "{" + NS_CAC + "}"
_CBC = "{" + NS_CBC + "}"
_PREFIXES = {_CAC: "cac:", _CBC: "cbc:", "{" + NS_INVOICE + "}": "", "{" + NS_CREDIT_NOTE + "}": ""}

# UNCL1001 document type codes that EN 16931 treats as credit notes; every other code on an
# Invoice root (380, 383, 384, 386, 389, 751, 877, ...) is read as an invoice.
CREDIT_NOTE_TYPE_CODES = frozenset(
    {"81", "83", "261", "262", "296", "308", "381", "396", "420", "458", "532"}
)
# A debit note (UNCL1001 383) that names the invoice it adds to is a supplier claim: a request
# for more money against an earlier invoice (price protection, penalties, returns handling).
CLAIM_TYPE_CODES = frozenset({"383"})

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# xsd:date, optionally with a time zone, which a due date does not need.
_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?")


def _name(tag: str) -> str:
    """`cbc:PayableAmount` for `{urn:...CommonBasicComponents-2}PayableAmount`, for messages."""
    namespace, _, local = tag.rpartition("}")
    return _PREFIXES.get(namespace + "}", "") + local if namespace else local


def _path(tags: Iterable[str]) -> str:
    return "/".join(_name(tag) for tag in tags)


class _Reader:
    """Reads one document; `where` prefixes error messages (for example with the line)."""

    def __init__(self, where: str = "") -> None:
        self.where = where

    def invalid(self, tags: Iterable[str], value: str, expected: str) -> ParseError:
        place = f"{self.where}{_path(tags)}"
        return ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"{place} holds {value[:40]!r}, which is not {expected}. "
            "Ask the supplier for a corrected document.",
            detail=place,
        )

    def missing(self, tags: Iterable[str], what: str) -> ParseError:
        place = f"{self.where}{_path(tags)}"
        return ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"{place} ({what}) is missing; EN 16931 requires it on every line. "
            "Ask the supplier for a corrected document.",
            detail=place,
        )

    @staticmethod
    def node(element: Element | None, *tags: str) -> Element | None:
        # One child step at a time: ElementTree's C find() is fast for a plain tag and avoids
        # its small, shared path cache.
        for tag in tags:
            if element is None:
                return None
            element = element.find(tag)
        return element

    def text(self, element: Element | None, *tags: str) -> str | None:
        found = self.node(element, *tags)
        if found is None or found.text is None:
            return None
        value = found.text.strip()
        return value or None

    def decimal(self, element: Element | None, *tags: str) -> Decimal | None:
        raw = self.text(element, *tags)
        if raw is None:
            return None
        if _DECIMAL.fullmatch(raw) is None:
            raise self.invalid(tags, raw, "a decimal number")
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise self.invalid(tags, raw, "a decimal number") from None

    def required_decimal(self, element: Element | None, *tags: str, what: str) -> Decimal:
        value = self.decimal(element, *tags)
        if value is None:
            raise self.missing(tags, what)
        return value

    def date(self, element: Element | None, *tags: str) -> date | None:
        raw = self.text(element, *tags)
        if raw is None:
            return None
        match = _DATE.fullmatch(raw)
        if match is None:
            raise self.invalid(tags, raw, "a date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(match.group(1))
        except ValueError:
            raise self.invalid(tags, raw, "a valid calendar date") from None

    def boolean(self, element: Element | None, *tags: str) -> bool | None:
        raw = self.text(element, *tags)
        if raw is None:
            return None
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise self.invalid(tags, raw, "true or false")

    def code(self, element: Element | None, *tags: str) -> str | None:
        # ISO codes (currency, country) are case-insensitive in practice; the model wants upper.
        raw = self.text(element, *tags)
        return raw.upper() if raw is not None else None

    def joined(self, elements: Iterable[Element]) -> str | None:
        parts = [e.text.strip() for e in elements if e.text and e.text.strip()]
        return "\n".join(parts) if parts else None


def _address(r: _Reader, element: Element | None) -> Address | None:
    if element is None:
        return None
    address = Address(
        street=r.text(element, _CBC + "StreetName"),
        additional_street=r.text(element, _CBC + "AdditionalStreetName"),
        city=r.text(element, _CBC + "CityName"),
        postal_code=r.text(element, _CBC + "PostalZone"),
        subdivision=r.text(element, _CBC + "CountrySubentity"),
        country_code=r.code(element, _CAC + "Country", _CBC + "IdentificationCode"),
    )
    return None if address == Address() else address


def _vat_id(r: _Reader, party: Element) -> str | None:
    # A party may list several tax schemes (Swedish F-skatt, for instance); only VAT is the VAT id.
    fallback = None
    for scheme in party.iterfind(_CAC + "PartyTaxScheme"):
        company_id = r.text(scheme, _CBC + "CompanyID")
        scheme_id = r.text(scheme, _CAC + "TaxScheme", _CBC + "ID")
        if company_id is None:
            continue
        if scheme_id is not None and scheme_id.upper() == "VAT":
            return company_id
        if scheme_id is None and fallback is None:
            fallback = company_id
    return fallback


def _party(r: _Reader, element: Element | None) -> Party:
    party = r.node(element, _CAC + "Party")
    if party is None:
        return Party()
    return Party(
        name=r.text(party, _CAC + "PartyName", _CBC + "Name")
        or r.text(party, _CAC + "PartyLegalEntity", _CBC + "RegistrationName"),
        vat_id=_vat_id(r, party),
        registration_id=r.text(party, _CAC + "PartyLegalEntity", _CBC + "CompanyID"),
        address=_address(r, party.find(_CAC + "PostalAddress")),
        email=r.text(party, _CAC + "Contact", _CBC + "ElectronicMail"),
    )


def _payment(r: _Reader, root: Element) -> PaymentDetails | None:
    means_list = root.findall(_CAC + "PaymentMeans")
    # Several PaymentMeans may be offered; the first one that names an account is the one to pay.
    means = next(
        (m for m in means_list if m.find(_CAC + "PayeeFinancialAccount") is not None),
        means_list[0] if means_list else None,
    )
    account = r.node(means, _CAC + "PayeeFinancialAccount")
    terms = r.joined(
        note for t in root.iterfind(_CAC + "PaymentTerms") for note in t.iterfind(_CBC + "Note")
    )
    payment = PaymentDetails(
        means_code=r.text(means, _CBC + "PaymentMeansCode"),
        iban=r.text(account, _CBC + "ID"),
        bic=r.text(account, _CAC + "FinancialInstitutionBranch", _CBC + "ID"),
        account_name=r.text(account, _CBC + "Name"),
        payment_reference=r.text(means, _CBC + "PaymentID"),
        terms=terms,
    )
    return None if payment == PaymentDetails() else payment


def _due_date(r: _Reader, root: Element) -> date | None:
    # Invoices carry cbc:DueDate; UBL 2.1 credit notes have no such element and put it in
    # PaymentMeans (PEPPOL) or PaymentTerms.
    due = r.date(root, _CBC + "DueDate")
    if due is not None:
        return due
    for container in ("PaymentMeans", "PaymentTerms"):
        for element in root.iterfind(_CAC + container):
            due = r.date(element, _CBC + "PaymentDueDate")
            if due is not None:
                return due
    return None


def _allowance_charge(r: _Reader, element: Element) -> AllowanceCharge:
    is_charge = r.boolean(element, _CBC + "ChargeIndicator")
    if is_charge is None:
        raise r.missing([_CAC + "AllowanceCharge", _CBC + "ChargeIndicator"], "charge indicator")
    return AllowanceCharge(
        is_charge=is_charge,
        amount=r.required_decimal(element, _CBC + "Amount", what="allowance or charge amount"),
        reason=r.text(element, _CBC + "AllowanceChargeReason"),
        reason_code=r.text(element, _CBC + "AllowanceChargeReasonCode"),
        tax_category=r.text(element, _CAC + "TaxCategory", _CBC + "ID"),
        tax_rate=r.decimal(element, _CAC + "TaxCategory", _CBC + "Percent"),
    )


def _tax_total(root: Element, currency: str | None) -> Element | None:
    # A second TaxTotal may state the VAT in the tax currency (BT-111); we want the document one.
    totals = root.findall(_CAC + "TaxTotal")
    if len(totals) <= 1:
        return totals[0] if totals else None
    for total in totals:
        amount = total.find(_CBC + "TaxAmount")
        if amount is not None and currency and amount.get("currencyID") == currency:
            return total
    with_breakdown = [t for t in totals if t.find(_CAC + "TaxSubtotal") is not None]
    return with_breakdown[0] if with_breakdown else totals[0]


def _tax_subtotal(r: _Reader, element: Element) -> TaxSubtotal:
    category = element.find(_CAC + "TaxCategory")
    return TaxSubtotal(
        category=r.text(category, _CBC + "ID"),
        rate=r.decimal(category, _CBC + "Percent"),
        taxable_amount=r.required_decimal(element, _CBC + "TaxableAmount", what="taxable amount"),
        tax_amount=r.required_decimal(element, _CBC + "TaxAmount", what="VAT amount"),
        exemption_reason=r.text(category, _CBC + "TaxExemptionReason")
        or r.text(category, _CBC + "TaxExemptionReasonCode"),
    )


def _totals(root: Element, tax_total: Element | None) -> DocumentTotals:
    lmt = root.find(_CAC + "LegalMonetaryTotal")
    r = _Reader("cac:LegalMonetaryTotal/")
    zero = Decimal(0)
    allowances = r.decimal(lmt, _CBC + "AllowanceTotalAmount")
    charges = r.decimal(lmt, _CBC + "ChargeTotalAmount")
    prepaid = r.decimal(lmt, _CBC + "PrepaidAmount")
    rounding = r.decimal(lmt, _CBC + "PayableRoundingAmount")
    return DocumentTotals(
        line_extension=r.decimal(lmt, _CBC + "LineExtensionAmount"),
        allowances=zero if allowances is None else allowances,
        charges=zero if charges is None else charges,
        tax_exclusive=r.decimal(lmt, _CBC + "TaxExclusiveAmount"),
        tax=_Reader("cac:TaxTotal/").decimal(tax_total, _CBC + "TaxAmount"),
        tax_inclusive=r.decimal(lmt, _CBC + "TaxInclusiveAmount"),
        prepaid=zero if prepaid is None else prepaid,
        rounding=zero if rounding is None else rounding,
        payable=r.decimal(lmt, _CBC + "PayableAmount"),
    )


def _line(element: Element, position: int, line_tag: str, quantity_tag: str) -> DocumentLine:
    line_id = _Reader().text(element, _CBC + "ID") or str(position)
    r = _Reader(f"{_name(line_tag)} {line_id}: ")
    quantity_element = element.find(quantity_tag)
    item = element.find(_CAC + "Item")
    name = r.text(item, _CBC + "Name")
    description = r.text(item, _CBC + "Description")
    tax = r.node(item, _CAC + "ClassifiedTaxCategory")
    price = element.find(_CAC + "Price")
    base_quantity = r.decimal(price, _CBC + "BaseQuantity")
    unit_code = quantity_element.get("unitCode") if quantity_element is not None else None
    # BG-27/BG-28 are the line's own cac:AllowanceCharge children; a cac:Price/AllowanceCharge
    # is the item price discount (BT-147), already netted into the unit price.
    adjustments = [_allowance_charge(r, e) for e in element.iterfind(_CAC + "AllowanceCharge")]
    return DocumentLine(
        line_id=line_id,
        item_id=r.text(item, _CAC + "SellersItemIdentification", _CBC + "ID"),
        buyer_item_id=r.text(item, _CAC + "BuyersItemIdentification", _CBC + "ID"),
        description=name or description,
        quantity=r.required_decimal(element, quantity_tag, what="quantity"),
        unit_code=unit_code.strip() if unit_code and unit_code.strip() else "C62",
        unit_price=r.required_decimal(price, _CBC + "PriceAmount", what="net unit price"),
        price_base_quantity=Decimal(1) if base_quantity is None else base_quantity,
        tax_category=r.text(tax, _CBC + "ID"),
        tax_rate=r.decimal(tax, _CBC + "Percent"),
        line_amount=r.required_decimal(element, _CBC + "LineExtensionAmount", what="net amount"),
        allowances=sum((a.amount for a in adjustments if not a.is_charge), Decimal(0)),
        charges=sum((a.amount for a in adjustments if a.is_charge), Decimal(0)),
        po_line_ref=r.text(element, _CAC + "OrderLineReference", _CBC + "LineID"),
        kind=line_kind(name, description),
        note=r.joined(element.iterfind(_CBC + "Note")),
    )


def read_ubl(root: Element) -> Invoice | CreditNote | Claim:
    """Read a parsed UBL 2.1 Invoice or CreditNote element into a canonical document."""
    try:
        return _read(root)
    except ValidationError as exc:
        # A value the canonical model refuses (a currency "EURO", a country "Germany").
        raise _invalid_model(exc) from None


def _read(root: Element) -> Invoice | CreditNote | Claim:
    if root.tag == "{" + NS_INVOICE + "}Invoice":
        line_tag, quantity_tag, type_tag = "InvoiceLine", "InvoicedQuantity", "InvoiceTypeCode"
    elif root.tag == "{" + NS_CREDIT_NOTE + "}CreditNote":
        line_tag, quantity_tag = "CreditNoteLine", "CreditedQuantity"
        type_tag = "CreditNoteTypeCode"
    else:
        raise ParseError(
            ParseErrorCode.UNSUPPORTED_DOCUMENT,
            f"The XML root is {root.tag}, not a UBL Invoice or CreditNote; only invoices and "
            "credit notes can be read.",
            detail=root.tag,
        )
    r = _Reader()
    type_code = r.text(root, _CBC + type_tag)
    is_credit = type_tag == "CreditNoteTypeCode" or type_code in CREDIT_NOTE_TYPE_CODES
    currency = r.code(root, _CBC + "DocumentCurrencyCode")
    tax_total = _tax_total(root, currency)
    lines = [
        _line(element, position, _CAC + line_tag, _CBC + quantity_tag)
        for position, element in enumerate(root.iterfind(_CAC + line_tag), start=1)
    ]
    fields: dict[str, Any] = {
        "number": r.text(root, _CBC + "ID"),
        "issue_date": r.date(root, _CBC + "IssueDate"),
        "due_date": _due_date(r, root),
        "tax_point_date": r.date(root, _CBC + "TaxPointDate"),
        "currency": currency,
        "supplier": _party(r, root.find(_CAC + "AccountingSupplierParty")),
        "buyer": _party(r, root.find(_CAC + "AccountingCustomerParty")),
        "po_reference": r.text(root, _CAC + "OrderReference", _CBC + "ID"),
        "contract_reference": r.text(root, _CAC + "ContractDocumentReference", _CBC + "ID"),
        "buyer_reference": r.text(root, _CBC + "BuyerReference"),
        "lines": lines,
        "allowance_charges": [
            _allowance_charge(r, e) for e in root.iterfind(_CAC + "AllowanceCharge")
        ],
        "tax_breakdown": []
        if tax_total is None
        else [_tax_subtotal(r, e) for e in tax_total.iterfind(_CAC + "TaxSubtotal")],
        "totals": _totals(root, tax_total),
        "payment": _payment(r, root),
        "notes": [
            e.text.strip() for e in root.iterfind(_CBC + "Note") if e.text and e.text.strip()
        ],
        "source_format": SourceFormat.UBL,
    }
    if is_credit:
        billing = r.text(
            root, _CAC + "BillingReference", _CAC + "InvoiceDocumentReference", _CBC + "ID"
        )
        return CreditNote(billing_reference=billing, **fields)
    if type_code in CLAIM_TYPE_CODES:
        billing = r.text(
            root, _CAC + "BillingReference", _CAC + "InvoiceDocumentReference", _CBC + "ID"
        )
        if billing is not None:
            return Claim(billing_reference=billing, **fields)
    return Invoice(**fields)


def _invalid_model(exc: ValidationError) -> ParseError:
    first = exc.errors()[0]
    where = ".".join([exc.title, *(str(part) for part in first["loc"])])
    return ParseError(
        ParseErrorCode.INVALID_VALUE,
        f"The {where} value {str(first.get('input'))[:40]!r} is not acceptable: {first['msg']}. "
        "Ask the supplier for a corrected document.",
        detail=str(exc),
    )
