"""Browser tests: the real app under uvicorn on loopback, driven through Debian's Chromium.

One server per module, on a temporary SQLite file with the demo world ingested. Each flow logs in
through the login form, as a person would, and checks what the page shows, and that the browser
reported no errors (a Content-Security-Policy violation shows up as a console error).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db import migrate
from app.db.base import utcnow
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import Case
from app.documents.service import ingest_bytes
from app.main import create_app
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from app.settings import Settings
from app.users import service as users
from training.demo_world import build_world, write_world

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    if os.environ.get("TOLLGATE_REQUIRE_CHROMIUM"):  # .ci/run sets it: CI never skips these
        pytest.fail(f"{CHROMIUM} is missing", pytrace=False)
    pytest.skip(
        "Debian Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium; "
        ".ci/run installs it)",
        allow_module_level=True,
    )

from playwright.sync_api import Browser, ConsoleMessage, Page, expect, sync_playwright  # noqa: E402

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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _seed(url: str, work: Path, blobs: BlobStore) -> dict[str, int]:
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
    """The app under uvicorn in a background thread."""

    def __init__(self, base_url: str, cases: dict[str, int]) -> None:
        self.base_url = base_url
        self.cases = cases


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A migrated SQLite file, the demo world, and uvicorn on a free loopback port."""
    work = tmp_path_factory.mktemp("e2e")
    url = f"sqlite:///{work / 'tollgate.db'}"
    migrate.upgrade(url)
    settings = Settings(
        environment="test",
        data_dir=work,
        database_url=url,
        parse_sandbox=False,
        log_level="WARNING",
    )
    cases = _seed(url, work, BlobStore(settings.blobs))
    port = _free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", cases)
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


class Person:
    """One browser context (its own cookies) with the console errors it collected."""

    def __init__(self, browser: Browser, server: LiveServer) -> None:
        self.context = browser.new_context(
            base_url=server.base_url, viewport={"width": 1400, "height": 900}
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

    def shot(self, name: str, also: Path | None = None) -> None:
        """Screenshot of the viewport to the artifacts folder (and optionally to the docs)."""
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path))
        # The README's pictures are refreshed only on request, so a test run changes no file
        # under version control.
        if also is not None and os.environ.get("TOLLGATE_UPDATE_DOC_IMAGES") == "1":
            shutil.copyfile(path, also)

    def close(self) -> None:
        """Close the context; fail on any browser-side error."""
        self.context.close()
        assert self.errors == []


@pytest.fixture
def people(browser: Browser, server: LiveServer) -> Iterator[dict[str, Person]]:
    """A fresh browser context per person, created on first use."""
    made: dict[str, Person] = {}

    class Lazy(dict[str, Person]):
        def __missing__(self, key: str) -> Person:
            made[key] = Person(browser, server)
            return made[key]

    yield Lazy()
    for person in made.values():
        person.close()


def test_a_clerk_claims_inspects_and_signs_a_clean_case(
    server: LiveServer, people: dict[str, Person]
) -> None:
    clara = people["clara"]
    page = clara.log_in("clara")
    case_id = server.cases["002-clean-2.xml"]
    # Keyboard: j selects the first row of the queue.
    page.keyboard.press("j")
    expect(page.locator("#cases tbody tr").first).to_have_class(re.compile("selected"))
    page.click(f'#cases a[href="/review/cases/{case_id}"]')
    expect(page.locator("#findings")).to_contain_text("clean match")
    expect(page.locator("#claim-status")).to_have_text("not claimed")
    page.click("#claim-button")
    expect(page.locator("#claim-status")).to_contain_text("claimed by you")
    expect(page.locator("#signatures")).to_have_text("0 of 1 signature")
    clara.shot("clean-case-claimed")
    page.click("#sign-button")
    expect(page).to_have_url(re.compile(rf"/review\?done={case_id}$"))
    expect(page.locator("#notice")).to_have_text(f"Case {case_id} is now approved.")
    page.goto(f"/review/cases/{case_id}")
    expect(page.locator("#case-state")).to_have_text("approved")
    expect(page.locator("#signatures")).to_have_text("1 of 1 signature: clara")
    expect(page.locator("#outbox")).to_contain_text("ERP outbox: pending")
    clara.shot("clean-case-approved")


