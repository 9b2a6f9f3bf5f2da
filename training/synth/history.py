"""Review history of a generated world: who handled each document, what they decided, how long.

Hours to resolution come from latent factors, each with a real effect, plus heavy-tailed noise,
so that a delay model has signal to find and noise it cannot explain away:

- the reason (a duplicate is rejected in minutes; a missing receipt waits for the warehouse),
- the amount (larger invoices take longer: more checking, approvers above the limit),
- the supplier's responsiveness (a latent trait per supplier),
- the queue load (exceptions that arrived in the preceding week),
- arrival weekday and public holidays (nobody works on them; the clock still runs),
- the clerk and the approver (each has a latent speed),
- log-normal noise, and a 4 % chance of an escalation that multiplies the time by 3-10.

Clean documents pass straight through with a short auto-approval delay. Ardent Partners (2019)
report an average invoice cycle time of 8.3 days and APQC a median of 5 days to resolve an
invoice error; the base times are tuned so exception cases land near those figures.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from governance.routing import route_case
from pipelines.reasons import ReasonCode
from training.synth.generator import GeneratedDocument

# Median working hours to resolve, by reason (the slowest reason of a case dominates).
BASE_HOURS: dict[str, float] = {
    "DUPLICATE": 3,
    "MISSING_DATA": 10,
    "NOT_BALANCED": 14,
    "TAX_MISMATCH": 18,
    "PRICE_VARIANCE": 22,
    "UOM_MISMATCH": 26,
    "FREIGHT_UNPLANNED": 16,
    "QTY_OVER_ORDERED": 24,
    "QTY_OVER_RECEIVED": 30,
    "NO_RECEIPT": 46,
    "AMOUNT_OVER_PO": 32,
    "NO_PO": 40,
    "INVALID_PO": 20,
    "CURRENCY_MISMATCH": 20,
    "CREDIT_UNMATCHED": 28,
    "BANK_DETAILS_CHANGED": 36,
    "VENDOR_UNKNOWN": 56,
    "VENDOR_BLOCKED": 30,
    "PRICE_ANOMALY": 34,
}
# Scales all base times: with the other factors and nights and weekends on top, exception cases
# then take a median of about 5 calendar days (APQC's median for resolving an invoice error).
BASE_SCALE = 0.42
# What the clerk did, by reason: (decision, probability) pairs.
DECISIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "DUPLICATE": (("rejected", 0.97), ("approved", 0.03)),
    "VENDOR_BLOCKED": (("rejected", 0.8), ("approved", 0.2)),
    "VENDOR_UNKNOWN": (("approved", 0.6), ("rejected", 0.4)),
    "BANK_DETAILS_CHANGED": (("approved", 0.7), ("rejected", 0.3)),
    "CREDIT_UNMATCHED": (("approved", 0.5), ("rejected", 0.5)),
    "PRICE_ANOMALY": (("approved", 0.6), ("rejected", 0.4)),
    "PRICE_VARIANCE": (("approved", 0.55), ("credit_requested", 0.35), ("rejected", 0.1)),
    "NOT_BALANCED": (("rejected", 0.7), ("corrected", 0.3)),
    "MISSING_DATA": (("corrected", 0.85), ("rejected", 0.15)),
}
CLERKS = tuple(f"clerk-{i:02d}" for i in range(1, 9))
APPROVERS = tuple(f"approver-{i}" for i in range(1, 4))
APPROVAL_LIMIT = Decimal(10000)
# Fixed public holidays (DE/FR/GB in common); moveable feasts are left out on purpose.
HOLIDAYS = {(1, 1), (5, 1), (12, 25), (12, 26)}
WORK_START, WORK_HOURS = 8, 9  # 08:00-17:00


@dataclass(frozen=True)
class Staff:
    """Latent speeds of the people in the AP team."""

    clerk_speed: dict[str, float]
    approver_speed: dict[str, float]


def make_staff(rng: random.Random) -> Staff:
    """Clerks and approvers with a latent speed each (1 = typical)."""
    return Staff(
        {c: rng.lognormvariate(0, 0.3) for c in CLERKS},
        {a: rng.lognormvariate(0, 0.4) for a in APPROVERS},
    )


def is_working_day(day: date) -> bool:
    """Monday to Friday and not a fixed public holiday."""
    return day.weekday() < 5 and (day.month, day.day) not in HOLIDAYS


def add_working_hours(start: datetime, hours: float) -> datetime:
    """The calendar time after `hours` of working time from `start` (08:00-17:00 working days)."""
    current = start
    remaining = hours
    while True:
        if not is_working_day(current.date()):
            current = datetime.combine(current.date() + timedelta(days=1), time(WORK_START))
            continue
        day_start = datetime.combine(current.date(), time(WORK_START))
        day_end = day_start + timedelta(hours=WORK_HOURS)
        current = max(current, day_start)
        if current >= day_end:
            current = datetime.combine(current.date() + timedelta(days=1), time(WORK_START))
            continue
        available = (day_end - current).total_seconds() / 3600
        if remaining <= available:
            return current + timedelta(hours=remaining)
        remaining -= available
        current = datetime.combine(current.date() + timedelta(days=1), time(WORK_START))


def review_histories(documents: list[GeneratedDocument], seed: int) -> dict[str, dict[str, object]]:
    """A review record for every document, keyed by doc_id, in arrival order."""
    rng = random.Random(seed * 31 + 1)
    staff = make_staff(rng)
    recent: deque[date] = deque()
    histories: dict[str, dict[str, object]] = {}
    for generated in documents:
        doc = generated.document
        # A document without an issue date (a MISSING_DATA case) still has its due date.
        day = doc.issue_date or (doc.due_date or date(2000, 1, 1)) - timedelta(days=30)
        # Documents arrive by e-mail or network 0-3 days after issue, during the working day.
        arrival_day = day + timedelta(days=rng.choice([0, 1, 1, 2, 3]))
        received = datetime.combine(arrival_day, time(rng.randint(7, 18), rng.randrange(60)))
        codes = sorted(generated.truth.reasons)
        while recent and (arrival_day - recent[0]).days > 7:
            recent.popleft()
        load = len(recent)
        if codes:
            recent.append(arrival_day)
        histories[generated.doc_id] = _history(generated, codes, received, load, staff, rng)
    return histories


def _history(
    generated: GeneratedDocument,
    codes: list[str],
    received: datetime,
    load: int,
    staff: Staff,
    rng: random.Random,
) -> dict[str, object]:
    doc = generated.document
    gross = abs(doc.gross or Decimal(0))
    route = route_case([ReasonCode(c) for c in codes], gross, doc.due_date, received)
    clerk = rng.choice(CLERKS)
    needs_approver = gross >= APPROVAL_LIMIT or "BANK_DETAILS_CHANGED" in codes
    approver = rng.choice(APPROVERS) if needs_approver else None
    if not codes:
        hours = rng.lognormvariate(math.log(0.6), 0.8)
        if approver is not None:
            hours += rng.lognormvariate(math.log(6), 0.7) * staff.approver_speed[approver]
        decision = "approved"
        handled_by = "auto" if approver is None else clerk
    else:
        base = (
            BASE_SCALE * max(BASE_HOURS.get(c, 24) for c in codes) * (1 + 0.25 * (len(codes) - 1))
        )
        amount_factor = 1 + 0.18 * max(0.0, math.log10(max(float(gross), 1.0) / 1000))
        load_factor = 1 + 0.012 * load
        hours = (
            base
            * amount_factor
            * generated.supplier.responsiveness
            * load_factor
            * staff.clerk_speed[clerk]
            * rng.lognormvariate(0, 0.55)
        )
        if approver is not None:
            hours += rng.lognormvariate(math.log(8), 0.6) * staff.approver_speed[approver]
        if rng.random() < 0.04:
            hours *= rng.uniform(3, 10)  # escalated, lost in someone's inbox, disputed
        options = DECISIONS.get(
            max(codes, key=lambda c: BASE_HOURS.get(c, 24)), (("approved", 1.0),)
        )
        decision = rng.choices([o[0] for o in options], weights=[o[1] for o in options])[0]
        handled_by = clerk
    resolved = add_working_hours(received, hours).replace(microsecond=0)
    elapsed = (resolved - received).total_seconds() / 3600
    return {
        "queue": route.queue,
        "received_at": received.isoformat(),
        "resolved_at": resolved.isoformat(),
        "hours_to_resolution": round(elapsed, 2),
        "working_hours": round(hours, 2),
        "sla_hours": round((route.sla_due_at - received).total_seconds() / 3600, 2),
        "sla_breached": resolved > route.sla_due_at,
        "handled_by": handled_by,
        "approver": approver,
        "decision": decision,
        "queue_load": load,
    }
