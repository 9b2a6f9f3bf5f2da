"""Template-free header extraction: label lexicons, layout cues and arithmetic pick the values.

Every field gets candidates from three kinds of evidence: a lexicon label with the value to
its right or below it (layout from pypdf text positions), a value shape alone (IBAN with a
valid checksum, VAT id, currency symbol) and, for totals, rows whose numbers add up. The
totals are chosen jointly: a (net, tax, gross) choice with net + tax = gross beats choices
that only have stronger labels. Line items come from `pipelines.extract.lines` and reach the
canonical invoice only when they multiply out and add up to the net total.

A `SupplierHint` carries labels clerks taught for one supplier (learned from a corrected field,
stored as JSON); passed to `extract_pdf(..., hint=)` those labels outrank the lexicon.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from functools import lru_cache
from itertools import product

from rapidfuzz import fuzz, process

from pipelines.canonical import (
    AllowanceCharge,
    DocumentLine,
    DocumentTotals,
    Invoice,
    Party,
    PaymentDetails,
    SourceFormat,
)
from pipelines.extract.lexicon import (
    BUYER_HEADINGS,
    CURRENCY_CODES,
    CURRENCY_NAMES,
    CURRENCY_SYMBOLS,
    FIELDS,
    LEGAL_FORMS,
    SELLER_HEADINGS,
    Label,
    compiled_labels,
    screen,
)
from pipelines.extract.lines import LineItems, extract_lines
from pipelines.extract.numbers import find_amounts, find_dates, looks_month_first
from pipelines.extract.text import Cell, Line, PdfText, read_pdf_text
from pipelines.parsers.common import line_kind

Value = str | date | Decimal

AMOUNT_FIELDS = ("net_total", "tax_total", "gross_total")


@dataclass(frozen=True)
class ExtractedField:
    """One header value with its confidence in [0, 1] and where it was read."""

    value: Value
    confidence: float
    page: int
    span: str  # the text the value was read from
    label: str | None = None  # the printed label that announced it, if any


HINT_VERSION = 1
_MAX_HINT_LABELS = 100  # a hint is per supplier; more labels than that is not a layout
_MAX_LABEL_CHARS = 80


@dataclass(frozen=True)
class SupplierHint:
    """What clerks taught us about one supplier: printed label -> field it announces."""

    supplier: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def learn(self, extraction: Extraction, field_name: str, value: Value | str) -> SupplierHint:
        """Return a hint that also knows the label printed next to a corrected value.

        `value` is what the clerk entered: the printed text, or the canonical value (a date or
        an ISO date string, a Decimal or "1234.56"), which is found in its printed form.
        """
        if field_name not in FIELDS:
            return self
        label = extraction.label_near(value)
        if label is None or len(label) > _MAX_LABEL_CHARS:
            return self
        if len(self.labels) >= _MAX_HINT_LABELS and label not in self.labels:
            return self
        return SupplierHint(self.supplier, {**self.labels, label: field_name})

    def to_json(self) -> str:
        """The hint as a JSON text (for a database column), stable key order."""
        return json.dumps(
            {"version": HINT_VERSION, "supplier": self.supplier, "labels": dict(self.labels)},
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> SupplierHint:
        """Read a hint written by `to_json`; ValueError when the text is not such a hint."""
        try:
            raw = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a supplier hint: {exc}") from None
        if not isinstance(raw, dict) or raw.get("version") != HINT_VERSION:
            raise ValueError("not a supplier hint (missing or unknown version)")
        supplier, labels = raw.get("supplier"), raw.get("labels", {})
        if not isinstance(supplier, str) or not isinstance(labels, dict):
            raise ValueError("not a supplier hint (supplier must be text, labels an object)")
        if len(labels) > _MAX_HINT_LABELS:
            raise ValueError(f"a supplier hint holds at most {_MAX_HINT_LABELS} labels")
        for label, name in labels.items():
            if not (isinstance(name, str) and name in FIELDS):
                raise ValueError(f"unknown field {name!r} for label {label!r}")
            if not label.strip() or len(label) > _MAX_LABEL_CHARS:
                raise ValueError(f"a label must be 1 to {_MAX_LABEL_CHARS} characters")
        return cls(supplier, dict(labels))


@dataclass
class Extraction:
    """The extracted header fields of one PDF, and the positioned text they came from."""

    fields: dict[str, ExtractedField]
    lines: tuple[Line, ...] = field(default=(), repr=False)
    items: LineItems = field(default_factory=LineItems)  # the item table, checked or not

    @property
    def lines_consistent(self) -> bool:
        """True when the item lines multiply out and add up to the net total."""
        return self.items.consistent(_dec(self.value("net_total")))

    def value(self, name: str) -> Value | None:
        """The value of a field, or None when it was not found."""
        found = self.fields.get(name)
        return found.value if found else None

    def label_near(self, value: Value | str) -> str | None:
        """The label text printed left of (or above) a value, for learning from corrections."""
        if isinstance(value, str):
            found = self._label_near_text(value)
            if found is not None:
                return found
        typed = _typed(value)
        return self._label_near_typed(typed) if typed is not None else None

    def _label_near_typed(self, typed: date | Decimal) -> str | None:
        """As `label_near`, for a date or amount in whatever form the document prints it."""
        month_first = looks_month_first([line.text for line in self.lines])
        for line in self.lines:
            for cell in line.cells:
                if isinstance(typed, date):
                    found = [d for d in find_dates(cell.text, month_first=month_first)]
                else:
                    found = find_amounts(cell.text)
                for hit in found:
                    if hit.value == typed:
                        return self._label_near_text(hit.text)
        return None

    def _label_near_text(self, value: str) -> str | None:
        target = _squash(value)
        if not target:
            return None
        for index, line in enumerate(self.lines):
            for position, cell in enumerate(line.cells):
                squashed = _squash(cell.text)
                if target not in squashed:
                    continue
                head = cell.text[: max(0, cell.text.find(value.strip()))]
                # A currency printed before an amount ("GBP 120.00") is not its label.
                head = _CODES.sub("", head).strip(" :#€$£")
                if head and not any(ch.isdigit() for ch in head):
                    return head
                if position > 0:
                    return line.cells[position - 1].text.strip(" :#")
                above = _cells_above(self.lines, index, cell)
                if above:
                    return above.text.strip(" :#")
        return None

    def to_invoice(self) -> Invoice:
        """The header and totals as a canonical invoice (no lines), source format PDF."""
        v = self.value
        net, tax, gross = v("net_total"), v("tax_total"), v("gross_total")
        iban = v("iban")
        # Lines only when they hold together: a half-read table would raise false exceptions.
        items = self.items if self.lines_consistent else LineItems()
        return Invoice(
            number=_str(v("invoice_number")),
            issue_date=_date(v("issue_date")),
            due_date=_date(v("due_date")),
            currency=_str(v("currency")),
            supplier=Party(
                name=_str(v("supplier_name")),
                vat_id=_str(v("supplier_vat_id")),
                iban=_str(iban),
            ),
            po_reference=_str(v("po_reference")),
            lines=[
                DocumentLine(
                    line_id=str(number),
                    description=line.description,
                    item_id=line.item_id,
                    quantity=line.quantity,
                    unit_code=line.unit_code,
                    unit_price=line.unit_price,
                    tax_rate=line.tax_rate,
                    line_amount=line.line_amount,
                    kind=line_kind(line.description),  # as the e-invoice readers classify
                )
                for number, line in enumerate(items.lines, start=1)
            ],
            allowance_charges=[
                AllowanceCharge(
                    is_charge=c.is_charge,
                    amount=c.amount,
                    reason=c.reason,
                    reason_code=c.reason_code,
                )
                for c in items.charges
            ],
            totals=DocumentTotals(
                line_extension=items.sums_to,
                allowances=items.allowance_total,
                charges=items.charge_total,
                tax_exclusive=_dec(net),
                tax=_dec(tax),
                tax_inclusive=_dec(gross),
            ),
            payment=PaymentDetails(iban=_str(iban)) if iban else None,
            source_format=SourceFormat.PDF,
        )


def _typed(value: Value | str) -> date | Decimal | None:
    """A clerk's value as a date or amount, when it is one ("2026-03-07", "1190.00")."""
    if isinstance(value, date | Decimal):
        return value
    text = value.strip()
    try:
        return date.fromisoformat(text)
    except ValueError:
        pass
    if re.fullmatch(r"-?\d+(?:\.\d+)?", text):
        return Decimal(text)
    return None


