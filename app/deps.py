"""FastAPI dependencies: settings, the per-request transaction and the blob store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.blobs import BlobStore
from app.db.session import transaction
from app.documents.parsing import Parser
from app.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with transaction(request.app.state.session_factory) as session:
        yield session


def get_blobs(request: Request) -> BlobStore:
    """The content-addressed document store."""
    return request.app.state.blobs


def get_parser(request: Request) -> Parser:
    """The document parser (a sandboxed worker pool unless configured otherwise)."""
    return request.app.state.parser


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
ParserDep = Annotated[Parser, Depends(get_parser)]
