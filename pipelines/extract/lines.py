"""Line items from a PDF's positioned text: a column-head row, then rows that add up.

No templates: a table starts at a row of column heads (a quantity head and a price or amount
head, in EN/DE/FR/NL) and ends at the first totals label. In each row between, the rightmost
number is the line amount and two other numbers whose product equals it (to the cent) are the
quantity and the unit price; which is which follows the column heads where they say so, else
the price is the one with decimals. A number printed as `2.126` may be a quantity with a
thousands mark or a decimal one: both readings are tried and the arithmetic decides. The text
left in the row is the description; text-only rows under it continue it.

The result is consistent when every row added up and the amounts sum to the net total; only
then does the canonical document carry the lines.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from itertools import permutations

from pipelines.extract.lexicon import Label, compiled_labels, screen
from pipelines.extract.numbers import find_amounts, find_dates
from pipelines.extract.text import Line

CENT = Decimal("0.01")

_QTY_HEAD = re.compile(
    r"\b(?:qty|quantity|quantit[ée]|qt[ée]|menge|anzahl|aantal|hoeveelheid|stück|units?)\b",
    re.IGNORECASE,
)
_PRICE_HEAD = re.compile(
    r"unit\s*price|price|rate|einzelpreis|preis|stückpreis|p\.\s*u\.|prix|prijs|tarif",
    re.IGNORECASE,
)
_AMOUNT_HEAD = re.compile(
    r"amount|total|betrag|gesamt(?:preis)?|montant|bedrag|totaal|summe", re.IGNORECASE
)
_DESC_HEAD = re.compile(
    r"description|bezeichnung|beschreibung|d[ée]signation|libell[ée]|omschrijving|"
    r"leistung|artikelbezeichnung|product|produkt|item",
    re.IGNORECASE,
)
# Units printed after a quantity, mapped to UN/ECE Rec 20 codes (others stay "C62", one).
_UNITS = {
    "pcs": "C62",
    "pc": "C62",
    "pce": "C62",
    "piece": "C62",
    "pieces": "C62",
    "stk": "C62",
    "stck": "C62",
    "st": "C62",
    "ea": "EA",
    "each": "C62",
    "unit(s)": "C62",
    "kg": "KGM",
    "t": "TNE",
    "mm": "MMT",
    "cm": "CMT",
    "km": "KMT",
    "m²": "MTK",
    "m2": "MTK",
    "m³": "MTQ",
    "m3": "MTQ",
    "ml": "MLT",
    "g": "GRM",
    "l": "LTR",
    "ltr": "LTR",
    "liter": "LTR",
    "litre": "LTR",
    "m": "MTR",
    "h": "HUR",
    "hr": "HUR",
    "hrs": "HUR",
    "hour": "HUR",
    "hours": "HUR",
    "std": "HUR",
    "stunden": "HUR",
    "heure": "HUR",
    "heures": "HUR",
    "day": "DAY",
    "days": "DAY",
    "tag": "DAY",
    "tage": "DAY",
    "jour": "DAY",
    "jours": "DAY",
    "u": "EA",
    "set": "SET",
    "satz": "SET",
    "lot": "SET",
    "box": "XBX",
    "karton": "XBX",
    "carton": "XBX",
    "pair": "PR",
    "paar": "PR",
    "paire": "PR",
    "kwh": "KWH",
    "pauschal": "LS",
    "forfait": "LS",
}
_UNIT_HEAD = re.compile(r"unit|unit[ée]|einheit|me|eenheid|uom", re.IGNORECASE)
# A unit printed as its UN/ECE Rec 20 code ("DZN", "CT", "C62") is taken as it stands.
_REC20 = re.compile(r"[A-Z][A-Z0-9]{1,2}")
# A whole head cell naming the seller's item number ("SKU", "Art.-Nr.", "Réf.", "No.").
_ITEM_HEAD = re.compile(
    r"sku|artikel(?:-?\s*nr\.?)?|art\.?-?\s*nr\.?|r[ée]f\.?|r[ée]f[ée]rence|item\s*(?:no\.?|code|#)|"
    r"article\s*(?:no\.?|code)?|(?:product\s*)?code|no\.|nr\.|artikelnummer",
    re.IGNORECASE,
)
_ITEM_ID = re.compile(r"[A-Za-z0-9][\w./-]*")
_UNIT_WORD = re.compile(r"\s*([A-Z][A-Z0-9]{1,2}(?![\w])|[A-Za-zÀ-ÿ]{1,8}[²³23]?\.?(?:\(s\))?)")
_PERCENT = re.compile(r"-?\d{1,2}(?:[.,]\d{1,2})?\s*%")
_SUBTOTAL = re.compile(
    r"sub\s*-?\s*total|summe\s*positionen|zwischensumme|sous[- ]total|subtotaal|"
    r"positionen\s*netto|warenwert|total\s*(?:des\s*)?(?:lines|lignes|articles)",
    re.IGNORECASE,
)
_FREIGHT = re.compile(
    r"freight|shipping|delivery|carriage|fracht|versand|transport|frais\s*de\s*port|port|"
    r"vracht|verzend",
    re.IGNORECASE,
)
_CHARGE = re.compile(
    r"surcharge|zuschlag|aufschlag|packaging|verpackung|handling|frais|toeslag|charge",
    re.IGNORECASE,
)
_ALLOWANCE = re.compile(
    r"discount|rabatt|nachlass|skonto|remise|escompte|r[ée]duction|korting|abzug|allowance",
    re.IGNORECASE,
)
_AMOUNT_FIELDS = ("net_total", "tax_total", "gross_total")


@dataclass(frozen=True)
class ExtractedLine:
    """One invoice line read from the text: what, how many, at what price, for how much."""

    description: str | None
    item_id: str | None  # the seller's item number, under an item-number column head
    quantity: Decimal
    unit_price: Decimal
    line_amount: Decimal
    unit_code: str
    tax_rate: Decimal | None
    page: int
    span: str  # the row's text


@dataclass(frozen=True)
class ExtractedCharge:
    """A document-level charge (freight) or allowance (discount) printed under the lines."""

    is_charge: bool
    amount: Decimal  # positive
    reason: str
    reason_code: str | None  # UNCL7161 "FC" for freight, else None
    page: int
    span: str


@dataclass(frozen=True)
class LineItems:
    """The lines of a document's item table and whether they hold together."""

    lines: tuple[ExtractedLine, ...] = ()
    rows_add_up: bool = False  # every row in the table gave quantity x price = amount
    sums_to: Decimal | None = None  # the sum of the line amounts
    charges: tuple[ExtractedCharge, ...] = ()  # between the lines and the net total

    @property
    def allowance_total(self) -> Decimal:
        """Sum of the document-level allowances."""
        return sum((c.amount for c in self.charges if not c.is_charge), Decimal(0))

    @property
    def charge_total(self) -> Decimal:
        """Sum of the document-level charges."""
        return sum((c.amount for c in self.charges if c.is_charge), Decimal(0))

    def consistent(self, net: Decimal | None) -> bool:
        """True when every row added up and lines - allowances + charges = the net total."""
        if not self.lines or not self.rows_add_up or net is None or self.sums_to is None:
            return False
        return self.sums_to - self.allowance_total + self.charge_total == net


