"""Score the rule engine's findings against a generated world's ground truth.

Per reason code: support (documents whose truth has the code), precision and recall, computed
separately on the rule-decidable documents and on the ambiguous ones. The rules are held to
0.99 precision and recall on every rule-decidable code with support; the ambiguous slice is
reported, not held to a bar: it is where rules are expected to be wrong and models to help.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BAR = 0.99
SLICES = ("decidable", "ambiguous")


@dataclass
class CodeScore:
    """Counts for one reason code in one slice."""

    support: int = 0  # documents whose truth has the code
    predicted: int = 0  # documents the rules gave the code
    correct: int = 0  # both

    @property
    def precision(self) -> float | None:
        """Share of predictions that are true (None when nothing was predicted)."""
        return self.correct / self.predicted if self.predicted else None

    @property
    def recall(self) -> float | None:
        """Share of true codes that were predicted (None without support)."""
        return self.correct / self.support if self.support else None


@dataclass
class MatchEvaluation:
    """The whole evaluation: per slice and code, plus documents the rules got wrong."""

    documents: dict[str, int] = field(default_factory=dict)
    exact: dict[str, int] = field(default_factory=dict)  # documents with exactly the true set
    scores: dict[str, dict[str, CodeScore]] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # truth files the intake did not score

    def failures(self) -> list[str]:
        """Rule-decidable codes below the bar, as readable lines (empty when it passes)."""
        out = []
        for code, score in sorted(self.scores.get("decidable", {}).items()):
            for name, value in (("precision", score.precision), ("recall", score.recall)):
                if value is not None and value < BAR:
                    out.append(f"{code}: {name} {value:.4f} < {BAR}")
        if self.missing:
            out.append(f"{len(self.missing)} document(s) of the truth were not matched")
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict, with precision and recall spelled out."""
        return {
            "documents": self.documents,
            "exact": self.exact,
            "bar": BAR,
            "passed": not self.failures(),
            "failures": self.failures(),
            "scores": {
                slice_: {
                    code: {**asdict(score), "precision": score.precision, "recall": score.recall}
                    for code, score in sorted(codes.items())
                }
                for slice_, codes in self.scores.items()
            },
            "errors": self.errors[:200],
            "missing": self.missing[:200],
        }


def read_truth(world: Path) -> list[dict[str, Any]]:
    """The truth records of a world folder."""
    with (world / "truth.jsonl").open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def evaluate(
    truth: Iterable[Mapping[str, Any]], predicted: Mapping[str, Iterable[str]]
) -> MatchEvaluation:
    """Compare true reasons with the rules' codes; `predicted` is keyed by truth `file`."""
    result = MatchEvaluation(
        documents={s: 0 for s in SLICES},
        exact={s: 0 for s in SLICES},
        scores={s: {} for s in SLICES},
    )
    for record in truth:
        file = record["file"]
        if file not in predicted:
            result.missing.append(file)
            continue
        slice_ = "decidable" if record["rule_decidable"] else "ambiguous"
        true, found = set(record["reasons"]), set(predicted[file])
        result.documents[slice_] += 1
        result.exact[slice_] += true == found
        for code in true | found:
            score = result.scores[slice_].setdefault(code, CodeScore())
            score.support += code in true
            score.predicted += code in found
            score.correct += code in true and code in found
        if true != found and slice_ == "decidable":
            result.errors.append(
                {
                    "file": file,
                    "scenarios": record.get("scenarios", []),
                    "truth": sorted(true),
                    "rules": sorted(found),
                }
            )
    return result


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(result: MatchEvaluation) -> str:
    """A plain-text report: one table per slice, then what failed."""
    lines = []
    for slice_ in SLICES:
        n, exact = result.documents.get(slice_, 0), result.exact.get(slice_, 0)
        share = f"{exact / n:.1%}" if n else "-"
        lines.append(f"{slice_}: {n} documents, {exact} ({share}) with exactly the true codes")
        lines.append(f"  {'code':<22}{'support':>8}{'flagged':>8}{'precision':>11}{'recall':>8}")
        for code, s in sorted(result.scores.get(slice_, {}).items()):
            lines.append(
                f"  {code:<22}{s.support:>8}{s.predicted:>8}"
                f"{_fmt(s.precision):>11}{_fmt(s.recall):>8}"
            )
        lines.append("")
    failures = result.failures()
    if failures:
        lines.append(f"FAILED: rule-decidable codes below {BAR}:")
        lines.extend(f"  {f}" for f in failures)
        for error in result.errors[:20]:
            lines.append(
                f"  {error['file']} {','.join(error['scenarios'])}: "
                f"truth {error['truth']} rules {error['rules']}"
            )
    else:
        lines.append(f"PASSED: every rule-decidable code at precision and recall >= {BAR}")
    return "\n".join(lines)
