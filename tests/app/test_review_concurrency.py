"""Concurrency on real databases: two approvers at once never approve a case twice.

These tests use committed transactions on their own migrated databases (the rolled-back
session of other tests cannot be shared between threads), one per backend.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from review_fixtures import fresh_database, make_cases
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import Actor
from app.db.session import transaction
from app.db.tables import Case, CaseState, DecisionAction, ErpPosting, User
from app.errors import Conflict
from app.reviews import service as reviews
from app.users import service as users

TRIALS = 200


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def factory(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[sessionmaker[Session]]:
    """A fresh migrated database of its own: these tests commit, so they share nothing."""
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    with fresh_database(request.param, tmp_path) as made:
        yield made


def _approver(factory: sessionmaker[Session], name: str) -> int:
    with transaction(factory) as session:
        user = users.create_user(
            session,
            username=name,
            display_name=name,
            role="approver",
            password="a long enough password",
            actor=Actor("admin", "admin"),
            approval_limit=Decimal(100000),
            limit_currency="EUR",
        )
        return user.id


def _approve(factory: sessionmaker[Session], case_id: int, user_id: int) -> str:
    """Claim and sign in one transaction, as one request would; returns what happened."""
    try:
        with transaction(factory) as session:
            user = session.get(User, user_id)
            assert user is not None
            claim = reviews.claim(session, case_id, user)
            outcome = reviews.decide(
                session,
                case_id,
                user,
                token=claim.token,
                version=claim.version,
                action=DecisionAction.SIGN,
            )
            return "approved" if outcome.state == CaseState.APPROVED.value else "signed"
    except Conflict:
        return "conflict"


def test_two_approvers_at_once_approve_exactly_once(
    factory: sessionmaker[Session], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    suffix = request.node.callspec.id
    first, second = _approver(factory, f"ana-{suffix}"), _approver(factory, f"bo-{suffix}")
    case_ids = make_cases(factory, TRIALS, gross=Decimal("1200.00"), prefix=f"race-{suffix}")
    outcomes: list[tuple[str, str]] = []
    for case_id in case_ids:
        results: dict[int, str] = {}
        barrier = threading.Barrier(2)

        def run(
            user_id: int,
            case_id: int = case_id,
            barrier: threading.Barrier = barrier,
            results: dict[int, str] = results,
        ) -> None:
            barrier.wait()
            results[user_id] = _approve(factory, case_id, user_id)

        threads = [threading.Thread(target=run, args=(uid,)) for uid in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        outcomes.append((results[first], results[second]))
    with transaction(factory) as session:
        approved = session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.id.in_(case_ids), Case.state == CaseState.APPROVED.value)
        )
        postings = session.scalars(
            select(ErpPosting.case_id).where(ErpPosting.case_id.in_(case_ids))
        ).all()
    assert approved == TRIALS
    assert sorted(postings) == sorted(case_ids)  # exactly one outbox row per case
    assert all(sorted(pair) == ["approved", "conflict"] for pair in outcomes), outcomes[:5]