@dataclass(frozen=True)
class _Number:
    values: tuple[Decimal, ...]  # every reading: "2.126" is 2126 or 2.126
    cell: int
    start: int
    end: int
    x: float
    decimals: bool  # printed with a two-digit decimal part
    unit: str | None  # a unit word right after it ("16 Stk.")
    alone: bool  # the number (with its unit or currency) is all its cell holds


@dataclass(frozen=True)
class _Columns:
    quantity: float | None
    price: float | None
    description: float | None
    item: float | None = None
    unit: float | None = None


def extract_lines(lines: Sequence[Line]) -> LineItems:
    """The item lines under every column-head row, checked by arithmetic."""
    out: list[ExtractedLine] = []
    all_add_up = True
    index = 0
    found_table = False
    charges: list[ExtractedCharge] = []
    while index < len(lines):
        columns = _header(lines[index])
        if columns is None:
            index += 1
            continue
        found_table = True
        page = lines[index].page
        index += 1
        previous: ExtractedLine | None = None
        previous_x: float | None = None
        last_item = index
        while index < len(lines) and lines[index].page == page and not _is_stop(lines[index]):
            line = lines[index]
            if _header(line) is not None:
                break
            numbers = _numbers(line)
            parsed = _row(line, numbers, columns, len(out) + 1)
            if parsed is not None:
                item, desc_x = parsed
                out.append(item)
                previous, previous_x = item, desc_x
                last_item = index + 1
            elif previous is not None and _continues(line, previous_x):
                text = " ".join(c.text for c in line.cells)
                merged = f"{previous.description} {text}" if previous.description else text
                previous = _replace_description(previous, merged)
                out[-1] = previous
            elif len(numbers) >= 3:
                all_add_up = False  # a row of numbers that do not multiply out
            # Rows with one or two numbers are item details (GTIN, gross price) or sums and
            # charges under the table; neither is an item, and the totals label ends the table.
            index += 1
        charges = _charges(lines, last_item, out)
    if not found_table or not out:
        return LineItems()
    out = [_replace_description(o, (o.description or "").rstrip(" ,;:-") or None) for o in out]
    total = sum((line.line_amount for line in out), Decimal(0))
    return LineItems(tuple(out), all_add_up, total, tuple(charges))


