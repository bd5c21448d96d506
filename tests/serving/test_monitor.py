"""Monitoring through the real app in process, over a real SQLite prediction log: feedback and
accuracy, live status figures, drift, redaction, log drops and alerts to a real webhook."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select
from starlette.testclient import TestClient
from tests.serving.conftest import COLUMNS, ClientFactory
from tests.serving.monitor_fixtures import (
    Monitored,
    Receiver,
    flaky,
    flaky_body,
    monitored,
    receiver,
    tensors,
)

from modelport.api.registry import Registry
from modelport.monitoring.logstore_schema import predictions

__all__ = ["flaky", "monitored", "receiver"]  # fixtures used here


def metric(client: TestClient, name: str, **labels: str) -> float | None:
    """The value of one sample of ``/metrics`` (None when absent)."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return None


def only_version(status: dict[str, Any], model: str) -> dict[str, Any]:
    found = [v for v in status["versions"] if v["model"] == model]
    assert len(found) == 1, status
    return found[0]


def logged_latencies(db: Path) -> list[float]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            return [float(v) for (v,) in conn.execute(select(predictions.c.latency_s))]
    finally:
        engine.dispose()


def test_feedback_gives_accuracy_in_status_and_metrics(
    flaky: Registry, monitored: Monitored
) -> None:
    xs = np.random.default_rng(3).normal(size=30)
    with monitored("flaky") as run:
        ids = []
        for i, x in enumerate(xs):
            body = flaky_body(float(x))
            if i % 2:
                body["id"] = f"body-{i}"  # a V2 request id names the prediction...
                answer = run.client.post("/v2/models/flaky/infer", json=body)
            else:  # ...and so does X-Request-ID
                answer = run.client.post(
                    "/v2/models/flaky/infer", json=body, headers={"X-Request-ID": f"hdr-{i}"}
                )
            assert answer.status_code == 200, answer.text
            ids.append(answer.headers["x-request-id"])
        assert ids[:2] == ["hdr-0", "body-1"]
        # labels: the truth is x > 0, but the last 6 labels are flipped (the model is wrong)
        truth = [int(x > 0) if i < 24 else int(x <= 0) for i, x in enumerate(xs)]
        items = [{"id": rid, "label": label} for rid, label in zip(ids, truth, strict=True)]
        answer = run.client.post(
            "/v2/models/flaky/feedback", json=[*items, {"id": "never-sent", "label": 1}]
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 30, "unknown_ids": ["never-sent"]}
        one = run.client.post("/v2/models/flaky/feedback", json={"id": "nope", "label": 0})
        assert one.json() == {"accepted": 0, "unknown_ids": ["nope"]}
        assert (
            only_version(run.client.get("/v2/monitoring/status").json(), "flaky")["accuracy"]
            is None
        )  # before the first evaluation

        run.evaluate()
        version = only_version(run.client.get("/v2/monitoring/status").json(), "flaky")
        assert version["accuracy"] == {
            "value": pytest.approx(24 / 30),
            "labeled": 30,
            "window_s": 3600,
            "task": "classification",
            "mae": None,
            "rmse": None,
        }
        gauge = metric(run.client, "modelport_accuracy", model="flaky", version="1", window="3600s")
        assert gauge == pytest.approx(24 / 30)


