"""Concurrent score requests share one pass through the models.

Each request reads its own inputs (its own transaction, its own supplier history) and hands
them here. A request that finds the models idle scores on its own thread at once; requests
that arrive meanwhile queue, and when the pass ends the oldest of them takes the lead and
scores everything queued in a single `CaseScorer.score_many` call. A model call costs about
the same for one row as for ten, so this is what lets one process answer many callers; and
no request is handed to another thread only to wait for it: with a dedicated scoring thread,
waking threads was a tenth of the server's CPU in the load bench's profile (bench/score_load.py).
The outputs are exactly those of scoring each request alone (tests/app/test_scoring.py).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

import structlog

from models.scoring import CaseScorer, FamilyScore, ScoreBatch

log = structlog.get_logger(__name__)

MAX_ROWS = 256  # documents per model pass; a larger request goes alone


@dataclass(eq=False)
class _Job:
    scorer: CaseScorer
    batch: ScoreBatch
    wake: threading.Event = field(default_factory=threading.Event)  # done, or asked to lead
    finished: bool = False
    result: list[list[FamilyScore]] | None = None
    error: Exception | None = None

    def settle(self, result: list[list[FamilyScore]] | None, error: Exception | None) -> None:
        self.result, self.error, self.finished = result, error, True
        self.wake.set()


class ScoreBatcher:
    """A queue of score jobs; the thread of the oldest waiting job scores the next group."""

    def __init__(self, max_rows: int = MAX_ROWS) -> None:
        self.max_rows = max_rows
        self._jobs: deque[_Job] = deque()
        self._lock = threading.Lock()
        self._busy = False  # a thread is scoring; while it is, every new job queues

    def score(self, scorer: CaseScorer, batch: ScoreBatch) -> list[list[FamilyScore]]:
        """Score one batch (blocks until done); the same result as `scorer.score(batch)`."""
        job = _Job(scorer, batch)
        with self._lock:
            self._jobs.append(job)
            leads = not self._busy
            self._busy = True
        if not leads:
            job.wake.wait()
        if not job.finished:  # this thread leads: its job heads the queue
            group = self._take()
            try:
                self._score(group)
            finally:
                for unsettled in (j for j in group if not j.finished):  # interrupted
                    unsettled.settle(None, RuntimeError("scoring was interrupted"))
                with self._lock:
                    if self._jobs:
                        self._jobs[0].wake.set()  # the oldest waiting job leads next
                    else:
                        self._busy = False
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    def _take(self) -> list[_Job]:
        with self._lock:
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

    @staticmethod
    def _score(group: list[_Job]) -> None:
        try:
            results = group[0].scorer.score_many([job.batch for job in group])
        except Exception as exc:
            if len(group) == 1:
                group[0].settle(None, exc)
                return
            # One bad request must not fail the others: score each alone to find it.
            log.warning("scoring.batch_failed_retrying_alone", jobs=len(group))
            for job in group:
                try:
                    job.settle(job.scorer.score(job.batch), None)
                except Exception as exc:
                    job.settle(None, exc)
            return
        for job, result in zip(group, results, strict=True):
            job.settle(result, None)


BATCHER = ScoreBatcher()
