"""Factur-X / ZUGFeRD PDFs: embedding CII into a PDF, and reading the XML back out of real PDFs.

Real PDFs come from `akretion/factur-x` (BSD-style) and the Mustang project (Apache-2.0), read in
place from ../shared/data/einvoice (see each folder's MANIFEST.txt). Which of them carry an
e-invoice is decided here with pypdf directly, independently of the reader under test.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from decimal import Decimal
from pathlib import Path

import pytest
from pypdf import PdfReader, PdfWriter
from pypdf.generic import ArrayObject, DictionaryObject, StreamObject

from pipelines.canonical import CreditNote, Invoice, SourceFormat
from pipelines.parsers import (
    DetectedFormat,
    ParseError,
    ParseErrorCode,
    ParseLimits,
    parse_document,
)
from pipelines.parsers.facturx import KNOWN_NAMES, embedded_xml
from pipelines.writers.cii import write_cii
from pipelines.writers.facturx import embed_facturx
from pipelines.writers.ubl import write_ubl
from training.demo_world import build_world

REPO = Path(__file__).resolve().parents[2]
EINVOICE = REPO.parent / "shared" / "data" / "einvoice"
MUSTANG = EINVOICE / "mustang"
ALL_PDFS = (
    sorted((EINVOICE / "factur-x").rglob("*.pdf")) + sorted(MUSTANG.rglob("*.pdf"))
    if EINVOICE.is_dir()
    else []
)
needs_data = pytest.mark.skipif(not ALL_PDFS, reason=f"shared data not found at {EINVOICE}")
KNOWN = {name.lower() for name in KNOWN_NAMES}
WORLD = build_world()


def _attachments(path: Path) -> dict[str, bytes]:
    """The file's attachments with a known e-invoice name, read with plain pypdf."""
    try:
        reader = PdfReader(io.BytesIO(path.read_bytes()), strict=False)
        return {
            name: contents[0]
            for name, contents in reader.attachments.items()
            if name.lower() in KNOWN
        }
    except Exception:  # damaged test files: they have their own tests below
        return {}


def _is_order(xml: bytes) -> bool:
    return b"SCRDMCCBDACIOMessageStructure" in xml[:2000]


HYBRID = [path for path in ALL_PDFS if _attachments(path)]
INVOICE_PDFS = [p for p in HYBRID if not all(_is_order(x) for x in _attachments(p).values())]
ORDER_PDFS = [p for p in HYBRID if p not in INVOICE_PDFS]


def _xml_payable(xml: bytes) -> Decimal:
    """DuePayableAmount (CII D16B and ZUGFeRD 1) or PayableAmount (UBL), straight from the XML."""
    root = ET.fromstring(xml)
    for element in root.iter():
        if element.tag.rpartition("}")[2] in ("DuePayableAmount", "PayableAmount"):
            assert element.text is not None
            return Decimal(element.text.strip())
    raise AssertionError("no payable amount in the XML")


