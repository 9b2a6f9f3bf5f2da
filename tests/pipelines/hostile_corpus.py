"""Build a corpus of hostile and broken documents from the public fixtures, for sandbox tests.

`build_corpus(root, shared_data, listener_port)` writes at least 300 files under `root` and
returns them with their category. Sources are real files from `shared/data/einvoice` and
`shared/data/pdf` (read-only; only copies are changed). Everything is deterministic: a fixed
seed picks sources and flips bytes. Files that try to reach the network point at
127.0.0.1:`listener_port`, where the test listens and asserts nothing ever connects.
"""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SEED = 20261129
UBL_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CBC_NS = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CII_NS = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
# Small enough that the whole corpus stays a few megabytes apart from the bombs.
_MAX_SOURCE_BYTES = 400 * 1024


@dataclass(frozen=True)
class HostileFile:
    """One corpus file and what kind of hostility it carries."""

    path: Path
    category: str


def real_files(shared_data: Path) -> tuple[list[Path], list[Path]]:
    """Sorted real XML e-invoices and PDFs under the size cap."""
    xml = sorted(
        p
        for p in (shared_data / "einvoice").rglob("*.xml")
        if p.stat().st_size <= _MAX_SOURCE_BYTES
    )
    pdf = sorted(
        p
        for folder in ("einvoice", "pdf")
        for p in (shared_data / folder).rglob("*.pdf")
        if p.stat().st_size <= _MAX_SOURCE_BYTES
    )
    return xml, pdf


def _pick(items: list[Path], count: int, rng: random.Random) -> list[Path]:
    return rng.sample(items, min(count, len(items)))


