"""Parse throughput and latency of real UBL invoices: in-process vs the parsing sandbox.

    python bench/parse_sandbox.py --n 1000 [--runs 3] [--workers 2]

The documents are the public UBL invoices in ../shared/data/einvoice (XRechnung and EN 16931),
repeated to N. Three ways of parsing each document with `parse_documents`:

- in-process: a plain function call (no isolation; the baseline);
- sandbox, 1 worker: `SandboxPool(workers=1)` one document at a time (the cost of isolation:
  pipe transfer, pickling the result, re-arming the CPU limit);
- sandbox, W workers: W threads feeding `SandboxPool(workers=W)` (what bulk intake would use).

Workers are started before timing (pool start-up is reported apart). Per-document latency is
wall time around one call; p95 is over all documents of the run. The last line prints the
median docs/s of each mode.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe

from pipelines.parsers import ParseError, parse_documents
from pipelines.parsers.sandbox import SandboxLimits, SandboxPool

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "einvoice"


def documents(n: int) -> list[bytes]:
    """N UBL invoices: the public ones that parse cleanly, repeated in order."""
    sources = sorted(SHARED.rglob("*.xml"))
    templates = []
    for path in sources:
        data = path.read_bytes()
        if b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" not in data[:4096]:
            continue
        try:
            parse_documents(data)
        except ParseError:
            continue
        templates.append(data)
    if not templates:
        raise SystemExit(f"no UBL invoices found under {SHARED}")
    return [templates[i % len(templates)] for i in range(n)]


def p95(values: list[float]) -> float:
    """95th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, round(0.95 * len(ordered)) - 1)]


def timed(call: Callable[[bytes], object], docs: list[bytes], threads: int) -> tuple[float, float]:
    """Docs/s and p95 latency (ms) of `call` over `docs` from `threads` threads."""
    latencies: list[float] = []

    def one(data: bytes) -> None:
        start = time.perf_counter()
        outcome = call(data)
        latencies.append(time.perf_counter() - start)
        if not isinstance(outcome, list):
            raise SystemExit(f"unexpected outcome: {outcome!r}")

    start = time.perf_counter()
    if threads == 1:
        for data in docs:
            one(data)
    else:
        with ThreadPoolExecutor(threads) as executor:
            list(executor.map(one, docs))
    elapsed = time.perf_counter() - start
    return len(docs) / elapsed, p95(latencies) * 1000


def warm(pool: SandboxPool, docs: list[bytes]) -> float:
    """Start every worker of the pool; returns the seconds it took."""
    start = time.perf_counter()
    with ThreadPoolExecutor(pool.size) as executor:
        list(executor.map(pool.parse, docs[: pool.size]))
    return time.perf_counter() - start


def main() -> None:
    """Parse arguments, run, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000, help="documents per run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--workers", type=int, default=2, help="workers for the parallel mode")
    args = parser.parse_args()
    docs = documents(args.n)
    print(f"machine: {describe()}")
    print(
        f"{len(docs)} UBL invoices per run ({sum(map(len, docs)) / len(docs) / 1024:.0f} KiB avg)"
    )
    limits = SandboxLimits()
    rates: dict[str, list[float]] = {}
    with (
        SandboxPool(limits, workers=1) as single,
        SandboxPool(limits, workers=args.workers) as parallel,
    ):
        print(f"pool start-up: 1 worker {warm(single, docs):.2f} s, ", end="")
        print(f"{args.workers} workers {warm(parallel, docs):.2f} s ({single.network_isolation})")
        modes: list[tuple[str, Callable[[bytes], object], int]] = [
            ("in-process", parse_documents, 1),
            ("sandbox-1", single.parse, 1),
            (f"sandbox-{args.workers}", parallel.parse, args.workers),
        ]
        for r in range(args.runs):
            for name, call, threads in modes:
                rate, latency = timed(call, docs, threads)
                rates.setdefault(name, []).append(rate)
                print(f"run {r + 1} {name:>12}: {rate:7.0f} docs/s, p95 {latency:6.2f} ms")
    print(" ".join(f"{name}={statistics.median(v):.0f}" for name, v in rates.items()))


if __name__ == "__main__":
    main()
