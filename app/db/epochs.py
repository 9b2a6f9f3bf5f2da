"""Which writes make in-process caches stale, and the token that tells a cache so.

The scoring-input cache (app/scoring/inputs.py) keeps validated documents, POs and suppliers
and the kill switch for as long as the `scoring_inputs` token is unchanged. Any flush or DML
statement that changes master data or flips the kill switch, or updates or deletes an invoice
or a finding, gives the token a fresh random value
in the same transaction, so a reader that sees the new data also sees the new token. Inserted
invoices and findings do not: they only add history, and the cache asks for new ids itself.

Listeners sit on every `Session`, so no write path (service, CLI, worker, ERP sync) can forget.
"""

from __future__ import annotations

import uuid
from itertools import chain
from typing import Any

from sqlalchemy import Table, bindparam, event, select, update
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction

from app.db.tables import (
    DataEpoch,
    FindingRow,
    GoodsReceiptRow,
    InvoiceRow,
    ModelSwitch,
    PurchaseOrderLineRow,
    PurchaseOrderRow,
    ReceiptLineRow,
    Supplier,
    SupplierBankAccount,
)

SCORING_INPUTS = "scoring_inputs"
WROTE = "tollgate.wrote"  # session.info key: this transaction has written something

_MASTER: tuple[type, ...] = (
    ModelSwitch,  # the kill switch decides whether outputs are given at all
    Supplier,
    SupplierBankAccount,
    PurchaseOrderRow,
    PurchaseOrderLineRow,
    GoodsReceiptRow,
    ReceiptLineRow,
)
_CHANGED_ONLY: tuple[type, ...] = (InvoiceRow, FindingRow)
_MASTER_TABLES = {cls.__table__.name for cls in _MASTER}  # type: ignore[attr-defined]
_CHANGED_ONLY_TABLES = {cls.__table__.name for cls in _CHANGED_ONLY}  # type: ignore[attr-defined]


_TOKEN = select(DataEpoch.token).where(DataEpoch.name == bindparam("name"))  # built once


def read_token(session: Session, name: str = SCORING_INPUTS) -> str | None:
    """The current token (None on a database without the row: then nothing may be cached)."""
    return session.scalar(_TOKEN, {"name": name})


def bump(session: Session, name: str = SCORING_INPUTS) -> None:
    """Give the token a fresh value inside the session's transaction."""
    # On the connection, not session.execute: no ORM events, so no recursion from the hooks.
    session.connection().execute(
        update(DataEpoch).where(DataEpoch.name == name).values(token=uuid.uuid4().hex)
    )


def has_written(session: Session) -> bool:
    """Whether the session's current transaction has flushed or executed a write."""
    return bool(session.info.get(WROTE))


def _stales_inputs(session: Session) -> bool:
    if any(isinstance(obj, _MASTER) for obj in session.new):
        return True
    return any(
        isinstance(obj, _MASTER + _CHANGED_ONLY)
        and (obj in session.deleted or session.is_modified(obj))
        for obj in chain(session.dirty, session.deleted)
    )


@event.listens_for(Session, "before_flush")
def _before_flush(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    if not (session.new or session.dirty or session.deleted):
        return
    session.info[WROTE] = True
    if _stales_inputs(session):
        bump(session)


@event.listens_for(Session, "do_orm_execute")
def _on_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    state.session.info[WROTE] = True
    table = getattr(state.statement, "table", None)
    name = table.name if isinstance(table, Table) else None
    if name in _MASTER_TABLES or (name in _CHANGED_ONLY_TABLES and not state.is_insert):
        bump(state.session)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_over(session: Session) -> None:
    session.info.pop(WROTE, None)