def pdf_file(objects: Iterable[bytes], root: int = 1, trailer_extra: bytes = b"") -> bytes:
    """A syntactically complete PDF (header, numbered objects, exact xref, trailer)."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root %d 0 R %s>>\n" % (len(offsets) + 1, root, trailer_extra)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def _stream(dictionary: bytes, data: bytes) -> bytes:
    return b"<< " + dictionary + b" /Length %d >>\nstream\n" % len(data) + data + b"\nendstream"


def _one_page(content: bytes, extra_catalog: bytes = b"", more: Iterable[bytes] = ()) -> bytes:
    return pdf_file(
        [
            b"<< /Type /Catalog /Pages 2 0 R " + extra_catalog + b">>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
            content,
            *more,
        ]
    )


def flate_bomb(expanded_bytes: int) -> bytes:
    """Deflate data of `expanded_bytes` zeros, built in chunks so memory stays small."""
    compressor = zlib.compressobj(1)
    chunk = bytes(16 * 1024 * 1024)
    parts = []
    remaining = expanded_bytes
    while remaining > 0:
        parts.append(compressor.compress(chunk[: min(remaining, len(chunk))]))
        remaining -= len(chunk)
    parts.append(compressor.flush())
    return b"".join(parts)


def _pdf_hostiles(bomb: bytes) -> dict[str, bytes]:
    depth = 100_000
    nested_array = b"[" * depth + b"]" * depth
    nested_dict = b"<< /A " * 50_000 + b"1" + b" >>" * 50_000
    chain = [b"<< /Type /Catalog /Pages 2 0 R /Next 3 0 R >>", b"<< /Type /Pages /Kids [] >>"]
    chain += [b"<< /Next %d 0 R >>" % (n + 1) for n in range(3, 30_003)]
    chain.append(b"null")
    pages = 20_000
    page_objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (n + 3) for n in range(pages))
        + b"] /Count %d >>" % pages,
    ]
    page_objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"] * pages
    embedded = b"/Type /EmbeddedFile /Subtype /text#2Fxml /Filter /FlateDecode"
    facturx_names = b"/Names << /EmbeddedFiles << /Names [(factur-x.xml) 6 0 R] >> >> /AF [6 0 R]"
    return {
        "pdf_nested_array.pdf": _one_page(_stream(b"", b"q Q"), more=[nested_array]),
        "pdf_nested_dict.pdf": _one_page(_stream(b"", b"q Q"), more=[nested_dict]),
        "pdf_nested_in_catalog.pdf": _one_page(_stream(b"", b"q Q"), b"/Deep " + nested_array),
        "pdf_reference_chain.pdf": pdf_file(chain),
        "pdf_content_flate_bomb.pdf": _one_page(_stream(b"/Filter /FlateDecode", bomb)),
        "pdf_embedded_xml_flate_bomb.pdf": _one_page(
            _stream(b"", b"q Q"),
            facturx_names,
            more=[
                _stream(embedded, bomb),
                b"<< /Type /Filespec /F (factur-x.xml) /UF (factur-x.xml) "
                b"/AFRelationship /Data /EF << /F 5 0 R >> >>",
            ],
        ),
        "pdf_claims_2g_pages.pdf": pdf_file(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 2147483647 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>",
            ]
        ),
        "pdf_20000_pages.pdf": pdf_file(page_objects),
        "pdf_cyclic_page_tree.pdf": pdf_file(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1 >>",
            ]
        ),
        # Factur-X shaped (an EmbeddedFiles name tree), so the attachment reader walks them.
        "pdf_names_tree_cycle.pdf": _one_page(
            _stream(b"", b"q Q"),
            b"/Names << /EmbeddedFiles 5 0 R >>",
            more=[b"<< /Kids [5 0 R 6 0 R] >>", b"<< /Kids [5 0 R] >>"],
        ),
        "pdf_names_tree_deep.pdf": _one_page(
            _stream(b"", b"q Q"),
            b"/Names << /EmbeddedFiles 5 0 R >>",
            more=[b"<< /Kids [%d 0 R] >>" % (n + 1) for n in range(5, 20_005)]
            + [b"<< /Names [(factur-x.xml) null] >>"],
        ),
        "pdf_names_deep_array.pdf": _one_page(
            _stream(b"", b"q Q"),
            b"/Names << /EmbeddedFiles << /Names [(factur-x.xml) " + nested_array + b"] >> >>",
        ),
        "pdf_xref_points_nowhere.pdf": b"%PDF-1.7\nxref\n0 1\ntrailer<</Root 9 0 R>>\n"
        b"startxref\n999999999\n%%EOF\n",
    }


def _xml_hostiles(port: int) -> dict[str, bytes]:
    url = f"http://127.0.0.1:{port}"
    laughs = "".join(f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10}">' for n in range(1, 10))
    big = "x" * 100_000
    hostile = {
        "xml_billion_laughs.xml": (
            f'<?xml version="1.0"?><!DOCTYPE Invoice [<!ENTITY lol0 "lol">{laughs}]>'
            f'<Invoice xmlns="{UBL_NS}" xmlns:cbc="{CBC_NS}"><cbc:ID>&lol9;</cbc:ID></Invoice>'
        ),
        "xml_quadratic_blowup.xml": (
            f'<!DOCTYPE Invoice [<!ENTITY a "{big}">]>'
            f'<Invoice xmlns="{UBL_NS}" xmlns:cbc="{CBC_NS}"><cbc:Note>{"&a;" * 20_000}'
            "</cbc:Note></Invoice>"
        ),
        "xml_laughs_cii_root.xml": (
            f'<!DOCTYPE r [<!ENTITY lol0 "lol">{laughs}]>'
            f'<rsm:CrossIndustryInvoice xmlns:rsm="{CII_NS}">&lol9;</rsm:CrossIndustryInvoice>'
        ),
        "xml_external_entity_http.xml": (
            f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{url}/xxe">]>'
            f'<Invoice xmlns="{UBL_NS}" xmlns:cbc="{CBC_NS}"><cbc:ID>&xxe;</cbc:ID></Invoice>'
        ),
        "xml_external_entity_file.xml": (
            '<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
            f'<Invoice xmlns="{UBL_NS}" xmlns:cbc="{CBC_NS}"><cbc:ID>&xxe;</cbc:ID></Invoice>'
        ),
        "xml_external_parameter_entity.xml": (
            f'<!DOCTYPE Invoice [<!ENTITY % ext SYSTEM "{url}/pe.dtd"> %ext;]>'
            f'<Invoice xmlns="{UBL_NS}"/>'
        ),
        "xml_external_dtd.xml": (
            f'<?xml version="1.0"?><!DOCTYPE Invoice SYSTEM "{url}/invoice.dtd">'
            f'<Invoice xmlns="{UBL_NS}" xmlns:cbc="{CBC_NS}"><cbc:ID>1</cbc:ID></Invoice>'
        ),
        "xml_external_dtd_public.xml": (
            f'<!DOCTYPE Invoice PUBLIC "-//X//DTD X//EN" "{url}/public.dtd">'
            f'<Invoice xmlns="{UBL_NS}"/>'
        ),
        "xml_xinclude.xml": (
            f'<Invoice xmlns="{UBL_NS}" xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<xi:include href="{url}/include.xml" parse="text"/></Invoice>'
        ),
        "xml_schema_location.xml": (
            f'<Invoice xmlns="{UBL_NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{UBL_NS} {url}/UBL-Invoice-2.1.xsd"/>'
        ),
        "xml_stylesheet_pi.xml": (
            f'<?xml-stylesheet type="text/xsl" href="{url}/style.xsl"?><Invoice xmlns="{UBL_NS}"/>'
        ),
        "xml_unknown_encoding.xml": (
            f'<?xml version="1.0" encoding="x-no-such-codec"?><Invoice xmlns="{UBL_NS}"/>'
        ),
        "xml_huge_attribute.xml": f'<Invoice xmlns="{UBL_NS}" a="{"A" * 5_000_000}"/>',
        "xml_many_attributes.xml": (
            f'<Invoice xmlns="{UBL_NS}" ' + " ".join(f'a{n}="1"' for n in range(100_000)) + "/>"
        ),
        "xml_many_namespaces.xml": (
            f'<Invoice xmlns="{UBL_NS}" '
            + " ".join(f'xmlns:p{n}="urn:x:{n}"' for n in range(50_000))
            + "/>"
        ),
    }
    for depth in (300, 10_000, 200_000):
        hostile[f"xml_nested_{depth}.xml"] = (
            f'<Invoice xmlns="{UBL_NS}">' + "<a>" * depth + "</a>" * depth + "</Invoice>"
        )
    hostile["xml_nested_unclosed.xml"] = f'<Invoice xmlns="{UBL_NS}">' + "<a>" * 500_000
    hostile["xml_nested_cii.xml"] = (
        f'<rsm:CrossIndustryInvoice xmlns:rsm="{CII_NS}">'
        + "<b>" * 50_000
        + "</b>" * 50_000
        + "</rsm:CrossIndustryInvoice>"
    )
    return {name: text.encode("utf-8") for name, text in hostile.items()}


def _csv_hostiles() -> dict[str, bytes]:
    header = b"document_type,number,line_id,quantity,unit_price,line_amount,description\n"
    return {
        "csv_huge_field.csv": header + b'invoice,1,1,1,1,1,"' + b"x" * 1_000_000 + b'"\n',
        "csv_too_many_rows.csv": header + b"invoice,1,1,1,1,1,x\n" * 150_000,
        "csv_unterminated_quote.csv": header + b'invoice,1,1,1,1,1,"never closed\n' * 100,
        "csv_exponent_amount.csv": header + b"invoice,1,1,1,1e999999999,1,x\n",
        "csv_formula.csv": header + b'invoice,1,1,1,1,1,"=HYPERLINK(""http://x"")"\n',
        "csv_nul_bytes.csv": header + b"invoice,1,1,1,1,1,a\x00b\n",
        "csv_latin1.csv": header + b"invoice,1,1,1,1,1,M\xfcller\n",
        "csv_ragged.csv": header + b"invoice,1\n" * 10,
    }


def _non_pdfs() -> dict[str, bytes]:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("factur-x.xml", f'<Invoice xmlns="{UBL_NS}"/>')
    junk = random.Random(SEED).randbytes(4096)
    headers = {
        "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "zip": zipped.getvalue(),
        "elf": b"\x7fELF\x02\x01\x01\x00" + bytes(8),
        "gif": b"GIF89a",
        "jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
        "gzip": zlib.compress(b"%PDF-1.7 hidden")[:2] + b"\x1f\x8b\x08\x00",
        "exe": b"MZ\x90\x00\x03\x00\x00\x00",
        "docx": b"PK\x03\x04\x14\x00\x06\x00",
    }
    files = {}
    for name, head in headers.items():
        files[f"renamed_{name}.pdf"] = head + junk
        files[f"renamed_{name}.xml"] = head + junk[:512]
    return files


def _blank() -> dict[str, bytes]:
    return {
        "zero_bytes.pdf": b"",
        "space.xml": b" ",
        "whitespace_mix.xml": b" \t\r\n\x0b\x0c" * 100,
        "crlf_lines.csv": b"\r\n" * 10_000,
        "bom_only.xml": b"\xef\xbb\xbf",
        "utf16_bom_only.xml": b"\xff\xfe",
        "nul_bytes.pdf": bytes(4096),
        "pdf_magic_only.pdf": b"%PDF-",
    }


def build_corpus(
    root: Path, shared_data: Path, listener_port: int, bomb_bytes: int = 1 << 30
) -> list[HostileFile]:
    """Write the hostile corpus under `root`; returns every file with its category."""
    rng = random.Random(SEED)
    xml, pdf = real_files(shared_data)
    made: list[HostileFile] = []

    def put(category: str, name: str, data: bytes) -> None:
        folder = root / category
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / name
        path.write_bytes(data)
        made.append(HostileFile(path, category))

    # Truncated at several offsets: inside the prolog, early, middle, late, one byte short.
    for source in _pick(xml, 16, rng) + _pick(pdf, 6, rng):
        data = source.read_bytes()
        for fraction in (0.0, 0.1, 0.5, 0.9, 1.0):
            cut = max(1, min(len(data) - 1, int(len(data) * fraction)))
            if fraction == 0.0:
                cut = min(len(data) - 1, 7)
            put("truncated", f"{source.stem}.{fraction}{source.suffix}", data[:cut])
    # Real files with seeded random byte flips: 1, 4, 16, 64 or 256 bytes changed.
    for source in _pick(xml, 24, rng) + _pick(pdf, 8, rng):
        data = source.read_bytes()
        for flips in (1, 4, 16, 64, 256):
            damaged = bytearray(data)
            for _ in range(flips):
                damaged[rng.randrange(len(damaged))] ^= 1 << rng.randrange(8)
            put("flipped", f"{source.stem}.{flips}{source.suffix}", bytes(damaged))
    for name, data in _blank().items():
        put("blank", name, data)
    for name, data in _non_pdfs().items():
        put("renamed", name, data)
    for name, data in _xml_hostiles(listener_port).items():
        put("xml_attack", name, data)
    for name, data in _pdf_hostiles(flate_bomb(bomb_bytes)).items():
        put("pdf_attack", name, data)
    for name, data in _csv_hostiles().items():
        put("csv_attack", name, data)
    return made


def controls(shared_data: Path, count: int = 20) -> list[Path]:
    """Undamaged real XML e-invoices, to show the sandbox also returns results."""
    xml, _ = real_files(shared_data)
    ubl_or_cii = [p for p in xml if "ubl" in p.name.lower() or "cii" in p.name.lower()]
    return random.Random(SEED).sample(ubl_or_cii, min(count, len(ubl_or_cii)))
