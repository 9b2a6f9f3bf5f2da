"""Realism report for a generated world: how it compares with published AP benchmarks, with plots.

`write_report(world)` reads `truth.jsonl` and `manifest.json` of a folder made by
`tollgate generate` and writes `report.md` next to them, with PNG plots in `report/`. The same
world gives byte-identical output: the plots carry no dates or software versions and are drawn
with matplotlib's default style whatever the user's matplotlibrc says.

The figures are drawn through the object-oriented API on an Agg canvas, never through pyplot, so
the report neither needs a display nor switches the backend of a process that imported it.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.style
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# Published benchmarks (lower is better for all of them).
ARDENT_EXCEPTION_AVG, ARDENT_EXCEPTION_BEST = 22.6, 10.1  # % of invoices with an exception
ARDENT_CYCLE_AVG, ARDENT_CYCLE_BEST = 8.3, 2.9  # days, invoice receipt to approval
APQC_TOP, APQC_MEDIAN, APQC_BOTTOM = 3.0, 5.0, 7.0  # days to resolve an invoice error

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PLOT_DIR = "report"
# Keyword arguments of every savefig: no "Software" entry, so PNGs do not change with versions.
_SAVE: dict[str, Any] = {"format": "png", "dpi": 100, "metadata": {"Software": None}}


class WorldError(ValueError):
    """A folder is not a readable generated world; the message names the file and line."""


@dataclass(frozen=True)
class TruthRow:
    """The parts of one truth.jsonl line that the report uses."""

    kind: str
    reasons: tuple[str, ...]
    decidable: bool
    gross: Decimal
    currency: str
    supplier: str
    received: datetime
    hours: float
    queue: str
    sla_breached: bool


@dataclass(frozen=True)
class Benchmarks:
    """The generated numbers that the benchmark table compares; None where there is no data."""

    invoices: int
    exception_invoices: int
    exception_rate: float | None
    median_days: float | None
    mean_days: float | None
    cycle_days: float | None
    sla_breach_all: float | None
    sla_breach_exceptions: float | None
    ambiguous_share: float | None
    multi_reason_share: float | None


def _row(raw: Any, where: str) -> TruthRow:
    """Validate one decoded truth line; a missing or mistyped field is a WorldError."""
    try:
        review = raw["review"]
        gross = Decimal(str(raw["gross"])) if raw["gross"] is not None else Decimal(0)
        if not gross.is_finite():
            raise InvalidOperation
        hours = float(review["hours_to_resolution"])
        if not math.isfinite(hours) or hours < 0:
            raise ValueError("hours_to_resolution must be a non-negative number")
        return TruthRow(
            kind=str(raw["kind"]),
            reasons=tuple(str(r) for r in raw["reasons"]),
            decidable=bool(raw["rule_decidable"]),
            gross=gross,
            currency=str(raw["currency"]),
            # Unknown suppliers have no reference: the name is what identifies them then.
            supplier=str(raw.get("supplier_ref") or raw.get("supplier_name") or "?"),
            received=datetime.fromisoformat(str(review["received_at"])),
            hours=hours,
            queue=str(review["queue"]),
            sla_breached=bool(review["sla_breached"]),
        )
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise WorldError(f"{where}: not a truth record ({type(exc).__name__}: {exc})") from exc


def read_world(world: Path) -> tuple[dict[str, Any], list[TruthRow]]:
    """The manifest and the truth rows of a generated world folder."""
    manifest_path, truth_path = world / "manifest.json", world / "truth.jsonl"
    for path in (manifest_path, truth_path):
        if not path.is_file():
            raise WorldError(f"{path}: missing; is {world} a folder made by `tollgate generate`?")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WorldError(f"{manifest_path}: not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict):
        raise WorldError(f"{manifest_path}: expected a JSON object")
    rows: list[TruthRow] = []
    with truth_path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            where = f"{truth_path}:{number}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise WorldError(f"{where}: not valid JSON ({exc.msg})") from exc
            rows.append(_row(raw, where))
    return manifest, rows


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def compute_benchmarks(rows: Sequence[TruthRow]) -> Benchmarks:
    """The numbers of the benchmark table, computed from the truth rows."""
    invoices = [r for r in rows if r.kind == "invoice"]
    exceptions = [r for r in invoices if r.reasons]
    exception_days = [r.hours / 24 for r in exceptions]
    exception_docs = [r for r in rows if r.reasons]
    return Benchmarks(
        invoices=len(invoices),
        exception_invoices=len(exceptions),
        exception_rate=_share(len(exceptions), len(invoices)),
        median_days=statistics.median(exception_days) if exception_days else None,
        mean_days=statistics.fmean(exception_days) if exception_days else None,
        cycle_days=statistics.fmean(r.hours / 24 for r in invoices) if invoices else None,
        sla_breach_all=_share(sum(r.sla_breached for r in rows), len(rows)),
        sla_breach_exceptions=_share(
            sum(r.sla_breached for r in exception_docs), len(exception_docs)
        ),
        ambiguous_share=_share(sum(not r.decidable for r in rows), len(rows)),
        multi_reason_share=_share(sum(len(r.reasons) >= 2 for r in exceptions), len(exceptions)),
    )


def format_percent(value: float | None) -> str:
    """A share as the report prints it: `22.4 %`, or `n/a` without data."""
    return "n/a" if value is None else f"{100 * value:.1f} %"


def _days(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def _ardent_position(value: float | None, best: float, average: float) -> str:
    """Where a lower-is-better number lands against Ardent's best-in-class and average."""
    if value is None:
        return "n/a"
    if value <= best:
        return "at or better than best-in-class"
    if value <= average:
        return "between best-in-class and average"
    return "worse than average"


