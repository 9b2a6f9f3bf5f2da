"""A small, deterministic demo world: master data and UBL invoices that exercise every rule.

`python -m training.demo_world --out DIR` writes `DIR/master/*.json` (the format
`tollgate load-master-data` reads), `DIR/documents/*.xml` (UBL 2.1) plus one unreadable file so
the demo shows how intake reports it, and `DIR/late_receipts/` with goods that arrive after
their invoice (loading it re-matches that case). Each document is built for one scenario (a clean
match, a price variance, a duplicate, …) and `DIR/scenarios.json` says which reasons it should
raise. The full synthetic world generator (issue 3) supersedes this for training data.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from pipelines.canonical import (
    AllowanceCharge,
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
    TaxSubtotal,
)
from pipelines.writers.ubl import write_ubl

CENT = Decimal("0.01")
BUYER = Party(name="Tollgate Retail GmbH", vat_id="DE811111111")


@dataclass(frozen=True)
class DemoSupplier:
    """A supplier of the demo world."""

    ref: str
    name: str
    vat_id: str
    iban: str
    category: str
    blocked: bool = False


SUPPLIERS = [
    DemoSupplier(
        "S-ACME", "Acme Office Supplies Ltd", "GB123456789", "GB29NWBK60161331926819", "office"
    ),
    DemoSupplier(
        "S-NORD", "Nordfrost Lebensmittel GmbH", "DE298765432", "DE89370400440532013000", "food"
    ),
    DemoSupplier(
        "S-LUMI",
        "Lumière Emballages SARL",
        "FR40303265045",
        "FR1420041010050500013M02606",
        "packaging",
    ),
    DemoSupplier(
        "S-BLOK",
        "Blocked Trading BV",
        "NL859222222B01",
        "NL91ABNA0417164300",
        "office",
        blocked=True,
    ),
]
ITEMS = {
    "S-ACME": [
        ("A4-PAPER", "A4 copy paper 80g, box of 5 reams", "C62", Decimal("21.50")),
        ("TONER-K", "Toner cartridge black", "C62", Decimal("64.90")),
        ("PEN-BL", "Ballpoint pen blue", "C62", Decimal("0.45")),
    ],
    "S-NORD": [
        ("FISH-001", "Lachsfilet tiefgekühlt", "KGM", Decimal("18.20")),
        ("PEAS-002", "Erbsen tiefgekühlt", "KGM", Decimal("2.35")),
    ],
    "S-LUMI": [
        ("BOX-S", "Carton simple cannelure 30x20x15", "C62", Decimal("0.62")),
        ("TAPE-48", "Ruban adhésif 48mm", "C62", Decimal("1.85")),
    ],
    "S-BLOK": [("A4-PAPER", "A4 copy paper 80g, box of 5 reams", "C62", Decimal("20.00"))],
}
CURRENCY = {"S-ACME": "GBP", "S-NORD": "EUR", "S-LUMI": "EUR", "S-BLOK": "EUR"}
TAX = {"S-ACME": Decimal(20), "S-NORD": Decimal(7), "S-LUMI": Decimal(20), "S-BLOK": Decimal(21)}


@dataclass
class World:
    """Everything the demo world holds, built up scenario by scenario."""

    start: date
    pos: list[PurchaseOrder] = field(default_factory=list)
    receipts: list[GoodsReceipt] = field(default_factory=list)
    late_receipts: list[GoodsReceipt] = field(default_factory=list)
    documents: list[tuple[str, Invoice | CreditNote, list[str]]] = field(default_factory=list)
    counter: int = 0

    def next_number(self, prefix: str) -> str:
        """A fresh document number."""
        self.counter += 1
        return f"{prefix}{1000 + self.counter}"


def _supplier(ref: str) -> DemoSupplier:
    return next(s for s in SUPPLIERS if s.ref == ref)


def _po(
    world: World, ref: str, quantities: list[Decimal], day: int, **kwargs: Any
) -> PurchaseOrder:
    items = ITEMS[ref]
    lines = [
        PurchaseOrderLine(
            line_no=str(i + 1),
            item_id=item,
            description=desc,
            category=_supplier(ref).category,
            quantity=qty,
            unit_code=unit,
            unit_price=price,
            tax_rate=TAX[ref],
        )
        for i, ((item, desc, unit, price), qty) in enumerate(zip(items, quantities, strict=False))
    ]
    po = PurchaseOrder(
        number=f"PO-{4500 + len(world.pos)}",
        supplier_ref=ref,
        currency=CURRENCY[ref],
        order_date=world.start + timedelta(days=day),
        lines=lines,
        **kwargs,
    )
    world.pos.append(po)
    return po


def _receive(world: World, po: PurchaseOrder, quantities: list[Decimal], day: int) -> None:
    lines = [
        GoodsReceiptLine(po_line_no=line.line_no, quantity=qty, unit_code=line.unit_code)
        for line, qty in zip(po.lines, quantities, strict=False)
        if qty != 0
    ]
    if lines:
        world.receipts.append(
            GoodsReceipt(
                number=f"GR-{7000 + len(world.receipts)}",
                po_number=po.number,
                receipt_date=world.start + timedelta(days=day),
                lines=lines,
            )
        )


def _invoice(
    world: World,
    ref: str,
    po: PurchaseOrder | None,
    lines: Sequence[tuple[PurchaseOrderLine | None, Decimal, Decimal, str]],
    day: int,
    *,
    charges: list[AllowanceCharge] | None = None,
    number: str | None = None,
    currency: str | None = None,
    tax_rate: Decimal | None = None,
    iban: str | None = None,
    supplier: Party | None = None,
    po_reference: str | None = None,
    credit_of: str | None = None,
    gross_override: Decimal | None = None,
) -> Invoice | CreditNote:
    """An invoice (or credit note) whose totals add up unless told otherwise."""
    sup = _supplier(ref)
    rate = tax_rate if tax_rate is not None else TAX[ref]
    doc_lines = []
    for i, (po_line, qty, price, unit) in enumerate(lines, start=1):
        amount = (qty * price).quantize(CENT, ROUND_HALF_UP)
        doc_lines.append(
            DocumentLine(
                line_id=str(i),
                item_id=po_line.item_id if po_line else None,
                description=po_line.description if po_line else "Transport / freight",
                quantity=qty,
                unit_code=unit,
                unit_price=price,
                tax_category="S",
                tax_rate=rate,
                line_amount=amount,
                po_line_ref=po_line.line_no if po_line else None,
                kind=LineKind.GOODS if po_line else LineKind.FREIGHT,
            )
        )
    charges = charges or []
    line_total = sum((line.line_amount for line in doc_lines), Decimal(0))
    charge_total = sum((c.amount for c in charges), Decimal(0))
    net = line_total + charge_total
    tax = (net * rate / 100).quantize(CENT, ROUND_HALF_UP)
    gross = net + tax
    totals = DocumentTotals(
        line_extension=line_total,
        charges=charge_total,
        tax_exclusive=net,
        tax=tax,
        tax_inclusive=gross_override or gross,
        payable=gross_override or gross,
    )
    issue = world.start + timedelta(days=day)
    common: dict[str, Any] = {
        "number": number or world.next_number("INV-"),
        "issue_date": issue,
        "due_date": issue + timedelta(days=30),
        "currency": currency or CURRENCY[ref],
        "supplier": supplier or Party(name=sup.name, vat_id=sup.vat_id),
        "buyer": BUYER,
        "po_reference": (po_reference or None)
        if po_reference is not None
        else (po.number if po else None),
        "lines": doc_lines,
        "allowance_charges": charges,
        "tax_breakdown": [TaxSubtotal(category="S", rate=rate, taxable_amount=net, tax_amount=tax)],
        "totals": totals,
        "payment": PaymentDetails(means_code="58", iban=iban or sup.iban),
    }
    if credit_of is not None:
        return CreditNote(billing_reference=credit_of, **common)
    return Invoice(**common)


def build_world(start: date = date(2026, 9, 1)) -> World:
    """Build the demo world's POs, receipts and documents, one scenario at a time."""
    w = World(start=start)
    q = Decimal

    def add(name: str, doc: Invoice | CreditNote, expect: list[str]) -> None:
        w.documents.append((name, doc, expect))

    scenarios: list[Callable[[], None]] = []

    def clean_matches() -> None:
        for i, ref in enumerate(["S-ACME", "S-NORD", "S-LUMI", "S-ACME", "S-NORD"]):
            qty = [q(10 + i), q(4 + i), q(100)][: len(ITEMS[ref])]
            po = _po(w, ref, qty, i)
            _receive(w, po, qty, i + 3)
            lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
            add(f"clean-{i + 1}", _invoice(w, ref, po, lines, i + 5), [])

    def price_variance() -> None:
        po = _po(w, "S-ACME", [q(40), q(5)], 2)
        _receive(w, po, [q(40), q(5)], 4)
        lines = [(po.lines[0], q(40), q("23.90"), "C62"), (po.lines[1], q(5), q("64.90"), "C62")]
        add("price-variance", _invoice(w, "S-ACME", po, lines, 6), ["PRICE_VARIANCE"])

    def partial_receipt() -> None:
        po = _po(w, "S-NORD", [q(200), q(120)], 3)
        _receive(w, po, [q(120), q(120)], 5)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add("over-received", _invoice(w, "S-NORD", po, lines, 7), ["QTY_OVER_RECEIVED"])

    def no_receipt() -> None:
        po = _po(w, "S-LUMI", [q(500), q(40)], 4)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add("no-receipt", _invoice(w, "S-LUMI", po, lines, 8), ["NO_RECEIPT"])

    def uom_dozen() -> None:
        po = _po(w, "S-ACME", [q(24), q(2), q(240)], 5)
        _receive(w, po, [q(24), q(2), q(240)], 6)
        pen = po.lines[2]
        lines = [
            (po.lines[0], q(24), po.lines[0].unit_price, "C62"),
            (po.lines[1], q(2), po.lines[1].unit_price, "C62"),
            (pen, q(20), pen.unit_price * 12, "DZN"),
        ]
        add("uom-dozen-converted", _invoice(w, "S-ACME", po, lines, 9), [])

    def uom_unknown() -> None:
        po = _po(w, "S-LUMI", [q(1000), q(60)], 6)
        _receive(w, po, [q(1000), q(60)], 8)
        lines = [(po.lines[0], q(10), q("62.00"), "CT"), (po.lines[1], q(60), q("1.85"), "C62")]
        add("uom-unknown", _invoice(w, "S-LUMI", po, lines, 10), ["UOM_MISMATCH"])

    def freight() -> None:
        po = _po(w, "S-NORD", [q(50), q(80)], 7)
        _receive(w, po, [q(50), q(80)], 9)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        charge = AllowanceCharge(
            is_charge=True,
            amount=q("85.00"),
            reason="Fracht",
            reason_code="FC",
            tax_category="S",
            tax_rate=TAX["S-NORD"],
        )
        add(
            "freight-unplanned",
            _invoice(w, "S-NORD", po, lines, 11, charges=[charge]),
            ["FREIGHT_UNPLANNED"],
        )

    def bank_change() -> None:
        po = _po(w, "S-LUMI", [q(30000), q(2000)], 8)
        _receive(w, po, [q(30000), q(2000)], 10)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add(
            "bank-details-changed",
            _invoice(w, "S-LUMI", po, lines, 12, iban="LT601010012345678901"),
            ["BANK_DETAILS_CHANGED"],
        )

    def duplicate() -> None:
        po = _po(w, "S-ACME", [q(12), q(3)], 9)
        _receive(w, po, [q(12), q(3)], 10)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        first = _invoice(w, "S-ACME", po, lines, 12, number="INV-0002231")
        add("duplicate-original", first, [])
        again = first.model_copy(update={"number": "INV2231", "notes": ["Resent copy"]})
        add("duplicate-resent", again, ["DUPLICATE"])

    def no_po() -> None:
        line = ITEMS["S-NORD"][1]
        pl = PurchaseOrderLine(
            line_no="1",
            item_id=line[0],
            description=line[1],
            quantity=q(10),
            unit_code=line[2],
            unit_price=line[3],
        )
        add(
            "no-po",
            _invoice(w, "S-NORD", None, [(pl, q(10), line[3], "KGM")], 13, po_reference=""),
            ["NO_PO"],
        )

    def invalid_po() -> None:
        line = ITEMS["S-ACME"][0]
        pl = PurchaseOrderLine(
            line_no="1",
            item_id=line[0],
            description=line[1],
            quantity=q(5),
            unit_code=line[2],
            unit_price=line[3],
        )
        add(
            "invalid-po",
            _invoice(w, "S-ACME", None, [(pl, q(5), line[3], "C62")], 14, po_reference="PO-9999"),
            ["INVALID_PO"],
        )

    def unknown_vendor() -> None:
        pl = PurchaseOrderLine(
            line_no="1",
            item_id="X-1",
            description="Consulting services",
            quantity=q(8),
            unit_code="HUR",
            unit_price=q("95.00"),
        )
        stranger = Party(name="Unheard Of Consulting Ltd", vat_id="IE6388047V")
        add(
            "vendor-unknown",
            _invoice(
                w,
                "S-ACME",
                None,
                [(pl, q(8), q("95.00"), "HUR")],
                15,
                supplier=stranger,
                iban="IE29AIBK93115212345678",
                po_reference="",
            ),
            ["NO_PO", "VENDOR_UNKNOWN"],
        )

    def blocked_vendor() -> None:
        po = _po(w, "S-BLOK", [q(10)], 10)
        _receive(w, po, [q(10)], 11)
        lines = [(po.lines[0], q(10), po.lines[0].unit_price, "C62")]
        add("vendor-blocked", _invoice(w, "S-BLOK", po, lines, 16), ["VENDOR_BLOCKED"])

    def currency() -> None:
        po = _po(w, "S-ACME", [q(6), q(2)], 11)
        _receive(w, po, [q(6), q(2)], 12)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add(
            "currency-mismatch",
            _invoice(w, "S-ACME", po, lines, 17, currency="EUR"),
            ["CURRENCY_MISMATCH"],
        )

    def unbalanced() -> None:
        po = _po(w, "S-LUMI", [q(300), q(24)], 12)
        _receive(w, po, [q(300), q(24)], 13)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add(
            "not-balanced",
            _invoice(w, "S-LUMI", po, lines, 18, gross_override=q("999.99")),
            ["NOT_BALANCED"],
        )

    def tax() -> None:
        po = _po(w, "S-NORD", [q(100), q(100)], 13)
        _receive(w, po, [q(100), q(100)], 14)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add("tax-mismatch", _invoice(w, "S-NORD", po, lines, 19, tax_rate=q(19)), ["TAX_MISMATCH"])

    def over_ordered() -> None:
        po = _po(w, "S-ACME", [q(10), q(4)], 14)
        _receive(w, po, [q(12), q(4)], 15)
        lines = [
            (po.lines[0], q(12), po.lines[0].unit_price, "C62"),
            (po.lines[1], q(4), po.lines[1].unit_price, "C62"),
        ]
        add("qty-over-ordered", _invoice(w, "S-ACME", po, lines, 20), ["QTY_OVER_ORDERED"])

    def credits() -> None:
        po = _po(w, "S-NORD", [q(40), q(10)], 15)
        _receive(w, po, [q(40), q(10)], 16)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        original = _invoice(w, "S-NORD", po, lines, 17)
        add("credited-invoice", original, [])
        credit_lines = [(po.lines[1], q(2), po.lines[1].unit_price, "KGM")]
        add(
            "credit-note-matched",
            _invoice(
                w,
                "S-NORD",
                po,
                credit_lines,
                21,
                number=w.next_number("CN-"),
                credit_of=original.number,
            ),
            [],
        )
        add(
            "credit-note-unmatched",
            _invoice(
                w,
                "S-NORD",
                po,
                credit_lines,
                22,
                number=w.next_number("CN-"),
                credit_of="INV-777777",
            ),
            ["CREDIT_UNMATCHED"],
        )

    def late_receipt() -> None:
        po = _po(w, "S-ACME", [q(20), q(10)], 17)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add("late-receipt", _invoice(w, "S-ACME", po, lines, 24), ["NO_RECEIPT"])
        # The goods arrive after the invoice: loading this receipt re-matches the case clean.
        w.late_receipts.append(
            GoodsReceipt(
                number=f"GR-LATE-{len(w.late_receipts) + 1}",
                po_number=po.number,
                receipt_date=w.start + timedelta(days=26),
                lines=[
                    GoodsReceiptLine(
                        po_line_no=ln.line_no, quantity=ln.quantity, unit_code=ln.unit_code
                    )
                    for ln in po.lines
                ],
            )
        )

    def missing_number() -> None:
        po = _po(w, "S-LUMI", [q(50), q(5)], 16)
        _receive(w, po, [q(50), q(5)], 17)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        doc = _invoice(w, "S-LUMI", po, lines, 23).model_copy(update={"number": None})
        add("missing-number", doc, ["MISSING_DATA"])

    def large_clean() -> None:
        # Clean, but above the four-eyes amount (25,000 EUR): two different signers.
        po = _po(w, "S-NORD", [q(1500), q(100)], 18)
        _receive(w, po, [q(1500), q(100)], 19)
        lines = [(ln, ln.quantity, ln.unit_price, ln.unit_code) for ln in po.lines]
        add("large-clean", _invoice(w, "S-NORD", po, lines, 24), [])

    scenarios += [
        clean_matches,
        price_variance,
        partial_receipt,
        no_receipt,
        uom_dozen,
        uom_unknown,
        freight,
        bank_change,
        duplicate,
        no_po,
        invalid_po,
        unknown_vendor,
        blocked_vendor,
        currency,
        unbalanced,
        tax,
        over_ordered,
        credits,
        late_receipt,
        missing_number,
        large_clean,
    ]
    for scenario in scenarios:
        scenario()
    return w


