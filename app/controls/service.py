"""The controller's view of the work: decision log, model vs human, audit sample, chain, KPIs.

Controllers (and admins) audit; they never decide cases. Marking a sampled case as checked is an
audit event (`audit_sample.checked`), so the audit log itself is the record of the re-check and
no table of its own is needed. Services flush, never commit.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.controls import repository
from app.controls.repository import DecisionFilter, DecisionRow, SampledCase
from app.db.base import utcnow
from app.db.tables import DecisionAction, FeedbackKind, User
from app.errors import Conflict, InvalidInput, NotFound
from app.users.service import actor_of
from governance.signoff import Role

CONTROL_ROLES = frozenset({Role.CONTROLLER.value, Role.ADMIN.value})
DASHBOARD_ROLES = frozenset(r.value for r in Role)
# A probability at or above this puts a code in a model's predicted set (unless it says otherwise).
DEFAULT_THRESHOLD = 0.5
AGING_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("< 1 day", timedelta(days=1)),
    ("1-3 days", timedelta(days=3)),
    ("3-7 days", timedelta(days=7)),
    ("7-14 days", timedelta(days=14)),
    ("> 14 days", None),
)
CSV_COLUMNS = (
    "decision_id",
    "decided_at",
    "user",
    "role",
    "action",
    "reason",
    "feedback_kind",
    "case_id",
    "case_state",
    "invoice_number",
    "supplier",
    "gross",
    "currency",
)


def may_control(user: User) -> bool:
    """True for the roles that use the controller view."""
    return user.active and user.role in CONTROL_ROLES


def may_see_dashboard(user: User) -> bool:
    """True for every active role."""
    return user.active and user.role in DASHBOARD_ROLES


def record_denial(session: Session, user: User | None, what: str, path: str) -> None:
    """Audit a refused request (the caller returns, so the row commits with the request)."""
    actor = actor_of(user) if user else audit.Actor("?", "anonymous")
    audit.record(session, actor, "access.denied", "route", path[:64], after={"needs": what})


# -- decision log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionPage:
    """A page of the decision log."""

    items: list[DecisionRow]
    total: int
    page: int
    size: int

    @property
    def pages(self) -> int:
        """Number of pages (at least one)."""
        return max(1, -(-self.total // self.size))


def decision_log(session: Session, flt: DecisionFilter, page: int, size: int = 50) -> DecisionPage:
    """A page of decisions, newest first."""
    items, total = repository.decision_page(session, flt, (page - 1) * size, size)
    return DecisionPage(items, total, page, size)


def filter_choices(session: Session) -> dict[str, list[str]]:
    """Values for the filter drop-downs: people, actions and model versions."""
    return {
        "users": repository.usernames_with_decisions(session),
        "actions": [a.value for a in DecisionAction],
        "model_versions": sorted({v for _f, _n, v in repository.model_versions(session)}),
    }


def _money(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")


def export_csv(session: Session, flt: DecisionFilter) -> Iterator[str]:
    """The filtered decision log as CSV, ending with a totals row per currency.

    The totals count decisions and sum the invoice gross of each decision line (Decimal, per
    currency): a case with two signatures counts twice, as it does in the log.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(CSV_COLUMNS)
    yield flush()
    count = 0
    sums: dict[str, Decimal] = {}
    for row in repository.iter_decisions(session, flt):
        count += 1
        if row.gross is not None:
            key = row.currency or ""
            sums[key] = sums.get(key, Decimal(0)) + row.gross
        writer.writerow(
            (
                row.id,
                row.at.isoformat(),
                row.username,
                row.role,
                row.action,
                _csv_safe(row.reason or ""),
                row.feedback_kind or "",
                row.case_id,
                row.case_state,
                _csv_safe(row.invoice_number or ""),
                _csv_safe(row.supplier or ""),
                _money(row.gross),
                row.currency or "",
            )
        )
        yield flush()
    if not sums:
        sums[""] = Decimal(0)
    for currency in sorted(sums):
        writer.writerow(
            (
                "TOTAL",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                f"{count} decisions",
                _money(sums[currency]),
                currency,
            )
        )
    yield flush()


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection).
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# -- model versus human ------------------------------------------------------------------------


