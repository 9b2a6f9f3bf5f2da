"""Case API: list and read cases."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.cases import service
from app.cases.repository import CaseFilter
from app.cases.schemas import CaseDetail, CasePage
from app.db.tables import CaseState
from app.deps import CasesReader, ReadSessionDep
from pipelines.reasons import ReasonCode

# Bounds that keep offsets and ids inside a database integer: a larger value is a 422, not a 500.
MAX_PAGE = 100_000
MAX_ID = 2**31 - 1

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])


@router.get("", response_model=CasePage)
def list_cases(
    session: ReadSessionDep,
    _caller: CasesReader,
    state: CaseState | None = None,
    reason: ReasonCode | None = None,
    supplier: Annotated[str | None, Query(description="supplier ref", max_length=64)] = None,
    queue: Annotated[str | None, Query(max_length=32)] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> CasePage:
    """Cases, most urgent first, filtered by state, reason, supplier or queue."""
    flt = CaseFilter(
        state=state.value if state else None,
        reason=reason.value if reason else None,
        supplier_ref=supplier,
        queue=queue,
    )
    return service.list_cases(session, flt, page, page_size)


@router.get("/{case_id}", response_model=CaseDetail)
def get_case(
    session: ReadSessionDep, _caller: CasesReader, case_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> CaseDetail:
    """One case with findings, match table, document and history."""
    return service.get_case(session, case_id)
