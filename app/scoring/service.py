"""Score cases with the registered models, store one prediction per family, find similar cases.

A case is scored from what the database knows at that point: its document and rule findings,
its supplier's earlier documents (in arrival order, capped), the supplier's POs and the PO's
receipts, and its place in the queue. Scoring never costs a case: a failure is logged and
audited (`case.scoring_failed`) and the case stays as routed.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, cast

import structlog
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.cases.service import DOCUMENT_ADAPTER, Assessment, CasePolicies, assess
from app.db.base import AFTER_EVERY_ROW, utcnow
from app.db.tables import Case, FindingRow, InvoiceRow, Prediction
from app.documents.parsing import Parser
from app.documents.service import reread_with_supplier_hint
from app.errors import InvalidInput, NotFound
from app.masterdata.service import to_canonical_po, to_canonical_receipts
from app.promotions.service import ALL, kill_switch_states
from app.scoring import repository
from app.scoring.batcher import BATCHER
from app.scoring.inputs import INPUTS, CacheView
from app.scoring.provider import get_provider
from app.settings import get_settings
from governance.routing import Route, route_case
from models.features import CaseInput, MasterData, RuleFinding
from models.registry import FAMILIES
from models.scoring import (
    CaseScorer,
    DelayContext,
    FamilyScore,
    HistoryIndex,
    PriorDocument,
    ScoreBatch,
    ScoreItem,
    features_of,
    nearest,
    similarity_vectors,
)
from pipelines.canonical import GoodsReceipt, PurchaseOrder, SupplierDocument
from pipelines.findings import Finding
from pipelines.parsers import DetectedFormat, ParsedDocument, detect_format
from pipelines.parsers.errors import ParseError, ParseErrorCode
from pipelines.reasons import ReasonCode

log = structlog.get_logger(__name__)

SYSTEM = Actor("scoring", "system")
PO_CAP = 50  # latest POs of the same items read for price history (a median needs few)
SIMILAR_POOL = 500  # resolved cases compared against


def document_ref(document_id: int) -> str:
    """How a document is named in model outputs (duplicate candidates)."""
    return f"document:{document_id}"


def _finding(row: FindingRow) -> RuleFinding:
    tolerance = row.tolerance or {}
    allowed = tolerance.get("allowed") if isinstance(tolerance, dict) else None
    return RuleFinding(
        code=ReasonCode(row.code),
        expected=row.expected,
        actual=row.actual,
        variance=row.variance,
        allowed=None if allowed in (None, "") else Decimal(str(allowed)),
        line_id=row.line_id,
    )


def _document(invoice: InvoiceRow) -> SupplierDocument:
    return DOCUMENT_ADAPTER.validate_python(invoice.canonical)


@dataclass(frozen=True)
class _Order:
    """A stored PO as scoring reads it: canonical, its company, its line ids' numbers."""

    order: PurchaseOrder
    company: str | None
    line_numbers: dict[int, str]


def _supplier_refs(session: Session, view: CacheView, ids: Iterable[int]) -> dict[int, str]:
    refs, missing = view.split("supplier_ref", set(ids))
    for supplier_id, supplier in repository.suppliers(session, sorted(missing)).items():
        refs[supplier_id] = supplier.ref
        view.put("supplier_ref", supplier_id, supplier.ref)
    return refs


def _orders(session: Session, view: CacheView, po_ids: Sequence[int]) -> dict[int, _Order]:
    found, missing = view.split("order", po_ids)
    rows = repository.pos_with_lines(session, missing)
    refs = _supplier_refs(session, view, (r.supplier_id for r in rows))
    for row in rows:
        order = _Order(
            to_canonical_po(row, refs.get(row.supplier_id, "")),
            row.company,
            {line.id: line.line_no for line in row.lines},
        )
        view.put("order", row.id, order)
        found[row.id] = order
    return found


