"""Parsers: detect a document's format by content and read it into a canonical document."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.canonical import Claim, CreditNote, Invoice, SourceFormat
from pipelines.parsers.cii import read_cii
from pipelines.parsers.csv_invoices import read_csv, read_header
from pipelines.parsers.detect import (
    UBL_NAMESPACE_PREFIX,
    DetectedFormat,
    detect_format,
    looks_like_xml,
)
from pipelines.parsers.errors import ParseError, ParseErrorCode
from pipelines.parsers.facturx import embedded_xml
from pipelines.parsers.ubl import read_ubl
from pipelines.parsers.xml_safety import DEFAULT_MAX_DEPTH, parse_xml

if TYPE_CHECKING:
    # Only for annotations: the extractor imports this package's errors, a runtime import cycles.
    from pipelines.extract import SupplierHint

__all__ = [
    "DetectedFormat",
    "FieldReading",
    "ParseError",
    "ParseErrorCode",
    "ParseLimits",
    "ParsedDocument",
    "detect_format",
    "parse_document",
    "parse_documents",
]


@dataclass(frozen=True)
class ParseLimits:
    """Bounds for untrusted input."""

    max_bytes: int = 20 * 1024 * 1024
    max_xml_depth: int = DEFAULT_MAX_DEPTH
    max_csv_rows: int = 100_000  # bulk CSV: one row per document line


# How a header field was read: its value (as text), how sure the reader is, and where it was.
FieldReading = dict[str, str | float | int | None]


@dataclass(frozen=True)
class ParsedDocument:
    """A document read into canonical form, with the format it was read from.

    `fields` is set for documents read from a PDF's visible text: each extracted header field
    (`invoice_number`, `gross_total`, ...) with its value, confidence in [0, 1], page and the
    text span it came from. E-invoice XML is exact, so it has none.
    """

    format: DetectedFormat
    document: Invoice | CreditNote | Claim
    fields: dict[str, FieldReading] | None = None


_NOT_AN_INVOICE = {
    DetectedFormat.UBL_ORDER: "a UBL Order (a purchase order)",
    DetectedFormat.ORDER_X: "an Order-X purchase order",
}


def parse_documents(
    data: bytes,
    limits: ParseLimits = ParseLimits(),
    *,
    text_only: bool = False,
    hint: SupplierHint | None = None,
) -> list[ParsedDocument]:
    """Read every document in `data`: many for a bulk CSV, exactly one for other formats."""
    if data and len(data) <= limits.max_bytes and detect_format(data) is DetectedFormat.CSV:
        return _read_csv(data, limits)
    return [parse_document(data, limits, text_only=text_only, hint=hint)]


def _read_csv(data: bytes, limits: ParseLimits) -> list[ParsedDocument]:
    if read_header(data) is None:
        raise ParseError(
            ParseErrorCode.UNSUPPORTED_FORMAT,
            "This CSV file does not use Tollgate's bulk CSV columns (document_type, number, ...), "
            "so it cannot be read. Export it with the documented column set.",
            detail=str(DetectedFormat.CSV),
        )
    documents = read_csv(data, limits)
    if not documents:
        raise ParseError(ParseErrorCode.EMPTY, "The CSV file has a header but no documents.")
    return [ParsedDocument(format=DetectedFormat.CSV, document=doc) for doc in documents]


def _read_embedded(name: str, xml: bytes, limits: ParseLimits) -> ParsedDocument:
    """Read the XML found in a hybrid PDF; errors name the attachment they come from."""
    try:
        if not looks_like_xml(xml):
            raise ParseError(
                ParseErrorCode.MALFORMED_XML,
                "The attachment is not XML at all. Ask the supplier to send the invoice again.",
            )
        # Only XML reaches parse_document here, so it cannot come back to a PDF (no recursion).
        parsed = parse_document(xml, limits)
    except ParseError as exc:
        raise ParseError(
            exc.code,
            f"The XML embedded in this PDF ({name}) cannot be used: {exc.message}",
            detail=exc.detail or name,
        ) from None
    document = parsed.document.model_copy(update={"source_format": SourceFormat.FACTURX})
    return ParsedDocument(format=DetectedFormat.FACTURX_PDF, document=document)


def _read_pdf_text(data: bytes, hint: SupplierHint | None = None) -> ParsedDocument:
    """Header fields from a born-digital PDF's text layer, each with confidence and provenance."""
    # Imported here: the extractor imports this package's errors, so a top-level import cycles.
    from pipelines.extract import extract_pdf

    try:
        extraction = extract_pdf(data, hint=hint)
    except (ParseError, MemoryError):
        raise
    except Exception as exc:  # pypdf on a damaged file can raise almost anything
        raise ParseError(
            ParseErrorCode.CORRUPT_PDF,
            "The PDF is damaged and its text cannot be read. Ask the supplier to send it again.",
            detail=f"{type(exc).__name__}: {exc}"[:300],
        ) from None
    fields: dict[str, FieldReading] = {
        name: {
            "value": str(found.value),
            "confidence": round(found.confidence, 3),
            "page": found.page,
            "span": found.span,
            "label": found.label,
        }
        for name, found in sorted(extraction.fields.items())
    }
    return ParsedDocument(DetectedFormat.PDF, extraction.to_invoice(), fields)


