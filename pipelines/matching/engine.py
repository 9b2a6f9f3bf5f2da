"""2-way and 3-way matching: header and line checks that turn a document into findings.

Choices, so that clerks and auditors can predict the outcome:

- Tolerances. A tolerance allows a variance up to the tighter of its percent (of the expected
  value) and its absolute amount; None in a dimension is unlimited there, 0 allows nothing. A
  variance *equal* to the allowance is inside; a cent (or a unit) more is outside. Every
  tolerance-governed finding records the tolerance it used, with `allowed` filled in and its
  `source` (default, category, supplier). Findings report `variance = actual - expected`.
- Direction. Only unfavourable variances are exceptions for price, quantity, PO amount and
  freight (billed more, higher price); a cheaper invoice is not held. Balance (EN 16931 BR-CO)
  and tax checks are symmetric: totals that do not add up, or VAT at the wrong rate, are wrong
  whichever way they miss (too little VAT costs the buyer its input-tax deduction).
- Header. One `MISSING_DATA` per missing field, with the EN 16931 rule that requires it: number
  (BR-02), issue date (BR-03), currency (BR-05), supplier name (BR-06), gross total (BR-13),
  at least one line (BR-16). `BANK_DETAILS_CHANGED` when the document's IBAN (normalised) is not one
  of the supplier's, and the supplier has any on file (with none on file there is nothing it
  could have changed from; resolution and onboarding handle that). `INVALID_PO` when the quoted
  PO is unknown or belongs to another supplier; then no PO checks run. `CURRENCY_MISMATCH`
  when document and PO currency differ; then no amount is compared with the PO (price, PO
  amount, freight), quantities still are. A PO that is closed or cancelled is
  `AMOUNT_OVER_PO` whatever the amounts.
- Balance. `NOT_BALANCED` per EN 16931 rule that fails, with its rule id: BR-CO-10 (lines sum
  to BT-106), BR-CO-11/12 (document allowances/charges sum to BT-107/108), BR-CO-13 (net =
  lines - allowances + charges), BR-CO-15 (gross = net + tax), BR-CO-16 (payable = gross -
  prepaid + rounding); each within the ROUNDING tolerance. Only totals the document states
  are checked (a missing total is `MISSING_DATA` or simply absent, not unbalanced). Each line
  is checked too, rule id BT-131 with the line id: its net amount must equal quantity x net
  price / price base quantity (BT-149) - line allowances (BG-27) + line charges (BG-28), the
  expected value rounded half up to cents as EN 16931 line amounts are, within the same
  ROUNDING tolerance; one finding per wrong line.
- Tax (`TAX_MISMATCH`, TAX tolerance). First BR-CO-14: the tax total must equal the sum of the
  VAT breakdown. When it does (or one of them is absent), the declared tax is compared with
  the tax the lines imply: net amounts (lines, document charges minus allowances) summed per
  rate, each sum times its rate rounded to cents (as EN 16931 BR-CO-17 rounds per category).
  Only when some line or charge has no rate is each breakdown row checked on its own instead
  (taxable x rate = tax). At most one of these fires for one wrong number, so a single error
  is a single finding. A line whose rate differs from its PO line's rate is a line-level
  `TAX_MISMATCH` when the tax on that line differs by more than the tolerance.
- Pairing. Lines are paired with PO lines by the PO line reference, then the item id (seller's
  or buyer's), then the description (rapidfuzz token_set_ratio >= 85 among PO lines not yet
  paired). Several invoice lines may bill one PO line; quantity checks use their sum plus what
  earlier documents billed (`already_invoiced_qty`).
- A goods line that pairs with no PO line and whose words say freight or a surcharge
  (`classify_line_kind`) is treated as a charge line. Any other unpaired goods or service line is
  billed without an order: `QTY_OVER_ORDERED` with expected 0 in the invoice's unit. That code
  (SAP DQ, Oracle "Qty Ord") is what a clerk would look at: more of something was billed than
  the PO orders, here none; `AMOUNT_OVER_PO` is a header control and would hide which line.
- Units convert silently when a conversion is known (same unit, the standard table in `uom`,
  or an item-specific factor from the context), and every comparison is made in the PO line's
  unit; `LineMatch.uom_factor` records the factor when it is not 1. An unknown conversion is
  `UOM_MISMATCH` and that line's price and quantity checks are skipped (they would be
  meaningless). A receipt line in a unit that does not convert is also `UOM_MISMATCH`, and the
  PO line's received-quantity checks are skipped rather than guessing.
- Price. `PRICE_VARIANCE` compares value: expected = PO price per PO unit x invoiced quantity,
  actual = invoice price per PO unit x the same quantity; the tolerance is money.
- Quantity. Billed = this document + earlier documents, in the PO unit, compared exactly. Over
  ordered beyond QTY_ORDERED is `QTY_OVER_ORDERED`. For lines that need a receipt (3-way),
  received = sum of all receipt lines for the PO line (partial receipts add up, returns are
  negative); received <= 0 is `NO_RECEIPT` (a waiting state; the case re-matches when the
  receipt arrives), else billed over received beyond QTY_RECEIVED is `QTY_OVER_RECEIVED`.
  Lines with `receipt_required=False` are matched 2-way. `match_type` is 3-way when any paired
  line needed a receipt.
- Freight and surcharges (lines of kind FREIGHT/SURCHARGE, reclassified goods lines, and
  document-level charges, `AllowanceCharge.is_charge`) are summed and compared with the
  planned FREIGHT/SURCHARGE lines of the PO: more than planned beyond the FREIGHT tolerance is
  one `FREIGHT_UNPLANNED` for the document.
- `AMOUNT_OVER_PO` compares the document's net total (BT-109, or lines - allowances + charges
  when absent) plus `already_invoiced_amount` with the PO value including planned charges.
- Duplicates (`find_exact_duplicates`): same supplier, kind, normalised number and gross, issue
  dates within the window, never the document itself. A duplicate's checks that count earlier
  billing on the PO are made as if the original did not exist: its over-billing is the same
  fact as the duplicate, not a second one.
- Credit notes and claims are checked against the invoice they name (`CREDIT_UNMATCHED` when
  the reference is missing or names no earlier invoice of the supplier; for credit notes also
  when the credit notes against that invoice, earlier ones included, exceed its gross). A claim
  asks for more money, not less, so it never counts as a credit. Neither is matched against PO
  quantities, and `match_type` is "none".
- Money is compared at 2 decimals (ROUND_HALF_UP); quantities exactly.
"""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Literal

