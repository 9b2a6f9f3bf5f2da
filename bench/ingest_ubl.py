"""UBL ingest throughput into SQLite, one process: store, parse, resolve, match, open a case.

    python bench/ingest_ubl.py --n 1000 [--runs 3]

Each run starts from an empty, migrated SQLite file with the demo master data loaded, then
ingests N distinct UBL invoices (the demo world's documents with fresh numbers) the way
`tollgate ingest` does: a savepoint per document, a commit every --batch-size documents
(--batch-size 1 measures a commit per document). The last line prints the median docs/s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.documents.bulk import ingest_many
from app.logs import configure_logging
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from training.demo_world import build_world, write_world


def documents(n: int, world_dir: Path) -> list[bytes]:
    """N distinct UBL documents built from the demo world's readable invoices."""
    marker = b"<cbc:ID>INV-"
    templates = [
        data
        for p in sorted((world_dir / "documents").glob("0*.xml"))
        if marker in (data := p.read_bytes())
    ]
    out = []
    for i in range(n):
        data = templates[i % len(templates)]
        # A unique number per copy makes each document distinct bytes (a new case each).
        out.append(data.replace(marker, f"<cbc:ID>B{i:06d}-INV-".encode(), 1))
    return out


def run(n: int, world_dir: Path, batch_size: int) -> float:
    """One timed run on a fresh database; returns documents per second."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate.upgrade(url)
        factory = make_session_factory(make_engine(url))
        with transaction(factory) as session:
            load_master_data(session, read_master_data(world_dir / "master"), Actor("b", "admin"))
        blobs = BlobStore(Path(tmp) / "blobs", defer_sync=True)
        items = [(f"{i}.xml", data) for i, data in enumerate(documents(n, world_dir))]
        start = time.perf_counter()
        results = list(
            ingest_many(
                factory,
                blobs,
                items,
                actor=Actor("bench", "clerk"),
                channel="bench",
                batch_size=batch_size,
            )
        )
        elapsed = time.perf_counter() - start
        assert sum(r.outcome == "new case" for r in results) == n
    return n / elapsed


def main() -> None:
    """Parse arguments, run, print figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1000, help="documents per run")
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=50,
        help="documents per commit, as `tollgate ingest` (1 = commit every document)",
    )
    args = parser.parse_args()
    configure_logging("WARNING")
    print(f"machine: {describe()}")
    print(f"{args.n} UBL invoices per run, commit every {args.batch_size} document(s)")
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(tmp) / "world"
        write_world(build_world(), world_dir)
        rates = []
        for r in range(args.runs):
            rate = run(args.n, world_dir, args.batch_size)
            rates.append(rate)
            print(f"run {r + 1}: {args.n} docs, {rate:.0f} docs/s")
    print(f"docs_per_s={statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
