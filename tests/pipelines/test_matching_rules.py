"""Matching, table-driven: each row is a document and its context with hand-computed findings.

The world: supplier S1 and purchase order PO-1 (EUR, tax 20 %):
  line 1  item A    100 C62 at 10.00   category office   goods receipt needed
  line 2  item PEN  240 C62 at  0.50   category office   goods receipt needed
  line 3  item SVC    1 C62 at 500.00  category service  2-way (no receipt)
PO value 1,620.00. Receipts: line 1 60 + 40 (two receipts), line 2 240.
Tolerances (the defaults): price 2 % / 100.00, quantities 0, amount over PO 10 % / 1,000.00,
tax 1.00, freight 0, rounding 0.01.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from governance.tolerances import Tolerance, TolerancePolicy
from pipelines.canonical import (
    AllowanceCharge,
    Claim,
    CreditNote,
    DocumentLine,
    DocumentTotals,
    GoodsReceipt,
    GoodsReceiptLine,
    Invoice,
    LineKind,
    Party,
    PaymentDetails,
    PurchaseOrder,
    PurchaseOrderLine,
    SupplierDocument,
    TaxSubtotal,
)
from pipelines.matching import (
    MatchContext,
    PriorDocument,
    SupplierRecord,
    ToleranceCheck,
    classify_line_kind,
    conversion_factor,
    find_exact_duplicates,
    match_document,
)
from pipelines.matching.uom import conversion_ratio, convert_quantity
from pipelines.reasons import ReasonCode as R

D = Decimal
CENT = D("0.01")
IBAN = "DE89370400440532013000"
SUPPLIER = SupplierRecord(ref="S1", name="Acme GmbH", vat_id="DE123456789", ibans=(IBAN,))


def po_line(
    no: str, item: str, qty: str, price: str, category: str, **kw: Any
) -> PurchaseOrderLine:
    return PurchaseOrderLine(
        line_no=no,
        item_id=item,
        description=kw.pop("description", f"Item {item}"),
        quantity=D(qty),
        unit_price=D(price),
        category=category,
        tax_rate=D(20),
        **kw,
    )


PO = PurchaseOrder(
    number="PO-1",
    supplier_ref="S1",
    currency="EUR",
    lines=[
        po_line("1", "A", "100", "10.00", "office", description="A4 copy paper 80g"),
        po_line("2", "PEN", "240", "0.50", "office"),
        po_line("3", "SVC", "1", "500.00", "service", receipt_required=False),
    ],
)
RECEIPTS = (
    GoodsReceipt(
        number="GR-1", po_number="PO-1", lines=[GoodsReceiptLine(po_line_no="1", quantity=D(60))]
    ),
    GoodsReceipt(
        number="GR-2",
        po_number="PO-1",
        lines=[
            GoodsReceiptLine(po_line_no="1", quantity=D(40)),
            GoodsReceiptLine(po_line_no="2", quantity=D(240)),
        ],
    ),
)


def line(
    line_id: str,
    qty: str,
    price: str,
    *,
    item: str | None = None,
    unit: str = "C62",
    ref: str | None = None,
    rate: str | None = "20",
    kind: LineKind = LineKind.GOODS,
    description: str | None = None,
) -> DocumentLine:
    amount = (D(qty) * D(price)).quantize(CENT, ROUND_HALF_UP)
    return DocumentLine(
        line_id=line_id,
        item_id=item,
        quantity=D(qty),
        unit_code=unit,
        unit_price=D(price),
        tax_rate=D(rate) if rate is not None else None,
        line_amount=amount,
        po_line_ref=ref,
        kind=kind,
        description=description,
        tax_category="S" if rate is not None else None,
    )


CLEAN_LINES = [
    line("1", "100", "10.00", ref="1"),
    line("2", "240", "0.50", ref="2"),
    line("3", "1", "500.00", ref="3"),
]


def invoice(
    lines: list[DocumentLine] | None = None,
    *,
    charges: list[AllowanceCharge] | None = None,
    tax: str | None = None,
    gross_delta: str = "0",
    line_extension_delta: str = "0",
    breakdown_tax_delta: str = "0",
    kind: type[SupplierDocument] = Invoice,
    **fields: Any,
) -> SupplierDocument:
    """A document whose totals add up unless a delta says otherwise.

    VAT is one breakdown row per rate (lines and charges without a rate count at 20 %); `tax`
    overrides the tax of a single-rate document, in the total and in its breakdown row.
    """
    lines = CLEAN_LINES if lines is None else lines
    charges = charges or []
    line_sum = sum((ln.line_amount for ln in lines), D(0))
    charge_sum = sum((c.amount for c in charges), D(0))
    net = line_sum + charge_sum
    bases: dict[Decimal, Decimal] = defaultdict(Decimal)
    for ln in lines:
        bases[ln.tax_rate if ln.tax_rate is not None else D(20)] += ln.line_amount
    for c in charges:
        bases[c.tax_rate if c.tax_rate is not None else D(20)] += c.amount
    breakdown = [
        TaxSubtotal(
            category="S",
            rate=rate,
            taxable_amount=base,
            tax_amount=(base * rate / 100).quantize(CENT, ROUND_HALF_UP),
        )
        for rate, base in sorted(bases.items())
    ]
    if tax is not None:
        assert len(breakdown) == 1
        breakdown[0] = breakdown[0].model_copy(update={"tax_amount": D(tax)})
    tax_amount = sum((row.tax_amount for row in breakdown), D(0))
    if breakdown:
        breakdown[0] = breakdown[0].model_copy(
            update={"tax_amount": breakdown[0].tax_amount + D(breakdown_tax_delta)}
        )
    gross = net + tax_amount + D(gross_delta)
    defaults: dict[str, Any] = {
        "number": "INV-0042",
        "issue_date": date(2026, 10, 1),
        "currency": "EUR",
        "supplier": Party(name="Acme GmbH", vat_id="DE123456789"),
        "po_reference": "PO-1",
        "lines": lines,
        "allowance_charges": charges,
        "tax_breakdown": breakdown,
        "totals": DocumentTotals(
            line_extension=line_sum + D(line_extension_delta),
            charges=charge_sum,
            tax_exclusive=net + D(line_extension_delta),
            tax=tax_amount,
            tax_inclusive=gross + D(line_extension_delta),
            payable=gross + D(line_extension_delta),
        ),
        "payment": PaymentDetails(iban=IBAN),
    }
    defaults.update(fields)
    return kind(**defaults)


def ctx(**kw: Any) -> MatchContext:
    base = MatchContext(supplier=SUPPLIER, po=PO, receipts=RECEIPTS)
    return replace(base, **kw)


@dataclass
class Row:
    name: str
    doc: SupplierDocument
    context: MatchContext = field(default_factory=ctx)
    # (code, line_id, expected, actual, variance); None where the finding carries no number
    expect: list[tuple[R, str | None, str | None, str | None, str | None]] = field(
        default_factory=list
    )
    policy: TolerancePolicy = field(default_factory=TolerancePolicy)
    match_type: str | None = None  # checked when given


OFFICE_TIGHT = TolerancePolicy(
    category_overrides={
        "office": {ToleranceCheck.PRICE: Tolerance(percent=D(2), absolute=D("5.00"))}
    }
)
SUPPLIER_LOOSE = TolerancePolicy(
    category_overrides=OFFICE_TIGHT.category_overrides,
    supplier_overrides={"S1": {ToleranceCheck.PRICE: Tolerance(percent=D(5))}},
)
PO_WITH_FREIGHT = PO.model_copy(
    update={
        "lines": [
            *PO.lines,
            po_line(
                "9", "FRT", "1", "30.00", "freight", kind=LineKind.FREIGHT, receipt_required=False
            ),
        ]
    }
)
FREIGHT_FC = AllowanceCharge(is_charge=True, amount=D("30.00"), reason="Freight", reason_code="FC")
FREIGHT_FC_OVER = FREIGHT_FC.model_copy(update={"amount": D("30.01")})
PRIOR = PriorDocument(
    document_id="7",
    kind="invoice",
    number="42",
    normalised_number="42",
    issue_date=date(2026, 9, 20),
    gross=D("1944.00"),
    currency="EUR",
)


def _receipt(number: str, *lines: tuple[str, ...]) -> GoodsReceipt:
    """A receipt on PO-1: (po line, quantity[, unit]) per line."""
    return GoodsReceipt(
        number=number,
        po_number="PO-1",
        lines=[
            GoodsReceiptLine(po_line_no=ln[0], quantity=D(ln[1]), unit_code=(ln[2:] or ("C62",))[0])
            for ln in lines
        ],
    )


def _credit(document_id: str, gross: str) -> PriorDocument:
    """An earlier credit note against invoice 42."""
    return PriorDocument(
        document_id=document_id,
        kind="credit_note",
        number=f"CN-{document_id}",
        normalised_number=f"CN{document_id}",
        issue_date=date(2026, 9, 25),
        gross=D(gross),
        currency="EUR",
        billing_reference="42",
    )


OFFICE_QTY_5 = TolerancePolicy(
    category_overrides={"office": {ToleranceCheck.QTY_RECEIVED: Tolerance(percent=D(5))}}
)
# PO-1 as one line of gloves ordered by the dozen, 2-way.
PO_DZN = PO.model_copy(
    update={
        "lines": [
            po_line("1", "GLV", "5", "12.00", "office", unit_code="DZN", receipt_required=False)
        ]
    }
)
# PO-1 as one line of item A ordered in boxes of 6 (an item-specific unit), 2-way.
PO_BOX = PO.model_copy(
    update={
        "lines": [po_line("1", "A", "3", "30.00", "office", unit_code="BX", receipt_required=False)]
    }
)
BOX_OF_6 = {("A", "BX", "C62"): D(6)}
CREDIT_LINE = line("1", "1", "833.33", ref="1")

ROWS = [
    Row(
        "clean 3-way match, two receipts on one line, a 2-way service line",
        invoice(),
        match_type="3-way",
    ),
    # Price: expected 100 x 10.00 = 1000.00; allowance min(2 % = 20.00, 100.00) = 20.00.
    Row(
        "price variance just inside (variance == allowance)",
        invoice([line("1", "100", "10.20", ref="1"), *CLEAN_LINES[1:]]),
    ),
    Row(
        "price variance just outside",
        invoice([line("1", "100", "10.21", ref="1"), *CLEAN_LINES[1:]]),
        expect=[(R.PRICE_VARIANCE, "1", "1000.00", "1021.00", "21.00")],
    ),
    Row(
        "a lower price is not an exception",
        invoice([line("1", "100", "9.00", ref="1"), *CLEAN_LINES[1:]]),
    ),
    # Category override: min(20.00, 5.00) = 5.00.
    Row(
        "category override, absolute wins: inside at 5.00",
        invoice([line("1", "100", "10.05", ref="1"), *CLEAN_LINES[1:]]),
        policy=OFFICE_TIGHT,
    ),
    Row(
        "category override, absolute wins: outside at 6.00",
        invoice([line("1", "100", "10.06", ref="1"), *CLEAN_LINES[1:]]),
        policy=OFFICE_TIGHT,
        expect=[(R.PRICE_VARIANCE, "1", "1000.00", "1006.00", "6.00")],
    ),
    Row(
        "supplier override beats category (5 % = 50.00)",
        invoice([line("1", "100", "10.40", ref="1"), *CLEAN_LINES[1:]]),
        policy=SUPPLIER_LOOSE,
    ),
    Row(
        "partial receipt: 100 billed, 60 received",
        invoice(),
        context=ctx(
            receipts=(
                *RECEIPTS[:1],
                GoodsReceipt(
                    number="GR-3",
                    po_number="PO-1",
                    lines=[GoodsReceiptLine(po_line_no="2", quantity=D(240))],
                ),
            )
        ),
        expect=[(R.QTY_OVER_RECEIVED, "1", "60", "100", "40")],
    ),
    Row(
        "a return reduces what was received: 100 - 10",
        invoice(),
        context=ctx(
            receipts=(
                *RECEIPTS,
                GoodsReceipt(
                    number="GR-R",
                    po_number="PO-1",
                    lines=[GoodsReceiptLine(po_line_no="1", quantity=D(-10))],
                ),
            )
        ),
        expect=[(R.QTY_OVER_RECEIVED, "1", "90", "100", "10")],
    ),
    Row(
        "no receipt yet for line 2",
        invoice(),
        context=ctx(receipts=RECEIPTS[:1]),
        expect=[
            (R.QTY_OVER_RECEIVED, "1", "60", "100", "40"),
            (R.NO_RECEIPT, "2", "0", "240", "240"),
        ],
    ),
    Row(
        "billed more than ordered (and received)",
        invoice([line("1", "101", "10.00", ref="1"), *CLEAN_LINES[1:]]),
        expect=[
            (R.QTY_OVER_ORDERED, "1", "100", "101", "1"),
            (R.QTY_OVER_RECEIVED, "1", "100", "101", "1"),
        ],
    ),
    Row(
        "earlier invoices count: 50 before + 60 now",
        invoice([line("1", "60", "10.00", ref="1")]),
        context=ctx(already_invoiced_qty={"1": D(50)}),
        expect=[
            (R.QTY_OVER_ORDERED, "1", "100", "110", "10"),
            (R.QTY_OVER_RECEIVED, "1", "100", "110", "10"),
        ],
    ),
    Row(
        "two invoice lines on one PO line are summed",
        invoice(
            [
                line("1", "50", "10.00", ref="1"),
                line("4", "51", "10.00", item="A"),
                *CLEAN_LINES[1:],
            ]
        ),
        expect=[
            (R.QTY_OVER_ORDERED, "1", "100", "101", "1"),
            (R.QTY_OVER_RECEIVED, "1", "100", "101", "1"),
        ],
    ),
    Row(
        "dozens convert to pieces: 20 DZN at 6.00 == 240 C62 at 0.50",
        invoice([CLEAN_LINES[0], line("2", "20", "6.00", ref="2", unit="DZN"), CLEAN_LINES[2]]),
    ),
    Row(
        "an item-specific box of 10 converts",
        invoice([line("1", "10", "100.00", ref="1", unit="BX"), *CLEAN_LINES[1:]]),
        context=ctx(item_uom_factors={("A", "BX", "C62"): D(10)}),
    ),
    Row(
        "an unknown unit is a UoM mismatch, not a price variance",
        invoice([line("1", "10", "100.00", ref="1", unit="BX"), *CLEAN_LINES[1:]]),
        expect=[(R.UOM_MISMATCH, "1", None, None, None)],
    ),
    Row(
        "paired by description when there is no reference or item id",
        invoice([line("1", "100", "10.00", description="Copy paper A4 80g"), *CLEAN_LINES[1:]]),
    ),
    Row(
        "a goods line not on the PO",
        invoice([*CLEAN_LINES, line("4", "3", "12.00", item="ZZZ", description="Stapler")]),
        expect=[(R.QTY_OVER_ORDERED, "4", "0", "3", "3")],
    ),
    Row(
        "unplanned freight line",
        invoice(
            [*CLEAN_LINES, line("4", "1", "25.00", kind=LineKind.FREIGHT, description="Freight")]
        ),
        expect=[(R.FREIGHT_UNPLANNED, None, "0.00", "25.00", "25.00")],
    ),
    Row(
        "planned freight charged exactly",
        invoice(charges=[FREIGHT_FC]),
        context=ctx(po=PO_WITH_FREIGHT),
    ),
    Row(
        "freight one cent over plan",
        invoice(charges=[FREIGHT_FC_OVER]),
        context=ctx(po=PO_WITH_FREIGHT),
        expect=[(R.FREIGHT_UNPLANNED, None, "30.00", "30.01", "0.01")],
    ),
    # Line 1 net 1000.00: at 20 % 200.00, at 21 % 210.00.
    Row(
        "line taxed above the PO rate",
        invoice([line("1", "100", "10.00", ref="1", rate="21"), *CLEAN_LINES[1:]]),
        expect=[(R.TAX_MISMATCH, "1", "200.00", "210.00", "10.00")],
    ),
    # Net 1620.00 at 20 % is 324.00; stated 326.00 is 2.00 off (tolerance 1.00); 325.00 inside.
    Row("stated tax 1.00 off is inside", invoice(tax="325.00")),
    Row(
        "stated tax 2.00 off",
        invoice(tax="326.00"),
        expect=[(R.TAX_MISMATCH, None, "324.00", "326.00", "2.00")],
    ),
    Row(
        "gross one cent off is inside the rounding tolerance",
        invoice(gross_delta="0.01"),
        expect=[],
    ),
    Row(
        "gross two cents off (BR-CO-15)",
        invoice(gross_delta="0.02"),
        expect=[(R.NOT_BALANCED, None, "1944.00", "1944.02", "0.02")],
    ),
    Row(
        "line total that is not the sum of lines (BR-CO-10)",
        invoice(line_extension_delta="5.00"),
        expect=[(R.NOT_BALANCED, None, "1620.00", "1625.00", "5.00")],
    ),
    Row(
        "currency differs: amounts are not compared",
        invoice([line("1", "100", "11.00", ref="1"), *CLEAN_LINES[1:]], currency="USD"),
        expect=[(R.CURRENCY_MISMATCH, None, None, None, None)],
    ),
    # 1000.00 billed before + 1620.00 now against a 1620.00 PO; allowance min(162.00, 1000.00).
    Row(
        "amount over the PO's value",
        invoice(),
        context=ctx(already_invoiced_amount=D("1000.00")),
        expect=[(R.AMOUNT_OVER_PO, None, "1620.00", "2620.00", "1000.00")],
    ),
    Row(
        "closed PO",
        invoice(),
        context=ctx(po=PO.model_copy(update={"status": "closed"})),
        expect=[(R.AMOUNT_OVER_PO, None, None, None, None)],
    ),
    Row(
        "no PO reference",
        invoice(po_reference=None),
        context=ctx(po=None),
        expect=[(R.NO_PO, None, None, None, None)],
    ),
    Row(
        "unknown PO",
        invoice(po_reference="PO-404"),
        context=ctx(po=None),
        expect=[(R.INVALID_PO, None, None, None, None)],
    ),
    Row(
        "PO of another supplier",
        invoice(),
        context=ctx(po=PO.model_copy(update={"supplier_ref": "S2"})),
        expect=[(R.INVALID_PO, None, None, None, None)],
    ),
    Row(
        "unknown supplier",
        invoice(),
        context=ctx(supplier=None),
        expect=[(R.VENDOR_UNKNOWN, None, None, None, None)],
    ),
    Row(
        "blocked supplier",
        invoice(),
        context=ctx(supplier=replace(SUPPLIER, blocked=True)),
        expect=[(R.VENDOR_BLOCKED, None, None, None, None)],
    ),
    Row(
        "new IBAN",
        invoice(payment=PaymentDetails(iban="LT60 1010 0123 4567 8901")),
        expect=[(R.BANK_DETAILS_CHANGED, None, None, None, None)],
    ),
    Row(
        "missing invoice number",
        invoice(number=None),
        expect=[(R.MISSING_DATA, None, None, None, None)],
    ),
    Row(
        "exact duplicate: INV-0042 and 42, same amount, 11 days apart",
        invoice(),
        context=ctx(prior_documents=[PRIOR]),
        expect=[(R.DUPLICATE, None, None, None, None)],
    ),
    Row(
        "same number outside the duplicate window",
        invoice(),
        context=ctx(prior_documents=[PRIOR], duplicate_window_days=10),
    ),
    Row(
        "same number, different amount: not an exact duplicate",
        invoice(),
        context=ctx(prior_documents=[replace(PRIOR, gross=D("1944.01"))]),
    ),
    Row(
        "credit note for a known invoice",
        invoice(
            kind=CreditNote,
            number="CN-1",
            billing_reference="INV42",
            lines=[line("1", "10", "10.00", ref="1")],
        ),
        context=ctx(prior_documents=[PRIOR]),
    ),
    Row(
        "credit note for an unknown invoice",
        invoice(kind=CreditNote, number="CN-2", billing_reference="INV-9"),
        context=ctx(prior_documents=[PRIOR]),
        expect=[(R.CREDIT_UNMATCHED, None, None, None, None)],
    ),
    Row(
        "over-credit: 1944.00 credited twice",
        invoice(kind=CreditNote, number="CN-3", billing_reference="42"),
        context=ctx(
            prior_documents=[
                PRIOR,
                PriorDocument(
                    document_id="8",
                    kind="credit_note",
                    number="CN-1",
                    normalised_number="CN1",
                    issue_date=date(2026, 9, 25),
                    gross=D("1944.00"),
                    currency="EUR",
                    billing_reference="42",
                ),
            ]
        ),
        expect=[(R.CREDIT_UNMATCHED, None, "1944.00", "3888.00", "1944.00")],
    ),
    # --- tax: symmetric, one finding per wrong number --------------------------------------
    # Line 1 at 19 % on 1000.00: 190.00 instead of 200.00 (the document is consistent).
    Row(
        "line taxed below the PO rate (tax is symmetric)",
        invoice([line("1", "100", "10.00", ref="1", rate="19"), *CLEAN_LINES[1:]]),
        expect=[(R.TAX_MISMATCH, "1", "200.00", "190.00", "-10.00")],
    ),
    Row(
        "stated tax 1.01 off is just outside",
        invoice(tax="325.01"),
        expect=[(R.TAX_MISMATCH, None, "324.00", "325.01", "1.01")],
    ),
    # Breakdown 324.00, total 326.00, lines 324.00: the total is the wrong number, one finding.
    Row(
        "tax total is not the sum of its breakdown (BR-CO-14)",
        invoice(tax="326.00", breakdown_tax_delta="-2.00"),
        expect=[(R.TAX_MISMATCH, None, "324.00", "326.00", "2.00")],
    ),
    # Lines carry no rate: the breakdown row 1620.00 x 20 % = 324.00 is checked on its own.
    Row(
        "lines without rates: each breakdown row is checked (BR-CO-17)",
        invoice(
            [
                line("1", "100", "10.00", ref="1", rate=None),
                line("2", "240", "0.50", ref="2", rate=None),
                line("3", "1", "500.00", ref="3", rate=None),
            ],
            tax="326.00",
        ),
        expect=[(R.TAX_MISMATCH, None, "324.00", "326.00", "2.00")],
    ),
    # --- freight -----------------------------------------------------------------------------
    Row(
        "a goods line that says shipping is unplanned freight, not an unordered item",
        invoice([*CLEAN_LINES, line("4", "1", "25.00", description="Shipping costs")]),
        expect=[(R.FREIGHT_UNPLANNED, None, "0.00", "25.00", "25.00")],
    ),
    Row(
        "'support' is not 'port': an unordered line stays an unordered line",
        invoice([*CLEAN_LINES, line("4", "2", "80.00", description="Technical support")]),
        expect=[(R.QTY_OVER_ORDERED, "4", "0", "2", "2")],
    ),
    # Freight line 20.00 + document charge 15.00 = 35.00 against 30.00 planned.
    Row(
        "freight line and document charge together, 5.00 over plan",
        invoice(
            [*CLEAN_LINES, line("4", "1", "20.00", kind=LineKind.FREIGHT, description="Freight")],
            charges=[FREIGHT_FC.model_copy(update={"amount": D("15.00")})],
        ),
        context=ctx(po=PO_WITH_FREIGHT),
        expect=[(R.FREIGHT_UNPLANNED, None, "30.00", "35.00", "5.00")],
    ),
    Row(
        "supplier override allows 25.00 of unplanned freight",
        invoice(
            [*CLEAN_LINES, line("4", "1", "25.00", kind=LineKind.FREIGHT, description="Freight")]
        ),
        policy=TolerancePolicy(
            supplier_overrides={"S1": {ToleranceCheck.FREIGHT: Tolerance(absolute=D("25.00"))}}
        ),
    ),
    # --- quantities, receipts, overrides ---------------------------------------------------
    # Office category: 5 % of 96 received = 4.80 >= 4 over; of 95 = 4.75 < 5 over.
    Row(
        "category override on received quantity: 100 billed on 96 received is inside",
        invoice(),
        context=ctx(
            receipts=(_receipt("GR-1", ("1", "60")), _receipt("GR-2", ("1", "36"), ("2", "240")))
        ),
        policy=OFFICE_QTY_5,
    ),
    Row(
        "category override on received quantity: 100 billed on 95 received is outside",
        invoice(),
        context=ctx(
            receipts=(_receipt("GR-1", ("1", "60")), _receipt("GR-2", ("1", "35"), ("2", "240")))
        ),
        policy=OFFICE_QTY_5,
        expect=[(R.QTY_OVER_RECEIVED, "1", "95", "100", "5")],
    ),
    Row(
        "a receipt in dozens counts as pieces",
        invoice(),
        context=ctx(receipts=(_receipt("GR-1", ("1", "100"), ("2", "20", "DZN")),)),
    ),
    Row(
        "a receipt in an unknown unit: UoM mismatch, received not compared",
        invoice(),
        context=ctx(receipts=(_receipt("GR-1", ("1", "100"), ("2", "24", "BX")),)),
        expect=[(R.UOM_MISMATCH, None, None, None, None)],
    ),
    Row(
        "pairs convert to dozens exactly: 30 PR == 5 DZN, 2.00 per PR == 12.00 per DZN",
        invoice([line("1", "30", "2.00", ref="1", unit="PR")]),
        context=ctx(po=PO_DZN, receipts=()),
        match_type="2-way",
    ),
    Row(
        "item box of 6, PO in boxes: 18 C62 == 3 BX exactly",
        invoice([line("1", "18", "5.00", ref="1")]),
        context=ctx(po=PO_BOX, receipts=(), item_uom_factors=BOX_OF_6),
    ),
    Row(
        "item box of 6, PO in boxes: 21 C62 is half a box over ordered",
        invoice([line("1", "21", "5.00", ref="1")]),
        context=ctx(po=PO_BOX, receipts=(), item_uom_factors=BOX_OF_6),
        # 21 x 5.00 = 105.00 net on a 90.00 PO: over 10 % (9.00) as well.
        expect=[
            (R.QTY_OVER_ORDERED, "1", "3", "3.5", "0.5"),
            (R.AMOUNT_OVER_PO, None, "90.00", "105.00", "15.00"),
        ],
    ),
    Row(
        "a 2-way line needs no receipt",
        invoice([CLEAN_LINES[2]]),
        context=ctx(receipts=()),
        match_type="2-way",
    ),
    Row(
        "a description below the fuzzy threshold is not paired",
        invoice(
            [line("1", "100", "10.00", description="Printer toner cartridge"), *CLEAN_LINES[1:]]
        ),
        expect=[(R.QTY_OVER_ORDERED, "1", "0", "100", "100")],
    ),
    # --- amount over PO at the edge: allowance min(10 % of 1620.00, 1000.00) = 162.00 -------
    Row(
        "amount over PO exactly at the allowance is inside",
        invoice(),
        context=ctx(already_invoiced_amount=D("162.00")),
    ),
    Row(
        "amount over PO a cent beyond the allowance",
        invoice(),
        context=ctx(already_invoiced_amount=D("162.01")),
        expect=[(R.AMOUNT_OVER_PO, None, "1620.00", "1782.01", "162.01")],
    ),
    # --- vendor and bank details ------------------------------------------------------------
    Row(
        "the known IBAN typed in lower case with spaces",
        invoice(payment=PaymentDetails(iban="de89 3704 0044 0532 0130 00")),
    ),
    Row(
        "no IBAN on file: nothing it could have changed from",
        invoice(payment=PaymentDetails(iban="LT60 1010 0123 4567 8901")),
        context=ctx(supplier=replace(SUPPLIER, ibans=())),
    ),
    Row(
        "missing number and issue date: one finding each",
        invoice(number=None, issue_date=None),
        expect=[(R.MISSING_DATA, None, None, None, None), (R.MISSING_DATA, None, None, None, None)],
    ),
    # --- duplicates ---------------------------------------------------------------------------
    Row(
        "a document is never its own duplicate",
        invoice(),
        context=ctx(prior_documents=[replace(PRIOR, document_id="42")], document_id="42"),
    ),
    Row(
        "same number and amount but another kind is not a duplicate",
        invoice(),
        context=ctx(prior_documents=[replace(PRIOR, kind="credit_note")]),
    ),
    # --- credits ------------------------------------------------------------------------------
    # 150.00 + 30.00 tax = 180.00 credited; 150 pieces would be over ordered on an invoice.
    Row(
        "a credit note quoting a PO is not matched against PO quantities",
        invoice(
            kind=CreditNote,
            number="CN-4",
            billing_reference="42",
            lines=[line("1", "150", "1.00", ref="1")],
        ),
        context=ctx(prior_documents=[PRIOR]),
        match_type="none",
    ),
    Row(
        "a credit note naming no invoice",
        invoice(kind=CreditNote, number="CN-5", billing_reference=None),
        context=ctx(prior_documents=[PRIOR]),
        expect=[(R.CREDIT_UNMATCHED, None, None, None, None)],
    ),
    # This credit is 833.33 + 166.67 = 1000.00; with 944.00 credited before, 1944.00 in all.
    Row(
        "credits adding up exactly to the invoice gross",
        invoice(kind=CreditNote, number="CN-6", billing_reference="INV 42", lines=[CREDIT_LINE]),
        context=ctx(prior_documents=[PRIOR, _credit("8", "944.00")]),
    ),
    Row(
        "credits a cent over the invoice gross",
        invoice(kind=CreditNote, number="CN-6", billing_reference="INV 42", lines=[CREDIT_LINE]),
        context=ctx(prior_documents=[PRIOR, _credit("8", "944.01")]),
        expect=[(R.CREDIT_UNMATCHED, None, "1944.00", "1944.01", "0.01")],
    ),
    Row(
        "a claim is checked like a credit note",
        invoice(kind=Claim, number="CL-1", billing_reference="INV-9", lines=[CREDIT_LINE]),
        context=ctx(prior_documents=[PRIOR]),
        expect=[(R.CREDIT_UNMATCHED, None, None, None, None)],
    ),
    # A claim asks for more money: it is matched by reference, never counted as a credit.
    Row(
        "a claim above the invoice gross names a known invoice: matched",
        invoice(kind=Claim, number="CL-2", billing_reference="INV 42", lines=[CREDIT_LINE]),
        context=ctx(prior_documents=[PRIOR, _credit("8", "1500.00")]),
    ),
    Row(
        "an earlier claim does not count towards the credits",
        invoice(kind=CreditNote, number="CN-7", billing_reference="INV 42", lines=[CREDIT_LINE]),
        context=ctx(prior_documents=[PRIOR, replace(_credit("9", "944.01"), kind="claim")]),
    ),
]


TOLERANCE_GOVERNED = {
    R.PRICE_VARIANCE,
    R.QTY_OVER_ORDERED,
    R.QTY_OVER_RECEIVED,
    R.AMOUNT_OVER_PO,
    R.TAX_MISMATCH,
    R.FREIGHT_UNPLANNED,
    R.NOT_BALANCED,
}


def _order(key: tuple[str | None, ...]) -> tuple[str, ...]:
    return tuple(part or "" for part in key)


def _key(f: Any) -> tuple[str, str | None, str | None, str | None, str | None]:
    def num(v: Decimal | None) -> str | None:
        return None if v is None else f"{v:f}"

    return (f.code.value, f.line_id, num(f.expected), num(f.actual), num(f.variance))


@pytest.mark.parametrize("row", ROWS, ids=[r.name for r in ROWS])
def test_matching_rules(row: Row) -> None:
    result = match_document(row.doc, row.context, row.policy)
    got = sorted((_key(f) for f in result.findings), key=_order)
    want = sorted(((code.value, *rest) for code, *rest in row.expect), key=_order)
    assert got == want
    if row.match_type is not None:
        assert result.match_type == row.match_type
    for f in result.findings:
        assert f.message
        if (
            f.code in TOLERANCE_GOVERNED
            and f.expected is not None
            and (f.po_line_no or not f.line_id)
        ):
            assert f.tolerance is not None and f.tolerance.allowed is not None, f


def test_line_table_records_conversion_and_receipts() -> None:
    doc = invoice([CLEAN_LINES[0], line("2", "20", "6.00", ref="2", unit="DZN"), CLEAN_LINES[2]])
    result = match_document(doc, ctx(), TolerancePolicy())
    assert result.match_type == "3-way"
    rows = {r.line_id: r for r in result.lines}
    assert (rows["1"].received_qty, rows["1"].ordered_qty, rows["1"].status) == (
        D(100),
        D(100),
        "matched",
    )
    assert (rows["2"].invoiced_qty, rows["2"].invoiced_unit_price, rows["2"].uom_factor) == (
        D(240),
        D("0.5"),
        D(12),
    )
    assert rows["3"].received_qty is None  # 2-way line


def test_tolerance_recorded_on_the_finding() -> None:
    doc = invoice([line("1", "100", "10.06", ref="1"), *CLEAN_LINES[1:]])
    (f,) = match_document(doc, ctx(), OFFICE_TIGHT).findings
    assert f.tolerance is not None
    assert (f.tolerance.percent, f.tolerance.absolute, f.tolerance.allowed, f.tolerance.source) == (
        D(2),
        D("5.00"),
        D("5.00"),
        "category:office",
    )


def test_duplicate_is_not_also_over_billing() -> None:
    # The re-sent copy bills the PO again; that is the duplicate itself, not a second finding.
    result = match_document(
        invoice(),
        ctx(
            prior_documents=[PRIOR],
            already_invoiced_qty={"1": D(100), "2": D(240)},
            already_invoiced_amount=D("1620.00"),
        ),
        TolerancePolicy(),
    )
    assert [f.code for f in result.findings] == [R.DUPLICATE]
    assert result.findings[0].message.endswith("as document 7 of 2026-09-20.")


def test_a_duplicate_of_an_undated_document_is_named_without_a_date() -> None:
    undated = replace(PRIOR, issue_date=None)
    result = match_document(invoice(), ctx(prior_documents=[undated]), TolerancePolicy())
    duplicate = next(f for f in result.findings if f.code is R.DUPLICATE)
    assert duplicate.message.endswith("amount and kind as document 7.")


def test_missing_data_names_each_field() -> None:
    doc = invoice(number="  ", issue_date=None, supplier=Party(name=None), lines=[])
    fields = {
        (f.details["field"], f.rule_id)
        for f in match_document(doc, ctx(), TolerancePolicy()).findings
        if f.code is R.MISSING_DATA
    }
    assert fields == {
        ("number", "BR-02"),
        ("issue_date", "BR-03"),
        ("supplier_name", "BR-06"),
        ("lines", "BR-16"),
    }


def test_line_table_for_charges_and_reclassified_freight() -> None:
    doc = invoice(
        [
            *CLEAN_LINES,
            line("4", "1", "30.00", description="Frachtkosten"),
            line("5", "1", "-10.00", kind=LineKind.DISCOUNT, description="Rabatt"),
        ]
    )
    result = match_document(doc, ctx(po=PO_WITH_FREIGHT), TolerancePolicy())
    rows = {r.line_id: r for r in result.lines}
    assert [r.line_id for r in result.lines] == ["1", "2", "3", "4", "5"]
    assert (rows["4"].kind, rows["4"].status, rows["4"].po_line_no) == (
        LineKind.FREIGHT,
        "charge",
        "9",
    )
    assert (rows["5"].kind, rows["5"].status) == (LineKind.DISCOUNT, "charge")
    # 30.00 freight as planned; the discount does not count against freight.
    assert [f.code for f in result.findings] == []


def test_unknown_unit_leaves_the_line_unconverted() -> None:
    doc = invoice([line("1", "10", "100.00", ref="1", unit="BX"), *CLEAN_LINES[1:]])
    result = match_document(doc, ctx(), TolerancePolicy())
    row = next(r for r in result.lines if r.line_id == "1")
    assert (row.status, row.invoiced_qty, row.uom_factor) == ("exception", None, None)
    (f,) = result.findings
    assert f.details == {"invoice_unit": "BX", "po_unit": "C62"}


@pytest.mark.parametrize(
    ("description", "kind"),
    [
        ("Freight", LineKind.FREIGHT),
        ("Shipping & handling", LineKind.FREIGHT),
        ("Versandkosten", LineKind.FREIGHT),
        ("Fracht", LineKind.FREIGHT),
        ("Transport", LineKind.FREIGHT),
        ("Frais de port", LineKind.FREIGHT),
        ("Port", LineKind.FREIGHT),
        ("Livraison express", LineKind.FREIGHT),
        ("Delivery charge", LineKind.FREIGHT),
        ("Fuel surcharge", LineKind.SURCHARGE),
        ("Energiezuschlag", LineKind.SURCHARGE),
        ("Mautgebühr", LineKind.SURCHARGE),
        ("Technical support", LineKind.GOODS),
        ("USB-C port hub", LineKind.GOODS),
        ("Fuel filter", LineKind.GOODS),
        ("Annual report binder", LineKind.GOODS),
        ("Delivery note pads", LineKind.GOODS),
        (None, LineKind.GOODS),
    ],
)
def test_classify_line_kind(description: str | None, kind: LineKind) -> None:
    assert classify_line_kind(description) is kind


def test_unit_conversion() -> None:
    assert conversion_ratio("PR", "DZN") == (D(2), D(12))
    assert convert_quantity(D(30), (D(2), D(12))) == D(5)  # 30 x (2 / 12) would not be
    assert conversion_factor("DZN", "C62") == D(12)
    assert conversion_factor("EA", "H87") == D(1)
    assert conversion_factor("KGM", "GRM") == D(1000)
    assert conversion_factor("MMT", "MTR") == D("0.001")
    assert conversion_factor("KGM", "LTR") is None  # mass is not volume
    assert conversion_factor("BX", "C62") is None
    factors = {("A", "BX", "C62"): D(6)}
    assert conversion_factor("BX", "C62", "A", factors) == D(6)
    assert conversion_ratio("C62", "BX", "A", factors) == (D(1), D(6))
    assert conversion_factor("BX", "C62", "B", factors) is None  # another item
    assert conversion_factor("BX", "C62", "A", {("A", "BX", "C62"): D(0)}) is None


def test_find_exact_duplicates() -> None:
    doc = invoice()  # INV-0042 of 2026-10-01, gross 1944.00
    same = replace(PRIOR, gross=D("1944"))  # 1944 == 1944.00 at two decimals
    assert find_exact_duplicates(doc, "S1", [same], 365) == [same]
    assert find_exact_duplicates(doc, "S1", [same], 11) == [same]  # 11 days apart: inside
    assert find_exact_duplicates(doc, "S1", [same], 10) == []
    assert find_exact_duplicates(doc, None, [same], 365) == []  # no supplier, no key
    assert find_exact_duplicates(doc, "S1", [replace(same, currency="USD")], 365) == []
    assert find_exact_duplicates(doc, "S1", [replace(same, normalised_number="43")], 365) == []
