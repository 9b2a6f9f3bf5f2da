"""`tollgate erp …` and `tollgate worker`: run the outbox worker, reconcile with the ERP.

app/cli.py registers `erp_cli` (as `erp`) and `worker` (as a top-level command).
"""

from __future__ import annotations

import signal
import threading
from datetime import date
from types import FrameType
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import Actor
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.erp import service
from app.erp.protocol import ErpError
from app.erp.service import RetryPolicy
from app.erp.sync import erp_sync
from app.erp.worker import RoundStats, drain, run_forever, run_round
from app.logs import configure_logging
from app.settings import get_settings

erp_cli = typer.Typer(help="Posting approved invoices to the ERP.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def _factory() -> sessionmaker[Session]:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    migrate.upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def parse_period(text: str) -> tuple[date, date]:
    """`2026-01-01:2026-01-31` as (start, end), both included."""
    first, sep, last = text.partition(":")
    try:
        start, end = date.fromisoformat(first.strip()), date.fromisoformat(last.strip())
    except ValueError:
        raise typer.BadParameter("a period looks like 2026-01-01:2026-01-31") from None
    if not sep or end < start:
        raise typer.BadParameter("a period looks like 2026-01-01:2026-01-31 (start <= end)")
    return start, end


def worker(
    once: Annotated[bool, typer.Option("--once", help="post what is due now, then stop")] = False,
    drain_all: Annotated[
        bool, typer.Option("--drain", help="run until nothing is pending or sending")
    ] = False,
    poll: Annotated[float, typer.Option(help="seconds to idle when nothing is due")] = 1.0,
    batch: Annotated[int, typer.Option(help="rows claimed per round")] = 10,
) -> None:
    """Send approved invoices to the ERP until Ctrl-C (or once, with --once)."""
    settings = get_settings()
    factory = _factory()
    adapter = service.make_adapter(settings)
    policy = RetryPolicy.from_settings(settings)
    try:
        err.print(f"erp: {adapter.check()}")
    except ErpError as exc:
        err.print(f"[yellow]warning[/yellow] the ERP is not reachable yet: {exc.message}")
    if once:
        stats = run_round(factory, adapter, policy=policy, batch=batch)
    elif drain_all:
        stats = drain(factory, adapter, policy=policy, batch=batch, timeout_seconds=3600)
    else:
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            err.print(f"stopping after the current posting ({signal.Signals(signum).name})")
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        stats = run_forever(factory, adapter, stop, policy=policy, batch=batch, poll_seconds=poll)
    _summary(stats)


def _summary(stats: RoundStats) -> None:
    out.print(
        f"claimed={stats.claimed} posted={stats.posted} healed={stats.healed} "
        f"retried={stats.retried} failed={stats.failed} reclaimed={stats.reclaimed}"
    )


erp_cli.command("worker")(worker)


@erp_cli.command()
def reconcile(
    period: Annotated[str, typer.Option(help="START:END, e.g. 2026-01-01:2026-01-31")],
) -> None:
    """Compare Tollgate's postings of a period with the ERP; exit 1 when there are breaks."""
    start, end = parse_period(period)
    factory = _factory()
    adapter = service.make_adapter(get_settings())
    try:
        with transaction(factory) as session:
            report = service.reconcile(session, adapter, start, end)
    except ErpError as exc:
        err.print(f"[red]error[/red] the ERP could not be read: {exc.message}")
        raise typer.Exit(code=2) from None
    out.print(
        f"{start}..{end}: posted here {report.local_posted}, in the ERP {report.erp_posted}, "
        f"matched {report.matched}, breaks {len(report.breaks)}"
    )
    if report.breaks:
        table = Table("kind", "key", "case", "detail")
        for b in report.breaks:
            table.add_row(b.kind, b.idempotency_key, str(b.case_id or ""), b.detail)
        out.print(table)
        raise typer.Exit(code=1)


@erp_cli.command()
def sync(
    full: Annotated[
        bool, typer.Option("--full", help="fetch everything, not only what changed since")
    ] = False,
) -> None:
    """Pull suppliers, POs and receipts from the ERP; open cases on changed POs re-match."""
    factory = _factory()
    adapter = service.make_adapter(get_settings())
    try:
        with transaction(factory) as session:
            summary = erp_sync(session, adapter, Actor("erp-sync", "system"), full=full)
    except ErpError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(code=2) from None
    table = Table("what", "count", title=f"Synced from {summary.adapter}")
    table.add_row("suppliers", str(summary.suppliers))
    table.add_row("purchase orders", str(summary.purchase_orders))
    table.add_row("receipts", str(summary.receipts))
    table.add_row("receipts skipped (PO unknown)", str(len(summary.skipped_receipts)))
    table.add_row("open cases re-matched", str(len(summary.rematched_cases)))
    out.print(table)


@erp_cli.command()
def check() -> None:
    """Reach the configured ERP and say what it is."""
    adapter = service.make_adapter(get_settings())
    try:
        out.print(adapter.check())
    except ErpError as exc:
        err.print(f"[red]error[/red] {exc.message}")
        raise typer.Exit(code=2) from None
