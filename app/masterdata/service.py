"""Loading master data and presenting it to matching in canonical form."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.db.tables import (
    GoodsReceiptRow,
    PurchaseOrderLineRow,
    PurchaseOrderRow,
    ReceiptLineRow,
    Supplier,
    SupplierBankAccount,
)
from app.errors import InvalidInput
from app.masterdata import repository
from app.masterdata.schemas import LoadSummary, MasterData, SupplierIn
from pipelines.canonical import (
    GoodsReceipt,
    GoodsReceiptLine,
    LineKind,
    PurchaseOrder,
    PurchaseOrderLine,
)
from pipelines.normalise import normalise_iban, normalise_vat_id


def _upsert_supplier(
    session: Session, record: SupplierIn, summary: LoadSummary, actor: Actor
) -> Supplier:
    supplier = repository.supplier_by_ref(session, record.ref)
    vat = normalise_vat_id(record.vat_id) if record.vat_id else None
    is_new = supplier is None
    if supplier is None:
        supplier = Supplier(ref=record.ref, name=record.name, bank_accounts=[])
        repository.add(session, supplier)
        summary.suppliers_created += 1
    else:
        summary.suppliers_updated += 1
    supplier.name, supplier.vat_id = record.name, vat
    supplier.blocked, supplier.category, supplier.email = (
        record.blocked,
        record.category,
        record.email,
    )
    known = {acc.iban: acc for acc in supplier.bank_accounts}
    for account in record.bank_accounts:
        iban = normalise_iban(account.iban)
        existing = known.get(iban)
        if existing is None:
            existing = SupplierBankAccount(iban=iban)
            supplier.bank_accounts.append(existing)
            known[iban] = existing
            summary.bank_accounts_added += 1
            if not is_new:
                # A new IBAN on a known supplier is the classic fraud vector: always audit it.
                audit.record(
                    session,
                    actor,
                    "supplier.bank_account_added",
                    "supplier",
                    record.ref,
                    after={"iban": iban},
                )
        existing.valid_from, existing.valid_to = account.valid_from, account.valid_to
    return supplier


def _upsert_po(
    session: Session, po: PurchaseOrder, suppliers: dict[str, Supplier], summary: LoadSummary
) -> PurchaseOrderRow:
    supplier = suppliers.get(po.supplier_ref) or repository.supplier_by_ref(
        session, po.supplier_ref
    )
    if supplier is None:
        raise InvalidInput(
            f"purchase order {po.number} names supplier {po.supplier_ref!r}, which is not in "
            "the master data; load the supplier first",
            code="MASTER_DATA_INVALID",
        )
    row = repository.po_by_number(session, po.number)
    if row is None:
        row = PurchaseOrderRow(number=po.number, lines=[])
        repository.add(session, row)
        summary.purchase_orders_created += 1
    else:
        summary.purchase_orders_updated += 1
    row.supplier_id = supplier.id
    row.company, row.order_date, row.currency, row.status = (
        po.company,
        po.order_date,
        po.currency,
        po.status,
    )
    by_no = {line.line_no: line for line in row.lines}
    for line in po.lines:
        target = by_no.get(line.line_no)
        if target is None:
            target = PurchaseOrderLineRow(line_no=line.line_no)
            row.lines.append(target)
        target.item_id, target.description, target.category = (
            line.item_id,
            line.description,
            line.category,
        )
        target.quantity, target.unit_code, target.unit_price = (
            line.quantity,
            line.unit_code,
            line.unit_price,
        )
        target.price_base_quantity, target.tax_rate = line.price_base_quantity, line.tax_rate
        target.kind, target.receipt_required = line.kind.value, line.receipt_required
    return row


def _upsert_receipt(session: Session, receipt: GoodsReceipt, summary: LoadSummary) -> None:
    po = repository.po_by_number(session, receipt.po_number)
    if po is None:
        raise InvalidInput(
            f"goods receipt {receipt.number} is for PO {receipt.po_number}, which is not in the "
            "master data; load the PO first",
            code="MASTER_DATA_INVALID",
        )
    line_ids = {line.line_no: line.id for line in po.lines}
    row = repository.receipt_by_number(session, receipt.number)
    if row is None:
        row = GoodsReceiptRow(number=receipt.number, lines=[])
        repository.add(session, row)
        summary.receipts_created += 1
    else:
        row.lines.clear()
        summary.receipts_updated += 1
    row.purchase_order_id, row.receipt_date = po.id, receipt.receipt_date
    for line in receipt.lines:
        if line.po_line_no not in line_ids:
            raise InvalidInput(
                f"goods receipt {receipt.number} names line {line.po_line_no} of PO "
                f"{receipt.po_number}, which has no such line",
                code="MASTER_DATA_INVALID",
            )
        row.lines.append(
            ReceiptLineRow(
                po_line_id=line_ids[line.po_line_no],
                quantity=line.quantity,
                unit_code=line.unit_code,
            )
        )


def load_master_data(session: Session, data: MasterData, actor: Actor) -> LoadSummary:
    """Create or update suppliers, POs and receipts; the whole load is one transaction."""
    repository.forget(session)
    summary = LoadSummary()
    suppliers: dict[str, Supplier] = {}
    for record in data.suppliers:
        suppliers[record.ref] = _upsert_supplier(session, record, summary, actor)
    session.flush()
    for po in data.purchase_orders:
        _upsert_po(session, po, suppliers, summary)
    session.flush()
    for receipt in data.goods_receipts:
        _upsert_receipt(session, receipt, summary)
    session.flush()
    summary.affected_purchase_orders = sorted(
        {po.number for po in data.purchase_orders} | {r.po_number for r in data.goods_receipts}
    )
    repository.forget(session)
    audit.record(
        session,
        actor,
        "master_data.loaded",
        "master_data",
        "files",
        after=summary.model_dump(),
    )
    return summary


def to_canonical_po(row: PurchaseOrderRow, supplier_ref: str) -> PurchaseOrder:
    """A stored PO (lines loaded) as the canonical type matching reads."""
    return PurchaseOrder(
        number=row.number,
        supplier_ref=supplier_ref,
        company=row.company,
        order_date=row.order_date,
        currency=row.currency,
        status=row.status,
        lines=[
            PurchaseOrderLine(
                line_no=line.line_no,
                item_id=line.item_id,
                description=line.description,
                category=line.category,
                quantity=line.quantity,
                unit_code=line.unit_code,
                unit_price=line.unit_price,
                price_base_quantity=line.price_base_quantity,
                tax_rate=line.tax_rate,
                kind=LineKind(line.kind),
                receipt_required=line.receipt_required,
            )
            for line in row.lines
        ],
    )


def to_canonical_receipts(
    rows: Sequence[GoodsReceiptRow], po_number: str, line_numbers: dict[int, str]
) -> list[GoodsReceipt]:
    """Stored receipts (lines loaded) as canonical types."""
    return [
        GoodsReceipt(
            number=row.number,
            po_number=po_number,
            receipt_date=row.receipt_date,
            lines=[
                GoodsReceiptLine(
                    po_line_no=line_numbers[line.po_line_id],
                    quantity=line.quantity,
                    unit_code=line.unit_code,
                )
                for line in row.lines
            ],
        )
        for row in rows
    ]
