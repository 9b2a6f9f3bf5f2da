"""Document intake API: upload a file, read back what was stored."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Path, Query, Response, UploadFile, status
from fastapi.responses import JSONResponse

from app.deps import (
    BlobsDep,
    CasesReader,
    DocumentsWriter,
    ParserDep,
    ReadSessionDep,
    SessionDep,
    SettingsDep,
)
from app.documents import repository, service
from app.documents.schemas import DocumentOut, DocumentPage, IngestResult
from app.errors import InvalidInput
from app.limits import read_bounded_upload
from pipelines.parsers import ParseLimits

# Bounds that keep offsets and ids inside a database integer: a larger value is a 422, not a 500.
MAX_PAGE = 100_000
MAX_ID = 2**31 - 1

router = APIRouter(prefix="/api/v1/documents", tags=["documents"])


@router.post(
    "",
    response_model=IngestResult,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"description": "These bytes were stored before; the existing document is returned"},
        413: {"description": "The file is larger than the upload limit"},
        422: {"description": "Stored, but it could not be read; the body names the reason"},
    },
)
async def upload_document(
    session: SessionDep,
    blobs: BlobsDep,
    settings: SettingsDep,
    parser: ParserDep,
    caller: DocumentsWriter,
    response: Response,
    file: Annotated[UploadFile, File(description="invoice, credit note or claim")],
) -> IngestResult | JSONResponse:
    """Store a document, read it, match it and open a case."""
    data = await read_bounded_upload(file, settings.max_upload_bytes)
    outcome = service.ingest_bytes(
        session,
        blobs,
        data,
        filename=file.filename,
        media_type=file.content_type,
        channel="api",
        actor=caller,
        limits=ParseLimits(max_bytes=settings.max_parse_bytes),
        parser=parser,
    )
    result = IngestResult(
        document=DocumentOut.model_validate(outcome.document, from_attributes=True),
        case_id=outcome.case.id if outcome.case else None,
        created=outcome.created,
        state=outcome.case.state if outcome.case else None,
        reasons=outcome.reasons,
    )
    if outcome.document.parse_error_code:
        # Stored (nothing is lost) but unreadable: the caller must learn why.
        error = InvalidInput(
            outcome.document.parse_error_message or "the document could not be read",
            code=outcome.document.parse_error_code,
            details={"document_id": outcome.document.id},
        )
        return JSONResponse(status_code=error.status_code, content=error.to_dict())
    if not outcome.created:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("", response_model=DocumentPage)
def list_documents(
    session: ReadSessionDep,
    settings: SettingsDep,
    _caller: CasesReader,
    parse_status: Annotated[str | None, Query(alias="status", pattern="^(parsed|failed)$")] = None,
    page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> DocumentPage:
    """Stored documents, newest first; `status=failed` lists what could not be read."""
    rows, total = repository.list_documents(
        session, parse_status, (page - 1) * page_size, page_size
    )
    return DocumentPage(
        items=[DocumentOut.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        page=page,
        page_size=page_size,
    )


@router.get("/{document_id}", response_model=DocumentOut)
def get_document(
    session: ReadSessionDep,
    _caller: CasesReader,
    document_id: Annotated[int, Path(ge=1, le=MAX_ID)],
) -> DocumentOut:
    """One stored document and the outcome of reading it."""
    return DocumentOut.model_validate(
        service.get_document(session, document_id), from_attributes=True
    )