def _receipts(session: Session, view: CacheView, orders: dict[int, _Order]) -> list[GoodsReceipt]:
    found, missing = view.split("receipts", orders)
    out: list[GoodsReceipt] = [r for receipts in found.values() for r in receipts]
    rows = repository.receipts_for_pos(session, missing)
    for po_id in missing:
        order = orders[po_id]
        receipts = to_canonical_receipts(
            [r for r in rows if r.purchase_order_id == po_id],
            order.order.number,
            order.line_numbers,
        )
        view.put("receipts", po_id, receipts)
        out += receipts
    return out


def _master(
    session: Session, view: CacheView, po_ids: Sequence[int]
) -> tuple[MasterData, dict[int, _Order]]:
    """The documents' POs with receipts, and other POs of their items (for price history).

    Kept in the input cache per set of POs: the same master data (and its unit-price index)
    serves every request for those POs until master data changes.
    """
    key = tuple(po_ids)
    cached = view.get("master", key)
    if cached is not None:
        return cast(tuple[MasterData, dict[int, _Order]], cached)
    targets = _orders(session, view, po_ids)
    items = tuple(
        sorted({ln.item_id for o in targets.values() for ln in o.order.lines if ln.item_id})
    )
    related = view.get("item_orders", items)
    if related is None:
        related = repository.po_ids_for_items(session, items, PO_CAP)
        view.put("item_orders", items, related)
    orders = {**_orders(session, view, [i for i in related if i not in targets]), **targets}
    master = MasterData.of(
        [orders[i].order for i in sorted(orders)], _receipts(session, view, targets)
    )
    view.put("master", key, (master, targets))
    return master, targets


HistoryKey = tuple[int, int | None]  # (invoice id, case id)


def _history_keys(
    session: Session, first: dict[int, int], exclude: set[int], cap: int
) -> list[HistoryKey]:
    """Each supplier's documents before its first one being scored, capped, in arrival order."""
    keys: list[HistoryKey] = []
    for supplier_id, before in first.items():
        keys += repository.earlier_invoice_keys(session, supplier_id, before, cap)
    return sorted(k for k in keys if k[0] not in exclude)


def _history(session: Session, view: CacheView, keys: Sequence[HistoryKey]) -> list[PriorDocument]:
    """The documents of `keys` as scoring inputs, from the cache where it has them."""
    found, missing = view.split("document", keys)
    if missing:
        rows = repository.invoices_by_ids(session, [invoice_id for invoice_id, _ in missing])
        findings = repository.findings_for(session, [c for _, c in missing if c is not None])
        refs = _supplier_refs(
            session, view, (r.supplier_id for r in rows.values() if r.supplier_id)
        )
        for key in missing:
            row, case_id = rows[key[0]], key[1]
            prior = PriorDocument(
                document_ref(row.document_id),
                CaseInput(
                    _document(row),
                    [_finding(f) for f in findings.get(case_id, [])] if case_id else [],
                    refs.get(row.supplier_id) if row.supplier_id else None,
                ),
            )
            view.put("document", key, prior)
            found[key] = prior
    return [found[k] for k in keys]


