"""The review screens: login, the case queue, a case, and the governed actions on it.

Conventions (DESIGN §9.8): the same route renders a full page or, for htmx (`HX-Request`), the
fragment it swaps; forms re-render in place with the error's status (403, 409, 422); a successful
action answers `HX-Redirect` (htmx) or 303 (plain forms); every POST carries the CSRF token.
Refused signatures are outcomes, not exceptions, so their audit rows commit with the request.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.blobs import BlobStore
from app.cases import service
from app.cases.repository import CaseFilter
from app.db.tables import DecisionAction, FeedbackKind
from app.deps import BlobsDep, SessionDep
from app.errors import AppError, NotFound
from app.limits import login_guard, with_retry_after
from app.reviews import service as reviews
from app.reviews import work
from app.users import service as users
from app.users.service import LoggedIn
from pipelines.reasons import REASONS, ReasonCode
from review_ui import auth, views
from review_ui.auth import LoginDep, LoginRequired

HERE = Path(__file__).resolve().parent
HTMX_VERSION = "2.0.11"
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.globals["HTMX_JS"] = f"/static/vendor/htmx-{HTMX_VERSION}.min.js"
router = APIRouter(prefix="/review", include_in_schema=False)

# The decision form's "action" field: the service's actions plus handing the claim back.
HAND_BACK = "handback"
FORM_ACTIONS = {
    "sign": DecisionAction.SIGN,
    "reject": DecisionAction.REJECT,
    "hold": DecisionAction.HOLD,
    "release": DecisionAction.RELEASE,
}
FEEDBACK_LABELS = {
    FeedbackKind.MODEL_WRONG: "the model is wrong",
    FeedbackKind.POLICY_EXCEPTION: "policy exception",
    FeedbackKind.BUSINESS_OVERRIDE: "business decision",
}
CASE_STATES = [
    "new",
    "triaged",
    "in_review",
    "on_hold",
    "approved",
    "posting",
    "posted",
    "rejected",
    "posting_failed",
]


def static_files() -> StaticFiles:
    """The vendored CSS and JS served under /static."""
    return StaticFiles(directory=str(HERE / "static"))


def install(app: FastAPI) -> None:
    """Answer requests without a live login with a redirect to the login page."""

    async def _login_required(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginRequired)
        return auth.login_required_response(exc)

    app.add_exception_handler(LoginRequired, _login_required)
    from review_ui.controller import router as controller_router  # it imports this module

    app.include_router(controller_router)
    from review_ui.promotions import router as promotions_router  # it imports this module

    app.include_router(promotions_router)


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    login: LoggedIn | None,
    status_code: int = 200,
) -> HTMLResponse:
    base = {
        "me": login.user if login else None,
        "csrf": login.csrf_token if login else "",
        "can_work": views.can_work(login.user) if login else False,
        "REASONS": REASONS,
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _go(request: Request, url: str) -> Response:
    """After a successful action: HX-Redirect for htmx, 303 See Other for a plain form."""
    if auth.is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# -- login -------------------------------------------------------------------------------------


def _login_page(
    request: Request, next_url: str, error: str | None, status_code: int
) -> HTMLResponse:
    token = secrets.token_urlsafe(24)
    page = _page(
        request,
        "login.html",
        {"next": next_url, "error": error, "login_csrf": token},
        None,
        status_code=status_code,
    )
    auth.set_login_csrf(request, page, token)
    return page


@router.get("/login", response_class=HTMLResponse)
def login_form(
    request: Request, next: Annotated[str | None, Query(max_length=500)] = None
) -> HTMLResponse:
    """The login page."""
    return _login_page(request, auth.safe_next(next), None, 200)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=1000)] = "",
    next: Annotated[str, Form(max_length=500)] = "/review",
    login_csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """Check the credentials, open a session and go where the user was heading."""
    target = auth.safe_next(next)
    if not auth.login_csrf_ok(request, login_csrf):
        return _login_page(request, target, "The login form expired; please try again.", 403)
    try:
        lifetime, guard = auth.SESSION_LIFETIME, login_guard(request)
        found = users.log_in(session, username, password, lifetime=lifetime, guard=guard)
    except AppError as exc:
        # The failed attempt was audited by the service; returning (not raising) commits it.
        return with_retry_after(_login_page(request, target, exc.message, 401), exc)
    response = RedirectResponse(target, status_code=303)
    auth.set_session_cookie(request, response, found.token)
    response.delete_cookie(auth.LOGIN_CSRF_COOKIE, path=auth.LOGIN_PATH)
    return response


@router.post("/logout")
def logout(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """End the session and forget the cookie."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    users.log_out(session, login.token)
    response = _go(request, auth.LOGIN_PATH)
    auth.clear_session_cookie(request, response)
    return response


