"""Build a synthetic AP world: POs, receipts and supplier documents with known true reasons.

Every document is built from a purchase order and its receipts as a clean match, then bent by
zero, one or two *scenarios*, each of which knows the reason codes it truly causes. Two kinds:

- rule-decidable scenarios (a price above the PO, billed more than received, a closed PO, an
  unknown IBAN, ...): the rule engine must find exactly these codes; `tollgate eval match` holds
  it to 0.99 precision and recall on them;
- ambiguous scenarios, where the rules see one thing and the truth is another: a carton billed
  as a unit (looks like a price variance, is a unit-of-measure change), freight folded into unit
  prices, a receipt posted late (looks like over-billing), fuzzy duplicates the exact key
  misses, invoices split just under the four-eyes limit, prices far above the supplier's
  usual. These are what the models are for.

Consequences are part of the truth: a price rise that lifts the invoice more than the PO's
tolerance over its value is also `AMOUNT_OVER_PO`, because it is. Everything draws from one
`random.Random(seed)`, so a seed gives the same world on any machine.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Any

from rapidfuzz import fuzz, process

from pipelines.canonical import (
    Address,
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
    TaxSubtotal,
)
from pipelines.normalise import normalise_invoice_number
from pipelines.reasons import ReasonCode as R
from training.synth.masterdata import (
    COMPANIES,
    LANGUAGES,
    Company,
    Item,
    Supplier,
    fresh_iban,
    make_suppliers,
    unknown_supplier,
)

CENT = Decimal("0.01")
Document = Invoice | CreditNote | Claim

# The tolerances the world is built against: DEFAULT_POLICY of governance.tolerances.
PRICE_TOLERANCE = Decimal("0.02")
AMOUNT_OVER_PO_PCT, AMOUNT_OVER_PO_ABS = Decimal("0.10"), Decimal(1000)
TAX_TOLERANCE = Decimal("1.00")
FOUR_EYES_LIMIT = Decimal(25000)

# Share of invoices that carry at least one exception (Ardent Partners 2019: 22.6 % average).
EXCEPTION_RATE = 0.24
SECOND_EXCEPTION_RATE = 0.12
CREDIT_NOTE_RATE = 0.04
CLAIM_RATE = 0.012
UNMATCHED_CREDIT_RATE = 0.2

# Relative frequency of each scenario among invoices with an exception.
DECIDABLE_WEIGHTS: dict[str, float] = {
    "price_variance": 17,
    "qty_over_received": 10,
    "no_receipt": 9,
    "qty_over_ordered": 5,
    "freight_unplanned": 6,
    "tax_mismatch": 4,
    "uom_unknown": 3,
    "closed_po": 3,
    "no_po": 5,
    "invalid_po": 3,
    "vendor_unknown": 2,
    "vendor_blocked": 1.5,
    "bank_changed": 2,
    "not_balanced": 3,
    "currency_mismatch": 1.5,
    "missing_data": 2,
    "duplicate_exact": 3,
}
AMBIGUOUS_WEIGHTS: dict[str, float] = {
    "duplicate_fuzzy": 3,
    "uom_as_price": 3,
    "freight_in_price": 3,
    "late_receipt": 4,
    "split_below_limit": 2,
    "unusual_price": 2,
}
# Scenarios that can be layered on a first one without changing what it means.
SECOND_SCENARIOS = ("price_variance", "freight_unplanned", "bank_changed", "not_balanced")
# Clean documents that look unusual and must stay clean (the rules' hard negatives).
CLEAN_VARIANTS: dict[str, float] = {
    "plain": 80,
    "split_receipt": 8,
    "returned_before_invoice": 3,
    "planned_freight": 5,
    "uom_dozen": 2,
    "partial_billing": 6,
}

_WORDS = {
    "freight": {"en": "Freight", "de": "Fracht", "fr": "Frais de port"},
    "copy": {"en": "COPY", "de": "KOPIE", "fr": "DUPLICATA"},
    "carton": {"en": "carton of {n}", "de": "Karton à {n}", "fr": "carton de {n}"},
    "freight_incl": {
        "en": "Prices include delivery to your warehouse.",
        "de": "Preise inklusive Lieferung frei Lager.",
        "fr": "Prix franco de port, livraison incluse.",
    },
    "credit": {"en": "Credit for returned goods", "de": "Gutschrift Retoure", "fr": "Avoir retour"},
    "claim": {
        "en": "Price protection claim",
        "de": "Nachbelastung Preisanpassung",
        "fr": "Réclamation ajustement de prix",
    },
    "terms": {"en": "Net 30 days", "de": "30 Tage netto", "fr": "30 jours net"},
}


@dataclass(frozen=True)
class WorldConfig:
    """What to generate."""

    invoices: int = 2000
    seed: int = 7
    start: date = date(2026, 1, 5)
    months: int = 6
    suppliers: int | None = None  # default: one per 40 invoices, 12 to 400
    languages: tuple[str, ...] = LANGUAGES  # the languages suppliers write in

    @property
    def end(self) -> date:
        """The last day of the simulated period."""
        return self.start + timedelta(days=30 * self.months)

    @property
    def supplier_count(self) -> int:
        """How many suppliers the world has."""
        return self.suppliers or max(12, min(400, self.invoices // 40))


@dataclass
class Truth:
    """What is really wrong with one document (one line of truth.jsonl, review history apart)."""

    reasons: set[str] = field(default_factory=set)
    scenarios: list[str] = field(default_factory=list)
    decidable: bool = True
    duplicate_of: str | None = None

    def add(self, scenario: str, *codes: R, decidable: bool = True) -> None:
        """Record a scenario and the codes it causes."""
        self.scenarios.append(scenario)
        self.reasons.update(str(code) for code in codes)
        self.decidable = self.decidable and decidable


@dataclass
class GeneratedDocument:
    """A document of the world with its truth and how it is rendered."""

    doc_id: str
    document: Document
    supplier: Supplier
    truth: Truth
    company: Company
    po_number: str | None


@dataclass
class World:
    """Everything a generated world holds."""

    config: WorldConfig
    suppliers: list[Supplier]
    purchase_orders: list[PurchaseOrder] = field(default_factory=list)
    receipts: list[GoodsReceipt] = field(default_factory=list)
    late_receipts: list[GoodsReceipt] = field(default_factory=list)
    documents: list[GeneratedDocument] = field(default_factory=list)


@dataclass
class _Line:
    po_line: PurchaseOrderLine | None
    description: str
    item_id: str | None
    quantity: Decimal
    unit_code: str
    unit_price: Decimal
    tax_rate: Decimal
    kind: LineKind = LineKind.GOODS

    @property
    def amount(self) -> Decimal:
        return (self.quantity * self.unit_price).quantize(CENT, ROUND_HALF_UP)


@dataclass
class _Draft:
    """A document being built; scenarios bend it before it is frozen into canonical form."""

    supplier: Supplier
    company: Company
    issue: date
    number: str
    po: PurchaseOrder | None
    po_reference: str | None
    lines: list[_Line]
    currency: str
    iban: str
    charges: list[AllowanceCharge] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gross_error: Decimal = Decimal(0)
    drop_issue_date: bool = False
    truth: Truth = field(default_factory=Truth)

    @property
    def net(self) -> Decimal:
        lines = sum((line.amount for line in self.lines), Decimal(0))
        return lines + sum(
            (c.amount if c.is_charge else -c.amount for c in self.charges), Decimal(0)
        )


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, ROUND_HALF_UP)


class Generator:
    """Builds a world document by document; see the module docstring for the approach."""

    def __init__(self, config: WorldConfig) -> None:
        if config.invoices < 1:
            raise ValueError("the number of invoices must be at least 1")
        unknown = set(config.languages) - set(LANGUAGES)
        if unknown or not config.languages:
            raise ValueError(
                f"unknown language(s) {', '.join(sorted(unknown)) or '(none given)'}; "
                f"choose from {', '.join(LANGUAGES)}"
            )
        self.config = config
        self.rng = random.Random(config.seed)
        self.world = World(
            config,
            make_suppliers(
                config.supplier_count,
                config.seed,
                config.start,
                config.end,
                self.rng,
                config.languages,
            ),
        )
        self.active = [s for s in self.world.suppliers if not s.blocked]
        self.blocked = [s for s in self.world.suppliers if s.blocked]
        self.weights = [s.weight for s in self.active]
        self.po_seq = 0
        self.gr_seq = 0
        self.doc_seq = 0
        self.counters = {s.ref: self.rng.randrange(1, 5000) for s in self.world.suppliers}
        self.invoiced_net: dict[str, Decimal] = {}
        # Clean single-invoice documents that a later duplicate or credit note may refer to.
        self.originals: list[GeneratedDocument] = []
        self.known_names = [s.name for s in self.world.suppliers]

    # -- numbering ---------------------------------------------------------------------------

    def _po_number(self) -> str:
        self.po_seq += 1
        return f"45{self.po_seq:08d}"

    def _gr_number(self) -> str:
        self.gr_seq += 1
        return f"50{self.gr_seq:08d}"

    def _doc_number(self, supplier: Supplier, day: date) -> str:
        self.counters[supplier.ref] = self.counters.get(supplier.ref, 1) + 1
        n = self.counters[supplier.ref]
        style = supplier.number_style
        if style == 0:
            return f"INV-{n:05d}"
        if style == 1:
            return f"{day.year}-{n:04d}"
        if style == 2:
            return f"RE{day.year}{n:05d}"
        if style == 3:
            return f"F{day.year}/{n:04d}"
        if style == 4:
            return f"{n:07d}"
        return f"INV{day.year % 100}{n:04d}"

    # -- purchase orders and receipts --------------------------------------------------------

    def _quantity(self, item: Item, multiple_of: int = 1) -> Decimal:
        if item.unit_code == "HUR":
            return Decimal(self.rng.randint(4, 80))
        target = self.rng.lognormvariate(6.2, 0.9)  # line value, median about 500
        qty = max(1, round(target / float(item.price)))
        qty = min(qty, 5000)
        if multiple_of > 1:
            qty = max(1, qty // multiple_of) * multiple_of
        return Decimal(qty)

    def _po(
        self,
        supplier: Supplier,
        order_date: date,
        *,
        lines: int | None = None,
        price_factor: Decimal | None = None,
        planned_freight: Decimal | None = None,
        pack_multiples: bool = False,
        min_value: Decimal | None = None,
    ) -> PurchaseOrder:
        count = lines or min(len(supplier.items), self.rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6]))
        items = self.rng.sample(supplier.items, k=min(count, len(supplier.items)))
        po_lines = []
        for number, item in enumerate(items, start=1):
            price = item.price_on(order_date)
            if price_factor is not None:
                price = _money(price * price_factor)
            qty = self._quantity(item, item.pack if pack_multiples else 1)
            po_lines.append(
                PurchaseOrderLine(
                    line_no=str(number * 10),
                    item_id=item.item_id,
                    description=item.description,
                    category=item.category,
                    quantity=qty,
                    unit_code=item.unit_code,
                    unit_price=price,
                    tax_rate=item.tax_rate,
                    kind=LineKind.SERVICE if item.unit_code == "HUR" else LineKind.GOODS,
                    receipt_required=item.unit_code != "HUR",
                )
            )
        if min_value is not None:
            total = sum((line.amount for line in po_lines), Decimal(0))
            if total < min_value:
                scale = int(min_value / total) + 1
                po_lines = [
                    line.model_copy(update={"quantity": line.quantity * scale}) for line in po_lines
                ]
        if planned_freight is not None:
            po_lines.append(
                PurchaseOrderLine(
                    line_no=str((len(po_lines) + 1) * 10),
                    description=_WORDS["freight"][supplier.language],
                    quantity=Decimal(1),
                    unit_price=planned_freight,
                    tax_rate=supplier.country.standard_rate,
                    kind=LineKind.FREIGHT,
                    receipt_required=False,
                )
            )
        company = _company_for(supplier)
        po = PurchaseOrder(
            number=self._po_number(),
            supplier_ref=supplier.ref,
            company=company.code,
            order_date=order_date,
            currency=supplier.country.currency,
            lines=po_lines,
        )
        self.world.purchase_orders.append(po)
        return po

    def _receive(
        self, po: PurchaseOrder, quantities: dict[str, Decimal], day: date, *, late: bool = False
    ) -> None:
        lines = [
            GoodsReceiptLine(
                po_line_no=line.line_no, quantity=quantities[line.line_no], unit_code=line.unit_code
            )
            for line in po.lines
            if quantities.get(line.line_no)
        ]
        if not lines:
            return
        receipt = GoodsReceipt(
            number=self._gr_number(), po_number=po.number, receipt_date=day, lines=lines
        )
        (self.world.late_receipts if late else self.world.receipts).append(receipt)

    @staticmethod
    def _goods(po: PurchaseOrder) -> list[PurchaseOrderLine]:
        return [line for line in po.lines if line.receipt_required]

    # -- drafts ------------------------------------------------------------------------------

    def _draft(
        self,
        supplier: Supplier,
        po: PurchaseOrder | None,
        issue: date,
        quantities: dict[str, Decimal] | None = None,
    ) -> _Draft:
        lines = []
        if po is not None:
            for line in po.lines:
                qty = quantities[line.line_no] if quantities is not None else line.quantity
                if qty == 0:
                    continue
                lines.append(
                    _Line(
                        po_line=line,
                        description=line.description or "",
                        item_id=line.item_id,
                        quantity=qty,
                        unit_code=line.unit_code,
                        unit_price=line.unit_price,
                        tax_rate=line.tax_rate or supplier.country.standard_rate,
                        kind=line.kind,
                    )
                )
        return _Draft(
            supplier=supplier,
            company=_company_for(supplier),
            issue=issue,
            number=self._doc_number(supplier, issue),
            po=po,
            po_reference=po.number if po is not None else None,
            lines=lines,
            currency=po.currency if po is not None else supplier.country.currency,
            iban=supplier.iban_on(issue),
        )

    def _ordered_and_received(
        self, supplier: Supplier, issue: date, *, variant: str = "plain", **po_args: Any
    ) -> PurchaseOrder:
        """A PO ordered 8-40 days before `issue` and fully received before it."""
        order = issue - timedelta(days=self.rng.randint(8, 40))
        po = self._po(supplier, order, **po_args)
        received = order + timedelta(days=self.rng.randint(2, 7))
        quantities = {line.line_no: line.quantity for line in self._goods(po)}
        if variant == "split_receipt":
            first = {k: (v * Decimal("0.6")).to_integral_value() for k, v in quantities.items()}
            self._receive(po, first, received)
            rest = {k: quantities[k] - first[k] for k in quantities}
            self._receive(po, rest, received + timedelta(days=1))
        elif variant == "returned_before_invoice" and quantities:
            self._receive(po, quantities, received)
            line = self.rng.choice(self._goods(po))
            back = max(Decimal(1), (line.quantity * Decimal("0.1")).to_integral_value())
            if back < line.quantity:
                self._receive(po, {line.line_no: -back}, received + timedelta(days=1))
        else:
            self._receive(po, quantities, received)
        return po

    # -- the document stream -----------------------------------------------------------------

    def build(self, progress: Callable[[int], None] | None = None) -> World:
        """Generate the whole world; `progress` is called with the count of invoices made."""
        days = (self.config.end - self.config.start).days
        dates = sorted(
            self.config.start + timedelta(days=self.rng.randrange(days))
            for _ in range(self.config.invoices)
        )
        dates = [_business_day(d) for d in dates]
        made = 0
        index = 0
        while made < self.config.invoices:
            day = dates[min(index, len(dates) - 1)]
            index += 1
            made += self._one_invoice_slot(day, remaining=self.config.invoices - made)
            if self.rng.random() < CREDIT_NOTE_RATE:
                self._credit_note(day)
            if self.rng.random() < CLAIM_RATE:
                self._claim(day)
            if progress is not None:
                progress(made)
        self.world.documents.sort(key=lambda d: (d.document.issue_date or date.min, d.doc_id))
        _mark_over_credits(self.world.documents)
        return self.world

    def _one_invoice_slot(self, day: date, remaining: int) -> int:
        if self.rng.random() >= EXCEPTION_RATE:
            variant = _pick(self.rng, CLEAN_VARIANTS)
            if variant == "partial_billing" and remaining >= 2:
                return self._partial_billing(day)
            if variant == "partial_billing":
                variant = "plain"
            return self._clean(day, variant)
        pool = {**DECIDABLE_WEIGHTS, **AMBIGUOUS_WEIGHTS}
        scenario = _pick(self.rng, pool)
        if scenario == "split_below_limit" and remaining < 2:
            scenario = "price_variance"
        if scenario in ("duplicate_exact", "duplicate_fuzzy") and not self.originals:
            scenario = "price_variance"
        return getattr(self, "_s_" + scenario)(day)

    def _supplier(self) -> Supplier:
        return self.rng.choices(self.active, weights=self.weights)[0]

    def _emit(self, draft: _Draft) -> GeneratedDocument:
        document = _freeze(draft)
        self.doc_seq += 1
        generated = GeneratedDocument(
            doc_id=f"D{self.doc_seq:06d}",
            document=document,
            supplier=draft.supplier,
            truth=draft.truth,
            company=draft.company,
            po_number=draft.po.number if draft.po is not None else None,
        )
        self.world.documents.append(generated)
        return generated

    def _finish(self, draft: _Draft, *, original: bool = False) -> GeneratedDocument:
        """Add the consequences every scenario shares, emit, and keep PO billing up to date."""
        po = draft.po
        same_currency = po is not None and draft.currency == po.currency
        if (
            po is not None
            and same_currency
            and po.status == "open"
            and draft.po_reference == po.number
        ):
            before = self.invoiced_net.get(po.number, Decimal(0))
            value = po.amount
            allowed = min(_money(value * AMOUNT_OVER_PO_PCT), AMOUNT_OVER_PO_ABS)
            if _money(draft.net + before - value) > allowed:
                draft.truth.reasons.add(str(R.AMOUNT_OVER_PO))
        if (
            po is not None
            and draft.po_reference == po.number
            and R.DUPLICATE not in draft.truth.reasons
        ):
            self.invoiced_net[po.number] = self.invoiced_net.get(po.number, Decimal(0)) + draft.net
        generated = self._emit(draft)
        if original and not draft.truth.reasons:
            self.originals.append(generated)
        return generated

    # -- clean documents ---------------------------------------------------------------------

    def _clean(self, day: date, variant: str) -> int:
        supplier = self._supplier()
        if variant == "planned_freight":
            freight = _money(Decimal(self.rng.uniform(15, 90)))
            po = self._ordered_and_received(supplier, day, planned_freight=freight)
            draft = self._draft(supplier, po, day)
            draft.truth.scenarios.append(variant)
            self._finish(draft, original=True)
            return 1
        if variant == "uom_dozen":
            po = self._ordered_and_received(supplier, day, pack_multiples=True)
            draft = self._draft(supplier, po, day)
            for line in draft.lines:
                if line.unit_code == "C62" and line.quantity % 12 == 0 and line.quantity >= 12:
                    line.quantity /= 12
                    line.unit_code = "DZN"
                    line.unit_price *= 12
                    break
            draft.truth.scenarios.append(variant)
            self._finish(draft)
            return 1
        po = self._ordered_and_received(supplier, day, variant=variant)
        draft = self._draft(supplier, po, day)
        if variant == "returned_before_invoice":
            received = self._received(po)
            for line in draft.lines:
                if line.po_line is not None and line.po_line.line_no in received:
                    line.quantity = received[line.po_line.line_no]
        draft.truth.scenarios.append(variant)
        self._finish(draft, original=variant == "plain")
        return 1

    def _received(self, po: PurchaseOrder) -> dict[str, Decimal]:
        out: dict[str, Decimal] = {}
        for receipt in self.world.receipts:
            if receipt.po_number == po.number:
                for line in receipt.lines:
                    out[line.po_line_no] = out.get(line.po_line_no, Decimal(0)) + line.quantity
        return out

    def _partial_billing(self, day: date) -> int:
        """Two deliveries, each billed on its own invoice: clean, but the PO is billed twice."""
        supplier = self._supplier()
        order = day - timedelta(days=self.rng.randint(8, 30))
        po = self._po(supplier, order)
        goods = self._goods(po)
        if not goods or any(line.quantity < 2 for line in goods):
            return self._clean(day, "plain")  # nothing to deliver in two parts
        first = {line.line_no: (line.quantity / 2).to_integral_value() for line in goods}
        rest = {line.line_no: line.quantity - first[line.line_no] for line in goods}
        self._receive(po, first, order + timedelta(days=2))
        self._receive(po, rest, order + timedelta(days=5))
        first_bill = {**{line.line_no: line.quantity for line in po.lines}, **first}
        rest_bill = {**{line.line_no: Decimal(0) for line in po.lines}, **rest}
        for quantities, issue in (
            (first_bill, order + timedelta(days=3)),
            (rest_bill, max(day, order + timedelta(days=6))),
        ):
            draft = self._draft(supplier, po, _business_day(issue), quantities)
            draft.truth.scenarios.append("partial_billing")
            self._finish(draft)
        return 2

    # -- rule-decidable scenarios ------------------------------------------------------------

    def _base(self, day: date, **po_args: Any) -> _Draft:
        supplier = self._supplier()
        po = self._ordered_and_received(supplier, day, **po_args)
        return self._draft(supplier, po, day)

    def _maybe_second(self, draft: _Draft, first: str) -> None:
        if self.rng.random() >= SECOND_EXCEPTION_RATE:
            return
        # Without a usable PO (or in another currency) prices and freight are not compared,
        # so only header-level exceptions can be layered on.
        header_only = first in ("no_po", "invalid_po", "currency_mismatch")
        options = [
            s
            for s in SECOND_SCENARIOS
            if s != first and (not header_only or s in ("bank_changed", "not_balanced"))
        ]
        getattr(self, "_mod_" + self.rng.choice(options))(draft)

    def _decidable(
        self, day: date, name: str, modify: Callable[[_Draft], None], **po_args: Any
    ) -> int:
        draft = self._base(day, **po_args)
        modify(draft)
        self._maybe_second(draft, name)
        self._finish(draft)
        return 1

    def _mod_price_variance(self, draft: _Draft) -> None:
        line = self.rng.choice(
            [ln for ln in draft.lines if ln.kind in (LineKind.GOODS, LineKind.SERVICE)]
        )
        factor = Decimal(str(round(self.rng.uniform(1.04, 1.15), 4)))
        new_price = _money(line.unit_price * factor)
        # At least 3 % and a cent above: the 2 % tolerance must be clearly exceeded.
        floor = _money(line.unit_price * Decimal("1.03")) + CENT
        line.unit_price = max(new_price, floor)
        draft.truth.add("price_variance", R.PRICE_VARIANCE)

    def _s_price_variance(self, day: date) -> int:
        return self._decidable(day, "price_variance", self._mod_price_variance)

    def _s_qty_over_received(self, day: date) -> int:
        supplier = self._supplier()
        order = day - timedelta(days=self.rng.randint(8, 40))
        po = self._po(supplier, order)
        goods = self._goods(po)
        if not goods:
            return self._s_price_variance(day)
        short = self.rng.choice(goods)
        quantities = {line.line_no: line.quantity for line in goods}
        if short.quantity < 2:
            short_po = short.model_copy(update={"quantity": Decimal(10)})
            po.lines[po.lines.index(short)] = short_po
            short = short_po
            quantities[short.line_no] = short.quantity
        quantities[short.line_no] = max(
            Decimal(1),
            (short.quantity * Decimal(str(round(self.rng.uniform(0.3, 0.9), 2)))).to_integral_value(
                ROUND_HALF_UP
            ),
        )
        if quantities[short.line_no] >= short.quantity:
            quantities[short.line_no] = short.quantity - 1
        self._receive(po, quantities, order + timedelta(days=self.rng.randint(2, 7)))
        draft = self._draft(supplier, po, day)
        draft.truth.add("qty_over_received", R.QTY_OVER_RECEIVED)
        self._maybe_second(draft, "qty_over_received")
        self._finish(draft)
        return 1

    def _s_no_receipt(self, day: date) -> int:
        supplier = self._supplier()
        po = self._po(supplier, day - timedelta(days=self.rng.randint(3, 20)))
        draft = self._draft(supplier, po, day)
        if not self._goods(po):
            draft.truth.add("no_receipt_services")  # 2-way only: nothing to wait for
        else:
            draft.truth.add("no_receipt", R.NO_RECEIPT)
        self._maybe_second(draft, "no_receipt")
        self._finish(draft)
        return 1

    def _s_qty_over_ordered(self, day: date) -> int:
        """The supplier shipped more than ordered and the warehouse received it all."""
        supplier = self._supplier()
        order = day - timedelta(days=self.rng.randint(8, 40))
        po = self._po(supplier, order)
        quantities = {line.line_no: line.quantity for line in po.lines}
        line = self.rng.choice(po.lines)
        extra = max(
            Decimal(1),
            (
                line.quantity * Decimal(str(round(self.rng.uniform(0.05, 0.3), 2)))
            ).to_integral_value(),
        )
        quantities[line.line_no] = line.quantity + extra
        self._receive(
            po,
            {ln.line_no: quantities[ln.line_no] for ln in self._goods(po)},
            order + timedelta(days=3),
        )
        draft = self._draft(supplier, po, day, quantities)
        draft.truth.add("qty_over_ordered", R.QTY_OVER_ORDERED)
        self._maybe_second(draft, "qty_over_ordered")
        self._finish(draft)
        return 1

    def _mod_freight_unplanned(self, draft: _Draft) -> None:
        amount = _money(Decimal(str(self.rng.uniform(8, 95))))
        rate = draft.supplier.country.standard_rate
        label = _WORDS["freight"][draft.supplier.language]
        if self.rng.random() < 0.5:
            draft.lines.append(
                _Line(None, label, None, Decimal(1), "C62", amount, rate, LineKind.FREIGHT)
            )
        else:
            draft.charges.append(
                AllowanceCharge(
                    is_charge=True,
                    amount=amount,
                    reason=label,
                    reason_code="FC",
                    tax_category="S",
                    tax_rate=rate,
                )
            )
        draft.truth.add("freight_unplanned", R.FREIGHT_UNPLANNED)

    def _s_freight_unplanned(self, day: date) -> int:
        return self._decidable(day, "freight_unplanned", self._mod_freight_unplanned)

    def _s_tax_mismatch(self, day: date) -> int:
        draft = self._base(day)
        line = max(draft.lines, key=lambda ln: ln.amount)
        country = draft.supplier.country
        wrong = (
            country.reduced_rate
            if line.tax_rate == country.standard_rate
            else country.standard_rate
        )
        if line.amount * abs(wrong - line.tax_rate) / 100 <= TAX_TOLERANCE + CENT:
            line.quantity = (
                TAX_TOLERANCE * 300 / (line.unit_price * abs(wrong - line.tax_rate))
            ).to_integral_value() + 1
            if line.po_line is not None:
                self._bump_po_line(draft, line)
        line.tax_rate = wrong
        draft.truth.add("tax_mismatch", R.TAX_MISMATCH)
        self._maybe_second(draft, "tax_mismatch")
        self._finish(draft)
        return 1

    def _bump_po_line(self, draft: _Draft, line: _Line) -> None:
        """Raise an ordered quantity (and its receipt) to what the line now bills."""
        po = draft.po
        assert po is not None and line.po_line is not None
        index = po.lines.index(line.po_line)
        new = line.po_line.model_copy(update={"quantity": line.quantity})
        po.lines[index] = new
        line.po_line = new
        for receipt_index, receipt in enumerate(self.world.receipts):
            if receipt.po_number == po.number:
                self.world.receipts[receipt_index] = receipt.model_copy(
                    update={
                        "lines": [
                            rl.model_copy(update={"quantity": line.quantity})
                            if rl.po_line_no == new.line_no
                            else rl
                            for rl in receipt.lines
                        ]
                    }
                )
                break

    def _s_uom_unknown(self, day: date) -> int:
        draft = self._base(day, pack_multiples=True)
        line = next((ln for ln in draft.lines if _packed(draft, ln)), None)
        if line is None:
            return self._finish_as(draft, self._mod_price_variance)
        pack = _pack(draft, line)
        line.quantity /= pack
        line.unit_price *= pack
        line.unit_code = "CT"  # carton: no standard conversion to pieces
        draft.truth.add("uom_unknown", R.UOM_MISMATCH)
        self._finish(draft)
        return 1

    def _finish_as(self, draft: _Draft, modify: Callable[[_Draft], None]) -> int:
        modify(draft)
        self._finish(draft)
        return 1

    def _s_closed_po(self, day: date) -> int:
        draft = self._base(day)
        assert draft.po is not None
        closed = draft.po.model_copy(update={"status": "closed"})
        self.world.purchase_orders[self.world.purchase_orders.index(draft.po)] = closed
        draft.po = closed
        draft.truth.add("closed_po", R.AMOUNT_OVER_PO)
        self._maybe_second(draft, "closed_po")
        self._finish(draft)
        return 1

    def _s_no_po(self, day: date) -> int:
        draft = self._base(day)
        draft.po_reference = None
        draft.truth.add("no_po", R.NO_PO)
        self._maybe_second(draft, "no_po")
        self._finish(draft)
        return 1

    def _s_invalid_po(self, day: date) -> int:
        draft = self._base(day)
        others = [po for po in self.world.purchase_orders if po.supplier_ref != draft.supplier.ref]
        if others and self.rng.random() < 0.3:
            draft.po_reference = self.rng.choice(others).number  # another supplier's PO
        else:
            assert draft.po is not None
            draft.po_reference = "PO " + draft.po.number[2:]  # never a PO number of ours
        draft.truth.add("invalid_po", R.INVALID_PO)
        self._maybe_second(draft, "invalid_po")
        self._finish(draft)
        return 1

    def _s_vendor_unknown(self, day: date) -> int:
        for attempt in range(20):
            supplier = unknown_supplier(
                self.config.seed * 1000 + self.doc_seq + attempt, self.rng, self.config.languages
            )
            match = process.extractOne(supplier.name, self.known_names, scorer=fuzz.WRatio)
            if match is None or match[1] < 80:
                break
        supplier.ref = ""
        item = supplier.items[0]
        line = _Line(
            None,
            item.description,
            item.item_id,
            Decimal(self.rng.randint(2, 40)),
            item.unit_code,
            item.price,
            item.tax_rate,
            LineKind.SERVICE,
        )
        draft = _Draft(
            supplier=supplier,
            company=_company_for(supplier),
            issue=day,
            number=f"{self.rng.randrange(100, 9999)}",
            po=None,
            po_reference=None,
            lines=[line],
            currency=supplier.country.currency,
            iban=supplier.iban,
        )
        draft.truth.add("vendor_unknown", R.VENDOR_UNKNOWN, R.NO_PO)
        self._finish(draft)
        return 1

    def _s_vendor_blocked(self, day: date) -> int:
        if not self.blocked:
            return self._s_price_variance(day)
        supplier = self.rng.choice(self.blocked)
        po = self._ordered_and_received(supplier, day)
        draft = self._draft(supplier, po, day)
        draft.truth.add("vendor_blocked", R.VENDOR_BLOCKED)
        self._finish(draft)
        return 1

    def _mod_bank_changed(self, draft: _Draft) -> None:
        draft.iban = fresh_iban(self.config.seed * 7919 + self.doc_seq)
        draft.truth.add("bank_changed", R.BANK_DETAILS_CHANGED)

    def _s_bank_changed(self, day: date) -> int:
        # Half of them on a large invoice: the fraud pattern that needs two people to confirm.
        large = self.rng.random() < 0.5
        draft = self._base(
            day, min_value=Decimal(self.rng.randint(15000, 60000)) if large else None
        )
        self._mod_bank_changed(draft)
        if large:
            draft.truth.scenarios.append("bank_changed_large")
        self._maybe_second(draft, "bank_changed")
        self._finish(draft)
        return 1

    def _mod_not_balanced(self, draft: _Draft) -> None:
        error = _money(Decimal(str(self.rng.uniform(0.5, 60))))
        draft.gross_error = error if self.rng.random() < 0.5 else -error
        draft.truth.add("not_balanced", R.NOT_BALANCED)

    def _s_not_balanced(self, day: date) -> int:
        return self._decidable(day, "not_balanced", self._mod_not_balanced)

    def _s_currency_mismatch(self, day: date) -> int:
        draft = self._base(day)
        draft.currency = self.rng.choice(
            [c for c in ("EUR", "GBP", "USD", "CHF") if c != draft.currency]
        )
        draft.truth.add("currency_mismatch", R.CURRENCY_MISMATCH)
        self._finish(draft)
        return 1

    def _s_missing_data(self, day: date) -> int:
        draft = self._base(day)
        draft.drop_issue_date = True
        draft.truth.add("missing_data", R.MISSING_DATA)
        self._finish(draft)
        return 1

    def _s_duplicate_exact(self, day: date) -> int:
        original = self.rng.choice(self.originals)
        doc = original.document
        variant = self.rng.choice(["resend", "resend", "reformatted", "day_shift"])
        number = doc.number or ""
        if variant == "reformatted":
            number = _reformat(number, self.rng)
            if normalise_invoice_number(number) != normalise_invoice_number(doc.number or ""):
                number, variant = doc.number or "", "resend"
        issue = doc.issue_date or day
        if variant == "day_shift":
            issue = issue + timedelta(days=1)
        copy = doc.model_copy(
            update={
                "number": number,
                "issue_date": issue,
                "notes": [*doc.notes, _WORDS["copy"][original.supplier.language]],
            }
        )
        truth = Truth(duplicate_of=original.doc_id)
        truth.add(f"duplicate_{variant}", R.DUPLICATE)
        self._emit_related(original, copy, truth)
        self.originals.remove(original)
        return 1

    def _emit_related(self, original: GeneratedDocument, document: Document, truth: Truth) -> None:
        """A document about an earlier one (a re-send, credit note or claim): same supplier,
        company and PO."""
        self.doc_seq += 1
        self.world.documents.append(
            GeneratedDocument(
                f"D{self.doc_seq:06d}",
                document,
                original.supplier,
                truth,
                original.company,
                original.po_number,
            )
        )

    # -- ambiguous scenarios -----------------------------------------------------------------

    def _s_duplicate_fuzzy(self, day: date) -> int:
        original = self.rng.choice(self.originals)
        doc = original.document
        variant = self.rng.choice(["ocr_swap", "cents", "new_number"])
        number, lines = doc.number or "", doc.lines
        if variant == "ocr_swap":
            swapped = _ocr_swap(number, self.rng)
            if swapped is None:
                variant = "new_number"
            else:
                number = swapped
        if variant == "new_number":
            number = self._doc_number(original.supplier, day)
        copy = doc.model_copy(
            update={"number": number, "issue_date": max(day, doc.issue_date or day)}
        )
        if variant == "cents":
            first = lines[0]
            bumped = first.model_copy(
                update={
                    "unit_price": first.unit_price + CENT,
                    "line_amount": _money((first.unit_price + CENT) * first.quantity),
                }
            )
            copy = _rebalanced(copy, [bumped, *lines[1:]])
        truth = Truth(duplicate_of=original.doc_id)
        truth.add(f"duplicate_{variant}", R.DUPLICATE, decidable=False)
        self._emit_related(original, copy, truth)
        self.originals.remove(original)
        return 1

    def _s_uom_as_price(self, day: date) -> int:
        """A carton billed as if it were one unit: the rules see a price far above the PO."""
        draft = self._base(day, pack_multiples=True)
        candidates = [ln for ln in draft.lines if _packed(draft, ln)]
        if not candidates:
            return self._finish_as(draft, self._mod_price_variance)
        line = self.rng.choice(candidates)
        pack = _pack(draft, line)
        line.quantity /= pack
        line.unit_price *= pack
        line.description = (
            f"{line.description} ({_WORDS['carton'][draft.supplier.language].format(n=pack)})"
        )
        draft.truth.add("uom_as_price", R.UOM_MISMATCH, decidable=False)
        self._finish(draft)
        return 1

    def _s_freight_in_price(self, day: date) -> int:
        """Freight folded into every unit price, with a note saying so."""
        draft = self._base(day)
        factor = Decimal(str(round(self.rng.uniform(1.035, 1.07), 4)))
        for line in draft.lines:
            if line.kind in (LineKind.GOODS, LineKind.SERVICE):
                line.unit_price = max(
                    _money(line.unit_price * factor),
                    _money(line.unit_price * Decimal("1.03")) + CENT,
                )
        draft.notes.append(_WORDS["freight_incl"][draft.supplier.language])
        draft.truth.add("freight_in_price", R.FREIGHT_UNPLANNED, decidable=False)
        self._finish(draft)
        return 1

    def _s_late_receipt(self, day: date) -> int:
        """Part of the goods is received on time; the rest is posted days after the invoice."""
        supplier = self._supplier()
        order = day - timedelta(days=self.rng.randint(8, 40))
        po = self._po(supplier, order)
        goods = [line for line in self._goods(po) if line.quantity >= 2]
        if not goods:
            draft = self._draft(supplier, po, day)
            self._receive(
                po, {ln.line_no: ln.quantity for ln in self._goods(po)}, order + timedelta(days=2)
            )
            return self._finish_as(draft, self._mod_price_variance)
        line = self.rng.choice(goods)
        now = {ln.line_no: ln.quantity for ln in self._goods(po)}
        now[line.line_no] = (line.quantity * Decimal("0.5")).to_integral_value()
        self._receive(po, now, order + timedelta(days=3))
        self._receive(
            po,
            {line.line_no: line.quantity - now[line.line_no]},
            day + timedelta(days=self.rng.randint(1, 6)),
            late=True,
        )
        draft = self._draft(supplier, po, day)
        draft.truth.add("late_receipt", R.NO_RECEIPT, decidable=False)
        self._finish(draft)
        return 1

    def _s_split_below_limit(self, day: date) -> int:
        """One large order billed as two invoices on one day, each under the four-eyes limit."""
        supplier = self._supplier()
        goods_items = [i for i in supplier.items if i.unit_code != "HUR"]
        if not goods_items:
            return self._s_price_variance(day)
        item = self.rng.choice(goods_items)
        target_gross = Decimal(self.rng.randint(22000, 24800))
        unit_gross = item.price_on(day) * (1 + item.tax_rate / 100)
        half = (target_gross / unit_gross).to_integral_value(rounding="ROUND_FLOOR")
        order = day - timedelta(days=self.rng.randint(8, 30))
        po = PurchaseOrder(
            number=self._po_number(),
            supplier_ref=supplier.ref,
            company=_company_for(supplier).code,
            order_date=order,
            currency=supplier.country.currency,
            lines=[
                PurchaseOrderLine(
                    line_no="10",
                    item_id=item.item_id,
                    description=item.description,
                    category=item.category,
                    quantity=half * 2,
                    unit_code=item.unit_code,
                    unit_price=item.price_on(order),
                    tax_rate=item.tax_rate,
                )
            ],
        )
        self.world.purchase_orders.append(po)
        self._receive(po, {"10": half * 2}, order + timedelta(days=3))
        for _ in range(2):
            draft = self._draft(supplier, po, day, {"10": half})
            draft.truth.add("split_below_limit", R.PRICE_ANOMALY, decidable=False)
            self._finish(draft)
        return 2

    def _s_unusual_price(self, day: date) -> int:
        """A PO (and so an invoice) at several times the supplier's contract price."""
        factor = Decimal(str(round(self.rng.uniform(2.5, 4.0), 2)))
        draft = self._base(day, price_factor=factor)
        draft.truth.add("unusual_price", R.PRICE_ANOMALY, decidable=False)
        self._finish(draft)
        return 1

    # -- credit notes and claims -------------------------------------------------------------

    def _credit_note(self, day: date) -> None:
        if not self.originals:
            return
        original = self.rng.choice(self.originals)
        doc = original.document
        supplier = original.supplier
        issue = _business_day(
            max(day, (doc.issue_date or day) + timedelta(days=self.rng.randint(3, 20)))
        )
        line = self.rng.choice(doc.lines)
        qty = max(Decimal(1), (line.quantity * Decimal("0.2")).to_integral_value())
        credited_line = line.model_copy(
            update={
                "line_id": "1",
                "quantity": qty,
                "line_amount": _money(qty * line.unit_price),
                "description": f"{_WORDS['credit'][supplier.language]}: {line.description}",
            }
        )
        truth = Truth()
        reference: str | None = doc.number
        lines = [credited_line]
        roll = self.rng.random()
        if roll < UNMATCHED_CREDIT_RATE / 2:
            reference = _ocr_swap(doc.number or "", self.rng) or f"{doc.number}-X"
            truth.add("credit_unknown_reference", R.CREDIT_UNMATCHED)
        elif roll < UNMATCHED_CREDIT_RATE:
            # Everything on the invoice and a quarter more: more than it could ever credit.
            lines = [
                ln.model_copy(
                    update={
                        "line_id": str(n),
                        "quantity": (ln.quantity * Decimal("1.25")).to_integral_value(
                            ROUND_CEILING
                        ),
                        "line_amount": _money(
                            (ln.quantity * Decimal("1.25")).to_integral_value(ROUND_CEILING)
                            * ln.unit_price
                        ),
                    }
                )
                for n, ln in enumerate(doc.lines, start=1)
            ]
            truth.add("credit_over_invoice", R.CREDIT_UNMATCHED)
        else:
            truth.add("credit_note")
        header = {
            **_header(doc),
            "number": self._doc_number(supplier, issue),
            "issue_date": issue,
            "due_date": issue,
        }
        credit = _rebalanced(CreditNote(**header, billing_reference=reference), lines)
        self._emit_related(original, credit, truth)

    def _claim(self, day: date) -> None:
        if not self.originals:
            return
        original = self.rng.choice(self.originals)
        doc = original.document
        supplier = original.supplier
        issue = _business_day(
            max(day, (doc.issue_date or day) + timedelta(days=self.rng.randint(5, 30)))
        )
        amount = _money(Decimal(str(self.rng.uniform(20, 250))))
        rate = supplier.country.standard_rate
        label = _WORDS["claim"][supplier.language]
        line = DocumentLine(
            line_id="1",
            description=label,
            quantity=Decimal(1),
            unit_price=amount,
            tax_category="S",
            tax_rate=rate,
            line_amount=amount,
            kind=LineKind.SURCHARGE,
        )
        truth = Truth()
        reference = doc.number
        if self.rng.random() < UNMATCHED_CREDIT_RATE:
            reference = f"{doc.number}9"
            truth.add("claim_unknown_reference", R.CREDIT_UNMATCHED)
        else:
            truth.add("claim")
        claim = _rebalanced(
            Claim(
                **{
                    **_header(doc),
                    "number": self._doc_number(supplier, issue),
                    "issue_date": issue,
                    "due_date": issue + timedelta(days=30),
                    "billing_reference": reference,
                    "notes": [label],
                }
            ),
            [line],
        )
        self._emit_related(original, claim, truth)


