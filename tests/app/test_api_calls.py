"""The API call log: keyed calls are buffered by a middleware and written in batches.

Most tests run the app on the test transaction (no recorder thread: a session is not
thread-safe) and call `flush()` themselves, so what a request wrote and what a flush wrote are
told apart. One test runs the real thread on a fresh database of its own, one the shutdown.
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from review_fixtures import fresh_database
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.apikeys import repository
from app.apikeys import service as apikeys
from app.apikeys.calls import CallRecord, CallRecorder
from app.audit.service import Actor
from app.cli import cli
from app.db.session import make_session_factory, transaction
from app.db.tables import ApiCall, ApiKey
from app.main import create_app
from app.settings import Settings, get_settings
from pipelines.parsers import parse_document

ADMIN = Actor("admin", "admin")


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "data_dir": tmp_path,
        "database_url": "sqlite://",
        "parse_sandbox": False,
        "max_upload_bytes": 200_000,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _app(session: Session, tmp_path: Path, **overrides: object) -> FastAPI:
    settings = _settings(tmp_path, **overrides)
    return create_app(settings, session_factory=lambda: session)  # type: ignore[arg-type]


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _logged(session: Session, key_id: str) -> list[tuple[str, str, int]]:
    rows = session.scalars(select(ApiCall).where(ApiCall.key_id == key_id).order_by(ApiCall.id))
    return [(r.method, r.route, r.status) for r in rows]


def _last_used(session: Session, key_id: str) -> datetime | None:
    return session.scalar(select(ApiKey.last_used_at).where(ApiKey.key_id == key_id))


def _count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(ApiCall)) or 0


def _canonical(demo_dir: Path, name: str) -> dict[str, Any]:
    data = (demo_dir / "documents" / name).read_bytes()
    return parse_document(data).document.model_dump(mode="json")


def test_keyed_calls_are_logged_with_the_key_the_route_template_and_the_status(
    loaded: Session, tmp_path: Path, demo_dir: Path
) -> None:
    app = _app(loaded, tmp_path)
    key = apikeys.create_key(loaded, name="erp", scopes=list(apikeys.SCOPES), actor=ADMIN)
    key_id = key.key.key_id
    client = TestClient(app, headers=_auth(key.token))
    doc = demo_dir / "documents" / "001-clean-1.xml"
    upload = client.post(
        "/api/v1/documents", files={"file": (doc.name, doc.read_bytes(), "application/xml")}
    )
    assert upload.status_code == 201, upload.text
    responses = [
        upload,
        client.get(f"/api/v1/cases/{upload.json()['case_id']}"),
        client.get("/api/v1/cases/999999"),
        client.get("/api/v1/cases/abc"),
        client.post("/api/v1/score", json={"document": _canonical(demo_dir, "001-clean-1.xml")}),
        client.post("/api/v1/score", json={}),
    ]
    assert [r.status_code for r in responses] == [201, 200, 404, 422, 200, 422]

    # The requests wrote nothing: not the calls, not the key's last use.
    assert _logged(loaded, key_id) == []
    assert _last_used(loaded, key_id) is None
    assert app.state.api_calls.pending == 6

    assert app.state.api_calls.flush() == 6
    assert app.state.api_calls.pending == 0
    assert _logged(loaded, key_id) == [
        ("POST", "/api/v1/documents", 201),
        ("GET", "/api/v1/cases/{case_id}", 200),
        ("GET", "/api/v1/cases/{case_id}", 404),
        ("GET", "/api/v1/cases/{case_id}", 422),
        ("POST", "/api/v1/score", 200),
        ("POST", "/api/v1/score", 422),
    ]
    rows_list = list(
        loaded.scalars(select(ApiCall).where(ApiCall.key_id == key_id).order_by(ApiCall.id))
    )
    assert [r.request_id for r in rows_list] == [r.headers["X-Request-ID"] for r in responses]
    assert all(r.duration_ms >= 0 for r in rows_list)
    assert [r.at for r in rows_list] == sorted(r.at for r in rows_list)
    assert _last_used(loaded, key_id) == rows_list[-1].at
    assert app.state.api_calls.flush() == 0  # nothing is written twice


def test_rate_limited_and_refused_calls_name_the_key_and_forged_tokens_are_not_logged(
    loaded: Session, tmp_path: Path
) -> None:
    app = _app(loaded, tmp_path, rate_limit_key_per_second=0.01, rate_limit_key_burst=2)
    before = _count(loaded)
    reader = apikeys.create_key(loaded, name="portal", scopes=["cases:read"], actor=ADMIN)
    retired = apikeys.create_key(loaded, name="old-erp", scopes=["cases:read"], actor=ADMIN)
    apikeys.revoke(loaded, retired.key.key_id, ADMIN)
    client = TestClient(app)
    as_reader = _auth(reader.token)
    statuses = [client.get("/api/v1/cases", headers=as_reader).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert client.post("/api/v1/score", json={}, headers=as_reader).status_code == 403
    assert client.get("/api/v1/cases", headers=_auth(retired.token)).status_code == 401
    # A real key id with a wrong secret proves nothing: it must not be logged under that key.
    forged = f"tg_{reader.key.key_id}_{secrets.token_urlsafe(32)}"
    assert client.get("/api/v1/cases", headers=_auth(forged)).status_code == 401
    assert client.get("/api/v1/cases").status_code == 401

    app.state.api_calls.flush()
    assert _logged(loaded, reader.key.key_id) == [
        ("GET", "/api/v1/cases", 200),
        ("GET", "/api/v1/cases", 200),
        ("GET", "/api/v1/cases", 429),
        ("POST", "/api/v1/score", 403),
    ]
    assert _logged(loaded, retired.key.key_id) == [("GET", "/api/v1/cases", 401)]
    assert _count(loaded) == before + 5  # nothing for the forged and the keyless calls


@pytest.mark.parametrize("failure", ["database unreachable", "failure after the insert"])
def test_a_failed_flush_keeps_the_rows_and_a_later_flush_writes_them_once(
    loaded: Session,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: str,
) -> None:
    app = _app(loaded, tmp_path)
    key = apikeys.create_key(loaded, name="erp", scopes=["cases:read"], actor=ADMIN)
    client = TestClient(app, headers=_auth(key.token))
    assert [client.get("/api/v1/cases").status_code for _ in range(3)] == [200] * 3
    recorder: CallRecorder = app.state.api_calls
    if failure == "database unreachable":
        engine = create_engine(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
        monkeypatch.setattr(recorder, "factory", make_session_factory(engine))
    else:

        def broken(session: Session, last_used: Any) -> None:
            raise RuntimeError("lost the connection mid-flush")

        monkeypatch.setattr(repository, "touch_keys", broken)

    assert recorder.flush() == 0
    assert recorder.pending == 3
    assert "api_calls.flush_failed" in "".join(capsys.readouterr())
    assert _logged(loaded, key.key.key_id) == []  # rolled back whole, with last_used_at
    assert _last_used(loaded, key.key.key_id) is None

    assert client.get("/api/v1/cases").status_code == 200  # more calls meanwhile
    monkeypatch.undo()
    assert recorder.flush() == 4
    assert _logged(loaded, key.key.key_id) == [("GET", "/api/v1/cases", 200)] * 4
    assert _last_used(loaded, key.key.key_id) is not None


def _call(at: datetime, status: int, key_id: str = "k1") -> CallRecord:
    return CallRecord(
        at=at, key_id=key_id, method="GET", route="/api/v1/cases", status=status, duration_ms=1.0
    )


def test_past_the_cap_the_oldest_calls_are_dropped_and_the_drop_is_reported(
    session: Session, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unreachable = make_session_factory(create_engine(f"sqlite:///{tmp_path / 'no' / 'x.db'}"))
    recorder = CallRecorder(unreachable, batch_size=2, cap=3)
    start = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    for i in range(5):
        recorder.record(_call(start + timedelta(seconds=i), 200 + i))
    assert recorder.pending == 3
    assert recorder.flush() == 0
    err = "".join(capsys.readouterr())  # stdout too: structlog's default if nothing configured it
    assert re.search(r"api_calls\.dropped .*dropped=2", err), err
    assert "api_calls.flush_failed" in err
    recorder.record(_call(start + timedelta(seconds=5), 205))  # the failed batch went back first
    assert recorder.pending == 3

    recorder.factory = lambda: session  # type: ignore[assignment]
    assert recorder.flush() == 3
    statuses = session.scalars(
        select(ApiCall.status).where(ApiCall.key_id == "k1").order_by(ApiCall.id)
    ).all()
    assert statuses == [203, 204, 205]  # the newest three, in order
    err = "".join(capsys.readouterr())
    assert re.search(r"api_calls\.flushed .*dropped=3", err), err  # 2, then 1 at the re-queue


def test_last_used_at_only_moves_forward(session: Session) -> None:
    key = apikeys.create_key(session, name="erp", scopes=["score"], actor=ADMIN).key
    later = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    recorder = CallRecorder(lambda: session)  # type: ignore[arg-type]
    recorder.record(_call(later, 200, key.key_id))
    recorder.record(_call(later - timedelta(minutes=5), 200, key.key_id))
    recorder.flush()
    assert _last_used(session, key.key_id) == later
    recorder.record(_call(later - timedelta(hours=1), 200, key.key_id))  # another process, late
    recorder.flush()
    assert _last_used(session, key.key_id) == later


def test_shutdown_writes_the_buffered_calls(loaded: Session, tmp_path: Path) -> None:
    app = _app(loaded, tmp_path, api_calls_flush_seconds=3600)
    key = apikeys.create_key(loaded, name="erp", scopes=["cases:read"], actor=ADMIN)
    with TestClient(app, headers=_auth(key.token)) as client:
        assert client.get("/api/v1/cases").status_code == 200
        assert client.get("/api/v1/cases/999999").status_code == 404
        assert app.state.api_calls.pending == 2
        assert _logged(loaded, key.key.key_id) == []
    assert app.state.api_calls.pending == 0
    assert _logged(loaded, key.key.key_id) == [
        ("GET", "/api/v1/cases", 200),
        ("GET", "/api/v1/cases/{case_id}", 404),
    ]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh migrated database of its own: the recorder thread commits."""
    with fresh_database(request.param, tmp_path) as made:
        yield made