def _apqc_position(days: float | None) -> str:
    """Which APQC quartile band a number of days to resolve falls in."""
    if days is None:
        return "n/a"
    if days <= APQC_TOP:
        return "top quartile"
    if days <= APQC_MEDIAN:
        return "between top quartile and median"
    if days < APQC_BOTTOM:
        return "between median and bottom quartile"
    return "bottom quartile"


def benchmark_table(b: Benchmarks) -> list[str]:
    """The markdown lines of the 'generated vs published benchmark' table."""
    rate = None if b.exception_rate is None else 100 * b.exception_rate
    apqc = "3 top quartile · 5 median · ≥ 7 bottom quartile [^apqc]"
    ardent_rate = f"{ARDENT_EXCEPTION_AVG} % average · {ARDENT_EXCEPTION_BEST} % best-in-class"
    ardent_cycle = f"{ARDENT_CYCLE_AVG} average · {ARDENT_CYCLE_BEST} best-in-class"
    rows = [
        (
            "Invoice exception rate (invoices with ≥ 1 true reason)",
            format_percent(b.exception_rate),
            f"{ardent_rate} [^ardent]",
            _ardent_position(rate, ARDENT_EXCEPTION_BEST, ARDENT_EXCEPTION_AVG),
        ),
        (
            "Days to resolve an exception invoice, median",
            _days(b.median_days),
            apqc,
            _apqc_position(b.median_days),
        ),
        (
            "Days to resolve an exception invoice, mean",
            _days(b.mean_days),
            apqc,
            _apqc_position(b.mean_days),
        ),
        (
            "Invoice cycle time, mean days (all invoices, arrival to decision)",
            _days(b.cycle_days),
            f"{ardent_cycle} [^ardent]",
            _ardent_position(b.cycle_days, ARDENT_CYCLE_BEST, ARDENT_CYCLE_AVG),
        ),
        ("SLA breached, all documents", format_percent(b.sla_breach_all), "none", "—"),
        (
            "SLA breached, documents with an exception",
            format_percent(b.sla_breach_exceptions),
            "none",
            "—",
        ),
        (
            "Ambiguous documents (rules cannot decide the truth)",
            format_percent(b.ambiguous_share),
            "none (a generator setting)",
            "—",
        ),
        (
            "Exception invoices with ≥ 2 true reasons",
            format_percent(b.multi_reason_share),
            "none (a generator setting)",
            "—",
        ),
    ]
    lines = [
        "| Measure | Generated | Published | Where it lands |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {m} | {g} | {p} | {w} |" for m, g, p, w in rows]
    return lines


# --- plots -----------------------------------------------------------------------------------


def _log_bins(values: Sequence[float], count: int = 40) -> list[float]:
    """Bin edges evenly spaced on a log scale over the positive values."""
    positive = [v for v in values if v > 0]
    low, high = min(positive), max(positive)
    if high <= low:
        high = low * 1.1
    ratio = high / low
    return [low * ratio ** (i / count) for i in range(count + 1)]


