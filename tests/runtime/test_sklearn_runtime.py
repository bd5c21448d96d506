from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_diabetes, load_iris
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from modelport.core.errors import (
    ArtifactNotFoundError,
    InvalidInputError,
    ModelLoadError,
    PredictionError,
    UntrustedPickleError,
    UntrustedTypesError,
)
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import open_runtime, save_model
from modelport.runtime.sklearn import save_sklearn
from modelport.testing import check_runtime

TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def _open(path: Path, config: dict[str, Any], **kw: Any) -> Runtime:
    return open_runtime(LoadContext(path=path, format="sklearn", config=config, **kw))


def _customers(n: int = 80) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, n).astype(float),
            "income": rng.normal(50, 10, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "plan": rng.choice(["basic", "pro"], n),
        }
    )
    labels = np.where((frame["age"] > 45) ^ (frame["city"] == "lyon"), "churn", "stay")
    return frame, labels


def _churn_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame, labels = _customers()
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "plan"]),
        ]
    )
    return Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(frame, labels), frame


def test_pipeline_serves_raw_mixed_inputs_with_its_preprocessing(tmp_path: Path) -> None:
    pipe, frame = _churn_pipeline()
    saved = save_model(pipe, tmp_path / "v1")
    assert saved.format == "sklearn"
    assert saved.config == {"serialization": "skops", "file": "model.skops"}
    assert saved.untrusted_types == ()
    assert saved.framework_packages[0] == "scikit-learn"

    runtime = _open(tmp_path / "v1", dict(saved.config))
    runtime.load()
    raw = frame.head(12)
    out = runtime.predict(raw)
    assert set(out) == {"predictions", "probabilities"}
    np.testing.assert_array_equal(out["predictions"], pipe.predict(raw))
    np.testing.assert_allclose(out["probabilities"], pipe.predict_proba(raw), rtol=0, atol=1e-12)
    meta = runtime.metadata()
    assert meta.platform == "sklearn_skops"
    assert meta.outputs == ("predictions", "probabilities")
    assert meta.extra["classes"] == ["churn", "stay"]


def test_pipeline_passes_conformance(tmp_path: Path) -> None:
    pipe, frame = _churn_pipeline()
    saved = save_sklearn(pipe, tmp_path)
    example = frame.head(6)
    expected = {"predictions": pipe.predict(example), "probabilities": pipe.predict_proba(example)}
    check_runtime(lambda: _open(tmp_path, dict(saved.config)), example, expected)


def test_arrays_and_column_dicts_get_the_fitted_column_names(tmp_path: Path) -> None:
    pipe, frame = _churn_pipeline()
    saved = save_sklearn(pipe, tmp_path)
    runtime = _open(tmp_path, dict(saved.config))
    runtime.load()
    want = pipe.predict(frame.head(5))
    as_array = frame.head(5).to_numpy(dtype=object)
    np.testing.assert_array_equal(runtime.predict(as_array)["predictions"], want)
    columns = {c: frame[c].head(5).to_numpy() for c in frame.columns}
    np.testing.assert_array_equal(runtime.predict(columns)["predictions"], want)


def test_regressor_fitted_on_arrays_takes_a_frame_without_warnings(tmp_path: Path) -> None:
    X, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(X, y)
    saved = save_model(model, tmp_path)
    frame = pd.DataFrame(X[:8], columns=[f"f{i}" for i in range(X.shape[1])])
    runtime = _open(tmp_path, dict(saved.config))
    runtime.load()
    out = runtime.predict(frame)
    assert list(out) == ["predictions"]
    np.testing.assert_array_equal(out["predictions"], model.predict(X[:8]))
    check_runtime(lambda: _open(tmp_path, dict(saved.config)), X[:5], model.predict(X[:5]))


def test_hist_gradient_boosting_needs_its_types_trusted(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with threadpool_limits(1):  # several OpenMP runtimes share two cores in this test process
        model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, y)
    saved = save_sklearn(model, tmp_path)
    assert saved.untrusted_types == (TREE_PREDICTOR,)

    for trusted in ((), ("numpy.dtype",)):
        runtime = _open(tmp_path, dict(saved.config), trusted_types=trusted)
        with pytest.raises(UntrustedTypesError) as info:
            runtime.load()
        assert info.value.types == [TREE_PREDICTOR]
        assert f"--trust-type {TREE_PREDICTOR}" in str(info.value)
        assert not runtime.loaded

    def factory() -> Runtime:
        return _open(tmp_path, dict(saved.config), trusted_types=saved.untrusted_types, threads=1)

    runtime = factory()
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))


def test_hgb_conformance(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True, as_frame=True)
    with threadpool_limits(1):  # several OpenMP runtimes share two cores in this test process
        model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(X, y)
    saved = save_sklearn(model, tmp_path)
    example = X.iloc[::15]
    expected = {
        "predictions": model.predict(example),
        "probabilities": model.predict_proba(example),
    }
    check_runtime(
        lambda: _open(tmp_path, dict(saved.config), trusted_types=saved.untrusted_types, threads=1),
        example,
        expected,
    )


