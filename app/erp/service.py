"""Posting approved cases to the ERP: outbox claims, outcomes, a clerk's retry, reconciliation.

The worker (app/erp/worker.py) owns the transactions; these functions only flush. One posting
moves `pending → sending → posted`, or back to `pending` with a backoff after a fault worth
retrying, or to `failed` (dead letter) after the last attempt or at once when the ERP rejects
the document. Its case follows: `approved → posting → posted` or `posting_failed`. Every
transition is audited on the case as the `worker` system actor.
"""

from __future__ import annotations

import importlib
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.backoff import capped_backoff
from app.db.base import utcnow
from app.db.tables import CaseState, ErpPosting, PostingState, User
from app.erp import repository
from app.erp.protocol import ErpAdapter, PostedDocument, PostingRequest
from app.erp.ubl_export import UblExportAdapter
from app.errors import AppError, Conflict, NotFound
from app.settings import Settings
from app.users.service import actor_of
from pipelines.canonical import AnySupplierDocument, Claim, CreditNote, Invoice

WORKER = Actor("worker", "system")
DOCUMENT_ADAPTER: TypeAdapter[Invoice | CreditNote | Claim] = TypeAdapter(AnySupplierDocument)
# Who may send a dead-lettered posting again (controllers audit, they do not operate).
RETRY_ROLES = frozenset({"clerk", "approver", "admin"})


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a posting is retried."""

    max_attempts: int = 8
    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy configured by TOLLGATE_OUTBOX_* settings."""
        return cls(
            max_attempts=settings.outbox_max_attempts,
            base=timedelta(seconds=settings.outbox_backoff_base_seconds),
            cap=timedelta(seconds=settings.outbox_backoff_cap_seconds),
            lease=timedelta(seconds=settings.outbox_lease_seconds),
        )


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> timedelta:
    """Wait after the `attempt`-th failed posting (see app.backoff)."""
    return capped_backoff(attempt, policy.base, policy.cap, rng)


@dataclass(frozen=True)
class ClaimedPosting:
    """A row this worker now holds: what to send, or why it cannot be built."""

    posting_id: int
    case_id: int
    idempotency_key: str
    attempt: int
    lease_until: datetime
    request: PostingRequest | None
    build_error: str | None = None


def build_request(facts: repository.PostingFacts) -> PostingRequest:
    """The request for a posting (ValueError when the stored document cannot be read)."""
    try:
        document = DOCUMENT_ADAPTER.validate_python(facts.canonical)
    except ValidationError as exc:
        raise ValueError(
            f"the stored document of case {facts.case_id} cannot be read: "
            f"{exc.error_count()} error(s), first: {exc.errors()[0]['msg']}"
        ) from exc
    return PostingRequest(
        idempotency_key=facts.idempotency_key,
        case_id=facts.case_id,
        document=document,
        supplier_ref=facts.supplier_ref,
        po_number=facts.po_number or document.po_reference,
        signers=facts.signers,
        model_versions=dict(facts.model_versions),
    )


def claim_due(
    session: Session, now: datetime, policy: RetryPolicy, limit: int = 10
) -> list[ClaimedPosting]:
    """Claim up to `limit` due rows: state sending, a lease, one more attempt; case → posting."""
    postgres = session.get_bind().dialect.name == "postgresql"
    lease_until = now + policy.lease
    claimed: list[ClaimedPosting] = []
    for posting_id in repository.due_ids(session, now, limit, postgres):
        if not repository.try_claim(session, posting_id, now, lease_until):
            continue  # another worker took it between our read and our update
        facts = repository.posting_facts(session, posting_id)
        assert facts is not None
        request: PostingRequest | None = None
        error: str | None = None
        try:
            request = build_request(facts)
        except ValueError as exc:
            error = str(exc)
        case_before = repository.set_case_state(session, facts.case_id, CaseState.POSTING.value)
        audit.record(
            session,
            WORKER,
            "erp.sending",
            "case",
            facts.case_id,
            before={"case_state": case_before},
            after={
                "case_state": CaseState.POSTING.value,
                "posting": posting_id,
                "key": facts.idempotency_key,
                "attempt": facts.attempts,
                "lease_until": lease_until,
            },
        )
        claimed.append(
            ClaimedPosting(
                posting_id,
                facts.case_id,
                facts.idempotency_key,
                facts.attempts,
                lease_until,
                request,
                error,
            )
        )
    session.flush()
    return claimed


