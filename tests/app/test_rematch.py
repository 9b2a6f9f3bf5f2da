"""A goods receipt that arrives later settles NO_RECEIPT: open cases on its PO are matched again."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.cases import service as cases
from app.documents.service import ingest_bytes
from app.masterdata.schemas import MasterData
from app.masterdata.service import load_master_data
from pipelines.canonical import GoodsReceipt, GoodsReceiptLine

CLERK = Actor("clerk-1", "clerk")
ADMIN = Actor("admin", "admin")


def _ingest(session: Session, blobs: BlobStore, path: Path, data: bytes | None = None) -> int:
    outcome = ingest_bytes(
        session, blobs, data or path.read_bytes(), filename=path.name, channel="t", actor=CLERK
    )
    assert outcome.case is not None
    return outcome.case.id


def _receive(
    session: Session, po_number: str, number: str, lines: dict[str, str], unit: str = "C62"
) -> list:  # type: ignore[type-arg]
    receipt = GoodsReceipt(
        number=number,
        po_number=po_number,
        lines=[
            GoodsReceiptLine(po_line_no=k, quantity=Decimal(v), unit_code=unit)
            for k, v in lines.items()
        ],
    )
    summary = load_master_data(session, MasterData(goods_receipts=[receipt]), ADMIN)
    return cases.rematch_for_purchase_orders(session, summary.affected_purchase_orders, actor=ADMIN)


def test_receipt_arrival_clears_no_receipt(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _ingest(loaded, blobs, demo_dir / "documents" / "008-no-receipt.xml")
    before = cases.get_case(loaded, case_id)
    assert before.reasons == ["NO_RECEIPT"] and before.queue == "receiving"
    po = before.invoice.po_reference
    assert po is not None

    changed = _receive(loaded, po, "GR-LATE-1", {"1": "500", "2": "40"})
    assert changed == [(case_id, ["NO_RECEIPT"], [])]
    after = cases.get_case(loaded, case_id)
    assert (after.reasons, after.queue) == ([], "clean")
    assert after.history[-1].action == "case.rematched"
    assert after.history[-1].before == {
        "state": "triaged",
        "queue": "receiving",
        "reasons": ["NO_RECEIPT"],
    }
    assert all(m.received_qty == m.ordered_qty for m in after.match_lines)


def test_partial_late_receipt_turns_no_receipt_into_over_received(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _ingest(loaded, blobs, demo_dir / "documents" / "008-no-receipt.xml")
    po = cases.get_case(loaded, case_id).invoice.po_reference
    assert po is not None
    ((_, _, after),) = _receive(loaded, po, "GR-LATE-2", {"1": "300", "2": "40"})
    assert after == ["QTY_OVER_RECEIVED"]


def test_rematch_counts_only_earlier_billing(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    path = demo_dir / "documents" / "023-credited-invoice.xml"
    first = _ingest(loaded, blobs, path)
    second = _ingest(
        loaded, blobs, path, path.read_bytes().replace(b"<cbc:ID>INV-", b"<cbc:ID>INV-9")
    )
    assert cases.get_case(loaded, first).reasons == []
    assert "QTY_OVER_RECEIVED" in cases.get_case(loaded, second).reasons
    po = cases.get_case(loaded, first).invoice.po_reference
    assert po is not None
    # More goods arrive for the PO: the second invoice is now covered by receipts, but still
    # bills more than was ordered; the first stays clean (the later invoice is not "before" it).
    changed = dict(
        (c, a) for c, _, a in _receive(loaded, po, "GR-MORE", {"1": "40", "2": "10"}, unit="KGM")
    )
    assert first not in changed
    assert "QTY_OVER_RECEIVED" not in changed[second]
    assert "QTY_OVER_ORDERED" in changed[second]
