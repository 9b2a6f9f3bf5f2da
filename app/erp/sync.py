"""Pulling master data from the ERP into Tollgate, incrementally (DESIGN §2 step 3, §5).

The watermark lives in the audit log: every sync appends an `erp.synced` event for the
adapter, whose `after.watermark` is the moment the sync *started* (taken before the first
fetch, so a record changed while the sync ran is fetched again next time). The next sync asks
for changes since that watermark minus `OVERLAP`, because the ERP's clock and ours are not the
same clock; loading a record twice is harmless, since `load_master_data` upserts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.audit import repository as audit_repository
from app.audit import service as audit
from app.audit.service import Actor
from app.cases.service import rematch_for_purchase_orders
from app.db.base import utcnow
from app.erp.protocol import ErpAdapter, SupplierData
from app.masterdata import repository as masterdata_repository
from app.masterdata.schemas import BankAccountIn, LoadSummary, MasterData, SupplierIn
from app.masterdata.service import load_master_data

SYNC_ACTION = "erp.synced"
SYNC_OBJECT = "erp_sync"
OVERLAP = timedelta(minutes=5)


@dataclass
class SyncSummary:
    """What one sync fetched and changed."""

    adapter: str
    since: datetime | None
    watermark: datetime
    suppliers: int = 0
    purchase_orders: int = 0
    receipts: int = 0
    skipped_receipts: list[str] = field(default_factory=list)
    load: LoadSummary = field(default_factory=LoadSummary)
    rematched_cases: list[int] = field(default_factory=list)


def last_watermark(session: Session, adapter_name: str) -> datetime | None:
    """When the last sync from this adapter started, or None if it never ran."""
    events = audit_repository.events_for(session, SYNC_OBJECT, adapter_name)
    for event in reversed(events):
        if event.action == SYNC_ACTION and event.after and event.after.get("watermark"):
            return datetime.fromisoformat(str(event.after["watermark"]))
    return None


def _supplier_in(data: SupplierData) -> SupplierIn:
    return SupplierIn(
        ref=data.ref,
        name=data.name,
        vat_id=data.vat_id,
        bank_accounts=[BankAccountIn(iban=iban) for iban in data.ibans],
        blocked=data.blocked,
    )


def check(adapter: ErpAdapter) -> str:
    """Reach the ERP and describe it (raises ErpUnavailable)."""
    return adapter.check()


def erp_sync(
    session: Session, adapter: ErpAdapter, actor: Actor, *, full: bool = False
) -> SyncSummary:
    """Fetch suppliers, POs and receipts changed since the last sync and load them.

    Runs in the caller's transaction (services flush, never commit). Receipts for POs that
    Tollgate does not hold (e.g. closed before the first sync) are skipped and listed.
    """
    since = None if full else last_watermark(session, adapter.name)
    fetch_since = since - OVERLAP if since is not None else None
    started = utcnow()
    suppliers = adapter.fetch_suppliers()
    orders = adapter.fetch_purchase_orders(fetch_since)
    receipts = adapter.fetch_receipts(fetch_since)

    known_pos = {po.number for po in orders}
    kept, skipped = [], []
    for receipt in receipts:
        if receipt.po_number in known_pos or masterdata_repository.po_by_number(
            session, receipt.po_number
        ):
            kept.append(receipt)
        else:
            skipped.append(receipt.number)

    data = MasterData(
        suppliers=[_supplier_in(s) for s in suppliers],
        purchase_orders=orders,
        goods_receipts=kept,
    )
    summary = SyncSummary(
        adapter=adapter.name,
        since=fetch_since,
        watermark=started,
        suppliers=len(suppliers),
        purchase_orders=len(orders),
        receipts=len(kept),
        skipped_receipts=skipped,
    )
    summary.load = load_master_data(session, data, actor)
    changed = rematch_for_purchase_orders(
        session, summary.load.affected_purchase_orders, actor=actor
    )
    summary.rematched_cases = [case_id for case_id, _before, _after in changed]
    audit.record(
        session,
        actor,
        SYNC_ACTION,
        SYNC_OBJECT,
        adapter.name,
        after={
            "watermark": started.isoformat(),
            "since": fetch_since.isoformat() if fetch_since else None,
            "suppliers": summary.suppliers,
            "purchase_orders": summary.purchase_orders,
            "receipts": summary.receipts,
            "skipped_receipts": skipped,
            "rematched_cases": summary.rematched_cases,
        },
    )
    return summary
