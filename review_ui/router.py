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

from app.cases import service
from app.cases.repository import CaseFilter
from app.db.tables import DecisionAction
from app.deps import SessionDep
from app.errors import AppError, NotFound
from app.reviews import service as reviews
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
        found = users.log_in(session, username, password, lifetime=auth.SESSION_LIFETIME)
    except AppError as exc:
        # The failed attempt was audited by the service; returning (not raising) commits it.
        return _login_page(request, target, exc.message, 401)
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
) -> HTMLResponse:
    case = service.get_case(session, case_id)
    work = views.case_work(session, case_id, login.user)
    context = {"case": case, "work": work, "error": error, "badge": views.sla_badge}
    name = "_work.html" if fragment else "case.html"
    return _page(request, name, context, login, status_code=status_code)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_detail(
    request: Request, session: SessionDep, login: LoginDep, case_id: int
) -> HTMLResponse:
    """One case: header, claim and decisions, findings, match table and history."""
    return _render_case(request, session, login, case_id, fragment=auth.wants_fragment(request))


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
