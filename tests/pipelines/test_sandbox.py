"""Sandboxed parsing: hostile corpus, time/CPU/memory limits, crashes, no network, no leaks."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hostile_corpus import HostileFile, build_corpus, controls

from pipelines.parsers import ParsedDocument, ParseLimits, parse_documents
from pipelines.parsers.errors import ParseError, ParseErrorCode
from pipelines.parsers.sandbox import SandboxLimits, SandboxPool, parse_in_sandbox

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")

_PORT_FILE = "TOLLGATE_TEST_LISTENER_PORT"


def misbehaving_parse(data: bytes, limits: ParseLimits) -> list[ParsedDocument]:
    """A parse function that misbehaves on command; runs inside the sandbox worker."""
    command, _, argument = data.partition(b":")
    if command == b"sleep":
        time.sleep(3600)
    elif command == b"spin":
        while True:
            pass
    elif command == b"hog":
        hog = bytearray(1 << 30)  # twice the default address-space limit
        raise ParseError(ParseErrorCode.INVALID_VALUE, f"allocated {len(hog)} bytes")
    elif command == b"exit":
        os._exit(3)
    elif command == b"abort":
        os.abort()
    elif command == b"bug":
        raise KeyError("a parser defect")
    elif command == b"net":
        port = int(argument)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError as exc:
            raise ParseError(ParseErrorCode.INVALID_VALUE, f"blocked: {exc!r}") from None
        raise ParseError(ParseErrorCode.INVALID_VALUE, "connected")
    elif command == b"rawnet":
        # Python's low-level socket type, bypassing the patched socket.socket methods: only
        # the network namespace can stop this one.
        import _socket

        raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
        raw.settimeout(2)
        try:
            raw.connect(("127.0.0.1", int(argument)))
        except OSError as exc:
            raise ParseError(ParseErrorCode.INVALID_VALUE, f"blocked: {exc!r}") from None
        finally:
            raw.close()
        raise ParseError(ParseErrorCode.INVALID_VALUE, "connected")
    return parse_documents(data, limits)


class Listener:
    """A real TCP listener on loopback that counts every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def settle(self) -> int:
        """Connections so far, after giving the accept loop one more turn."""
        self._stop.wait(0.5)
        return self.connections

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture(scope="module")
def listener() -> Iterator[Listener]:
    """A loopback listener, proven able to see a connection before the tests rely on it."""
    server = Listener()
    socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    assert server.settle() == 1
    server.connections = 0
    yield server
    server.close()


@pytest.fixture(scope="module")
def pool() -> Iterator[SandboxPool]:
    """A two-worker pool whose parse function misbehaves on command."""
    limits = SandboxLimits(wall_seconds=5, cpu_seconds=2)
    with SandboxPool(limits, workers=2, parse=misbehaving_parse) as sandbox:
        yield sandbox


def _gone(pid: int) -> bool:
    """True when no process (not even a zombie) has this id any more."""
    return not Path(f"/proc/{pid}").exists()


def _ubl_sample() -> bytes:
    return next((SHARED / "einvoice" / "xrechnung").rglob("*_ubl.xml")).read_bytes()


@needs_data
def test_a_real_invoice_parses_the_same_as_in_process() -> None:
    data = _ubl_sample()
    outcome = parse_in_sandbox(data)
    assert isinstance(outcome, list)
    assert outcome == parse_documents(data)


def test_wall_time_limit_kills_and_replaces_the_worker(pool: SandboxPool) -> None:
    outcome = pool.parse(b"sleep")
    assert isinstance(outcome, ParseError)
    assert outcome.code is ParseErrorCode.TIMEOUT
    assert outcome.detail == "wall time limit"
    # The killed worker was reaped, and the pool keeps working with a fresh one.
    outcome = pool.parse(b"document_type,number\ninvoice,N-1\n")
    assert isinstance(outcome, list) and outcome[0].document.number == "N-1"


def test_cpu_time_limit_is_a_timeout() -> None:
    # A wall limit far above the CPU limit, so a busy machine cannot turn this into a wall one.
    limits = SandboxLimits(wall_seconds=120, cpu_seconds=1)
    with SandboxPool(limits, parse=misbehaving_parse) as sandbox:
        outcome = sandbox.parse(b"spin")
    assert isinstance(outcome, ParseError)
    assert outcome.code is ParseErrorCode.TIMEOUT
    assert "cpu" in (outcome.detail or "")


def test_memory_limit(pool: SandboxPool) -> None:
    outcome = pool.parse(b"hog")
    assert isinstance(outcome, ParseError)
    assert outcome.code is ParseErrorCode.MEMORY_LIMIT
    assert isinstance(pool.parse(b"document_type,number\ninvoice,N-2\n"), list)


