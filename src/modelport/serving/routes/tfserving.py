"""TensorFlow Serving REST API routes (predict, model status, model metadata).

A version is addressed as ``/v1/models/{name}``, ``.../versions/{version}`` or
``.../labels/{label}``, where a label is a registry alias of a served version. ``:predict`` takes
the row format (``instances`` → ``predictions``) or the columnar format (``inputs`` →
``outputs``); ``:classify`` and ``:regress`` (tf.Example APIs) answer 501. Errors are
``{"error": message}`` with the mapped status.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from modelport.core.errors import (
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    VersionNotFoundError,
)
from modelport.serving.http import (
    JSONResponse,
    check_content_type,
    deadline_for,
    parse_json,
    read_body,
)
from modelport.serving.requestid import use_request_body
from modelport.serving.routes.v2 import v2_errors
from modelport.serving.state import ServerState
from modelport.serving.tf_codec import (
    SIGNATURE_NAME,
    columnar_outputs,
    decode_columnar,
    decode_rows,
    model_input,
    parse_version,
    row_predictions,
    signature_def,
    version_for_label,
    version_status,
)

__all__ = ["routes"]

# TF Serving reads any body as JSON; ``curl -d`` (its documented client) sends the form type.
_TOLERATED = ("application/json", "application/x-www-form-urlencoded", "text/plain")


def routes(state: ServerState) -> list[BaseRoute]:
    plane = state.plane

    def target(request: Request) -> tuple[str, int | None]:
        """Model name and version (explicit, from a label, or None for the default)."""
        params = request.path_params
        name: str = params["name"]
        if "version" in params:
            return name, parse_version(params["version"])
        if "label" in params:
            return name, version_for_label(plane.statuses(), name, params["label"])
        return name, None

    @v2_errors
    async def predict(request: Request) -> Response:
        verb = request.path_params["verb"]
        if verb in ("classify", "regress"):
            return JSONResponse(
                {"error": f":{verb} (tf.Example input) is not supported; use :predict"}, 501
            )
        if verb != "predict":
            return JSONResponse({"error": "unknown method; use :predict"}, 404)
        model, version = target(request)
        check_content_type(request, _TOLERATED)
        body = parse_json(await read_body(request, state.admission.max_body_bytes))
        if not isinstance(body, dict):
            raise InvalidInputError(
                "the request must be a JSON object with 'instances' or 'inputs'"
            )
        signature_name = body.get("signature_name", SIGNATURE_NAME)
        if signature_name not in ("", SIGNATURE_NAME):
            raise InvalidInputError(
                f"unknown signature_name; models served here have one, {SIGNATURE_NAME!r}"
            )
        if ("instances" in body) == ("inputs" in body):
            raise InvalidInputError(
                "send exactly one of 'instances' (row format) or 'inputs' (columnar format)"
            )
        rows = "instances" in body
        use_request_body(body)  # what a sticky ``field:`` key is read from
        deadline = deadline_for(request, None, state.admission, state.clock)
        signature = plane.signature(model, version)
        value = decode_rows(body["instances"]) if rows else decode_columnar(body["inputs"])
        inputs = model_input(value, signature, model)
        if isinstance(inputs, list):
            prediction = await plane.predict_tensors(model, version, inputs, deadline=deadline)
        else:
            prediction = await plane.predict_frame(model, version, inputs, deadline=deadline)
        if rows:
            return JSONResponse({"predictions": row_predictions(prediction.outputs)})
        return JSONResponse({"outputs": columnar_outputs(prediction.outputs)})

    @v2_errors
    async def status(request: Request) -> Response:
        model, version = target(request)
        statuses = [s for s in plane.statuses() if s.model == model]
        if not statuses:
            if model in plane.models():
                raise ModelNotReadyError(f"model {model!r} has no version yet; retry shortly")
            raise ModelNotFoundError(f"model {model!r} is not served here")
        if version is not None:
            statuses = [s for s in statuses if s.version == version]
            if not statuses:
                raise VersionNotFoundError(f"version {version} of {model!r} is not served here")
        return JSONResponse(version_status(statuses))

    @v2_errors
    async def metadata(request: Request) -> Response:
        model, version = target(request)
        return JSONResponse(signature_def(plane.info(model, version)))

    base = "/v1/models/{name}"
    return [
        Route(base, status, methods=["GET"]),
        Route(base + "/versions/{version}", status, methods=["GET"]),
        Route(base + "/labels/{label}", status, methods=["GET"]),
        Route(base + "/metadata", metadata, methods=["GET"]),
        Route(base + "/versions/{version}/metadata", metadata, methods=["GET"]),
        Route(base + "/labels/{label}/metadata", metadata, methods=["GET"]),
        # the ":verb" suffix is parsed by the handler (the name itself cannot hold a ':')
        Route(base + ":{verb}", predict, methods=["POST"]),
        Route(base + "/versions/{version}:{verb}", predict, methods=["POST"]),
        Route(base + "/labels/{label}:{verb}", predict, methods=["POST"]),
    ]
