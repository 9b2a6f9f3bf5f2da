"""Format detection by content (never by file name): PDF magic, XML root element, CSV header."""

from __future__ import annotations

import csv
import re
from enum import StrEnum
from xml.sax.saxutils import unescape

from pipelines.parsers.csv_invoices import read_header


class DetectedFormat(StrEnum):
    """What kind of document a byte string holds."""

    PDF = "pdf"
    # A PDF with embedded CII/UBL: parse_document reports it; detect_format, which reads no PDF
    # structure, says PDF.
    FACTURX_PDF = "facturx_pdf"
    UBL_INVOICE = "ubl_invoice"
    UBL_CREDIT_NOTE = "ubl_credit_note"
    UBL_ORDER = "ubl_order"
    CII = "cii"  # UN/CEFACT Cross Industry Invoice, incl. ZUGFeRD 1 and Factur-X XML
    ORDER_X = "order_x"
    CSV = "csv"
    UNKNOWN = "unknown"


UBL_NAMESPACE_PREFIX = "urn:oasis:names:specification:ubl:schema:xsd:"

_ROOTS: dict[tuple[str, str], DetectedFormat] = {
    (UBL_NAMESPACE_PREFIX + "Invoice-2", "Invoice"): DetectedFormat.UBL_INVOICE,
    (UBL_NAMESPACE_PREFIX + "CreditNote-2", "CreditNote"): DetectedFormat.UBL_CREDIT_NOTE,
    (UBL_NAMESPACE_PREFIX + "Order-2", "Order"): DetectedFormat.UBL_ORDER,
    (
        "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
        "CrossIndustryInvoice",
    ): DetectedFormat.CII,
    ("urn:ferd:CrossIndustryDocument:invoice:1p0", "CrossIndustryDocument"): DetectedFormat.CII,
    (
        "urn:un:unece:uncefact:data:SCRDMCCBDACIOMessageStructure:100",
        "SCRDMCCBDACIOMessageStructure",
    ): DetectedFormat.ORDER_X,
}

# The prolog (declaration, comments, DOCTYPE) is normally tiny; the larger window is a second
# try for files with long licence comments, and the cap keeps a hostile prolog cheap.
_FIRST_WINDOW = 64 * 1024
_MAX_WINDOW = 1024 * 1024
_PDF_MAGIC_WINDOW = 1024  # the PDF spec tolerates junk before %PDF- within the first 1 KiB

_START_TAG = re.compile(
    r"""<([^\s/>!?"'=]+)((?:\s+[^\s=/>]+\s*=\s*(?:"[^"]*"|'[^']*'))*)\s*/?>""",
)
_ATTRIBUTE = re.compile(r"""([^\s=/>]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_ENTITIES = {"&quot;": '"', "&apos;": "'"}

_CSV_DELIMITERS = (",", ";", "\t", "|")
_CSV_WINDOW = 8 * 1024


def _decode_head(data: bytes, size: int) -> str:
    """Decode the first `size` bytes well enough to read ASCII markup (names, namespaces)."""
    head = data[:size]
    if head.startswith(b"\xef\xbb\xbf"):
        return head[3:].decode("latin-1")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace")
    # UTF-16 without a BOM still starts with "<" and a NUL byte in XML.
    if head.startswith(b"<\x00"):
        return head.decode("utf-16-le", errors="replace")
    if head.startswith(b"\x00<"):
        return head.decode("utf-16-be", errors="replace")
    # latin-1 maps every byte, so nothing fails; only ASCII names matter here.
    return head.decode("latin-1")


def _skip_doctype(text: str, pos: int) -> int:
    """Return the index after a DOCTYPE that starts at `pos` (skipped, never expanded), or -1."""
    quote = ""
    in_subset = False
    for index in range(pos + 9, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == "[":
            in_subset = True
        elif char == "]":
            in_subset = False
        elif char == ">" and not in_subset:
            return index + 1
    return -1


def _scan_root(text: str) -> tuple[str, str] | None:
    pos = 0
    length = len(text)
    while pos < length:
        char = text[pos]
        if char in " \t\r\n":
            pos += 1
        elif text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            if end < 0:
                return None
            pos = end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            if end < 0:
                return None
            pos = end + 3
        elif text.startswith("<!DOCTYPE", pos):
            pos = _skip_doctype(text, pos)
            if pos < 0:
                return None
        elif char == "<":
            match = _START_TAG.match(text, pos)
            if match is None:
                return None
            qname = match.group(1)
            prefix, _, local = qname.rpartition(":")
            wanted = f"xmlns:{prefix}" if prefix else "xmlns"
            namespace = ""
            for name, double, single in _ATTRIBUTE.findall(match.group(2)):
                if name == wanted:
                    namespace = unescape(double or single, _ENTITIES).strip()
            return namespace, local
        else:
            return None
    return None


def sniff_xml_root(data: bytes) -> tuple[str, str] | None:
    """Namespace and local name of the XML root element, read from the prolog only; else None."""
    text = _decode_head(data, _FIRST_WINDOW)
    root = _scan_root(text)
    if root is None and len(data) > _FIRST_WINDOW:
        root = _scan_root(_decode_head(data, _MAX_WINDOW))
    return root


def looks_like_xml(data: bytes) -> bool:
    """True when the content starts like markup (after a BOM and whitespace)."""
    return _decode_head(data, 256).lstrip().startswith("<")


def _looks_like_csv(data: bytes) -> bool:
    head = data[:_CSV_WINDOW]
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:
            # Not UTF-8 (and not merely a character cut at the window edge): legacy exports
            # are usually Windows-1252, which latin-1 reads close enough for a heuristic.
            text = head.decode("latin-1")
        else:
            text = head[: exc.start].decode("utf-8-sig")
    lines = text.splitlines()
    if len(data) > _CSV_WINDOW and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut by the window
    lines = [line for line in lines[:20] if line.strip()]
    if len(lines) < 2:
        return False
    header = lines[0]
    if header.lstrip()[:1] in ("<", "{", "[", "%"):
        return False
    delimiter = max(_CSV_DELIMITERS, key=header.count)
    if header.count(delimiter) == 0:
        return False
    try:
        rows = list(csv.reader(lines, delimiter=delimiter))
    except csv.Error:
        return False
    width = len(rows[0])
    if width < 2 or not any(cell.strip() for cell in rows[0]):
        return False
    # Quoted fields may hold line breaks, so only demand that most rows have the header's width.
    consistent = sum(1 for row in rows[1:] if len(row) == width)
    return consistent >= max(1, (len(rows) - 1) // 2)


def detect_format(data: bytes) -> DetectedFormat:
    """Say what `data` holds by looking at its content: PDF magic, XML root, or a CSV header."""
    if data.startswith(b"%PDF-"):
        return DetectedFormat.PDF
    root = sniff_xml_root(data)
    if root is not None:
        return _ROOTS.get(root, DetectedFormat.UNKNOWN)
    if looks_like_xml(data):
        return DetectedFormat.UNKNOWN
    if b"%PDF-" in data[:_PDF_MAGIC_WINDOW]:
        return DetectedFormat.PDF
    # Tollgate's own bulk CSV columns are decisive even where the generic heuristic hesitates
    # (a header with a single row, or descriptions spanning lines).
    if read_header(data) is not None or _looks_like_csv(data):
        return DetectedFormat.CSV
    return DetectedFormat.UNKNOWN