def test_feedback_as_csv_and_its_errors(flaky: Registry, monitored: Monitored) -> None:
    with monitored("flaky") as run:
        rid = run.client.post("/v2/models/flaky/infer", json=flaky_body(1.0)).headers[
            "x-request-id"
        ]
        csv = f"id,label\n{rid},1\nghost,0\n"
        answer = run.client.post(
            "/v2/models/flaky/feedback", content=csv, headers={"Content-Type": "text/csv"}
        )
        assert answer.json() == {"accepted": 1, "unknown_ids": ["ghost"]}
        post = run.client.post
        secret = "s3cr3t-label-value"
        cases = [
            (post("/v2/models/nope/feedback", json={"id": "a", "label": 1}), 404),
            (post("/v2/models/flaky/feedback", content=b"{not json"), 400),
            (post("/v2/models/flaky/feedback", json={"id": "a"}), 400),
            (post("/v2/models/flaky/feedback", json=[]), 400),
            (post("/v2/models/flaky/feedback", json={"id": "a", "label": {"x": secret}}), 400),
            (
                post(
                    "/v2/models/flaky/feedback",
                    content=b"x",
                    headers={"Content-Type": "application/x-python-pickle"},
                ),
                415,
            ),
            (post("/v2/models/flaky/feedback", json={"id": rid, "label": [1, 0]}), 400),
        ]
        for answer, status in cases:
            assert answer.status_code == status, answer.text
            assert set(answer.json()) == {"error"}
            assert secret not in answer.text
    with monitored("flaky", max_body_bytes=1024) as run:
        big = [{"id": f"id-{i}", "label": 1} for i in range(200)]
        answer = run.client.post("/v2/models/flaky/feedback", json=big)
        assert answer.status_code == 413


def test_status_counts_errors_and_p95_as_the_server_recorded_them(
    flaky: Registry, monitored: Monitored
) -> None:
    rng = np.random.default_rng(7)
    delays = rng.uniform(0.0, 0.012, size=60)
    fails = [1 if i % 10 == 3 else 2 if i % 15 == 4 else 0 for i in range(60)]
    with monitored("flaky") as run:
        statuses = [
            run.client.post("/v2/models/flaky/infer", json=flaky_body(0.1, d, f)).status_code
            for d, f in zip(delays, fails, strict=True)
        ]
        assert statuses.count(500) == fails.count(1) == 6
        assert statuses.count(400) == fails.count(2) == 4
        status = run.client.get("/v2/monitoring/status").json()
    assert status["window_s"] == 300
    assert status["ready"] is True
    assert status["alerts"] == []
    version = only_version(status, "flaky")
    assert version["version"] == "1"
    assert version["state"] == "ready"
    assert version["requests"] == 60
    assert version["traffic_share"] == 1.0
    assert version["error_rate"] == pytest.approx(6 / 60)  # 5xx only: 4xx are the client's
    assert version["rate_per_s"] > 0
    latencies = logged_latencies(run.db)  # what the server recorded, written on shutdown
    assert len(latencies) == 60
    for q, key in ((0.5, "p50_ms"), (0.95, "p95_ms"), (0.99, "p99_ms")):
        exact = float(np.quantile(latencies, q)) * 1000
        assert version[key] == pytest.approx(exact, rel=0.05), key


