"""The review screens over HTTP: login, CSRF, security headers, claims and decisions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from review_fixtures import PASSWORD
from review_fixtures import form_field as _field
from review_fixtures import log_in as _login
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.tables import AuditEvent, Case, ErpPosting, User
from app.documents.service import ingest_bytes
from app.main import create_app
from app.settings import Settings
from app.users import service as users
from review_ui import views

ADMIN = Actor("admin", "admin")
UPLOADER = Actor("uma", "clerk")


def _user(session: Session, name: str, role: str, limit: str | None = None) -> User:
    return users.create_user(
        session,
        username=name,
        display_name=name.title(),
        role=role,
        password=PASSWORD,
        actor=ADMIN,
        approval_limit=Decimal(limit) if limit else None,
        limit_currency="EUR" if limit else None,
    )


@pytest.fixture
def team(loaded: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, User]:
    # The production hasher costs ~64 MiB per hash by design; these tests check behaviour.
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    team = {
        "clara": _user(loaded, "clara", "clerk"),
        "uma": _user(loaded, "uma", "clerk"),
        "anna": _user(loaded, "anna", "approver", "50000"),
        "carl": _user(loaded, "carl", "controller"),
    }
    loaded.flush()
    return team


def _app_client(loaded: Session, tmp_path: Path, environment: str = "test") -> TestClient:
    settings = Settings(
        environment=environment,
        data_dir=tmp_path,
        database_url="sqlite://",
        secret_key="a-test-secret-that-is-not-the-default",
        parse_sandbox=False,
    )
    app = create_app(settings, session_factory=lambda: loaded)  # type: ignore[arg-type]
    # Secure cookies only travel over https, so the production client speaks it.
    base = "http://testserver" if environment == "test" else "https://testserver"
    return TestClient(app, base_url=base, follow_redirects=False)


@pytest.fixture
def client(loaded: Session, tmp_path: Path, team: dict[str, User]) -> Iterator[TestClient]:
    with _app_client(loaded, tmp_path) as c:
        yield c


def _case(session: Session, blobs: BlobStore, demo_dir: Path, name: str) -> int:
    path = demo_dir / "documents" / name
    outcome = ingest_bytes(
        session, blobs, path.read_bytes(), filename=name, channel="test", actor=UPLOADER
    )
    assert outcome.case is not None
    session.flush()
    return outcome.case.id


def _actions(session: Session, object_type: str | None = None) -> list[str]:
    query = select(AuditEvent.action).order_by(AuditEvent.seq)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    return list(session.scalars(query))


def test_review_pages_require_a_login(client: TestClient) -> None:
    page = client.get("/review?state=triaged")
    assert page.status_code == 303
    assert page.headers["location"] == "/review/login?next=/review%3Fstate%3Dtriaged"
    fragment = client.get("/review/cases/1", headers={"HX-Request": "true"})
    assert fragment.status_code == 401
    assert fragment.headers["HX-Redirect"] == "/review/login?next=/review/cases/1"
    client.cookies.set("tollgate_session", "forged")
    assert client.get("/review").status_code == 303


def test_a_wrong_password_is_refused_and_audited(client: TestClient, loaded: Session) -> None:
    form = client.get("/review/login")
    response = client.post(
        "/review/login",
        data={
            "username": "clara",
            "password": "not her password",
            "login_csrf": _field(form.text, "login_csrf"),
        },
    )
    assert response.status_code == 401
    assert "wrong user name or password" in response.text
    assert "tollgate_session" not in response.headers.get("set-cookie", "")
    assert client.get("/review").status_code == 303
    assert "login.failed" in _actions(loaded, "user")


def test_a_login_form_without_its_token_is_refused(client: TestClient) -> None:
    response = client.post("/review/login", data={"username": "clara", "password": PASSWORD})
    assert response.status_code == 403
    assert client.get("/review").status_code == 303


def test_after_login_the_user_goes_where_they_were_heading_but_only_inside_review(
    client: TestClient,
) -> None:
    for wanted, landed in (("/review/cases/7", "/review/cases/7"), ("//evil.test/x", "/review")):
        form = client.get("/review/login", params={"next": wanted})
        response = client.post(
            "/review/login",
            data={
                "username": "clara",
                "password": PASSWORD,
                "next": _field(form.text, "next"),
                "login_csrf": _field(form.text, "login_csrf"),
            },
        )
        assert response.headers["location"] == landed


def test_security_headers_and_the_session_cookie(client: TestClient) -> None:
    form = client.get("/review/login")
    csp = form.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp
    assert form.headers["x-frame-options"] == "DENY"
    assert form.headers["referrer-policy"] == "same-origin"
    assert form.headers["x-content-type-options"] == "nosniff"
    assert "<script>" not in form.text and " on" + "click=" not in form.text
    response = client.post(
        "/review/login",
        data={
            "username": "clara",
            "password": PASSWORD,
            "login_csrf": _field(form.text, "login_csrf"),
        },
    )
    cookie = response.headers["set-cookie"]
    assert "tollgate_session=" in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain-HTTP tests; see the production test below
    queue = client.get("/review")
    assert queue.headers["cache-control"] == "no-store"
    assert "unsafe-inline" not in queue.headers["content-security-policy"]
    assert client.get("/healthz").headers["x-frame-options"] == "DENY"
    static = client.get("/static/tollgate.js")
    assert static.status_code == 200 and "claim-next" in static.text


def test_the_session_cookie_is_secure_in_production(
    loaded: Session, tmp_path: Path, team: dict[str, User]
) -> None:
    with _app_client(loaded, tmp_path, environment="production") as client:
        form = client.get("/review/login")
        response = client.post(
            "/review/login",
            data={
                "username": "clara",
                "password": PASSWORD,
                "login_csrf": _field(form.text, "login_csrf"),
            },
        )
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


def test_a_post_without_the_csrf_token_is_refused_and_audited(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    csrf = _login(client, "clara")
    missing = client.post("/review/claim-next")
    assert missing.status_code == 403
    wrong = client.post(f"/review/cases/{case_id}/claim", headers={"X-CSRF-Token": "x" + csrf})
    assert wrong.status_code == 403
    assert _actions(loaded, "request").count("csrf.refused") == 2
    case = loaded.get(Case, case_id)
    assert case is not None and case.claimed_by_id is None
    # The header form (what htmx sends from hx-headers) is accepted like the hidden field.
    ok = client.post(f"/review/cases/{case_id}/claim", headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 303


def test_a_clerk_claims_and_signs_a_clean_case(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    csrf = _login(client, "clara")
    claimed = client.post("/review/claim-next", data={"csrf_token": csrf})
    assert claimed.status_code == 303
    assert claimed.headers["location"] == f"/review/cases/{case_id}"
    page = client.get(f"/review/cases/{case_id}")
    assert "claimed by <strong>you</strong>" in page.text
    assert "0 of 1 signature" in page.text
    queue = client.get("/review")
    assert re.search(rf'data-case="{case_id}".*?class="holder mine">clara<', queue.text, re.S)
    signed = client.post(
        f"/review/cases/{case_id}/decide",
        data={
            "csrf_token": csrf,
            "action": "sign",
            "token": _field(page.text, "token"),
            "version": _field(page.text, "version"),
        },
        headers={"HX-Request": "true"},
    )
    assert signed.status_code == 200
    assert signed.headers["HX-Redirect"] == f"/review?done={case_id}"
    case = loaded.get(Case, case_id)
    assert case is not None and case.state == "approved"
    posting = loaded.scalars(select(ErpPosting).where(ErpPosting.case_id == case_id)).one()
    assert posting.state == "pending"
    after = client.get(f"/review/cases/{case_id}")
    assert "1 of 1 signature: clara" in after.text
    assert "ERP outbox: <strong>pending</strong>" in after.text
    assert f"Case {case_id} is now approved." in client.get(f"/review?done={case_id}").text


def test_a_denied_signature_is_shown_in_place_and_audited(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    csrf = _login(client, "uma")  # she uploaded the document
    client.post(f"/review/cases/{case_id}/claim", data={"csrf_token": csrf})
    page = client.get(f"/review/cases/{case_id}")
    denied = client.post(
        f"/review/cases/{case_id}/decide",
        data={
            "csrf_token": csrf,
            "action": "sign",
            "token": _field(page.text, "token"),
            "version": _field(page.text, "version"),
        },
        headers={"HX-Request": "true"},
    )
    assert denied.status_code == 403
    assert "Signature refused: You uploaded this document" in denied.text
    assert "(OWN_UPLOAD)" in denied.text
    assert denied.text.lstrip().startswith('<section id="work"')  # the fragment, not a page
    assert "signature.denied" in _actions(loaded, "case")
    case = loaded.get(Case, case_id)
    assert case is not None and case.state == "in_review"


def test_reasons_and_stale_forms_are_refused_in_place(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "006-price-variance.xml")
    csrf = _login(client, "clara")
    client.post(f"/review/cases/{case_id}/claim", data={"csrf_token": csrf})
    page = client.get(f"/review/cases/{case_id}")
    form = {
        "csrf_token": csrf,
        "token": _field(page.text, "token"),
        "version": _field(page.text, "version"),
    }
    no_reason = client.post(f"/review/cases/{case_id}/decide", data={**form, "action": "reject"})
    assert no_reason.status_code == 422
    assert "needs a reason" in no_reason.text and "<html" in no_reason.text
    stale = {**form, "version": str(int(form["version"]) - 1), "action": "hold", "reason": "x"}
    refused = client.post(f"/review/cases/{case_id}/decide", data=stale)
    assert refused.status_code == 409
    assert "the case changed since you opened it" in refused.text
    held = client.post(
        f"/review/cases/{case_id}/decide",
        data={**form, "action": "hold", "reason": "asked the buyer about the price"},
    )
    assert held.status_code == 303
    case = loaded.get(Case, case_id)
    assert case is not None and case.state == "on_hold"


def test_a_controller_sees_cases_read_only(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    csrf = _login(client, "carl")
    assert 'id="claim-next"' not in client.get("/review").text
    page = client.get(f"/review/cases/{case_id}")
    assert page.status_code == 200
    assert 'id="read-only"' in page.text and 'id="claim-button"' not in page.text
    refused = client.post(f"/review/cases/{case_id}/claim", data={"csrf_token": csrf})
    assert refused.status_code == 403
    assert "controllers do not work cases" in refused.text


def test_review_pages_render_for_a_logged_in_user(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "011-freight-unplanned.xml")
    _login(client, "clara")
    queue = client.get("/review")
    assert queue.status_code == 200 and "FREIGHT_UNPLANNED" in queue.text
    page = client.get(f"/review/cases/{case_id}")
    assert page.status_code == 200
    assert "Match table" in page.text and "FREIGHT_UNPLANNED" in page.text
    assert 'id="claim-button"' in page.text  # a clerk may claim it


def test_htmx_gets_fragments_and_a_history_restore_gets_the_page(client: TestClient) -> None:
    _login(client, "clara")
    fragment = client.get("/review?state=approved", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<table class="grid" id="cases">')
    restore = client.get(
        "/review?state=approved",
        headers={"HX-Request": "true", "HX-History-Restore-Request": "true"},
    )
    assert restore.text.lstrip().startswith("<!doctype html>")


def test_logout_ends_the_session(client: TestClient, loaded: Session) -> None:
    csrf = _login(client, "anna")
    token = client.cookies.get("tollgate_session")
    assert token
    out = client.post("/review/logout", data={"csrf_token": csrf})
    assert out.status_code == 303 and out.headers["location"] == "/review/login"
    client.cookies.set("tollgate_session", token)  # replaying the old cookie does not help
    assert client.get("/review").status_code == 303
    assert "logout" in _actions(loaded, "user")


def test_sla_badges_flag_open_cases_only() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert views.sla_badge("triaged", now - timedelta(minutes=1), now) == "overdue"
    assert views.sla_badge("in_review", now + timedelta(hours=3), now) == "due today"
    assert views.sla_badge("on_hold", now + timedelta(hours=13), now) is None  # tomorrow
    assert views.sla_badge("approved", now - timedelta(days=1), now) is None
    assert views.sla_badge("triaged", None, now) is None
