"""Request limits: the body-size limit, rate limits per API key and per user, login throttling.

The body limit is a pure ASGI middleware so that it acts before anything reads the body: a
declared Content-Length over the limit is refused without reading a byte, and a chunked body is
counted as it arrives and refused at the first chunk that crosses the limit.

Rate limits and login throttling keep their counters in the process (a token bucket per key, a
sliding window of failures per user name and per client address). Each `tollgate serve` process
counts on its own: with N processes behind a balancer a caller gets up to N times the budget.
"""

from __future__ import annotations

import html
import json
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from fastapi import UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import AppError, PayloadTooLarge
from app.settings import Settings

log = structlog.get_logger(__name__)


# Room for the multipart boundaries and part headers around an uploaded file.
MULTIPART_SLACK = 64 * 1024


class RateLimited(AppError):
    """Too many requests: try again after `retry_after` seconds."""

    status_code = 429
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(
            message, code=code, details={"retry_after": retry_after_header(retry_after)}
        )
        self.retry_after = retry_after


def retry_after_header(seconds: float) -> int:
    """Whole seconds for a Retry-After header (at least 1)."""
    return max(1, math.ceil(seconds))


# -- body limit -----------------------------------------------------------------------------------


def body_limit_for(settings: Settings, method: str, path: str) -> int:
    """The largest body, in bytes, accepted for a request to `path`."""
    if method == "POST" and path == "/api/v1/score:batch":
        return settings.max_batch_bytes
    if method == "POST" and path in (
        "/api/v1/documents",
        "/api/v1/score",
        "/api/v1/score:document",
    ):
        return settings.max_upload_bytes + MULTIPART_SLACK
    if path.startswith("/review"):
        return settings.max_form_bytes
    return settings.max_json_bytes


@dataclass
class BodyLimitStats:
    """What the body limit saw; tests and operators read it from `app.state.body_limit`."""

    rejected: int = 0
    # Bytes the app had been handed when the last refusal happened (0: refused by header).
    last_bytes_read: int = -1
    last_path: str = ""


class _TooLarge(Exception):
    """Raised from `receive` once the body crosses the limit."""


class BodyLimitMiddleware:
    """Refuse bodies over the per-route limit with 413, before the app reads past the limit."""

    def __init__(self, app: ASGIApp, settings: Settings, stats: BodyLimitStats) -> None:
        self.app = app
        self.settings = settings
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on with a counting `receive`."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path, limit = scope["path"], body_limit_for(self.settings, scope["method"], scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await self._refuse(scope, send, limit, 0)
            return
        read, exceeded, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal read, exceeded
            if exceeded:
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > limit:
                    exceeded = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                # Whatever the app made of the broken body (400, 500), the answer is 413.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded or started:
                raise
        if exceeded and not started:
            await self._refuse(scope, send, limit, read)
        elif exceeded:
            log.warning("body_limit.after_response", path=path)

    async def _refuse(self, scope: Scope, send: Send, limit: int, read: int) -> None:
        self.stats.rejected += 1
        self.stats.last_bytes_read = read
        self.stats.last_path = scope["path"]
        log.info("body_limit.refused", path=scope["path"], limit=limit, bytes_read=read)
        message = f"the request body is larger than the {limit} byte limit of this route"
        if scope["path"].startswith("/review"):
            body = _HTML_413.format(message=html.escape(message)).encode()
            media = b"text/html; charset=utf-8"
        else:
            body = json.dumps({"code": "PAYLOAD_TOO_LARGE", "message": message}).encode()
            media = b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", media),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is never read: the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


_HTML_413 = (
    "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Too large</title></head>"
    "<body><main><h1>Too large</h1><p role='alert'>{message}.</p>"
    "<p><a href='/review'>Back to the queue</a></p></main></body></html>"
)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


# -- rate limits ----------------------------------------------------------------------------------


