"""Shared fixtures: a migrated database per backend, a rolled-back transaction per test.

Storage and case tests run on SQLite and on PostgreSQL. PostgreSQL comes from
TOLLGATE_TEST_POSTGRES_URL (`.ci/run` sets it and fails if the server is unreachable); when it
is unset locally the PostgreSQL half is skipped, never faked.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.db import migrate

# Cases are scored at ingest only where a test asks for it (tests/app/test_scoring.py): MLflow
# exports MLFLOW_TRACKING_URI when a training test points it at its store, so a later ingest in
# the same worker would otherwise find those models and score with them.
os.environ.setdefault("TOLLGATE_SCORE_ON_INGEST", "false")
from app.db.session import make_engine

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The public documents and logs shared beside the repository."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"shared data not found at {SHARED_DATA}; clone next to shared/")
    return SHARED_DATA


def _postgres_admin_url() -> str:
    url = os.environ.get("TOLLGATE_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("TOLLGATE_TEST_POSTGRES_URL is not set (CI sets it)")
    return url


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    admin_url = make_url(_postgres_admin_url())
    name = f"tollgate_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_database(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh, migrated SQLite database file for this test session."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'tollgate.db'}"
    migrate.upgrade(url)
    return url


@pytest.fixture(
    scope="session", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on a migrated database, once per backend."""
    url = request.getfixturevalue(f"{request.param}_database")
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test."""
    connection = engine.connect()
    outer = connection.begin()
    db = Session(
        bind=connection,
        join_transaction_mode="create_savepoint",
        expire_on_commit=False,
    )
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        connection.close()
