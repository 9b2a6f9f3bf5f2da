"""Canonical document types: what every parser produces and every later step consumes.

Amounts are `Decimal`, never float. Line and header amounts are in the document's currency
(`SupplierDocument.currency`); `Money` pairs an amount with its ISO 4217 code where the
currency travels on its own. Fields a real document may lack are optional here: a missing
field becomes a `MISSING_DATA` finding that a clerk can correct, not a parse failure.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])]
# UN/ECE Recommendation 20 unit codes (C62 = one, EA = each, KGM = kilogram, …).
UnitCode = Annotated[str, Field(min_length=1, max_length=8, examples=["C62"])]


# No amount, quantity, price or rate on a real invoice comes near this; larger numbers (and NaN
# or infinity) are hostile or broken input, and would overflow exact arithmetic further on.
DECIMAL_LIMIT = Decimal("1e15")


class Canonical(BaseModel):
    """Base for canonical types: strict about unknown fields, money serialised as strings."""

    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")

    @field_validator("*", mode="after")
    @classmethod
    def _bounded_decimals(cls, value: object) -> object:
        if isinstance(value, Decimal) and (not value.is_finite() or abs(value) >= DECIMAL_LIMIT):
            raise ValueError(f"a number must be finite and below {DECIMAL_LIMIT:,.0f} in size")
        return value


class Money(Canonical):
    """An amount with its ISO 4217 currency."""

    amount: Decimal
    currency: CurrencyCode

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, value: object) -> object:
        if isinstance(value, float):
            raise ValueError("money must not be a float; pass a Decimal, int or string")
        return value

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


class Address(Canonical):
    """Postal address (EN 16931 BG-5/BG-8)."""

    street: str | None = None
    additional_street: str | None = None
    city: str | None = None
    postal_code: str | None = None
    subdivision: str | None = None
    country_code: str | None = Field(default=None, pattern=r"^[A-Z]{2}$")


class Party(Canonical):
    """A seller, buyer or payee."""

    name: str | None = None
    vat_id: str | None = None
    registration_id: str | None = None
    iban: str | None = None
    address: Address | None = None
    email: str | None = None


class PaymentDetails(Canonical):
    """How and where the buyer is asked to pay (EN 16931 BG-16)."""

    means_code: str | None = None  # UNCL4461, 58 = SEPA credit transfer
    iban: str | None = None
    bic: str | None = None
    account_name: str | None = None
    payment_reference: str | None = None
    terms: str | None = None


class LineKind(StrEnum):
    """What a document line bills for; freight and surcharges are matched differently."""

    GOODS = "goods"
    SERVICE = "service"
    FREIGHT = "freight"
    SURCHARGE = "surcharge"
    DISCOUNT = "discount"


class DocumentLine(Canonical):
    """One invoice, credit-note or claim line (EN 16931 BG-25)."""

    line_id: str
    item_id: str | None = None  # seller's item id
    buyer_item_id: str | None = None
    description: str | None = None
    quantity: Decimal
    unit_code: UnitCode = "C62"
    unit_price: Decimal  # net price per `price_base_quantity` units
    price_base_quantity: Decimal = Decimal(1)
    tax_category: str | None = None  # UNCL5305: S, Z, E, AE, K, G, O, L, M
    tax_rate: Decimal | None = None  # percent, e.g. 19
    line_amount: Decimal  # net, after line allowances and charges
    allowances: Decimal = Decimal(0)  # sum of BG-27 line allowances (BT-136), positive
    charges: Decimal = Decimal(0)  # sum of BG-28 line charges (BT-141), positive
    po_line_ref: str | None = None
    kind: LineKind = LineKind.GOODS
    note: str | None = None


class AllowanceCharge(Canonical):
    """A document-level allowance (discount) or charge (freight, surcharge)."""

    is_charge: bool
    amount: Decimal
    reason: str | None = None
    reason_code: str | None = None  # UNCL5189 (allowances) / UNCL7161 (charges, FC = freight)
    tax_category: str | None = None
    tax_rate: Decimal | None = None


class TaxSubtotal(Canonical):
    """One VAT breakdown row (EN 16931 BG-23)."""

    category: str | None = None
    rate: Decimal | None = None
    taxable_amount: Decimal
    tax_amount: Decimal
    exemption_reason: str | None = None


class DocumentTotals(Canonical):
    """Header totals (EN 16931 BG-22) in the document currency."""

    line_extension: Decimal | None = None  # BT-106, sum of line net amounts
    allowances: Decimal = Decimal(0)  # BT-107
    charges: Decimal = Decimal(0)  # BT-108
    tax_exclusive: Decimal | None = None  # BT-109, net total
    tax: Decimal | None = None  # BT-110
    tax_inclusive: Decimal | None = None  # BT-112, gross total
    prepaid: Decimal = Decimal(0)  # BT-113
    rounding: Decimal = Decimal(0)  # BT-114
    payable: Decimal | None = None  # BT-115


class SourceFormat(StrEnum):
    """The syntax a document was read from."""

    UBL = "ubl"
    CII = "cii"
    FACTURX = "facturx"
    PDF = "pdf"
    CSV = "csv"
    JSON = "json"


class SupplierDocument(Canonical):
    """Fields shared by invoices, credit notes and claims."""

    kind: str
    number: str | None = None
    issue_date: date | None = None
    due_date: date | None = None
    tax_point_date: date | None = None
    currency: CurrencyCode | None = None
    supplier: Party = Field(default_factory=Party)
    buyer: Party = Field(default_factory=Party)
    po_reference: str | None = None
    contract_reference: str | None = None
    buyer_reference: str | None = None
    lines: list[DocumentLine] = Field(default_factory=list)
    allowance_charges: list[AllowanceCharge] = Field(default_factory=list)
    tax_breakdown: list[TaxSubtotal] = Field(default_factory=list)
    totals: DocumentTotals = Field(default_factory=DocumentTotals)
    payment: PaymentDetails | None = None
    notes: list[str] = Field(default_factory=list)
    source_format: SourceFormat | None = None

    def money(self, amount: Decimal | None) -> Money | None:
        """Pair an amount of this document with its currency."""
        if amount is None or self.currency is None:
            return None
        return Money(amount=amount, currency=self.currency)

    @property
    def gross(self) -> Decimal | None:
        """The amount the supplier asks for before prepayments (BT-112), else the payable."""
        t = self.totals
        return t.tax_inclusive if t.tax_inclusive is not None else t.payable

    @property
    def bank_iban(self) -> str | None:
        """The IBAN the supplier wants to be paid to, from payment details or the party."""
        if self.payment and self.payment.iban:
            return self.payment.iban
        return self.supplier.iban


class Invoice(SupplierDocument):
    """A commercial invoice (UNCL1001 380 and its kin)."""

    kind: Literal["invoice"] = "invoice"


class CreditNote(SupplierDocument):
    """A credit note (UNCL1001 381); amounts are positive, the kind says they are credits."""

    kind: Literal["credit_note"] = "credit_note"
    billing_reference: str | None = None  # the invoice number being credited


class Claim(SupplierDocument):
    """A supplier claim (a debit request: price protection, returns, penalties)."""

    kind: Literal["claim"] = "claim"
    billing_reference: str | None = None
    claim_reason: str | None = None


AnySupplierDocument = Annotated[Invoice | CreditNote | Claim, Field(discriminator="kind")]


class PurchaseOrderLine(Canonical):
    """One ordered item or planned charge."""

    line_no: str
    item_id: str | None = None
    description: str | None = None
    category: str | None = None  # item category, selects tolerance overrides
    quantity: Decimal
    unit_code: UnitCode = "C62"
    unit_price: Decimal
    price_base_quantity: Decimal = Decimal(1)
    tax_rate: Decimal | None = None
    kind: LineKind = LineKind.GOODS
    receipt_required: bool = True  # 3-way (True) or 2-way (False)

    @property
    def amount(self) -> Decimal:
        """Ordered net value of this line."""
        return self.quantity * self.unit_price / self.price_base_quantity


class PurchaseOrder(Canonical):
    """A purchase order as synced from the ERP or loaded from files."""

    number: str
    supplier_ref: str  # supplier's master-data key
    company: str | None = None
    order_date: date | None = None
    currency: CurrencyCode
    status: Literal["open", "closed", "cancelled"] = "open"
    lines: list[PurchaseOrderLine] = Field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        """Total ordered net value."""
        return sum((line.amount for line in self.lines), Decimal(0))


class GoodsReceiptLine(Canonical):
    """Quantity received (positive) or returned (negative) against one PO line."""

    po_line_no: str
    quantity: Decimal
    unit_code: UnitCode = "C62"


class GoodsReceipt(Canonical):
    """A goods receipt (or return) against one PO."""

    number: str
    po_number: str
    receipt_date: date | None = None
    lines: list[GoodsReceiptLine] = Field(default_factory=list)
