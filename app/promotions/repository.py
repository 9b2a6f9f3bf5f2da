"""SQL for promotion requests, the kill switch, and the review-snapshot export."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.tables import (
    Case,
    Decision,
    Document,
    FindingRow,
    InvoiceRow,
    ModelSwitch,
    PromotionKind,
    PromotionRequest,
    PromotionState,
    Supplier,
    User,
)


def add(session: Session, row: PromotionRequest | ModelSwitch) -> None:
    """Stage a new row and give it its id."""
    session.add(row)
    session.flush()


def request_by_id(
    session: Session, request_id: int, *, lock: bool = False
) -> PromotionRequest | None:
    """One request (locked for update when deciding it, so two approvals cannot race)."""
    query = select(PromotionRequest).where(PromotionRequest.id == request_id)
    if lock:
        query = query.with_for_update()
    return session.scalars(query).first()


def pending_requests(session: Session) -> Sequence[PromotionRequest]:
    """Promotion requests waiting for a controller, oldest first."""
    return session.scalars(
        select(PromotionRequest)
        .where(
            PromotionRequest.kind == PromotionKind.PROMOTION.value,
            PromotionRequest.state == PromotionState.PENDING.value,
        )
        .order_by(PromotionRequest.id)
    ).all()


def recent_requests(session: Session, limit: int = 50) -> Sequence[PromotionRequest]:
    """The newest requests and rollbacks of every state."""
    return session.scalars(
        select(PromotionRequest).order_by(PromotionRequest.id.desc()).limit(limit)
    ).all()


def last_approved(session: Session, family: str) -> PromotionRequest | None:
    """The newest approved (not rolled back) promotion of a family, locked for update."""
    return session.scalars(
        select(PromotionRequest)
        .where(
            PromotionRequest.family == family,
            PromotionRequest.kind == PromotionKind.PROMOTION.value,
            PromotionRequest.state == PromotionState.APPROVED.value,
        )
        .order_by(PromotionRequest.id.desc())
        .limit(1)
        .with_for_update()
    ).first()


def switch_states(session: Session, families: Iterable[str]) -> dict[str, bool]:
    """The kill switch in force per family ("all" included when asked): the newest row wins."""
    names = list(families)
    newest = (
        select(ModelSwitch.family, ModelSwitch.enabled)
        .where(ModelSwitch.family.in_(names))
        .order_by(ModelSwitch.id)
    )
    states: dict[str, bool] = {}
    for family, enabled in session.execute(newest):
        states[family] = bool(enabled)  # ordered by id, so the last write is in force
    return states


def switch_history(session: Session, limit: int = 20) -> Sequence[ModelSwitch]:
    """The newest kill-switch flips."""
    return session.scalars(select(ModelSwitch).order_by(ModelSwitch.id.desc()).limit(limit)).all()


# -- the review snapshot (`tollgate train --from-reviews`) -----------------------------------


def decided_case_rows(
    session: Session, final_actions: Sequence[str]
) -> Sequence[tuple[Case, InvoiceRow, Document, str | None]]:
    """Cases with at least one final decision, with their invoice, document and supplier ref."""
    decided = select(Decision.case_id).where(Decision.action.in_(final_actions)).distinct()
    return [
        (case, invoice, document, supplier_ref)
        for case, invoice, document, supplier_ref in session.execute(
            select(Case, InvoiceRow, Document, Supplier.ref)
            .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
            .join(Document, Document.id == InvoiceRow.document_id)
            .outerjoin(Supplier, Supplier.id == Case.supplier_id)
            .where(Case.id.in_(decided))
            .order_by(Case.id)
        )
    ]


CHUNK = 1000  # ids per IN list: far below every backend's bound-parameter limit


def _chunks(ids: Sequence[int]) -> list[Sequence[int]]:
    return [ids[i : i + CHUNK] for i in range(0, len(ids), CHUNK)]


def decisions_with_users(
    session: Session, case_ids: Sequence[int]
) -> Sequence[tuple[Decision, str]]:
    """Every decision on the given cases with the decider's user name, in order."""
    out: list[tuple[Decision, str]] = []
    for chunk in _chunks(case_ids):
        out.extend(
            (decision, username)
            for decision, username in session.execute(
                select(Decision, User.username)
                .join(User, User.id == Decision.user_id)
                .where(Decision.case_id.in_(chunk))
                .order_by(Decision.case_id, Decision.id)
            )
        )
    return out


def findings_of(session: Session, case_ids: Sequence[int]) -> Sequence[FindingRow]:
    """The findings of the given cases, in order."""
    out: list[FindingRow] = []
    for chunk in _chunks(case_ids):
        out.extend(
            session.scalars(
                select(FindingRow).where(FindingRow.case_id.in_(chunk)).order_by(FindingRow.id)
            )
        )
    return out
