"""Read a PDF's text layer into positioned lines with pypdf, within page and size bounds."""

from __future__ import annotations

import io
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError, PyPdfError

from pipelines.parsers.errors import ParseError, ParseErrorCode

MAX_PDF_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Cell:
    """A run of text on one line: page, left x, baseline y (top of page is larger y), text."""

    page: int
    x: float
    y: float
    text: str
    size: float = 10.0

    @property
    def right(self) -> float:
        """Estimated right edge; pypdf gives no glyph widths, so typical widths per character."""
        widths = (
            0.28 if c == " " else 0.62 if c.isupper() or c.isdigit() else 0.5 for c in self.text
        )
        return self.x + self.size * sum(widths)


@dataclass(frozen=True)
class Line:
    """Cells sharing a baseline, left to right; `text` joins them with two spaces."""

    page: int
    y: float
    cells: tuple[Cell, ...]

    @property
    def text(self) -> str:
        """The line's text, cells separated by two spaces so cell borders stay visible."""
        return "  ".join(c.text for c in self.cells)


@dataclass(frozen=True)
class PdfText:
    """The text layer of a document: positioned lines per page, plus pypdf's plain text."""

    lines: tuple[Line, ...]
    plain: tuple[str, ...]  # pypdf extract_text() per page, for reading-order fallbacks


def _error(code: ParseErrorCode, message: str, detail: str | None = None) -> ParseError:
    return ParseError(code, message, detail)


def read_pdf_text(data: bytes, *, max_pages: int = 50) -> PdfText:
    """Open a PDF and return its positioned text; typed ParseErrors for unreadable input."""
    if not data:
        raise _error(ParseErrorCode.EMPTY, "The file is empty.")
    if len(data) > MAX_PDF_BYTES:
        raise _error(
            ParseErrorCode.TOO_LARGE,
            f"The PDF is larger than {MAX_PDF_BYTES // (1024 * 1024)} MiB; split or compress it.",
        )
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                # An empty user password opens many "protected" PDFs; others stay closed.
                if not reader.decrypt(""):
                    raise FileNotDecryptedError("password required")
            except (FileNotDecryptedError, NotImplementedError, PdfReadError) as exc:
                raise _error(
                    ParseErrorCode.ENCRYPTED_PDF,
                    "The PDF is password-protected. Ask the supplier for an unprotected copy.",
                    str(exc)[:200],
                ) from exc
        lines: list[Line] = []
        plain: list[str] = []
        # Only the first pages are read: header fields and totals sit there or on the last of
        # a few pages, and a hostile file must not make us walk thousands.
        for index in range(min(len(reader.pages), max(1, max_pages))):
            page = reader.pages[index]
            cells: list[Cell] = []

            def visit(
                text: str,
                cm: list[float],
                tm: list[float],
                font: object,
                size: float,
                _cells: list[Cell] = cells,
                _page: int = index,
            ) -> None:
                if not text or not text.strip():
                    return
                x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
                y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
                scale = abs(tm[3] * cm[3]) or abs(tm[0] * cm[0]) or 1.0
                for part in text.split("\n"):
                    if part.strip():
                        _cells.append(Cell(_page, x, y, part.strip(), (size or 10.0) * scale))
                    y -= (size or 10.0) * scale * 1.2

            text = page.extract_text(visitor_text=visit) or ""
            plain.append(text)
            lines.extend(_group_lines(cells))
    except ParseError:
        raise
    except (
        PyPdfError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        AssertionError,
        RecursionError,
        OSError,
        ZeroDivisionError,
    ) as exc:
        raise _error(
            ParseErrorCode.CORRUPT_PDF,
            "The PDF cannot be read; it may be damaged. Ask the supplier to send it again.",
            f"{type(exc).__name__}: {exc}"[:200],
        ) from exc
    if not any(t.strip() for t in plain):
        raise _error(
            ParseErrorCode.NO_TEXT_LAYER,
            "The PDF has no text layer (a scan or image). It needs OCR or manual entry.",
        )
    return PdfText(tuple(lines), tuple(plain))


def _group_lines(cells: list[Cell]) -> list[Line]:
    """Group cells into lines by baseline (tolerance: a third of the font size), top to bottom."""
    ordered = sorted(cells, key=lambda c: (-round(c.y, 1), c.x))
    rows: list[list[Cell]] = []
    for cell in ordered:
        if rows and abs(rows[-1][0].y - cell.y) <= max(1.5, cell.size / 3):
            rows[-1].append(cell)
        else:
            rows.append([cell])
    lines: list[Line] = []
    for row in rows:
        row.sort(key=lambda c: c.x)
        merged: list[Cell] = []
        for cell in row:
            prev = merged[-1] if merged else None
            # Fragments closer than about one space belong to the same cell.
            if prev is not None and cell.x - prev.right <= cell.size * 0.6:
                merged[-1] = Cell(prev.page, prev.x, prev.y, prev.text + " " + cell.text, prev.size)
            else:
                merged.append(cell)
        lines.append(Line(row[0].page, row[0].y, tuple(merged)))
    return lines
