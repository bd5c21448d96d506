from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from tests.serving.conftest import ClientFactory, wait_ready
from tests.serving.slow_model import EchoModel

from modelport.api.registry import Registry
from modelport.core.model import ModelVersion
from modelport.runtime.base import Runtime


def _v2_body(frame: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
            for c in frame.columns
        ],
        **extra,
    }


def test_health_metadata_and_server_metadata(models: Registry, serve: ClientFactory) -> None:
    with serve("clf@champion", "reg") as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        server = client.get("/v2").json()
        assert server["name"] == "modelport"
        assert "binary_tensor_data" in server["extensions"]
        meta = client.get("/v2/models/clf").json()
        assert meta["name"] == "clf"
        assert meta["versions"] == ["1"]
        assert meta["platform"].startswith("sklearn")
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
            ("f0", "FP64"),
            ("f1", "FP64"),
            ("f2", "FP64"),
            ("f3", "FP64"),
        ]
        assert {o["name"] for o in meta["outputs"]} == {"predictions", "probabilities"}
        reg = client.get("/v2/models/reg/versions/1").json()
        assert reg["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        assert client.get("/v2/models/clf/ready").json() == {"name": "clf", "ready": True}
        assert client.get("/v2/models/clf/versions/1/ready").status_code == 200
        assert client.get("/v2/models/nope").status_code == 404
        assert client.get("/v2/models/clf/versions/7").status_code == 404
        assert client.get("/v2/models/clf/versions/x").status_code == 400


def test_infer_columns_model_matches_sklearn(
    models: Registry, serve: ClientFactory, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    rows = frame.head(7)
    with serve("clf@champion") as client:
        answer = client.post("/v2/models/clf/infer", json=_v2_body(rows, id="req-42"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["id"] == "req-42"
        assert body["model_name"] == "clf"
        assert body["model_version"] == "1"
        outputs = {o["name"]: o for o in body["outputs"]}
        assert outputs["predictions"]["shape"] == [7]
        assert outputs["predictions"]["datatype"] == "INT64"
        assert outputs["predictions"]["data"] == classifier.predict(rows).tolist()
        assert outputs["probabilities"]["shape"] == [7, 2]
        np.testing.assert_allclose(  # the verified ONNX fast path may answer: within 1e-6
            np.reshape(outputs["probabilities"]["data"], (7, 2)),
            classifier.predict_proba(rows),
            atol=1e-6,
        )
        # one [n, 4] matrix for a 4-column model, nested data, explicit version, one output
        matrix = {
            "inputs": [
                {"name": "x", "datatype": "FP32", "shape": [7, 4], "data": rows.to_numpy().tolist()}
            ],
            "outputs": [{"name": "predictions"}],
        }
        only = client.post("/v2/models/clf/versions/1/infer", json=matrix).json()
        assert [o["name"] for o in only["outputs"]] == ["predictions"]
        assert only["outputs"][0]["data"] == classifier.predict(rows).tolist()


def test_infer_tensor_model_flat_and_nested(
    models: Registry, serve: ClientFactory, frame: pd.DataFrame
) -> None:
    x = frame.head(3).to_numpy().astype(np.float32)
    expected = models.load("reg").predict(x)["predictions"]
    with serve("reg") as client:
        for data in (x.tolist(), x.reshape(-1).tolist()):
            body = {
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [3, 4], "data": data}]
            }
            answer = client.post("/v2/models/reg/infer", json=body)
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["outputs"][0]["data"], expected, rtol=1e-5)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [1.0] * 7}]},
            "needs 8",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 3], "data": [1.0] * 6}]},
            "shape",
        ),
        (
            {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "BYTES",
                        "shape": [1, 4],
                        "data": ["SECRET-1", "a", "b", "c"],
                    }
                ]
            },
            "input",
        ),
        (
            {
                "inputs": [
                    {"name": "input", "datatype": "FP99", "shape": [1, 4], "data": [1, 2, 3, 4]}
                ]
            },
            "datatype",
        ),
        (
            {
                "inputs": [
                    {"name": "other", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
                ]
            },
            "other",
        ),
        (
            {
                "inputs": [
                    {"name": "input", "datatype": "INT8", "shape": [1, 4], "data": [1, 2, 3, 999]}
                ]
            },
            "datatype",
        ),
        (
            {"inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4], "data": []}]},
            "shape",
        ),
        (
            {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [100000, 100000, 10], "data": []}
                ]
            },
            "elements",
        ),
        ({"inputs": []}, "inputs"),
        ([1, 2, 3], "object"),
        (
            {
                "inputs": [
                    {"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
                ],
                "outputs": [{"name": "nope"}],
            },
            "nope",
        ),
    ],
)
def test_bad_requests_are_400_without_echo(
    models: Registry, serve: ClientFactory, body: Any, needle: str
) -> None:
    with serve("reg") as client:
        answer = client.post("/v2/models/reg/infer", json=body)
        assert answer.status_code == 400, answer.text
        assert needle in answer.json()["error"]
        assert "SECRET" not in answer.text
        assert "Traceback" not in answer.text


