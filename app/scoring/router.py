"""Scoring API: score documents for other systems without creating a case (scope `score`)."""

from __future__ import annotations

from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, File, UploadFile
from starlette.concurrency import run_in_threadpool

from app.audit.service import Actor
from app.deps import ParserDep, ReadSessionDep, SettingsDep, api_key
from app.documents.parsing import Parser
from app.limits import read_bounded_upload
from app.scoring import service
from app.scoring.provider import get_provider
from app.scoring.schemas import (
    AnomalyOutput,
    DelayOutput,
    FieldReadingOut,
    ModelRef,
    ReasonOutput,
    ScoreBatchRequest,
    ScoreBatchResult,
    ScoreDocumentResult,
    ScoreRequest,
    ScoreResult,
)
from app.settings import Settings

log = structlog.get_logger(__name__)

# Error responses (401/403/413/422/429) are documented for every keyed route by app/api_docs.py.
router = APIRouter(prefix="/api/v1", tags=["scoring"])
Scorer = Annotated[Actor, Depends(api_key("score"))]


def _outputs(scored: service.DocumentScore) -> dict[str, Any]:
    """The fields of a ScoreResult for one scored document."""
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
    return {
        "supplier_ref": scored.supplier_ref,
        "queue": scored.queue,
        "findings": scored.findings,
        **out,
    }


def _result(scored: service.DocumentScore) -> ScoreResult:
    return ScoreResult(**_outputs(scored))


@router.post("/score", response_model=ScoreResult)
def score(
    session: ReadSessionDep, settings: SettingsDep, caller: Scorer, body: ScoreRequest
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
    session: ReadSessionDep, settings: SettingsDep, caller: Scorer, body: ScoreBatchRequest
) -> ScoreBatchResult:
    """Score up to 1,000 documents in one call (one model call per family)."""
    scored = service.score_documents(
        session,
        body.documents,
        scorer=get_provider(settings).scorer(),
        history_cap=settings.scoring_history_cap,
    )
    return ScoreBatchResult(results=[_result(s) for s in scored])


def _score_upload(
    session: ReadSessionDep, settings: Settings, parser: Parser, data: bytes
) -> ScoreDocumentResult:
    """Read the upload and score what was read; nothing is stored."""
    parsed = service.read_upload(session, parser, data)
    scored = service.score_documents(
        session,
        [parsed.document],
        scorer=get_provider(settings).scorer(),
        history_cap=settings.scoring_history_cap,
    )
    extraction = (
        {name: FieldReadingOut.model_validate(reading) for name, reading in parsed.fields.items()}
        if parsed.fields
        else None
    )
    return ScoreDocumentResult(
        **_outputs(scored[0]),
        detected_format=parsed.format.value,
        document=parsed.document,
        extraction=extraction,
    )


@router.post(
    "/score:document",
    response_model=ScoreDocumentResult,
    responses={
        413: {"description": "The file is larger than the upload limit"},
        422: {
            "description": "The file cannot be read (the code is the parser's, e.g. "
            "UNSUPPORTED_FORMAT or CORRUPT_PDF) or holds several documents "
            "(ONE_DOCUMENT_EXPECTED: use /api/v1/score:batch)"
        },
    },
)
async def score_document(
    session: ReadSessionDep,
    settings: SettingsDep,
    parser: ParserDep,
    caller: Scorer,
    file: Annotated[
        UploadFile, File(description="one invoice, credit note or claim: PDF, UBL, CII or CSV")
    ],
) -> ScoreDocumentResult:
    """Read an uploaded file and score it like POST /score; no document or case is stored."""
    data = await read_bounded_upload(file, settings.max_upload_bytes)
    # Parsing waits on a sandbox worker and scoring runs the models: off the event loop.
    return await run_in_threadpool(_score_upload, session, settings, parser, data)
