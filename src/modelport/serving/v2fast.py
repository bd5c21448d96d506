"""The common V2 JSON request and response, each in one pass (``v2codec`` tries these first).

A request whose tensors are numeric (every datatype but ``BYTES``) and whose envelope holds
plain objects is decoded here straight from the parsed JSON into the tensors' arrays: the
checks of ``v2codec.decode_request_envelope`` and ``tensors.decode_json_tensor`` in the same
order, without their layers (a header dataclass, abstract-class instance checks, messages built
before anything is wrong): ~3 against ~7 us for a one-row, one-tensor request (2026-12-07,
``bench/PROFILING.md``).

``decode_plain_request`` returns None for anything else, valid or not, and the general decoder
then gives its answer or its error. The only errors raised here are those about a tensor's
``data`` (it does not convert to the datatype, or has the wrong element count), with the
general decoder's messages, after every check the general decoder makes before it; so the two
give the same tensors and the same errors (``tests/serving/test_v2fast.py`` compares them on
random requests). ``encode_plain_outputs`` does the same for numeric outputs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError
from modelport.serving.tensors import (
    DATATYPES,
    MAX_ELEMENTS,
    MAX_NAME,
    MAX_RANK,
    MAX_TENSORS,
    datatype_of,
)
from modelport.serving.types import Prediction, RequestedOutput, Tensor

__all__ = ["Decoded", "decode_plain_request", "encode_plain_outputs"]

Decoded = tuple[str | None, list[Tensor], tuple[RequestedOutput, ...] | None, Mapping[str, Any]]
"""``(id, inputs, requested outputs, parameters)``, as ``v2codec.decode_infer_request`` gives."""

_NUMERIC = {name: dtype for name, dtype in DATATYPES.items() if name != "BYTES"}
_NAMES = {dtype: name for name, dtype in _NUMERIC.items()}  # datatype_of without dtype.str
_MAX_ID = 256


class _NotPlain(Exception):
    """Raised inside this module for a request the general decoder must look at."""


def decode_plain_request(body: object) -> Decoded | None:
    """The decoded request, or None when it is not of the plain shape (see module doc)."""
    try:
        return _decode(body)
    except _NotPlain:
        return None


def _decode(body: object) -> Decoded:
    if type(body) is not dict:
        raise _NotPlain
    request_id = body.get("id")
    if request_id is not None and (type(request_id) is not str or len(request_id) > _MAX_ID):
        raise _NotPlain
    raw_inputs = body.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs or len(raw_inputs) > MAX_TENSORS:
        raise _NotPlain
    parameters = body.get("parameters") or {}
    if type(parameters) is not dict:
        raise _NotPlain
    outputs = _outputs(body.get("outputs"))
    return request_id, [_tensor(obj) for obj in raw_inputs], outputs, parameters


def _outputs(value: object) -> tuple[RequestedOutput, ...] | None:
    if value is None:
        return None
    if type(value) is not list or len(value) > MAX_TENSORS:
        raise _NotPlain
    out = []
    for item in value:
        if type(item) is not dict:
            raise _NotPlain
        params = item.get("parameters") or {}
        name = item.get("name")
        if type(params) is not dict or type(name) is not str or not 0 < len(name) <= MAX_NAME:
            raise _NotPlain
        out.append(RequestedOutput(name, dict(params)))
    return tuple(out)


def _tensor(obj: object) -> Tensor:
    if type(obj) is not dict:
        raise _NotPlain
    name = obj.get("name")
    if type(name) is not str or not 0 < len(name) <= MAX_NAME:
        raise _NotPlain
    datatype = obj.get("datatype")
    if type(datatype) is not str:
        raise _NotPlain
    dtype = _NUMERIC.get(datatype)
    if dtype is None:  # BYTES, or not a datatype
        raise _NotPlain
    shape = obj.get("shape")
    if type(shape) is not list or len(shape) > MAX_RANK:
        raise _NotPlain
    for dim in shape:
        if type(dim) is not int or not 0 <= dim <= MAX_ELEMENTS:
            raise _NotPlain
    count = math.prod(shape)
    if count > MAX_ELEMENTS:
        raise _NotPlain
    parameters = obj.get("parameters") or {}
    if type(parameters) is not dict or "data" not in obj:
        raise _NotPlain
    # From here on the general decoder would fail the same way: its messages, raised here.
    try:
        array = np.asarray(obj["data"], dtype=dtype)
    except (ValueError, TypeError, OverflowError):
        raise InvalidInputError(
            f"input {name!r}: 'data' does not match its datatype and shape"
        ) from None
    if array.size != count:
        raise InvalidInputError(
            f"input {name!r}: 'data' has {array.size} elements but shape {shape} needs {count}"
        )
    return Tensor(name, datatype, array.reshape(shape), dict(parameters))


def encode_plain_outputs(
    prediction: Prediction, requested: tuple[RequestedOutput, ...] | None
) -> list[dict[str, Any]] | None:
    """The V2 JSON output tensors, as ``v2codec.encode_infer_response`` writes them, when every
    output to return is a native-endian numeric array; else None (a missing output included:
    the general encoder names it)."""
    outputs = prediction.outputs
    names = [item.name for item in requested] if requested else list(outputs)
    out = []
    for name in names:
        array = outputs.get(name)
        if type(array) is not np.ndarray:
            return None
        dtype = array.dtype
        if dtype.kind not in "biuf" or not dtype.isnative:
            return None
        out.append(
            {
                "name": name,
                "datatype": _NAMES.get(dtype) or datatype_of(array),
                "shape": list(array.shape),
                "data": array.ravel(),  # a view when C-contiguous, else a C-ordered copy
            }
        )
    return out
