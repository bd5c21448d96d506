"""``GET /metrics`` of the real app in process, after real V2 (REST and gRPC), MLflow and TF
Serving requests: counts by protocol, model, version and status class, and the model gauges."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient
from tests.serving.conftest import ClientFactory
from tests.serving.slow_model import SlowModel

from modelport.api.registry import Registry
from modelport.core.errors import ModelLoadError
from modelport.core.model import ModelVersion
from modelport.monitoring.metrics import CONTENT_TYPE, LATENCY_BUCKETS
from modelport.runtime.base import Runtime
from modelport.serving.instrument import classify, grpc_status_class

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def served(models: Registry) -> Registry:
    """``clf:1`` and ``reg:1`` (conftest) plus ``slow:1``, which sleeps ``delay`` seconds."""
    models.register(SlowModel(), name="slow", input_example=pd.DataFrame({"delay": [0.0]}))
    return models


def scrape(client: TestClient) -> Samples:
    """Every sample of ``/metrics``, checked to parse as the Prometheus text format."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == CONTENT_TYPE
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def select(samples: Samples, name: str, **match: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        labels: value
        for (sample, labels), value in samples.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in match.items())
    }


def request_counts(samples: Samples) -> dict[tuple[str, str, str, str], float]:
    """(protocol, model, version, status_class) → count; endpoint must equal model."""
    counts = {}
    for labels, value in select(samples, "modelport_requests_total").items():
        d = dict(labels)
        assert d["endpoint"] == d["model"]
        counts[(d["protocol"], d["model"], d["version"], d["status_class"])] = value
    return counts


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _v2(frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
            for c in frame.columns
        ]
    }


