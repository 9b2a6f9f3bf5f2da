"""Deterministic audit sampling: a fixed share of clean sign-offs goes to a controller (DESIGN §7).

The same case is always in or always out of the sample (for the same rate and salt), across
processes and Python versions: the draw is sha256 of the salt and the case id, not `hash()`,
which is randomised per process. The case id is taken as text, so 42 and "42" are one case.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal

DEFAULT_AUDIT_RATE = 0.05
DEFAULT_SALT = "tollgate"

# The first 8 bytes of the digest as an integer in [0, 2**64): uniform, and plenty of resolution.
_SPACE = 2**64


def audit_draw(case_id: int | str, salt: str = DEFAULT_SALT) -> int:
    """The case's fixed draw in [0, 2**64), from sha256 of salt and case id."""
    digest = hashlib.sha256(f"{salt}\x1f{case_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def in_audit_sample(
    case_id: int | str, rate: float = DEFAULT_AUDIT_RATE, salt: str = DEFAULT_SALT
) -> bool:
    """Whether the case falls in the audit sample at `rate` (0..1); deterministic per case."""
    if not 0 <= rate <= 1:
        raise ValueError(f"audit rate must be between 0 and 1, got {rate}")
    # Exact arithmetic for the cut-off so a rate of 1 takes every case and 0 none.
    cutoff = int(Decimal(str(rate)) * _SPACE)
    return audit_draw(case_id, salt) < cutoff