# -- helpers ----------------------------------------------------------------------------------


def _mark_over_credits(documents: list[GeneratedDocument]) -> None:
    """In arrival order, flag the credit note that takes an invoice's credits over its gross.

    Done after sorting, because two credit notes against one invoice may be generated in one
    order and dated in the other.
    """
    invoices: dict[tuple[str, str], Decimal] = {}
    credited: dict[tuple[str, str], Decimal] = {}
    for generated in documents:
        doc = generated.document
        if isinstance(doc, Invoice) and doc.number and doc.gross is not None:
            invoices.setdefault(
                (generated.supplier.ref, normalise_invoice_number(doc.number)), doc.gross
            )
        if not isinstance(doc, CreditNote) or not doc.billing_reference or doc.gross is None:
            continue
        key = (generated.supplier.ref, normalise_invoice_number(doc.billing_reference))
        if key not in invoices:
            continue
        credited[key] = credited.get(key, Decimal(0)) + doc.gross
        if credited[key] > invoices[key] and R.CREDIT_UNMATCHED not in generated.truth.reasons:
            generated.truth.add("credit_over_invoice", R.CREDIT_UNMATCHED)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _business_day(day: date) -> date:
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def _company_for(supplier: Supplier) -> Company:
    code = {"FR": "2000", "GB": "3000"}.get(supplier.country.code, "1000")
    return next(c for c in COMPANIES if c.code == code)


