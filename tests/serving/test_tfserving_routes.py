"""The TensorFlow Serving REST API against the real app in process."""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from tests.serving.conftest import ClientFactory

from modelport.api.registry import Registry
from modelport.core.errors import ModelLoadError
from modelport.core.model import ModelVersion
from modelport.runtime.base import Runtime
from modelport.serving.tf_codec import columnar_outputs, decode_rows, row_predictions

SECRET = "SECRET-VALUE-123"


def test_row_and_columnar_formats_match_sklearn(
    models: Registry,
    serve: ClientFactory,
    classifier: Pipeline,
    regressor: LinearRegression,
    frame: pd.DataFrame,
) -> None:
    rows = frame.head(6)
    labels = classifier.predict(rows).tolist()
    probs = classifier.predict_proba(rows)
    matrix = rows.to_numpy().astype(np.float32)
    with serve("clf@champion", "reg") as client:
        for instances in (rows.to_dict(orient="records"), rows.to_numpy().tolist()):
            answer = client.post(
                "/v1/models/clf:predict",
                json={"signature_name": "serving_default", "instances": instances},
            )
            assert answer.status_code == 200, answer.text
            predictions = answer.json()["predictions"]
            assert [p["predictions"] for p in predictions] == labels
            np.testing.assert_allclose([p["probabilities"] for p in predictions], probs, rtol=1e-5)
        columns = {c: rows[c].tolist() for c in rows.columns}
        answer = client.post("/v1/models/clf:predict", json={"inputs": columns})
        assert answer.status_code == 200, answer.text
        outputs = answer.json()["outputs"]
        assert outputs["predictions"] == labels
        np.testing.assert_allclose(outputs["probabilities"], probs, rtol=1e-5)
        # a single-output tensor model: plain values, in both formats
        expected = regressor.predict(matrix)
        rows_answer = client.post("/v1/models/reg:predict", json={"instances": matrix.tolist()})
        assert rows_answer.status_code == 200, rows_answer.text
        np.testing.assert_allclose(rows_answer.json()["predictions"], expected, rtol=1e-5)
        named = client.post(
            "/v1/models/reg/versions/1:predict",
            json={"instances": [{"input": r} for r in matrix.tolist()]},
        )
        np.testing.assert_allclose(named.json()["predictions"], expected, rtol=1e-5)
        cols_answer = client.post(  # as `curl -d` sends it
            "/v1/models/reg:predict",
            content=json.dumps({"inputs": matrix.tolist()}),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        np.testing.assert_allclose(cols_answer.json()["outputs"], expected, rtol=1e-5)


def test_versions_and_labels_address_the_right_version(
    models: Registry, serve: ClientFactory, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    flipped = LogisticRegression().fit(frame, (frame["f0"] - frame["f2"] <= 0).astype(int))
    models.register(flipped, name="clf", input_example=frame.head(3), alias="champion")
    rows = frame.head(8)
    body = {"inputs": {c: rows[c].tolist() for c in rows.columns}}
    with serve("clf:1", "clf@champion") as client:
        one = client.post("/v1/models/clf/versions/1:predict", json=body).json()
        two = client.post("/v1/models/clf/versions/2:predict", json=body).json()
        champion = client.post("/v1/models/clf/labels/champion:predict", json=body).json()
        default = client.post("/v1/models/clf:predict", json=body).json()
        assert one["outputs"]["predictions"] == classifier.predict(rows).tolist()
        assert two["outputs"]["predictions"] == flipped.predict(rows).tolist()
        assert champion == two
        assert default == two
        status = client.get("/v1/models/clf").json()
        assert status == {
            "model_version_status": [
                {
                    "version": v,
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
                for v in ("1", "2")
            ]
        }
        only = client.get("/v1/models/clf/labels/champion").json()["model_version_status"]
        assert [s["version"] for s in only] == ["2"]
        assert (
            client.get("/v1/models/clf/versions/1").json()["model_version_status"][0]["version"]
            == "1"
        )
        meta = client.get("/v1/models/clf/labels/champion/metadata").json()
        assert meta["model_spec"]["version"] == "2"
        for path, status_code in (
            ("/v1/models/clf/labels/nope:predict", 404),
            ("/v1/models/clf/versions/7:predict", 404),
            ("/v1/models/clf/versions/x:predict", 400),
            ("/v1/models/nope:predict", 404),
            ("/v1/models/nope/labels/champion:predict", 404),
            ("/v1/models/clf:classify", 501),
            ("/v1/models/clf:regress", 501),
            ("/v1/models/clf:explain", 404),
        ):
            answer = client.post(path, json=body)
            assert answer.status_code == status_code, (path, answer.text)
            assert set(answer.json()) == {"error"}
        for path in ("/v1/models/nope", "/v1/models/clf/versions/7", "/v1/models/clf/labels/x"):
            assert client.get(path).status_code == 404, path
            assert client.get(path + "/metadata").status_code == 404, path


def test_metadata_is_a_signature_def(models: Registry, serve: ClientFactory) -> None:
    with serve("clf@champion", "reg") as client:
        clf = client.get("/v1/models/clf/metadata").json()
        assert clf["model_spec"] == {"name": "clf", "signature_name": "", "version": "1"}
        sig = clf["metadata"]["signature_def"]["signature_def"]["serving_default"]
        assert sig["method_name"] == "tensorflow/serving/predict"
        assert list(sig["inputs"]) == ["f0", "f1", "f2", "f3"]
        assert sig["inputs"]["f0"] == {
            "dtype": "DT_DOUBLE",
            "tensor_shape": {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False},
            "name": "f0",
        }
        assert set(sig["outputs"]) == {"predictions", "probabilities"}
        reg = client.get("/v1/models/reg/versions/1/metadata").json()
        inputs = reg["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]
        assert inputs["input"]["dtype"] == "DT_FLOAT"
        assert [d["size"] for d in inputs["input"]["tensor_shape"]["dim"]] == ["-1", "4"]


def test_failed_load_is_end_with_its_reason(
    models: Registry, registry: Registry, serve: ClientFactory
) -> None:
    def load(version: ModelVersion) -> Runtime:
        if version.name == "reg":
            raise ModelLoadError("the artifact of reg:1 is broken; re-register it")
        return registry.load(version.ref, threads=1)

    with serve("clf@champion", "reg", ready=False, load=load) as client:
        deadline = time.monotonic() + 20
        while True:  # 503 while the ref is being resolved, then the version's status
            answer = client.get("/v1/models/reg")
            assert answer.status_code in (200, 503), answer.text
            status = answer.json().get("model_version_status", [])
            if (status and status[0]["state"] == "END") or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert status == [
            {
                "version": "1",
                "state": "END",
                "status": {
                    "error_code": "UNKNOWN",
                    "error_message": "the artifact of reg:1 is broken; re-register it",
                },
            }
        ]
        answer = client.post("/v1/models/reg:predict", json={"instances": [[1, 2, 3, 4]]})
        assert answer.status_code == 503
        assert "Retry-After" in answer.headers
        pinned = client.post("/v1/models/reg/versions/1:predict", json={"instances": [[1, 2]]})
        assert pinned.status_code == 503
        assert "broken" in pinned.json()["error"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ([{"instances": [[1, 2, 3, 4]]}], "JSON object"),
        ({}, "exactly one of"),
        ({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}, "exactly one of"),
        ({"signature_name": SECRET, "instances": [[1, 2, 3, 4]]}, "signature_name"),
        ({"instances": []}, "non-empty"),
        ({"instances": [[1, 2, 3, SECRET]]}, "not strings"),
        ({"instances": [{"f0": 1}, {"f1": SECRET}]}, "same"),
        ({"inputs": {"f0": [SECRET], "f1": [1], "f2": [1], "f3": [1]}}, "'f0'"),
        ({"inputs": [[[1, 2], [3]], [SECRET]]}, "rectangular"),
        ({"inputs": 7}, "'inputs'"),
    ],
)
def test_bad_requests_are_400_and_never_echo_values(
    models: Registry, serve: ClientFactory, body: Any, needle: str
) -> None:
    with serve("clf@champion") as client:
        answer = client.post("/v1/models/clf:predict", json=body)
        assert answer.status_code == 400, answer.text
        assert set(answer.json()) == {"error"}
        assert needle in answer.json()["error"]
        assert "SECRET" not in answer.text
        pickled = client.post(
            "/v1/models/clf:predict",
            content=b"\x80\x04",
            headers={"Content-Type": "application/x-python-pickle"},
        )
        assert pickled.status_code == 415


def test_response_shapes() -> None:
    labels, probs = np.array(["a", "b"], dtype=object), np.array([[0.9, 0.1], [0.2, 0.8]])
    assert row_predictions({"predictions": labels, "probabilities": probs}) == [
        {"predictions": "a", "probabilities": [0.9, 0.1]},
        {"predictions": "b", "probabilities": [0.2, 0.8]},
    ]
    assert row_predictions({"scores": probs}).tolist() == [[0.9, 0.1], [0.2, 0.8]]
    outputs = columnar_outputs({"predictions": labels, "probabilities": probs})
    assert outputs["predictions"] == ["a", "b"]
    assert outputs["probabilities"].tolist() == [[0.9, 0.1], [0.2, 0.8]]
    named = decode_rows([{"a": 1, "b": [1, 2]}, {"a": 2, "b": [3, 4]}])
    assert isinstance(named, dict)
    assert named["b"].shape == (2, 2)
