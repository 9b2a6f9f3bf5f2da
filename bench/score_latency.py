"""Scoring latency: one case through all three models (warm and cold text cache), and batches.

    python bench/score_latency.py [--invoices 1200] [--runs 200] [--cold-runs 40]
    python bench/score_latency.py --tracking-uri sqlite:///…/mlflow.db --world DIR

Without `--tracking-uri` the bench generates a world (`tollgate generate`), writes the rules'
findings (`tollgate eval match`) and trains reason, anomaly and delay into a temporary MLflow
store, as `make demo-world` does. `--world` must hold `findings.jsonl` (eval match).

What is timed is `models.scoring.CaseScorer.score` on inputs already in memory: the document
with its rule findings, the supplier's earlier documents (up to 200, for history features and
duplicate candidates) and master data, i.e. what `app.scoring.service` hands it after reading
the database. Single case: median and p95 over `--runs` cases of the world's second half.
Warm cache: every text already embedded; cold: a new embedder per call (MiniLM stays loaded,
its texts are encoded again). Batches: the last 100 / 1000 documents in one call, history
before them. The last line is `key=value` figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe

from models.embeddings import TextEmbedder
from models.features import CaseInput, MasterData, RuleFinding
from models.registry import FAMILIES, ModelRegistry
from models.scoring import (
    CaseScorer,
    DelayContext,
    PriorDocument,
    ScoreBatch,
    ScoreItem,
    serving_encoder,
)
from pipelines.canonical import Invoice, SupplierDocument
from pipelines.parsers import parse_document
from pipelines.parsers.errors import ParseError

HISTORY_CAP = 200


def build_store(root: Path, invoices: int, seed: int) -> tuple[str, Path]:
    """Generate a world, write its findings and train the three families into a new store."""
    from typer.testing import CliRunner

    from app.cli import cli
    from training.synth.generator import WorldConfig, generate_world
    from training.synth.output import write_world
    from training.train import train_family

    world = root / "world"
    started = time.perf_counter()
    write_world(generate_world(WorldConfig(invoices=invoices, seed=seed)), world, pdf=False)
    findings = world / "findings.jsonl"
    result = CliRunner().invoke(
        cli, ["eval", "match", "--world", str(world), "--findings-out", str(findings)]
    )
    if not findings.is_file():
        raise SystemExit(f"eval match wrote no findings: {result.output}")
    (root / "mlflow").mkdir()
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    for family in FAMILIES:
        train_family(family, world=world, tracking_uri=uri, cards_dir=root / "cards")
    print(
        f"store: {invoices} invoices generated and trained in {time.perf_counter() - started:.0f} s"
    )
    return uri, world


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text("utf-8").splitlines() if x.strip()]


def load_world(world: Path) -> tuple[list[str], list[CaseInput], list[DelayContext], MasterData]:
    """The world's documents in arrival order as scoring inputs, with master data."""
    from training.reason_data import read_master

    found = {r["file"]: r["findings"] for r in _jsonl(world / "findings.jsonl")}
    truth = sorted(_jsonl(world / "truth.jsonl"), key=lambda r: r["file"])
    refs, cases, contexts = [], [], []
    for record in truth:
        document: SupplierDocument
        try:
            path = world / "documents" / "ubl" / f"{record['file']}.xml"
            document = parse_document(path.read_bytes()).document
        except ParseError:
            document = Invoice()
        findings = [RuleFinding.from_record(f) for f in found.get(record["file"], [])]
        refs.append(record["file"])
        cases.append(CaseInput(document, findings, record.get("supplier_ref")))
        review = record.get("review") or {}
        received = review.get("received_at")
        contexts.append(
            DelayContext(
                queue=review.get("queue"),
                queue_load=review.get("queue_load"),
                received_at=datetime.fromisoformat(received) if received else None,
                sla_hours=review.get("sla_hours"),
                company=record.get("company"),
                language=record.get("language"),
            )
        )
    return refs, cases, contexts, read_master(world)


