"""Evaluate template-free PDF extraction (`pipelines.extract`) against ground truth.

Two ready sets, both from the public data in ../shared/data:

1. Factur-X / ZUGFeRD PDFs: the extractor reads only the visible text; the truth is the XML
   embedded in the same PDF (read here, never by the extractor).
2. invoice2data: real vendor PDFs with the project's expected JSON.

`evaluate_pdfs` scores any set: per-field exact accuracy and the documents that failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from pypdf import PdfReader
from rapidfuzz import fuzz

from pipelines.canonical import Invoice
from pipelines.extract import extract_pdf
from pipelines.extract.numbers import find_amounts, find_dates
from pipelines.extract.text import Line
from pipelines.parsers.cii import read_cii
from pipelines.parsers.errors import ParseError
from pipelines.parsers.xml_safety import parse_xml

DATA_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data"
FACTURX_DIRS = ("einvoice/mustang", "einvoice/factur-x")
INVOICE2DATA_DIR = "pdf/invoice2data/tests/compare"

FACTURX_BARS = {
    "invoice_number": 0.95,
    "issue_date": 0.95,
    "gross_total": 0.95,
    "currency": 0.95,
    "supplier_name": 0.95,
}
INVOICE2DATA_BAR = 0.90  # pooled over the fields present in each expected JSON
SUPPLIER_NAME_MIN_RATIO = 90.0
_MAX_XML = 10 * 1024 * 1024

Truth = Mapping[str, object]


@dataclass
class FieldScore:
    """Correct and scored counts for one field."""

    correct: int = 0
    total: int = 0

    @property
    def accuracy(self) -> float:
        """Share of documents where the field was exactly right (0 when none were scored)."""
        return self.correct / self.total if self.total else 0.0


@dataclass(frozen=True)
class Failure:
    """One wrong or missing field of one document."""

    document: str
    field: str
    expected: str
    got: str
    in_text: bool = True  # False: the visible text does not hold the expected value at all


@dataclass
class ParseReport:
    """Per-field accuracy over a document set, with every failure listed."""

    documents: list[str] = field(default_factory=list)
    fields: dict[str, FieldScore] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # document -> parse error

    def accuracy(self, name: str) -> float:
        """Exact accuracy of one field."""
        return self.fields[name].accuracy if name in self.fields else 0.0

    @property
    def pooled_accuracy(self) -> float:
        """Correct fields over scored fields, all fields together."""
        total = sum(s.total for s in self.fields.values())
        return sum(s.correct for s in self.fields.values()) / total if total else 0.0

    @property
    def failed_documents(self) -> list[str]:
        """Documents with at least one wrong field or a parse error."""
        names = {f.document for f in self.failures} | set(self.errors)
        return sorted(names)

    def reachable_accuracy(self, name: str) -> float:
        """Accuracy counting only documents whose visible text holds the expected value."""
        score = self.fields.get(name)
        if score is None:
            return 0.0
        absent = sum(1 for f in self.failures if f.field == name and not f.in_text)
        total = score.total - absent
        return score.correct / total if total else 0.0

    def summary(self, bars: Mapping[str, float] | None = None) -> str:
        """A printable table: field, accuracy, counts, and the bar where one is set."""
        rows = [f"{len(self.documents)} documents, pooled accuracy {self.pooled_accuracy:.1%}"]
        for name, score in sorted(self.fields.items()):
            bar = (bars or {}).get(name)
            mark = "" if bar is None else (" ok" if score.accuracy >= bar else f" < {bar:.0%}")
            rows.append(
                f"  {name:16} {score.accuracy:6.1%} ({score.correct}/{score.total}){mark};"
                f" {self.reachable_accuracy(name):6.1%} where the text holds the value"
            )
        for failure in self.failures:
            note = "" if failure.in_text else " (not in the visible text)"
            rows.append(
                f"  FAIL {failure.document}: {failure.field} expected {failure.expected!r}"
                f" got {failure.got!r}{note}"
            )
        for document, error in sorted(self.errors.items()):
            rows.append(f"  ERROR {document}: {error}")
        return "\n".join(rows)


def _matches(name: str, expected: object, got: object) -> bool:
    if got is None:
        return False
    if name == "supplier_name":
        ratio = fuzz.ratio(str(expected).casefold(), str(got).casefold())
        return ratio >= SUPPLIER_NAME_MIN_RATIO
    if isinstance(expected, Decimal):
        return isinstance(got, Decimal) and got == expected
    if isinstance(expected, date):
        return got == expected
    return str(got).strip() == str(expected).strip()


def evaluate_pdfs(
    paths: Iterable[Path],
    truth_fn: Callable[[Path], Truth | None],
    *,
    known_suppliers: Sequence[str] = (),
    root: Path | None = None,
) -> ParseReport:
    """Extract every PDF and compare the fields its truth names; None truth skips a file."""
    report = ParseReport()
    for path in paths:
        truth = truth_fn(path)
        if truth is None:
            continue
        name = str(path.relative_to(root)) if root and path.is_relative_to(root) else path.name
        report.documents.append(name)
        for key in truth:
            report.fields.setdefault(key, FieldScore())
        try:
            extraction = extract_pdf(path.read_bytes(), known_suppliers=known_suppliers)
        except ParseError as exc:
            report.errors[name] = str(exc)
            for key, expected in truth.items():
                report.fields[key].total += 1
                report.failures.append(
                    Failure(name, key, str(expected), "<parse error>", in_text=False)
                )
            continue
        for key, expected in truth.items():
            got = extraction.value(key)
            score = report.fields[key]
            score.total += 1
            if _matches(key, expected, got):
                score.correct += 1
            else:
                shown = _in_text(extraction.lines, key, expected)
                report.failures.append(Failure(name, key, str(expected), str(got), shown))
    return report


def _in_text(lines: Sequence[Line], name: str, expected: object) -> bool:
    """Whether the visible text holds the expected value in any printed form."""
    texts = [line.text for line in lines]
    if isinstance(expected, Decimal):
        return any(a.value == expected for t in texts for a in find_amounts(t))
    if isinstance(expected, date):
        return any(
            d.value == expected
            for t in texts
            for first in (False, True)
            for d in find_dates(t, month_first=first)
        )
    squashed = "".join("".join(t.split()) for t in texts).casefold()
    wanted = "".join(str(expected).split()).casefold()
    if name == "supplier_name":
        return wanted[: max(4, len(wanted) // 2)] in squashed
    return wanted in squashed


# --- set 1: Factur-X / ZUGFeRD, visible text against the embedded XML -----------------------


def embedded_invoice(path: Path) -> Invoice | None:
    """The invoice in a PDF's embedded CII XML, or None (no XML, not an invoice, unreadable)."""
    try:
        reader = PdfReader(path, strict=False)
        attachments = reader.attachments
        for attachment in sorted(attachments):
            if not attachment.lower().endswith(".xml"):
                continue
            for content in attachments[attachment]:
                try:
                    document = read_cii(parse_xml(content, _MAX_XML))
                except (ParseError, ValueError):
                    continue
                if isinstance(document, Invoice):
                    return document
    except Exception:
        return None
    return None


