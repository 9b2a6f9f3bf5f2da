"""The controller's promotion screen under /review/promotions: pending requests, evidence, decision.

Thin routes over `app.promotions.service`. A controller (or admin) sees each pending request
with its evaluation table (challenger beside champion, per slice, regressions marked) and
approves or rejects it; every POST carries the CSRF token and every outcome is audited. Refused
approvals are returned (403), not raised, so their audit rows commit with the request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.audit import service as audit
from app.deps import SessionDep
from app.errors import AppError, NotFound
from app.promotions import service as promotions
from app.users.service import LoggedIn, actor_of
from governance.promotion import DEFAULT_PROMOTION, Evaluation, compare
from models.registry import ModelRegistry, default_tracking_uri
from review_ui import auth, views
from review_ui.auth import LoginDep
from review_ui.router import templates

router = APIRouter(prefix="/review", include_in_schema=False)


def registry_of(request: Request) -> promotions.Registry:
    """The app's model registry (`app.state.model_registry` if set, else the settings' store)."""
    found = getattr(request.app.state, "model_registry", None)
    if found is None:
        found = ModelRegistry(default_tracking_uri(request.app.state.settings.data_dir))
        request.app.state.model_registry = found
    return found


def _page(
    request: Request, name: str, context: dict[str, Any], login: LoggedIn, status_code: int = 200
) -> HTMLResponse:
    base = {"me": login.user, "csrf": login.csrf_token, "can_work": views.can_work(login.user)}
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _may_decide(login: LoggedIn) -> bool:
    return login.user.role in DEFAULT_PROMOTION.approver_roles


def _refuse(request: Request, session: SessionDep, login: LoggedIn) -> HTMLResponse:
    audit.record(
        session,
        actor_of(login.user),
        "access.denied",
        "page",
        request.url.path[:200],
        after={"needs": "controller"},
    )
    return _page(
        request,
        "_message.html",
        {"error": f"Refused: promotions are for controllers; you are a {login.user.role}."},
        login,
        status_code=403,
    )


def _screen(
    request: Request,
    session: SessionDep,
    login: LoggedIn,
    *,
    error: str | None = None,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    pending = [
        {
            "row": row,
            "evaluation": row.evaluation,
            "comparison": compare(Evaluation.from_dict(row.evaluation)) if row.evaluation else [],
        }
        for row in promotions.pending(session)
    ]
    context = {
        "pending": pending,
        "history": [r for r in promotions.recent(session, 30) if r.state != "pending"],
        "switches": promotions.kill_switch_states(session),
        "error": error,
        "notice": notice,
    }
    return _page(request, "promotions.html", context, login, status_code=status_code)


@router.get("/promotions", response_class=HTMLResponse)
def promotions_view(request: Request, session: SessionDep, login: LoginDep) -> HTMLResponse:
    """Pending promotion requests with their evaluation tables, and what was decided before."""
    if not _may_decide(login):
        return _refuse(request, session, login)
    return _screen(request, session, login)


def _done(request: Request) -> Response:
    url = "/review/promotions?done=1"
    if auth.is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


@router.post("/promotions/{request_id}/approve")
def approve(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    request_id: int,
    reason: Annotated[str | None, Form(max_length=2000)] = None,
    override_reason: Annotated[str | None, Form(max_length=2000)] = None,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Approve: the gate rules; on success `champion` moves to the requested version."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    if not _may_decide(login):
        return _refuse(request, session, login)
    try:
        outcome = promotions.approve(
            session,
            registry_of(request),
            request_id,
            login.user,
            reason=reason,
            override_reason=override_reason,
        )
    except NotFound:
        raise
    except AppError as exc:
        return _screen(request, session, login, error=exc.message, status_code=exc.status_code)
    if not outcome.allowed:
        message = f"Approval refused: {outcome.message} ({outcome.denial})"
        return _screen(request, session, login, error=message, status_code=403)
    return _done(request)


@router.post("/promotions/{request_id}/reject")
def reject(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    request_id: int,
    reason: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Reject a pending request with a reason."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    if not _may_decide(login):
        return _refuse(request, session, login)
    try:
        promotions.reject(session, request_id, login.user, reason)
    except NotFound:
        raise
    except AppError as exc:
        return _screen(request, session, login, error=exc.message, status_code=exc.status_code)
    return _done(request)
