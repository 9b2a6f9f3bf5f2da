"""Parse amounts and dates as printed on invoices in EN/DE/FR/NL conventions.

Amounts come as `1.234,56`, `1,234.56`, `1 234,56` or `1'234.56`; the decimal mark is decided
per number from its shape (a separator followed by exactly two digits at the end is decimal).
Dates come as ISO, dotted, slashed (day first unless the document is known to be US), with
month names in four languages, or as `Mar 7, 2026`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import lru_cache

# A number with optional thousands groups (".", ",", " ", "'", thin spaces) and decimal part.
_AMOUNT = re.compile(
    r"(?<![\w.,])[-\u2212]?\s?(?:\d{1,3}(?:[.,'\u2019\u202f\u00a0 ]\d{3})+|\d+)"
    r"(?:[.,]\d{1,4})?(?![\w%]|[.,]\d|\s?%)"
)
_GROUP_SEPS = ".,'\u2019\u202f\u00a0 "


def parse_amount(text: str) -> Decimal | None:
    """Read one printed amount (`1.234,56`, `1,234.56`, `1 234,56`, `1'234.56`), else None."""
    s = text.strip().replace("\u2212", "-")
    negative = s.startswith("-") or (s.startswith("(") and s.endswith(")"))
    s = s.strip("()-+ ")
    if not s or not s[0].isdigit() or not s[-1].isdigit():
        return None
    if any(not (c.isdigit() or c in _GROUP_SEPS) for c in s):
        return None
    last_sep = max(s.rfind("."), s.rfind(","))
    integer, fraction = s, ""
    if last_sep >= 0:
        tail = s[last_sep + 1 :]
        sep = s[last_sep]
        others = s[:last_sep]
        # "1.234" and "1,234" are thousands when the same mark also groups earlier digits or
        # when exactly three digits follow; two (or four) digits make a decimal part.
        is_decimal = (
            len(tail) != 3
            or others in ("0", "-0")
            or (sep not in others and _mixed_marks(others, sep))
        )
        if is_decimal:
            integer, fraction = others, tail
    digits = "".join(c for c in integer if c.isdigit())
    if not _valid_grouping(integer):
        return None
    try:
        value = Decimal(digits + ("." + fraction if fraction else ""))
    except InvalidOperation:
        return None
    return -value if negative else value


def _mixed_marks(head: str, sep: str) -> bool:
    """True when the head already uses the other mark for grouping (so `sep` is decimal)."""
    other = "," if sep == "." else "."
    return other in head or "'" in head or " " in head


def _valid_grouping(integer: str) -> bool:
    """Groups after the first must be three digits, so `12.34.5` is not an amount."""
    parts = re.split(r"[.,'\u2019\u202f\u00a0 ]", integer)
    if len(parts) == 1:
        return parts[0].isdigit()
    return 1 <= len(parts[0]) <= 3 and all(len(p) == 3 and p.isdigit() for p in parts[1:])


@dataclass(frozen=True)
class Found:
    """A value found in a text, with the character span it came from."""

    value: object
    start: int
    end: int
    text: str


def find_amounts(text: str) -> list[Found]:
    """All amounts in a text; bare integers count too (the caller weighs them lower)."""
    return list(_amounts(text))


@lru_cache(maxsize=8192)
def _amounts(text: str) -> tuple[Found, ...]:
    # Cached: each line and cell is searched for amounts by several rules in turn.
    out: list[Found] = []
    for m in _AMOUNT.finditer(text):
        raw = m.group(0).strip()
        value = parse_amount(raw)
        if value is not None:
            start = m.start() + len(m.group(0)) - len(m.group(0).lstrip())
            out.append(Found(value, start, m.end(), raw))
    return tuple(out)


MONTHS: dict[str, int] = {}
for _number, _names in enumerate(
    [
        "january jan januar janvier janv januari jänner",
        "february feb februar février fevrier févr fevr februari",
        "march mar märz maerz mars maart mrz",
        "april apr avril avr",
        "may mai mei",
        "june jun juni juin",
        "july jul juli juillet juil",
        "august aug août aout augustus",
        "september sep sept septembre",
        "october oct oktober octobre okt",
        "november nov novembre",
        "december dec dezember décembre decembre dez",
    ],
    start=1,
):
    for _name in _names.split():
        MONTHS[_name] = _number

_MONTH_RE = "|".join(sorted((re.escape(n) for n in MONTHS), key=len, reverse=True))
_ISO = re.compile(r"(?<!\d)(\d{4})-(\d{1,2})-(\d{1,2})(?!\d)")
_NUMERIC = re.compile(r"(?<![\d.])(\d{1,2})([./-])(\d{1,2})\2(\d{4}|\d{2})(?![\d])")
_DAY_MONTH_YEAR = re.compile(
    rf"(?<![\w])(\d{{1,2}})(?:st|nd|rd|th|er)?\.?\s*({_MONTH_RE})\.?\s*,?\s*(\d{{4}})(?!\d)",
    re.IGNORECASE,
)
_MONTH_DAY_YEAR = re.compile(
    rf"(?<![\w])({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?\s*,\s*(\d{{4}})(?!\d)",
    re.IGNORECASE,
)


def _make(year: int, month: int, day: int) -> date | None:
    if year < 100:
        year += 2000
    try:
        return date(year, month, day)
    except ValueError:
        return None


def find_dates(text: str, *, month_first: bool = False) -> list[Found]:
    """All dates in a text; slashed dates are day-first unless `month_first` (US documents)."""
    out: list[Found] = []
    for m in _ISO.finditer(text):
        d = _make(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if d:
            out.append(Found(d, m.start(), m.end(), m.group(0)))
    for m in _NUMERIC.finditer(text):
        a, sep, b, y = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
        # Dots are never US; a slash date with a first part above 12 cannot be month-first.
        us = month_first and sep == "/" and a <= 12
        if sep == "/" and b > 12 and a <= 12:
            us = True
        d = _make(y, a, b) if us else _make(y, b, a)
        if d:
            out.append(Found(d, m.start(), m.end(), m.group(0)))
    for m in _DAY_MONTH_YEAR.finditer(text):
        d = _make(int(m.group(3)), MONTHS[m.group(2).lower()], int(m.group(1)))
        if d:
            out.append(Found(d, m.start(), m.end(), m.group(0)))
    for m in _MONTH_DAY_YEAR.finditer(text):
        d = _make(int(m.group(3)), MONTHS[m.group(1).lower()], int(m.group(2)))
        if d:
            out.append(Found(d, m.start(), m.end(), m.group(0)))
    out.sort(key=lambda f: f.start)
    return _drop_overlaps(out)


def _drop_overlaps(found: list[Found]) -> list[Found]:
    kept: list[Found] = []
    for f in found:
        if kept and f.start < kept[-1].end:
            if (f.end - f.start) > (kept[-1].end - kept[-1].start):
                kept[-1] = f
            continue
        kept.append(f)
    return kept


def parse_date(text: str, *, month_first: bool = False) -> date | None:
    """Read one printed date in any supported format, else None."""
    found = find_dates(text, month_first=month_first)
    return found[0].value if found and isinstance(found[0].value, date) else None


def looks_month_first(texts: Iterator[str] | list[str]) -> bool:
    """True when some slash date in the document only reads month-first (`03/20/2023`)."""
    for text in texts:
        for m in _NUMERIC.finditer(text):
            if m.group(2) == "/" and int(m.group(1)) <= 12 < int(m.group(3)):
                return True
    return False
