"""Bulk intake: a savepoint per document, so one failure costs nothing else."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db import migrate
from app.db.session import make_engine, make_session_factory
from app.db.tables import Case, Document
from app.documents.bulk import ingest_many
from app.documents.parsing import InProcessParser
from pipelines.parsers import ParsedDocument, ParseLimits


def test_unexpected_failure_is_isolated_and_reported(tmp_path: Path, demo_dir: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bulk.db'}"
    migrate.upgrade(url)
    factory = make_session_factory(make_engine(url))
    files = sorted((demo_dir / "documents").glob("00[1-3]*.xml"))
    poison = files[1].read_bytes()

    class BuggyParser(InProcessParser):
        def __call__(self, data: bytes) -> ParsedDocument:
            if data == poison:
                raise RuntimeError("simulated bug")
            return super().__call__(data)

    results = list(
        ingest_many(
            factory,
            BlobStore(tmp_path / "blobs", defer_sync=True),
            [(str(p), p.read_bytes()) for p in files],
            actor=Actor("t", "clerk"),
            channel="test",
            batch_size=2,
            parser=BuggyParser(ParseLimits()),
        )
    )
    assert [r.outcome for r in results] == ["new case", "failed", "new case"]
    assert results[1].error_code == "INTERNAL"
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Document)) == 2
        assert session.scalar(select(func.count()).select_from(Case)) == 2


def test_deferred_blob_writes_are_durable_after_flush(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path / "blobs", defer_sync=True)
    first = blobs.put(b"<Invoice/>")
    assert blobs.put(b"<Invoice/>") == first  # queued once, not twice
    blobs.flush()
    assert blobs.read(first) == b"<Invoice/>"
    assert not list((tmp_path / "blobs").rglob(".tmp-*"))
