"""Audit-chain hashing: stable over Decimal and dates, every kind of edit breaks the chain."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from governance.audit_chain import GENESIS_HASH, canonical_json, event_hash, verify_chain


def _chain(n: int) -> list[dict[str, Any]]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event: dict[str, Any] = {
            "seq": seq,
            "occurred_at": datetime(2026, 11, 1, 12, seq, tzinfo=UTC),
            "actor": "clerk",
            "actor_role": "clerk",
            "action": "case.triaged",
            "object_type": "case",
            "object_id": str(seq),
            "before": {"state": "new"},
            "after": {"state": "triaged", "amount": "10.00"},
            "model_name": None,
            "model_version": None,
            "request_id": None,
        }
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(prev, event)
        events.append(event)
    return events


def test_canonical_json_is_stable() -> None:
    assert canonical_json({"b": Decimal("1.50"), "a": [datetime(2026, 1, 1, tzinfo=UTC)]}) == (
        '{"a":["2026-01-01T00:00:00+00:00"],"b":"1.50"}'
    )


def test_intact_chain_verifies() -> None:
    report = verify_chain(_chain(10))
    assert report.breaks == []
    assert (report.events, report.last_seq) == (10, 10)


def test_edited_content_is_detected() -> None:
    events = _chain(10)
    events[4]["after"] = {"state": "approved", "amount": "10.00"}
    assert [b.seq for b in verify_chain(events).breaks] == [5]


def test_deleted_event_is_detected() -> None:
    events = _chain(10)
    del events[3]
    breaks = verify_chain(events).breaks
    assert breaks and breaks[0].seq == 5


def test_reordered_events_are_detected() -> None:
    events = _chain(10)
    events[2], events[3] = events[3], events[2]
    assert verify_chain(events).breaks


def test_recomputed_tail_still_breaks_at_the_link() -> None:
    events = _chain(5)
    events[2]["actor"] = "mallory"
    events[2]["hash"] = event_hash(events[2]["prev_hash"], events[2])
    # Rehashing one row is not enough: the next row still points at the old hash.
    assert [b.seq for b in verify_chain(events).breaks] == [4]