def test_two_approvers_co_sign_a_bank_change(server: LiveServer, people: dict[str, Person]) -> None:
    case_id = server.cases["012-bank-details-changed.xml"]
    anna = people["anna"].log_in("anna")
    anna.goto(f"/review/cases/{case_id}")
    anna.click("#claim-button")
    anna.click("#sign-button")
    expect(anna).to_have_url(re.compile(rf"/review\?done={case_id}$"))
    anna.goto(f"/review/cases/{case_id}")
    expect(anna.locator("#signatures")).to_have_text("1 of 2 signatures: anna")
    expect(anna.locator("#case-state")).to_have_text("in_review")
    # A second signature from the same person is refused in place (htmx swaps the 403).
    anna.click("#claim-button")
    anna.click("#sign-button")
    expect(anna.locator("#decision-error")).to_contain_text("Signature refused")
    expect(anna.locator("#decision-error")).to_contain_text("(ALREADY_SIGNED)")
    expect(anna).to_have_url(re.compile(rf"/review/cases/{case_id}$"))
    people["anna"].shot("bank-change-refused")
    anna.click("#handback-button")
    expect(anna).to_have_url(re.compile(rf"/review\?done={case_id}$"))

    ben_person = people["ben"]
    ben = ben_person.log_in("ben")
    row = ben.locator(f'#cases tr[data-case="{case_id}"]')
    expect(row.locator("td.claim")).to_have_text("")
    ben.goto(f"/review/cases/{case_id}")
    ben.click("#claim-button")
    expect(ben.locator("#sign-button")).to_be_visible()
    ben_person.shot("bank-change-second-signer", also=DOC_IMAGES / "review-case.png")
    ben.click("#sign-button")
    expect(ben.locator("#notice")).to_have_text(f"Case {case_id} is now approved.")
    ben.goto(f"/review/cases/{case_id}")
    expect(ben.locator("#signatures")).to_have_text("2 of 2 signatures: anna, ben")
    expect(ben.locator("#outbox")).to_contain_text("pending")


def test_a_controller_sees_cases_but_cannot_sign(
    server: LiveServer, people: dict[str, Person]
) -> None:
    carl = people["carl"].log_in("carl")
    expect(carl.locator("#claim-next")).to_have_count(0)
    overdue = carl.locator(f'#cases tr[data-case="{server.cases["006-price-variance.xml"]}"]')
    expect(overdue.locator(".badge.overdue")).to_have_text("overdue")
    # The filters swap the table in place (htmx) and keep the URL shareable.
    carl.select_option("select[name=reason]", "PRICE_VARIANCE")
    carl.click(".filters button")
    expect(carl).to_have_url(re.compile(r"reason=PRICE_VARIANCE"))
    expect(carl.locator("#cases tbody tr")).to_have_count(1)
    carl.goto(f"/review/cases/{server.cases['006-price-variance.xml']}")
    expect(carl.locator("#read-only")).to_be_visible()
    expect(carl.locator("#claim-button")).to_have_count(0)
    expect(carl.locator("#sign-button")).to_have_count(0)
    expect(carl.locator("#findings")).to_contain_text("PRICE_VARIANCE")


def test_claim_next_by_keyboard_then_hand_back_and_log_out(
    server: LiveServer, people: dict[str, Person]
) -> None:
    uma = people["uma"]
    page = uma.log_in("uma")
    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(r"/review/cases/\d+$"))
    expect(page.locator("#claim-status")).to_contain_text("claimed by you")
    claimed = int(page.url.rsplit("/", 1)[1])
    page.goto("/review")
    expect(page.locator(f'#cases tr[data-case="{claimed}"] td.claim')).to_have_text("uma")
    uma.shot("queue", also=DOC_IMAGES / "review-queue.png")
    page.goto(f"/review/cases/{claimed}")
    page.click("#handback-button")
    expect(page.locator("#notice")).to_be_visible()
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/review/login$"))
    page.goto("/review")
    expect(page).to_have_url(re.compile(r"/review/login\?next="))


def test_the_offline_api_docs_still_run_under_their_own_policy(
    server: LiveServer, people: dict[str, Person]
) -> None:
    page = people["docs"].page
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tollgate")
