"""Open Inference Protocol tensors: datatypes, JSON decoding with limits, encoding.

Everything a client sends is checked before allocation: the element count is computed from the
declared shape and bounded, and the data must match it exactly. Messages never echo values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError
from modelport.serving.types import RequestedOutput, Tensor

__all__ = [
    "DATATYPES",
    "MAX_ELEMENTS",
    "MAX_TENSORS",
    "TensorHeader",
    "datatype_of",
    "decode_json_tensor",
    "decode_outputs",
    "decode_tensor_header",
    "dtype_of",
    "element_count",
    "encode_json_tensor",
]

MAX_ELEMENTS = 16_000_000
MAX_TENSORS = 256
MAX_RANK = 8
MAX_NAME = 256

DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
_BY_KIND = {np.dtype(v).str: k for k, v in DATATYPES.items() if k != "BYTES"}


def dtype_of(datatype: str, what: str = "tensor") -> np.dtype[Any]:
    try:
        return DATATYPES[datatype]
    except (KeyError, TypeError):
        if datatype == "BF16":
            raise InvalidInputError(f"{what}: BF16 is not supported; send FP32 or FP16") from None
        raise InvalidInputError(
            f"{what}: unknown datatype; use one of {', '.join(DATATYPES)}"
        ) from None


def datatype_of(array: np.ndarray) -> str:
    """The V2 datatype for a numpy array (strings and objects are ``BYTES``)."""
    if array.dtype.kind in "OUS":
        return "BYTES"
    return _BY_KIND.get(array.dtype.str, "FP64" if array.dtype.kind == "f" else "INT64")


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise InvalidInputError(f"{what}: 'name' must be a string of 1 to {MAX_NAME} characters")
    return value


def element_count(shape: object, what: str) -> tuple[tuple[int, ...], int]:
    """Validate a declared shape and return it with its element count, bounded."""
    if not isinstance(shape, list | tuple) or len(shape) > MAX_RANK:
        raise InvalidInputError(f"{what}: 'shape' must be a list of at most {MAX_RANK} integers")
    dims: list[int] = []
    for dim in shape:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
            raise InvalidInputError(f"{what}: shape dimensions must be integers >= 0")
        if dim > MAX_ELEMENTS:
            raise InvalidInputError(f"{what}: shape has more than {MAX_ELEMENTS} elements")
        dims.append(dim)
    count = math.prod(dims)
    if count > MAX_ELEMENTS:
        raise InvalidInputError(f"{what}: shape has more than {MAX_ELEMENTS} elements")
    return tuple(dims), count


def _as_array(data: Any, dtype: np.dtype[Any], count: int, what: str) -> np.ndarray:
    if dtype.kind == "O":
        flat = _flatten_bytes(data, count, what)
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array
    try:
        array = np.asarray(data, dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(f"{what}: 'data' does not match its datatype and shape") from None
    return array.reshape(-1)


def _flatten_bytes(data: Any, count: int, what: str) -> list[Any]:
    out: list[Any] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, str | bytes):
            out.append(item)
            if len(out) > count:
                raise InvalidInputError(f"{what}: 'data' has more elements than its shape")
        else:
            raise InvalidInputError(f"{what}: BYTES data must be strings")
    return out


@dataclass(frozen=True, slots=True)
class TensorHeader:
    """A tensor's validated description, before its data is read (JSON, binary or gRPC)."""

    name: str
    datatype: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    count: int
    parameters: dict[str, Any]
    what: str  # how messages name it: "input 'x'"


def decode_tensor_header(obj: object, index: int, kind: str = "input") -> TensorHeader:
    """Name, datatype, shape (bounded element count) and parameters of a V2 tensor object."""
    what = f"{kind} {index}"
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"{what}: must be an object with name, shape, datatype and data")
    name = _name(obj.get("name"), what)
    what = f"{kind} {name!r}"
    datatype = obj.get("datatype")
    dtype = dtype_of(datatype, what)  # type: ignore[arg-type]
    shape, count = element_count(obj.get("shape"), what)
    parameters = obj.get("parameters") or {}
    if not isinstance(parameters, Mapping):
        raise InvalidInputError(f"{what}: 'parameters' must be an object")
    return TensorHeader(name, str(datatype), dtype, shape, count, dict(parameters), what)


def decode_json_tensor(obj: object, index: int, kind: str = "input") -> Tensor:
    """A tensor from its V2 JSON form ``{name, shape, datatype, data, parameters?}``."""
    head = decode_tensor_header(obj, index, kind)
    assert isinstance(obj, Mapping)
    if "data" not in obj:
        raise InvalidInputError(f"{head.what}: 'data' is missing")
    flat = _as_array(obj["data"], head.dtype, head.count, head.what)
    if flat.size != head.count:
        raise InvalidInputError(
            f"{head.what}: 'data' has {flat.size} elements but shape {list(head.shape)} needs "
            f"{head.count}"
        )
    return Tensor(head.name, head.datatype, flat.reshape(head.shape), head.parameters)


def decode_outputs(value: object) -> tuple[RequestedOutput, ...] | None:
    """The optional ``outputs`` list of a request: which outputs to return."""
    if value is None:
        return None
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) > MAX_TENSORS:
        raise InvalidInputError(f"'outputs' must be a list of at most {MAX_TENSORS} objects")
    out = []
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidInputError(f"output {i}: must be an object with a name")
        params = item.get("parameters") or {}
        if not isinstance(params, Mapping):
            raise InvalidInputError(f"output {i}: 'parameters' must be an object")
        out.append(RequestedOutput(_name(item.get("name"), f"output {i}"), dict(params)))
    return tuple(out)


def _plain_bytes(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def encode_json_tensor(tensor: Tensor) -> dict[str, Any]:
    """The V2 JSON form of a tensor, data flattened in row-major order. Numeric data stays a
    flat numpy array: orjson (``OPT_SERIALIZE_NUMPY``) writes it in one pass, non-finite
    floats as null (JSON has no NaN) and float32 in its shortest round-tripping form."""
    data = tensor.data
    if data.dtype.kind in "biuf" and data.dtype.isnative:
        values: Any = np.ascontiguousarray(data).reshape(-1)
    elif tensor.datatype == "BYTES":
        values = [_plain_bytes(v) for v in data.reshape(-1).tolist()]
    elif tensor.datatype in ("FP16", "FP32", "FP64") and not np.isfinite(data).all():
        # JSON has no NaN/Infinity: non-finite values travel as null
        values = [v if math.isfinite(v) else None for v in data.reshape(-1).tolist()]
    else:
        values = data.reshape(-1).tolist()
    out: dict[str, Any] = {
        "name": tensor.name,
        "datatype": tensor.datatype,
        "shape": list(tensor.shape),
        "data": values,
    }
    if tensor.parameters:
        out["parameters"] = dict(tensor.parameters)
    return out