# -- queue -------------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
def queue(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    state: Annotated[str | None, Query(max_length=20)] = None,
    reason: Annotated[str | None, Query(max_length=32)] = None,
    supplier: Annotated[str | None, Query(max_length=64)] = None,
    page: Annotated[int, Query(ge=1)] = 1,
    done: Annotated[int | None, Query(ge=1)] = None,
    empty: Annotated[int | None, Query(ge=0, le=1)] = None,
) -> HTMLResponse:
    """The case list, most urgent first, with claim holders and SLA badges."""
    valid_reason = reason if reason in ReasonCode.__members__ else None
    flt = CaseFilter(state=state or None, reason=valid_reason, supplier_ref=supplier or None)
    result = service.list_cases(session, flt, page, 50)
    notice = None
    if done is not None:
        try:
            decided = service.get_case(session, done)
            notice = f"Case {decided.id} is now {decided.state.replace('_', ' ')}."
        except NotFound:
            notice = None
    elif empty:
        notice = "Nothing left to claim: every open case is taken or closed."
    context = {
        "page": result,
        "flt": flt,
        "reasons": list(ReasonCode),
        "states": CASE_STATES,
        "claims": views.claims_for(session, result.items, login.user),
        "badge": views.sla_badge,
        "notice": notice,
    }
    name = "_queue_table.html" if auth.wants_fragment(request) else "queue.html"
    return _page(request, name, context, login)


