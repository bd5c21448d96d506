"""Open Inference Protocol JSON requests and responses (shared by REST and the binary extension)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modelport.core.errors import InvalidInputError
from modelport.serving.tensors import (
    MAX_TENSORS,
    datatype_of,
    decode_json_tensor,
    decode_outputs,
    encode_json_tensor,
)
from modelport.serving.types import Prediction, RequestedOutput, Tensor
from modelport.serving.v2fast import Decoded, decode_plain_request, encode_plain_outputs

__all__ = [
    "decode_general_request",
    "decode_infer_request",
    "decode_request_envelope",
    "encode_infer_response",
    "select_outputs",
]


def decode_infer_request(body: Any) -> Decoded:
    """``(id, inputs, requested outputs, parameters)`` from a V2 JSON request body: the common
    shape in one pass (``v2fast``), any other through ``decode_general_request`` (the same
    answers and errors either way)."""
    plain = decode_plain_request(body)
    return plain if plain is not None else decode_general_request(body)


def decode_general_request(body: Any) -> Decoded:
    """``decode_infer_request`` for every request shape, one tensor object at a time."""
    request_id, raw_inputs, outputs, parameters = decode_request_envelope(body)
    tensors = [decode_json_tensor(t, i) for i, t in enumerate(raw_inputs)]
    return request_id, tensors, outputs, parameters


def decode_request_envelope(
    body: Any,
) -> tuple[str | None, list[Any], tuple[RequestedOutput, ...] | None, Mapping[str, Any]]:
    """``(id, undecoded inputs, requested outputs, parameters)`` of a V2 request object: all
    checked except the input tensors themselves (a list of 1 to ``MAX_TENSORS`` items)."""
    if not isinstance(body, Mapping):
        raise InvalidInputError("inference request must be a JSON object with 'inputs'")
    request_id = body.get("id")
    if request_id is not None and (not isinstance(request_id, str) or len(request_id) > 256):
        raise InvalidInputError("'id' must be a string of at most 256 characters")
    raw_inputs = body.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs or len(raw_inputs) > MAX_TENSORS:
        raise InvalidInputError(f"'inputs' must be a list of 1 to {MAX_TENSORS} tensors")
    parameters = body.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InvalidInputError("'parameters' must be an object")
    return request_id, raw_inputs, decode_outputs(body.get("outputs")), parameters


def select_outputs(
    prediction: Prediction, requested: tuple[RequestedOutput, ...] | None
) -> list[tuple[RequestedOutput, Tensor]]:
    """The output tensors to return, in request order (all when none were named)."""
    wanted = requested or tuple(RequestedOutput(n) for n in prediction.outputs)
    out = []
    for item in wanted:
        array = prediction.outputs.get(item.name)
        if array is None:
            raise InvalidInputError(
                f"output {item.name!r} is not an output of {prediction.model!r}; "
                f"available: {', '.join(prediction.outputs)}"
            )
        out.append((item, Tensor(item.name, datatype_of(array), array)))
    return out


def encode_infer_response(
    prediction: Prediction, request_id: str | None, requested: tuple[RequestedOutput, ...] | None
) -> dict[str, Any]:
    outputs = encode_plain_outputs(prediction, requested)
    if outputs is None:
        outputs = [encode_json_tensor(t) for _, t in select_outputs(prediction, requested)]
    response: dict[str, Any] = {
        "model_name": prediction.model,
        "model_version": str(prediction.version),
        "outputs": outputs,
    }
    if request_id is not None:
        response["id"] = request_id
    return response
