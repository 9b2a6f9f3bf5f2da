"""The API call log: every call made with a key, recorded without a write in the request path.

A call is logged once its token names a key and the secret matches (admitted, rate-limited,
refused for a revoked key or a missing scope alike); forged tokens name no key and are only in
the audit log (app/controls/denials.py). The `api_key` dependency puts the key id on the request
state; `CallLogMiddleware`, a pure ASGI middleware, adds method, route template, status,
duration and request id once the response is sent, into the in-process buffer of a
`CallRecorder`. The recorder's thread writes the buffer every `api_calls_flush_seconds` (or at
once when a batch is full) in one multi-row INSERT per batch, and in the same transaction moves
each key's `last_used_at` to its latest call. The app's shutdown writes what is left.

A crash (or a kill) of the process can lose at most one flush interval of call records: the
rows still in the buffer (while the database is down, everything buffered since it went down).
A database outage loses nothing until the buffer holds `api_calls_buffer_cap` rows; past that
the oldest are dropped, and the drops are logged. A write whose commit reply is lost is retried,
so that rare case can store a batch twice.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from datetime import datetime

import structlog
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.apikeys import repository
from app.db.base import utcnow
from app.db.session import transaction
from app.settings import Settings

log = structlog.get_logger(__name__)


# The request-state attribute the `api_key` dependency sets to the caller's public key id.
STATE_KEY_ID = "api_key_id"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call made with an API key, as buffered and then stored in `api_calls`."""

    at: datetime
    key_id: str
    method: str
    route: str
    status: int
    duration_ms: float
    request_id: str | None = None


class CallRecorder:
    """A bounded in-process buffer of calls and the thread that writes it in batches.

    A crash of the process can lose at most one flush interval of call records. A failed write
    keeps its rows (they are written, once, by a later flush); the buffer holds at most `cap`
    rows, dropping the oldest past that.
    """

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        flush_seconds: float = 0.5,
        batch_size: int = 500,
        cap: int = 100_000,
    ) -> None:
        self.factory = factory
        self.flush_seconds, self.batch_size, self.cap = flush_seconds, batch_size, cap
        self._buffer: deque[CallRecord] = deque()
        self._lock = threading.Lock()  # guards the buffer and the drop counters
        self._flush_lock = threading.Lock()  # one flush at a time: the thread, shutdown, tests
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped_unreported = 0  # drops not yet logged as an error
        self._dropped_since_flush = 0  # drops since the last successful flush

    @classmethod
    def from_settings(cls, factory: sessionmaker[Session], settings: Settings) -> CallRecorder:
        """A recorder configured from settings."""
        return cls(
            factory,
            flush_seconds=settings.api_calls_flush_seconds,
            batch_size=settings.api_calls_batch_size,
            cap=settings.api_calls_buffer_cap,
        )

    @property
    def pending(self) -> int:
        """Calls buffered and not yet written."""
        with self._lock:
            return len(self._buffer)

    def record(self, call: CallRecord) -> None:
        """Buffer a call (never touches the database); wakes the writer when a batch is full."""
        with self._lock:
            self._buffer.append(call)
            self._trim()
            full = len(self._buffer) >= self.batch_size
        if full:
            self._wake.set()

    def _trim(self) -> None:
        # Caller holds self._lock.
        while len(self._buffer) > self.cap:
            self._buffer.popleft()
            self._dropped_unreported += 1
            self._dropped_since_flush += 1

    def flush(self) -> int:
        """Write every buffered call now; the number written. Never raises: failures are logged."""
        written, _ok = self._flush()
        return written

    def _flush(self) -> tuple[int, bool]:
        with self._flush_lock:
            with self._lock:
                unreported, self._dropped_unreported = self._dropped_unreported, 0
            if unreported:
                log.error("api_calls.dropped", dropped=unreported, cap=self.cap)
            written = 0
            while True:
                with self._lock:
                    take = min(self.batch_size, len(self._buffer))
                    batch = [self._buffer.popleft() for _ in range(take)]
                if not batch:
                    return written, True
                try:
                    self._write(batch)
                except Exception as exc:  # any failure: keep the rows for the next tick
                    with self._lock:
                        self._buffer.extendleft(reversed(batch))  # back in front, in order
                        self._trim()
                        pending = len(self._buffer)
                    log.error(
                        "api_calls.flush_failed",
                        error=f"{type(exc).__name__}: {exc}"[:500],
                        rows=len(batch),
                        pending=pending,
                    )
                    return written, False
                written += len(batch)
                with self._lock:
                    dropped, self._dropped_since_flush = self._dropped_since_flush, 0
                # Quiet while nothing is lost; a flush after drops says how many rows are gone.
                emit = log.info if dropped else log.debug
                emit("api_calls.flushed", rows=len(batch), dropped=dropped)

    def _write(self, batch: list[CallRecord]) -> None:
        latest: dict[str, datetime] = {}
        for call in batch:
            if call.key_id not in latest or latest[call.key_id] < call.at:
                latest[call.key_id] = call.at
        with transaction(self.factory) as session:
            repository.add_calls(session, [asdict(call) for call in batch])
            repository.touch_keys(session, latest)

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="api-call-recorder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            _written, ok = self._flush()
            if not ok:
                # A full buffer keeps waking the thread: retry a failing database once a tick.
                self._stop.wait(self.flush_seconds)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the writer thread and write what is left (at shutdown)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("api_calls.stop_timeout", pending=self.pending)
                return
            self._thread = None
        self.flush()


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template or scope.get("path", ""))[:200]


class CallLogMiddleware:
    """Record every call made with an API key into a `CallRecorder`, after the response."""

    def __init__(self, app: ASGIApp, recorder: CallRecorder) -> None:
        self.app = app
        self.recorder = recorder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on, watching the status and the request id on the way out."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Request.state lives in this dict: the dependency's key id is read back from it.
        state = scope.setdefault("state", {})
        at, started = utcnow(), time.perf_counter()
        status, request_id = 500, None  # an exception escaping the app becomes a 500

        async def watching_send(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name.lower() == b"x-request-id":
                        request_id = value.decode("latin-1")[:64]
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            key_id = state.get(STATE_KEY_ID)
            if key_id is not None:
                self.recorder.record(
                    CallRecord(
                        at=at,
                        key_id=key_id,
                        method=scope["method"][:10],
                        route=_route_template(scope),
                        status=status,
                        duration_ms=round((time.perf_counter() - started) * 1000, 3),
                        request_id=request_id,
                    )
                )