def build_batch(
    session: Session, case_ids: Sequence[int], history_cap: int
) -> tuple[ScoreBatch, list[int]]:
    """The scoring inputs of cases and their ids, read from the database, in arrival order."""
    view = INPUTS.view(session)
    targets = repository.cases_with_invoices(session, case_ids)
    refs = _supplier_refs(session, view, (i.supplier_id for _, i, _ in targets if i.supplier_id))
    first: dict[int, int] = {}
    for _, invoice, _ in targets:
        if invoice.supplier_id is not None:
            first.setdefault(invoice.supplier_id, invoice.id)
    keys = _history_keys(session, first, {i.id for _, i, _ in targets}, history_cap)
    history = _history(session, view, keys)
    findings = repository.findings_for(session, [c.id for c, _, _ in targets])
    po_ids = sorted({i.purchase_order_id for _, i, _ in targets if i.purchase_order_id})
    master, orders = _master(session, view, po_ids)
    queues = sorted({c.queue for c, _, _ in targets if c.queue})
    waiting = repository.open_case_ids_in_queues(session, queues)
    items = []
    for case, invoice, document in targets:
        po = orders.get(invoice.purchase_order_id) if invoice.purchase_order_id else None
        sla = (
            (case.sla_due_at - case.created_at).total_seconds() / 3600
            if case.sla_due_at is not None and case.created_at is not None
            else None
        )
        items.append(
            ScoreItem(
                document_ref(document.id),
                CaseInput(
                    _document(invoice),
                    [_finding(f) for f in findings[case.id]],
                    refs.get(invoice.supplier_id) if invoice.supplier_id else None,
                ),
                DelayContext(
                    queue=case.queue,
                    # Open cases created before this one: the queue ahead of it at intake.
                    queue_load=bisect.bisect_left(waiting.get(case.queue or "", []), case.id)
                    if case.queue
                    else None,
                    received_at=document.received_at,
                    sla_hours=round(sla, 2) if sla is not None else None,
                    company=po.company if po is not None else None,
                ),
            )
        )
    return ScoreBatch(master, history, items), [c.id for c, _, _ in targets]


@dataclass(frozen=True)
class DocumentScore:
    """What scoring says about a document that is not (yet) a case."""

    findings: list[Finding]
    supplier_ref: str | None
    queue: str
    scores: list[FamilyScore]


def score_documents(
    session: Session,
    documents: Sequence[SupplierDocument],
    *,
    scorer: CaseScorer | None,
    history_cap: int,
    policies: CasePolicies | None = None,
) -> list[DocumentScore]:
    """Match and score documents against the database without storing anything.

    The documents are scored in the order given, after the suppliers' stored documents; a
    later document of the same supplier sees the earlier ones, so a re-send inside one batch
    is named as a duplicate candidate of its original (`request:<index>`).
    """
    policies = policies or CasePolicies()
    now = utcnow()
    view = INPUTS.view(session)
    assessed = [assess(session, doc, policies, cache=view) for doc in documents]
    codes = [sorted({f.code for f in a.result.findings}) for a in assessed]
    routes = [
        route_case(c, doc.gross, doc.due_date, now, policies.routing)
        for c, doc in zip(codes, documents, strict=True)
    ]
    off = disabled_families(session, view)
    if off >= set(FAMILIES):
        scorer = None  # the kill switch: people decide without model outputs
    scored = None
    if scorer is not None:  # else no registered model: the rules' findings alone
        batch = _request_batch(session, view, documents, assessed, routes, now, history_cap)
        scored = BATCHER.score(scorer, batch)
    return [
        DocumentScore(
            list(a.result.findings),
            a.supplier.ref if a.supplier else None,
            r.queue,
            [s for s in scored[i] if s.family not in off] if scored is not None else [],
        )
        for i, (a, r) in enumerate(zip(assessed, routes, strict=True))
    ]


def _request_batch(
    session: Session,
    view: CacheView,
    documents: Sequence[SupplierDocument],
    assessed: Sequence[Assessment],
    routes: Sequence[Route],
    now: datetime,
    history_cap: int,
) -> ScoreBatch:
    """A request's documents as score items, after their suppliers' stored history."""
    suppliers = {a.supplier.id for a in assessed if a.supplier is not None}
    # Everything stored counts as earlier than a document being scored now.
    keys = _history_keys(session, dict.fromkeys(suppliers, AFTER_EVERY_ROW), set(), history_cap)
    history_index = None
    if len(documents) == 1:  # what ScoreBatch.indexed scores from
        history_index = view.get("history_index", tuple(keys))
        if history_index is None:
            history_index = HistoryIndex.build(_history(session, view, keys))
            view.put("history_index", tuple(keys), history_index)
    history = history_index.history if history_index else _history(session, view, keys)
    po_ids = sorted({a.purchase_order_id for a in assessed if a.purchase_order_id})
    master, orders = _master(session, view, po_ids)
    waiting = repository.open_case_counts(session, sorted({r.queue for r in routes}))
    items = []
    for index, (doc, a, route) in enumerate(zip(documents, assessed, routes, strict=True)):
        po = orders.get(a.purchase_order_id) if a.purchase_order_id else None
        items.append(
            ScoreItem(
                f"request:{index}",
                CaseInput(
                    doc,
                    [_rule_finding(f) for f in a.result.findings],
                    a.supplier.ref if a.supplier else None,
                ),
                DelayContext(
                    queue=route.queue,
                    queue_load=waiting.get(route.queue, 0),
                    received_at=now,
                    sla_hours=round((route.sla_due_at - now).total_seconds() / 3600, 2),
                    company=po.company if po is not None else None,
                ),
            )
        )
    return ScoreBatch(master, history, items, history_index)


