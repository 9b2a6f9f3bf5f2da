"""Intake to case on both backends: each demo scenario raises exactly its intended reasons."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.blobs import BlobStore
from app.cases import service as cases
from app.db.tables import AuditEvent, Case, Document
from app.documents.service import IngestOutcome, ingest_bytes

CLERK = Actor("clerk-1", "clerk")


def _ingest(session: Session, blobs: BlobStore, path: Path) -> IngestOutcome:
    return ingest_bytes(
        session, blobs, path.read_bytes(), filename=path.name, channel="test", actor=CLERK
    )


def test_every_scenario_gives_its_reasons(
    loaded: Session, blobs: BlobStore, demo_dir: Path, scenarios: dict[str, list[str]]
) -> None:
    got: dict[str, list[str]] = {}
    for path in sorted((demo_dir / "documents").iterdir()):
        outcome = _ingest(loaded, blobs, path)
        if outcome.case is None:
            got[path.name] = [f"parse error: {outcome.document.parse_error_code}"]
        else:
            got[path.name] = sorted(outcome.reasons)
    assert got == {name: sorted(reasons) for name, reasons in scenarios.items()}


def test_same_bytes_twice_is_one_document_and_one_case(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    path = demo_dir / "documents" / "001-clean-1.xml"
    first = _ingest(loaded, blobs, path)
    second = _ingest(loaded, blobs, path)
    assert first.created and not second.created
    assert first.document.id == second.document.id
    assert first.case is not None and second.case is not None
    assert first.case.id == second.case.id
    assert loaded.scalar(select(func.count()).select_from(Document)) == 1
    assert loaded.scalar(select(func.count()).select_from(Case)) == 1


def test_unreadable_file_is_stored_with_a_typed_error(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    path = demo_dir / "documents" / "999-truncated-upload.xml"
    outcome = _ingest(loaded, blobs, path)
    assert outcome.case is None
    assert outcome.document.parse_status == "failed"
    assert outcome.document.parse_error_code == "MALFORMED_XML"
    assert outcome.document.parse_error_message
    assert blobs.read(outcome.document.storage_path) == path.read_bytes()
    actions = loaded.scalars(select(AuditEvent.action)).all()
    assert "document.parse_failed" in actions


@pytest.mark.parametrize(
    ("filename", "queue", "signatures"),
    [
        ("001-clean-1.xml", "clean", 1),
        ("012-bank-details-changed.xml", "fraud-risk", 2),
        ("008-no-receipt.xml", "receiving", 1),
    ],
)
def test_cases_are_triaged_and_every_state_change_is_audited(
    loaded: Session, blobs: BlobStore, demo_dir: Path, filename: str, queue: str, signatures: int
) -> None:
    outcome = _ingest(loaded, blobs, demo_dir / "documents" / filename)
    assert outcome.case is not None
    detail = cases.get_case(loaded, outcome.case.id)
    assert detail.state == "triaged"
    assert detail.queue == queue
    assert detail.required_signatures == signatures
    assert [e.action for e in detail.history] == ["case.created", "case.triaged"]
    assert detail.history[1].before == {"state": "new"}
    assert audit.verify(loaded).ok


def test_partial_receipt_finding_carries_numbers_and_tolerance(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    outcome = _ingest(loaded, blobs, demo_dir / "documents" / "007-over-received.xml")
    assert outcome.case is not None
    detail = cases.get_case(loaded, outcome.case.id)
    (finding,) = [f for f in detail.findings if f.code == "QTY_OVER_RECEIVED"]
    assert (finding.expected, finding.actual, finding.variance) == (120, 200, 80)
    assert finding.line_id == "1" and finding.po_line_no == "1"
    assert finding.tolerance is not None
    (line,) = [m for m in detail.match_lines if m.line_id == "1"]
    assert (line.ordered_qty, line.received_qty, line.invoiced_qty) == (200, 120, 200)


def test_second_invoice_on_a_po_counts_what_was_billed_before(
    loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    # The credited invoice bills the whole PO; the same lines billed again exceed what was
    # received even though each invoice alone would match.
    first = _ingest(loaded, blobs, demo_dir / "documents" / "023-credited-invoice.xml")
    assert first.reasons == []
    data = (demo_dir / "documents" / "023-credited-invoice.xml").read_bytes()
    rebilled = data.replace(b"<cbc:ID>INV-", b"<cbc:ID>INV-9")
    second = ingest_bytes(loaded, blobs, rebilled, filename="rebill.xml", channel="t", actor=CLERK)
    assert "QTY_OVER_RECEIVED" in second.reasons
    assert "DUPLICATE" not in second.reasons


def test_a_plain_pdf_is_read_from_its_text_with_confidences(
    loaded: Session, blobs: BlobStore
) -> None:
    from app.db.tables import InvoiceRow
    from training.demo_world import build_world
    from training.synth.pdf import render_pdf

    name, doc, _expect = next(d for d in build_world().documents if d[0] == "clean-2")
    data = render_pdf(doc, "de_din")
    outcome = ingest_bytes(loaded, blobs, data, filename=f"{name}.pdf", channel="test", actor=CLERK)
    assert outcome.document.detected_format == "pdf"
    assert outcome.case is not None
    invoice = loaded.scalars(
        select(InvoiceRow).where(InvoiceRow.document_id == outcome.document.id)
    ).one()
    assert invoice.number == doc.number
    assert invoice.gross_total == doc.gross
    assert invoice.extraction is not None
    gross = invoice.extraction["gross_total"]
    assert gross["value"] == str(doc.gross) and 0 < gross["confidence"] <= 1
    # The text gives the lines too (they multiply out and add up to the net): a clean match.
    assert outcome.reasons == []