def write_world(world: World, out: Path) -> None:
    """Write master data, documents and the scenario list under out/."""
    master, documents = out / "master", out / "documents"
    master.mkdir(parents=True, exist_ok=True)
    documents.mkdir(parents=True, exist_ok=True)
    suppliers = [
        {
            "ref": s.ref,
            "name": s.name,
            "vat_id": s.vat_id,
            "blocked": s.blocked,
            "category": s.category,
            "bank_accounts": [{"iban": s.iban}],
        }
        for s in SUPPLIERS
    ]
    (master / "suppliers.json").write_text(json.dumps(suppliers, indent=2), encoding="utf-8")
    for name, rows in (("purchase_orders", world.pos), ("goods_receipts", world.receipts)):
        payload = [r.model_dump(mode="json") for r in rows]
        (master / f"{name}.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    late = out / "late_receipts"
    late.mkdir(exist_ok=True)
    payload = [r.model_dump(mode="json") for r in world.late_receipts]
    (late / "goods_receipts.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    expected = {}
    for i, (name, doc, reasons) in enumerate(world.documents, start=1):
        filename = f"{i:03d}-{name}.xml"
        (documents / filename).write_bytes(write_ubl(doc))
        expected[filename] = reasons
    broken = "999-truncated-upload.xml"
    (documents / broken).write_bytes(write_ubl(world.documents[0][1])[:700])
    expected[broken] = ["parse error: MALFORMED_XML"]
    (out / "scenarios.json").write_text(json.dumps(expected, indent=2), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    """Command-line entry: build the demo world into a folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, required=True, help="folder to write into")
    args = parser.parse_args(argv)
    world = build_world()
    write_world(world, args.out)
    print(
        f"demo world: {len(world.documents)} documents, {len(world.pos)} POs, "
        f"{len(world.receipts)} receipts -> {args.out}"
    )


if __name__ == "__main__":
    main()
