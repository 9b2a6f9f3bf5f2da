"""MLflow model registry access: resolve an alias once, load native boosters, name every prediction.

A registered version holds a *bundle* (see `BUNDLE_DIR`): `bundle.json` describes one or more
heads, each a native LightGBM text model (or a skops file for the IsolationForest) with its
feature names and categorical vocabularies. Serving reads those files directly, never through
the pyfunc wrapper (1.5-8 ms per call against 20-45 us for the booster) and never unpickles.

This module imports nothing else of ours at module level: MLflow copies it next to the pyfunc
entry point of each logged model, so it must stand alone.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import tempfile
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FAMILIES: tuple[str, ...] = ("reason", "anomaly", "delay")
CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "tollgate"
BUNDLE_DIR = "bundle"  # name of the pyfunc artifact that holds bundle.json and the model files
BUNDLE_FORMAT = 1

FloatArray = NDArray[np.float64]


def registered_name(family: str) -> str:
    """The registered model name of a family (`anomaly` -> `tollgate-anomaly`)."""
    return f"tollgate-{family}"


def default_data_dir() -> Path:
    """`TOLLGATE_DATA_DIR`, else `<repo>/data/generated` (the same default as the app settings)."""
    env = os.environ.get("TOLLGATE_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1] / "data" / "generated"


def default_tracking_uri(data_dir: Path | None = None) -> str:
    """`MLFLOW_TRACKING_URI` if set, else an embedded sqlite store under `<data_dir>/mlflow`."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = (data_dir or default_data_dir()) / "mlflow"
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def artifact_root_for(tracking_uri: str) -> str | None:
    """Where a sqlite store keeps artifacts (`<dir>/artifacts`); None for a server (it decides)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///"))
    return (db.parent / "artifacts").resolve().as_uri()


def normalise_version(version: object) -> str:
    """Model versions are ints with a sqlite store and strings via a server: always str."""
    return str(int(str(version)))


def use_store(tracking_uri: str) -> None:
    """Point MLflow's tracking and registry at one store (MLflow keeps these process-global)."""
    import mlflow

    # tqdm bars on every artifact download are noise in a CLI and in service logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


# -- bundles ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """One scoring function of a bundle: its inputs, outputs and how to compute them."""

    name: str
    features: tuple[str, ...]
    outputs: tuple[str, ...]
    categorical: Mapping[str, Mapping[str, int]]
    compute: Callable[[FloatArray], dict[str, FloatArray]]
    meta: Mapping[str, Any] = field(default_factory=dict)

    def encode(self, records: Sequence[Mapping[str, object]]) -> FloatArray:
        """Rows of raw values (by feature name) to the matrix the head takes; unknown -> NaN."""
        out = np.full((len(records), len(self.features)), math.nan, dtype=np.float64)
        for i, record in enumerate(records):
            for j, name in enumerate(self.features):
                value = record.get(name)
                if value is None:
                    continue
                vocab = self.categorical.get(name)
                if vocab is not None:
                    code = vocab.get(str(value))
                    out[i, j] = math.nan if code is None else float(code)
                elif isinstance(value, bool):
                    out[i, j] = float(value)
                else:
                    out[i, j] = float(value)  # type: ignore[arg-type]
        return out


