"""Scoring at intake against a real temporary MLflow store, on SQLite and PostgreSQL.

The store holds the three families trained on a small generated world, and two versions of
`tollgate-delay` trained with different seeds (so they give different outputs). Cases are the
world's own documents, ingested after its master data.
"""

from __future__ import annotations

import pickle
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from model_store import train_store
from review_fixtures import fresh_database
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.apikeys import service as apikeys
from app.audit.service import Actor
from app.blobs import BlobStore
from app.db.session import transaction
from app.db.tables import (
    AuditEvent,
    Case,
    InvoiceRow,
    Prediction,
    PurchaseOrderLineRow,
    Supplier,
)
from app.documents.service import ingest_bytes
from app.main import create_app
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from app.promotions import service as promotions
from app.scoring import service as scoring
from app.scoring.batcher import ScoreBatcher
from app.scoring.inputs import INPUTS
from app.scoring.provider import get_provider
from app.settings import Settings, get_settings
from models.features import CaseInput, MasterData
from models.registry import CHAMPION, Bundle, Head, LoadedModel, ModelRegistry
from models.scoring import (
    CaseScorer,
    FamilyScore,
    HistoryIndex,
    PriorDocument,
    ScoreBatch,
    ScoreItem,
)
from pipelines.canonical import SupplierDocument
from pipelines.parsers import parse_document
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import write_world
from training.train import TrainResult

CLERK = Actor("clerk-1", "clerk")
ADMIN = Actor("admin", "admin")
DOCUMENTS = 24  # cases ingested per test


@dataclass(frozen=True)
class Store:
    uri: str
    world: Path
    embeddings: Path
    trained: dict[str, TrainResult]  # family -> the version that serves (challenger)
    delay_versions: tuple[str, str]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("scoring-store")
    world = root / "world"
    write_world(generate_world(WorldConfig(invoices=240, seed=29)), world, pdf=False)
    uri, embeddings, trained = train_store(root, world, extra_delay_seed=3)
    yield Store(uri, world, embeddings, trained, ("1", trained["delay"].version))


@pytest.fixture(autouse=True)
def _own_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model exports MLFLOW_TRACKING_URI (MLflow does); restore it after each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset-by-test")  # records the original value
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


@pytest.fixture
def serving(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    """Settings pointing at the trained store; a fresh provider for the test."""
    monkeypatch.setenv("TOLLGATE_MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("TOLLGATE_EMBEDDING_CACHE_DIR", str(store.embeddings))
    monkeypatch.setenv("TOLLGATE_SCORE_ON_INGEST", "true")
    get_settings.cache_clear()
    get_provider().refresh()
    yield store
    get_settings.cache_clear()


def _load_world(session: Session, world: Path) -> None:
    load_master_data(session, read_master_data(world / "master"), Actor("tester", "admin"))
    session.flush()


def _ingest(session: Session, blobs: BlobStore, world: Path, n: int = DOCUMENTS) -> list[int]:
    ids = []
    for path in sorted((world / "documents" / "ubl").glob("*.xml"))[:n]:
        outcome = ingest_bytes(
            session, blobs, path.read_bytes(), filename=path.name, channel="test", actor=CLERK
        )
        if outcome.case is not None:
            ids.append(outcome.case.id)
    return ids


def _predictions(session: Session, case_ids: list[int]) -> list[Prediction]:
    return list(
        session.scalars(
            select(Prediction).where(Prediction.case_id.in_(case_ids)).order_by(Prediction.id)
        )
    )


def _events(session: Session, action: str, case_ids: list[int]) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(
                AuditEvent.action == action,
                AuditEvent.object_id.in_([str(i) for i in case_ids]),
            )
            .order_by(AuditEvent.seq)
        )
    )