def parse_document(
    data: bytes,
    limits: ParseLimits = ParseLimits(),
    *,
    text_only: bool = False,
    hint: SupplierHint | None = None,
) -> ParsedDocument:
    """Detect the format of `data` and read it into a canonical document, or raise ParseError.

    `text_only` reads a PDF from its visible text even when it carries e-invoice XML. `hint`
    (a supplier's learned labels) helps read a PDF's text; e-invoice XML does not need one.
    """
    if not data:
        raise ParseError(ParseErrorCode.EMPTY, "The document is empty (0 bytes); upload it again.")
    # Before anything else looks at the content: the size bound protects every later step.
    if len(data) > limits.max_bytes:
        raise ParseError(
            ParseErrorCode.TOO_LARGE,
            f"The document is {len(data):,} bytes; the limit is {limits.max_bytes:,} bytes. "
            "Ask the supplier for a smaller file (for example without embedded attachments).",
        )
    if data.isspace():
        raise ParseError(ParseErrorCode.EMPTY, "The document holds only blank space.")
    detected = detect_format(data)
    if detected in (DetectedFormat.UBL_INVOICE, DetectedFormat.UBL_CREDIT_NOTE):
        root = parse_xml(data, limits.max_bytes, limits.max_xml_depth)
        return ParsedDocument(format=detected, document=read_ubl(root))
    if detected is DetectedFormat.CII:
        root = parse_xml(data, limits.max_bytes, limits.max_xml_depth)
        return ParsedDocument(format=detected, document=read_cii(root))
    if detected is DetectedFormat.CSV:
        parsed = _read_csv(data, limits)
        if len(parsed) > 1:
            raise ParseError(
                ParseErrorCode.UNSUPPORTED_DOCUMENT,
                f"This CSV file holds {len(parsed)} documents; upload it through bulk intake, "
                "which reads every document in it.",
                detail=f"csv:{len(parsed)} documents",
            )
        return parsed[0]
    if detected is DetectedFormat.PDF:
        # A hybrid PDF (Factur-X, ZUGFeRD, XRechnung) carries the invoice as XML: read that,
        # unless asked to read what a person sees (to compare the two, or to test extraction).
        found = None if text_only else embedded_xml(data, limits)
        if found is not None:
            return _read_embedded(*found, limits)
        return _read_pdf_text(data, hint)
    if detected in _NOT_AN_INVOICE:
        raise ParseError(
            ParseErrorCode.UNSUPPORTED_DOCUMENT,
            f"This is {_NOT_AN_INVOICE[detected]}, not an invoice or credit note. "
            "Purchase orders come from the ERP; upload the supplier's invoice instead.",
            detail=str(detected),
        )
    if looks_like_xml(data):
        # Unrecognised XML: parse it safely, so a broken or hostile file gets its precise
        # code (MALFORMED_XML / UNSAFE_XML) rather than a vague "unsupported".
        root = parse_xml(data, limits.max_bytes, limits.max_xml_depth)
        if root.tag.startswith("{" + UBL_NAMESPACE_PREFIX):
            raise ParseError(
                ParseErrorCode.UNSUPPORTED_DOCUMENT,
                f"This is a UBL {root.tag.rpartition('}')[2]}, not an invoice or credit note; "
                "only UBL Invoice and CreditNote documents are read.",
                detail=root.tag,
            )
        raise ParseError(
            ParseErrorCode.UNSUPPORTED_FORMAT,
            f"This XML document (root element {root.tag}) is not an e-invoice format Tollgate "
            "reads. Ask the supplier for a UBL (PEPPOL BIS 3 / XRechnung UBL) e-invoice.",
            detail=root.tag,
        )
    raise ParseError(
        ParseErrorCode.UNSUPPORTED_FORMAT,
        "The file is not a PDF, an XML e-invoice or a CSV file, so it cannot be read. "
        "Check that the right file was uploaded.",
    )
