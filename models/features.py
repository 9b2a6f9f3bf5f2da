"""Case features for the reason classifier: rule findings, document facts, supplier history.

Documents are featurised in arrival order in one pass. Supplier history (volume, past exception
mix, item prices, usual amounts, possible earlier copies) is read from state that holds only the
documents *before* the current one, and is updated after it: changing a later document can never
change an earlier document's features. Master data (POs, receipts) is what the ERP knows at
triage; PO price history only counts orders placed before the document's own PO.

Every feature has clerk words (`describe`), so an explanation reads "price 12 % above PO",
not "f17". Text (line descriptions, notes) travels beside the numbers for the embedder.
"""

from __future__ import annotations

import copy
import math
import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import cached_property
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.duplicates import ocr_number_similarity
from pipelines.canonical import (
    GoodsReceipt,
    LineKind,
    PurchaseOrder,
    PurchaseOrderLine,
    SupplierDocument,
)
from pipelines.reasons import REASONS, ReasonCode

FOUR_EYES_LIMIT = 25000.0  # governance default: invoices at or above need a second approver
NAN = float("nan")


@dataclass(frozen=True)
class RuleFinding:
    """The numbers of one rule finding, as the matcher exported them."""

    code: ReasonCode
    expected: Decimal | None = None
    actual: Decimal | None = None
    variance: Decimal | None = None
    allowed: Decimal | None = None  # tolerance allowance that applied
    line_id: str | None = None

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RuleFinding:
        """Read one finding of `findings.jsonl` (strings for amounts, a tolerance dict)."""
        tolerance = record.get("tolerance") or {}

        def dec(value: object) -> Decimal | None:
            return None if value in (None, "") else Decimal(str(value))

        return cls(
            code=ReasonCode(record["code"]),
            expected=dec(record.get("expected")),
            actual=dec(record.get("actual")),
            variance=dec(record.get("variance")),
            allowed=dec(tolerance.get("allowed")) if isinstance(tolerance, Mapping) else None,
            line_id=record.get("line_id"),
        )


@dataclass(frozen=True)
class CaseInput:
    """One document to featurise, with what the rules found and its supplier's master key."""

    document: SupplierDocument
    findings: Sequence[RuleFinding] = ()
    supplier_ref: str | None = None


@dataclass(frozen=True)
class MasterData:
    """POs by number and receipts by PO number, as loaded from the ERP."""

    purchase_orders: Mapping[str, PurchaseOrder]
    receipts: Mapping[str, Sequence[GoodsReceipt]]

    @classmethod
    def of(
        cls, purchase_orders: Sequence[PurchaseOrder], receipts: Sequence[GoodsReceipt]
    ) -> MasterData:
        """Index master-data lists."""
        by_po: dict[str, list[GoodsReceipt]] = defaultdict(list)
        for receipt in receipts:
            by_po[receipt.po_number].append(receipt)
        return cls({po.number: po for po in purchase_orders}, dict(by_po))

    @cached_property
    def unit_prices(self) -> Mapping[str, Sequence[tuple[date, float]]]:
        """Ordered unit prices per item across all POs, by order date (read-only, computed once).

        A served MasterData is shared by every request for the same POs (app/scoring/service.py).
        """
        index: dict[str, list[tuple[date, float]]] = defaultdict(list)
        for po in self.purchase_orders.values():
            if po.order_date is None:
                continue
            for line in po.lines:
                if line.item_id and line.unit_price > 0:
                    index[line.item_id].append((po.order_date, float(line.unit_price)))
        return {item: tuple(prices) for item, prices in index.items()}


@dataclass
class CaseFeatures:
    """Numeric features (one row per document) and the texts to embed beside them."""

    names: list[str]
    matrix: NDArray[np.float64]
    descriptions: list[list[str]]  # line descriptions per document
    notes: list[str]  # document and line notes joined, per document
    # Mean line-description embedding and note embedding side by side (set by the embedder).
    text: NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return int(self.matrix.shape[0])

    def rows(self, index: Sequence[int] | NDArray[np.int64]) -> CaseFeatures:
        """A subset of documents."""
        idx = [int(i) for i in index]
        return CaseFeatures(
            self.names,
            self.matrix[idx],
            [self.descriptions[i] for i in idx],
            [self.notes[i] for i in idx],
            None if self.text is None else self.text[idx],
        )


