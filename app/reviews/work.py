"""A clerk's remaining decisions: correct fields, confirm reasons, reassign, bulk sign, retry.

Like `app.reviews.service`, every function here flushes and never commits. Refusals that an
auditor must see (wrong role, a bulk signature governance refused) are audited before the typed
error is raised or the refusal returned; the routers catch the error and answer in place, so
the audit row commits with the request. Nothing is written before a refusal is certain.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.blobs import BlobStore
from app.cases import repository as cases_repository
from app.cases import service as cases
from app.db.base import utcnow
from app.db.tables import (
    Decision,
    DecisionAction,
    ErpPosting,
    FeedbackKind,
    FindingRow,
    InvoiceRow,
    SupplierHintRow,
    User,
)
from app.documents import repository as documents_repository
from app.erp import service as erp
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.reviews import fields, repository
from app.reviews import service as reviews
from app.users import repository as users_repository
from app.users.service import actor_of
from governance.signoff import required_signatures
from pipelines.canonical import AnySupplierDocument, Claim, CreditNote, Invoice
from pipelines.extract import SupplierHint, extract_pdf
from pipelines.normalise import normalise_invoice_number
from pipelines.reasons import ReasonCode

DOCUMENT_ADAPTER: TypeAdapter[Invoice | CreditNote | Claim] = TypeAdapter(AnySupplierDocument)
PDF_FORMATS = frozenset({"pdf"})  # read from the text layer: the extractor can learn from these
BULK_LIMIT = 200
# UN/ECE Rec. 20 codes as a supplier's clerk would write them.
UNIT_WORDS = {
    "C62": "units",
    "EA": "units",
    "H87": "pieces",
    "KGM": "kg",
    "GRM": "g",
    "LTR": "l",
    "MTR": "m",
    "DZN": "dozen",
    "BX": "boxes",
    "PK": "packs",
    "HUR": "hours",
}


def _deny(session: Session, user: User, action: str, case_id: int | None, message: str) -> None:
    """Audit a refused action, then raise 403 (the router answers in place and commits)."""
    audit.record(
        session,
        actor_of(user),
        f"{action}.denied",
        "case",
        case_id if case_id is not None else "-",
        after={"role": user.role, "message": message},
    )
    raise Forbidden(message, code="ROLE_NOT_ALLOWED")


def require_reviewer(session: Session, user: User, action: str, case_id: int | None) -> None:
    """Clerks and approvers work cases; anyone else is refused and the refusal audited."""
    if user.role not in reviews.REVIEW_ROLES or not user.active:
        _deny(
            session,
            user,
            action,
            case_id,
            f"{user.role}s do not work cases; ask a clerk or an approver",
        )


# -- correct a field ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Correction:
    """What a correction changed."""

    case_id: int
    field: str
    before: str | None
    after: str | None
    reasons_before: list[str]
    reasons_after: list[str]
    signatures_superseded: int
    hint_learnt: bool


def _apply_header(invoice: InvoiceRow, doc: Invoice | CreditNote | Claim) -> None:
    # The indexed header columns mirror the canonical document (see documents.store_invoice).
    invoice.number = doc.number
    invoice.normalised_number = normalise_invoice_number(doc.number) if doc.number else None
    invoice.supplier_name = doc.supplier.name
    invoice.supplier_vat_id = doc.supplier.vat_id
    invoice.iban = doc.bank_iban
    invoice.issue_date = doc.issue_date
    invoice.due_date = doc.due_date
    invoice.currency = doc.currency
    invoice.net_total = doc.totals.tax_exclusive
    invoice.tax_total = doc.totals.tax
    invoice.gross_total = doc.gross
    invoice.po_reference = doc.po_reference
    invoice.canonical = doc.model_dump(mode="json")


def _learn_hint(
    session: Session, blobs: BlobStore | None, invoice: InvoiceRow, field: str, value: str
) -> bool:
    """Teach the PDF extractor which printed label announces this supplier's field."""
    if blobs is None or invoice.supplier_id is None:
        return False
    document = documents_repository.get(session, invoice.document_id)
    if document is None or document.detected_format not in PDF_FORMATS:
        return False

    try:
        extraction = extract_pdf(blobs.read(document.storage_path))
    except Exception:  # a damaged PDF teaches nothing, and the correction itself still stands
        return False
    row = documents_repository.hint_for(session, invoice.supplier_id)
    supplier = cases_repository.suppliers_by_ids(session, [invoice.supplier_id])[
        invoice.supplier_id
    ]
    # The column holds the hint's own JSON form, parsed, so SQL can look into it.
    hint = SupplierHint.from_json(json.dumps(row.labels)) if row else SupplierHint(supplier.ref)
    learnt = hint.learn(extraction, field, value)
    if learnt == hint:
        return False
    if row is None:
        row = SupplierHintRow(supplier_id=invoice.supplier_id, labels={})
        repository.add(session, row)
    row.labels = json.loads(learnt.to_json())
    row.updated_at = utcnow()
    session.flush()
    return True


