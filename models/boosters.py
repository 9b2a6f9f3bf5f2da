"""LightGBM boosters as the serving path calls them: one thread, few rows at a time.

`Booster.predict` spends about 30 µs per call in Python before any tree is walked (it builds
an inner predictor, copies its parameters, checks and converts the input), which is most of
the time for one row of a 120-tree model, and a score request makes about twenty such calls.
LightGBM's C API has a path made for this: `LGBM_BoosterPredictForMatSingleRowFast` with a
configuration prepared once. `ServingBooster` takes it for small batches (a row at a time)
and `Booster.predict` for larger ones; both run the same C++ predictor, so the numbers are
identical (tests/training/test_boosters.py compares them, leaves and contributions included).
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import lightgbm as lgb
import numpy as np
from lightgbm import basic as _lgb
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

SMALL_BATCH = 8  # rows predicted one by one; past this one batched call costs less
_PARAMETERS = b"num_threads=1"  # OpenMP start-up costs more than one row's trees

_NORMAL = _lgb._C_API_PREDICT_NORMAL
_LEAF = _lgb._C_API_PREDICT_LEAF_INDEX
_CONTRIB = _lgb._C_API_PREDICT_CONTRIB


class _FastConfig:
    """A prepared single-row prediction of one kind (values, leaves or contributions)."""

    def __init__(self, booster: lgb.Booster, kind: int, num_iteration: int) -> None:
        width = booster.num_feature()
        self._handle = ctypes.c_void_p()
        _lgb._safe_call(
            _lgb._LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(kind),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(num_iteration),
                ctypes.c_int(_lgb._C_API_DTYPE_FLOAT64),
                ctypes.c_int32(width),
                ctypes.c_char_p(_PARAMETERS),
                ctypes.byref(self._handle),
            )
        )
        length = ctypes.c_int64()
        _lgb._safe_call(
            _lgb._LIB.LGBM_BoosterCalcNumPredict(
                booster._handle,
                ctypes.c_int(1),
                ctypes.c_int(kind),
                ctypes.c_int(0),
                ctypes.c_int(num_iteration),
                ctypes.byref(length),
            )
        )
        self.width = width
        self.length = length.value

    def predict(self, x: FloatArray) -> FloatArray:
        """One output row per input row."""
        out = np.empty((len(x), self.length), dtype=np.float64)
        written = ctypes.c_int64()
        for i in range(len(x)):
            row = x[i]
            _lgb._safe_call(
                _lgb._LIB.LGBM_BoosterPredictForMatSingleRowFast(
                    self._handle,
                    row.ctypes.data_as(ctypes.c_void_p),
                    ctypes.byref(written),
                    out[i].ctypes.data_as(ctypes.POINTER(ctypes.c_double)),
                )
            )
        return out

    def __del__(self) -> None:
        if self._handle:
            _lgb._LIB.LGBM_FastConfigFree(self._handle)


class ServingBooster:
    """`lgb.Booster.predict` on one thread, small batches through the single-row fast path."""

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster
        self._num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        self._width = int(booster.num_feature())
        # One output per row: binary and regression (the only objectives Tollgate trains).
        self._single_output = booster.num_model_per_iteration() == 1
        self._configs: dict[int, _FastConfig] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_file(cls, path: Path) -> ServingBooster:
        """Load a booster saved with `save_model`."""
        return cls(lgb.Booster(model_file=str(path)))

    def num_feature(self) -> int:
        """Input columns."""
        return self._width

    def _config(self, kind: int) -> _FastConfig:
        config = self._configs.get(kind)
        if config is None:
            with self._lock:
                config = self._configs.get(kind)
                if config is None:
                    config = _FastConfig(self.booster, kind, self._num_iteration)
                    self._configs[kind] = config
        return config

    def predict(
        self, x: FloatArray, *, pred_leaf: bool = False, pred_contrib: bool = False
    ) -> FloatArray:
        """What `Booster.predict(x, num_threads=1, …)` returns for a 2-D float matrix."""
        rows = np.ascontiguousarray(x, dtype=np.float64)
        if (
            not self._single_output
            or rows.ndim != 2
            or len(rows) > SMALL_BATCH
            or rows.shape[1] != self._width
        ):
            # Booster.predict gives the same numbers and its own errors for a wrong shape.
            return np.asarray(
                self.booster.predict(
                    x, pred_leaf=pred_leaf, pred_contrib=pred_contrib, num_threads=1
                ),
                dtype=np.float64,
            )
        kind = _LEAF if pred_leaf else _CONTRIB if pred_contrib else _NORMAL
        out = self._config(kind).predict(rows)
        return out[:, 0] if kind == _NORMAL else out
