"""Find the e-invoice XML embedded in a PDF (Factur-X, ZUGFeRD 1/2, XRechnung, Order-X).

Hybrid PDFs carry the structured invoice as a PDF file attachment whose name the standard fixes.
Only the catalog's embedded-files name tree is read (never the pages), the attachment's size is
checked against the document limit before and while it is decompressed, and every way pypdf can
fail on a hostile or damaged file becomes a typed ParseError.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Protocol

from pypdf import PasswordType, PdfReader, apply_configuration
from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError
from pypdf.generic import EmbeddedFile

from pipelines.parsers.detect import DetectedFormat, detect_format
from pipelines.parsers.errors import ParseError, ParseErrorCode

# The names the standards give the XML, in order of preference: Factur-X 1.0 / ZUGFeRD 2.1+,
# ZUGFeRD 2.0, ZUGFeRD 1.0, XRechnung-in-PDF, Order-X. Compared without regard to case, since
# producers disagree on it (ZUGFeRD 1 says "ZUGFeRD-invoice.xml", 2.0 "zugferd-invoice.xml").
KNOWN_NAMES = (
    "factur-x.xml",
    "zugferd-invoice.xml",
    "ZUGFeRD-invoice.xml",
    "xrechnung.xml",
    "order-x.xml",
)
_RANK = {name.lower(): rank for rank, name in enumerate(KNOWN_NAMES)}
# Formats an attachment with another *.xml name must have to count as the e-invoice.
_E_INVOICE_ROOTS = frozenset(
    {DetectedFormat.CII, DetectedFormat.UBL_INVOICE, DetectedFormat.UBL_CREDIT_NOTE}
)
# How a file specification names a known attachment, as a PDF literal string: seen in the raw
# bytes of a file whose attachments cannot be found, it means the structure is broken.
_NAME_MARKERS = tuple(b"(" + name.encode("ascii") + b")" for name in KNOWN_NAMES)
# A real hybrid invoice has one to a handful of attachments; a hostile name tree may have many.
MAX_ATTACHMENTS = 64


class Limits(Protocol):
    """The bounds this reader needs (ParseLimits satisfies it)."""

    @property
    def max_bytes(self) -> int:
        """Largest embedded XML accepted, decompressed, in bytes."""
        ...


def _corrupt(detail: str) -> ParseError:
    return ParseError(
        ParseErrorCode.CORRUPT_PDF,
        "The file starts like a PDF, but its structure is damaged and cannot be read (it may be "
        "truncated or was not saved completely). Ask the supplier to send the invoice again.",
        detail=detail,
    )


def _too_large(what: str, max_bytes: int, detail: str | None = None) -> ParseError:
    return ParseError(
        ParseErrorCode.TOO_LARGE,
        f"{what} is larger than the limit of {max_bytes:,} bytes once decompressed. "
        "Ask the supplier for a smaller file.",
        detail=detail,
    )


def _open(data: bytes) -> PdfReader:
    reader = PdfReader(io.BytesIO(data), strict=False)
    if reader.is_encrypted:
        # An owner password only restricts editing; viewers open such files without asking, so
        # the empty user password is tried before the file counts as locked.
        try:
            opened = reader.decrypt("")
        except (DependencyError, NotImplementedError) as exc:
            raise _encrypted(f"{type(exc).__name__}: {exc}") from None
        if opened == PasswordType.NOT_DECRYPTED:
            raise _encrypted("user password required")
    return reader


def _encrypted(detail: str) -> ParseError:
    return ParseError(
        ParseErrorCode.ENCRYPTED_PDF,
        "The PDF is password-protected, so Tollgate cannot read it. Ask the supplier to send it "
        "without a password (Factur-X/ZUGFeRD PDFs must not be encrypted).",
        detail=detail,
    )


def _candidates(reader: PdfReader) -> Iterator[EmbeddedFile]:
    for count, attachment in enumerate(reader.attachment_list):
        if count >= MAX_ATTACHMENTS:
            return
        yield attachment


def _content(attachment: EmbeddedFile, max_bytes: int) -> bytes:
    declared = attachment.size
    if isinstance(declared, int) and declared > max_bytes:
        raise _too_large(f"The attachment {attachment.name!r}", max_bytes, f"/Size {declared}")
    content = attachment.content
    if len(content) > max_bytes:
        raise _too_large(f"The attachment {attachment.name!r}", max_bytes, f"{len(content)} bytes")
    return content


def _find(reader: PdfReader, max_bytes: int) -> tuple[str, bytes] | None:
    known: list[tuple[int, EmbeddedFile]] = []
    others: list[EmbeddedFile] = []
    for attachment in _candidates(reader):
        name = attachment.name.strip()
        rank = _RANK.get(name.lower())
        if rank is not None:
            known.append((rank, attachment))
        elif name.lower().endswith(".xml"):
            others.append(attachment)
    if known:
        _, attachment = min(known, key=lambda pair: pair[0])
        return attachment.name.strip(), _content(attachment, max_bytes)
    for attachment in others:
        # An unknown attachment may be anything (delivery notes, timesheets): damage or excess
        # size there is no reason to refuse the PDF, so such a file is just not the invoice.
        try:
            content = _content(attachment, max_bytes)
        except Exception:  # noqa: S112 - any failure here only means "not the invoice"
            continue
        if detect_format(content) in _E_INVOICE_ROOTS:
            return attachment.name.strip(), content
    return None


def embedded_xml(data: bytes, limits: Limits) -> tuple[str, bytes] | None:
    """The (attachment name, XML bytes) of the e-invoice embedded in a PDF, or None if it has none.

    Raises ParseError ENCRYPTED_PDF, CORRUPT_PDF or TOO_LARGE.
    """
    max_bytes = limits.max_bytes
    if len(data) > max_bytes:
        raise _too_large("The PDF", max_bytes, f"{len(data)} bytes")
    # Every decompression pypdf does here (object streams, the attachment) stops at the limit, so
    # a small PDF cannot inflate into a huge XML.
    bounded = apply_configuration(
        zlib_maximum_output_length=max_bytes,
        lzw_maximum_output_length=max_bytes,
        run_length_maximum_output_length=max_bytes,
        brotli_maximum_output_length=max_bytes,
        array_based_stream_maximum_output_length=max_bytes,
        maximum_declared_stream_length=max_bytes,
    )
    try:
        with bounded:
            found = _find(_open(data), max_bytes)
    except ParseError:
        raise
    except LimitReachedError as exc:
        raise _too_large("A part of the PDF", max_bytes, str(exc)) from None
    except FileNotDecryptedError as exc:
        raise _encrypted(str(exc)) from None
    except RecursionError:
        raise _corrupt("objects nested too deeply") from None
    except Exception as exc:
        # pypdf reports damaged input through many exception types (PdfReadError, but also
        # KeyError, ValueError, TypeError, AttributeError from malformed objects); for an upload
        # they all mean the same thing, and none may escape as a crash.
        raise _corrupt(f"{type(exc).__name__}: {exc}"[:500]) from None
    if found is None and any(marker in data for marker in _NAME_MARKERS):
        # The file names a Factur-X/ZUGFeRD attachment that its object structure does not lead
        # to (a broken cross-reference table, for instance): a damaged hybrid invoice, which
        # is better resent than read as a plain PDF.
        raise _corrupt("a known e-invoice attachment is named but cannot be reached")
    return found
