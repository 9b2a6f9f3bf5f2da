"""Storage on both backends: exact decimals, the audit chain, master-data loads."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.db.tables import AuditEvent, PurchaseOrderLineRow, Supplier
from app.masterdata import repository as masterdata
from app.masterdata.schemas import BankAccountIn, MasterData, SupplierIn
from app.masterdata.service import load_master_data
from pipelines.canonical import GoodsReceipt, GoodsReceiptLine, PurchaseOrder, PurchaseOrderLine

ADMIN = Actor("tester", "admin")


def _master() -> MasterData:
    return MasterData(
        suppliers=[
            SupplierIn(
                ref="S1",
                name="Acme Ltd",
                vat_id="gb 123 456 789",
                bank_accounts=[BankAccountIn(iban="GB29 NWBK 6016 1331 9268 19")],
            )
        ],
        purchase_orders=[
            PurchaseOrder(
                number="PO-1",
                supplier_ref="S1",
                currency="GBP",
                lines=[
                    PurchaseOrderLine(
                        line_no="1",
                        quantity=Decimal("3"),
                        unit_price=Decimal("1234567890.123456"),
                    )
                ],
            )
        ],
        goods_receipts=[
            GoodsReceipt(
                number="GR-1",
                po_number="PO-1",
                lines=[GoodsReceiptLine(po_line_no="1", quantity=Decimal("2"))],
            )
        ],
    )


def test_decimals_round_trip_exactly(session: Session) -> None:
    load_master_data(session, _master(), ADMIN)
    session.expunge_all()
    price = session.scalars(select(PurchaseOrderLineRow.unit_price)).one()
    assert price == Decimal("1234567890.123456")
    assert isinstance(price, Decimal)


def test_master_data_load_normalises_and_is_idempotent(session: Session) -> None:
    first = load_master_data(session, _master(), ADMIN)
    assert (first.suppliers_created, first.purchase_orders_created, first.receipts_created) == (
        1,
        1,
        1,
    )
    second = load_master_data(session, _master(), ADMIN)
    assert (second.suppliers_created, second.suppliers_updated, second.bank_accounts_added) == (
        0,
        1,
        0,
    )
    supplier = masterdata.supplier_by_ref(session, "S1")
    assert supplier is not None
    assert supplier.vat_id == "GB123456789"
    assert [a.iban for a in supplier.bank_accounts] == ["GB29NWBK60161331926819"]
    assert len(session.scalars(select(Supplier)).all()) == 1


def test_new_iban_on_known_supplier_is_audited(session: Session) -> None:
    load_master_data(session, _master(), ADMIN)
    changed = _master()
    changed.suppliers[0].bank_accounts.append(BankAccountIn(iban="DE89370400440532013000"))
    load_master_data(session, changed, ADMIN)
    actions = session.scalars(
        select(AuditEvent.action).where(AuditEvent.action == "supplier.bank_account_added")
    ).all()
    assert actions == ["supplier.bank_account_added"]


def test_audit_chain_verifies_and_detects_an_edit(session: Session) -> None:
    for i in range(5):
        audit.record(session, ADMIN, "test.event", "thing", i, after={"amount": Decimal("1.10")})
    session.flush()
    report = audit.verify(session)
    assert report.ok and report.events == 5
    if session.get_bind().dialect.name == "postgresql":
        # The database refuses edits to the log; an attacker with the owner's rights can turn
        # the guard off (inside this test's transaction, rolled back), and the chain still tells.
        with pytest.raises(DBAPIError, match="append-only"), session.begin_nested():
            session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="x"))
        session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
    session.execute(update(AuditEvent).where(AuditEvent.seq == 3).values(actor="mallory"))
    session.expire_all()
    report = audit.verify(session)
    assert not report.ok
    assert [b.seq for b in report.breaks] == [3]
