"""Load on `POST /api/v1/score`: `tollgate serve` processes on loopback, N keep-alive clients.

    python bench/score_load.py --clients 8 --seconds 30 [--cache warm|cold|both] [--db PG_URL]
    python bench/score_load.py --clients 32 --seconds 30 --tracking-uri URI --world DIR

Setup (not timed): a store with the three families (built from a generated world as in
bench/score_latency.py, or `--tracking-uri` + `--world`), a database (SQLite, or a temporary
PostgreSQL database with `--db`) with the world's master data and its first `--history`
documents ingested (so suppliers have history and duplicates have candidates), and an API key
with the `score` scope (rate limits off). `--workers` server processes (default: one per core),
each on its own port; client i talks to process i mod workers, as a balancer would spread them.

Requests post the canonical JSON of the world's other documents, round-robin. Warm cache: every
text was embedded and every supplier's inputs read (a first pass through each process). Cold
cache: fresh processes with an empty embedding folder; each document is sent once at most (the
run ends early when the pool is used up), so every request has its texts encoded.
Each mode runs `--runs` times (default 3) on fresh server processes and reports the median of
each figure: this shared machine's speed drifts by a third from one minute to the next.
The last line is `rps=… p50_ms=… p95_ms=… p99_ms=…` (warm when measured, else cold), followed
by `cold_*` figures when both ran.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
from _machine import describe
from score_latency import build_store

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prepare(
    scratch: Path, world: Path, history: int, url: str, keys: int
) -> tuple[list[str], list[dict]]:
    """Database with master data and history, `score` keys, and the request documents."""
    os.environ["TOLLGATE_SCORE_ON_INGEST"] = "false"  # history needs no predictions
    from app.apikeys import service as apikeys
    from app.audit.service import Actor
    from app.blobs import BlobStore
    from app.db import migrate
    from app.db.session import make_engine, make_session_factory
    from app.documents.bulk import ingest_many
    from app.masterdata.loader import read_master_data
    from app.masterdata.service import load_master_data
    from pipelines.parsers import parse_document

    migrate.upgrade(url)
    factory = make_session_factory(make_engine(url))
    admin = Actor("bench", "admin")
    files = sorted((world / "documents" / "ubl").glob("*.xml"))
    with factory() as session:
        load_master_data(session, read_master_data(world / "master"), admin)
        tokens = [
            apikeys.create_key(session, name=f"bench-{i}", scopes=["score"], actor=admin).token
            for i in range(keys)
        ]
        session.commit()
    for _ in ingest_many(
        factory,
        BlobStore(scratch / "blobs"),
        ((p.name, p.read_bytes()) for p in files[:history]),
        actor=admin,
        channel="bench",
    ):
        pass
    documents = [
        parse_document(p.read_bytes()).document.model_dump(mode="json") for p in files[history:]
    ]
    return tokens, documents


def _database(admin_url: str | None, scratch: Path) -> tuple[str, str | None]:
    """A fresh database: SQLite in the scratch folder, or a temporary PostgreSQL database."""
    if admin_url is None:
        return f"sqlite:///{scratch / 'load.db'}", None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"tollgate_load_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def _drop(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


class Server:
    """`workers` uvicorn processes, each on its own loopback port, as behind a balancer.

    One `uvicorn --workers N` socket let the kernel hand every keep-alive connection to the
    process that accepted first (measured: one process at 95 % CPU, the other at 5 %); a
    balancer in front of N processes is how the service is deployed, and what is measured.
    """

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.log = log.open("wb")  # the servers' stderr, to read when requests fail
        self.ports = [_free_port() for _ in range(workers)]
        self.procs = [
            subprocess.Popen(
                # As production starts it (one native thread per process, migrations checked);
                # the API call log records every request, the access log line is left out.
                [
                    str(Path(sys.executable).with_name("tollgate")),
                    "serve",
                    "--port",
                    str(port),
                    "--no-access-log",
                ],
                cwd=REPO,
                env={**os.environ, **env},
                stdout=subprocess.DEVNULL,
                stderr=self.log,
            )
            for port in self.ports
        ]
        deadline = time.monotonic() + 180
        for port in self.ports:
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit("the server did not come up")
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server processes (this process started them)."""
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.log.close()