def _short(code: ReasonCode) -> str:
    return code.value.lower()


# -- feature names and the words a clerk reads for them ------------------------------------

_WORDS: dict[str, Callable[[float], str]] = {}


def _pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def _code_words(code: ReasonCode) -> dict[str, Callable[[float], str]]:
    text = REASONS[code].meaning
    meaning, name = text[0].lower() + text[1:], code.value
    return {
        f"{_short(code)}:present": lambda v: (
            f"rules flagged: {meaning}" if v > 0 else f"rules did not flag: {meaning}"
        ),
        f"{_short(code)}:count": lambda v: f"{v:.0f} {name} finding(s)",
        f"{_short(code)}:rel_variance": lambda v: f"{name} variance {_pct(v)} of the expected",
        f"{_short(code)}:tolerance_ratio": lambda v: f"{name} variance {v:.1f}x the tolerance",
    }


for _code in ReasonCode:
    _WORDS.update(_code_words(_code))

_WORDS.update(
    {
        "kind_invoice": lambda v: "document is an invoice" if v else "document is not an invoice",
        "kind_credit_note": lambda v: "document is a credit note" if v else "not a credit note",
        "kind_claim": lambda v: "document is a claim" if v else "not a claim",
        "gross": lambda v: f"gross amount {v:,.2f}",
        "net": lambda v: f"net amount {v:,.2f}",
        "lines": lambda v: f"{v:.0f} line(s)",
        "freight_lines": lambda v: f"{v:.0f} freight/surcharge line(s)",
        "freight_charges": lambda v: f"{v:.0f} header freight charge(s)",
        "notes_length": lambda v: f"notes of {v:.0f} characters",
        "has_po_ref": lambda v: "invoice quotes a PO" if v else "no PO quoted",
        "po_known": lambda v: "the PO is known" if v else "the PO is unknown",
        "po_closed": lambda v: "the PO is closed" if v else "the PO is open",
        "po_other_supplier": lambda v: "PO belongs to another supplier" if v else "PO supplier ok",
        "currency_differs": lambda v: "currency differs from the PO" if v else "same currency",
        "days_since_order": lambda v: f"invoiced {v:.0f} days after the order",
        "days_since_receipt": lambda v: f"invoiced {v:.0f} days after the last receipt",
        "receipts": lambda v: f"{v:.0f} goods receipt(s) for the PO",
        "received_ratio_min": lambda v: f"only {_pct(v)} of a line received",
        "received_half": lambda v: "a line is exactly half received" if v else "no half receipt",
        "billed_received_max": lambda v: f"billed {v:.2f}x the received quantity",
        "billed_ordered_max": lambda v: f"billed {v:.2f}x the ordered quantity",
        "billed_ordered_min": lambda v: f"smallest line billed {v:.2f}x the ordered quantity",
        "po_value_share": lambda v: f"invoice is {_pct(v)} of the PO value",
        "po_billed_before": lambda v: f"{_pct(v)} of the PO billed before",
        "price_ratio_max": lambda v: (
            f"price {_pct(v - 1)} above PO" if v >= 1 else f"price {_pct(1 - v)} below PO"
        ),
        "price_ratio_min": lambda v: f"lowest line price {v:.3f}x the PO price",
        "price_ratio_spread": lambda v: f"line price ratios spread by {v:.3f}",
        "price_ratio_integer": lambda v: (
            f"price is {v:.0f}x the PO price (a pack size?)"
            if v
            else "price ratio is not a whole pack"
        ),
        "quantity_times_ratio_matches": lambda v: (
            "quantity x price ratio equals the PO quantity"
            if v
            else "quantity x ratio does not give the PO quantity"
        ),
        "all_lines_one_ratio": lambda v: (
            "all lines raised by the same factor" if v else "lines not raised by one factor"
        ),
        "changed_price_share": lambda v: f"{_pct(v)} of lines priced off the PO",
        "unit_differs": lambda v: f"{v:.0f} line(s) in another unit than the PO",
        "tax_rate_differs": lambda v: f"{v:.0f} line(s) with another VAT rate than the PO",
        "unmatched_lines": lambda v: f"{v:.0f} line(s) not on the PO",
        "near_four_eyes_limit": lambda v: (
            "gross just under the four-eyes limit" if v else "gross not near the four-eyes limit"
        ),
        "half_of_single_line_po": lambda v: (
            "bills exactly half of a one-line PO" if v else "not half of a one-line PO"
        ),
        "missing_fields": lambda v: f"{v:.0f} required field(s) missing",
        "supplier_docs_before": lambda v: f"supplier sent {v:.0f} documents before",
        "supplier_exception_rate": lambda v: f"{_pct(v)} of supplier's past documents had issues",
        "supplier_price_variance_rate": lambda v: f"supplier often off the PO price ({_pct(v)})",
        "supplier_freight_rate": lambda v: f"supplier often bills freight ({_pct(v)})",
        "supplier_over_received_rate": lambda v: f"supplier often bills before receipt ({_pct(v)})",
        "item_price_vs_history": lambda v: f"item price {v:.2f}x what this supplier billed before",
        "po_price_vs_history": lambda v: f"PO price {v:.2f}x earlier POs for the item",
        "amount_zscore": lambda v: f"amount {v:+.1f} sd from supplier's usual",
        "similar_earlier_gross": lambda v: (
            f"an earlier document differs by only {_pct(v)} in gross"
        ),
        "similar_earlier_number": lambda v: f"earlier number {_pct(v)} similar",
        "similar_earlier_days": lambda v: f"similar earlier document {v:.0f} days before",
        "same_day_same_po": lambda v: f"{v:.0f} earlier invoice(s) for this PO the same day",
        "earlier_same_po": lambda v: f"{v:.0f} earlier document(s) on this PO",
    }
)

