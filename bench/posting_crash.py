"""Crash campaign: SIGKILL the outbox worker at bad moments; nothing is lost or posted twice.

    python bench/posting_crash.py --runs 200 [--db URL] [--cases 5] [--seed 1]

URL is an empty database to use: `sqlite:////tmp/crash.db` (the default, in a temp folder) or a
PostgreSQL server URL (a fresh database is created on it and dropped afterwards). Each run seeds
M approved cases with pending outbox rows, starts a worker process (forked from this warm
process, so a restart costs no interpreter start-up) with the real UBL-export adapter, and
SIGKILLs it at one of three moments, in turn:

- `random`: a random instant, 0-40 ms into its work (before, during or between sends);
- `after_post`: after the export folder accepted a document and before the worker's commit
  (TOLLGATE_WORKER_PAUSE_AFTER_POST holds the worker in exactly that window);
- `backoff`: while rows wait for a retry (the first send of every key fails, half of them
  after the document was written: a "timeout after commit").

Then a fresh worker drains the outbox. Per key it counts the finished files, and every post
that reached the adapter for a key it already held (with a non-idempotent ERP that would be a
duplicate document; find_posted is there to make it zero). The last line prints
`lost=… duplicated=… recovery_ms_p50=…` (recovery: from the kill to a drained outbox).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "app"))

from _machine import describe
from review_fixtures import seed_approved
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import ErpPosting
from app.erp import worker
from app.erp.protocol import ErpUnavailable, PostingRequest
from app.erp.service import RetryPolicy
from app.erp.ubl_export import UblExportAdapter
from app.logs import configure_logging

PHASES = ("random", "after_post", "backoff")
POLICY = RetryPolicy(
    max_attempts=50,
    base=timedelta(milliseconds=150),
    cap=timedelta(seconds=1),
    lease=timedelta(milliseconds=400),
)


def seed_keys(factory: sessionmaker[Session], count: int, prefix: str) -> list[str]:
    """Approved cases with pending outbox rows, as sign-off leaves them; their keys."""
    return [key for _case_id, key in seed_approved(factory, count, prefix=prefix)]


class JournalAdapter(UblExportAdapter):
    """The export adapter, journalling every post that reaches it (fsynced, append-only)."""

    def __init__(self, folder: Path, journal: Path, flaky: bool) -> None:
        super().__init__(folder)
        self.journal = journal
        self.flaky = flaky
        self.failed: set[str] = set()

    def _note(self, line: str) -> None:
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def post_invoice(self, request: PostingRequest) -> str:
        key = request.idempotency_key
        held = self.find_posted(key) is not None
        self._note(f"{'again' if held else 'post'} {key} {os.getpid()}")
        if self.flaky and key not in self.failed:
            self.failed.add(key)
            # Half fail before writing (5xx), half after (a timeout after the ERP committed).
            if hash(key) % 2:
                super().post_invoice(request)
                raise ErpUnavailable("timeout after commit (injected)")
            raise ErpUnavailable("HTTP 503 (injected)")
        return super().post_invoice(request)


def _child(
    url: str, folder: str, journal: str, flaky: bool, pause: float, ready: Any, done: Any
) -> None:
    """A worker process: drain the outbox, then exit (or be killed on the way)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if pause:
        os.environ[worker.PAUSE_AFTER_POST_ENV] = str(pause)
    else:
        os.environ.pop(worker.PAUSE_AFTER_POST_ENV, None)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    adapter = JournalAdapter(Path(folder), Path(journal), flaky)
    ready.set()
    started = time.perf_counter()
    worker.drain(factory, adapter, policy=POLICY, batch=2, timeout_seconds=120)
    done.value = (time.perf_counter() - started) * 1000
    engine.dispose()


def _database(url: str | None, scratch: Path) -> tuple[str, str | None]:
    if url is None:
        return f"sqlite:///{scratch / 'crash.db'}", None
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and Path(parsed.database).exists():
            Path(parsed.database).unlink()
        return url, None
    name = f"tollgate_crash_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False), name


def _states(factory: sessionmaker[Session], keys: list[str]) -> dict[str, tuple[str, int, Any]]:
    with transaction(factory) as session:
        return {
            k: (s, a, r)
            for k, s, a, r in session.execute(
                select(
                    ErpPosting.idempotency_key,
                    ErpPosting.state,
                    ErpPosting.attempts,
                    ErpPosting.erp_reference,
                ).where(ErpPosting.idempotency_key.in_(keys))
            )
        }


