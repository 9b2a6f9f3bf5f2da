"""Read UN/CEFACT CII invoices (Factur-X/ZUGFeRD 2.x, XRechnung CII, ZUGFeRD 1) as canonical types.

The mapping follows the EN 16931 CII binding and gives the same canonical values as the UBL reader
for the same invoice: the XRechnung test suite's UBL/CII pairs must read identically. As there, a
field the document lacks stays None, and a field that is present but unreadable is a ParseError
naming the element.

ZUGFeRD 1.0 (`CrossIndustryDocument`, CII D13B-based) has the same content model under older
element names; a rename table maps the D16B names onto it instead of a second reader.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
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
from pipelines.parsers.ubl import CLAIM_TYPE_CODES, CREDIT_NOTE_TYPE_CODES

Element = ET.Element

_UNECE = "urn:un:unece:uncefact:data:standard:"
NS_CII = _UNECE + "CrossIndustryInvoice:100"
NS_ZUGFERD1 = "urn:ferd:CrossIndustryDocument:invoice:1p0"


@dataclass(frozen=True)
class _Syntax:
    """Namespaces and element names of one CII version; names are written `ram:Local`."""

    root: str
    namespaces: Mapping[str, str]
    renames: Mapping[str, str] = field(default_factory=dict)
    legacy: bool = False  # ZUGFeRD 1: lines without a price, free-text lines

    def tag(self, qname: str) -> str:
        prefix, _, local = qname.partition(":")
        return "{" + self.namespaces[prefix] + "}" + self.renames.get(local, local)

    def shown(self, qname: str) -> str:
        """The name as it appears in this version's documents, for error messages."""
        prefix, _, local = qname.partition(":")
        return f"{prefix}:{self.renames.get(local, local)}"


_D16B = _Syntax(
    root="{" + NS_CII + "}CrossIndustryInvoice",
    namespaces={
        "rsm": NS_CII,
        "ram": _UNECE + "ReusableAggregateBusinessInformationEntity:100",
        "udt": _UNECE + "UnqualifiedDataType:100",
    },
)
_SUMMATION_1P0 = "SpecifiedTradeSettlementMonetarySummation"
_ZUGFERD1 = _Syntax(
    root="{" + NS_ZUGFERD1 + "}CrossIndustryDocument",
    namespaces={
        "rsm": NS_ZUGFERD1,
        "ram": _UNECE + "ReusableAggregateBusinessInformationEntity:12",
        "udt": _UNECE + "UnqualifiedDataType:15",
    },
    renames={
        "ExchangedDocument": "HeaderExchangedDocument",
        "SupplyChainTradeTransaction": "SpecifiedSupplyChainTradeTransaction",
        "ApplicableHeaderTradeAgreement": "ApplicableSupplyChainTradeAgreement",
        "ApplicableHeaderTradeSettlement": "ApplicableSupplyChainTradeSettlement",
        "SpecifiedLineTradeAgreement": "SpecifiedSupplyChainTradeAgreement",
        "SpecifiedLineTradeDelivery": "SpecifiedSupplyChainTradeDelivery",
        "SpecifiedLineTradeSettlement": "SpecifiedSupplyChainTradeSettlement",
        # ZUGFeRD 1 has one summation name for the header and the lines.
        "SpecifiedTradeSettlementHeaderMonetarySummation": _SUMMATION_1P0,
        "SpecifiedTradeSettlementLineMonetarySummation": _SUMMATION_1P0,
        "RateApplicablePercent": "ApplicablePercent",
        # Referenced documents carry their number in ram:ID before D16B.
        "IssuerAssignedID": "ID",
    },
    legacy=True,
)
_SYNTAXES = {syntax.root: syntax for syntax in (_D16B, _ZUGFERD1)}

_DECIMAL = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
# UNTDID 2379 format 102 is CCYYMMDD; 203 (CCYYMMDDHHMM) also names a day, so its date is kept.
_DATE_FORMATS = {
    "102": re.compile(r"(\d{4})(\d{2})(\d{2})"),
    "203": re.compile(r"(\d{4})(\d{2})(\d{2})\d{4}"),
}
_DATE_STRING_NAMES = ("DateTimeString", "DateString")

