"""The canonical exception reasons (DESIGN §4): one taxonomy for rules, models, UI, API, audit."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReasonCode(StrEnum):
    """Stable, API-visible codes for why a document cannot be posted as it is."""

    PRICE_VARIANCE = "PRICE_VARIANCE"
    QTY_OVER_ORDERED = "QTY_OVER_ORDERED"
    QTY_OVER_RECEIVED = "QTY_OVER_RECEIVED"
    NO_RECEIPT = "NO_RECEIPT"
    AMOUNT_OVER_PO = "AMOUNT_OVER_PO"
    TAX_MISMATCH = "TAX_MISMATCH"
    FREIGHT_UNPLANNED = "FREIGHT_UNPLANNED"
    UOM_MISMATCH = "UOM_MISMATCH"
    DUPLICATE = "DUPLICATE"
    NO_PO = "NO_PO"
    INVALID_PO = "INVALID_PO"
    VENDOR_UNKNOWN = "VENDOR_UNKNOWN"
    VENDOR_BLOCKED = "VENDOR_BLOCKED"
    BANK_DETAILS_CHANGED = "BANK_DETAILS_CHANGED"
    NOT_BALANCED = "NOT_BALANCED"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    CREDIT_UNMATCHED = "CREDIT_UNMATCHED"
    MISSING_DATA = "MISSING_DATA"
    PRICE_ANOMALY = "PRICE_ANOMALY"


@dataclass(frozen=True)
class ReasonInfo:
    """What a reason means and how it maps onto the vocabularies of ERPs and e-invoicing."""

    meaning: str
    sap_tolerance_key: str | None
    oracle_hold: str | None
    uncl4343_status: str  # invoice-response status code (UNCL4343 subset used by PEPPOL)
    blocking: bool


# SAP keys from tolerance-group customising, Oracle Payables hold names, UNCL4343 response codes:
# UQ = under query, RE = rejected, CA = conditionally accepted.
REASONS: dict[ReasonCode, ReasonInfo] = {
    ReasonCode.PRICE_VARIANCE: ReasonInfo(
        "Unit price differs from the PO price", "PP", "Price", "UQ", True
    ),
    ReasonCode.QTY_OVER_ORDERED: ReasonInfo(
        "Billed more than ordered", "DQ", "Qty Ord", "UQ", True
    ),
    ReasonCode.QTY_OVER_RECEIVED: ReasonInfo(
        "Billed more than received", "DQ", "Qty Rec", "UQ", True
    ),
    ReasonCode.NO_RECEIPT: ReasonInfo(
        "Nothing received yet for a 3-way line", "DW", "Qty Rec", "UQ", True
    ),
    ReasonCode.AMOUNT_OVER_PO: ReasonInfo(
        "Amount exceeds the PO's remaining value, or the PO is closed", "AP", "Amount", "UQ", True
    ),
    ReasonCode.TAX_MISMATCH: ReasonInfo(
        "Tax rate or amount differs from expected", "BD", "Tax Variance", "UQ", True
    ),
    ReasonCode.FREIGHT_UNPLANNED: ReasonInfo(
        "Freight or surcharge not on the PO", "AN", "Amount", "UQ", True
    ),
    ReasonCode.UOM_MISMATCH: ReasonInfo(
        "Unit of measure differs from the PO", "BW", "Price", "UQ", True
    ),
    ReasonCode.DUPLICATE: ReasonInfo(
        "The same invoice was seen before", None, "Duplicate Invoice", "RE", True
    ),
    ReasonCode.NO_PO: ReasonInfo("No PO reference on the invoice", "AN", "No PO", "UQ", True),
    ReasonCode.INVALID_PO: ReasonInfo(
        "PO reference unknown or for another supplier", None, "Invalid PO", "UQ", True
    ),
    ReasonCode.VENDOR_UNKNOWN: ReasonInfo(
        "Supplier not in master data", None, "Supplier", "UQ", True
    ),
    ReasonCode.VENDOR_BLOCKED: ReasonInfo(
        "Supplier is blocked for payment", None, "Vendor", "RE", True
    ),
    ReasonCode.BANK_DETAILS_CHANGED: ReasonInfo(
        "IBAN differs from master data", None, "Vendor", "UQ", True
    ),
    ReasonCode.NOT_BALANCED: ReasonInfo(
        "Lines do not sum to the totals", None, "Dist Variance", "RE", True
    ),
    ReasonCode.CURRENCY_MISMATCH: ReasonInfo(
        "Invoice currency differs from the PO", None, "Currency Difference", "UQ", True
    ),
    ReasonCode.CREDIT_UNMATCHED: ReasonInfo(
        "Credit with no matching invoice, or over-credit", None, "Invalid Invoice", "UQ", True
    ),
    ReasonCode.MISSING_DATA: ReasonInfo(
        "A required field is missing or unreadable", None, "Invalid Invoice", "UQ", True
    ),
    ReasonCode.PRICE_ANOMALY: ReasonInfo(
        "Amount unusual for this supplier or item, or split below a limit",
        None,
        "Amount",
        "UQ",
        False,
    ),
}