def _pack(draft: _Draft, line: _Line) -> int:
    item = next((i for i in draft.supplier.items if i.item_id == line.item_id), None)
    return item.pack if item is not None else 1


def _packed(draft: _Draft, line: _Line) -> bool:
    """A piece-counted line whose quantity is a whole number of cartons."""
    pack = _pack(draft, line)
    return line.unit_code == "C62" and pack > 1 and line.quantity % pack == 0


_OCR = {"0": "O", "1": "I", "8": "B", "5": "S", "O": "0", "I": "1", "B": "8", "S": "5"}


def _ocr_swap(number: str, rng: random.Random) -> str | None:
    """The number as OCR misreads it: one of O/0, I/1, B/8, S/5 swapped (None if none fits)."""
    positions = [i for i, ch in enumerate(number) if ch in _OCR]
    rng.shuffle(positions)
    for position in positions:
        swapped = number[:position] + _OCR[number[position]] + number[position + 1 :]
        if normalise_invoice_number(swapped) != normalise_invoice_number(number):
            return swapped
    return None


def _reformat(number: str, rng: random.Random) -> str:
    """The same number typed differently: separators dropped or added, zeros trimmed."""
    style = rng.randrange(3)
    if style == 0:
        return number.replace("-", "").replace("/", "")
    if style == 1:
        return number.replace("-", " ").replace("/", "-")
    digits = "".join(ch for ch in number if ch.isdigit())
    return digits.lstrip("0") or digits


