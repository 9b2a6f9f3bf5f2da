"""Fault injection: the outbox worker against a misbehaving ERP on loopback.

The fake ERP is a real HTTP server on 127.0.0.1 (a thread) that, unlike a good ERP, does not
deduplicate: every POST it accepts creates a new document. So "one document per key" below is
earned by the worker (find_posted before every post), not given by the fake. Faults are scripted
per POST: 503, a timeout AFTER the document was stored, garbage answers (before or after
storing), a 422 rejection. Time is stepped by passing `now` to run_once, never by sleeping
through backoffs.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from review_fixtures import fresh_database, seed_approved
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.session import transaction
from app.db.tables import AuditEvent, Case, CaseState, ErpPosting, PostingState
from app.erp import worker
from app.erp.protocol import (
    ErpRejected,
    ErpUnavailable,
    PostedDocument,
    PostingRequest,
    SupplierData,
)
from app.erp.service import ClaimedPosting, RetryPolicy
from pipelines.canonical import GoodsReceipt, PurchaseOrder

CLIENT_TIMEOUT = 0.3
POLICY = RetryPolicy(
    max_attempts=4,
    base=timedelta(seconds=10),
    cap=timedelta(minutes=2),
    lease=timedelta(minutes=1),
)


class FakeErp:
    """A tiny, non-idempotent ERP: POST /invoices stores, GET /invoices?key= looks up."""

    def __init__(self) -> None:
        self.documents: list[dict[str, Any]] = []
        self.script: list[str] = []  # what to do on the next POSTs; then `default`
        self.default = "ok"
        self.post_calls: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Where the fake listens."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def per_key(self) -> Counter[str]:
        """How many documents the ERP holds for each key."""
        with self.lock:
            return Counter(d["key"] for d in self.documents)

    def _store(self, body: dict[str, Any]) -> str:
        with self.lock:
            reference = f"ERP-{len(self.documents) + 1:05d}"
            self.documents.append({**body, "reference": reference})
            return reference

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        erp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

            def _reply(self, status: int, body: bytes, kind: str = "application/json") -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (the timeout scenario)

            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                with erp.lock:
                    docs = list(erp.documents)
                if "key" in query:
                    found = [d for d in docs if d["key"] == query["key"][0]]
                    if not found:
                        self._reply(404, b'{"error": "not found"}')
                        return
                    self._reply(200, json.dumps({"reference": found[0]["reference"]}).encode())
                    return
                self._reply(200, json.dumps(docs).encode())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                with erp.lock:
                    action = erp.script.pop(0) if erp.script else erp.default
                    erp.post_calls[body["key"]] += 1
                if action == "ok":
                    reference = erp._store(body)
                    self._reply(201, json.dumps({"reference": reference}).encode())
                elif action == "503":
                    self._reply(503, b'{"error": "ERP maintenance window"}')
                elif action == "timeout_after_commit":
                    erp._store(body)
                    time.sleep(CLIENT_TIMEOUT * 3)  # the client has given up by now
                    self._reply(201, b'{"reference": "too late"}')
                elif action == "garbage":
                    self._reply(200, b"<html>proxy error</html>", "text/html")
                elif action == "garbage_after_commit":
                    erp._store(body)
                    self._reply(201, b'{"refer', "application/json")
                elif action == "422":
                    self._reply(422, b'{"error": "supplier SUP-9 is unknown to the ERP"}')
                else:  # pragma: no cover - a typo in a test script
                    raise AssertionError(action)

        return Handler

    def __enter__(self) -> FakeErp:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class HttpErpAdapter:
    """A minimal JSON-over-HTTP ErpAdapter, as a real one would classify faults."""

    name = "fake-http"

    def __init__(self, base_url: str, timeout: float = CLIENT_TIMEOUT) -> None:
        self.base_url = base_url
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base_url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = exc.read().decode(errors="replace")
            if exc.code == 404:
                return None
            if 400 <= exc.code < 500:
                raise ErpRejected(f"HTTP {exc.code}: {message}") from exc
            raise ErpUnavailable(f"HTTP {exc.code}: {message}") from exc
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ErpUnavailable(f"no answer from {self.base_url}: {exc}") from exc
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise ErpUnavailable(f"unreadable answer: {raw[:80]!r}") from exc

    def check(self) -> str:
        """The fake's address."""
        return self.base_url

    def fetch_suppliers(self) -> list[SupplierData]:
        """None."""
        return []

    def fetch_purchase_orders(self, since: datetime | None = None) -> list[PurchaseOrder]:
        """None."""
        return []

    def fetch_receipts(self, since: datetime | None = None) -> list[GoodsReceipt]:
        """None."""
        return []

    def post_invoice(self, request: PostingRequest) -> str:
        """POST the header; the reference from the answer."""
        doc = request.document
        answer = self._call(
            "POST",
            "/invoices",
            {
                "key": request.idempotency_key,
                "number": doc.number,
                "currency": doc.currency,
                "gross": str(doc.gross),
            },
        )
        if not isinstance(answer, dict) or not isinstance(answer.get("reference"), str):
            raise ErpUnavailable(f"answer without a reference: {answer!r}"[:200])
        return answer["reference"]

    def find_posted(self, idempotency_key: str) -> str | None:
        """GET by key."""
        answer = self._call("GET", "/invoices?" + urllib.parse.urlencode({"key": idempotency_key}))
        if answer is None:
            return None
        if not isinstance(answer, dict) or not isinstance(answer.get("reference"), str):
            raise ErpUnavailable(f"answer without a reference: {answer!r}"[:200])
        return answer["reference"]

    def list_posted(self, start: date, end: date) -> list[PostedDocument]:
        """Everything the fake holds."""
        return [
            PostedDocument(d["key"], d["reference"], None, d["currency"], Decimal(d["gross"]))
            for d in self._call("GET", "/invoices")
        ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh migrated database of its own."""
    with fresh_database(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def erp() -> Iterator[FakeErp]:
    """The fake ERP, listening on loopback."""
    with FakeErp() as fake:
        yield fake


def _until_quiet(
    factory: sessionmaker[Session], adapter: HttpErpAdapter, start: datetime, rounds: int = 50
) -> datetime:
    """Run rounds, stepping the clock past every backoff, until nothing is open; the end time."""
    now = start
    for _ in range(rounds):
        claimed = worker.run_once(factory, adapter, now, policy=POLICY, rng=random.Random(3))
        if claimed == 0:
            with transaction(factory) as session:
                due = session.scalar(
                    select(ErpPosting.next_attempt_at)
                    .where(ErpPosting.state.in_(("pending", "sending")))
                    .order_by(ErpPosting.next_attempt_at)
                )
            if due is None:
                return now
            now = max(now, due)
    raise AssertionError("the outbox did not settle")


def _row(factory: sessionmaker[Session], key: str) -> ErpPosting:
    with transaction(factory) as session:
        row = session.scalars(select(ErpPosting).where(ErpPosting.idempotency_key == key)).one()
        return row


def _case_state(factory: sessionmaker[Session], case_id: int) -> str:
    with transaction(factory) as session:
        state = session.scalar(select(Case.state).where(Case.id == case_id))
        assert state is not None
        return state


def _actions(factory: sessionmaker[Session], case_id: int) -> list[str]:
    with transaction(factory) as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.object_id == str(case_id), AuditEvent.action.like("erp.%"))
                .order_by(AuditEvent.seq)
            )
        )


def test_5xx_twice_then_posted_once(factory: sessionmaker[Session], erp: FakeErp) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="5xx")
    erp.script = ["503", "503"]
    start = utcnow()
    adapter = HttpErpAdapter(erp.url)
    assert worker.run_once(factory, adapter, start, policy=POLICY, rng=random.Random(0)) == 1
    first = _row(factory, key)
    assert first.state == PostingState.PENDING.value
    assert first.last_error is not None and "ERP maintenance window" in first.last_error
    waited = first.next_attempt_at - start
    assert POLICY.base / 2 <= waited <= POLICY.base  # backoff after attempt 1, jittered
    assert _case_state(factory, case_id) == CaseState.POSTING.value
    _until_quiet(factory, adapter, start)
    row = _row(factory, key)
    assert (row.state, row.attempts, row.last_error) == (PostingState.POSTED.value, 3, None)
    assert row.erp_reference == "ERP-00001"
    assert erp.per_key() == Counter({key: 1})
    assert _case_state(factory, case_id) == CaseState.POSTED.value
    assert _actions(factory, case_id) == [
        "erp.sending",
        "erp.retry_scheduled",
        "erp.sending",
        "erp.retry_scheduled",
        "erp.sending",
        "erp.posted",
    ]


def test_timeout_after_the_erp_committed_is_not_posted_twice(
    factory: sessionmaker[Session], erp: FakeErp
) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="timeout")
    erp.script = ["timeout_after_commit"]
    adapter = HttpErpAdapter(erp.url)
    start = utcnow()
    stats = worker.run_round(factory, adapter, start, policy=POLICY)
    assert (stats.claimed, stats.retried) == (1, 1)
    assert "no answer" in (_row(factory, key).last_error or "")
    assert erp.per_key() == Counter({key: 1})  # the ERP has it, Tollgate does not know yet
    later = start + POLICY.cap
    stats = worker.run_round(factory, adapter, later, policy=POLICY)
    assert (stats.posted, stats.healed) == (1, 1)
    assert erp.post_calls[key] == 1  # found by key, never posted again
    assert erp.per_key() == Counter({key: 1})
    assert _row(factory, key).erp_reference == "ERP-00001"
    assert _case_state(factory, case_id) == CaseState.POSTED.value


def test_garbage_answers_are_retried_without_duplicates(
    factory: sessionmaker[Session], erp: FakeErp
) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="garbage")
    erp.script = ["garbage", "garbage_after_commit"]
    adapter = HttpErpAdapter(erp.url)
    _until_quiet(factory, adapter, utcnow())
    row = _row(factory, key)
    assert (row.state, row.attempts) == (PostingState.POSTED.value, 3)
    assert erp.post_calls[key] == 2  # the third attempt found the document by key
    assert erp.per_key() == Counter({key: 1})
    assert _case_state(factory, case_id) == CaseState.POSTED.value


def test_a_down_erp_dead_letters_after_max_attempts_with_its_message(
    factory: sessionmaker[Session], erp: FakeErp
) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="down")
    erp.default = "503"
    adapter = HttpErpAdapter(erp.url)
    _until_quiet(factory, adapter, utcnow())
    row = _row(factory, key)
    assert (row.state, row.attempts) == (PostingState.FAILED.value, POLICY.max_attempts)
    assert row.last_error is not None and "HTTP 503" in row.last_error
    assert "ERP maintenance window" in row.last_error
    assert erp.per_key() == Counter()
    assert _case_state(factory, case_id) == CaseState.POSTING_FAILED.value
    actions = _actions(factory, case_id)
    assert actions.count("erp.retry_scheduled") == POLICY.max_attempts - 1
    assert actions[-1] == "erp.failed"


def test_an_unreachable_erp_is_retried(factory: sessionmaker[Session], erp: FakeErp) -> None:
    [(_case_id, key)] = seed_approved(factory, 1, prefix="refused")
    url = erp.url
    erp.server.shutdown()
    erp.server.server_close()  # nothing listens on the port any more
    assert worker.run_once(factory, HttpErpAdapter(url), policy=POLICY) == 1
    row = _row(factory, key)
    assert (row.state, row.attempts) == (PostingState.PENDING.value, 1)
    assert row.last_error is not None and "no answer" in row.last_error


def test_a_rejection_fails_at_once(factory: sessionmaker[Session], erp: FakeErp) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="reject")
    erp.script = ["422"]
    _until_quiet(factory, HttpErpAdapter(erp.url), utcnow())
    row = _row(factory, key)
    assert (row.state, row.attempts) == (PostingState.FAILED.value, 1)
    assert row.last_error is not None and "supplier SUP-9 is unknown" in row.last_error
    assert _case_state(factory, case_id) == CaseState.POSTING_FAILED.value


class Crash(BaseException):
    """The worker process dying (not an Exception: nothing may catch it)."""


def test_a_crash_after_the_erp_committed_is_healed_by_find_posted(
    factory: sessionmaker[Session], erp: FakeErp, monkeypatch: pytest.MonkeyPatch
) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="crash")
    adapter = HttpErpAdapter(erp.url)

    def die(claimed: ClaimedPosting) -> None:
        raise Crash(claimed.idempotency_key)

    monkeypatch.setattr(worker, "_pause_after_post", die)
    start = utcnow()
    with pytest.raises(Crash):
        worker.run_once(factory, adapter, start, policy=POLICY)
    assert _row(factory, key).state == PostingState.SENDING.value  # nothing recorded locally
    assert erp.per_key() == Counter({key: 1})
    monkeypatch.undo()
    # The restarted worker waits for the lease, then finds the document by its key.
    assert worker.run_once(factory, adapter, start, policy=POLICY) == 0
    stats = worker.run_round(factory, adapter, start + POLICY.lease, policy=POLICY)
    assert (stats.posted, stats.healed) == (1, 1)
    assert erp.post_calls[key] == 1
    row = _row(factory, key)
    assert (row.state, row.attempts, row.erp_reference) == ("posted", 2, "ERP-00001")
    assert _case_state(factory, case_id) == CaseState.POSTED.value


def test_a_mixed_storm_of_faults_leaves_one_document_per_key(
    factory: sessionmaker[Session], erp: FakeErp
) -> None:
    seeded = seed_approved(factory, 24, prefix="storm")
    faults = ["503", "timeout_after_commit", "garbage", "garbage_after_commit", "ok", "ok"]
    rng = random.Random(11)
    # At most max_attempts - 1 faults in a row, so every posting gets through in the end.
    erp.script = [rng.choice(faults) for _ in range(60)]
    policy = RetryPolicy(max_attempts=64, base=POLICY.base, cap=POLICY.cap, lease=POLICY.lease)
    adapter = HttpErpAdapter(erp.url)
    now = utcnow()
    for _ in range(400):
        if not worker.run_once(factory, adapter, now, policy=policy, batch=5):
            now += policy.cap
        with transaction(factory) as session:
            states = set(session.scalars(select(ErpPosting.state)))
        if states == {PostingState.POSTED.value}:
            break
    assert states == {PostingState.POSTED.value}
    assert erp.per_key() == Counter({key: 1 for _, key in seeded})
    with transaction(factory) as session:
        references = dict(
            session.execute(select(ErpPosting.idempotency_key, ErpPosting.erp_reference)).all()
        )
    with erp.lock:
        held = {d["key"]: d["reference"] for d in erp.documents}
    assert references == held