def lightgbm_boosters(folder: Path, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The serving boosters of a LightGBM head (`files`: output -> file name)."""
    from models.boosters import ServingBooster

    return {out: ServingBooster.from_file(folder / file) for out, file in spec["files"].items()}


def _lightgbm_head(
    folder: Path, name: str, spec: Mapping[str, Any], boosters: Mapping[str, Any] | None = None
) -> Head:
    """A head of one or more native boosters, one per output (`boosters` when already loaded)."""
    boosters = boosters if boosters is not None else lightgbm_boosters(folder, spec)
    floor = spec.get("floor_at_zero", [])
    at_least = spec.get("at_least", {})  # e.g. p90 is never below p50

    def compute(x: FloatArray) -> dict[str, FloatArray]:
        result: dict[str, FloatArray] = {}
        for out in spec["outputs"]:
            # One thread (models/boosters.py): OpenMP start-up and spin-waiting cost 3x on
            # single rows on a busy 2-core box; batches of 1,000 are faster this way too.
            raw = boosters[out].predict(x)
            if out in floor:
                raw = np.maximum(raw, 0.0)
            result[out] = raw
        for out, other in at_least.items():
            result[out] = np.maximum(result[out], result[other])
        return result

    return Head(
        name=name,
        features=tuple(spec["features"]),
        outputs=tuple(spec["outputs"]),
        categorical=spec.get("categorical", {}),
        compute=compute,
        meta=spec.get("meta", {}),
    )


def _isolation_forest_head(folder: Path, name: str, spec: Mapping[str, Any]) -> Head:
    """An IsolationForest saved with skops; only scikit-learn/numpy types may be loaded."""
    import skops.io as sio

    path = folder / spec["file"]
    untrusted = sio.get_untrusted_types(file=path)
    # Our own store, still refuse anything outside scikit-learn and numpy.
    allowed = [t for t in untrusted if t.startswith(("sklearn.", "numpy."))]
    if len(allowed) != len(untrusted):
        raise ValueError(f"{path.name} holds types outside scikit-learn/numpy: {untrusted}")
    forest = sio.load(path, trusted=allowed)
    output = spec["outputs"][0]

    def compute(x: FloatArray) -> dict[str, FloatArray]:
        return {output: np.asarray(-forest.score_samples(x), dtype=np.float64)}

    return Head(
        name=name,
        features=tuple(spec["features"]),
        outputs=tuple(spec["outputs"]),
        categorical={},
        compute=compute,
        meta=spec.get("meta", {}),
    )


_HEAD_KINDS: dict[str, Callable[[Path, str, Mapping[str, Any]], Head]] = {
    "lightgbm": _lightgbm_head,
    "skops-isolation-forest": _isolation_forest_head,
}


# Head kinds whose loaders live in another module of this package, imported on first use
# (models.reason imports this module, so it cannot be imported here at the top).
_HEAD_KIND_MODULES = {"reason": "models.reason"}


def _head_loader(kind: str) -> Callable[[Path, str, Mapping[str, Any]], Head]:
    if kind not in _HEAD_KINDS and kind in _HEAD_KIND_MODULES:
        importlib.import_module(_HEAD_KIND_MODULES[kind])
    if kind not in _HEAD_KINDS:
        raise ValueError(f"unknown model head kind {kind!r}")
    return _HEAD_KINDS[kind]


def register_head_kind(kind: str, loader: Callable[[Path, str, Mapping[str, Any]], Head]) -> None:
    """Teach `load_bundle` a new head kind (loader: folder, head name, head spec -> Head)."""
    _HEAD_KINDS[kind] = loader


@dataclass(frozen=True)
class Bundle:
    """The heads of one model version, loaded into memory."""

    family: str
    heads: Mapping[str, Head]
    default_head: str
    meta: Mapping[str, Any]


def load_bundle(folder: Path) -> Bundle:
    """Load `bundle.json` and every head it lists from a folder."""
    spec = json.loads((folder / "bundle.json").read_text(encoding="utf-8"))
    if spec.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"unknown bundle format {spec.get('format')!r} in {folder}")
    heads = {
        name: _head_loader(head["kind"])(folder, name, head) for name, head in spec["heads"].items()
    }
    return Bundle(spec["family"], heads, spec["default_head"], spec.get("meta", {}))


class BundlePyfunc:
    """The pyfunc face of a bundle, for the MLflow UI and `mlflow models serve` (not our serving).

    Defined as a duck-typed PythonModel factory so this module does not import MLflow at import.
    """

    @staticmethod
    def make() -> Any:
        """A `mlflow.pyfunc.PythonModel` that scores the bundle's default head on a DataFrame."""
        import mlflow.pyfunc

        class _Model(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
            bundle: Bundle | None = None

            def load_context(self, context: Any) -> None:
                self.bundle = load_bundle(Path(context.artifacts[BUNDLE_DIR]))

            # No annotations: MLflow would read them as a type-hint schema and warn.
            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
                import pandas as pd

                assert self.bundle is not None
                head = self.bundle.heads[self.bundle.default_head]
                frame = pd.DataFrame(model_input)
                x = head.encode(frame.to_dict(orient="records"))
                return pd.DataFrame({k: v for k, v in head.compute(x).items()})

        return _Model()


# -- serving ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prediction:
    """Scores of one call, with the model version that produced them."""

    name: str
    version: str
    run_id: str
    head: str
    outputs: dict[str, list[float]]


@dataclass(frozen=True)
class LoadedModel:
    """A resolved model version held in memory; `predict` names the version on every result."""

    family: str
    name: str
    version: str
    run_id: str
    alias: str
    bundle: Bundle

    @property
    def heads(self) -> list[str]:
        """Names of the scoring heads in this version."""
        return list(self.bundle.heads)

    def head(self, head: str | None = None) -> Head:
        """A head by name (default: the bundle's default head)."""
        return self.bundle.heads[head or self.bundle.default_head]

    def predict(
        self, rows: FloatArray | Sequence[Sequence[float]], head: str | None = None
    ) -> Prediction:
        """Score encoded feature rows (columns as `head(...).features`) with the native model."""
        h = self.head(head)
        x = np.asarray(rows, dtype=np.float64).reshape(-1, len(h.features))
        outputs = {k: v.tolist() for k, v in h.compute(x).items()}
        return Prediction(self.name, self.version, self.run_id, h.name, outputs)

    def predict_records(
        self, records: Sequence[Mapping[str, object]], head: str | None = None
    ) -> Prediction:
        """Score raw records (feature name -> value; categories as text) after encoding them."""
        return self.predict(self.head(head).encode(records), head)


@dataclass(frozen=True)
class VersionInfo:
    """One registered version and the aliases pointing at it."""

    name: str
    version: str
    run_id: str
    aliases: tuple[str, ...]
    created_ms: int
    description: str


class ModelRegistry:
    """Loads `tollgate-<family>` by alias once (champion, else challenger) and caches it."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri or default_tracking_uri()
        self._loaded: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        use_store(self.tracking_uri)
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def resolve(self, family: str, aliases: Sequence[str] = (CHAMPION, CHALLENGER)) -> VersionInfo:
        """The version the first existing alias points at; LookupError when none does."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        name = registered_name(family)
        for alias in aliases:
            try:
                mv = client.get_model_version_by_alias(name, alias)
            except MlflowException:
                continue
            return VersionInfo(
                name,
                normalise_version(mv.version),
                mv.run_id or "",
                (alias,),
                int(mv.creation_timestamp or 0),
                mv.description or "",
            )
        raise LookupError(f"{name} has no version with alias {' or '.join(aliases)}")

    def load(self, family: str, aliases: Sequence[str] = (CHAMPION, CHALLENGER)) -> LoadedModel:
        """The cached model of a family, resolving the alias only on first use or after refresh."""
        key = f"{family}@{','.join(aliases)}"
        with self._lock:
            cached = self._loaded.get(key)
            if cached is not None:
                return cached
            info = self.resolve(family, aliases)
            model = self.load_version(family, info.version, alias=info.aliases[0])
            self._loaded[key] = model
            return model

    def load_version(self, family: str, version: str, alias: str = "") -> LoadedModel:
        """Download and load one version's bundle (not cached)."""
        import mlflow.artifacts

        client = self._client()
        name = registered_name(family)
        mv = client.get_model_version(name, normalise_version(version))
        with tempfile.TemporaryDirectory(prefix="tollgate-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{normalise_version(version)}",
                dst_path=tmp,
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            )
            found = sorted(Path(local).rglob("bundle.json"))
            if not found:
                raise LookupError(f"{name} version {version} holds no bundle.json")
            bundle = load_bundle(found[0].parent)
        return LoadedModel(
            family=family,
            name=name,
            version=normalise_version(mv.version),
            run_id=mv.run_id or "",
            alias=alias,
            bundle=bundle,
        )

    def refresh(self, family: str | None = None) -> None:
        """Forget loaded models so the next `load` resolves the alias again."""
        with self._lock:
            if family is None:
                self._loaded.clear()
            else:
                for key in [k for k in self._loaded if k.split("@", 1)[0] == family]:
                    del self._loaded[key]

    def set_alias(self, family: str, alias: str, version: str) -> None:
        """Point an alias at a version (promotion itself is gated in governance and the app)."""
        self._client().set_registered_model_alias(
            registered_name(family), alias, normalise_version(version)
        )

    def versions(self, family: str) -> list[VersionInfo]:
        """Every registered version of a family, newest first, with its aliases."""
        from mlflow.exceptions import MlflowException

        client = self._client()
        name = registered_name(family)
        try:
            model = client.get_registered_model(name)
        except MlflowException:
            return []
        by_version: dict[str, list[str]] = {}
        for alias, version in (model.aliases or {}).items():
            by_version.setdefault(normalise_version(version), []).append(alias)
        out = [
            VersionInfo(
                name,
                normalise_version(mv.version),
                mv.run_id or "",
                tuple(sorted(by_version.get(normalise_version(mv.version), []))),
                int(mv.creation_timestamp or 0),
                mv.description or "",
            )
            for mv in client.search_model_versions(f"name = '{name}'")
        ]
        return sorted(out, key=lambda v: -int(v.version))
