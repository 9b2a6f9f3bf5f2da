"""The `tollgate` command line: serve, migrate, load master data, ingest, audit, demo."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from app.audit import service as audit
from app.audit.service import Actor
from app.blobs import BlobStore
from app.cases.service import findings_by_case, rematch_for_purchase_orders
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.documents.bulk import BulkResult, ingest_many
from app.documents.parsing import make_parser
from app.erp.cli import erp_cli, worker
from app.errors import AppError
from app.logs import configure_logging
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from app.promotions import cli as promotions_cli
from app.settings import get_settings
from app.webhooks.cli import webhooks_cli
from pipelines.parsers import ParsedDocument, ParseLimits
from pipelines.parsers.csv_invoices import read_header, split_csv
from pipelines.parsers.errors import ParseError

cli = typer.Typer(
    help="Tollgate: accounts-payable exception triage with a human sign-off gate.",
    no_args_is_help=True,
    add_completion=False,
)
db_cli = typer.Typer(help="Database schema.", no_args_is_help=True)
audit_cli = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
eval_cli = typer.Typer(help="Evaluate rules and models against ground truth.", no_args_is_help=True)
cli.add_typer(db_cli, name="db")
cli.add_typer(audit_cli, name="audit")
cli.add_typer(eval_cli, name="eval")
keys_cli = typer.Typer(help="API keys for other systems (scoped, revocable).", no_args_is_help=True)
cli.add_typer(keys_cli, name="api-keys")
cli.add_typer(erp_cli, name="erp")
cli.add_typer(webhooks_cli, name="webhooks")
cli.command()(worker)
users_cli = typer.Typer(
    help="People who work in Tollgate, their roles and limits.", no_args_is_help=True
)
cli.add_typer(users_cli, name="users")
train_cli = typer.Typer(
    help="Train a model family, log it to MLflow and register it as `challenger`.",
    no_args_is_help=True,
)
cli.add_typer(train_cli, name="train")
models_cli = typer.Typer(help="Registered models, versions and aliases.", no_args_is_help=True)
cli.add_typer(models_cli, name="models")
promotions_cli.register(models_cli, train_cli)  # promote/approve/…, train reason, --from-reviews
err = Console(stderr=True)
out = Console()

DOCUMENT_SUFFIXES = {".xml", ".pdf", ".csv", ".json"}


def _session_factory():  # type: ignore[no-untyped-def]
    settings = get_settings()
    configure_logging("WARNING", json=settings.log_json)
    migrate.upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def _fail(exc: AppError) -> typer.Exit:
    err.print(f"[red]error[/red] {exc.code}: {exc.message}")
    return typer.Exit(code=2)


@cli.command()
def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    reload: Annotated[bool, typer.Option(help="reload on code changes (development)")] = False,
    workers: Annotated[
        int, typer.Option(help="server processes (production: one per core, behind a balancer)")
    ] = 1,
    access_log: Annotated[
        bool, typer.Option(help="a log line per request (keyed API calls are also in api_calls)")
    ] = True,
) -> None:
    """Run the API and the review UI (migrating the database first)."""
    import uvicorn

    from models.scoring import tune_for_serving

    migrate.upgrade(get_settings().database_url)
    tune_for_serving()  # requests side by side: one native thread each, quick GIL hand-off
    err.print(f"Tollgate on http://{host}:{port}/review  (API docs: http://{host}:{port}/docs)")
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        workers=None if reload else workers,
        access_log=access_log,
    )


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Apply migrations up to a revision."""
    migrate.upgrade(get_settings().database_url, revision)
    err.print(f"database at {revision}")


