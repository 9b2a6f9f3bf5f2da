"""BPI Challenge 2020 remaining-time benchmark: prefixes, chronological split, MAE protocol.

Protocol (as in Amiri et al., PGTNet, CAiSE 2024, repository keyvan-amiri/PGTNet,
`GTconvertor.py`): cases sorted by the timestamp of their first event; the first 64 % train,
the next 16 % validation, the last 20 % test (split by case count, on all cases); every case
with n >= 3 events gives prefixes of length 2 .. n-1; target = case end minus the time of the
prefix's last event, in days; metric = MAE over all test prefixes. As in PGTNet, a training
case that ends after the first test case starts is kept (no end-of-period debiasing), and test
cases are followed to their real end.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from models.delay import (
    CaseValue,
    DelayModel,
    DelayModelConfig,
    FloatArray,
    PrefixEncoder,
    ProcessEvent,
)
from training.xes import XesTrace, iter_traces

SPLIT_RATIOS = (0.64, 0.16, 0.20)
MIN_PREFIX_LEN = 2
PROGRESS_TOTAL = 100
_SECONDS_PER_DAY = 86_400.0

# Case attributes that are known when the case starts (the request as filed). Identifiers
# (case ids, declaration numbers) are left out: they are unique per case, so pure noise.
# Logs not listed here get prefix-only features, which can never leak.
START_ATTRIBUTES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # log name (concept:name of the file stem): (numeric keys, categorical keys)
    "DomesticDeclarations": (("Amount",), ("BudgetNumber",)),
    "InternationalDeclarations": (("Amount",), ("BudgetNumber",)),
    "RequestForPayment": (
        ("RequestedAmount",),
        ("Project", "Task", "OrganizationalEntity", "Activity", "Cost Type"),
    ),
}


@dataclass(frozen=True)
class DelayReport:
    """Outcome of one benchmark run; MAEs in days over all test prefixes."""

    log_name: str
    n_cases: int
    n_train_cases: int
    n_valid_cases: int
    n_test_cases: int
    n_train_prefixes: int
    n_valid_prefixes: int
    n_test_prefixes: int
    mae_model_days: float
    mae_baseline_days: float
    p90_coverage: float  # share of test prefixes whose remaining time is <= predicted p90
    best_iteration: int
    seconds: float

    def summary(self) -> str:
        """One human-readable line for CLI output."""
        return (
            f"{self.log_name}: MAE {self.mae_model_days:.2f} d (mean baseline "
            f"{self.mae_baseline_days:.2f} d) on {self.n_test_prefixes} test prefixes of "
            f"{self.n_test_cases} cases; train/valid prefixes {self.n_train_prefixes}/"
            f"{self.n_valid_prefixes}; p90 coverage {self.p90_coverage:.2f}; "
            f"{self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class Case:
    """A case reduced to what the delay model may see: events and start-time attributes."""

    case_id: str
    events: tuple[ProcessEvent, ...]
    attributes: Mapping[str, CaseValue]


def to_case(trace: XesTrace, attribute_keys: Iterable[str] = ()) -> Case:
    """Convert an XES trace, keeping only the listed (start-time) case attributes."""
    events = tuple(
        ProcessEvent(
            activity=ev.activity,
            timestamp=ev.timestamp,
            resource=ev.get_str("org:resource"),
            role=ev.get_str("org:role"),
        )
        for ev in trace.events
    )
    attrs = {k: trace.attributes[k] for k in attribute_keys if k in trace.attributes}
    return Case(case_id=trace.case_id, events=events, attributes=attrs)


def chronological_split(
    cases: Sequence[Case], ratios: tuple[float, float, float] = SPLIT_RATIOS
) -> tuple[list[Case], list[Case], list[Case]]:
    """Sort cases by first-event time and cut into train / validation / test by case count."""
    if not math.isclose(sum(ratios), 1.0):
        raise ValueError("split ratios must sum to 1")
    ordered = sorted((c for c in cases if c.events), key=lambda c: c.events[0].timestamp)
    n = len(ordered)
    # int() truncation as in the reference implementation, so counts match it exactly.
    cut_train = int(n * ratios[0])
    cut_valid = int(n * (ratios[0] + ratios[1]))
    return ordered[:cut_train], ordered[cut_train:cut_valid], ordered[cut_valid:]


def prefixes(case: Case) -> Iterable[tuple[tuple[ProcessEvent, ...], float]]:
    """Yield (prefix, remaining days) for prefix lengths 2 .. n-1 of one case."""
    end = case.events[-1].timestamp
    for k in range(MIN_PREFIX_LEN, len(case.events)):
        prefix = case.events[:k]
        yield prefix, (end - prefix[-1].timestamp).total_seconds() / _SECONDS_PER_DAY


def build_matrix(cases: Sequence[Case], encoder: PrefixEncoder) -> tuple[FloatArray, FloatArray]:
    """Encode every prefix of every case into (features, remaining days)."""
    rows: list[list[float]] = []
    targets: list[float] = []
    for case in cases:
        for prefix, remaining in prefixes(case):
            rows.append(encoder.encode(prefix, case.attributes))
            targets.append(remaining)
    width = len(encoder.feature_names)
    x = np.asarray(rows, dtype=np.float64).reshape(len(rows), width)
    return x, np.asarray(targets, dtype=np.float64)


def evaluate_cases(
    cases: Sequence[Case],
    *,
    log_name: str,
    numeric_keys: tuple[str, ...] = (),
    categorical_keys: tuple[str, ...] = (),
    config: DelayModelConfig | None = None,
    quantiles: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[DelayReport, DelayModel, PrefixEncoder]:
    """Run the protocol on already-read cases; returns the report, the model and its encoder."""
    started = time.perf_counter()
    steps = 4

    def step(done: int) -> None:
        if progress is not None:
            progress(done, steps)

    train, valid, test = chronological_split(cases)
    encoder = PrefixEncoder(numeric_case_keys=numeric_keys, categorical_case_keys=categorical_keys)
    # Vocabularies from training cases only, so no test value shapes the features.
    encoder.fit((c.events, c.attributes) for c in train)
    x_train, y_train = build_matrix(train, encoder)
    x_valid, y_valid = build_matrix(valid, encoder)
    x_test, y_test = build_matrix(test, encoder)
    step(1)
    if len(y_train) == 0 or len(y_valid) == 0 or len(y_test) == 0:
        raise ValueError("too few cases with three or more events to run the protocol")
    model = DelayModel(
        feature_names=encoder.feature_names,
        categorical_features=encoder.categorical_features,
        config=config or DelayModelConfig(),
    )
    model.fit(x_train, y_train, x_valid, y_valid, quantiles=quantiles)
    step(2)
    if quantiles:
        p50, p90 = model.predict(x_test)
        coverage = float(np.mean(y_test <= p90))
    else:
        p50, coverage = model.predict_p50(x_test), math.nan
    baseline = float(np.mean(y_train))
    step(3)
    report = DelayReport(
        log_name=log_name,
        n_cases=len(cases),
        n_train_cases=len(train),
        n_valid_cases=len(valid),
        n_test_cases=len(test),
        n_train_prefixes=len(y_train),
        n_valid_prefixes=len(y_valid),
        n_test_prefixes=len(y_test),
        mae_model_days=float(np.mean(np.abs(p50 - y_test))),
        mae_baseline_days=float(np.mean(np.abs(baseline - y_test))),
        p90_coverage=coverage,
        best_iteration=model.best_iterations["p50"],
        seconds=time.perf_counter() - started,
    )
    step(4)
    return report, model, encoder


def evaluate_xes(path: Path, *, progress: Callable[[int, int], None] | None = None) -> DelayReport:
    """Read an XES log and run the remaining-time protocol; MAE of model and mean baseline.

    `progress(done, total)` runs on one scale of PROGRESS_TOTAL units: reading the file fills
    the first half (by bytes read), the protocol stages the second.
    """
    started = time.perf_counter()
    log_name = path.name.split(".", 1)[0]
    numeric, categorical = START_ATTRIBUTES.get(log_name, ((), ()))
    half = PROGRESS_TOTAL // 2

    def on_read(done: int, total: int) -> None:
        if progress is not None and total > 0:
            progress(half * done // total, PROGRESS_TOTAL)

    def on_step(done: int, total: int) -> None:
        if progress is not None:
            progress(half + (PROGRESS_TOTAL - half) * done // total, PROGRESS_TOTAL)

    # Convert while streaming so the raw XES attributes of all traces are never held at once.
    cases = [to_case(t, numeric + categorical) for t in iter_traces(path, progress=on_read)]
    report, _, _ = evaluate_cases(
        cases,
        log_name=log_name,
        numeric_keys=numeric,
        categorical_keys=categorical,
        progress=on_step,
    )
    # Report wall time including reading the log, which is what a caller waits for.
    return replace(report, seconds=time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the benchmark line for each XES file given (python -m training.bpic FILE...)."""
    paths = [Path(a) for a in (sys.argv[1:] if argv is None else argv)]
    for path in paths:
        print(evaluate_xes(path).summary())
    return 0 if paths else 2


if __name__ == "__main__":
    raise SystemExit(main())