def correct_field(
    session: Session,
    case_id: int,
    user: User,
    *,
    token: str,
    version: int,
    field: str,
    value: str,
    blobs: BlobStore | None = None,
    now: datetime | None = None,
) -> Correction:
    """Correct one extracted field, re-match the case, and mark the corrector as its editor."""
    now = now or utcnow()
    require_reviewer(session, user, "case.correct", case_id)
    case = reviews.held_case(
        session, case_id, user, token=token, version=version, now=now, action="case.correct"
    )
    if field not in fields.SPECS:
        raise InvalidInput(f"{field[:40]!r} is not a field that can be corrected")
    try:
        after = fields.clean(field, value)
    except ValueError as exc:
        raise InvalidInput(str(exc), code="INVALID_VALUE") from None
    invoice = documents_repository.get_invoice(session, case.invoice_id)
    assert invoice is not None
    before = fields.read(invoice.canonical, field)
    if before == after:
        raise InvalidInput(
            f"{fields.SPECS[field].label} is already {after or 'empty'}", code="UNCHANGED"
        )
    try:
        doc = DOCUMENT_ADAPTER.validate_python(fields.write(invoice.canonical, field, after))
    except ValidationError as exc:
        raise InvalidInput(
            f"{fields.SPECS[field].label}: {exc.errors()[0]['msg']}", code="INVALID_VALUE"
        ) from None
    # From here on every check has passed: write.
    _apply_header(invoice, doc)
    if invoice.extraction is not None:
        old = invoice.extraction.get(field) or {}
        invoice.extraction = {
            **invoice.extraction,
            field: {**old, "value": after, "confidence": 1.0, "corrected_by": user.username},
        }
    session.flush()
    reasons_before, reasons_after = cases.rematch_case(session, case, invoice, actor=actor_of(user))
    superseded = repository.supersede_signatures(session, case.id)
    learnt = _learn_hint(session, blobs, invoice, field, after) if after else False
    case.updated_at = now  # bumps the version: forms opened before the correction are stale
    details = {
        "field": field,
        "before": before,
        "after": after,
        "reasons_before": reasons_before,
        "reasons_after": reasons_after,
        "signatures_superseded": superseded,
        "hint_learnt": learnt,
    }
    repository.add(
        session,
        Decision(
            case_id=case.id,
            user_id=user.id,
            role=user.role,
            action=DecisionAction.CORRECT.value,
            reason=f"{fields.SPECS[field].label}: {before or '—'} → {after or '—'}",
            details=details,
            case_version=case.version,
            superseded=False,
        ),
    )
    audit.record(
        session,
        actor_of(user),
        "case.corrected",
        "case",
        case.id,
        before={"field": field, "value": before, "reasons": reasons_before},
        after={"field": field, "value": after, "reasons": reasons_after, "hint_learnt": learnt},
    )
    return Correction(
        case.id, field, before, after, reasons_before, reasons_after, superseded, learnt
    )


# -- confirm reason labels ---------------------------------------------------------------------


def model_reasons(session: Session, case_id: int) -> tuple[frozenset[str], Any] | None:
    """The reasons the latest reason model predicted for a case, and that prediction."""
    rows = [p for p in repository.predictions_for(session, case_id) if p.family == "reason"]
    if not rows:
        return None
    latest = rows[-1]
    predicted = latest.output.get("predicted")
    if isinstance(predicted, str):
        codes = frozenset({predicted})
    elif isinstance(predicted, list):
        codes = frozenset(str(p) for p in predicted)
    else:
        codes = frozenset()
    return codes, latest


