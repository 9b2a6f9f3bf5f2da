"""The FastAPI application: composition root of the service."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import api_docs
from app.apikeys.calls import CallLogMiddleware, CallRecorder
from app.blobs import BlobStore
from app.cases.router import router as cases_router
from app.db.session import make_engine, make_session_factory
from app.documents.parsing import make_parser
from app.documents.router import router as documents_router
from app.erp.service import RetryPolicy, make_adapter
from app.erp.worker import InProcessWorker
from app.errors import AppError
from app.limits import BodyLimitMiddleware, BodyLimitStats, Limiters, RateLimited
from app.logs import configure_logging
from app.scoring.router import router as scoring_router
from app.settings import Settings, get_settings
from review_ui.router import install as install_review_ui
from review_ui.router import router as review_router
from review_ui.router import static_files

log = structlog.get_logger(__name__)

# No inline script or style anywhere in Tollgate's own pages: the review UI's JS is static files.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
# The offline Swagger UI and ReDoc pages start themselves with an inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; "
    "object-src 'none'"
)
DOCS_PATHS = ("/docs", "/redoc")


def security_headers(path: str, headers: dict[str, str]) -> dict[str, str]:
    """The security headers of a response to `path` (existing values win)."""
    wanted = {
        "Content-Security-Policy": DOCS_CSP if path.startswith(DOCS_PATHS) else CSP,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }
    if path.startswith("/review"):
        # Review pages show who holds what and carry CSRF tokens: never from a cache.
        wanted["Cache-Control"] = "no-store"
    return {k: v for k, v in wanted.items() if k.lower() not in headers}


class RequestContextMiddleware:
    """The request id in the log context and on the response, and the security headers.

    Plain ASGI: starlette's BaseHTTPMiddleware (`@app.middleware("http")`) runs the app in a
    task group with stream plumbing, which was a tenth of a score request's CPU.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Bind the request id, then add the headers to the response start."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = (Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex)[:64]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                present = {k.lower(): v for k, v in headers.items()}
                for name, value in security_headers(path, present).items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(
    settings: Settings | None = None, session_factory: sessionmaker[Session] | None = None
) -> FastAPI:
    """Build the app; tests pass their own settings and session factory."""
    settings = settings or get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    parser = make_parser(settings)
    factory = session_factory or make_session_factory(make_engine(settings.database_url))
    calls = CallRecorder.from_settings(factory, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The embedded demo posts approved invoices from inside the web process; production
        # runs `tollgate worker` processes instead.
        worker = (
            InProcessWorker(
                factory, make_adapter(settings), policy=RetryPolicy.from_settings(settings)
            )
            if settings.worker_in_process
            else None
        )
        if worker is not None:
            worker.start()
        # Tests hand the app their one open session as its factory; a session is not
        # thread-safe, so their API calls are written at shutdown (or by the test), not by a
        # thread racing the requests.
        if isinstance(factory, sessionmaker):
            calls.start()
        yield
        if worker is not None:
            worker.stop()
        await run_in_threadpool(calls.stop)  # write the calls still buffered
        parser.close()  # stop the parsing workers with the service

    # FastAPIOffline serves the Swagger UI and ReDoc assets from the package: no CDN at run time.
    app = FastAPIOffline(
        title="Tollgate",
        version="0.1.0",
        description="Accounts-payable exception triage with a human sign-off gate.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.session_factory = factory
    app.state.blobs = BlobStore(settings.blobs)
    app.state.parser = parser
    app.state.limiters = Limiters.from_settings(settings)
    app.state.body_limit = BodyLimitStats()
    app.state.api_calls = calls
    # Added before the request-context middleware so that it runs inside it: a 413 carries the
    # request id and the security headers too.
    app.add_middleware(BodyLimitMiddleware, settings=settings, stats=app.state.body_limit)

    app.add_middleware(RequestContextMiddleware)

    # Added last, so outermost: it sees the final status and the request id set above.
    app.add_middleware(CallLogMiddleware, recorder=calls)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        headers = {}
        if isinstance(exc, RateLimited):
            headers["Retry-After"] = str(exc.details["retry_after"])
            if request.url.path.startswith("/review"):
                return HTMLResponse(
                    "<p class='error' role='alert'>Too many requests: wait "
                    f"{exc.details['retry_after']} s and try again.</p>",
                    status_code=429,
                    headers=headers,
                )
        return JSONResponse(status_code=exc.status_code, content=exc.to_dict(), headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))} for e in exc.errors()
        ]
        return JSONResponse(
            status_code=422,
            content={
                "code": "INVALID_REQUEST",
                "message": "the request is not valid",
                "details": {"errors": errors},
            },
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("request.unhandled", error=type(exc).__name__)
        return JSONResponse(
            status_code=500,
            content={"code": "INTERNAL", "message": "unexpected error; it has been logged"},
        )

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        """Liveness."""
        return {"status": "ok"}

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/review")

    app.include_router(documents_router)
    app.include_router(cases_router)
    app.include_router(review_router)
    app.include_router(scoring_router)
    install_review_ui(app)
    app.mount("/static", static_files(), name="static")
    api_docs.install(app)
    return app
