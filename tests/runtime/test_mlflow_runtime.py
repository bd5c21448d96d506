"""MLflow model directories written by hand as MLflow 3 writes them; MLflow is not installed."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import skops.io as sio
import xgboost as xgb
import yaml
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from modelport.core.errors import (
    ArtifactNotFoundError,
    MissingExtraError,
    ModelLoadError,
    UnsupportedFormatError,
    UntrustedPickleError,
    UntrustedTypesError,
)
from modelport.core.signature import FieldSpec, Signature
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import open_runtime
from modelport.runtime.mlflow import mlflow_signature, read_mlmodel
from modelport.testing import check_runtime

TREE_PREDICTOR = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
LGBM_TYPES = (
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
)
IRIS_COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def _signature_yaml() -> dict[str, Any]:
    inputs = [{"type": "double", "name": c, "required": True} for c in IRIS_COLUMNS]
    outputs = [{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs), "params": None}


def _write_mlflow_dir(path: Path, flavor: str, conf: dict[str, Any], data: str) -> Path:
    """MLmodel + environment files as MLflow 3 lays them out."""
    mlmodel = {
        "artifact_path": None,
        "flavors": {
            "python_function": {
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": f"mlflow.{flavor}",
                "data": data,
                "python_version": "3.11.7",
            },
            flavor: {"code": None, **conf},
        },
        "mlflow_version": "3.4.0",
        "model_id": "m-0123456789abcdef",
        "model_size_bytes": 1234,
        "model_uuid": "0123456789abcdef",
        "signature": _signature_yaml(),
        "utc_time_created": "2026-01-01 00:00:00.000000",
    }
    (path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    (path / "conda.yaml").write_text("name: mlflow-env\ndependencies: [python=3.11.7]\n")
    (path / "python_env.yaml").write_text("python: 3.11.7\n")
    (path / "requirements.txt").write_text("mlflow==3.4.0\n")
    return path


def _open(path: Path, **kw: Any) -> Runtime:
    return open_runtime(LoadContext(path=path, format="mlflow", **kw))


def _iris() -> tuple[Any, Any]:
    return load_iris(return_X_y=True, as_frame=True)


def test_sklearn_skops_flavor(tmp_path: Path) -> None:
    X, y = _iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    sio.dump(model, tmp_path / "model.skops")
    conf = {
        "pickled_model": "model.skops",
        "serialization_format": "skops",
        "sklearn_version": "1.9",
    }
    _write_mlflow_dir(tmp_path, "sklearn", conf, "model.skops")
    runtime = _open(tmp_path)
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))
    meta = runtime.metadata()
    assert meta.format == "mlflow"
    assert meta.platform == "mlflow_sklearn"
    assert meta.extra["runtime"] == "sklearn"
    assert meta.extra["mlflow_version"] == "3.4.0"
    assert meta.extra["signature"]["kind"] == "columns"
    assert [f["name"] for f in meta.extra["signature"]["inputs"]] == IRIS_COLUMNS
    example = X.iloc[::30]
    expected = {
        "predictions": model.predict(example),
        "probabilities": model.predict_proba(example),
    }
    check_runtime(lambda: _open(tmp_path), example, expected)


def test_skops_types_listed_in_mlmodel_are_not_trusted(tmp_path: Path) -> None:
    X, y = _iris()
    with threadpool_limits(1):  # several OpenMP runtimes share two cores in this test process
        model = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    sio.dump(model, tmp_path / "model.skops")
    conf = {
        "pickled_model": "model.skops",
        "serialization_format": "skops",
        "skops_trusted_types": [TREE_PREDICTOR],
    }
    _write_mlflow_dir(tmp_path, "sklearn", conf, "model.skops")
    with pytest.raises(UntrustedTypesError) as info:
        _open(tmp_path).load()
    assert info.value.types == [TREE_PREDICTOR]
    runtime = _open(tmp_path, trusted_types=(TREE_PREDICTOR,), threads=1)
    runtime.load()
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], model.predict(X))


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_cloudpickle_flavor_is_refused_without_trust_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    conf = {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}
    _write_mlflow_dir(tmp_path, "sklearn", conf, "model.pkl")
    with pytest.raises(UntrustedPickleError, match="--trust-pickle"):
        _open(tmp_path).load()
    assert not marker.exists()


def test_cloudpickle_flavor_loads_when_trusted(tmp_path: Path) -> None:
    X, y = _iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))
    conf = {"pickled_model": "model.pkl", "serialization_format": "cloudpickle"}
    _write_mlflow_dir(tmp_path, "sklearn", conf, "model.pkl")
    runtime = _open(tmp_path, trust_pickle=True)
    runtime.load()
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], model.predict(X))


def test_xgboost_flavor_with_a_sklearn_wrapper(tmp_path: Path) -> None:
    X, y = _iris()
    model = xgb.XGBClassifier(n_jobs=1, n_estimators=5, max_depth=2).fit(X, y)
    model.save_model(str(tmp_path / "model.ubj"))
    (tmp_path / "model.ubj").rename(tmp_path / "model.xgb")  # MLflow's default name, UBJSON inside
    conf = {
        "data": "model.xgb",
        "model_class": "xgboost.sklearn.XGBClassifier",
        "model_format": "xgb",
        "xgb_version": xgb.__version__,
    }
    _write_mlflow_dir(tmp_path, "xgboost", conf, "model.xgb")
    runtime = _open(tmp_path)
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))
    assert runtime.metadata().platform == "mlflow_xgboost"
    check_runtime(lambda: _open(tmp_path), X.iloc[::30])


def test_xgboost_flavor_with_a_booster(tmp_path: Path) -> None:
    X, y = _iris()
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "nthread": 1}, xgb.DMatrix(X, y), 3
    )
    booster.save_model(str(tmp_path / "model.json"))
    conf = {"data": "model.json", "model_class": "xgboost.core.Booster", "model_format": "json"}
    _write_mlflow_dir(tmp_path, "xgboost", conf, "model.json")
    runtime = _open(tmp_path)
    runtime.load()
    want = booster.predict(xgb.DMatrix(X))
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], want)


def test_lightgbm_flavor_with_a_booster(tmp_path: Path) -> None:
    X, y = _iris()
    booster = lgb.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
        lgb.Dataset(X, y),
        5,
    )
    booster.save_model(str(tmp_path / "model.lgb"))
    conf = {"data": "model.lgb", "model_class": "lightgbm.basic.Booster", "lgb_version": "4.7.0"}
    _write_mlflow_dir(tmp_path, "lightgbm", conf, "model.lgb")
    runtime = _open(tmp_path)
    runtime.load()
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], booster.predict(X))
    assert runtime.metadata().extra["runtime"] == "lightgbm"
    check_runtime(lambda: _open(tmp_path), X.iloc[::30], booster.predict(X.iloc[::30]))


def test_lightgbm_flavor_with_a_skops_wrapper(tmp_path: Path) -> None:
    X, y = _iris()
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1, n_jobs=1).fit(X, y)
    sio.dump(model, tmp_path / "model.skops")
    conf = {
        "data": "model.skops",
        "model_class": "lightgbm.sklearn.LGBMClassifier",
        "serialization_format": "skops",
        "skops_trusted_types": list(LGBM_TYPES),
    }
    _write_mlflow_dir(tmp_path, "lightgbm", conf, "model.skops")
    with pytest.raises(UntrustedTypesError):
        _open(tmp_path).load()
    runtime = _open(tmp_path, trusted_types=LGBM_TYPES)
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["predictions"], model.predict(X))
    np.testing.assert_array_equal(out["probabilities"], model.predict_proba(X))


def test_onnx_flavor(tmp_path: Path) -> None:
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(X, y)
    proto = to_onnx(model, X[:1], options={"zipmap": False}, target_opset=17)
    (tmp_path / "model.onnx").write_bytes(proto.SerializeToString())
    conf = {"data": "model.onnx", "onnx_version": "1.17.0", "providers": ["CPUExecutionProvider"]}
    _write_mlflow_dir(tmp_path, "onnx", conf, "model.onnx")
    runtime = _open(tmp_path)
    runtime.load()
    out = runtime.predict(X)
    np.testing.assert_array_equal(out["label"], model.predict(X))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X), atol=1e-6)
    check_runtime(lambda: _open(tmp_path), X[::30])


@pytest.mark.parametrize("flavor", ["pytorch", "python_function"])
def test_other_flavors_need_mlflow_and_say_how_to_install_it(tmp_path: Path, flavor: str) -> None:
    mlmodel = {"flavors": {"python_function": {"loader_module": "mlflow.pyfunc.model"}}}
    if flavor != "python_function":
        mlmodel["flavors"][flavor] = {"model_data": "data", "pytorch_version": "2.5.0"}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    runtime = _open(tmp_path, trust_pickle=True)
    with pytest.raises(MissingExtraError) as info:
        runtime.load()
    assert "pip install 'modelport[mlflow]'" in str(info.value)
    assert repr(flavor) in str(info.value)
    assert "mlflow.pyfunc" in str(info.value)
    assert info.value.extra == "mlflow"
    assert not runtime.loaded


def test_unknown_model_classes_and_serializations_are_refused(tmp_path: Path) -> None:
    _write_mlflow_dir(tmp_path, "xgboost", {"data": "m", "model_class": "evil.Thing"}, "m")
    with pytest.raises(UnsupportedFormatError, match=r"evil\.Thing"):
        _open(tmp_path).load()
    _write_mlflow_dir(
        tmp_path, "sklearn", {"pickled_model": "m", "serialization_format": "dill"}, "m"
    )
    with pytest.raises(UnsupportedFormatError, match="dill"):
        _open(tmp_path).load()


def test_read_mlmodel_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactNotFoundError, match="MLmodel"):
        read_mlmodel(tmp_path)
    (tmp_path / "MLmodel").write_text("flavors: [unclosed\n")
    with pytest.raises(ModelLoadError, match="YAML"):
        read_mlmodel(tmp_path)
    (tmp_path / "MLmodel").write_text("mlflow_version: 3.4.0\n")
    with pytest.raises(ModelLoadError, match="no flavors"):
        read_mlmodel(tmp_path / "MLmodel")


def test_mlflow_signatures_convert_to_core_signatures() -> None:
    assert mlflow_signature({"flavors": {}}) is None
    columns = mlflow_signature({"signature": _signature_yaml()})
    assert columns == Signature(
        kind="columns",
        inputs=tuple(FieldSpec(name=c, dtype="float64") for c in IRIS_COLUMNS),
        outputs=(FieldSpec(name="output", dtype="int64", shape=(-1,)),),
    )
    tensors = [
        {"type": "tensor", "name": "image", "tensor-spec": {"dtype": "float32", "shape": [-1, 28]}},
        {"type": "tensor", "tensor-spec": {"dtype": "object", "shape": [-1]}, "required": False},
    ]
    sig = mlflow_signature({"signature": {"inputs": json.dumps(tensors)}})
    assert sig is not None
    assert sig.kind == "tensors"
    assert sig.inputs == (
        FieldSpec(name="image", dtype="float32", shape=(-1, 28)),
        FieldSpec(name="input_1", dtype="string", shape=(-1,), optional=True),
    )
    mixed = [
        {"type": "long", "name": "id"},
        {"type": "string", "name": "note", "required": False},
        {"type": "boolean", "name": "flag"},
    ]
    sig = mlflow_signature({"signature": {"inputs": mixed}})
    assert sig is not None
    assert [(f.name, f.dtype, f.optional) for f in sig.inputs] == [
        ("id", "int64", False),
        ("note", "string", True),
        ("flag", "bool", False),
    ]
    nested = [{"type": "array", "items": {"type": "double"}, "name": "xs"}]
    assert mlflow_signature({"signature": {"inputs": json.dumps(nested)}}) is None
    with pytest.raises(ModelLoadError, match="signature"):
        mlflow_signature({"signature": {"inputs": "[not json"}})
