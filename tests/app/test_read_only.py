"""Read-only units of work (scoring and lookups): no write lock on SQLite, and no writes at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from review_fixtures import fresh_database
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.db.session import ReadOnlyViolation, read_only, transaction
from app.db.tables import Supplier


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    with fresh_database(request.param, tmp_path) as made:
        yield made


def _supplier(ref: str) -> Supplier:
    return Supplier(ref=ref, name=f"Supplier {ref}", vat_id=None, blocked=False)


def test_reads_go_on_while_a_writer_holds_its_transaction(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        session.add(_supplier("S1"))
    writer = factory()
    try:
        writer.add(_supplier("S2"))
        writer.flush()  # on SQLite this transaction now holds the write lock (BEGIN IMMEDIATE)
        # A second writer would wait here for busy_timeout (10 s) and fail; a reader does not,
        # and sees only what was committed.
        with read_only(factory) as reader:
            assert reader.scalar(select(func.count()).select_from(Supplier)) == 1
        writer.commit()
    finally:
        writer.close()
    with read_only(factory) as reader:
        assert reader.scalar(select(func.count()).select_from(Supplier)) == 2


def test_a_write_in_a_read_only_unit_of_work_is_refused(factory: sessionmaker[Session]) -> None:
    with pytest.raises(ReadOnlyViolation), read_only(factory) as session:
        session.add(_supplier("S1"))
        session.flush()
    with pytest.raises(ReadOnlyViolation), read_only(factory) as session:
        session.execute(update(Supplier).values(blocked=True))
    with read_only(factory) as session:
        assert session.scalar(select(func.count()).select_from(Supplier)) == 0
    with transaction(factory) as session:  # the guard belongs to the unit of work
        session.add(_supplier("S3"))