class TokenBucket:
    """Token buckets by key: `rate` tokens a second up to `burst`; thread-safe, bounded memory."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate, self.burst, self.max_keys, self.clock = rate, burst, max_keys, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float | None:
        """Spend a token of `key`; None when allowed, else the seconds until the next token."""
        if self.rate <= 0:
            return None  # rate 0 switches the limit off
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                wait = None
            else:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)  # the least recently seen key
            return wait


@dataclass
class Limiters:
    """The rate limiters of one app, kept in `app.state.limiters`."""

    per_key: TokenBucket
    per_user: TokenBucket
    login: LoginThrottle

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiters:
        """Limiters configured from settings."""
        return cls(
            per_key=TokenBucket(settings.rate_limit_key_per_second, settings.rate_limit_key_burst),
            per_user=TokenBucket(
                settings.rate_limit_user_per_second, settings.rate_limit_user_burst
            ),
            login=LoginThrottle(
                max_failures=settings.login_max_failures,
                max_failures_per_ip=settings.login_max_failures_per_ip,
                window_seconds=settings.login_window_seconds,
            ),
        )


def _limiters(request: Any) -> Limiters:
    limiters: Limiters = request.app.state.limiters
    return limiters


def check_key_rate(request: Any, key_name: str) -> None:
    """Raise RateLimited when the API key `key_name` is over its rate."""
    wait = _limiters(request).per_key.take(key_name)
    if wait is not None:
        log.info("rate_limit.key", key=key_name, retry_after=wait)
        raise RateLimited(f"too many requests for {key_name}; slow down", retry_after=wait)


def check_user_rate(request: Any, username: str) -> None:
    """Raise RateLimited when the logged-in user is over their rate."""
    wait = _limiters(request).per_user.take(username)
    if wait is not None:
        log.info("rate_limit.user", user=username, retry_after=wait)
        raise RateLimited("too many requests; wait a moment and try again", retry_after=wait)


# -- login throttling -----------------------------------------------------------------------------


@dataclass
class LoginThrottle:
    """Failed logins in a sliding window, per user name and per client address."""

    max_failures: int
    max_failures_per_ip: int
    window_seconds: float
    clock: Callable[[], float] = time.monotonic
    _by_name: dict[str, deque[float]] = field(default_factory=dict)
    _by_ip: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _recent(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        times = table.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_seconds:
            times.popleft()
        if not times:
            del table[key]
        return times

    def blocked_for(self, username: str, ip: str) -> float | None:
        """Seconds until a login for `username` from `ip` may be tried again, or None."""
        now = self.clock()
        waits = []
        with self._lock:
            for table, key, limit in (
                (self._by_name, username.lower(), self.max_failures),
                (self._by_ip, ip, self.max_failures_per_ip),
            ):
                times = self._recent(table, key, now)
                if limit > 0 and len(times) >= limit:
                    # Allowed again once enough failures have aged out of the window.
                    waits.append(times[len(times) - limit] + self.window_seconds - now)
        return max(waits) if waits else None

    def failed(self, username: str, ip: str) -> None:
        """Count a failed login."""
        now = self.clock()
        with self._lock:
            for table, key in ((self._by_name, username.lower()), (self._by_ip, ip)):
                table.setdefault(key, deque(maxlen=1000)).append(now)
            if len(self._by_ip) > 100_000:  # bounded memory under a spray of addresses
                self._by_ip.clear()
            if len(self._by_name) > 100_000:
                self._by_name.clear()

    def succeeded(self, username: str) -> None:
        """A successful login clears the user name's failures (not the address's)."""
        with self._lock:
            self._by_name.pop(username.lower(), None)


@dataclass(frozen=True)
class LoginGuard:
    """The throttle and the client address of one login attempt."""

    throttle: LoginThrottle
    ip: str


def login_guard(request: Any) -> LoginGuard:
    """The login guard for a request (its client address and the app's throttle)."""
    ip = request.client.host if request.client else "?"
    return LoginGuard(_limiters(request).login, ip)


def with_retry_after(response: Any, exc: Exception) -> Any:
    """Make `response` a 429 with Retry-After when `exc` is a RateLimited; return it."""
    if isinstance(exc, RateLimited):
        response.status_code = 429
        response.headers["Retry-After"] = str(retry_after_header(exc.retry_after))
    return response


UPLOAD_CHUNK = 64 * 1024


async def read_bounded_upload(file: UploadFile, limit: int) -> bytes:
    """An uploaded file's bytes, refused with 413 as soon as they pass `limit`."""
    chunks, size = [], 0
    while chunk := await file.read(UPLOAD_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the file is larger than the {limit} byte upload limit")
        chunks.append(chunk)
    return b"".join(chunks)