_HEADER_AGREEMENT = ("rsm:SupplyChainTradeTransaction", "ram:ApplicableHeaderTradeAgreement")
_HEADER_SETTLEMENT = ("rsm:SupplyChainTradeTransaction", "ram:ApplicableHeaderTradeSettlement")


class _Reader:
    """Reads one document in one syntax; `where` prefixes error messages (for example the line)."""

    def __init__(self, syntax: _Syntax, where: str = "") -> None:
        self.syntax = syntax
        self.where = where

    def at(self, where: str) -> _Reader:
        return _Reader(self.syntax, where)

    def _place(self, names: Iterable[str]) -> str:
        return self.where + "/".join(self.syntax.shown(name) for name in names)

    def invalid(self, names: Iterable[str], value: str, expected: str) -> ParseError:
        place = self._place(names)
        return ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"{place} holds {value[:40]!r}, which is not {expected}. "
            "Ask the supplier for a corrected document.",
            detail=place,
        )

    def missing(self, names: Iterable[str], what: str) -> ParseError:
        place = self._place(names)
        return ParseError(
            ParseErrorCode.INVALID_VALUE,
            f"{place} ({what}) is missing; EN 16931 requires it on every line. "
            "Ask the supplier for a corrected document.",
            detail=place,
        )

    def node(self, element: Element | None, *names: str) -> Element | None:
        for name in names:
            if element is None:
                return None
            element = element.find(self.syntax.tag(name))
        return element

    def all(self, element: Element | None, name: str) -> Iterator[Element]:
        if element is None:
            return iter(())
        return element.iterfind(self.syntax.tag(name))

    def text(self, element: Element | None, *names: str) -> str | None:
        found = self.node(element, *names)
        return _stripped(found)

    def decimal(self, element: Element | None, *names: str) -> Decimal | None:
        return self.number(self.text(element, *names), names)

    def number(self, raw: str | None, names: Iterable[str]) -> Decimal | None:
        if raw is None:
            return None
        if _DECIMAL.fullmatch(raw) is None:
            raise self.invalid(names, raw, "a decimal number")
        try:
            return Decimal(raw)
        except InvalidOperation:  # pragma: no cover - the pattern admits only valid numbers
            raise self.invalid(names, raw, "a decimal number") from None

    def required_decimal(self, element: Element | None, *names: str, what: str) -> Decimal:
        value = self.decimal(element, *names)
        if value is None:
            raise self.missing(names, what)
        return value

    def date(self, element: Element | None, *names: str) -> date | None:
        """The date in the udt/qdt DateTimeString or DateString child of the named element."""
        container = self.node(element, *names)
        if container is None:
            return None
        string = next(
            (child for child in container if child.tag.rpartition("}")[2] in _DATE_STRING_NAMES),
            None,
        )
        raw = _stripped(string)
        if string is None or raw is None:
            return None
        path = [*names, "udt:" + string.tag.rpartition("}")[2]]
        # Without a format attribute, 102 is the only one EN 16931 allows, so it is assumed.
        pattern = _DATE_FORMATS.get(string.get("format", "102").strip())
        match = pattern.fullmatch(raw) if pattern else None
        if match is None:
            raise self.invalid(path, raw, "a date in format 102 (CCYYMMDD)")
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            raise self.invalid(path, raw, "a valid calendar date") from None

    def indicator(self, element: Element | None, *names: str) -> bool | None:
        raw = self.text(element, *names, "udt:Indicator")
        if raw is None:
            return None
        if raw in ("true", "1"):
            return True
        if raw in ("false", "0"):
            return False
        raise self.invalid([*names, "udt:Indicator"], raw, "true or false")

    def code(self, element: Element | None, *names: str) -> str | None:
        # ISO codes (currency, country) are case-insensitive in practice; the model wants upper.
        raw = self.text(element, *names)
        return raw.upper() if raw is not None else None

    def joined(self, elements: Iterable[Element]) -> str | None:
        parts = [text for text in map(_stripped, elements) if text is not None]
        return "\n".join(parts) if parts else None


