"""Fixtures for service tests: the demo world on disk and loaded into the test transaction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from training.demo_world import build_world, write_world


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo world written once per test session."""
    out = tmp_path_factory.mktemp("demo")
    write_world(build_world(), out)
    return out


@pytest.fixture(scope="session")
def scenarios(demo_dir: Path) -> dict[str, list[str]]:
    """File name -> the reasons its scenario is built to raise."""
    return json.loads((demo_dir / "scenarios.json").read_text())  # type: ignore[no-any-return]


@pytest.fixture
def blobs(tmp_path: Path) -> BlobStore:
    """A fresh document store."""
    return BlobStore(tmp_path / "blobs")


@pytest.fixture
def loaded(session: Session, demo_dir: Path) -> Session:
    """The test session with the demo master data loaded."""
    load_master_data(session, read_master_data(demo_dir / "master"), Actor("tester", "admin"))
    session.flush()
    return session
