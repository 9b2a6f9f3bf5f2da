"""Promotion requests, a controller's approval, rollback and the kill switch.

The gate itself is `governance.promotion`; this module stores requests, audits every step and
moves the `champion` alias through `models.registry` only when an approval passes the gate.
The alias moves after the request row and the audit event are flushed, so a registry failure
raises and the caller's transaction rolls the approval back with it.

Refusals are outcomes, not exceptions (as with signatures): the denied attempt is audited and
committed with the request, and the caller answers 403 / exits non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.db.base import utcnow
from app.db.tables import ModelSwitch, PromotionKind, PromotionRequest, PromotionState, User
from app.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.promotions import repository
from app.users.service import actor_of
from governance.promotion import (
    DEFAULT_PROMOTION,
    Evaluation,
    PromotionFacts,
    PromotionPolicy,
    check_approval,
)
from models.registry import CHAMPION, FAMILIES, VersionInfo, registered_name
from models.runs import run_details

ALL = "all"


def _rescore_with_new_aliases() -> None:
    # The serving process's scorer keeps the versions it loaded until told; imported here
    # because the scoring stack is heavy and the CLI's other commands do not need it.
    from app.scoring.provider import refresh_models

    refresh_models()


# Who may ask for a promotion, and who may pull the emergency levers (rollback, kill switch).
REQUESTER_ROLES = frozenset({"ml_engineer", "admin"})
OPERATOR_ROLES = frozenset({"controller", "admin", "ml_engineer"})
OS_OPERATOR = "operator"  # the role of a command-line user without an account


class Registry(Protocol):
    """What this module needs of `models.registry.ModelRegistry`."""

    tracking_uri: str

    def set_alias(self, family: str, alias: str, version: str) -> None: ...

    def refresh(self, family: str | None = None) -> None: ...

    def resolve(self, family: str, aliases: Sequence[str] = ...) -> VersionInfo: ...


def family_of(name: str) -> str:
    """`tollgate-reason` or `reason` -> `reason`; InvalidInput for anything else."""
    family = name.removeprefix("tollgate-")
    if family not in FAMILIES:
        raise InvalidInput(
            f"unknown model {name!r}; known: {', '.join(FAMILIES)}", code="UNKNOWN_MODEL"
        )
    return family


def current_champion(registry: Registry, family: str) -> str | None:
    """The version `champion` points at, or None when the family has none yet."""
    try:
        info = registry.resolve(family, (CHAMPION,))
    except LookupError:
        return None
    return info.version


def request_promotion(
    session: Session,
    registry: Registry,
    requester: User,
    family: str,
    version: str,
    evaluation: Evaluation,
) -> PromotionRequest:
    """Record a pending request to make `version` the champion, with its evaluation."""
    if requester.role not in REQUESTER_ROLES or not requester.active:
        raise Forbidden(f"{requester.role}s may not request a promotion", code="NOT_A_REQUESTER")
    try:
        run = run_details(registry.tracking_uri, family, version)
    except LookupError as exc:
        raise NotFound(str(exc), code="UNKNOWN_VERSION") from exc
    champion = current_champion(registry, family)
    if champion == run.version:
        raise Conflict(f"version {run.version} already is the champion", code="ALREADY_CHAMPION")
    if evaluation.challenger_version != run.version:
        raise InvalidInput("the evaluation is of another version", code="EVALUATION_MISMATCH")
    row = PromotionRequest(
        kind=PromotionKind.PROMOTION.value,
        family=family,
        model_name=registered_name(family),
        version=run.version,
        previous_version=champion,
        run_id=run.run_id,
        trained_by=run.trained_by,
        requested_by=requester.username,
        requested_at=utcnow(),
        state=PromotionState.PENDING.value,
        evaluation=evaluation.to_dict(),
    )
    repository.add(session, row)
    audit.record(
        session,
        actor_of(requester),
        "model.promotion_requested",
        "promotion_request",
        row.id,
        after={
            "family": family,
            "version": run.version,
            "champion": champion,
            "trained_by": run.trained_by,
            "evaluation": row.evaluation,
        },
        model_name=row.model_name,
        model_version=run.version,
    )
    return row


@dataclass(frozen=True)
class PromotionOutcome:
    """What an approval did, or why it was refused (refusals are audited, not raised)."""

    request_id: int
    allowed: bool
    state: str
    denial: str | None = None
    message: str = ""
    champion: str | None = None


def _pending(session: Session, request_id: int) -> PromotionRequest:
    row = repository.request_by_id(session, request_id, lock=True)
    if row is None or row.kind != PromotionKind.PROMOTION.value:
        raise NotFound(f"promotion request {request_id} does not exist")
    if row.state != PromotionState.PENDING.value:
        raise Conflict(
            f"promotion request {request_id} is {row.state}, not pending", code="NOT_PENDING"
        )
    return row


def approve(
    session: Session,
    registry: Registry,
    request_id: int,
    approver: User,
    *,
    reason: str | None = None,
    override_reason: str | None = None,
    policy: PromotionPolicy = DEFAULT_PROMOTION,
) -> PromotionOutcome:
    """Approve a pending request: the gate rules, then `champion` moves (and is audited)."""
    row = _pending(session, request_id)
    facts = PromotionFacts(
        family=row.family,
        version=row.version,
        requested_by=row.requested_by,
        trained_by=row.trained_by,
        evaluation=Evaluation.from_dict(row.evaluation) if row.evaluation else None,
    )
    role = approver.role if approver.active else "inactive"
    ruling = check_approval(facts, approver.username, role, override_reason, policy)
    if not ruling.allowed:
        audit.record(
            session,
            actor_of(approver),
            "model.promotion_denied",
            "promotion_request",
            row.id,
            after={
                "denial": ruling.denial.value if ruling.denial else None,
                "message": ruling.message,
                "regressions": list(ruling.regressions),
            },
            model_name=row.model_name,
            model_version=row.version,
        )
        return PromotionOutcome(
            row.id,
            False,
            row.state,
            denial=ruling.denial.value if ruling.denial else None,
            message=ruling.message,
        )
    champion = current_champion(registry, row.family)
    if champion != row.previous_version:
        # The evaluation compared against a champion that is no longer serving.
        raise Conflict(
            f"the champion moved since the request (was {row.previous_version}, now {champion}); "
            "request again with a fresh evaluation",
            code="STALE_EVALUATION",
        )
    row.state = PromotionState.APPROVED.value
    row.decided_by, row.decided_role, row.decided_at = approver.username, approver.role, utcnow()
    row.decision_reason = (reason or "").strip() or None
    row.override_reason = (override_reason or "").strip() or None if ruling.overridden else None
    session.flush()
    audit.record(
        session,
        actor_of(approver),
        "model.promoted",
        "model",
        row.model_name,
        before={"champion": champion},
        after={
            "champion": row.version,
            "request": row.id,
            "requested_by": row.requested_by,
            "trained_by": row.trained_by,
            "evaluation": row.evaluation,
            "regressions": list(ruling.regressions),
            "override_reason": row.override_reason,
        },
        model_name=row.model_name,
        model_version=row.version,
    )
    registry.set_alias(row.family, CHAMPION, row.version)
    registry.refresh(row.family)
    _rescore_with_new_aliases()
    return PromotionOutcome(row.id, True, row.state, champion=row.version)


def reject(session: Session, request_id: int, approver: User, reason: str) -> PromotionRequest:
    """Reject a pending request with a reason (controllers and admins)."""
    if approver.role not in DEFAULT_PROMOTION.approver_roles or not approver.active:
        raise Forbidden(
            "only a controller or an admin may reject a promotion", code="NOT_AN_APPROVER"
        )
    if not reason.strip():
        raise InvalidInput("a rejection needs a reason", code="REASON_REQUIRED")
    row = _pending(session, request_id)
    row.state = PromotionState.REJECTED.value
    row.decided_by, row.decided_role, row.decided_at = approver.username, approver.role, utcnow()
    row.decision_reason = reason.strip()
    session.flush()
    audit.record(
        session,
        actor_of(approver),
        "model.promotion_rejected",
        "promotion_request",
        row.id,
        after={"state": row.state, "reason": row.decision_reason},
        model_name=row.model_name,
        model_version=row.version,
    )
    return row


def rollback(session: Session, registry: Registry, family: str, actor: Actor) -> PromotionRequest:
    """Move `champion` back to where it was before the last approved promotion (audited)."""
    if actor.role not in OPERATOR_ROLES:
        raise Forbidden(f"{actor.role}s may not roll a model back", code="NOT_AN_OPERATOR")
    last = repository.last_approved(session, family)
    if last is None or last.previous_version is None:
        raise Conflict(
            f"{registered_name(family)} has no earlier champion to roll back to",
            code="NOTHING_TO_ROLL_BACK",
        )
    champion = current_champion(registry, family)
    if champion != last.version:
        raise Conflict(
            f"champion is {champion}, not {last.version} from the last approved promotion; "
            "move it through a promotion request",
            code="CHAMPION_MOVED",
        )
    last.state = PromotionState.ROLLED_BACK.value
    row = PromotionRequest(
        kind=PromotionKind.ROLLBACK.value,
        family=family,
        model_name=last.model_name,
        version=last.previous_version,
        previous_version=last.version,
        run_id="",
        trained_by=None,
        requested_by=actor.name,
        requested_at=utcnow(),
        state=PromotionState.APPLIED.value,
        evaluation={},
        decided_by=actor.name,
        decided_role=actor.role,
        decided_at=utcnow(),
        decision_reason=f"rollback of request {last.id}",
    )
    repository.add(session, row)
    audit.record(
        session,
        actor,
        "model.rolled_back",
        "model",
        last.model_name,
        before={"champion": last.version},
        after={"champion": last.previous_version, "undoes_request": last.id, "rollback": row.id},
        model_name=last.model_name,
        model_version=last.previous_version,
    )
    registry.set_alias(family, CHAMPION, last.previous_version)
    registry.refresh(family)
    _rescore_with_new_aliases()
    return row


# -- kill switch ------------------------------------------------------------------------------


def set_kill_switch(
    session: Session, actor: Actor, *, on: bool, family: str = ALL, reason: str | None = None
) -> ModelSwitch:
    """Turn model outputs off (on=True: every case goes to manual review) or back on; audited.

    Switching models off is the safe direction, so an operator at the command line without an
    account may do it; switching them back on needs a controller, an admin or an ML engineer.
    """
    allowed = OPERATOR_ROLES | {OS_OPERATOR} if on else OPERATOR_ROLES
    if actor.role not in allowed:
        raise Forbidden(
            f"{actor.role}s may not turn models {'off' if on else 'back on'}",
            code="NOT_AN_OPERATOR",
        )
    if family != ALL:
        family = family_of(family)
    before = repository.switch_states(session, [family]).get(family, False)
    row = ModelSwitch(
        family=family,
        enabled=on,
        changed_by=actor.name,
        changed_at=utcnow(),
        reason=(reason or "").strip() or None,
    )
    repository.add(session, row)
    audit.record(
        session,
        actor,
        "model.kill_switch_on" if on else "model.kill_switch_off",
        "model_switch",
        family,
        before={"models_disabled": before},
        after={"models_disabled": on, "reason": row.reason},
    )
    return row


def models_disabled(session: Session, family: str) -> bool:
    """True when the kill switch is on for this family or for all: serve no model outputs."""
    states = repository.switch_states(session, [ALL, family])
    return states.get(ALL, False) or states.get(family, False)


def kill_switch_states(session: Session) -> dict[str, bool]:
    """The switch in force for "all" and each family (False where never flipped)."""
    names = [ALL, *FAMILIES]
    states = repository.switch_states(session, names)
    return {name: states.get(name, False) for name in names}


def pending(session: Session) -> list[PromotionRequest]:
    """Requests waiting for a controller."""
    return list(repository.pending_requests(session))


def recent(session: Session, limit: int = 50) -> list[PromotionRequest]:
    """The newest requests and rollbacks."""
    return list(repository.recent_requests(session, limit))
