"""What the review screens show beyond a case's own data: claims, signatures, outbox, SLA."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.cases import repository as cases_repository
from app.cases.schemas import CaseSummary
from app.db.base import utcnow
from app.db.tables import Case, CaseState, User
from app.errors import NotFound
from app.reviews import repository as reviews_repository
from app.reviews import service as reviews
from app.users import repository as users_repository
from governance.signoff import required_signatures

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
        OutboxView(posting.state, posting.idempotency_key, posting.attempts) if posting else None
    )
    claimable = case.state in OPEN_STATES and (claim.holder is None or claim.mine)
    return CaseWork(claim, signoff, outbox, claimable)
