"""Claim soak: N clerks claim and hand back cases as fast as they can; nothing is claimed twice.

    python bench/claim_soak.py --db URL --clerks 20 --seconds 30 [--cases 1000] [--open 0]
                               [--work-ms 0]

URL is an empty database to use: `sqlite:////tmp/soak.db` (created) or a PostgreSQL server URL
(`postgresql+psycopg://postgres@127.0.0.1:5432/postgres`: a fresh database is created on it and
dropped afterwards). Each clerk is a thread with its own session: claim the next case in one
transaction (`claim_next`), note it, hand it back in another (`release`). A shared ledger
records who holds what between the two commits: a case claimed while the ledger says someone
else holds it is a double claim. At the end every case must be unclaimed and open (else it is
lost). `--open N` adds N more open cases first (the 100,000-case queue of issue 6).
`--work-ms M` makes each clerk hold a case for about M ms (uniform 0.5 to 1.5 times M) before
handing it back, as a person reading it would; with the default 0 the clerks claim back to back,
which measures the saturated service: latency is then mostly time spent queueing behind the others.
The last line prints `double_claims=… lost=… claims_per_s=… p95_ms=…`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))

from _machine import describe
from argon2 import PasswordHasher
from review_fixtures import make_cases
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.audit.service import Actor
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import Case, User
from app.logs import configure_logging
from app.reviews import repository as review_sql
from app.reviews import service as reviews
from app.users import service as users


def _database(url: str) -> tuple[str, str | None]:
    """The URL to use, and the PostgreSQL database to drop afterwards (None for SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and Path(parsed.database).exists():
            Path(parsed.database).unlink()
        return url, None
    name = f"tollgate_soak_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False), name


def main() -> None:
    """Run the soak and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database URL (see above)")
    parser.add_argument("--clerks", type=int, default=20, help="concurrent clerks (threads)")
    parser.add_argument("--seconds", type=float, default=30, help="how long to run")
    parser.add_argument("--cases", type=int, default=1000, help="cases the clerks work on")
    parser.add_argument("--open", type=int, default=0, help="extra open cases in the queue")
    parser.add_argument(
        "--work-ms", type=float, default=0.0, help="time a clerk holds a case (0: back to back)"
    )
    args = parser.parse_args()
    configure_logging("WARNING", json=False)
    url, drop = _database(args.db)
    print(f"machine: {describe()}")
    print(
        f"database: {make_url(url).get_backend_name()}, {args.clerks} clerks, {args.seconds} s, "
        f"work {args.work_ms:g} ms per case, {args.cases + args.open} open cases"
    )
    try:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=args.clerks + 5) if drop else make_engine(url)
        factory = make_session_factory(engine)
        users._HASHER = PasswordHasher(time_cost=1, memory_cost=1024)  # setup speed only
        clerk_ids = []
        with transaction(factory) as session:
            for i in range(args.clerks):
                user = users.create_user(
                    session,
                    username=f"clerk-{i:03d}",
                    display_name=f"Clerk {i}",
                    role="clerk",
                    password="soak test password",
                    actor=Actor("bench", "admin"),
                )
                clerk_ids.append(user.id)
        started = time.perf_counter()
        case_ids = make_cases(factory, args.cases + args.open, gross=Decimal(100), prefix="soak")
        print(f"seeded {len(case_ids)} open cases in {time.perf_counter() - started:.1f} s")
        ledger: dict[int, int] = {}
        ledger_lock = threading.Lock()
        double_claims = 0
        latencies: list[float] = []
        claims = 0
        empty = 0
        errors: list[str] = []
        stop_at = time.perf_counter() + args.seconds

        def clerk(user_id: int) -> None:
            nonlocal double_claims, claims, empty
            pace = random.Random(user_id)
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                try:
                    with transaction(factory) as session:
                        user = session.get(User, user_id)
                        assert user is not None
                        got = reviews.claim_next(session, user)
                except Exception as exc:
                    errors.append(f"claim: {type(exc).__name__}: {exc}"[:200])
                    continue
                elapsed = time.perf_counter() - t0
                if got is None:
                    with ledger_lock:
                        empty += 1
                    time.sleep(0.005)
                    continue
                with ledger_lock:
                    claims += 1
                    latencies.append(elapsed)
                    if ledger.get(got.case_id) not in (None, user_id):
                        double_claims += 1
                    ledger[got.case_id] = user_id
                if args.work_ms:
                    time.sleep(args.work_ms / 1000 * pace.uniform(0.5, 1.5))
                with ledger_lock:
                    ledger.pop(got.case_id, None)  # before the commit that frees it
                try:
                    with transaction(factory) as session:
                        user = session.get(User, user_id)
                        assert user is not None
                        reviews.release(session, got.case_id, user, got.token)
                except Exception as exc:
                    errors.append(f"release: {type(exc).__name__}: {exc}"[:200])

        threads = [threading.Thread(target=clerk, args=(uid,)) for uid in clerk_ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with transaction(factory) as session:
            still_claimed = session.scalar(
                select(func.count()).select_from(Case).where(Case.claim_token.is_not(None))
            )
            open_cases = session.scalar(
                select(func.count())
                .select_from(Case)
                .where(Case.state.in_(review_sql.CLAIMABLE), Case.id.in_(case_ids[:5000]))
            )
        lost = (still_claimed or 0) + (min(len(case_ids), 5000) - (open_cases or 0))
        engine.dispose()
    finally:
        if drop:
            admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))
            admin.dispose()
    for error in sorted(set(errors))[:10]:
        print(f"error ({errors.count(error)}x): {error}")
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000 if len(latencies) >= 20 else 0.0
    print(f"claims: {claims}, empty polls: {empty}, errors: {len(errors)}")
    print(
        f"double_claims={double_claims} lost={lost} "
        f"claims_per_s={claims / args.seconds:.0f} p95_ms={p95:.1f}"
    )


if __name__ == "__main__":
    main()
