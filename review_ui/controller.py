"""The controller's audit view and everyone's dashboard, under /review.

Thin routes over `app.controls.service`: the decision log (filters, pages, CSV with totals),
model-vs-human agreement per model version, the audit-sample queue, and chain verification.
Refusals are returned, not raised, so their audit rows commit with the request.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from app.controls import service as controls
from app.controls.repository import DecisionFilter
from app.db.base import utcnow
from app.deps import SessionDep
from app.errors import AppError, NotFound
from app.users.service import LoggedIn
from pipelines.reasons import REASONS, ReasonCode
from review_ui import auth, views
from review_ui.auth import LoginDep
from review_ui.router import templates

router = APIRouter(prefix="/review", include_in_schema=False)
PAGE_SIZE = 50


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    login: LoggedIn,
    status_code: int = 200,
) -> HTMLResponse:
    base = {
        "me": login.user,
        "csrf": login.csrf_token,
        "can_work": views.can_work(login.user),
        "can_control": controls.may_control(login.user),
        "REASONS": REASONS,
    }
    return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)


def _refuse(request: Request, session: SessionDep, login: LoggedIn, needs: str) -> HTMLResponse:
    controls.record_denial(session, login.user, needs, request.url.path)
    return _page(
        request,
        "_message.html",
        {"error": f"Refused: this page is for {needs}s; you are signed in as a {login.user.role}."},
        login,
        status_code=403,
    )


def _day(text: str | None) -> date | None:
    try:
        return date.fromisoformat(text) if text else None
    except ValueError:
        return None


def _filter(
    date_from: str | None,
    date_to: str | None,
    user: str | None,
    action: str | None,
    reason: str | None,
    supplier: str | None,
    model_version: str | None,
) -> DecisionFilter:
    start, end = _day(date_from), _day(date_to)
    return DecisionFilter(
        date_from=datetime.combine(start, time.min, UTC) if start else None,
        # The "to" day is inclusive on the form; the query wants the next midnight.
        date_to=datetime.combine(end + timedelta(days=1), time.min, UTC) if end else None,
        username=user or None,
        action=action or None,
        reason=reason if reason in ReasonCode.__members__ else None,
        supplier=(supplier or "").strip() or None,
        model_version=model_version or None,
    )


Text = Annotated[str | None, Query(max_length=64)]


@router.get("/controller", response_class=HTMLResponse)
def controller_view(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    date_from: Text = None,
    date_to: Text = None,
    user: Text = None,
    action: Text = None,
    reason: Text = None,
    supplier: Text = None,
    model_version: Text = None,
    page: Annotated[int, Query(ge=1)] = 1,
) -> HTMLResponse:
    """The audit view: decision log, model vs human, audit sample, chain verification."""
    if not controls.may_control(login.user):
        return _refuse(request, session, login, "controller")
    flt = _filter(date_from, date_to, user, action, reason, supplier, model_version)
    form = {
        "date_from": date_from or "",
        "date_to": date_to or "",
        "user": user or "",
        "action": action or "",
        "reason": flt.reason or "",
        "supplier": supplier or "",
        "model_version": model_version or "",
    }
    context = {
        "log": controls.decision_log(session, flt, page, PAGE_SIZE),
        "form": form,
        "query": urlencode({k: v for k, v in form.items() if v}),
        "choices": controls.filter_choices(session),
        "reasons": list(ReasonCode),
    }
    if auth.wants_fragment(request):
        return _page(request, "controller_log.html", context, login)
    context |= {
        "models": controls.agreement(session),
        "feedback_kinds": controls.FEEDBACK_KINDS,
        "sample": controls.audit_sample(session),
        "chain": None,
        "head": controls.current_checkpoint(session),
    }
    return _page(request, "controller.html", context, login)


@router.get("/controller/decisions.csv")
def decisions_csv(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    date_from: Text = None,
    date_to: Text = None,
    user: Text = None,
    action: Text = None,
    reason: Text = None,
    supplier: Text = None,
    model_version: Text = None,
) -> Response:
    """The filtered decision log as CSV with a totals row (count, gross per currency)."""
    if not controls.may_control(login.user):
        return _refuse(request, session, login, "controller")
    flt = _filter(date_from, date_to, user, action, reason, supplier, model_version)
    # Built inside the request's transaction: a streaming body would outlive the session.
    body = "".join(controls.export_csv(session, flt))
    stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="tollgate-decisions-{stamp}.csv"'},
    )


@router.post("/controller/verify", response_class=HTMLResponse)
def verify_chain(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    checkpoint: Annotated[str | None, Form(max_length=200)] = None,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Recompute the audit chain (as `tollgate audit verify`) and show OK or the first bad row."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    if not controls.may_control(login.user):
        return _refuse(request, session, login, "controller")
    context: dict[str, Any] = {"head": controls.current_checkpoint(session), "error": None}
    status = 200
    try:
        context["chain"] = controls.verify_chain(session, checkpoint)
    except AppError as exc:
        context |= {"chain": None, "error": exc.message}
        status = exc.status_code
    context["pasted"] = checkpoint or ""
    if context["chain"] is not None:
        controls.record_verification(session, login.user, context["chain"])
    return _page(request, "controller_chain.html", context, login, status_code=status)


@router.post("/controller/sample/{case_id}/checked")
def mark_sample_checked(
    request: Request,
    session: SessionDep,
    login: LoginDep,
    case_id: int,
    note: Annotated[str | None, Form(max_length=500)] = None,
    csrf_token: Annotated[str | None, Form(max_length=200)] = None,
) -> Response:
    """Mark a sampled case as re-checked (audited)."""
    if not auth.csrf_ok(request, login, csrf_token):
        return auth.refuse_csrf(session, request, login)
    if not controls.may_control(login.user):
        return _refuse(request, session, login, "controller")
    try:
        controls.mark_checked(session, case_id, login.user, note)
    except NotFound:
        raise
    except AppError as exc:
        return _page(
            request, "_message.html", {"error": exc.message}, login, status_code=exc.status_code
        )
    if auth.is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/review/controller#sample"})
    return RedirectResponse("/review/controller#sample", status_code=303)


@router.get("/dashboard", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, login: LoginDep) -> HTMLResponse:
    """Exception mix, aging, SLA breaches, touchless rate and top suppliers, as SVG and tables."""
    if not controls.may_see_dashboard(login.user):
        return _refuse(request, session, login, "reviewer")
    return _page(request, "dashboard.html", {"board": controls.dashboard(session)}, login)