def _str(value: Value | None) -> str | None:
    return value if isinstance(value, str) else None


def _date(value: Value | None) -> date | None:
    return value if isinstance(value, date) else None


def _dec(value: Value | None) -> Decimal | None:
    return value if isinstance(value, Decimal) else None


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text).casefold()


@dataclass(frozen=True)
class _Candidate:
    field: str
    value: Value
    score: float
    page: int
    span: str
    label: str | None = None
    order: int = 0  # line index, for "first in the document" tie-breaks
    at: int = -1  # line index the value itself was read from, when known


def extract_pdf(
    data: bytes,
    *,
    max_pages: int = 50,
    known_suppliers: Sequence[str] = (),
    hint: SupplierHint | None = None,
) -> Extraction:
    """Extract header fields from a born-digital PDF's text layer, without templates."""
    text = read_pdf_text(data, max_pages=max_pages)
    return extract_text(text, known_suppliers=known_suppliers, hint=hint)


def learn_from_pdf(
    data: bytes, hint: SupplierHint, field_name: str, value: Value | str
) -> SupplierHint:
    """`hint.learn` from one corrected field of a PDF: read its text, find the value's label."""
    return hint.learn(extract_pdf(data, hint=hint), field_name, value)


def extract_text(
    text: PdfText, *, known_suppliers: Sequence[str] = (), hint: SupplierHint | None = None
) -> Extraction:
    """Extract header fields from positioned text (see `extract_pdf`)."""
    lines = text.lines
    month_first = looks_month_first([line.text for line in lines])
    labels = compiled_labels(dict(hint.labels) if hint else None)
    candidates: list[_Candidate] = []
    candidates += _labelled(lines, labels, month_first)
    buyer = _Blocks(lines)
    candidates += _shapes(lines, buyer)
    candidates += _row_sums(lines)
    candidates += _first_date(lines, month_first)
    candidates += _suppliers(lines, known_suppliers, buyer)
    chosen: dict[str, ExtractedField] = {}
    by_field: dict[str, list[_Candidate]] = defaultdict(list)
    for c in candidates:
        by_field[c.field].append(c)
    _boost_dates_on_number_line(by_field)
    _drop_dates_taken_by_due_labels(by_field)
    for name in FIELDS:
        if name in AMOUNT_FIELDS:
            continue
        best = _pick(by_field.get(name, []))
        if best is not None:
            chosen[name] = best
    chosen.update(_pick_totals(by_field))
    return Extraction(chosen, lines, extract_lines(lines))


