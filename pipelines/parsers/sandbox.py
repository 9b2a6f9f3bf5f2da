"""Parse untrusted documents in separate worker processes with time, memory and network bounds.

`parse_in_sandbox(data, limits)` runs `parse_documents` in a reused worker process and returns
either the parsed documents or a typed `ParseError` (returned, not raised). `SandboxPool` is the
same with an explicit pool size, parse function and lifetime.

Defaults (`SandboxLimits`):

- wall time 10 s per document, measured by the parent; on expiry the worker is killed (SIGKILL),
  reaped and replaced, and the result is `TIMEOUT`.
- CPU time 10 s per document (RLIMIT_CPU soft limit, re-armed before each document in the
  worker as "CPU used so far + limit"); the kernel's SIGXCPU kills the worker, result `TIMEOUT`.
- memory 512 MiB of address space (RLIMIT_AS, set once in the worker). An allocation beyond it
  raises MemoryError in the worker, which answers `MEMORY_LIMIT` and then exits so that the next
  document starts with a clean heap; a worker killed by SIGKILL that the parent did not kill (the
  kernel OOM killer) is also `MEMORY_LIMIT`.
- a worker that dies any other way (segfault, abort, exit) or whose parser raises something
  other than ParseError gives `PARSER_CRASHED`; dead workers are replaced on the next document.
- core dumps are off (RLIMIT_CORE 0): a SIGXCPU kill would otherwise write one per document.

Each job is two messages to the worker: a small JSON envelope (empty for a plain parse) with
the supplier hint (`SupplierHint.to_json()`, passed on to the parser as `hint=`) and, for
`SandboxPool.learn`, the clerk's correction to learn from, then the document's bytes. Learning
reads the document's text, so it runs in the worker too.

Answers travel from worker to parent as JSON, validated into canonical types again, never as a
pickle (a worker subverted by a document could otherwise run code in the parent).

Network: parsers need none, so the worker removes it in two layers, both set up before any
document is read. (1) Best effort, Linux only: `unshare(CLONE_NEWNET)` (or, unprivileged,
`CLONE_NEWUSER | CLONE_NEWNET`) moves the worker into an empty network namespace whose only
interface, loopback, is down: no connection can be made even by C code. Where the kernel refuses
(containers without user namespaces, other OSes) this layer is skipped and
`SandboxPool.network_isolation` says so. In the unprivileged variant the worker becomes an
unmapped user that reads only world-readable files; the parsers are preloaded, so that is enough.
(2) Always: Python's `socket.socket.connect`, `connect_ex`, `sendto`, `sendmsg`, `bind`,
`socket.create_connection` and `socket.getaddrinfo` are replaced by functions that raise
`PermissionError`. Layer 2 alone stops Python code (urllib,
http.client, an XML resolver written in Python) but not a C extension that calls libc directly;
the parsers in use (defusedxml over expat, which never fetches anything) do neither.

Workers come from the `forkserver` start method (never plain fork, which would copy the parent's
threads, locks and open connections) with `pipelines.parsers` preloaded, so a replacement worker
starts in milliseconds. Each worker is recycled after `max_jobs_per_worker` documents.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import math
import multiprocessing
import os
import queue
import resource
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from pydantic import TypeAdapter, ValidationError

from pipelines.canonical import AnySupplierDocument
from pipelines.extract import SupplierHint
from pipelines.extract.fields import learn_from_pdf
from pipelines.parsers import (
    DetectedFormat,
    FieldReading,
    ParsedDocument,
    ParseLimits,
    parse_documents,
)
from pipelines.parsers.errors import ParseError, ParseErrorCode

ParseFunction = Callable[[bytes, ParseLimits], list[ParsedDocument]]
Outcome = list[ParsedDocument] | ParseError
# What a clerk's correction teaches: (field name, corrected value as text), `SandboxPool.learn`.
Correction = tuple[str, str]

MIB = 1024 * 1024
_MAX_HINT_BYTES = 1 * MIB  # a hint is a few labels; the bound keeps the worker's read small
# Linux clone flags (sched.h); os.unshare only arrives in Python 3.12.
_CLONE_NEWUSER = 0x10000000
_CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class SandboxLimits:
    """Per-document bounds for sandboxed parsing; see the module docstring for the defaults."""

    wall_seconds: float = 10.0
    cpu_seconds: float | None = None  # None: the same as wall_seconds
    memory_bytes: int = 512 * MIB
    parse: ParseLimits = field(default_factory=ParseLimits)

    @property
    def cpu_limit(self) -> int:
        """Whole CPU seconds for RLIMIT_CPU (at least 1)."""
        seconds = self.wall_seconds if self.cpu_seconds is None else self.cpu_seconds
        return max(1, math.ceil(seconds))


# --- the worker side --------------------------------------------------------------------------


def _refuse_network(*_args: Any, **_kwargs: Any) -> Any:
    raise PermissionError("network access is disabled in the parsing sandbox")


def _block_python_sockets() -> None:
    for name in ("connect", "connect_ex", "sendto", "sendmsg", "bind"):
        setattr(socket.socket, name, _refuse_network)
    socket.create_connection = _refuse_network
    socket.getaddrinfo = _refuse_network


def _enter_empty_network_namespace() -> str:
    """Move this process into a new network namespace; returns what was achieved."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        unshare = libc.unshare
    except (OSError, AttributeError):
        return "python-sockets-only"
    # Privileged: a network namespace alone keeps the user id (and file access) unchanged.
    if unshare(_CLONE_NEWNET) == 0:
        return "netns+python-sockets"
    if unshare(_CLONE_NEWUSER | _CLONE_NEWNET) == 0:
        return "userns+netns+python-sockets"
    return "python-sockets-only"


