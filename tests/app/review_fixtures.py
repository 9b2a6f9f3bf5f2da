"""Open cases in bulk for queue tests and the claim soak benchmark (bench/claim_soak.py).

Each case is a clean, triaged invoice with just the rows a review needs (document, invoice,
case); matching is not involved, so thousands are written in seconds.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import utcnow
from app.db.session import transaction
from app.db.tables import Case, CaseState, Document, InvoiceRow

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