def _boost_dates_on_number_line(by_field: dict[str, list[_Candidate]]) -> None:
    """A date on the line that names the invoice number ("Invoice 12 of 3 May") is its date."""
    numbers = _ranked(by_field.get("invoice_number", []))
    if not numbers:
        return
    best = _key(numbers[0][1].value)
    lines_of_number = {c.order for c in by_field["invoice_number"] if _key(c.value) == best}
    by_field["issue_date"] = [
        replace(c, score=c.score + 0.4) if c.order in lines_of_number else c
        for c in by_field.get("issue_date", [])
    ]


def _drop_dates_taken_by_due_labels(by_field: dict[str, list[_Candidate]]) -> None:
    """An unlabelled "first date" that a due-date label already reads is not the issue date.

    Without this, a document that prints no issue date gets its due date as the issue date.
    """
    taken = {
        (c.at, _key(c.value)) for c in by_field.get("due_date", []) if c.label and c.score >= 0.5
    }
    if taken:
        by_field["issue_date"] = [
            c
            for c in by_field.get("issue_date", [])
            if c.label is not None or (c.order, _key(c.value)) not in taken
        ]


# --- labels and layout -------------------------------------------------------------------


@dataclass(frozen=True)
class _Hit:
    label: Label
    start: int
    end: int
    text: str


# Lexicon matches per cell text: label cells ("Invoice no", "Net Total") repeat across documents.
_HIT_CACHE: dict[str, tuple[_Hit, ...]] = {}


def _hits(text: str, labels: list[Label], any_label: re.Pattern[str] | None = None) -> list[_Hit]:
    """Non-overlapping label matches in a text; longer (then learned, then stronger) wins."""
    # One alternation answers "is there any label here?" in one scan; most cells (values, names,
    # addresses) hold none, and trying ~130 patterns one by one on each was the hot spot.
    if any_label is not None and not any_label.search(text):
        return []
    # Only the lexicon alone is cached: learned labels come last, so the last one tells.
    cacheable = bool(labels) and not labels[-1].learned
    cached = _HIT_CACHE.get(text) if cacheable else None
    if cached is not None:
        return list(cached)
    found = [
        _Hit(label, m.start(), m.end(), m.group(0))
        for label in labels
        for m in label.pattern.finditer(text)
        if m.end() > m.start()
    ]
    found.sort(key=lambda h: (-(h.end - h.start), not h.label.learned, -h.label.weight))
    kept: list[_Hit] = []
    for hit in found:
        if all(hit.end <= k.start or hit.start >= k.end for k in kept):
            kept.append(hit)
    kept.sort(key=lambda h: h.start)
    if cacheable:
        if len(_HIT_CACHE) > 50_000:
            _HIT_CACHE.clear()  # a bound, not an LRU: the cache only saves time
        _HIT_CACHE[text] = tuple(kept)
    return kept


def _cells_above(lines: Sequence[Line], index: int, cell: Cell) -> Cell | None:
    """The nearest cell in the two lines above that spans the cell's left edge."""
    for line in reversed(lines[max(0, index - 2) : index]):
        if line.page != cell.page:
            return None
        for other in line.cells:
            if other.x - 20 <= cell.x <= other.right + 20:
                return other
    return None


def _below(lines: Sequence[Line], index: int, cell: Cell, depth: int = 2) -> list[tuple[int, Cell]]:
    """Cells (with their line index) in the next lines under the label (column layout)."""
    out: list[tuple[int, Cell]] = []
    for k, line in enumerate(lines[index + 1 : index + 1 + depth], start=index + 1):
        if line.page != cell.page or cell.y - line.y > 4 * cell.size:
            break
        for other in line.cells:
            if cell.x - 25 <= other.x <= max(cell.right, cell.x + 60) + 25:
                out.append((k, other))
                break
    return out


def _labelled(lines: Sequence[Line], labels: list[Label], month_first: bool) -> list[_Candidate]:
    """Candidates from lexicon labels: the value after the label, right of it, or below it."""
    out: list[_Candidate] = []
    hits_per_cell: dict[tuple[int, int], list[_Hit]] = {}
    any_label = screen(labels)
    for i, line in enumerate(lines):
        for j, cell in enumerate(line.cells):
            hits_per_cell[(i, j)] = _hits(cell.text, labels, any_label)
    for i, line in enumerate(lines):
        for j, cell in enumerate(line.cells):
            hits = hits_per_cell[(i, j)]
            if len(hits) == 1 and hits[0].start == 0 and _PREFIXED.fullmatch(cell.text.strip()):
                # "PO 00000074" under (or right of) a "PO" label is that label's value, not a
                # label of its own followed by "00000074".
                heads = [line.cells[j - 1] if j else None, _cells_above(lines, i, cell)]
                head_hits = [h for c in heads if c is not None for h in _hits(c.text, labels)]
                if any(h.label.field == hits[0].label.field for h in head_hits):
                    hits_per_cell[(i, j)] = []
    for i, line in enumerate(lines):
        for j, cell in enumerate(line.cells):
            hits = hits_per_cell[(i, j)]
            for k, hit in enumerate(hits):
                if hit.label.field == "_blocker":
                    continue
                stop = hits[k + 1].start if k + 1 < len(hits) else len(cell.text)
                sources: list[tuple[str, float, int, int]] = [
                    (cell.text[hit.end : stop], 1.0, line.page, i)
                ]
                if stop == len(cell.text):
                    for step, nxt in enumerate(line.cells[j + 1 : j + 3]):
                        nxt_hits = hits_per_cell[(i, j + 1 + step)]
                        # A cell opening with another label ends the search, unless that label
                        # names the same field: then it is the value's prefix ("PO 00000037").
                        if (
                            nxt_hits
                            and nxt_hits[0].start < 3
                            and nxt_hits[0].label.field != hit.label.field
                        ):
                            break
                        sources.append((nxt.text, 0.95 - 0.3 * step, line.page, i))
                    # Weak, generic labels ("date", "invoice") look below only as column heads.
                    before, after = cell.text[: hit.start], cell.text[hit.end :]
                    alone = not before.strip(" :#") and not after.strip(" :#")
                    if hit.label.weight >= 0.6 or alone:
                        for step, (row, below) in enumerate(_below(lines, i, cell)):
                            sources.append((below.text, 0.8 - 0.25 * step, below.page, row))
                for source, factor, page, at in sources:
                    parsed = _parse(hit.label.field, source, month_first)
                    for value, span, quality in parsed:
                        out.append(
                            _Candidate(
                                hit.label.field,
                                value,
                                hit.label.weight * factor * quality,
                                page,
                                span,
                                hit.text,
                                i,
                                at,
                            )
                        )
                    if parsed:
                        break  # the nearest source with a value wins; farther ones are guesses
    return out


