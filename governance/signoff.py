"""Sign-off rules: how many signatures a case needs, who may give them (segregation of duties,
approval limits), and which cases may be signed in bulk (DESIGN §7).

The rules, as an auditor would read them:

- Roles that sign: clerks and approvers. Controllers never sign (they audit sign-offs, and an
  auditor who signed would audit their own work); admins never sign (they manage users and
  could grant themselves any limit); ML engineers never sign (they build the models whose
  output is being reviewed).
- Segregation of duties: whoever uploaded the document, corrected any of its fields, or changed
  the supplier's bank details on file may not sign the case, in any position. A person signs a
  case at most once, so two signatures always come from two different people.
- Four eyes (two signatures): at or above `four_eyes_amount`, for `BANK_DETAILS_CHANGED` (any
  further `four_eyes_codes`), for an anomaly score at or above `four_eyes_anomaly_score`, and for
  a case in a currency the policy has no threshold for (without FX rates we cannot tell how
  large it is, so it gets the stricter treatment).
- Authority: the signature that completes a case carries the approval authority. On a
  one-signature case that signer's limit must cover the amount. On a four-eyes case the
  completing signer must be an approver whose own limit covers the amount in the case
  currency; the earlier signature is the independent second look (a clerk or an approver),
  which needs no limit of its own. So no single person, whatever their limit, can push a large,
  bank-changed or anomalous invoice through alone, and one of the two always has the authority.
- Limits are per person in one currency. A limit in another currency than the case's does not
  count (CURRENCY_LIMIT): Tollgate does not convert limits with FX rates.
- Clerks have no personal authority beyond `clerk_limit` (in the policy currency): they may
  alone sign a case up to it that is clean or carries only `clerk_minor_codes` (variances the
  clerk can check against the documents). `Actor.approval_limit` on a clerk can only lower that.
  An approver with no approval limit on file has no authority (OVER_LIMIT).
- Only cases in `signable_states` can be signed (a held case is released first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from pipelines.reasons import ReasonCode


class Role(StrEnum):
    """What a user does in Tollgate; decides whether and how far they may sign."""

    CLERK = "clerk"
    APPROVER = "approver"
    CONTROLLER = "controller"
    ML_ENGINEER = "ml_engineer"
    ADMIN = "admin"


class Denial(StrEnum):
    """Why a signature is refused; stable codes for the UI, the API and the audit log."""

    NOT_SIGNABLE_STATE = "NOT_SIGNABLE_STATE"
    ROLE_CANNOT_SIGN = "ROLE_CANNOT_SIGN"
    OWN_BANK_CHANGE = "OWN_BANK_CHANGE"
    OWN_UPLOAD = "OWN_UPLOAD"
    OWN_EDIT = "OWN_EDIT"
    ALREADY_SIGNED = "ALREADY_SIGNED"
    ALREADY_COMPLETE = "ALREADY_COMPLETE"
    NEEDS_APPROVER = "NEEDS_APPROVER"
    CURRENCY_LIMIT = "CURRENCY_LIMIT"
    OVER_LIMIT = "OVER_LIMIT"


SIGNING_ROLES = frozenset({Role.CLERK, Role.APPROVER})


@dataclass(frozen=True)
class Actor:
    """A person about to sign: id, role and personal approval limit.

    `approval_limit` None: an approver has no signing authority; a clerk falls back to the
    policy's `clerk_limit`. `limit_currency` None means the policy currency.
    """

    user_id: str
    role: Role
    approval_limit: Decimal | None = None
    limit_currency: str | None = None


class SignoffPolicy(BaseModel):
    """Configurable sign-off defaults (versioned with the other policies)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The currency `four_eyes_amount` and `clerk_limit` are stated in.
    currency: str = "EUR"
    # Same threshold as RoutingPolicy.four_eyes_amount; an amount equal to it needs four eyes.
    four_eyes_amount: Decimal = Field(default=Decimal("25000"), ge=0)
    # Thresholds for other currencies; a currency with none here always needs four eyes.
    four_eyes_amount_by_currency: dict[str, Decimal] = Field(default_factory=dict)
    four_eyes_codes: frozenset[ReasonCode] = frozenset({ReasonCode.BANK_DETAILS_CHANGED})
    four_eyes_anomaly_score: float = Field(default=0.8, ge=0, le=1)
    clerk_limit: Decimal = Field(default=Decimal("5000"), ge=0)
    # Variances a clerk can verify against the documents; fraud, vendor and data codes are not.
    clerk_minor_codes: frozenset[ReasonCode] = frozenset(
        {
            ReasonCode.PRICE_VARIANCE,
            ReasonCode.TAX_MISMATCH,
            ReasonCode.FREIGHT_UNPLANNED,
            ReasonCode.UOM_MISMATCH,
        }
    )
    signable_states: frozenset[str] = frozenset({"triaged", "in_review"})


DEFAULT_SIGNOFF = SignoffPolicy()