def _stripped(element: Element | None) -> str | None:
    if element is None or element.text is None:
        return None
    value = element.text.strip()
    return value or None


def _address(r: _Reader, element: Element | None) -> Address | None:
    if element is None:
        return None
    address = Address(
        street=r.text(element, "ram:LineOne"),
        additional_street=r.text(element, "ram:LineTwo"),
        city=r.text(element, "ram:CityName"),
        postal_code=r.text(element, "ram:PostcodeCode"),
        subdivision=r.text(element, "ram:CountrySubDivisionName"),
        country_code=r.code(element, "ram:CountryID"),
    )
    return None if address == Address() else address


def _vat_id(r: _Reader, party: Element) -> str | None:
    # schemeID VA is the VAT id (BT-31); FC is a national tax number (BT-32), not a VAT id.
    fallback = None
    for registration in r.all(party, "ram:SpecifiedTaxRegistration"):
        element = r.node(registration, "ram:ID")
        value = _stripped(element)
        if element is None or value is None:
            continue
        scheme = (element.get("schemeID") or "").strip().upper()
        if scheme == "VA":
            return value
        if not scheme and fallback is None:
            fallback = value
    return fallback


def _party(r: _Reader, party: Element | None) -> Party:
    if party is None:
        return Party()
    legal = r.node(party, "ram:SpecifiedLegalOrganization")
    return Party(
        # The trading name first, as the UBL reader does (cac:PartyName is BT-28, the trading
        # name; the registered name BT-27 is the fallback), so both syntaxes name a party alike.
        name=r.text(legal, "ram:TradingBusinessName") or r.text(party, "ram:Name"),
        vat_id=_vat_id(r, party),
        registration_id=r.text(legal, "ram:ID"),
        address=_address(r, r.node(party, "ram:PostalTradeAddress")),
        # The contact's e-mail (BT-43/BT-58), as in UBL; ram:URIUniversalCommunication is the
        # electronic address (BT-34/BT-49, UBL cbc:EndpointID), which is not a mailbox to write to.
        email=r.text(
            party, "ram:DefinedTradeContact", "ram:EmailURIUniversalCommunication", "ram:URIID"
        ),
    )


def _payment(r: _Reader, settlement: Element | None) -> PaymentDetails | None:
    means_list = list(r.all(settlement, "ram:SpecifiedTradeSettlementPaymentMeans"))
    # Several means may be offered; the first one that names an account is the one to pay.
    means = next(
        (m for m in means_list if r.node(m, "ram:PayeePartyCreditorFinancialAccount") is not None),
        means_list[0] if means_list else None,
    )
    account = r.node(means, "ram:PayeePartyCreditorFinancialAccount")
    terms = r.joined(
        description
        for t in r.all(settlement, "ram:SpecifiedTradePaymentTerms")
        for description in r.all(t, "ram:Description")
    )
    payment = PaymentDetails(
        means_code=r.text(means, "ram:TypeCode"),
        # BT-84 is an IBAN or, outside SEPA, a proprietary account number (one UBL cbc:ID).
        iban=r.text(account, "ram:IBANID") or r.text(account, "ram:ProprietaryID"),
        bic=r.text(means, "ram:PayeeSpecifiedCreditorFinancialInstitution", "ram:BICID"),
        account_name=r.text(account, "ram:AccountName"),
        payment_reference=r.text(settlement, "ram:PaymentReference"),
        terms=terms,
    )
    return None if payment == PaymentDetails() else payment


def _due_date(r: _Reader, settlement: Element | None) -> date | None:
    for terms in r.all(settlement, "ram:SpecifiedTradePaymentTerms"):
        due = r.at("ram:SpecifiedTradePaymentTerms/").date(terms, "ram:DueDateDateTime")
        if due is not None:
            return due
    return None


def _tax_point_date(r: _Reader, settlement: Element | None) -> date | None:
    # BT-7 sits on the VAT breakdown in CII (one date for the document, repeated per rate).
    for tax in r.all(settlement, "ram:ApplicableTradeTax"):
        point = r.at("ram:ApplicableTradeTax/").date(tax, "ram:TaxPointDate")
        if point is not None:
            return point
    return None