_FILLER = re.compile(
    r"^[\s:.#°º\-\u2013]*(?:(?:n[°ºo]|nr|no|num(?:ber|éro|mero)?|id)\.?[\s:#]*)?", re.IGNORECASE
)
# Text layers without spaces glue the date to the number: "R8765vom06.08.2018".
_GLUED = re.compile(r"(.*?\d)(?:vom|von|du|of|dated)\d{1,2}[./]\d{1,2}[./]\d{2,4}$")
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9/_.\-]*[A-Za-z0-9]|\d")
_PREFIXED = re.compile(r"[A-Z]{1,4} \d[A-Za-z0-9/_.\-]*[A-Za-z0-9]")
_BASE = re.compile(r"(?:\bon|\bauf|\bsur|\bof)\s*[€$£]?\s*-?\d[\d.,' ]*\s*(?:€|eur)?", re.I)
_WORDS = {"page", "seite", "date", "datum", "summary", "details", "du", "vom", "von", "de"}


def _parse(name: str, source: str, month_first: bool) -> list[tuple[Value, str, float]]:
    """Values of one field's type at the start of a source text: (value, span, quality)."""
    text = source.strip()
    if not text:
        return []
    if name in ("issue_date", "due_date"):
        dates = find_dates(text, month_first=month_first)
        # Only a date that starts the source (after a few words at most) is the label's value.
        return [
            (d.value, d.text, 1.0 if d.start < 4 else 0.7)
            for d in dates[:1]
            if isinstance(d.value, date) and d.start < 30
        ]
    if name in AMOUNT_FIELDS:
        cleaned = _BASE.sub(" ", text)
        for d in find_dates(cleaned):
            cleaned = cleaned[: d.start] + " " * (d.end - d.start) + cleaned[d.end :]
        amounts = find_amounts(cleaned)
        if not amounts:
            return []
        out: list[tuple[Value, str, float]] = []
        first, last = amounts[0], amounts[-1]
        decimals = 1.0 if re.search(r"[.,]\d{2}$", first.text) else 0.6
        out.append((first.value, first.text, decimals))  # type: ignore[arg-type]
        if last is not first:
            out.append((last.value, last.text, 0.85))  # type: ignore[arg-type]
        return out
    if name in ("invoice_number", "po_reference"):
        rest = _FILLER.sub("", text)
        prefixed = _PREFIXED.fullmatch(rest)
        if prefixed:
            # A short capital prefix set apart from the digits ("PO 00000037") is one value.
            return [(prefixed.group(0), prefixed.group(0), 1.0)]
        m = _TOKEN.match(rest)
        if not m:
            return []
        token = m.group(0)
        glued = _GLUED.match(token)
        if glued and any(ch.isalpha() for ch in token):
            token = glued.group(1)
        if (
            not any(ch.isdigit() for ch in token)
            or len(token) > 40
            or token.casefold() in _WORDS
            or (find_dates(token) and find_dates(token)[0].text == token)
            or re.fullmatch(r"\d{1,2}", token)
        ):
            return []
        return [(token, token, 1.0)]
    if name == "currency":
        code = _currency_in(text[:25])
        return [(code, text[:25], 1.0)] if code else []
    if name == "supplier_vat_id":
        vats = _vat_matches(text[:40])
        return [(_squash(vats[0].group(0)).upper(), vats[0].group(0), 1.0)] if vats else []
    if name == "iban":
        found = _iban_in(text)
        return [(found, found, 1.0)] if found else []
    if name == "supplier_name":
        name_text = re.split(r"\s{2,}|\s[|·●•]\s", text)[0].strip(" :,")
        if len(name_text) >= 2 and sum(ch.isalpha() for ch in name_text) >= 2:
            return [(name_text, name_text, 1.0)]
    return []


# --- value shapes ------------------------------------------------------------------------

_EU = "AT|BE|BG|CY|CZ|DE|DK|EE|EL|ES|FI|FR|GB|HR|HU|IE|IT|LT|LU|LV|MT|NL|PL|PT|RO|SE|SI|SK|CH|NO"
_VAT = re.compile(rf"(?<![A-Z0-9])(?:{_EU})[ ]?(?:[0-9A-Z][ ]?){{7,12}}[0-9A-Z](?![A-Z0-9])")
_IBAN = re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,32}")