def _set_limits(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _arm_cpu_limit(seconds: int) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    used = math.ceil(usage.ru_utime + usage.ru_stime)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = used + seconds
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _encode(*message: Any) -> bytes:
    return json.dumps(message).encode("utf-8")


def _encode_documents(documents: list[ParsedDocument]) -> bytes:
    return _encode(
        "ok",
        [
            {
                "format": str(p.format),
                "document": p.document.model_dump(mode="json"),
                "fields": p.fields,
            }
            for p in documents
        ],
    )


def _worker_main(conn: Connection, limits: SandboxLimits, parse: ParseFunction) -> None:
    """Worker loop: read a document, parse it, answer; exits on EOF or after MemoryError."""
    # The parent's signals (Ctrl-C in a CLI) are the parent's to handle.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    isolation = _enter_empty_network_namespace()
    _block_python_sockets()
    _set_limits(limits.memory_bytes)
    conn.send_bytes(_encode("ready", isolation))
    while True:
        try:
            # Two messages per document: hint and correction (empty for none), then the bytes.
            raw_request = conn.recv_bytes(_MAX_HINT_BYTES)
            data = conn.recv_bytes()
        except (EOFError, OSError):
            return
        _arm_cpu_limit(limits.cpu_limit)
        try:
            hint, correction = _read_request(raw_request)
            if correction is not None:
                # Learning reads the document's text, so it runs here, in bounds, like parsing.
                learned = learn_from_pdf(data, hint or SupplierHint(""), *correction)
                payload = _encode("hint", learned.to_json())
            elif hint is None:
                payload = _encode_documents(parse(data, limits.parse))
            else:
                # Fault-injecting parse functions in tests take (data, limits) only.
                with_hint: Any = parse
                payload = _encode_documents(with_hint(data, limits.parse, hint=hint))
        except ParseError as exc:
            payload = _encode("error", str(exc.code), exc.message, exc.detail)
        except MemoryError:
            del data
            conn.send_bytes(_encode("memory"))
            return  # a fresh worker rather than a fragmented heap
        except RecursionError:
            payload = _encode("crash", "RecursionError: input nested too deeply")
        except Exception as exc:  # any parser bug becomes a typed answer
            payload = _encode("crash", f"{type(exc).__name__}: {str(exc)[:500]}")
        del data
        conn.send_bytes(payload)


def _read_request(raw: bytes) -> tuple[SupplierHint | None, Correction | None]:
    """The hint and correction sent ahead of a document (empty: neither); bad ones are typed."""
    if not raw:
        return None, None
    try:
        envelope = json.loads(raw)
        hint = SupplierHint.from_json(envelope["hint"]) if envelope.get("hint") else None
        learn = envelope.get("learn")
        correction = (str(learn[0]), str(learn[1])) if learn else None
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
        raise ParseError(
            ParseErrorCode.INVALID_VALUE, "The supplier hint sent with the document is unreadable."
        ) from exc
    return hint, correction


def _request(hint: SupplierHint | None, correction: Correction | None) -> bytes:
    """The first message of a job: hint and correction as JSON, or empty for neither."""
    if hint is None and correction is None:
        return b""
    envelope = {"hint": hint.to_json() if hint else None, "learn": correction}
    return json.dumps(envelope).encode("utf-8")


# --- the parent side --------------------------------------------------------------------------


def _context() -> multiprocessing.context.BaseContext:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        # Preloaded once in the fork server, so each worker forks with the parsers imported.
        ctx.set_forkserver_preload(["pipelines.parsers", "pipelines.parsers.sandbox"])
    return ctx


class _Worker:
    """One worker process and the parent's end of its pipe."""

    def __init__(
        self, ctx: multiprocessing.context.BaseContext, limits: SandboxLimits, parse: ParseFunction
    ) -> None:
        parent, child = ctx.Pipe(duplex=True)
        process: BaseProcess = ctx.Process(  # type: ignore[attr-defined]
            target=_worker_main, args=(child, limits, parse), daemon=True
        )
        process.start()
        child.close()
        self.process = process
        self.conn = parent
        self.jobs = 0
        self.isolation = "unknown"
        self.stopped = False
        # The worker's first message says it is ready and which network isolation it has.
        if parent.poll(max(limits.wall_seconds, 30.0)):
            with contextlib.suppress(EOFError, OSError, ValueError, IndexError):
                self.isolation = str(json.loads(parent.recv_bytes(1024))[1])

    def alive(self) -> bool:
        return not self.stopped and self.process.is_alive()

    def stop(self) -> None:
        """Kill (if needed) and reap the process: no zombie and no orphan is left behind."""
        if self.stopped:
            return
        self.stopped = True
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        # SIGKILL cannot be ignored, so the join returns promptly; it reaps the zombie.
        self.process.join()
        self.process.close()

    def run(
        self,
        data: bytes,
        limits: SandboxLimits,
        hint: SupplierHint | None = None,
        correction: Correction | None = None,
    ) -> Outcome | SupplierHint:
        raw_hint = _request(hint, correction)
        if len(raw_hint) > _MAX_HINT_BYTES:
            return ParseError(
                ParseErrorCode.INVALID_VALUE,
                "The supplier hint is too large to send with the document.",
                detail=f"{len(raw_hint)} bytes",
            )
        self.jobs += 1
        try:
            # Two messages per document: hint and correction (empty for none), then the bytes.
            self.conn.send_bytes(raw_hint)
            self.conn.send_bytes(data)
        except (BrokenPipeError, OSError):
            return self._died()
        if not self.conn.poll(limits.wall_seconds):
            self.stop()
            return ParseError(
                ParseErrorCode.TIMEOUT,
                f"Reading the document took longer than {limits.wall_seconds:g} s and was "
                "stopped. The file may be damaged or built to exhaust the reader.",
                detail="wall time limit",
            )
        try:
            answer = self.conn.recv_bytes(_max_answer_bytes(limits))
        except EOFError:
            return self._died()
        except OSError as exc:  # an answer over the bound: the pipe is unusable now
            self.stop()
            return _unreadable(exc)
        try:
            return self._outcome(json.loads(answer), limits)
        except (ValueError, TypeError, KeyError, IndexError, ValidationError) as exc:
            self.stop()
            return _unreadable(exc)

    def _outcome(self, message: tuple[Any, ...], limits: SandboxLimits) -> Outcome | SupplierHint:
        tag = message[0]
        if tag == "hint":
            return SupplierHint.from_json(str(message[1]))
        if tag == "ok":
            return [
                ParsedDocument(
                    format=DetectedFormat(item["format"]),
                    document=_DOCUMENT.validate_python(item["document"]),
                    fields=_fields(item.get("fields")),
                )
                for item in message[1]
            ]
        if tag == "error":
            return ParseError(ParseErrorCode(message[1]), message[2], detail=message[3])
        if tag == "memory":
            self.stop()
            return ParseError(
                ParseErrorCode.MEMORY_LIMIT,
                f"Reading the document needed more than {limits.memory_bytes // MIB} MiB of "
                "memory and was stopped. The file may be damaged or built to exhaust the reader.",
                detail="MemoryError",
            )
        return ParseError(
            ParseErrorCode.PARSER_CRASHED,
            "The reader failed on this document (a defect in Tollgate, not in the file alone). "
            "The error was recorded; enter the invoice by hand meanwhile.",
            detail=str(message[1]),
        )

    def _died(self) -> ParseError:
        self.process.join(5)
        exitcode = self.process.exitcode
        self.stop()
        if exitcode == -signal.SIGXCPU:
            return ParseError(
                ParseErrorCode.TIMEOUT,
                "Reading the document used more CPU time than allowed and was stopped.",
                detail="cpu time limit (SIGXCPU)",
            )
        if exitcode == -signal.SIGKILL:
            # The parent had not killed it, so the likely sender is the kernel's OOM killer.
            return ParseError(
                ParseErrorCode.MEMORY_LIMIT,
                "The reading process was killed, most likely for using too much memory.",
                detail="SIGKILL not sent by the sandbox",
            )
        return ParseError(
            ParseErrorCode.PARSER_CRASHED,
            "The reading process died on this document.",
            detail=f"exit code {exitcode}",
        )


# The worker's answer is data, validated like any untrusted input: never pickle, which would let a
# worker compromised by a hostile document run code in the parent.
_DOCUMENT: TypeAdapter[Any] = TypeAdapter(AnySupplierDocument)


def _fields(raw: object) -> dict[str, FieldReading] | None:
    """Extracted-field readings from a worker's answer, kept only in their plain shape."""
    if not isinstance(raw, dict):
        return None
    plain = (str, float, int, type(None))
    return {
        str(name): {str(k): v for k, v in reading.items() if isinstance(v, plain)}
        for name, reading in raw.items()
        if isinstance(reading, dict)
    }


def _max_answer_bytes(limits: SandboxLimits) -> int:
    # Canonical JSON is a few times larger than the XML or CSV it came from, never more.
    return max(64 * MIB, 8 * limits.parse.max_bytes)


def _unreadable(exc: Exception) -> ParseError:
    return ParseError(
        ParseErrorCode.PARSER_CRASHED,
        "The parser's answer could not be read.",
        detail=f"{type(exc).__name__}: {str(exc)[:500]}",
    )


class SandboxPool:
    """A pool of reusable worker processes that parse documents under `SandboxLimits`."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        workers: int = 1,
        parse: ParseFunction = parse_documents,
        max_jobs_per_worker: int = 1000,
    ) -> None:
        if workers < 1:
            raise ValueError("a sandbox pool needs at least one worker")
        self.limits = limits or SandboxLimits()
        self.size = workers
        self.max_jobs_per_worker = max_jobs_per_worker
        self._parse = parse
        self._ctx = _context()
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(workers)
        self._closed = False
        self.network_isolation = "not started"

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _checkout(self) -> _Worker:
        while True:
            try:
                worker = self._idle.get_nowait()
            except queue.Empty:
                break
            if worker.alive() and worker.jobs < self.max_jobs_per_worker:
                return worker
            self._discard(worker)
        worker = _Worker(self._ctx, self.limits, self._parse)
        self.network_isolation = worker.isolation
        with self._lock:
            self._all.add(worker)
        return worker

    def _discard(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            self._all.discard(worker)

    def parse(self, data: bytes, hint: SupplierHint | None = None) -> Outcome:
        """Parse `data` in a worker: the documents, or a typed ParseError (returned).

        `hint` (a supplier's learned labels) reaches the parse function as `hint=`.
        """
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        outcome = self._run(data, hint, None)
        if isinstance(outcome, SupplierHint):  # only a correction is answered with a hint
            return _unreadable(TypeError("a hint where documents were expected"))
        return outcome

    def learn(
        self, data: bytes, hint: SupplierHint, field_name: str, value: str
    ) -> SupplierHint | ParseError:
        """`hint.learn` from a corrected field of this PDF, reading the PDF in a worker.

        `value` is what the clerk entered (printed text, an ISO date or a plain decimal);
        the returned hint also knows the label printed next to it, or is `hint` unchanged.
        """
        if self._closed:
            raise RuntimeError("the sandbox pool is closed")
        outcome = self._run(data, hint, (field_name, value))
        if isinstance(outcome, list):
            return _unreadable(TypeError("documents where a hint was expected"))
        return outcome

    def _run(
        self, data: bytes, hint: SupplierHint | None, correction: Correction | None
    ) -> Outcome | SupplierHint:
        with self._slots:
            worker = self._checkout()
            outcome = worker.run(data, self.limits, hint, correction)
            if worker.alive():
                self._idle.put(worker)
            else:
                self._discard(worker)
        return outcome

    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and monitoring)."""
        with self._lock:
            return [w.process.pid for w in self._all if w.alive() and w.process.pid]

    def close(self) -> None:
        """Stop every worker and reap it."""
        self._closed = True
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for worker in workers:
            worker.stop()


_POOLS: dict[SandboxLimits, SandboxPool] = {}
_POOLS_LOCK = threading.Lock()


def _close_shared_pools() -> None:
    with _POOLS_LOCK:
        for pool in _POOLS.values():
            pool.close()
        _POOLS.clear()


atexit.register(_close_shared_pools)


def parse_in_sandbox(
    data: bytes, limits: SandboxLimits | None = None, hint: SupplierHint | None = None
) -> Outcome:
    """Parse `data` with `parse_documents` in a sandboxed worker; documents or a ParseError."""
    limits = limits or SandboxLimits()
    with _POOLS_LOCK:
        pool = _POOLS.get(limits)
        if pool is None:
            pool = _POOLS[limits] = SandboxPool(limits, workers=min(4, os.cpu_count() or 1))
    return pool.parse(data, hint)
