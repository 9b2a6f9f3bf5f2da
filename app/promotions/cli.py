"""`tollgate models promote|approve|reject|rollback|kill-switch` and `train … --from-reviews`.

`promote` attaches an evaluation: with `--world`, challenger and champion are both scored now on
that held-out world (the same data for both: the evidence the gate wants); without it, the
metrics each version's training run stored are compared, and the evaluation says so.
"""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session, sessionmaker

from app.audit.service import Actor
from app.db import migrate
from app.db.session import make_engine, make_session_factory, transaction
from app.errors import AppError
from app.logs import configure_logging
from app.promotions import service
from app.promotions.snapshot import export_decided_cases
from app.settings import get_settings
from app.users import repository as users_repository
from app.users.service import actor_of
from governance.promotion import Evaluation, compare
from models.registry import CHAMPION, ModelRegistry, default_tracking_uri
from models.runs import run_details

err = Console(stderr=True)
out = Console()


def _factory() -> sessionmaker[Session]:
    settings = get_settings()
    configure_logging("WARNING", json=settings.log_json)
    migrate.upgrade(settings.database_url)
    return make_session_factory(make_engine(settings.database_url))


def _registry() -> ModelRegistry:
    return ModelRegistry(default_tracking_uri(get_settings().data_dir))


def _fail(exc: AppError) -> typer.Exit:
    err.print(f"[red]error[/red] {exc.code}: {exc.message}")
    return typer.Exit(code=2)


def _user(session: Session, username: str) -> Any:
    user = users_repository.by_username(session, username)
    if user is None:
        err.print(f"[red]error[/red] no user {username!r} (tollgate users add)")
        raise typer.Exit(code=2)
    return user


def _actor(session: Session, username: str | None) -> Actor:
    """A known user acts with their role; an OS user without an account acts as `operator`."""
    name = username or getpass.getuser()
    user = users_repository.by_username(session, name)
    return actor_of(user) if user is not None else Actor(name, service.OS_OPERATOR)


def build_evaluation(
    registry: ModelRegistry, family: str, version: str, world: Path | None
) -> Evaluation:
    """Challenger `version` beside the current champion, on `world` or on stored metrics."""
    champion = service.current_champion(registry, family)
    if world is not None:
        from training.train import (
            FAMILY_EVALUATORS,
            EvalInputs,
            data_hash,
            load_family_trainers,
            world_files,
        )

        load_family_trainers()
        evaluator = FAMILY_EVALUATORS.get(family)
        if evaluator is None:
            raise typer.BadParameter(f"no evaluator for {family}; promote without --world")
        inputs = EvalInputs(world=world, xes=None)
        new = evaluator(registry.load_version(family, version, alias="challenger"), inputs)
        old = (
            evaluator(registry.load_version(family, champion, alias=CHAMPION), inputs)
            if champion is not None
            else {}
        )
        data = f"held-out world {world.name} (sha256 {data_hash(world_files(world))[:16]})"
    else:
        challenger_run = run_details(registry.tracking_uri, family, version)
        new = challenger_run.metrics
        old = run_details(registry.tracking_uri, family, champion).metrics if champion else {}
        same = champion is None or (
            challenger_run.tags.get("test_data_hash")
            and challenger_run.tags.get("test_data_hash")
            == run_details(registry.tracking_uri, family, champion).tags.get("test_data_hash")
        )
        data = "stored training metrics" + (
            " (same held-out world)" if same else " (different data: compare with care)"
        )
    metrics = {
        key: {"challenger": new.get(key), "champion": old.get(key)}
        for key in sorted(set(new) | set(old))
    }
    return Evaluation(family, version, champion, data, metrics)


def _print_evaluation(evaluation: Evaluation) -> None:
    table = Table(
        "metric", "challenger", "champion", "worse?", title=f"evaluation: {evaluation.data}"
    )
    for row in compare(evaluation):
        table.add_row(
            row.metric,
            "" if row.challenger is None else f"{row.challenger:.4f}",
            "" if row.champion is None else f"{row.champion:.4f}",
            "[red]worse[/red]" if row.regression else "",
        )
    out.print(table)