@dataclass
class ModelAgreement:
    """How one reason-model version fared against the people who decided its cases."""

    model_name: str
    model_version: str
    predictions: int = 0
    decided: int = 0
    agreed: int = 0
    overridden: int = 0
    overrides: Counter[str] = field(default_factory=Counter)

    @property
    def agreement_rate(self) -> float | None:
        """Share of decided cases where the predicted reasons equal the human ones."""
        return self.agreed / self.decided if self.decided else None

    @property
    def override_rate(self) -> float | None:
        """Share of decided cases where someone overrode a model output (any feedback kind)."""
        return self.overridden / self.decided if self.decided else None


def predicted_reasons(output: dict[str, Any]) -> frozenset[str]:
    """The codes a reason prediction names: `predicted` (as the case page reads it), else a
    `reasons` list, else the codes whose probability reaches the threshold."""
    for key in ("predicted", "reasons"):
        value = output.get(key)
        if isinstance(value, str):
            return frozenset({value})
        if isinstance(value, list):
            return frozenset(str(r) for r in value)
    threshold = float(output.get("threshold", DEFAULT_THRESHOLD))
    probs = output.get("probabilities") or {}
    return frozenset(str(k) for k, p in probs.items() if float(p) >= threshold)


def _human_reasons(decisions: list[Any], codes: set[str], state: str) -> frozenset[str] | None:
    confirmed = [
        d
        for d in decisions
        if d.action == DecisionAction.CONFIRM_REASONS.value and not d.superseded
    ]
    details = (confirmed[-1].details or {}) if confirmed else {}
    for key in ("confirmed", "reasons"):
        if isinstance(details.get(key), list):
            return frozenset(str(r) for r in details[key])
    if state in repository.OPEN_STATES:
        return None  # nobody has decided yet
    # A case signed or rejected on its findings: the people accepted those reasons.
    return frozenset(codes)


def agreement(session: Session) -> list[ModelAgreement]:
    """Agreement and override rate per reason-model version."""
    preds = repository.reason_predictions(session)
    case_ids = sorted({p.case_id for p in preds})
    codes = repository.finding_codes(session, case_ids)
    decisions = repository.decisions_of(session, case_ids)
    out: dict[tuple[str, str], ModelAgreement] = {}
    for p in preds:
        stats = out.setdefault(
            (p.model_name, p.model_version), ModelAgreement(p.model_name, p.model_version)
        )
        stats.predictions += 1
        human = _human_reasons(decisions[p.case_id], codes[p.case_id], p.case_state)
        if human is None:
            continue
        stats.decided += 1
        if predicted_reasons(p.output) == human:
            stats.agreed += 1
        kinds = {d.feedback_kind for d in decisions[p.case_id] if d.feedback_kind}
        if kinds:
            stats.overridden += 1
            stats.overrides.update(kinds)
    return sorted(out.values(), key=lambda s: (s.model_name, _version_key(s.model_version)))


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)


FEEDBACK_KINDS = [k.value for k in FeedbackKind]


# -- the audit sample --------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleItem:
    """A sampled case and, once re-checked, who checked it and when."""

    case: SampledCase
    checked_by: str | None
    checked_at: datetime | None
    note: str | None


def audit_sample(session: Session) -> list[SampleItem]:
    """The audit-sample queue: unchecked cases first, then the checked ones."""
    checks = repository.sample_checks(session)
    items = []
    for case in repository.sampled_cases(session):
        ev = checks.get(str(case.case_id))
        note = (ev.after or {}).get("note") if ev else None
        items.append(
            SampleItem(case, ev.actor if ev else None, ev.occurred_at if ev else None, note)
        )
    return sorted(items, key=lambda i: (i.checked_by is not None, i.case.case_id))