def test_ingest_scores_every_case_with_three_named_models(
    session: Session, blobs: BlobStore, serving: Store
) -> None:
    _load_world(session, serving.world)
    case_ids = _ingest(session, blobs, serving.world)
    assert len(case_ids) == DOCUMENTS

    rows = _predictions(session, case_ids)
    by_case: dict[int, dict[str, Prediction]] = {}
    for row in rows:
        by_case.setdefault(row.case_id, {})[row.family] = row
    assert set(by_case) == set(case_ids)
    for case_id in case_ids:
        got = by_case[case_id]
        assert set(got) == {"reason", "anomaly", "delay"}
        for family, row in got.items():
            trained = serving.trained[family]
            assert (row.model_name, row.model_version, row.run_id) == (
                trained.name,
                trained.version,
                trained.run_id,
            )
        reason = got["reason"].output
        assert set(reason) == {"probabilities", "predicted"}
        assert all(0.0 <= p <= 1.0 for p in reason["probabilities"].values())
        assert set(reason["predicted"]) <= set(reason["probabilities"])
        anomaly = got["anomaly"].output
        assert set(anomaly) == {
            "duplicate_probability",
            "duplicate_of",
            "candidates",
            "anomaly_score",
            "unusual",
        }
        delay = got["delay"].output
        assert set(delay) == {"p50_hours", "p90_hours", "p_sla_breach"}
        assert 0.0 <= delay["p50_hours"] <= delay["p90_hours"]
        for row in got.values():
            for entry in row.explanation:
                assert set(entry) == {"feature", "contribution", "text"}
                assert entry["text"]
        # Reason and delay explanations are feature contributions: never empty.
        assert got["reason"].explanation and got["delay"].explanation

    # Any document the world marks as a re-send of an earlier one in the batch is named.
    events = _events(session, "case.scored", case_ids)
    assert [int(e.object_id) for e in events] == case_ids  # one event per case
    for event in events:
        assert event.after is not None
        named = {m["family"]: m for m in event.after["models"]}
        assert set(named) == {"reason", "anomaly", "delay"}
        for family, model in named.items():
            trained = serving.trained[family]
            assert (model["name"], model["version"], model["run_id"]) == (
                trained.name,
                trained.version,
                trained.run_id,
            )

    # The case page's source: predictions of one case, by family.
    shown = scoring.predictions(session, case_ids[0])
    assert {p.family for p in shown} == {"reason", "anomaly", "delay"}


def test_no_registered_model_still_opens_the_case(
    session: Session,
    blobs: BlobStore,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOLLGATE_MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'none.db'}")
    get_settings.cache_clear()
    try:
        _load_world(session, store.world)
        case_ids = _ingest(session, blobs, store.world, 3)
        assert len(case_ids) == 3
        assert _predictions(session, case_ids) == []
        assert _events(session, "case.scored", case_ids) == []
        assert all(session.get(Case, i) is not None for i in case_ids)
        assert not (tmp_path / "none.db").exists()  # a fresh install is not made to create one
    finally:
        get_settings.cache_clear()


def test_the_kill_switch_withholds_model_outputs(
    session: Session, blobs: BlobStore, serving: Store
) -> None:
    _load_world(session, serving.world)
    operator = Actor("carl", "controller")
    promotions.set_kill_switch(session, operator, on=True, family="anomaly", reason="drift")
    first = _ingest(session, blobs, serving.world, 2)
    assert {p.family for p in _predictions(session, first)} == {"reason", "delay"}

    promotions.set_kill_switch(session, operator, on=True, reason="incident")
    later = [i for i in _ingest(session, blobs, serving.world, 4) if i not in first]
    assert len(later) == 2
    assert _predictions(session, later) == []  # every case goes to people without model outputs
    assert _events(session, "case.scored", later) == []
    assert all(session.get(Case, i) is not None for i in later)


