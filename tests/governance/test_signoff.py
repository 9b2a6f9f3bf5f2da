"""Sign-off rules: four eyes, segregation of duties, approval limits, bulk signing."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from governance.routing import route_case
from governance.signoff import (
    Actor,
    CaseFacts,
    Role,
    SignoffPolicy,
    can_bulk_sign,
    check_signature,
    required_signatures,
)
from pipelines.reasons import ReasonCode as R

ALLOW = "ALLOW"

# The cast of the matrix: every role, and approvers that differ only in their limit.
ACTORS: dict[str, Actor] = {
    "clerk": Actor("u-clerk", Role.CLERK),
    "approver_high": Actor("u-app-high", Role.APPROVER, D("100000"), "EUR"),
    "approver_low": Actor("u-app-low", Role.APPROVER, D("10000"), "EUR"),
    "approver_usd": Actor("u-app-usd", Role.APPROVER, D("100000"), "USD"),
    "approver_nolimit": Actor("u-app-none", Role.APPROVER),
    "controller": Actor("u-ctrl", Role.CONTROLLER, D("1000000"), "EUR"),
    "ml_engineer": Actor("u-ml", Role.ML_ENGINEER),
    "admin": Actor("u-admin", Role.ADMIN, D("1000000"), "EUR"),
}

CASES: dict[str, CaseFacts] = {
    "clean_small": CaseFacts(1, D("1200.00"), "EUR", "in_review", frozenset(), 0.1),
    "large": CaseFacts(2, D("40000.00"), "EUR", "in_review", frozenset(), 0.2),
    "bank_changed": CaseFacts(
        3, D("3000.00"), "EUR", "in_review", frozenset({R.BANK_DETAILS_CHANGED}), 0.3
    ),
    "high_anomaly": CaseFacts(
        4, D("2000.00"), "EUR", "in_review", frozenset({R.PRICE_ANOMALY}), 0.93
    ),
}

# Written down by hand from the policy text, not computed by the code under test.
NEEDED = {"clean_small": 1, "large": 2, "bank_changed": 2, "high_anomaly": 2}

# Outcome of the signature that would complete the case (the only one that carries authority).
COMPLETING: dict[str, dict[str, str]] = {
    "clean_small": {
        "clerk": ALLOW,  # 1,200 is within the 5,000 clerk limit and the case is clean
        "approver_high": ALLOW,
        "approver_low": ALLOW,
        "approver_usd": "CURRENCY_LIMIT",
        "approver_nolimit": "OVER_LIMIT",
    },
    "large": {
        "clerk": "NEEDS_APPROVER",
        "approver_high": ALLOW,
        "approver_low": "OVER_LIMIT",
        "approver_usd": "CURRENCY_LIMIT",
        "approver_nolimit": "OVER_LIMIT",
    },
    "bank_changed": {
        "clerk": "NEEDS_APPROVER",
        "approver_high": ALLOW,
        "approver_low": ALLOW,
        "approver_usd": "CURRENCY_LIMIT",
        "approver_nolimit": "OVER_LIMIT",
    },
    "high_anomaly": {
        "clerk": "NEEDS_APPROVER",
        "approver_high": ALLOW,
        "approver_low": ALLOW,
        "approver_usd": "CURRENCY_LIMIT",
        "approver_nolimit": "OVER_LIMIT",
    },
}
NON_SIGNING = {"controller", "ml_engineer", "admin"}
INVOLVEMENT_DENIAL = {
    "own_upload": "OWN_UPLOAD",
    "own_edit": "OWN_EDIT",
    "own_bank_change": "OWN_BANK_CHANGE",
    "others": None,
}
POSITIONS = ("first", "second", "same_person_twice")


def _expected(actor: str, involvement: str, kind: str, position: str) -> tuple[str, bool]:
    """The outcome and `completes` flag an auditor expects, from the tables above."""
    if actor in NON_SIGNING:
        return "ROLE_CANNOT_SIGN", False
    own = INVOLVEMENT_DENIAL[involvement]
    if own is not None:
        return own, False
    if position == "same_person_twice":
        return "ALREADY_SIGNED", False
    given = 0 if position == "first" else 1
    if given >= NEEDED[kind]:
        return "ALREADY_COMPLETE", False
    if given + 1 < NEEDED[kind]:
        return ALLOW, False  # the independent first look on a four-eyes case
    outcome = COMPLETING[kind][actor]
    return outcome, outcome == ALLOW


def _facts(kind: str, signer: Actor, involvement: str, position: str) -> CaseFacts:
    facts = replace(
        CASES[kind],
        uploaded_by="u-uploader",
        edited_by=frozenset({"u-editor"}),
        bank_change_by=frozenset({"u-bank"}) if kind == "bank_changed" else frozenset(),
    )
    if involvement == "own_upload":
        facts = replace(facts, uploaded_by=signer.user_id)
    elif involvement == "own_edit":
        facts = replace(facts, edited_by=frozenset({"u-editor", signer.user_id}))
    elif involvement == "own_bank_change":
        facts = replace(facts, bank_change_by=frozenset({signer.user_id}))
    if position == "second":
        facts = replace(facts, signatures=(("u-first", Role.CLERK),))
    elif position == "same_person_twice":
        facts = replace(facts, signatures=((signer.user_id, signer.role),))
    return facts


def test_segregation_of_duties_matrix() -> None:
    unexpected_allows: list[tuple[str, ...]] = []
    unexpected_denials: list[tuple[str, ...]] = []
    wrong_reason: list[tuple[str, ...]] = []
    wrong_completes: list[tuple[str, ...]] = []
    denials = 0
    combos = list(itertools.product(ACTORS, INVOLVEMENT_DENIAL, CASES, POSITIONS))
    for actor, involvement, kind, position in combos:
        key = (actor, involvement, kind, position)
        signer = ACTORS[actor]
        decision = check_signature(_facts(kind, signer, involvement, position), signer)
        outcome, completes = _expected(actor, involvement, kind, position)
        if decision.allowed and outcome != ALLOW:
            unexpected_allows.append((*key, outcome))
        elif not decision.allowed and outcome == ALLOW:
            unexpected_denials.append((*key, str(decision.reason)))
        elif not decision.allowed:
            denials += 1
            if decision.reason != outcome or not decision.message.strip():
                wrong_reason.append((*key, outcome, str(decision.reason)))
        if decision.completes != completes:
            wrong_completes.append(key)
        if decision.allowed:
            assert decision.reason is None
    assert len(combos) == 8 * 4 * 4 * 3
    assert unexpected_allows == []
    assert unexpected_denials == []
    assert wrong_reason == []
    assert wrong_completes == []
    # The matrix exercises both outcomes, so the assertions above had something to check.
    assert 0 < denials < len(combos)


def test_no_one_completes_a_four_eyes_case_alone_or_without_authority() -> None:
    """Every sequence of signers: a completed four-eyes case has two people and an approver."""
    for kind in ("large", "bank_changed", "high_anomaly"):
        base = replace(CASES[kind], uploaded_by="u-uploader")
        for first, second in itertools.product(ACTORS.values(), repeat=2):
            facts = base
            for signer in (first, second):
                decision = check_signature(facts, signer)
                if not decision.allowed:
                    break
                facts = replace(
                    facts, signatures=(*facts.signatures, (signer.user_id, signer.role))
                )
                # Controllers, admins and ML engineers audit or build; they never sign.
                assert signer.role in {Role.CLERK, Role.APPROVER}
                if decision.completes:
                    assert len(facts.signatures) == 2
                    assert facts.signatures[0][0] != facts.signatures[1][0]
                    assert signer.role is Role.APPROVER
                    assert signer.limit_currency == base.currency
                    assert signer.approval_limit is not None
                    assert signer.approval_limit >= base.gross
            # One person repeating themselves never gets past the first signature.
            if first == second:
                assert len(facts.signatures) <= 1


@pytest.mark.parametrize(
    ("gross", "currency", "codes", "score", "needed"),
    [
        (D("24999.99"), "EUR", set(), None, 1),
        (D("25000"), "EUR", set(), None, 2),  # the limit itself needs four eyes
        (D("-30000"), "EUR", set(), None, 2),  # credit notes by size
        (D("10"), "EUR", {R.BANK_DETAILS_CHANGED}, None, 2),
        (D("10"), "EUR", {R.PRICE_VARIANCE}, 0.8, 2),
        (D("10"), "EUR", set(), 0.79, 1),
        (D("10"), "EUR", {R.DUPLICATE}, None, 1),
        (D("10"), "USD", set(), None, 2),  # no threshold for USD: no FX, so four eyes
    ],
)
def test_required_signatures(
    gross: D, currency: str, codes: set[R], score: float | None, needed: int
) -> None:
    facts = CaseFacts(1, gross, currency, "in_review", frozenset(codes), score)
    assert required_signatures(facts) == needed


def test_per_currency_threshold() -> None:
    policy = SignoffPolicy(four_eyes_amount_by_currency={"USD": D("30000")})
    usd = CaseFacts(1, D("26000"), "USD", "in_review")
    assert required_signatures(usd, policy) == 1
    assert required_signatures(replace(usd, gross=D("30000")), policy) == 2


def test_agrees_with_routing_for_home_currency_without_anomaly() -> None:
    now = datetime(2026, 11, 23, tzinfo=UTC)
    for gross, codes in itertools.product(
        [D(0), D("24999.99"), D(25000), D(90000)],
        [set(), {R.BANK_DETAILS_CHANGED}, {R.PRICE_VARIANCE}, {R.DUPLICATE, R.NO_PO}],
    ):
        facts = CaseFacts(1, gross, "EUR", "in_review", frozenset(codes))
        route = route_case(codes, gross, None, now)
        assert required_signatures(facts) == route.required_signatures


@pytest.mark.parametrize(
    ("signer", "gross", "currency", "codes", "reason"),
    [
        (Actor("c", Role.CLERK), D("5000"), "EUR", set(), None),  # at the limit is inside
        (Actor("c", Role.CLERK), D("5000.01"), "EUR", set(), "OVER_LIMIT"),
        (Actor("c", Role.CLERK), D("900"), "EUR", {R.PRICE_VARIANCE, R.TAX_MISMATCH}, None),
        (Actor("c", Role.CLERK), D("900"), "EUR", {R.DUPLICATE}, "NEEDS_APPROVER"),
        (Actor("c", Role.CLERK), D("900"), "EUR", {R.VENDOR_BLOCKED}, "NEEDS_APPROVER"),
        # A clerk's personal limit can lower the clerk limit, never raise it.
        (Actor("c", Role.CLERK, D("1000")), D("1200"), "EUR", set(), "OVER_LIMIT"),
        (Actor("c", Role.CLERK, D("9000")), D("6000"), "EUR", set(), "OVER_LIMIT"),
        (Actor("a", Role.APPROVER, D("20000"), "EUR"), D("20000"), "EUR", set(), None),
        (Actor("a", Role.APPROVER, D("20000"), "EUR"), D("20000.01"), "EUR", set(), "OVER_LIMIT"),
        (Actor("a", Role.APPROVER, D("20000")), D("900"), "EUR", {R.DUPLICATE}, None),
        (Actor("a", Role.APPROVER, D("20000"), "GBP"), D("900"), "EUR", set(), "CURRENCY_LIMIT"),
    ],
)
def test_single_signature_authority(
    signer: Actor, gross: D, currency: str, codes: set[R], reason: str | None
) -> None:
    facts = CaseFacts(7, gross, currency, "in_review", frozenset(codes), 0.1, "u-up")
    decision = check_signature(facts, signer)
    assert decision.reason == reason
    assert decision.allowed is (reason is None)
    assert decision.completes is (reason is None)


def test_foreign_currency_single_signature_needs_a_limit_in_that_currency() -> None:
    policy = SignoffPolicy(four_eyes_amount_by_currency={"USD": D("30000")})
    facts = CaseFacts(8, D("900"), "USD", "in_review")
    assert check_signature(facts, Actor("c", Role.CLERK), policy).reason == "CURRENCY_LIMIT"
    usd_approver = Actor("a", Role.APPROVER, D("5000"), "USD")
    assert check_signature(facts, usd_approver, policy).completes


@pytest.mark.parametrize("state", ["new", "on_hold", "approved", "posting", "posted", "rejected"])
def test_only_open_cases_can_be_signed(state: str) -> None:
    facts = CaseFacts(9, D("100"), "EUR", state)
    decision = check_signature(facts, ACTORS["approver_high"])
    assert (decision.allowed, decision.reason) == (False, "NOT_SIGNABLE_STATE")


def test_edit_after_a_signature_blocks_the_editor_from_the_second() -> None:
    # The first signer then corrected a field: they cannot give the second signature either.
    facts = CaseFacts(
        10,
        D("40000"),
        "EUR",
        "in_review",
        edited_by=frozenset({"u-app-low"}),
        signatures=(("u-app-low", Role.APPROVER),),
    )
    assert check_signature(facts, ACTORS["approver_low"]).reason == "OWN_EDIT"
    assert check_signature(facts, ACTORS["approver_high"]).completes


def test_can_bulk_sign() -> None:
    clean = CaseFacts(11, D("24999.99"), "EUR", "triaged", frozenset(), 0.2)
    assert can_bulk_sign(clean)
    assert can_bulk_sign(replace(clean, anomaly_score=None))
    assert not can_bulk_sign(replace(clean, gross=D("25000")))
    assert not can_bulk_sign(replace(clean, reason_codes=frozenset({R.TAX_MISMATCH})))
    assert not can_bulk_sign(replace(clean, anomaly_score=0.85))
    assert not can_bulk_sign(replace(clean, currency="USD"))
    assert not can_bulk_sign(replace(clean, state="on_hold"))
    assert not can_bulk_sign(replace(clean, signatures=(("u-x", Role.CLERK),)))


def test_policy_from_mapping() -> None:
    policy = SignoffPolicy.model_validate(
        {
            "four_eyes_amount": "10000",
            "four_eyes_codes": ["BANK_DETAILS_CHANGED", "DUPLICATE"],
            "clerk_minor_codes": [],
        }
    )
    assert policy.four_eyes_amount == D(10000)
    facts = CaseFacts(12, D("100"), "EUR", "in_review", frozenset({R.DUPLICATE}))
    assert required_signatures(facts, policy) == 2
    minor = CaseFacts(13, D("100"), "EUR", "in_review", frozenset({R.TAX_MISMATCH}))
    assert check_signature(minor, Actor("c", Role.CLERK), policy).reason == "NEEDS_APPROVER"
    assert SignoffPolicy.model_validate(policy.model_dump(mode="json")) == policy