def _allowance_charge(r: _Reader, element: Element) -> AllowanceCharge:
    r = r.at("ram:SpecifiedTradeAllowanceCharge/")
    is_charge = r.indicator(element, "ram:ChargeIndicator")
    if is_charge is None:
        raise r.missing(["ram:ChargeIndicator"], "charge indicator")
    tax = r.node(element, "ram:CategoryTradeTax")
    return AllowanceCharge(
        is_charge=is_charge,
        amount=r.required_decimal(element, "ram:ActualAmount", what="allowance or charge amount"),
        reason=r.text(element, "ram:Reason"),
        reason_code=r.text(element, "ram:ReasonCode"),
        tax_category=r.text(tax, "ram:CategoryCode"),
        tax_rate=r.decimal(tax, "ram:RateApplicablePercent"),
    )


def _logistics_charge(r: _Reader, element: Element) -> AllowanceCharge:
    # ZUGFeRD 1 (and Factur-X EXTENDED) state freight as a logistics service charge; it counts in
    # the charge total like any other document-level charge.
    r = r.at("ram:SpecifiedLogisticsServiceCharge/")
    tax = r.node(element, "ram:AppliedTradeTax")
    return AllowanceCharge(
        is_charge=True,
        amount=r.required_decimal(element, "ram:AppliedAmount", what="charge amount"),
        reason=r.text(element, "ram:Description"),
        tax_category=r.text(tax, "ram:CategoryCode"),
        tax_rate=r.decimal(tax, "ram:RateApplicablePercent"),
    )


def _tax_subtotal(r: _Reader, element: Element) -> TaxSubtotal:
    r = r.at("ram:ApplicableTradeTax/")
    return TaxSubtotal(
        category=r.text(element, "ram:CategoryCode"),
        rate=r.decimal(element, "ram:RateApplicablePercent"),
        taxable_amount=r.required_decimal(element, "ram:BasisAmount", what="taxable amount"),
        tax_amount=r.required_decimal(element, "ram:CalculatedAmount", what="VAT amount"),
        exemption_reason=r.text(element, "ram:ExemptionReason")
        or r.text(element, "ram:ExemptionReasonCode"),
    )


def _tax_total(r: _Reader, summation: Element | None, currency: str | None) -> Decimal | None:
    # With a tax currency (BT-6) a second TaxTotalAmount states the VAT in it (BT-111); BT-110,
    # in the document currency, is the one whose currencyID is the invoice currency.
    totals = list(r.all(summation, "ram:TaxTotalAmount"))
    chosen = next((t for t in totals if currency and t.get("currencyID") == currency), None)
    if chosen is None and totals:
        chosen = totals[0]
    return r.number(_stripped(chosen), ["ram:TaxTotalAmount"])


def _totals(r: _Reader, settlement: Element | None, currency: str | None) -> DocumentTotals:
    name = "ram:SpecifiedTradeSettlementHeaderMonetarySummation"
    summation = r.node(settlement, name)
    r = r.at(r.syntax.shown(name) + "/")
    zero = Decimal(0)
    allowances = r.decimal(summation, "ram:AllowanceTotalAmount")
    charges = r.decimal(summation, "ram:ChargeTotalAmount")
    prepaid = r.decimal(summation, "ram:TotalPrepaidAmount")
    rounding = r.decimal(summation, "ram:RoundingAmount")
    return DocumentTotals(
        line_extension=r.decimal(summation, "ram:LineTotalAmount"),
        allowances=zero if allowances is None else allowances,
        charges=zero if charges is None else charges,
        tax_exclusive=r.decimal(summation, "ram:TaxBasisTotalAmount"),
        tax=_tax_total(r, summation, currency),
        tax_inclusive=r.decimal(summation, "ram:GrandTotalAmount"),
        prepaid=zero if prepaid is None else prepaid,
        rounding=zero if rounding is None else rounding,
        payable=r.decimal(summation, "ram:DuePayableAmount"),
    )


