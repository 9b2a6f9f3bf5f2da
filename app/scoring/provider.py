"""The process-wide scorer: each family loaded by alias once, re-resolved on `refresh()`."""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from app.settings import Settings, get_settings
from models.embeddings import TextEmbedder
from models.registry import FAMILIES, ModelRegistry, default_tracking_uri
from models.scoring import CaseScorer

log = structlog.get_logger(__name__)


def tracking_uri_of(settings: Settings) -> str:
    """The configured MLflow store: the setting, else MLFLOW_TRACKING_URI, else the data dir."""
    return settings.mlflow_tracking_uri or default_tracking_uri(settings.data_dir)


class ScorerProvider:
    """Holds one `CaseScorer` snapshot; `refresh()` makes the next call resolve aliases again.

    A snapshot is never changed in place: a batch scored with it names the versions it holds,
    whatever happens to the aliases meanwhile.
    """

    def __init__(self, tracking_uri: str, embedding_cache: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.embedding_cache = embedding_cache
        self.registry = ModelRegistry(tracking_uri)
        self._lock = threading.Lock()
        self._scorer: CaseScorer | None = None
        self._resolved = False
        self._embedder_owner: CaseScorer | None = None

    def _store_exists(self) -> bool:
        # A fresh install has no store file yet; creating one (MLflow's migrations) to learn it
        # is empty would cost seconds on the first upload.
        if self.tracking_uri.startswith("sqlite:///"):
            return Path(self.tracking_uri.removeprefix("sqlite:///")).is_file()
        return True

    def scorer(self) -> CaseScorer | None:
        """The current scorer, or None when no family has a registered model."""
        with self._lock:
            if self._resolved:
                return self._scorer
            loaded = {}
            failed = False
            if self._store_exists():
                for family in FAMILIES:
                    try:
                        loaded[family] = self.registry.load(family)
                    except LookupError:
                        continue
                    except Exception:  # store unreachable, broken bundle: serve without it
                        log.exception("scoring.load_failed", family=family)
                        failed = True
            previous = self._embedder_owner
            scorer = (
                CaseScorer(
                    loaded,
                    # The embedder's in-memory vectors and loaded MiniLM outlive a refresh.
                    previous.embedder if previous is not None else None,
                    embedding_cache=self.embedding_cache,
                )
                if loaded
                else None
            )
            if scorer is None:
                log.info("scoring.no_models", tracking_uri=self.tracking_uri)
            else:
                log.info(
                    "scoring.models_loaded",
                    models={f: f"{m.name}@{m.version}" for f, m in loaded.items()},
                )
                self._embedder_owner = scorer
            # After a failure the next call tries again; a clean "no model" is kept until refresh.
            self._scorer, self._resolved = scorer, not failed
            return scorer

    def embedder(self) -> TextEmbedder:
        """The text embedder, loaded once per process even when no model is registered."""
        scorer = self.scorer()
        if scorer is not None:
            return scorer.embedder
        with self._lock:
            if self._embedder_owner is None:
                self._embedder_owner = CaseScorer({}, embedding_cache=self.embedding_cache)
            return self._embedder_owner.embedder

    def refresh(self) -> None:
        """Forget the loaded versions; the next `scorer()` resolves champion/challenger again."""
        with self._lock:
            self.registry.refresh()
            self._resolved = False


_provider: ScorerProvider | None = None
_provider_lock = threading.Lock()


def get_provider(settings: Settings | None = None) -> ScorerProvider:
    """The process-wide provider for the configured store."""
    global _provider  # noqa: PLW0603 - one provider per process, swapped only on a new store
    settings = settings or get_settings()
    uri = tracking_uri_of(settings)
    with _provider_lock:
        if _provider is None or _provider.tracking_uri != uri:
            _provider = ScorerProvider(uri, settings.embedding_cache_dir)
        return _provider


def refresh_models() -> None:
    """Re-resolve aliases on the next scoring (after a promotion or rollback)."""
    with _provider_lock:
        if _provider is not None:
            _provider.refresh()
