"""Read-only review screens: the case queue and a case with its findings and match table.

The governed actions (claim, approve, reject, hold) arrive with the review-queue issue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.cases import service
from app.cases.repository import CaseFilter
from app.deps import SessionDep
from pipelines.reasons import REASONS, ReasonCode

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(prefix="/review", include_in_schema=False)


def static_files() -> StaticFiles:
    """The vendored CSS and JS served under /static."""
    return StaticFiles(directory=str(HERE / "static"))


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    session: SessionDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    reason: Annotated[str | None, Query(max_length=32)] = None,
    supplier: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """The case list, most urgent first."""
    valid_reason = reason if reason in ReasonCode.__members__ else None
    flt = CaseFilter(state=state or None, reason=valid_reason, supplier_ref=supplier or None)
    result = service.list_cases(session, flt, page, 50)
    return templates.TemplateResponse(
        request,
        "queue.html",
        {"page": result, "flt": flt, "reasons": list(ReasonCode), "REASONS": REASONS},
    )


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_detail(request: Request, session: SessionDep, case_id: int) -> HTMLResponse:
    """One case: header, findings with tolerances, match table and history."""
    case = service.get_case(session, case_id)
    return templates.TemplateResponse(request, "case.html", {"case": case, "REASONS": REASONS})
