"""Cases: resolve the supplier and PO, match, store findings, route, and read cases back."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar, cast

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from app.audit import repository as audit_repository
from app.audit import service as audit
from app.audit.service import Actor
from app.cases import repository
from app.cases.repository import CaseFilter
from app.cases.schemas import (
    AuditEventOut,
    CaseDetail,
    CasePage,
    CaseSummary,
    FindingOut,
    InvoiceHeader,
    MatchLineOut,
    SupplierRef,
)
from app.db.base import utcnow
from app.db.tables import Case, CaseState, InvoiceRow, PurchaseOrderRow, Supplier
from app.documents import repository as documents_repository
from app.errors import NotFound
from app.masterdata import repository as masterdata
from app.masterdata.service import to_canonical_po, to_canonical_receipts
from governance.routing import DEFAULT_ROUTING, RoutingPolicy, route_case
from governance.tolerances import DEFAULT_POLICY, TolerancePolicy
from pipelines.canonical import (
    AnySupplierDocument,
    Claim,
    CreditNote,
    GoodsReceipt,
    Invoice,
    PurchaseOrder,
    SupplierDocument,
)
from pipelines.findings import Finding
from pipelines.matching import (
    LineMatch,
    MatchContext,
    MatchResult,
    PriorDocument,
    SupplierRecord,
    match_document,
)
from pipelines.normalise import (
    normalise_iban,
    normalise_invoice_number,
    normalise_po_reference,
    normalise_vat_id,
)
from pipelines.reasons import ReasonCode
from pipelines.resolve import SupplierCandidate, resolve_supplier

T = TypeVar("T")

DOCUMENT_ADAPTER: TypeAdapter[Invoice | CreditNote | Claim] = TypeAdapter(AnySupplierDocument)


@dataclass(frozen=True)
class CasePolicies:
    """The policies a case is opened under (tolerances, routing)."""

    tolerances: TolerancePolicy = field(default_factory=lambda: DEFAULT_POLICY)
    routing: RoutingPolicy = field(default_factory=lambda: DEFAULT_ROUTING)


@dataclass(frozen=True)
class KnownSupplier:
    """A master-data supplier as matching reads it."""

    id: int
    ref: str
    record: SupplierRecord


@dataclass(frozen=True)
class KnownOrder:
    """A stored PO, in canonical form with its receipts, as matching reads it."""

    id: int
    order: PurchaseOrder
    receipts: tuple[GoodsReceipt, ...]


class MasterCache(Protocol):
    """A cache of master-data reads valid beyond one transaction (app.scoring.inputs.CacheView)."""

    def get(self, kind: str, item: Hashable) -> Any:
        """The cached value, or None."""

    def put(self, kind: str, item: Hashable, value: Any) -> None:
        """Remember a value."""


@dataclass(frozen=True)
class Assessment:
    """What resolution and matching found for a document, before anything is stored."""

    supplier: KnownSupplier | None
    purchase_order_id: int | None
    result: MatchResult


def _known(supplier: Supplier) -> KnownSupplier:
    return KnownSupplier(
        supplier.id,
        supplier.ref,
        SupplierRecord(
            ref=supplier.ref,
            name=supplier.name,
            vat_id=supplier.vat_id,
            ibans=tuple(a.iban for a in supplier.bank_accounts),
            blocked=supplier.blocked,
        ),
    )


def resolve_known_supplier(session: Session, doc: SupplierDocument) -> KnownSupplier | None:
    """The master-data supplier of a document, by VAT id, IBAN or a name its VAT id allows."""
    vat = normalise_vat_id(doc.supplier.vat_id) if doc.supplier.vat_id else None
    iban = normalise_iban(doc.bank_iban) if doc.bank_iban else None
    # VAT id first: one indexed lookup settles almost every e-invoice.
    for found_by in ((vat, None), (None, iban)):
        if not any(found_by):
            continue
        exact: Sequence[Supplier] = masterdata.memo(
            session,
            ("suppliers", *found_by),
            functools.partial(masterdata.suppliers_by_vat_or_iban, session, *found_by),
        )
        candidates = [
            SupplierCandidate(s.ref, s.name, s.vat_id, tuple(a.iban for a in s.bank_accounts))
            for s in exact
        ]
        found = resolve_supplier(vat, iban, doc.supplier, candidates) if exact else None
        if found is not None:
            return _known(next(s for s in exact if s.ref == found.ref))
    names = masterdata.memo(session, ("names",), lambda: masterdata.supplier_names(session))
    candidates = [SupplierCandidate(ref=ref, name=name) for _, ref, name in names]
    found = resolve_supplier(None, None, doc.supplier, candidates)
    supplier = masterdata.supplier_by_ref(session, found.ref) if found else None
    if (
        supplier is not None
        and vat
        and supplier.vat_id
        and normalise_vat_id(supplier.vat_id) != vat
    ):
        # A VAT id names a legal entity: a namesake that states another VAT id is another
        # business, and a wrong supplier is worse than none (VENDOR_UNKNOWN goes to a clerk).
        # An unknown IBAN does not veto a name: that is a known supplier's new bank account.
        return None
    return _known(supplier) if supplier is not None else None


def _prior_documents(
    session: Session, supplier_id: int, doc: SupplierDocument, before_invoice_id: int | None
) -> list[PriorDocument]:
    numbers = []
    if doc.number:
        numbers.append(normalise_invoice_number(doc.number))
    billing_reference = getattr(doc, "billing_reference", None)
    if billing_reference:
        numbers.append(normalise_invoice_number(billing_reference))
    rows: dict[int, InvoiceRow] = {}
    if numbers:
        for row in documents_repository.supplier_invoices_by_numbers(
            session, supplier_id, numbers, before_invoice_id
        ):
            rows[row.id] = row
    if billing_reference:
        for row in documents_repository.supplier_credits_for(
            session, supplier_id, normalise_invoice_number(billing_reference), before_invoice_id
        ):
            rows[row.id] = row
    return [
        PriorDocument(
            document_id=str(row.document_id),
            kind=row.kind,
            number=row.number,
            normalised_number=row.normalised_number,
            issue_date=row.issue_date,
            gross=row.gross_total,
            currency=row.currency,
            billing_reference=row.billing_reference,
        )
        for row in rows.values()
    ]


def _known_order(session: Session, reference: str) -> KnownOrder | None:
    row: PurchaseOrderRow | None = masterdata.memo(
        session,
        ("po", reference),
        lambda: (
            masterdata.po_by_number(session, reference)
            or masterdata.po_by_number(session, normalise_po_reference(reference))
        ),
    )
    if row is None:
        return None
    po_id, supplier_id = row.id, row.supplier_id
    supplier = masterdata.memo(
        session, ("supplier", supplier_id), lambda: masterdata.supplier_by_id(session, supplier_id)
    )
    receipts = masterdata.memo(
        session, ("receipts", po_id), lambda: masterdata.receipts_for_po(session, po_id)
    )
    return KnownOrder(
        po_id,
        to_canonical_po(row, supplier.ref if supplier else ""),
        tuple(
            to_canonical_receipts(
                receipts, row.number, {line.id: line.line_no for line in row.lines}
            )
        ),
    )


def _through(cache: MasterCache | None, kind: str, key: Hashable, read: Callable[[], T]) -> T:
    """`read()`, or what the cache holds for it (None results included)."""
    if cache is not None and (held := cache.get(kind, key)) is not None:
        return cast(T, held[0])
    value = read()
    if cache is not None:
        cache.put(kind, key, (value,))
    return value


def assess(
    session: Session,
    doc: SupplierDocument,
    policies: CasePolicies,
    *,
    document_id: int | None = None,
    existing: tuple[int, int] | None = None,
    cache: MasterCache | None = None,
) -> Assessment:
    """Resolve supplier and PO, gather receipts and history, and run the 3-way match.

    `existing` is (invoice id, case id) when a stored case is matched again: only what came
    before it counts as billed before or as an earlier duplicate. `cache` keeps the supplier
    and PO reads across transactions (scoring); what was billed and earlier documents are
    always read.
    """
    before_invoice, before_case = existing if existing else (None, None)
    supplier = _through(
        cache,
        "assess_supplier",
        (doc.supplier.vat_id, doc.bank_iban, doc.supplier.name),
        lambda: resolve_known_supplier(session, doc),
    )
    reference = doc.po_reference
    order = (
        _through(cache, "assess_order", reference, lambda: _known_order(session, reference))
        if reference
        else None
    )
    billed_qty: dict[str, Decimal] = {}
    billed_amount = Decimal(0)
    if order is not None:
        billed_qty, billed_amount = repository.billed_on_po(session, order.id, before_case)
    ctx = MatchContext(
        supplier=supplier.record if supplier else None,
        po=order.order if order else None,
        receipts=list(order.receipts) if order else [],
        already_invoiced_qty=billed_qty,
        already_invoiced_amount=billed_amount,
        prior_documents=(
            _prior_documents(session, supplier.id, doc, before_invoice) if supplier else []
        ),
        duplicate_window_days=policies.tolerances.duplicate_window_days,
        document_id=str(document_id) if document_id is not None else None,
    )
    return Assessment(
        supplier=supplier,
        purchase_order_id=order.id if order else None,
        result=match_document(doc, ctx, policies.tolerances),
    )


def _finding_values(case_id: int, f: Finding) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "code": f.code.value,
        "severity": f.severity.value,
        "message": f.message,
        "line_id": f.line_id,
        "po_line_no": f.po_line_no,
        "expected": f.expected,
        "actual": f.actual,
        "variance": f.variance,
        "unit": f.unit,
        "tolerance": f.tolerance.model_dump(mode="json") if f.tolerance else None,
        "rule_id": f.rule_id,
        "details": dict(f.details),
        "source": "rules",
        "created_at": utcnow(),
    }


def _match_line_values(case_id: int, po_id: int | None, line: LineMatch) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "purchase_order_id": po_id,
        "line_id": line.line_id,
        "po_line_no": line.po_line_no,
        "kind": str(line.kind),
        "status": line.status,
        "invoiced_qty": line.invoiced_qty,
        "invoiced_unit_price": line.invoiced_unit_price,
        "ordered_qty": line.ordered_qty,
        "received_qty": line.received_qty,
        "previously_invoiced_qty": line.previously_invoiced_qty,
        "uom_factor": line.uom_factor,
    }


def _store_results(session: Session, case_id: int, po_id: int | None, result: MatchResult) -> None:
    repository.add_findings(session, [_finding_values(case_id, f) for f in result.findings])
    repository.add_match_lines(
        session, [_match_line_values(case_id, po_id, line) for line in result.lines]
    )


def open_case(
    session: Session,
    invoice: InvoiceRow,
    assessment: Assessment,
    *,
    actor: Actor,
    policies: CasePolicies | None = None,
    now: datetime | None = None,
) -> tuple[Case, list[str]]:
    """Store the case of an assessed invoice with its findings, and route it (new -> triaged)."""
    policies = policies or CasePolicies()
    now = now or utcnow()
    result = assessment.result
    codes = sorted({f.code for f in result.findings})
    route = route_case(codes, invoice.gross_total, invoice.due_date, now, policies.routing)
    # Routing needs nothing the database assigns, so the case is written once, already
    # triaged; the audit log still records both steps of new -> triaged.
    case = Case(
        invoice_id=invoice.id,
        supplier_id=assessment.supplier.id if assessment.supplier else None,
        state=CaseState.TRIAGED.value,
        match_type=result.match_type,
        queue=route.queue,
        priority=route.priority,
        sla_due_at=route.sla_due_at,
        required_signatures=route.required_signatures,
    )
    repository.add(session, case)
    session.flush()
    _store_results(session, case.id, invoice.purchase_order_id, result)
    audit.record(
        session,
        actor,
        "case.created",
        "case",
        case.id,
        after={
            "state": CaseState.NEW.value,
            "invoice_id": invoice.id,
            "reasons": codes,
            "match_type": result.match_type,
        },
    )
    audit.record(
        session,
        actor,
        "case.triaged",
        "case",
        case.id,
        before={"state": CaseState.NEW.value},
        after={
            "state": case.state,
            "queue": route.queue,
            "priority": route.priority,
            "sla_due_at": route.sla_due_at,
            "required_signatures": route.required_signatures,
        },
    )
    session.flush()
    return case, [c.value for c in codes]


def case_for_invoice(session: Session, invoice_id: int) -> Case | None:
    """The case of an invoice, if one was opened."""
    return repository.by_invoice(session, invoice_id)


def _summaries(session: Session, cases: Sequence[Case]) -> list[CaseSummary]:
    ids = [c.id for c in cases]
    invoices = repository.invoices_by_ids(session, [c.invoice_id for c in cases])
    suppliers = repository.suppliers_by_ids(
        session, [c.supplier_id for c in cases if c.supplier_id is not None]
    )
    reasons: dict[int, set[ReasonCode]] = {i: set() for i in ids}
    for f in repository.findings_for(session, ids):
        reasons[f.case_id].add(ReasonCode(f.code))
    out = []
    for case in cases:
        inv = invoices[case.invoice_id]
        sup = suppliers.get(case.supplier_id) if case.supplier_id is not None else None
        out.append(
            CaseSummary(
                id=case.id,
                state=case.state,
                queue=case.queue,
                priority=case.priority,
                sla_due_at=case.sla_due_at,
                match_type=case.match_type,
                required_signatures=case.required_signatures,
                reasons=sorted(reasons[case.id]),
                supplier=SupplierRef(id=sup.id, ref=sup.ref, name=sup.name) if sup else None,
                invoice=InvoiceHeader.model_validate(inv, from_attributes=True),
                document_id=inv.document_id,
                created_at=case.created_at,
                version=case.version,
            )
        )
    return out


def list_cases(session: Session, flt: CaseFilter, page: int, page_size: int) -> CasePage:
    """A page of cases, most urgent first."""
    rows, total = repository.list_cases(session, flt, (page - 1) * page_size, page_size)
    return CasePage(
        items=_summaries(session, rows),
        total=total,
        page=page,
        page_size=page_size,
        pages=max(1, math.ceil(total / page_size)),
    )


def get_case(session: Session, case_id: int) -> CaseDetail:
    """Everything about one case, or NotFound."""
    case = repository.get(session, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    summary = _summaries(session, [case])[0]
    invoice = documents_repository.get_invoice(session, case.invoice_id)
    assert invoice is not None
    document = documents_repository.get(session, invoice.document_id)
    assert document is not None
    return CaseDetail(
        **summary.model_dump(),
        findings=[
            FindingOut.model_validate(f, from_attributes=True)
            for f in repository.findings_for(session, [case.id])
        ],
        match_lines=[
            MatchLineOut.model_validate(m, from_attributes=True)
            for m in repository.match_lines_for(session, case.id)
        ],
        document={
            "id": document.id,
            "sha256": document.sha256,
            "filename": document.filename,
            "format": document.detected_format,
            "size_bytes": document.size_bytes,
            "received_at": document.received_at.isoformat(),
        },
        canonical=invoice.canonical,
        history=[
            AuditEventOut.model_validate(e, from_attributes=True)
            for e in audit_repository.events_for(session, "case", str(case.id))
        ],
    )


def _record_rematch(
    session: Session,
    case: Case,
    invoice: InvoiceRow,
    assessment: Assessment,
    before: list[str],
    after: list[str],
    actor: Actor,
    policies: CasePolicies,
) -> None:
    """Replace a case's rule results with a new assessment, route it again, and audit that."""
    repository.delete_rule_results(session, case.id)
    _store_results(session, case.id, invoice.purchase_order_id, assessment.result)
    route = route_case(
        [ReasonCode(c) for c in after],
        invoice.gross_total,
        invoice.due_date,
        utcnow(),
        policies.routing,
    )
    old = {"state": case.state, "queue": case.queue, "reasons": before}
    case.queue, case.priority = route.queue, route.priority
    case.required_signatures, case.match_type = (
        route.required_signatures,
        assessment.result.match_type,
    )
    audit.record(
        session,
        actor,
        "case.rematched",
        "case",
        case.id,
        before=old,
        after={"state": case.state, "queue": case.queue, "reasons": after},
    )


