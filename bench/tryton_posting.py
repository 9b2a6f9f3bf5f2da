"""Posting throughput into a real trytond: supplier invoices linked to PO lines, posted.

    python bench/tryton_posting.py [--postings 30] [--workdir DIR]

Builds a Tryton SQLite database with the integration harness (tests/integration/conftest.py,
30 to 60 s), creates one PO of 10,000 units (received in full), starts trytond on loopback and
posts N one-unit invoices through `TrytonAdapter.post_invoice` (each: create, validate, post,
read back), one session, one after another. The last line prints
`postings=… postings_per_s=… p50_ms=… p95_ms=… rpc_calls_per_posting=…`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "integration"))

import conftest as harness
from _machine import describe

from app.erp.protocol import PostingRequest
from app.erp.tryton import TrytonAdapter
from pipelines.canonical import DocumentLine, Invoice


def _request(i: int, po_number: str, supplier: str) -> PostingRequest:
    doc = Invoice(
        number=f"BENCH-{i:05d}",
        issue_date=date.today(),
        currency="EUR",
        lines=[
            DocumentLine(
                line_id="1",
                item_id=harness.PRODUCT_CODE,
                quantity=Decimal(1),
                unit_price=Decimal("12.50"),
                line_amount=Decimal("12.50"),
                po_line_ref="1",
            )
        ],
    )
    return PostingRequest(f"bench-{i}", i, doc, supplier, po_number)


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postings", type=int, default=30)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tryton-bench-"))
    print(describe())

    started = time.perf_counter()
    harness.init_database(workdir)
    print(f"init_s={time.perf_counter() - started:.1f}")
    started = time.perf_counter()
    purchase = harness.create_purchase(workdir, ordered=10_000, received=10_000, price="12.50")
    print(f"purchase_setup_s={time.perf_counter() - started:.1f}")
    started = time.perf_counter()
    server = harness.start_server(workdir)
    try:
        adapter = TrytonAdapter(
            server.url, harness.DB_NAME, harness.ADMIN_USER, harness.ADMIN_PASSWORD, 60
        )
        adapter.check()
        print(f"server_start_and_login_s={time.perf_counter() - started:.1f}")
        calls_before = adapter.calls
        durations = []
        total_start = time.perf_counter()
        for i in range(args.postings):
            t0 = time.perf_counter()
            adapter.post_invoice(_request(i, purchase["number"], purchase["supplier_code"]))
            durations.append(time.perf_counter() - t0)
        total = time.perf_counter() - total_start
        calls = (adapter.calls - calls_before) / args.postings
        adapter.close()
    finally:
        server.stop()
    p95 = statistics.quantiles(durations, n=20)[-1] if len(durations) >= 2 else durations[0]
    print(
        f"postings={args.postings} postings_per_s={args.postings / total:.2f} "
        f"p50_ms={statistics.median(durations) * 1000:.0f} p95_ms={p95 * 1000:.0f} "
        f"rpc_calls_per_posting={calls:.1f}"
    )


if __name__ == "__main__":
    main()