from rapidfuzz import fuzz

from pipelines.canonical import (
    Claim,
    CreditNote,
    DocumentLine,
    LineKind,
    PurchaseOrderLine,
    SupplierDocument,
)
from pipelines.findings import AppliedTolerance, Finding, finding
from pipelines.matching.context import (
    LineMatch,
    MatchContext,
    MatchResult,
    ToleranceCheck,
    ToleranceLookup,
)
from pipelines.matching.duplicates import find_exact_duplicates
from pipelines.matching.uom import (
    conversion_ratio,
    convert_quantity,
    convert_unit_price,
)
from pipelines.normalise import normalise_iban, normalise_invoice_number
from pipelines.reasons import ReasonCode as R

CENT = Decimal("0.01")
FUZZY_MIN = 85.0
CHARGE_KINDS = {LineKind.FREIGHT, LineKind.SURCHARGE}
PAIRED_KINDS = {LineKind.GOODS, LineKind.SERVICE}
# UNCL5305 categories that carry no VAT, so a missing rate on them means 0 %.
_ZERO_RATED = {"E", "AE", "K", "G", "O", "Z"}

# Whole words only: "port" inside "support" or "report" is not postage, and "fuel filter" is
# goods. Words that only sometimes mean freight ("port", "delivery") count only in a phrase.
_FREIGHT = re.compile(
    r"\b(?:freight|shipping|shipment|carriage|postage|porto|fracht\w*|versand\w*"
    r"|transport\w*|spedition\w*|lieferkosten|livraison|exp[ée]dition"
    r"|frais\s+de\s+(?:port|transport|livraison)|franco\s+de\s+port|port\s+(?:et|&)\s+emballage"
    r"|port\s+(?:pay[ée]|d[uû])|delivery\s+(?:charges?|fees?|costs?))\b"
    r"|^\s*port\b",
    re.IGNORECASE,
)
_SURCHARGE = re.compile(
    r"\b(?:\w*surcharge|\w*zuschlag\w*|supplément|maut\w*|toll\s+fees?"
    r"|(?:fuel|energy|diesel)\s+(?:charges?|levy|levies)|handling\s+(?:charges?|fees?))\b",
    re.IGNORECASE,
)


def money(value: Decimal) -> Decimal:
    """Round to cents, half up."""
    # Wide enough for a product of two bounded canonical numbers (each below 1e15), which the
    # default 28-digit context cannot quantize to cents.
    with localcontext(prec=60):
        return value.quantize(CENT, rounding=ROUND_HALF_UP)


def classify_line_kind(description: str | None) -> LineKind:
    """FREIGHT or SURCHARGE when a line's words say so (EN, DE, FR), else GOODS."""
    if not description:
        return LineKind.GOODS
    if _FREIGHT.search(description):
        return LineKind.FREIGHT
    if _SURCHARGE.search(description):
        return LineKind.SURCHARGE
    return LineKind.GOODS


