"""Synthetic world generation speed: a whole world (master data, UBL, PDF, CSV, truth) on one core.

    python bench/generate_world.py --invoices 10000 [--runs 3] [--no-pdf]

Each run generates a world with seed 7 into a fresh temporary folder, in this one process (one
core), and times the two phases: building the world in memory and writing every file. The last
line prints the median total seconds and the target (issue 3: 10,000 invoices with PDFs and UBL
in under 120 s).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _machine import describe

from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world

TARGET_SECONDS = 120.0


def one_run(invoices: int, pdf: bool) -> tuple[float, float, int, int]:
    """(build seconds, write seconds, documents, PDFs) of one world."""
    with tempfile.TemporaryDirectory(prefix="tollgate-bench-") as tmp:
        started = time.perf_counter()
        world = generate_world(WorldConfig(invoices=invoices, seed=7))
        built = time.perf_counter()
        written = write_world(world, Path(tmp), pdf=pdf)
        done = time.perf_counter()
    return built - started, done - built, written.documents, written.pdfs


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--invoices", type=int, default=10000, help="invoices per world")
    parser.add_argument("--runs", type=int, default=3, help="runs (the median is reported)")
    parser.add_argument("--no-pdf", action="store_true", help="skip the PDFs")
    args = parser.parse_args()
    print(f"machine: {describe()}")
    totals = []
    for run in range(1, args.runs + 1):
        build, write, documents, pdfs = one_run(args.invoices, not args.no_pdf)
        totals.append(build + write)
        print(
            f"run {run}: {documents} documents ({pdfs} PDFs): build {build:.1f} s, "
            f"write {write:.1f} s, total {build + write:.1f} s, "
            f"{documents / (build + write):.0f} documents/s"
        )
    median = statistics.median(totals)
    verdict = "meets" if median < TARGET_SECONDS or args.invoices != 10000 else "MISSES"
    print(
        f"median total for {args.invoices} invoices: {median:.1f} s "
        f"({verdict} the target of {TARGET_SECONDS:.0f} s for 10,000 invoices with PDFs)"
    )


if __name__ == "__main__":
    main()
