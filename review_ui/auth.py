"""Logins for the review screens: the session cookie, the login requirement and CSRF checks.

The browser holds only a random session token (cookie `tollgate_session`, HttpOnly,
SameSite=Strict, Secure outside dev/test); the database keeps its hash, the user and the
session's CSRF token (see `app.users.service`). Every state-changing form carries that CSRF token,
as a hidden input and, for HTMX requests, as the `X-CSRF-Token` header.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit.service import Actor
from app.controls.denials import record_refusal
from app.deps import SessionDep
from app.limits import check_user_rate
from app.users import service as users
from app.users.service import LoggedIn

SESSION_COOKIE = "tollgate_session"
# Double-submit cookie for the login form itself: there is no server session to hold a token yet.
LOGIN_CSRF_COOKIE = "tollgate_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_LIFETIME = timedelta(hours=8)
IDLE_TIMEOUT = timedelta(minutes=30)
LOGIN_PATH = "/review/login"


class LoginRequired(Exception):
    """Raised by the login dependency; the app answers with a redirect to the login page."""

    def __init__(self, next_url: str, htmx: bool) -> None:
        super().__init__(next_url)
        self.next_url = next_url
        self.htmx = htmx


def is_htmx(request: Request) -> bool:
    """True for requests made by htmx (they want fragments and HX-Redirect, not 303s)."""
    return request.headers.get("HX-Request") == "true"


def wants_fragment(request: Request) -> bool:
    """True when htmx asks for a fragment (a history restore after a cache miss wants the page)."""
    return is_htmx(request) and request.headers.get("HX-History-Restore-Request") != "true"


def secure_cookies(request: Request) -> bool:
    """Cookies are Secure everywhere but on a developer's or the tests' plain-HTTP loopback."""
    return request.app.state.settings.environment not in ("dev", "test")


def safe_next(url: str | None) -> str:
    """A local review URL to return to after login; anything else becomes the queue."""
    # Only same-site paths under /review: no scheme, no host, no protocol-relative "//evil".
    if url and url.startswith("/review") and not url.startswith("//") and "\\" not in url:
        return url
    return "/review"


def login_url(next_url: str) -> str:
    """The login page, remembering where to go afterwards."""
    return f"{LOGIN_PATH}?next={quote(safe_next(next_url), safe='/')}"


def login_required_response(exc: LoginRequired) -> Response:
    """The redirect for a request without a live login (HX-Redirect for htmx)."""
    target = login_url(exc.next_url)
    if exc.htmx:
        # An XHR follows a 303 silently; htmx acts on HX-Redirect instead.
        return Response(status_code=401, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def current_login(request: Request, session: SessionDep) -> LoggedIn:
    """The logged-in user of this request, or LoginRequired."""
    token = request.cookies.get(SESSION_COOKIE)
    found = (
        users.resolve(session, token, idle_timeout=IDLE_TIMEOUT)
        if token and len(token) < 200
        else None
    )
    if found is None:
        path = request.url.path
        if request.method != "GET":
            path = "/review"  # never replay a POST after login
            record_refusal(request, Actor("?", "anonymous"), "LOGIN_REQUIRED")
        elif request.url.query:
            path = f"{path}?{request.url.query}"
        raise LoginRequired(path, is_htmx(request))
    check_user_rate(request, found.user.username)
    return found


LoginDep = Annotated[LoggedIn, Depends(current_login)]


def set_session_cookie(request: Request, response: Response, token: str) -> None:
    """Hand the browser its session token."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    """Remove the session token from the browser."""
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="strict", secure=secure_cookies(request)
    )


def set_login_csrf(request: Request, response: Response, value: str) -> None:
    """Set the login form's double-submit token as a cookie (the form carries the same value)."""
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        value,
        max_age=3600,
        path=LOGIN_PATH,
        httponly=True,
        samesite="strict",
        secure=secure_cookies(request),
    )


def login_csrf_ok(request: Request, submitted: str) -> bool:
    """True when the login form's token matches its cookie."""
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return bool(cookie) and bool(submitted) and secrets.compare_digest(cookie, submitted)


def csrf_ok(request: Request, login: LoggedIn, form_token: str | None) -> bool:
    """True when the request carries the session's CSRF token (form field or header)."""
    given = form_token or request.headers.get(CSRF_HEADER) or ""
    return bool(given) and secrets.compare_digest(given.encode(), login.csrf_token.encode())


def refuse_csrf(session: Session, request: Request, login: LoggedIn | None) -> HTMLResponse:
    """Audit a request with a missing or wrong CSRF token and answer 403."""
    actor = users.actor_of(login.user) if login else Actor("?", "anonymous")
    # Returned, not raised: the audit row must be committed with the request.
    audit.record(
        session, actor, "csrf.refused", "request", request.url.path[:200], after={"method": "POST"}
    )
    return HTMLResponse(
        "<p class='error' role='alert'>Refused: this form is out of date or did not come from "
        "Tollgate (CSRF check failed). Reload the page and try again.</p>",
        status_code=403,
    )