def _broken_delay_model() -> LoadedModel:
    """A loopback fault: a registered-looking delay model whose computation fails."""

    def fail(x: np.ndarray) -> dict[str, np.ndarray]:
        raise RuntimeError("booster file is corrupt")

    head = Head("hours", ("queue",), ("hours_p50",), {"queue": {}}, fail)
    return LoadedModel(
        "delay",
        "tollgate-delay",
        "9",
        "run-x",
        CHAMPION,
        Bundle("delay", {"hours": head}, "hours", {}),
    )


def test_scoring_failure_never_loses_the_case(
    session: Session, blobs: BlobStore, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOLLGATE_SCORE_ON_INGEST", "false")
    get_settings.cache_clear()
    try:
        _load_world(session, store.world)
        case_ids = _ingest(session, blobs, store.world, 2)
    finally:
        get_settings.cache_clear()
    stored = scoring.score_cases(
        session, case_ids, scorer=CaseScorer({"delay": _broken_delay_model()})
    )
    assert stored == {}
    assert _predictions(session, case_ids) == []
    failed = _events(session, "case.scoring_failed", case_ids)
    assert [int(e.object_id) for e in failed] == case_ids
    assert failed[0].after is not None and failed[0].after["error"] == "RuntimeError"
    for case_id in case_ids:
        case = session.get(Case, case_id)
        assert case is not None and case.state == "triaged" and case.queue


def test_alias_moves_while_scoring_every_prediction_names_its_version(
    session: Session, blobs: BlobStore, serving: Store
) -> None:
    _load_world(session, serving.world)
    monkey = pytest.MonkeyPatch()
    monkey.setenv("TOLLGATE_SCORE_ON_INGEST", "false")
    get_settings.cache_clear()
    case_ids = _ingest(session, blobs, serving.world, 10)
    monkey.undo()
    get_settings.cache_clear()

    first, second = serving.delay_versions
    admin = ModelRegistry(serving.uri)  # an ML engineer moving the alias from elsewhere
    admin.set_alias("delay", CHAMPION, first)
    provider = get_provider()
    provider.refresh()
    progress = [threading.Event() for _ in range(3)]
    moved = threading.Event()
    errors: list[BaseException] = []

    def mover() -> None:
        try:
            for event, version in zip(progress, (second, first, second), strict=True):
                event.wait(timeout=120)
                admin.set_alias("delay", CHAMPION, version)
                provider.refresh()
            moved.set()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)
            moved.set()

    thread = threading.Thread(target=mover)
    thread.start()
    try:
        rounds = 36
        for i in range(rounds):
            if i in (6, 14, 22):
                progress[(6, 14, 22).index(i)].set()  # the mover goes; scoring does not wait
            if i == 30:
                assert moved.wait(timeout=120)  # the last rounds run after the final move
            scoring.score_cases(session, [case_ids[i % len(case_ids)]])
    finally:
        for event in progress:
            event.set()
        thread.join(timeout=120)
        admin.set_alias("delay", CHAMPION, first)
        ModelRegistry(serving.uri)._client().delete_registered_model_alias(
            "tollgate-delay", CHAMPION
        )
        provider.refresh()
    assert not errors, errors

    rows = [p for p in _predictions(session, case_ids) if p.family == "delay"]
    assert len(rows) == rounds
    seen = {p.model_version for p in rows}
    assert seen == {first, second}  # both versions scored, so the check below means something

    registry = ModelRegistry(serving.uri)
    versions = {v: registry.load_version("delay", v) for v in (first, second)}
    settings = get_settings()
    mismatches = 0
    for row in rows:
        batch, _ = scoring.build_batch(session, [row.case_id], settings.scoring_history_cap)
        again = CaseScorer({"delay": versions[row.model_version]}).score(batch)[0][0]
        assert again.version == row.model_version
        assert again.output == row.output  # exactly what the named version computes
        other = versions[second if row.model_version == first else first]
        mismatches += CaseScorer({"delay": other}).score(batch)[0][0].output != row.output
    assert mismatches == len(rows)  # the two versions never agree: the test can tell them apart


