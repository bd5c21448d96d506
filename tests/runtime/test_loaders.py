from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pytest
import xgboost as xgb
import yaml
from skl2onnx import to_onnx
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.core.errors import UnsupportedFormatError, UntrustedPickleError
from modelport.runtime import loaders
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import (
    FORMATS,
    detect_object_format,
    detect_path_format,
    framework_packages,
    open_runtime,
    save_model,
)


class _Echo:
    def predict(self, inputs: Any) -> Any:
        return np.asarray(inputs)


def _iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X.astype(np.float32), y


def _models() -> dict[str, Any]:
    X, y = _iris()
    return {
        "sklearn": make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y),
        "onnx": to_onnx(LogisticRegression(max_iter=500).fit(X, y), X[:1], target_opset=17),
        "xgboost": xgb.XGBClassifier(n_jobs=1, n_estimators=3).fit(X, y),
        "lightgbm": lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1).fit(X, y),
        "python": _Echo(),
    }


def test_formats_cover_every_runtime() -> None:
    assert FORMATS == ("sklearn", "onnx", "xgboost", "lightgbm", "python", "mlflow")
    for format in FORMATS:
        runtime = open_runtime(LoadContext(path=Path("unused"), format=format))
        assert isinstance(runtime, Runtime)
        assert runtime.format == format
        assert runtime.loaded is False


def test_public_names_exist() -> None:
    for name in loaders.__all__:
        assert hasattr(loaders, name)


def test_unknown_format_lists_the_supported_ones() -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        open_runtime(LoadContext(path=Path("x"), format="pytorch"))
    for format in FORMATS:
        assert format in str(info.value)
    with pytest.raises(UnsupportedFormatError, match="sklearn, onnx"):
        framework_packages("tensorflow", {})


def test_objects_are_recognised_and_saved_in_their_format(tmp_path: Path) -> None:
    X, _ = _iris()
    for format, model in _models().items():
        assert detect_object_format(model) == format
        saved = save_model(model, tmp_path / format)
        assert saved.format == format
        assert saved.framework_packages == framework_packages(format, saved.config)
        runtime = open_runtime(
            LoadContext(
                path=tmp_path / format,
                format=format,
                config=saved.config,
                trusted_types=saved.untrusted_types,
            )
        )
        runtime.load()
        assert runtime.predict(X[:5]) is not None
        runtime.unload()
    assert detect_object_format(_Echo) == "python"


