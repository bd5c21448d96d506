from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from tests.serving.conftest import ClientFactory
from tests.serving.slow_model import SlowModel

from modelport.api.registry import Registry


def _body(frame: pd.DataFrame) -> dict[str, object]:
    return {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].tolist()}
            for c in frame.columns
        ]
    }


def test_alias_move_swaps_versions_without_failed_requests(
    models: Registry,
    serve: ClientFactory,
    frame: pd.DataFrame,
    labels: np.ndarray,
    classifier: Pipeline,
) -> None:
    flipped = LogisticRegression().fit(frame, 1 - labels)  # v2 answers the opposite class
    models.register(flipped, name="clf", input_example=frame.head(3))
    rows = frame.head(5)
    v1_answer = classifier.predict(rows).tolist()
    v2_answer = flipped.predict(rows).tolist()
    assert v1_answer != v2_answer
    with serve("clf@champion", poll_interval_s=0.05) as client:
        statuses: list[int] = []
        versions: list[str] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set() and len(statuses) < 5000:
                r = client.post("/v2/models/clf/infer", json=_body(rows))
                statuses.append(r.status_code)
                if r.status_code == 200:
                    body = r.json()
                    answer = body["outputs"][0]["data"]
                    expected = v1_answer if body["model_version"] == "1" else v2_answer
                    assert answer == expected, "a response mixed versions"
                    versions.append(body["model_version"])

        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(hammer) for _ in range(3)]
            deadline = time.monotonic() + 20
            while versions.count("1") < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            models.set_alias("clf", "champion", 2, reason="swap test")
            while versions[-20:].count("2") < 20 and time.monotonic() < deadline:
                time.sleep(0.01)
            stop.set()
            for f in futures:
                f.result()
        assert set(statuses) == {200}, f"failed requests during the swap: {set(statuses)}"
        assert versions[0] == "1"
        assert versions[-1] == "2"
        index = client.post("/v2/repository/index").json()
        assert [(m["name"], m["version"]) for m in index] == [("clf", "2")], "v1 unloaded"


def test_body_limit_deadline_and_shedding(registry: Registry, serve: ClientFactory) -> None:
    registry.register(SlowModel(), name="slow", input_example=pd.DataFrame({"delay": [0.0]}))
    with serve("slow", max_queue=1, max_body_bytes=4096, batching=False) as client:
        big = {
            "inputs": [{"name": "delay", "datatype": "FP64", "shape": [3000], "data": [0.0] * 3000}]
        }
        assert client.post("/v2/models/slow/infer", json=big).status_code == 413

        late = client.post(
            "/v2/models/slow/infer",
            json={"inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [0.5]}]},
            headers={"X-Request-Timeout": "0.1"},
        )
        assert late.status_code == 504, late.text

        def slow_call(delay: float) -> int:
            body = {
                "inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [delay]}]
            }
            return client.post("/v2/models/slow/infer", json=body).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(slow_call, [0.4] * 8))
        assert codes.count(200) >= 1
        shed = [c for c in codes if c != 200]
        assert shed, codes
        assert set(shed) == {503}, codes
        retry = client.post(
            "/v2/models/slow/infer",
            json={"inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [0.0]}]},
        )
        assert retry.status_code == 200


def test_inflight_limit_sheds_at_once_but_probes_answer(
    registry: Registry, serve: ClientFactory
) -> None:
    registry.register(SlowModel(), name="slow", input_example=pd.DataFrame({"delay": [0.0]}))
    with serve("slow", max_inflight=2, batching=False) as client:

        def call(delay: float) -> tuple[int, str | None]:
            body = {
                "inputs": [{"name": "delay", "datatype": "FP64", "shape": [1], "data": [delay]}]
            }
            r = client.post("/v2/models/slow/infer", json=body)
            return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(6) as pool:
            pending = [pool.submit(call, 0.5) for _ in range(6)]
            time.sleep(0.2)
            assert client.get("/v2/health/live").status_code == 200
            results = [f.result() for f in pending]
        codes = [code for code, _ in results]
        assert codes.count(200) >= 1
        refused = [(c, ra) for c, ra in results if c != 200]
        assert refused
        assert all(c == 503 and ra is not None and int(ra) >= 1 for c, ra in refused)