def _blank_pdf() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _with_attachments(files: dict[str, bytes], *, password: str | None = None) -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    for name, content in files.items():
        writer.add_attachment(name, content)
    if password is not None:
        writer.encrypt(user_password=password, owner_password="owner", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


BLANK = _blank_pdf()
LIMITS = ParseLimits()


@needs_data
def test_the_real_hybrid_pdfs_are_all_there() -> None:
    assert len(INVOICE_PDFS) >= 20
    assert ORDER_PDFS


@needs_data
@pytest.mark.parametrize("path", INVOICE_PDFS, ids=lambda p: p.name)
def test_real_hybrid_pdfs_parse_with_the_payable_of_their_xml(path: Path) -> None:
    attachments = _attachments(path)
    parsed = parse_document(path.read_bytes())

    assert parsed.format is DetectedFormat.FACTURX_PDF
    assert parsed.document.source_format is SourceFormat.FACTURX
    # factur-x.xml wins where a file carries both it and a ZUGFeRD name.
    chosen = next(
        content
        for wanted in KNOWN_NAMES
        for name, content in attachments.items()
        if name.lower() == wanted.lower()
    )
    assert parsed.document.totals.payable == _xml_payable(chosen)
    from_xml = parse_document(chosen).document
    assert parsed.document == from_xml.model_copy(update={"source_format": SourceFormat.FACTURX})


@needs_data
@pytest.mark.parametrize("path", ORDER_PDFS, ids=lambda p: p.name)
def test_an_order_x_pdf_is_an_unsupported_document(path: Path) -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(path.read_bytes())
    assert caught.value.code is ParseErrorCode.UNSUPPORTED_DOCUMENT
    assert "order-x.xml" in caught.value.message


@needs_data
@pytest.mark.parametrize(
    "name", ["corruptedV2PDF.pdf", "invalidXMP.pdf", "invalidXMP-ParseError.pdf", "invalidPDF.pdf"]
)
def test_broken_mustang_pdfs_give_a_result_or_a_typed_error(name: str) -> None:
    path = next(MUSTANG.rglob(name))
    try:
        parsed = parse_document(path.read_bytes())
    except ParseError as exc:
        assert exc.code in set(ParseErrorCode)
        assert exc.message
    else:
        assert parsed.format is DetectedFormat.FACTURX_PDF
        assert parsed.document.totals.payable is not None


@needs_data
def test_a_pdf_whose_cross_references_miss_its_attachment_is_corrupt() -> None:
    # corruptedV2PDF.pdf names factur-x.xml, but its xref table points the catalog elsewhere.
    path = next(MUSTANG.rglob("corruptedV2PDF.pdf"))
    with pytest.raises(ParseError) as caught:
        parse_document(path.read_bytes())
    assert caught.value.code is ParseErrorCode.CORRUPT_PDF


@needs_data
def test_a_truncated_pdf_is_corrupt() -> None:
    path = next(MUSTANG.rglob("corrupt-factur-x-waytoosmall.pdf"))
    with pytest.raises(ParseError) as caught:
        parse_document(path.read_bytes())
    assert caught.value.code is ParseErrorCode.CORRUPT_PDF
    assert "damaged" in caught.value.message


@needs_data
def test_invalid_xmp_still_gives_the_invoice() -> None:
    path = next(MUSTANG.rglob("invalidXMP.pdf"))
    parsed = parse_document(path.read_bytes())
    assert parsed.document.totals.payable == _xml_payable(_attachments(path)["factur-x.xml"])


@needs_data
@pytest.mark.parametrize(
    "name", ["EmptyPDFA1.pdf", "MustangGnuaccountingBeispielRE-20170509_505blanko.pdf"]
)
def test_a_pdf_without_embedded_xml_is_read_from_its_text(name: str) -> None:
    path = next(MUSTANG.rglob(name))
    assert embedded_xml(path.read_bytes(), LIMITS) is None
    parsed = parse_document(path.read_bytes())
    assert parsed.format is DetectedFormat.PDF
    assert parsed.document.source_format is SourceFormat.PDF
    assert parsed.document.gross == Decimal("571.04")
    assert parsed.fields is not None
    gross = parsed.fields["gross_total"]
    assert gross["value"] == "571.04" and 0 < float(gross["confidence"] or 0) <= 1


@pytest.mark.parametrize(
    "index", range(len(WORLD.documents)), ids=[name for name, _, _ in WORLD.documents]
)
def test_embedded_demo_world_documents_round_trip(index: int) -> None:
    _, doc, _ = WORLD.documents[index]
    pdf = embed_facturx(BLANK, write_cii(doc))

    parsed = parse_document(pdf)

    assert parsed.format is DetectedFormat.FACTURX_PDF
    assert type(parsed.document) is type(doc)
    assert parsed.document == doc.model_copy(update={"source_format": SourceFormat.FACTURX})


def test_a_credit_note_round_trips_through_a_pdf() -> None:
    credit = next(doc for _, doc, _ in WORLD.documents if isinstance(doc, CreditNote))
    parsed = parse_document(embed_facturx(BLANK, write_cii(credit)))
    assert isinstance(parsed.document, CreditNote)
    assert parsed.document.billing_reference == credit.billing_reference


def _parts(pdf: bytes) -> tuple[DictionaryObject, str]:
    """The one file specification in the catalog's /AF array, and the XMP metadata text."""
    root = PdfReader(io.BytesIO(pdf)).trailer["/Root"].get_object()
    assert isinstance(root, DictionaryObject)
    associated = root["/AF"].get_object()
    assert isinstance(associated, ArrayObject)
    [spec] = [ref.get_object() for ref in associated]
    assert isinstance(spec, DictionaryObject)
    metadata = root["/Metadata"].get_object()
    assert isinstance(metadata, StreamObject)
    return spec, metadata.get_data().decode()


def test_embedding_follows_factur_x() -> None:
    xml = write_cii(WORLD.documents[0][1])
    pdf = embed_facturx(BLANK, xml)
    spec, xmp = _parts(pdf)

    assert spec["/F"] == "factur-x.xml"
    assert spec["/UF"] == "factur-x.xml"
    assert spec["/AFRelationship"] == "/Data"
    files = spec["/EF"].get_object()
    assert isinstance(files, DictionaryObject)
    stream = files["/F"].get_object()
    assert isinstance(stream, StreamObject)
    assert stream["/Subtype"] == "/text/xml"
    assert stream.get_data() == xml
    assert "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>" in xmp
    assert "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>" in xmp
    assert "<fx:DocumentType>INVOICE</fx:DocumentType>" in xmp
    assert re.search(r"<pdfaid:part>3</pdfaid:part>", xmp)
    info = PdfReader(io.BytesIO(pdf)).metadata
    assert info is not None
    assert info.title == "Acme Office Supplies Ltd: Invoice INV-1001"
    assert len(PdfReader(io.BytesIO(pdf)).pages) == 1


def test_profile_and_relationship_can_be_chosen() -> None:
    pdf = embed_facturx(
        BLANK, write_cii(WORLD.documents[0][1]), profile="extended", relationship="Alternative"
    )
    spec, xmp = _parts(pdf)
    assert spec["/AFRelationship"] == "/Alternative"
    assert "<fx:ConformanceLevel>EXTENDED</fx:ConformanceLevel>" in xmp


def test_embedding_refuses_what_is_not_factur_x() -> None:
    doc = WORLD.documents[0][1]
    with pytest.raises(ValueError, match="profile"):
        embed_facturx(BLANK, write_cii(doc), profile="XRECHNUNG 9")
    with pytest.raises(ValueError, match="CrossIndustryInvoice"):
        embed_facturx(BLANK, write_ubl(doc))
    with pytest.raises(ValueError, match="cannot be parsed"):
        embed_facturx(BLANK, b"<rsm:broken")
    with pytest.raises(ValueError, match="PDF"):
        embed_facturx(b"%PDF-1.7\nnot really a pdf", write_cii(doc))


def test_embedded_xml_names_the_attachment() -> None:
    xml = write_cii(WORLD.documents[0][1])
    assert embedded_xml(embed_facturx(BLANK, xml), LIMITS) == ("factur-x.xml", xml)


def test_factur_x_xml_wins_over_other_known_names() -> None:
    first, second = WORLD.documents[0][1], WORLD.documents[1][1]
    pdf = _with_attachments(
        {"ZUGFeRD-invoice.xml": write_cii(second), "factur-x.xml": write_cii(first)}
    )
    parsed = parse_document(pdf)
    assert parsed.document.number == first.number


def test_an_unknown_xml_attachment_counts_only_with_an_invoice_root() -> None:
    doc = WORLD.documents[0][1]
    pdf = _with_attachments({"notes.xml": b"<notes>hello</notes>", "rechnung.xml": write_ubl(doc)})
    found = embedded_xml(pdf, LIMITS)
    assert found is not None
    assert found[0] == "rechnung.xml"
    assert parse_document(pdf).document.number == doc.number

    only_notes = _with_attachments({"notes.xml": b"<notes>hello</notes>", "a.txt": b"x"})
    assert embedded_xml(only_notes, LIMITS) is None


def test_a_known_attachment_that_is_not_xml_is_malformed() -> None:
    pdf = _with_attachments({"factur-x.xml": b"PK\x03\x04 a zip file"})
    with pytest.raises(ParseError) as caught:
        parse_document(pdf)
    assert caught.value.code is ParseErrorCode.MALFORMED_XML
    assert "factur-x.xml" in caught.value.message


def test_a_password_protected_pdf_is_encrypted() -> None:
    pdf = _with_attachments({"factur-x.xml": write_cii(WORLD.documents[0][1])}, password="s3cret")
    with pytest.raises(ParseError) as caught:
        parse_document(pdf)
    assert caught.value.code is ParseErrorCode.ENCRYPTED_PDF
    assert "password" in caught.value.message


def test_a_pdf_locked_only_against_editing_is_read() -> None:
    # An empty user password: every viewer opens it without asking, and so does Tollgate.
    doc = WORLD.documents[0][1]
    pdf = _with_attachments({"factur-x.xml": write_cii(doc)}, password="")
    assert PdfReader(io.BytesIO(pdf)).is_encrypted
    assert parse_document(pdf).document.number == doc.number


def test_garbage_after_the_pdf_magic_is_corrupt() -> None:
    with pytest.raises(ParseError) as caught:
        parse_document(b"%PDF-1.7\n" + bytes(range(256)) * 20)
    assert caught.value.code is ParseErrorCode.CORRUPT_PDF


def _bomb(declared_size: bool) -> bytes:
    # 2 MB of XML comment compresses to a few kB: small PDF, large XML.
    xml = write_cii(WORLD.documents[0][1]) + b"<!--" + b" " * 2_000_000 + b"-->"
    pdf = embed_facturx(BLANK, xml)
    if declared_size:
        return pdf
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    for attachment in writer.attachment_list:
        attachment.size = None  # only the decompression bound is left to stop it
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("declared_size", [True, False], ids=["declared", "undeclared"])
def test_an_embedded_xml_over_the_limit_is_too_large(declared_size: bool) -> None:
    pdf = _bomb(declared_size)
    limits = ParseLimits(max_bytes=200_000)
    assert len(pdf) < limits.max_bytes
    with pytest.raises(ParseError) as caught:
        parse_document(pdf, limits)
    assert caught.value.code is ParseErrorCode.TOO_LARGE
    # Under the default limit the same file is fine.
    assert isinstance(parse_document(pdf).document, Invoice)