def test_drift_flags_the_shifted_feature_and_not_the_others(
    models: Registry, monitored: Monitored
) -> None:
    rng = np.random.default_rng(5)
    with monitored("clf@champion", "reg") as run:
        small = rng.normal(size=(5, 4))
        run.client.post("/v2/models/clf/infer", json=tensors(**_columns(small)))
        report = run.client.get("/v2/models/clf/drift").json()
        assert report["rows"] == 5
        assert {f["verdict"] for f in report["features"]} == {"insufficient data"}
        for _ in range(20):
            rows = rng.normal(size=(10, 4))
            rows[:, 0] += 2.5  # f0 shifted; f1..f3 as in training
            answer = run.client.post("/v2/models/clf/infer", json=tensors(**_columns(rows)))
            assert answer.status_code == 200
        report = run.client.get("/v2/models/clf/drift", params={"window_s": 600}).json()
        assert report["model"] == "clf"
        assert report["version"] == "1"
        assert report["window_s"] == 600
        assert report["rows"] == 205
        verdicts = {f["feature"]: f["verdict"] for f in report["features"]}
        assert verdicts == {"f0": "drift", "f1": "ok", "f2": "ok", "f3": "ok"}
        f0 = next(f for f in report["features"] if f["feature"] == "f0")
        assert f0["kind"] == "numeric"
        assert f0["statistic"] == "psi"
        assert f0["score"] > 0.2
        assert f0["p_value"] < 0.01
        assert "PSI" in f0["reason"]
        assert report["prediction"]["feature"] == "prediction"
        assert report["prediction"]["kind"] == "categorical"
        same = run.client.get("/v2/models/clf/drift", params={"version": "1"}).json()
        assert same["features"] == report["features"]

        run.evaluate()
        drift = only_version(run.client.get("/v2/monitoring/status").json(), "clf")["drift"]
        assert drift["verdict"] == "drift"
        assert "f0" in drift["drifted"]
        assert not {"f1", "f2", "f3"} & set(drift["drifted"])
        assert drift["window_s"] == 3600
        psi = metric(
            run.client, "modelport_drift_score", model="clf", feature="f0", statistic="psi"
        )
        assert psi == pytest.approx(f0["score"], rel=0.2)
        get = run.client.get
        assert get("/v2/models/reg/drift").status_code == 404  # no reference profile
        assert "reference profile" in get("/v2/models/reg/drift").json()["error"]
        assert get("/v2/models/nope/drift").status_code == 404
        assert get("/v2/models/clf/drift", params={"version": "7"}).status_code == 404
        assert get("/v2/models/clf/drift", params={"window_s": "0"}).status_code == 400
        assert get("/v2/models/clf/drift", params={"version": "x"}).status_code == 400


def _columns(rows: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(v) for v in rows[:, j]] for j, name in enumerate(COLUMNS)}


@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_redacted_input_never_reaches_the_database(
    models: Registry, monitored: Monitored, tmp_path: Path, writer: str
) -> None:
    secret, visible = 123.456789123, 98.7654321987
    with monitored("clf@champion", redact=("F1",), log_writer=writer) as run:  # any case
        body = tensors(f0=[visible], f1=[secret], f2=[0.1], f3=[0.2])
        assert run.client.post("/v2/models/clf/infer", json=body).status_code == 200
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("monitoring.db*"))
    assert str(visible).encode() in stored  # the log holds the other inputs...
    assert b"[redacted]" in stored
    assert str(secret).encode() not in stored  # ...never the redacted one
    assert b"123.4567" not in stored


