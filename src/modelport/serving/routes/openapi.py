"""``GET /openapi.json``: an OpenAPI 3.1 document of every HTTP route of the data plane.

The document is written by hand (the routes are plain Starlette); a test walks the routes of a
real app and fails for any path and method this document does not describe.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport._version import __version__
from modelport.serving.routes.openapi_monitoring import monitoring_paths, monitoring_schemas
from modelport.serving.routes.openapi_parts import (
    MONITORING,
    json_body,
    obj,
    operation,
    ref,
    text_body,
)
from modelport.serving.state import ServerState

__all__ = ["openapi_document", "routes"]

V2, MLFLOW, TF, HEALTH, DOCS = (
    "Open Inference Protocol (V2)",
    "MLflow scoring",
    "TensorFlow Serving REST",
    "Health",
    "Documentation",
)
_PARAM = re.compile(r"\{(\w+)\}")
_PATH_PARAMS: dict[str, dict[str, Any]] = {
    "model": {"description": "Model name.", "schema": {"type": "string"}},
    "name": {"description": "Model name.", "schema": {"type": "string"}},
    "version": {
        "description": "Model version number.",
        "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,8}$"},
    },
    "label": {
        "description": "A registry alias naming one of the served versions.",
        "schema": {"type": "string"},
    },
    "verb": {
        "description": "Only `predict` is implemented; `classify` and `regress` answer 501.",
        "schema": {"type": "string", "enum": ["predict", "classify", "regress"]},
    },
}
_TIMEOUT = {
    "name": "X-Request-Timeout",
    "in": "header",
    "required": False,
    "description": "Deadline in seconds (e.g. `2.5`); also `Request-Timeout` or `grpc-timeout`.",
    "schema": {"type": "string"},
}
_PREDICT_ERRORS = (400, 404, 413, 415, 500, 503, 504)
_META_ERRORS = (400, 404, 503)


def _paths() -> dict[str, dict[str, Any]]:
    infer = operation(
        V2,
        "Run inference (JSON, or binary tensor data with Inference-Header-Content-Length).",
        json_body(ref("V2InferenceResponse")),
        errors=_PREDICT_ERRORS,
        parameters=[_TIMEOUT],
        body={
            "required": True,
            "content": {
                "application/json": {"schema": ref("V2InferenceRequest")},
                "application/octet-stream": {
                    "schema": {"type": "string", "contentMediaType": "application/octet-stream"}
                },
            },
        },
    )
    model_meta = operation(
        V2, "Model metadata.", json_body(ref("V2ModelMetadata")), errors=_META_ERRORS
    )
    model_ready = operation(
        V2,
        "Is the model (version) ready?",
        json_body(ref("V2ModelReady")),
        errors=(400, 404),
        extra={503: json_body(ref("V2ModelReady"), "Not ready.")},
    )
    mlflow_body = {
        "required": True,
        "content": {
            "application/json": {"schema": ref("MlflowRequest")},
            "text/csv": {"schema": {"type": "string", "description": "CSV with a header row."}},
        },
    }
    score = operation(
        MLFLOW,
        "Score rows (MLflow scoring protocol).",
        json_body(ref("MlflowResponse")),
        errors=_PREDICT_ERRORS,
        error="MlflowError",
        body=mlflow_body,
        parameters=[_TIMEOUT],
    )
    ping = operation(
        HEALTH,
        "MLflow health check: 200 when every served version is ready, else 404.",
        {"description": "Ready (body is a newline)."},
        extra={404: {"description": "Not ready."}},
    )
    tf_predict = operation(
        TF,
        "Predict (row format `instances` or columnar format `inputs`).",
        json_body(ref("TfPredictResponse")),
        errors=(*_PREDICT_ERRORS, 501),
        error="TfError",
        parameters=[_TIMEOUT],
        body={
            "required": True,
            "content": {"application/json": {"schema": ref("TfPredictRequest")}},
        },
    )
    tf_status = operation(
        TF,
        "Model version status.",
        json_body(ref("TfModelStatus")),
        errors=(400, 404),
        error="TfError",
    )
    tf_meta = operation(
        TF,
        "Model metadata (signature def).",
        json_body(ref("TfModelMetadata")),
        errors=_META_ERRORS,
        error="TfError",
    )
    v1 = "/v1/models/{name}"
    paths: dict[str, dict[str, Any]] = {
        "/v2/health/live": {"get": operation(HEALTH, "Liveness.", json_body(ref("V2Live")))},
        "/v2/health/ready": {
            "get": operation(
                HEALTH,
                "Readiness: every version taking traffic is loaded, warmed and smoke-tested.",
                json_body(ref("V2Ready")),
                extra={503: json_body(ref("V2Ready"), "Not ready.")},
            )
        },
        "/v2": {"get": operation(V2, "Server metadata.", json_body(ref("V2ServerMetadata")))},
        "/v2/repository/index": {
            "post": operation(
                V2,
                "Every model version the server knows, with its state.",
                json_body({"type": "array", "items": ref("V2RepositoryEntry")}),
                body={
                    "required": False,
                    "content": {"application/json": {"schema": ref("V2RepositoryIndexRequest")}},
                },
            )
        },
        "/v2/models/{model}": {"get": model_meta},
        "/v2/models/{model}/versions/{version}": {"get": model_meta},
        "/v2/models/{model}/ready": {"get": model_ready},
        "/v2/models/{model}/versions/{version}/ready": {"get": model_ready},
        "/v2/models/{model}/infer": {"post": infer},
        "/v2/models/{model}/versions/{version}/infer": {"post": infer},
        "/invocations": {"post": score},
        "/models/{name}/invocations": {"post": score},
        "/models/{name}/versions/{version}/invocations": {"post": score},
        "/ping": {"get": ping},
        "/health": {"get": ping},
        "/version": {
            "get": operation(MLFLOW, "The server's version.", text_body("Version string."))
        },
        v1: {"get": tf_status},
        v1 + "/versions/{version}": {"get": tf_status},
        v1 + "/labels/{label}": {"get": tf_status},
        v1 + "/metadata": {"get": tf_meta},
        v1 + "/versions/{version}/metadata": {"get": tf_meta},
        v1 + "/labels/{label}/metadata": {"get": tf_meta},
        v1 + ":{verb}": {"post": tf_predict},
        v1 + "/versions/{version}:{verb}": {"post": tf_predict},
        v1 + "/labels/{label}:{verb}": {"post": tf_predict},
        "/openapi.json": {
            "get": operation(
                DOCS, "This document.", json_body({"type": "object"}, "OpenAPI 3.1 document.")
            )
        },
        "/metrics": {
            "get": operation(
                MONITORING,
                "Prometheus metrics of every worker (requests, latency, queues, batches, models).",
                text_body("Prometheus text exposition format."),
            )
        },
        **monitoring_paths(),
    }
    out: dict[str, dict[str, Any]] = {}
    for path, item in paths.items():
        params = [
            {"name": p, "in": "path", "required": True, **_PATH_PARAMS[p]}
            for p in _PARAM.findall(path)
        ]
        out[path] = {"parameters": params, **item} if params else item
    return out


_DATATYPES = [
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
_ANY_PARAMS = {"type": "object", "additionalProperties": True}


def _schemas() -> dict[str, Any]:
    string, boolean = {"type": "string"}, {"type": "boolean"}
    strings = {"type": "array", "items": string}
    shape = {"type": "array", "items": {"type": "integer"}}
    tensor_meta = obj(
        ["name", "datatype", "shape"],
        name=string,
        datatype={"type": "string", "enum": _DATATYPES},
        shape=shape,
    )
    tensor = obj(
        ["name", "datatype", "shape", "data"],
        name=string,
        datatype={"type": "string", "enum": _DATATYPES},
        shape={"type": "array", "items": {"type": "integer", "minimum": 0}},
        parameters=_ANY_PARAMS,
        data={"type": "array", "description": "Row-major elements, flat or nested."},
    )
    records = {"type": "array", "items": _ANY_PARAMS}
    tensor_info = obj(
        ["dtype", "tensor_shape", "name"],
        dtype={"type": "string", "description": "DT_FLOAT, DT_DOUBLE, DT_INT64, DT_STRING..."},
        tensor_shape=obj(
            ["dim", "unknown_rank"],
            dim={"type": "array", "items": obj(["size"], size=string, name=string)},
            unknown_rank=boolean,
        ),
        name=string,
    )
    return {
        "V2Error": obj(["error"], error=string),
        "V2Live": obj(["live"], live=boolean),
        "V2Ready": obj(["ready"], ready=boolean),
        "V2ModelReady": obj(["name", "ready"], name=string, ready=boolean),
        "V2ServerMetadata": obj(
            ["name", "version", "extensions"], name=string, version=string, extensions=strings
        ),
        "V2TensorMetadata": tensor_meta,
        "V2ModelMetadata": obj(
            ["name", "platform", "inputs", "outputs"],
            name=string,
            versions=strings,
            platform=string,
            inputs={"type": "array", "items": ref("V2TensorMetadata")},
            outputs={"type": "array", "items": ref("V2TensorMetadata")},
            parameters=_ANY_PARAMS,
        ),
        "V2Tensor": tensor,
        "V2RequestedOutput": obj(["name"], name=string, parameters=_ANY_PARAMS),
        "V2InferenceRequest": obj(
            ["inputs"],
            id=string,
            parameters=_ANY_PARAMS,
            inputs={"type": "array", "items": ref("V2Tensor"), "minItems": 1},
            outputs={"type": "array", "items": ref("V2RequestedOutput")},
        ),
        "V2InferenceResponse": obj(
            ["model_name", "outputs"],
            model_name=string,
            model_version=string,
            id=string,
            parameters=_ANY_PARAMS,
            outputs={"type": "array", "items": ref("V2Tensor")},
        ),
        "V2RepositoryIndexRequest": obj([], ready=boolean),
        "V2RepositoryEntry": obj(
            ["name", "state"],
            name=string,
            version=string,
            state={"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
            reason=string,
        ),
        "MlflowDataframeSplit": obj(
            ["data"],
            columns=strings,
            data={"type": "array", "description": "Rows, each a list with one value per column."},
            index={"type": "array"},
        ),
        "MlflowRequest": {
            **obj(
                [],
                dataframe_split=ref("MlflowDataframeSplit"),
                dataframe_records=records,
                instances={"type": "array", "description": "Rows, or one object per row."},
                inputs={
                    "type": ["array", "object"],
                    "description": "A tensor, or an object of input name to values.",
                },
                params={**_ANY_PARAMS, "description": "Accepted and ignored for now."},
            ),
            "oneOf": [
                {"required": ["dataframe_split"]},
                {"required": ["dataframe_records"]},
                {"required": ["instances"]},
                {"required": ["inputs"]},
            ],
        },
        "MlflowResponse": obj(
            ["predictions"],
            predictions={
                "type": "array",
                "description": "One value per row (the `predictions` output, or the only "
                "output), or one object per row when the model has several other outputs.",
            },
        ),
        "MlflowError": obj(
            ["error_code", "message"],
            error_code={
                "type": "string",
                "enum": [
                    "BAD_REQUEST",
                    "INVALID_PARAMETER_VALUE",
                    "RESOURCE_DOES_NOT_EXIST",
                    "TEMPORARILY_UNAVAILABLE",
                    "DEADLINE_EXCEEDED",
                    "INTERNAL_ERROR",
                ],
            },
            message=string,
        ),
        "TfPredictRequest": {
            **obj(
                [],
                signature_name={"type": "string", "enum": ["", "serving_default"]},
                instances={"type": "array", "description": "Rows, or one object per row."},
                inputs={
                    "type": ["array", "object"],
                    "description": "A tensor, or an object of input name to tensor.",
                },
            ),
            "oneOf": [{"required": ["instances"]}, {"required": ["inputs"]}],
        },
        "TfPredictResponse": {
            "oneOf": [
                obj(
                    ["predictions"],
                    predictions={
                        "type": "array",
                        "description": "Per row: the only output's value, else an object of "
                        "output name to value.",
                    },
                ),
                obj(
                    ["outputs"],
                    outputs={
                        "type": ["array", "object"],
                        "description": "The only output's tensor, else an object of output "
                        "name to tensor.",
                    },
                ),
            ]
        },
        "TfModelStatus": obj(
            ["model_version_status"],
            model_version_status={
                "type": "array",
                "items": obj(
                    ["version", "state", "status"],
                    version=string,
                    state={
                        "type": "string",
                        "enum": ["LOADING", "AVAILABLE", "UNLOADING", "END", "UNKNOWN"],
                    },
                    status=obj(
                        ["error_code", "error_message"], error_code=string, error_message=string
                    ),
                ),
            },
        ),
        "TfTensorInfo": tensor_info,
        "TfSignatureDef": obj(
            ["inputs", "outputs", "method_name"],
            inputs={"type": "object", "additionalProperties": ref("TfTensorInfo")},
            outputs={"type": "object", "additionalProperties": ref("TfTensorInfo")},
            method_name=string,
        ),
        "TfModelMetadata": obj(
            ["model_spec", "metadata"],
            model_spec=obj(["name", "version"], name=string, signature_name=string, version=string),
            metadata=obj(
                ["signature_def"],
                signature_def=obj(
                    ["signature_def"],
                    signature_def={
                        "type": "object",
                        "additionalProperties": ref("TfSignatureDef"),
                    },
                ),
            ),
        ),
        "TfError": obj(["error"], error=string),
        **monitoring_schemas(),
    }


def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the data plane."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "modelport data plane",
            "version": __version__,
            "description": "Predictions over the Open Inference Protocol (KServe V2), the "
            "MLflow scoring protocol and the TensorFlow Serving REST API; their monitoring "
            "(metrics, status, drift, ground-truth feedback, alerts). Every response carries "
            "the request's id in X-Request-ID.",
        },
        "tags": [{"name": t} for t in (V2, MLFLOW, TF, HEALTH, DOCS, MONITORING)],
        "paths": _paths(),
        "components": {"schemas": _schemas()},
    }


def routes(state: ServerState) -> list[BaseRoute]:
    document = orjson.dumps(openapi_document())

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    return [Route("/openapi.json", openapi, methods=["GET"])]
