"""Concurrent score requests share one pass through the models.

Each request reads its own inputs (its own transaction, its own supplier history) and hands
them here; one thread scores whatever has queued while it was busy in a single
`CaseScorer.score_many` call. Nothing waits on purpose: a lone request is scored at once, and
under load the rows of concurrent requests go through each model together. A model call costs
about the same for one row as for ten, so this is what lets one process answer many callers.
The outputs are exactly those of scoring each request alone (tests/app/test_scoring.py).
"""

from __future__ import annotations

import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

import structlog

from models.scoring import CaseScorer, FamilyScore, ScoreBatch

log = structlog.get_logger(__name__)

MAX_ROWS = 256  # documents per model pass; a larger request goes alone


@dataclass
class _Job:
    scorer: CaseScorer
    batch: ScoreBatch
    future: Future[list[list[FamilyScore]]] = field(default_factory=Future)


class ScoreBatcher:
    """A queue of score jobs and the one thread that scores them, several at a time."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._jobs: deque[_Job] = deque()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def score(self, scorer: CaseScorer, batch: ScoreBatch) -> list[list[FamilyScore]]:
        """Score one batch (blocks until done); the same result as `scorer.score(batch)`."""
        job = _Job(scorer, batch)
        with self._ready:
            self._jobs.append(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="score-batcher", daemon=True)
                self._thread.start()
            self._ready.notify()
        return job.future.result()

    def _take(self) -> list[_Job]:
        with self._ready:
            while not self._jobs:
                self._ready.wait()
            first = self._jobs.popleft()
            group, rows = [first], len(first.batch.items)
            # Only jobs for the same model versions share a pass (an alias may have moved).
            while (
                self._jobs
                and self._jobs[0].scorer is first.scorer
                and rows + len(self._jobs[0].batch.items) <= self.max_rows
            ):
                job = self._jobs.popleft()
                group.append(job)
                rows += len(job.batch.items)
            return group

    def _run(self) -> None:
        while True:
            group = self._take()
            try:
                results = group[0].scorer.score_many([job.batch for job in group])
            except Exception as exc:
                if len(group) == 1:
                    group[0].future.set_exception(exc)
                    continue
                # One bad request must not fail the others: score each alone to find it.
                log.warning("scoring.batch_failed_retrying_alone", jobs=len(group))
                for job in group:
                    try:
                        job.future.set_result(job.scorer.score(job.batch))
                    except Exception as exc:
                        job.future.set_exception(exc)
                continue
            for job, result in zip(group, results, strict=True):
                job.future.set_result(result)


BATCHER = ScoreBatcher()
