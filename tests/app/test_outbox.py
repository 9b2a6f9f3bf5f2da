"""The ERP outbox worker with the real UBL-export adapter, on SQLite and PostgreSQL.

Like test_review_concurrency.py these tests commit, so each runs on a fresh migrated database
of its own. `seed_approved` is shared with test_outbox_faults.py.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from review_fixtures import fresh_database, invoice_for, make_cases, seed_approved
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.audit import service as audit
from app.audit.service import Actor
from app.db import migrate
from app.db.base import utcnow
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import (
    AuditEvent,
    Case,
    CaseState,
    DecisionAction,
    ErpPosting,
    InvoiceRow,
    PostingState,
    User,
)
from app.erp import cli as erp_cli_module
from app.erp import service, worker
from app.erp.cli import erp_cli
from app.erp.protocol import ErpRejected, PostingRequest
from app.erp.service import RetryPolicy
from app.erp.ubl_export import UblExportAdapter, reference_for
from app.errors import Conflict
from app.reviews import service as reviews
from app.settings import get_settings
from app.users import service as users
from pipelines.parsers.ubl import read_ubl
from pipelines.parsers.xml_safety import parse_xml

POLICY = RetryPolicy(
    max_attempts=3,
    base=timedelta(seconds=10),
    cap=timedelta(minutes=5),
    lease=timedelta(seconds=60),
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """A fresh migrated database of its own: these tests commit, so they share nothing."""
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    with fresh_database(request.param, tmp_path) as made:
        yield made


class CountingAdapter(UblExportAdapter):
    """The real export adapter, counting the posts that reached it per key."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder, durable=False)
        self.posts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def post_invoice(self, request: PostingRequest) -> str:
        with self._lock:
            self.posts[request.idempotency_key] += 1
        return super().post_invoice(request)


def _drain(factory: sessionmaker[Session], adapter: UblExportAdapter) -> int:
    total = 0
    while claimed := worker.run_once(factory, adapter, policy=POLICY, rng=random.Random(1)):
        total += claimed
    return total


def _rows(factory: sessionmaker[Session]) -> dict[str, ErpPosting]:
    with transaction(factory) as session:
        return {p.idempotency_key: p for p in session.scalars(select(ErpPosting))}


def _case_states(factory: sessionmaker[Session]) -> dict[int, str]:
    with transaction(factory) as session:
        return {case_id: state for case_id, state in session.execute(select(Case.id, Case.state))}


def _actions(factory: sessionmaker[Session], case_id: int) -> list[str]:
    with transaction(factory) as session:
        return list(
            session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.object_type == "case", AuditEvent.object_id == str(case_id))
                .order_by(AuditEvent.seq)
            )
        )


