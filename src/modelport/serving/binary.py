"""Triton's binary tensor data extension of the V2 REST protocol, and the raw tensor layout it
shares with gRPC's ``raw_input_contents`` / ``raw_output_contents``.

A binary request body is a V2 JSON request (its length in the ``Inference-Header-Content-Length``
header) followed by the raw data of every input whose parameters carry ``binary_data_size``, in
input order. Raw data is little-endian, row-major, without padding; ``BOOL`` is one byte (0 or 1)
per element; a ``BYTES`` element is a 4-byte little-endian length followed by that many bytes.
A response is framed the same way when the request asked for binary outputs.

Every size is checked against the declared shapes and the body before anything is allocated;
messages name tensors and sizes, never data.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from modelport.core.errors import InvalidInputError, PredictionError
from modelport.serving.tensors import (
    DATATYPES,
    TensorHeader,
    decode_json_tensor,
    decode_tensor_header,
    encode_json_tensor,
)
from modelport.serving.types import Prediction, RequestedOutput, Tensor
from modelport.serving.v2codec import decode_request_envelope, select_outputs

__all__ = [
    "bytes_elements",
    "decode_binary_request",
    "decode_raw_tensor",
    "encode_binary_response",
    "encode_bytes_element",
    "encode_raw_tensor",
    "wants_binary",
]

SIZE_PARAMETER = "binary_data_size"
_LENGTH = struct.Struct("<I")
_MAX_ELEMENT_BYTES = 2**32 - 1


def decode_binary_request(
    body: bytes, header_length: int
) -> tuple[str | None, list[Tensor], tuple[RequestedOutput, ...] | None, Mapping[str, Any]]:
    """``(id, inputs, requested outputs, parameters)`` of a binary-extension request body."""
    if header_length < 2 or header_length > len(body):
        raise InvalidInputError(
            f"Inference-Header-Content-Length is {header_length} but the body has {len(body)}"
            " bytes; it must give the length of the JSON header at the start of the body"
        )
    view = memoryview(body)
    try:
        header = orjson.loads(view[:header_length])
    except orjson.JSONDecodeError:
        raise InvalidInputError("the inference header is not valid JSON") from None
    request_id, raw_inputs, outputs, parameters = decode_request_envelope(header)
    sizes = [_binary_size(obj, i) for i, obj in enumerate(raw_inputs)]
    declared = sum(s for s in sizes if s is not None)
    remainder = len(body) - header_length
    if declared != remainder:
        raise InvalidInputError(
            f"inputs declare {declared} bytes of binary data but {remainder} follow the header"
        )
    tensors = []
    offset = header_length
    for index, (obj, size) in enumerate(zip(raw_inputs, sizes, strict=True)):
        if size is None:
            tensors.append(decode_json_tensor(obj, index))
            continue
        head = decode_tensor_header(obj, index)
        if "data" in obj:
            raise InvalidInputError(f"{head.what}: give either 'data' or {SIZE_PARAMETER!r}")
        tensors.append(decode_raw_tensor(head, view[offset : offset + size]))
        offset += size
    return request_id, tensors, outputs, parameters


def _binary_size(obj: object, index: int) -> int | None:
    """The ``binary_data_size`` an input declares, or None for an input with JSON data."""
    if not isinstance(obj, Mapping):
        return None  # decode_json_tensor names the problem
    parameters = obj.get("parameters")
    if not isinstance(parameters, Mapping) or SIZE_PARAMETER not in parameters:
        return None
    size = parameters[SIZE_PARAMETER]
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidInputError(f"input {index}: {SIZE_PARAMETER!r} must be an integer >= 0")
    return size


def decode_raw_tensor(head: TensorHeader, raw: bytes | memoryview) -> Tensor:
    """A tensor from its raw little-endian bytes, checked against the declared shape."""
    parameters = {k: v for k, v in head.parameters.items() if k != SIZE_PARAMETER}
    if head.datatype == "BYTES":
        flat = bytes_elements(_split_bytes(raw, head))
        return Tensor(head.name, head.datatype, flat.reshape(head.shape), parameters)
    wire = head.dtype.newbyteorder("<")
    if len(raw) != head.count * wire.itemsize:
        raise InvalidInputError(
            f"{head.what}: {len(raw)} bytes of data, but shape {list(head.shape)} of "
            f"{head.datatype} needs {head.count * wire.itemsize}"
        )
    if head.datatype == "BOOL" and head.count and np.frombuffer(raw, np.uint8).max() > 1:
        raise InvalidInputError(f"{head.what}: BOOL elements must be bytes 0 or 1")
    flat = np.frombuffer(raw, dtype=wire).astype(head.dtype)  # a native, writable copy
    return Tensor(head.name, head.datatype, flat.reshape(head.shape), parameters)


def _split_bytes(raw: bytes | memoryview, head: TensorHeader) -> list[bytes]:
    if len(raw) < _LENGTH.size * head.count:
        raise InvalidInputError(
            f"{head.what}: {len(raw)} bytes cannot hold {head.count} BYTES elements"
        )
    view = memoryview(raw)
    elements: list[bytes] = []
    offset = 0
    for _ in range(head.count):
        if offset + _LENGTH.size > len(view):
            raise InvalidInputError(f"{head.what}: BYTES data ends inside an element length")
        (length,) = _LENGTH.unpack_from(view, offset)
        offset += _LENGTH.size
        if length > len(view) - offset:
            raise InvalidInputError(f"{head.what}: a BYTES element runs past its data")
        elements.append(bytes(view[offset : offset + length]))
        offset += length
    if offset != len(view):
        raise InvalidInputError(
            f"{head.what}: BYTES data goes on past the elements of shape {list(head.shape)}"
        )
    return elements


def bytes_elements(elements: Sequence[bytes]) -> np.ndarray:
    """A flat object array of BYTES elements: ``str`` when every element is UTF-8 (as the same
    tensor sent as JSON strings would be), else ``bytes``."""
    array = np.empty(len(elements), dtype=object)
    try:
        array[:] = [e.decode("utf-8") for e in elements]
    except UnicodeDecodeError:
        array[:] = list(elements)
    return array


def encode_bytes_element(value: object) -> bytes:
    """One BYTES element as bytes (strings as UTF-8)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, bytes):
            return value
    return str(value).encode("utf-8")


