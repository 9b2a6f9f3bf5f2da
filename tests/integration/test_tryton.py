"""The Tryton adapter against a real trytond: sync, match, approve, post, find again."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from conftest import (
    PRODUCT_CODE,
    SUPPLIER_IBAN,
    SUPPLIER_VAT,
    TrytonInstance,
)
from sqlalchemy import select

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.db.tables import Case, CaseState, DecisionAction, ErpPosting, PostingState, Supplier, User
from app.documents.service import ingest_bytes
from app.erp import repository as erp_repository
from app.erp import service as erp_service
from app.erp import sync, worker
from app.erp.protocol import ErpRejected, ErpUnavailable, PostingRequest
from app.erp.tryton import MESSAGE_LIMIT, TrytonAdapter, _user_message
from app.masterdata import repository as masterdata_repository
from app.reviews import service as reviews
from app.users import service as users
from pipelines.canonical import DocumentLine, DocumentTotals, Invoice, Party, TaxSubtotal
from pipelines.writers.ubl import write_ubl

ACTOR = Actor("erp-sync", "system")


@pytest.fixture(scope="module")
def adapter(tryton: TrytonInstance) -> Iterator[TrytonAdapter]:
    """One adapter (one Tryton session) for the module."""
    with TrytonAdapter(
        tryton.server.url, tryton.database, tryton.user, tryton.password, timeout=20
    ) as adapter:
        yield adapter


@pytest.fixture(scope="module")
def tollgate_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A migrated Tollgate SQLite database file."""
    url = f"sqlite:///{tmp_path_factory.mktemp('tollgate') / 'tollgate.db'}"
    migrate.upgrade(url)
    return url


def _invoice(po_number: str, supplier_code: str, number: str, quantity: int) -> Invoice:
    net = Decimal("12.50") * quantity
    tax = (net * Decimal("0.19")).quantize(Decimal("0.01"))
    return Invoice(
        number=number,
        issue_date=date.today(),
        due_date=date.today() + timedelta(days=30),
        currency="EUR",
        supplier=Party(name="Acme Supplies GmbH", vat_id=SUPPLIER_VAT, iban=SUPPLIER_IBAN),
        buyer=Party(name="Dunder Mifflin"),
        po_reference=po_number,
        lines=[
            DocumentLine(
                line_id="1",
                item_id=PRODUCT_CODE,
                description="Widget 100",
                quantity=Decimal(quantity),
                unit_code="C62",
                unit_price=Decimal("12.50"),
                tax_category="S",
                tax_rate=Decimal(19),
                line_amount=net,
                po_line_ref="1",
            )
        ],
        tax_breakdown=[
            TaxSubtotal(category="S", rate=Decimal(19), taxable_amount=net, tax_amount=tax)
        ],
        totals=DocumentTotals(
            line_extension=net,
            tax_exclusive=net,
            tax=tax,
            tax_inclusive=net + tax,
            payable=net + tax,
        ),
    )


def test_check_names_the_server_and_company(adapter: TrytonAdapter) -> None:
    text = adapter.check()
    assert text.startswith("Tryton 8.2")
    assert "Dunder Mifflin" in text


def test_fetches_supplier_po_and_partial_receipt(
    adapter: TrytonAdapter, tryton: TrytonInstance
) -> None:
    (supplier,) = adapter.fetch_suppliers()
    assert supplier.ref == tryton.purchase["supplier_code"]
    assert (supplier.vat_id, supplier.ibans, supplier.blocked) == (
        SUPPLIER_VAT,
        (SUPPLIER_IBAN,),
        False,
    )
    (po,) = adapter.fetch_purchase_orders()
    assert po.number == tryton.purchase["number"]
    assert (po.supplier_ref, po.currency, po.status) == (supplier.ref, "EUR", "open")
    (line,) = po.lines
    assert (line.line_no, line.item_id, line.unit_code) == ("1", PRODUCT_CODE, "C62")
    assert (line.quantity, line.unit_price, line.tax_rate) == (
        Decimal(10),
        Decimal("12.50"),
        Decimal(19),
    )
    (receipt,) = adapter.fetch_receipts()
    assert receipt.po_number == po.number
    assert [(r.po_line_no, r.quantity) for r in receipt.lines] == [("1", Decimal(6))]