def read_upload(session: Session, parser: Parser, data: bytes) -> ParsedDocument:
    """Read exactly one document from an uploaded file, or raise InvalidInput with the code.

    A PDF is read as intake would read it: with what clerks taught about its supplier's layout.
    """
    try:
        return reread_with_supplier_hint(session, parser, data, parser(data))
    except ParseError as exc:
        if (
            exc.code is ParseErrorCode.UNSUPPORTED_DOCUMENT
            and detect_format(data) is DetectedFormat.CSV
        ):
            # The parser's advice (bulk intake) would open cases; scoring stores nothing.
            count = (exc.detail or "").removeprefix("csv:") or "several documents"
            raise InvalidInput(
                f"This CSV file holds {count}; this route scores one document per "
                "file. Send them as canonical documents to POST /api/v1/score:batch (up to "
                "1,000 a call), or upload one document per file here.",
                code="ONE_DOCUMENT_EXPECTED",
            ) from None
        log.info("score.document_unreadable", code=exc.code.value)
        raise InvalidInput(exc.message, code=exc.code.value) from None


def _rule_finding(f: Finding) -> RuleFinding:
    return RuleFinding(
        code=f.code,
        expected=f.expected,
        actual=f.actual,
        variance=f.variance,
        allowed=f.tolerance.allowed if f.tolerance is not None else None,
        line_id=f.line_id,
    )


def _rows(case_id: int, scores: Sequence[FamilyScore]) -> list[Prediction]:
    return [
        Prediction(
            case_id=case_id,
            family=s.family,
            model_name=s.model_name,
            model_version=s.version,
            run_id=s.run_id or None,
            output=s.output,
            explanation=s.explanation,
        )
        for s in scores
    ]


def _named(scores: Sequence[FamilyScore]) -> list[dict[str, str]]:
    return [
        {"family": s.family, "name": s.model_name, "version": s.version, "run_id": s.run_id}
        for s in scores
    ]


def disabled_families(session: Session, view: CacheView | None = None) -> set[str]:
    """The families whose outputs the kill switch withholds (all of them when it is on for all).

    A flip gives the input cache a new token (app/db/epochs.py), so `view` may hold them.
    """
    held = view.get("kill_switch", ALL) if view is not None else None
    if held is not None:
        return set(held)
    states = kill_switch_states(session)
    off = set(FAMILIES) if states[ALL] else {f for f in FAMILIES if states[f]}
    if view is not None:
        view.put("kill_switch", ALL, frozenset(off))
    return off