@router.post("/claim-next")
def claim_next(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Claim the most urgent free case and open it."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        claimed = reviews.claim_next(session, login.user)
    except AppError as exc:
        return _page(
            request, "_message.html", {"error": exc.message}, login, status_code=exc.status_code
        )
    if claimed is None:
        return _go(request, "/review?empty=1")
    return _go(request, f"/review/cases/{claimed.case_id}")


# -- one case ----------------------------------------------------------------------------------


def _render_case(
    request: Request,
    session: SessionDep,
    login: LoggedIn,
    case_id: int,
    *,
    error: str | None = None,
    status_code: int = 200,
    fragment: bool = False,
    blobs: BlobStore | None = None,
    error_for: str = "work",
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    case = service.get_case(session, case_id)
    state = views.case_work(session, case_id, login.user)
    context: dict[str, Any] = {
        "case": case,
        "work": state,
        "error": error if error_for == "work" else None,
        "form_error": error if error_for != "work" else None,
        "error_for": error_for,
        "form": form or {},
        "badge": views.sla_badge,
        "cells": views.CELL_OF,
        "FEEDBACK": [(k.value, FEEDBACK_LABELS[k]) for k in FeedbackKind],
    }
    store = blobs if blobs is not None else request.app.state.blobs
    context["view"] = views.case_page(session, store, case, login.user)
    name = "case.html"
    if fragment:
        name = "_work.html" if error_for == "work" else "_case_body.html"
    return _page(request, name, context, login, status_code=status_code)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_detail(
    request: Request, session: SessionDep, login: LoginDep, case_id: int
) -> HTMLResponse:
    """One case: document, fields, findings, match table, model outputs, decisions, history."""
    fragment = auth.wants_fragment(request)
    return _render_case(request, session, login, case_id, fragment=fragment, error_for="page")


@router.post("/cases/{case_id}/claim")
def claim_case(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_id: int,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Claim this case (or renew one's own claim)."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        reviews.claim(session, case_id, login.user)
    except NotFound:
        raise
    except AppError as exc:
        return _render_case(
            request,
            session,
            login,
            case_id,
            error=exc.message,
            status_code=exc.status_code,
            fragment=auth.is_htmx(request),
        )
    return _go(request, f"/review/cases/{case_id}")


@router.post("/cases/{case_id}/decide")
def decide(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_id: int,
    action: Annotated[str, Form(max_length=20)] = "",
    token: Annotated[str, Form(max_length=100)] = "",
    version: Annotated[int, Form(ge=0)] = 0,
    reason: Annotated[str | None, Form(max_length=2000)] = None,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Sign, reject, hold, release from hold, or hand the claim back."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    fragment = auth.is_htmx(request)
    try:
        if action == HAND_BACK:
            reviews.release(session, case_id, login.user, token)
            return _go(request, f"/review?done={case_id}")
        if action not in FORM_ACTIONS:
            return _render_case(
                request,
                session,
                login,
                case_id,
                error=f"Unknown action {action[:20]!r}.",
                status_code=422,
                fragment=fragment,
            )
        outcome = reviews.decide(
            session,
            case_id,
            login.user,
            token=token,
            version=version,
            action=FORM_ACTIONS[action],
            reason=(reason or "").strip() or None,
        )
    except NotFound:
        raise
    except AppError as exc:
        return _render_case(
            request,
            session,
            login,
            case_id,
            error=exc.message,
            status_code=exc.status_code,
            fragment=fragment,
        )
    if not outcome.allowed:
        message = f"Signature refused: {outcome.message} ({outcome.denial})"
        return _render_case(
            request, session, login, case_id, error=message, status_code=403, fragment=fragment
        )
    if action == "release":
        return _go(request, f"/review/cases/{case_id}")  # back in review, still claimed
    return _go(request, f"/review?done={case_id}")


# -- the case page's document and the clerk's other decisions ----------------------------------


@router.get("/cases/{case_id}/pages/{page}.png")
def case_page_image(
    session: SessionDep, blobs: BlobsDep, login: LoginDep, case_id: int, page: int
) -> Response:
    """One page of the case's PDF as an image (logged-in users only)."""
    png = views.page_png(session, blobs, case_id, page)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


def _refused_in_place(
    request: Request,
    session: SessionDep,
    login: LoggedIn,
    case_id: int,
    exc: AppError,
    error_for: str,
    form: dict[str, Any] | None = None,
) -> HTMLResponse:
    return _render_case(
        request,
        session,
        login,
        case_id,
        error=exc.message,
        status_code=exc.status_code,
        fragment=auth.is_htmx(request),
        error_for=error_for,
        form=form,
    )


@router.post("/cases/{case_id}/correct")
def correct_field(
    request: Request,
    session: SessionDep,
    blobs: BlobsDep,
    login: LoginDep,
    case_id: int,
    field: Annotated[str, Form(max_length=40)] = "",
    value: Annotated[str, Form(max_length=500)] = "",
    token: Annotated[str, Form(max_length=100)] = "",
    version: Annotated[int, Form(ge=0)] = 0,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Correct one extracted field; the case is matched again and the corrector cannot sign."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        work.correct_field(
            session,
            case_id,
            login.user,
            token=token,
            version=version,
            field=field,
            value=value,
            blobs=blobs,
        )
    except NotFound:
        raise
    except AppError as exc:
        return _refused_in_place(
            request, session, login, case_id, exc, f"field-{field}", {"value": value}
        )
    return _go(request, f"/review/cases/{case_id}")


@router.post("/cases/{case_id}/reasons")
def confirm_reasons(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_id: int,
    codes: Annotated[list[str] | None, Form(max_length=32)] = None,
    feedback: Annotated[str | None, Form(max_length=30)] = None,
    note: Annotated[str | None, Form(max_length=2000)] = None,
    token: Annotated[str, Form(max_length=100)] = "",
    version: Annotated[int, Form(ge=0)] = 0,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Confirm the reason labels of a case (overriding the model asks why)."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        work.confirm_reasons(
            session,
            case_id,
            login.user,
            token=token,
            version=version,
            codes=codes or [],
            feedback=feedback or None,
            note=note,
        )
    except NotFound:
        raise
    except AppError as exc:
        return _refused_in_place(
            request, session, login, case_id, exc, "reasons", {"codes": codes or []}
        )
    return _go(request, f"/review/cases/{case_id}")


@router.post("/cases/{case_id}/reassign")
def reassign(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_id: int,
    to: Annotated[str, Form(max_length=64)] = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
    token: Annotated[str, Form(max_length=100)] = "",
    version: Annotated[int, Form(ge=0)] = 0,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Hand the claimed case to another clerk or approver."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        work.reassign(
            session,
            case_id,
            login.user,
            token=token,
            version=version,
            to_username=to,
            reason=reason,
        )
    except NotFound:
        raise
    except AppError as exc:
        return _refused_in_place(request, session, login, case_id, exc, "work")
    return _go(request, f"/review?done={case_id}")


@router.post("/cases/{case_id}/retry-posting")
def retry_posting(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_id: int,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Send a dead-lettered ERP posting again."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        work.retry_posting(session, case_id, login.user)
    except NotFound:
        raise
    except AppError as exc:
        return _refused_in_place(request, session, login, case_id, exc, "work")
    return _go(request, f"/review/cases/{case_id}")


@router.post("/bulk-sign", response_class=HTMLResponse)
def bulk_sign(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_ids: Annotated[list[int] | None, Form()] = None,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Sign the ticked clean cases, each checked by governance; refusals are listed."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    try:
        lines = work.bulk_sign(session, login.user, case_ids or [])
    except AppError as exc:
        return _page(
            request, "_message.html", {"error": exc.message}, login, status_code=exc.status_code
        )
    page = _page(request, "_bulk_result.html", {"lines": lines}, login)
    page.headers["HX-Trigger"] = "casesChanged"
    return page