def test_prediction_log_drops_are_counted_when_the_writer_is_stuck(
    flaky: Registry, monitored: Monitored
) -> None:
    sent = 12
    with monitored("flaky", log_capacity=1) as run:
        blocker = sqlite3.connect(run.db, timeout=1, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # the writer waits for the database lock
            for i in range(sent):
                answer = run.client.post("/v2/models/flaky/infer", json=flaky_body(float(i)))
                assert answer.status_code == 200  # a stuck log never fails a request
            dropped = metric(
                run.client, "modelport_prediction_log_dropped_total", model="flaky", version="1"
            )
            assert dropped is not None
            assert dropped >= sent - 2  # one record queued, one in the writer's hands
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
    written = len(logged_latencies(run.db))
    assert written + dropped == sent


def _rules(path: Path) -> Path:
    path.write_text(
        "rules:\n"
        "  - name: flaky-errors\n"
        "    kind: error_rate\n"
        "    model: flaky\n"
        "    threshold: 0.2\n"
        "    window_s: 60\n"
        "    min_samples: 5\n"
        "    severity: critical\n"
    )
    return path


def test_an_alert_fires_to_the_webhook_once_and_resolves(
    flaky: Registry, monitored: Monitored, receiver: Receiver, tmp_path: Path
) -> None:
    options = {
        "alert_rules": str(_rules(tmp_path / "rules.yaml")),
        "webhook_url": receiver.url,
        "webhook_allowed_hosts": ("127.0.0.1",),
    }
    with monitored("flaky", **options) as run:
        for i in range(10):
            run.client.post("/v2/models/flaky/infer", json=flaky_body(1.0, fail=i % 2))
        run.evaluate()
        (message,) = receiver.wait_for(1)
        assert message["status"] == "firing"
        (alert,) = message["alerts"]
        assert alert["labels"]["alertname"] == "flaky-errors"
        assert alert["labels"]["model"] == "flaky"
        assert alert["labels"]["version"] == "1"
        run.evaluate()  # still firing: no second notification
        status = run.client.get("/v2/monitoring/status").json()
        (firing,) = status["alerts"]
        assert firing["rule"] == "flaky-errors"
        assert firing["severity"] == "critical"
        assert firing["value"] == pytest.approx(0.5)
        assert firing["threshold"] == 0.2
        assert firing["stale"] is False
        listed = run.client.get("/v2/monitoring/alerts").json()
        assert [a["rule"] for a in listed["firing"]] == ["flaky-errors"]
        assert [h["status"] for h in listed["history"]] == ["firing"]
    # a restart keeps the alert's state: still firing after it, yet not notified again
    with monitored("flaky", **options) as run:
        run.evaluate()  # no requests since the restart: no data, the alert holds (stale)
        (held,) = run.client.get("/v2/monitoring/status").json()["alerts"]
        assert held["stale"] is True
        for i in range(10):
            run.client.post("/v2/models/flaky/infer", json=flaky_body(1.0, fail=i % 2))
        run.evaluate()
        for _ in range(40):
            run.client.post("/v2/models/flaky/infer", json=flaky_body(1.0))
        run.evaluate()  # 5 errors in 50 requests: 10% is under the threshold
        messages = receiver.wait_for(2)
        assert [m["status"] for m in messages] == ["firing", "resolved"]
        assert run.client.get("/v2/monitoring/status").json()["alerts"] == []
        listed = run.client.get("/v2/monitoring/alerts", params={"limit": 1}).json()
        assert listed["firing"] == []
        assert [h["status"] for h in listed["history"]] == ["resolved"]
        assert run.client.get("/v2/monitoring/alerts", params={"limit": 0}).status_code == 400
    assert len(receiver.messages) == 2


def test_with_monitoring_off_predictions_work_and_its_routes_say_so(
    flaky: Registry, monitored: Monitored
) -> None:
    with monitored("flaky", enabled=False) as run:
        answer = run.client.post("/v2/models/flaky/infer", json=flaky_body(1.0))
        assert answer.status_code == 200
        assert answer.headers["x-request-id"]
        for response in (
            run.client.get("/v2/monitoring/status"),
            run.client.get("/v2/monitoring/alerts"),
            run.client.get("/v2/models/flaky/drift"),
            run.client.post("/v2/models/flaky/feedback", json={"id": "a", "label": 1}),
        ):
            assert response.status_code == 404
            assert "monitoring is turned off" in response.json()["error"]
    assert not run.db.exists()


def test_without_the_prediction_log_windows_still_count(
    flaky: Registry, monitored: Monitored
) -> None:
    with monitored("flaky", prediction_log=False) as run:
        for _ in range(3):
            run.client.post("/v2/models/flaky/infer", json=flaky_body(1.0))
        assert (
            only_version(run.client.get("/v2/monitoring/status").json(), "flaky")["requests"] == 3
        )
        answer = run.client.post("/v2/models/flaky/feedback", json={"id": "x", "label": 1})
        assert answer.json() == {"accepted": 0, "unknown_ids": ["x"]}
    assert logged_latencies(run.db) == []


def test_an_app_built_without_a_log_url_logs_to_a_temporary_database(
    flaky: Registry, serve: ClientFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with serve("flaky") as client:
        (scratch,) = tmp_path.glob("modelport-monitor-*")
        assert (scratch / "monitoring.db").is_file()
        rid = client.post("/v2/models/flaky/infer", json=flaky_body(1.0)).headers["x-request-id"]
        answer = client.post("/v2/models/flaky/feedback", json={"id": rid, "label": 1})
        assert answer.json() == {"accepted": 1, "unknown_ids": []}
    assert not scratch.exists()