def record_posted(session: Session, claimed: ClaimedPosting, reference: str) -> bool:
    """Mark the row posted with the ERP's reference, case → posted; False if it was reclaimed."""
    if not repository.finish(
        session,
        claimed.posting_id,
        claimed.attempt,
        state=PostingState.POSTED,
        erp_reference=reference,
    ):
        return False
    before = repository.set_case_state(session, claimed.case_id, CaseState.POSTED.value)
    audit.record(
        session,
        WORKER,
        "erp.posted",
        "case",
        claimed.case_id,
        before={"case_state": before},
        after={
            "case_state": CaseState.POSTED.value,
            "posting": claimed.posting_id,
            "erp_reference": reference,
            "attempt": claimed.attempt,
        },
    )
    session.flush()
    return True


def record_failure(
    session: Session,
    claimed: ClaimedPosting,
    message: str,
    *,
    retryable: bool,
    now: datetime,
    policy: RetryPolicy,
    rng: random.Random,
) -> str | None:
    """Schedule a retry ("retry") or dead-letter the row ("failed"); None if it was reclaimed."""
    if retryable and claimed.attempt < policy.max_attempts:
        when = now + backoff_delay(claimed.attempt, policy, rng)
        if not repository.finish(
            session,
            claimed.posting_id,
            claimed.attempt,
            state=PostingState.PENDING,
            next_attempt_at=when,
            last_error=message,
        ):
            return None
        audit.record(
            session,
            WORKER,
            "erp.retry_scheduled",
            "case",
            claimed.case_id,
            after={
                "posting": claimed.posting_id,
                "attempt": claimed.attempt,
                "of": policy.max_attempts,
                "next_attempt_at": when,
                "error": message,
            },
        )
        session.flush()
        return "retry"
    if not repository.finish(
        session,
        claimed.posting_id,
        claimed.attempt,
        state=PostingState.FAILED,
        last_error=message,
    ):
        return None
    before = repository.set_case_state(session, claimed.case_id, CaseState.POSTING_FAILED.value)
    audit.record(
        session,
        WORKER,
        "erp.failed",
        "case",
        claimed.case_id,
        before={"case_state": before},
        after={
            "case_state": CaseState.POSTING_FAILED.value,
            "posting": claimed.posting_id,
            "attempts": claimed.attempt,
            "retryable": retryable,
            "error": message,
        },
    )
    session.flush()
    return "failed"


def retry_posting(
    session: Session, case_id: int, user: User, *, now: datetime | None = None
) -> ErpPosting:
    """A person sends a dead-lettered posting again: attempts reset, due now, case → approved."""
    if user.role not in RETRY_ROLES or not user.active:
        raise Conflict(
            f"{user.role}s cannot retry postings", status_code=403, code="ROLE_CANNOT_RETRY"
        )
    posting = repository.posting_for_case(session, case_id, lock=True)
    if posting is None:
        raise NotFound(f"case {case_id} has no ERP posting")
    if posting.state != PostingState.FAILED.value:
        raise Conflict(
            f"only a failed posting can be retried; this one is {posting.state}",
            code="POSTING_NOT_FAILED",
            details={"case_id": case_id, "state": posting.state},
        )
    before = {"state": posting.state, "attempts": posting.attempts, "error": posting.last_error}
    posting.state = PostingState.PENDING.value
    posting.attempts = 0
    posting.next_attempt_at = now or utcnow()
    session.flush()
    case_before = repository.set_case_state(session, case_id, CaseState.APPROVED.value)
    audit.record(
        session,
        actor_of(user),
        "erp.retry_requested",
        "case",
        case_id,
        before={**before, "case_state": case_before},
        after={"state": posting.state, "case_state": CaseState.APPROVED.value},
    )
    return posting


@dataclass(frozen=True)
class Break:
    """One difference between Tollgate's outbox and the ERP."""

    kind: str  # missing | extra | differs
    idempotency_key: str
    case_id: int | None
    detail: str


