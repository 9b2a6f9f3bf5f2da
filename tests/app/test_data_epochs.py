"""The scoring-input token changes with every write that makes cached inputs stale, only then."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.epochs import has_written, read_token
from app.db.tables import FindingRow, InvoiceRow, PurchaseOrderLineRow
from app.documents.service import ingest_bytes
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data

ADMIN = Actor("tester", "admin")


def _world_files(world: Path) -> list[Path]:
    return sorted((world / "documents").glob("*.xml"))


def test_inserts_add_history_without_a_new_token_and_changes_give_one(
    session: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    start = read_token(session)
    assert start is not None and not has_written(session)

    load_master_data(session, read_master_data(demo_dir / "master"), ADMIN)
    session.flush()
    after_master = read_token(session)
    assert after_master != start and has_written(session)

    for path in _world_files(demo_dir)[:5]:
        ingest_bytes(
            session, blobs, path.read_bytes(), filename=path.name, channel="t", actor=ADMIN
        )
    session.flush()
    assert read_token(session) == after_master  # new invoices, cases and findings: no bump

    invoice = session.scalars(select(InvoiceRow).order_by(InvoiceRow.id)).first()
    assert invoice is not None
    invoice.canonical = {**invoice.canonical, "number": "CHANGED-1"}
    session.flush()
    after_invoice = read_token(session)
    assert after_invoice != after_master

    session.execute(delete(FindingRow).where(FindingRow.id < 0))  # a delete statement, even empty
    after_delete = read_token(session)
    assert after_delete != after_invoice

    line = session.scalars(select(PurchaseOrderLineRow).order_by(PurchaseOrderLineRow.id)).first()
    assert line is not None
    line.unit_price = line.unit_price * 3 + Decimal("0.01")
    session.flush()
    assert read_token(session) != after_delete


def test_each_database_starts_with_its_own_token(session: Session, tmp_path: Path) -> None:
    from app.db import migrate
    from app.db.session import make_engine, make_session_factory

    url = f"sqlite:///{tmp_path / 'other.db'}"
    migrate.upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as other:
        assert read_token(other) not in (None, read_token(session))
    engine.dispose()