def score_cases(
    session: Session,
    case_ids: Sequence[int],
    *,
    actor: Actor = SYSTEM,
    scorer: CaseScorer | None = None,
) -> dict[int, list[Prediction]]:
    """Score cases and store one prediction per family and one `case.scored` event per case.

    Without a scorer (no registered model) nothing is written. Scoring errors do not propagate:
    they are logged and audited as `case.scoring_failed`, and the case stays as it was routed.
    """
    if not case_ids:
        return {}
    scorer = scorer or get_provider().scorer()
    if scorer is None:
        log.debug("scoring.skipped", reason="no registered model", cases=len(case_ids))
        return {}
    off = disabled_families(session)
    if off >= set(FAMILIES):
        log.info("scoring.skipped", reason="kill switch", cases=len(case_ids))
        return {}
    settings = get_settings()
    try:
        # A savepoint: a database error while reading or writing must not poison the intake.
        with session.begin_nested():
            batch, ids = build_batch(session, case_ids, settings.scoring_history_cap)
            results = [[s for s in r if s.family not in off] for r in scorer.score(batch)]
            stored: dict[int, list[Prediction]] = {}
            for case_id, scores in zip(ids, results, strict=True):
                rows = _rows(case_id, scores)
                repository.add_predictions(session, rows)
                stored[case_id] = rows
                audit.record(
                    session,
                    actor,
                    "case.scored",
                    "case",
                    case_id,
                    after={"models": _named(scores)},
                )
            session.flush()
        return stored
    except Exception as exc:  # a model or data bug must not cost the case
        log.exception("scoring.failed", cases=list(case_ids))
        for case_id in case_ids:
            audit.record(
                session,
                actor,
                "case.scoring_failed",
                "case",
                case_id,
                after={"error": type(exc).__name__, "message": str(exc)[:500]},
            )
        session.flush()
        return {}


def predictions(session: Session, case_id: int) -> list[Prediction]:
    """The stored predictions of a case, oldest first."""
    return repository.predictions_for(session, [case_id])


# -- similar cases ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimilarCase:
    """A resolved case like the one asked about, and how it was resolved."""

    case_id: int
    similarity: float
    state: str
    action: str | None  # the last live decision (sign, reject, ...)
    reasons: list[str]  # confirmed reason codes if a person confirmed them, else the rules'
    hours: float | None  # from case creation to the last decision
    supplier_id: int | None


def _resolution(
    case: Case, decisions: Sequence[Any], rule_codes: list[str]
) -> tuple[str | None, list[str], float | None]:
    if not decisions:
        return None, rule_codes, None
    last = decisions[-1]
    confirmed = [
        d for d in decisions if d.action == "confirm_reasons" and isinstance(d.details, dict)
    ]
    reasons = rule_codes
    if confirmed:
        codes = confirmed[-1].details.get("reasons") or confirmed[-1].details.get("codes")
        if isinstance(codes, list):
            reasons = sorted(str(c) for c in codes)
    hours = (last.created_at - case.created_at).total_seconds() / 3600
    return last.action, reasons, round(hours, 2)


def similar_cases(
    session: Session, case_id: int, k: int = 5, *, scorer: CaseScorer | None = None
) -> list[SimilarCase]:
    """The `k` resolved cases most like this one (text embedding + findings + size)."""
    target = repository.cases_with_invoices(session, [case_id])
    if not target:
        raise NotFound(f"case {case_id} does not exist")
    pool = repository.resolved_cases(session, case_id, SIMILAR_POOL)
    if not pool:
        return []
    ids = [case_id] + [c.id for c, _ in pool]
    findings = repository.findings_for(session, ids)
    invoices = [target[0][1]] + [i for _, i in pool]
    cases = [
        CaseInput(_document(inv), [_finding(f) for f in findings[cid]])
        for cid, inv in zip(ids, invoices, strict=True)
    ]
    embedder = scorer.embedder if scorer is not None else get_provider().embedder()
    vectors = similarity_vectors(features_of(cases), embedder)
    decisions = repository.decisions_for(session, [c.id for c, _ in pool])
    out = []
    for index, similarity in nearest(vectors[0], vectors[1:], k):
        case, _ = pool[index]
        rule_codes = sorted({f.code for f in findings[case.id]})
        action, reasons, hours = _resolution(case, decisions[case.id], rule_codes)
        out.append(
            SimilarCase(
                case_id=case.id,
                similarity=round(similarity, 4),
                state=case.state,
                action=action,
                reasons=reasons,
                hours=hours,
                supplier_id=case.supplier_id,
            )
        )
    return out
