"""The MLflow scoring protocol (``mlflow models serve``) against the real app in process."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from tests.serving.conftest import ClientFactory, wait_ready
from tests.serving.routes_fixtures import churn, churn_model, customers
from tests.serving.slow_model import EchoModel

from modelport._version import __version__
from modelport.api.registry import Registry
from modelport.core.errors import InvalidInputError, UnsupportedMediaTypeError
from modelport.core.model import ModelVersion
from modelport.runtime.base import Runtime
from modelport.serving.mlflow_codec import (
    frame_from_split,
    media_kind,
    parse_request,
    predictions,
)

SECRET = "SECRET-VALUE-123"
__all__ = ["churn", "churn_model", "customers"]  # fixtures used by name


def _bodies(rows: pd.DataFrame) -> dict[str, Any]:
    """The same rows in every JSON format MLflow accepts."""
    columns = {c: rows[c].tolist() for c in rows.columns}
    return {
        "dataframe_split": {"dataframe_split": rows.to_dict(orient="split", index=False)},
        "dataframe_split_index": {"dataframe_split": rows.to_dict(orient="split")},
        "dataframe_records": {"dataframe_records": rows.to_dict(orient="records")},
        "instances_rows": {"instances": rows.to_numpy().tolist()},
        "instances_records": {"instances": rows.to_dict(orient="records")},
        "inputs_columns": {"inputs": columns},
        "inputs_matrix": {"inputs": rows.to_numpy().tolist()},
        "with_params": {"inputs": columns, "params": {"threshold": 0.3}},
    }


def test_every_format_and_path_matches_sklearn(
    models: Registry, serve: ClientFactory, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    rows = frame.sample(9, random_state=1)
    expected = classifier.predict(rows).tolist()
    with serve("clf@champion") as client:
        for path in (
            "/invocations",
            "/models/clf/invocations",
            "/models/clf/versions/1/invocations",
        ):
            for kind, body in _bodies(rows).items():
                answer = client.post(path, json=body)
                assert answer.status_code == 200, (path, kind, answer.text)
                assert answer.headers["content-type"] == "application/json"
                assert answer.json() == {"predictions": expected}, (path, kind)
        for csv in (rows.to_csv(index=False), rows.to_csv()):  # with and without the index column
            answer = client.post(
                "/invocations", content=csv, headers={"Content-Type": "text/csv; charset=utf-8"}
            )
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"predictions": expected}
        # column order does not matter; the signature decides it
        shuffled = rows[["f3", "f1", "f0", "f2"]]
        body = {"dataframe_split": shuffled.to_dict(orient="split", index=False)}
        assert client.post("/invocations", json=body).json() == {"predictions": expected}


def test_content_types(models: Registry, serve: ClientFactory, frame: pd.DataFrame) -> None:
    body = b'{"dataframe_records": [{"f0": 1, "f1": 2, "f2": 3, "f3": 4}]}'
    with serve("clf@champion") as client:
        for content_type in ("application/json; charset=UTF-8", 'application/json;charset="utf-8"'):
            answer = client.post(
                "/invocations", content=body, headers={"Content-Type": content_type}
            )
            assert answer.status_code == 200, (content_type, answer.text)
        for content_type in (
            "text/plain",
            "application/x-python-pickle",
            "application/octet-stream",
            "application/json; charset=latin-1",
            "application/json; format=pandas-split",
            "",
        ):
            answer = client.post(
                "/invocations", content=body, headers={"Content-Type": content_type}
            )
            assert answer.status_code == 415, (content_type, answer.text)
            assert answer.json()["error_code"] == "BAD_REQUEST"
        pickle = client.post(
            "/invocations",
            content=b"\x80\x04",
            headers={"Content-Type": "application/python-pickle"},
        )
        assert pickle.status_code == 415
        assert "never accepted" in pickle.json()["message"]


@pytest.mark.parametrize(
    ("body", "code", "needle"),
    [
        ({}, "BAD_REQUEST", "exactly one of"),
        ({"dataframe_split": {}, "inputs": [[1, 2, 3, 4]]}, "BAD_REQUEST", "exactly one of"),
        ([{"f0": SECRET}], "BAD_REQUEST", "top-level list"),
        ({"columns": ["f0"], "data": [[1]]}, "BAD_REQUEST", "exactly one of"),
        ({"inputs": [[1, 2, 3, 4]], "params": [SECRET]}, "BAD_REQUEST", "'params'"),
        (
            {"dataframe_split": {"columns": ["f0", "f1", "f2", "x"], "data": [[1, 2, 3, SECRET]]}},
            "INVALID_PARAMETER_VALUE",
            "'f3'",
        ),
        (
            {"dataframe_split": {"columns": ["f0", "f1", "f2", "f3"], "data": [[1, 2, 3]]}},
            "BAD_REQUEST",
            "4 values",
        ),
        (
            {"dataframe_split": {"columns": ["f0", "f1", "f2", "f3"], "data": [[1, 2, 3, SECRET]]}},
            "INVALID_PARAMETER_VALUE",
            "'f3'",
        ),
        (
            {"dataframe_records": [{"f0": 1, "f1": 2, "f2": 3, "f3": SECRET}]},
            "INVALID_PARAMETER_VALUE",
            "'f3'",
        ),
        ({"instances": [[1, 2, 3], [SECRET, 2, 3, 4]]}, "BAD_REQUEST", "rectangular"),
        ({"inputs": [[1, 2, 3]]}, "INVALID_PARAMETER_VALUE", "rows of 4 values"),
        ({"inputs": {"f0": [{"x": SECRET}]}}, "BAD_REQUEST", "numbers, booleans or strings"),
        ({"dataframe_split": {"data": [], "columns": []}}, "BAD_REQUEST", "non-empty"),
    ],
)
def test_bad_requests_are_400_and_never_echo_values(
    models: Registry, serve: ClientFactory, body: Any, code: str, needle: str
) -> None:
    with serve("clf@champion") as client:
        answer = client.post("/models/clf/invocations", json=body)
        assert answer.status_code == 400, answer.text
        error = answer.json()
        assert set(error) == {"error_code", "message"}
        assert error["error_code"] == code
        assert needle in error["message"]
        assert "SECRET" not in answer.text


def test_bad_csv_and_json_are_400(models: Registry, serve: ClientFactory) -> None:
    with serve("clf@champion") as client:
        for content, content_type in (
            (f"f0,f1,f2,f3\n1,2,3,{SECRET}\n", "text/csv"),
            ("f0,f1,f2,f3\n", "text/csv"),
            ("", "text/csv"),
            ('{"inputs": [' + SECRET, "application/json"),
            (b"\xff\xfe", "text/csv"),
        ):
            answer = client.post(
                "/invocations", content=content, headers={"Content-Type": content_type}
            )
            assert answer.status_code == 400, (content, answer.text)
            assert answer.json()["error_code"] == "BAD_REQUEST"
            assert "SECRET" not in answer.text


def test_several_models_need_the_model_path(
    models: Registry,
    serve: ClientFactory,
    regressor: LinearRegression,
    classifier: Pipeline,
    frame: pd.DataFrame,
) -> None:
    rows = frame.head(5)
    matrix = rows.to_numpy().astype(np.float32)
    with serve("clf@champion", "reg") as client:
        answer = client.post("/invocations", json={"inputs": matrix.tolist()})
        assert answer.status_code == 400
        assert answer.json()["error_code"] == "BAD_REQUEST"
        assert "/models/{name}/invocations" in answer.json()["message"]
        for body in ({"inputs": matrix.tolist()}, {"instances": matrix.tolist()}):
            reg = client.post("/models/reg/invocations", json=body)
            assert reg.status_code == 200, reg.text
            np.testing.assert_allclose(
                reg.json()["predictions"], regressor.predict(matrix), rtol=1e-5
            )
        split = {"dataframe_split": {"data": matrix.tolist()}}  # a tensor model takes the matrix
        reg = client.post("/models/reg/invocations", json=split)
        np.testing.assert_allclose(reg.json()["predictions"], regressor.predict(matrix), rtol=1e-5)
        clf = client.post(
            "/models/clf/invocations", json={"dataframe_records": rows.to_dict(orient="records")}
        )
        assert clf.json() == {"predictions": classifier.predict(rows).tolist()}
        missing = client.post("/models/nope/invocations", json={"inputs": [[1.0]]})
        assert missing.status_code == 404
        assert missing.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"
        version = client.post("/models/reg/versions/9/invocations", json={"inputs": [[1.0]]})
        assert version.status_code == 404
        bad = client.post("/models/reg/versions/x/invocations", json={"inputs": [[1.0]]})
        assert bad.status_code == 400


def test_outputs_without_predictions_are_records(registry: Registry, serve: ClientFactory) -> None:
    registry.register(EchoModel(), name="echo", input_example=pd.DataFrame({"text": ["a", "b"]}))
    with serve("echo") as client:
        answer = client.post(
            "/invocations", json={"dataframe_records": [{"text": "abc"}, {"text": "héllo"}]}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "predictions": [{"upper": "ABC", "length": 3}, {"upper": "HÉLLO", "length": 5}]
        }


def test_ping_is_404_until_ready_then_200(
    models: Registry, registry: Registry, serve: ClientFactory
) -> None:
    release = threading.Event()

    def load(version: ModelVersion) -> Runtime:
        release.wait(30)
        return registry.load(version.ref, threads=1)

    with serve("clf@champion", ready=False, load=load) as client:
        try:
            for path in ("/ping", "/health"):
                assert client.get(path).status_code == 404
            busy = client.post("/invocations", json={"inputs": [[1, 2, 3, 4]]})
            assert busy.status_code == 503
            assert busy.json()["error_code"] == "TEMPORARILY_UNAVAILABLE"
            assert "Retry-After" in busy.headers
        finally:
            release.set()
        wait_ready(client)
        for path in ("/ping", "/health"):
            answer = client.get(path)
            assert answer.status_code == 200
            assert answer.text == "\n"
        version = client.get("/version")
        assert version.status_code == 200
        assert version.text == __version__


# pure parsing ----------------------------------------------------------------------------------
def test_split_builds_typed_columns() -> None:
    numeric = frame_from_split({"columns": ["a", "b"], "data": [[1, 2.5], [3, 4.0]]})
    assert numeric.to_numpy().tolist() == [[1.0, 2.5], [3.0, 4.0]]
    mixed = frame_from_split(
        {"columns": ["a", "b"], "data": [[1, "x"], [2, None]], "index": [7, 8]}
    )
    assert mixed["a"].tolist() == [1, 2]
    assert mixed["b"].tolist()[0] == "x"
    assert mixed.index.tolist() == [7, 8]
    single = frame_from_split({"columns": ["a"], "data": [1, 2, 3]})
    assert single["a"].tolist() == [1, 2, 3]
    with pytest.raises(InvalidInputError, match="twice"):
        frame_from_split({"columns": ["a", "a"], "data": [[1, 2]]})
    with pytest.raises(InvalidInputError, match="one entry per row"):
        frame_from_split({"columns": ["a"], "data": [[1]], "index": [1, 2]})
    with pytest.raises(InvalidInputError, match="'columns', 'data'"):
        frame_from_split({"columns": ["a"], "data": [[1]], SECRET: 1})


def test_media_kinds_and_request_keys() -> None:
    assert media_kind("application/json") == "json"
    assert media_kind("text/csv; charset=utf-8") == "csv"
    for bad in (None, "text/html", "application/json; charset=utf-16", "text/csv; header=present"):
        with pytest.raises(UnsupportedMediaTypeError):
            media_kind(bad)
    parsed = parse_request({"instances": [[1]], "signature_name": "ignored"})
    assert (parsed.format, parsed.value, dict(parsed.params)) == ("instances", [[1]], {})


def test_prediction_shape_rules() -> None:
    labels, probs = np.array([0, 1]), np.array([[0.9, 0.1], [0.2, 0.8]])
    assert predictions({"predictions": labels, "probabilities": probs}).tolist() == [0, 1]
    assert predictions({"predictions": labels}).tolist() == [0, 1]
    assert predictions({"scores": probs}).tolist() == [[0.9, 0.1], [0.2, 0.8]]
    assert predictions({"predictions": labels, "extra": np.array(["a", "b"], dtype=object)}) == [
        {"predictions": 0, "extra": "a"},
        {"predictions": 1, "extra": "b"},
    ]
    assert predictions({"text": np.array([b"x", "y"], dtype=object)}) == ["x", "y"]


def test_mixed_column_types_in_every_format(
    churn_model: Registry, serve: ClientFactory, churn: Pipeline, customers: pd.DataFrame
) -> None:
    rows = customers.sample(7, random_state=3)
    expected = churn.predict(rows).tolist()
    assert set(expected) == {"churn", "stay"}
    with serve("churn") as client:
        for kind, body in _bodies(rows).items():
            answer = client.post("/invocations", json=body)
            assert answer.status_code == 200, (kind, answer.text)
            assert answer.json() == {"predictions": expected}, kind
        csv = client.post(
            "/invocations", content=rows.to_csv(index=False), headers={"Content-Type": "text/csv"}
        )
        assert csv.json() == {"predictions": expected}
        tf = client.post("/v1/models/churn:predict", json={"instances": rows.to_numpy().tolist()})
        assert [p["predictions"] for p in tf.json()["predictions"]] == expected
        wrong = client.post(
            "/invocations", json={"instances": [[SECRET, 1.0, "paris"], *rows.to_numpy().tolist()]}
        )
        assert wrong.status_code == 400
        assert wrong.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "'age'" in wrong.json()["message"]
        assert "SECRET" not in wrong.text
