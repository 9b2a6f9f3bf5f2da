"""SQL for claims, decisions and the ERP outbox."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case as sql_case
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from app.db.tables import (
    AuditEvent,
    Case,
    CaseState,
    Decision,
    DecisionAction,
    Document,
    ErpPosting,
    FindingRow,
    InvoiceRow,
    Prediction,
    Supplier,
    SupplierHintRow,
    User,
)

CLAIMABLE = (
    CaseState.NEW.value,
    CaseState.TRIAGED.value,
    CaseState.IN_REVIEW.value,
    CaseState.ON_HOLD.value,
)


def try_claim(
    session: Session, case_id: int, user_id: int, token: str, expires_at: datetime, now: datetime
) -> bool:
    """Claim a case if nobody else holds a live claim on it; True when this caller got it.

    One guarded UPDATE: it does not rely on row locks, so it is just as safe on SQLite, where
    writers are serialised and FOR UPDATE does not exist.
    """
    result = session.execute(
        update(Case)
        .where(
            Case.id == case_id,
            Case.state.in_(CLAIMABLE),
            or_(
                Case.claim_token.is_(None),
                Case.claim_expires_at < now,
                Case.claimed_by_id == user_id,
            ),
        )
        .values(
            claimed_by_id=user_id,
            claim_token=token,
            claim_expires_at=expires_at,
            state=sql_case(
                (
                    Case.state.in_((CaseState.NEW.value, CaseState.TRIAGED.value)),
                    CaseState.IN_REVIEW.value,
                ),
                else_=Case.state,
            ),
            version=Case.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def next_claimable(
    session: Session, now: datetime, queue: str | None, limit: int, skip_locked: bool
) -> list[int]:
    """Ids of the most urgent unclaimed cases (locked and skipped by others on PostgreSQL)."""
    query = (
        select(Case.id)
        .where(
            Case.state.in_(CLAIMABLE),
            or_(Case.claim_token.is_(None), Case.claim_expires_at < now),
        )
        .order_by(Case.priority.desc(), Case.sla_due_at, Case.id)
        .limit(limit)
    )
    if queue is not None:
        query = query.where(Case.queue == queue)
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query))


def locked_case(session: Session, case_id: int) -> Case | None:
    """A case, reloaded and locked for the rest of the transaction (PostgreSQL)."""
    # A claim changes the row with a Core UPDATE: what the session holds may be stale.
    cached = session.identity_map.get(identity_key(Case, case_id))
    if cached is not None:
        session.expire(cached)
    return session.get(Case, case_id, with_for_update=True)


def add(session: Session, row: Decision | ErpPosting | SupplierHintRow) -> None:
    """Stage a new row."""
    session.add(row)
    session.flush()


def decisions_for(session: Session, case_id: int) -> Sequence[Decision]:
    """The decisions on a case, oldest first."""
    return session.scalars(
        select(Decision).where(Decision.case_id == case_id).order_by(Decision.id)
    ).all()


def live_signatures(session: Session, case_id: int) -> Sequence[Decision]:
    """Signatures that still count (not superseded by a later edit)."""
    return session.scalars(
        select(Decision)
        .where(
            Decision.case_id == case_id,
            Decision.action == DecisionAction.SIGN.value,
            Decision.superseded.is_(False),
        )
        .order_by(Decision.id)
    ).all()


def posting_for(session: Session, case_id: int) -> ErpPosting | None:
    """The outbox row of a case."""
    return session.scalars(select(ErpPosting).where(ErpPosting.case_id == case_id)).one_or_none()


def bank_changers(session: Session, supplier_ref: str) -> set[str]:
    """Who added bank accounts to a supplier (they may not sign its invoices)."""
    return set(
        session.scalars(
            select(AuditEvent.actor).where(
                AuditEvent.action == "supplier.bank_account_added",
                AuditEvent.object_type == "supplier",
                AuditEvent.object_id == supplier_ref,
            )
        )
    )


def case_facts_rows(
    session: Session, case: Case
) -> tuple[InvoiceRow, Document, Supplier | None, list[str]]:
    """The invoice, document, supplier and finding codes behind a case."""
    invoice = session.get(InvoiceRow, case.invoice_id)
    assert invoice is not None  # a case always has its invoice (foreign key)
    document = session.get(Document, invoice.document_id)
    assert document is not None
    supplier = session.get(Supplier, case.supplier_id) if case.supplier_id else None
    codes = list(
        session.scalars(select(FindingRow.code).where(FindingRow.case_id == case.id).distinct())
    )
    return invoice, document, supplier, codes


def predictions_for(session: Session, case_id: int) -> Sequence[Prediction]:
    """The model outputs on a case, oldest first (the last of each family is the current one)."""
    return session.scalars(
        select(Prediction).where(Prediction.case_id == case_id).order_by(Prediction.id)
    ).all()


def active_reviewers(session: Session, roles: Sequence[str]) -> Sequence[User]:
    """Active users of the given roles, by name (whom a case can be handed to)."""
    return session.scalars(
        select(User).where(User.active.is_(True), User.role.in_(roles)).order_by(User.username)
    ).all()


def supersede_signatures(session: Session, case_id: int) -> int:
    """Mark a case's live signatures as no longer counting (the case was edited after them)."""
    rows = live_signatures(session, case_id)
    for row in rows:
        row.superseded = True
    session.flush()
    return len(rows)


def clean_claimable(session: Session, case_ids: Sequence[int]) -> list[int]:
    """Of these cases, the open ones with no findings that need one signature."""
    with_findings = select(FindingRow.case_id).where(FindingRow.case_id.in_(case_ids))
    return list(
        session.scalars(
            select(Case.id)
            .where(
                Case.id.in_(case_ids),
                Case.state.in_(CLAIMABLE),
                Case.required_signatures == 1,
                Case.id.not_in(with_findings),
            )
            .order_by(Case.id)
        )
    )
