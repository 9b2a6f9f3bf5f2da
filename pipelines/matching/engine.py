"""2-way and 3-way matching: header and line checks that turn a document into findings.

Choices, so that clerks and auditors can predict the outcome:

- A tolerance allows a variance up to the tighter of its percent (of the expected value) and
  its absolute amount; a variance *equal* to the allowance is inside. Only unfavourable
  variances are exceptions (billed more, higher price, more tax); a cheaper invoice is not.
  Balance checks (EN 16931 BR-CO rules) are symmetric: totals that do not add up are wrong
  whichever way they miss.
- Lines are paired with PO lines by the PO line reference, then the item id, then the
  description (rapidfuzz token_set_ratio >= 85 among unpaired lines). Several invoice lines may
  bill one PO line; quantity checks use their sum plus what earlier documents billed.
- Units convert silently when a conversion is known (standard table or an item factor), and the
  comparison is made in the PO's unit; an unknown conversion is `UOM_MISMATCH` and that line's
  price and quantity checks are skipped (they would be meaningless).
- A goods line that pairs with no PO line is billed without an order: `QTY_OVER_ORDERED` with
  expected 0.
- Price variance is the value impact, (invoice price - PO price) x quantity, so the tolerance
  is in money; quantity checks compare billed (this + earlier) with ordered and, for lines that
  need a receipt, with received (receipts and returns summed). Nothing received is `NO_RECEIPT`.
- Freight and surcharges (charge lines and document-level charges) are compared with the
  planned freight/surcharge lines of the PO: `FREIGHT_UNPLANNED` beyond the freight tolerance.
- An exact duplicate raises `DUPLICATE` and the checks that count earlier billing on the PO are
  made as if the original did not exist: its over-billing is the same fact, not a second one.
- Credit notes and claims are checked against the invoice they name (`CREDIT_UNMATCHED` when it
  is unknown or over-credited); they are not matched against PO quantities.
- Money is compared at 2 decimals (ROUND_HALF_UP); quantities exactly.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

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
from pipelines.matching.uom import conversion_factor
from pipelines.normalise import normalise_iban, normalise_invoice_number
from pipelines.reasons import ReasonCode as R

CENT = Decimal("0.01")
FUZZY_MIN = 85.0
CHARGE_KINDS = {LineKind.FREIGHT, LineKind.SURCHARGE}
PAIRED_KINDS = {LineKind.GOODS, LineKind.SERVICE}

_FREIGHT_WORDS = (
    "freight",
    "shipping",
    "carriage",
    "delivery charge",
    "transport",
    "fracht",
    "versand",
    "porto",
    "livraison",
    "port ",
    "frais de port",
    "expédition",
    "spedition",
)
_SURCHARGE_WORDS = ("surcharge", "zuschlag", "supplément", "fuel", "energy", "maut", "toll fee")


def money(value: Decimal) -> Decimal:
    """Round to cents, half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def classify_line_kind(description: str | None) -> LineKind:
    """Freight, surcharge or goods, from a line's words (EN, DE, FR)."""
    text = f" {(description or '').lower()} "
    if any(word in text for word in _FREIGHT_WORDS):
        return LineKind.FREIGHT
    if any(word in text for word in _SURCHARGE_WORDS):
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

    # -- header -------------------------------------------------------------------------

    def missing_data(self) -> None:
        doc = self.doc
        required = {
            "number": doc.number,
            "issue_date": doc.issue_date,
            "currency": doc.currency,
            "supplier name": doc.supplier.name,
            "gross total": doc.gross,
        }
        for name, value in required.items():
            if value is None or value == "":
                self.add(
                    R.MISSING_DATA, f"The {name} is missing or unreadable.", details={"field": name}
                )
        if not doc.lines:
            self.add(R.MISSING_DATA, "The document has no lines.", details={"field": "lines"})

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
        if iban and normalise_iban(iban) not in supplier.ibans:
            on_file = ", ".join(supplier.ibans) or "none on file"
            self.add(
                R.BANK_DETAILS_CHANGED,
                f"The invoice asks for payment to {normalise_iban(iban)}, which is not a known "
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
                self.add(
                    R.NOT_BALANCED,
                    f"{label}: {money(actual)} stated, {money(expected)} by the lines and totals.",
                    expected=money(expected),
                    actual=money(actual),
                    variance=money(actual) - money(expected),
                    unit=self.currency,
                    tolerance=resolved,
                    rule_id=rule,
                )

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
        if doc.tax_breakdown and t.tax is not None:
            breakdown = sum((s.tax_amount for s in doc.tax_breakdown), Decimal(0))
            checks.append(("BR-CO-14", "Tax total", breakdown, t.tax))
        if t.tax_exclusive is not None:
            checks.append(
                ("BR-CO-15", "Gross total", t.tax_exclusive + (t.tax or 0), t.tax_inclusive)
            )
        if t.tax_inclusive is not None:
            checks.append(
                ("BR-CO-16", "Amount due", t.tax_inclusive - t.prepaid + t.rounding, t.payable)
            )
        return checks

    def tax(self) -> None:
        tol = self.tol(ToleranceCheck.TAX)
        for sub in self.doc.tax_breakdown:
            if sub.rate is None:
                continue
            expected = money(sub.taxable_amount * sub.rate / 100)
            off, resolved = _off(expected, money(sub.tax_amount), tol)
            if off:
                self.add(
                    R.TAX_MISMATCH,
                    f"Tax at {sub.rate} % on {money(sub.taxable_amount)} should be {expected}, "
                    f"the invoice states {money(sub.tax_amount)}.",
                    expected=expected,
                    actual=money(sub.tax_amount),
                    variance=money(sub.tax_amount) - expected,
                    unit=self.currency,
                    tolerance=resolved,
                    details={"rate": str(sub.rate)},
                )

    # -- credits ------------------------------------------------------------------------

    def credit(self) -> None:
        reference = getattr(self.doc, "billing_reference", None)
        if not reference:
            self.add(
                R.CREDIT_UNMATCHED,
                "The credit names no invoice it credits; ask the "
                "supplier which invoice it belongs to.",
            )
            return
        key = normalise_invoice_number(reference)
        invoices = [
            p
            for p in self.ctx.prior_documents
            if p.kind == "invoice" and p.normalised_number == key
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
        earlier = sum(
            (
                p.gross or Decimal(0)
                for p in self.ctx.prior_documents
                if p.kind != "invoice"
                and p.billing_reference == key
                and p.document_id != self.ctx.document_id
            ),
            Decimal(0),
        )
        credited = earlier + (self.doc.gross or Decimal(0))
        if original.gross is not None and money(credited) > money(original.gross):
            self.add(
                R.CREDIT_UNMATCHED,
                f"Credits against invoice {reference} add up to {money(credited)}, more than "
                f"its {money(original.gross)}.",
                expected=money(original.gross),
                actual=money(credited),
                variance=money(credited - original.gross),
                unit=self.currency,
                details={"billing_reference": reference, "invoice_document": original.document_id},
            )

    # -- purchase order -----------------------------------------------------------------

    def purchase_order(self, duplicate: bool) -> str:
        doc, ctx, po = self.doc, self.ctx, self.ctx.po
        if not doc.po_reference:
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
                details={"po_reference": po.number},
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

    def amount_over_po(self, previous: Decimal, same_currency: bool) -> None:
        po = self.ctx.po
        assert po is not None
        if po.status != "open":
            self.add(
                R.AMOUNT_OVER_PO,
                f"Purchase order {po.number} is {po.status}.",
                details={"po_status": po.status},
            )
            return
        net = self.doc.totals.tax_exclusive
        if net is None or not same_currency:
            return
        expected, actual = money(po.amount), money(previous + net)
        over, resolved = _over(expected, actual, self.tol(ToleranceCheck.AMOUNT_OVER_PO))
        if over:
            self.add(
                R.AMOUNT_OVER_PO,
                f"Billed {actual} in all against purchase order {po.number} worth {expected}.",
                expected=expected,
                actual=actual,
                variance=actual - expected,
                unit=self.currency,
                tolerance=resolved,
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
            target = by_no.get(ref) or by_no.get(ref.lstrip("0") or "0") if ref else None
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
                if score >= best_score:
                    best, best_score = candidate, score
            if best is not None:
                paired[line.line_id] = best
                used.add(id(best))
        return paired

    def _received(self, po_line: PurchaseOrderLine) -> Decimal:
        total = Decimal(0)
        for receipt in self.ctx.receipts:
            for line in receipt.lines:
                if line.po_line_no != po_line.line_no:
                    continue
                factor = conversion_factor(
                    line.unit_code, po_line.unit_code, po_line.item_id, self.ctx.item_uom_factors
                )
                total += line.quantity * (factor if factor is not None else 1)
        return total

    def match_lines(self, previous: dict[str, Decimal], same_currency: bool) -> str:
        doc = self.doc
        goods = [ln for ln in doc.lines if ln.kind in PAIRED_KINDS]
        paired = self._pair(goods)
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
                )
                rows[line.line_id] = LineMatch(
                    line.line_id, None, line.kind, "unmatched", invoiced_qty=line.quantity
                )
                continue
            three_way = three_way or po_line.receipt_required
            factor = conversion_factor(
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
            if factor is None:
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
            qty = line.quantity * factor
            price = line.unit_price / line.price_base_quantity / factor
            row.invoiced_qty, row.invoiced_unit_price = qty, price
            row.uom_factor = factor if factor != 1 else None
            billed[po_line.line_no] += qty
            first_line.setdefault(po_line.line_no, line.line_id)
            po_lines[po_line.line_no] = po_line
            if same_currency and self.price(line, po_line, qty, price):
                row.status = "exception"
            if self.line_tax(line, po_line):
                row.status = "exception"
        for line_no, qty in billed.items():
            po_line = po_lines[line_no]
            flagged = self.quantities(po_line, first_line[line_no], qty, previous.get(line_no))
            received = self._received(po_line) if po_line.receipt_required else None
            for row in rows.values():
                if row.po_line_no == line_no:
                    row.received_qty = received
                    if flagged:
                        row.status = "exception"
        self.lines.extend(rows.values())
        self.charges(same_currency)
        return "3-way" if three_way else "2-way"

    def price(
        self, line: DocumentLine, po_line: PurchaseOrderLine, qty: Decimal, price: Decimal
    ) -> bool:
        po_price = po_line.unit_price / po_line.price_base_quantity
        expected, actual = money(po_price * qty), money(price * qty)
        over, resolved = _over(expected, actual, self.tol(ToleranceCheck.PRICE, po_line.category))
        if over:
            self.add(
                R.PRICE_VARIANCE,
                f"Line {line.line_id}: {price.normalize():f} per {po_line.unit_code} against "
                f"{po_price.normalize():f} on the PO, {actual - expected} more on {qty:f} units.",
                line_id=line.line_id,
                po_line_no=po_line.line_no,
                expected=expected,
                actual=actual,
                variance=actual - expected,
                unit=self.currency,
                tolerance=resolved,
                details={
                    "invoice_unit_price": f"{price.normalize():f}",
                    "po_unit_price": f"{po_price.normalize():f}",
                },
            )
        return over

    def line_tax(self, line: DocumentLine, po_line: PurchaseOrderLine) -> bool:
        if line.tax_rate is None or po_line.tax_rate is None or line.tax_rate == po_line.tax_rate:
            return False
        expected = money(line.line_amount * po_line.tax_rate / 100)
        actual = money(line.line_amount * line.tax_rate / 100)
        off, resolved = _over(expected, actual, self.tol(ToleranceCheck.TAX, po_line.category))
        if off:
            self.add(
                R.TAX_MISMATCH,
                f"Line {line.line_id} is taxed at {line.tax_rate} %, the PO line at "
                f"{po_line.tax_rate} %.",
                line_id=line.line_id,
                po_line_no=po_line.line_no,
                expected=expected,
                actual=actual,
                variance=actual - expected,
                unit=self.currency,
                tolerance=resolved,
                details={"invoice_rate": str(line.tax_rate), "po_rate": str(po_line.tax_rate)},
            )
        return off

    def quantities(
        self, po_line: PurchaseOrderLine, line_id: str, qty: Decimal, previous: Decimal | None
    ) -> bool:
        billed = qty + (previous or Decimal(0))
        unit = po_line.unit_code
        common = {"line_id": line_id, "po_line_no": po_line.line_no, "unit": unit}
        flagged = False
        over, resolved = _over(
            po_line.quantity, billed, self.tol(ToleranceCheck.QTY_ORDERED, po_line.category)
        )
        if over:
            flagged = True
            self.add(
                R.QTY_OVER_ORDERED,
                f"PO line {po_line.line_no}: {billed:f} {unit} billed"
                f"{' in all' if previous else ''}, {po_line.quantity:f} ordered.",
                expected=po_line.quantity,
                actual=billed,
                variance=billed - po_line.quantity,
                tolerance=resolved,
                **common,
            )
        if not po_line.receipt_required:
            return flagged
        received = self._received(po_line)
        if received <= 0:
            self.add(
                R.NO_RECEIPT,
                f"PO line {po_line.line_no}: nothing received yet; the case waits for the "
                "goods receipt and re-matches when it arrives.",
                expected=billed,
                actual=received,
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
                f"PO line {po_line.line_no}: {billed:f} {unit} billed"
                f"{' in all' if previous else ''}, {received:f} received.",
                expected=received,
                actual=billed,
                variance=billed - received,
                tolerance=resolved,
                **common,
            )
        return flagged

    def charges(self, same_currency: bool) -> None:
        doc, po = self.doc, self.ctx.po
        assert po is not None
        charge_lines = [ln for ln in doc.lines if ln.kind in CHARGE_KINDS]
        header = [ac for ac in doc.allowance_charges if ac.is_charge]
        for line in charge_lines:
            self.lines.append(
                LineMatch(
                    line.line_id,
                    None,
                    line.kind,
                    "charge",
                    invoiced_qty=line.quantity,
                    invoiced_unit_price=line.unit_price,
                )
            )
        if not (charge_lines or header) or not same_currency:
            return
        billed = money(
            sum((ln.line_amount for ln in charge_lines), Decimal(0))
            + sum((ac.amount for ac in header), Decimal(0))
        )
        planned = money(sum((p.amount for p in po.lines if p.kind in CHARGE_KINDS), Decimal(0)))
        over, resolved = _over(planned, billed, self.tol(ToleranceCheck.FREIGHT))
        if over:
            what = ", ".join(
                [ln.description or "charge line" for ln in charge_lines]
                + [ac.reason or ac.reason_code or "document charge" for ac in header]
            )
            self.add(
                R.FREIGHT_UNPLANNED,
                f"Freight and surcharges of {billed} ({what}) against {planned} planned on the PO.",
                expected=planned,
                actual=billed,
                variance=billed - planned,
                unit=self.currency,
                tolerance=resolved,
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
                f"{original.document_id} of {original.issue_date}.",
                details={"duplicate_of": original.document_id, "number": original.number or ""},
            )
        match_type = "none"
        if isinstance(self.doc, CreditNote | Claim):
            self.credit()
        else:
            match_type = self.purchase_order(duplicate=bool(duplicates))
        position = {line.line_id: i for i, line in enumerate(self.doc.lines)}
        self.lines.sort(key=lambda row: position.get(row.line_id, len(position)))
        return MatchResult(self.findings, self.lines, match_type)  # type: ignore[arg-type]


def match_document(
    doc: SupplierDocument, ctx: MatchContext, tolerances: ToleranceLookup
) -> MatchResult:
    """Match a document against its PO, receipts and history; return findings and line table."""
    return _Matcher(doc, ctx, tolerances).run()
