"""Line-level allowances and charges (EN 16931 BG-27/BG-28) and the BT-131 line net check.

Sources: KoSIT `itplr-kosit/xrechnung-testsuite` (Apache-2.0), CEN TC434 EN 16931 examples
(EUPL-1.2) and the Mustang project validator resources (Apache-2.0), all read unmodified from
`/work/shared/data/einvoice` (see its README and MANIFEST files).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from governance.tolerances import Tolerance, TolerancePolicy
from pipelines.canonical import DocumentLine, DocumentTotals, Invoice, Party
from pipelines.matching import MatchContext, match_document
from pipelines.parsers import ParseLimits, parse_document
from pipelines.parsers.csv_invoices import COLUMNS, read_csv
from pipelines.parsers.errors import ParseError
from pipelines.reasons import ReasonCode as R
from pipelines.writers.cii import write_cii
from pipelines.writers.csv_invoices import write_csv
from pipelines.writers.ubl import write_ubl

EINVOICE = Path(__file__).resolve().parents[3] / "shared" / "data" / "einvoice"
XRECHNUNG_CASES = EINVOICE / "xrechnung" / "src" / "test" / "business-cases"
EN16931 = EINVOICE / "en16931"
UBL_NS = {
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
}
CII_NS = {
    "ram": "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100",
    "rsm": "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
    "udt": "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100",
}


def _read(path: Path) -> Invoice:
    doc = parse_document(path.read_bytes()).document
    assert isinstance(doc, Invoice)
    return doc


def _line(doc: Invoice, line_id: str) -> DocumentLine:
    return next(line for line in doc.lines if line.line_id == line_id)


def _bt131(doc: Invoice, policy: TolerancePolicy | None = None) -> list[tuple[str, str, str]]:
    """(line id, expected, actual) of each BT-131 finding, with no supplier and no PO."""
    result = match_document(doc, MatchContext(supplier=None, po=None), policy or TolerancePolicy())
    return [
        (f.line_id or "", str(f.expected), str(f.actual))
        for f in result.findings
        if f.code is R.NOT_BALANCED and f.rule_id == "BT-131"
    ]


# -- readers -----------------------------------------------------------------------------


def test_ubl_reader_sums_line_allowances_and_charges() -> None:
    # One allowance "Damage" 12.00 and one charge "Testing" 12.00 on line 1; the
    # cac:Price/cac:AllowanceCharge (225.00, the price discount BT-147) is not a line allowance.
    line = _line(_read(EN16931 / "ubl" / "ubl-tc434-example2.xml"), "1")
    assert (line.allowances, line.charges) == (Decimal("12.00"), Decimal("12.00"))
    other = _line(_read(EN16931 / "ubl" / "ubl-tc434-example2.xml"), "2")
    assert (other.allowances, other.charges) == (0, 0)


def test_cii_reader_sums_line_allowances_and_charges() -> None:
    doc = _read(EN16931 / "cii" / "huf_example_cii.xml")
    assert [(ln.allowances, ln.charges) for ln in doc.lines] == [
        (0, Decimal("330.00")),
        (0, Decimal("293.00")),
        (0, Decimal("330.00")),
    ]
    # The price-level AppliedTradeAllowanceCharge (BT-147) is not a line allowance either.
    facturx = _read(EINVOICE / "factur-x/tests/fixtures/xml/factur-x-en16931.xml")
    assert [(ln.allowances, ln.charges) for ln in facturx.lines] == [
        (Decimal("4.00"), Decimal("4.00")),
        (Decimal("5.00"), Decimal("3.00")),
        (0, 0),
    ]


def test_xrechnung_pair_reads_the_same_line_allowances() -> None:
    ubl = _read(XRECHNUNG_CASES / "standard" / "03.07a-INVOICE_ubl.xml")
    cii = _read(XRECHNUNG_CASES / "standard" / "03.07a-INVOICE_uncefact.xml")
    assert (ubl.lines[0].allowances, ubl.lines[0].charges) == (Decimal(40000), Decimal(40000))
    assert (cii.lines[0].allowances, cii.lines[0].charges) == (
        ubl.lines[0].allowances,
        ubl.lines[0].charges,
    )


def test_line_allowance_without_charge_indicator_is_a_parse_error() -> None:
    data = write_ubl(_invoice())
    broken = data.replace(b"<cbc:ChargeIndicator>false</cbc:ChargeIndicator>", b"", 1)
    assert broken != data
    with pytest.raises(ParseError) as info:
        parse_document(broken)
    assert "InvoiceLine 1" in str(info.value) and "ChargeIndicator" in str(info.value)


# -- writers -----------------------------------------------------------------------------


def _invoice(allowances: str = "5.00", charges: str = "2.50") -> Invoice:
    line = DocumentLine(
        line_id="1",
        item_id="A-1",
        description="Widget",
        quantity=Decimal(10),
        unit_price=Decimal("12.50"),
        tax_category="S",
        tax_rate=Decimal(19),
        # 10 x 12.50 - allowances + charges, so that the line adds up (BT-131).
        line_amount=Decimal(125) - Decimal(allowances) + Decimal(charges),
        allowances=Decimal(allowances),
        charges=Decimal(charges),
        po_line_ref="10",
    )
    plain = DocumentLine(
        line_id="2",
        description="Bolt",
        quantity=Decimal(4),
        unit_price=Decimal("2.00"),
        line_amount=Decimal("8.00"),
        tax_category="S",
        tax_rate=Decimal(19),
    )
    return Invoice(
        number="INV-G-1",
        issue_date=date(2026, 1, 5),
        currency="EUR",
        supplier=Party(name="Seller GmbH", vat_id="DE123456789"),
        buyer=Party(name="Buyer AG"),
        lines=[line, plain],
        totals=DocumentTotals(
            line_extension=Decimal("130.50"),
            tax_exclusive=Decimal("130.50"),
            tax=Decimal("24.80"),
            tax_inclusive=Decimal("155.30"),
            payable=Decimal("155.30"),
        ),
    )


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


@pytest.mark.parametrize(("allowances", "charges"), [("5.00", "2.50"), ("0", "3"), ("1.5", "0")])
def test_ubl_writer_round_trips_line_allowances(allowances: str, charges: str) -> None:
    doc = _invoice(allowances, charges)
    back = parse_document(write_ubl(doc)).document
    assert back.lines == doc.lines
    assert _bt131(doc) == []


@pytest.mark.parametrize(("allowances", "charges"), [("5.00", "2.50"), ("0", "3"), ("1.5", "0")])
def test_cii_writer_round_trips_line_allowances(allowances: str, charges: str) -> None:
    doc = _invoice(allowances, charges)
    back = parse_document(write_cii(doc)).document
    assert back.lines == doc.lines


def test_ubl_writer_puts_line_allowance_charge_in_schema_order() -> None:
    root = ET.fromstring(write_ubl(_invoice()))
    lines = root.findall("cac:InvoiceLine", UBL_NS)
    children = [_local(child.tag) for child in lines[0]]
    # UBL 2.1 InvoiceLine sequence: ... OrderLineReference, AllowanceCharge*, Item, Price.
    assert children == [
        "ID",
        "InvoicedQuantity",
        "LineExtensionAmount",
        "OrderLineReference",
        "AllowanceCharge",
        "AllowanceCharge",
        "Item",
        "Price",
    ]
    allowance, charge = lines[0].findall("cac:AllowanceCharge", UBL_NS)
    assert [_local(c.tag) for c in allowance] == ["ChargeIndicator", "Amount"]
    assert allowance.findtext("cbc:ChargeIndicator", namespaces=UBL_NS) == "false"
    assert charge.findtext("cbc:ChargeIndicator", namespaces=UBL_NS) == "true"
    amount = charge.find("cbc:Amount", UBL_NS)
    assert amount is not None and (amount.text, amount.get("currencyID")) == ("2.50", "EUR")
    # A line with neither writes no AllowanceCharge at all.
    assert lines[1].find("cac:AllowanceCharge", UBL_NS) is None


def test_cii_writer_puts_line_allowance_charge_in_schema_order() -> None:
    root = ET.fromstring(write_cii(_invoice()))
    items = root.findall(
        "rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem", CII_NS
    )
    settlement = items[0].find("ram:SpecifiedLineTradeSettlement", CII_NS)
    assert settlement is not None
    assert [_local(child.tag) for child in settlement] == [
        "ApplicableTradeTax",
        "SpecifiedTradeAllowanceCharge",
        "SpecifiedTradeAllowanceCharge",
        "SpecifiedTradeSettlementLineMonetarySummation",
    ]
    allowance, charge = settlement.findall("ram:SpecifiedTradeAllowanceCharge", CII_NS)
    assert [_local(c.tag) for c in allowance] == ["ChargeIndicator", "ActualAmount"]
    indicator = "ram:ChargeIndicator/udt:Indicator"
    assert allowance.findtext(indicator, namespaces=CII_NS) == "false"
    assert charge.findtext(indicator, namespaces=CII_NS) == "true"
    assert charge.findtext("ram:ActualAmount", namespaces=CII_NS) == "2.50"
    other = items[1].find("ram:SpecifiedLineTradeSettlement", CII_NS)
    assert other is not None and other.find("ram:SpecifiedTradeAllowanceCharge", CII_NS) is None


def test_real_line_allowances_survive_ubl_to_cii_and_back() -> None:
    doc = _read(XRECHNUNG_CASES / "standard" / "03.07a-INVOICE_ubl.xml")
    via_cii = parse_document(write_cii(doc)).document
    via_ubl = parse_document(write_ubl(via_cii)).document
    assert via_cii.lines == doc.lines
    assert via_ubl.lines == doc.lines


# -- CSV ---------------------------------------------------------------------------------


def test_csv_carries_line_allowances_and_charges() -> None:
    doc = _invoice()
    data = write_csv([doc])
    header = data.decode("utf-8").splitlines()[0].split(",")
    assert "line_allowances" in header and "line_charges" in header
    assert header == list(COLUMNS)
    (back,) = read_csv(data, ParseLimits())
    assert back.lines == doc.lines
    rows = data.decode("utf-8").splitlines()
    cells = dict(zip(header, rows[1].split(","), strict=True))
    assert (cells["line_allowances"], cells["line_charges"]) == ("5.00", "2.50")
    # Zero is written as an empty cell and read back as 0.
    empty = dict(zip(header, rows[2].split(","), strict=True))
    assert (empty["line_allowances"], empty["line_charges"]) == ("", "")


def test_csv_line_allowances_are_optional_and_strict() -> None:
    limits = ParseLimits()
    base = "document_type,number,line_id,quantity,unit_price,line_amount"
    (doc,) = read_csv(f"{base}\r\ninvoice,1,1,2,5,10\r\n".encode(), limits)
    assert (doc.lines[0].allowances, doc.lines[0].charges) == (0, 0)
    (doc,) = read_csv(f"{base},line_allowances\r\ninvoice,1,1,2,5,9,1\r\n".encode(), limits)
    assert doc.lines[0].allowances == Decimal(1)
    with pytest.raises(ParseError) as info:
        read_csv(f'{base},line_charges\r\ninvoice,1,1,2,5,9,"1,5"\r\n'.encode(), limits)
    assert "line_charges" in str(info.value)


# -- the BT-131 line check ---------------------------------------------------------------


def test_bt131_flags_each_wrong_line_with_expected_actual_and_variance() -> None:
    doc = _invoice()
    wrong = doc.lines[0].model_copy(update={"line_amount": Decimal("125.00")})
    also = doc.lines[1].model_copy(update={"line_amount": Decimal("7.00")})
    bad = doc.model_copy(update={"lines": [wrong, also]})
    result = match_document(bad, MatchContext(supplier=None, po=None), TolerancePolicy())
    findings = [f for f in result.findings if f.rule_id == "BT-131"]
    assert [(f.code, f.line_id) for f in findings] == [(R.NOT_BALANCED, "1"), (R.NOT_BALANCED, "2")]
    first = findings[0]
    # 10 x 12.50 - 5.00 + 2.50
    assert (first.expected, first.actual, first.variance) == (
        Decimal("122.50"),
        Decimal("125.00"),
        Decimal("2.50"),
    )
    assert first.tolerance is not None and first.tolerance.allowed == Decimal("0.01")


def test_bt131_ignoring_line_allowances_would_flag_the_line() -> None:
    # The same line without its allowance/charge sums no longer adds up: the check uses them.
    doc = _invoice()
    stripped = doc.lines[0].model_copy(update={"allowances": Decimal(0), "charges": Decimal(0)})
    assert _bt131(doc) == []
    assert _bt131(doc.model_copy(update={"lines": [stripped, doc.lines[1]]})) == [
        ("1", "125.00", "122.50")
    ]


def test_bt131_uses_price_base_quantity_and_rounds_half_up_to_cents() -> None:
    # 3 x 0.125 per 1 unit = 0.375 -> 0.38 (half up); per 100 units: 250 x 12.34 / 100 = 30.85.
    cheap = DocumentLine(
        line_id="1", quantity=Decimal(3), unit_price=Decimal("0.125"), line_amount=Decimal("0.38")
    )
    per_hundred = DocumentLine(
        line_id="2",
        quantity=Decimal(250),
        unit_price=Decimal("12.34"),
        price_base_quantity=Decimal(100),
        line_amount=Decimal("30.85"),
    )
    doc = Invoice(number="X", currency="EUR", lines=[cheap, per_hundred])
    assert _bt131(doc) == []
    ignoring_base = per_hundred.model_copy(update={"line_amount": Decimal("3085.00")})
    assert _bt131(doc.model_copy(update={"lines": [cheap, ignoring_base]})) == [
        ("2", "30.85", "3085.00")
    ]


def test_bt131_uses_the_rounding_tolerance() -> None:
    line = DocumentLine(
        line_id="1", quantity=Decimal(2), unit_price=Decimal(5), line_amount=Decimal("10.02")
    )
    doc = Invoice(number="X", currency="EUR", lines=[line])
    assert _bt131(doc) == [("1", "10.00", "10.02")]
    loose = TolerancePolicy.from_mapping({"defaults": {"rounding": {"absolute": "0.05"}}})
    assert loose.defaults.rounding == Tolerance(percent=None, absolute=Decimal("0.05"))
    assert _bt131(doc, loose) == []


# -- the published corpus ----------------------------------------------------------------

# Published examples that are themselves inconsistent on the line (quantity x price / base
# quantity - allowances + charges != line amount). Each is listed with the lines and the reason;
# any other line of any corpus file flagged by BT-131 fails the test, as does an entry that no
# longer fires.
INCONSISTENT_EXAMPLES: dict[str, tuple[set[str], str]] = {
    "ubl/guide-example1.xml": ({"20"}, "return line: quantity 6 x 18.33 but amount -109.98"),
    "ubl/ubl-tc434-example1.xml": ({"20"}, "return line: quantity 6 x 18.33, amount -109.98"),
    "ubl/ubl-tc434-example10.xml": ({"20"}, "return line: quantity 6 x 18.33, amount -109.98"),
    "cii/CII_example1.xml": ({"20"}, "return line: quantity 6 x 18.33, amount -109.98"),
    "ubl/guide-example2.xml": ({"1"}, "quantity 2 x 1273.00 but amount 1273.00 (CII twin: 1)"),
    "ubl/ubl-tc434-example2.xml": ({"1"}, "quantity 2 x 1273.00 but amount 1273.00"),
    "ubl/guide-example3.xml": ({"1", "2"}, "quantity 2 x 800.00 but amount 400.00"),
    "ubl/ubl-tc434-example3.xml": ({"1", "2"}, "quantity 2 x 800.00 but amount 800.00"),
    # These CII examples repeat the net price as the price base quantity (BT-149), e.g. price
    # 1273 per 1273 NAR, so quantity x price / base is the quantity.
    "cii/CII_business_example_01.xml": ({"1", "2", "3", "4", "5"}, "BT-149 repeats the price"),
    "cii/CII_example2.xml": ({"1", "2", "3", "4", "5"}, "BT-149 repeats the price"),
    "cii/CII_example8.xml": ({str(n) for n in range(1, 11)}, "BT-149 repeats the price"),
    "cii/CII_example9.xml": ({"1"}, "BT-149 repeats the price (49 per 49 MON)"),
    "cii/CII_business_example_Z.xml": ({"16"}, "surcharge line 'zzgl.': 1 x 1.50, amount 177.41"),
    "cii/XRechnung-O.xml": (
        {"1", "2"},
        "line charge (insurance tax) is subtracted: amount = price - charge, not + charge",
    ),
    "cii/huf_example_cii.xml": (
        {"1", "2", "3"},
        "line amounts rounded to whole forints (23439.76 stated as 23440.00)",
    ),
}


def _corpus() -> list[Path]:
    files = sorted(XRECHNUNG_CASES.rglob("*.xml"))
    for syntax in ("ubl", "cii"):
        files += sorted(p for p in (EN16931 / syntax).iterdir() if p.suffix.lower() == ".xml")
    return files


CORPUS = _corpus()


def test_corpus_is_the_expected_size() -> None:
    # A guard against a moved data folder silently making the corpus test vacuous.
    assert len(CORPUS) >= 100
    assert all((EN16931 / name).is_file() for name in INCONSISTENT_EXAMPLES)


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(EINVOICE)))
def test_no_valid_corpus_document_is_flagged_by_bt131(path: Path) -> None:
    try:
        doc = parse_document(path.read_bytes()).document
    except ParseError:
        return  # only documents that parse are checked
    relative = str(path.relative_to(EN16931)) if path.is_relative_to(EN16931) else ""
    expected_lines, _reason = INCONSISTENT_EXAMPLES.get(relative, (set(), ""))
    assert isinstance(doc, Invoice) or not expected_lines
    result = match_document(doc, MatchContext(supplier=None, po=None), TolerancePolicy())
    flagged = {f.line_id for f in result.findings if f.rule_id == "BT-131"}
    assert flagged == expected_lines


# -- Mustang validator cases -------------------------------------------------------------

MUSTANG = Path(__file__).resolve().parents[3] / "shared/data/einvoice/mustang/validator/src/test"


@pytest.mark.parametrize(
    ("name", "unbalanced"),
    [("invalidArithmetics.xml", True), ("roundingDifferenceIsInTolerance.xml", False)],
)
def test_mustang_arithmetic_cases(name: str, unbalanced: bool) -> None:
    doc = parse_document((MUSTANG / "resources" / name).read_bytes()).document
    rules = {
        f.rule_id
        for f in match_document(
            doc, MatchContext(supplier=None, po=None), TolerancePolicy()
        ).findings
        if f.code is R.NOT_BALANCED
    }
    assert bool(rules) is unbalanced, rules
    # The handed-over block accepted only BR-CO-* here; invalidArithmetics.xml has consistent
    # totals and one wrong line (2 x 160.00 stated as 160.00), which is the BT-131 line check.
    assert all(rule and (rule.startswith("BR-CO-") or rule == "BT-131") for rule in rules)


def test_mustang_invalid_arithmetics_names_the_wrong_line() -> None:
    doc = _read(MUSTANG / "resources" / "invalidArithmetics.xml")
    assert _bt131(doc) == [("1", "320.00", "160.00")]
