"""The edge answers V2 infer requests exactly as the middleware stack and router would."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from starlette.testclient import TestClient
from tests.serving.conftest import ClientFactory

from modelport.api.registry import Registry
from modelport.serving.app import DataPlaneApp
from modelport.serving.edge import InferEdge


def _body(frame: pd.DataFrame, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
            for c in frame.columns
        ],
        **extra,
    }


def _exchange(client: TestClient, frame: pd.DataFrame) -> list[tuple[int, Any, dict[str, str]]]:
    """Status, body and the headers that matter for a set of good and bad requests."""
    rows = frame.head(3)
    requests: list[tuple[str, Any]] = [
        ("/v2/models/clf/infer", _body(rows, id="req-1")),
        ("/v2/models/clf/versions/1/infer", _body(rows)),
        ("/v2/models/clf/infer", {"inputs": "nope"}),
        ("/v2/models/nope/infer", _body(rows)),
        ("/v2/models/clf/versions/x/infer", _body(rows)),
        ("/v2/models/clf/versions/9/infer", _body(rows)),
    ]
    out = []
    for path, body in requests:
        answer = client.post(path, json=body, headers={"X-Request-ID": "client-id"})
        kept = {
            k: answer.headers[k]
            for k in ("content-type", "x-request-id", "retry-after")
            if k in answer.headers
        }
        out.append((answer.status_code, answer.json(), kept))
    answer = client.post(
        "/v2/models/clf/infer", content=b"{", headers={"content-type": "text/plain"}
    )
    out.append((answer.status_code, answer.json(), {}))
    return out


def _metric_lines(client: TestClient) -> list[str]:
    text = client.get("/metrics").text
    return sorted(
        line
        for line in text.splitlines()
        if line.startswith("modelport_requests_total{") and 'protocol="v2_rest"' in line
    )


def test_the_edge_gives_the_same_answers_headers_and_metrics(
    models: Registry, serve: ClientFactory, frame: pd.DataFrame
) -> None:
    results = {}
    for through_edge in (True, False):
        with serve("clf@champion") as client:
            app = client.app
            assert isinstance(app, DataPlaneApp)
            assert isinstance(app.edge, InferEdge)
            if not through_edge:
                app.edge = None  # the router and the whole middleware stack
            results[through_edge] = (_exchange(client, frame), _metric_lines(client))
    edge, stack = results[True], results[False]
    assert edge == stack
    answers, metrics = edge
    assert [status for status, _, _ in answers] == [200, 200, 400, 404, 400, 404, 415]
    assert answers[0][1]["id"] == "req-1"
    assert answers[0][2]["x-request-id"] == "req-1"  # the body id wins
    assert answers[1][2]["x-request-id"] == "client-id"
    assert answers[0][1]["model_version"] == "1"
    assert metrics  # the requests were counted, the same way on both paths


def test_the_edge_refuses_at_the_in_flight_limit(
    models: Registry, serve: ClientFactory, frame: pd.DataFrame
) -> None:
    with serve("clf@champion", max_inflight=1) as client:
        app = client.app
        assert isinstance(app, DataPlaneApp)
        assert app.edge is not None
        limiter = app.edge.limiter
        assert limiter.try_acquire()  # someone else holds the only slot
        try:
            answer = client.post("/v2/models/clf/infer", json=_body(frame.head(1)))
        finally:
            limiter.release()
        assert answer.status_code == 503
        assert "retry-after" in answer.headers
        assert "x-request-id" in answer.headers
        assert client.post("/v2/models/clf/infer", json=_body(frame.head(1))).status_code == 200


@pytest.mark.parametrize("method", ["GET", "PUT"])
def test_other_methods_on_infer_paths_reach_the_router(
    models: Registry, serve: ClientFactory, method: str
) -> None:
    with serve("clf@champion") as client:
        assert client.request(method, "/v2/models/clf/infer").status_code == 405