def test_similar_cases_are_resolved_ones_with_how_they_ended(
    session: Session, blobs: BlobStore, serving: Store
) -> None:
    _load_world(session, serving.world)
    case_ids = _ingest(session, blobs, serving.world, 12)
    assert scoring.similar_cases(session, case_ids[0]) == []  # nothing resolved yet
    for case_id in case_ids[1:8]:
        case = session.get(Case, case_id)
        assert case is not None
        case.state = "approved" if case_id % 2 else "rejected"
    session.flush()
    similar = scoring.similar_cases(session, case_ids[0], k=3)
    assert len(similar) == 3
    assert all(s.case_id in case_ids[1:8] for s in similar)
    assert [s.similarity for s in similar] == sorted((s.similarity for s in similar), reverse=True)
    assert all(s.state in ("approved", "rejected") for s in similar)
    assert all(s.action is None and s.hours is None for s in similar)  # no decisions recorded


# -- the score API ---------------------------------------------------------------------------


@pytest.fixture
def api(session: Session, store: Store, tmp_path: Path) -> Iterator[tuple[TestClient, str, str]]:
    """A client on the test transaction with the store configured; a `score` and a other key."""
    _load_world(session, store.world)
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",
        mlflow_tracking_uri=store.uri,
        embedding_cache_dir=store.embeddings,
    )
    app = create_app(settings, session_factory=lambda: session)  # type: ignore[arg-type]
    scorer = apikeys.create_key(session, name="erp", scopes=["score"], actor=ADMIN)
    reader = apikeys.create_key(session, name="portal", scopes=["cases:read"], actor=ADMIN)
    with TestClient(app) as client:
        yield client, scorer.token, reader.token


def _canonical(world: Path, index: int) -> dict[str, object]:
    path = sorted((world / "documents" / "ubl").glob("*.xml"))[index]
    return parse_document(path.read_bytes()).document.model_dump(mode="json")


