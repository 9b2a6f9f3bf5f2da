"""`tollgate webhooks add|list|deliveries|disable|enable|deliver` (registered by app/cli.py)."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import httpx
import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import Actor
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.errors import AppError
from app.logs import configure_logging
from app.settings import get_settings
from app.webhooks import service
from app.webhooks.service import RetryPolicy
from app.webhooks.worker import DeliveryStats, run_forever, run_round

webhooks_cli = typer.Typer(
    help="Webhooks: signed notices of case state changes, retried with backoff.",
    no_args_is_help=True,
)
err = Console(stderr=True)
out = Console()
CLI_ACTOR = Actor("cli", "admin")


def _factory() -> sessionmaker[Session]:
    settings = get_settings()
    configure_logging(settings.log_level, json=settings.log_json)
    migrate.upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def _fail(exc: AppError) -> typer.Exit:
    err.print(f"[red]error[/red] {exc.code}: {exc.message}")
    return typer.Exit(code=2)


@webhooks_cli.command("add")
def add(
    url: Annotated[str, typer.Argument(help="the endpoint that receives POSTs")],
    events: Annotated[
        str, typer.Option(help="comma-separated patterns: case.approved,case.posted or case.*")
    ] = "case.*",
    secret: Annotated[
        str | None, typer.Option(help="signing secret (default: a new random one)")
    ] = None,
) -> None:
    """Subscribe an endpoint; prints its signing secret once."""
    try:
        with transaction(_factory()) as session:
            created = service.add_subscription(
                session, url=url, events=events.split(","), actor=CLI_ACTOR, secret=secret
            )
            sub_id = created.subscription.id
    except AppError as exc:
        raise _fail(exc) from None
    out.print(f"webhook {sub_id} → {url} ({events})")
    out.print(f"signing secret (shown once): {created.secret}")


@webhooks_cli.command("list")
def list_cmd() -> None:
    """The subscriptions (secrets are never shown again)."""
    with transaction(_factory()) as session:
        table = Table("id", "url", "events", "active", "created by")
        for s in service.list_subscriptions(session):
            table.add_row(
                str(s.id), s.url, ",".join(s.events), "yes" if s.active else "no", s.created_by
            )
    out.print(table)


def _set_active(subscription_id: int, active: bool) -> None:
    try:
        with transaction(_factory()) as session:
            service.set_active(session, subscription_id, active, CLI_ACTOR)
    except AppError as exc:
        raise _fail(exc) from None
    out.print(f"webhook {subscription_id} {'enabled' if active else 'disabled'}")


@webhooks_cli.command("disable")
def disable(subscription_id: Annotated[int, typer.Argument()]) -> None:
    """Stop queueing events for a subscription."""
    _set_active(subscription_id, False)


@webhooks_cli.command("enable")
def enable(subscription_id: Annotated[int, typer.Argument()]) -> None:
    """Queue events for a subscription again."""
    _set_active(subscription_id, True)


@webhooks_cli.command("deliveries")
def deliveries(
    status: Annotated[
        str | None, typer.Option(help="pending, sending, delivered or failed")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """The delivery log, newest first: tries, status and what the endpoint last said."""
    try:
        with transaction(_factory()) as session:
            rows = service.list_deliveries(session, status, limit)
            table = Table("id", "webhook", "event", "case", "status", "tries", "next", "last")
            for d in rows:
                table.add_row(
                    str(d.id),
                    str(d.subscription_id),
                    d.event_type,
                    str(d.payload.get("data", {}).get("case_id", "")),
                    d.status,
                    str(d.attempts),
                    d.next_at.isoformat(timespec="seconds") if d.status == "pending" else "",
                    d.last_error or (str(d.last_status_code) if d.last_status_code else ""),
                )
    except AppError as exc:
        raise _fail(exc) from None
    out.print(table)


@webhooks_cli.command("deliver")
def deliver(
    once: Annotated[bool, typer.Option("--once", help="send what is due now, then stop")] = False,
    poll: Annotated[float, typer.Option(help="seconds to idle when nothing is due")] = 1.0,
    batch: Annotated[int, typer.Option(help="deliveries claimed per round")] = 20,
) -> None:
    """Send due deliveries until Ctrl-C (or once, with --once)."""
    factory = _factory()
    policy = RetryPolicy.from_settings(get_settings())
    if once:
        with httpx.Client(follow_redirects=False) as client:
            stats = run_round(factory, client, policy=policy, batch=batch)
    else:
        stop = threading.Event()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            err.print(f"stopping after the current delivery ({signal.Signals(signum).name})")
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)
        stats = run_forever(factory, stop, policy=policy, batch=batch, poll_seconds=poll)
    _summary(stats)


def _summary(stats: DeliveryStats) -> None:
    out.print(
        f"claimed={stats.claimed} delivered={stats.delivered} retried={stats.retried} "
        f"failed={stats.failed} lost={stats.lost}"
    )