def _charges(
    lines: Sequence[Line], start: int, items: Sequence[ExtractedLine]
) -> list[ExtractedCharge]:
    """Freight, surcharges and discounts printed between the item table and the net total.

    Each such row ends in its amount with its label in the cell before; a VAT summary may
    share the rows on the left, so only the last two cells are read.
    """
    running = sum((line.line_amount for line in items), Decimal(0))
    totals = _total_labels()
    out: list[ExtractedCharge] = []
    for index in range(start, min(len(lines), start + 8)):
        line = lines[index]
        numbers = _numbers(line)
        if not numbers:
            continue
        last = numbers[-1]
        amount = last.values[0]
        cell = line.cells[last.cell]
        label = cell.text[: last.start].strip(" :")
        if not any(ch.isalpha() for ch in label) and last.cell > 0:
            label = line.cells[last.cell - 1].text.strip(" :")
        if _SUBTOTAL.search(label) or amount == running:
            continue
        if not any(ch.isalpha() for ch in label):
            break
        if _ALLOWANCE.search(label) or (amount < 0 and not _FREIGHT.search(label)):
            out.append(ExtractedCharge(False, abs(amount), label, None, line.page, line.text))
        elif any(t.pattern.search(label) for t in totals):
            break  # the net, tax or gross total: nothing more comes between
        elif _FREIGHT.search(label):
            out.append(ExtractedCharge(True, amount, label, "FC", line.page, line.text))
        elif _CHARGE.search(label):
            out.append(ExtractedCharge(True, amount, label, None, line.page, line.text))
        else:
            break
    return out


def _replace_description(line: ExtractedLine, description: str | None) -> ExtractedLine:
    return ExtractedLine(
        description,
        line.item_id,
        line.quantity,
        line.unit_price,
        line.line_amount,
        line.unit_code,
        line.tax_rate,
        line.page,
        line.span,
    )


def _continues(line: Line, desc_x: float | None) -> bool:
    """A row of text under the description column only carries on the description."""
    # "Bruttopreis :9,90" or "GTIN: 4012345001235" under a line is a detail, not its text.
    if desc_x is None or re.search(r"\w\s*:\s*\S", line.text):
        return False
    return all(abs(c.x - desc_x) <= 15 and any(ch.isalpha() for ch in c.text) for c in line.cells)


def _header(line: Line) -> _Columns | None:
    """Column positions when the line is a table's head row, else None."""
    text = line.text
    if not _QTY_HEAD.search(text) or not (_PRICE_HEAD.search(text) or _AMOUNT_HEAD.search(text)):
        return None
    if find_amounts(text) and any(c.isdigit() for c in text[:1]):
        return None
    # Heads in one text run (no cell borders) need all four words to count as a table head.
    if len(line.cells) < 2 and not (
        _DESC_HEAD.search(text) and _PRICE_HEAD.search(text) and _AMOUNT_HEAD.search(text)
    ):
        return None
    if not (_DESC_HEAD.search(text) or len(line.cells) >= 3):
        return None

    def where(pattern: re.Pattern[str]) -> float | None:
        for cell in line.cells:
            m = pattern.search(cell.text)
            if m:
                # Merged heads ("Unit price Quantity") put each head where its words start.
                return cell.x + (m.start() / max(1, len(cell.text))) * (cell.right - cell.x)
        return None

    item = next((c.x for c in line.cells if _ITEM_HEAD.fullmatch(c.text.strip())), None)
    unit = next((c.x for c in line.cells if _UNIT_HEAD.fullmatch(c.text.strip(" ."))), None)
    return _Columns(where(_QTY_HEAD), where(_PRICE_HEAD), where(_DESC_HEAD), item, unit)


