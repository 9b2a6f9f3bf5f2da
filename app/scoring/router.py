"""Scoring API: score documents for other systems without creating a case (scope `score`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.audit.service import Actor
from app.deps import SessionDep, SettingsDep, api_key
from app.scoring import service
from app.scoring.provider import get_provider
from app.scoring.schemas import (
    AnomalyOutput,
    DelayOutput,
    ModelRef,
    ReasonOutput,
    ScoreBatchRequest,
    ScoreBatchResult,
    ScoreRequest,
    ScoreResult,
)

# Error responses (401/403/413/422/429) are documented for every keyed route by app/api_docs.py.
router = APIRouter(prefix="/api/v1", tags=["scoring"])
Scorer = Annotated[Actor, Depends(api_key("score"))]


def _result(scored: service.DocumentScore) -> ScoreResult:
    by_family = {s.family: s for s in scored.scores}
    out: dict[str, Any] = {"reasons": None, "anomaly": None, "delay": None}
    for family, key, schema in (
        ("reason", "reasons", ReasonOutput),
        ("anomaly", "anomaly", AnomalyOutput),
        ("delay", "delay", DelayOutput),
    ):
        score = by_family.get(family)
        if score is None or not score.output:
            continue
        out[key] = schema.model_validate(
            {
                **score.output,
                "model": ModelRef(
                    name=score.model_name, version=score.version, run_id=score.run_id
                ),
                "explanation": score.explanation,
            }
        )
    return ScoreResult(
        supplier_ref=scored.supplier_ref, queue=scored.queue, findings=scored.findings, **out
    )


@router.post("/score", response_model=ScoreResult)
def score(
    session: SessionDep, settings: SettingsDep, caller: Scorer, body: ScoreRequest
) -> ScoreResult:
    """Match a canonical document against master data and score it with the serving models."""
    scored = service.score_documents(
        session,
        [body.document],
        scorer=get_provider(settings).scorer(),
        history_cap=settings.scoring_history_cap,
    )
    return _result(scored[0])


@router.post("/score:batch", response_model=ScoreBatchResult)
def score_batch(
    session: SessionDep, settings: SettingsDep, caller: Scorer, body: ScoreBatchRequest
) -> ScoreBatchResult:
    """Score up to 1,000 documents in one call (one model call per family)."""
    scored = service.score_documents(
        session,
        body.documents,
        scorer=get_provider(settings).scorer(),
        history_cap=settings.scoring_history_cap,
    )
    return ScoreBatchResult(results=[_result(s) for s in scored])
