"""Webhooks against a loopback HTTP receiver: queued with the state change, signed, retried."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.audit.service import Actor
from app.blobs import BlobStore
from app.cli import cli
from app.db.base import utcnow
from app.db.tables import DeliveryStatus, WebhookDelivery
from app.documents.service import ingest_bytes
from app.settings import get_settings
from app.webhooks import service
from app.webhooks.service import RetryPolicy
from app.webhooks.worker import run_round

ADMIN = Actor("admin", "admin")
UPLOADER = Actor("uma", "clerk")
SECRET = "a-webhook-secret-for-tests"


@dataclass
class Receiver:
    """A loopback endpoint answering with scripted statuses and keeping what it was sent."""

    script: list[tuple[int, str]] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state.received.append((dict(self.headers.items()), body))
            status, text = state.script.pop(0) if state.script else (200, "ok")
            payload = text.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(follow_redirects=False) as client:
        yield client


def _open_case(session: Session, blobs: BlobStore, demo_dir: Path) -> int:
    name = "006-price-variance.xml"
    outcome = ingest_bytes(
        session,
        blobs,
        (demo_dir / "documents" / name).read_bytes(),
        filename=name,
        channel="test",
        actor=UPLOADER,
    )
    assert outcome.case is not None
    session.flush()
    return outcome.case.id


def _deliveries(session: Session) -> list[WebhookDelivery]:
    session.expire_all()
    return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def _factory(session: Session):  # type: ignore[no-untyped-def]
    # The worker's transactions run as savepoints inside the test's rolled-back transaction.
    return lambda: session


def test_a_state_change_queues_a_delivery_in_its_own_transaction(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    service.add_subscription(loaded, url="http://127.0.0.1:9/a", events=["case.*"], actor=ADMIN)
    service.add_subscription(
        loaded, url="http://127.0.0.1:9/b", events=["case.approved"], actor=ADMIN
    )
    with loaded.begin_nested() as savepoint:
        _open_case(loaded, blobs, demo_dir)
        savepoint.rollback()  # the state change is undone: so is its delivery
    # Forget what was loaded inside the rolled-back savepoint (and the chain head cached there).
    loaded.expunge_all()
    loaded.info.pop("audit_head", None)
    assert _deliveries(loaded) == []

    case_id = _open_case(loaded, blobs, demo_dir)
    rows = _deliveries(loaded)
    # new -> triaged (creation has no "from" state and is an event too); /b wants approvals only.
    assert [(r.event_type, r.subscription_id, r.status) for r in rows] == [
        ("case.new", rows[0].subscription_id, "pending"),
        ("case.triaged", rows[0].subscription_id, "pending"),
    ]
    data = rows[1].payload["data"]
    assert (data["case_id"], data["from_state"], data["to_state"]) == (case_id, "new", "triaged")
    assert rows[1].payload["id"] == rows[1].event_id


def test_deliveries_are_signed_and_the_signature_verifies(
    loaded: Session, blobs: BlobStore, demo_dir: Path, receiver: Receiver, http: httpx.Client
) -> None:
    service.add_subscription(
        loaded, url=receiver.url, events=["case.triaged"], actor=ADMIN, secret=SECRET
    )
    case_id = _open_case(loaded, blobs, demo_dir)
    stats = run_round(_factory(loaded), http)
    assert (stats.claimed, stats.delivered) == (1, 1)
    ((headers, body),) = receiver.received
    assert service.verify(SECRET, headers["Tollgate-Signature"], body)
    assert not service.verify("another-secret-entirely", headers["Tollgate-Signature"], body)
    assert not service.verify(SECRET, headers["Tollgate-Signature"], body.replace(b"triaged", b"x"))
    stale = utcnow().timestamp() + 3600
    assert not service.verify(SECRET, headers["Tollgate-Signature"], body, now=stale)
    event = json.loads(body)
    assert headers["Tollgate-Event"] == event["type"] == "case.triaged"
    assert headers["Tollgate-Event-Id"] == event["id"]
    assert event["data"]["case_id"] == case_id
    (row,) = _deliveries(loaded)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 200)


def test_a_500_then_a_200_is_retried_with_backoff(
    loaded: Session, blobs: BlobStore, demo_dir: Path, receiver: Receiver, http: httpx.Client
) -> None:
    service.add_subscription(loaded, url=receiver.url, events=["case.triaged"], actor=ADMIN)
    _open_case(loaded, blobs, demo_dir)
    receiver.script = [(500, "database is down")]
    policy = RetryPolicy(max_attempts=5, base=timedelta(seconds=30))
    first = run_round(_factory(loaded), http, policy=policy, rng=random.Random(1))
    assert (first.claimed, first.retried) == (1, 1)
    (row,) = _deliveries(loaded)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, 500)
    assert row.last_error == "HTTP 500: database is down"
    # Backoff: not due again at once, due after at most the first step (30 s, jittered down).
    assert row.next_at > utcnow() + timedelta(seconds=14)
    assert run_round(_factory(loaded), http, policy=policy).claimed == 0
    later = utcnow() + timedelta(seconds=31)
    second = run_round(_factory(loaded), http, policy=policy, now=later)
    assert (second.claimed, second.delivered) == (1, 1)
    (row,) = _deliveries(loaded)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 2, 200)
    assert len(receiver.received) == 2
    assert receiver.received[0][1] == receiver.received[1][1]  # the same event, resent


def test_a_permanently_failing_endpoint_ends_failed_with_the_message(
    loaded: Session, blobs: BlobStore, demo_dir: Path, receiver: Receiver, http: httpx.Client
) -> None:
    service.add_subscription(loaded, url=receiver.url, events=["case.triaged"], actor=ADMIN)
    _open_case(loaded, blobs, demo_dir)
    receiver.script = [(503, "down for good")] * 3
    policy = RetryPolicy(max_attempts=3, base=timedelta(seconds=1), cap=timedelta(seconds=4))
    outcomes = []
    for hour in range(4):
        at = utcnow() + timedelta(hours=hour)
        stats = run_round(_factory(loaded), http, policy=policy, now=at)
        outcomes.append((stats.claimed, stats.retried, stats.failed))
    assert outcomes == [(1, 1, 0), (1, 1, 0), (1, 0, 1), (0, 0, 0)]
    (row,) = _deliveries(loaded)
    assert (row.status, row.attempts) == (DeliveryStatus.FAILED.value, 3)
    assert row.last_error == "HTTP 503: down for good"


def test_an_unreachable_endpoint_records_the_connection_error(
    loaded: Session, blobs: BlobStore, demo_dir: Path, http: httpx.Client
) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    service.add_subscription(
        loaded, url=f"http://127.0.0.1:{port}/", events=["case.triaged"], actor=ADMIN
    )
    _open_case(loaded, blobs, demo_dir)
    policy = RetryPolicy(max_attempts=1)
    assert run_round(_factory(loaded), http, policy=policy).failed == 1
    (row,) = _deliveries(loaded)
    assert row.status == "failed"
    assert row.last_status_code is None
    assert row.last_error and row.last_error.startswith("ConnectError")


def test_subscriptions_refuse_bad_urls_and_events(loaded: Session) -> None:
    from app.errors import InvalidInput

    with pytest.raises(InvalidInput):
        service.add_subscription(loaded, url="file:///etc/passwd", events=["case.*"], actor=ADMIN)
    with pytest.raises(InvalidInput):
        service.add_subscription(loaded, url="http://127.0.0.1/", events=["user.*"], actor=ADMIN)
    with pytest.raises(InvalidInput):
        service.add_subscription(
            loaded, url="http://127.0.0.1/", events=["case.*"], actor=ADMIN, secret="short"
        )


def test_the_cli_adds_lists_and_shows_deliveries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("TOLLGATE_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        added = runner.invoke(
            cli, ["webhooks", "add", "http://127.0.0.1:9/hook", "--events", "case.approved"]
        )
        assert added.exit_code == 0, added.output
        assert "signing secret (shown once)" in added.output
        secret = added.output.split("shown once):")[1].split()[0]
        listed = runner.invoke(cli, ["webhooks", "list"])
        assert listed.exit_code == 0, listed.output
        assert "127.0.0.1:9/hook" in listed.output and "case.approved" in listed.output
        assert secret not in listed.output
        log = runner.invoke(cli, ["webhooks", "deliveries", "--status", "failed"])
        assert log.exit_code == 0, log.output
        bad = runner.invoke(cli, ["webhooks", "deliveries", "--status", "lost"])
        assert bad.exit_code == 2
        assert runner.invoke(cli, ["webhooks", "disable", "1"]).exit_code == 0
        assert runner.invoke(cli, ["webhooks", "deliver", "--once"]).exit_code == 0
    finally:
        get_settings.cache_clear()
