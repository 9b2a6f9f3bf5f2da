"""Born-digital PDF rendering of canonical documents in several supplier layouts.

`render_pdf(doc, layout)` draws an `Invoice`, `CreditNote` or `Claim` the way one imagined
supplier would print it (see `training.synth.layouts`). Text is drawn with the PDF core fonts
(Helvetica, Times, Courier in WinAnsi encoding), so nothing is embedded or fetched and the text
layer extracts cleanly. Output is deterministic: the same document and layout give the same
bytes, because the creation date is fixed and the file id is a hash of the content.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Literal

from fpdf import FPDF
from fpdf.fonts import CoreFont

from pipelines.canonical import Claim, CreditNote, Invoice, Party
from training.synth.layouts import LAYOUTS, Column, Layout, layout_names

__all__ = ["LAYOUTS", "Layout", "UnknownLayoutError", "get_layout", "layout_names", "render_pdf"]

# Fixed so that rendering is a pure function of its input (same document, same bytes).
_CREATION_DATE = datetime(2026, 1, 1, tzinfo=UTC)

PAGE_W = 595.28  # A4 in points
PAGE_H = 841.89
LEFT = 50.0
RIGHT = PAGE_W - 50.0
BODY_BOTTOM = PAGE_H - 92.0  # below this only the footer
CONT_TOP = 92.0  # where the table starts on continuation pages
PAD = 3.0  # cell padding inside table columns

# Column widths in points (at 9 pt); the description takes what is left.
_COL_WIDTH: dict[Column, float] = {
    "pos": 30.0,
    "item": 62.0,
    "qty": 42.0,
    "unit": 40.0,
    "price": 66.0,
    "tax": 38.0,
    "amount": 74.0,
}
_NUMERIC: frozenset[Column] = frozenset({"qty", "price", "tax", "amount"})

Align = Literal["L", "R", "C"]
Document = Invoice | CreditNote | Claim


class UnknownLayoutError(ValueError):
    """The layout name is not one of `layout_names()`."""


def get_layout(layout: str | Layout) -> Layout:
    """Look a layout up by name (a `Layout` is returned as it is)."""
    if isinstance(layout, Layout):
        return layout
    try:
        return LAYOUTS[layout]
    except KeyError:
        known = ", ".join(layout_names())
        raise UnknownLayoutError(f"unknown PDF layout {layout!r}; known: {known}") from None


# Letters that Unicode does not decompose into a base letter plus an accent.
_NO_DECOMPOSITION = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "\u0131": "i", "Ħ": "H", "ħ": "h"}


def win_ansi(text: str) -> str:
    """Text the core fonts can draw: WinAnsi as is, else accents stripped, else '?'."""
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        pass
    out = []
    for ch in text:
        try:
            ch.encode("cp1252")
            out.append(ch)
        except UnicodeEncodeError:
            # ł, ő, ș …: keep the base letter so names stay readable and searchable.
            base = unicodedata.normalize("NFKD", ch).encode("cp1252", "ignore").decode("cp1252")
            out.append(base or _NO_DECOMPOSITION.get(ch, "?"))
    return "".join(out)


@dataclass
class _Row:
    """One table row, its cells already formatted and the description wrapped."""

    cells: dict[Column, str]
    desc_lines: list[str]
    amount: Decimal
    height: float


class _Renderer:
    """Draws one document in one layout; use once."""

    def __init__(self, doc: Document, layout: Layout) -> None:
        self.doc = doc
        self.lay = layout
        self.size = layout.base_size
        self.lh = layout.base_size * 1.32  # line height
        self.pdf = FPDF(unit="pt", format="A4")
        self.pdf.core_fonts_encoding = "windows-1252"
        self.pdf.set_creation_date(_CREATION_DATE)
        self.pdf.set_creator("Tollgate synthetic documents")
        self.pdf.set_auto_page_break(False)
        self.pdf.set_line_width(0.5)
        self._font: tuple[str, float] | None = None
        self._grey = False
        self.page_no = 0
        self.page_total = 1
        self.cols = self._column_geometry()

    # --- drawing primitives -------------------------------------------------------------

    def font(self, size: float | None = None, bold: bool = False) -> None:
        """Select the layout's font, skipping the call when nothing changes."""
        key = ("B" if bold else "", size or self.size)
        if key != self._font:
            self.pdf.set_font(self.lay.font, key[0], key[1])
            self._font = key

    def grey(self, on: bool) -> None:
        """Labels in some layouts are grey; values stay black."""
        if on != self._grey:
            self.pdf.set_text_color(110 if on else 0)
            self._grey = on

    def text(
        self,
        x: float,
        y: float,
        s: str,
        size: float | None = None,
        bold: bool = False,
        align: Align = "L",
    ) -> None:
        """Draw one string with its baseline at y, left/right/centre aligned on x."""
        if not s:
            return
        s = win_ansi(s)
        self.font(size, bold)
        if align != "L":
            w = self._measure(s)
            x = x - w if align == "R" else x - w / 2
        self.pdf.text(x, y, s)

    def _measure(self, s: str) -> float:
        """Width of WinAnsi text in the current font from its metrics table.

        fpdf2's get_string_width copies the graphics state on every call, which was a third
        of the render time; core fonts need only the per-character widths.
        """
        font = self.pdf.current_font
        if not isinstance(font, CoreFont) or self._font is None:
            return float(self.pdf.get_string_width(s))
        widths: dict[str, int] = font.cw
        glyphs = s.encode("cp1252").decode("latin-1")  # the metrics are keyed by byte
        return sum(widths[c] for c in glyphs) * self._font[1] / 1000

    def width(self, s: str, size: float | None = None, bold: bool = False) -> float:
        """Printed width of a string in points."""
        self.font(size, bold)
        return self._measure(win_ansi(s))

    def fit(
        self, s: str, max_width: float, size: float, bold: bool = True, min_size: float = 6.0
    ) -> float:
        """The largest size up to `size` at which `s` fits `max_width` (not below min_size)."""
        w = self.width(s, size, bold)
        if w <= max_width:
            return size
        return max(min_size, size * max_width / w)

    def wrap(
        self, s: str, width: float, size: float | None = None, max_lines: int = 4
    ) -> list[str]:
        """Greedy word wrap to `width`; very long words are cut, overflow lines are dropped."""
        if self.width(s, size) <= width:
            return [s]
        lines: list[str] = []
        current = ""
        for word in s.split():
            candidate = f"{current} {word}" if current else word
            if self.width(candidate, size) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            rest = word
            while self.width(rest, size) > width and len(rest) > 1:
                cut = len(rest) - 1
                while cut > 1 and self.width(rest[:cut], size) > width:
                    cut -= 1
                lines.append(rest[:cut])
                rest = rest[cut:]
            current = rest
        if current:
            lines.append(current)
        return lines[:max_lines]

    def rule(self, y: float, x1: float = LEFT, x2: float = RIGHT, width: float = 0.5) -> None:
        """A horizontal line."""
        self.pdf.set_line_width(width)
        self.pdf.line(x1, y, x2, y)

    # --- content helpers ----------------------------------------------------------------

    def label(self, key: str) -> str:
        """A label word of this layout."""
        return self.lay.labels[key]

    def lead(self, key: str) -> str:
        """A label followed by the layout's colon, e.g. "IBAN:" or "IBAN :"."""
        return self.lay.labels[key] + self.lay.colon

    def money(self, x: Decimal) -> str:
        """An amount with the document's currency in this layout's style."""
        return self.lay.format_money(x, self.doc.currency)

    def address_lines(self, party: Party) -> list[str]:
        """Street, town and country lines of a party, skipping what is missing."""
        a = party.address
        if a is None:
            return []
        lines = [s for s in (a.street, a.additional_street) if s]
        town = [s for s in (a.postal_code, a.city) if s]
        if self.lay.city_first:
            town.reverse()
        if a.subdivision and self.lay.city_first:
            town.insert(1, a.subdivision)
        if town:
            lines.append(" ".join(town))
        if a.country_code:
            lines.append(self.lay.country_name(a.country_code))
        return lines

    def party_ids(self, party: Party) -> list[str]:
        """VAT id, registration id and e-mail lines of a party."""
        out = []
        if party.vat_id:
            out.append(f"{self.lead('vat_id')} {party.vat_id}")
        if party.registration_id:
            out.append(f"{self.lead('registration_id')} {party.registration_id}")
        if party.email:
            out.append(f"{self.lead('email')} {party.email}")
        return out

    def meta_rows(self) -> list[tuple[str, str]]:
        """Document facts for the header: number, dates, references."""
        d, lay = self.doc, self.lay
        rows: list[tuple[str, str]] = []
        if d.number:
            rows.append((self.label(f"number_{d.kind}"), d.number))
        if d.issue_date:
            rows.append((self.label("issue_date"), lay.format_date(d.issue_date)))
        if d.due_date:
            rows.append((self.label("due_date"), lay.format_date(d.due_date)))
        if d.po_reference:
            rows.append((self.label("po"), d.po_reference))
        if d.buyer_reference:
            rows.append((self.label("buyer_reference"), d.buyer_reference))
        if d.contract_reference:
            rows.append((self.label("contract"), d.contract_reference))
        if isinstance(d, CreditNote | Claim) and d.billing_reference:
            rows.append((self.label("billing_reference"), d.billing_reference))
        if isinstance(d, Claim) and d.claim_reason:
            rows.append((self.label("claim_reason"), d.claim_reason))
        return rows

    def title(self) -> str:
        """Invoice, credit note or claim, in the layout's words."""
        return self.label(f"title_{self.doc.kind}")

    # --- header styles ------------------------------------------------------------------

    def header_letter_left(self) -> float:
        """Letterhead top left, big title and facts top right, buyer below the letterhead."""
        s, sup = self.size, self.doc.supplier
        y = 62.0
        title_w = self.width(self.title(), s + 9, bold=True)
        if sup.name:
            size = self.fit(sup.name, RIGHT - LEFT - title_w - 20, s + 6)
            self.text(LEFT, y, sup.name, size=size, bold=True)
        self.text(RIGHT, y, self.title(), size=s + 9, bold=True, align="R")
        y += s + 6
        for line in self.address_lines(sup) + self.party_ids(sup):
            self.text(LEFT, y, line)
            y += self.lh
        my = 62.0 + s + 14
        for label, value in self.meta_rows():
            self.text(345, my, f"{label}{self.lay.colon}", bold=True)
            self.text(RIGHT, my, value, align="R")
            my += self.lh + 1
        y = max(y, 150.0) + 10
        y = self.buyer_block(LEFT, y, with_label=True)
        top = max(y, my) + 18
        return top

    def header_letter_right(self) -> float:
        """Letterhead right-aligned, title left, facts in a band of label-over-value cells."""
        s, sup = self.size, self.doc.supplier
        self.text(LEFT, 70, self.title(), size=s + 13, bold=True)
        title_w = self.width(self.title(), s + 13, bold=True)
        y = 58.0
        if sup.name:
            size = self.fit(sup.name, RIGHT - LEFT - title_w - 20, s + 4)
            self.text(RIGHT, y, sup.name, size=size, bold=True, align="R")
            y += s + 5
        for line in self.address_lines(sup) + self.party_ids(sup):
            self.text(RIGHT, y, line, size=s - 0.5, align="R")
            y += self.lh
        by = self.buyer_block(LEFT, 118.0, with_label=True)
        y = max(y, by) + 14
        rows = self.meta_rows()
        per_row = 4
        cell = (RIGHT - LEFT) / per_row
        for i in range(0, len(rows), per_row):
            for j, (label, value) in enumerate(rows[i : i + per_row]):
                x = LEFT + j * cell
                self.grey(True)
                self.text(x, y, label, size=s - 1.5)
                self.grey(False)
                self.text(x, y + self.lh, value, bold=True)
            y += 2 * self.lh + 6
        return y + 10

    def header_din(self) -> float:
        """DIN 5008: letterhead, sender line over the address window, info block right."""
        s, sup = self.size, self.doc.supplier
        y = 52.0
        if sup.name:
            size = self.fit(sup.name, RIGHT - LEFT, s + 5)
            self.text(RIGHT, y, sup.name, size=size, bold=True, align="R")
            y += s + 4
        for line in self.address_lines(sup):
            self.text(RIGHT, y, line, size=s - 1, align="R")
            y += self.lh - 1
        # Sender line in small type above the window, as window envelopes show it.
        sender = " · ".join([p for p in [sup.name] if p] + self.address_lines(sup)[:2])
        if sender:
            self.text(LEFT, 138, sender, size=s - 2.5)
            self.rule(140.5, LEFT, LEFT + min(self.width(sender, s - 2.5), 250.0), width=0.3)
        by = self.buyer_block(LEFT, 156.0, with_label=False)
        iy = max(y + 10, 150.0)
        for label, value in self.meta_rows():
            self.text(340, iy, label)
            self.text(RIGHT, iy, value, align="R")
            iy += self.lh + 1
        for line in self.party_ids(sup):
            self.text(340, iy, line, size=s - 1)
            iy += self.lh
        ty = max(by, iy, 250.0) + 16
        self.text(LEFT, ty, self.title(), size=s + 5, bold=True)
        return ty + 18

    def buyer_block(self, x: float, y: float, with_label: bool) -> float:
        """The buyer's name, address and VAT id; returns the y below it."""
        buyer = self.doc.buyer
        lines = [buyer.name] if buyer.name else []
        lines += self.address_lines(buyer)
        if buyer.vat_id:
            lines.append(f"{self.lead('vat_id')} {buyer.vat_id}")
        if not lines:
            return y
        if with_label:
            self.grey(True)
            self.text(x, y, self.label("bill_to"), size=self.size - 1, bold=True)
            self.grey(False)
            y += self.lh + 1
        for i, line in enumerate(lines):
            self.text(x, y, line, bold=i == 0 and bool(buyer.name))
            y += self.lh
        return y

    def continuation_header(self) -> float:
        """Short header on pages after the first: who, what, which number."""
        sup = self.doc.supplier
        if sup.name:
            self.text(LEFT, 55, sup.name, bold=True)
        what = self.title()
        if self.doc.number:
            what = f"{what} {self.doc.number}"
        self.text(RIGHT, 55, f"{what} ({self.label('continued')})", align="R")
        self.rule(62)
        return CONT_TOP

    # --- table --------------------------------------------------------------------------

    def _column_geometry(self) -> list[tuple[Column, float, float]]:
        """(column, x_left, x_right) for each column in layout order."""
        scale = self.lay.base_size / 9.0 * (1.12 if self.lay.font == "Courier" else 1.0)
        fixed = {c: _COL_WIDTH[c] * scale for c in self.lay.columns if c != "desc"}
        desc_w = (RIGHT - LEFT) - sum(fixed.values())
        out = []
        x = LEFT
        for c in self.lay.columns:
            w = desc_w if c == "desc" else fixed[c]
            out.append((c, x, x + w))
            x += w
        return out

    def build_rows(self) -> list[_Row]:
        """Format every line once; wrapping decides each row's height."""
        lay = self.lay
        desc_w = next(x2 - x1 for c, x1, x2 in self.cols if c == "desc") - 2 * PAD
        rows = []
        for line in self.doc.lines:
            price = lay.format_price(line.unit_price)
            if line.price_base_quantity != 1:
                price = f"{price}/{lay.format_quantity(line.price_base_quantity)}"
            cells: dict[Column, str] = {
                "pos": line.line_id,
                "item": line.item_id or "",
                "qty": lay.format_quantity(line.quantity),
                "unit": lay.unit_word(line.unit_code),
                "price": price,
                "tax": lay.format_rate(line.tax_rate) if line.tax_rate is not None else "",
                "amount": lay.format_amount(line.line_amount),
            }
            desc = self.wrap(line.description, desc_w) if line.description else []
            if line.note:
                desc += self.wrap(line.note, desc_w, max_lines=2)
            height = max(1, len(desc)) * self.lh + 4
            rows.append(_Row(cells, desc, line.line_amount, height))
        return rows

    def table_header(self, y: float) -> float:
        """Column titles with a fill or a rule; returns the y of the first row's top."""
        lay = self.lay
        h = self.lh + 6
        if lay.header_fill is not None:
            self.pdf.set_fill_color(lay.header_fill)
            self.pdf.rect(LEFT, y, RIGHT - LEFT, h, style="F")
        else:
            self.rule(y, width=0.8)
        base = y + h - 5
        for c, x1, x2 in self.cols:
            word = self.label(c)
            if c == "amount" and lay.currency_in_headers and self.doc.currency:
                word = f"{word} ({self.doc.currency})"
            if c in _NUMERIC:
                self.text(x2 - PAD, base, word, bold=True, align="R")
            else:
                self.text(x1 + PAD, base, word, bold=True)
        if lay.header_fill is None:
            self.rule(y + h, width=0.8)
        return y + h + 2

    def draw_row(self, row: _Row, y: float) -> float:
        """Draw one line of the table from its top y; returns the next row's top."""
        base = y + self.lh - 1.5
        for c, x1, x2 in self.cols:
            if c == "desc":
                for i, part in enumerate(row.desc_lines):
                    self.text(x1 + PAD, base + i * self.lh, part)
            elif c in _NUMERIC:
                self.text(x2 - PAD, base, row.cells[c], align="R")
            else:
                self.text(x1 + PAD, base, row.cells[c])
        return y + row.height

    def forward_line(self, y: float, key: str, subtotal: Decimal) -> float:
        """Carried/brought-forward subtotal between pages of a long table."""
        self.text(RIGHT - 90, y + self.lh - 1, self.lead(key), bold=True, align="R")
        self.text(RIGHT - PAD, y + self.lh - 1, self.lay.format_amount(subtotal), align="R")
        return y + self.lh + 4

    # --- totals, payment, footer --------------------------------------------------------

    def totals_rows(self) -> list[tuple[str, str, bool]]:
        """(label, value, emphasised) rows of the totals box, missing amounts skipped."""
        d, lay, t = self.doc, self.lay, self.doc.totals
        rows: list[tuple[str, str, bool]] = []
        if d.allowance_charges and t.line_extension is not None:
            rows.append((self.label("subtotal"), lay.format_amount(t.line_extension), False))
        for ac in d.allowance_charges:
            if ac.reason:
                word = ac.reason
            elif ac.is_charge:
                word = self.label("freight" if ac.reason_code == "FC" else "charge")
            else:
                word = self.label("allowance")
            amount = lay.format_amount(ac.amount if ac.is_charge else -ac.amount)
            rows.append((word, amount, False))
        if t.tax_exclusive is not None:
            rows.append((self.label("net"), lay.format_amount(t.tax_exclusive), False))
        if lay.tax_style == "inline" and d.tax_breakdown:
            for sub in d.tax_breakdown:
                rate = lay.format_rate(sub.rate) if sub.rate is not None else self.label("exempt")
                word = self.label("tax_row").format(
                    rate=rate, base=lay.format_amount(sub.taxable_amount)
                )
                rows.append((word, lay.format_amount(sub.tax_amount), False))
            if len(d.tax_breakdown) > 1 and t.tax is not None:
                rows.append((self.label("tax_total"), lay.format_amount(t.tax), False))
        elif t.tax is not None:
            rows.append((self.label("tax_total"), lay.format_amount(t.tax), False))
        if t.tax_inclusive is not None:
            rows.append((self.label("gross"), self.money(t.tax_inclusive), True))
        if t.prepaid:
            rows.append((self.label("prepaid"), lay.format_amount(-t.prepaid), False))
        if t.rounding:
            rows.append((self.label("rounding"), lay.format_amount(t.rounding), False))
        if t.payable is not None and (
            lay.show_payable or t.tax_inclusive is None or t.payable != t.tax_inclusive
        ):
            rows.append((self.label("payable"), self.money(t.payable), True))
        return rows

    def payment_lines(self) -> list[str]:
        """Payment terms, bank account and notes, one printed line each."""
        d, p = self.doc, self.doc.payment
        out = []
        if p and p.terms:
            out.append(f"{self.lead('terms')} {p.terms}")
        if d.bank_iban:
            out.append(f"{self.lead('iban')} {self.lay.format_iban(d.bank_iban)}")
        if p and p.bic:
            out.append(f"{self.lead('bic')} {p.bic}")
        if p and p.account_name:
            out.append(f"{self.lead('account_name')} {p.account_name}")
        if p and p.payment_reference:
            out.append(f"{self.lead('payment_reference')} {p.payment_reference}")
        for note in d.notes:
            out.extend(self.wrap(note, RIGHT - LEFT, max_lines=3))
        return out

    def tax_table_height(self) -> float:
        """Height of the separate VAT breakdown table, 0 when it is not drawn."""
        if self.lay.tax_style != "table" or not self.doc.tax_breakdown:
            return 0.0
        return (len(self.doc.tax_breakdown) + 1) * (self.lh + 2) + 6

    def closing_height(self) -> float:
        """Space the totals, tax table and payment block need on the last page."""
        box = len(self.totals_rows()) * (self.lh + 3) + 12
        return max(box, self.tax_table_height()) + len(self.payment_lines()) * self.lh + 24

    def draw_closing(self, y: float) -> None:
        """Totals box right, VAT table left (if the layout has one), payment block below."""
        lay = self.lay
        self.rule(y, width=0.8)
        y += 6
        ty = y
        lx = 320.0
        for label, value, strong in self.totals_rows():
            if strong:
                self.rule(ty + 1, lx, RIGHT, width=0.6)
                ty += 4
            ty += self.lh + (2 if strong else 0)
            size = self.size + 1.5 if strong else None
            self.text(lx, ty, label, size=size, bold=strong)
            self.text(RIGHT - PAD, ty, value, size=size, bold=strong, align="R")
            ty += 3
        if lay.tax_style == "table" and self.doc.tax_breakdown:
            xs = (LEFT, LEFT + 90, LEFT + 175, LEFT + 255)
            yy = y + self.lh
            self.text(xs[0], yy, self.label("tax_rate"), bold=True)
            self.text(xs[2], yy, self.label("tax_base"), bold=True, align="R")
            self.text(xs[3], yy, self.label("tax_amount"), bold=True, align="R")
            self.rule(yy + 3, LEFT, xs[3], width=0.3)
            for sub in self.doc.tax_breakdown:
                yy += self.lh + 2
                rate = lay.format_rate(sub.rate) if sub.rate is not None else self.label("exempt")
                self.text(xs[0], yy, f"{sub.category or ''} {rate}".strip())
                self.text(xs[2], yy, lay.format_amount(sub.taxable_amount), align="R")
                self.text(xs[3], yy, lay.format_amount(sub.tax_amount), align="R")
            ty = max(ty, yy)
        py = ty + 20
        for line in self.payment_lines():
            self.text(LEFT, py, line)
            py += self.lh

    def footer(self) -> None:
        """Legal line with supplier, VAT id and bank on every page, plus the page number."""
        sup, s = self.doc.supplier, self.size - 2
        y = PAGE_H - 66
        self.rule(y, width=0.3)
        left = [sup.name or "", " ".join(self.address_lines(sup)[:2])]
        mid = self.party_ids(sup)[:2]
        right = []
        if self.doc.bank_iban:
            right.append(f"{self.lead('iban')} {self.lay.format_iban(self.doc.bank_iban)}")
        if self.doc.payment and self.doc.payment.bic:
            right.append(f"{self.lead('bic')} {self.doc.payment.bic}")
        for col, x, x_end in ((left, LEFT, 225.0), (mid, 230.0, 385.0), (right, 390.0, RIGHT)):
            for j, line in enumerate(col):
                # Shrink rather than overlap the next column, as long company names would.
                size = self.fit(line, x_end - x, s, bold=False, min_size=4.0)
                self.text(x, y + 10 + j * (s + 2), line, size=size)
        page = self.label("page").format(n=self.page_no, total=self.page_total)
        self.text(RIGHT, PAGE_H - 34, page, size=s, align="R")

    # --- the document -------------------------------------------------------------------

    def new_page(self) -> None:
        """Start a page; the previous page's footer is drawn first."""
        if self.page_no:
            self.footer()
        self.pdf.add_page()
        self.page_no += 1
        self._font = None  # fpdf2 re-emits the font per page; keep our cache honest
        self._grey = False

    def paginate(self, rows: list[_Row], first_top: float) -> tuple[list[list[_Row]], bool]:
        """Split rows into pages; say whether the totals need a page of their own."""
        head = self.lh + 8
        fwd = self.lh + 4
        pages: list[list[_Row]] = [[]]
        y = first_top + head
        for row in rows:
            if y + row.height > BODY_BOTTOM - fwd and pages[-1]:
                pages.append([])
                y = CONT_TOP + head + fwd
            pages[-1].append(row)
            y += row.height
        closing_alone = y + self.closing_height() > BODY_BOTTOM
        return pages, closing_alone

    def render(self) -> bytes:
        """Lay out and draw every page; return the PDF bytes."""
        self.new_page()
        header = {
            "letter_left": self.header_letter_left,
            "letter_right": self.header_letter_right,
            "din": self.header_din,
        }[self.lay.header_style]
        top = header()
        rows = self.build_rows()
        # Header height is known only after drawing it; pagination needs it for page one.
        pages, closing_alone = self.paginate(rows, top) if rows else ([], False)
        self.page_total = max(1, len(pages)) + (1 if closing_alone else 0)
        y = top
        running = Decimal(0)
        for i, page_rows in enumerate(pages):
            if i:
                y = self.forward_line(y, "carried", running)
                self.new_page()
                y = self.continuation_header()
                y = self.table_header(y)
                y = self.forward_line(y, "brought", running)
            else:
                y = self.table_header(y)
            for row in page_rows:
                y = self.draw_row(row, y)
                running += row.amount
        if closing_alone:
            if rows:
                self.forward_line(y, "carried", running)
            self.new_page()
            y = self.continuation_header()
        self.draw_closing(y + 6)
        self.footer()
        return bytes(self.pdf.output())


def render_pdf(doc: Document, layout: str | Layout) -> bytes:
    """Render an invoice, credit note or claim as a born-digital PDF in the named layout."""
    return _Renderer(doc, get_layout(layout)).render()