@pytest.mark.parametrize(("serialization", "file"), [("pickle", "m.pkl"), ("joblib", "m.joblib")])
def test_pickle_needs_explicit_trust(tmp_path: Path, serialization: str, file: str) -> None:
    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    if serialization == "pickle":
        (tmp_path / file).write_bytes(pickle.dumps(model))
    else:
        joblib.dump(model, tmp_path / file)
    config = {"serialization": serialization, "file": file}

    with pytest.raises(UntrustedPickleError) as info:
        _open(tmp_path, config).load()
    assert "--trust-pickle" in str(info.value)
    assert "arbitrary code" in str(info.value)

    runtime = _open(tmp_path, config, trust_pickle=True)
    runtime.load()
    assert runtime.metadata().platform == f"sklearn_{serialization}"
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], model.predict(X))


class _Payload:
    """Unpickling this creates a directory: a stand-in for arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle", "joblib"])
def test_malicious_pickle_is_never_executed_without_trust(
    tmp_path: Path, serialization: str
) -> None:
    marker = tmp_path / "pwned"
    probe = tmp_path / "probe"
    pickle.loads(pickle.dumps(_Payload(probe)))  # proves the payload does run when unpickled
    assert probe.exists()

    (tmp_path / "model.bin").write_bytes(pickle.dumps(_Payload(marker)))
    runtime = _open(tmp_path, {"serialization": serialization, "file": "model.bin"})
    with pytest.raises(UntrustedPickleError):
        runtime.load()
    assert not marker.exists()
    with pytest.raises(PredictionError):
        runtime.predict(np.zeros((1, 4)))
    assert not marker.exists()


def test_load_errors_name_the_file_and_the_next_step(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match=r"model\.skops"):
        _open(tmp_path, {}).load()
    (tmp_path / "model.skops").write_bytes(b"not a zip file")
    with pytest.raises(ModelLoadError, match="skops"):
        _open(tmp_path, {}).load()
    with pytest.raises(InvalidInputError, match="serialization"):
        _open(tmp_path, {"serialization": "dill"}).load()


def test_prediction_failures_are_prediction_errors(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    saved = save_sklearn(LogisticRegression(max_iter=500).fit(X, y), tmp_path)
    runtime = _open(tmp_path, dict(saved.config))
    with pytest.raises(PredictionError, match="not loaded"):
        runtime.predict(X)
    runtime.load()
    with pytest.raises(PredictionError, match="failed to predict"):
        runtime.predict(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError):
        runtime.predict("four numbers")


@pytest.mark.parametrize("kind", ["pipeline", "hgb"])
def test_the_same_model_saves_to_the_same_bytes(tmp_path: Path, kind: str) -> None:
    def fit() -> Any:
        if kind == "pipeline":
            return _churn_pipeline()[0]
        X, y = load_iris(return_X_y=True, as_frame=True)
        with threadpool_limits(1):
            return HistGradientBoostingClassifier(max_iter=5, random_state=0).fit(X, y)

    first, second = fit(), fit()  # equal models, distinct objects (skops names files by id())
    saved = save_sklearn(first, tmp_path / "a")
    save_sklearn(second, tmp_path / "b")
    data = (tmp_path / "a" / "model.skops").read_bytes()
    assert data == (tmp_path / "b" / "model.skops").read_bytes()

    runtime = _open(tmp_path / "a", dict(saved.config), trusted_types=saved.untrusted_types)
    runtime.load()
    X = _customers()[0] if kind == "pipeline" else load_iris(return_X_y=True, as_frame=True)[0]
    np.testing.assert_array_equal(runtime.predict(X)["probabilities"], first.predict_proba(X))


@pytest.mark.parametrize(
    "make",
    [
        lambda: LogisticRegression(max_iter=500),
        lambda: HistGradientBoostingClassifier(max_iter=10),
        lambda: RandomForestClassifier(n_estimators=5, random_state=0),
        lambda: DecisionTreeClassifier(max_depth=3),
        GaussianNB,
    ],
)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_single_call_classifiers_answer_exactly_like_predict(
    make: Any, n_classes: int, tmp_path: Path
) -> None:
    """One predict_proba call gives both outputs; labels must equal predict() exactly,
    string labels and pipelines included."""
    rng = np.random.default_rng(n_classes)
    x = rng.normal(size=(300, 4))
    y = np.array(["cat", "dog", "eel"])[(x[:, 0] > 0).astype(int) + (x[:, 1] > 1) * (n_classes - 2)]
    model = make_pipeline(StandardScaler(), make()).fit(x, y)
    result = save_model(model, tmp_path)
    runtime = open_runtime(
        LoadContext(tmp_path, "sklearn", result.config, trusted_types=result.untrusted_types)
    )
    runtime.load()
    out = runtime.predict(x)
    np.testing.assert_array_equal(out["predictions"], model.predict(x))
    assert out["predictions"].dtype == model.predict(x).dtype
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(x))