@cli.command("load-master-data")
def load_master_data_cmd(
    folder: Annotated[
        Path,
        typer.Argument(
            help="folder with suppliers / purchase_orders / goods_receipts as .json or .csv"
        ),
    ],
) -> None:
    """Load suppliers, purchase orders and goods receipts (create or update)."""
    factory = _session_factory()
    try:
        data = read_master_data(folder)
        actor = Actor("cli", "admin")
        with transaction(factory) as session:
            summary = load_master_data(session, data, actor)
            # Receipts that arrive settle NO_RECEIPT and quantity findings: match again.
            changed = rematch_for_purchase_orders(
                session, summary.affected_purchase_orders, actor=actor
            )
    except AppError as exc:
        raise _fail(exc) from exc
    table = Table("what", "count", title=f"Loaded {folder}")
    for key, value in summary.model_dump(exclude={"affected_purchase_orders"}).items():
        table.add_row(key.replace("_", " "), str(value))
    table.add_row("open cases re-matched", str(len(changed)))
    out.print(table)
    for case_id, before, after in changed:
        out.print(
            f"case {case_id}: {', '.join(before) or 'clean'} -> {', '.join(after) or 'clean'}"
        )


def _collect(paths: list[Path], suffixes: set[str] = DOCUMENT_SUFFIXES) -> list[Path]:
    """Files given, and files with a document suffix in folders given (recursive, sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
            )
        elif path.is_file():
            files.append(path)
        else:
            raise typer.BadParameter(f"{path} does not exist")
    return files


def _document_items(
    files: list[Path], limits: ParseLimits, expanded: Callable[[int], None]
) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) per document: a bulk CSV file gives one item per document it holds."""
    for path in files:
        data = path.read_bytes()
        if path.suffix.lower() == ".csv" and read_header(data) is not None:
            try:
                parts = split_csv(data, limits)
            except ParseError:
                parts = []  # stored whole, with its typed error, like any unreadable file
            if len(parts) > 1:
                expanded(len(parts))
                for name, part in parts:
                    yield f"{path}#{name}", part
                continue
        yield str(path), data


@cli.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (recursive)")],
    as_json: Annotated[bool, typer.Option("--json", help="one JSON line per document")] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, help="documents per commit (each has its own savepoint)")
    ] = 50,
) -> None:
    """Store, read, match and open a case for each document; exit 2 if any could not be read."""
    files = _collect(paths)
    factory = _session_factory()
    settings = get_settings()
    outcomes: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    problems: list[BulkResult] = []
    limits = ParseLimits(max_bytes=settings.max_parse_bytes)
    parser = make_parser(settings)
    with _progress("ingesting", disable=as_json or not files) as progress:
        task = progress.add_task("ingest", total=len(files))

        def expanded(parts: int) -> None:
            total = progress.tasks[task].total or 0
            progress.update(task, total=total + parts - 1)

        try:
            for result in ingest_many(
                factory,
                BlobStore(settings.blobs, defer_sync=True),
                _document_items(files, limits, expanded),
                actor=Actor("cli", "clerk"),
                channel="cli",
                limits=limits,
                batch_size=batch_size,
                parser=parser,
            ):
                outcomes[result.outcome] += 1
                reasons.update(result.reasons)
                if result.error_code:
                    problems.append(result)
                if as_json:
                    sys.stdout.write(json.dumps(dataclasses.asdict(result)) + "\n")
                progress.advance(task)
        finally:
            parser.close()
    if not as_json:
        table = Table("outcome", "documents", title=f"{len(files)} file(s)")
        for kind, count in outcomes.most_common():
            table.add_row(kind, str(count))
        out.print(table)
        if reasons:
            rt = Table("reason", "cases", title="findings on new cases")
            for code, count in reasons.most_common():
                rt.add_row(code, str(count))
            out.print(rt)
        for result in problems:
            err.print(
                f"[yellow]{result.source}[/yellow]: {result.error_code}: {result.error_message}"
            )
    if problems:
        raise typer.Exit(code=2)