def promote(
    name: Annotated[str, typer.Argument(help="model: reason, anomaly, delay (or tollgate-…)")],
    version: Annotated[str, typer.Option("--version", help="the registered version to promote")],
    by: Annotated[str, typer.Option("--by", help="who asks (an ml_engineer or admin user)")],
    world: Annotated[
        Path | None,
        typer.Option("--world", help="held-out world to score challenger and champion on"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the request as JSON")] = False,
) -> None:
    """Ask for a promotion to champion, with the evaluation that supports it."""
    factory = _factory()
    registry = _registry()
    try:
        family = service.family_of(name)
        with err.status("evaluating challenger and champion"):
            evaluation = build_evaluation(registry, family, version, world)
        with transaction(factory) as session:
            row = service.request_promotion(
                session, registry, _user(session, by), family, version, evaluation
            )
            request_id = row.id
    except AppError as exc:
        raise _fail(exc) from None
    except LookupError as exc:
        err.print(f"[red]error[/red] {exc}")
        raise typer.Exit(code=2) from None
    if as_json:
        sys.stdout.write(json.dumps({"request": request_id, **evaluation.to_dict()}) + "\n")
        return
    _print_evaluation(evaluation)
    out.print(f"promotion request {request_id}: {family} v{version}, waiting for a controller")


def approve(
    request: Annotated[int, typer.Argument(help="the promotion request id")],
    by: Annotated[str, typer.Option("--by", help="the approving controller (or admin)")],
    reason: Annotated[str | None, typer.Option(help="why (goes into the audit log)")] = None,
    override_reason: Annotated[
        str | None,
        typer.Option(help="required to promote a challenger that is worse on some metric"),
    ] = None,
) -> None:
    """Approve a promotion request: champion moves if the gate allows it (exit 1 if refused)."""
    factory = _factory()
    registry = _registry()
    try:
        with transaction(factory) as session:
            outcome = service.approve(
                session,
                registry,
                request,
                _user(session, by),
                reason=reason,
                override_reason=override_reason,
            )
    except AppError as exc:
        raise _fail(exc) from None
    if not outcome.allowed:
        err.print(f"[red]refused[/red] {outcome.denial}: {outcome.message}")
        raise typer.Exit(code=1)
    out.print(f"request {request} approved: champion is now version {outcome.champion}")


def reject(
    request: Annotated[int, typer.Argument(help="the promotion request id")],
    by: Annotated[str, typer.Option("--by", help="the rejecting controller (or admin)")],
    reason: Annotated[str, typer.Option(help="why (goes into the audit log)")],
) -> None:
    """Reject a promotion request."""
    factory = _factory()
    try:
        with transaction(factory) as session:
            service.reject(session, request, _user(session, by), reason)
    except AppError as exc:
        raise _fail(exc) from None
    out.print(f"request {request} rejected")


def rollback(
    name: Annotated[str, typer.Argument(help="model: reason, anomaly, delay (or tollgate-…)")],
    by: Annotated[
        str | None, typer.Option("--by", help="who rolls back (default: the OS user)")
    ] = None,
) -> None:
    """Move champion back to the version before the last approved promotion (audited)."""
    factory = _factory()
    registry = _registry()
    try:
        family = service.family_of(name)
        with transaction(factory) as session:
            row = service.rollback(session, registry, family, _actor(session, by))
            version, undone = row.version, row.previous_version
    except AppError as exc:
        raise _fail(exc) from None
    out.print(f"{family}: champion back to version {version} (was {undone})")


def kill_switch(
    state: Annotated[str, typer.Argument(help="on (no model outputs) or off")],
    family: Annotated[str, typer.Option("--family", help="one family, or all")] = service.ALL,
    by: Annotated[
        str | None, typer.Option("--by", help="who flips it (default: the OS user)")
    ] = None,
    reason: Annotated[str | None, typer.Option(help="why (goes into the audit log)")] = None,
) -> None:
    """Turn model outputs off (every case goes to manual review) or on again; audited."""
    if state not in ("on", "off"):
        raise typer.BadParameter("on or off")
    factory = _factory()
    try:
        with transaction(factory) as session:
            service.set_kill_switch(
                session, _actor(session, by), on=state == "on", family=family, reason=reason
            )
            states = service.kill_switch_states(session)
    except AppError as exc:
        raise _fail(exc) from None
    out.print("models disabled for: " + (", ".join(k for k, v in states.items() if v) or "nothing"))


def train_from_reviews(
    families: list[str],
    world: Path | None,
    test_world: Path | None,
    cards_dir: Path | None,
    trained_by: str | None,
    tracking_uri: str | None = None,
) -> list[Any]:
    """Export decided cases to a hashed snapshot, then train each family on it (and `world`)."""
    from training.snapshot import train_from_reviews as train_one
    from training.snapshot import write_snapshot

    settings = get_settings()
    factory = _factory()
    with transaction(factory) as session:
        records = export_decided_cases(session)
    if not records:
        err.print("[red]error[/red] no decided cases to learn from")
        raise typer.Exit(code=2)
    snapshot = write_snapshot(records, settings.data_dir / "snapshots")
    err.print(f"snapshot {snapshot.name}: {len(records)} decided cases")
    uri = tracking_uri or default_tracking_uri(settings.data_dir)
    results = []
    for family in families:
        with err.status(f"train {family} from reviews"):
            try:
                result = train_one(
                    family,
                    snapshot,
                    world=world,
                    test_world=test_world,
                    tracking_uri=uri,
                    cards_dir=cards_dir,
                    trained_by=trained_by,
                )
            except ValueError as exc:
                err.print(f"[red]error[/red] {family}: {exc}")
                raise typer.Exit(code=2) from exc
        out.print(
            f"{result.name} v{result.version} (challenger), run {result.run_id}, "
            f"snapshot {snapshot.name}"
        )
        results.append(result)
    return results


def register(models_cli: typer.Typer, train_cli: typer.Typer) -> None:
    """Add the promotion commands to `tollgate models` and `train reason` to `tollgate train`."""
    models_cli.command("promote")(promote)
    models_cli.command("approve")(approve)
    models_cli.command("reject")(reject)
    models_cli.command("rollback")(rollback)
    models_cli.command("kill-switch")(kill_switch)
    train_cli.command("reason")(train_reason)


def train_reason(
    world: Annotated[
        Path | None, typer.Option("--world", help="a generated world (with findings.jsonl)")
    ] = None,
    test_world: Annotated[
        Path | None, typer.Option("--test-world", help="a held-out world for the test metrics")
    ] = None,
    from_reviews: Annotated[
        bool, typer.Option("--from-reviews", help="learn from the decided cases in the DB")
    ] = False,
    trained_by: Annotated[
        str | None, typer.Option("--trained-by", help="who trains (default: the OS user)")
    ] = None,
    cards_dir: Annotated[
        Path | None, typer.Option("--cards-dir", help="where model cards go")
    ] = None,
) -> None:
    """Reason classifier (needs --world; with --from-reviews, reviews relabel its documents)."""
    if world is None:
        err.print("[red]error[/red] train reason needs --world")
        raise typer.Exit(code=2)
    if from_reviews:
        train_from_reviews(["reason"], world, test_world, cards_dir, trained_by)
        return
    from training.train import train_family

    result = train_family(
        "reason",
        world=world,
        test_world=test_world,
        tracking_uri=default_tracking_uri(get_settings().data_dir),
        cards_dir=cards_dir,
        trained_by=trained_by,
    )
    out.print(f"{result.name} v{result.version} (challenger), run {result.run_id}")
