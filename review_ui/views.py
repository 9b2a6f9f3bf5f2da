"""What the review screens show beyond a case's own data: claims, signatures, outbox, SLA."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from app.blobs import BlobStore
from app.cases import repository as cases_repository
from app.cases.schemas import CaseDetail, CaseSummary
from app.db.base import utcnow
from app.db.tables import Case, CaseState, Document, InvoiceRow, Prediction, User
from app.documents import render
from app.documents import repository as documents_repository
from app.errors import NotFound
from app.reviews import fields as rf
from app.reviews import repository as reviews_repository
from app.reviews import service as reviews
from app.reviews import work
from app.users import repository as users_repository
from governance.signoff import required_signatures

log = structlog.get_logger(__name__)

OPEN_STATES = frozenset(
    {
        CaseState.NEW.value,
        CaseState.TRIAGED.value,
        CaseState.IN_REVIEW.value,
        CaseState.ON_HOLD.value,
    }
)


@dataclass(frozen=True)
class ClaimView:
    """Who holds a live claim on a case, and the claim token if it is the viewer's own."""

    holder: str | None
    until: datetime | None
    mine: bool
    token: str | None


@dataclass(frozen=True)
class SignoffView:
    """Signatures so far against the number governance requires."""

    given: int
    required: int
    signers: tuple[str, ...]


@dataclass(frozen=True)
class OutboxView:
    """The ERP outbox row of an approved case."""

    state: str
    idempotency_key: str
    attempts: int
    last_error: str | None = None


def can_work(user: User) -> bool:
    """True for the roles that claim and decide cases (clerks and approvers)."""
    return user.role in reviews.REVIEW_ROLES and user.active


def sla_badge(state: str, due: datetime | None, now: datetime | None = None) -> str | None:
    """'overdue' or 'due today' for open cases whose SLA is near; None otherwise."""
    if due is None or state not in OPEN_STATES:
        return None
    now = now or utcnow()
    if due <= now:
        return "overdue"
    if due.date() == now.date():
        return "due today"
    return None


def _claim_view(case: Case, viewer: User, names: dict[int, str], now: datetime) -> ClaimView:
    live = (
        case.claimed_by_id is not None
        and case.claim_expires_at is not None
        and case.claim_expires_at > now
    )
    if not live or case.claimed_by_id is None:
        return ClaimView(None, None, False, None)
    mine = case.claimed_by_id == viewer.id
    return ClaimView(
        names.get(case.claimed_by_id, "?"),
        case.claim_expires_at,
        mine,
        case.claim_token if mine else None,
    )


def claims_for(
    session: Session, summaries: Sequence[CaseSummary], viewer: User
) -> dict[int, ClaimView]:
    """Claim holders of the listed cases."""
    rows = [cases_repository.get(session, s.id) for s in summaries]
    cases = [c for c in rows if c is not None]
    holder_ids = sorted({c.claimed_by_id for c in cases if c.claimed_by_id is not None})
    names = {uid: u.username for uid, u in users_repository.by_ids(session, holder_ids).items()}
    now = utcnow()
    return {c.id: _claim_view(c, viewer, names, now) for c in cases}


@dataclass(frozen=True)
class CaseWork:
    """The governed state of one case as the viewer sees it."""

    claim: ClaimView
    signoff: SignoffView
    outbox: OutboxView | None
    claimable: bool