@pytest.mark.parametrize(
    ("command", "detail"),
    [(b"exit", "exit code 3"), (b"abort", "exit code -6"), (b"bug", "KeyError")],
)
def test_crashes_are_typed_and_dead_workers_replaced(
    pool: SandboxPool, command: bytes, detail: str
) -> None:
    before = set(pool.pids())
    outcome = pool.parse(command)
    assert isinstance(outcome, ParseError)
    assert outcome.code is ParseErrorCode.PARSER_CRASHED
    assert detail in (outcome.detail or "")
    assert isinstance(pool.parse(b"document_type,number\ninvoice,N-3\n"), list)
    if command != b"bug":  # a parser exception leaves the worker usable; a death does not
        assert all(_gone(pid) for pid in before - set(pool.pids()))


def test_the_worker_cannot_connect(pool: SandboxPool, listener: Listener) -> None:
    outcome = pool.parse(b"net:%d" % listener.port)
    assert isinstance(outcome, ParseError)
    assert outcome.message.startswith("blocked: PermissionError")
    if "netns" in pool.network_isolation:
        raw = pool.parse(b"rawnet:%d" % listener.port)
        assert isinstance(raw, ParseError) and raw.message.startswith("blocked:")
    assert listener.settle() == 0


def test_closing_the_pool_leaves_no_process() -> None:
    limits = SandboxLimits(wall_seconds=1)
    sandbox = SandboxPool(limits, workers=2, parse=misbehaving_parse)
    threads = [threading.Thread(target=sandbox.parse, args=(b"sleep",)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert isinstance(sandbox.parse(b"document_type,number\ninvoice,N-4\n"), list)
    pids = sandbox.pids()
    assert pids
    sandbox.close()
    assert all(_gone(pid) for pid in pids)
    with pytest.raises(RuntimeError):
        sandbox.parse(b"x")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, listener: Listener) -> list[HostileFile]:
    """The hostile corpus, built once for this module."""
    return build_corpus(tmp_path_factory.mktemp("hostile"), SHARED, listener.port)


@needs_data
def test_hostile_corpus(corpus: list[HostileFile], listener: Listener) -> None:
    assert len(corpus) >= 300
    limits = SandboxLimits()
    outcomes: dict[str, Counter[str]] = {}
    by_name: dict[str, str] = {}
    seen_pids: set[int] = set()
    slowest = 0.0
    with SandboxPool(limits, workers=2) as sandbox:
        for item in corpus:
            start = time.perf_counter()
            outcome = sandbox.parse(item.path.read_bytes())
            slowest = max(slowest, time.perf_counter() - start)
            seen_pids.update(sandbox.pids())
            if isinstance(outcome, ParseError):
                assert isinstance(outcome.code, ParseErrorCode)
                assert outcome.message
                label = str(outcome.code)
            else:
                assert isinstance(outcome, list) and outcome
                assert all(isinstance(p, ParsedDocument) for p in outcome)
                label = "parsed"
            outcomes.setdefault(item.category, Counter())[label] += 1
            by_name[item.path.name] = label
            # A parser defect must surface as a bug here, not hide behind the sandbox.
            assert label != ParseErrorCode.PARSER_CRASHED, (item.path.name, outcome)
        for path in controls(SHARED):
            assert isinstance(sandbox.parse(path.read_bytes()), list), path
    print(f"\nslowest {slowest:.2f} s; outcomes by category:")
    for category, counts in sorted(outcomes.items()):
        print(f"  {category}: {dict(counts)}")
    assert listener.settle() == 0
    assert all(_gone(pid) for pid in seen_pids)
    # Entities, DTDs and deep nesting are refused outright; XInclude, schemaLocation and
    # stylesheet references may parse (they are inert text), and the listener shows nothing
    # was fetched.
    refused = [
        name
        for name in by_name
        if name.startswith("xml_") and any(k in name for k in ("entity", "laughs", "blowup", "dtd"))
    ]
    refused += [name for name in by_name if name.startswith("xml_nested")]
    assert len(refused) == 13
    assert {by_name[name] for name in refused} == {"UNSAFE_XML"}
    # Damaged structure is never silently read as something else.
    assert by_name["csv_too_many_rows.csv"] == "TOO_LARGE"
    assert by_name["csv_huge_field.csv"] == "INVALID_VALUE"
    assert by_name["csv_nul_bytes.csv"] == "INVALID_VALUE"
    assert by_name["csv_exponent_amount.csv"] == "INVALID_VALUE"
    assert outcomes["renamed"]["parsed"] == 0
    assert outcomes["blank"]["parsed"] == 0
