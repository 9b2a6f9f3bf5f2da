"""Browser tests of the review flows: a clerk, two approvers and a controller at work.

The live server, the browser and the people come from conftest.py: the real app under uvicorn on
loopback, driven through Debian's Chromium. Each flow logs in through the login form, as a
person would, and checks what the page shows, and that the browser reported no errors (a
Content-Security-Policy violation shows up as a console error).
"""

from __future__ import annotations

import re

from e2e_support import DOC_IMAGES, LiveServer, Person
from playwright.sync_api import expect


def test_a_clerk_claims_inspects_and_signs_a_clean_case(
    server: LiveServer, people: dict[str, Person]
) -> None:
    clara = people["clara"]
    page = clara.log_in("clara")
    case_id = server.cases["002-clean-2.xml"]
    # Keyboard: j selects the first row of the queue.
    page.keyboard.press("j")
    expect(page.locator("#cases tbody tr").first).to_have_class(re.compile("selected"))
    page.click(f'#cases a[href="/review/cases/{case_id}"]')
    expect(page.locator("#findings")).to_contain_text("clean match")
    expect(page.locator("#claim-status")).to_have_text("not claimed")
    page.click("#claim-button")
    expect(page.locator("#claim-status")).to_contain_text("claimed by you")
    expect(page.locator("#signatures")).to_have_text("0 of 1 signature")
    clara.shot("clean-case-claimed")
    page.click("#sign-button")
    expect(page).to_have_url(re.compile(rf"/review\?done={case_id}$"))
    expect(page.locator("#notice")).to_have_text(f"Case {case_id} is now approved.")
    page.goto(f"/review/cases/{case_id}")
    expect(page.locator("#case-state")).to_have_text("approved")
    expect(page.locator("#signatures")).to_have_text("1 of 1 signature: clara")
    expect(page.locator("#outbox")).to_contain_text("ERP outbox: pending")
    clara.shot("clean-case-approved")


def test_two_approvers_co_sign_a_bank_change(server: LiveServer, people: dict[str, Person]) -> None:
    case_id = server.cases["012-bank-details-changed.xml"]
    anna = people["anna"].log_in("anna")
    anna.goto(f"/review/cases/{case_id}")
    anna.click("#claim-button")
    anna.click("#sign-button")
    expect(anna).to_have_url(re.compile(rf"/review\?done={case_id}$"))
    anna.goto(f"/review/cases/{case_id}")
    expect(anna.locator("#signatures")).to_have_text("1 of 2 signatures: anna")
    expect(anna.locator("#case-state")).to_have_text("in_review")
    # A second signature from the same person is refused in place (htmx swaps the 403).
    anna.click("#claim-button")
    anna.click("#sign-button")
    expect(anna.locator("#decision-error")).to_contain_text("Signature refused")
    expect(anna.locator("#decision-error")).to_contain_text("(ALREADY_SIGNED)")
    expect(anna).to_have_url(re.compile(rf"/review/cases/{case_id}$"))
    people["anna"].shot("bank-change-refused")
    anna.click("#handback-button")
    expect(anna).to_have_url(re.compile(rf"/review\?done={case_id}$"))

    ben_person = people["ben"]
    ben = ben_person.log_in("ben")
    row = ben.locator(f'#cases tr[data-case="{case_id}"]')
    expect(row.locator("td.claim")).to_have_text("")
    ben.goto(f"/review/cases/{case_id}")
    ben.click("#claim-button")
    expect(ben.locator("#sign-button")).to_be_visible()
    ben_person.shot("bank-change-second-signer", also=DOC_IMAGES / "review-case.png")
    ben.click("#sign-button")
    expect(ben.locator("#notice")).to_have_text(f"Case {case_id} is now approved.")
    ben.goto(f"/review/cases/{case_id}")
    expect(ben.locator("#signatures")).to_have_text("2 of 2 signatures: anna, ben")
    expect(ben.locator("#outbox")).to_contain_text("pending")


def test_a_second_approver_co_signs_above_the_four_eyes_amount(
    server: LiveServer, people: dict[str, Person]
) -> None:
    (name,) = [n for n in server.cases if n.endswith("-large-clean.xml")]
    case_id = server.cases[name]
    anna = people["anna"].log_in("anna")
    anna.goto(f"/review/cases/{case_id}")
    anna.click("#claim-button")
    anna.click("#sign-button")
    expect(anna).to_have_url(re.compile(rf"/review\?done={case_id}$"))
    anna.goto(f"/review/cases/{case_id}")
    expect(anna.locator("#signatures")).to_have_text("1 of 2 signatures: anna")
    expect(anna.locator("#case-state")).to_have_text("in_review")

    ben_person = people["ben"]
    ben = ben_person.log_in("ben")
    ben.goto(f"/review/cases/{case_id}")
    ben.click("#claim-button")
    ben.click("#sign-button")
    expect(ben.locator("#notice")).to_have_text(f"Case {case_id} is now approved.")
    ben.goto(f"/review/cases/{case_id}")
    expect(ben.locator("#signatures")).to_have_text("2 of 2 signatures: anna, ben")
    expect(ben.locator("#outbox")).to_contain_text("pending")
    ben_person.shot("above-limit-co-signed")


def test_a_controller_sees_cases_but_cannot_sign(
    server: LiveServer, people: dict[str, Person]
) -> None:
    carl = people["carl"].log_in("carl")
    expect(carl.locator("#claim-next")).to_have_count(0)
    overdue = carl.locator(f'#cases tr[data-case="{server.cases["006-price-variance.xml"]}"]')
    expect(overdue.locator(".badge.overdue")).to_have_text("overdue")
    # The filters swap the table in place (htmx) and keep the URL shareable.
    carl.select_option("select[name=reason]", "PRICE_VARIANCE")
    carl.click(".filters button")
    expect(carl).to_have_url(re.compile(r"reason=PRICE_VARIANCE"))
    expect(carl.locator("#cases tbody tr")).to_have_count(1)
    carl.goto(f"/review/cases/{server.cases['006-price-variance.xml']}")
    expect(carl.locator("#read-only")).to_be_visible()
    expect(carl.locator("#claim-button")).to_have_count(0)
    expect(carl.locator("#sign-button")).to_have_count(0)
    expect(carl.locator("#findings")).to_contain_text("PRICE_VARIANCE")


def test_claim_next_by_keyboard_then_hand_back_and_log_out(
    server: LiveServer, people: dict[str, Person]
) -> None:
    uma = people["uma"]
    page = uma.log_in("uma")
    page.keyboard.press("c")
    expect(page).to_have_url(re.compile(r"/review/cases/\d+$"))
    expect(page.locator("#claim-status")).to_contain_text("claimed by you")
    claimed = int(page.url.rsplit("/", 1)[1])
    page.goto("/review")
    expect(page.locator(f'#cases tr[data-case="{claimed}"] td.claim')).to_have_text("uma")
    uma.shot("queue", also=DOC_IMAGES / "review-queue.png")
    page.goto(f"/review/cases/{claimed}")
    page.click("#handback-button")
    expect(page.locator("#notice")).to_be_visible()
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/review/login$"))
    page.goto("/review")
    expect(page).to_have_url(re.compile(r"/review/login\?next="))


def test_the_offline_api_docs_still_run_under_their_own_policy(
    server: LiveServer, people: dict[str, Person]
) -> None:
    page = people["docs"].page
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Tollgate")
