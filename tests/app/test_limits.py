"""Request limits: body size before the body is read, rate limits per key and per user, logins.

The body-limit tests run a real uvicorn server on loopback and talk to it with a raw socket and
a streaming httpx client, so that "before the body is read" is observed on the wire.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.apikeys import service as apikeys
from app.audit.service import Actor
from app.db.session import make_engine, make_session_factory
from app.db.tables import AuditEvent
from app.limits import MULTIPART_SLACK, LoginThrottle, TokenBucket
from app.main import create_app
from app.settings import Settings
from app.users import service as users

ADMIN = Actor("admin", "admin")
PASSWORD = "correct horse battery"
UPLOAD_LIMIT = 100_000
JSON_LIMIT = 4096


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "data_dir": tmp_path,
        "database_url": "sqlite://",
        "parse_sandbox": False,
        "max_upload_bytes": UPLOAD_LIMIT,
        "max_json_bytes": JSON_LIMIT,
        "max_form_bytes": JSON_LIMIT,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


# -- a real server on loopback --------------------------------------------------------------------


class LiveServer:
    """uvicorn serving an app on 127.0.0.1 in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            time.sleep(0.01)
        assert self.server.started, "uvicorn did not start"
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def live(sqlite_database: str, tmp_path: Path) -> Iterator[LiveServer]:
    engine = make_engine(sqlite_database)
    app = create_app(_settings(tmp_path), session_factory=make_session_factory(engine))
    with LiveServer(app) as server:
        yield server
    engine.dispose()


# The head of a well-formed multipart upload; the file's bytes follow.
PART_HEAD = (
    b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.xml"\r\n'
    b"Content-Type: application/xml\r\n\r\n"
)


def _read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split()[1]), headers, body


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_sent(
    live: LiveServer,
) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        # Only the head: the server must answer without waiting for the 50 MB it announces.
        sock.sendall(
            b"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Content-Length: 50000000\r\n\r\n"
        )
        status, headers, body = _read_response(sock)
    assert status == 413
    assert headers["content-type"] == "application/json"
    error = json.loads(body)
    assert error["code"] == "PAYLOAD_TOO_LARGE"
    assert str(UPLOAD_LIMIT + MULTIPART_SLACK) in error["message"]
    assert "x-request-id" in headers  # the refusal goes through the request-context middleware
    stats = live.app.state.body_limit
    assert (stats.rejected, stats.last_bytes_read) == (1, 0)


def test_a_chunked_upload_is_cut_off_at_the_limit_without_the_rest_being_sent(
    live: LiveServer,
) -> None:
    limit = UPLOAD_LIMIT + MULTIPART_SLACK
    chunk = b"x" * 16384
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/documents HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        sock.sendall(b"%x\r\n%s\r\n" % (len(PART_HEAD), PART_HEAD))
        sent = len(PART_HEAD)
        while sent <= limit:
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        # The body is left unfinished (no closing 0-chunk): a 413 now proves the server did not
        # wait for, or read, the rest.
        status, _headers, body = _read_response(sock)
    assert status == 413
    assert json.loads(body)["code"] == "PAYLOAD_TOO_LARGE"
    read = live.app.state.body_limit.last_bytes_read
    assert limit < read <= limit + len(chunk) + len(PART_HEAD)


def test_a_streaming_client_is_stopped_after_about_the_limit(live: LiveServer) -> None:
    pulled = 0
    total = 64 * 1024 * 1024

    def body() -> Iterator[bytes]:
        nonlocal pulled
        yield PART_HEAD
        piece = b"y" * 65536
        while pulled < total:
            pulled += len(piece)
            yield piece

    with httpx.Client(timeout=30) as client:
        try:
            response = client.post(
                f"{live.url}/api/v1/documents",
                content=body(),
                headers={"Content-Type": "multipart/form-data; boundary=b"},
            )
            status = response.status_code
        except httpx.HTTPError:
            # The server may close the socket while the client still writes; the stats decide.
            status = 413
    assert status == 413
    limit = UPLOAD_LIMIT + MULTIPART_SLACK
    # uvicorn hands over in one message what arrived while the app was busy: at most its
    # flow-control high-water mark (64 KiB) plus one socket read (256 KiB) past the limit.
    assert live.app.state.body_limit.last_bytes_read <= limit + 320 * 1024
    # The client could push only what the kernel's socket buffers hold, far from the 64 MiB.
    assert pulled < total // 2


def test_json_routes_and_review_forms_have_their_own_smaller_limits(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=10) as client:
        api = client.post("/api/v1/documents", content=b"z" * 50_000)  # under the upload limit
        assert api.status_code != 413
        cases = client.request("GET", "/api/v1/cases", content=b"{" + b" " * JSON_LIMIT + b"}")
        assert cases.status_code == 413
        assert cases.json()["code"] == "PAYLOAD_TOO_LARGE"
        form = client.post("/review/login", data={"username": "u" * JSON_LIMIT, "password": "p"})
        assert form.status_code == 413
        assert form.headers["content-type"].startswith("text/html")
        assert "larger than the 4096 byte limit" in form.text


# -- rate limits ----------------------------------------------------------------------------------


def test_token_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=2.0, burst=3, clock=lambda: now[0])
    assert [bucket.take("k") for _ in range(3)] == [None, None, None]
    assert bucket.take("k") == pytest.approx(0.5)
    assert bucket.take("other") is None
    now[0] = 0.5
    assert bucket.take("k") is None
    assert bucket.take("k") == pytest.approx(0.5)
    assert TokenBucket(rate=0, burst=1).take("k") is None  # 0 switches the limit off


