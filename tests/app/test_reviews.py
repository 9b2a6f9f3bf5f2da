"""The review queue on both backends: claims and leases, decisions, sign-off, outbox, audit."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.base import utcnow
from app.db.tables import AuditEvent, Case, CaseState, DecisionAction, ErpPosting, User
from app.documents.service import ingest_bytes
from app.errors import Conflict, InvalidInput
from app.reviews import service as reviews
from app.users import service as users

ADMIN = Actor("admin", "admin")
UPLOADER = Actor("uma", "clerk")
PASSWORD = "correct horse battery"


def _user(session: Session, name: str, role: str, limit: str | None = None) -> User:
    return users.create_user(
        session,
        username=name,
        display_name=name.title(),
        role=role,
        password=PASSWORD,
        actor=ADMIN,
        approval_limit=Decimal(limit) if limit else None,
        limit_currency="EUR" if limit else None,
    )


@pytest.fixture
def team(loaded: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, User]:
    # The production hasher costs ~64 MiB and tens of ms by design; these tests check logic.
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    return {
        "clara": _user(loaded, "clara", "clerk"),
        "uma": _user(loaded, "uma", "clerk"),
        "anna": _user(loaded, "anna", "approver", "50000"),
        "ben": _user(loaded, "ben", "approver", "50000"),
        "carl": _user(loaded, "carl", "controller"),
    }


def _case(session: Session, blobs: BlobStore, demo_dir: Path, name: str) -> Case:
    path = demo_dir / "documents" / name
    outcome = ingest_bytes(
        session, blobs, path.read_bytes(), filename=name, channel="test", actor=UPLOADER
    )
    assert outcome.case is not None
    return outcome.case


def _actions(session: Session, case_id: int) -> list[str]:
    return list(
        session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.object_type == "case", AuditEvent.object_id == str(case_id))
            .order_by(AuditEvent.seq)
        )
    )


def test_a_claim_is_exclusive_until_its_lease_expires(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    version = case.version
    now = utcnow()
    mine = reviews.claim(loaded, case.id, team["clara"], now=now)
    assert mine.version == version + 1
    assert loaded.get(Case, case.id).state == CaseState.IN_REVIEW.value  # type: ignore[union-attr]
    with pytest.raises(Conflict) as taken:
        reviews.claim(loaded, case.id, team["anna"], now=now + timedelta(minutes=1))
    assert taken.value.code == "ALREADY_CLAIMED"
    # After the lease, the case is free again and the first clerk's token is worthless.
    later = now + reviews.LEASE + timedelta(seconds=1)
    theirs = reviews.claim(loaded, case.id, team["anna"], now=later)
    with pytest.raises(Conflict) as lost:
        reviews.decide(
            loaded,
            case.id,
            team["clara"],
            token=mine.token,
            version=mine.version,
            action=DecisionAction.SIGN,
            now=later,
        )
    assert lost.value.code == "CLAIM_LOST"
    assert theirs.version > mine.version


def test_claim_next_gives_each_clerk_a_different_case(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    for name in ("001-clean-1.xml", "002-clean-2.xml", "006-price-variance.xml"):
        _case(loaded, blobs, demo_dir, name)
    first = reviews.claim_next(loaded, team["clara"])
    second = reviews.claim_next(loaded, team["anna"])
    assert first is not None and second is not None
    assert first.case_id != second.case_id
    urgent = loaded.scalars(
        select(Case.id).order_by(Case.priority.desc(), Case.sla_due_at, Case.id)
    ).first()
    assert first.case_id == urgent


def test_a_clean_case_signed_once_is_approved_with_one_outbox_row(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    claim = reviews.claim(loaded, case.id, team["clara"])
    outcome = reviews.decide(
        loaded,
        case.id,
        team["clara"],
        token=claim.token,
        version=claim.version,
        action=DecisionAction.SIGN,
    )
    assert outcome.allowed and outcome.state == CaseState.APPROVED.value
    postings = loaded.scalars(select(ErpPosting).where(ErpPosting.case_id == case.id)).all()
    assert [p.id for p in postings] == [outcome.posting_id]
    assert postings[0].state == "pending"
    assert _actions(loaded, case.id)[-2:] == ["case.claimed", "case.signed"]
    assert loaded.get(Case, case.id).claim_token is None  # type: ignore[union-attr]
    assert audit.verify(loaded).ok


def test_the_uploader_may_not_sign_and_the_refusal_is_audited(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    claim = reviews.claim(loaded, case.id, team["uma"])
    outcome = reviews.decide(
        loaded,
        case.id,
        team["uma"],
        token=claim.token,
        version=claim.version,
        action=DecisionAction.SIGN,
    )
    assert not outcome.allowed
    assert outcome.denial == "OWN_UPLOAD"
    assert loaded.get(Case, case.id).state == CaseState.IN_REVIEW.value  # type: ignore[union-attr]
    assert "signature.denied" in _actions(loaded, case.id)
    assert loaded.scalars(select(ErpPosting)).all() == []


def test_a_bank_change_needs_two_different_signers(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case = _case(loaded, blobs, demo_dir, "012-bank-details-changed.xml")

    def sign(name: str) -> tuple[reviews.Claim, reviews.DecisionOutcome]:
        claim = reviews.claim(loaded, case.id, team[name])
        outcome = reviews.decide(
            loaded,
            case.id,
            team[name],
            token=claim.token,
            version=claim.version,
            action=DecisionAction.SIGN,
        )
        return claim, outcome

    _, first = sign("anna")
    assert first.allowed and first.state == CaseState.IN_REVIEW.value
    assert (first.signatures, first.required_signatures) == (1, 2)
    claim, again = sign("anna")
    assert not again.allowed and again.denial == "ALREADY_SIGNED"
    # A refused signature keeps the claim (she may still hold or reject); she hands it back.
    with pytest.raises(Conflict):
        reviews.claim(loaded, case.id, team["ben"])
    reviews.release(loaded, case.id, team["anna"], claim.token)
    _, second = sign("ben")
    assert second.allowed and second.state == CaseState.APPROVED.value
    assert second.posting_id is not None
    assert len(loaded.scalars(select(ErpPosting)).all()) == 1


def test_stale_versions_and_missing_reasons_are_refused(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case = _case(loaded, blobs, demo_dir, "006-price-variance.xml")
    claim = reviews.claim(loaded, case.id, team["clara"])
    with pytest.raises(Conflict) as stale:
        reviews.decide(
            loaded,
            case.id,
            team["clara"],
            token=claim.token,
            version=claim.version - 1,
            action=DecisionAction.SIGN,
        )
    assert stale.value.code == "STALE_VERSION"
    with pytest.raises(InvalidInput):
        reviews.decide(
            loaded,
            case.id,
            team["clara"],
            token=claim.token,
            version=claim.version,
            action=DecisionAction.REJECT,
            reason=" ",
        )
    rejected = reviews.decide(
        loaded,
        case.id,
        team["clara"],
        token=claim.token,
        version=claim.version,
        action=DecisionAction.REJECT,
        reason="Price above contract: credit note requested",
    )
    assert rejected.state == CaseState.REJECTED.value
    with pytest.raises(Conflict):
        reviews.claim(loaded, case.id, team["anna"])  # closed cases are not claimable


def test_controllers_do_not_work_cases(
    loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    with pytest.raises(Conflict) as refused:
        reviews.claim(loaded, case.id, team["carl"])
    assert refused.value.status_code == 403


def test_login_sessions(loaded: Session, team: dict[str, User]) -> None:
    now = utcnow()
    session = users.log_in(loaded, "clara", PASSWORD, lifetime=timedelta(hours=8), now=now)
    idle = timedelta(minutes=30)
    assert users.resolve(loaded, session.token, idle_timeout=idle, now=now) is not None
    assert users.resolve(loaded, "forged", idle_timeout=idle, now=now) is None
    assert users.resolve(loaded, session.token, idle_timeout=idle, now=now + idle) is None
    with pytest.raises(Exception, match="wrong user name or password"):
        users.log_in(loaded, "clara", "nope", lifetime=timedelta(hours=8))
    with pytest.raises(Exception, match="wrong user name or password"):
        users.log_in(loaded, "nobody", PASSWORD, lifetime=timedelta(hours=8))
    actions = loaded.scalars(select(AuditEvent.action).where(AuditEvent.object_type == "user"))
    assert list(actions).count("login.failed") == 2
    stored = loaded.get(User, team["clara"].id)
    assert stored is not None and PASSWORD not in stored.password_hash