@cache
def _total_labels() -> tuple[Label, ...]:
    """The strong labels of the net, tax and gross totals (compiled once per process)."""
    return tuple(
        label
        for label in compiled_labels()
        if label.field in _AMOUNT_FIELDS and label.weight >= 0.6
    )


def _is_stop(line: Line) -> bool:
    """A row printing a totals label (net, tax, gross): the item table ends there."""
    labels = _total_labels()
    if not screen(labels).search(line.text):
        return False
    first = line.cells[0].text if line.cells else ""
    # A row whose first cell is a number is an item row mentioning "total" or "VAT".
    return any(label.pattern.search(c.text) for c in line.cells for label in labels) and (
        not re.match(r"\s*\d", first) or len(line.cells) <= 2
    )


def _numbers(line: Line) -> list[_Number]:
    """Every number in a row (not percentages or dates), with all its readings."""
    out: list[_Number] = []
    for index, cell in enumerate(line.cells):
        text = cell.text
        masked = _PERCENT.sub(lambda m: " " * len(m.group(0)), text)
        for d in find_dates(masked):
            masked = masked[: d.start] + " " * (d.end - d.start) + masked[d.end :]
        width = (cell.right - cell.x) / max(1, len(text))
        for found in find_amounts(masked):
            value = found.value
            if not isinstance(value, Decimal):
                continue
            values = [value]
            raw = found.text.lstrip("-\u2212")
            if re.fullmatch(r"\d{1,3}[.,]\d{3}", raw):
                # Three digits after one mark: thousands ("2.126" = 2126) or decimals (2.126).
                alternative = Decimal(raw.replace(",", "."))
                values.append(-alternative if value < 0 else alternative)
            unit = _UNIT_WORD.match(text, found.end)
            rest = text[: found.start] + text[unit.end() if unit else found.end :]
            unit_text = unit.group(1) if unit else None
            if unit_text is None and not text[found.end :].strip() and index + 1 < len(line.cells):
                # The unit in a column of its own ("5 | kg"), right after the quantity.
                after = _UNIT_WORD.fullmatch(line.cells[index + 1].text)
                # Only a known unit: the next cell may be a description ("3 | Montage").
                unit_text = after.group(1) if after and _known_unit(after.group(1)) else None
            out.append(
                _Number(
                    tuple(values),
                    index,
                    found.start,
                    found.end,
                    cell.x + found.start * width,
                    bool(re.search(r"[.,]\d{2,4}$", found.text)),
                    unit_text,
                    not re.sub(r"[\s€$£]|EUR|GBP|USD|CHF", "", rest),
                )
            )
    return out


def _close(a: Decimal, b: Decimal) -> bool:
    return abs(a - b) <= CENT / 2 or a.quantize(CENT) == b.quantize(CENT)


def _row(
    line: Line, numbers: list[_Number], columns: _Columns, position: int
) -> tuple[ExtractedLine, float | None] | None:
    """One item row: (line, x of its description), or None when no numbers multiply out.

    `position` is the number the row would have in a "Pos." column: printed before the
    description in the same text run, it is dropped from the description.
    """
    if len(numbers) < 3:
        return None
    amount = numbers[-1]
    best: tuple[float, Decimal, Decimal, Decimal, _Number, _Number] | None = None
    for q, p in permutations(numbers[:-1], 2):
        for qv in q.values:
            for pv in p.values:
                for av in amount.values[:1]:
                    if qv <= 0 or not _close(qv * pv, av):
                        continue
                    score = _pair_score(q, p, columns)
                    if best is None or score > best[0]:
                        best = (score, qv, pv, av, q, p)
    if best is None:
        return None
    _, qv, pv, av, q, p = best
    used = {(n.cell, n.start, n.end) for n in (q, p, amount)}
    item_cell = _item_cell(line, columns)
    description, desc_x = _description(line, numbers, used, columns, item_cell)
    if description is not None:
        description = re.sub(rf"^0*{position}\s+(?=\D)", "", description) or description
    rate = _rate(line)
    unit = q.unit or _unit_column(line, columns)
    return (
        ExtractedLine(
            description,
            line.cells[item_cell].text.strip() if item_cell is not None else None,
            qv,
            pv,
            av,
            _unit_code(unit),
            rate,
            line.page,
            line.text[:200],
        ),
        desc_x,
    )


