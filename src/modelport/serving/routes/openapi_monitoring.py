"""The monitoring routes in the data plane's OpenAPI document: feedback, drift, status, alerts,
endpoints."""

from __future__ import annotations

from typing import Any

from modelport.serving.routes.openapi_parts import (
    MONITORING,
    json_body,
    obj,
    operation,
    query_parameter,
    ref,
)

__all__ = ["monitoring_paths", "monitoring_schemas"]


def monitoring_paths() -> dict[str, dict[str, Any]]:
    feedback = operation(
        MONITORING,
        "Ground-truth labels of earlier predictions, by request id (the X-Request-ID of the "
        "prediction's response, or the V2 request id). Unknown ids are reported, not stored.",
        json_body(ref("FeedbackResult")),
        errors=(400, 404, 413, 415, 500, 503),
        body={
            "required": True,
            "content": {
                "application/json": {"schema": ref("FeedbackRequest")},
                "text/csv": {
                    "schema": {"type": "string", "description": "A header `id,label`, then rows."}
                },
            },
        },
    )
    drift = operation(
        MONITORING,
        "Drift of the version's logged inputs (and predictions) against its reference profile, "
        "computed now.",
        json_body(ref("DriftReport")),
        errors=(400, 404, 500, 503),
        parameters=[
            query_parameter("version", "Version (default: the one answering).", 999_999_999),
            query_parameter(
                "window_s", "Seconds of logged predictions (default: the server's).", 2_592_000
            ),
        ],
    )
    status = operation(
        MONITORING,
        "Live figures per version over the rolling window, merged over every worker, with "
        "accuracy, drift and firing alerts of the latest evaluation.",
        json_body(ref("MonitoringStatus")),
        errors=(404, 500),
    )
    alerts = operation(
        MONITORING,
        "Firing alerts and the newest firing / resolved transitions, from the alert log.",
        json_body(ref("AlertList")),
        errors=(400, 404, 500, 503),
        parameters=[query_parameter("limit", "Transitions listed (default 100).", 10_000)],
    )
    endpoints = operation(
        MONITORING,
        "The endpoints this worker routes by a rollout's route table: the table in force and, "
        "per shadow version, its agreement with the primary and latency delta.",
        json_body(ref("EndpointList")),
        errors=(500,),
    )
    return {
        "/v2/endpoints": {"get": endpoints},
        "/v2/models/{name}/feedback": {"post": feedback},
        "/v2/models/{name}/drift": {"get": drift},
        "/v2/monitoring/status": {"get": status},
        "/v2/monitoring/alerts": {"get": alerts},
    }


def monitoring_schemas() -> dict[str, Any]:
    string, number, integer = {"type": "string"}, {"type": "number"}, {"type": "integer"}
    nullable_number = {"type": ["number", "null"]}
    nullable_string = {"type": ["string", "null"]}
    verdict = {"type": "string", "enum": ["ok", "drift", "insufficient data"]}
    label = {"type": ["number", "string", "boolean"]}
    item = obj(
        ["id", "label"], id=string, label={"oneOf": [label, {"type": "array", "items": label}]}
    )
    feature = obj(
        ["feature", "kind", "statistic", "score", "p_value", "verdict", "reason"],
        feature=string,
        kind={"type": "string", "enum": ["numeric", "categorical"]},
        statistic=string,
        score=nullable_number,
        p_value=nullable_number,
        verdict=verdict,
        reason=string,
    )
    accuracy = obj(
        ["value", "labeled", "window_s", "task", "mae", "rmse"],
        value=nullable_number,
        labeled=integer,
        window_s=integer,
        task={"type": "string", "enum": ["classification", "regression"]},
        mae=nullable_number,
        rmse=nullable_number,
    )
    drift = obj(
        ["verdict", "drifted", "window_s"],
        verdict=verdict,
        drifted={"type": "array", "items": string},
        window_s=integer,
    )
    version = obj(
        [
            "model",
            "version",
            "state",
            "traffic_share",
            "requests",
            "rate_per_s",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "error_rate",
            "accuracy",
            "drift",
        ],
        model=string,
        version=string,
        state=string,
        traffic_share=number,
        requests=integer,
        rate_per_s=number,
        p50_ms=nullable_number,
        p95_ms=nullable_number,
        p99_ms=nullable_number,
        error_rate=number,
        accuracy={"oneOf": [{"type": "null"}, accuracy]},
        drift={"oneOf": [{"type": "null"}, drift]},
    )
    active = obj(
        [
            "rule",
            "kind",
            "severity",
            "model",
            "version",
            "feature",
            "value",
            "threshold",
            "since",
            "stale",
        ],
        rule=string,
        kind=string,
        severity=string,
        model=string,
        version=string,
        feature=nullable_string,
        value=nullable_number,
        threshold=number,
        since=string,
        stale={"type": "boolean"},
    )
    event = obj(
        ["rule", "kind", "severity", "status", "model", "version", "threshold", "starts_at"],
        rule=string,
        kind=string,
        severity=string,
        status={"type": "string", "enum": ["firing", "resolved"]},
        model=string,
        version=string,
        feature=nullable_string,
        statistic=nullable_string,
        value=nullable_number,
        threshold=number,
        window_s=integer,
        since=string,
        starts_at=string,
        ends_at=nullable_string,
        fingerprint=string,
        summary=string,
        id=integer,
        recorded_at=string,
    )
    shadow = obj(
        ["version", "compared", "agreed", "failed", "agreement"],
        version=string,
        compared=integer,
        agreed=integer,
        failed=integer,
        agreement=nullable_number,
        agreement_low=nullable_number,
        agreement_high=nullable_number,
        latency_delta_p50_ms=nullable_number,
        latency_delta_p95_ms=nullable_number,
    )
    endpoint = obj(
        ["endpoint", "model", "generation", "table", "shadows"],
        endpoint=string,
        model=string,
        generation=integer,
        table={"type": "object"},
        shadows={"type": "array", "items": shadow},
    )
    return {
        "EndpointList": obj(
            ["endpoints", "mirrors_dropped"],
            endpoints={"type": "array", "items": endpoint},
            mirrors_dropped=integer,
        ),
        "FeedbackRequest": {"oneOf": [item, {"type": "array", "items": item, "minItems": 1}]},
        "FeedbackResult": obj(
            ["accepted", "unknown_ids"],
            accepted=integer,
            unknown_ids={"type": "array", "items": string},
        ),
        "DriftFeature": feature,
        "DriftReport": obj(
            ["model", "version", "window_s", "rows", "features", "prediction"],
            model=string,
            version=string,
            window_s=integer,
            rows=integer,
            features={"type": "array", "items": ref("DriftFeature")},
            prediction={"oneOf": [{"type": "null"}, ref("DriftFeature")]},
        ),
        "MonitoringStatus": obj(
            ["window_s", "generated_at", "ready", "versions", "alerts"],
            window_s=integer,
            generated_at=string,
            ready={"type": "boolean"},
            versions={"type": "array", "items": version},
            alerts={"type": "array", "items": active},
        ),
        "AlertList": obj(
            ["firing", "history"],
            firing={"type": "array", "items": event},
            history={"type": "array", "items": event},
        ),
    }