@cli.command()
def parse(
    paths: Annotated[list[Path], typer.Argument(help="files or folders (recursive)")],
    output_format: Annotated[
        str, typer.Option("--format", help="json (one record per line) or csv")
    ] = "json",
    text_only: Annotated[
        bool,
        typer.Option(
            "--text-only",
            help="read PDFs from their visible text even when they carry e-invoice XML",
        ),
    ] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="write here instead of standard output")
    ] = None,
) -> None:
    """Read documents and print what was read: fields with confidence, lines, findings.

    No database, server or model is needed; parsing runs in the same sandboxed worker
    processes as the service. Exit 0 when every document was read, 2 when some could not be
    (each with its error in the output), 1 on a usage error.
    """
    import csv
    import functools

    from governance.tolerances import DEFAULT_POLICY
    from pipelines.parsers import parse_documents
    from pipelines.parsers.sandbox import SandboxLimits, SandboxPool
    from pipelines.readout import CSV_COLUMNS, csv_row, record

    if output_format not in ("json", "csv"):
        err.print(f"[red]error[/red] --format must be json or csv, not {output_format!r}")
        raise typer.Exit(code=1)
    try:
        files = _collect(paths, {".xml", ".pdf", ".csv"})
    except typer.BadParameter as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(code=1) from None
    settings = get_settings()
    limits = ParseLimits(max_bytes=settings.max_parse_bytes)
    sandbox = SandboxLimits(
        wall_seconds=settings.parse_timeout_seconds,
        memory_bytes=settings.parse_memory_mib * 1024 * 1024,
        parse=limits,
    )
    reader = functools.partial(parse_documents, text_only=text_only)
    handle = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
    writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS) if output_format == "csv" else None
    if writer is not None:
        writer.writeheader()
    unreadable = 0
    try:
        with (
            SandboxPool(sandbox, workers=settings.parse_workers, parse=reader) as pool,
            _progress("reading", disable=len(files) < 2) as progress,
        ):
            task = progress.add_task("parse", total=len(files))
            for path in files:
                data = path.read_bytes()
                outcome = pool.parse(data)
                results: list[ParsedDocument | ParseError] = (
                    list(outcome) if isinstance(outcome, list) else [outcome]
                )
                unreadable += isinstance(outcome, ParseError)
                for index, result in enumerate(results):
                    rec = record(str(path), result, DEFAULT_POLICY, index)
                    if writer is not None:
                        writer.writerow(csv_row(rec))
                    else:
                        handle.write(json.dumps(rec, ensure_ascii=False) + "\n")
                progress.advance(task)
    finally:
        if output:
            handle.close()
    if unreadable:
        err.print(f"{unreadable} of {len(files)} file(s) could not be read")
        raise typer.Exit(code=2)


def _progress(label: str, disable: bool = False) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=disable,
    )


@cli.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="folder to write the world into")],
    invoices: Annotated[int, typer.Option(min=1, help="number of invoices")] = 2000,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same world")] = 7,
    months: Annotated[int, typer.Option(min=1, max=36, help="simulated period")] = 6,
    start: Annotated[str, typer.Option(help="first day of the period (YYYY-MM-DD)")] = "2026-01-05",
    languages: Annotated[
        str, typer.Option(help="comma-separated supplier languages: en, de, fr")
    ] = "en,de,fr",
    pdf: Annotated[bool, typer.Option("--pdf/--no-pdf", help="render PDFs too")] = True,
    report: Annotated[
        bool, typer.Option("--report", help="write report.md with plots next to the world")
    ] = False,
) -> None:
    """Generate a synthetic AP world: master data, documents (UBL, PDF, CSV) and ground truth."""
    from datetime import date

    from training.synth.generator import Generator, WorldConfig
    from training.synth.output import write_world

    try:
        config = WorldConfig(
            invoices=invoices,
            seed=seed,
            months=months,
            start=date.fromisoformat(start),
            languages=tuple(x.strip() for x in languages.split(",") if x.strip()),
        )
        generator = Generator(config)
    except ValueError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(code=1) from exc
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".tollgate-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        err.print(f"[red]error[/red] cannot write to {out_dir}: {exc.strerror or exc}")
        raise typer.Exit(code=1) from exc
    with _progress("generating") as progress:
        task = progress.add_task("generate", total=invoices)
        world = generator.build(lambda made: progress.update(task, completed=made))
    with _progress("writing") as progress:
        task = progress.add_task("write", total=len(world.documents))
        written = write_world(
            world, out_dir, pdf=pdf, progress=lambda n: progress.update(task, completed=n)
        )
    if report:
        from training.synth.report import write_report

        report_path = write_report(out_dir)
        err.print(f"report: {report_path}")
    out.print(
        f"{written.documents} documents ({written.invoices} invoices, "
        f"{written.with_exception} with an exception, {written.ambiguous} ambiguous, "
        f"{written.pdfs} PDFs of which {written.facturx} Factur-X) in {out_dir}"
    )


