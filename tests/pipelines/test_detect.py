"""Format detection by content, on hand-made inputs and on the public fixtures."""

from __future__ import annotations

import codecs
import time
from pathlib import Path

import pytest

from pipelines.parsers.detect import DetectedFormat, detect_format, sniff_xml_root

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
EINVOICE = SHARED / "einvoice"

UBL_INV = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
UBL_CN = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CII = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"

needs_data = pytest.mark.skipif(not EINVOICE.is_dir(), reason=f"shared data not found at {SHARED}")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n", DetectedFormat.PDF),
        (b"\r\n\r\n%PDF-1.7\n", DetectedFormat.PDF),  # junk before the header is tolerated
        (f'<Invoice xmlns="{UBL_INV}"/>'.encode(), DetectedFormat.UBL_INVOICE),
        (f"<ubl:Invoice xmlns:ubl='{UBL_INV}'></ubl:Invoice>".encode(), DetectedFormat.UBL_INVOICE),
        (f'<CreditNote xmlns="{UBL_CN}"/>'.encode(), DetectedFormat.UBL_CREDIT_NOTE),
        (
            b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>',
            DetectedFormat.UBL_ORDER,
        ),
        (f'<rsm:CrossIndustryInvoice xmlns:rsm="{CII}"/>'.encode(), DetectedFormat.CII),
        (
            b'<rsm:CrossIndustryDocument xmlns:rsm="urn:ferd:CrossIndustryDocument:invoice:1p0"/>',
            DetectedFormat.CII,
        ),
        (
            b'<rsm:SCRDMCCBDACIOMessageStructure xmlns:rsm="urn:un:unece:uncefact:data:'
            b'SCRDMCCBDACIOMessageStructure:100"/>',
            DetectedFormat.ORDER_X,
        ),
        # The namespace decides, not the element name.
        (b'<Invoice xmlns="urn:example:not-ubl"/>', DetectedFormat.UNKNOWN),
        (b"<Invoice/>", DetectedFormat.UNKNOWN),
        (b"invoice_no;date;amount\nA-1;2024-01-02;100.00\n", DetectedFormat.CSV),
        (b'\xef\xbb\xbfInvoice,Date,Amount\r\n1,2024-01-02,"1,000.00"\r\n', DetectedFormat.CSV),
        (b"a\tb\tc\n1\t2\t3\n", DetectedFormat.CSV),
        (b"just one line, with a comma", DetectedFormat.UNKNOWN),
        (b"Hello\nworld\n", DetectedFormat.UNKNOWN),
        (b'{"invoice": 1,\n "total": 2}', DetectedFormat.UNKNOWN),
        (b"\x00\x01\x02\x03", DetectedFormat.UNKNOWN),
        (b"", DetectedFormat.UNKNOWN),
    ],
)
def test_detects_by_content(data: bytes, expected: DetectedFormat) -> None:
    assert detect_format(data) is expected


def test_skips_bom_declaration_comments_and_processing_instructions() -> None:
    data = (
        codecs.BOM_UTF8
        + b'<?xml version="1.0" encoding="UTF-8"?>\n<!-- licence\n <Order> in a comment -->\n'
        + b'<?xml-stylesheet href="x.xsl"?>\n'
        + f'<Invoice\n  xmlns:cbc="urn:x"\n  xmlns="{UBL_INV}"\n>'.encode()
    )
    assert detect_format(data) is DetectedFormat.UBL_INVOICE


def test_a_doctype_is_skipped_not_expanded() -> None:
    data = (
        '<!DOCTYPE Invoice [<!ENTITY a "x>y"> <!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        f'<Invoice xmlns="{UBL_INV}">&xxe;</Invoice>'
    ).encode()
    # Detection reads the root name; refusing the DTD is the parser's job (test_xml_safety).
    assert detect_format(data) is DetectedFormat.UBL_INVOICE


def test_utf16_xml() -> None:
    text = f'<?xml version="1.0" encoding="UTF-16"?><CreditNote xmlns="{UBL_CN}"/>'
    assert detect_format(text.encode("utf-16")) is DetectedFormat.UBL_CREDIT_NOTE
    assert detect_format(text.encode("utf-16-le")) is DetectedFormat.UBL_CREDIT_NOTE


def test_a_long_licence_comment_before_the_root() -> None:
    data = b"<!--" + b"x" * 200_000 + b"-->" + f'<Invoice xmlns="{UBL_INV}"/>'.encode()
    assert detect_format(data) is DetectedFormat.UBL_INVOICE


def test_truncated_start_tag_is_unknown() -> None:
    assert detect_format(f'<Invoice xmlns="{UBL_INV}'.encode()) is DetectedFormat.UNKNOWN


def test_sniff_xml_root() -> None:
    assert sniff_xml_root(f"<a:Invoice xmlns:a='{UBL_INV}'>".encode()) == (UBL_INV, "Invoice")
    assert sniff_xml_root(b"<root/>") == ("", "root")
    assert sniff_xml_root(b"not xml") is None


def test_the_file_name_plays_no_part() -> None:
    # Same bytes, whatever they would be called: detection has no name to look at.
    assert detect_format(b"%PDF-1.5\n") is DetectedFormat.PDF


def test_detection_reads_only_the_start_of_large_files() -> None:
    data = f'<Invoice xmlns="{UBL_INV}">'.encode() + b"<x/>" * 5_000_000  # 20 MB
    started = time.perf_counter()
    assert detect_format(data) is DetectedFormat.UBL_INVOICE
    # Generous bound: a full parse of 20 MB takes seconds; the sniff takes microseconds.
    assert time.perf_counter() - started < 0.5


@needs_data
@pytest.mark.parametrize(
    ("pattern", "expected", "count"),
    [
        ("en16931/ubl/*", DetectedFormat.UBL_INVOICE, 18),
        ("en16931/ubl/*creditnote*", DetectedFormat.UBL_CREDIT_NOTE, 1),
        ("en16931/cii/*.xml", DetectedFormat.CII, 15),
        ("xrechnung/**/*_ubl.xml", DetectedFormat.UBL_INVOICE, 45),
        ("xrechnung/**/*_uncefact.xml", DetectedFormat.CII, 41),
        ("factur-x/tests/fixtures/xml/factur-x-*.xml", DetectedFormat.CII, 5),
        ("factur-x/tests/fixtures/xml/zugferd-*.xml", DetectedFormat.CII, 3),
        ("factur-x/tests/fixtures/xml/order-x-*.xml", DetectedFormat.ORDER_X, 2),
        ("factur-x/tests/fixtures/xml/ubl-*.xml", DetectedFormat.UBL_INVOICE, 2),
        ("factur-x/tests/fixtures/pdf/*.pdf", DetectedFormat.PDF, 1),
        ("pdf/invoice2data/**/*.pdf", DetectedFormat.PDF, None),
    ],
)
def test_public_fixtures(pattern: str, expected: DetectedFormat, count: int | None) -> None:
    root = SHARED if pattern.startswith("pdf/") else EINVOICE
    paths = sorted(root.glob(pattern))
    found = [detect_format(path.read_bytes()) for path in paths]
    assert paths
    if count is not None:
        assert found.count(expected) == count
    else:
        assert set(found) == {expected}
