"""All SQL of the controller view and the dashboard."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, exists, func, or_, select
from sqlalchemy.orm import Session

from app.db.tables import (
    AuditEvent,
    Case,
    Decision,
    DecisionAction,
    FindingRow,
    InvoiceRow,
    Prediction,
    Supplier,
    User,
)

OPEN_STATES = ("new", "triaged", "in_review", "on_hold")
APPROVED_STATES = ("approved", "posting", "posted", "posting_failed")
SAMPLE_CHECKED = "audit_sample.checked"
AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True)
class DecisionFilter:
    """Filters of the decision log; None means any."""

    date_from: datetime | None = None
    date_to: datetime | None = None  # exclusive
    username: str | None = None
    action: str | None = None
    reason: str | None = None  # a finding code on the case
    supplier: str | None = None  # supplier ref or part of its name
    model_version: str | None = None  # a prediction of this version on the case


@dataclass(frozen=True)
class DecisionRow:
    """One line of the decision log."""

    id: int
    at: datetime
    username: str
    role: str
    action: str
    reason: str | None
    feedback_kind: str | None
    case_id: int
    case_state: str
    invoice_number: str | None
    supplier: str | None
    gross: Decimal | None
    currency: str | None


def _decisions(flt: DecisionFilter) -> AnySelect:
    query: AnySelect = (
        select(
            Decision.id,
            Decision.created_at,
            User.username,
            Decision.role,
            Decision.action,
            Decision.reason,
            Decision.feedback_kind,
            Case.id,
            Case.state,
            InvoiceRow.number,
            func.coalesce(Supplier.name, InvoiceRow.supplier_name),
            InvoiceRow.gross_total,
            InvoiceRow.currency,
        )
        .join(User, User.id == Decision.user_id)
        .join(Case, Case.id == Decision.case_id)
        .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
        .outerjoin(Supplier, Supplier.id == Case.supplier_id)
    )
    if flt.date_from is not None:
        query = query.where(Decision.created_at >= flt.date_from)
    if flt.date_to is not None:
        query = query.where(Decision.created_at < flt.date_to)
    if flt.username:
        query = query.where(User.username == flt.username)
    if flt.action:
        query = query.where(Decision.action == flt.action)
    if flt.reason:
        query = query.where(
            exists().where(FindingRow.case_id == Case.id, FindingRow.code == flt.reason)
        )
    if flt.supplier:
        like = f"%{flt.supplier.lower()}%"
        query = query.where(
            or_(
                Supplier.ref == flt.supplier,
                func.lower(Supplier.name).like(like),
                func.lower(InvoiceRow.supplier_name).like(like),
            )
        )
    if flt.model_version:
        query = query.where(
            exists().where(
                Prediction.case_id == Case.id, Prediction.model_version == flt.model_version
            )
        )
    return query


def _row(r: Any) -> DecisionRow:
    return DecisionRow(*r)


def decision_page(
    session: Session, flt: DecisionFilter, offset: int, limit: int
) -> tuple[list[DecisionRow], int]:
    """A page of the decision log, newest first, with the total count."""
    query = _decisions(flt)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Decision.created_at.desc(), Decision.id.desc()).offset(offset).limit(limit)
    ).all()
    return [_row(r) for r in rows], total


def iter_decisions(
    session: Session, flt: DecisionFilter, batch: int = 2000
) -> Iterator[DecisionRow]:
    """Every decision matching the filter, oldest first, read in batches."""
    last = 0
    while True:
        rows = session.execute(
            _decisions(flt).where(Decision.id > last).order_by(Decision.id).limit(batch)
        ).all()
        if not rows:
            return
        for r in rows:
            yield _row(r)
        last = rows[-1][0]


def usernames_with_decisions(session: Session) -> list[str]:
    """People who decided something (for the filter list)."""
    query = select(User.username).where(exists().where(Decision.user_id == User.id))
    return list(session.scalars(query.order_by(User.username)))


def model_versions(session: Session) -> list[tuple[str, str, str]]:
    """(family, model name, version) of every stored prediction."""
    rows = session.execute(
        select(Prediction.family, Prediction.model_name, Prediction.model_version).distinct()
    ).all()
    return sorted((str(f), str(n), str(v)) for f, n, v in rows)


@dataclass(frozen=True)
class ReasonPredictionRow:
    """A reason prediction with the state of its case."""

    case_id: int
    model_name: str
    model_version: str
    output: dict[str, Any]
    case_state: str


def reason_predictions(session: Session) -> list[ReasonPredictionRow]:
    """Every reason-family prediction, the latest per case and version."""
    rows = session.execute(
        select(
            Prediction.case_id,
            Prediction.model_name,
            Prediction.model_version,
            Prediction.output,
            Case.state,
        )
        .join(Case, Case.id == Prediction.case_id)
        .where(Prediction.family == "reason")
        .order_by(Prediction.id)
    ).all()
    latest: dict[tuple[int, str, str], ReasonPredictionRow] = {}
    for case_id, name, version, output, state in rows:
        latest[(case_id, name, version)] = ReasonPredictionRow(
            case_id, name, version, output or {}, state
        )
    return list(latest.values())


def finding_codes(session: Session, case_ids: Sequence[int]) -> dict[int, set[str]]:
    """The rule finding codes of each case."""
    out: dict[int, set[str]] = {cid: set() for cid in case_ids}
    for chunk in _chunks(case_ids):
        for case_id, code in session.execute(
            select(FindingRow.case_id, FindingRow.code).where(FindingRow.case_id.in_(chunk))
        ):
            out[case_id].add(code)
    return out


def decisions_of(session: Session, case_ids: Sequence[int]) -> dict[int, list[Decision]]:
    """The decisions on each case, in order."""
    out: dict[int, list[Decision]] = {cid: [] for cid in case_ids}
    for chunk in _chunks(case_ids):
        for d in session.scalars(
            select(Decision).where(Decision.case_id.in_(chunk)).order_by(Decision.id)
        ):
            out[d.case_id].append(d)
    return out


def _chunks(ids: Sequence[int], size: int = 500) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


# -- the audit sample --------------------------------------------------------------------------


@dataclass(frozen=True)
class SampledCase:
    """A case drawn into the controller's audit sample."""

    case_id: int
    state: str
    invoice_number: str | None
    supplier: str | None
    gross: Decimal | None
    currency: str | None
    signed_at: datetime | None