@dataclass(frozen=True)
class CaseFacts:
    """What the sign-off rules need to know about a case."""

    case_id: int | str
    gross: Decimal
    currency: str
    state: str
    reason_codes: frozenset[ReasonCode] = frozenset()
    anomaly_score: float | None = None
    uploaded_by: str | None = None
    edited_by: frozenset[str] = frozenset()
    bank_change_by: frozenset[str] = frozenset()
    # Signatures already given, in order, as (user id, role).
    signatures: tuple[tuple[str, Role], ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SignoffDecision:
    """Whether a signature is allowed, why not, and whether it is the last one needed."""

    allowed: bool
    reason: str | None
    message: str
    completes: bool = False


def _amount(facts: CaseFacts) -> Decimal:
    # Credit notes carry negative totals; authority is about the size of the money moved.
    return abs(facts.gross)


def required_signatures(facts: CaseFacts, policy: SignoffPolicy = DEFAULT_SIGNOFF) -> int:
    """How many signatures (from different people) the case needs: 1, or 2 for four eyes."""
    if facts.currency == policy.currency:
        threshold: Decimal | None = policy.four_eyes_amount
    else:
        threshold = policy.four_eyes_amount_by_currency.get(facts.currency)
    four_eyes = (
        threshold is None
        or _amount(facts) >= threshold
        or bool(policy.four_eyes_codes & facts.reason_codes)
        or (
            facts.anomaly_score is not None
            and facts.anomaly_score >= policy.four_eyes_anomaly_score
        )
    )
    return 2 if four_eyes else 1


def _deny(reason: Denial, message: str) -> SignoffDecision:
    return SignoffDecision(allowed=False, reason=reason.value, message=message)


def _authority(signer: Actor, policy: SignoffPolicy) -> tuple[Decimal, str] | None:
    """The signer's approval limit and its currency; None if they have no authority."""
    if signer.role is Role.CLERK:
        limit = policy.clerk_limit
        if signer.approval_limit is not None:
            limit = min(limit, signer.approval_limit)
        # A clerk limit is the policy's, so it is in the policy's currency.
        return limit, policy.currency
    if signer.role is Role.APPROVER and signer.approval_limit is not None:
        return signer.approval_limit, signer.limit_currency or policy.currency
    return None


def _check_authority(facts: CaseFacts, signer: Actor, policy: SignoffPolicy) -> Denial | None:
    authority = _authority(signer, policy)
    if authority is None:
        return Denial.OVER_LIMIT
    limit, currency = authority
    if currency != facts.currency:
        return Denial.CURRENCY_LIMIT
    if _amount(facts) > limit:
        return Denial.OVER_LIMIT
    return None


def check_signature(
    facts: CaseFacts, signer: Actor, policy: SignoffPolicy = DEFAULT_SIGNOFF
) -> SignoffDecision:
    """Decide whether `signer` may add a signature to the case now, and if it completes it."""
    if facts.state not in policy.signable_states:
        return _deny(
            Denial.NOT_SIGNABLE_STATE, f"A case in state '{facts.state}' cannot be signed."
        )
    if signer.role not in SIGNING_ROLES:
        return _deny(
            Denial.ROLE_CANNOT_SIGN, f"The {signer.role.value} role does not sign off invoices."
        )
    # Segregation of duties before anything else: these hold in every position.
    if signer.user_id in facts.bank_change_by:
        return _deny(
            Denial.OWN_BANK_CHANGE,
            "You changed this supplier's bank details; another person must sign.",
        )
    if signer.user_id == facts.uploaded_by:
        return _deny(Denial.OWN_UPLOAD, "You uploaded this document; another person must sign.")
    if signer.user_id in facts.edited_by:
        return _deny(Denial.OWN_EDIT, "You corrected this document; another person must sign.")
    if any(user_id == signer.user_id for user_id, _ in facts.signatures):
        return _deny(
            Denial.ALREADY_SIGNED, "You have already signed this case; a different person must."
        )

    required = required_signatures(facts, policy)
    given = len(facts.signatures)
    if given >= required:
        return _deny(Denial.ALREADY_COMPLETE, "This case already has all the signatures it needs.")
    completes = given + 1 == required
    if not completes:
        # An earlier signature on a four-eyes case is the independent look; the authority
        # comes with the completing one.
        return SignoffDecision(
            allowed=True,
            reason=None,
            message=f"Signature {given + 1} of {required}; an approver must complete it.",
            completes=False,
        )
    if required > 1 and signer.role is not Role.APPROVER:
        return _deny(
            Denial.NEEDS_APPROVER,
            "The last signature on a four-eyes case must come from an approver.",
        )
    if signer.role is Role.CLERK and not facts.reason_codes <= policy.clerk_minor_codes:
        other = sorted(code.value for code in facts.reason_codes - policy.clerk_minor_codes)
        return _deny(
            Denial.NEEDS_APPROVER, f"An approver must sign a case with {', '.join(other)}."
        )
    denial = _check_authority(facts, signer, policy)
    if denial is Denial.CURRENCY_LIMIT:
        return _deny(
            denial,
            f"Your approval limit is not in {facts.currency}; limits are not converted.",
        )
    if denial is Denial.OVER_LIMIT:
        if _authority(signer, policy) is None:
            return _deny(denial, "You have no approval limit on file.")
        return _deny(denial, f"{facts.currency} {_amount(facts)} is above your approval limit.")
    return SignoffDecision(
        allowed=True,
        reason=None,
        message=f"Signature {given + 1} of {required}; the case is signed off.",
        completes=True,
    )


def can_bulk_sign(facts: CaseFacts, policy: SignoffPolicy = DEFAULT_SIGNOFF) -> bool:
    """Whether the case may be signed in bulk: clean, one signature, below the four-eyes amount."""
    return (
        not facts.reason_codes
        and not facts.signatures
        and facts.state in policy.signable_states
        # One signature means below the four-eyes amount for the case currency, no four-eyes
        # code and no high anomaly score.
        and required_signatures(facts, policy) == 1
    )