def confirm_reasons(
    session: Session,
    case_id: int,
    user: User,
    *,
    token: str,
    version: int,
    codes: Sequence[str],
    feedback: str | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> Decision:
    """Record the reasons a clerk confirms; disagreeing with the model needs a why."""
    now = now or utcnow()
    require_reviewer(session, user, "case.confirm_reasons", case_id)
    case = reviews.held_case(
        session, case_id, user, token=token, version=version, now=now, action="case.confirm_reasons"
    )
    unknown = sorted(set(codes) - set(ReasonCode.__members__))
    if unknown:
        raise InvalidInput(f"unknown reason code(s): {', '.join(c[:32] for c in unknown)}")
    confirmed = sorted(set(codes))
    kind: FeedbackKind | None = None
    if feedback:
        try:
            kind = FeedbackKind(feedback)
        except ValueError:
            raise InvalidInput(f"unknown feedback kind {feedback[:30]!r}") from None
    model = model_reasons(session, case.id)
    override = model is not None and frozenset(confirmed) != model[0]
    if override and kind is None:
        assert model is not None
        raise InvalidInput(
            "these reasons differ from the model's ("
            + (", ".join(sorted(model[0])) or "none")
            + "): say why — model wrong, policy exception or business decision",
            code="FEEDBACK_REQUIRED",
        )
    rule_codes = sorted({f.code for f in _findings(session, case.id)})
    details: dict[str, Any] = {
        "confirmed": confirmed,
        "rules": rule_codes,
        "model_predicted": sorted(model[0]) if model else None,
        "model": f"{model[1].model_name}@{model[1].model_version}" if model else None,
        "override": override,
    }
    decision = Decision(
        case_id=case.id,
        user_id=user.id,
        role=user.role,
        action=DecisionAction.CONFIRM_REASONS.value,
        reason=(note or "").strip() or None,
        feedback_kind=kind.value if kind and override else None,
        details=details,
        case_version=case.version,
        superseded=False,
    )
    repository.add(session, decision)
    audit.record(
        session,
        actor_of(user),
        "case.reasons_confirmed",
        "case",
        case.id,
        after={**details, "feedback": decision.feedback_kind},
        model_name=model[1].model_name if model else None,
        model_version=model[1].model_version if model else None,
    )
    return decision


def _findings(session: Session, case_id: int) -> Sequence[FindingRow]:
    return cases_repository.findings_for(session, [case_id])


# -- reassign ----------------------------------------------------------------------------------


def reassign_candidates(session: Session, user: User) -> list[User]:
    """Whom a case can be handed to: active clerks and approvers other than oneself."""
    rows = repository.active_reviewers(session, sorted(reviews.REVIEW_ROLES))
    return [u for u in rows if u.id != user.id]


def reassign(
    session: Session,
    case_id: int,
    user: User,
    *,
    token: str,
    version: int,
    to_username: str,
    reason: str,
    now: datetime | None = None,
) -> User:
    """Hand a claimed case to another clerk or approver: the claim moves to them."""
    now = now or utcnow()
    require_reviewer(session, user, "case.reassign", case_id)
    case = reviews.held_case(
        session, case_id, user, token=token, version=version, now=now, action="case.reassign"
    )
    if not reason.strip():
        raise InvalidInput("a reassign needs a reason", code="REASON_REQUIRED")
    target = users_repository.by_username(session, to_username)
    if target is None or target.id == user.id:
        raise InvalidInput(f"pick someone else to hand the case to (not {to_username[:64]!r})")
    if target.role not in reviews.REVIEW_ROLES or not target.active:
        raise InvalidInput(f"{target.username} is a {target.role} and does not work cases")
    case.claimed_by_id = target.id
    case.claim_token = secrets.token_urlsafe(24)
    case.claim_expires_at = now + reviews.LEASE
    repository.add(
        session,
        Decision(
            case_id=case.id,
            user_id=user.id,
            role=user.role,
            action=DecisionAction.REASSIGN.value,
            reason=reason.strip(),
            details={"to": target.username},
            case_version=case.version,
            superseded=False,
        ),
    )
    audit.record(
        session,
        actor_of(user),
        "case.reassigned",
        "case",
        case.id,
        before={"claimed_by": user.username},
        after={"claimed_by": target.username, "reason": reason.strip()},
    )
    return target


# -- the supplier message of a hold ------------------------------------------------------------


def _qty(value: Decimal | None) -> str:
    return "?" if value is None else f"{value.normalize():f}"


def supplier_message(
    findings: Sequence[Any], number: str | None, issue_date: date | None = None
) -> str:
    """A draft message to the supplier that says what each finding needs from them."""
    asks: list[str] = []
    for f in findings:
        code = ReasonCode(f.code)
        line = f"line {f.line_id}" if f.line_id else "the invoice"
        unit = " " + UNIT_WORDS.get(f.unit or "C62", f.unit or "units")
        if code in (ReasonCode.QTY_OVER_RECEIVED, ReasonCode.QTY_OVER_ORDERED):
            basis = "received" if code is ReasonCode.QTY_OVER_RECEIVED else "ordered"
            asks.append(
                f"credit note needed for {_qty(f.variance)}{unit} on {line} "
                f"(billed {_qty(f.actual)}, {basis} {_qty(f.expected)})"
            )
        elif code is ReasonCode.PRICE_VARIANCE:
            asks.append(
                f"credit note needed for {_qty(f.variance)} on {line}: the price billed is "
                f"above the agreed price (expected {_qty(f.expected)}, billed {_qty(f.actual)})"
            )
        elif code is ReasonCode.NO_RECEIPT:
            asks.append(
                f"{line}: we have not received these goods yet; please send the delivery note"
            )
        elif code is ReasonCode.TAX_MISMATCH:
            asks.append(
                f"{line}: the tax does not match the order; please send a corrected invoice"
            )
        elif code is ReasonCode.FREIGHT_UNPLANNED:
            asks.append(f"{line}: freight or a surcharge that the order does not provide for")
        elif code in (ReasonCode.NO_PO, ReasonCode.INVALID_PO):
            asks.append("please tell us the purchase order number this invoice belongs to")
        elif code is ReasonCode.BANK_DETAILS_CHANGED:
            asks.append(
                "the bank account differs from the one we hold; please confirm it in writing"
            )
        else:
            asks.append(f.message)
    ref = f"invoice {number}" if number else "your invoice"
    if issue_date:
        ref += f" of {issue_date.isoformat()}"
    if not asks:
        return f"Regarding {ref}: we need more information before we can pay it."
    unique = list(dict.fromkeys(a.strip().rstrip(".") for a in asks if a.strip()))
    body = "\n".join(f"- {a[0].upper()}{a[1:]}." for a in unique)
    return f"Regarding {ref}, we cannot pay it yet:\n{body}\nPlease reply to this message."


# -- bulk sign ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkLine:
    """One case's outcome in a bulk sign-off."""

    case_id: int
    signed: bool
    state: str
    message: str


def bulk_sign(
    session: Session, user: User, case_ids: Sequence[int], *, now: datetime | None = None
) -> list[BulkLine]:
    """Sign many clean cases, one governed signature each; refusals are listed and audited."""
    now = now or utcnow()
    require_reviewer(session, user, "case.bulk_sign", None)
    wanted = sorted(set(case_ids))
    if not wanted:
        raise InvalidInput("tick the clean cases to sign", code="NOTHING_SELECTED")
    if len(wanted) > BULK_LIMIT:
        raise InvalidInput(f"sign at most {BULK_LIMIT} cases at once", code="TOO_MANY")
    clean = set(repository.clean_claimable(session, wanted))
    out: list[BulkLine] = []
    for case_id in wanted:
        if case_id in clean:
            # Routing's count is an estimate; governance decides (amount limits, anomalies).
            found = repository.locked_case(session, case_id)
            assert found is not None
            if required_signatures(reviews.case_facts(session, found)) != 1:
                clean.discard(case_id)
        if case_id not in clean:
            message = "not a clean open case needing one signature: sign it on its own page"
            audit.record(
                session,
                actor_of(user),
                "bulk_sign.skipped",
                "case",
                case_id,
                after={"message": message},
            )
            out.append(BulkLine(case_id, False, "", message))
            continue
        try:
            reviews.claim_for_bulk(session, case_id, user, now)
        except Conflict as exc:
            audit.record(
                session,
                actor_of(user),
                "bulk_sign.skipped",
                "case",
                case_id,
                after={"message": exc.message},
            )
            out.append(BulkLine(case_id, False, "", exc.message))
            continue
        case = repository.locked_case(session, case_id)
        assert case is not None
        outcome = reviews.sign_held(session, case, user, now)
        if not outcome.allowed:
            reviews.clear_claim(case)  # refused: the case goes back to the queue
            session.flush()
            out.append(
                BulkLine(case_id, False, case.state, f"{outcome.message} ({outcome.denial})")
            )
            continue
        out.append(BulkLine(case_id, True, outcome.state, outcome.message))
    return out


# -- retry a failed posting --------------------------------------------------------------------


def retry_posting(
    session: Session, case_id: int, user: User, *, now: datetime | None = None
) -> ErpPosting:
    """Send a dead-lettered posting again (clerks and approvers; others refused and audited)."""
    require_reviewer(session, user, "erp.retry", case_id)
    if repository.locked_case(session, case_id) is None:
        raise NotFound(f"case {case_id} does not exist")
    return erp.retry_posting(session, case_id, user, now=now)
