"""The from-reviews point: clerks decide 200 cases over HTTP; a challenger learns from them.

Real parts throughout: the FastAPI app with its login, CSRF and claim/decide routes (TestClient),
a generated world ingested into a real database (SQLite and PostgreSQL), a real MLflow store.
The test then does what `tollgate train delay --from-reviews --world DIR` does: export the
decided cases, write the hashed snapshot, train the delay family on it mixed with the world.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow.artifacts
import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from mlflow.tracking import MlflowClient
from review_fixtures import PASSWORD
from review_fixtures import form_field as _field
from review_fixtures import log_in as _login
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.tables import Case, CaseState, Decision, FeedbackKind
from app.documents.service import ingest_bytes
from app.main import create_app
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from app.promotions.snapshot import export_decided_cases
from app.settings import Settings
from app.users import service as users
from models.runs import SNAPSHOT_TAG, run_details
from training.snapshot import mixed_world, read_snapshot, train_from_reviews, write_snapshot
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world

ADMIN = Actor("admin", "admin")
INTAKE = Actor("intake", "system")
DECIDED = 200
REASON = "price and quantity to be confirmed by the supplier"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reviews") / "world"
    write_world(generate_world(WorldConfig(invoices=300, seed=7)), out, pdf=False)
    return out


def _claim(client: TestClient, csrf: str, case_id: int) -> dict[str, str]:
    """Claim a case over HTTP; the decision form's hidden fields from the case page."""
    claimed = client.post(f"/review/cases/{case_id}/claim", data={"csrf_token": csrf})
    assert claimed.status_code == 303, claimed.text
    # The work panel (what htmx fetches) carries the claim token and the case version.
    page = client.get(f"/review/cases/{case_id}", headers={"HX-Request": "true"}).text
    return {"csrf_token": csrf, "token": _field(page, "token"), "version": _field(page, "version")}


def _decide(client: TestClient, case_id: int, form: dict[str, str], **extra: str) -> int:
    return client.post(f"/review/cases/{case_id}/decide", data={**form, **extra}).status_code


def _state(session: Session, case_id: int) -> str | None:
    return session.scalar(select(Case.state).where(Case.id == case_id))


def _ingest(session: Session, world: Path, blobs: BlobStore) -> list[int]:
    load_master_data(session, read_master_data(world / "master"), ADMIN)
    cases: list[int] = []
    for path in sorted((world / "documents" / "ubl").iterdir()):
        outcome = ingest_bytes(
            session, blobs, path.read_bytes(), filename=path.name, channel="test", actor=INTAKE
        )
        if outcome.case is not None:
            cases.append(outcome.case.id)
        if len(cases) == DECIDED + 10:
            break
    session.flush()
    return cases