@eval_cli.command("match")
def eval_match(
    world: Annotated[Path, typer.Option("--world", help="a folder made by `tollgate generate`")],
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
    database_url: Annotated[
        str | None,
        typer.Option(help="an empty database to use (default: a temporary SQLite file)"),
    ] = None,
    findings_out: Annotated[
        Path | None,
        typer.Option(help="also write each document's findings as JSON lines (for training)"),
    ] = None,
) -> None:
    """Ingest a world into a fresh database; score the rules per reason code (exit 1 below 0.99)."""
    import tempfile

    from app.settings import Settings
    from training.eval_match import evaluate, read_truth, render

    if not (world / "truth.jsonl").is_file() or not (world / "master").is_dir():
        err.print(f"[red]error[/red] {world} is not a generated world (no truth.jsonl / master/)")
        raise typer.Exit(code=2)
    truth = read_truth(world)
    files = sorted((world / "documents" / "ubl").glob("*.xml"))
    with tempfile.TemporaryDirectory(prefix="tollgate-eval-") as tmp:
        settings = Settings(data_dir=Path(tmp), database_url=database_url or "")
        configure_logging("WARNING", json=False)
        migrate.upgrade(settings.database_url)
        factory = make_session_factory(make_engine(settings.database_url))
        actor = Actor("eval", "admin")
        try:
            with transaction(factory) as session:
                load_master_data(session, read_master_data(world / "master"), actor)
        except AppError as exc:
            raise _fail(exc) from exc
        predicted: dict[str, list[str]] = {}
        case_files: dict[int, str] = {}
        with _progress("ingesting", disable=as_json) as progress:
            task = progress.add_task("ingest", total=len(files))
            items = ((path.stem, path.read_bytes()) for path in files)
            for result in ingest_many(
                factory,
                BlobStore(settings.blobs, defer_sync=True),
                items,
                actor=actor,
                channel="eval",
                limits=ParseLimits(max_bytes=settings.max_parse_bytes),
            ):
                if result.case_id is not None:
                    predicted[result.source] = result.reasons
                    case_files[result.case_id] = result.source
                progress.advance(task)
        if findings_out is not None:
            with transaction(factory) as session:
                found = findings_by_case(session, sorted(case_files))
            with findings_out.open("w", encoding="utf-8") as handle:
                for case_id, file in sorted(case_files.items(), key=lambda item: item[1]):
                    record = {"file": file, "case_id": case_id, "findings": found[case_id]}
                    handle.write(json.dumps(record, sort_keys=True) + "\n")
    evaluation = evaluate(truth, predicted)
    if as_json:
        sys.stdout.write(json.dumps(evaluation.to_json(), indent=1) + "\n")
    else:
        out.print(render(evaluation), highlight=False, markup=False)
    if evaluation.failures():
        raise typer.Exit(code=1)


@eval_cli.command("parse")
def eval_parse(
    set_name: Annotated[
        str,
        typer.Option("--set", help="xrechnung, en16931, facturx, mustang, invoice2data, world, …"),
    ],
    world: Annotated[
        Path | None, typer.Option("--world", help="a folder made by `tollgate generate`")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="public test data (default: <repo>/../shared/data)"),
    ] = None,
) -> None:
    """Score document reading on a named set: per-field accuracy, failures (exit 1 below bar)."""
    from training.eval_parse import DATA_ROOT, SETS, below_bars, render, report_json

    parse_set = SETS.get(set_name)
    if parse_set is None:
        err.print(f"[red]error[/red] unknown set {set_name!r}; choose from {', '.join(SETS)}")
        raise typer.Exit(code=2)
    if parse_set.needs_world and (world is None or not (world / "truth.jsonl").is_file()):
        err.print(f"[red]error[/red] set {set_name} needs --world <a generated world folder>")
        raise typer.Exit(code=2)
    root = data or DATA_ROOT
    if not parse_set.needs_world and not root.is_dir():
        err.print(f"[red]error[/red] no public test data at {root}; pass --data DIR")
        raise typer.Exit(code=2)
    import logging

    # Some public fixtures are damaged on purpose; pypdf's repair warnings are noise here.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    report = parse_set.run(root, world)
    if as_json:
        sys.stdout.write(json.dumps(report_json(report, parse_set), indent=1) + "\n")
    else:
        out.print(render(report, parse_set), highlight=False, markup=False, soft_wrap=True)
    if below_bars(report, parse_set):
        raise typer.Exit(code=1)