class _Connection:
    """One keep-alive HTTP/1.1 connection posting prepared bodies: a client that costs little.

    httpx spent about 5 ms of CPU per request here, which on two cores is taken from the
    server being measured; this reads the status line, headers and Content-Length body only.
    """

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.head = (
            "POST /api/v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ).encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> int:
        """Send one request and return its status (reconnects after a dropped connection)."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            self.writer.write(self.head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await self.reader.readexactly(length)
            return status
        except (OSError, IndexError, ValueError, asyncio.IncompleteReadError):
            self.writer.close()
            self.reader = self.writer = None
            return 0

    def close(self) -> None:
        """Close the socket."""
        if self.writer is not None:
            self.writer.close()


async def _run(
    ports: list[int],
    tokens: list[str],
    documents: list[dict],
    clients: int,
    seconds: float,
    limit: int | None = None,
) -> tuple[list[float], int, int]:
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + seconds
    bodies = [json.dumps({"document": d}).encode() for d in documents]

    async def worker(index: int) -> None:
        nonlocal errors, sent
        # Clients spread over the processes as a round-robin balancer would.
        connection = _Connection(ports[index % len(ports)], tokens[index % len(tokens)])
        while time.perf_counter() < deadline and (limit is None or sent < limit):
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.perf_counter()
            if await connection.post(body) == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1  # an error or a dropped connection counts, it does not end the run
        connection.close()

    await asyncio.gather(*(worker(i) for i in range(clients)))
    return latencies, errors, sent


def measure(
    ports: list[int],
    tokens: list[str],
    documents: list[dict],
    clients: int,
    seconds: float,
    limit: int | None = None,
) -> dict[str, float]:
    """Run the clients for `seconds` (or `limit` requests); requests/s and latency percentiles."""
    started = time.perf_counter()
    latencies, errors, sent = asyncio.run(_run(ports, tokens, documents, clients, seconds, limit))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies) or [float("nan")]

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p95_ms": pct(0.95),
        "p99_ms": pct(0.99),
        "errors": float(errors),
        "requests": float(sent),
    }


def run_mode(
    mode: str,
    env: dict[str, str],
    scratch: Path,
    args: argparse.Namespace,
    tokens: list[str],
    documents: list[dict],
    run: int,
) -> dict[str, float]:
    """One measured run on fresh server processes: warm (after a pass over every document) or
    cold (a new embedding folder, every document at most once)."""
    cache = scratch / f"embeddings-{mode}-{run}"
    server = Server(
        {**env, "TOLLGATE_EMBEDDING_CACHE_DIR": str(cache)},
        scratch / f"server-{mode}-{run}.log",
        args.workers,
    )
    try:
        if mode == "warm":
            # Each process sees every document once: texts embedded, inputs cached.
            for port in server.ports:
                measure([port], tokens, documents, args.clients, 3600, len(documents))
        else:
            # Models loaded, texts not: score one document outside the measured pool.
            for port in server.ports:
                measure([port], tokens, documents[-1:], 1, 60, limit=2)
        # Cold: each document once at most, so every request meets texts not yet embedded.
        r = measure(
            server.ports,
            tokens,
            documents[:-1],
            args.clients,
            args.seconds,
            limit=len(documents) - 1 if mode == "cold" else None,
        )
    finally:
        server.stop()
    print(
        f"{mode}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
        f"p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
        f"{int(r['requests'])} requests, {int(r['errors'])} errors"
        + (f" (server log: {server.log.name})" if r["errors"] else ""),
        flush=True,
    )
    return r


def main() -> None:
    """Prepare, run warm and/or cold, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cache", choices=("warm", "cold", "both"), default="both")
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="runs per cache mode, each on fresh server processes; the median is reported",
    )
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: cores)"
    )
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--world", type=Path, default=None)
    parser.add_argument("--invoices", type=int, default=1200, help="world size when building")
    parser.add_argument("--history", type=int, default=600, help="documents ingested first")
    parser.add_argument(
        "--db",
        default=None,
        help="PostgreSQL admin URL: a temporary database is created there (default: SQLite)",
    )
    parser.add_argument(
        "--key-per-client",
        action="store_true",
        help="one API key per client (a call updates its key's last-use row, which one shared "
        "key serialises)",
    )
    args = parser.parse_args()
    print(f"machine: {describe()}; load average {os.getloadavg()[0]:.1f}")
    scratch = Path(tempfile.mkdtemp(prefix="score-load-"))
    if args.tracking_uri:
        if args.world is None:
            raise SystemExit("--tracking-uri needs --world")
        uri, world = args.tracking_uri, args.world
    else:
        uri, world = build_store(scratch, args.invoices, 7)
    url, drop = _database(args.db, scratch)
    tokens, documents = prepare(
        scratch, world, args.history, url, args.clients if args.key_per_client else 1
    )
    print(f"requests cycle over {len(documents)} documents; {args.clients} clients")
    env = {
        "TOLLGATE_DATABASE_URL": url,
        "TOLLGATE_DATA_DIR": str(scratch),
        "TOLLGATE_MLFLOW_TRACKING_URI": uri,
        "TOLLGATE_RATE_LIMIT_KEY_PER_SECOND": "0",
        "TOLLGATE_PARSE_SANDBOX": "false",
        "TOLLGATE_LOG_LEVEL": "WARNING",
    }
    try:
        results: dict[str, dict[str, float]] = {}
        modes = ("cold", "warm") if args.cache == "both" else (args.cache,)
        for mode in modes:
            runs = [
                run_mode(mode, env, scratch, args, tokens, documents, i) for i in range(args.runs)
            ]
            results[mode] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            results[mode]["errors"] = sum(r["errors"] for r in runs)  # every one counts
            if args.runs > 1:
                r = results[mode]
                print(
                    f"{mode}, median of {args.runs}: {r['rps']:.1f} req/s, "
                    f"p50 {r['p50_ms']:.1f} ms, p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms"
                )
    finally:
        if drop is not None:
            _drop(args.db, drop)
    main_mode = "warm" if "warm" in results else "cold"
    r = results[main_mode]
    line = (
        f"rps={r['rps']:.1f} p50_ms={r['p50_ms']:.1f} "
        f"p95_ms={r['p95_ms']:.1f} p99_ms={r['p99_ms']:.1f}"
    )
    if "cold" in results and main_mode == "warm":
        cold = results["cold"]
        line += (
            f" cold_rps={cold['rps']:.1f} cold_p50_ms={cold['p50_ms']:.1f} "
            f"cold_p95_ms={cold['p95_ms']:.1f} cold_p99_ms={cold['p99_ms']:.1f}"
        )
    line += f" clients={args.clients} errors={int(sum(x['errors'] for x in results.values()))}"
    print(line)


if __name__ == "__main__":
    main()