def facturx_truth(path: Path) -> Truth | None:
    """Header truth from the embedded XML, for the fields the bars name."""
    invoice = embedded_invoice(path)
    if invoice is None:
        return None
    return {
        "invoice_number": invoice.number,
        "issue_date": invoice.issue_date,
        "gross_total": invoice.totals.tax_inclusive,
        "currency": invoice.currency,
        "supplier_name": invoice.supplier.name,
    }


def facturx_documents(data_root: Path = DATA_ROOT) -> list[Path]:
    """PDFs with an embedded invoice XML, one per distinct file content (sha256)."""
    seen: set[str] = set()
    out: list[Path] = []
    for folder in FACTURX_DIRS:
        for path in sorted((data_root / folder).rglob("*.pdf")):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest in seen or embedded_invoice(path) is None:
                continue
            seen.add(digest)
            out.append(path)
    return out


def facturx_suppliers(paths: Iterable[Path]) -> list[str]:
    """Seller names of a set, as a vendor master would list them (for `known_suppliers`)."""
    names = {inv.supplier.name for p in paths if (inv := embedded_invoice(p)) and inv.supplier.name}
    return sorted(names)


# --- set 2: invoice2data vendor PDFs with expected JSON -------------------------------------

_INVOICE2DATA_FIELDS = {
    "amount": "gross_total",
    "amount_untaxed": "net_total",
    "date": "issue_date",
    "invoice_number": "invoice_number",
    "currency": "currency",
}


def invoice2data_truth(path: Path) -> Truth | None:
    """Expected fields from the JSON next to the PDF, mapped to extraction field names."""
    expected_path = path.with_suffix(".json")
    if not expected_path.exists():
        return None
    expected = json.loads(expected_path.read_text(encoding="utf-8"))[0]
    truth: dict[str, object] = {}
    for key, name in _INVOICE2DATA_FIELDS.items():
        if key not in expected:
            continue
        value = expected[key]
        if name.endswith("_total"):
            truth[name] = Decimal(str(value))
        elif name == "issue_date":
            truth[name] = date.fromisoformat(str(value))
        else:
            truth[name] = str(value)
    return truth


def invoice2data_documents(data_root: Path = DATA_ROOT) -> list[Path]:
    """The invoice2data comparison PDFs that have an expected JSON."""
    folder = data_root / INVOICE2DATA_DIR
    return [p for p in sorted(folder.glob("*.pdf")) if p.with_suffix(".json").exists()]


def evaluate_facturx(data_root: Path = DATA_ROOT, *, with_master: bool = False) -> ParseReport:
    """Set 1; `with_master` passes the set's seller names as the vendor master list."""
    paths = facturx_documents(data_root)
    known = facturx_suppliers(paths) if with_master else ()
    return evaluate_pdfs(paths, facturx_truth, known_suppliers=known, root=data_root)


def evaluate_invoice2data(data_root: Path = DATA_ROOT) -> ParseReport:
    """Set 2: invoice2data vendor PDFs against their expected JSON."""
    return evaluate_pdfs(invoice2data_documents(data_root), invoice2data_truth, root=data_root)