def _wait_for(condition: Any, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_the_recorder_thread_writes_calls_while_the_app_runs(
    factory: sessionmaker[Session], tmp_path: Path
) -> None:
    with transaction(factory) as session:
        reader = apikeys.create_key(session, name="portal", scopes=["cases:read"], actor=ADMIN)
    settings = _settings(tmp_path, database_url="sqlite://", api_calls_flush_seconds=0.05)
    app = create_app(settings, session_factory=factory)
    key_id = reader.key.key_id

    def logged() -> list[tuple[str, str, int]]:
        with factory() as session:
            return _logged(session, key_id)

    with TestClient(app, headers=_auth(reader.token)) as client:
        assert client.get("/api/v1/cases").status_code == 200
        # On SQLite the refusal's own audit transaction once waited on the request's lock.
        assert client.post("/api/v1/score", json={}).status_code == 403
        assert _wait_for(lambda: len(logged()) == 2), logged()
        assert logged() == [("GET", "/api/v1/cases", 200), ("POST", "/api/v1/score", 403)]
        with factory() as session:
            assert _last_used(session, key_id) is not None
    assert len(logged()) == 2


def test_cli_lists_calls_by_key_and_since(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fresh_database("sqlite", tmp_path) as made:
        with transaction(made) as session:
            key = apikeys.create_key(session, name="erp", scopes=["score"], actor=ADMIN).key
        recorder = CallRecorder(made)
        start = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
        recorder.record(_call(start, 200, key.key_id))
        recorder.record(_call(start + timedelta(hours=1), 404, key.key_id))
        recorder.record(_call(start + timedelta(hours=2), 429, "otherkey"))
        assert recorder.flush() == 3
        url = str(made.kw["bind"].url)
    monkeypatch.setenv("TOLLGATE_DATABASE_URL", url)
    monkeypatch.setenv("TOLLGATE_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        listed = runner.invoke(cli, ["api-keys", "calls", "--key", key.key_id])
        since = runner.invoke(
            cli, ["api-keys", "calls", "--key", key.key_id, "--since", "2026-11-29T12:30"]
        )
        everyone = runner.invoke(cli, ["api-keys", "calls", "--limit", "1"])
        keys = runner.invoke(cli, ["api-keys", "list"])
        bad = runner.invoke(cli, ["api-keys", "calls", "--since", "yesterday"])
    finally:
        get_settings.cache_clear()
    assert listed.exit_code == 0, listed.output
    assert "404" in listed.output and "200" in listed.output and "429" not in listed.output
    assert since.exit_code == 0 and "404" in since.output and " 200 " not in since.output
    assert "otherkey" in everyone.output and key.key_id not in everyone.output
    assert keys.exit_code == 0 and "2026-11-29 13:00" in keys.output  # last used
    assert bad.exit_code == 2
