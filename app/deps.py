"""FastAPI dependencies: settings, the per-request transaction and the blob store.

Dependencies that only read app state are `async def`: FastAPI runs a plain `def` one in its
thread pool, a hand-off between threads that a score request need not pay.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Annotated

import structlog
from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from app.apikeys.calls import STATE_KEY_ID
from app.apikeys.service import admit, identify
from app.audit.service import Actor
from app.blobs import BlobStore
from app.controls.denials import record_refusal
from app.db.session import read_only, transaction
from app.documents.parsing import Parser
from app.errors import AppError, Unauthorized
from app.limits import check_key_rate
from app.settings import Settings


async def get_settings_dep(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the handler returns, rolled back on error."""
    with transaction(request.app.state.session_factory) as session:
        yield session


async def get_read_session(request: Request) -> AsyncIterator[Session]:
    """One read-only transaction per request (scoring and lookups; no write lock on SQLite).

    Begun on the event loop (a session does no I/O before its first query) and ended in the
    thread pool (its rollback may wait on the database): a plain generator would send both
    ends to the thread pool.
    """
    unit = read_only(request.app.state.session_factory)
    session = unit.__enter__()
    try:
        yield session
    except BaseException as exc:
        await run_in_threadpool(unit.__exit__, type(exc), exc, exc.__traceback__)
        raise
    await run_in_threadpool(unit.__exit__, None, None, None)


async def get_blobs(request: Request) -> BlobStore:
    """The content-addressed document store."""
    return request.app.state.blobs


async def get_parser(request: Request) -> Parser:
    """The document parser (a sandboxed worker pool unless configured otherwise)."""
    return request.app.state.parser


_BEARER = HTTPBearer(auto_error=False, description="An API key: `Bearer tg_<id>_<secret>`")


READ_SCOPES = frozenset({"score", "cases:read"})  # the routes behind them only read


def api_key(scope: str) -> Callable[..., Actor]:
    """A dependency that admits callers whose API key carries `scope` (401/403 otherwise).

    It shares the route's session: the read-only one for `READ_SCOPES`.
    """
    session_dependency = get_read_session if scope in READ_SCOPES else get_session

    def dependency(
        request: Request,
        session: Session = Depends(session_dependency),  # noqa: B008 - see `credentials`
        # Security(scopes=…) names the scope in the OpenAPI security requirement (3.1 roles);
        # a default, not Annotated, because the string annotation cannot see `scope`.
        credentials: HTTPAuthorizationCredentials | None = Security(_BEARER, scopes=[scope]),  # noqa: B008
    ) -> Actor:
        if credentials is None:
            record_refusal(request, Actor("?", "anonymous"), "API_KEY_REQUIRED")
            raise Unauthorized(
                "an API key is required: send `Authorization: Bearer tg_…`",
                code="API_KEY_REQUIRED",
            )
        try:
            key = identify(session, credentials.credentials)
            # The call log (app/apikeys/calls.py) names this key, whatever the outcome from here.
            setattr(request.state, STATE_KEY_ID, key.key_id)
            actor = admit(key, scope)
        except AppError as exc:
            # End the request's transaction first: on SQLite its key lookup holds the write
            # lock (BEGIN IMMEDIATE), and the refusal's own transaction would wait on it.
            session.rollback()
            record_refusal(request, Actor("?", "api_key"), exc.code)  # the request rolls back
            raise
        structlog.contextvars.bind_contextvars(api_key=actor.name)
        check_key_rate(request, actor.name)
        return actor

    return dependency


SessionDep = Annotated[Session, Depends(get_session)]
ReadSessionDep = Annotated[Session, Depends(get_read_session)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
ParserDep = Annotated[Parser, Depends(get_parser)]
CasesReader = Annotated[Actor, Depends(api_key("cases:read"))]
DocumentsWriter = Annotated[Actor, Depends(api_key("documents:write"))]
