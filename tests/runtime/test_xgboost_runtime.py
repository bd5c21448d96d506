from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xgboost as xgb
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris

from modelport.core.errors import InvalidInputError, ModelLoadError, UnsupportedFormatError
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import open_runtime, save_model
from modelport.runtime.xgboost import save_xgboost
from modelport.testing import check_runtime


def _open(path: Path, config: dict[str, Any], **kw: Any) -> Runtime:
    return open_runtime(LoadContext(path=path, format="xgboost", config=config, **kw))


@pytest.mark.parametrize("file_format", ["ubj", "json"])
def test_classifier_wrapper_matches_xgboost(tmp_path: Path, file_format: str) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=8, max_depth=3, random_state=0).fit(X, y)
    saved = save_xgboost(model, tmp_path, file_format=file_format)
    assert saved.config == {
        "file": f"model.{file_format}",
        "estimator": {"class": "XGBClassifier", "n_classes": 3},
    }
    runtime = _open(tmp_path, dict(saved.config), threads=1)
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))
    # an array gets the fitted feature names
    np.testing.assert_array_equal(runtime.predict(X.to_numpy())["predictions"], model.predict(X))
    meta = runtime.metadata()
    assert meta.outputs == ("predictions", "probabilities")
    assert meta.platform == "xgboost_xgboost"
    example = X.iloc[::25]
    expected = {
        "predictions": model.predict(example),
        "probabilities": model.predict_proba(example),
    }
    check_runtime(lambda: _open(tmp_path, dict(saved.config)), example, expected)


def test_regressor_wrapper_matches_xgboost(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = xgb.XGBRegressor(n_jobs=1, n_estimators=10, random_state=0).fit(X, y)
    saved = save_model(model, tmp_path)
    assert saved.format == "xgboost"
    assert saved.config["estimator"] == {"class": "XGBRegressor"}
    runtime = _open(tmp_path, dict(saved.config))
    runtime.load()
    out = runtime.predict(X)
    assert list(out) == ["predictions"]
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    check_runtime(lambda: _open(tmp_path, dict(saved.config)), X[:6], model.predict(X[:6]))


def test_booster_matches_booster_predict(tmp_path: Path) -> None:
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    params = {"objective": "binary:logistic", "max_depth": 3, "nthread": 1}
    booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=6)
    saved = save_model(booster, tmp_path)
    assert saved.config == {"file": "model.ubj"}
    runtime = _open(tmp_path, dict(saved.config), threads=1)
    runtime.load()
    want = booster.predict(xgb.DMatrix(X))
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], want)
    np.testing.assert_array_equal(runtime.predict(X.to_numpy())["predictions"], want)
    assert runtime.metadata().outputs == ("predictions",)
    check_runtime(lambda: _open(tmp_path, dict(saved.config)), X.head(5), want[:5])


def test_load_errors(tmp_path: Path) -> None:
    (tmp_path / "model.ubj").write_bytes(b"definitely not xgboost")
    with pytest.raises(ModelLoadError, match="xgboost could not load"):
        _open(tmp_path, {}).load()
    with pytest.raises(InvalidInputError, match="XGBClassifier"):
        _open(tmp_path, {"estimator": {"class": "os.system"}}).load()


def test_class_count_mismatch_is_refused(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    saved = save_xgboost(xgb.XGBClassifier(n_jobs=1, n_estimators=2).fit(X, y), tmp_path)
    config = {**saved.config, "estimator": {"class": "XGBClassifier", "n_classes": 2}}
    with pytest.raises(ModelLoadError, match="3 classes"):
        _open(tmp_path, config).load()


def test_saving_refuses_other_objects_and_formats(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError):
        save_xgboost(object(), tmp_path)
    with pytest.raises(InvalidInputError, match="file_format"):
        save_xgboost(xgb.Booster(), tmp_path, file_format="bin")
    with pytest.raises(InvalidInputError, match="not fitted"):
        save_xgboost(xgb.XGBClassifier(), tmp_path)