def _header(doc: Document) -> dict[str, object]:
    return {
        "currency": doc.currency,
        "supplier": doc.supplier,
        "buyer": doc.buyer,
        "po_reference": doc.po_reference,
        "payment": doc.payment,
        "source_format": None,
    }


def _totals_for(
    lines: list[DocumentLine], charges: list[AllowanceCharge], gross_error: Decimal = Decimal(0)
) -> tuple[DocumentTotals, list[TaxSubtotal]]:
    line_total = sum((line.line_amount for line in lines), Decimal(0))
    charge_total = sum((c.amount for c in charges if c.is_charge), Decimal(0))
    allowance_total = sum((c.amount for c in charges if not c.is_charge), Decimal(0))
    by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        rate = line.tax_rate or Decimal(0)
        by_rate[rate] = by_rate.get(rate, Decimal(0)) + line.line_amount
    for c in charges:
        rate = c.tax_rate or Decimal(0)
        by_rate[rate] = by_rate.get(rate, Decimal(0)) + (c.amount if c.is_charge else -c.amount)
    breakdown = [
        TaxSubtotal(
            category="S" if rate else "Z",
            rate=rate,
            taxable_amount=taxable,
            tax_amount=_money(taxable * rate / 100),
        )
        for rate, taxable in sorted(by_rate.items())
    ]
    tax = sum((row.tax_amount for row in breakdown), Decimal(0))
    net = line_total + charge_total - allowance_total
    gross = net + tax + gross_error
    totals = DocumentTotals(
        line_extension=line_total,
        allowances=allowance_total,
        charges=charge_total,
        tax_exclusive=net,
        tax=tax,
        tax_inclusive=gross,
        payable=gross,
    )
    return totals, breakdown


