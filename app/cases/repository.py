"""SQL for cases, findings and match lines."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, delete, exists, func, insert, select
from sqlalchemy.orm import Session

from app.db.base import AFTER_EVERY_ROW
from app.db.tables import Case, CaseState, FindingRow, InvoiceRow, MatchLine, Supplier
from pipelines.reasons import ReasonCode


@dataclass(frozen=True)
class CaseFilter:
    """What the case list is narrowed to."""

    state: str | None = None
    reason: str | None = None
    supplier_ref: str | None = None
    queue: str | None = None


def get(session: Session, case_id: int) -> Case | None:
    """A case by id."""
    return session.get(Case, case_id)


def by_invoice(session: Session, invoice_id: int) -> Case | None:
    """The case of an invoice."""
    return session.scalars(select(Case).where(Case.invoice_id == invoice_id)).one_or_none()


def _filtered(query: Select[Case], flt: CaseFilter) -> Select[Case]:
    if flt.state:
        query = query.where(Case.state == flt.state)
    if flt.queue:
        query = query.where(Case.queue == flt.queue)
    if flt.reason:
        query = query.where(
            exists().where(FindingRow.case_id == Case.id, FindingRow.code == flt.reason)
        )
    if flt.supplier_ref:
        query = query.join(Supplier, Supplier.id == Case.supplier_id).where(
            Supplier.ref == flt.supplier_ref
        )
    return query


def list_cases(
    session: Session, flt: CaseFilter, offset: int, limit: int
) -> tuple[Sequence[Case], int]:
    """A page of cases, most urgent first, with the total count."""
    query = _filtered(select(Case), flt)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Case.priority.desc(), Case.sla_due_at, Case.id).offset(offset).limit(limit)
    ).all()
    return rows, total


def findings_for(session: Session, case_ids: Sequence[int]) -> Sequence[FindingRow]:
    """Findings of the given cases."""
    if not case_ids:
        return []
    return session.scalars(
        select(FindingRow).where(FindingRow.case_id.in_(case_ids)).order_by(FindingRow.id)
    ).all()


def match_lines_for(session: Session, case_id: int) -> Sequence[MatchLine]:
    """The match table of a case."""
    return session.scalars(
        select(MatchLine).where(MatchLine.case_id == case_id).order_by(MatchLine.id)
    ).all()


def invoices_by_ids(session: Session, ids: Sequence[int]) -> dict[int, InvoiceRow]:
    """Invoices keyed by id."""
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(InvoiceRow).where(InvoiceRow.id.in_(ids)))}


def suppliers_by_ids(session: Session, ids: Sequence[int]) -> dict[int, Supplier]:
    """Suppliers keyed by id."""
    if not ids:
        return {}
    return {r.id: r for r in session.scalars(select(Supplier).where(Supplier.id.in_(ids)))}


_BILLED_ON_PO = (  # built once: matching runs it for every document on a PO
    select(
        Case.id,
        InvoiceRow.kind,
        InvoiceRow.net_total,
        MatchLine.po_line_no,
        MatchLine.invoiced_qty,
    )
    .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
    .outerjoin(MatchLine, MatchLine.case_id == Case.id)
    .where(
        InvoiceRow.purchase_order_id == bindparam("po_id"),
        Case.state != CaseState.REJECTED.value,
        ~exists().where(
            FindingRow.case_id == Case.id, FindingRow.code == ReasonCode.DUPLICATE.value
        ),
        Case.id < bindparam("before"),
    )
)


def billed_on_po(
    session: Session, po_id: int, before_case_id: int | None = None
) -> tuple[dict[str, Decimal], Decimal]:
    """Quantities per PO line (PO unit) and net amount billed against a PO by earlier cases.

    Cases that are rejected or flagged as duplicates do not count: they will not be paid.
    """
    before = AFTER_EVERY_ROW if before_case_id is None else before_case_id
    rows = session.execute(_BILLED_ON_PO, {"po_id": po_id, "before": before})
    quantities: dict[str, Decimal] = {}
    nets: dict[int, Decimal] = {}
    for case_id, kind, net, line_no, qty in rows:
        if net is not None:
            nets[case_id] = net if kind == "invoice" else -net
        if kind == "invoice" and line_no is not None and qty is not None:
            quantities[line_no] = quantities.get(line_no, Decimal(0)) + qty
    return quantities, sum(nets.values(), Decimal(0))


def open_cases_on_pos(session: Session, po_ids: Sequence[int]) -> Sequence[Case]:
    """Cases not yet decided whose invoice bills one of the POs, oldest first."""
    if not po_ids:
        return []
    return session.scalars(
        select(Case)
        .join(InvoiceRow, InvoiceRow.id == Case.invoice_id)
        .where(
            InvoiceRow.purchase_order_id.in_(po_ids),
            Case.state.in_([CaseState.NEW.value, CaseState.TRIAGED.value, CaseState.ON_HOLD.value]),
        )
        .order_by(Case.id)
    ).all()


def delete_rule_results(session: Session, case_id: int) -> None:
    """Remove the rule findings and the match table of a case, before it is matched again."""
    session.execute(
        delete(FindingRow).where(FindingRow.case_id == case_id, FindingRow.source == "rules")
    )
    session.execute(delete(MatchLine).where(MatchLine.case_id == case_id))


def add_findings(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert findings in one statement (no ids are needed back)."""
    if rows:
        session.execute(insert(FindingRow), rows)


def add_match_lines(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert match-table rows in one statement."""
    if rows:
        session.execute(insert(MatchLine), rows)


def add(session: Session, row: object) -> None:
    """Stage a new row."""
    session.add(row)
