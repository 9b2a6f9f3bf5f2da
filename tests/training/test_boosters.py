"""The serving booster (models.boosters) gives exactly what `Booster.predict` gives."""

from __future__ import annotations

from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from models.boosters import SMALL_BATCH, ServingBooster


def _trained(objective: str, tmp_path: Path) -> lgb.Booster:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1500, 5))
    x[:, 4] = rng.integers(0, 4, size=1500)  # categorical
    x[rng.random(1500) < 0.1, 1] = np.nan
    signal = 2 * x[:, 0] - np.nan_to_num(x[:, 1]) + (x[:, 4] == 2) * 3
    y = (signal > 0).astype(float) if objective == "binary" else signal + rng.normal(size=1500)
    params = {"objective": objective, "num_leaves": 15, "verbose": -1, "seed": 2}
    if objective == "quantile":
        params["alpha"] = 0.9
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[4]), num_boost_round=80)
    # As the registry loads it: from the saved text file.
    path = tmp_path / f"{objective}.txt"
    booster.save_model(str(path))
    return lgb.Booster(model_file=str(path))


@pytest.mark.parametrize("objective", ["binary", "regression_l1", "quantile"])
@pytest.mark.parametrize("rows", [1, 3, SMALL_BATCH, SMALL_BATCH + 1, 40])
def test_values_leaves_and_contributions_are_booster_predicts(
    objective: str, rows: int, tmp_path: Path
) -> None:
    booster = _trained(objective, tmp_path)
    serving = ServingBooster(booster)
    rng = np.random.default_rng(rows)
    x = rng.normal(size=(rows, 5))
    x[:, 4] = rng.integers(0, 6, size=rows)  # 4 and 5 were never seen in training
    x[::2, 1] = np.nan
    for options in ({}, {"pred_leaf": True}, {"pred_contrib": True}):
        expected = booster.predict(x, num_threads=1, **options)
        got = serving.predict(x, **options)
        assert got.shape == expected.shape, options
        assert np.array_equal(got, expected), options  # bit for bit, not approximately
    # A column slice (not C-contiguous) is read as its values.
    wide = np.hstack([x, x])[:, :5]
    assert np.array_equal(serving.predict(wide), booster.predict(x, num_threads=1))


def test_a_wrong_width_is_refused_as_lightgbm_refuses_it(tmp_path: Path) -> None:
    serving = ServingBooster(_trained("binary", tmp_path))
    with pytest.raises(lgb.basic.LightGBMError):
        serving.predict(np.zeros((1, 4)))
