"""Amount and date parsing in the EN/DE/FR/NL formats invoices print."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pipelines.extract.numbers import (
    find_amounts,
    find_dates,
    looks_month_first,
    parse_amount,
    parse_date,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.234,56", "1234.56"),  # DE / FR / NL
        ("1,234.56", "1234.56"),  # EN
        ("1 234,56", "1234.56"),  # FR with a space
        ("1\u202f234,56", "1234.56"),  # FR with a narrow no-break space
        ("1'234.56", "1234.56"),  # CH
        ("1.234.567,89", "1234567.89"),
        ("1,234,567.89", "1234567.89"),
        ("46,68", "46.68"),
        ("4.11", "4.11"),
        ("1939", "1939"),
        ("-233,47", "-233.47"),
        ("(12.50)", "-12.50"),
        ("0,025", "0.025"),
        ("3,3333", "3.3333"),
        ("1.000", "1000"),  # three digits after a single mark: thousands
        ("1,000", "1000"),
    ],
)
def test_parse_amount_formats(text: str, expected: str) -> None:
    value = parse_amount(text)
    assert value == Decimal(expected)
    assert isinstance(value, Decimal)


@pytest.mark.parametrize("text", ["12.34.5", "1,23,4", "abc", "", "12a", "1.2345.678"])
def test_parse_amount_rejects_non_amounts(text: str) -> None:
    assert parse_amount(text) is None


def test_find_amounts_skips_percentages_and_keeps_spans() -> None:
    text = "Total HT : 46,68 € TVA 20% : 9,34 € 19 %"
    found = find_amounts(text)
    assert [f.value for f in found] == [Decimal("46.68"), Decimal("9.34")]
    assert text[found[0].start : found[0].end] == "46,68"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-03-07", date(2026, 3, 7)),
        ("07.03.2026", date(2026, 3, 7)),
        ("07/03/2026", date(2026, 3, 7)),  # day first by default
        ("7 March 2026", date(2026, 3, 7)),
        ("7 mars 2026", date(2026, 3, 7)),
        ("7. März 2026", date(2026, 3, 7)),
        ("7 maart 2026", date(2026, 3, 7)),
        ("Mar 7, 2026", date(2026, 3, 7)),
        ("March 7th, 2026", date(2026, 3, 7)),
        ("August 3 , 2014", date(2014, 8, 3)),
        ("02 Juillet 2015", date(2015, 7, 2)),
        ("1er février 2026", date(2026, 2, 1)),
        ("8-9-2022", date(2022, 9, 8)),
        ("26.10.22", date(2022, 10, 26)),
        ("03/20/2023", date(2023, 3, 20)),  # only readable month first
    ],
)
def test_parse_date_formats(text: str, expected: date) -> None:
    assert parse_date(text) == expected


def test_us_dates_when_the_document_is_month_first() -> None:
    assert parse_date("03/07/2026", month_first=True) == date(2026, 3, 7)
    assert parse_date("03/07/2026") == date(2026, 7, 3)
    # Dotted dates are never US, whatever the document says.
    assert parse_date("03.07.2026", month_first=True) == date(2026, 7, 3)


def test_month_first_detection() -> None:
    assert looks_month_first(["Invoice Date: 03/20/2023", "Due 04/04/2023"])
    assert not looks_month_first(["Datum: 20/03/2023", "07/03/2026"])


def test_invalid_dates_are_dropped() -> None:
    assert parse_date("31.02.2026") is None
    assert find_dates("Version 2.5 vom 10.01.2023")[0].value == date(2023, 1, 10)
    assert find_dates("no date here") == []