def sampled_cases(session: Session) -> list[SampledCase]:
    """Every case in the audit sample, oldest first."""
    signed = (
        select(Decision.case_id, func.max(Decision.created_at).label("at"))
        .where(Decision.action == DecisionAction.SIGN.value)
        .group_by(Decision.case_id)
        .subquery()
    )
    rows = session.execute(
        select(
            Case.id,
            Case.state,
            InvoiceRow.number,
            func.coalesce(Supplier.name, InvoiceRow.supplier_name),
            InvoiceRow.gross_total,
            InvoiceRow.currency,
            signed.c.at,
        )
        .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
        .outerjoin(Supplier, Supplier.id == Case.supplier_id)
        .outerjoin(signed, signed.c.case_id == Case.id)
        .where(Case.audit_sampled.is_(True))
        .order_by(Case.id)
    ).all()
    return [SampledCase(*r) for r in rows]


def sample_checks(session: Session) -> dict[str, AuditEvent]:
    """The audit events that mark sampled cases as checked, by case id (the first one wins)."""
    out: dict[str, AuditEvent] = {}
    for ev in session.scalars(
        select(AuditEvent)
        .where(AuditEvent.action == SAMPLE_CHECKED, AuditEvent.object_type == "case")
        .order_by(AuditEvent.seq)
    ):
        out.setdefault(ev.object_id, ev)
    return out


def locked_sampled_case(session: Session, case_id: int) -> Case | None:
    """A sampled case, row-locked so two controllers do not both mark it."""
    return session.scalars(select(Case).where(Case.id == case_id).with_for_update()).one_or_none()


# -- the dashboard -----------------------------------------------------------------------------


def open_reason_mix(session: Session) -> list[tuple[str, int]]:
    """Open cases per finding code (a case with two codes counts under each)."""
    rows = session.execute(
        select(FindingRow.code, func.count(func.distinct(FindingRow.case_id)))
        .join(Case, Case.id == FindingRow.case_id)
        .where(Case.state.in_(OPEN_STATES))
        .group_by(FindingRow.code)
    ).all()
    return sorted(((str(c), int(n)) for c, n in rows), key=lambda r: (-r[1], r[0]))


def open_case_times(session: Session) -> list[tuple[datetime, datetime | None]]:
    """(created at, SLA due at) of every open case."""
    rows = session.execute(
        select(Case.created_at, Case.sla_due_at).where(Case.state.in_(OPEN_STATES))
    ).all()
    return [(c, d) for c, d in rows]


def approved_counts(session: Session) -> tuple[int, int]:
    """(approved cases, of which touchless: no findings and no correction)."""
    approved = select(Case.id).where(Case.state.in_(APPROVED_STATES))
    total = session.scalar(select(func.count()).select_from(approved.subquery())) or 0
    touchless = approved.where(
        ~exists().where(FindingRow.case_id == Case.id),
        ~exists().where(
            Decision.case_id == Case.id, Decision.action == DecisionAction.CORRECT.value
        ),
    )
    clean = session.scalar(select(func.count()).select_from(touchless.subquery())) or 0
    return int(total), int(clean)


def top_exception_suppliers(session: Session, limit: int) -> list[tuple[str, int]]:
    """Suppliers with the most cases that have findings."""
    name = func.coalesce(Supplier.name, InvoiceRow.supplier_name, "unknown")
    rows = session.execute(
        select(name, func.count(Case.id))
        .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
        .outerjoin(Supplier, Supplier.id == Case.supplier_id)
        .where(exists().where(FindingRow.case_id == Case.id))
        .group_by(name)
        .order_by(func.count(Case.id).desc(), name)
        .limit(limit)
    ).all()
    return [(str(n), int(c)) for n, c in rows]