def encode_raw_tensor(tensor: Tensor) -> bytes:
    """The raw little-endian, row-major bytes of a tensor."""
    flat = tensor.data.reshape(-1)
    if tensor.datatype == "BYTES":
        parts: list[bytes] = []
        for value in flat.tolist():
            element = encode_bytes_element(value)
            if len(element) > _MAX_ELEMENT_BYTES:
                raise PredictionError(f"output {tensor.name!r} has a BYTES element over 4 GiB")
            parts.append(_LENGTH.pack(len(element)))
            parts.append(element)
        return b"".join(parts)
    wire = DATATYPES[tensor.datatype].newbyteorder("<")
    return np.ascontiguousarray(flat, dtype=wire).tobytes()


def _flag(parameters: Mapping[str, Any], name: str) -> bool | None:
    value = parameters.get(name)
    return value if isinstance(value, bool) else None


def wants_binary(params: Mapping[str, Any], outputs: tuple[RequestedOutput, ...] | None) -> bool:
    """Whether the request asked for any output as binary data (``binary_data_output`` for all
    outputs, or ``binary_data`` on one requested output)."""
    if _flag(params, "binary_data_output"):
        return True
    return any(_flag(o.parameters, "binary_data") for o in outputs or ())


def encode_binary_response(
    prediction: Prediction,
    request_id: str | None,
    outputs: tuple[RequestedOutput, ...] | None,
    params: Mapping[str, Any],
) -> tuple[bytes, int]:
    """``(body, length of its JSON header)``: outputs asked as binary (per-output
    ``binary_data``, else the request's ``binary_data_output``) follow the header as raw bytes,
    the others carry JSON ``data``."""
    default = bool(_flag(params, "binary_data_output"))
    described: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for requested, tensor in select_outputs(prediction, outputs):
        binary = _flag(requested.parameters, "binary_data")
        if not (default if binary is None else binary):
            described.append(encode_json_tensor(tensor))
            continue
        raw = encode_raw_tensor(tensor)
        chunks.append(raw)
        described.append(
            {
                "name": tensor.name,
                "datatype": tensor.datatype,
                "shape": list(tensor.shape),
                "parameters": {SIZE_PARAMETER: len(raw)},
            }
        )
    header: dict[str, Any] = {
        "model_name": prediction.model,
        "model_version": str(prediction.version),
        "outputs": described,
    }
    if request_id is not None:
        header["id"] = request_id
    encoded = orjson.dumps(header, option=orjson.OPT_SERIALIZE_NUMPY)
    return b"".join([encoded, *chunks]), len(encoded)