FEATURE_NAMES: list[str] = [
    f"{_short(code)}:{part}"
    for code in ReasonCode
    for part in ("present", "count", "rel_variance", "tolerance_ratio")
] + [name for name in _WORDS if ":" not in name]


def describe(name: str, value: float) -> str:
    """Clerk words for one feature value (NaN: the fact is unknown for this document)."""
    if isinstance(value, float) and math.isnan(value):
        return f"{name.replace('_', ' ')}: unknown"
    words = _WORDS.get(name)
    return words(value) if words is not None else f"{name} = {value:.3g}"


# -- per-document facts --------------------------------------------------------------------


def _f(value: Decimal | None) -> float:
    return NAN if value is None else float(value)


def _finding_features(findings: Sequence[RuleFinding]) -> dict[str, float]:
    out: dict[str, float] = {}
    by_code: dict[ReasonCode, list[RuleFinding]] = defaultdict(list)
    for item in findings:
        by_code[item.code].append(item)
    for code in ReasonCode:
        items = by_code.get(code, [])
        rel = [
            abs(float(i.variance / i.expected))
            for i in items
            if i.variance is not None and i.expected not in (None, 0)
        ]
        tol = [
            abs(float(i.variance / i.allowed))
            for i in items
            if i.variance is not None and i.allowed not in (None, 0)
        ]
        key = _short(code)
        out[f"{key}:present"] = 1.0 if items else 0.0
        out[f"{key}:count"] = float(len(items))
        out[f"{key}:rel_variance"] = max(rel) if rel else 0.0
        out[f"{key}:tolerance_ratio"] = max(tol) if tol else 0.0
    return out


def _po_line_for(
    po: PurchaseOrder, line_ref: str | None, item_id: str | None
) -> PurchaseOrderLine | None:
    for po_line in po.lines:
        if line_ref is not None and po_line.line_no == line_ref:
            return po_line
    for po_line in po.lines:
        if item_id is not None and po_line.item_id == item_id:
            return po_line
    return None


def _received(receipts: Sequence[GoodsReceipt]) -> dict[str, Decimal]:
    got: dict[str, Decimal] = defaultdict(Decimal)
    for receipt in receipts:
        for line in receipt.lines:
            got[line.po_line_no] += line.quantity
    return got


def _days(a: date | None, b: date | None) -> float:
    return NAN if a is None or b is None else float((a - b).days)