def rematch_for_purchase_orders(
    session: Session,
    po_numbers: Sequence[str],
    *,
    actor: Actor,
    policies: CasePolicies | None = None,
) -> list[tuple[int, list[str], list[str]]]:
    """Match undecided cases on these POs again (a receipt arrived); return what changed.

    Each entry is (case id, reasons before, reasons after) for cases whose reasons changed.
    """
    policies = policies or CasePolicies()
    po_ids = [
        row.id for n in po_numbers if (row := masterdata.po_by_number(session, n)) is not None
    ]
    changed = []
    for case in repository.open_cases_on_pos(session, po_ids):
        invoice = documents_repository.get_invoice(session, case.invoice_id)
        assert invoice is not None
        doc = DOCUMENT_ADAPTER.validate_python(invoice.canonical)
        before = sorted({f.code for f in repository.findings_for(session, [case.id])})
        assessment = assess(
            session,
            doc,
            policies,
            document_id=invoice.document_id,
            existing=(invoice.id, case.id),
        )
        after = sorted({f.code.value for f in assessment.result.findings})
        if after == before:
            continue
        _record_rematch(session, case, invoice, assessment, before, after, actor, policies)
        changed.append((case.id, before, after))
    session.flush()
    return changed


def findings_by_case(session: Session, case_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """The findings of many cases as plain records (for exports and model training)."""
    out: dict[int, list[dict[str, Any]]] = {case_id: [] for case_id in case_ids}
    for start in range(0, len(case_ids), 500):
        for row in repository.findings_for(session, case_ids[start : start + 500]):
            out[row.case_id].append(
                {
                    "code": row.code,
                    "severity": row.severity,
                    "line_id": row.line_id,
                    "po_line_no": row.po_line_no,
                    "expected": None if row.expected is None else str(row.expected),
                    "actual": None if row.actual is None else str(row.actual),
                    "variance": None if row.variance is None else str(row.variance),
                    "unit": row.unit,
                    "rule_id": row.rule_id,
                    "tolerance": row.tolerance,
                    "details": row.details,
                }
            )
    return out


def rematch_case(
    session: Session,
    case: Case,
    invoice: InvoiceRow,
    *,
    actor: Actor,
    policies: CasePolicies | None = None,
) -> tuple[list[str], list[str]]:
    """Resolve and match one case again after its invoice was corrected; (before, after) reasons.

    The supplier and PO are resolved afresh too: a corrected VAT id or PO reference may change
    them.
    """
    policies = policies or CasePolicies()
    doc = DOCUMENT_ADAPTER.validate_python(invoice.canonical)
    before = sorted({f.code for f in repository.findings_for(session, [case.id])})
    assessment = assess(
        session, doc, policies, document_id=invoice.document_id, existing=(invoice.id, case.id)
    )
    after = sorted({f.code.value for f in assessment.result.findings})
    invoice.supplier_id = assessment.supplier.id if assessment.supplier else None
    invoice.purchase_order_id = assessment.purchase_order_id
    case.supplier_id = invoice.supplier_id
    _record_rematch(session, case, invoice, assessment, before, after, actor, policies)
    session.flush()
    return before, after