def test_worker_posts_each_approved_case_exactly_once(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seeded = seed_approved(factory, 12, prefix="once")
    adapter = CountingAdapter(tmp_path / "export")
    assert _drain(factory, adapter) == 12
    rows = _rows(factory)
    states = _case_states(factory)
    for case_id, key in seeded:
        assert [p.name for p in adapter.files_for(key)] == [f"{key}.json", f"{key}.xml"]
        assert rows[key].state == PostingState.POSTED.value
        assert rows[key].erp_reference == reference_for(key)
        assert rows[key].attempts == 1
        assert states[case_id] == CaseState.POSTED.value
        assert _actions(factory, case_id)[-2:] == ["erp.sending", "erp.posted"]
        # The file is a UBL invoice that reads back to the same amounts.
        xml = (adapter.folder / f"{key}.xml").read_bytes()
        back = read_ubl(parse_xml(xml, max_bytes=1 << 20))
        assert back.totals.payable == Decimal("1190.00")
        sidecar = json.loads((adapter.folder / f"{key}.json").read_text())
        assert sidecar["case_id"] == case_id
        assert sidecar["gross"] == "1190.00"
    assert set(adapter.posts.values()) == {1}
    with transaction(factory) as session:
        assert audit.verify(session).ok


def test_rerun_is_a_no_op_and_a_lost_commit_is_healed_by_find_posted(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seeded = seed_approved(factory, 3, prefix="rerun")
    adapter = CountingAdapter(tmp_path / "export")
    _drain(factory, adapter)
    before = {p.name: p.read_bytes() for p in adapter.folder.iterdir()}
    assert worker.run_once(factory, adapter, policy=POLICY) == 0
    # As if the worker died after the ERP accepted and before its commit: the row is pending
    # again, but the ERP already holds the document.
    case_id, key = seeded[0]
    with transaction(factory) as session:
        session.execute(
            update(ErpPosting)
            .where(ErpPosting.idempotency_key == key)
            .values(state=PostingState.PENDING.value, erp_reference=None, next_attempt_at=utcnow())
        )
    stats = worker.run_round(factory, adapter, policy=POLICY)
    assert (stats.claimed, stats.posted, stats.healed) == (1, 1, 1)
    assert adapter.posts[key] == 1  # never sent a second time
    assert {p.name: p.read_bytes() for p in adapter.folder.iterdir()} == before
    assert _rows(factory)[key].erp_reference == reference_for(key)
    assert _case_states(factory)[case_id] == CaseState.POSTED.value


def test_expired_sending_lease_is_reclaimed(factory: sessionmaker[Session], tmp_path: Path) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="lease")
    adapter = CountingAdapter(tmp_path / "export")
    start = utcnow()
    # A worker claims the row and dies before sending anything.
    with transaction(factory) as session:
        assert len(service.claim_due(session, start, POLICY)) == 1
    assert _rows(factory)[key].state == PostingState.SENDING.value
    assert _case_states(factory)[case_id] == CaseState.POSTING.value
    # Within the lease nobody else may take it.
    assert worker.run_once(factory, adapter, start + timedelta(seconds=30), policy=POLICY) == 0
    assert adapter.posts[key] == 0
    later = start + POLICY.lease + timedelta(seconds=1)
    assert worker.run_once(factory, adapter, later, policy=POLICY) == 1
    row = _rows(factory)[key]
    assert (row.state, row.attempts) == (PostingState.POSTED.value, 2)
    assert adapter.posts[key] == 1
    assert _case_states(factory)[case_id] == CaseState.POSTED.value


def test_a_reclaimed_row_ignores_the_late_outcome_of_its_first_worker(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    [(_case_id, key)] = seed_approved(factory, 1, prefix="fence")
    start = utcnow()
    with transaction(factory) as session:
        [slow] = service.claim_due(session, start, POLICY)
    later = start + POLICY.lease + timedelta(seconds=1)
    with transaction(factory) as session:
        [fast] = service.claim_due(session, later, POLICY)
    assert (slow.attempt, fast.attempt) == (1, 2)
    with transaction(factory) as session:
        # The first worker wakes up with an error: its outcome must not touch the row.
        assert (
            service.record_failure(
                session,
                slow,
                "late",
                retryable=False,
                now=later,
                policy=POLICY,
                rng=random.Random(0),
            )
            is None
        )
        assert service.record_posted(session, fast, "REF-1")
    row = _rows(factory)[key]
    assert (row.state, row.erp_reference, row.last_error) == ("posted", "REF-1", None)


def test_signing_through_the_review_service_exports_signers(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    [case_id] = make_cases(factory, 1, gross=Decimal("500.00"), prefix="signed")
    with transaction(factory) as session:
        case = session.get(Case, case_id)
        assert case is not None
        session.execute(
            update(InvoiceRow)
            .where(InvoiceRow.id == case.invoice_id)
            .values(canonical=invoice_for("signed-0", Decimal("500.00")).model_dump(mode="json"))
        )
        user = users.create_user(
            session,
            username="ana",
            display_name="Ana",
            role="approver",
            password="a long enough password",
            actor=Actor("admin", "admin"),
            approval_limit=Decimal(100000),
            limit_currency="EUR",
        )
        claim = reviews.claim(session, case_id, user)
        outcome = reviews.decide(
            session,
            case_id,
            user,
            token=claim.token,
            version=claim.version,
            action=DecisionAction.SIGN,
        )
        assert outcome.state == CaseState.APPROVED.value
    adapter = CountingAdapter(tmp_path / "export")
    assert _drain(factory, adapter) == 1
    sidecar = json.loads((adapter.folder / f"tollgate-case-{case_id}.json").read_text())
    assert sidecar["signers"] == ["ana"]
    assert sidecar["po_number"] == "PO-1001"
    assert _case_states(factory)[case_id] == CaseState.POSTED.value


def test_concurrent_workers_send_each_row_once(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seeded = seed_approved(factory, 60, prefix="race")
    adapter = CountingAdapter(tmp_path / "export")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            while worker.run_once(factory, adapter, policy=POLICY, batch=3):
                pass
        except BaseException as exc:  # surfaced below: a thread's error would be lost
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert adapter.posts == Counter({key: 1 for _, key in seeded})
    assert {r.state for r in _rows(factory).values()} == {PostingState.POSTED.value}
    assert {r.attempts for r in _rows(factory).values()} == {1}


def test_unreadable_document_is_dead_lettered_at_once(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="broken", readable=False)
    adapter = CountingAdapter(tmp_path / "export")
    assert _drain(factory, adapter) == 1
    row = _rows(factory)[key]
    assert (row.state, row.attempts) == (PostingState.FAILED.value, 1)
    assert row.last_error is not None and "cannot be read" in row.last_error
    assert _case_states(factory)[case_id] == CaseState.POSTING_FAILED.value
    assert adapter.posts[key] == 0
    assert _actions(factory, case_id)[-1] == "erp.failed"


def _user(factory: sessionmaker[Session], name: str, role: str) -> int:
    with transaction(factory) as session:
        return users.create_user(
            session,
            username=name,
            display_name=name,
            role=role,
            password="a long enough password",
            actor=Actor("admin", "admin"),
        ).id


def test_a_clerk_retries_a_failed_posting(factory: sessionmaker[Session], tmp_path: Path) -> None:
    [(case_id, key)] = seed_approved(factory, 1, prefix="retry", readable=False)
    adapter = CountingAdapter(tmp_path / "export")
    _drain(factory, adapter)
    clerk, controller = _user(factory, "cleo", "clerk"), _user(factory, "carl", "controller")
    with transaction(factory) as session:
        user = session.get(User, controller)
        assert user is not None
        with pytest.raises(Conflict) as denied:
            service.retry_posting(session, case_id, user)
        assert denied.value.status_code == 403
    # The clerk fixes the document, then retries.
    with transaction(factory) as session:
        case = session.get(Case, case_id)
        assert case is not None
        number = session.scalar(select(InvoiceRow.number).where(InvoiceRow.id == case.invoice_id))
        assert number is not None
        session.execute(
            update(InvoiceRow)
            .where(InvoiceRow.id == case.invoice_id)
            .values(canonical=invoice_for(number, Decimal("1190.00")).model_dump(mode="json"))
        )
        user = session.get(User, clerk)
        assert user is not None
        service.retry_posting(session, case_id, user)
    row = _rows(factory)[key]
    assert (row.state, row.attempts) == (PostingState.PENDING.value, 0)
    assert _case_states(factory)[case_id] == CaseState.APPROVED.value
    assert _drain(factory, adapter) == 1
    assert _rows(factory)[key].state == PostingState.POSTED.value
    with transaction(factory) as session:
        user = session.get(User, clerk)
        assert user is not None
        with pytest.raises(Conflict):
            service.retry_posting(session, case_id, user)  # posted: nothing to retry
    assert "erp.retry_requested" in _actions(factory, case_id)


def test_reconcile_finds_missing_extra_and_differing(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seeded = seed_approved(factory, 4, prefix="recon")
    adapter = UblExportAdapter(tmp_path / "export", durable=False)
    _drain(factory, adapter)
    today = utcnow().date()
    with transaction(factory) as session:
        clean = service.reconcile(session, adapter, today, today)
    assert (clean.ok, clean.local_posted, clean.erp_posted, clean.matched) == (True, 4, 4, 4)
    (_, missing), (_, differs), _, _ = seeded
    (adapter.folder / f"{missing}.json").unlink()
    sidecar = json.loads((adapter.folder / f"{differs}.json").read_text())
    sidecar["gross"] = "1191.00"
    (adapter.folder / f"{differs}.json").write_text(json.dumps(sidecar))
    stranger = {**sidecar, "idempotency_key": "elsewhere-1", "erp_reference": "UBL-elsewhere-1"}
    (adapter.folder / "elsewhere-1.json").write_text(json.dumps(stranger))
    (adapter.folder / "elsewhere-1.xml").write_bytes(b"<Invoice/>")
    with transaction(factory) as session:
        report = service.reconcile(session, adapter, today, today)
    found = sorted((b.kind, b.idempotency_key) for b in report.breaks)
    assert found == [("differs", differs), ("extra", "elsewhere-1"), ("missing", missing)]
    assert "amount" in next(b.detail for b in report.breaks if b.kind == "differs")


def test_worker_and_reconcile_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    seeded = seed_approved(factory, 2, prefix="cli")
    export = tmp_path / "export"
    engine.dispose()
    # Logging set up inside CliRunner would write to its stream after the runner closed it.
    monkeypatch.setattr(erp_cli_module, "configure_logging", lambda *a, **k: None)
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", url)
    monkeypatch.setenv("TOLLGATE_ERP_EXPORT_DIR", str(export))
    get_settings.cache_clear()
    try:
        today = utcnow().date().isoformat()
        runner = CliRunner()
        sent = runner.invoke(erp_cli, ["worker", "--once"])
        assert sent.exit_code == 0, sent.output
        assert "claimed=2 posted=2" in sent.output
        assert sorted(p.name for p in export.glob("*.xml")) == sorted(
            f"{key}.xml" for _, key in seeded
        )
        ok = runner.invoke(erp_cli, ["reconcile", "--period", f"{today}:{today}"])
        assert ok.exit_code == 0, ok.output
        assert "matched 2, breaks 0" in ok.output
        (export / f"{seeded[0][1]}.xml").unlink()  # no XML: not (fully) posted
        broken = runner.invoke(erp_cli, ["reconcile", "--period", f"{today}:{today}"])
        assert broken.exit_code == 1
        assert "missing" in broken.output
        bad = runner.invoke(erp_cli, ["reconcile", "--period", "2026-01-31:2026-01-01"])
        assert bad.exit_code == 2
    finally:
        get_settings.cache_clear()


def test_backoff_is_exponential_capped_and_jittered() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(POLICY.base * 2 ** (attempt - 1), POLICY.cap)
        delays = [service.backoff_delay(attempt, POLICY, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, not one fixed value
    assert max(service.backoff_delay(40, POLICY, rng) for _ in range(20)) <= POLICY.cap


def test_export_adapter_refuses_keys_that_are_not_file_names(tmp_path: Path) -> None:
    adapter = UblExportAdapter(tmp_path / "export", durable=False)
    request = PostingRequest("../escape", 1, invoice_for("x", Decimal(1)), None, None)
    with pytest.raises(ErpRejected):
        adapter.post_invoice(request)
    with pytest.raises(ErpRejected):
        adapter.find_posted(".hidden")
    good = PostingRequest("key-1", 1, invoice_for("x", Decimal(1)), "SUP-1", None)
    assert adapter.post_invoice(good) == adapter.post_invoice(good) == "UBL-key-1"
    assert [p.name for p in adapter.files_for("key-1")] == ["key-1.json", "key-1.xml"]
    assert [d.idempotency_key for d in adapter.list_posted(date(2000, 1, 1), date(2100, 1, 1))] == [
        "key-1"
    ]
    assert adapter.list_posted(date(2000, 1, 1), date(2000, 1, 2)) == []


class SlowAdapter(CountingAdapter):
    """An export that takes longer per post than the worker's lease."""

    def post_invoice(self, request: PostingRequest) -> str:
        time.sleep(1.0)
        return super().post_invoice(request)


def test_rows_whose_lease_ran_out_in_the_batch_are_left_to_the_next_claim(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seed_approved(factory, 2, prefix="slow")
    adapter = SlowAdapter(tmp_path / "export")
    # Lease and post times wide apart, so a loaded machine's pauses between the claim and the
    # first send stay inside the lease while one slow post still outlasts it.
    short = RetryPolicy(max_attempts=3, lease=timedelta(milliseconds=500))
    stats = worker.run_round(factory, adapter, policy=short, batch=2)
    assert (stats.claimed, stats.posted, stats.reclaimed) == (2, 1, 1)
    assert sorted(r.state for r in _rows(factory).values()) == ["posted", "sending"]
    assert sum(adapter.posts.values()) == 1  # the second was never sent on a dead lease
    time.sleep(0.6)
    assert worker.run_round(factory, adapter, policy=short, batch=2).posted == 1
    assert {r.state for r in _rows(factory).values()} == {"posted"}


def test_a_post_sweeps_temp_files_left_by_a_killed_writer(tmp_path: Path) -> None:
    adapter = UblExportAdapter(tmp_path / "export", durable=False)
    adapter.folder.mkdir()
    gone = subprocess.Popen(["true"])  # its pid is free once it has been waited for
    gone.wait()
    leftover = adapter.folder / f".key-2.xml.{gone.pid}.abcd1234.tmp"
    leftover.write_bytes(b"<Inv")
    live = adapter.folder / f".key-2.json.{os.getppid()}.abcd1234.tmp"  # a live writer's
    live.write_bytes(b"{")
    other = adapter.folder / f".key-20.xml.{gone.pid}.abcd1234.tmp"  # another key's
    other.write_bytes(b"<Inv")
    adapter.post_invoice(PostingRequest("key-2", 1, invoice_for("x", Decimal(1)), None, None))
    assert not leftover.exists()
    assert live.exists() and other.exists()
    assert adapter.find_posted("key-2") == "UBL-key-2"


def test_the_in_process_worker_posts_until_stopped(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    seeded = seed_approved(factory, 5, prefix="inproc")
    adapter = CountingAdapter(tmp_path / "export")
    background = worker.InProcessWorker(factory, adapter, policy=POLICY, poll_seconds=0.05)
    background.start()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if {r.state for r in _rows(factory).values()} == {PostingState.POSTED.value}:
                break
            time.sleep(0.05)
        # A case approved while the worker runs is picked up too.
        [(_, late)] = seed_approved(factory, 1, prefix="inproc-late")
        while time.monotonic() < deadline and _rows(factory)[late].state != "posted":
            time.sleep(0.05)
    finally:
        background.stop()
    assert {r.state for r in _rows(factory).values()} == {PostingState.POSTED.value}
    assert adapter.posts == Counter({key: 1 for _, key in [*seeded, (0, late)]})