def _notes(r: _Reader, elements: Iterable[Element]) -> Iterator[str]:
    for note in elements:
        content = r.joined(r.all(note, "ram:Content"))
        if content is None:
            continue
        subject = r.text(note, "ram:SubjectCode")
        # UBL has no subject code (BT-21); the EN 16931 UBL binding (PEPPOL, XRechnung) writes it
        # as a "#CODE#" prefix of cbc:Note, so the same prefix here keeps both syntaxes equal.
        yield f"#{subject}#{content}" if subject else content


def _is_text_only(r: _Reader, element: Element) -> bool:
    """A ZUGFeRD 1 EXTENDED free-text line: a note with nothing billed (no quantity, no amount)."""
    return (
        r.node(element, "ram:SpecifiedLineTradeDelivery", "ram:BilledQuantity") is None
        and r.node(
            element,
            "ram:SpecifiedLineTradeSettlement",
            "ram:SpecifiedTradeSettlementLineMonetarySummation",
            "ram:LineTotalAmount",
        )
        is None
    )


def _line(syntax: _Syntax, element: Element, position: int) -> DocumentLine:
    r = _Reader(syntax)
    document = r.node(element, "ram:AssociatedDocumentLineDocument")
    line_id = r.text(document, "ram:LineID") or str(position)
    r = r.at(f"{syntax.shown('ram:IncludedSupplyChainTradeLineItem')} {line_id}: ")
    product = r.node(element, "ram:SpecifiedTradeProduct")
    agreement = r.node(element, "ram:SpecifiedLineTradeAgreement")
    delivery = r.node(element, "ram:SpecifiedLineTradeDelivery")
    settlement = r.node(element, "ram:SpecifiedLineTradeSettlement")
    name = r.text(product, "ram:Name")
    description = r.text(product, "ram:Description")
    price = r.node(agreement, "ram:NetPriceProductTradePrice")
    base_quantity = r.decimal(price, "ram:BasisQuantity")
    quantity_element = r.node(delivery, "ram:BilledQuantity")
    unit_code = quantity_element.get("unitCode") if quantity_element is not None else None
    tax = r.node(settlement, "ram:ApplicableTradeTax")
    quantity = r.required_decimal(
        element, "ram:SpecifiedLineTradeDelivery", "ram:BilledQuantity", what="quantity"
    )
    line_amount = r.required_decimal(
        element,
        "ram:SpecifiedLineTradeSettlement",
        "ram:SpecifiedTradeSettlementLineMonetarySummation",
        "ram:LineTotalAmount",
        what="net amount",
    )
    price_names = (
        "ram:SpecifiedLineTradeAgreement",
        "ram:NetPriceProductTradePrice",
        "ram:ChargeAmount",
    )
    unit_price = r.decimal(element, *price_names)
    if unit_price is None:
        # ZUGFeRD 1 BASIC lines state no price at all; the one the amount implies is the price
        # billed. EN 16931 (CII D16B) requires BT-146, so there its absence stays an error.
        if not syntax.legacy or quantity == 0:
            raise r.missing(price_names, "net unit price")
        unit_price = line_amount / quantity
    # BG-27/BG-28; the price-level AppliedTradeAllowanceCharge (BT-147) is already in BT-146.
    adjustments = [
        _allowance_charge(r, e) for e in r.all(settlement, "ram:SpecifiedTradeAllowanceCharge")
    ]
    return DocumentLine(
        line_id=line_id,
        item_id=r.text(product, "ram:SellerAssignedID"),
        buyer_item_id=r.text(product, "ram:BuyerAssignedID"),
        description=name or description,
        quantity=quantity,
        unit_code=unit_code.strip() if unit_code and unit_code.strip() else "C62",
        unit_price=unit_price,
        price_base_quantity=Decimal(1) if base_quantity is None else base_quantity,
        tax_category=r.text(tax, "ram:CategoryCode"),
        tax_rate=r.decimal(tax, "ram:RateApplicablePercent"),
        line_amount=line_amount,
        allowances=sum((a.amount for a in adjustments if not a.is_charge), Decimal(0)),
        charges=sum((a.amount for a in adjustments if a.is_charge), Decimal(0)),
        po_line_ref=r.text(agreement, "ram:BuyerOrderReferencedDocument", "ram:LineID"),
        kind=line_kind(name, description),
        note="\n".join(_notes(r, r.all(document, "ram:IncludedNote"))) or None,
    )


