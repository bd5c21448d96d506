from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from modelport.core.errors import InvalidInputError, ModelLoadError, UnsupportedFormatError
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.lightgbm import save_lightgbm
from modelport.runtime.loaders import open_runtime, save_model
from modelport.testing import check_runtime


def _open(path: Path, config: dict[str, Any], **kw: Any) -> Runtime:
    return open_runtime(LoadContext(path=path, format="lightgbm", config=config, **kw))


def test_multiclass_classifier_matches_lightgbm(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1, random_state=0, n_jobs=1).fit(X, y)
    saved = save_model(model, tmp_path)
    assert saved.format == "lightgbm"
    assert saved.config == {
        "file": "model.txt",
        "estimator": {"class": "LGBMClassifier", "classes": [0, 1, 2]},
    }
    runtime = _open(tmp_path, dict(saved.config), threads=1)
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))
    meta = runtime.metadata()
    assert meta.outputs == ("predictions", "probabilities")
    assert meta.extra["classes"] == [0, 1, 2]
    example = X.iloc[::30]
    expected = {
        "predictions": model.predict(example),
        "probabilities": model.predict_proba(example),
    }
    check_runtime(lambda: _open(tmp_path, dict(saved.config)), example, expected)


def test_binary_classifier_with_string_labels(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True)
    labels = np.where(y == 1, "benign", "malignant")
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(X, labels)
    saved = save_lightgbm(model, tmp_path)
    runtime = _open(tmp_path, dict(saved.config))
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))
    assert out["probabilities"].shape == (len(X), 2)


def test_column_dicts_are_put_in_training_order(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y)
    saved = save_lightgbm(model, tmp_path)
    runtime = _open(tmp_path, dict(saved.config))
    runtime.load()
    shuffled = {c: X[c].to_numpy() for c in reversed(X.columns)}
    np.testing.assert_array_equal(runtime.predict(shuffled)["predictions"], model.predict(X))


def test_regressor_and_booster_match_lightgbm(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = lgb.LGBMRegressor(n_estimators=10, verbose=-1, n_jobs=1).fit(X, y)
    saved = save_lightgbm(model, tmp_path / "wrapper")
    runtime = _open(tmp_path / "wrapper", dict(saved.config))
    runtime.load()
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], model.predict(X))

    booster = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=5)
    saved = save_model(booster, tmp_path / "booster")
    assert saved.config == {"file": "model.txt"}
    runtime = _open(tmp_path / "booster", dict(saved.config), threads=1)
    runtime.load()
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], booster.predict(X))
    check_runtime(
        lambda: _open(tmp_path / "booster", dict(saved.config)), X[:5], booster.predict(X[:5])
    )


def test_load_errors(tmp_path: Path) -> None:
    (tmp_path / "model.txt").write_text("not a model\n")
    with pytest.raises(ModelLoadError, match="lightgbm could not load"):
        _open(tmp_path, {}).load()
    X, y = load_iris(return_X_y=True)
    save_lightgbm(lgb.LGBMClassifier(n_estimators=2, verbose=-1, n_jobs=1).fit(X, y), tmp_path)
    wrong = {"estimator": {"class": "LGBMClassifier", "classes": ["a", "b"]}}
    with pytest.raises(ModelLoadError, match="3 classes"):
        _open(tmp_path, wrong).load()
    with pytest.raises(InvalidInputError, match="LGBMClassifier"):
        _open(tmp_path, {"estimator": {"class": "Evil"}}).load()


def test_saving_refuses_other_objects(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError):
        save_lightgbm(object(), tmp_path)
    with pytest.raises(InvalidInputError, match="not fitted"):
        save_lightgbm(lgb.LGBMClassifier(), tmp_path)


def test_frames_with_other_columns_are_refused(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    saved = save_lightgbm(
        lgb.LGBMClassifier(n_estimators=2, verbose=-1, n_jobs=1).fit(X, y), tmp_path
    )
    runtime = _open(tmp_path, dict(saved.config))
    runtime.load()
    with pytest.raises(InvalidInputError, match="expects columns"):
        runtime.predict(X.rename(columns=lambda c: c.upper()))
