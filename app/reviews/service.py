"""The governed review queue: claims with leases, decisions, sign-off and the ERP outbox row.

- A clerk claims a case (or the next most urgent one): a random claim token and a lease. Every
  decision carries the token and the case version it was made on; a decision on a claim that
  expired or was taken over, or on a case that changed meanwhile, is a 409, never a silent
  overwrite. Claiming bumps the version too, so a form opened before someone else's claim is
  stale.
- Signing asks `governance.signoff` whether this person may sign this case now (role, limit,
  segregation of duties, four eyes). A refusal is not an exception: it is returned, audited and
  committed (an auditor must see every denied attempt), and the router answers 403.
- The last required signature approves the case and writes its ERP outbox row in the same
  transaction; the outbox's unique case id makes a second approval impossible even if two
  requests raced past every other check. 5 % of clean sign-offs are sampled for the controller.
- Services flush, never commit: the request or job owns the transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.db.base import utcnow
from app.db.tables import (
    Case,
    CaseState,
    Decision,
    DecisionAction,
    ErpPosting,
    FeedbackKind,
    PostingState,
    User,
)
from app.errors import AppError, Conflict, InvalidInput, NotFound
from app.reviews import repository
from app.users import repository as users_repository
from app.users.service import actor_of, signer_of
from governance.sampling import in_audit_sample
from governance.signoff import (
    DEFAULT_SIGNOFF,
    CaseFacts,
    Role,
    SignoffPolicy,
    check_signature,
    required_signatures,
)
from pipelines.reasons import ReasonCode

LEASE = timedelta(minutes=15)
# Roles that work cases; controllers audit, admins administer, ML engineers build models.
REVIEW_ROLES = frozenset({Role.CLERK.value, Role.APPROVER.value})
# Decisions that need a written reason (it goes to the supplier or into the audit trail).
NEEDS_REASON = frozenset({DecisionAction.REJECT, DecisionAction.HOLD, DecisionAction.REASSIGN})


@dataclass(frozen=True)
class Claim:
    """A live claim on a case: show the token and version with every decision."""

    case_id: int
    token: str
    expires_at: datetime
    version: int


@dataclass(frozen=True)
class DecisionOutcome:
    """What a decision did, or why it was refused (refusals are audited, not raised)."""

    case_id: int
    allowed: bool
    state: str
    denial: str | None = None
    message: str = ""
    signatures: int = 0
    required_signatures: int = 1
    posting_id: int | None = None


def _refused(
    session: Session, user: User, action: str, case_id: int | None, error: AppError
) -> AppError:
    """Audit a refusal in the caller's transaction (the routers answer in place and commit)."""
    audit.record(
        session,
        actor_of(user),
        f"{action}.denied",
        "case",
        case_id if case_id is not None else "-",
        after={"role": user.role, "code": error.code, "message": error.message},
    )
    return error


def _require_reviewer(session: Session, user: User, action: str, case_id: int | None) -> None:
    if user.role not in REVIEW_ROLES or not user.active:
        raise _refused(
            session,
            user,
            action,
            case_id,
            Conflict(
                f"{user.role}s do not work cases; ask a clerk or an approver",
                status_code=403,
                code="ROLE_CANNOT_REVIEW",
            ),
        )


def _claim(session: Session, case_id: int, user: User, now: datetime, lease: timedelta) -> Claim:
    token = secrets.token_urlsafe(24)
    if not repository.try_claim(session, case_id, user.id, token, now + lease, now):
        raise Conflict(
            "someone else is working on this case, or it is closed; pick another",
            code="ALREADY_CLAIMED",
            details={"case_id": case_id},
        )
    case = repository.locked_case(session, case_id)
    assert case is not None
    audit.record(
        session,
        actor_of(user),
        "case.claimed",
        "case",
        case_id,
        after={"state": case.state, "lease_until": case.claim_expires_at},
    )
    return Claim(case_id, token, now + lease, case.version)