def _vat_matches(text: str) -> list[re.Match[str]]:
    """VAT-id shapes with enough digits to be one (not "DE PAIEMENT")."""
    return [m for m in _VAT.finditer(text) if sum(ch.isdigit() for ch in m.group(0)) >= 8]


def _iban_valid(iban: str) -> bool:
    if not 15 <= len(iban) <= 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    moved = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def _iban_in(text: str) -> str | None:
    for m in _IBAN.finditer(text.upper()):
        raw = m.group(0).replace(" ", "")
        # The pattern may run into the next word ("... BIC"); the longest valid prefix wins.
        for end in range(len(raw), 14, -1):
            if _iban_valid(raw[:end]):
                return raw[:end]
    return None


_CODES = re.compile(rf"(?<![A-Za-z])({'|'.join(CURRENCY_CODES)})(?![A-Za-z])")


def _currency_in(text: str) -> str | None:
    m = _CODES.search(text)
    if m:
        return m.group(1)
    for symbol, code in CURRENCY_SYMBOLS.items():
        if symbol == "rs":
            if re.search(r"(?<![A-Za-z])rs\.?\s?-?\d", text, re.I):
                return code
        elif symbol in text:
            return code
    for word, code in CURRENCY_NAMES.items():
        if re.search(rf"(?<![A-Za-z]){word}(?![A-Za-z])", text, re.I):
            return code
    return None


def _shapes(lines: Sequence[Line], buyer: _Blocks) -> list[_Candidate]:
    """Candidates from value shapes alone: IBANs, VAT ids, currencies next to amounts."""
    out: list[_Candidate] = []
    for i, line in enumerate(lines):
        joined = line.text
        iban = _iban_in(joined)
        if iban is None and i + 1 < len(lines):
            # IBANs wrap onto the next line in narrow footer columns.
            iban = _iban_in(joined + " " + lines[i + 1].text)
        if iban and not re.search(r"\*{3}", joined):
            out.append(_Candidate("iban", iban, 0.6, line.page, iban, None, i))
        if not buyer.holds_line(i, line) and not re.search(
            r"client|kunde|klant|customer|buyer|uw\s", joined, re.I
        ):
            for m in _vat_matches(joined):
                vat = _squash(m.group(0)).upper()
                if (iban and vat in iban) or sum(ch.isdigit() for ch in vat) < 8:
                    continue
                out.append(_Candidate("supplier_vat_id", vat, 0.3, line.page, m.group(0), None, i))
        for cell in line.cells:
            if find_amounts(cell.text) or re.search(_TOTALISH, joined, re.I):
                code = _currency_in(cell.text)
                if code:
                    out.append(_Candidate("currency", code, 0.15, line.page, cell.text, None, i))
        for m in _CODES.finditer(joined):
            out.append(_Candidate("currency", m.group(1), 0.12, line.page, joined[:60], None, i))
    return out


_TOTALISH = r"total|totaal|summe|montant|betrag|bedrag|amount"


def _row_sums(lines: Sequence[Line]) -> list[_Candidate]:
    """Rows printing net, tax and gross side by side (a VAT summary) where net + tax = gross.

    A VAT summary has one row per rate and a sum row; the sum row has the largest gross.
    """
    out: list[_Candidate] = []
    for i, line in enumerate(lines):
        amounts = [
            a.value
            for a in find_amounts(line.text)
            if isinstance(a.value, Decimal) and re.search(r"[.,]\d{2}$", a.text)
        ]
        for a, b, c in zip(amounts, amounts[1:], amounts[2:], strict=False):
            if a + b == c and c != 0 and abs(b) < abs(a):
                for name, value in zip(AMOUNT_FIELDS, (a, b, c), strict=True):
                    out.append(_Candidate(name, value, 0.5, line.page, line.text[:80], None, i))
    if out:
        top = max(
            abs(c.value) for c in out if c.field == "gross_total" and isinstance(c.value, Decimal)
        )
        sum_rows = {c.order for c in out if c.field == "gross_total" and c.value == top}
        out = [replace(c, score=c.score + 0.15) if c.order in sum_rows else c for c in out]
    return out


def _first_date(lines: Sequence[Line], month_first: bool) -> list[_Candidate]:
    """The first dates printed are often the issue date when no label says so."""
    out: list[_Candidate] = []
    for i, line in enumerate(lines[:40]):
        for d in find_dates(line.text, month_first=month_first)[:1]:
            if isinstance(d.value, date):
                out.append(
                    _Candidate("issue_date", d.value, 0.25 - 0.005 * i, line.page, d.text, None, i)
                )
    return out


# --- supplier name -----------------------------------------------------------------------

# "GMBH" also glued to the name: some text layers drop the spaces of capitalised lines.
_LEGAL = re.compile(rf"(?:(?<![^\W\d_])(?:{LEGAL_FORMS})|GMBH)(?![^\W\d_])\.?\s*$")
_SELLER = re.compile(rf"(?<![^\W\d_])(?:{SELLER_HEADINGS})(?![^\W\d_])", re.IGNORECASE)
_BUYER = re.compile(rf"(?<![^\W\d_])(?:{BUYER_HEADINGS})(?![^\W\d_])", re.IGNORECASE)
_SENDER_SEP = re.compile(r"\s+[-\u2013·●•|]\s+|\s*[·●•|]\s*")
_TITLES = re.compile(
    r"^(?:invoice|rechnung|facture|factuur|avoir|credit note|gutschrift|date|datum|page|seite)\b",
    re.IGNORECASE,
)


