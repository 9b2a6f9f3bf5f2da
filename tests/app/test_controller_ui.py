"""The controller's audit view and the dashboard over HTTP, on real rows (both backends)."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from review_fixtures import PASSWORD
from review_fixtures import log_in as _login
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.tables import (
    AuditEvent,
    Case,
    DecisionAction,
    FeedbackKind,
    InvoiceRow,
    Prediction,
    User,
)
from app.documents.service import ingest_bytes
from app.main import create_app
from app.reviews import service as reviews
from app.settings import Settings
from app.users import service as users

ADMIN = Actor("admin", "admin")
UPLOADER = Actor("uma", "clerk")
PEOPLE = {"clara": "clerk", "anna": "approver", "carl": "controller", "mia": "ml_engineer"}


@pytest.fixture
def team(loaded: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, User]:
    # The production hasher costs ~64 MiB per hash by design; these tests check behaviour.
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    made = {
        name: users.create_user(
            loaded,
            username=name,
            display_name=name.title(),
            role=role,
            password=PASSWORD,
            actor=ADMIN,
            approval_limit=Decimal("50000") if role == "approver" else None,
            limit_currency="EUR" if role == "approver" else None,
        )
        for name, role in PEOPLE.items()
    }
    loaded.flush()
    return made


@pytest.fixture
def cases(loaded: Session, blobs: BlobStore, demo_dir: Path) -> dict[str, int]:
    """The demo documents ingested as cases, by file name."""
    out = {}
    for path in sorted((demo_dir / "documents").glob("0*.xml")):
        outcome = ingest_bytes(
            loaded, blobs, path.read_bytes(), filename=path.name, channel="test", actor=UPLOADER
        )
        if outcome.case is not None:
            out[path.name] = outcome.case.id
    loaded.flush()
    return out


@pytest.fixture
def client(loaded: Session, tmp_path: Path, team: dict[str, User]) -> Iterator[TestClient]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",
        secret_key="a-test-secret-that-is-not-the-default",
        parse_sandbox=False,
    )
    app = create_app(settings, session_factory=lambda: loaded)  # type: ignore[arg-type]
    with TestClient(app, follow_redirects=False) as c:
        yield c


def _decide(
    session: Session,
    user: User,
    case_id: int,
    action: DecisionAction,
    reason: str | None = None,
    feedback: FeedbackKind | None = None,
) -> reviews.DecisionOutcome:
    claim = reviews.claim(session, case_id, user)
    outcome = reviews.decide(
        session,
        case_id,
        user,
        token=claim.token,
        version=claim.version,
        action=action,
        reason=reason,
        feedback=feedback,
    )
    session.flush()
    return outcome


def _gross(session: Session, case_id: int) -> Decimal:
    gross = session.scalar(
        select(InvoiceRow.gross_total)
        .join(Case, Case.invoice_id == InvoiceRow.id)
        .where(Case.id == case_id)
    )
    assert gross is not None
    return gross


def test_only_controllers_and_admins_open_the_audit_view_and_refusals_are_audited(
    client: TestClient, loaded: Session, cases: dict[str, int]
) -> None:
    _login(client, "clara")
    refused = client.get("/review/controller")
    assert refused.status_code == 403
    assert "for controllers" in refused.text
    assert client.get("/review/controller/decisions.csv").status_code == 403
    denials = loaded.scalars(
        select(AuditEvent).where(AuditEvent.action == "access.denied").order_by(AuditEvent.seq)
    ).all()
    assert [(d.actor, d.object_id) for d in denials] == [
        ("clara", "/review/controller"),
        ("clara", "/review/controller/decisions.csv"),
    ]
    # The dashboard is for everyone who reviews.
    assert client.get("/review/dashboard").status_code == 200
    _login(client, "carl")
    page = client.get("/review/controller")
    assert page.status_code == 200
    assert 'id="nav-audit"' in page.text and 'id="nav-promotions"' in page.text


def test_decision_log_filters_pages_and_exports_csv_with_totals(
    client: TestClient, loaded: Session, team: dict[str, User], cases: dict[str, int]
) -> None:
    clara, anna = team["clara"], team["anna"]
    clean = [cases[f"00{i}-clean-{i}.xml"] for i in (1, 2, 3)]
    for case_id in clean:
        assert _decide(loaded, clara, case_id, DecisionAction.SIGN).allowed
    variance = cases["006-price-variance.xml"]
    _decide(loaded, anna, variance, DecisionAction.REJECT, reason="price not agreed")
    _login(client, "carl")

    page = client.get("/review/controller")
    assert "4 decisions" in page.text
    only_clara = client.get("/review/controller?user=clara", headers={"HX-Request": "true"})
    assert only_clara.status_code == 200
    assert "<html" not in only_clara.text  # htmx gets the fragment
    assert "3 decisions" in only_clara.text
    rejects = client.get("/review/controller?action=reject&reason=PRICE_VARIANCE")
    assert "1 decisions" in rejects.text and "price not agreed" in rejects.text
    assert "0 decisions" in client.get("/review/controller?date_from=2099-01-01").text
    assert "0 decisions" in client.get("/review/controller?supplier=no-such-supplier").text
    by_name = client.get("/review/controller?supplier=nordfrost lebensmittel").text
    assert 'decisions.csv?supplier=nordfrost+lebensmittel"' in by_name  # the export keeps it
    nordfrost = list(
        csv.reader(
            io.StringIO(client.get("/review/controller/decisions.csv?supplier=Nordfrost").text)
        )
    )
    suppliers = {r[10] for r in nordfrost[1:] if r[0] != "TOTAL"}
    assert suppliers == {"Nordfrost Lebensmittel GmbH"}
    assert f"{len(nordfrost) - 2} decisions" in by_name

    export = client.get("/review/controller/decisions.csv?user=clara")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(export.text)))
    header = rows[0]
    body = [r for r in rows[1:] if r[0] != "TOTAL"]
    totals = {r[header.index("currency")]: r for r in rows[1:] if r[0] == "TOTAL"}
    assert header[0] == "decision_id" and len(body) == 3
    assert rows[1 : 1 + len(body)] == body  # the totals come last
    assert {int(r[header.index("case_id")]) for r in body} == set(clean)
    expected: dict[str, Decimal] = {}
    for r in body:
        currency = r[header.index("currency")]
        expected[currency] = expected.get(currency, Decimal(0)) + _gross(
            loaded, int(r[header.index("case_id")])
        )
    assert len(expected) == 2  # the demo's clean invoices come in GBP and EUR
    assert set(totals) == set(expected)
    for currency, row in totals.items():
        assert row[header.index("supplier")] == "3 decisions"
        assert Decimal(row[header.index("gross")]) == expected[currency]
    everything = list(csv.reader(io.StringIO(client.get("/review/controller/decisions.csv").text)))
    assert len([r for r in everything if r[0] != "TOTAL"]) == 1 + 4  # header, four decisions


def test_agreement_and_override_rate_per_model_version(
    client: TestClient, loaded: Session, team: dict[str, User], cases: dict[str, int]
) -> None:
    clara, anna = team["clara"], team["anna"]
    clean, variance = cases["002-clean-2.xml"], cases["006-price-variance.xml"]
    open_case = cases["007-over-received.xml"]

    def predict(case_id: int, version: str, output: dict[str, object]) -> None:
        loaded.add(
            Prediction(
                case_id=case_id,
                family="reason",
                model_name="tollgate-reason",
                model_version=version,
                output=output,
                explanation=[],
            )
        )

    # Version 1 gets both decided cases right; version 2 misses the price variance.
    predict(clean, "1", {"predicted": []})
    predict(variance, "1", {"probabilities": {"PRICE_VARIANCE": 0.91, "TAX_MISMATCH": 0.10}})
    predict(clean, "2", {"reasons": []})
    predict(variance, "2", {"probabilities": {"PRICE_VARIANCE": 0.20}})
    predict(open_case, "2", {"reasons": ["QTY_OVER_RECEIVED"]})  # undecided: not counted
    loaded.flush()
    _decide(loaded, clara, clean, DecisionAction.SIGN)
    _decide(
        loaded,
        anna,
        variance,
        DecisionAction.REJECT,
        reason="price variance beyond tolerance",
        feedback=FeedbackKind.MODEL_WRONG,
    )
    _login(client, "carl")
    page = client.get("/review/controller").text
    rows = {
        m.group(1): m.group(0)
        for m in re.finditer(r'<tr data-version="(\d+)">.*?</tr>', page, re.DOTALL)
    }
    assert set(rows) == {"1", "2"}
    cells = {v: re.findall(r'<td class="num[^"]*">([^<]*)</td>', row) for v, row in rows.items()}
    # predictions, decided, agree, agreement, overridden, override rate; then per feedback kind
    assert cells["1"] == ["2", "2", "2", "100.0 %", "1", "50.0 %", "1", "0", "0"]
    assert cells["2"] == ["3", "2", "1", "50.0 %", "1", "50.0 %", "1", "0", "0"]
    assert "0 decisions" in client.get("/review/controller?model_version=9").text
    assert "2 decisions" in client.get("/review/controller?model_version=1").text


def test_the_audit_sample_queue_is_checked_once_by_a_controller(
    client: TestClient, loaded: Session, team: dict[str, User], cases: dict[str, int]
) -> None:
    sampled = cases["002-clean-2.xml"]
    assert _decide(loaded, team["clara"], sampled, DecisionAction.SIGN).state == "approved"
    # Sign-off draws 5 % deterministically; this test picks its sampled case itself.
    loaded.execute(update(Case).where(Case.id == sampled).values(audit_sampled=True))
    loaded.flush()
    other = cases["003-clean-3.xml"]

    csrf = _login(client, "clara")
    refused = client.post(f"/review/controller/sample/{sampled}/checked", data={"csrf_token": csrf})
    assert refused.status_code == 403

    csrf = _login(client, "carl")
    page = client.get("/review/controller").text
    assert "1 to re-check of 1" in page
    assert f'action="/review/controller/sample/{sampled}/checked"' in page
    done = client.post(
        f"/review/controller/sample/{sampled}/checked",
        data={"csrf_token": csrf, "note": "PO and receipt agree"},
    )
    assert done.status_code == 303
    page = client.get("/review/controller").text
    assert "0 to re-check of 1" in page and "audited</span> by carl" in page
    again = client.post(f"/review/controller/sample/{sampled}/checked", data={"csrf_token": csrf})
    assert again.status_code == 409
    not_sampled = client.post(
        f"/review/controller/sample/{other}/checked", data={"csrf_token": csrf}
    )
    assert not_sampled.status_code == 409
    no_csrf = client.post(f"/review/controller/sample/{sampled}/checked", data={})
    assert no_csrf.status_code == 403
    checks = loaded.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit_sample.checked")
    ).all()
    assert [(c.actor, c.object_id, (c.after or {}).get("note")) for c in checks] == [
        ("carl", str(sampled), "PO and receipt agree")
    ]
    actions = set(loaded.scalars(select(AuditEvent.action)))
    assert {"access.denied", "csrf.refused"} <= actions


def test_chain_verification_shows_ok_then_the_first_bad_row(
    client: TestClient, loaded: Session, cases: dict[str, int]
) -> None:
    csrf = _login(client, "carl")
    head = re.search(r"<code>(\d+:[0-9a-f]{64})</code>", client.get("/review/controller").text)
    assert head is not None
    ok = client.post(
        "/review/controller/verify",
        data={"csrf_token": csrf, "checkpoint": head.group(1)},
        headers={"HX-Request": "true"},
    )
    assert ok.status_code == 200
    assert "Chain OK" in ok.text and "matches" in ok.text
    garbage = client.post(
        "/review/controller/verify", data={"csrf_token": csrf, "checkpoint": "not a checkpoint"}
    )
    assert garbage.status_code == 422 and "checkpoint looks like" in garbage.text
    verified = loaded.scalars(
        select(AuditEvent).where(AuditEvent.action == "audit_chain.verified")
    ).all()
    assert [(v.actor, (v.after or {}).get("ok")) for v in verified] == [("carl", True)]

    # Tamper with one row as the database's owner could (trigger off on PostgreSQL).
    victim = loaded.scalar(select(AuditEvent.seq).where(AuditEvent.actor == "uma").limit(1))
    assert victim is not None
    postgres = loaded.get_bind().dialect.name == "postgresql"
    if postgres:
        loaded.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    loaded.execute(update(AuditEvent).where(AuditEvent.seq == victim).values(actor="mallory"))
    if postgres:
        loaded.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))
    loaded.flush()
    broken = client.post("/review/controller/verify", data={"csrf_token": csrf})
    assert broken.status_code == 200
    assert "Chain BROKEN" in broken.text
    assert f"First bad row: seq {victim} " in broken.text


def test_dashboard_charts_and_tables_agree_with_the_cases(
    client: TestClient, loaded: Session, team: dict[str, User], cases: dict[str, int]
) -> None:
    clara = team["clara"]
    for name in ("002-clean-2.xml", "003-clean-3.xml"):
        assert _decide(loaded, clara, cases[name], DecisionAction.SIGN).state == "approved"
    loaded.execute(
        update(Case)
        .where(Case.id == cases["006-price-variance.xml"])
        .values(sla_due_at=Case.created_at)  # due when it arrived: breached
    )
    loaded.flush()
    _login(client, "mia")  # an ML engineer sees the dashboard too
    page = client.get("/review/dashboard")
    assert page.status_code == 200
    html = page.text
    assert "<script>" not in html and "style=" not in html  # the CSP allows neither
    assert 'id="chart-reasons"' in html and 'role="img"' in html
    open_cases = len(cases) - 2
    assert re.search(rf'id="kpi-open">{open_cases}<', html)
    assert re.search(r'id="kpi-sla">1<', html)
    # 2 approved, both clean with no correction: 100 % touchless.
    assert re.search(r'id="kpi-touchless">100.0 %<', html)
    table = re.search(r'<table class="grid chart-data" id="table-reasons">.*?</table>', html, re.S)
    assert table is not None
    numbers = dict(
        re.findall(r"<tr><td>([A-Z_]+)</td><td class=\"num\">(\d+)</td></tr>", table.group(0))
    )
    assert numbers["PRICE_VARIANCE"] == "1"
    assert numbers["NO_RECEIPT"] == "2"  # 008 and 026
    bars = dict(re.findall(r'<g class="bar" data-label="([A-Z_]+)" data-value="(\d+)">', html))
    assert bars == numbers
    aging = re.search(r'id="table-aging">.*?</table>', html, re.S)
    assert aging is not None and f'<td class="num">{open_cases}</td>' in aging.group(0)
