"""Browser tests of the controller's audit view and the dashboard (Chromium, live server).

The module has its own server (conftest): it signs and rejects a few cases, samples one for the
audit queue, and at the end tampers with the audit log as the database's owner could (SQLite has
no append-only trigger), to see the audit view name the first bad row.
"""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from e2e_support import DOC_IMAGES, LiveServer, Person
from playwright.sync_api import expect
from sqlalchemy import select, update

from app.db.session import transaction
from app.db.tables import AuditEvent, Case, DecisionAction, InvoiceRow, User
from app.reviews import service as reviews


@pytest.fixture(scope="module")
def decided(server: LiveServer) -> dict[str, int]:
    """Clara signs two clean cases (one lands in the audit sample); Anna rejects a variance."""
    factory = server.sessions()
    picked = {
        "signed": server.cases["002-clean-2.xml"],
        "also_signed": server.cases["003-clean-3.xml"],
        "rejected": server.cases["011-freight-unplanned.xml"],
    }
    with transaction(factory) as session:
        people = {u.username: u for u in session.scalars(select(User))}
        for key, who, action, reason in (
            ("signed", "clara", DecisionAction.SIGN, None),
            ("also_signed", "clara", DecisionAction.SIGN, None),
            ("rejected", "anna", DecisionAction.REJECT, "freight was not ordered"),
        ):
            claim = reviews.claim(session, picked[key], people[who])
            outcome = reviews.decide(
                session,
                picked[key],
                people[who],
                token=claim.token,
                version=claim.version,
                action=action,
                reason=reason,
            )
            assert outcome.allowed
        # Sign-off samples 5 % deterministically; the flow needs one sampled case for sure.
        session.execute(update(Case).where(Case.id == picked["signed"]).values(audit_sampled=True))
    return picked


def test_a_controller_filters_the_log_downloads_csv_and_checks_a_sample(
    server: LiveServer, people: dict[str, Person], decided: dict[str, int]
) -> None:
    carl_person = people["carl"]
    carl = carl_person.log_in("carl")
    carl.click("#nav-audit")
    expect(carl).to_have_url(re.compile(r"/review/controller$"))
    expect(carl.locator("#decision-table tbody tr")).to_have_count(3)
    # The filters swap the log in place (htmx) and keep the URL shareable.
    carl.select_option("select[name=user]", "clara")
    carl.click("#filter-decisions")
    expect(carl).to_have_url(re.compile(r"user=clara"))
    expect(carl.locator("#decision-table tbody tr")).to_have_count(2)

    with carl.expect_download() as info:
        carl.click("#csv-export")
    rows = list(csv.reader(io.StringIO(info.value.path().read_text(encoding="utf-8"))))
    header, body = rows[0], [r for r in rows[1:] if r[0] != "TOTAL"]
    totals = [r for r in rows[1:] if r[0] == "TOTAL"]
    assert {r[header.index("user")] for r in body} == {"clara"} and len(body) == 2
    with transaction(server.sessions()) as session:
        grosses = {
            case_id: session.scalar(
                select(InvoiceRow.gross_total)
                .join(Case, Case.invoice_id == InvoiceRow.id)
                .where(Case.id == case_id)
            )
            for case_id in (decided["signed"], decided["also_signed"])
        }
    total = sum((Decimal(t[header.index("gross")]) for t in totals), Decimal(0))
    assert total == sum((g for g in grosses.values() if g is not None), Decimal(0))

    sample = carl.locator(f'#sample-queue tr[data-case="{decided["signed"]}"]')
    sample.locator("input[name=note]").fill("PO, receipt and invoice agree")
    sample.locator(".check-button").click()
    expect(carl).to_have_url(re.compile(r"/review/controller#sample$"))
    expect(sample.locator("td.check")).to_contain_text("audited by carl")
    carl.click("#verify-chain")
    expect(carl.locator("#chain-status")).to_contain_text("Chain OK")
    carl.locator("#chain").scroll_into_view_if_needed()
    carl_person.shot("controller-audit-ok", also=DOC_IMAGES / "controller-audit.png")


def test_a_controller_sees_the_dashboard(server: LiveServer, people: dict[str, Person]) -> None:
    carl_person = people["carl"]
    carl = carl_person.log_in("carl")
    carl.click("#nav-dashboard")
    expect(carl).to_have_url(re.compile(r"/review/dashboard$"))
    expect(carl.locator("svg#chart-reasons g.bar").first).to_be_visible()
    bars = carl.locator("svg#chart-reasons g.bar")
    rows = carl.locator("#table-reasons tbody tr")
    expect(rows).to_have_count(bars.count())
    expect(carl.locator("#kpi-sla")).not_to_have_text("0")  # one case was set overdue
    expect(carl.locator("svg#chart-aging")).to_be_visible()
    carl_person.shot("dashboard", also=DOC_IMAGES / "dashboard.png", full_page=True)


def test_a_controller_sees_a_tampered_chain_reported(
    server: LiveServer, people: dict[str, Person]
) -> None:
    carl_person = people["carl"]
    carl = carl_person.log_in("carl")
    carl.goto("/review/controller#chain")
    checkpoint = carl.locator("#chain-head code").inner_text()
    with transaction(server.sessions()) as session:
        victim = session.scalar(
            select(AuditEvent.seq).where(AuditEvent.action == "case.signed").limit(1)
        )
        assert victim is not None
        # What a database owner could do; SQLite has no append-only trigger to stop it.
        session.execute(update(AuditEvent).where(AuditEvent.seq == victim).values(actor="mallory"))
    carl.fill("#checkpoint", checkpoint)
    carl.click("#verify-chain")
    status = carl.locator("#chain-status")
    expect(status).to_contain_text("Chain BROKEN")
    expect(status).to_contain_text(f"First bad row: seq {victim} ")
    carl_person.shot("controller-audit-tampered")