def read_cii(root: Element) -> Invoice | CreditNote | Claim:
    """Read a parsed CII CrossIndustryInvoice (or ZUGFeRD 1.0) element into a canonical document."""
    try:
        return _read(root)
    except ValidationError as exc:
        # A value the canonical model refuses (a currency "EURO", a country "Germany").
        raise _invalid_model(exc) from None


def _read(root: Element) -> Invoice | CreditNote | Claim:
    syntax = _SYNTAXES.get(root.tag)
    if syntax is None:
        raise ParseError(
            ParseErrorCode.UNSUPPORTED_DOCUMENT,
            f"The XML root is {root.tag}, not a UN/CEFACT CrossIndustryInvoice; only invoices "
            "and credit notes can be read.",
            detail=root.tag,
        )
    r = _Reader(syntax)
    header = r.node(root, "rsm:ExchangedDocument")
    transaction = r.node(root, "rsm:SupplyChainTradeTransaction")
    agreement = r.node(root, *_HEADER_AGREEMENT)
    settlement = r.node(root, *_HEADER_SETTLEMENT)
    type_code = r.text(header, "ram:TypeCode")
    currency = r.code(settlement, "ram:InvoiceCurrencyCode")
    lines = [
        _line(syntax, element, position)
        for position, element in enumerate(
            r.all(transaction, "ram:IncludedSupplyChainTradeLineItem"), start=1
        )
        # Free-text lines bill nothing; only ZUGFeRD 1 allows them (D16B lines need an amount).
        if not (syntax.legacy and _is_text_only(r, element))
    ]
    allowance_charges = [
        _allowance_charge(r, e) for e in r.all(settlement, "ram:SpecifiedTradeAllowanceCharge")
    ] + [_logistics_charge(r, e) for e in r.all(settlement, "ram:SpecifiedLogisticsServiceCharge")]
    # Header ApplicableTradeTax entries without a calculated amount are not VAT breakdown rows
    # (Factur-X MINIMUM, for instance, has none at all).
    tax_breakdown = [
        _tax_subtotal(r, e)
        for e in r.all(settlement, "ram:ApplicableTradeTax")
        if r.node(e, "ram:CalculatedAmount") is not None
    ]
    fields: dict[str, Any] = {
        "number": r.text(header, "ram:ID"),
        "issue_date": r.at("rsm:ExchangedDocument/").date(header, "ram:IssueDateTime"),
        "due_date": _due_date(r, settlement),
        "tax_point_date": _tax_point_date(r, settlement),
        "currency": currency,
        "supplier": _party(r, r.node(agreement, "ram:SellerTradeParty")),
        "buyer": _party(r, r.node(agreement, "ram:BuyerTradeParty")),
        "po_reference": r.text(
            agreement, "ram:BuyerOrderReferencedDocument", "ram:IssuerAssignedID"
        ),
        "contract_reference": r.text(
            agreement, "ram:ContractReferencedDocument", "ram:IssuerAssignedID"
        ),
        "buyer_reference": r.text(agreement, "ram:BuyerReference"),
        "lines": lines,
        "allowance_charges": allowance_charges,
        "tax_breakdown": tax_breakdown,
        "totals": _totals(r, settlement, currency),
        "payment": _payment(r, settlement),
        "notes": list(_notes(r, r.all(header, "ram:IncludedNote"))),
        "source_format": SourceFormat.CII,
    }
    if type_code in CREDIT_NOTE_TYPE_CODES:
        billing = r.text(settlement, "ram:InvoiceReferencedDocument", "ram:IssuerAssignedID")
        return CreditNote(billing_reference=billing, **fields)
    if type_code in CLAIM_TYPE_CODES:
        billing = r.text(settlement, "ram:InvoiceReferencedDocument", "ram:IssuerAssignedID")
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
