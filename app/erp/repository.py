"""SQL for the ERP outbox: due rows, guarded claims, outcomes, and what a posting carries.

Claims and outcomes are guarded UPDATEs, never read-modify-write: they are as safe on SQLite
(where writers are serialised and FOR UPDATE does not exist) as on PostgreSQL. `attempts` is the
fencing token of a claim: an outcome only lands on the row if nobody reclaimed it meanwhile.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from app.db.tables import (
    AuditEvent,
    Case,
    Decision,
    DecisionAction,
    ErpPosting,
    InvoiceRow,
    PostingState,
    PurchaseOrderRow,
    Supplier,
    User,
)

OPEN_STATES = (PostingState.PENDING.value, PostingState.SENDING.value)


def _due(now: datetime) -> Any:
    # A pending row is due at next_attempt_at; a sending row's next_attempt_at is its lease end,
    # so one condition covers fresh rows, retries and claims abandoned by a dead worker.
    return and_(ErpPosting.state.in_(OPEN_STATES), ErpPosting.next_attempt_at <= now)


def due_ids(session: Session, now: datetime, limit: int, skip_locked: bool) -> list[int]:
    """Ids of rows due now, oldest first (locked, and skipped by other workers, on PostgreSQL)."""
    query = (
        select(ErpPosting.id)
        .where(_due(now))
        .order_by(ErpPosting.next_attempt_at, ErpPosting.id)
        .limit(limit)
    )
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def try_claim(session: Session, posting_id: int, now: datetime, lease_until: datetime) -> bool:
    """Move a due row to `sending` with a lease and one more attempt; True when this caller won."""
    result = session.execute(
        update(ErpPosting)
        .where(ErpPosting.id == posting_id, _due(now))
        .values(
            state=PostingState.SENDING.value,
            attempts=ErpPosting.attempts + 1,
            next_attempt_at=lease_until,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def finish(
    session: Session,
    posting_id: int,
    attempt: int,
    *,
    state: PostingState,
    next_attempt_at: datetime | None = None,
    erp_reference: str | None = None,
    last_error: str | None = None,
) -> bool:
    """Record an outcome if the row is still this attempt's claim; False when it was reclaimed."""
    values: dict[str, Any] = {"state": state.value, "last_error": last_error}
    if next_attempt_at is not None:
        values["next_attempt_at"] = next_attempt_at
    if erp_reference is not None:
        values["erp_reference"] = erp_reference
    result = session.execute(
        update(ErpPosting)
        .where(
            ErpPosting.id == posting_id,
            ErpPosting.state == PostingState.SENDING.value,
            ErpPosting.attempts == attempt,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def set_case_state(session: Session, case_id: int, state: str) -> str | None:
    """Move a case to a state (bumping its version so open forms go stale); the old state."""
    before = session.scalar(select(Case.state).where(Case.id == case_id))
    session.execute(
        update(Case)
        .where(Case.id == case_id, Case.state != state)  # a retry leaves `posting` as it is
        .values(state=state, version=Case.version + 1)
        .execution_options(synchronize_session=False)
    )
    return before


def posting_for_case(session: Session, case_id: int, *, lock: bool = False) -> ErpPosting | None:
    """The outbox row of a case (locked for the transaction on PostgreSQL when asked)."""
    query = select(ErpPosting).where(ErpPosting.case_id == case_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query.execution_options(populate_existing=True)).first()


@dataclass(frozen=True)
class PostingFacts:
    """Everything a posting request is built from, read in the claim transaction."""

    posting_id: int
    case_id: int
    idempotency_key: str
    attempts: int
    canonical: dict[str, Any]
    supplier_ref: str | None
    po_number: str | None
    signers: tuple[str, ...]
    model_versions: dict[str, str]


def posting_facts(session: Session, posting_id: int) -> PostingFacts | None:
    """The row, its invoice's canonical JSON, supplier ref, PO number, signers, model versions."""
    row = session.execute(
        select(
            ErpPosting,
            InvoiceRow.canonical,
            Supplier.ref,
            func.coalesce(PurchaseOrderRow.number, InvoiceRow.po_reference),
        )
        .join(Case, Case.id == ErpPosting.case_id)
        .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
        .outerjoin(Supplier, Supplier.id == func.coalesce(Case.supplier_id, InvoiceRow.supplier_id))
        .outerjoin(PurchaseOrderRow, PurchaseOrderRow.id == InvoiceRow.purchase_order_id)
        .where(ErpPosting.id == posting_id)
        .execution_options(populate_existing=True)
    ).first()
    if row is None:
        return None
    outbox, canonical, supplier_ref, po_number = row
    signers = tuple(
        session.scalars(
            select(User.username)
            .join(Decision, Decision.user_id == User.id)
            .where(
                Decision.case_id == outbox.case_id,
                Decision.action == DecisionAction.SIGN.value,
                Decision.superseded.is_(False),
            )
            .order_by(Decision.id)
        )
    )
    versions: dict[str, str] = {}
    for name, version in session.execute(
        select(AuditEvent.model_name, AuditEvent.model_version)
        .where(
            AuditEvent.object_type == "case",
            AuditEvent.object_id == str(outbox.case_id),
            AuditEvent.model_name.is_not(None),
        )
        .order_by(AuditEvent.seq)
    ):
        if name and version:
            versions[name] = version  # the latest version that spoke about this case
    return PostingFacts(
        posting_id=outbox.id,
        case_id=outbox.case_id,
        idempotency_key=outbox.idempotency_key,
        attempts=outbox.attempts,
        canonical=dict(canonical or {}),
        supplier_ref=supplier_ref,
        po_number=po_number,
        signers=signers,
        model_versions=versions,
    )


def open_count(session: Session) -> int:
    """Rows not yet posted or dead-lettered."""
    return (
        session.scalar(
            select(func.count()).select_from(ErpPosting).where(ErpPosting.state.in_(OPEN_STATES))
        )
        or 0
    )


def next_due_at(session: Session) -> datetime | None:
    """When the next open row becomes due (None when there is none)."""
    return session.scalar(
        select(func.min(ErpPosting.next_attempt_at)).where(ErpPosting.state.in_(OPEN_STATES))
    )


@dataclass(frozen=True)
class LocalPosting:
    """An outbox row with the header facts reconciliation compares."""

    idempotency_key: str
    case_id: int
    state: str
    erp_reference: str | None
    supplier_ref: str | None
    currency: str | None
    gross: Decimal | None
    created_at: datetime


def _local_query() -> Any:
    return (
        select(
            ErpPosting.idempotency_key,
            ErpPosting.case_id,
            ErpPosting.state,
            ErpPosting.erp_reference,
            Supplier.ref,
            InvoiceRow.currency,
            InvoiceRow.gross_total,
            ErpPosting.created_at,
        )
        .join(Case, Case.id == ErpPosting.case_id)
        .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
        .outerjoin(Supplier, Supplier.id == func.coalesce(Case.supplier_id, InvoiceRow.supplier_id))
    )


def posted_between(session: Session, start: datetime, end: datetime) -> list[LocalPosting]:
    """Rows marked posted whose case was approved (row written) in [start, end)."""
    query = _local_query().where(
        ErpPosting.state == PostingState.POSTED.value,
        ErpPosting.created_at >= start,
        ErpPosting.created_at < end,
    )
    return [LocalPosting(*r) for r in session.execute(query.order_by(ErpPosting.id))]


def by_keys(session: Session, keys: Sequence[str]) -> dict[str, LocalPosting]:
    """Rows by idempotency key (any state)."""
    out: dict[str, LocalPosting] = {}
    for start in range(0, len(keys), 500):
        chunk = list(keys[start : start + 500])
        for r in session.execute(_local_query().where(ErpPosting.idempotency_key.in_(chunk))):
            out[r[0]] = LocalPosting(*r)
    return out
