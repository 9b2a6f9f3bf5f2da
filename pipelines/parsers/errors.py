"""Typed parse errors: every way reading a document can fail, with a message a clerk can act on."""

from __future__ import annotations

from enum import StrEnum


class ParseErrorCode(StrEnum):
    """Why a document could not be read; stable API, stored with the document, shown in the UI."""

    EMPTY = "EMPTY"
    TOO_LARGE = "TOO_LARGE"
    UNSUPPORTED_FORMAT = "UNSUPPORTED_FORMAT"
    MALFORMED_XML = "MALFORMED_XML"
    UNSAFE_XML = "UNSAFE_XML"  # DOCTYPE, entity declaration or external reference
    UNSUPPORTED_DOCUMENT = "UNSUPPORTED_DOCUMENT"  # known syntax, not an invoice or credit note
    INVALID_VALUE = "INVALID_VALUE"
    ENCRYPTED_PDF = "ENCRYPTED_PDF"  # needs a password to open
    CORRUPT_PDF = "CORRUPT_PDF"  # starts like a PDF, but its structure cannot be read
    NO_TEXT_LAYER = "NO_TEXT_LAYER"  # a PDF without text (a scan): needs OCR or manual entry
    # Raised by the sandbox (pipelines.parsers.sandbox), never by a parser itself:
    TIMEOUT = "TIMEOUT"  # wall-clock or CPU-time limit reached
    MEMORY_LIMIT = "MEMORY_LIMIT"  # address-space limit reached
    PARSER_CRASHED = "PARSER_CRASHED"  # the parsing process died or the parser had a bug


class ParseError(Exception):
    """A document could not be read; `message` says what went wrong and what to do."""

    def __init__(self, code: ParseErrorCode, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"ParseError(code={self.code!r}, message={self.message!r}, detail={self.detail!r})"