@keys_cli.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="who or what uses the key, e.g. erp-prod")],
    scopes: Annotated[
        str, typer.Option(help="comma-separated: score, documents:write, cases:read")
    ] = "cases:read",
) -> None:
    """Create an API key; it is printed once and never stored in clear."""
    from app.apikeys.service import create_key

    factory = _session_factory()
    try:
        with transaction(factory) as session:
            new = create_key(
                session,
                name=name,
                scopes=[x.strip() for x in scopes.split(",") if x.strip()],
                actor=Actor("cli", "admin"),
            )
            token = new.token
    except AppError as exc:
        err.print(f"[red]error[/red] {exc.code}: {exc.message}")
        raise typer.Exit(code=1) from None
    err.print("store this key now; it cannot be shown again:")
    out.print(token, highlight=False)


@keys_cli.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's public id")]) -> None:
    """Revoke a key at once."""
    from app.apikeys.service import revoke

    factory = _session_factory()
    try:
        with transaction(factory) as session:
            revoke(session, key_id, Actor("cli", "admin"))
    except AppError as exc:
        raise _fail(exc) from exc
    out.print(f"revoked {key_id}")


@keys_cli.command("list")
def keys_list() -> None:
    """Keys, their scopes and when they were last used (never their secrets)."""
    from app.apikeys.repository import all_keys

    factory = _session_factory()
    table = Table("id", "name", "scopes", "created", "last used", "revoked")
    with transaction(factory) as session:
        for key in all_keys(session):
            table.add_row(
                key.key_id,
                key.name,
                ", ".join(key.scopes),
                f"{key.created_at:%Y-%m-%d}",
                f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "",
                f"{key.revoked_at:%Y-%m-%d}" if key.revoked_at else "",
            )
    out.print(table)