def _document_facts(doc: SupplierDocument, master: MasterData) -> dict[str, float]:
    gross = _f(doc.gross)
    net = _f(doc.totals.tax_exclusive)
    freight_kinds = (LineKind.FREIGHT, LineKind.SURCHARGE)
    notes = " ".join(doc.notes + [ln.note for ln in doc.lines if ln.note])
    out: dict[str, float] = {
        "kind_invoice": float(doc.kind == "invoice"),
        "kind_credit_note": float(doc.kind == "credit_note"),
        "kind_claim": float(doc.kind == "claim"),
        "gross": gross,
        "net": net,
        "lines": float(len(doc.lines)),
        "freight_lines": float(sum(1 for ln in doc.lines if ln.kind in freight_kinds)),
        "freight_charges": float(sum(1 for ac in doc.allowance_charges if ac.is_charge)),
        "notes_length": float(len(notes)),
        "has_po_ref": float(bool(doc.po_reference)),
        "near_four_eyes_limit": float(0.88 * FOUR_EYES_LIMIT <= gross < FOUR_EYES_LIMIT),
        "missing_fields": float(
            sum(v is None for v in (doc.number, doc.issue_date, doc.currency, doc.gross))
        ),
    }
    po = master.purchase_orders.get(doc.po_reference or "")
    po_facts = {
        "po_known": 0.0,
        "po_closed": NAN,
        "po_other_supplier": NAN,
        "currency_differs": NAN,
        "days_since_order": NAN,
        "days_since_receipt": NAN,
        "receipts": NAN,
        "received_ratio_min": NAN,
        "received_half": NAN,
        "billed_received_max": NAN,
        "billed_ordered_max": NAN,
        "billed_ordered_min": NAN,
        "po_value_share": NAN,
        "price_ratio_max": NAN,
        "price_ratio_min": NAN,
        "price_ratio_spread": NAN,
        "price_ratio_integer": NAN,
        "quantity_times_ratio_matches": NAN,
        "all_lines_one_ratio": NAN,
        "changed_price_share": NAN,
        "unit_differs": NAN,
        "tax_rate_differs": NAN,
        "unmatched_lines": NAN,
        "half_of_single_line_po": NAN,
    }
    out.update(po_facts)
    if po is None:
        return out
    receipts = master.receipts.get(po.number, [])
    received = _received(receipts)
    receipt_dates = [r.receipt_date for r in receipts if r.receipt_date is not None]
    out.update(
        {
            "po_known": 1.0,
            "po_closed": float(po.status != "open"),
            "currency_differs": float(doc.currency is not None and doc.currency != po.currency),
            "days_since_order": _days(doc.issue_date, po.order_date),
            "days_since_receipt": _days(doc.issue_date, max(receipt_dates))
            if receipt_dates
            else NAN,
            "receipts": float(len(receipts)),
            "po_value_share": NAN if po.amount == 0 or math.isnan(net) else net / float(po.amount),
        }
    )
    goods = [ln for ln in po.lines if ln.receipt_required and ln.quantity > 0]
    ratios = [float(received.get(ln.line_no, Decimal(0)) / ln.quantity) for ln in goods]
    out["received_ratio_min"] = min(ratios) if ratios else NAN
    # A receipt of exactly half (rounded) of a line: how a part-delivery is posted.
    out["received_half"] = float(
        any(
            ln.quantity >= 2
            and received.get(ln.line_no, Decimal(0))
            == (ln.quantity * Decimal("0.5")).to_integral_value()
            for ln in goods
        )
    )
    price_ratios: list[float] = []
    billed_ordered: list[float] = []
    billed_received: list[float] = []
    integer_ratio = 0.0
    qty_match = 0.0
    unit_differs = tax_differs = unmatched = 0
    for line in doc.lines:
        if line.kind in (LineKind.FREIGHT, LineKind.SURCHARGE, LineKind.DISCOUNT):
            continue
        po_line = _po_line_for(po, line.po_line_ref, line.item_id)
        if po_line is None:
            unmatched += 1
            continue
        unit_differs += line.unit_code != po_line.unit_code
        if line.tax_rate is not None and po_line.tax_rate is not None:
            tax_differs += line.tax_rate != po_line.tax_rate
        if po_line.quantity:
            billed_ordered.append(float(line.quantity / po_line.quantity))
        got = received.get(po_line.line_no)
        if po_line.receipt_required and got:
            billed_received.append(float(line.quantity / got))
        if po_line.unit_price > 0:
            inv_price = line.unit_price / line.price_base_quantity
            ratio = float(inv_price / (po_line.unit_price / po_line.price_base_quantity))
            price_ratios.append(ratio)
            whole = round(ratio)
            if whole >= 2 and abs(ratio - whole) < 0.01:
                integer_ratio = max(integer_ratio, float(whole))
                if line.quantity * whole == po_line.quantity:
                    qty_match = 1.0
    out["unit_differs"] = float(unit_differs)
    out["tax_rate_differs"] = float(tax_differs)
    out["unmatched_lines"] = float(unmatched)
    out["billed_ordered_max"] = max(billed_ordered) if billed_ordered else NAN
    out["billed_ordered_min"] = min(billed_ordered) if billed_ordered else NAN
    out["billed_received_max"] = max(billed_received) if billed_received else NAN
    out["half_of_single_line_po"] = float(
        len(po.lines) == 1 and len(billed_ordered) == 1 and abs(billed_ordered[0] - 0.5) < 1e-9
    )
    if price_ratios:
        out["price_ratio_max"] = max(price_ratios)
        out["price_ratio_min"] = min(price_ratios)
        out["price_ratio_spread"] = max(price_ratios) - min(price_ratios)
        out["price_ratio_integer"] = integer_ratio
        out["quantity_times_ratio_matches"] = qty_match
        changed = [r for r in price_ratios if abs(r - 1) > 0.005]
        out["changed_price_share"] = len(changed) / len(price_ratios)
        # Freight folded into prices lifts every line by one factor (to the cent).
        out["all_lines_one_ratio"] = float(
            len(price_ratios) >= 2
            and len(changed) == len(price_ratios)
            and max(price_ratios) - min(price_ratios) < 0.006
        )
    return out