def single_batch(refs, cases, contexts, master, index: int) -> ScoreBatch:  # type: ignore[no-untyped-def]
    """Case `index` with its supplier's earlier documents (capped) as history."""
    key = cases[index].supplier_ref or cases[index].document.supplier.name
    earlier = [
        i for i in range(index) if (cases[i].supplier_ref or cases[i].document.supplier.name) == key
    ][-HISTORY_CAP:]
    return ScoreBatch(
        master,
        [PriorDocument(refs[i], cases[i]) for i in earlier],
        [ScoreItem(refs[index], cases[index], contexts[index])],
    )


def _ms(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p95 * 1000


def main() -> None:
    """Build or open a store, time single cases and batches, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tracking-uri", default=None, help="an existing store with 3 families")
    parser.add_argument("--world", type=Path, default=None, help="world with findings.jsonl")
    parser.add_argument("--invoices", type=int, default=1200, help="world size when building")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=200, help="single cases, warm cache")
    parser.add_argument("--cold-runs", type=int, default=40, help="single cases, cold cache")
    args = parser.parse_args()
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f}")
    scratch = Path(tempfile.mkdtemp(prefix="score-latency-"))
    if args.tracking_uri:
        if args.world is None:
            raise SystemExit("--tracking-uri needs --world (the documents to score)")
        uri, world = args.tracking_uri, args.world
    else:
        uri, world = build_store(scratch, args.invoices, args.seed)
    registry = ModelRegistry(uri)
    models = {f: registry.load(f) for f in FAMILIES}
    print("models: " + ", ".join(f"{m.name}@{m.version}" for m in models.values()))
    refs, cases, contexts, master = load_world(world)
    n = len(cases)
    print(f"world: {n} documents")

    encoder = serving_encoder()  # what the service uses: torch on one thread
    warm = TextEmbedder(None, encoder)
    scorer = CaseScorer(models, warm)
    picks = [n // 2 + (i * 7919) % (n - n // 2) for i in range(args.runs)]
    batches = {i: single_batch(refs, cases, contexts, master, i) for i in set(picks)}
    for i in sorted(batches):  # warm up: embed every text once, load MiniLM
        scorer.score(batches[i])

    figures: dict[str, float] = {}
    times: list[float] = []
    for i in picks:
        started = time.perf_counter()
        scorer.score(batches[i])
        times.append(time.perf_counter() - started)
    figures["single_warm_p50_ms"], figures["single_warm_p95_ms"] = _ms(times)
    for family in FAMILIES:
        one = CaseScorer({family: models[family]}, warm)
        per: list[float] = []
        for i in picks:
            started = time.perf_counter()
            one.score(batches[i])
            per.append(time.perf_counter() - started)
        figures[f"{family}_warm_p50_ms"], _ = _ms(per)

    cold: list[float] = []
    texts: list[int] = []
    for i in picks[: args.cold_runs]:
        fresh = TextEmbedder(None, encoder)  # empty cache; the model itself stays loaded
        started = time.perf_counter()
        CaseScorer(models, fresh).score(batches[i])
        cold.append(time.perf_counter() - started)
        texts.append(fresh.encoded)
    figures["single_cold_p50_ms"], figures["single_cold_p95_ms"] = _ms(cold)
    figures["cold_texts_per_case"] = statistics.mean(texts)

    by_size: dict[int, float] = defaultdict(float)
    for size in (100, 1000):
        size_n = min(size, n - 1)
        start = n - size_n
        batch = ScoreBatch(
            master,
            [PriorDocument(refs[i], cases[i]) for i in range(max(0, start - HISTORY_CAP), start)],
            [ScoreItem(refs[i], cases[i], contexts[i]) for i in range(start, n)],
        )
        scorer.score(batch)  # warm texts
        started = time.perf_counter()
        scorer.score(batch)
        by_size[size] = size_n / (time.perf_counter() - started)
        figures[f"batch{size}_cases_per_s"] = by_size[size]
        if size_n < size:
            print(f"note: batch{size} used {size_n} cases (world too small)")

    for key, value in figures.items():
        print(f"  {key:<26} {value:10.2f}")
    print(" ".join(f"{k}={v:.2f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