def _no_data(ax: Axes) -> None:
    ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)  # attaches itself to the figure: rendering never needs a display
    fig.savefig(path, **_SAVE)


def plot_exception_mix(rows: Sequence[TruthRow], path: Path) -> None:
    """Horizontal bars of true reason counts, split by rule-decidable vs ambiguous documents."""
    decidable: Counter[str] = Counter()
    ambiguous: Counter[str] = Counter()
    for r in rows:
        (decidable if r.decidable else ambiguous).update(r.reasons)
    codes = sorted(set(decidable) | set(ambiguous), key=lambda c: (decidable[c] + ambiguous[c], c))
    fig = Figure(figsize=(8, max(3.0, 0.3 * len(codes) + 1.2)))
    ax = fig.add_subplot()
    if codes:
        left = [decidable[c] for c in codes]
        ax.barh(codes, left, color="#4c72b0", label="rule-decidable")
        ax.barh(codes, [ambiguous[c] for c in codes], left=left, color="#dd8452", label="ambiguous")
        # The stacked bars pin their left edges, which would cut the longest bar at the frame.
        ax.set_xlim(0, max(decidable[c] + ambiguous[c] for c in codes) * 1.05)
        ax.legend(loc="lower right")
    else:
        _no_data(ax)
    ax.set_xlabel("documents carrying the reason (a document can carry two)")
    ax.set_title("Exception mix by true reason")
    fig.tight_layout()
    _save(fig, path)


def plot_gross(rows: Sequence[TruthRow], path: Path) -> None:
    """Log-x histogram of invoice gross amounts, one outline per currency."""
    by_currency: dict[str, list[float]] = defaultdict(list)
    for r in rows:
        if r.kind == "invoice" and r.gross > 0:
            by_currency[r.currency].append(float(r.gross))  # plotting only; totals use Decimal
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    everything = [v for values in by_currency.values() for v in values]
    if everything:
        bins = _log_bins(everything)
        for currency in sorted(by_currency, key=lambda c: (-len(by_currency[c]), c)):
            values = by_currency[currency]
            ax.hist(
                values,
                bins=bins,
                histtype="step",
                linewidth=1.5,
                label=f"{currency} (n={len(values)})",
            )
        ax.set_xscale("log")
        ax.legend()
    else:
        _no_data(ax)
    ax.set_xlabel("invoice gross amount (own currency, log scale)")
    ax.set_ylabel("invoices")
    ax.set_title("Invoice gross amounts by currency")
    fig.tight_layout()
    _save(fig, path)


def plot_resolution(rows: Sequence[TruthRow], path: Path) -> None:
    """Log-x histogram of hours to resolution, exception vs clean, with APQC's day marks."""
    exception = [r.hours for r in rows if r.reasons and r.hours > 0]
    clean = [r.hours for r in rows if not r.reasons and r.hours > 0]
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    if exception or clean:
        bins = _log_bins(exception + clean, 50)
        for label, values, colour in (
            ("clean", clean, "#55a868"),
            ("exception", exception, "#c44e52"),
        ):
            if values:
                ax.hist(
                    values,
                    bins=bins,
                    histtype="stepfilled",
                    alpha=0.5,
                    color=colour,
                    label=f"{label} (n={len(values)})",
                )
        for days, name in ((APQC_TOP, "3 days"), (APQC_MEDIAN, "5 days"), (APQC_BOTTOM, "7 days")):
            ax.axvline(days * 24, color="grey", linestyle="--", linewidth=0.8)
            ax.annotate(
                name,
                (days * 24, 1),
                xycoords=("data", "axes fraction"),
                xytext=(-3, -4),
                textcoords="offset points",
                color="grey",
                rotation=90,
                ha="right",
                va="top",
            )
        ax.set_xscale("log")
        ax.legend(loc="upper left")
    else:
        _no_data(ax)
    ax.set_xlabel("calendar hours from arrival to decision (log scale; dashes: APQC days)")
    ax.set_ylabel("documents")
    ax.set_title("Resolution time, all documents")
    fig.tight_layout()
    _save(fig, path)


def _boxes(ax: Axes, groups: dict[str, list[float]], order: Iterable[str], title: str) -> None:
    labels = [g for g in order if groups.get(g)]
    if not labels:
        _no_data(ax)
    else:
        ax.boxplot(
            [groups[g] for g in labels],
            tick_labels=labels,
            showfliers=True,
            flierprops={"markersize": 2},
        )
        ax.set_yscale("log")
    ax.set_title(title)
    ax.tick_params(axis="x", labelrotation=30)