def mark_checked(session: Session, case_id: int, user: User, note: str | None) -> None:
    """Record that a controller re-checked a sampled case (once per case)."""
    if not may_control(user):
        raise Conflict(
            "only controllers mark audit samples", status_code=403, code="NOT_CONTROLLER"
        )
    case = repository.locked_sampled_case(session, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    if not case.audit_sampled:
        raise Conflict(f"case {case_id} is not in the audit sample", code="NOT_SAMPLED")
    if str(case_id) in repository.sample_checks(session):
        raise Conflict(f"case {case_id} was already checked", code="ALREADY_CHECKED")
    audit.record(
        session,
        actor_of(user),
        repository.SAMPLE_CHECKED,
        "case",
        case_id,
        after={"result": "audited", "note": (note or "").strip()[:500] or None},
    )


# -- chain verification ------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainResult:
    """What verifying the audit chain found, for the page."""

    ok: bool
    events: int
    first_bad_seq: int | None
    first_bad_reason: str | None
    head_matches: bool
    checkpoint: str | None
    checkpoint_matches: bool | None


def verify_chain(session: Session, checkpoint_text: str | None) -> ChainResult:
    """Run the same verification as `tollgate audit verify` (optionally against a checkpoint)."""
    mark = None
    text = (checkpoint_text or "").strip()
    if text:
        try:
            mark = audit.Checkpoint.parse(text)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="BAD_CHECKPOINT") from exc
    report = audit.verify(session, mark)
    first = report.breaks[0] if report.breaks else None
    return ChainResult(
        ok=report.ok,
        events=report.events,
        first_bad_seq=first.seq if first else None,
        first_bad_reason=first.reason if first else None,
        head_matches=report.head_matches,
        checkpoint=str(mark) if mark else None,
        checkpoint_matches=report.checkpoint_matches,
    )


def record_verification(session: Session, user: User, result: ChainResult) -> None:
    """Audit who verified the chain and what they saw."""
    audit.record(
        session,
        actor_of(user),
        "audit_chain.verified",
        "audit_chain",
        "head",
        after={
            "ok": result.ok,
            "events": result.events,
            "first_bad_seq": result.first_bad_seq,
            "checkpoint": result.checkpoint,
            "checkpoint_matches": result.checkpoint_matches,
        },
    )


def current_checkpoint(session: Session) -> str:
    """The chain head as `seq:hash`, to copy somewhere safe."""
    return str(audit.checkpoint(session))


# -- dashboard ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    """The numbers behind the dashboard's charts."""

    reason_mix: list[tuple[str, int]]
    aging: list[tuple[str, int]]
    open_cases: int
    sla_breaches: int
    approved: int
    touchless: int
    top_suppliers: list[tuple[str, int]]

    @property
    def touchless_rate(self) -> float | None:
        """Share of approved cases signed with no findings and no correction."""
        return self.touchless / self.approved if self.approved else None


def dashboard(session: Session, now: datetime | None = None, top: int = 10) -> Dashboard:
    """Exception mix, aging of open cases, SLA breaches, touchless rate and top suppliers."""
    now = now or utcnow()
    times = repository.open_case_times(session)
    aging = Counter[str]()
    for created, _due in times:
        age = now - created
        for label, limit in AGING_BUCKETS:
            if limit is None or age < limit:
                aging[label] += 1
                break
    approved, touchless = repository.approved_counts(session)
    return Dashboard(
        reason_mix=repository.open_reason_mix(session),
        aging=[(label, aging[label]) for label, _ in AGING_BUCKETS],
        open_cases=len(times),
        sla_breaches=sum(1 for _c, due in times if due is not None and due <= now),
        approved=approved,
        touchless=touchless,
        top_suppliers=repository.top_exception_suppliers(session, top),
    )
