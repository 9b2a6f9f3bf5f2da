"""POST /api/v1/score:document: score an uploaded file without storing it, on SQLite and PostgreSQL.

The models are trained on a small generated world into a temporary MLflow store (as in
tests/app/test_scoring.py); the uploads are that world's own UBL files and a PDF rendered from
one of its documents, scored after its master data is loaded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from model_store import train_store
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.apikeys import service as apikeys
from app.audit.service import Actor
from app.db.tables import Case, Document, InvoiceRow, Prediction
from app.main import create_app
from app.masterdata.loader import read_master_data
from app.masterdata.service import load_master_data
from app.scoring.schemas import ScoreResult
from app.settings import Settings
from pipelines.parsers import parse_document
from pipelines.writers.csv_invoices import write_csv
from training.synth.generator import WorldConfig, generate_world
from training.synth.output import file_stem, write_world
from training.synth.pdf import render_pdf
from training.train import TrainResult

ADMIN = Actor("admin", "admin")
ROUTE = "/api/v1/score:document"
UPLOAD_LIMIT = 200_000  # below the body limit, so the route's own check answers
COUNTED = (Document, InvoiceRow, Case, Prediction)
UBL = b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"


@dataclass(frozen=True)
class Store:
    uri: str
    world: Path
    embeddings: Path
    trained: dict[str, TrainResult]
    ubl: list[Path]  # the world's UBL files, in arrival order
    pdf: bytes  # a text PDF (no embedded XML) of one of the world's invoices


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("score-document-store")
    world_dir = root / "world"
    world = generate_world(WorldConfig(invoices=240, seed=29))
    write_world(world, world_dir, pdf=False)
    # One PDF is enough: rendered from an invoice whose supplier sends no Factur-X, so the
    # upload is read from its visible text and comes back with extraction confidences.
    pdf = next(
        render_pdf(g.document, g.supplier.layout)
        for g in world.documents
        if not g.supplier.facturx and g.document.kind == "invoice"
    )
    uri, embeddings, trained = train_store(root, world_dir)
    ubl = [
        world_dir / "documents" / "ubl" / f"{file_stem(position, g)}.xml"
        for position, g in enumerate(world.documents, start=1)
    ]
    yield Store(uri, world_dir, embeddings, trained, ubl, pdf)


@pytest.fixture(autouse=True)
def _own_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a model exports MLFLOW_TRACKING_URI (MLflow does); restore it after each test."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "unset-by-test")
    monkeypatch.delenv("MLFLOW_TRACKING_URI")


@dataclass
class Api:
    client: TestClient
    scorer: str  # a key with the `score` scope
    reader: str  # a key with `cases:read` only
    blob_dir: Path


@pytest.fixture(params=["sandbox", "in-process"])
def api(
    request: pytest.FixtureRequest, session: Session, store: Store, tmp_path: Path
) -> Iterator[Api]:
    """The app on the test transaction with the store configured, parsing as the param says."""
    load_master_data(session, read_master_data(store.world / "master"), Actor("tester", "admin"))
    session.flush()
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",
        mlflow_tracking_uri=store.uri,
        embedding_cache_dir=store.embeddings,
        max_upload_bytes=UPLOAD_LIMIT,
        parse_sandbox=request.param == "sandbox",
        parse_workers=1,
    )
    app = create_app(settings, session_factory=lambda: session)  # type: ignore[arg-type]
    scorer = apikeys.create_key(session, name="rpa-bot", scopes=["score"], actor=ADMIN)
    reader = apikeys.create_key(session, name="portal", scopes=["cases:read"], actor=ADMIN)
    # Release the savepoint: a refused request rolls back to here, not past the keys and the
    # master data (the test's outer transaction still rolls everything back at the end).
    session.commit()
    with TestClient(app) as client:
        yield Api(client, scorer.token, reader.token, settings.blobs)


def _stored(session: Session, blob_dir: Path) -> dict[str, int]:
    """How many documents, invoices, cases, predictions and blobs exist."""
    counts = {t.__name__: session.scalar(select(func.count()).select_from(t)) or 0 for t in COUNTED}
    counts["blobs"] = sum(1 for p in blob_dir.rglob("*") if p.is_file()) if blob_dir.exists() else 0
    return counts


def _upload(api: Api, name: str, data: bytes, media: str, key: str | None = "scorer") -> Any:
    token = {"scorer": api.scorer, "reader": api.reader}.get(key or "")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return api.client.post(ROUTE, files={"file": (name, data, media)}, headers=headers)


def _assert_named_models(body: dict[str, Any], store: Store) -> None:
    for key, family in (("reasons", "reason"), ("anomaly", "anomaly"), ("delay", "delay")):
        trained = store.trained[family]
        assert body[key]["model"] == {
            "name": trained.name,
            "version": trained.version,
            "run_id": trained.run_id,
        }


def test_a_ubl_upload_scores_like_the_json_route_and_stores_nothing(
    api: Api, store: Store, session: Session
) -> None:
    data = store.ubl[5].read_bytes()
    before = _stored(session, api.blob_dir)
    uploaded = _upload(api, "invoice.xml", data, "application/xml")
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["detected_format"] == "ubl_invoice"
    assert body["extraction"] is None  # e-invoice XML is exact
    canonical = parse_document(data).document.model_dump(mode="json")
    assert body["document"] == canonical
    _assert_named_models(body, store)
    assert _stored(session, api.blob_dir) == before

    same = api.client.post(
        "/api/v1/score",
        json={"document": canonical},
        headers={"Authorization": f"Bearer {api.scorer}"},
    )
    assert same.status_code == 200, same.text
    assert {k: body[k] for k in ScoreResult.model_fields} == same.json()


def test_a_pdf_upload_scores_with_extraction_confidences(
    api: Api, store: Store, session: Session
) -> None:
    before = _stored(session, api.blob_dir)
    uploaded = _upload(api, "scan.pdf", store.pdf, "application/pdf")
    assert uploaded.status_code == 200, uploaded.text
    body = uploaded.json()
    assert body["detected_format"] == "pdf"
    _assert_named_models(body, store)
    assert body["document"]["kind"] == "invoice" and body["document"]["number"]
    readings = body["extraction"]
    assert {"invoice_number", "gross_total"} <= set(readings)
    assert readings["invoice_number"]["value"] == body["document"]["number"]
    assert all(0 <= r["confidence"] <= 1 for r in readings.values())
    assert _stored(session, api.blob_dir) == before


def test_a_one_document_csv_is_scored_and_a_bulk_csv_is_refused(
    api: Api, store: Store, session: Session
) -> None:
    docs = [parse_document(path.read_bytes()).document for path in store.ubl[:3]]
    before = _stored(session, api.blob_dir)
    one = _upload(api, "row.csv", write_csv(docs[:1]), "text/csv")
    assert one.status_code == 200, one.text
    assert one.json()["detected_format"] == "csv"
    assert one.json()["document"]["number"] == docs[0].number

    bulk = _upload(api, "bulk.csv", write_csv(docs), "text/csv")
    assert bulk.status_code == 422, bulk.text
    error = bulk.json()
    assert error["code"] == "ONE_DOCUMENT_EXPECTED"
    assert "3 documents" in error["message"] and "/api/v1/score:batch" in error["message"]
    assert _stored(session, api.blob_dir) == before


@pytest.mark.parametrize(
    ("name", "data", "code"),
    [
        ("notes.txt", b"just some words, not an invoice\n", "UNSUPPORTED_FORMAT"),
        ("empty.xml", b"", "EMPTY"),
        ("broken.pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog", "CORRUPT_PDF"),
        (
            "entity.xml",
            b'<!DOCTYPE x [<!ENTITY a "a">]><Invoice xmlns="' + UBL + b'"/>',
            "UNSAFE_XML",
        ),
    ],
)
def test_an_unreadable_file_is_422_with_the_parsers_code(
    api: Api, session: Session, name: str, data: bytes, code: str
) -> None:
    before = _stored(session, api.blob_dir)
    response = _upload(api, name, data, "application/octet-stream")
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == code
    assert error["message"]
    assert _stored(session, api.blob_dir) == before


def test_limits_and_keys(api: Api, store: Store, session: Session) -> None:
    data = store.ubl[1].read_bytes()
    before = _stored(session, api.blob_dir)
    too_big = _upload(api, "big.xml", data + b" " * UPLOAD_LIMIT, "application/xml")
    assert too_big.status_code == 413, too_big.text
    assert too_big.json()["code"] == "PAYLOAD_TOO_LARGE"
    wrong_scope = _upload(api, "invoice.xml", data, "application/xml", key="reader")
    assert wrong_scope.status_code == 403, wrong_scope.text
    no_key = _upload(api, "invoice.xml", data, "application/xml", key=None)
    assert no_key.status_code == 401, no_key.text
    assert _stored(session, api.blob_dir) == before
