"""Between V2 gRPC messages and the data plane's values.

Inputs come as typed ``InferTensorContents`` or as ``raw_input_contents`` (the same little-endian
layout as the REST binary extension, decoded by the same code); they are validated like JSON
inputs (names, datatypes, bounded shapes) before any array is built. Outputs go back raw when the
request was raw (what tritonclient reads) or when a datatype has no typed field (FP16), else typed.

Messages are built from a runtime descriptor, so they are typed ``Any`` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError
from modelport.serving.binary import (
    bytes_elements,
    decode_raw_tensor,
    encode_bytes_element,
    encode_raw_tensor,
)
from modelport.serving.grpc import proto
from modelport.serving.tensors import (
    MAX_TENSORS,
    TensorHeader,
    decode_outputs,
    decode_tensor_header,
)
from modelport.serving.types import ModelInfo, Prediction, RequestedOutput, Tensor

__all__ = [
    "CONTENTS_FIELDS",
    "InferRequest",
    "decode_infer_request",
    "encode_infer_response",
    "encode_model_metadata",
    "parameters_of",
    "parse_version",
]

# the typed contents field of each datatype (FP16 has none: it must travel raw)
CONTENTS_FIELDS: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
_ALL_FIELDS = tuple(sorted(set(CONTENTS_FIELDS.values())))
_MAX_ID = 256


@dataclass(frozen=True, slots=True)
class InferRequest:
    """A decoded ``ModelInferRequest``; ``raw`` tells whether inputs came as raw contents."""

    model: str
    version: int | None
    request_id: str | None
    inputs: list[Tensor]
    outputs: tuple[RequestedOutput, ...] | None
    parameters: dict[str, Any]
    raw: bool


def parse_version(text: str) -> int | None:
    """A V2 ``model_version`` string: empty for the default version, else a positive integer."""
    if not text:
        return None
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) < 1:
        raise InvalidInputError("model version must be a positive integer")
    return int(text)


def parameters_of(entries: Any) -> dict[str, Any]:
    """A ``map<string, InferParameter>`` as plain values (unset parameters are left out)."""
    out: dict[str, Any] = {}
    for key, value in entries.items():
        choice = value.WhichOneof("parameter_choice")
        if choice is not None:
            out[str(key)] = getattr(value, choice)
    return out


def decode_infer_request(request: Any) -> InferRequest:
    """A ``ModelInferRequest`` checked like a V2 JSON request, inputs decoded."""
    model = request.model_name
    if not model:
        raise InvalidInputError("'model_name' is required")
    version = parse_version(request.model_version)
    request_id = request.id or None
    if request_id is not None and len(request_id) > _MAX_ID:
        raise InvalidInputError(f"'id' must be a string of at most {_MAX_ID} characters")
    inputs = request.inputs
    if not 1 <= len(inputs) <= MAX_TENSORS:
        raise InvalidInputError(f"'inputs' must be a list of 1 to {MAX_TENSORS} tensors")
    raw = request.raw_input_contents
    if raw and len(raw) != len(inputs):
        raise InvalidInputError(
            f"'raw_input_contents' has {len(raw)} entries for {len(inputs)} inputs; give one per"
            " input, in input order"
        )
    heads = [
        decode_tensor_header(
            {
                "name": item.name,
                "datatype": item.datatype,
                "shape": list(item.shape),
                "parameters": parameters_of(item.parameters),
            },
            index,
        )
        for index, item in enumerate(inputs)
    ]
    tensors = []
    for index, (item, head) in enumerate(zip(inputs, heads, strict=True)):
        if raw:
            if item.contents.ListFields():
                raise InvalidInputError(
                    f"{head.what}: with 'raw_input_contents' no input may set 'contents'"
                )
            tensors.append(decode_raw_tensor(head, raw[index]))
        else:
            tensors.append(_typed_tensor(head, item.contents))
    outputs = decode_outputs(
        [{"name": o.name, "parameters": parameters_of(o.parameters)} for o in request.outputs]
        or None
    )
    parameters = parameters_of(request.parameters)
    return InferRequest(model, version, request_id, tensors, outputs, parameters, bool(raw))


def _typed_tensor(head: TensorHeader, contents: Any) -> Tensor:
    field = CONTENTS_FIELDS.get(head.datatype)
    if field is None:
        raise InvalidInputError(f"{head.what}: {head.datatype} must be sent in raw_input_contents")
    values = getattr(contents, field)
    if len(values) != head.count:
        raise InvalidInputError(
            f"{head.what}: '{field}' has {len(values)} elements but shape {list(head.shape)}"
            f" needs {head.count}"
        )
    stray = [f for f in _ALL_FIELDS if f != field and len(getattr(contents, f))]
    if stray:
        raise InvalidInputError(
            f"{head.what}: {head.datatype} data goes in {field!r}, not {stray[0]!r}"
        )
    if head.datatype == "BYTES":
        flat = bytes_elements(list(values))
    elif head.dtype.kind in "iu":
        wide = np.fromiter(values, dtype=np.int64 if head.dtype.kind == "i" else np.uint64)
        info = np.iinfo(head.dtype)
        if wide.size and (wide.min() < info.min or wide.max() > info.max):
            raise InvalidInputError(f"{head.what}: values are out of range for {head.datatype}")
        flat = wide.astype(head.dtype)
    else:
        flat = np.fromiter(values, dtype=head.dtype, count=head.count)
    return Tensor(head.name, head.datatype, flat.reshape(head.shape), head.parameters)


def encode_infer_response(
    prediction: Prediction,
    request_id: str | None,
    outputs: list[tuple[RequestedOutput, Tensor]],
    raw: bool,
) -> Any:
    """A ``ModelInferResponse``: outputs raw when ``raw`` or when one has no typed field."""
    response: Any = proto.ModelInferResponse(
        model_name=prediction.model, model_version=str(prediction.version), id=request_id or ""
    )
    raw = raw or any(t.datatype not in CONTENTS_FIELDS for _, t in outputs)
    for _, tensor in outputs:
        item = response.outputs.add(
            name=tensor.name, datatype=tensor.datatype, shape=list(tensor.shape)
        )
        if raw:
            response.raw_output_contents.append(encode_raw_tensor(tensor))
            continue
        values = getattr(item.contents, CONTENTS_FIELDS[tensor.datatype])
        flat = tensor.data.reshape(-1)
        if tensor.datatype == "BYTES":
            values.extend(encode_bytes_element(v) for v in flat.tolist())
        else:
            values.extend(flat.astype(proto_dtype(tensor.datatype), copy=False).tolist())
    return response


def proto_dtype(datatype: str) -> np.dtype[Any]:
    """The numpy dtype whose Python values a typed contents field takes."""
    return np.dtype(
        {"BOOL": np.bool_, "FP32": np.float32, "FP64": np.float64}.get(
            datatype, np.uint64 if datatype.startswith("UINT") else np.int64
        )
    )


def encode_model_metadata(
    info: ModelInfo, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]]
) -> Any:
    """A ``ModelMetadataResponse`` from model info and its V2 tensor descriptors."""
    response: Any = proto.ModelMetadataResponse(
        name=info.name, versions=[str(v) for v in info.versions], platform=info.platform
    )
    for target, descriptors in ((response.inputs, inputs), (response.outputs, outputs)):
        for item in descriptors:
            target.add(name=item["name"], datatype=item["datatype"], shape=item["shape"])
    return response