@dataclass
class ReconcileReport:
    """What reconciling a period found."""

    start: date
    end: date
    local_posted: int = 0
    erp_posted: int = 0
    matched: int = 0
    breaks: list[Break] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when Tollgate and the ERP agree on every posting of the period."""
        return not self.breaks


def reconcile(session: Session, adapter: ErpAdapter, start: date, end: date) -> ReconcileReport:
    """Compare postings of a period (both ends included) with what the ERP holds.

    missing: posted here (case approved in the period), unknown to the ERP. extra: in the ERP
    (posted in the period) with our key but not posted here. differs: both hold it, but the
    reference, amount, currency or supplier differ.
    """
    low = datetime.combine(start, time.min, tzinfo=UTC)
    high = datetime.combine(end + timedelta(days=1), time.min, tzinfo=UTC)
    local = repository.posted_between(session, low, high)
    remote: dict[str, PostedDocument] = {
        d.idempotency_key: d for d in adapter.list_posted(start, end)
    }
    report = ReconcileReport(start, end, local_posted=len(local), erp_posted=len(remote))
    known = repository.by_keys(session, sorted(remote))
    for row in local:
        doc = remote.get(row.idempotency_key)
        if doc is None:
            # Approved in the period but posted after it ends: ask for the key itself.
            reference = adapter.find_posted(row.idempotency_key)
            if reference is None:
                report.breaks.append(
                    Break("missing", row.idempotency_key, row.case_id, "not in the ERP")
                )
            elif reference != row.erp_reference:
                report.breaks.append(
                    Break(
                        "differs",
                        row.idempotency_key,
                        row.case_id,
                        f"reference: here {row.erp_reference}, ERP {reference}",
                    )
                )
            else:
                report.matched += 1
            continue
        diffs = _differences(row, doc)
        if diffs:
            report.breaks.append(
                Break("differs", row.idempotency_key, row.case_id, "; ".join(diffs))
            )
        else:
            report.matched += 1
    local_keys = {row.idempotency_key for row in local}
    for key, doc in sorted(remote.items()):
        if key in local_keys:
            continue
        mine = known.get(key)
        if mine is None:
            report.breaks.append(Break("extra", key, None, "no such posting in Tollgate"))
        elif mine.state != PostingState.POSTED.value:
            report.breaks.append(
                Break("extra", key, mine.case_id, f"ERP holds it, Tollgate says {mine.state}")
            )
        else:
            # Posted here, approved before the period: compare it all the same.
            diffs = _differences(mine, doc)
            if diffs:
                report.breaks.append(Break("differs", key, mine.case_id, "; ".join(diffs)))
            else:
                report.matched += 1
    return report


def _differences(row: repository.LocalPosting, doc: PostedDocument) -> list[str]:
    diffs: list[str] = []
    if row.erp_reference != doc.erp_reference:
        diffs.append(f"reference: here {row.erp_reference}, ERP {doc.erp_reference}")
    # Credit notes may be stored signed on one side and unsigned on the other.
    here = None if row.gross is None else abs(row.gross)
    there = None if doc.gross is None else abs(doc.gross)
    if here != there:
        diffs.append(f"amount: here {row.gross}, ERP {doc.gross}")
    if (row.currency or None) != (doc.currency or None):
        diffs.append(f"currency: here {row.currency}, ERP {doc.currency}")
    if row.supplier_ref and doc.supplier_ref and row.supplier_ref != doc.supplier_ref:
        diffs.append(f"supplier: here {row.supplier_ref}, ERP {doc.supplier_ref}")
    return diffs


def make_adapter(settings: Settings) -> ErpAdapter:
    """The configured ERP adapter (TOLLGATE_ERP_ADAPTER)."""
    if settings.erp_adapter == "ubl-export":
        assert settings.erp_export_dir is not None
        return UblExportAdapter(settings.erp_export_dir)
    # Imported lazily: the Tryton adapter needs its client only when it is configured.
    module = importlib.import_module("app.erp.tryton")
    factory = getattr(module, "from_settings", None)
    if factory is None:
        raise AppError("app.erp.tryton has no from_settings(settings)", code="ERP_NOT_WIRED")
    adapter: ErpAdapter = factory(settings)
    return adapter
