"""Read what training recorded about a registered version (tags, params, metrics) from MLflow.

The promotion gate needs the trainer (`tollgate.trained_by`) and, without a held-out world, the
version's stored metrics; the app reaches MLflow only through `models`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from models.registry import normalise_version, registered_name, use_store

TRAINED_BY_TAG = "tollgate.trained_by"
SNAPSHOT_TAG = "tollgate.snapshot_sha256"


@dataclass(frozen=True)
class RunDetails:
    """The MLflow run behind one registered version."""

    family: str
    version: str
    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]

    @property
    def trained_by(self) -> str | None:
        """Who trained the version (None for versions trained before the tag existed)."""
        return self.tags.get(TRAINED_BY_TAG) or None


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    use_store(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def run_details(tracking_uri: str, family: str, version: str) -> RunDetails:
    """Tags, params and metrics of the run that produced a version; LookupError if unknown."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        mv = client.get_model_version(registered_name(family), normalise_version(version))
    except MlflowException as exc:
        raise LookupError(f"{registered_name(family)} has no version {version}") from exc
    run = client.get_run(mv.run_id)
    return RunDetails(
        family=family,
        version=normalise_version(mv.version),
        run_id=str(mv.run_id),
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        metrics={k: float(v) for k, v in run.data.metrics.items()},
    )
