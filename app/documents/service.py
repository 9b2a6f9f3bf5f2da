"""Intake: store the bytes once, read them, and open a case for what was read."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.blobs import BlobStore, sha256_hex
from app.cases import service as cases
from app.cases.service import Assessment, CasePolicies
from app.db.tables import Case, Document, InvoiceRow, ParseStatus
from app.documents import repository
from app.documents.parsing import InProcessParser, Parser
from app.errors import NotFound
from app.settings import get_settings
from pipelines.canonical import SupplierDocument
from pipelines.extract import SupplierHint
from pipelines.normalise import normalise_invoice_number
from pipelines.parsers import DetectedFormat, ParsedDocument, ParseLimits
from pipelines.parsers.errors import ParseError

log = structlog.get_logger(__name__)


@dataclass
class IngestOutcome:
    """A document, the case opened for it (if it could be read), and whether it was new."""

    document: Document
    case: Case | None
    created: bool
    reasons: list[str] = field(default_factory=list)


def reread_with_supplier_hint(
    session: Session, parser: Parser, data: bytes, parsed: ParsedDocument
) -> ParsedDocument:
    """Read a PDF again with what clerks' corrections taught about its supplier's layout."""
    if parsed.format is not DetectedFormat.PDF:
        return parsed  # e-invoices are read exactly; only text extraction learns
    supplier = cases.resolve_known_supplier(session, parsed.document)
    row = repository.hint_for(session, supplier.id) if supplier is not None else None
    if row is None or not row.labels:
        return parsed
    try:
        return parser(data, hint=SupplierHint.from_json(json.dumps(row.labels)))
    except (ParseError, ValueError) as exc:  # a stale hint must not cost the document
        log.warning("intake.hint_failed", supplier_id=row.supplier_id, error=str(exc)[:200])
        return parsed


def ingest_bytes(
    session: Session,
    blobs: BlobStore,
    data: bytes,
    *,
    filename: str | None,
    channel: str,
    actor: Actor,
    media_type: str | None = None,
    limits: ParseLimits | None = None,
    policies: CasePolicies | None = None,
    parser: Parser | None = None,
    score: bool | None = None,
) -> IngestOutcome:
    """Store, read, match and open a case; the same bytes twice give the same document.

    `score` (default: the `score_on_ingest` setting) scores the new case with the registered
    models; bulk intake passes False and scores a whole batch at once.
    """
    digest = sha256_hex(data)
    existing = repository.by_sha256(session, digest)
    if existing is not None:
        invoice = repository.invoice_for_document(session, existing.id)
        case = cases.case_for_invoice(session, invoice.id) if invoice else None
        log.info("intake.already_stored", document_id=existing.id, sha256=digest)
        return IngestOutcome(existing, case, created=False)

    document = Document(
        sha256=digest,
        size_bytes=len(data),
        media_type=media_type,
        filename=(filename or "")[-255:] or None,
        storage_path=blobs.put(data, digest),
        intake_channel=channel,
        uploaded_by=actor.name,
        parse_status=ParseStatus.PARSED.value,
    )
    repository.add(session, document)
    try:
        parser = parser or InProcessParser(limits or ParseLimits())
        parsed = parser(data)
    except ParseError as exc:
        document.parse_status = ParseStatus.FAILED.value
        document.parse_error_code = exc.code.value
        document.parse_error_message = exc.message
        session.flush()
        audit.record(
            session,
            actor,
            "document.parse_failed",
            "document",
            document.id,
            after={"code": exc.code.value, "message": exc.message, "filename": filename},
        )
        log.info("intake.parse_failed", document_id=document.id, code=exc.code.value)
        return IngestOutcome(document, None, created=True)

    parsed = reread_with_supplier_hint(session, parser, data, parsed)
    document.detected_format = parsed.format.value
    session.flush()
    policies = policies or CasePolicies()
    assessment = cases.assess(session, parsed.document, policies, document_id=document.id)
    invoice = store_invoice(session, document, parsed.document, assessment, parsed.fields)
    # Audited here rather than on arrival so that this event and the case's are written in one
    # flush: the chain head is then updated once per document.
    audit.record(
        session,
        actor,
        "document.received",
        "document",
        document.id,
        after={"sha256": digest, "format": parsed.format.value, "filename": filename},
    )
    case, codes = cases.open_case(session, invoice, assessment, actor=actor, policies=policies)
    if get_settings().score_on_ingest if score is None else score:
        # Imported on first use: the model stack (LightGBM, scikit-learn) costs over a second
        # to import, which commands that never ingest should not pay.
        from app.scoring import service as scoring

        scoring.score_cases(session, [case.id])
    log.info("intake.case_opened", document_id=document.id, case_id=case.id, reasons=codes)
    return IngestOutcome(document, case, created=True, reasons=codes)


def store_invoice(
    session: Session,
    document: Document,
    doc: SupplierDocument,
    assessment: Assessment,
    extraction: dict[str, Any] | None = None,
) -> InvoiceRow:
    """Keep the canonical document, its indexed header fields and what it was resolved to."""
    totals = doc.totals
    # Credit notes and claims name the invoice they refer to; invoices have no such field.
    billing_reference: str | None = getattr(doc, "billing_reference", None)
    row = InvoiceRow(
        document_id=document.id,
        kind=doc.kind,
        number=doc.number,
        normalised_number=normalise_invoice_number(doc.number) if doc.number else None,
        supplier_id=assessment.supplier.id if assessment.supplier else None,
        purchase_order_id=assessment.purchase_order_id,
        supplier_name=doc.supplier.name,
        supplier_vat_id=doc.supplier.vat_id,
        iban=doc.bank_iban,
        issue_date=doc.issue_date,
        due_date=doc.due_date,
        currency=doc.currency,
        net_total=totals.tax_exclusive,
        tax_total=totals.tax,
        gross_total=doc.gross,
        payable_total=totals.payable,
        po_reference=doc.po_reference,
        billing_reference=(
            normalise_invoice_number(billing_reference) if billing_reference else None
        ),
        canonical=doc.model_dump(mode="json"),
        extraction=extraction,
    )
    repository.add(session, row)
    session.flush()
    return row


def get_document(session: Session, document_id: int) -> Document:
    """A document by id, or NotFound."""
    document = repository.get(session, document_id)
    if document is None:
        raise NotFound(f"document {document_id} does not exist")
    return document