def _known_unit(word: str) -> bool:
    text = word.strip().rstrip(".")
    return bool(_REC20.fullmatch(text)) or text.casefold() in _UNITS


def _unit_code(word: str | None) -> str:
    """The UN/ECE Rec 20 code of a printed unit word; "C62" (one) when unknown or absent."""
    if not word:
        return "C62"
    text = word.strip().rstrip(".")
    if _REC20.fullmatch(text):
        return text
    return _UNITS.get(text.casefold(), "C62")


def _unit_column(line: Line, columns: _Columns) -> str | None:
    """The unit word in the row's cell under a unit column head ("Unité | Qté")."""
    if columns.unit is None:
        return None
    for cell in line.cells:
        if abs(cell.x - columns.unit) <= 15:
            m = _UNIT_WORD.fullmatch(cell.text)
            if m:
                return m.group(1)
    return None


def _item_cell(line: Line, columns: _Columns) -> int | None:
    """The index of the cell under the item-number head holding one id-like token."""
    if columns.item is None:
        return None
    for index, cell in enumerate(line.cells):
        text = cell.text.strip()
        if (
            abs(cell.x - columns.item) <= 15
            and _ITEM_ID.fullmatch(text)
            and any(ch.isdigit() for ch in text)
            and len(text) <= 35
        ):
            return index
    return None


def _pair_score(q: _Number, p: _Number, columns: _Columns) -> float:
    """How well a (quantity, price) pair fits the column heads and the usual print."""
    score = 0.0
    if columns.quantity is not None and columns.price is not None:
        # The heads' order decides: quantity left of price, or (less often) right of it.
        heads_qty_first = columns.quantity < columns.price
        score += 2.0 if (q.x < p.x) == heads_qty_first else -2.0
    elif q.x < p.x:
        score += 0.5
    if columns.quantity is not None:
        # The quantity sits under its head; a position number left of it does not.
        score -= min(1.5, abs(q.x - columns.quantity) / 100)
    if p.decimals:
        score += 1.0
    if q.unit:
        score += 0.5
    if q.cell != p.cell:
        score += 0.3
    # Numbers inside a description ("carton de 5 ramettes") share a cell with words.
    score += 1.0 * q.alone + 1.0 * p.alone
    return score


def _description(
    line: Line,
    numbers: Sequence[_Number],
    used: set[tuple[int, int, int]],
    columns: _Columns,
    item_cell: int | None,
) -> tuple[str | None, float | None]:
    """The text of the row that is not a used number, unit, rate or position number."""
    best: tuple[float, str, float] | None = None
    for index, cell in enumerate(line.cells):
        if index == item_cell:
            continue
        text = cell.text
        # Cut from the first used number on: what follows is quantities, prices and units.
        cut = min(
            (n.start for n in numbers if n.cell == index and (n.cell, n.start, n.end) in used),
            default=len(text),
        )
        text = text[:cut]
        for d in find_dates(text):
            text = text.replace(d.text, " ")
        # Trailing punctuation stays until the row is complete: "Credit for returned goods:"
        # goes on in the next row.
        text = re.sub(r"\s+", " ", text).strip(" ").lstrip(",;:-").strip()
        letters = sum(ch.isalpha() for ch in text)
        if letters < 2:
            continue
        score = float(letters)
        if columns.description is not None and abs(cell.x - columns.description) <= 20:
            score += 1000.0  # the cell under the description head
        if best is None or score > best[0]:
            best = (score, text, cell.x)
    if best is None:
        return None, None
    return best[1], best[2]


def _rate(line: Line) -> Decimal | None:
    """A VAT rate printed in the row ("19 %"), if any."""
    m = _PERCENT.search(line.text)
    if not m:
        return None
    raw = m.group(0).rstrip("% ").replace(",", ".")
    try:
        return Decimal(raw)
    except ArithmeticError:
        return None
