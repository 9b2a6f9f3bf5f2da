"""Databases and cases for queue and outbox tests and their benchmarks (bench/claim_soak.py,
bench/posting_crash.py).

Each case is a clean, triaged invoice with just the rows a review needs (document, invoice,
case); matching is not involved, so thousands are written in seconds. `seed_approved` leaves
them as sign-off does: approved, with a pending outbox row.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.audit import service as audit
from app.audit.service import Actor
from app.db import migrate
from app.db.base import utcnow
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import Case, CaseState, Document, ErpPosting, InvoiceRow, PostingState
from pipelines.canonical import DocumentLine, DocumentTotals, Invoice, Party, TaxSubtotal

BATCH = 5000


def make_cases(
    factory: sessionmaker[Session], count: int, *, gross: Decimal, prefix: str
) -> list[int]:
    """`count` open clean cases (EUR, `gross` each); returns their ids."""
    now = utcnow()
    ids: list[int] = []
    for start in range(0, count, BATCH):
        numbers = [f"{prefix}-{i}" for i in range(start, min(count, start + BATCH))]
        with transaction(factory) as session:
            session.execute(
                insert(Document),
                [
                    {
                        "sha256": hashlib.sha256(n.encode()).hexdigest(),
                        "size_bytes": 1,
                        "storage_path": f"synthetic/{n}",
                        "intake_channel": "test",
                        "uploaded_by": "seeder",
                        "parse_status": "parsed",
                        "received_at": now,
                    }
                    for n in numbers
                ],
            )
            documents = dict(
                session.execute(
                    select(Document.storage_path, Document.id).where(
                        Document.storage_path.in_([f"synthetic/{n}" for n in numbers])
                    )
                ).all()
            )
            session.execute(
                insert(InvoiceRow),
                [
                    {
                        "document_id": documents[f"synthetic/{n}"],
                        "kind": "invoice",
                        "number": n,
                        "currency": "EUR",
                        "gross_total": gross,
                        "canonical": {},
                    }
                    for n in numbers
                ],
            )
            invoices = session.execute(
                select(InvoiceRow.id, InvoiceRow.number).where(InvoiceRow.number.in_(numbers))
            ).all()
            session.execute(
                insert(Case),
                [
                    {
                        "invoice_id": invoice_id,
                        "state": CaseState.TRIAGED.value,
                        "queue": "clean",
                        "priority": 20 + i % 50,
                        "sla_due_at": now + timedelta(hours=24 + i % 48),
                        "required_signatures": 1,
                        "audit_sampled": False,
                        "version": 1,
                    }
                    for i, (invoice_id, _number) in enumerate(invoices)
                ],
            )
            ids.extend(
                session.scalars(
                    select(Case.id).where(Case.invoice_id.in_([i for i, _ in invoices]))
                )
            )
    return ids


def invoice_for(number: str, gross: Decimal) -> Invoice:
    """A small, balanced, zero-rated invoice that UBL can carry."""
    return Invoice(
        number=number,
        issue_date=date(2026, 1, 15),
        due_date=date(2026, 2, 14),
        currency="EUR",
        supplier=Party(name="Acme Supplies GmbH", vat_id="DE123456789"),
        buyer=Party(name="Tollgate Buyer BV"),
        po_reference="PO-1001",
        lines=[
            DocumentLine(
                line_id="1",
                description="widgets",
                quantity=Decimal(1),
                unit_price=gross,
                line_amount=gross,
                tax_category="Z",
                tax_rate=Decimal(0),
            )
        ],
        tax_breakdown=[
            TaxSubtotal(category="Z", rate=Decimal(0), taxable_amount=gross, tax_amount=Decimal(0))
        ],
        totals=DocumentTotals(
            line_extension=gross,
            tax_exclusive=gross,
            tax=Decimal(0),
            tax_inclusive=gross,
            payable=gross,
        ),
    )


def seed_approved(
    factory: sessionmaker[Session],
    count: int,
    *,
    prefix: str,
    gross: Decimal = Decimal("1190.00"),
    readable: bool = True,
) -> list[tuple[int, str]]:
    """`count` approved cases with pending outbox rows, as sign-off leaves them; (case, key)."""
    case_ids = make_cases(factory, count, gross=gross, prefix=prefix)
    now = utcnow()
    out: list[tuple[int, str]] = []
    with transaction(factory) as session:
        for case_id in case_ids:
            case = session.get(Case, case_id)
            assert case is not None
            if readable:
                number = session.scalar(
                    select(InvoiceRow.number).where(InvoiceRow.id == case.invoice_id)
                )
                assert number is not None
                canonical = invoice_for(number, gross).model_dump(mode="json")
                session.execute(
                    update(InvoiceRow)
                    .where(InvoiceRow.id == case.invoice_id)
                    .values(canonical=canonical)
                )
            case.state = CaseState.APPROVED.value
            key = f"tollgate-case-{case_id}"
            session.add(
                ErpPosting(
                    case_id=case_id,
                    idempotency_key=key,
                    state=PostingState.PENDING.value,
                    attempts=0,
                    next_attempt_at=now,
                )
            )
            # Sign-off audits the approval (and so creates the chain head before any worker).
            audit.record(
                session,
                Actor("seeder", "approver"),
                "case.signed",
                "case",
                case_id,
                after={"state": CaseState.APPROVED.value},
            )
            out.append((case_id, key))
    return out


@contextmanager
def fresh_database(kind: str, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh migrated SQLite or PostgreSQL database for one test (skips without PostgreSQL).

    For tests that commit: they share nothing with the rolled-back sessions of the others.
    """
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
        migrate.upgrade(url)
        engine = make_engine(url)
        yield make_session_factory(engine)
        engine.dispose()
        return
    admin_url = os.environ.get("TOLLGATE_TEST_POSTGRES_URL")
    if not admin_url:
        pytest.skip("TOLLGATE_TEST_POSTGRES_URL is not set (CI sets it)")
    name = f"tollgate_fresh_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        engine = make_engine(url, pool_size=10)
        yield make_session_factory(engine)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


PASSWORD = "correct horse battery"  # the review tests' people all share it


def form_field(html: str, name: str) -> str:
    """The value of a named hidden field in a page."""
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no {name} field in the page"
    return found.group(1)


def log_in(
    client: TestClient, username: str, password: str = PASSWORD, landing: str = "/review"
) -> str:
    """Log in through the form, land on `landing`; return the session's CSRF token from it."""
    form = client.get("/review/login")
    assert form.status_code == 200
    response = client.post(
        "/review/login",
        data={
            "username": username,
            "password": password,
            "next": landing,
            "login_csrf": form_field(form.text, "login_csrf"),
        },
    )
    assert response.status_code == 303, response.text
    page = client.get(landing)
    assert page.status_code == 200
    return form_field(page.text, "csrf_token")
