"""Model cards: one markdown file per registered model, rewritten by each training run.

The text is deterministic for the same data and metrics; only the MLflow ids, the git sha and
the date change between two runs on the same inputs, so a diff of a card shows what moved.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CARDS_DIR = Path(__file__).resolve().parents[1] / "governance" / "model_cards"


@dataclass(frozen=True)
class ModelCard:
    """What a card says about one registered version."""

    name: str
    family: str
    version: str
    run_id: str
    alias: str
    trained_on: str  # ISO date
    git_sha: str
    purpose: str
    data: Sequence[str]  # one line per data source (name, size), no absolute paths
    data_hash: str
    params: Mapping[str, object]
    metrics: Mapping[str, float]  # "slice/metric" -> value
    baselines: Mapping[str, float] = field(default_factory=dict)
    bars: Sequence[str] = ()
    limits: Sequence[str] = ()
    heads: Sequence[str] = ()
    trained_by: str = ""
    snapshot: str = ""  # sha256 of the review snapshot mixed into the training data, if any


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _slices(metrics: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Group `slice/metric` keys by slice ("overall" when there is no slash)."""
    out: dict[str, dict[str, float]] = {}
    for key in sorted(metrics):
        slice_name, _, metric = key.rpartition("/")
        out.setdefault(slice_name or "overall", {})[metric] = metrics[key]
    return out


def render_card(card: ModelCard) -> str:
    """The markdown text of a card."""
    lines = [
        f"# Model card: {card.name}",
        "",
        f"- family: `{card.family}`",
        f"- registered version: {card.version} (alias `{card.alias}` at registration)",
        f"- MLflow run id: `{card.run_id}`",
        f"- trained: {card.trained_on}, code at git `{card.git_sha or 'unknown'}`",
        f"- heads (scoring functions in the bundle): {', '.join(card.heads) or 'none'}",
        *([f"- trained by: `{card.trained_by}`"] if card.trained_by else []),
        "",
        "## Purpose",
        "",
        card.purpose,
        "",
        "## Data",
        "",
        *[f"- {line}" for line in card.data],
        *(
            [f"- review snapshot (sha256, `tollgate train --from-reviews`): `{card.snapshot}`"]
            if card.snapshot
            else []
        ),
        f"- data hash (sha256): `{card.data_hash}`",
        "",
        "## Training parameters",
        "",
        "| parameter | value |",
        "|---|---|",
        *[f"| {k} | {_fmt(v)} |" for k, v in sorted(card.params.items())],
        "",
        "## Metrics per slice",
        "",
    ]
    for slice_name, values in _slices(card.metrics).items():
        lines += [f"### {slice_name}", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in values.items()]
        lines.append("")
    if card.baselines:
        lines += ["## Baselines", "", "| baseline metric | value |", "|---|---|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(card.baselines.items())]
        lines.append("")
    if card.bars:
        lines += ["## Release bars", "", *[f"- {b}" for b in card.bars], ""]
    lines += ["## Known limits", "", *[f"- {x}" for x in card.limits], ""]
    lines += [
        "## Promotion",
        "",
        "Training registers each version as `challenger`. Moving `champion` to it needs a "
        "controller's recorded approval (DESIGN.md section 7): `tollgate models promote` asks, "
        "with challenger and champion scored on the same held-out world (`--world`); a "
        "controller who neither asked nor trained it approves at `/review/promotions` or with "
        "`tollgate models approve`. `tollgate models rollback` restores the previous champion.",
        "",
    ]
    return "\n".join(lines)


def write_card(card: ModelCard, cards_dir: Path | None = None) -> Path:
    """Write `<cards_dir>/<name>.md` and return its path."""
    folder = cards_dir or DEFAULT_CARDS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{card.name}.md"
    path.write_text(render_card(card), encoding="utf-8")
    return path
