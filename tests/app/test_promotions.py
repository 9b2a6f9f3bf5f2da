"""The promotion point: champion moves only on a controller's approval, audited with evidence.

Real parts: a real MLflow store (two delay versions trained on a small generated world), a real
database (SQLite and PostgreSQL), the real audit chain. The evaluation is computed by scoring
challenger and champion on a second, held-out world.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from review_fixtures import PASSWORD, log_in
from review_fixtures import form_field as _field
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from app.audit import service as audit
from app.audit.service import Actor
from app.cli import cli
from app.db.tables import AuditEvent, PromotionRequest, PromotionState, User
from app.errors import Conflict, Forbidden, InvalidInput
from app.main import create_app
from app.promotions import service
from app.promotions.cli import build_evaluation
from app.settings import Settings, get_settings
from app.users import service as users
from governance.promotion import Evaluation, PromotionDenial, regressions
from models.registry import CHAMPION, ModelRegistry, registered_name
from models.runs import run_details
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world
from training.train import delay_features, train_family

ADMIN = Actor("admin", "admin")
runner = CliRunner()


@dataclass(frozen=True)
class Store:
    uri: str
    held_out: Path
    rows: list[dict[str, object]]  # delay features of a few held-out documents


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("promotions")
    world, held_out = root / "world", root / "held_out"
    write_world(generate_world(WorldConfig(invoices=300, seed=7)), world, pdf=False)
    write_world(generate_world(WorldConfig(invoices=200, seed=8)), held_out, pdf=False)
    (root / "mlflow").mkdir()
    uri = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"
    for seed in (7, 5):
        train_family(
            "delay",
            world=world,
            tracking_uri=uri,
            cards_dir=root / "cards",
            trained_by="tom",
            params={"seed": seed},
        )
    truth = [json.loads(x) for x in (held_out / "truth.jsonl").read_text().splitlines()]
    rows = [delay_features(r) for r in truth[:3]]
    return Store(uri, held_out, rows)


@pytest.fixture
def registry(store: Store) -> ModelRegistry:
    """The store with no champion: every test starts from the same aliases."""
    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    name = registered_name("delay")
    if CHAMPION in (client.get_registered_model(name).aliases or {}):
        client.delete_registered_model_alias(name, CHAMPION)
    return ModelRegistry(store.uri)


@pytest.fixture
def team(session: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, User]:
    # The production hasher costs ~64 MiB per hash by design; these tests check behaviour.
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    people = {"eve": "ml_engineer", "tom": "controller", "carl": "controller", "cleo": "clerk"}
    team = {
        name: users.create_user(
            session,
            username=name,
            display_name=name.title(),
            role=role,
            password=PASSWORD,
            actor=ADMIN,
        )
        for name, role in people.items()
    }
    session.flush()
    return team


def _events(session: Session, action: str) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
    )


def _after(event: AuditEvent) -> dict[str, Any]:
    assert event.after is not None
    return event.after


def test_training_records_who_trained_the_version(store: Store) -> None:
    assert run_details(store.uri, "delay", "1").trained_by == "tom"
    assert run_details(store.uri, "delay", "2").trained_by == "tom"


def test_a_promotion_by_the_trainer_or_without_approval_is_refused(
    session: Session, registry: ModelRegistry, team: dict[str, User], store: Store
) -> None:
    evaluation = build_evaluation(registry, "delay", "1", store.held_out)
    assert evaluation.champion_version is None and evaluation.metrics
    row = service.request_promotion(session, registry, team["eve"], "delay", "1", evaluation)
    assert row.state == PromotionState.PENDING.value and row.trained_by == "tom"
    # Requested but not approved: nothing serves as champion.
    assert service.current_champion(registry, "delay") is None
    # Tom trained version 1; his controller role does not let him approve it.
    by_trainer = service.approve(session, registry, row.id, team["tom"])
    assert not by_trainer.allowed and by_trainer.denial == PromotionDenial.TRAINER_APPROVAL.value
    # The requester and a clerk may not approve either.
    assert service.approve(session, registry, row.id, team["eve"]).denial == (
        PromotionDenial.NOT_AN_APPROVER.value
    )
    assert service.approve(session, registry, row.id, team["cleo"]).denial == (
        PromotionDenial.NOT_AN_APPROVER.value
    )
    assert service.current_champion(registry, "delay") is None
    assert row.state == PromotionState.PENDING.value
    denied = _events(session, "model.promotion_denied")
    assert [e.actor for e in denied] == ["tom", "eve", "cleo"]
    assert _after(denied[0])["denial"] == "TRAINER_APPROVAL"
    # Only ML engineers (and admins) ask; a clerk cannot even request.
    with pytest.raises(Forbidden):
        service.request_promotion(session, registry, team["cleo"], "delay", "1", evaluation)
    with pytest.raises(InvalidInput):
        other = Evaluation("delay", "2", None, "x", {"test/mae_hours": {"challenger": 1.0}})
        service.request_promotion(session, registry, team["eve"], "delay", "1", other)


def test_an_approved_promotion_moves_the_alias_is_audited_and_serves_the_new_version(
    session: Session, registry: ModelRegistry, team: dict[str, User], store: Store
) -> None:
    first = service.request_promotion(
        session,
        registry,
        team["eve"],
        "delay",
        "1",
        build_evaluation(registry, "delay", "1", store.held_out),
    )
    assert service.approve(
        session, registry, first.id, team["carl"], reason="first champion"
    ).allowed
    serving = registry.load("delay")
    assert serving.predict_records(store.rows).version == "1"

    evaluation = build_evaluation(registry, "delay", "2", store.held_out)
    assert evaluation.champion_version == "1"
    assert set(evaluation.metrics["test/mae_hours"]) == {"challenger", "champion"}
    second = service.request_promotion(session, registry, team["eve"], "delay", "2", evaluation)
    assert second.previous_version == "1"
    worse = regressions(evaluation)
    outcome = service.approve(session, registry, second.id, team["carl"])
    if worse:  # the gate holds the line unless the controller records why
        assert outcome.denial == PromotionDenial.REGRESSION.value
        assert registry.resolve("delay", (CHAMPION,)).version == "1"
        outcome = service.approve(
            session, registry, second.id, team["carl"], override_reason="seed study, accepted"
        )
    assert outcome.allowed and outcome.champion == "2"
    assert registry.resolve("delay", (CHAMPION,)).version == "2"
    # The cached model is forgotten on approval: the next prediction names the new version.
    assert registry.load("delay").predict_records(store.rows).version == "2"

    promoted = _events(session, "model.promoted")
    assert [(e.model_version, e.actor, e.before) for e in promoted] == [
        ("1", "carl", {"champion": None}),
        ("2", "carl", {"champion": "1"}),
    ]
    assert _after(promoted[1])["evaluation"] == evaluation.to_dict()
    assert _after(promoted[1])["trained_by"] == "tom"
    assert _after(promoted[1])["requested_by"] == "eve"
    assert _after(promoted[1])["regressions"] == worse
    assert audit.verify(session).ok
    with pytest.raises(Conflict):  # decided once
        service.approve(session, registry, second.id, team["carl"])

    # One command back to the previous champion, audited; then nothing earlier to go to.
    back = service.rollback(session, registry, "delay", Actor("carl", "controller"))
    assert (back.version, back.previous_version) == ("1", "2")
    assert registry.load("delay").predict_records(store.rows).version == "1"
    assert session.get(PromotionRequest, second.id).state == PromotionState.ROLLED_BACK.value  # type: ignore[union-attr]
    rolled = _events(session, "model.rolled_back")
    assert rolled[-1].before == {"champion": "2"} and _after(rolled[-1])["champion"] == "1"
    with pytest.raises(Conflict):
        service.rollback(session, registry, "delay", Actor("carl", "controller"))


def test_a_rejection_needs_a_controller_and_a_reason(
    session: Session, registry: ModelRegistry, team: dict[str, User], store: Store
) -> None:
    row = service.request_promotion(
        session,
        registry,
        team["eve"],
        "delay",
        "2",
        build_evaluation(registry, "delay", "2", None),  # stored metrics, said so
    )
    assert row.evaluation["data"].startswith("stored training metrics")
    with pytest.raises(Forbidden):
        service.reject(session, row.id, team["eve"], "no")
    with pytest.raises(InvalidInput):
        service.reject(session, row.id, team["carl"], "  ")
    service.reject(session, row.id, team["carl"], "evaluate on the Q3 world first")
    assert row.state == PromotionState.REJECTED.value
    assert service.current_champion(registry, "delay") is None
    assert _after(_events(session, "model.promotion_rejected")[-1])["reason"] == (
        "evaluate on the Q3 world first"
    )


def test_the_kill_switch_turns_model_outputs_off_and_on(session: Session) -> None:
    operator = Actor("carl", "controller")
    assert not service.models_disabled(session, "reason")
    service.set_kill_switch(session, operator, on=True, family="delay", reason="drift")
    assert service.models_disabled(session, "delay")
    assert not service.models_disabled(session, "reason")
    service.set_kill_switch(session, operator, on=True, reason="incident 42")
    assert all(service.models_disabled(session, f) for f in ("reason", "anomaly", "delay"))
    service.set_kill_switch(session, operator, on=False)
    assert not service.models_disabled(session, "reason")
    assert service.models_disabled(session, "delay")  # its own switch is still on
    service.set_kill_switch(session, operator, on=False, family="tollgate-delay")
    assert service.kill_switch_states(session) == {
        "all": False,
        "reason": False,
        "anomaly": False,
        "delay": False,
    }
    flips = [e.action for e in _events(session, "model.kill_switch_on")]
    flips += [e.action for e in _events(session, "model.kill_switch_off")]
    assert len(flips) == 4
    with pytest.raises(Forbidden):
        service.set_kill_switch(session, Actor("cleo", "clerk"), on=True)
    with pytest.raises(InvalidInput):
        service.set_kill_switch(session, operator, on=True, family="weather")


def _login(client: TestClient, username: str) -> str:
    return log_in(client, username, landing="/review/promotions")


def test_a_controller_approves_in_the_review_ui(
    session: Session,
    registry: ModelRegistry,
    team: dict[str, User],
    store: Store,
    tmp_path: Path,
) -> None:
    evaluation = build_evaluation(registry, "delay", "1", store.held_out)
    row = service.request_promotion(session, registry, team["eve"], "delay", "1", evaluation)
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",
        secret_key="a-test-secret-that-is-not-the-default",
        parse_sandbox=False,
    )
    app = create_app(settings, session_factory=lambda: session)  # type: ignore[arg-type]
    app.state.model_registry = registry
    with TestClient(app, follow_redirects=False) as clerk:
        _login_any(clerk, "cleo")
        assert clerk.get("/review/promotions").status_code == 403
    with TestClient(app, follow_redirects=False) as tom:
        csrf = _login(tom, "tom")
        refused = tom.post(f"/review/promotions/{row.id}/approve", data={"csrf_token": csrf})
        assert refused.status_code == 403 and "TRAINER_APPROVAL" in refused.text
    with TestClient(app, follow_redirects=False) as carl:
        csrf = _login(carl, "carl")
        page = carl.get("/review/promotions").text
        assert f'id="request-{row.id}"' in page and "test/mae_hours" in page
        assert "held-out world" in page
        forged = carl.post(f"/review/promotions/{row.id}/approve", data={"csrf_token": "x"})
        assert forged.status_code == 403
        assert service.current_champion(registry, "delay") is None
        done = carl.post(
            f"/review/promotions/{row.id}/approve", data={"csrf_token": csrf, "reason": "ok"}
        )
        assert done.status_code == 303, done.text
    assert registry.resolve("delay", (CHAMPION,)).version == "1"
    assert [e.actor for e in _events(session, "model.promoted")] == ["carl"]


def _login_any(client: TestClient, username: str) -> None:
    form = client.get("/review/login")
    response = client.post(
        "/review/login",
        data={
            "username": username,
            "password": PASSWORD,
            "login_csrf": _field(form.text, "login_csrf"),
        },
    )
    assert response.status_code == 303, response.text


def test_the_models_commands(
    store: Store, registry: ModelRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tollgate models promote|approve|rollback|kill-switch` on their own SQLite database."""
    monkeypatch.setenv("TOLLGATE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("TOLLGATE_PW", PASSWORD)
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    get_settings.cache_clear()
    try:
        for name, role in (("eve", "ml_engineer"), ("tom", "controller"), ("carl", "controller")):
            added = runner.invoke(
                cli, ["users", "add", name, "--role", role, "--password-env", "TOLLGATE_PW"]
            )
            assert added.exit_code == 0, added.output
        asked = runner.invoke(
            cli, ["models", "promote", "delay", "--version", "1", "--by", "eve", "--json"]
        )
        assert asked.exit_code == 0, asked.output
        request = json.loads(asked.stdout.strip().splitlines()[-1])
        assert request["data"].startswith("stored training metrics")
        number = str(request["request"])
        refused = runner.invoke(cli, ["models", "approve", number, "--by", "tom"])
        assert refused.exit_code == 1 and "TRAINER_APPROVAL" in refused.output
        assert service.current_champion(registry, "delay") is None
        approved = runner.invoke(cli, ["models", "approve", number, "--by", "carl"])
        assert approved.exit_code == 0, approved.output
        assert registry.resolve("delay", (CHAMPION,)).version == "1"
        nothing_earlier = runner.invoke(cli, ["models", "rollback", "delay", "--by", "carl"])
        assert nothing_earlier.exit_code == 2 and "NOTHING_TO_ROLL_BACK" in nothing_earlier.output
        on = runner.invoke(
            cli, ["models", "kill-switch", "on", "--family", "delay", "--by", "carl"]
        )
        assert on.exit_code == 0 and "delay" in on.output
        # Off is the safe direction: anyone at the console; back on needs a known operator.
        anonymous = runner.invoke(cli, ["models", "kill-switch", "on", "--by", "someone"])
        assert anonymous.exit_code == 0 and "all" in anonymous.output
        refused_on = runner.invoke(cli, ["models", "kill-switch", "off", "--by", "someone"])
        assert refused_on.exit_code == 2 and "NOT_AN_OPERATOR" in refused_on.output
        runner.invoke(cli, ["models", "kill-switch", "off", "--by", "carl"])
        off = runner.invoke(
            cli, ["models", "kill-switch", "off", "--family", "delay", "--by", "tom"]
        )
        assert off.exit_code == 0 and "nothing" in off.output, off.output
        verified = runner.invoke(cli, ["audit", "verify"])
        assert verified.exit_code == 0, verified.output
    finally:
        get_settings.cache_clear()