@pytest.fixture
def two_keys(loaded: Session, tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    settings = _settings(tmp_path, rate_limit_key_per_second=0.01, rate_limit_key_burst=3)
    app = create_app(settings, session_factory=lambda: loaded)  # type: ignore[arg-type]
    a = apikeys.create_key(loaded, name="erp", scopes=["cases:read"], actor=ADMIN)
    b = apikeys.create_key(loaded, name="portal", scopes=["cases:read"], actor=ADMIN)
    with TestClient(app) as client:
        yield client, a.token, b.token


def test_a_burst_past_the_key_rate_gets_429_and_another_key_is_unaffected(
    two_keys: tuple[TestClient, str, str],
) -> None:
    client, a, b = two_keys
    auth_a, auth_b = {"Authorization": f"Bearer {a}"}, {"Authorization": f"Bearer {b}"}
    assert [client.get("/api/v1/cases", headers=auth_a).status_code for _ in range(3)] == [200] * 3
    refused = client.get("/api/v1/cases", headers=auth_a)
    assert refused.status_code == 429
    assert refused.json()["code"] == "RATE_LIMITED"
    assert int(refused.headers["Retry-After"]) >= 1
    assert client.get("/api/v1/cases", headers=auth_b).status_code == 200
    # Wrong keys never reach the bucket: they neither spend nor are spared by it.
    assert (
        client.get("/api/v1/cases", headers={"Authorization": "Bearer tg_x_y"}).status_code == 401
    )


# -- review users and logins ----------------------------------------------------------------------


@pytest.fixture
def people(loaded: Session, monkeypatch: pytest.MonkeyPatch) -> Session:
    # The production hasher costs ~64 MiB per hash by design; these tests check behaviour.
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    for name in ("clara", "uma"):
        users.create_user(
            loaded,
            username=name,
            display_name=name.title(),
            role="clerk",
            password=PASSWORD,
            actor=ADMIN,
            approval_limit=Decimal("1000"),
            limit_currency="EUR",
        )
    loaded.flush()
    return loaded


def _review_client(session: Session, tmp_path: Path, **overrides: object) -> TestClient:
    settings = _settings(tmp_path, max_form_bytes=64 * 1024, **overrides)
    app = create_app(settings, session_factory=lambda: session)  # type: ignore[arg-type]
    return TestClient(app, follow_redirects=False)


def _try_login(client: TestClient, username: str, password: str) -> Any:
    form = client.get("/review/login")
    token = re.search(r'name="login_csrf" value="([^"]*)"', form.text)
    assert token
    return client.post(
        "/review/login",
        data={"username": username, "password": password, "login_csrf": token.group(1)},
    )


def _actions(session: Session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.seq)))


def test_failed_logins_are_throttled_per_user_name_and_audited(
    people: Session, tmp_path: Path
) -> None:
    with _review_client(people, tmp_path, login_max_failures=3) as client:
        assert [_try_login(client, "clara", "wrong").status_code for _ in range(3)] == [401] * 3
        # Even the right password is refused now: the throttle is checked before the password.
        refused = _try_login(client, "clara", PASSWORD)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["Retry-After"]) <= 900
        assert "too many failed logins" in refused.text
        assert "tollgate_session" not in refused.headers.get("set-cookie", "")
        assert _actions(people).count("login.throttled") == 1
        assert _try_login(client, "CLARA", "wrong").status_code == 429  # names are case-blind
        assert _try_login(client, "uma", PASSWORD).status_code == 303  # another user is free


def test_a_successful_login_resets_the_user_names_failures(people: Session, tmp_path: Path) -> None:
    with _review_client(people, tmp_path, login_max_failures=3) as client:
        assert [_try_login(client, "clara", "wrong").status_code for _ in range(2)] == [401] * 2
        assert _try_login(client, "clara", PASSWORD).status_code == 303
        assert [_try_login(client, "clara", "wrong").status_code for _ in range(2)] == [401] * 2
        assert _try_login(client, "clara", PASSWORD).status_code == 303


def test_failed_logins_are_throttled_per_client_address(people: Session, tmp_path: Path) -> None:
    with _review_client(
        people, tmp_path, login_max_failures=100, login_max_failures_per_ip=4
    ) as client:
        names = ["a", "b", "c", "d"]
        assert [_try_login(client, n, "wrong").status_code for n in names] == [401] * 4
        assert _try_login(client, "uma", PASSWORD).status_code == 429


def test_the_throttle_forgets_failures_older_than_its_window() -> None:
    now = [0.0]
    throttle = LoginThrottle(3, 10, 60.0, clock=lambda: now[0])
    for t in (0.0, 10.0, 20.0):
        now[0] = t
        throttle.failed("clara", "1.2.3.4")
    assert throttle.blocked_for("clara", "1.2.3.4") == pytest.approx(40.0)
    now[0] = 60.5
    assert throttle.blocked_for("clara", "1.2.3.4") is None


def test_a_logged_in_user_past_their_rate_gets_429(people: Session, tmp_path: Path) -> None:
    with _review_client(
        people, tmp_path, rate_limit_user_per_second=0.01, rate_limit_user_burst=3
    ) as client:
        assert _try_login(client, "clara", PASSWORD).status_code == 303
        assert [client.get("/review").status_code for _ in range(3)] == [200] * 3
        refused = client.get("/review")
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["content-type"].startswith("text/html")
        # Another person is counted on their own.
        client.cookies.clear()
        assert _try_login(client, "uma", PASSWORD).status_code == 303
        assert client.get("/review").status_code == 200