def test_score_api_returns_findings_and_named_model_outputs_without_a_case(
    api: tuple[TestClient, str, str], store: Store, session: Session
) -> None:
    client, token, _ = api
    cases_before = session.scalar(select(func.count()).select_from(Case))
    response = client.post(
        "/api/v1/score",
        json={"document": _canonical(store.world, 5)},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["schema_version"] == "1"
    assert isinstance(body["findings"], list) and body["queue"]
    for key, family in (("reasons", "reason"), ("anomaly", "anomaly"), ("delay", "delay")):
        trained = store.trained[family]
        assert body[key]["model"] == {
            "name": trained.name,
            "version": trained.version,
            "run_id": trained.run_id,
        }
        assert isinstance(body[key]["explanation"], list)
    assert set(body["reasons"]["probabilities"]) >= {"PRICE_VARIANCE", "DUPLICATE"}
    assert 0 <= body["delay"]["p50_hours"] <= body["delay"]["p90_hours"]
    assert session.scalar(select(func.count()).select_from(Case)) == cases_before

    # A batch: the second copy of a document names the first as its duplicate candidate.
    doc = _canonical(store.world, 7)
    batch = client.post(
        "/api/v1/score:batch",
        json={"documents": [doc, doc]},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert batch.status_code == 200, batch.text
    first, second = batch.json()["results"]
    assert first["anomaly"]["candidates"] == [] or all(
        c["ref"] != "request:1" for c in first["anomaly"]["candidates"]
    )
    assert second["anomaly"]["candidates"][0]["ref"] == "request:0"
    assert second["anomaly"]["duplicate_probability"] > 0.5


def test_score_api_errors_are_typed_json(api: tuple[TestClient, str, str], store: Store) -> None:
    client, token, reader = api
    doc = _canonical(store.world, 1)
    cases: list[tuple[str | None, dict[str, object], int]] = [
        (None, {"document": doc}, 401),
        (reader, {"document": doc}, 403),
        (token, {"document": {"kind": "invoice", "lines": "many"}}, 422),
        (token, {"documents": [doc] * 1001}, 422),
    ]
    for key, body, status in cases:
        path = "/api/v1/score:batch" if "documents" in body else "/api/v1/score"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == status, (path, response.text)
        error = response.json()
        assert error["code"] and error["message"]


# -- the scoring-input cache -----------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def committed(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """A fresh database whose transactions commit (the cache fills only from committed data)."""
    with fresh_database(request.param, tmp_path) as made:
        yield made


def _score_outputs(factory: sessionmaker[Session], doc: SupplierDocument) -> list[object]:
    with transaction(factory) as session:
        scored = scoring.score_documents(
            session, [doc], scorer=get_provider().scorer(), history_cap=200
        )[0]
    return [scored.findings, [(s.family, s.version, s.output) for s in scored.scores]]


def _uncached(factory: sessionmaker[Session], doc: SupplierDocument) -> list[object]:
    INPUTS.clear()
    return _score_outputs(factory, doc)


def test_cached_inputs_score_exactly_as_a_fresh_read_after_every_kind_of_write(
    serving: Store, committed: sessionmaker[Session], tmp_path: Path
) -> None:
    blobs = BlobStore(tmp_path / "blobs")
    files = sorted((serving.world / "documents" / "ubl").glob("*.xml"))
    with transaction(committed) as session:
        _load_world(session, serving.world)
        _ingest(session, blobs, serving.world, n=80)
    # A later document of a supplier with history, and that supplier's newest stored invoice.
    with transaction(committed) as session:
        stored = {
            r.supplier_id: r for r in session.scalars(select(InvoiceRow).order_by(InvoiceRow.id))
        }
        target = None
        for path in files[80:]:
            doc = parse_document(path.read_bytes()).document
            prior = next((r for r in stored.values() if r.supplier_name == doc.supplier.name), None)
            if prior is not None and doc.kind == "invoice":
                target, target_path, prior_id = doc, path, prior.id
                break
    assert target is not None

    INPUTS.clear()
    first = _score_outputs(committed, target)
    before = INPUTS.stats()
    assert _score_outputs(committed, target) == first
    again = INPUTS.stats()
    assert again.hits > before.hits and again.misses == before.misses  # read nothing twice

    # 1. An earlier invoice of the supplier is changed into the target's twin (a correction).
    with transaction(committed) as session:
        row = session.get(InvoiceRow, prior_id)
        assert row is not None
        row.canonical = target.model_dump(mode="json")
    changed = _score_outputs(committed, target)
    assert changed != first  # the twin is seen: stale inputs would have repeated `first`
    assert changed == _uncached(committed, target)

    # 2. A write that rolls back: the scores inside it see it, the cache keeps nothing of it.
    with committed() as session:
        row = session.get(InvoiceRow, prior_id)
        assert row is not None
        row.canonical = {**row.canonical, "number": "ROLLED-BACK"}
        session.flush()
        scoring.score_documents(session, [target], scorer=get_provider().scorer(), history_cap=200)
        session.rollback()
    assert _score_outputs(committed, target) == changed == _uncached(committed, target)

    # 3. A new document of the supplier (an insert: no new token) joins the history at once.
    _score_outputs(committed, target)  # the cache is warm again
    with transaction(committed) as session:
        ingest_bytes(
            session,
            blobs,
            target_path.read_bytes(),
            filename="resent.xml",
            channel="t",
            actor=CLERK,
        )
    resent = _score_outputs(committed, target)
    assert resent != changed
    assert resent == _uncached(committed, target)

    # 4. Master data: every PO line gets a new price. Here the rules' DUPLICATE finding decides
    # the outputs either way, so the proof is that the new token emptied the cache.
    _score_outputs(committed, target)
    resets = INPUTS.stats().resets
    with transaction(committed) as session:
        for line in session.scalars(select(PurchaseOrderLineRow)):
            line.unit_price = line.unit_price * 2
    repriced = _score_outputs(committed, target)
    assert INPUTS.stats().resets == resets + 1
    assert repriced == _uncached(committed, target)

    # 5. The supplier is blocked: the cached supplier resolution must not hide it.
    with transaction(committed) as session:
        supplier = session.scalars(
            select(Supplier).where(Supplier.name == target.supplier.name)
        ).one()
        supplier.blocked = True
    blocked = _score_outputs(committed, target)
    assert blocked != repriced
    assert blocked == _uncached(committed, target)

    # 6. The kill switch: outputs go the moment it is flipped, and come back when it is off.
    operator = Actor("carl", "controller")
    for on in (True, False):
        with transaction(committed) as session:
            promotions.set_kill_switch(session, operator, on=on, reason="drill")
        scored = _score_outputs(committed, target)
        assert (scored[1] == []) is on
    assert scored == blocked


def test_the_api_scores_and_reads_in_read_only_transactions_of_its_own(
    serving: Store, committed: sessionmaker[Session], tmp_path: Path
) -> None:
    """With the service's own sessions (not a test's shared one), the read-only guard is on."""
    with transaction(committed) as session:
        _load_world(session, serving.world)
        _ingest(session, BlobStore(tmp_path / "blobs"), serving.world, n=30)
        token = apikeys.create_key(session, name="erp", scopes=["score"], actor=ADMIN).token
        reader = apikeys.create_key(session, name="bi", scopes=["cases:read"], actor=ADMIN).token
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",  # unused: the app gets the test database's factory
        mlflow_tracking_uri=serving.uri,
        embedding_cache_dir=serving.embeddings,
    )
    doc = _canonical(serving.world, 40)
    with TestClient(create_app(settings, session_factory=committed)) as client:
        scoring_calls = [
            ("/api/v1/score", {"document": doc}),
            ("/api/v1/score:batch", {"documents": [doc, doc]}),
        ]
        for path, body in scoring_calls:
            response = client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
        for path in ("/api/v1/cases", "/api/v1/cases/1", "/api/v1/documents"):
            response = client.get(path, headers={"Authorization": f"Bearer {reader}"})
            assert response.status_code == 200, response.text
        # A refusal is audited in a transaction of its own, beside the read-only one.
        refused = client.get("/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 403
    with transaction(committed) as session:
        denied = session.scalars(select(AuditEvent).where(AuditEvent.action.like("%denied"))).all()
        assert denied


def _world_inputs(serving: Store, n: int) -> tuple[CaseScorer, list[SupplierDocument], MasterData]:
    """The served scorer, the world's first `n` documents and its master data."""
    scorer = get_provider().scorer()
    assert scorer is not None
    files = sorted((serving.world / "documents" / "ubl").glob("*.xml"))[:n]
    data = read_master_data(serving.world / "master")
    return (
        scorer,
        [parse_document(p.read_bytes()).document for p in files],
        MasterData.of(data.purchase_orders, data.goods_receipts),
    )


def test_independent_batches_score_together_exactly_as_each_alone(serving: Store) -> None:
    scorer, docs, master = _world_inputs(serving, 50)

    def batch(history: list[SupplierDocument], items: list[SupplierDocument]) -> ScoreBatch:
        return ScoreBatch(
            master,
            [PriorDocument(f"h{i}", CaseInput(d, [])) for i, d in enumerate(history)],
            [ScoreItem(f"i{i}", CaseInput(d, [])) for i, d in enumerate(items)],
        )

    batches = [
        batch(docs[:40], docs[40:43]),
        batch(docs[10:30], docs[43:45]),
        batch([], docs[45:46]),
        batch(docs[:45], docs[:1]),  # a re-send of its own history's first document
    ]
    together = scorer.score_many(batches)
    assert together == [scorer.score(b) for b in batches]
    resend = {s.family: s for s in together[3][0]}["anomaly"]
    assert resend.output["duplicate_of"] == "h0"  # only its own history, not another batch's
    assert {s.family: s for s in together[2][0]}["anomaly"].output["candidates"] == []


def test_a_history_index_scores_exactly_as_going_through_the_history(serving: Store) -> None:
    scorer, docs, master = _world_inputs(serving, 120)
    history = [PriorDocument(f"h{i}", CaseInput(d, [])) for i, d in enumerate(docs[:100])]
    index = HistoryIndex.build(history)
    frozen = pickle.dumps(index)
    # Later documents, and re-sends of history documents (duplicate candidates, same-day POs).
    items = docs[100:] + docs[:10]
    duplicates = 0
    for i, doc in enumerate(items):
        item = [ScoreItem(f"i{i}", CaseInput(doc, []))]
        indexed = scorer.score(ScoreBatch(master, history, item, index))
        assert indexed == scorer.score(ScoreBatch(master, history, item))
        anomaly = {s.family: s for s in indexed[0]}["anomaly"].output
        duplicates += anomaly["duplicate_of"] is not None
    assert duplicates >= 5  # the re-sends were found through the index
    assert pickle.dumps(index) == frozen  # scoring from an index never changes it
    # Several items: later ones see earlier ones, so the index is not used.
    several = ScoreBatch(master, history, [ScoreItem("a", CaseInput(docs[0], []))] * 2, index)
    assert several.indexed is None


class _GatedScorer(CaseScorer):
    """The served scorer, holding its first pass until released, failing on a marked item."""

    def __init__(self, real: CaseScorer) -> None:
        super().__init__(real.models, real.embedder)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.passes: list[int] = []
        self.threads: list[int] = []  # the thread of each pass

    def score_many(self, batches: Sequence[ScoreBatch]) -> list[list[list[FamilyScore]]]:
        self.passes.append(len(batches))
        self.threads.append(threading.get_ident())
        self.started.set()
        self.gate.wait(30)
        if any(item.ref == "broken" for b in batches for item in b.items):
            raise ValueError("a broken request")
        return super().score_many(batches)


def test_concurrent_requests_share_a_model_pass_and_a_failure_stays_with_its_own(
    serving: Store,
) -> None:
    real = get_provider().scorer()
    assert real is not None
    files = sorted((serving.world / "documents" / "ubl").glob("*.xml"))[:30]
    docs = [parse_document(p.read_bytes()).document for p in files]
    master = MasterData({}, {})
    batches = [
        ScoreBatch(
            master,
            [PriorDocument(f"h{j}", CaseInput(d, [])) for j, d in enumerate(docs[:20])],
            [ScoreItem("broken" if i == 3 else f"i{i}", CaseInput(docs[20 + i], []))],
        )
        for i in range(6)
    ]
    gated = _GatedScorer(real)
    batcher = ScoreBatcher()
    results: dict[int, object] = {}

    def call(i: int) -> None:
        try:
            results[i] = batcher.score(gated, batches[i])
        except ValueError as exc:
            results[i] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert gated.started.wait(30)  # the batcher is busy with request 0
    others = [threading.Thread(target=call, args=(i,)) for i in range(1, 6)]
    for t in others:
        t.start()
    deadline = time.monotonic() + 30
    while len(batcher._jobs) < 5 and time.monotonic() < deadline:  # queued behind the busy pass
        time.sleep(0.01)
    assert len(batcher._jobs) == 5
    gated.gate.set()
    for t in [first, *others]:
        t.join(60)

    assert gated.passes[:2] == [1, 5]  # the five waiting requests went through together
    # Each pass ran on a requesting thread: the first on its own, the next on a waiting one.
    assert gated.threads[0] == first.ident
    assert gated.threads[1] in {t.ident for t in others}
    assert not batcher._jobs and not batcher._busy  # nothing left behind, the next one leads
    assert isinstance(results[3], ValueError)  # the broken one fails alone ...
    for i in (0, 1, 2, 4, 5):  # ... and the others get exactly what scoring alone gives
        assert results[i] == real.score(batches[i])