def case_work(session: Session, case_id: int, viewer: User) -> CaseWork:
    """Claim, signatures and outbox of a case, for the case page."""
    case = cases_repository.get(session, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    names: dict[int, str] = {}
    if case.claimed_by_id is not None:
        holder = users_repository.by_id(session, case.claimed_by_id)
        if holder is not None:
            names[holder.id] = holder.username
    now = utcnow()
    claim = _claim_view(case, viewer, names, now)
    facts = reviews.case_facts(session, case)
    signoff = SignoffView(
        given=len(facts.signatures),
        required=required_signatures(facts),
        signers=tuple(name for name, _role in facts.signatures),
    )
    posting = reviews_repository.posting_for(session, case.id)
    outbox = (
        OutboxView(posting.state, posting.idempotency_key, posting.attempts, posting.last_error)
        if posting
        else None
    )
    claimable = case.state in OPEN_STATES and (claim.holder is None or claim.mine)
    return CaseWork(claim, signoff, outbox, claimable)


# -- the case page beyond the governed state ---------------------------------------------------


@dataclass(frozen=True)
class FieldView:
    """One header field: its value, how sure extraction was, and where it was read."""

    name: str
    label: str
    value: str | None
    confidence: float | None
    low: bool
    source: str
    corrected_by: str | None


@dataclass(frozen=True)
class PredictionView:
    """The latest output of one model family on a case."""

    family: str
    model: str
    version: str
    created_at: datetime
    rows: list[tuple[str, str]]  # what the model says, as label -> value
    probabilities: list[tuple[str, float]]
    predicted: list[str]
    explanation: list[dict[str, Any]]
    flagged: bool


@dataclass(frozen=True)
class DecisionView:
    """One decision in the case's history."""

    at: datetime
    who: str
    role: str
    action: str
    reason: str | None
    feedback: str | None
    superseded: bool
    details: dict[str, Any]


@dataclass(frozen=True)
class MatchRowView:
    """One match-table row and the reasons raised on its line (to highlight cells)."""

    line: Any
    codes: frozenset[str]
    variances: list[str]


@dataclass(frozen=True)
class CasePage:
    """What the case page shows besides the case itself."""

    fields: list[FieldView]
    extracted: bool
    pdf_pages: int
    einvoice: dict[str, Any] | None
    predictions: list[PredictionView]
    similar: list[dict[str, Any]] | None
    decisions: list[DecisionView]
    match_rows: list[MatchRowView]
    hold_draft: str
    reassign_to: list[str]
    model_reasons: list[str] | None


# Which match-table cell a finding on that line is about.
CELL_OF = {
    "PRICE_VARIANCE": "price",
    "QTY_OVER_ORDERED": "ordered",
    "QTY_OVER_RECEIVED": "received",
    "NO_RECEIPT": "received",
    "UOM_MISMATCH": "uom",
    "TAX_MISMATCH": "invoiced",
}


def _fields(invoice: InvoiceRow) -> list[FieldView]:
    extraction = invoice.extraction or {}
    out = []
    for name, spec in rf.SPECS.items():
        found = extraction.get(name) or {}
        confidence = found.get("confidence")
        if invoice.extraction is None:
            source = "e-invoice data"
        elif found:
            page = found.get("page")
            where = f"page {page}" if page else "the text"
            label = found.get("label")
            source = f"{where}, after “{label}”" if label else f"{where}: “{found.get('span', '')}”"
        else:
            source = "not found in the PDF"
        out.append(
            FieldView(
                name=name,
                label=spec.label,
                value=rf.read(invoice.canonical, name),
                confidence=float(confidence) if confidence is not None else None,
                low=invoice.extraction is not None
                and (confidence is None or float(confidence) < rf.LOW_CONFIDENCE),
                source=source,
                corrected_by=found.get("corrected_by"),
            )
        )
    return out


def _number(value: Any) -> str:
    return f"{value * 100:.1f} %" if isinstance(value, float) and 0 <= value <= 1 else str(value)


def _predictions(rows: Sequence[Prediction]) -> list[PredictionView]:
    latest: dict[str, Prediction] = {}
    for row in rows:
        latest[row.family] = row  # oldest first: the last one of a family wins
    out = []
    for family in sorted(latest, key=lambda f: ("reason", "anomaly", "delay", f).index(f)):
        p = latest[family]
        output = p.output or {}
        probabilities: list[tuple[str, float]] = []
        predicted: list[str] = []
        rows_: list[tuple[str, str]] = []
        flagged = False
        if family == "reason":
            probs = output.get("probabilities") or {}
            probabilities = sorted(
                ((str(k), float(v)) for k, v in probs.items()), key=lambda kv: -kv[1]
            )[:6]
            raw = output.get("predicted")
            predicted = [raw] if isinstance(raw, str) else [str(c) for c in raw or []]
        elif family == "anomaly":
            dup = output.get("duplicate_probability")
            if dup is not None:
                rows_.append(("duplicate probability", _number(float(dup))))
                flagged = float(dup) >= 0.5
            if output.get("duplicate_of") is not None:
                rows_.append(("looks like a duplicate of", f"case {output['duplicate_of']}"))
            if output.get("anomaly_score") is not None:
                rows_.append(("anomaly score", f"{float(output['anomaly_score']):.3f}"))
        elif family == "delay":
            if output.get("p50_hours") is not None:
                rows_.append(("median time to approve", f"{float(output['p50_hours']):.1f} h"))
            if output.get("p90_hours") is not None:
                rows_.append(("90th percentile", f"{float(output['p90_hours']):.1f} h"))
            if output.get("p_sla_breach") is not None:
                rows_.append(("SLA breach probability", _number(float(output["p_sla_breach"]))))
                flagged = float(output["p_sla_breach"]) >= 0.5
        else:
            rows_ = [(str(k), _number(v)) for k, v in output.items()][:8]
        explanation = [e for e in (p.explanation or []) if isinstance(e, dict)][:5]
        out.append(
            PredictionView(
                family=family,
                model=p.model_name,
                version=p.model_version,
                created_at=p.created_at,
                rows=rows_,
                probabilities=probabilities,
                predicted=predicted,
                explanation=explanation,
                flagged=flagged,
            )
        )
    return out


def _plain(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return item
    if hasattr(item, "model_dump"):
        return dict(item.model_dump())
    if is_dataclass(item) and not isinstance(item, type):
        return asdict(item)
    return {"value": str(item)}


def similar_cases(session: Session, case_id: int, k: int = 5) -> list[dict[str, Any]] | None:
    """Past cases like this one (None when they cannot be computed just now)."""
    # Imported here: the scoring stack (LightGBM, MiniLM) is heavy and the other pages do not
    # need it.
    from app.scoring import service as scoring

    try:
        return [_plain(item) for item in scoring.similar_cases(session, case_id, k)]
    except Exception as exc:  # a convenience: the case page must render without it
        log.warning("case_page.similar_failed", case_id=case_id, error=str(exc)[:200])
        return None


def _match_rows(detail: CaseDetail) -> list[MatchRowView]:
    out = []
    for m in detail.match_lines:
        on_line = [f for f in detail.findings if f.line_id and f.line_id == m.line_id]
        variances = [
            f"{f.code.value}: {f.variance:f}{' ' + f.unit if f.unit else ''}"
            for f in on_line
            if f.variance is not None
        ]
        out.append(MatchRowView(m, frozenset(f.code.value for f in on_line), variances))
    return out


def _einvoice(invoice: InvoiceRow, document: Document) -> dict[str, Any] | None:
    # A PDF read from its text has only a header: the fields table shows it all.
    if document.detected_format == "pdf":
        return None
    return invoice.canonical


def case_page(session: Session, blobs: BlobStore, detail: CaseDetail, viewer: User) -> CasePage:
    """The document, extracted fields, model outputs, similar cases and decisions of a case."""
    invoice = documents_repository.get_invoice(session, detail.invoice.id)
    assert invoice is not None
    document = documents_repository.get(session, invoice.document_id)
    assert document is not None
    pdf_pages = 0
    if document.detected_format in ("pdf", "facturx_pdf"):
        try:
            pdf_pages = render.viewable_pages(blobs.read(document.storage_path))
        except OSError:
            pdf_pages = 0  # the blob is missing: the page says so instead of failing
    decisions = reviews_repository.decisions_for(session, detail.id)
    names = {
        uid: u.username
        for uid, u in users_repository.by_ids(
            session, sorted({d.user_id for d in decisions})
        ).items()
    }
    model = work.model_reasons(session, detail.id)
    return CasePage(
        fields=_fields(invoice),
        extracted=invoice.extraction is not None,
        pdf_pages=pdf_pages,
        einvoice=_einvoice(invoice, document),
        predictions=_predictions(reviews_repository.predictions_for(session, detail.id)),
        similar=similar_cases(session, detail.id),
        decisions=[
            DecisionView(
                at=d.created_at,
                who=names.get(d.user_id, "?"),
                role=d.role,
                action=d.action,
                reason=d.reason,
                feedback=d.feedback_kind,
                superseded=d.superseded,
                details=d.details or {},
            )
            for d in decisions
        ],
        match_rows=_match_rows(detail),
        hold_draft=work.supplier_message(
            detail.findings, detail.invoice.number, detail.invoice.issue_date
        ),
        reassign_to=[u.username for u in work.reassign_candidates(session, viewer)],
        model_reasons=sorted(model[0]) if model else None,
    )


def page_png(session: Session, blobs: BlobStore, case_id: int, page: int) -> bytes:
    """One page of a case's PDF as PNG (rendered once, then served from the cache)."""
    case = cases_repository.get(session, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    invoice = documents_repository.get_invoice(session, case.invoice_id)
    assert invoice is not None
    document = documents_repository.get(session, invoice.document_id)
    assert document is not None
    if document.detected_format not in ("pdf", "facturx_pdf"):
        raise NotFound(f"case {case_id}'s document is not a PDF")
    return render.render_page(blobs, document.storage_path, document.sha256, page)