def _over(
    expected: Decimal, actual: Decimal, tol: AppliedTolerance
) -> tuple[bool, AppliedTolerance]:
    """Whether actual exceeds expected by more than the tolerance allows."""
    resolved = tol.resolved(expected)
    return resolved.allowed is not None and actual - expected > resolved.allowed, resolved


def _off(
    expected: Decimal, actual: Decimal, tol: AppliedTolerance
) -> tuple[bool, AppliedTolerance]:
    """Whether actual misses expected, either way, by more than the tolerance allows."""
    resolved = tol.resolved(expected)
    return resolved.allowed is not None and abs(actual - expected) > resolved.allowed, resolved


def _per_unit(price: Decimal, base: Decimal) -> Decimal:
    # A base quantity of 0 is a reader's placeholder, not a price for nothing.
    return price / base if base > 0 else price


def _rate(rate: Decimal | None, category: str | None) -> Decimal | None:
    if rate is not None:
        return rate
    if category and category.upper() in _ZERO_RATED:
        return Decimal(0)
    return None


class _Matcher:
    def __init__(self, doc: SupplierDocument, ctx: MatchContext, tolerances: ToleranceLookup):
        self.doc, self.ctx, self.tolerances = doc, ctx, tolerances
        self.supplier_ref = ctx.supplier.ref if ctx.supplier else None
        self.currency = doc.currency or ""
        self.findings: list[Finding] = []
        self.lines: list[LineMatch] = []

    def tol(self, check: ToleranceCheck, category: str | None = None) -> AppliedTolerance:
        return self.tolerances(check, self.supplier_ref, category)

    def add(self, code: R, message: str, **kwargs: object) -> None:
        self.findings.append(finding(code, message, **kwargs))

    def money_finding(
        self,
        code: R,
        message: str,
        expected: Decimal,
        actual: Decimal,
        tolerance: AppliedTolerance,
        **kwargs: object,
    ) -> None:
        self.add(
            code,
            message,
            expected=expected,
            actual=actual,
            variance=actual - expected,
            unit=self.currency,
            tolerance=tolerance,
            **kwargs,
        )

    # -- header -------------------------------------------------------------------------

    def missing_data(self) -> None:
        doc = self.doc
        # field, label, value, the EN 16931 rule that requires it
        required: list[tuple[str, str, object, str]] = [
            ("number", "invoice number", doc.number, "BR-02"),
            ("issue_date", "issue date", doc.issue_date, "BR-03"),
            ("currency", "currency", doc.currency, "BR-05"),
            ("supplier_name", "supplier name", doc.supplier.name, "BR-06"),
            ("gross_total", "gross total", doc.gross, "BR-13"),
        ]
        for name, label, value, rule in required:
            if value is None or (isinstance(value, str) and not value.strip()):
                self.add(
                    R.MISSING_DATA,
                    f"The {label} is missing or unreadable ({rule}).",
                    details={"field": name},
                    rule_id=rule,
                )
        if not doc.lines:
            self.add(
                R.MISSING_DATA,
                "The document has no lines (BR-16).",
                details={"field": "lines"},
                rule_id="BR-16",
            )

    def vendor(self) -> None:
        supplier = self.ctx.supplier
        if supplier is None:
            name = self.doc.supplier.name or "the sender"
            self.add(
                R.VENDOR_UNKNOWN,
                f"{name} is not a supplier in master data.",
                details={
                    "name": self.doc.supplier.name or "",
                    "vat_id": self.doc.supplier.vat_id or "",
                },
            )
            return
        if supplier.blocked:
            self.add(R.VENDOR_BLOCKED, f"Supplier {supplier.name} is blocked for payment.")
        iban = self.doc.bank_iban
        known = {normalise_iban(i) for i in supplier.ibans}
        if iban and known and normalise_iban(iban) not in known:
            on_file = ", ".join(sorted(known))
            self.add(
                R.BANK_DETAILS_CHANGED,
                f"The document asks for payment to {normalise_iban(iban)}, which is not a known "
                f"account of {supplier.name} ({on_file}). Confirm with the supplier by phone "
                "before anyone signs.",
                details={"iban": normalise_iban(iban), "known": on_file},
            )

    def balance(self) -> None:
        tol = self.tol(ToleranceCheck.ROUNDING)
        for rule, label, expected, actual in self.totals_checks():
            if expected is None or actual is None:
                continue
            off, resolved = _off(money(expected), money(actual), tol)
            if off:
                self.money_finding(
                    R.NOT_BALANCED,
                    f"{label}: {money(actual)} stated, {money(expected)} by the lines and totals.",
                    money(expected),
                    money(actual),
                    resolved,
                    rule_id=rule,
                )
        for line, expected in self.line_checks():
            off, resolved = _off(money(expected), money(line.line_amount), tol)
            if off:
                self.money_finding(
                    R.NOT_BALANCED,
                    f"Line {line.line_id}: net amount {money(line.line_amount)} stated, "
                    f"{money(expected)} by quantity x price - allowances + charges.",
                    money(expected),
                    money(line.line_amount),
                    resolved,
                    rule_id="BT-131",
                    line_id=line.line_id,
                )

    def line_checks(self) -> list[tuple[DocumentLine, Decimal]]:
        """(line, expected BT-131) for each line: quantity x net price - allowances + charges."""
        return [
            (
                line,
                line.quantity * _per_unit(line.unit_price, line.price_base_quantity)
                - line.allowances
                + line.charges,
            )
            for line in self.doc.lines
        ]

    def totals_checks(self) -> list[tuple[str, str, Decimal | None, Decimal | None]]:
        """(rule id, label, expected, stated) for each EN 16931 total the document states."""
        doc, t = self.doc, self.doc.totals
        line_sum = sum((line.line_amount for line in doc.lines), Decimal(0))
        allowances = [ac.amount for ac in doc.allowance_charges if not ac.is_charge]
        charges = [ac.amount for ac in doc.allowance_charges if ac.is_charge]
        checks: list[tuple[str, str, Decimal | None, Decimal | None]] = []
        if doc.lines:
            checks.append(("BR-CO-10", "Sum of line amounts", line_sum, t.line_extension))
        if allowances or t.allowances:
            checks.append(
                ("BR-CO-11", "Sum of allowances", sum(allowances, Decimal(0)), t.allowances)
            )
        if charges or t.charges:
            checks.append(("BR-CO-12", "Sum of charges", sum(charges, Decimal(0)), t.charges))
        if t.line_extension is not None:
            checks.append(
                (
                    "BR-CO-13",
                    "Net total",
                    t.line_extension - t.allowances + t.charges,
                    t.tax_exclusive,
                )
            )
        if t.tax_exclusive is not None:
            checks.append(
                ("BR-CO-15", "Gross total", t.tax_exclusive + (t.tax or 0), t.tax_inclusive)
            )
        if t.tax_inclusive is not None:
            checks.append(
                ("BR-CO-16", "Amount due", t.tax_inclusive - t.prepaid + t.rounding, t.payable)
            )
        return checks

    def taxable_by_rate(self) -> dict[Decimal, Decimal] | None:
        """Net amount per VAT rate from lines and document charges; None if a rate is unknown."""
        bases: dict[Decimal, Decimal] = defaultdict(Decimal)
        for line in self.doc.lines:
            rate = _rate(line.tax_rate, line.tax_category)
            if rate is None:
                return None
            bases[rate] += line.line_amount
        for ac in self.doc.allowance_charges:
            rate = _rate(ac.tax_rate, ac.tax_category)
            if rate is None:
                return None
            bases[rate] += ac.amount if ac.is_charge else -ac.amount
        return dict(bases)

    def tax(self) -> None:
        doc, tol = self.doc, self.tol(ToleranceCheck.TAX)
        declared = doc.totals.tax
        if doc.tax_breakdown:
            breakdown = money(sum((s.tax_amount for s in doc.tax_breakdown), Decimal(0)))
            if declared is None:
                declared = breakdown
            else:
                off, resolved = _off(breakdown, money(declared), tol)
                if off:
                    self.money_finding(
                        R.TAX_MISMATCH,
                        f"The tax total {money(declared)} is not the sum of the VAT breakdown "
                        f"({breakdown}).",
                        breakdown,
                        money(declared),
                        resolved,
                        rule_id="BR-CO-14",
                        details={"basis": "breakdown"},
                    )
                    return
        if declared is None:
            return
        bases = self.taxable_by_rate() if doc.lines else None
        if bases is not None:
            expected = sum(
                (money(base * rate / 100) for rate, base in bases.items()), Decimal("0.00")
            )
            off, resolved = _off(expected, money(declared), tol)
            if off:
                rates = ", ".join(
                    f"{money(base)} at {rate.normalize():f} %"
                    for rate, base in sorted(bases.items())
                )
                self.money_finding(
                    R.TAX_MISMATCH,
                    f"The lines imply {expected} tax ({rates}); the document states "
                    f"{money(declared)}.",
                    expected,
                    money(declared),
                    resolved,
                    details={"basis": "lines"},
                )
            return
        for sub in doc.tax_breakdown:
            if sub.rate is None:
                continue
            expected = money(sub.taxable_amount * sub.rate / 100)
            off, resolved = _off(expected, money(sub.tax_amount), tol)
            if off:
                self.money_finding(
                    R.TAX_MISMATCH,
                    f"Tax at {sub.rate} % on {money(sub.taxable_amount)} should be {expected}, "
                    f"the document states {money(sub.tax_amount)}.",
                    expected,
                    money(sub.tax_amount),
                    resolved,
                    rule_id="BR-CO-17",
                    details={"basis": "breakdown row", "rate": str(sub.rate)},
                )

    # -- credits ------------------------------------------------------------------------

    def credit(self) -> None:
        reference = getattr(self.doc, "billing_reference", None)
        if not reference or not reference.strip():
            self.add(
                R.CREDIT_UNMATCHED,
                "The credit names no invoice it credits; ask the "
                "supplier which invoice it belongs to.",
                details={"billing_reference": ""},
            )
            return
        key = normalise_invoice_number(reference)
        invoices = [
            p
            for p in self.ctx.prior_documents
            if p.kind == "invoice"
            and p.normalised_number == key
            and p.document_id != self.ctx.document_id
        ]
        if not invoices:
            self.add(
                R.CREDIT_UNMATCHED,
                f"The credit refers to invoice {reference}, which "
                "Tollgate has not seen from this supplier.",
                details={"billing_reference": reference},
            )
            return
        original = invoices[0]
        if (
            self.doc.kind != "credit_note"
            or original.gross is None
            or self.doc.gross is None
            or (original.currency and self.doc.currency and original.currency != self.doc.currency)
        ):
            # Nothing to compare the credit with (or not in the same money): matched by reference.
            return
        earlier = sum(
            (
                p.gross or Decimal(0)
                for p in self.ctx.prior_documents
                if p.kind == "credit_note"
                and p.billing_reference == key
                and p.document_id != self.ctx.document_id
            ),
            Decimal(0),
        )
        credited = money(earlier + self.doc.gross)
        if credited > money(original.gross):
            self.add(
                R.CREDIT_UNMATCHED,
                f"Credits against invoice {reference} add up to {credited}, more than "
                f"its {money(original.gross)}.",
                expected=money(original.gross),
                actual=credited,
                variance=credited - money(original.gross),
                unit=self.currency,
                details={"billing_reference": reference, "invoice_document": original.document_id},
            )

    # -- purchase order -----------------------------------------------------------------

    def purchase_order(self, duplicate: bool) -> Literal["3-way", "2-way", "none"]:
        doc, ctx, po = self.doc, self.ctx, self.ctx.po
        if not doc.po_reference or not doc.po_reference.strip():
            self.add(R.NO_PO, "The invoice quotes no purchase order.")
            return "none"
        if po is None:
            self.add(
                R.INVALID_PO,
                f"Purchase order {doc.po_reference} is not known.",
                details={"po_reference": doc.po_reference},
            )
            return "none"
        if ctx.supplier is not None and po.supplier_ref != ctx.supplier.ref:
            self.add(
                R.INVALID_PO,
                f"Purchase order {po.number} belongs to another supplier ({po.supplier_ref}).",
                details={"po_reference": po.number, "po_supplier": po.supplier_ref},
            )
            return "none"
        same_currency = not doc.currency or doc.currency == po.currency
        if not same_currency:
            self.add(
                R.CURRENCY_MISMATCH,
                f"The invoice is in {doc.currency}, the PO in "
                f"{po.currency}; amounts are not compared.",
                details={"invoice": doc.currency or "", "po": po.currency},
            )
        previous_qty = {} if duplicate else dict(ctx.already_invoiced_qty)
        previous_amount = Decimal(0) if duplicate else ctx.already_invoiced_amount
        self.amount_over_po(previous_amount, same_currency)
        return self.match_lines(previous_qty, same_currency)

    def net_total(self) -> Decimal | None:
        """BT-109 as stated, else computed the BR-CO-13 way from lines and document charges."""
        doc = self.doc
        if doc.totals.tax_exclusive is not None:
            return doc.totals.tax_exclusive
        if not doc.lines:
            return None
        net = sum((line.line_amount for line in doc.lines), Decimal(0))
        for ac in doc.allowance_charges:
            net += ac.amount if ac.is_charge else -ac.amount
        return net

    def amount_over_po(self, previous: Decimal, same_currency: bool) -> None:
        po = self.ctx.po
        assert po is not None
        if po.status != "open":
            self.add(
                R.AMOUNT_OVER_PO,
                f"Purchase order {po.number} is {po.status}; nothing more may be billed on it.",
                details={"po_status": po.status},
            )
            return
        net = self.net_total()
        if net is None or not same_currency:
            return
        expected, actual = money(po.amount), money(previous + net)
        over, resolved = _over(expected, actual, self.tol(ToleranceCheck.AMOUNT_OVER_PO))
        if over:
            self.money_finding(
                R.AMOUNT_OVER_PO,
                f"Billed {actual} in all against purchase order {po.number} worth {expected}.",
                expected,
                actual,
                resolved,
                details={"previously_invoiced": f"{money(previous)}"},
            )

    def _pair(self, lines: list[DocumentLine]) -> dict[str, PurchaseOrderLine | None]:
        po = self.ctx.po
        assert po is not None
        goods = [p for p in po.lines if p.kind not in CHARGE_KINDS]
        by_no = {p.line_no: p for p in goods}
        by_no.update({p.line_no.lstrip("0") or "0": p for p in goods})
        by_item = {p.item_id: p for p in goods if p.item_id}
        paired: dict[str, PurchaseOrderLine | None] = {}
        for line in lines:
            ref = (line.po_line_ref or "").strip()
            target = (by_no.get(ref) or by_no.get(ref.lstrip("0") or "0")) if ref else None
            if target is None:
                for key in (line.item_id, line.buyer_item_id):
                    if key and key in by_item:
                        target = by_item[key]
                        break
            paired[line.line_id] = target
        used = {id(p) for p in paired.values() if p is not None}
        for line in lines:
            if paired[line.line_id] is not None or not line.description:
                continue
            best, best_score = None, FUZZY_MIN
            for candidate in goods:
                if id(candidate) in used or not candidate.description:
                    continue
                score = fuzz.token_set_ratio(
                    line.description.lower(), candidate.description.lower()
                )
                # Strictly better only, so of equally good candidates the first PO line wins.
                if score > best_score or (best is None and score >= best_score):
                    best, best_score = candidate, score
            if best is not None:
                paired[line.line_id] = best
                used.add(id(best))
        return paired

    def _received(self, po_line: PurchaseOrderLine) -> Decimal | None:
        """Received minus returned, in the PO unit; None when a receipt's unit does not convert."""
        total = Decimal(0)
        for receipt in self.ctx.receipts:
            for line in receipt.lines:
                if line.po_line_no != po_line.line_no:
                    continue
                ratio = conversion_ratio(
                    line.unit_code, po_line.unit_code, po_line.item_id, self.ctx.item_uom_factors
                )
                if ratio is None:
                    self.add(
                        R.UOM_MISMATCH,
                        f"Goods receipt {receipt.number} records PO line {po_line.line_no} in "
                        f"{line.unit_code}, the PO line is in {po_line.unit_code}, and no "
                        "conversion is known; received quantities are not compared.",
                        po_line_no=po_line.line_no,
                        details={
                            "receipt": receipt.number,
                            "receipt_unit": line.unit_code,
                            "po_unit": po_line.unit_code,
                        },
                    )
                    return None
                total += convert_quantity(line.quantity, ratio)
        return total

    def match_lines(
        self, previous: dict[str, Decimal], same_currency: bool
    ) -> Literal["3-way", "2-way"]:
        doc = self.doc
        candidates = [ln for ln in doc.lines if ln.kind in PAIRED_KINDS]
        paired = self._pair(candidates)
        charge_lines = [(ln, ln.kind) for ln in doc.lines if ln.kind in CHARGE_KINDS]
        goods: list[DocumentLine] = []
        for line in candidates:
            if paired[line.line_id] is None and line.kind is LineKind.GOODS:
                kind = classify_line_kind(line.description)
                if kind in CHARGE_KINDS:
                    charge_lines.append((line, kind))
                    continue
            goods.append(line)
        billed: dict[str, Decimal] = defaultdict(Decimal)
        first_line: dict[str, str] = {}
        po_lines: dict[str, PurchaseOrderLine] = {}
        rows: dict[str, LineMatch] = {}
        three_way = False
        for line in goods:
            po_line = paired[line.line_id]
            if po_line is None:
                self.add(
                    R.QTY_OVER_ORDERED,
                    f"Line {line.line_id} ({line.description or line.item_id or 'no description'})"
                    " is not on the purchase order.",
                    line_id=line.line_id,
                    expected=Decimal(0),
                    actual=line.quantity,
                    variance=line.quantity,
                    unit=line.unit_code,
                    details={"reason": "not on the purchase order"},
                )
                rows[line.line_id] = LineMatch(
                    line.line_id,
                    None,
                    line.kind,
                    "unmatched",
                    invoiced_qty=line.quantity,
                    invoiced_unit_price=_per_unit(line.unit_price, line.price_base_quantity),
                )
                continue
            three_way = three_way or po_line.receipt_required
            ratio = conversion_ratio(
                line.unit_code, po_line.unit_code, po_line.item_id, self.ctx.item_uom_factors
            )
            row = LineMatch(
                line.line_id,
                po_line.line_no,
                line.kind,
                "matched",
                ordered_qty=po_line.quantity,
                previously_invoiced_qty=previous.get(po_line.line_no, Decimal(0)),
            )
            rows[line.line_id] = row
            if ratio is None:
                self.add(
                    R.UOM_MISMATCH,
                    f"Line {line.line_id} is billed in {line.unit_code}, the PO line "
                    f"{po_line.line_no} is in {po_line.unit_code}, and no conversion is known.",
                    line_id=line.line_id,
                    po_line_no=po_line.line_no,
                    details={"invoice_unit": line.unit_code, "po_unit": po_line.unit_code},
                )
                row.status = "exception"
                continue
            qty = convert_quantity(line.quantity, ratio)
            price = convert_unit_price(_per_unit(line.unit_price, line.price_base_quantity), ratio)
            row.invoiced_qty, row.invoiced_unit_price = qty, price
            row.uom_factor = ratio[0] / ratio[1] if ratio[0] != ratio[1] else None
            billed[po_line.line_no] += qty
            first_line.setdefault(po_line.line_no, line.line_id)
            po_lines[po_line.line_no] = po_line
            if same_currency and self.price(line, po_line, qty, price):
                row.status = "exception"
            if self.line_tax(line, po_line):
                row.status = "exception"
        for line_no, qty in billed.items():
            po_line = po_lines[line_no]
            received = self._received(po_line) if po_line.receipt_required else None
            flagged = self.quantities(
                po_line, first_line[line_no], qty, previous.get(line_no), received
            )
            for row in rows.values():
                if row.po_line_no == line_no:
                    row.received_qty = received
                    if flagged:
                        row.status = "exception"
        self.lines.extend(rows.values())
        self.charges(charge_lines, same_currency)
        return "3-way" if three_way else "2-way"

    def price(
        self, line: DocumentLine, po_line: PurchaseOrderLine, qty: Decimal, price: Decimal
    ) -> bool:
        po_price = _per_unit(po_line.unit_price, po_line.price_base_quantity)
        # The billed value straight from the line, so a unit conversion cannot shift a cent.
        billed_value = _per_unit(line.unit_price, line.price_base_quantity) * line.quantity
        expected, actual = money(po_price * qty), money(billed_value)
        over, resolved = _over(expected, actual, self.tol(ToleranceCheck.PRICE, po_line.category))
        if over:
            self.money_finding(
                R.PRICE_VARIANCE,
                f"Line {line.line_id}: {price.normalize():f} per {po_line.unit_code} against "
                f"{po_price.normalize():f} on the PO, {actual - expected} more on {qty:f} units.",
                expected,
                actual,
                resolved,
                line_id=line.line_id,
                po_line_no=po_line.line_no,
                details={
                    "invoice_unit_price": f"{price.normalize():f}",
                    "po_unit_price": f"{po_price.normalize():f}",
                },
            )
        return over

    def line_tax(self, line: DocumentLine, po_line: PurchaseOrderLine) -> bool:
        rate = _rate(line.tax_rate, line.tax_category)
        if rate is None or po_line.tax_rate is None or rate == po_line.tax_rate:
            return False
        expected = money(line.line_amount * po_line.tax_rate / 100)
        actual = money(line.line_amount * rate / 100)
        off, resolved = _off(expected, actual, self.tol(ToleranceCheck.TAX, po_line.category))
        if off:
            self.money_finding(
                R.TAX_MISMATCH,
                f"Line {line.line_id} is taxed at {rate.normalize():f} %, the PO line at "
                f"{po_line.tax_rate.normalize():f} % ({actual} instead of {expected}).",
                expected,
                actual,
                resolved,
                line_id=line.line_id,
                po_line_no=po_line.line_no,
                details={"invoice_rate": str(rate), "po_rate": str(po_line.tax_rate)},
            )
        return off

    def quantities(
        self,
        po_line: PurchaseOrderLine,
        line_id: str,
        qty: Decimal,
        previous: Decimal | None,
        received: Decimal | None,
    ) -> bool:
        billed = qty + (previous or Decimal(0))
        unit = po_line.unit_code
        common = {"line_id": line_id, "po_line_no": po_line.line_no, "unit": unit}
        in_all = " in all" if previous else ""
        flagged = False
        over, resolved = _over(
            po_line.quantity, billed, self.tol(ToleranceCheck.QTY_ORDERED, po_line.category)
        )
        if over:
            flagged = True
            self.add(
                R.QTY_OVER_ORDERED,
                f"PO line {po_line.line_no}: {billed:f} {unit} billed{in_all}, "
                f"{po_line.quantity:f} ordered.",
                expected=po_line.quantity,
                actual=billed,
                variance=billed - po_line.quantity,
                tolerance=resolved,
                **common,
            )
        if not po_line.receipt_required or received is None:
            return flagged
        if received <= 0:
            # Expected is what receipts allow billing (nothing), actual what is billed.
            self.add(
                R.NO_RECEIPT,
                f"PO line {po_line.line_no}: {billed:f} {unit} billed{in_all}, nothing received "
                "yet; the case waits for the goods receipt and re-matches when it arrives.",
                expected=received,
                actual=billed,
                variance=billed - received,
                **common,
            )
            return True
        over, resolved = _over(
            received, billed, self.tol(ToleranceCheck.QTY_RECEIVED, po_line.category)
        )
        if over:
            flagged = True
            self.add(
                R.QTY_OVER_RECEIVED,
                f"PO line {po_line.line_no}: {billed:f} {unit} billed{in_all}, "
                f"{received:f} received.",
                expected=received,
                actual=billed,
                variance=billed - received,
                tolerance=resolved,
                **common,
            )
        return flagged

    def charges(
        self, charge_lines: list[tuple[DocumentLine, LineKind]], same_currency: bool
    ) -> None:
        doc, po = self.doc, self.ctx.po
        assert po is not None
        planned_lines = [p for p in po.lines if p.kind in CHARGE_KINDS]
        header = [ac for ac in doc.allowance_charges if ac.is_charge]
        for line, kind in charge_lines:
            plan = next((p for p in planned_lines if p.kind is kind), None)
            self.lines.append(
                LineMatch(
                    line.line_id,
                    plan.line_no if plan else None,
                    kind,
                    "charge",
                    invoiced_qty=line.quantity,
                    invoiced_unit_price=_per_unit(line.unit_price, line.price_base_quantity),
                    ordered_qty=plan.quantity if plan else None,
                )
            )
        for line in doc.lines:
            if line.kind is LineKind.DISCOUNT:
                self.lines.append(
                    LineMatch(line.line_id, None, line.kind, "charge", invoiced_qty=line.quantity)
                )
        if not (charge_lines or header) or not same_currency:
            return
        billed = money(
            sum((ln.line_amount for ln, _ in charge_lines), Decimal(0))
            + sum((ac.amount for ac in header), Decimal(0))
        )
        planned = money(sum((p.amount for p in planned_lines), Decimal(0)))
        over, resolved = _over(planned, billed, self.tol(ToleranceCheck.FREIGHT))
        if over:
            what = ", ".join(
                [ln.description or "charge line" for ln, _ in charge_lines]
                + [ac.reason or ac.reason_code or "document charge" for ac in header]
            )
            self.money_finding(
                R.FREIGHT_UNPLANNED,
                f"Freight and surcharges of {billed} ({what}) against {planned} planned on the PO.",
                planned,
                billed,
                resolved,
                details={"charge_lines": ", ".join(ln.line_id for ln, _ in charge_lines)},
            )

    def run(self) -> MatchResult:
        self.missing_data()
        self.vendor()
        self.balance()
        self.tax()
        duplicates = find_exact_duplicates(
            self.doc,
            self.supplier_ref,
            self.ctx.prior_documents,
            self.ctx.duplicate_window_days,
            self.ctx.document_id,
        )
        for original in duplicates:
            self.add(
                R.DUPLICATE,
                f"Same supplier, number ({original.number}), amount and kind as document "
                f"{original.document_id}"
                + (f" of {original.issue_date}." if original.issue_date else "."),
                details={"duplicate_of": original.document_id, "number": original.number or ""},
            )
        match_type: Literal["3-way", "2-way", "none"] = "none"
        if isinstance(self.doc, CreditNote | Claim):
            self.credit()
        else:
            match_type = self.purchase_order(duplicate=bool(duplicates))
        position = {line.line_id: i for i, line in enumerate(self.doc.lines)}
        self.lines.sort(key=lambda row: position.get(row.line_id, len(position)))
        return MatchResult(self.findings, self.lines, match_type)


def match_document(
    doc: SupplierDocument, ctx: MatchContext, tolerances: ToleranceLookup
) -> MatchResult:
    """Match a document against its PO, receipts and history; return findings and line table."""
    return _Matcher(doc, ctx, tolerances).run()


def validate_document(doc: SupplierDocument, tolerances: ToleranceLookup) -> list[Finding]:
    """The checks a document passes or fails on its own, without master data: required fields
    (MISSING_DATA), EN 16931 arithmetic and line amounts (NOT_BALANCED), VAT (TAX_MISMATCH)."""
    matcher = _Matcher(doc, MatchContext(supplier=None, po=None), tolerances)
    matcher.missing_data()
    matcher.balance()
    matcher.tax()
    return matcher.findings
