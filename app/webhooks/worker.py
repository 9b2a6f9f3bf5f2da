"""The webhook worker: claims due deliveries, POSTs them outside any transaction, records outcomes.

As the ERP outbox does: a short transaction claims rows with a lease, the HTTP calls run with no
transaction open (a slow endpoint holds no locks), and one short transaction per row records
delivered, a retry with capped exponential backoff, or `failed` after the last attempt. Sending
is at-least-once; receivers deduplicate by `Tollgate-Event-Id`.
"""

from __future__ import annotations

import json
import random
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.session import transaction
from app.logs import get_logger
from app.webhooks import repository, service
from app.webhooks.service import RetryPolicy

log = get_logger(__name__)


@dataclass
class DeliveryStats:
    """What rounds of the worker did (counts of deliveries)."""

    claimed: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0  # the lease ran out and another worker owns the row now

    def add(self, other: DeliveryStats) -> None:
        """Add another round's counts to these."""
        self.claimed += other.claimed
        self.delivered += other.delivered
        self.retried += other.retried
        self.failed += other.failed
        self.lost += other.lost


@dataclass(frozen=True)
class _Job:
    delivery_id: int
    attempt: int
    url: str
    secret: str
    event_type: str
    event_id: str
    payload: dict[str, Any]


def _claim(
    factory: sessionmaker[Session], policy: RetryPolicy, batch: int, now: datetime
) -> list[_Job]:
    jobs = []
    with transaction(factory) as session:
        skip_locked = session.get_bind().dialect.name == "postgresql"
        for delivery_id in repository.due_ids(session, now, batch, skip_locked):
            if repository.try_claim(session, delivery_id, now, now + policy.lease):
                row, sub = repository.claimed(session, delivery_id)
                session.refresh(row)  # the guarded UPDATE bypassed the identity map
                jobs.append(
                    _Job(
                        row.id,
                        row.attempts,
                        sub.url,
                        sub.secret,
                        row.event_type,
                        row.event_id,
                        row.payload,
                    )
                )
    return jobs


def _post(client: httpx.Client, job: _Job, timeout: float) -> tuple[int | None, str | None]:
    """(status code, error) of one POST; error is None for a 2xx."""
    body = json.dumps(job.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Tollgate-Webhooks/1",
        "Tollgate-Event": job.event_type,
        "Tollgate-Event-Id": job.event_id,
        "Tollgate-Delivery": f"{job.delivery_id}/{job.attempt}",
        service.SIGNATURE_HEADER: service.sign(job.secret, body),
    }
    try:
        response = client.post(job.url, content=body, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000]
    if 200 <= response.status_code < 300:
        return response.status_code, None
    return response.status_code, f"HTTP {response.status_code}: {response.text[:500]}"


def run_round(
    factory: sessionmaker[Session],
    client: httpx.Client,
    *,
    policy: RetryPolicy | None = None,
    batch: int = 20,
    rng: random.Random | None = None,
    now: datetime | None = None,
) -> DeliveryStats:
    """Claim what is due, send it, record each outcome; the counts."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()  # noqa: S311 - retry jitter, not a secret
    stats = DeliveryStats()
    jobs = _claim(factory, policy, batch, now or utcnow())
    stats.claimed = len(jobs)
    for job in jobs:
        status_code, error = _post(client, job, policy.timeout)
        with transaction(factory) as session:
            if error is None:
                assert status_code is not None
                landed = service.record_success(session, job.delivery_id, job.attempt, status_code)
                outcome = "delivered" if landed else "lost"
            else:
                status = service.record_failure(
                    session,
                    job.delivery_id,
                    job.attempt,
                    error=error,
                    status_code=status_code,
                    policy=policy,
                    rng=rng,
                )
                outcome = "lost" if status is None else status.value
        log.info(
            "webhook.attempt",
            delivery=job.delivery_id,
            attempt=job.attempt,
            outcome=outcome,
            status_code=status_code,
        )
        if outcome == "delivered":
            stats.delivered += 1
        elif outcome == "pending":
            stats.retried += 1
        elif outcome == "failed":
            stats.failed += 1
        else:
            stats.lost += 1
    return stats


def run_forever(
    factory: sessionmaker[Session],
    stop: threading.Event,
    *,
    policy: RetryPolicy | None = None,
    batch: int = 20,
    poll_seconds: float = 1.0,
    client: httpx.Client | None = None,
) -> DeliveryStats:
    """Run rounds until `stop` is set, idling `poll_seconds` when nothing is due; the totals."""
    totals = DeliveryStats()
    own = client is None
    client = client or httpx.Client(follow_redirects=False)
    try:
        while not stop.is_set():
            try:
                stats = run_round(factory, client, policy=policy, batch=batch)
            except Exception:  # the database may be briefly away: keep the loop
                log.exception("webhook.round_failed")
                stop.wait(poll_seconds)
                continue
            totals.add(stats)
            if stats.claimed == 0:
                stop.wait(poll_seconds)
    finally:
        if own:
            client.close()
    return totals
