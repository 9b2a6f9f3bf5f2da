"""SQL for master data."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from app.db.tables import (
    GoodsReceiptRow,
    PurchaseOrderRow,
    Supplier,
    SupplierBankAccount,
)

T = TypeVar("T")


def memo(session: Session, key: tuple[object, ...], load: Callable[[], T]) -> T:
    """Read master data once per transaction.

    Intake reads the same suppliers, POs and receipts for document after document, and nothing
    changes them inside an intake transaction; a master-data load clears the memo.
    """
    transaction = session.get_transaction()
    held = session.info.get("masterdata_memo")
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        session.info["masterdata_memo"] = held
    values: dict[tuple[object, ...], Any] = held[1]
    if key not in values:
        values[key] = load()
    return cast(T, values[key])


def forget(session: Session) -> None:
    """Drop memoised master data (after a load changed it)."""
    session.info.pop("masterdata_memo", None)


def supplier_by_ref(session: Session, ref: str) -> Supplier | None:
    """A supplier by its ERP key, with its bank accounts."""
    return session.scalars(
        select(Supplier).where(Supplier.ref == ref).options(selectinload(Supplier.bank_accounts))
    ).one_or_none()


def supplier_by_id(session: Session, supplier_id: int) -> Supplier | None:
    """A supplier with its bank accounts."""
    return session.scalars(
        select(Supplier)
        .where(Supplier.id == supplier_id)
        .options(selectinload(Supplier.bank_accounts))
    ).one_or_none()


def suppliers_by_vat_or_iban(
    session: Session, vat_id: str | None, iban: str | None
) -> Sequence[Supplier]:
    """Suppliers whose VAT id or any bank account equals the given (normalised) values."""
    conditions = []
    if vat_id:
        conditions.append(Supplier.vat_id == vat_id)
    if iban:
        conditions.append(
            Supplier.id.in_(
                select(SupplierBankAccount.supplier_id).where(SupplierBankAccount.iban == iban)
            )
        )
    if not conditions:
        return []
    return (
        session.scalars(
            select(Supplier).where(or_(*conditions)).options(joinedload(Supplier.bank_accounts))
        )
        .unique()
        .all()
    )


def supplier_names(session: Session) -> Sequence[tuple[int, str, str]]:
    """(id, ref, name) of every supplier, for fuzzy name resolution."""
    return [tuple(r) for r in session.execute(select(Supplier.id, Supplier.ref, Supplier.name))]  # type: ignore[misc]


def po_by_number(session: Session, number: str) -> PurchaseOrderRow | None:
    """A purchase order with its lines (one query)."""
    return (
        session.scalars(
            select(PurchaseOrderRow)
            .where(PurchaseOrderRow.number == number)
            .options(joinedload(PurchaseOrderRow.lines))
        )
        .unique()
        .one_or_none()
    )


def receipts_for_po(session: Session, po_id: int) -> Sequence[GoodsReceiptRow]:
    """Every receipt (and return) against a PO, with lines."""
    return (
        session.scalars(
            select(GoodsReceiptRow)
            .where(GoodsReceiptRow.purchase_order_id == po_id)
            .options(joinedload(GoodsReceiptRow.lines))
            .order_by(GoodsReceiptRow.id)
        )
        .unique()
        .all()
    )


def receipt_by_number(session: Session, number: str) -> GoodsReceiptRow | None:
    """A receipt with its lines."""
    return session.scalars(
        select(GoodsReceiptRow)
        .where(GoodsReceiptRow.number == number)
        .options(selectinload(GoodsReceiptRow.lines))
    ).one_or_none()


def add(session: Session, row: object) -> None:
    """Stage a new row."""
    session.add(row)
