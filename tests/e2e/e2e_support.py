"""What the browser tests share: the live server, a person's browser context, the seeding."""

from __future__ import annotations

import os
import re
import shutil
import socket
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import Browser, ConsoleMessage, Page, expect
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.base import utcnow
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import Case
from app.documents.service import ingest_bytes
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from app.users import service as users
from training.demo_world import build_world, write_world

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DOC_IMAGES = REPO / "docs" / "images"
PASSWORD = "correct horse battery"
ADMIN = Actor("admin", "admin")
UPLOADER = Actor("uma", "clerk")
PEOPLE = {
    "clara": ("clerk", None),
    "uma": ("clerk", None),
    "anna": ("approver", "50000"),
    "ben": ("approver", "50000"),
    "carl": ("controller", None),
}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, work: Path, blobs: BlobStore) -> dict[str, int]:
    """Master data, people and the demo documents; returns case ids by file name."""
    world = work / "world"
    write_world(build_world(), world)
    factory = make_session_factory(make_engine(url))
    cases: dict[str, int] = {}
    with transaction(factory) as session:
        load_master_data(session, read_master_data(world / "master"), ADMIN)
        for name, (role, limit) in PEOPLE.items():
            users.create_user(
                session,
                username=name,
                display_name=name.title(),
                role=role,
                password=PASSWORD,
                actor=ADMIN,
                approval_limit=Decimal(limit) if limit else None,
                limit_currency="EUR" if limit else None,
            )
        for path in sorted((world / "documents").glob("0*.xml")):
            outcome = ingest_bytes(
                session,
                blobs,
                path.read_bytes(),
                filename=path.name,
                channel="test",
                actor=UPLOADER,
            )
            if outcome.case is not None:
                cases[path.name] = outcome.case.id
        # Two SLA situations the queue must flag: one case overdue, one due later today.
        now = utcnow()
        overdue = session.get(Case, cases["006-price-variance.xml"])
        assert overdue is not None
        overdue.sla_due_at = now - timedelta(hours=3)
        later_today = now + timedelta(hours=1)
        if later_today.date() == now.date():
            today = session.get(Case, cases["007-over-received.xml"])
            assert today is not None
            today.sla_due_at = later_today
    return cases


class LiveServer:
    """The app under uvicorn in a background thread, and its database."""

    def __init__(self, base_url: str, cases: dict[str, int], database_url: str) -> None:
        self.base_url = base_url
        self.cases = cases
        self.database_url = database_url

    def sessions(self) -> sessionmaker[Session]:
        """A session factory on the server's database (to arrange or inspect rows)."""
        return make_session_factory(make_engine(self.database_url))


class Person:
    """One browser context (its own cookies) with the console errors it collected."""

    def __init__(self, browser: Browser, server: LiveServer) -> None:
        self.context = browser.new_context(
            base_url=server.base_url, viewport={"width": 1400, "height": 900}, accept_downloads=True
        )
        self.page: Page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def _console(self, message: ConsoleMessage) -> None:
        # 4xx answers are expected in the refusal flows; everything else is a real error.
        if message.type == "error" and "status of 4" not in message.text:
            self.errors.append(message.text)

    def log_in(self, username: str) -> Page:
        """Log in through the form and land on the queue."""
        page = self.page
        page.goto("/review")
        expect(page).to_have_url(re.compile(r"/review/login\?next="))
        page.fill("#username", username)
        page.fill("#password", PASSWORD)
        page.click("#login")
        expect(page).to_have_url(re.compile(r"/review$"))
        expect(page.locator("#me")).to_contain_text(f"({username} ·")
        return page

    def shot(self, name: str, also: Path | None = None, full_page: bool = False) -> None:
        """Screenshot of the viewport to the artifacts folder (and optionally to the docs)."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        # The README's pictures are refreshed only on request, so a test run changes no file
        # under version control.
        if also is not None and os.environ.get("TOLLGATE_UPDATE_DOC_IMAGES") == "1":
            shutil.copyfile(path, also)

    def close(self) -> None:
        """Close the context; fail on any browser-side error."""
        self.context.close()
        assert self.errors == []