def test_sync_match_approve_post_and_find(
    adapter: TrytonAdapter, tryton: TrytonInstance, tollgate_db: str, tmp_path: Path
) -> None:
    engine = make_engine(tollgate_db)
    factory = make_session_factory(engine)
    po_number = tryton.purchase["number"]

    with transaction(factory) as session:
        summary = sync.erp_sync(session, adapter, ACTOR)
    assert (summary.since, summary.suppliers, summary.purchase_orders, summary.receipts) == (
        None,
        1,
        1,
        1,
    )

    with transaction(factory) as session:
        supplier = session.scalars(select(Supplier)).one()
        assert supplier.vat_id == SUPPLIER_VAT
        po = masterdata_repository.po_by_number(session, po_number)
        assert po is not None
        # The second sync is incremental from the recorded watermark and changes nothing.
        again = sync.erp_sync(session, adapter, ACTOR)
        assert again.since is not None and again.since < again.watermark
        assert again.load.purchase_orders_created == 0 and again.load.receipts_created == 0

    doc = _invoice(po_number, tryton.purchase["supplier_code"], "ACME-2026-0042", quantity=6)
    with transaction(factory) as session:
        outcome = ingest_bytes(
            session,
            BlobStore(tmp_path / "blobs"),
            write_ubl(doc),
            filename="acme-0042.xml",
            channel="test",
            actor=Actor("clerk", "clerk"),
        )
        assert outcome.case is not None
        # 6 invoiced, 6 received, 10 ordered at the PO price: a clean 3-way match.
        assert outcome.reasons == []
        case_id = outcome.case.id
        approver = users.create_user(
            session,
            username="anna",
            display_name="Anna",
            role="approver",
            password="a long enough password",
            actor=ACTOR,
            approval_limit=Decimal("50000"),
            limit_currency="EUR",
        )

    # Sign-off as a person does it: claim, sign; the signature writes the outbox row.
    with transaction(factory) as session:
        approver = session.scalars(select(User).where(User.username == "anna")).one()
        held = reviews.claim(session, case_id, approver)
        outcome_of_sign = reviews.decide(
            session,
            case_id,
            approver,
            token=held.token,
            version=held.version,
            action=DecisionAction.SIGN,
        )
        assert outcome_of_sign.state == CaseState.APPROVED.value

    # The outbox worker posts it to Tryton: find_posted first, then post_invoice.
    stats = worker.run_round(factory, adapter)
    assert (stats.claimed, stats.posted, stats.errors) == (1, 1, [])
    assert worker.run_once(factory, adapter) == 0  # nothing left to do

    with transaction(factory) as session:
        posting = session.scalars(select(ErpPosting).where(ErpPosting.case_id == case_id)).one()
        assert posting.state == PostingState.POSTED.value
        assert session.get(Case, case_id).state == CaseState.POSTED.value  # type: ignore[union-attr]
        reference = posting.erp_reference
        assert reference
        facts = erp_repository.posting_facts(session, posting.id)
        assert facts is not None
        request = erp_service.build_request(facts)
    assert request.po_number == po_number
    assert request.signers == ("anna",)

    # What Tryton holds now: one posted supplier invoice, linked to the PO line, with our key.
    (inv,) = adapter.search_read(
        "account.invoice",
        [("type", "=", "in")],
        ["number", "state", "reference", "description", "total_amount", "lines"],
    )
    assert inv["number"] == reference
    assert inv["state"] == "posted"
    assert inv["reference"] == "ACME-2026-0042"
    assert inv["description"] == f"tollgate:{request.idempotency_key}"
    assert inv["total_amount"] == Decimal("89.25")
    (line,) = adapter.read("account.invoice.line", inv["lines"], ["origin", "quantity"])
    assert line["origin"] == f"purchase.line,{tryton.purchase['line_ids'][0]}"
    assert line["quantity"] == 6
    (purchase,) = adapter.read("purchase.purchase", [tryton.purchase["id"]], ["invoices"])
    assert purchase["invoices"] == [inv["id"]]

    # A retry after a crash asks first, and finds it: no second invoice.
    assert adapter.find_posted(request.idempotency_key) == reference
    assert adapter.post_invoice(request) == reference
    assert len(adapter.search_read("account.invoice", [("type", "=", "in")], ["id"])) == 1
    (listed,) = adapter.list_posted(date.today() - timedelta(days=1), date.today())
    assert (listed.idempotency_key, listed.erp_reference, listed.gross) == (
        request.idempotency_key,
        reference,
        Decimal("89.25"),
    )
    assert adapter.list_posted(date.today() + timedelta(days=1), date.today() + timedelta(2)) == []
    engine.dispose()


def test_unknown_po_is_rejected(adapter: TrytonAdapter) -> None:
    doc = _invoice("NO-SUCH-PO", "2", "X-1", quantity=1)
    request = PostingRequest("k-unknown-po", 1, doc, None, "NO-SUCH-PO")
    with pytest.raises(ErpRejected, match="NO-SUCH-PO"):
        adapter.post_invoice(request)


def test_tryton_user_error_is_rejected_and_truncated(
    adapter: TrytonAdapter, tryton: TrytonInstance
) -> None:
    # An invoice without its required fields fails Tryton's validation: a user error.
    with pytest.raises(ErpRejected, match="UserError") as info:
        adapter.call("account.invoice", "create", [{"type": "in"}])
    assert len(info.value.message) <= MESSAGE_LIMIT + 20
    huge = ["UserError", ["x" * 60_000, "y" * 60_000, None]]
    assert len(_user_message(huge)) < 1100


def test_unreachable_server_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    adapter = TrytonAdapter(
        "http://127.0.0.1:9", "db", "admin", "pw", 1, transport=httpx.MockTransport(refuse)
    )
    with pytest.raises(ErpUnavailable, match="unreachable"):
        adapter.check()


def test_server_error_is_unavailable_and_user_error_rejected() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        body = request.read().decode()
        if "common.db.login" in body:
            return httpx.Response(200, json={"id": 1, "result": [1, "token", None]})
        if "get_preferences" in body:
            return httpx.Response(200, json={"id": 2, "result": {"company": 1}})
        if "party.party" in body:
            return httpx.Response(
                200, json={"id": 3, "error": ["UserError", ["bad " + "z" * 70_000, "", None]]}
            )
        return httpx.Response(503, text="maintenance")

    adapter = TrytonAdapter("http://t", "db", "u", "p", 1, transport=httpx.MockTransport(answer))
    with pytest.raises(ErpRejected) as rejected:
        adapter.search_read("party.party", [], ["id"])
    assert rejected.value.message.startswith("UserError: bad z")
    assert len(rejected.value.message) < 1100
    with pytest.raises(ErpUnavailable, match="503"):
        adapter.search_read("account.invoice", [], ["id"])
