"""Load on `POST /api/v1/score`: uvicorn on loopback in a subprocess, N async clients.

    python bench/score_load.py --clients 8 --seconds 30 [--cache warm|cold|both]
    python bench/score_load.py --clients 32 --seconds 30 --tracking-uri URI --world DIR

Setup (not timed): a store with the three families (built from a generated world as in
bench/score_latency.py, or `--tracking-uri` + `--world`), a SQLite database with the world's
master data and its first `--history` documents ingested (so suppliers have history and
duplicates have candidates), and an API key with the `score` scope (rate limits off).

Requests post the canonical JSON of the world's other documents, round-robin. Warm cache: every
text was embedded (the server's cache folder is filled by a first pass). Cold cache: a fresh
server with an empty cache folder; each document's texts are encoded on its first request,
so cold figures hold while the run has not wrapped around the pool (the output says).
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
    """`uvicorn app.main:create_app` on a free loopback port with `workers` processes."""

    def __init__(self, env: dict[str, str], log: Path, workers: int = 1) -> None:
        self.port = _free_port()
        self.log = log.open("wb")  # the server's stderr, to read when requests fail
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "app.main:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--workers",
                str(workers),
            ],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("the server did not come up")

    def stop(self) -> None:
        """Stop the server process (this process started it)."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


async def _run(
    base: str,
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
    headers = {"Content-Type": "application/json"}
    bodies = [json.dumps({"document": d}).encode() for d in documents]
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as c:

        async def worker(token: str) -> None:
            nonlocal errors, sent
            auth = {"Authorization": f"Bearer {token}"}
            while time.perf_counter() < deadline and (limit is None or sent < limit):
                body = bodies[sent % len(bodies)]
                sent += 1
                started = time.perf_counter()
                try:
                    response = await c.post("/api/v1/score", content=body, headers=auth)
                except httpx.HTTPError:
                    errors += 1  # a dropped connection counts, it does not end the run
                    continue
                if response.status_code == 200:
                    latencies.append(time.perf_counter() - started)
                else:
                    errors += 1

        await asyncio.gather(*(worker(tokens[i % len(tokens)]) for i in range(clients)))
    return latencies, errors, sent


def measure(
    server: Server,
    tokens: list[str],
    documents: list[dict],
    clients: int,
    seconds: float,
    limit: int | None = None,
) -> dict[str, float]:
    """Run the clients for `seconds` (or `limit` requests); requests/s and latency percentiles."""
    started = time.perf_counter()
    latencies, errors, sent = asyncio.run(
        _run(server.base, tokens, documents, clients, seconds, limit)
    )
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


def main() -> None:
    """Prepare, run warm and/or cold, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--cache", choices=("warm", "cold", "both"), default="both")
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
            cache = scratch / f"embeddings-{mode}"
            server = Server(
                {**env, "TOLLGATE_EMBEDDING_CACHE_DIR": str(cache)},
                scratch / f"server-{mode}.log",
                args.workers,
            )
            try:
                if mode == "warm":
                    # Every worker sees (nearly) every document: its texts are embedded and its
                    # supplier's inputs cached in each process before the measured run.
                    measure(
                        server,
                        tokens,
                        documents,
                        args.clients,
                        3600,
                        limit=len(documents) * (args.workers + 1),
                    )
                else:
                    # Models loaded, texts not: score one document outside the measured pool.
                    measure(
                        server, tokens, documents[-1:], args.workers * 2, 60, limit=args.workers * 4
                    )
                results[mode] = measure(server, tokens, documents[:-1], args.clients, args.seconds)
            finally:
                server.stop()
            r = results[mode]
            wrapped = (
                " (pool wrapped: later requests were warm)"
                if (mode == "cold" and r["requests"] > len(documents) - 1)
                else ""
            )
            print(
                f"{mode}: {r['rps']:.1f} req/s, p50 {r['p50_ms']:.1f} ms, "
                f"p95 {r['p95_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms, "
                f"{int(r['errors'])} errors{wrapped}"
                + (f" (server log: {server.log.name})" if r["errors"] else "")
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