def test_unrecognised_objects_name_the_formats(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        save_model({"weights": [1, 2]}, tmp_path)
    assert "builtins.dict" in str(info.value)
    assert "sklearn, onnx, xgboost, lightgbm, python, mlflow" in str(info.value)
    with pytest.raises(UnsupportedFormatError, match="does not write"):
        save_model(_Echo(), tmp_path, format="mlflow")
    with pytest.raises(UnsupportedFormatError, match="unknown model format"):
        save_model(_Echo(), tmp_path, format="keras")


def test_saved_files_are_detected_as_their_format(tmp_path: Path) -> None:
    models = _models()
    xgb_model, lgb_model = models["xgboost"], models["lightgbm"]
    save_model(models["sklearn"], tmp_path / "sk")
    save_model(models["onnx"], tmp_path / "ox")
    save_model(xgb_model, tmp_path / "xu")
    save_model(xgb_model, tmp_path / "xj", file_format="json")
    save_model(lgb_model, tmp_path / "lg")
    save_model(models["python"], tmp_path / "py")
    assert detect_path_format(tmp_path / "sk" / "model.skops") == (
        "sklearn",
        {"serialization": "skops", "file": "model.skops"},
    )
    assert detect_path_format(tmp_path / "ox" / "model.onnx") == ("onnx", {"file": "model.onnx"})
    assert detect_path_format(tmp_path / "xu" / "model.ubj") == ("xgboost", {"file": "model.ubj"})
    assert detect_path_format(tmp_path / "xj" / "model.json") == (
        "xgboost",
        {"file": "model.json"},
    )
    assert detect_path_format(tmp_path / "lg" / "model.txt") == ("lightgbm", {"file": "model.txt"})
    format, config = detect_path_format(tmp_path / "py")
    assert format == "python"
    assert config["entry"] == "test_loaders.py:_Echo"


def test_detected_lightgbm_file_loads_and_matches(tmp_path: Path) -> None:
    X, y = _iris()
    booster = lgb.train({"verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), 3)
    booster.save_model(str(tmp_path / "churn.lgbm"))
    format, config = detect_path_format(tmp_path / "churn.lgbm")
    assert (format, config) == ("lightgbm", {"file": "churn.lgbm"})
    runtime = open_runtime(LoadContext(path=tmp_path, format=format, config=config))
    runtime.load()
    np.testing.assert_array_equal(runtime.predict(X)["predictions"], booster.predict(X))


@pytest.mark.parametrize(
    ("name", "serialization"),
    [("m.pkl", "pickle"), ("m.pickle", "pickle"), ("m.joblib", "joblib")],
)
def test_pickles_are_detected_but_still_need_trust(
    tmp_path: Path, name: str, serialization: str
) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return (os.mkdir, (str(marker),))

    (tmp_path / name).write_bytes(pickle.dumps(Payload()))
    format, config = detect_path_format(tmp_path / name)
    assert (format, config) == ("sklearn", {"serialization": serialization, "file": name})
    with pytest.raises(UntrustedPickleError):
        open_runtime(LoadContext(path=tmp_path, format=format, config=config)).load()
    assert not marker.exists()


def test_mlflow_directories_are_detected(tmp_path: Path) -> None:
    mlmodel = {"flavors": {"onnx": {"data": "model.onnx"}, "python_function": {}}}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    format, config = detect_path_format(tmp_path)
    assert format == "mlflow"
    assert config == {"flavor": "onnx", "runtime": "onnx", "runtime_config": {"file": "model.onnx"}}
    assert framework_packages(format, config)[0] == "onnxruntime"
    mlmodel = {"flavors": {"pytorch": {}, "python_function": {}}}
    (tmp_path / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    assert detect_path_format(tmp_path) == (
        "mlflow",
        {"flavor": "pytorch", "runtime": "pyfunc", "runtime_config": {}},
    )
    assert framework_packages("mlflow", {"runtime": "pyfunc"}) == ("mlflow",)


def test_unknown_files_name_the_file_and_the_formats(tmp_path: Path) -> None:
    unknown = [
        ("notes.txt", b"just some notes\n"),
        ("config.json", json.dumps({"layers": 3}).encode()),
        ("weights.ubj", b"\x00\x01"),
        ("model.h5", b"\x89HDF\r\n"),
    ]
    for name, data in unknown:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnsupportedFormatError) as info:
            detect_path_format(tmp_path / name)
        assert name in str(info.value)
        assert "sklearn, onnx, xgboost, lightgbm, python, mlflow" in str(info.value)
    (tmp_path / "empty_dir").mkdir()
    with pytest.raises(UnsupportedFormatError, match="MLmodel"):
        detect_path_format(tmp_path / "empty_dir")
    with pytest.raises(UnsupportedFormatError, match="neither"):
        detect_path_format(tmp_path / "missing.onnx")


def test_framework_packages_put_the_framework_first() -> None:
    assert framework_packages("sklearn", {}) == ("scikit-learn", "skops", "numpy", "scipy")
    assert framework_packages("sklearn", {"serialization": "joblib"})[:2] == (
        "scikit-learn",
        "joblib",
    )
    assert framework_packages("onnx", {})[0] == "onnxruntime"
    assert framework_packages("xgboost", {})[0] == "xgboost"
    assert framework_packages("lightgbm", {})[0] == "lightgbm"
    assert framework_packages("python", {}) == ()
    sklearn_in_mlflow = {"runtime": "sklearn", "runtime_config": {"serialization": "cloudpickle"}}
    assert "cloudpickle" in framework_packages("mlflow", sklearn_in_mlflow)