@keys_cli.command("calls")
def keys_calls(
    key: Annotated[str | None, typer.Option(help="only the calls of this key id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="how many calls")] = 50,
    since: Annotated[
        str | None, typer.Option(help="from this moment on, ISO 8601 (UTC unless it says)")
    ] = None,
) -> None:
    """Calls made with API keys, newest first (written by the server every ~0.5 s)."""
    from datetime import UTC, datetime

    from app.apikeys.repository import calls

    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError:
            err.print(f"[red]error[/red] --since {since!r} is not an ISO 8601 date or time")
            raise typer.Exit(code=2) from None
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    factory = _session_factory()
    table = Table()
    # Narrow terminals squeeze the request id, never the columns a reader searches by.
    for title in ("at (UTC)", "key", "method", "route", "status", "ms"):
        table.add_column(title, no_wrap=True)
    table.add_column("request id", overflow="fold")
    with transaction(factory) as session:
        for call in calls(session, key_id=key, since=start, limit=limit):
            table.add_row(
                f"{call.at:%Y-%m-%d %H:%M:%S}",
                call.key_id,
                call.method,
                call.route,
                str(call.status),
                f"{call.duration_ms:.1f}",
                call.request_id or "",
            )
    out.print(table)


@users_cli.command("add")
def users_add(
    username: Annotated[str, typer.Argument(help="login name")],
    role: Annotated[
        str, typer.Option(help="clerk, approver, controller, ml_engineer or admin")
    ] = "clerk",
    name: Annotated[str | None, typer.Option(help="display name (default: the login)")] = None,
    limit: Annotated[
        str | None, typer.Option(help="approval limit, e.g. 50000 (approvers)")
    ] = None,
    currency: Annotated[str, typer.Option(help="currency of the limit")] = "EUR",
    password_env: Annotated[
        str | None,
        typer.Option(help="read the password from this environment variable (for scripts)"),
    ] = None,
    exists_ok: Annotated[
        bool, typer.Option("--exists-ok", help="do nothing if the user exists (for scripts)")
    ] = False,
) -> None:
    """Add a user; the password is asked twice (or read from --password-env)."""
    import os
    from decimal import Decimal, InvalidOperation

    from app.users.service import create_user

    if password_env is not None:
        password = os.environ.get(password_env, "")
        if not password:
            err.print(f"[red]error[/red] the environment variable {password_env} is empty")
            raise typer.Exit(code=2)
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        approval_limit = Decimal(limit) if limit is not None else None
    except InvalidOperation:
        err.print(f"[red]error[/red] the limit {limit!r} is not a number")
        raise typer.Exit(code=2) from None
    factory = _session_factory()
    if exists_ok:
        from app.users.repository import by_username

        with transaction(factory) as session:
            if by_username(session, username) is not None:
                out.print(f"{username} exists already")
                return
    try:
        with transaction(factory) as session:
            user = create_user(
                session,
                username=username,
                display_name=name or username,
                role=role,
                password=password,
                actor=Actor("cli", "admin"),
                approval_limit=approval_limit,
                limit_currency=currency if approval_limit is not None else None,
            )
            summary = f"{user.username} ({user.role})"
    except AppError as exc:
        raise _fail(exc) from exc
    out.print(f"added {summary}")


@users_cli.command("list")
def users_list() -> None:
    """The users, their roles and limits."""
    from app.users.repository import all_users

    factory = _session_factory()
    table = Table("user", "name", "role", "limit", "active")
    with transaction(factory) as session:
        for user in all_users(session):
            limit = f"{user.approval_limit} {user.limit_currency}" if user.approval_limit else ""
            table.add_row(user.username, user.display_name, user.role, limit, str(user.active))
    out.print(table)


@audit_cli.command("verify")
def audit_verify(
    at: Annotated[
        str | None,
        typer.Option(
            "--checkpoint", help="a checkpoint kept elsewhere (SEQ:HASH from `audit checkpoint`)"
        ),
    ] = None,
) -> None:
    """Recompute the hash chain of the audit log; exit 1 on any break."""
    try:
        mark = audit.Checkpoint.parse(at) if at else None
    except ValueError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(code=2) from None
    factory = _session_factory()
    with transaction(factory) as session:
        report = audit.verify(session, mark)
    for brk in report.breaks[:50]:
        err.print(f"[red]break[/red] at seq {brk.seq}: {brk.reason}")
    if not report.head_matches:
        err.print("[red]break[/red] the chain head does not point at the last event")
    if report.checkpoint_matches is False:
        err.print(
            f"[red]break[/red] event {mark.seq if mark else '?'} no longer has the checkpoint's "
            "hash: the chain was rewritten after the checkpoint was taken"
        )
    if not report.ok:
        raise typer.Exit(code=1)
    out.print(f"audit chain ok: {report.events} events")


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Print the chain head as SEQ:HASH; keep it outside the database to catch rewrites."""
    factory = _session_factory()
    with transaction(factory) as session:
        out.print(str(audit.checkpoint(session)), highlight=False)


WorldOption = Annotated[
    Path | None, typer.Option("--world", help="a generated world to train on (`tollgate generate`)")
]
TestWorldOption = Annotated[
    Path | None,
    typer.Option("--test-world", help="a second world held out for the test metrics"),
]
XesOption = Annotated[
    Path | None,
    typer.Option("--xes", help="an XES event log (BPIC 2020) for the delay family's benchmark"),
]
CardsOption = Annotated[
    Path | None,
    typer.Option("--cards-dir", help="where model cards go (default: governance/model_cards)"),
]

FromReviewsOption = Annotated[
    bool, typer.Option("--from-reviews", help="learn from decided cases (hashed snapshot)")
]
TrainedByOption = Annotated[
    str | None, typer.Option("--trained-by", help="who trains (default: the OS user)")
]


def _tracking_uri() -> str:
    from models.registry import default_tracking_uri

    return default_tracking_uri(get_settings().data_dir)


def _check_world(world: Path | None, option: str) -> None:
    if world is not None and not (world / "truth.jsonl").is_file():
        err.print(f"[red]error[/red] {option} {world} is not a generated world (no truth.jsonl)")
        raise typer.Exit(code=2)


def _train(
    families: list[str],
    world: Path | None,
    test_world: Path | None,
    xes: Path | None,
    cards_dir: Path | None,
    trained_by: str | None = None,
) -> None:
    """Train the families in turn with a progress bar per step; print what was registered."""
    from training.train import train_family

    _check_world(world, "--world")
    _check_world(test_world, "--test-world")
    if xes is not None and not xes.is_file():
        err.print(f"[red]error[/red] --xes {xes} does not exist")
        raise typer.Exit(code=2)
    uri = _tracking_uri()
    table = Table("family", "model", "version", "alias", "seconds", "card", title=f"MLflow {uri}")
    for family in families:
        # The step name changes as training moves on, so the label is the task description.
        with Progress(
            TextColumn(f"train {family}: {{task.description}}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress:
            task = progress.add_task("starting", total=1)

            def report(
                step: str, done: int, total: int, progress: Progress = progress, task: int = task
            ) -> None:
                progress.update(task, completed=done, total=total, description=step)  # type: ignore[arg-type]

            try:
                result = train_family(
                    family,
                    world=world,
                    test_world=test_world,
                    xes=xes if family == "delay" else None,
                    tracking_uri=uri,
                    progress=report,
                    cards_dir=cards_dir,
                    trained_by=trained_by,
                )
            except ValueError as exc:
                err.print(f"[red]error[/red] {family}: {exc}")
                raise typer.Exit(code=2) from exc
        table.add_row(
            family,
            result.name,
            result.version,
            "challenger",
            f"{result.seconds:.1f}",
            str(result.card or ""),
        )
    out.print(table)


@train_cli.command("anomaly")
def train_anomaly_cmd(
    world: WorldOption = None,
    test_world: TestWorldOption = None,
    cards_dir: CardsOption = None,
    from_reviews: FromReviewsOption = False,
    trained_by: TrainedByOption = None,
) -> None:
    """Duplicate detector + price anomaly score (needs --world)."""
    if from_reviews and world is not None:
        promotions_cli.train_from_reviews(["anomaly"], world, test_world, cards_dir, trained_by)
        return
    if world is None:
        err.print("[red]error[/red] train anomaly needs --world")
        raise typer.Exit(code=2)
    _train(["anomaly"], world, test_world, None, cards_dir, trained_by)


@train_cli.command("delay")
def train_delay_cmd(
    world: WorldOption = None,
    test_world: TestWorldOption = None,
    xes: XesOption = None,
    cards_dir: CardsOption = None,
    from_reviews: FromReviewsOption = False,
    trained_by: TrainedByOption = None,
) -> None:
    """Delay predictor: hours p50/p90 and P(SLA breach) from --world, BPIC head from --xes."""
    if from_reviews:
        promotions_cli.train_from_reviews(["delay"], world, test_world, cards_dir, trained_by)
        return
    if world is None and xes is None:
        err.print("[red]error[/red] train delay needs --world and/or --xes")
        raise typer.Exit(code=2)
    _train(["delay"], world, test_world, xes, cards_dir, trained_by)


@train_cli.command("all")
def train_all_cmd(
    world: WorldOption = None,
    test_world: TestWorldOption = None,
    xes: XesOption = None,
    cards_dir: CardsOption = None,
    trained_by: TrainedByOption = None,
) -> None:
    """Every available family in turn (needs --world)."""
    from training.train import load_family_trainers

    if world is None:
        err.print("[red]error[/red] train all needs --world")
        raise typer.Exit(code=2)
    _train(sorted(load_family_trainers()), world, test_world, xes, cards_dir, trained_by)


@models_cli.command("list")
def models_list(
    as_json: Annotated[bool, typer.Option("--json", help="print as JSON")] = False,
) -> None:
    """Registered models, their versions, runs and aliases."""
    from models.registry import FAMILIES, ModelRegistry

    registry = ModelRegistry(_tracking_uri())
    rows = [
        {
            "family": family,
            "name": v.name,
            "version": v.version,
            "aliases": list(v.aliases),
            "run_id": v.run_id,
            "description": v.description,
        }
        for family in FAMILIES
        for v in registry.versions(family)
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    table = Table("model", "version", "aliases", "run id", "description")
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["version"]),
            ", ".join(row["aliases"]),
            str(row["run_id"]),
            str(row["description"]),
        )
    out.print(table if rows else "no registered models")


@eval_cli.command("models")
def eval_models(
    world: Annotated[Path, typer.Option("--world", help="a held-out generated world")],
    xes: XesOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> None:
    """Score champion and challenger of each family beside baselines (exit 1 below the bars)."""
    from models.registry import CHALLENGER, CHAMPION, FAMILIES, ModelRegistry
    from training.train import FAMILY_EVALUATORS, EvalInputs, bar_failures, load_family_trainers

    load_family_trainers()  # optional families register their evaluators on import
    _check_world(world, "--world")
    registry = ModelRegistry(_tracking_uri())
    inputs = EvalInputs(world=world, xes=xes)
    results: list[dict[str, object]] = []
    failed = False
    for family in FAMILIES:
        evaluator = FAMILY_EVALUATORS.get(family)
        if evaluator is None:
            continue
        seen: set[str] = set()
        serving: str | None = None
        for alias in (CHAMPION, CHALLENGER):
            try:
                info = registry.resolve(family, (alias,))
            except LookupError:
                continue
            serving = serving or info.version  # champion, else challenger: what service loads
            if info.version in seen:
                continue
            seen.add(info.version)
            model = registry.load_version(family, info.version, alias=alias)
            with err.status(f"scoring {model.name} v{model.version} ({alias})"):
                metrics = evaluator(model, inputs)
            failures = bar_failures(family, metrics, inputs)
            is_serving = info.version == serving
            failed = failed or (is_serving and bool(failures))
            results.append(
                {
                    "family": family,
                    "name": model.name,
                    "version": model.version,
                    "alias": alias,
                    "run_id": model.run_id,
                    "serving": is_serving,
                    "metrics": metrics,
                    "failures": failures,
                }
            )
    if as_json:
        sys.stdout.write(json.dumps({"ok": not failed, "models": results}, indent=1) + "\n")
    else:
        if not results:
            out.print("no registered models to evaluate")
        for row in results:
            scored = row["metrics"]
            assert isinstance(scored, dict)
            title = f"{row['name']} v{row['version']} ({row['alias']}, run {row['run_id']})"
            table = Table("metric", "model", "baseline", title=title)
            for key in sorted(k for k in scored if "baseline" not in k):
                slice_name, _, metric = key.rpartition("/")
                base = next(
                    (
                        v
                        for k, v in scored.items()
                        if k.startswith(f"{slice_name}/baseline") and k.endswith(metric)
                    ),
                    None,
                )
                table.add_row(key, f"{scored[key]:.4f}", "" if base is None else f"{base:.4f}")
            out.print(table)
            for failure in row["failures"]:  # type: ignore[attr-defined]
                err.print(f"[red]below bar[/red] {row['name']} v{row['version']}: {failure}")
    if failed:
        raise typer.Exit(code=1)


def main() -> None:
    """Entry point of the `tollgate` script: usage errors exit 1, as `--help` documents.

    The command-line parser exits 2 on a usage error by default; Tollgate keeps 2 for "some
    documents could not be read" (ingest, parse), so a usage error is 1.
    """
    from typer._click.exceptions import UsageError  # Typer's own copy of click

    try:
        code = cli(standalone_mode=False)
    except UsageError as exc:
        exc.show()
        sys.exit(1)
    except (KeyboardInterrupt, EOFError):
        err.print("aborted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