# -- supplier history ----------------------------------------------------------------------


@dataclass
class _Earlier:
    kind: str
    number: str | None
    issue: date | None
    gross: float
    po: str | None


@dataclass
class _SupplierState:
    docs: int = 0
    with_findings: int = 0
    codes: dict[ReasonCode, int] = field(default_factory=lambda: defaultdict(int))
    freight: int = 0
    log_gross: list[float] = field(default_factory=list)
    item_prices: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    earlier: list[_Earlier] = field(default_factory=list)
    # (documents, mean, population sd) of log_gross, set by `HistoryFeatures.settle`
    spread: tuple[int, float, float] | None = None

    def log_gross_spread(self) -> tuple[float, float]:
        """Mean and population sd of log gross (statistics.pstdev is exact, and slow)."""
        if self.spread is not None and self.spread[0] == len(self.log_gross):
            return self.spread[1], self.spread[2]
        return statistics.fmean(self.log_gross), statistics.pstdev(self.log_gross)


class HistoryFeatures:
    """Supplier history from the documents seen so far; `observe` after featurising each one.

    `features` only reads: a history observed once may featurise many documents after it,
    each against its own master data (`reading`).
    """

    def __init__(self, master: MasterData) -> None:
        self.master = master
        self.state: dict[str, _SupplierState] = defaultdict(_SupplierState)
        self.po_billed: dict[str, float] = defaultdict(float)

    def settle(self) -> None:
        """Work out what `features` would compute again for every document (before sharing)."""
        for st in self.state.values():
            if len(st.log_gross) >= 3:
                st.spread = (len(st.log_gross), *st.log_gross_spread())

    def reading(self, master: MasterData) -> HistoryFeatures:
        """The same observed history against other master data (shared: observe on neither)."""
        other = copy.copy(self)
        other.master = master
        return other

    @staticmethod
    def supplier_key(case: CaseInput) -> str:
        """The master-data key, else the VAT id or name the document gives."""
        doc = case.document
        return case.supplier_ref or doc.supplier.vat_id or doc.supplier.name or "?"

    def features(self, case: CaseInput) -> dict[str, float]:
        """History features of `case` from earlier documents only."""
        doc = case.document
        st = self.state.get(self.supplier_key(case)) or _SupplierState()
        n = st.docs
        out: dict[str, float] = {
            "supplier_docs_before": float(n),
            "supplier_exception_rate": st.with_findings / n if n else NAN,
            "supplier_price_variance_rate": (
                st.codes.get(ReasonCode.PRICE_VARIANCE, 0) / n if n else NAN
            ),
            "supplier_freight_rate": st.freight / n if n else NAN,
            "supplier_over_received_rate": (
                st.codes.get(ReasonCode.QTY_OVER_RECEIVED, 0) / n if n else NAN
            ),
        }
        gross = _f(doc.gross)
        if len(st.log_gross) >= 3 and gross > 0:
            mean, sd = st.log_gross_spread()
            sd = sd or 1.0
            out["amount_zscore"] = (math.log(gross) - mean) / sd
        else:
            out["amount_zscore"] = NAN
        drift = [
            float(ln.unit_price / ln.price_base_quantity)
            / statistics.median(st.item_prices[ln.item_id])
            for ln in doc.lines
            if ln.item_id and st.item_prices.get(ln.item_id)
        ]
        out["item_price_vs_history"] = max(drift) if drift else NAN
        po = self.master.purchase_orders.get(doc.po_reference or "")
        po_drift: list[float] = []
        if po is not None and po.order_date is not None:
            for line in po.lines:
                before = [
                    p
                    for d, p in self.master.unit_prices.get(line.item_id or "", ())
                    if d < po.order_date
                ]
                if before and line.unit_price > 0:
                    po_drift.append(float(line.unit_price) / statistics.median(before))
        out["po_price_vs_history"] = max(po_drift) if po_drift else NAN
        out["po_other_supplier"] = (
            float(po.supplier_ref != case.supplier_ref)
            if po is not None and case.supplier_ref
            else NAN
        )
        out["po_billed_before"] = (
            self.po_billed.get(po.number, 0.0) / float(po.amount)
            if po is not None and po.amount
            else NAN
        )
        # The nearest earlier document of the same kind: a re-sent copy differs by cents.
        best_gap, best_number, best_days = NAN, 0.0, NAN
        same_day = same_po = 0
        for prior in st.earlier:
            if prior.kind != doc.kind:
                continue
            if doc.po_reference and prior.po == doc.po_reference:
                same_po += 1
                same_day += prior.issue is not None and prior.issue == doc.issue_date
            if gross > 0 and not math.isnan(prior.gross):
                gap = abs(prior.gross - gross) / gross
                if math.isnan(best_gap) or gap < best_gap:
                    best_gap = gap
                    best_number = ocr_number_similarity(prior.number, doc.number)
                    best_days = _days(doc.issue_date, prior.issue)
        out["similar_earlier_gross"] = best_gap
        out["similar_earlier_number"] = best_number
        out["similar_earlier_days"] = best_days
        out["same_day_same_po"] = float(same_day)
        out["earlier_same_po"] = float(same_po)
        return out

    def observe(self, case: CaseInput) -> None:
        """Add a featurised document to its supplier's history."""
        doc = case.document
        st = self.state[self.supplier_key(case)]
        st.docs += 1
        codes = {f.code for f in case.findings}
        st.with_findings += bool(codes)
        for code in codes:
            st.codes[code] += 1
        st.freight += ReasonCode.FREIGHT_UNPLANNED in codes or any(
            ln.kind == LineKind.FREIGHT for ln in doc.lines
        )
        gross = _f(doc.gross)
        if gross > 0:
            st.log_gross.append(math.log(gross))
        if doc.kind == "invoice":
            for ln in doc.lines:
                if ln.item_id and ln.unit_price > 0:
                    st.item_prices[ln.item_id].append(float(ln.unit_price / ln.price_base_quantity))
            if doc.po_reference and not math.isnan(_f(doc.totals.tax_exclusive)):
                self.po_billed[doc.po_reference] += _f(doc.totals.tax_exclusive)
        st.earlier.append(_Earlier(doc.kind, doc.number, doc.issue_date, gross, doc.po_reference))


def build_features(cases: Sequence[CaseInput], master: MasterData) -> CaseFeatures:
    """Featurise documents given in arrival order (history never looks ahead)."""
    history = HistoryFeatures(master)
    rows: list[list[float]] = []
    descriptions: list[list[str]] = []
    notes: list[str] = []
    for case in cases:
        doc = case.document
        values = _finding_features(case.findings)
        values.update(_document_facts(doc, master))
        values.update(history.features(case))
        history.observe(case)
        rows.append([values[name] for name in FEATURE_NAMES])
        descriptions.append([ln.description for ln in doc.lines if ln.description])
        notes.append(" ".join(doc.notes + [ln.note for ln in doc.lines if ln.note]))
    matrix = np.asarray(rows, dtype=np.float64).reshape(len(rows), len(FEATURE_NAMES))
    return CaseFeatures(list(FEATURE_NAMES), matrix, descriptions, notes)
