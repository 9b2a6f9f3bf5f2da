"""Export decided cases as snapshot records for `tollgate train --from-reviews`.

One record per case a person has decided (approved, rejected, or beyond): the canonical
document, the findings, every decision, and the labels a retraining can learn from: confirmed
(or, without a confirmation, decided-with) reasons, corrections, the duplicate verdict and the
hours from receipt to the final decision. A case with *business override* feedback keeps its
record but is marked `labels_excluded`: an override for business reasons says nothing about
whether the model was right. `training.snapshot` hashes and writes the records.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from app.db.tables import CaseState, Decision, DecisionAction, FeedbackKind, FindingRow
from app.promotions import repository
from pipelines.reasons import ReasonCode

FINAL_ACTIONS = (DecisionAction.SIGN.value, DecisionAction.REJECT.value)
DECIDED_STATES = frozenset(
    {
        CaseState.APPROVED.value,
        CaseState.POSTING.value,
        CaseState.POSTED.value,
        CaseState.POSTING_FAILED.value,
        CaseState.REJECTED.value,
    }
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _money(value: Decimal | None) -> str | None:
    return format(value, "f") if value is not None else None


def _hours(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds() / 3600.0, 4)


def _finding(row: FindingRow) -> dict[str, Any]:
    return {
        "code": row.code,
        "severity": row.severity,
        "line_id": row.line_id,
        "po_line_no": row.po_line_no,
        "expected": _money(row.expected),
        "actual": _money(row.actual),
        "variance": _money(row.variance),
        "unit": row.unit,
        "rule_id": row.rule_id,
        "source": row.source,
    }


def _decision(row: Decision, username: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "action": row.action,
        "by": username,
        "role": row.role,
        "reason": row.reason,
        "feedback_kind": row.feedback_kind,
        "details": row.details or {},
        "case_version": row.case_version,
        "superseded": row.superseded,
        "at": _iso(row.created_at),
    }


def _confirmed_reasons(decisions: list[dict[str, Any]]) -> list[str] | None:
    """The reasons of the newest reason confirmation, if a person confirmed any."""
    known = {c.value for c in ReasonCode}
    for d in reversed(decisions):
        if d["action"] == DecisionAction.CONFIRM_REASONS.value:
            raw = d["details"].get("reasons", d["details"].get("codes", []))
            return sorted({str(c) for c in raw if str(c) in known})
    return None


def _duplicate_verdict(
    decisions: list[dict[str, Any]], codes: set[str], outcome: str
) -> bool | None:
    """True/False when a person ruled on a duplicate; None when no one was asked."""
    for d in reversed(decisions):
        if isinstance(d["details"].get("duplicate"), bool):
            return bool(d["details"]["duplicate"])
    if ReasonCode.DUPLICATE.value in codes:
        return outcome == "rejected"
    return None


def export_decided_cases(session: Session) -> list[dict[str, Any]]:
    """Snapshot records of every decided case, in case order."""
    found = repository.decided_case_rows(session, FINAL_ACTIONS)
    rows = [r for r in found if r[0].state in DECIDED_STATES]
    ids = [case.id for case, *_ in rows]
    decisions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for decision, username in repository.decisions_with_users(session, ids):
        decisions[decision.case_id].append(_decision(decision, username))
    findings: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for finding in repository.findings_of(session, ids):
        findings[finding.case_id].append(_finding(finding))
    records: list[dict[str, Any]] = []
    for case, invoice, document, supplier_ref in rows:
        made = decisions[case.id]
        final = [d for d in made if d["action"] in FINAL_ACTIONS and not d["superseded"]]
        last = final[-1] if final else made[-1]
        resolved = datetime.fromisoformat(last["at"]) if last["at"] else None
        outcome = "rejected" if case.state == CaseState.REJECTED.value else "approved"
        codes = {f["code"] for f in findings[case.id]}
        confirmed = _confirmed_reasons(made)
        canonical = invoice.canonical or {}
        records.append(
            {
                "case_id": case.id,
                "document_sha256": document.sha256,
                "filename": document.filename,
                "kind": invoice.kind,
                "number": invoice.number,
                "currency": invoice.currency,
                "gross": _money(invoice.gross_total),
                "supplier_ref": supplier_ref,
                "po_number": invoice.po_reference,
                "lines": len(canonical.get("lines") or []),
                "canonical": canonical,
                "queue": case.queue,
                "state": case.state,
                "received_at": _iso(document.received_at),
                "sla_due_at": _iso(case.sla_due_at),
                "sla_hours": _hours(document.received_at, case.sla_due_at),
                "findings": findings[case.id],
                "decisions": made,
                "corrections": [
                    d["details"] for d in made if d["action"] == DecisionAction.CORRECT.value
                ],
                "labels_excluded": any(
                    d["feedback_kind"] == FeedbackKind.BUSINESS_OVERRIDE.value for d in made
                ),
                "labels": {
                    "outcome": outcome,
                    "decided_by": last["by"],
                    "resolved_at": last["at"],
                    "resolution_hours": _hours(document.received_at, resolved),
                    "sla_breached": bool(
                        case.sla_due_at is not None
                        and resolved is not None
                        and resolved > case.sla_due_at
                    ),
                    "reasons": confirmed if confirmed is not None else sorted(codes),
                    "reasons_source": "confirmed" if confirmed is not None else "findings",
                    "duplicate": _duplicate_verdict(made, codes, outcome),
                },
            }
        )
    return records
