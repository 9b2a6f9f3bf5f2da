"""PDF pages as PNG images for the case page's document viewer, cached beside the blobs.

Rendering is bounded (a page limit, a pixel limit per page) because the PDF is untrusted input,
and each rendered page is cached under the blob store's `renders/` folder, named by the
document's sha256, so a page is rendered once however often clerks look at it.
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium

from app.blobs import BlobStore
from app.errors import InvalidInput, NotFound

MAX_PAGES = 20
SCALE = 1.5  # 108 dpi: A4 comes out about 890 px wide, readable beside the case facts
MAX_PIXELS = 12_000_000  # an absurd page size must not allocate gigabytes
# PDFium is not thread-safe and FastAPI runs sync routes on a thread pool.
_PDFIUM = threading.Lock()


@dataclass(frozen=True)
class PageImage:
    """One rendered page."""

    png: bytes
    page: int
    pages: int


def page_count(data: bytes) -> int:
    """The number of pages of a PDF, or 0 when PDFium cannot open it."""
    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError:
            return 0
        try:
            return len(pdf)
        finally:
            pdf.close()


def viewable_pages(data: bytes) -> int:
    """How many pages the viewer offers (the count, capped at MAX_PAGES)."""
    return min(page_count(data), MAX_PAGES)


def _render(data: bytes, page: int) -> bytes:
    with _PDFIUM:
        try:
            pdf = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise InvalidInput(f"the PDF cannot be opened for viewing: {exc}") from None
        try:
            if page < 1 or page > min(len(pdf), MAX_PAGES):
                raise NotFound(f"page {page} is not viewable (the viewer shows up to {MAX_PAGES})")
            handle = pdf[page - 1]
            try:
                width, height = handle.get_size()
                scale = SCALE
                if width * height * scale * scale > MAX_PIXELS:
                    scale = (MAX_PIXELS / (width * height)) ** 0.5
                bitmap = handle.render(scale=scale, may_draw_forms=False)
                image = bitmap.to_pil()
            finally:
                handle.close()
        finally:
            pdf.close()
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


def _cache_path(blobs: BlobStore, sha256: str, page: int) -> Path:
    return blobs.root / "renders" / sha256[:2] / f"{sha256}-p{page}-s{SCALE}.png"


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def render_page(blobs: BlobStore, storage_path: str, sha256: str, page: int) -> bytes:
    """The PNG of one page of a stored PDF, from the cache or rendered now and cached."""
    cached = _cache_path(blobs, sha256, page)
    if cached.is_file():
        return cached.read_bytes()
    png = _render(blobs.read(storage_path), page)
    # A lost cache write only costs a re-render, so no fsync here.
    _write_atomically(cached, png)
    return png