# Postcodes in a one-line sender address: DE/FR/NL digits, or UK "LS3 4BT" / "PH66 9TF".
_POSTCODE = re.compile(r"\d{4,5}|\b[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b")


class _Blocks:
    """Cells under a buyer (or other non-seller) heading: same column, the next few lines."""

    def __init__(self, lines: Sequence[Line]) -> None:
        self.heads: list[tuple[int, int, float]] = []  # line index, page, x of the heading
        for i, line in enumerate(lines):
            for cell in line.cells:
                if _BUYER.search(cell.text) and len(cell.text) < 40:
                    self.heads.append((i, line.page, cell.x))

    def holds(self, index: int, cell: Cell) -> bool:
        """True when the cell sits in a block headed by a buyer heading."""
        return any(
            0 <= index - i <= 6 and page == cell.page and abs(cell.x - x) <= 40
            for i, page, x in self.heads
        )

    def holds_line(self, index: int, line: Line) -> bool:
        """True when any cell of the line sits in a buyer block."""
        return any(self.holds(index, cell) for cell in line.cells)


def _clean_name(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip(" ,:;-\u2013")


class _KnownNames:
    """Vendor-master names, squashed once, fuzzily matched against printed texts in C loops."""

    CUTOFF = 88

    def __init__(self, known: Sequence[str]) -> None:
        self.names = [name for name in known if name.strip()]
        self.squashed = [_squash(name) for name in self.names]
        by_length: dict[int, list[int]] = defaultdict(list)
        for index, squashed in enumerate(self.squashed):
            by_length[len(squashed)].append(index)
        self.by_length = {n: (idx, [self.squashed[k] for k in idx]) for n, idx in by_length.items()}

    def matches(self, text: str, segments: Sequence[str]) -> list[tuple[str, float]]:
        """Known names (with the best ratio) matching the text, a segment or the text's start."""
        if not self.names:
            return []
        whole = _squash(text)
        best: dict[int, float] = {}
        for variant in [whole, *(_squash(s) for s in segments)]:
            for _, score, k in process.extract(
                variant, self.squashed, scorer=fuzz.ratio, score_cutoff=self.CUTOFF, limit=None
            ):
                best[k] = max(best.get(k, 0.0), score)
        # The name may run on into the address in one cell: compare with the text's start.
        for length, (indices, names) in self.by_length.items():
            if len(whole) <= length:
                continue
            for _, score, pos in process.extract(
                whole[:length], names, scorer=fuzz.ratio, score_cutoff=self.CUTOFF, limit=None
            ):
                k = indices[pos]
                best[k] = max(best.get(k, 0.0), score)
        return [(self.names[k], score) for k, score in sorted(best.items())]


@lru_cache(maxsize=4)
def _known_names(known: tuple[str, ...]) -> _KnownNames:
    # One vendor master serves many documents: squash and index its names once.
    return _KnownNames(known)


def _suppliers(lines: Sequence[Line], known: Sequence[str], buyer: _Blocks) -> list[_Candidate]:
    out: list[_Candidate] = []
    known_index = _known_names(tuple(known))
    seller_block: set[int] = set()
    for i, line in enumerate(lines):
        if any(_SELLER.match(c.text) and len(c.text) < 40 for c in line.cells):
            seller_block.update(k for k in range(i, i + 5) if k < len(lines))
    for i, line in enumerate(lines):
        for position, cell in enumerate(line.cells):
            in_buyer = buyer.holds(i, cell) and i not in seller_block
            text = _clean_name(cell.text)
            if position and _LEGAL.fullmatch(text):
                # A legal form set apart from the name ("MUSTERLIEFERANT   GMBH").
                text = _clean_name(line.cells[position - 1].text + " " + text)
            segments = [_clean_name(s) for s in _SENDER_SEP.split(text) if s.strip()]
            for name, best in known_index.matches(text, segments):
                # Master data spells the name as the ERP knows it: that beats the print.
                score = 0.3 + best / 100 - (0.6 if in_buyer else 0)
                out.append(_Candidate("supplier_name", name, score, line.page, text, None, i))
            if len(segments) >= 3 and _POSTCODE.search(text) and i < 60:
                first = segments[0]
                if 2 <= len(first) <= 60 and not re.search(r"\d{3,}|:", first):
                    out.append(_Candidate("supplier_name", first, 0.9, line.page, text, None, i))
            if i in seller_block and cell is line.cells[0]:
                m = re.match(
                    r"(?:name|nom|firma)\s*:\s*(.+)", _clean_name(line.text), re.IGNORECASE
                )
                if m:
                    out.append(
                        _Candidate(
                            "supplier_name",
                            _clean_name(m.group(1)),
                            1.0,
                            line.page,
                            text,
                            "Name",
                            i,
                        )
                    )
            if (
                _LEGAL.search(text)
                and len(text) <= 60
                and len(text.split()) <= 7
                and not in_buyer
                and not _TITLES.match(text)
                and not re.search(r"\d{3,}|:", text)
            ):
                near_ids = any(
                    _vat_matches(other.text) or _iban_in(other.text) or "www." in other.text
                    for other_line in lines[i : i + 8]
                    if other_line.page == line.page
                    for other in other_line.cells
                    if abs(other.x - cell.x) < 40
                )
                score = 0.5 + (0.2 if near_ids else 0) + (0.1 if i in seller_block else 0)
                out.append(_Candidate("supplier_name", text, score, line.page, text, None, i))
    out += _vat_block_heads(lines, buyer)
    out += _domain_names(lines, buyer)
    first_page = [(i, line) for i, line in enumerate(lines) if line.page == 0][:3]
    for i, line in first_page:
        cell = line.cells[0]
        text = _clean_name(cell.text)
        if (
            not buyer.holds(i, cell)
            and not _TITLES.match(text)
            and sum(c.isalpha() for c in text) >= 3
            and not find_dates(text)
            and not re.search(r"\d{3,}", text)
        ):
            out.append(_Candidate("supplier_name", text, 0.3 - 0.05 * i, line.page, text, None, i))
    return out


# Host names shared by many senders say nothing about who the seller is.
_SHARED_HOSTS = frozenset(
    [
        "localhost",
        "example",
        "gmail",
        "googlemail",
        "yahoo",
        "hotmail",
        "outlook",
        "live",
        "icloud",
        "gmx",
        "web",
        "t-online",
        "orange",
        "free",
        "wanadoo",
        "aol",
        "protonmail",
        "mail",
    ]
)
_HOST = re.compile(r"(?:[\w.+-]+@|https?://|www\.)((?:[a-z0-9-]+\.)+[a-z]{2,6})\b", re.IGNORECASE)
_CUSTOMERISH = re.compile(r"client|kunde|klant|customer|buyer|acheteur|käufer", re.IGNORECASE)


def _seller_domains(lines: Sequence[Line], buyer: _Blocks) -> set[str]:
    """Second-level names of the email and web hosts printed near the seller's VAT id.

    The seller's footer or letterhead carries its VAT id and its own email or web address;
    the buyer's VAT id is labelled (client, customer) or sits in the buyer block.
    """
    rows = {
        i
        for i, line in enumerate(lines)
        if _vat_matches(line.text)
        and not buyer.holds_line(i, line)
        and not _CUSTOMERISH.search(line.text)
    }
    out: set[str] = set()
    for i in rows:
        for k in range(max(0, i - 2), min(len(lines), i + 3)):
            if lines[k].page != lines[i].page or buyer.holds_line(k, lines[k]):
                continue
            for m in _HOST.finditer(lines[k].text):
                parts = m.group(1).casefold().removeprefix("www.").split(".")
                name = parts[-2] if len(parts) >= 2 else parts[0]
                if len(name) >= 4 and name not in _SHARED_HOSTS:
                    out.add(name.replace("-", ""))
    return out


def _domain_names(lines: Sequence[Line], buyer: _Blocks) -> list[_Candidate]:
    """A name-like cell that spells the seller's own domain ("CRONUS DE" by cronus.com)."""
    domains = _seller_domains(lines, buyer)
    if not domains:
        return []
    out: list[_Candidate] = []
    for i, line in enumerate(lines):
        for cell in line.cells:
            if buyer.holds(i, cell):
                continue
            cell = _with_legal_form(line, cell)  # noqa: PLW2901 - the name with its legal form
            segments = [s for s in _SENDER_SEP.split(_clean_name(cell.text)) if s.strip()]
            if not segments:
                continue
            text = _clean_name(segments[0])
            squashed = re.sub(r"[^\w]", "", text.casefold())
            if (
                len(text) > 60
                or len(text.split()) > 7
                or sum(ch.isalpha() for ch in text) < 3
                or re.search(r"\d{3,}|@|www\.|https?:|:", text)
                or _TITLES.match(text)
                or not any(squashed.startswith(d) for d in domains)
            ):
                continue
            out.append(_Candidate("supplier_name", text, 0.8, line.page, cell.text, None, i))
    return out


def _with_legal_form(line: Line, cell: Cell) -> Cell:
    """The cell, joined with the next one when that holds only a legal form ("GMBH")."""
    cells = list(line.cells)
    index = cells.index(cell)
    if index + 1 < len(cells) and _LEGAL.fullmatch(_clean_name(cells[index + 1].text)):
        return Cell(cell.page, cell.x, cell.y, cell.text + " " + cells[index + 1].text, cell.size)
    return cell


def _vat_block_heads(lines: Sequence[Line], buyer: _Blocks) -> list[_Candidate]:
    """The first name-like line of the address block holding a VAT id is the company name."""
    out: list[_Candidate] = []
    labels = compiled_labels()
    for i, line in enumerate(lines):
        for cell in line.cells:
            if (
                buyer.holds(i, cell)
                or not _vat_matches(cell.text)
                or re.search(r"client|kunde|klant|customer|iban", cell.text, re.I)
                or re.search(r"[A-Z]{2}\d{2}(?: [A-Z0-9]{4}){2,}", cell.text)  # a grouped IBAN
            ):
                continue
            block: list[tuple[int, Cell]] = []
            top = cell
            for k in range(i - 1, max(-1, i - 25), -1):
                above = lines[k]
                if above.page != line.page or above.y - top.y > 2.5 * top.size:
                    break
                # Lines of a neighbouring column interleave; only this column's cells count.
                match = next((c for c in above.cells if abs(c.x - cell.x) <= 5), None)
                if match is not None:
                    block.append((k, _with_legal_form(above, match)))
                    top = match
            for k, head in reversed(block):
                text = _clean_name(head.text)
                segments = [s for s in _SENDER_SEP.split(text) if s.strip()]
                if len(segments) >= 3:
                    # A one-line sender address above the window: its first part is the name.
                    text = _clean_name(segments[0])
                if (
                    not buyer.holds(k, head)
                    and ":" not in text
                    and not _TITLES.match(text)
                    and not _SELLER.fullmatch(text)
                    and not any(h.label.weight >= 0.6 for h in _hits(text, labels))
                    and not re.search(r"\d{3,}|@|www\.|https?:", text)
                    and sum(ch.isalpha() for ch in text) >= 2
                ):
                    out.append(_Candidate("supplier_name", text, 0.7, head.page, text, None, k))
                    break
    return out


# --- choosing ----------------------------------------------------------------------------


def _key(value: Value) -> object:
    return _squash(value) if isinstance(value, str) else value


def _ranked(cands: list[_Candidate]) -> list[tuple[float, _Candidate]]:
    """Candidates grouped by value: best score plus a little for each repeat, best first."""
    groups: dict[object, list[_Candidate]] = defaultdict(list)
    for c in cands:
        groups[_key(c.value)].append(c)
    ranked: list[tuple[float, _Candidate]] = []
    for members in groups.values():
        best = max(members, key=lambda c: (c.score, -c.order))
        if best.field == "currency":
            # Currency evidence is many weak hints (symbols, codes by amounts) that add up.
            miss = 1.0
            for c in members:
                miss *= 1.0 - min(c.score, 0.95)
            score = 1.0 - miss
        else:
            score = best.score + min(0.2, 0.05 * (len(members) - 1))
        ranked.append((score, best))
    ranked.sort(key=lambda pair: (-pair[0], pair[1].order))
    return ranked


def _confidence(best: float, runner_up: float) -> float:
    margin = (best - runner_up) / best if best > 0 else 0.0
    return round(max(0.0, min(1.0, min(best, 1.0) * (0.6 + 0.4 * margin))), 3)


def _as_field(c: _Candidate, confidence: float) -> ExtractedField:
    return ExtractedField(c.value, confidence, c.page, c.span, c.label)


def _pick(cands: list[_Candidate]) -> ExtractedField | None:
    ranked = _ranked(cands)
    if not ranked or ranked[0][0] <= 0:
        return None
    runner_up = ranked[1][0] if len(ranked) > 1 else 0.0
    return _as_field(ranked[0][1], _confidence(ranked[0][0], runner_up))


def _pick_totals(by_field: Mapping[str, list[_Candidate]]) -> dict[str, ExtractedField]:
    """Choose net, tax and gross together; combinations where net + tax = gross win."""
    options: list[list[tuple[float, _Candidate | None]]] = []
    for name in AMOUNT_FIELDS:
        ranked = _ranked(by_field.get(name, []))[:6]
        options.append([*ranked, (0.0, None)])
    best_total = -1.0
    best: tuple[tuple[float, _Candidate | None], ...] | None = None
    scores: list[float] = []
    for combo in product(*options):
        (sn, n), (st, t), (sg, g) = combo
        total = sn + st + sg
        values = [c.value if c else None for c in (n, t, g)]
        nv, tv, gv = (v if isinstance(v, Decimal) else None for v in values)
        if nv is not None and tv is not None and gv is not None:
            total += 1.5 if nv + tv == gv else -0.5
        elif nv is not None and gv is not None:
            if nv > gv > 0:
                total -= 0.5
            elif nv == gv:
                total += 0.2
        if tv is not None and gv is not None and abs(tv) > abs(gv):
            total -= 1.0
        scores.append(total)
        if total > best_total:
            best_total, best = total, combo
    out: dict[str, ExtractedField] = {}
    if best is None:
        return out
    chosen = dict(zip(AMOUNT_FIELDS, best, strict=True))
    picked = [c.value if c is not None else None for _, c in best]
    amounts = [v for v in picked if isinstance(v, Decimal)]
    consistent = len(amounts) == 3 and amounts[0] + amounts[1] == amounts[2]
    ordered = sorted(scores, reverse=True)
    runner_up = ordered[1] if len(ordered) > 1 else 0.0
    margin = 0.0 if best_total <= 0 else max(0.0, (best_total - runner_up) / best_total)
    for name, (score, cand) in chosen.items():
        if cand is None:
            continue
        conf = min(1.0, score) * (0.6 + 0.4 * margin)
        if consistent:
            conf = min(1.0, conf + 0.3)
        out[name] = _as_field(cand, round(conf, 3))
    _derive(out)
    return out


def _derive(out: dict[str, ExtractedField]) -> None:
    """Fill the third total from the other two; with only a gross, assume no tax (low trust)."""
    net, tax, gross = (out.get(k) for k in AMOUNT_FIELDS)

    def amount(f: ExtractedField | None) -> Decimal | None:
        return f.value if f is not None and isinstance(f.value, Decimal) else None

    n, t, g = amount(net), amount(tax), amount(gross)
    if g is not None and t is not None and n is None and gross and tax:
        out["net_total"] = ExtractedField(
            g - t, min(gross.confidence, tax.confidence) * 0.8, gross.page, "gross - tax"
        )
    elif g is not None and n is not None and t is None and gross and net and n <= g:
        out["tax_total"] = ExtractedField(
            g - n, min(gross.confidence, net.confidence) * 0.8, gross.page, "gross - net"
        )
    elif n is not None and t is not None and g is None and net and tax:
        out["gross_total"] = ExtractedField(
            n + t, min(net.confidence, tax.confidence) * 0.8, net.page, "net + tax"
        )
    elif g is not None and n is None and t is None and gross:
        out["net_total"] = ExtractedField(
            g, gross.confidence * 0.3, gross.page, "gross, no tax printed"
        )
        out["tax_total"] = ExtractedField(
            Decimal(0), gross.confidence * 0.3, gross.page, "no tax printed"
        )