# Training is the same on either database and this test is the suite's longest (200 cases
# through HTTP, then a training run): it runs once, on PostgreSQL, the production database.
@pytest.mark.parametrize("engine", ["postgres"], indirect=True)
def test_a_challenger_learns_from_200_cases_clerks_decided(
    session: Session, world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=1024))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # no models yet: cases open unscored
    for name in ("clara", "uma"):
        users.create_user(
            session,
            username=name,
            display_name=name.title(),
            role="clerk",
            password=PASSWORD,
            actor=ADMIN,
        )
    case_ids = _ingest(session, world, BlobStore(tmp_path / "blobs"))
    assert len(case_ids) >= DECIDED
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",
        secret_key="a-test-secret-that-is-not-the-default",
        parse_sandbox=False,
        rate_limit_user_per_second=0,  # a script clicks faster than the per-person limit allows
    )
    app = create_app(settings, session_factory=lambda: session)  # type: ignore[arg-type]
    decided: list[int] = []
    with (
        TestClient(app, follow_redirects=False) as clara,
        TestClient(app, follow_redirects=False) as uma,
    ):
        clerks = [(clara, _login(clara, "clara")), (uma, _login(uma, "uma"))]
        for i, case_id in enumerate(case_ids[:DECIDED]):
            client, csrf = clerks[i % 2]
            # A clerk signs what a clerk may sign; the rest (exceptions above a clerk's
            # authority, four-eyes cases) they send back to the supplier with a reason.
            form = _claim(client, csrf, case_id)
            status = _decide(client, case_id, form, action="sign")
            if status == 403:  # refused: the claim and the version stand
                status = _decide(client, case_id, form, action="reject", reason=REASON)
            elif _state(session, case_id) != CaseState.APPROVED.value:
                # One signature of two: the claim is released; the clerk takes it back.
                status = _decide(
                    client, case_id, _claim(client, csrf, case_id), action="reject", reason=REASON
                )
            assert status == 303
            decided.append(case_id)
    made = {
        d.id: d.case_id
        for d in session.scalars(select(Decision).where(Decision.case_id.in_(decided)))
    }
    states = dict(session.execute(select(Case.id, Case.state).where(Case.id.in_(decided))).all())
    assert set(states.values()) <= {CaseState.APPROVED.value, CaseState.REJECTED.value}
    assert len(set(states.values())) == 2  # both outcomes are in the labels

    # `tollgate train delay --from-reviews --world DIR`, step by step.
    snapshot = write_snapshot(export_decided_cases(session), tmp_path / "snapshots")
    result = train_from_reviews(
        "delay",
        snapshot,
        world=world,
        tracking_uri=uri,
        cards_dir=tmp_path / "cards",
        trained_by="mia",
    )

    # The run carries the snapshot hash (tag and param) and the snapshot itself ...
    sha = snapshot.name.removesuffix(".jsonl")
    run = run_details(uri, "delay", result.version)
    assert run.tags[SNAPSHOT_TAG] == sha
    assert run.params["snapshot_sha256"] == sha
    assert run.params["snapshot_replaced"] == str(DECIDED)  # each relabels a world document
    assert run.trained_by == "mia"
    store = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert store.get_model_version_by_alias("tollgate-delay", "challenger").version in (
        result.version,
        int(result.version),
    )
    local = Path(
        mlflow.artifacts.download_artifacts(
            run_id=run.run_id,
            artifact_path=f"snapshot/{snapshot.name}",
            dst_path=str(tmp_path / "download"),
            tracking_uri=uri,
        )
    )
    # ... which, re-hashed, is the snapshot, and holds exactly the decisions the clerks made.
    assert hashlib.sha256(local.read_bytes()).hexdigest() == sha
    records = read_snapshot(local)
    assert sorted(r["case_id"] for r in records) == sorted(decided)
    assert {d["id"]: r["case_id"] for r in records for d in r["decisions"]} == made
    assert {d["by"] for r in records for d in r["decisions"]} == {"clara", "uma"}
    assert all(r["labels"]["resolution_hours"] is not None for r in records)
    assert {r["labels"]["outcome"] for r in records} == {"approved", "rejected"}
    assert not any(r["labels_excluded"] for r in records)
    # The model card names the snapshot.
    assert result.card is not None and sha in result.card.read_text()


def test_business_decisions_stay_out_of_the_labels(world: Path, tmp_path: Path) -> None:
    truth = [json.loads(x) for x in (world / "truth.jsonl").read_text().splitlines()]
    base = {
        "received_at": "2026-02-02T09:00:00+00:00",
        "queue": "price",
        "sla_hours": 48.0,
        "kind": "invoice",
        "labels": {
            "outcome": "approved",
            "decided_by": "clara",
            "resolved_at": "2026-02-02T10:00:00+00:00",
            "resolution_hours": 1.0,
            "sla_breached": False,
            "reasons": ["PRICE_VARIANCE"],
            "reasons_source": "confirmed",
            "duplicate": None,
        },
        "decisions": [],
    }
    records = [
        {**base, "case_id": 1, "document_sha256": truth[0]["sha256"], "labels_excluded": False},
        {**base, "case_id": 2, "document_sha256": truth[1]["sha256"], "labels_excluded": True},
        {**base, "case_id": 3, "document_sha256": "f" * 64, "labels_excluded": False},
    ]
    snapshot = write_snapshot(records, tmp_path)
    assert write_snapshot(list(reversed(records)), tmp_path) == snapshot  # same data, same file
    folder, counts = mixed_world(read_snapshot(snapshot), world, tmp_path / "m", documents=False)
    assert counts == {"snapshot": 3, "replaced": 1, "added": 1, "excluded": 1, "unusable": 0}
    mixed = {
        r["sha256"]: r for r in map(json.loads, (folder / "truth.jsonl").read_text().splitlines())
    }
    assert mixed[truth[0]["sha256"]]["reasons"] == ["PRICE_VARIANCE"]
    assert mixed[truth[0]["sha256"]]["review"]["hours_to_resolution"] == 1.0
    assert mixed[truth[1]["sha256"]] == truth[1]  # the override taught nothing: world truth kept
    assert mixed["f" * 64]["source"] == "reviews"
    # Families that parse documents cannot use a case whose document the world lacks.
    _, parsed = mixed_world(records, world, tmp_path / "p", documents=True)
    assert (parsed["replaced"], parsed["unusable"]) == (1, 1)
    # An altered snapshot no longer matches its name and is refused.
    snapshot.chmod(0o644)
    snapshot.write_bytes(snapshot.read_bytes().replace(b"clara", b"mallory"))
    with pytest.raises(ValueError, match="altered"):
        read_snapshot(snapshot)
    assert FeedbackKind.BUSINESS_OVERRIDE.value == "business_override"
