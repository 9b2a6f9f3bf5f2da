"""Audit-chain hashing: each event's hash covers its content and the previous event's hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

GENESIS_HASH = "0" * 64

# The fields an event's hash covers, in this order; changing it breaks every stored chain.
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor",
    "actor_role",
    "action",
    "object_type",
    "object_id",
    "before",
    "after",
    "model_name",
    "model_version",
    "request_id",
)


def to_canonical(value: Any) -> Any:
    """Turn Decimals, dates and nested containers into plain JSON values, stably."""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): to_canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_canonical(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """A stable JSON text: sorted keys, no spaces, Decimals and dates as strings."""
    return json.dumps(
        to_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The sha256 over the previous hash and the event's hashed fields."""
    payload = {name: event.get(name) for name in HASHED_FIELDS}
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_json(payload).encode("utf-8"))
    return digest.hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    """Where a chain stops verifying, and why."""

    seq: int
    reason: str


@dataclass(frozen=True)
class ChainReport:
    """What recomputing a chain found, and where the chain ends."""

    breaks: list[ChainBreak]
    events: int
    last_seq: int
    last_hash: str


def verify_chain(
    events: Iterable[Mapping[str, Any]], *, start_hash: str = GENESIS_HASH, start_seq: int = 0
) -> ChainReport:
    """Recompute the chain over events ordered by seq; report every break found."""
    breaks: list[ChainBreak] = []
    prev_hash, expected_seq, count = start_hash, start_seq + 1, 0
    for event in events:
        count += 1
        seq = int(event["seq"])
        if seq != expected_seq:
            breaks.append(ChainBreak(seq, f"sequence gap: expected {expected_seq}, found {seq}"))
        if event["prev_hash"] != prev_hash:
            breaks.append(ChainBreak(seq, "prev_hash does not match the previous event's hash"))
        if event_hash(event["prev_hash"], event) != event["hash"]:
            breaks.append(ChainBreak(seq, "content does not match its hash"))
        prev_hash, expected_seq = event["hash"], seq + 1
    return ChainReport(breaks, count, expected_seq - 1, prev_hash)
