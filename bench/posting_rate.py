"""Posting rate: how many approved invoices per second the outbox worker exports as UBL.

    python bench/posting_rate.py [--db URL] [--cases 1000] [--workers 1] [--batch 10] [--no-fsync]

URL as in bench/claim_soak.py (default: SQLite in a temp folder). Seeds approved cases with
pending outbox rows, then runs `--workers` worker threads (each `run_once` until nothing is
due) against the real UBL-export adapter (fsync of file and folder on, unless --no-fsync).
Each posting is: claim transaction, find_posted, UBL 2.1 write + sidecar, outcome transaction,
three audit events. The last line prints `postings_per_s=… p50_ms=…`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))

from _machine import describe
from posting_crash import seed_approved
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import ErpPosting, PostingState
from app.erp import worker
from app.erp.service import RetryPolicy
from app.erp.ubl_export import UblExportAdapter
from app.logs import configure_logging


def main() -> None:
    """Seed, post everything, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1, help="worker threads")
    parser.add_argument("--batch", type=int, default=10, help="rows claimed per round")
    parser.add_argument("--no-fsync", action="store_true", help="skip fsync (not crash-safe)")
    args = parser.parse_args()
    configure_logging("ERROR", json=False)
    scratch = Path(tempfile.mkdtemp(prefix="posting-rate-"))
    drop = None
    url = args.db or f"sqlite:///{scratch / 'rate.db'}"
    if make_url(url).get_backend_name() != "sqlite":
        drop = f"tollgate_rate_{uuid.uuid4().hex[:8]}"
        admin = create_engine(url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{drop}"'))
        admin.dispose()
        url = make_url(url).set(database=drop).render_as_string(hide_password=False)
    print(f"machine: {describe()}")
    print(
        f"database: {make_url(url).get_backend_name()}, {args.cases} cases, "
        f"{args.workers} worker(s), batch {args.batch}, fsync {'off' if args.no_fsync else 'on'}"
    )
    try:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=args.workers + 2) if drop else make_engine(url)
        factory = make_session_factory(engine)
        seed_approved(factory, args.cases, "rate")
        adapter = UblExportAdapter(scratch / "export", durable=not args.no_fsync)
        rounds: list[float] = []
        lock = threading.Lock()

        def run() -> None:
            while True:
                t0 = time.perf_counter()
                claimed = worker.run_once(factory, adapter, policy=RetryPolicy(), batch=args.batch)
                if not claimed:
                    return
                with lock:
                    rounds.extend([(time.perf_counter() - t0) / claimed] * claimed)

        started = time.perf_counter()
        threads = [threading.Thread(target=run) for _ in range(args.workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        with transaction(factory) as session:
            posted = session.scalar(
                select(func.count())
                .select_from(ErpPosting)
                .where(ErpPosting.state == PostingState.POSTED.value)
            )
        engine.dispose()
    finally:
        if drop:
            admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))
            admin.dispose()
    files = len(list((scratch / "export").glob("*.xml")))
    print(f"posted rows: {posted}, UBL files: {files}, {elapsed:.1f} s")
    p50 = statistics.median(rounds) * 1000 if rounds else 0.0
    print(f"postings_per_s={(posted or 0) / elapsed:.0f} p50_ms={p50:.1f}")


if __name__ == "__main__":
    main()