def _delay(seconds: float) -> dict[str, Any]:
    return {"inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [seconds]}]}


@pytest.fixture
def client(served: Registry, serve: ClientFactory) -> Iterator[tuple[TestClient, int]]:
    grpc_port = _free_port()
    with serve("clf@champion", "slow", grpc_port=grpc_port, threads=1) as client:
        yield client, grpc_port


def test_counts_by_protocol_model_version_and_status(
    client: tuple[TestClient, int], frame: pd.DataFrame
) -> None:
    http, grpc_port = client
    rows = frame.head(3)
    # V2 REST: 3 answered, 1 bad input to a served version, 1 unknown model, 1 model failure
    for _ in range(3):
        assert http.post("/v2/models/clf/infer", json=_v2(rows)).status_code == 200
    bad = {"inputs": [{"name": "f0", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    assert http.post("/v2/models/clf/versions/1/infer", json=bad).status_code == 400
    assert http.post("/v2/models/nope/infer", json=_v2(rows)).status_code == 404
    assert http.post("/v2/models/slow/infer", json=_delay(-1.0)).status_code == 500
    # MLflow: 2 answered, 1 for a model that is not served; /invocations with 2 models: 400
    split = {"dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}}
    for _ in range(2):
        assert http.post("/models/clf/invocations", json=split).status_code == 200
    assert http.post("/models/other/invocations", json=split).status_code == 404
    assert http.post("/invocations", json=split).status_code == 400
    # TF Serving: 2 answered (one by label), 1 unsupported verb (501)
    instances = {"instances": rows.to_dict(orient="records")}
    assert http.post("/v1/models/clf:predict", json=instances).status_code == 200
    assert http.post("/v1/models/clf/labels/champion:predict", json=instances).status_code == 200
    assert http.post("/v1/models/clf:classify", json=instances).status_code == 501
    # not predictions: never counted
    assert http.get("/v2/models/clf").status_code == 200
    assert http.get("/v2/health/ready").status_code == 200
    # V2 gRPC: 1 answered, 1 unknown model
    grpcclient = pytest.importorskip("tritonclient.grpc")
    grpc_client = grpcclient.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    try:
        tensor = grpcclient.InferInput("delay", [1], "FP64")
        tensor.set_data_from_numpy(np.array([0.0]))
        assert grpc_client.infer("slow", [tensor]).as_numpy("predictions").tolist() == [0.0]
        with pytest.raises(grpcclient.InferenceServerException, match="not served"):
            grpc_client.infer("nope", [tensor])
    finally:
        grpc_client.close()

    expected = {
        ("v2_rest", "clf", "1", "2xx"): 3,
        ("v2_rest", "clf", "1", "4xx"): 1,
        ("v2_rest", "", "", "4xx"): 1,
        ("v2_rest", "slow", "1", "5xx"): 1,
        ("mlflow", "clf", "1", "2xx"): 2,
        ("mlflow", "", "", "4xx"): 2,
        ("tfserving", "clf", "1", "2xx"): 2,
        ("tfserving", "clf", "", "5xx"): 1,
        ("v2_grpc", "slow", "1", "2xx"): 1,
        ("v2_grpc", "", "", "4xx"): 1,
    }
    # A gRPC interceptor records its call after the status reached the client: poll briefly.
    deadline = time.monotonic() + 10
    samples = scrape(http)
    while request_counts(samples) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape(http)
    assert request_counts(samples) == expected
    # one duration observation per request, in buckets fine enough for millisecond models
    counts = select(samples, "modelport_request_duration_seconds_count")
    assert sum(counts.values()) == 15
    bounds = {
        float(dict(labels)["le"])
        for labels in select(samples, "modelport_request_duration_seconds_bucket")
    }
    assert bounds == {*LATENCY_BUCKETS, float("inf")}
    # 7 answered clf requests of 3 rows, each its own predict call (they came one at a time)
    assert select(samples, "modelport_batch_size_count", model="clf") == {
        (("model", "clf"), ("version", "1")): 7
    }
    assert select(samples, "modelport_batch_size_sum", model="clf") == {
        (("model", "clf"), ("version", "1")): 21
    }
    assert select(samples, "modelport_requests_in_flight") == {(): 0}


def test_model_gauges_and_load_metrics(client: tuple[TestClient, int]) -> None:
    samples = scrape(client[0])
    versions = {(("model", "clf"), ("version", "1")), (("model", "slow"), ("version", "1"))}
    ready = select(samples, "modelport_model_ready")
    assert ready == dict.fromkeys(versions, 1.0)
    assert select(samples, "modelport_queue_depth") == dict.fromkeys(versions, 0.0)
    load = select(samples, "modelport_model_load_seconds")
    assert set(load) == versions
    assert all(0 < seconds < 60 for seconds in load.values())
    assert select(samples, "modelport_model_load_failures_total") == {}


def test_in_flight_counts_a_request_being_answered(client: tuple[TestClient, int]) -> None:
    http = client[0]
    done = threading.Event()
    worker = threading.Thread(
        target=lambda: (http.post("/v2/models/slow/infer", json=_delay(1.0)), done.set())
    )
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while select(scrape(http), "modelport_requests_in_flight") != {(): 1.0}:
            assert not done.is_set(), "the request finished before it was seen in flight"
            assert time.monotonic() < deadline, "never seen in flight"
            time.sleep(0.02)
    finally:
        worker.join(30)
    samples = scrape(http)
    assert select(samples, "modelport_requests_in_flight") == {(): 0.0}
    assert request_counts(samples) == {("v2_rest", "slow", "1", "2xx"): 1}


def test_a_failed_load_is_counted_and_not_ready(served: Registry, serve: ClientFactory) -> None:
    def load(version: ModelVersion) -> Runtime:
        if version.name == "slow":
            raise ModelLoadError("slow:1 cannot be loaded here")
        return served.load(version.ref, threads=1)

    with serve("clf", "slow", load=load, ready=False) as http:
        deadline = time.monotonic() + 30
        while not select(scrape(http), "modelport_model_load_failures_total"):
            assert time.monotonic() < deadline, "the failure was never counted"
            time.sleep(0.02)
        samples = scrape(http)
        assert select(samples, "modelport_model_load_failures_total") == {
            (("model", "slow"), ("version", "1")): 1
        }
        assert select(samples, "modelport_model_ready", model="slow") == {
            (("model", "slow"), ("version", "1")): 0
        }
        assert http.post("/v2/models/slow/infer", json=_delay(0.0)).status_code == 503
        assert request_counts(scrape(http)) == {("v2_rest", "slow", "", "5xx"): 1}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/v2/models/clf/infer", ("v2_rest", "clf")),
        ("POST", "/v2/models/clf/versions/3/infer", ("v2_rest", "clf")),
        ("POST", "/invocations", ("mlflow", None)),
        ("POST", "/models/clf/invocations", ("mlflow", "clf")),
        ("POST", "/models/clf/versions/2/invocations", ("mlflow", "clf")),
        ("POST", "/v1/models/clf:predict", ("tfserving", "clf")),
        ("POST", "/v1/models/clf/versions/2:predict", ("tfserving", "clf")),
        ("POST", "/v1/models/clf/labels/champion:classify", ("tfserving", "clf")),
        ("GET", "/v2/models/clf/infer", None),
        ("GET", "/metrics", None),
        ("POST", "/v2/repository/index", None),
        ("POST", "/v2/models/clf/infer/extra", None),
        ("GET", "/v1/models/clf/metadata", None),
    ],
)
def test_prediction_requests_are_recognised_by_path(
    method: str, path: str, expected: tuple[str, str | None] | None
) -> None:
    assert classify(method, path) == expected


def test_grpc_status_codes_map_to_http_status_classes() -> None:
    assert grpc_status_class(None) == "2xx"
    assert grpc_status_class(grpc.StatusCode.OK) == "2xx"
    assert grpc_status_class(grpc.StatusCode.INVALID_ARGUMENT) == "4xx"
    assert grpc_status_class(grpc.StatusCode.NOT_FOUND) == "4xx"
    assert grpc_status_class(grpc.StatusCode.UNAVAILABLE) == "5xx"
    assert grpc_status_class(grpc.StatusCode.DEADLINE_EXCEEDED) == "5xx"  # as HTTP 504
    assert grpc_status_class(grpc.StatusCode.INTERNAL) == "5xx"
