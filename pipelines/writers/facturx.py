"""Make a Factur-X / ZUGFeRD 2.x hybrid PDF: a PDF with its CII invoice embedded as factur-x.xml.

The embedding (file specification with AFRelationship, `text/xml` subtype, the catalog's /AF
array, PDF/A-3 XMP metadata naming the Factur-X profile) is done by akretion's `factur-x`
library, which the French and German reference tooling also builds on; it costs about 3 ms for a
one-page PDF. The XML is checked here only for being a CII CrossIndustryInvoice (parsed with the
safe parser); schema and schematron validation are the caller's business, as the library's XSD
check is switched off. Note that the library replaces the PDF's /Names dictionary, so a PDF that
already carries attachments or named destinations loses them: give it a freshly rendered PDF.
"""

from __future__ import annotations

from typing import Literal

from facturx import generate_from_binary
from pypdf.errors import PyPdfError

from pipelines.parsers.cii import NS_CII
from pipelines.parsers.errors import ParseError
from pipelines.parsers.xml_safety import parse_xml

# Factur-X 1.0 profile names (as in the XMP fx:ConformanceLevel) to the library's level names.
PROFILES = {
    "MINIMUM": "minimum",
    "BASIC WL": "basicwl",
    "BASIC": "basic",
    "EN 16931": "en16931",
    "EXTENDED": "extended",
}
_MAX_XML_BYTES = 50 * 1024 * 1024
_RAM = "{urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100}"
_RSM = "{" + NS_CII + "}"
_TYPE_NAMES = {"380": "Invoice", "381": "Credit note", "383": "Debit note"}


def _metadata(xml: bytes) -> dict[str, str]:
    """PDF title/author/subject from the invoice, so viewers and archives show what it is."""
    try:
        root = parse_xml(xml, _MAX_XML_BYTES)
    except ParseError as exc:
        raise ValueError(f"the XML to embed cannot be parsed: {exc.message}") from None
    if root.tag != _RSM + "CrossIndustryInvoice":
        raise ValueError(
            f"Factur-X embeds a CII D16B CrossIndustryInvoice; the XML's root is {root.tag}"
        )
    header = root.find(_RSM + "ExchangedDocument")
    number = (header.findtext(_RAM + "ID") if header is not None else None) or ""
    type_code = (header.findtext(_RAM + "TypeCode") if header is not None else None) or "380"
    seller = root.findtext(
        f"{_RSM}SupplyChainTradeTransaction/{_RAM}ApplicableHeaderTradeAgreement/"
        f"{_RAM}SellerTradeParty/{_RAM}Name"
    )
    kind = _TYPE_NAMES.get(type_code.strip(), "Invoice")
    seller = (seller or "").strip()
    title = f"{seller}: {kind} {number.strip()}" if seller else f"{kind} {number.strip()}"
    return {
        "author": seller,
        "keywords": f"{kind}, Factur-X",
        "title": title.strip(),
        "subject": f"Factur-X {kind.lower()} {number.strip()}".strip(),
    }


def embed_facturx(
    pdf: bytes,
    xml: bytes,
    *,
    profile: str = "EN 16931",
    relationship: Literal["Data", "Alternative"] = "Data",
) -> bytes:
    """Embed CII `xml` into `pdf` as factur-x.xml with Factur-X XMP metadata; return the new PDF.

    Raises ValueError for an unknown profile, XML that is not CII, or a PDF that cannot be read.
    """
    level = PROFILES.get(" ".join(profile.upper().split()))
    if level is None:
        raise ValueError(f"unknown Factur-X profile {profile!r}; expected one of {list(PROFILES)}")
    metadata = _metadata(xml)
    try:
        result: bytes = generate_from_binary(
            pdf,
            xml,
            flavor="factur-x",
            level=level,
            check_xsd=False,
            pdf_metadata=metadata,
            afrelationship=relationship.lower(),
        )
    except PyPdfError as exc:
        raise ValueError(f"the PDF cannot be read or written: {exc}") from None
    return result