def _rebalanced(doc: Document, lines: list[DocumentLine]) -> Document:
    totals, breakdown = _totals_for(lines, doc.allowance_charges)
    return doc.model_copy(update={"lines": lines, "totals": totals, "tax_breakdown": breakdown})


def _supplier_party(supplier: Supplier) -> Party:
    return Party(
        name=supplier.name,
        vat_id=supplier.vat_id,
        address=Address(
            street=supplier.street,
            city=supplier.city,
            postal_code=supplier.postal_code,
            country_code=supplier.country.code,
        ),
    )


def _buyer_party(company: Company) -> Party:
    return Party(
        name=company.name,
        vat_id=company.vat_id,
        address=Address(
            street=company.street,
            city=company.city,
            postal_code=company.postal_code,
            country_code=company.country,
        ),
    )


def _freeze(draft: _Draft) -> Document:
    lines = [
        DocumentLine(
            line_id=str(number),
            item_id=line.item_id,
            description=line.description,
            quantity=line.quantity,
            unit_code=line.unit_code,
            unit_price=line.unit_price,
            tax_category="S" if line.tax_rate else "Z",
            tax_rate=line.tax_rate,
            line_amount=line.amount,
            po_line_ref=line.po_line.line_no
            if line.po_line is not None and draft.po_reference
            else None,
            kind=line.kind,
        )
        for number, line in enumerate(draft.lines, start=1)
    ]
    totals, breakdown = _totals_for(lines, draft.charges, draft.gross_error)
    return Invoice(
        number=draft.number,
        issue_date=None if draft.drop_issue_date else draft.issue,
        due_date=draft.issue + timedelta(days=30),
        currency=draft.currency,
        supplier=_supplier_party(draft.supplier),
        buyer=_buyer_party(draft.company),
        po_reference=draft.po_reference,
        lines=lines,
        allowance_charges=draft.charges,
        tax_breakdown=breakdown,
        totals=totals,
        payment=PaymentDetails(
            means_code="58", iban=draft.iban, terms=_WORDS["terms"][draft.supplier.language]
        ),
        notes=draft.notes,
    )


def generate_world(config: WorldConfig, progress: Callable[[int], None] | None = None) -> World:
    """Generate a world from its configuration (same config, same world)."""
    return Generator(config).build(progress)
