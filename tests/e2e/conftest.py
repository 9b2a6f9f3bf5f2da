"""Fixtures of the browser tests: one live server per module, Chromium, and its people.

Each module gets its own server on a temporary SQLite file with the demo world ingested, so a
module may change the data (even tamper with the audit log) without touching the others.
Without Debian's Chromium the tests are skipped, except in CI (`TOLLGATE_REQUIRE_CHROMIUM`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from e2e_support import CHROMIUM, LiveServer, Person, free_port, seed
from playwright.sync_api import Browser, sync_playwright

from app.blobs import BlobStore
from app.db import migrate
from app.main import create_app
from app.settings import Settings

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the browser tests when Chromium is missing (never in CI)."""
    if CHROMIUM.exists():
        return
    if os.environ.get("TOLLGATE_REQUIRE_CHROMIUM"):  # .ci/run sets it: CI never skips these
        pytest.fail(f"{CHROMIUM} is missing", pytrace=False)
    skip = pytest.mark.skip(
        reason="Debian Chromium is not installed at /usr/bin/chromium (apt-get install -y "
        "chromium; .ci/run installs it)"
    )
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(skip)


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
    cases = seed(url, work, BlobStore(settings.blobs))
    port = free_port()
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
    yield LiveServer(f"http://127.0.0.1:{port}", cases, url)
    uv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless."""
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield chromium
        chromium.close()


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
