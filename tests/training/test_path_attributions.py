"""Path attributions (models.scoring.path_attributions) against LightGBM's own numbers."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from models.scoring import path_attributions


@pytest.mark.parametrize("objective", ["regression_l1", "quantile", "binary"])
def test_they_add_up_to_the_prediction_and_rank_like_treeshap(objective: str) -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 6))
    x[:, 4] = 1.0  # constant: never split on
    x[:, 5] = rng.integers(0, 5, size=2000)  # a categorical column
    x[rng.random(2000) < 0.1, 2] = np.nan  # missing values take the default branch
    signal = 3 * x[:, 0] - 2 * np.nan_to_num(x[:, 2]) + (x[:, 5] == 3) * 4
    y = (signal > 0).astype(float) if objective == "binary" else signal + rng.normal(size=2000)
    params = {"objective": objective, "num_leaves": 15, "verbose": -1, "seed": 1}
    if objective == "quantile":
        params["alpha"] = 0.9
    booster = lgb.train(params, lgb.Dataset(x, y, categorical_feature=[5]), num_boost_round=150)

    rows = rng.normal(size=(300, 6))
    rows[:, 5] = rng.integers(0, 6, size=300)  # 5 was never seen in training
    rows[::9, 2] = np.nan
    ours = path_attributions(booster)(rows)
    shap = booster.predict(rows, pred_contrib=True)
    assert ours.shape == shap.shape
    # Contributions plus the expected value give the raw prediction, as TreeSHAP's do.
    assert np.allclose(ours.sum(axis=1), booster.predict(rows, raw_score=True), atol=1e-9)
    assert np.allclose(ours[:, -1], shap[:, -1], atol=1e-9)
    # Not TreeSHAP, but they name the same strongest feature on nearly every row.
    same_top = np.mean(
        np.argmax(np.abs(ours[:, :-1]), axis=1) == np.argmax(np.abs(shap[:, :-1]), axis=1)
    )
    assert same_top >= 0.9, same_top
    # A feature the trees never split on gets nothing; the others get something somewhere.
    assert booster.feature_importance()[4] == 0
    assert np.all(ours[:, 4] == 0.0)
    assert np.all(np.abs(ours[:, [0, 2, 5]]).max(axis=0) > 0)
