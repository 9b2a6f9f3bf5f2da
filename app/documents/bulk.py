"""Bulk intake for the CLI and jobs: many documents, one savepoint each, a commit per batch.

This is a composition-layer runner (it owns transactions, like a worker): a document that
fails unexpectedly is rolled back to its savepoint and reported, and the others are kept.
Batching commits trades at most one batch of re-work after a crash (re-running is safe: intake
is content-addressed and idempotent) for throughput; with a `BlobStore(defer_sync=True)` the
document files are fsynced in the background and awaited before each commit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import Actor
from app.blobs import BlobStore
from app.documents.parsing import Parser
from app.documents.service import ingest_bytes
from app.settings import get_settings
from pipelines.parsers import ParseLimits

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class BulkResult:
    """What happened to one file of a bulk intake."""

    source: str
    document_id: int | None
    case_id: int | None
    outcome: str  # new case | already stored | unreadable | failed
    reasons: list[str]
    error_code: str | None
    error_message: str | None


def ingest_many(
    factory: sessionmaker[Session],
    blobs: BlobStore,
    items: Iterable[tuple[str, bytes]],
    *,
    actor: Actor,
    channel: str,
    limits: ParseLimits | None = None,
    batch_size: int = 50,
    on_result: Callable[[BulkResult], None] | None = None,
    parser: Parser | None = None,
) -> Iterator[BulkResult]:
    """Ingest (name, bytes) pairs, yielding each result once its batch is committed."""
    pending: list[BulkResult] = []
    session = factory()
    try:
        for name, data in items:
            pending.append(_one(session, blobs, name, data, actor, channel, limits, parser))
            if len(pending) >= batch_size:
                _score(session, pending)
                blobs.flush()  # the rows about to commit must point at durable bytes
                session.commit()
                yield from _emit(pending, on_result)
                pending = []
        _score(session, pending)
        blobs.flush()
        session.commit()
        yield from _emit(pending, on_result)
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def _score(session: Session, results: list[BulkResult]) -> None:
    """Score a batch's new cases in one model call per family (scoring never fails a batch)."""
    if get_settings().score_on_ingest:
        from app.scoring import service as scoring  # heavy (the model stack): on first use

        scoring.score_cases(
            session, [r.case_id for r in results if r.outcome == "new case" and r.case_id]
        )


def _emit(
    results: list[BulkResult], on_result: Callable[[BulkResult], None] | None
) -> Iterator[BulkResult]:
    for result in results:
        if on_result is not None:
            on_result(result)
        yield result


def _one(
    session: Session,
    blobs: BlobStore,
    name: str,
    data: bytes,
    actor: Actor,
    channel: str,
    limits: ParseLimits | None,
    parser: Parser | None,
) -> BulkResult:
    savepoint = session.begin_nested()
    try:
        outcome = ingest_bytes(
            session,
            blobs,
            data,
            filename=Path(name).name,
            channel=channel,
            actor=actor,
            limits=limits,
            parser=parser,
            score=False,
        )
        savepoint.commit()
    except Exception as exc:  # a bug must not cost the rest of the batch
        savepoint.rollback()
        log.exception("intake.failed", source=name)
        return BulkResult(name, None, None, "failed", [], "INTERNAL", str(exc)[:500])
    doc = outcome.document
    if doc.parse_error_code:
        kind = "unreadable"
    else:
        kind = "new case" if outcome.created else "already stored"
    return BulkResult(
        source=name,
        document_id=doc.id,
        case_id=outcome.case.id if outcome.case else None,
        outcome=kind,
        reasons=outcome.reasons,
        error_code=doc.parse_error_code,
        error_message=doc.parse_error_message,
    )
