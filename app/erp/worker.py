"""The outbox worker: claims due postings, sends them outside any transaction, records outcomes.

One round (`run_once`):
1. a short transaction claims due rows (pending, or sending with an expired lease): state
   sending, a lease, attempts + 1, case → posting;
2. with no transaction open, for each row: `find_posted(key)` first (heals a crash that
   happened after the ERP accepted and before our commit), else `post_invoice`;
3. a second short transaction per row records posted + the ERP's reference, or schedules a
   retry with capped exponential backoff and jitter, or dead-letters the row.

Holding no transaction while talking to the ERP keeps a slow ERP from holding locks; the price
is at-least-once sending, made exactly-once by the ERP's idempotency key (app/erp/protocol.py).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.session import transaction
from app.erp import repository, service
from app.erp.protocol import ErpAdapter, ErpRejected, ErpUnavailable
from app.erp.service import ClaimedPosting, RetryPolicy
from app.logs import get_logger

log = get_logger(__name__)

# Benchmarks only (bench/posting_crash.py): sleep this many seconds after the ERP accepted a
# document and before the local commit, so a SIGKILL can land in exactly that window.
PAUSE_AFTER_POST_ENV = "TOLLGATE_WORKER_PAUSE_AFTER_POST"


def _pause_after_post(claimed: ClaimedPosting) -> None:
    seconds = os.environ.get(PAUSE_AFTER_POST_ENV)
    if seconds:
        time.sleep(float(seconds))


@dataclass
class RoundStats:
    """What the rounds of a worker did (counts of rows)."""

    claimed: int = 0
    posted: int = 0
    healed: int = 0  # found already posted by find_posted: a crash after the ERP's commit
    retried: int = 0
    failed: int = 0
    reclaimed: int = 0  # the lease ran out and another worker owns the row now
    errors: list[str] = field(default_factory=list)

    def add(self, other: RoundStats) -> None:
        """Add another round's counts to these."""
        self.claimed += other.claimed
        self.posted += other.posted
        self.healed += other.healed
        self.retried += other.retried
        self.failed += other.failed
        self.reclaimed += other.reclaimed
        self.errors.extend(other.errors)


@dataclass(frozen=True)
class SendResult:
    """What the ERP said about one row."""

    reference: str | None = None
    healed: bool = False  # find_posted knew the key: an earlier attempt got through
    error: str | None = None
    retryable: bool = True


def _send(adapter: ErpAdapter, claimed: ClaimedPosting) -> SendResult:
    """Ask, then post; no database work here."""
    if claimed.request is None:
        message = claimed.build_error or "the posting request could not be built"
        return SendResult(error=message, retryable=False)
    try:
        reference = adapter.find_posted(claimed.idempotency_key)
        if reference is not None:
            return SendResult(reference, healed=True)
        reference = adapter.post_invoice(claimed.request)
        _pause_after_post(claimed)
        return SendResult(reference)
    except ErpRejected as exc:
        return SendResult(
            error=f"{adapter.name} rejected the document: {exc.message}", retryable=False
        )
    except ErpUnavailable as exc:
        return SendResult(error=f"{adapter.name} unavailable: {exc.message}")
    except Exception as exc:  # an adapter bug must not stop the other rows
        log.exception("erp.adapter_error", key=claimed.idempotency_key)
        return SendResult(error=f"{adapter.name} failed: {type(exc).__name__}: {exc}"[:2000])


def run_round(
    factory: sessionmaker[Session],
    adapter: ErpAdapter,
    now: datetime | None = None,
    *,
    policy: RetryPolicy | None = None,
    batch: int = 10,
    rng: random.Random | None = None,
) -> RoundStats:
    """Claim up to `batch` due rows, send them and record each outcome; the counts."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    stats = RoundStats()
    with transaction(factory) as session:
        claimed = service.claim_due(session, now or utcnow(), policy, batch)
    stats.claimed = len(claimed)
    for row in claimed:
        if (now or utcnow()) >= row.lease_until:
            # A slow ERP ate this row's lease while we sent the ones before it: another worker
            # may own it now, so leave it to whoever claims it next.
            stats.reclaimed += 1
            continue
        sent = _send(adapter, row)
        with transaction(factory) as session:
            if sent.reference is not None:
                if service.record_posted(session, row, sent.reference):
                    stats.posted += 1
                    stats.healed += int(sent.healed)
                    log.info("erp.posted", key=row.idempotency_key, reference=sent.reference)
                else:
                    stats.reclaimed += 1
                continue
            error = sent.error or "no reference and no error from the adapter"
            result = service.record_failure(
                session,
                row,
                error,
                retryable=sent.retryable,
                now=now or utcnow(),
                policy=policy,
                rng=rng,
            )
            if result == "retry":
                stats.retried += 1
            elif result == "failed":
                stats.failed += 1
            else:
                stats.reclaimed += 1
            stats.errors.append(error)
            log.warning("erp.post_failed", key=row.idempotency_key, outcome=result, error=error)
    return stats


def run_once(
    factory: sessionmaker[Session],
    adapter: ErpAdapter,
    now: datetime | None = None,
    *,
    policy: RetryPolicy | None = None,
    batch: int = 10,
    rng: random.Random | None = None,
) -> int:
    """One round; returns how many rows were claimed (0: nothing was due)."""
    return run_round(factory, adapter, now, policy=policy, batch=batch, rng=rng).claimed


def run_forever(
    factory: sessionmaker[Session],
    adapter: ErpAdapter,
    stop: threading.Event,
    *,
    policy: RetryPolicy | None = None,
    batch: int = 10,
    poll_seconds: float = 1.0,
    rng: random.Random | None = None,
    on_round: Callable[[RoundStats], None] | None = None,
) -> RoundStats:
    """Run rounds until `stop` is set, idling `poll_seconds` when nothing is due; the totals."""
    totals = RoundStats()
    while not stop.is_set():
        try:
            stats = run_round(factory, adapter, policy=policy, batch=batch, rng=rng)
        except Exception:  # the database may be briefly away: keep the loop
            log.exception("erp.round_failed")
            stop.wait(poll_seconds)
            continue
        totals.add(stats)
        if on_round is not None:
            on_round(stats)
        if stats.claimed == 0:
            stop.wait(poll_seconds)
    return totals


def drain(
    factory: sessionmaker[Session],
    adapter: ErpAdapter,
    *,
    policy: RetryPolicy | None = None,
    batch: int = 10,
    timeout_seconds: float = 60.0,
    rng: random.Random | None = None,
) -> RoundStats:
    """Run rounds until no row is pending or sending (or the timeout passes); the totals."""
    totals = RoundStats()
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        stats = run_round(factory, adapter, policy=policy, batch=batch, rng=rng)
        totals.add(stats)
        if stats.claimed:
            continue
        with transaction(factory) as session:
            if repository.open_count(session) == 0:
                return totals
            due = repository.next_due_at(session)
        # Sleep until the next retry or lease end, but wake often enough to notice new rows.
        wait = 0.05 if due is None else (due - utcnow()).total_seconds()
        time.sleep(min(max(wait, 0.01), 0.5, max(deadline - time.monotonic(), 0.0)))
    return totals


class InProcessWorker:
    """The worker as a daemon thread of the web process (the embedded demo)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        adapter: ErpAdapter,
        *,
        policy: RetryPolicy | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        self._factory, self._adapter = factory, adapter
        self._policy, self._poll = policy, poll_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling the outbox."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=run_forever,
            args=(self._factory, self._adapter, self._stop),
            kwargs={"policy": self._policy, "poll_seconds": self._poll},
            name="erp-outbox-worker",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to stop after its current row and wait for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
