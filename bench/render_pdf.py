"""Synthetic PDF rendering speed per supplier layout, one process, one core.

    python bench/render_pdf.py [--n 500] [--runs 3] [--lines 3-12] [--layouts de_din,fr_modern]

Each run renders N documents per layout (seeded mix of invoices and credit notes with 3-12
lines, so one page each unless --lines asks for more) and times every `render_pdf` call.
Per layout and overall it prints docs/s and p95 ms, each the median of --runs runs. The last
line prints the overall docs/s.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe

from pipelines.canonical import (
    Address,
    AllowanceCharge,
    CreditNote,
    DocumentLine,
    DocumentTotals,
    Invoice,
    Party,
    PaymentDetails,
    TaxSubtotal,
)
from training.synth.pdf import layout_names, render_pdf

CENT = Decimal("0.01")
SUPPLIERS = [
    ("Müller & Söhne Präzisionsteile GmbH", "Königstraße 12", "70173", "Stuttgart", "DE"),
    ("Fournitures Léger & Frères SAS", "8 avenue de la Gare", "69002", "Lyon", "FR"),
    ("Northwind Industrial Supplies Ltd", "221 Baker Street", "NW1 6XE", "London", "GB"),
    ("Österreichische Werkzeug AG", "Mariahilfer Straße 77", "1060", "Wien", "AT"),
]
ITEMS = [
    ("Sechskantschraube DIN 933 M12x60, verzinkt", "C62", "0.4850"),
    ("Kugellager 6204-2RS", "C62", "3.95"),
    ("Hydrauliköl HLP 46", "LTR", "2.79"),
    ("Montage vor Ort, Techniker", "HUR", "89.00"),
    ("Flachstahl S235JR 40x8 mm", "KGM", "1.12"),
    ("Câble électrique H07RN-F 3G2,5", "MTR", "4.35"),
    ("Palette Europe EPAL, reconditionnée", "C62", "12.50"),
    ("Safety gloves, nitrile, size L", "PR", "2.15"),
]


def make_document(rng: random.Random, i: int, lines: tuple[int, int]) -> Invoice | CreditNote:
    """One balanced document with seeded variety in parties, lines and rates."""
    name, street, postcode, city, country = rng.choice(SUPPLIERS)
    rate = rng.choice([Decimal(19), Decimal(20), Decimal(7), Decimal("5.5")])
    doc_lines = []
    for n in range(rng.randint(*lines)):
        desc, unit, price = rng.choice(ITEMS)
        qty = Decimal(rng.randint(1, 400))
        doc_lines.append(
            DocumentLine(
                line_id=str(n + 1),
                item_id=f"A{rng.randint(10000, 99999)}",
                description=desc,
                quantity=qty,
                unit_code=unit,
                unit_price=Decimal(price),
                tax_category="S",
                tax_rate=rate,
                line_amount=(qty * Decimal(price)).quantize(CENT),
            )
        )
    charges = []
    if rng.random() < 0.4:
        charges.append(AllowanceCharge(is_charge=True, amount=Decimal("35.00"), reason_code="FC"))
    line_total = sum((x.line_amount for x in doc_lines), Decimal(0))
    net = line_total + sum((c.amount for c in charges), Decimal(0))
    tax = (net * rate / 100).quantize(CENT)
    issue = date(2026, 1, 1) + timedelta(days=rng.randint(0, 300))
    kind = CreditNote if rng.random() < 0.15 else Invoice
    return kind(
        number=f"B{i:06d}",
        issue_date=issue,
        due_date=issue + timedelta(days=30),
        currency=rng.choice(["EUR", "EUR", "EUR", "GBP", "CHF"]),
        supplier=Party(
            name=name,
            vat_id=f"{country}{rng.randint(100000000, 999999999)}",
            address=Address(street=street, postal_code=postcode, city=city, country_code=country),
        ),
        buyer=Party(
            name="Société Générale d'Équipements SARL",
            address=Address(street="14 rue de l'Église", postal_code="06000", city="Nice"),
        ),
        po_reference=f"PO-{rng.randint(4500000000, 4599999999)}",
        lines=doc_lines,
        allowance_charges=charges,
        tax_breakdown=[TaxSubtotal(category="S", rate=rate, taxable_amount=net, tax_amount=tax)],
        totals=DocumentTotals(
            line_extension=line_total,
            charges=net - line_total,
            tax_exclusive=net,
            tax=tax,
            tax_inclusive=net + tax,
            payable=net + tax,
        ),
        payment=PaymentDetails(iban="DE89370400440532013000", terms="30 days net"),
    )


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def run(docs: list[Invoice | CreditNote], layouts: list[str]) -> dict[str, tuple[float, float]]:
    """Render every document in every layout; (docs/s, p95 ms) per layout and overall."""
    out = {}
    everything: list[float] = []
    for name in layouts:
        times = []
        for doc in docs:
            start = time.perf_counter()
            render_pdf(doc, name)
            times.append(time.perf_counter() - start)
        everything += times
        out[name] = (len(times) / sum(times), p95(times) * 1000)
    out["overall"] = (len(everything) / sum(everything), p95(everything) * 1000)
    return out


def main() -> None:
    """Parse arguments, run, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=500, help="documents per layout per run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--lines", default="3-12", help="lines per document, MIN-MAX")
    parser.add_argument("--layouts", default=",".join(layout_names()), help="comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    low, high = (int(x) for x in args.lines.split("-"))
    layouts = [x for x in args.layouts.split(",") if x]
    rng = random.Random(args.seed)
    docs = [make_document(rng, i, (low, high)) for i in range(args.n)]
    print(f"machine: {describe()}")
    print(f"{args.n} documents per layout per run, {low}-{high} lines, {args.runs} run(s)")
    render_pdf(docs[0], layouts[0])  # warm imports and font metrics outside the timing
    runs = [run(docs, layouts) for _ in range(args.runs)]
    print(f"{'layout':<12} {'docs/s':>8} {'p95 ms':>8}")
    for name in [*layouts, "overall"]:
        rate = statistics.median(r[name][0] for r in runs)
        tail = statistics.median(r[name][1] for r in runs)
        print(f"{name:<12} {rate:>8.0f} {tail:>8.2f}")
    overall = statistics.median(r["overall"][0] for r in runs)
    print(f"10,000 documents would take {10_000 / overall:.1f} s on one core")
    print(f"docs_per_s={overall:.0f}")


if __name__ == "__main__":
    main()
