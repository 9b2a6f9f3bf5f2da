"""API schemas for documents."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class DocumentOut(BaseModel):
    """A stored document and the outcome of reading it."""

    id: int
    sha256: str
    size_bytes: int
    filename: str | None
    media_type: str | None
    intake_channel: str
    detected_format: str | None
    parse_status: str
    parse_error_code: str | None
    parse_error_message: str | None
    received_at: datetime


class IngestResult(BaseModel):
    """What happened to an upload: the document, its case, and whether it was new."""

    document: DocumentOut
    case_id: int | None
    created: bool
    state: str | None = None
    reasons: list[str] = []


class DocumentPage(BaseModel):
    """A page of documents."""

    items: list[DocumentOut]
    total: int
    page: int
    page_size: int