def plot_hours_by_group(rows: Sequence[TruthRow], path: Path) -> None:
    """Box plots of hours to resolution of exception cases by arrival weekday and by queue."""
    cases = [r for r in rows if r.reasons and r.hours > 0]
    by_day: dict[str, list[float]] = defaultdict(list)
    by_queue: dict[str, list[float]] = defaultdict(list)
    for r in cases:
        by_day[WEEKDAYS[r.received.weekday()]].append(r.hours)
        by_queue[r.queue].append(r.hours)
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2, sharey=True)
    _boxes(left, by_day, WEEKDAYS, "by weekday of arrival")
    _boxes(right, by_queue, sorted(by_queue), "by queue")
    left.set_ylabel("calendar hours to decision (log scale)")
    fig.suptitle(f"Resolution time of exception cases (n={len(cases)})")
    fig.tight_layout()
    _save(fig, path)


def supplier_pareto(rows: Sequence[TruthRow]) -> list[tuple[float, float]]:
    """(share of suppliers, share of invoices) points, biggest suppliers first, from (0, 0)."""
    counts = Counter(r.supplier for r in rows if r.kind == "invoice")
    sizes = sorted(counts.values(), reverse=True)
    total, points, running = sum(sizes), [(0.0, 0.0)], 0
    for i, size in enumerate(sizes, start=1):
        running += size
        points.append((i / len(sizes), running / total))
    return points


def top_fifth_share(points: Sequence[tuple[float, float]]) -> float | None:
    """Share of invoices sent by the biggest 20 % of suppliers (rounded up to whole suppliers)."""
    if len(points) < 2:
        return None
    return next(y for x, y in points if x >= 0.2 - 1e-9)


