"""The monitoring routes' answers match the shapes the OpenAPI document promises (the contract
the CLI is written against), and are documented."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from tests.serving.conftest import COLUMNS
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
from modelport.serving.routes.openapi import openapi_document

__all__ = ["flaky", "monitored", "receiver"]  # fixtures used here

jsonschema = pytest.importorskip("jsonschema")


def check(schema_name: str, body: Any) -> None:
    document = openapi_document()
    schema = {
        "$ref": f"#/components/schemas/{schema_name}",
        "components": document["components"],
    }
    jsonschema.Draft202012Validator(schema).validate(body)


def test_monitoring_routes_are_documented() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/v2/models/{name}/feedback"]) == {"parameters", "post"}
    assert set(paths["/v2/models/{name}/drift"]) == {"parameters", "get"}
    assert "get" in paths["/v2/monitoring/status"]
    assert "get" in paths["/v2/monitoring/alerts"]
    drift_params = {p["name"] for p in paths["/v2/models/{name}/drift"]["get"]["parameters"]}
    assert drift_params == {"version", "window_s"}
    feedback = paths["/v2/models/{name}/feedback"]["post"]["requestBody"]["content"]
    assert set(feedback) == {"application/json", "text/csv"}
    check("FeedbackRequest", {"id": "a", "label": 1})
    check("FeedbackRequest", [{"id": "a", "label": [1, "x", True]}])
    with pytest.raises(jsonschema.ValidationError):
        check("FeedbackRequest", {"id": "a"})


def test_every_answer_has_the_documented_shape(
    models: Registry, flaky: Registry, monitored: Monitored, receiver: Receiver, tmp_path: Any
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "rules:\n"
        "  - {name: errs, kind: error_rate, threshold: 0.1, window_s: 60, min_samples: 1}\n"
        "  - {name: shift, kind: drift, model: clf, threshold: 0.5, window_s: 3600,\n"
        "     min_samples: 5}\n"
    )
    options = {
        "alert_rules": str(rules),
        "webhook_url": receiver.url,
        "webhook_allowed_hosts": ("127.0.0.1",),
    }
    rng = np.random.default_rng(1)
    with monitored("clf@champion", "flaky", **options) as run:
        post = run.client.post
        for _ in range(8):
            rows = rng.normal(size=(8, 4)) + np.array([3.0, 0, 0, 0])
            body = tensors(**{n: [float(v) for v in rows[:, j]] for j, n in enumerate(COLUMNS)})
            assert post("/v2/models/clf/infer", json=body).status_code == 200
        ids = [
            post("/v2/models/flaky/infer", json=flaky_body(x, fail=int(x > 1))).headers[
                "x-request-id"
            ]
            for x in (0.5, -0.5, 1.5)
        ]
        feedback = post(
            "/v2/models/flaky/feedback", json=[{"id": i, "label": 1} for i in [*ids, "?"]]
        ).json()
        check("FeedbackResult", feedback)
        assert feedback == {"accepted": 3, "unknown_ids": ["?"]}  # a failed request is logged too
        run.evaluate()
        receiver.wait_for(1)
        status = run.client.get("/v2/monitoring/status").json()
        check("MonitoringStatus", status)
        clf = next(v for v in status["versions"] if v["model"] == "clf")
        flaky_v = next(v for v in status["versions"] if v["model"] == "flaky")
        assert clf["drift"]["verdict"] == "drift"
        assert flaky_v["drift"] is None  # registered without training data
        assert flaky_v["accuracy"]["value"] == 0.5
        assert {a["rule"] for a in status["alerts"]} == {"errs", "shift"}
        shift = next(a for a in status["alerts"] if a["rule"] == "shift")
        assert shift["feature"] == "f0"
        drift = run.client.get("/v2/models/clf/drift").json()
        check("DriftReport", drift)
        alerts = run.client.get("/v2/monitoring/alerts").json()
        check("AlertList", alerts)
        assert {a["rule"] for a in alerts["firing"]} == {"errs", "shift"}
        for answer in (
            run.client.get("/v2/models/nope/drift"),
            run.client.get("/v2/monitoring/alerts", params={"limit": "many"}),
            post("/v2/models/nope/feedback", json={"id": "a", "label": 1}),
        ):
            check("V2Error", answer.json())
