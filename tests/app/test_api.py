"""The JSON API over a real database: upload, duplicates, typed errors, case listing."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.apikeys import service as apikeys
from app.audit.service import Actor
from app.main import create_app
from app.settings import Settings

ADMIN = Actor("admin", "admin")


@pytest.fixture
def client(loaded: Session, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(
        environment="test", data_dir=tmp_path, database_url="sqlite://", max_upload_bytes=200_000
    )
    app = create_app(settings, session_factory=lambda: loaded)  # type: ignore[arg-type]
    key = apikeys.create_key(loaded, name="erp", scopes=list(apikeys.SCOPES), actor=ADMIN)
    with TestClient(app, headers={"Authorization": f"Bearer {key.token}"}) as c:
        yield c


def _upload(client: TestClient, path: Path, name: str | None = None) -> dict:  # type: ignore[type-arg]
    response = client.post(
        "/api/v1/documents",
        files={"file": (name or path.name, path.read_bytes(), "application/xml")},
    )
    return {"status": response.status_code, "body": response.json()}


def test_upload_creates_a_case_and_a_second_upload_returns_it(
    client: TestClient, demo_dir: Path
) -> None:
    path = demo_dir / "documents" / "006-price-variance.xml"
    first = _upload(client, path)
    assert first["status"] == 201
    assert first["body"]["created"] is True
    assert first["body"]["reasons"] == ["PRICE_VARIANCE"]
    second = _upload(client, path, name="renamed.xml")
    assert second["status"] == 200
    assert second["body"]["created"] is False
    assert second["body"]["case_id"] == first["body"]["case_id"]

    case = client.get(f"/api/v1/cases/{first['body']['case_id']}").json()
    assert case["state"] == "triaged"
    assert case["invoice"]["gross_total"] == "1536.60"
    (finding,) = case["findings"]
    assert finding["code"] == "PRICE_VARIANCE"
    assert (finding["expected"], finding["actual"], finding["variance"]) == (
        "860.00",
        "956.00",
        "96.00",
    )


def test_unreadable_upload_is_422_with_reason_and_stored(
    client: TestClient, demo_dir: Path
) -> None:
    result = _upload(client, demo_dir / "documents" / "999-truncated-upload.xml")
    assert result["status"] == 422
    assert result["body"]["code"] == "MALFORMED_XML"
    assert result["body"]["message"]
    doc_id = result["body"]["details"]["document_id"]
    stored = client.get(f"/api/v1/documents/{doc_id}").json()
    assert stored["parse_status"] == "failed"
    failed = client.get("/api/v1/documents", params={"status": "failed"}).json()
    assert [d["id"] for d in failed["items"]] == [doc_id]


def test_upload_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post(
        "/api/v1/documents", files={"file": ("big.xml", b"<a>" + b"x" * 300_000, "text/xml")}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "PAYLOAD_TOO_LARGE"


def test_case_list_filters_and_paginates(client: TestClient, demo_dir: Path) -> None:
    for path in sorted((demo_dir / "documents").glob("0*.xml")):
        _upload(client, path)
    everything = client.get("/api/v1/cases", params={"page_size": 200}).json()
    assert everything["total"] == 28
    priorities = [c["priority"] for c in everything["items"]]
    assert priorities == sorted(priorities, reverse=True)

    dupes = client.get("/api/v1/cases", params={"reason": "DUPLICATE"}).json()
    assert [c["invoice"]["number"] for c in dupes["items"]] == ["INV2231"]

    nord = client.get("/api/v1/cases", params={"supplier": "S-NORD"}).json()
    assert nord["total"] > 0
    assert {c["supplier"]["ref"] for c in nord["items"]} == {"S-NORD"}

    page = client.get("/api/v1/cases", params={"page_size": 10, "page": 3}).json()
    assert (len(page["items"]), page["pages"]) == (8, 3)

    triaged = client.get("/api/v1/cases", params={"state": "triaged"}).json()
    assert triaged["total"] == 28


def test_errors_are_typed_json(client: TestClient, loaded: Session) -> None:
    bad = client.get("/api/v1/cases", params={"reason": "NOT_A_REASON"})
    assert bad.status_code == 422, bad.json()
    assert bad.json()["code"] == "INVALID_REQUEST"
    # An error rolls the request back, and here the request shares the test's session, so the
    # fixture's key went with it: make another.
    key = apikeys.create_key(loaded, name="erp2", scopes=["cases:read"], actor=ADMIN)
    client.headers["Authorization"] = f"Bearer {key.token}"
    missing = client.get("/api/v1/cases/999999")
    assert missing.status_code == 404
    assert missing.json()["code"] == "NOT_FOUND"


def test_api_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn." not in page.text and "https://" not in page.text
    script = re.search(r'src="([^"]+swagger-ui-bundle\.js)"', page.text)
    assert script is not None
    assert client.get(script.group(1)).status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/api/v1/documents" in schema["paths"] and "/api/v1/cases/{case_id}" in schema["paths"]


def test_review_pages_need_a_login(client: TestClient, demo_dir: Path) -> None:
    # Rendering for a logged-in user is tested in test_review_ui.py.
    result = _upload(client, demo_dir / "documents" / "011-freight-unplanned.xml")
    for path in ("/review", f"/review/cases/{result['body']['case_id']}"):
        page = client.get(path, follow_redirects=False)
        assert page.status_code in (302, 303), path
        assert page.headers["location"].startswith("/review/login")
        assert "FREIGHT_UNPLANNED" not in page.text


def test_uploads_are_parsed_in_sandboxed_workers(client: TestClient, demo_dir: Path) -> None:
    parser = client.app.state.parser  # type: ignore[attr-defined]
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        b"<Invoice>&lol2;</Invoice>"
    )
    hostile = client.post("/api/v1/documents", files={"file": ("bomb.xml", bomb, "text/xml")})
    assert hostile.status_code == 422
    assert hostile.json()["code"] == "UNSAFE_XML"
    # The parse ran in a worker process, not in the service's own.
    assert parser.pool.pids() and os.getpid() not in parser.pool.pids()
    good = _upload(client, demo_dir / "documents" / "006-price-variance.xml")
    assert good["status"] == 201


def test_a_parse_that_runs_out_of_time_is_stored_with_timeout(
    loaded: Session, tmp_path: Path, demo_dir: Path
) -> None:
    # 8,000 lines take a worker far longer than 50 ms to read: it is killed at its limit.
    data = (demo_dir / "documents" / "006-price-variance.xml").read_bytes()
    start, end = data.index(b"<cac:InvoiceLine>"), data.rindex(b"</cac:InvoiceLine>")
    line = data[start : end + len(b"</cac:InvoiceLine>")]
    huge = data[:start] + line * 8000 + data[end + len(b"</cac:InvoiceLine>") :]
    settings = Settings(
        environment="test", data_dir=tmp_path, database_url="sqlite://", parse_timeout_seconds=0.05
    )
    app = create_app(settings, session_factory=lambda: loaded)  # type: ignore[arg-type]
    key = apikeys.create_key(loaded, name="erp", scopes=list(apikeys.SCOPES), actor=ADMIN)
    with TestClient(app, headers={"Authorization": f"Bearer {key.token}"}) as c:
        response = c.post("/api/v1/documents", files={"file": ("huge.xml", huge, "text/xml")})
        assert response.status_code == 422
        assert response.json()["code"] == "TIMEOUT"
        assert c.get("/healthz").status_code == 200
        stored = c.get("/api/v1/documents", params={"status": "failed"}).json()
        assert [d["parse_error_code"] for d in stored["items"]] == ["TIMEOUT"]


def test_the_api_needs_a_live_key_with_the_right_scope(
    client: TestClient, loaded: Session, demo_dir: Path
) -> None:
    path = demo_dir / "documents" / "006-price-variance.xml"
    files = {"file": (path.name, path.read_bytes(), "application/xml")}
    anonymous = client.get("/api/v1/cases", headers={"Authorization": ""})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "API_KEY_REQUIRED"
    forged = client.get("/api/v1/cases", headers={"Authorization": "Bearer tg_abc_nope"})
    assert forged.status_code == 401 and forged.json()["code"] == "INVALID_API_KEY"
    reader = apikeys.create_key(loaded, name="portal", scopes=["cases:read"], actor=ADMIN)
    as_reader = {"Authorization": f"Bearer {reader.token}"}
    assert client.get("/api/v1/cases", headers=as_reader).status_code == 200
    refused = client.post("/api/v1/documents", files=files, headers=as_reader)
    assert refused.status_code == 403 and refused.json()["code"] == "MISSING_SCOPE"
    apikeys.revoke(loaded, reader.key.key_id, ADMIN)
    revoked = client.get("/api/v1/cases", headers=as_reader)
    assert revoked.status_code == 401 and revoked.json()["code"] == "REVOKED_API_KEY"
    # The secret is not stored: only its hash, under the public key id.
    assert reader.token.split("_", 2)[2] not in reader.key.secret_hash


def test_uploads_are_audited_with_the_key_that_made_them(
    client: TestClient, loaded: Session, demo_dir: Path
) -> None:
    from sqlalchemy import select

    from app.db.tables import AuditEvent

    result = _upload(client, demo_dir / "documents" / "001-clean-1.xml")
    assert result["status"] == 201
    actors = set(
        loaded.scalars(select(AuditEvent.actor).where(AuditEvent.action == "document.received"))
    )
    assert len(actors) == 1 and actors.pop().startswith("api-key:")
