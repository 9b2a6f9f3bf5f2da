"""Template-free extraction of invoice header fields and line items from born-digital PDFs."""

from pipelines.extract.fields import (
    ExtractedField,
    Extraction,
    SupplierHint,
    extract_pdf,
    extract_text,
    learn_from_pdf,
)
from pipelines.extract.lines import ExtractedCharge, ExtractedLine, LineItems, extract_lines

__all__ = [
    "ExtractedCharge",
    "ExtractedField",
    "ExtractedLine",
    "Extraction",
    "LineItems",
    "SupplierHint",
    "extract_lines",
    "extract_pdf",
    "extract_text",
    "learn_from_pdf",
]