def test_bytes_inputs_and_outputs(registry: Registry, serve: ClientFactory) -> None:
    example = pd.DataFrame({"text": ["héllo", "b"]})
    registry.register(EchoModel(), name="echo", input_example=example)
    with serve("echo") as client:
        body = {
            "inputs": [
                {"name": "text", "datatype": "BYTES", "shape": [2], "data": ["abc", "héllo"]}
            ]
        }
        answer = client.post("/v2/models/echo/infer", json=body)
        assert answer.status_code == 200, answer.text
        outputs = {o["name"]: o for o in answer.json()["outputs"]}
        assert outputs["upper"] == {
            "name": "upper",
            "datatype": "BYTES",
            "shape": [2],
            "data": ["ABC", "HÉLLO"],
        }
        assert outputs["length"]["data"] == [3, 5]


def test_not_ready_while_loading_then_ready(models: Registry, serve: ClientFactory) -> None:
    release = threading.Event()

    def slow_load(version: ModelVersion) -> Runtime:
        assert release.wait(30)
        return models.load(version.ref, threads=1)

    with serve("clf", ready=False, load=slow_load) as client:
        assert client.get("/v2/health/live").status_code == 200
        not_ready = client.get("/v2/health/ready")
        assert not_ready.status_code == 503
        assert not_ready.json() == {"ready": False}
        infer = client.post(
            "/v2/models/clf/infer",
            json={"inputs": [{"name": "f0", "datatype": "FP64", "shape": [1], "data": [1.0]}]},
        )
        assert infer.status_code == 503
        assert infer.headers["retry-after"]
        release.set()
        wait_ready(client)


def test_failed_version_is_isolated(models: Registry, serve: ClientFactory) -> None:
    def load(version: ModelVersion) -> Runtime:
        if version.name == "reg":
            raise RuntimeError("boom: disk on fire")
        return models.load(version.ref, threads=1)

    with serve("clf", "reg", load=load) as client:
        assert client.get("/v2/health/ready").status_code == 200
        index = {m["name"]: m for m in client.post("/v2/repository/index").json()}
        assert index["clf"]["state"] == "READY"
        assert index["reg"]["state"] == "UNAVAILABLE"
        assert "RuntimeError" in index["reg"]["reason"]
        assert "disk on fire" not in index["reg"]["reason"]
        assert client.post("/v2/models/reg/infer", json={"inputs": []}).status_code in (400, 503)
        assert client.get("/v2/models/reg/ready").status_code == 503

    with serve("reg", load=load, ready=False) as client:
        for _ in range(500):
            index = client.post("/v2/repository/index").json()
            if index and index[0]["state"] == "UNAVAILABLE":
                break
            threading.Event().wait(0.02)
        assert index == [
            {
                "name": "reg",
                "version": "1",
                "state": "UNAVAILABLE",
                "reason": "load failed: RuntimeError",
            }
        ]
        assert client.get("/v2/health/ready").status_code == 503, "only model failed: not ready"


def test_unknown_model_and_content_types(models: Registry, serve: ClientFactory) -> None:
    with serve("reg") as client:
        assert client.post("/v2/models/ghost/infer", json={"inputs": []}).status_code == 404
        pickled = client.post(
            "/v2/models/reg/infer",
            content=b"\x80\x04.",
            headers={"content-type": "application/x-python-pickle"},
        )
        assert pickled.status_code == 415
        text = client.post(
            "/v2/models/reg/infer", content=b"{}", headers={"content-type": "text/plain"}
        )
        assert text.status_code == 415
        broken = client.post(
            "/v2/models/reg/infer",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert broken.status_code == 400
