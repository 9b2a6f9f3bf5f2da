"""Hostile and broken input: every case is a typed ParseError, never a crash or a leak."""

from __future__ import annotations

import pytest

from pipelines.canonical import Invoice, SourceFormat
from pipelines.parsers import (
    DetectedFormat,
    ParseError,
    ParseErrorCode,
    ParseLimits,
    parse_document,
)
from pipelines.parsers.xml_safety import parse_xml

INVOICE_OPEN = (
    '<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"'
    ' xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">'
)

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE Invoice [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
    + INVOICE_OPEN
    + "<cbc:ID>&lol9;</cbc:ID></Invoice>"
).encode()

EXTERNAL_ENTITY = (
    '<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n'
    + INVOICE_OPEN
    + "<cbc:ID>&xxe;</cbc:ID></Invoice>"
).encode()

EXTERNAL_DTD = (
    '<?xml version="1.0"?>\n<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:9/x.dtd">\n'
    + INVOICE_OPEN
    + "<cbc:ID>1</cbc:ID></Invoice>"
).encode()

PARAMETER_ENTITIES = (
    '<?xml version="1.0"?>\n<!DOCTYPE Invoice [\n'
    ' <!ENTITY % remote SYSTEM "http://127.0.0.1:9/evil.dtd">\n %remote;\n]>\n'
    + INVOICE_OPEN
    + "<cbc:ID>1</cbc:ID></Invoice>"
).encode()

INTERNAL_ENTITY = (
    '<!DOCTYPE Invoice [<!ENTITY n "42">]>' + INVOICE_OPEN + "<cbc:ID>&n;</cbc:ID></Invoice>"
).encode()

TRUNCATED = (INVOICE_OPEN + "<cbc:ID>INV-1</cbc:ID><cbc:IssueDate>2024-01-0").encode()

DEEP = (INVOICE_OPEN + "<a>" * 5000 + "</a>" * 5000 + "</Invoice>").encode()


def _fails_with(data: bytes, code: ParseErrorCode, limits: ParseLimits | None = None) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_document(data, limits or ParseLimits())
    error = caught.value
    assert error.code is code, error
    # No file content can leak: nothing was ever read from the file system or network.
    text = f"{error.message} {error.detail or ''}"
    assert "root:x:0:0" not in text
    assert "lollollol" not in text
    assert error.message  # a human-readable explanation is always present
    return error


@pytest.mark.parametrize(
    "data",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, EXTERNAL_DTD, PARAMETER_ENTITIES, INTERNAL_ENTITY],
    ids=["billion-laughs", "external-entity", "external-dtd", "parameter-entity", "any-entity"],
)
def test_dtds_and_entities_are_unsafe(data: bytes) -> None:
    _fails_with(data, ParseErrorCode.UNSAFE_XML)


def test_a_bare_doctype_is_unsafe_too() -> None:
    data = ("<!DOCTYPE Invoice>" + INVOICE_OPEN + "</Invoice>").encode()
    _fails_with(data, ParseErrorCode.UNSAFE_XML)


def test_unsafe_xml_in_an_unrecognised_root_is_still_unsafe() -> None:
    data = b'<!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]><x>&a;</x>'
    _fails_with(data, ParseErrorCode.UNSAFE_XML)


def test_absurd_nesting_is_refused() -> None:
    _fails_with(DEEP, ParseErrorCode.UNSAFE_XML)


def test_oversize_input_is_refused_before_parsing() -> None:
    # Deliberately hostile content too: the size check must come first.
    error = _fails_with(BILLION_LAUGHS, ParseErrorCode.TOO_LARGE, ParseLimits(max_bytes=100))
    assert "100" in error.message


def test_default_limit_is_twenty_mebibytes() -> None:
    data = b" " * (20 * 1024 * 1024 + 1)
    _fails_with(data, ParseErrorCode.TOO_LARGE)


def test_zero_bytes_is_empty() -> None:
    _fails_with(b"", ParseErrorCode.EMPTY)


