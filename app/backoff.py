"""Capped exponential backoff with jitter, shared by the ERP outbox and webhook deliveries."""

from __future__ import annotations

import random
from datetime import timedelta


def capped_backoff(attempt: int, base: timedelta, cap: timedelta, rng: random.Random) -> timedelta:
    """Wait after the `attempt`-th failure: base·2^(attempt-1), capped, then jittered to 50-100 %.

    The jitter keeps many rows that failed together (the receiver was down) from retrying
    together.
    """
    exponent = min(max(attempt - 1, 0), 32)
    return min(base * (2**exponent), cap) * (0.5 + rng.random() / 2)
