from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from modelport.core.errors import InvalidInputError, UnsupportedFormatError
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.loaders import open_runtime, save_model
from modelport.runtime.onnx import save_onnx
from modelport.testing import check_runtime


def _open(path: Path, **kw: Any) -> Runtime:
    return open_runtime(LoadContext(path=path, format="onnx", config={"file": "model.onnx"}, **kw))


def _direct(path: Path, feeds: dict[str, np.ndarray]) -> list[Any]:
    """What onnxruntime itself answers for the same file and inputs."""
    session = ort.InferenceSession(str(path / "model.onnx"), providers=["CPUExecutionProvider"])
    return list(session.run(None, feeds))


def _iris_model(zipmap: bool) -> tuple[LogisticRegression, onnx.ModelProto, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    X = X.astype(np.float32)
    model = LogisticRegression(max_iter=500).fit(X, y)
    proto = to_onnx(model, X[:1], options={"zipmap": zipmap}, target_opset=17)
    return model, proto, X


def test_single_input_model_matches_onnxruntime_and_sklearn(tmp_path: Path) -> None:
    model, proto, X = _iris_model(zipmap=False)
    saved = save_model(proto, tmp_path)
    assert saved.format == "onnx"
    assert saved.config == {"file": "model.onnx"}
    runtime = _open(tmp_path, threads=1)
    runtime.load()
    out = runtime.predict(X[:20])
    assert list(out) == ["label", "probabilities"]
    label, proba = _direct(tmp_path, {"X": X[:20]})
    np.testing.assert_array_equal(out["label"], label)
    np.testing.assert_array_equal(out["probabilities"], proba)
    np.testing.assert_array_equal(out["label"], model.predict(X[:20]))
    np.testing.assert_allclose(out["probabilities"], model.predict_proba(X[:20]), atol=1e-6)
    meta = runtime.metadata()
    assert meta.platform == "onnx_onnxv1"
    assert meta.outputs == ("label", "probabilities")
    assert meta.can_batch is True
    assert meta.extra["inputs"] == [{"name": "X", "type": "tensor(float)", "shape": [None, 4]}]


def test_frames_and_float64_arrays_are_cast_to_the_input_type(tmp_path: Path) -> None:
    _, proto, X = _iris_model(zipmap=False)
    save_onnx(proto.SerializeToString(), tmp_path)
    runtime = _open(tmp_path)
    runtime.load()
    want = _direct(tmp_path, {"X": X[:5]})[1]
    np.testing.assert_array_equal(runtime.predict(X[:5].astype(np.float64))["probabilities"], want)
    frame = pd.DataFrame(X[:5].astype(np.float64), columns=["a", "b", "c", "d"])
    np.testing.assert_array_equal(runtime.predict(frame)["probabilities"], want)
    np.testing.assert_array_equal(runtime.predict({"X": X[:5]})["probabilities"], want)


def test_zipmap_output_becomes_an_array_in_class_order(tmp_path: Path) -> None:
    model, proto, X = _iris_model(zipmap=True)
    save_onnx(proto, tmp_path)
    runtime = _open(tmp_path)
    runtime.load()
    out = runtime.predict(X[:7])
    direct = _direct(tmp_path, {"X": X[:7]})[1]
    assert isinstance(direct, list)
    want = np.asarray([[row[c] for c in (0, 1, 2)] for row in direct], dtype=np.float32)
    np.testing.assert_array_equal(out["output_probability"], want)
    np.testing.assert_allclose(out["output_probability"], model.predict_proba(X[:7]), atol=1e-6)
    assert runtime.metadata().extra["zipmap_classes"] == {"output_probability": [0, 1, 2]}
    check_runtime(lambda: _open(tmp_path), X[:7], out)


def _mixed_pipeline() -> tuple[onnx.ModelProto, pd.DataFrame]:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "income": rng.normal(50, 10, 60).astype(np.float32),
            "city": rng.choice(["paris", "lyon", "nice"], 60).astype(object),
        }
    )
    labels = (frame["income"] > 50).astype(int) ^ (frame["city"] == "lyon").astype(int)
    prep = ColumnTransformer(
        [("num", StandardScaler(), ["income"]), ("cat", OneHotEncoder(), ["city"])]
    )
    pipe = Pipeline([("prep", prep), ("clf", LogisticRegression())]).fit(frame, labels)
    types = [("income", FloatTensorType([None, 1])), ("city", StringTensorType([None, 1]))]
    proto = to_onnx(pipe, initial_types=types, options={"zipmap": False}, target_opset=17)
    return proto, frame


def test_multi_input_model_takes_a_dict_or_a_frame(tmp_path: Path) -> None:
    proto, frame = _mixed_pipeline()
    save_onnx(proto, tmp_path)
    runtime = _open(tmp_path)
    runtime.load()
    feeds = {
        "income": frame[["income"]].to_numpy(),
        "city": frame[["city"]].to_numpy().astype(str),
    }
    label, proba = _direct(tmp_path, feeds)
    from_dict = runtime.predict({"income": frame["income"].to_numpy(), "city": frame["city"]})
    np.testing.assert_array_equal(from_dict["probabilities"], proba)
    from_frame = runtime.predict(frame)
    np.testing.assert_array_equal(from_frame["label"], label)
    np.testing.assert_array_equal(from_frame["probabilities"], proba)
    expected = {"label": label[:8], "probabilities": proba[:8]}
    check_runtime(lambda: _open(tmp_path), frame.head(8), expected)

    with pytest.raises(InvalidInputError, match="missing \\['city'\\]"):
        runtime.predict({"income": frame["income"].to_numpy()})
    with pytest.raises(InvalidInputError, match="send a dict"):
        runtime.predict(np.zeros((2, 2)))


def _fixed_batch_graph() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "g", [x], [y], [two])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_fixed_batch_dimension_means_no_batching(tmp_path: Path) -> None:
    save_onnx(_fixed_batch_graph(), tmp_path)
    runtime = _open(tmp_path)
    runtime.load()
    assert runtime.metadata().can_batch is False
    x = np.asarray([[1.0, 2.0, 3.0]], dtype=np.float32)
    check_runtime(lambda: _open(tmp_path), x, {"y": x * 2})


def test_saving_refuses_what_is_not_onnx(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"(not an ONNX model|not valid)"):
        save_onnx(b"\x00garbage\xff" * 10, tmp_path)
    with pytest.raises(UnsupportedFormatError, match="ModelProto"):
        save_onnx({"not": "a model"}, tmp_path)
    assert not (tmp_path / "model.onnx").exists()