def test_blank_space_is_empty() -> None:
    _fails_with(b" \r\n\t ", ParseErrorCode.EMPTY)


def test_truncated_xml_is_malformed() -> None:
    _fails_with(TRUNCATED, ParseErrorCode.MALFORMED_XML)


def test_broken_markup_is_malformed() -> None:
    _fails_with(b"<Invoice><cbc:ID>1</Invoice>", ParseErrorCode.MALFORMED_XML)
    _fails_with(b"<<<>>>", ParseErrorCode.MALFORMED_XML)


def test_unknown_declared_encoding_is_malformed() -> None:
    data = (
        b'<?xml version="1.0" encoding="x-no-such-codec"?>' + INVOICE_OPEN.encode() + b"</Invoice>"
    )
    _fails_with(data, ParseErrorCode.MALFORMED_XML)


def test_non_xml_text_is_an_unsupported_format() -> None:
    _fails_with(
        b"Dear customer, please find attached our invoice.", ParseErrorCode.UNSUPPORTED_FORMAT
    )


def test_binary_noise_is_an_unsupported_format() -> None:
    _fails_with(bytes(range(256)) * 4, ParseErrorCode.UNSUPPORTED_FORMAT)


def test_a_pdf_header_without_a_body_is_a_corrupt_pdf() -> None:
    # No cross-reference table and no trailer: a PDF reader cannot open it.
    error = _fails_with(
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", ParseErrorCode.CORRUPT_PDF
    )
    assert "PDF" in error.message


def test_cii_is_detected_and_read() -> None:
    data = (
        b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:'
        b'CrossIndustryInvoice:100"/>'
    )
    parsed = parse_document(data)
    assert parsed.format is DetectedFormat.CII
    assert isinstance(parsed.document, Invoice)
    assert parsed.document.source_format is SourceFormat.CII


def test_ubl_order_is_an_unsupported_document() -> None:
    data = b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><ID/></Order>'
    _fails_with(data, ParseErrorCode.UNSUPPORTED_DOCUMENT)


def test_other_ubl_documents_are_unsupported_documents() -> None:
    data = (
        b'<DespatchAdvice xmlns="urn:oasis:names:specification:ubl:schema:xsd:DespatchAdvice-2">'
        b"</DespatchAdvice>"
    )
    error = _fails_with(data, ParseErrorCode.UNSUPPORTED_DOCUMENT)
    assert "DespatchAdvice" in error.message


def test_unknown_xml_is_an_unsupported_format() -> None:
    _fails_with(b"<?xml version='1.0'?><note><to>AP</to></note>", ParseErrorCode.UNSUPPORTED_FORMAT)


class TestParseXml:
    """The safe parser on its own."""

    def test_parses_plain_xml(self) -> None:
        root = parse_xml(b"<a><b>text &amp; more</b></a>", max_bytes=1000)
        assert root.findtext("b") == "text & more"

    def test_parses_utf16_with_bom(self) -> None:
        data = '<?xml version="1.0" encoding="UTF-16"?><a>ä</a>'.encode("utf-16")
        assert parse_xml(data, max_bytes=1000).text == "ä"

    def test_size_limit(self) -> None:
        with pytest.raises(ParseError) as caught:
            parse_xml(b"<a/>", max_bytes=3)
        assert caught.value.code is ParseErrorCode.TOO_LARGE

    def test_depth_limit_is_configurable(self) -> None:
        data = b"<a>" * 11 + b"</a>" * 11
        parse_xml(data, max_bytes=1000, max_depth=11)
        with pytest.raises(ParseError) as caught:
            parse_xml(data, max_bytes=1000, max_depth=10)
        assert caught.value.code is ParseErrorCode.UNSAFE_XML

    def test_unsafe_detail_names_the_reference_not_its_content(self) -> None:
        with pytest.raises(ParseError) as caught:
            parse_xml(EXTERNAL_ENTITY, max_bytes=10_000)
        assert caught.value.code is ParseErrorCode.UNSAFE_XML
        assert caught.value.detail is not None
        assert "root:" not in caught.value.detail