def claim(
    session: Session,
    case_id: int,
    user: User,
    *,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> Claim:
    """Claim one case (or renew one's own claim); 409 when someone else holds it."""
    _require_reviewer(session, user, "case.claim", case_id)
    if repository.locked_case(session, case_id) is None:
        raise NotFound(f"case {case_id} does not exist")
    try:
        return _claim(session, case_id, user, now or utcnow(), lease)
    except Conflict as exc:
        raise _refused(session, user, "case.claim", case_id, exc) from None


def claim_next(
    session: Session,
    user: User,
    *,
    queue: str | None = None,
    now: datetime | None = None,
    lease: timedelta = LEASE,
) -> Claim | None:
    """Claim the most urgent unclaimed case (of a queue); None when the queue is empty.

    On PostgreSQL the candidate row is locked with SKIP LOCKED, so concurrent clerks each get a
    different case without waiting; on SQLite the guarded update decides, trying a few
    candidates in turn.
    """
    _require_reviewer(session, user, "case.claim_next", None)
    now = now or utcnow()
    postgres = session.get_bind().dialect.name == "postgresql"
    for case_id in repository.next_claimable(session, now, queue, 1 if postgres else 8, postgres):
        try:
            return _claim(session, case_id, user, now, lease)
        except Conflict:
            continue  # taken between our read and our update: try the next one
    return None


def release(session: Session, case_id: int, user: User, token: str) -> None:
    """Give a claimed case back to the queue."""
    case = _held(session, case_id, user, token, utcnow(), "case.release")
    _clear_claim(case)
    audit.record(session, actor_of(user), "case.released", "case", case_id)


def _clear_claim(case: Case) -> None:
    case.claimed_by_id = None
    case.claim_token = None
    case.claim_expires_at = None


def _held(
    session: Session, case_id: int, user: User, token: str, now: datetime, action: str
) -> Case:
    case = repository.locked_case(session, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    expires = case.claim_expires_at
    if (
        case.claim_token is None
        or not secrets.compare_digest(case.claim_token, token)
        or case.claimed_by_id != user.id
        or expires is None
        or expires <= now
    ):
        lost = Conflict(
            "your claim on this case has expired or was taken over; claim it again",
            code="CLAIM_LOST",
            details={"case_id": case_id},
        )
        raise _refused(session, user, action, case_id, lost)
    return case


def held_case(
    session: Session,
    case_id: int,
    user: User,
    *,
    token: str,
    version: int,
    now: datetime,
    action: str = "case.decide",
) -> Case:
    """The case this reviewer holds a live claim on, at the version their form was made on."""
    _require_reviewer(session, user, action, case_id)
    case = _held(session, case_id, user, token, now, action)
    if case.version != version:
        raise Conflict(
            f"the case changed since you opened it (version {version}, now {case.version}); "
            "reload it and decide again",
            code="STALE_VERSION",
            details={"case_id": case_id, "version": case.version},
        )
    return case


def claim_for_bulk(session: Session, case_id: int, user: User, now: datetime) -> Claim:
    """Claim a case as one step of a bulk sign-off (409 when someone else holds it)."""
    _require_reviewer(session, user, "case.bulk_sign", case_id)
    return _claim(session, case_id, user, now, LEASE)


def sign_held(session: Session, case: Case, user: User, now: datetime) -> DecisionOutcome:
    """Sign a case the user has just claimed (governance rules; refusals audited)."""
    return _sign(session, case, user, None, None, now, DEFAULT_SIGNOFF)


def clear_claim(case: Case) -> None:
    """Drop the claim on a case (after a refused bulk signature, for instance)."""
    _clear_claim(case)


def case_facts(session: Session, case: Case) -> CaseFacts:
    """What governance needs to know about a case to rule on a signature."""
    invoice, document, supplier, codes = repository.case_facts_rows(session, case)
    decisions = repository.decisions_for(session, case.id)
    users = {d.user_id for d in decisions}
    names = {uid: u.username for uid, u in users_repository.by_ids(session, sorted(users)).items()}
    signatures = tuple(
        (names[d.user_id], Role(d.role))
        for d in decisions
        if d.action == DecisionAction.SIGN.value and not d.superseded
    )
    edited = frozenset(
        names[d.user_id] for d in decisions if d.action == DecisionAction.CORRECT.value
    )
    return CaseFacts(
        case_id=case.id,
        gross=abs(invoice.gross_total) if invoice.gross_total is not None else Decimal(0),
        currency=invoice.currency or "",
        state=case.state,
        reason_codes=frozenset(ReasonCode(c) for c in codes),
        uploaded_by=document.uploaded_by,
        edited_by=edited,
        bank_change_by=frozenset(repository.bank_changers(session, supplier.ref))
        if supplier
        else frozenset(),
        signatures=signatures,
    )


def decide(
    session: Session,
    case_id: int,
    user: User,
    *,
    token: str,
    version: int,
    action: DecisionAction,
    reason: str | None = None,
    feedback: FeedbackKind | None = None,
    now: datetime | None = None,
    policy: SignoffPolicy = DEFAULT_SIGNOFF,
) -> DecisionOutcome:
    """Apply one decision to a claimed case; see the module docstring for the rules."""
    now = now or utcnow()
    case = held_case(session, case_id, user, token=token, version=version, now=now)
    if action in NEEDS_REASON and not (reason and reason.strip()):
        raise InvalidInput(f"a {action.value} needs a reason", code="REASON_REQUIRED")
    if action is DecisionAction.SIGN:
        return _sign(session, case, user, reason, feedback, now, policy)
    before = case.state
    targets = {
        DecisionAction.REJECT: CaseState.REJECTED,
        DecisionAction.HOLD: CaseState.ON_HOLD,
        DecisionAction.RELEASE: CaseState.IN_REVIEW,
    }
    if action not in targets:
        raise InvalidInput(f"{action.value} is not available here yet", code="UNSUPPORTED_ACTION")
    if action is DecisionAction.RELEASE and before != CaseState.ON_HOLD.value:
        raise Conflict("only a case on hold can be released", code="NOT_ON_HOLD")
    _record(session, case, user, action, reason, feedback)
    case.state = targets[action].value
    if action is not DecisionAction.RELEASE:
        _clear_claim(case)
    session.flush()
    audit.record(
        session,
        actor_of(user),
        f"case.{action.value}",
        "case",
        case.id,
        before={"state": before},
        after={"state": case.state, "reason": reason, "feedback": feedback},
    )
    return DecisionOutcome(case.id, True, case.state, required_signatures=case.required_signatures)


def _record(
    session: Session,
    case: Case,
    user: User,
    action: DecisionAction,
    reason: str | None,
    feedback: FeedbackKind | None,
    details: dict[str, object] | None = None,
) -> Decision:
    decision = Decision(
        case_id=case.id,
        user_id=user.id,
        role=user.role,
        action=action.value,
        reason=reason,
        feedback_kind=feedback.value if feedback else None,
        details=details or {},
        case_version=case.version,
        superseded=False,
    )
    repository.add(session, decision)
    return decision


def _sign(
    session: Session,
    case: Case,
    user: User,
    reason: str | None,
    feedback: FeedbackKind | None,
    now: datetime,
    policy: SignoffPolicy,
) -> DecisionOutcome:
    facts = case_facts(session, case)
    ruling = check_signature(facts, signer_of(user), policy)
    # Governance is the authority on signatures (routing's count is an early estimate).
    required = required_signatures(facts, policy)
    if not ruling.allowed:
        audit.record(
            session,
            actor_of(user),
            "signature.denied",
            "case",
            case.id,
            after={"reason": ruling.reason, "message": ruling.message},
        )
        return DecisionOutcome(
            case.id,
            False,
            case.state,
            denial=ruling.reason,
            message=ruling.message,
            signatures=len(facts.signatures),
            required_signatures=required,
        )
    _record(session, case, user, DecisionAction.SIGN, reason, feedback)
    signatures = len(facts.signatures) + 1
    before = case.state
    posting_id = None
    if ruling.completes:
        case.state = CaseState.APPROVED.value
        case.audit_sampled = not facts.reason_codes and in_audit_sample(case.id)
        posting = ErpPosting(
            case_id=case.id,
            idempotency_key=f"tollgate-case-{case.id}",
            state=PostingState.PENDING.value,
            attempts=0,
            next_attempt_at=now,
        )
        repository.add(session, posting)
        posting_id = posting.id
    _clear_claim(case)
    session.flush()
    audit.record(
        session,
        actor_of(user),
        "case.signed",
        "case",
        case.id,
        before={"state": before},
        after={
            "state": case.state,
            "signature": signatures,
            "of": required,
            "outbox": posting_id,
            "audit_sampled": case.audit_sampled,
        },
    )
    return DecisionOutcome(
        case.id,
        True,
        case.state,
        message=ruling.message,
        signatures=signatures,
        required_signatures=required,
        posting_id=posting_id,
    )
