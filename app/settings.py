"""One settings object for the whole service (env prefix TOLLGATE_)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = REPO_ROOT / "data" / "generated"
DEV_SECRET = "dev-only-secret-change-me"  # noqa: S105 - the refused default, not a secret


class Settings(BaseSettings):
    """Runtime configuration; every field can be set as TOLLGATE_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="TOLLGATE_", env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "production"] = "dev"
    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = Field(default="", description="SQLAlchemy URL; SQLite file by default")
    blob_dir: Path | None = Field(default=None, description="content-addressed document store")
    secret_key: str = DEV_SECRET
    max_upload_bytes: int = 20 * 1024 * 1024
    max_parse_bytes: int = 20 * 1024 * 1024
    parse_sandbox: bool = Field(
        default=True, description="parse uploads in sandboxed worker processes (off: in-process)"
    )
    parse_timeout_seconds: float = Field(default=10.0, gt=0, description="wall and CPU time")
    parse_memory_mib: int = Field(default=512, ge=64, description="address space per worker")
    parse_workers: int = Field(default=2, ge=1, le=32)
    duplicate_window_days: int = 365
    default_sla_hours: int = 72
    log_level: str = "INFO"
    log_json: bool = False
    page_size_max: int = 200
    # Request limits (README "Limits"): body sizes per route, rates, login throttling.
    max_json_bytes: int = Field(default=1024 * 1024, ge=1024, description="other API bodies")
    max_batch_bytes: int = Field(default=32 * 1024 * 1024, ge=1024, description="score:batch")
    max_form_bytes: int = Field(default=256 * 1024, ge=1024, description="review UI forms")
    rate_limit_key_per_second: float = Field(default=200.0, ge=0, description="0: no limit")
    rate_limit_key_burst: int = Field(default=400, ge=1)
    rate_limit_user_per_second: float = Field(default=5.0, ge=0, description="0: no limit")
    rate_limit_user_burst: int = Field(default=60, ge=1)
    login_max_failures: int = Field(default=5, ge=0, description="per user name; 0: no limit")
    login_max_failures_per_ip: int = Field(default=20, ge=0, description="per client address")
    login_window_seconds: float = Field(default=900.0, gt=0)
    # The API call log (app/apikeys/calls.py): buffered in the process, written in batches.
    api_calls_flush_seconds: float = Field(
        default=0.5, gt=0, description="how often buffered API calls are written"
    )
    api_calls_batch_size: int = Field(
        default=500, ge=1, le=2000, description="rows per INSERT; a full batch is written at once"
    )
    api_calls_buffer_cap: int = Field(
        default=100_000, ge=1, description="buffered calls kept while the database is away"
    )
    # Webhooks (README "Webhooks"): how the delivery worker retries.
    webhook_max_attempts: int = Field(default=8, ge=1, description="tries before `failed`")
    webhook_backoff_base_seconds: float = Field(default=10.0, gt=0)
    webhook_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    webhook_lease_seconds: float = Field(default=60.0, gt=0, description="a send's lease")
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, description="per request")
    # ERP posting (DESIGN §2 step 9): the adapter, and how the outbox worker retries.
    erp_adapter: Literal["ubl-export", "tryton"] = "ubl-export"
    erp_export_dir: Path | None = Field(default=None, description="UBL export folder")
    outbox_max_attempts: int = Field(default=8, ge=1, description="tries before dead-letter")
    outbox_lease_seconds: float = Field(default=300.0, gt=0, description="a send's lease")
    outbox_backoff_base_seconds: float = Field(default=5.0, gt=0)
    outbox_backoff_cap_seconds: float = Field(default=3600.0, gt=0)
    worker_in_process: bool = Field(
        default=False, description="run the outbox worker inside `tollgate serve` (the demo)"
    )
    tryton_url: str = Field(default="http://127.0.0.1:8000", description="trytond JSON-RPC base")
    tryton_database: str = "tollgate"
    tryton_user: str = "admin"
    tryton_password: str = ""
    # Model serving (DESIGN §2 step 5): each family is loaded by alias once per process.
    mlflow_tracking_uri: str = Field(
        default="", description="MLflow store; empty: MLFLOW_TRACKING_URI, else <data_dir>/mlflow"
    )
    score_on_ingest: bool = Field(default=True, description="score every new case at intake")
    embedding_cache_dir: Path | None = Field(
        default=None, description="MiniLM vectors by text hash; default <data_dir>/embeddings"
    )
    scoring_history_cap: int = Field(
        default=200, ge=0, description="earlier documents of the supplier read for history"
    )

    @model_validator(mode="after")
    def _fill_defaults_and_refuse_dev_secrets(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'tollgate.db'}"
        if self.blob_dir is None:
            self.blob_dir = self.data_dir / "blobs"
        if self.erp_export_dir is None:
            self.erp_export_dir = self.data_dir / "erp-export"
        if self.embedding_cache_dir is None:
            self.embedding_cache_dir = self.data_dir / "embeddings"
        if self.environment == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("TOLLGATE_SECRET_KEY must be set to a real secret in production")
        return self

    @property
    def blobs(self) -> Path:
        """Folder of the content-addressed document store."""
        assert self.blob_dir is not None
        return self.blob_dir


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