def _wait_for(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return False


def main() -> None:
    """Run the campaign and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--db", default=None, help="database URL (default: SQLite in a temp dir)")
    parser.add_argument("--cases", type=int, default=5, help="approved cases per run")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.perf_counter()
    configure_logging("ERROR", json=False)
    rng = random.Random(args.seed)
    ctx = mp.get_context("fork")
    scratch = Path(tempfile.mkdtemp(prefix="posting-crash-"))
    folder, journal = scratch / "export", scratch / "journal.txt"
    url, drop = _database(args.db, scratch)
    print(f"machine: {describe()}")
    print(f"database: {make_url(url).get_backend_name()}, {args.runs} runs x {args.cases} cases")
    engine: Engine | None = None
    kills: Counter[str] = Counter()
    windows: Counter[str] = Counter()  # kills that landed in the intended window
    recovery: list[float] = []
    drain_ms: list[float] = []
    all_keys: list[str] = []
    failures: list[str] = []
    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        factory = make_session_factory(engine)
        for run in range(args.runs):
            phase = PHASES[run % len(PHASES)]
            keys = seed_keys(factory, args.cases, f"crash-{run}")
            all_keys.extend(keys)
            engine.dispose()  # no pooled connection may cross the fork
            ready, done = ctx.Event(), ctx.Value("d", 0.0)
            pause = 5.0 if phase == "after_post" else 0.0
            proc = ctx.Process(
                target=_child,
                args=(url, str(folder), str(journal), phase == "backoff", pause, ready, done),
            )
            proc.start()
            ready.wait(30)
            if phase == "random":
                time.sleep(rng.uniform(0, 0.04))
                hit = True
            elif phase == "after_post":
                hit = _wait_for(
                    lambda k=keys: any(folder.joinpath(f"{x}.json").exists() for x in k), 20
                )
                time.sleep(rng.uniform(0, 0.05))
            else:
                hit = _wait_for(
                    lambda k=keys: any(
                        s == "pending" and a >= 1 for s, a, _ in _states(factory, k).values()
                    ),
                    20,
                )
                time.sleep(rng.uniform(0, 0.1))
            killed_at = time.perf_counter()
            proc.kill()
            proc.join()
            kills[phase] += 1
            states = _states(factory, keys)
            if phase == "after_post":
                # In the window: a document is in the folder, its row is not posted yet.
                hit = hit and any(
                    folder.joinpath(f"{k}.json").exists() and states[k][0] != "posted" for k in keys
                )
            elif phase == "backoff":
                hit = hit and any(s == "pending" and a >= 1 for s, a, _ in states.values())
            windows[phase] += int(hit)
            engine.dispose()
            done = ctx.Value("d", 0.0)
            restart = ctx.Process(
                target=_child, args=(url, str(folder), str(journal), False, 0.0, ctx.Event(), done)
            )
            restart.start()
            restart.join(180)
            recovery.append((time.perf_counter() - killed_at) * 1000)
            drain_ms.append(done.value)
            if restart.exitcode != 0:
                failures.append(f"run {run}: restarted worker exit code {restart.exitcode}")
        # The verdict, per key: the outbox row, the files, the journal.
        states = _states(factory, all_keys)
    finally:
        if engine is not None:
            engine.dispose()
        if drop:
            admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{drop}" WITH (FORCE)'))
            admin.dispose()
    posts: Counter[str] = Counter()
    again: Counter[str] = Counter()
    if journal.exists():
        for line in journal.read_text().splitlines():
            kind, key, _pid = line.split()
            (again if kind == "again" else posts)[key] += 1
    adapter = UblExportAdapter(folder)
    lost = duplicated = 0
    leftovers = 0
    for key in all_keys:
        files = adapter.files_for(key)
        finished = [p for p in files if not p.name.startswith(".")]
        leftovers += len(files) - len(finished)
        state, _attempts, reference = states.get(key, ("missing", 0, None))
        if state != "posted" or len(finished) != 2 or adapter.find_posted(key) != reference:
            lost += 1
        # A post for a key the folder already held is a duplicate for any non-idempotent ERP.
        if again[key] or len(finished) > 2:
            duplicated += 1
    injected_after_commit = sum(1 for k in all_keys if posts[k] > 1)
    print(f"kills: {dict(kills)}; landed in the intended window: {dict(windows)}")
    print(
        f"keys: {len(all_keys)}; posts reaching the adapter: {sum(posts.values())} "
        f"(keys re-sent because an earlier send never completed: {injected_after_commit}); "
        f"temp files left by kills: {leftovers}"
    )
    for failure in failures[:10]:
        print(f"failure: {failure}")
    p50 = statistics.median(recovery) if recovery else 0.0
    p95 = statistics.quantiles(recovery, n=20)[-1] if len(recovery) >= 20 else 0.0
    print(
        f"drain_ms_p50={statistics.median(drain_ms) if drain_ms else 0.0:.0f} "
        f"recovery_ms_p95={p95:.0f} (lease {POLICY.lease.total_seconds() * 1000:.0f} ms)"
    )
    print(f"wall time: {time.perf_counter() - began:.0f} s")
    print(f"lost={lost} duplicated={duplicated} recovery_ms_p50={p50:.0f}")


if __name__ == "__main__":
    main()
