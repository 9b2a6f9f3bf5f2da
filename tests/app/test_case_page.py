"""The case page a clerk works from, and the decisions on it, over HTTP on both backends.

The document viewer (PDF pages as PNG, cached; e-invoices as a table), extracted fields with
confidence, the match table's highlighted variances, model outputs read from the predictions
table, and the decisions: correct a field, confirm reasons (overrides ask why), reassign, hold
with a drafted supplier message, bulk sign, and retry of a failed ERP posting.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fpdf import FPDF
from sqlalchemy import select
from sqlalchemy.orm import Session
from test_review_ui import UPLOADER, _actions, _case, _field, _login, client, team

from app.blobs import BlobStore
from app.db.base import utcnow
from app.db.tables import (
    AuditEvent,
    Case,
    CaseState,
    Decision,
    Document,
    ErpPosting,
    FindingRow,
    InvoiceRow,
    PostingState,
    Prediction,
    SupplierHintRow,
    User,
)
from app.documents import render
from app.documents.parsing import InProcessParser
from app.documents.service import ingest_bytes
from app.scoring.service import read_upload
from pipelines.parsers import ParseLimits

__all__ = ["client", "team"]  # fixtures shared with the review-screen tests


def _open(client: TestClient, case_id: int, csrf: str) -> dict[str, str]:
    """Claim a case through the UI and return the hidden fields its forms carry."""
    claimed = client.post(f"/review/cases/{case_id}/claim", data={"csrf_token": csrf})
    assert claimed.status_code == 303, claimed.text
    page = client.get(f"/review/cases/{case_id}")
    return {
        "csrf_token": csrf,
        "token": _field(page.text, "token"),
        "version": _field(page.text, "version"),
    }


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
    )


def docket_pdf(number: str) -> bytes:
    """An Acme invoice whose number sits under a label no lexicon knows ("Docket")."""
    pdf = FPDF(unit="pt", format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    for x, y, text in [
        (50, 60, "Acme Office Supplies Ltd"),
        (50, 74, "12 Mill Lane, Leeds LS3 4BT"),
        (50, 150, "Bill to"),
        (50, 164, "Tollgate Retail GmbH"),
        (350, 150, "Docket"),
        (430, 150, number),
        (350, 164, "Date"),
        (430, 164, "05/03/2026"),
        (50, 300, "Net total"),
        (430, 300, "GBP 100.00"),
        (50, 314, "VAT 20%"),
        (430, 314, "GBP 20.00"),
        (50, 328, "Total due"),
        (430, 328, "GBP 120.00"),
        (50, 780, "VAT No GB123456789"),
    ]:
        pdf.text(x, y, text)
    pdf.add_page()
    pdf.text(50, 60, "Terms: 30 days net")
    return bytes(pdf.output())


def _pdf_case(session: Session, blobs: BlobStore, number: str = "DK-4471") -> int:
    outcome = ingest_bytes(
        session, blobs, docket_pdf(number), filename="docket.pdf", channel="test", actor=UPLOADER
    )
    assert outcome.case is not None
    session.flush()
    return outcome.case.id


def test_an_einvoice_is_shown_as_a_table_with_its_fields_findings_and_history(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "007-over-received.xml")
    _login(client, "clara")
    page = client.get(f"/review/cases/{case_id}")
    assert page.status_code == 200
    html = page.text
    assert 'id="einvoice-lines"' in html and 'id="einvoice-tax"' in html
    assert 'id="field-table"' in html and "e-invoice data" in html
    assert "<img" not in html  # no PDF pages for an XML document
    # The over-received line: its received cell is highlighted and its variance shown.
    row = re.search(r'<tr class="exception">.*?</tr>', html, re.S)
    assert row is not None
    assert 'class="num variance"' in row.group(0) and "QTY_OVER_RECEIVED" in row.group(0)
    assert 'id="no-predictions"' in html
    assert "case.created" in html and "No decisions yet." in html
    assert "<script>" not in html and "style=" not in html  # CSP: nothing inline


def test_model_outputs_show_probability_explanation_and_version(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "006-price-variance.xml")
    for family, name, output, explanation in [
        (
            "reason",
            "tollgate-reason",
            {
                "probabilities": {"PRICE_VARIANCE": 0.91, "TAX_MISMATCH": 0.04},
                "predicted": ["PRICE_VARIANCE"],
            },
            [{"feature": "price_delta_pct", "contribution": 0.42, "text": "price 8 % above PO"}],
        ),
        (
            "anomaly",
            "tollgate-anomaly",
            {"duplicate_probability": 0.73, "duplicate_of": 4, "anomaly_score": 0.61},
            [],
        ),
        (
            "delay",
            "tollgate-delay",
            {"p50_hours": 30.5, "p90_hours": 80.0, "p_sla_breach": 0.2},
            [],
        ),
    ]:
        loaded.add(
            Prediction(
                case_id=case_id,
                family=family,
                model_name=name,
                model_version="7",
                run_id="r1",
                output=output,
                explanation=explanation,
            )
        )
    loaded.flush()
    _login(client, "clara")
    html = client.get(f"/review/cases/{case_id}").text
    assert "tollgate-reason v7" in html and "91.0 %" in html
    assert "price 8 % above PO" in html and "+0.420" in html
    assert 'class="card prediction flagged" id="prediction-anomaly"' in html
    assert "73.0 %" in html and "case 4" in html
    assert "30.5 h" in html and "80.0 h" in html


def test_a_pdf_is_rendered_page_by_page_cached_and_served_only_to_logged_in_users(
    client: TestClient, loaded: Session, blobs: BlobStore
) -> None:
    case_id = _pdf_case(loaded, blobs)
    _login(client, "clara")
    html = client.get(f"/review/cases/{case_id}").text
    assert f'src="/review/cases/{case_id}/pages/1.png"' in html
    assert f'src="/review/cases/{case_id}/pages/2.png"' in html
    assert "/pages/3.png" not in html
    # Fields read from the PDF carry their confidence and where they were read; the unsure or
    # missing ones (the number under "Docket") are highlighted for checking.
    assert "page 1" in html
    number_row = re.search(r'<tr class="([^"]*)" id="field-invoice_number">', html)
    assert number_row is not None and number_row.group(1) == "low-confidence"
    assert "not found in the PDF" in html
    first = client.get(f"/review/cases/{case_id}/pages/1.png")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    assert first.content.startswith(b"\x89PNG\r\n\x1a\n")
    document = loaded.scalars(select(Document).where(Document.filename == "docket.pdf")).one()
    cached = list((blobs.root / "renders").rglob(f"{document.sha256}-p1-*.png"))
    assert len(cached) == 1
    assert client.get(f"/review/cases/{case_id}/pages/1.png").content == first.content
    assert client.get(f"/review/cases/{case_id}/pages/3.png").status_code == 404
    assert client.get(f"/review/cases/{case_id}/pages/0.png").status_code == 404
    # Last: a refused request rolls back the test's shared transaction.
    client.cookies.clear()
    anonymous = client.get(f"/review/cases/{case_id}/pages/1.png")
    assert anonymous.status_code == 303  # to the login page


def test_rendering_refuses_pages_beyond_the_limit_and_unreadable_pdfs(blobs: BlobStore) -> None:
    pdf = FPDF()
    for _ in range(render.MAX_PAGES + 3):
        pdf.add_page()
    data = bytes(pdf.output())
    assert render.page_count(data) == render.MAX_PAGES + 3
    assert render.viewable_pages(data) == render.MAX_PAGES
    rel = blobs.put(data)
    assert render.render_page(blobs, rel, "f" * 64, render.MAX_PAGES).startswith(b"\x89PNG")
    with pytest.raises(Exception, match="not viewable"):
        render.render_page(blobs, rel, "f" * 64, render.MAX_PAGES + 1)
    assert render.page_count(b"%PDF-1.4 garbage") == 0


def test_correcting_a_field_rematches_learns_a_hint_and_bars_the_corrector_from_signing(
    client: TestClient, loaded: Session, blobs: BlobStore
) -> None:
    case_id = _pdf_case(loaded, blobs)
    before = loaded.get(Case, case_id)
    assert before is not None
    invoice_id = before.invoice_id
    invoice = loaded.get(InvoiceRow, invoice_id)
    assert invoice is not None and invoice.number is None  # "Docket" is no known label
    assert "BR-02" in set(loaded.scalars(select(FindingRow.rule_id)))
    csrf = _login(client, "clara")
    form = _open(client, case_id, csrf)
    bad = client.post(
        f"/review/cases/{case_id}/correct",
        data={**form, "field": "issue_date", "value": "5th of March"},
        headers={"HX-Request": "true"},
    )
    assert bad.status_code == 422
    assert bad.text.lstrip().startswith('<div id="case-body">')
    assert 'id="correct-error"' in bad.text and "YYYY-MM-DD" in bad.text
    fixed = client.post(
        f"/review/cases/{case_id}/correct",
        data={**form, "field": "invoice_number", "value": "DK-4471"},
        headers={"HX-Request": "true"},
    )
    assert fixed.status_code == 200, fixed.text
    assert fixed.headers["HX-Redirect"] == f"/review/cases/{case_id}"
    invoice = loaded.get(InvoiceRow, invoice_id)
    assert invoice is not None
    assert invoice.number == "DK-4471" and invoice.canonical["number"] == "DK-4471"
    assert invoice.extraction is not None
    assert invoice.extraction["invoice_number"]["corrected_by"] == "clara"
    decision = loaded.scalars(
        select(Decision).where(Decision.case_id == case_id, Decision.action == "correct")
    ).one()
    assert decision.details["before"] is None and decision.details["after"] == "DK-4471"
    assert "MISSING_DATA" in decision.details["reasons_before"]
    rules = set(loaded.scalars(select(FindingRow.rule_id).where(FindingRow.case_id == case_id)))
    assert "BR-02" not in rules and "BR-16" in rules  # the number is there; lines never were
    assert decision.details["hint_learnt"] is True
    hint = loaded.scalars(select(SupplierHintRow)).one()
    assert hint.labels["labels"] == {"Docket": "invoice_number"}
    assert [e.object_id for e in _events(loaded, "case.rematched")] == [str(case_id)]
    assert _events(loaded, "case.corrected")[0].after == {
        "field": "invoice_number",
        "value": "DK-4471",
        "reasons": decision.details["reasons_after"],
        "hint_learnt": True,
    }
    # The old form is stale now, and the corrector may not sign.
    stale = client.post(f"/review/cases/{case_id}/decide", data={**form, "action": "sign"})
    assert stale.status_code == 409
    page = client.get(f"/review/cases/{case_id}")
    assert "corrected by clara" in page.text
    signed = client.post(
        f"/review/cases/{case_id}/decide",
        data={
            "csrf_token": csrf,
            "token": _field(page.text, "token"),
            "version": _field(page.text, "version"),
            "action": "sign",
        },
    )
    assert signed.status_code == 403 and "Signature refused" in signed.text
    # The supplier's next invoice is read with the lesson: its number is found at intake.
    later = loaded.get(Case, _pdf_case(loaded, blobs, "DK-4472"))
    assert later is not None
    later_invoice = loaded.get(InvoiceRow, later.invoice_id)
    assert later_invoice is not None and later_invoice.number == "DK-4472"
    assert later_invoice.supplier_id == invoice.supplier_id
    # Scoring an upload of the supplier's PDF reads it with the same lesson.
    read = read_upload(loaded, InProcessParser(ParseLimits()), docket_pdf("DK-4473"))
    assert read.document.number == "DK-4473"


def test_confirming_reasons_against_the_model_asks_why(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "006-price-variance.xml")
    loaded.add(
        Prediction(
            case_id=case_id,
            family="reason",
            model_name="tollgate-reason",
            model_version="3",
            output={"probabilities": {"TAX_MISMATCH": 0.6}, "predicted": ["TAX_MISMATCH"]},
            explanation=[],
        )
    )
    loaded.flush()
    csrf = _login(client, "clara")
    form = _open(client, case_id, csrf)
    page = client.get(f"/review/cases/{case_id}").text
    assert "model says: TAX_MISMATCH" in page
    unexplained = client.post(
        f"/review/cases/{case_id}/reasons",
        data={**form, "codes": ["PRICE_VARIANCE"]},
        headers={"HX-Request": "true"},
    )
    assert unexplained.status_code == 422
    assert 'id="reasons-error"' in unexplained.text and "say why" in unexplained.text
    unknown = client.post(
        f"/review/cases/{case_id}/reasons", data={**form, "codes": ["NOT_A_CODE"]}
    )
    assert unknown.status_code == 422
    done = client.post(
        f"/review/cases/{case_id}/reasons",
        data={**form, "codes": ["PRICE_VARIANCE"], "feedback": "model_wrong", "note": "PO price"},
    )
    assert done.status_code == 303
    decision = loaded.scalars(
        select(Decision).where(Decision.case_id == case_id, Decision.action == "confirm_reasons")
    ).one()
    assert decision.feedback_kind == "model_wrong" and decision.details["override"] is True
    assert decision.details["confirmed"] == ["PRICE_VARIANCE"]
    event = _events(loaded, "case.reasons_confirmed")[0]
    assert (event.model_name, event.model_version) == ("tollgate-reason", "3")
    # Agreeing with the model needs no why.
    agreed = client.post(
        f"/review/cases/{case_id}/reasons", data={**form, "codes": ["TAX_MISMATCH"]}
    )
    assert agreed.status_code == 303


def test_reassign_moves_the_claim_to_another_clerk(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path, team: dict[str, User]
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "008-no-receipt.xml")
    csrf = _login(client, "clara")
    form = _open(client, case_id, csrf)
    page = client.get(f"/review/cases/{case_id}").text
    assert '<option value="uma">' in page and '<option value="carl">' not in page
    nobody = client.post(
        f"/review/cases/{case_id}/reassign", data={**form, "to": "carl", "reason": "x"}
    )
    assert nobody.status_code == 422 and "does not work cases" in nobody.text
    moved = client.post(
        f"/review/cases/{case_id}/reassign",
        data={**form, "to": "uma", "reason": "she knows this supplier"},
    )
    assert moved.status_code == 303 and moved.headers["location"] == f"/review?done={case_id}"
    case = loaded.get(Case, case_id)
    assert case is not None and case.claimed_by_id == team["uma"].id
    assert "claimed by <strong>uma</strong>" in client.get(f"/review/cases/{case_id}").text
    assert "case.reassigned" in _actions(loaded, "case")


def test_hold_drafts_the_supplier_message_from_the_findings(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "007-over-received.xml")
    csrf = _login(client, "clara")
    form = _open(client, case_id, csrf)
    page = client.get(f"/review/cases/{case_id}").text
    draft = re.search(r'<textarea name="reason" id="hold-reason"[^>]*>(.*?)</textarea>', page, re.S)
    assert draft is not None
    assert re.search(
        r"Credit note needed for 80 kg on line 1 \(billed 200, received 120\)", draft.group(1)
    )
    held = client.post(
        f"/review/cases/{case_id}/decide",
        data={**form, "action": "hold", "reason": draft.group(1).replace("&#39;", "'")},
    )
    assert held.status_code == 303
    decision = loaded.scalars(
        select(Decision).where(Decision.case_id == case_id, Decision.action == "hold")
    ).one()
    assert decision.reason is not None and "Credit note needed" in decision.reason


def test_bulk_sign_signs_clean_cases_and_lists_every_refusal(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    clean = [_case(loaded, blobs, demo_dir, n) for n in ("002-clean-2.xml", "003-clean-3.xml")]
    # Clean, but governance wants two signatures for its amount: never signed in bulk.
    large = _case(loaded, blobs, demo_dir, "001-clean-1.xml")
    messy = _case(loaded, blobs, demo_dir, "006-price-variance.xml")
    # uma uploaded every document: governance refuses each of her signatures.
    csrf = _login(client, "uma")
    queue = client.get("/review").text
    for case_id in clean:
        assert f'name="case_ids" value="{case_id}"' in queue
    assert f'name="case_ids" value="{messy}"' not in queue
    refused = client.post(
        "/review/bulk-sign",
        data={"csrf_token": csrf, "case_ids": [*clean, large, messy]},
        headers={"HX-Request": "true"},
    )
    assert refused.status_code == 200 and refused.headers["HX-Trigger"] == "casesChanged"
    assert "0 signed, 4 refused" in refused.text and "OWN_UPLOAD" in refused.text
    assert _actions(loaded, "case").count("signature.denied") == 2
    for case_id in clean:
        case = loaded.get(Case, case_id)
        assert case is not None and case.claimed_by_id is None  # back in the queue
    client.post("/review/logout", data={"csrf_token": csrf})
    csrf = _login(client, "clara")
    signed = client.post(
        "/review/bulk-sign", data={"csrf_token": csrf, "case_ids": [*clean, large, messy]}
    )
    assert "2 signed, 2 refused" in signed.text
    assert "sign it on its own page" in signed.text
    for case_id in clean:
        case = loaded.get(Case, case_id)
        assert case is not None and case.state == CaseState.APPROVED.value
        assert loaded.scalars(select(ErpPosting).where(ErpPosting.case_id == case_id)).one()
    for case_id in (large, messy):
        case = loaded.get(Case, case_id)
        assert case is not None and case.state == CaseState.TRIAGED.value
        assert case.claimed_by_id is None
    assert "bulk_sign.skipped" in _actions(loaded, "case")
    assert client.post("/review/bulk-sign", data={"csrf_token": csrf}).status_code == 422


def _failed_posting(session: Session, case_id: int) -> None:
    case = session.get(Case, case_id)
    assert case is not None
    case.state = CaseState.POSTING_FAILED.value
    session.add(
        ErpPosting(
            case_id=case_id,
            idempotency_key=f"tollgate-case-{case_id}",
            state=PostingState.FAILED.value,
            attempts=8,
            next_attempt_at=utcnow(),
            last_error="ERP rejected the invoice: account 4400 is closed for period 2026-03",
        )
    )
    session.flush()


def test_a_failed_posting_shows_the_erp_message_and_can_be_retried(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "003-clean-3.xml")
    _failed_posting(loaded, case_id)
    csrf = _login(client, "carl")  # a controller sees it but may not retry
    page = client.get(f"/review/cases/{case_id}").text
    assert "account 4400 is closed" in page and 'id="retry-button"' not in page
    denied = client.post(f"/review/cases/{case_id}/retry-posting", data={"csrf_token": csrf})
    assert denied.status_code == 403
    assert "erp.retry.denied" in _actions(loaded, "case")
    client.post("/review/logout", data={"csrf_token": csrf})
    csrf = _login(client, "clara")
    page = client.get(f"/review/cases/{case_id}").text
    assert 'id="retry-button"' in page and 'id="erp-message"' in page
    retried = client.post(
        f"/review/cases/{case_id}/retry-posting",
        data={"csrf_token": csrf},
        headers={"HX-Request": "true"},
    )
    assert (
        retried.status_code == 200 and retried.headers["HX-Redirect"] == f"/review/cases/{case_id}"
    )
    posting = loaded.scalars(select(ErpPosting).where(ErpPosting.case_id == case_id)).one()
    assert posting.state == PostingState.PENDING.value and posting.attempts == 0
    case = loaded.get(Case, case_id)
    assert case is not None and case.state == CaseState.APPROVED.value
    assert "erp.retry_requested" in _actions(loaded, "case")
    again = client.post(f"/review/cases/{case_id}/retry-posting", data={"csrf_token": csrf})
    assert again.status_code == 409 and "only a failed posting" in again.text


def test_new_routes_check_csrf_and_role_and_audit_denials(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    case_id = _case(loaded, blobs, demo_dir, "004-clean-4.xml")
    csrf = _login(client, "carl")
    routes = ["correct", "reasons", "reassign", "retry-posting"]
    for route in routes:
        assert client.post(f"/review/cases/{case_id}/{route}").status_code == 403
    assert client.post("/review/bulk-sign").status_code == 403
    assert _actions(loaded, "request").count("csrf.refused") == len(routes) + 1
    for route in routes:
        refused = client.post(
            f"/review/cases/{case_id}/{route}",
            data={"csrf_token": csrf, "token": "x", "version": "1", "field": "currency"},
        )
        assert refused.status_code == 403, route
        assert "controllers do not work cases" in refused.text
    bulk = client.post("/review/bulk-sign", data={"csrf_token": csrf, "case_ids": [case_id]})
    assert bulk.status_code == 403
    denied = [a for a in _actions(loaded) if a.endswith(".denied")]
    assert sorted(denied) == sorted(
        [
            "case.correct.denied",
            "case.confirm_reasons.denied",
            "case.reassign.denied",
            "erp.retry.denied",
            "case.bulk_sign.denied",
        ]
    )
    assert client.get(f"/review/cases/{case_id + 999}/pages/1.png").status_code == 404
    assert _field(client.get("/review").text, "csrf_token") == csrf


def test_the_demo_supplier_message_reads_like_a_request() -> None:
    from app.reviews.work import supplier_message

    class F:
        code = "QTY_OVER_RECEIVED"
        line_id = "3"
        unit = "C62"
        variance = Decimal("20")
        actual = Decimal("120")
        expected = Decimal("100")
        message = ""

    text = supplier_message([F()], "INV-9", date(2026, 3, 1))
    assert text.startswith("Regarding invoice INV-9 of 2026-03-01, we cannot pay it yet:")
    assert "- Credit note needed for 20 units on line 3 (billed 120, received 100)." in text


def test_similar_resolved_cases_are_listed_with_how_they_were_resolved(
    client: TestClient, loaded: Session, blobs: BlobStore, demo_dir: Path
) -> None:
    pytest.importorskip("app.scoring.service")
    past = _case(loaded, blobs, demo_dir, "002-clean-2.xml")
    now = _case(loaded, blobs, demo_dir, "003-clean-3.xml")
    csrf = _login(client, "clara")
    form = _open(client, past, csrf)
    assert (
        client.post(f"/review/cases/{past}/decide", data={**form, "action": "sign"}).status_code
        == 303
    )
    html = client.get(f"/review/cases/{now}").text
    table = re.search(r'<table class="grid compact" id="similar-cases">.*?</table>', html, re.S)
    assert table is not None
    assert f'href="/review/cases/{past}"' in table.group(0) and "sign" in table.group(0)
    assert " %" in table.group(0)


def test_every_correctable_field_round_trips_through_the_canonical_document() -> None:
    from review_fixtures import invoice_for

    from app.reviews import fields
    from app.reviews.work import DOCUMENT_ADAPTER

    doc = invoice_for("INV-1", Decimal("100.00")).model_dump(mode="json")
    typed = {
        "supplier_name": "Acme Ltd",
        "supplier_vat_id": "DE999999999",
        "iban": "de89 3704 0044 0532 0130 00",
        "invoice_number": "INV-2",
        "issue_date": "2026-03-01",
        "due_date": "2026-03-31",
        "po_reference": "PO-9",
        "currency": "usd",
        "net_total": "1,234.50",
        "tax_total": "0",
        "gross_total": "1234.50",
    }
    assert set(typed) == set(fields.SPECS)
    for name, raw in typed.items():
        value = fields.clean(name, raw)
        doc = fields.write(doc, name, value)
        assert fields.read(doc, name) == value, name
    parsed = DOCUMENT_ADAPTER.validate_python(doc)
    assert parsed.bank_iban == "DE89370400440532013000" and parsed.currency == "USD"
    assert str(parsed.totals.tax_exclusive) == "1234.50" and parsed.number == "INV-2"
    for name, raw in [("issue_date", "1.3.2026"), ("net_total", "12,3x"), ("currency", "EURO")]:
        with pytest.raises(ValueError):
            fields.clean(name, raw)
    assert fields.clean("po_reference", "   ") is None
