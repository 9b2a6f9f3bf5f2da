"""Contract tests: schemathesis drives the whole /api/v1 API from its own OpenAPI document.

Once per API-key scope and once without a key: no 5xx, every response fits the documented
status codes, content types and schemas, and a call without the scope a route needs never gets
a 2xx. Examples are derandomized (a fixed seed per operation) and few, so CI time stays small.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from app.api_docs import required_scope
from app.apikeys import service as apikeys
from app.audit.service import Actor
from app.main import create_app
from app.settings import Settings

ADMIN = Actor("admin", "admin")
EXAMPLES_PER_OPERATION = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def api(loaded: Session, tmp_path: Path) -> Iterator[FastAPI]:
    settings = Settings(
        environment="test",
        data_dir=tmp_path,
        database_url="sqlite://",
        parse_sandbox=False,
        max_upload_bytes=200_000,
        rate_limit_key_per_second=0,  # the fuzzer is a burst by design; 429s are tested apart
    )
    yield create_app(settings, session_factory=lambda: loaded)  # type: ignore[arg-type]


def _known_good(app: FastAPI, headers: dict[str, str], demo_dir: Path) -> list[int]:
    """A real invoice upload, a read of its case and a score of the file, validated alike."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    invoice = (demo_dir / "documents" / "006-price-variance.xml").read_bytes()
    upload = schema["/api/v1/documents"]["POST"].Case(
        headers=headers,
        body={"file": cast(Any, invoice)},
        media_type="multipart/form-data",
        multipart_content_types={"file": "application/xml"},
    )
    uploaded = upload.call()
    upload.validate_response(uploaded, checks=CHECKS)
    read = schema["/api/v1/cases/{case_id}"]["GET"].Case(
        headers=headers, path_parameters={"case_id": uploaded.json()["case_id"]}
    )
    answered = read.call()
    read.validate_response(answered, checks=CHECKS)
    scoring = schema["/api/v1/score:document"]["POST"].Case(
        headers=headers,
        body={"file": cast(Any, invoice)},
        media_type="multipart/form-data",
        multipart_content_types={"file": "application/xml"},
    )
    scored = scoring.call()
    scoring.validate_response(scored, checks=CHECKS)
    return [uploaded.status_code, answered.status_code, scored.status_code]


def _run(app: FastAPI, headers: dict[str, str], scope: str | None) -> Counter[str]:
    """Fuzz every operation with `headers`; return counts of outcomes (failing on the first)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: Counter[str] = Counter()
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # every operation of the document can be tested
        operations.append(result.ok())
    assert len(operations) >= 5  # documents (3) and cases (2) at least
    for operation in operations:
        _fuzz(operation, headers, scope, seen)
    return seen


def _fuzz(operation: Any, headers: dict[str, str], scope: str | None, seen: Counter[str]) -> None:
    """Run the examples of one operation, counting "METHOD path status" in `seen`."""
    needs = required_scope(operation.definition.raw)
    label = f"{operation.method.upper()} {operation.path}"

    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def check(case: Any) -> None:
        # The fuzzer makes up Authorization values of its own; the role's key replaces them.
        case.headers = {**(case.headers or {}), **headers}
        response = case.call()
        status = response.status_code
        seen[f"{label} {status}"] += 1
        if needs is not None and needs != scope:
            # An auth bypass is a 2xx without the scope; 401 without a key, 403 with another.
            assert status == (403 if scope else 401), f"{label} answered {status}"
        case.validate_response(response, checks=CHECKS)

    check()


@pytest.mark.parametrize("scope", [None, *apikeys.SCOPES], ids=lambda s: s or "no-key")
def test_the_api_keeps_its_contract(api: FastAPI, loaded: Session, scope: str | None) -> None:
    headers: dict[str, str] = {}
    if scope is not None:
        key = apikeys.create_key(loaded, name=f"contract-{scope}", scopes=[scope], actor=ADMIN)
        headers["Authorization"] = f"Bearer {key.token}"
    # Release the savepoint: a refused request rolls back to here, not past the key and the
    # master data (the test's outer transaction still rolls everything back at the end).
    loaded.commit()
    seen = _run(api, headers, scope)
    assert not [k for k in seen if k.endswith(tuple(f" {c}" for c in range(500, 600)))]
    statuses = {k.rsplit(" ", 1)[1] for k in seen}
    if scope == "cases:read":
        assert "200" in statuses  # the fuzzer got through to real answers, not only refusals


def test_real_answers_fit_their_schemas(api: FastAPI, loaded: Session, demo_dir: Path) -> None:
    key = apikeys.create_key(loaded, name="erp", scopes=list(apikeys.SCOPES), actor=ADMIN)
    loaded.commit()
    assert _known_good(api, {"Authorization": f"Bearer {key.token}"}, demo_dir) == [201, 200, 200]


def test_every_operation_documents_its_errors(api: FastAPI) -> None:
    document = api.openapi()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            if required_scope(operation):
                assert {"401", "403", "429"} <= set(responses), (method, path)
                assert "Retry-After" in responses["429"]["headers"]
            if "requestBody" in operation:
                assert {"413", "422"} <= set(responses), (method, path)
            for status, response in responses.items():
                if status[0] in "45":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path)
