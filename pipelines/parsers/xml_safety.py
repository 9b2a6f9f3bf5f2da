"""Parse untrusted XML: no DTDs, no entity declarations, no external references, bounded size."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser

from pipelines.parsers.errors import ParseError, ParseErrorCode

# Real e-invoices nest about 8 levels deep (XRechnung sub-lines a few more); anything far deeper
# is an attack on whatever walks the tree later.
DEFAULT_MAX_DEPTH = 256


class _TooDeep(Exception):
    pass


class _DepthLimitedBuilder(ET.TreeBuilder):
    """The C tree builder, refusing elements nested deeper than a limit."""

    def __init__(self, max_depth: int) -> None:
        super().__init__()
        self._depth = 0
        self._max_depth = max_depth

    def start(self, tag: Any, attrs: dict[Any, Any], /) -> ET.Element:
        self._depth += 1
        if self._depth > self._max_depth:
            raise _TooDeep
        return super().start(tag, attrs)

    def end(self, tag: Any, /) -> ET.Element:
        self._depth -= 1
        return super().end(tag)


def parse_xml(data: bytes, max_bytes: int, max_depth: int = DEFAULT_MAX_DEPTH) -> ET.Element:
    """Parse untrusted XML bytes into an element tree, refusing anything unsafe or oversized."""
    if len(data) > max_bytes:
        raise ParseError(
            ParseErrorCode.TOO_LARGE,
            f"The document is {len(data):,} bytes; the limit is {max_bytes:,} bytes. "
            "Ask the supplier for a smaller file (for example without embedded attachments).",
        )
    if not data or data.isspace():
        raise ParseError(ParseErrorCode.EMPTY, "The document is empty; upload the file again.")
    parser = DefusedXMLParser(
        target=_DepthLimitedBuilder(max_depth),
        forbid_dtd=True,
        forbid_entities=True,
        forbid_external=True,
    )
    try:
        parser.feed(data)
        root: ET.Element = parser.close()
    except DefusedXmlException as exc:
        # The exception names the entity or DTD, never content it would have loaded.
        raise ParseError(
            ParseErrorCode.UNSAFE_XML,
            "The XML declares a DOCTYPE, entities or external references, which e-invoices never "
            "need and which are refused for safety. Ask the supplier to send it without a DTD.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from None
    except _TooDeep:
        raise ParseError(
            ParseErrorCode.UNSAFE_XML,
            f"The XML nests elements deeper than {max_depth} levels, far beyond any e-invoice; "
            "it was refused for safety.",
        ) from None
    except ET.ParseError as exc:
        raise ParseError(
            ParseErrorCode.MALFORMED_XML,
            "The file is not well-formed XML (it may be truncated or damaged). "
            "Ask the supplier to send it again.",
            detail=str(exc),
        ) from None
    except (ValueError, LookupError) as exc:
        # Unknown or broken declared encodings surface as codec errors, not ParseError.
        raise ParseError(
            ParseErrorCode.MALFORMED_XML,
            "The XML could not be decoded (unknown or wrong character encoding). "
            "Ask the supplier to send it as UTF-8.",
            detail=str(exc),
        ) from None
    return root
