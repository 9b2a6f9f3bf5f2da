"""Template-free extraction of invoice header fields from born-digital PDFs."""

from pipelines.extract.fields import (
    ExtractedField,
    Extraction,
    SupplierHint,
    extract_pdf,
    extract_text,
)

__all__ = ["ExtractedField", "Extraction", "SupplierHint", "extract_pdf", "extract_text"]