def plot_pareto(points: Sequence[tuple[float, float]], path: Path) -> None:
    """Cumulative share of invoices against cumulative share of suppliers."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.add_subplot()
    if len(points) > 1:
        ax.plot(
            [x for x, _ in points],
            [y for _, y in points],
            marker=".",
            markersize=3,
            label="generated world",
        )
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="all suppliers equal")
        top = top_fifth_share(points)
        if top is not None:
            ax.axvline(0.2, color="grey", linewidth=0.6)
            ax.annotate(
                f"top 20 %: {100 * top:.0f} % of invoices",
                (0.2, top),
                xytext=(8, -14),
                textcoords="offset points",
            )
        ax.legend(loc="lower right")
    else:
        _no_data(ax)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("share of suppliers (biggest first)")
    ax.set_ylabel("share of invoices")
    ax.set_title("Supplier volume (Pareto)")
    fig.tight_layout()
    _save(fig, path)


# --- markdown --------------------------------------------------------------------------------


def _money(amount: Decimal) -> str:
    return f"{amount.quantize(Decimal('0.01')):,}"


def _header(manifest: dict[str, Any], rows: Sequence[TruthRow]) -> list[str]:
    config = manifest.get("config", {}) if isinstance(manifest.get("config"), dict) else {}
    kinds = Counter(r.kind for r in rows)
    kind_text = ", ".join(f"{kinds[k]} {k.replace('_', ' ')}s" for k in sorted(kinds)) or "none"
    period = "unknown"
    if "start" in config and "months" in config:
        start = date.fromisoformat(str(config["start"]))
        # The generator's months are 30 days (WorldConfig.end).
        period = f"{start} to {start + timedelta(days=30 * int(config['months']))}"
        period += f" ({config['months']} months)"
    if rows:
        first = min(r.received for r in rows).date()
        last = max(r.received for r in rows).date()
        period += f"; documents arrive {first} to {last}"
    gross: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        if r.kind == "invoice":
            gross[r.currency] += r.gross
    gross_text = "; ".join(f"{c} {_money(gross[c])}" for c in sorted(gross)) or "none"
    seen = len({r.supplier for r in rows})
    return [
        "# Synthetic AP world: realism report",
        "",
        f"- Seed: {config.get('seed', 'unknown')} "
        f"(generator version {manifest.get('generator_version', 'unknown')})",
        f"- Invoices: {kinds.get('invoice', 0)} (configured: {config.get('invoices', 'unknown')})",
        f"- Documents: {len(rows)} ({kind_text})",
        f"- Period: {period}",
        f"- Suppliers: {config.get('suppliers', 'unknown')} configured, {seen} seen on documents "
        "(unknown suppliers included)",
        f"- Invoice gross by currency: {gross_text}",
    ]


def render_markdown(
    manifest: dict[str, Any], rows: Sequence[TruthRow], plots: dict[str, str]
) -> str:
    """The text of report.md; `plots` maps a plot key to its path relative to the world."""
    b = compute_benchmarks(rows)
    top = top_fifth_share(supplier_pareto(rows))
    lines = _header(manifest, rows)
    lines += [
        "",
        "## Generated vs published benchmark",
        "",
        f"{b.exception_invoices} of {b.invoices} invoices carry at least one true reason. "
        "Days are calendar days (nights, weekends and holidays count) from arrival to the "
        "clerk's or approver's decision.",
        "",
    ]
    lines += benchmark_table(b)
    lines += [
        "",
        "[^ardent]: Ardent Partners, *State of ePayables* 2019, average vs best-in-class AP "
        "teams; cycle time is invoice receipt to approval for payment (figures as summarised in "
        "the project's AP domain notes).",
        "[^apqc]: APQC Open Standards Benchmarking, days to resolve an invoice error: 3 / 5 / ≥ 7 "
        "for the top quartile / median / bottom quartile (as summarised in the project's AP "
        "domain notes).",
        "",
        "## Plots",
        "",
        "### Exception mix",
        "",
        f"![Exception mix by true reason, rule-decidable vs ambiguous]({plots['mix']})",
        "",
        "### Gross amounts",
        "",
        f"![Invoice gross amounts by currency, log scale]({plots['gross']})",
        "",
        "### Resolution time",
        "",
        f"![Hours to resolution, exception vs clean, log scale]({plots['resolution']})",
        "",
        "### Resolution time by weekday and queue",
        "",
        f"![Hours to resolution of exception cases by weekday and queue]({plots['groups']})",
        "",
        "### Supplier volume",
        "",
        f"The biggest 20 % of suppliers send {format_percent(top)} of the invoices.",
        "",
        f"![Pareto curve of supplier volume]({plots['pareto']})",
        "",
        "## How to read this",
        "",
        "Nothing here is real data: every supplier, document and review is drawn from one seeded "
        "random generator. Two things are tuned to published figures: the share of invoices "
        "with an exception (aimed at Ardent's 22.6 % average) and the base hours per reason, "
        "set so that exception cases land near APQC's 5-day median. Everything else is an "
        "assumption of the generator, not a measurement: the reason mix and its weights, the "
        "share of ambiguous cases and of cases with two reasons, amounts, currencies, supplier "
        "sizes, the SLA clock, staff speeds and the 4 % of escalations. Cycle time here counts "
        "from arrival to decision, whereas Ardent counts from receipt to approval for payment, so "
        "compare the order of magnitude, not the decimals. Use the world to test that the "
        "pipeline and models behave sensibly on realistic shapes, never to claim what a real AP "
        "team would see.",
        "",
    ]
    return "\n".join(lines)


def write_report(world: Path) -> Path:
    """Write `world/report.md` and its PNG plots in `world/report/`; return the markdown path."""
    manifest, rows = read_world(world)
    plot_dir = world / PLOT_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    names = {
        "mix": "exception_mix.png",
        "gross": "gross_amounts.png",
        "resolution": "resolution_hours.png",
        "groups": "hours_by_weekday_queue.png",
        "pareto": "supplier_pareto.png",
    }
    # The default style, not the user's matplotlibrc, so the same world gives the same bytes.
    with (
        matplotlib.style.context("default"),
        matplotlib.rc_context({"svg.hashsalt": "tollgate-report", "font.size": 9}),
    ):
        plot_exception_mix(rows, plot_dir / names["mix"])
        plot_gross(rows, plot_dir / names["gross"])
        plot_resolution(rows, plot_dir / names["resolution"])
        plot_hours_by_group(rows, plot_dir / names["groups"])
        plot_pareto(supplier_pareto(rows), plot_dir / names["pareto"])
    markdown = render_markdown(manifest, rows, {k: f"{PLOT_DIR}/{v}" for k, v in names.items()})
    path = world / "report.md"
    path.write_text(markdown, encoding="utf-8")
    return path
