"""MLflow scoring protocol bodies (``mlflow models serve``), as pure functions.

Requests: ``application/json`` with exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs`` (plus an optional ``params`` object), or ``text/csv`` with a header
row; ``charset=utf-8`` only.

Answers ``{"predictions": ...}``, where ``predictions`` is
- the ``predictions`` output (one value per row) when the outputs are ``predictions`` alone or
  ``predictions`` and ``probabilities`` — what ``mlflow models serve`` returns for a
  scikit-learn model, whose pyfunc calls ``predict`` only;
- the values of the only output, whatever its name;
- otherwise one object per row ``{output: value}`` (MLflow's rendering of a DataFrame).

Messages never echo submitted values.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from modelport.core.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    SignatureError,
    UnavailableError,
    UnsupportedMediaTypeError,
)
from modelport.core.signature import Signature
from modelport.serving.http import CODE_BEARING
from modelport.serving.tf_codec import jsonable, records

__all__ = [
    "FORMATS",
    "MlflowRequest",
    "error_code",
    "frame_from_csv",
    "frame_from_records",
    "frame_from_split",
    "media_kind",
    "parse_request",
    "predictions",
]

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_REQUIRED = (
    "the request must be a JSON object with exactly one of 'dataframe_split', "
    "'dataframe_records', 'instances' or 'inputs' (the scoring protocol of MLflow 2.0 and later)"
)
_CSV_DTYPES = {
    "bool": "bool",
    "int8": "int8",
    "int16": "int16",
    "int32": "int32",
    "int64": "int64",
    "uint8": "uint8",
    "uint16": "uint16",
    "uint32": "uint32",
    "uint64": "uint64",
    "float16": "float32",  # the CSV parser has no float16; the signature cast narrows it
    "float32": "float32",
    "float64": "float64",
    "string": "str",
}
_SPLIT_KEYS = frozenset({"columns", "data", "index"})


@dataclass(frozen=True, slots=True)
class MlflowRequest:
    """A decoded JSON scoring request: which format, its value, and the (unused) ``params``."""

    format: str
    value: Any
    params: Mapping[str, Any] = field(default_factory=dict)


def media_kind(header: str | None) -> Literal["json", "csv"]:
    """``json`` or ``csv`` from a Content-Type header; anything else is a 415."""
    parts = [p.strip() for p in (header or "").split(";")]
    media = parts[0].lower()
    if any(marker in media for marker in CODE_BEARING):
        raise UnsupportedMediaTypeError(
            "serialized Python objects are never accepted; send application/json or text/csv"
        )
    if media not in ("application/json", "text/csv"):
        raise UnsupportedMediaTypeError(
            "this endpoint takes Content-Type application/json or text/csv"
        )
    for param in parts[1:]:
        if not param:
            continue
        key, _, value = param.partition("=")
        if key.strip().lower() != "charset":
            raise UnsupportedMediaTypeError(
                "content type parameters other than charset are not supported "
                "(the scoring protocol changed in MLflow 2.0: put the format in the body)"
            )
        if value.strip().strip('"').lower() != "utf-8":
            raise UnsupportedMediaTypeError("the scoring server only supports charset=utf-8")
    return "json" if media == "application/json" else "csv"


def parse_request(body: Any) -> MlflowRequest:
    """The format key, its value and ``params`` of a decoded JSON body."""
    if isinstance(body, list):
        raise InvalidInputError(f"{_REQUIRED}; a top-level list is not accepted")
    if not isinstance(body, dict):
        raise InvalidInputError(_REQUIRED)
    found = [key for key in FORMATS if key in body]
    if len(found) != 1:
        raise InvalidInputError(f"{_REQUIRED}; this one has {len(found)}")
    params = body.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise InvalidInputError("'params' must be an object of parameter names to values")
    return MlflowRequest(found[0], body[found[0]], params)


def _columns(value: Any, width: int | None) -> list[Any]:
    if value is None:
        return list(range(width or 0))
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise InvalidInputError("'dataframe_split.columns' must be a list of column names")
    if len(set(value)) != len(value):
        raise InvalidInputError("'dataframe_split.columns' names a column twice")
    return value


def _numeric_matrix(data: list[Any], width: int) -> np.ndarray | None:
    """``data`` as one 2-D numeric array, or None when it holds anything but numbers."""
    first = data[0]
    row = first if isinstance(first, list) else [first]
    if not all(isinstance(v, int | float) for v in row):  # strings, nulls: per-column types
        return None
    try:
        array = np.array(data)
    except (ValueError, TypeError):  # ragged rows
        return None
    if array.dtype.kind not in "biuf":
        return None
    if array.ndim == 1 and width == 1:
        array = array.reshape(-1, 1)
    return array if array.ndim == 2 and array.shape[1] == width else None


def frame_from_split(value: Any) -> pd.DataFrame:
    """pandas "split" orient ``{"columns": [...], "data": [[...], ...], "index"?: [...]}``.

    All-numeric data (the common case) becomes one 2-D array in a single C call; anything else
    goes through pandas, which infers a type per column. No per-row Python work either way.
    """
    if not isinstance(value, dict) or "data" not in value or not value.keys() <= _SPLIT_KEYS:
        raise InvalidInputError(
            "'dataframe_split' must be an object with 'columns', 'data' and optionally 'index'"
        )
    data = value["data"]
    if not isinstance(data, list) or not data:
        raise InvalidInputError("'dataframe_split.data' must be a non-empty list of rows")
    first = data[0]
    width = len(first) if isinstance(first, list) else 1
    columns = _columns(value.get("columns"), width)
    matrix = _numeric_matrix(data, len(columns))
    if matrix is not None:  # an object Index: pandas' default string Index costs ~0.1 ms
        frame = pd.DataFrame(matrix, columns=pd.Index(columns, dtype=object), copy=False)
    else:
        one = len(columns) == 1
        if not all(
            (isinstance(row, list) and len(row) == len(columns))
            or (one and not isinstance(row, list | dict))
            for row in data
        ):
            raise InvalidInputError(
                f"every row of 'dataframe_split.data' must have {len(columns)} values, "
                "one per column"
            )
        try:
            frame = pd.DataFrame(data, columns=columns)
        except (ValueError, TypeError):
            raise InvalidInputError("'dataframe_split.data' is not a table of values") from None
    index = value.get("index")
    if index is not None:
        if not isinstance(index, list) or len(index) != len(frame):
            raise InvalidInputError("'dataframe_split.index' must have one entry per row")
        frame.index = pd.Index(index)
    return frame


def frame_from_records(value: Any) -> pd.DataFrame:
    """pandas "records" orient: ``[{"column": value, ...}, ...]``."""
    if not isinstance(value, list) or not value or not all(isinstance(r, dict) for r in value):
        raise InvalidInputError("'dataframe_records' must be a non-empty list of objects")
    try:
        return pd.DataFrame(value)
    except (ValueError, TypeError):
        raise InvalidInputError("'dataframe_records' is not a table of values") from None


def frame_from_csv(body: bytes, signature: Signature | None) -> pd.DataFrame:
    """A CSV table with a header row; column types from a ``columns`` signature when present."""
    dtypes: dict[str, str] = {}
    if signature is not None and signature.kind == "columns":
        dtypes = {s.name: _CSV_DTYPES[s.dtype] for s in signature.inputs if s.dtype in _CSV_DTYPES}
    try:
        frame = pd.read_csv(io.BytesIO(body), dtype=dtypes or None, encoding="utf-8")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OverflowError):
        raise InvalidInputError(
            "the body is not a CSV table with a header row (as written by DataFrame.to_csv) "
            "whose values match the model's column types"
        ) from None
    if frame.empty:
        raise InvalidInputError("the CSV body has no rows")
    return frame


def predictions(outputs: Mapping[str, np.ndarray]) -> Any:
    """The value of ``predictions`` in the answer (rules in the module docstring)."""
    if "predictions" in outputs and set(outputs) <= {"predictions", "probabilities"}:
        return jsonable(outputs["predictions"])
    if len(outputs) == 1:
        return jsonable(next(iter(outputs.values())))
    return records(outputs)


def error_code(exc: BaseException) -> str:
    """MLflow's ``error_code`` for an error (the HTTP status comes from ``error_status``)."""
    if isinstance(exc, SignatureError):
        return "INVALID_PARAMETER_VALUE"
    if isinstance(exc, InvalidInputError):
        return "BAD_REQUEST"
    if isinstance(exc, NotFoundError):
        return "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, UnavailableError):
        return "TEMPORARILY_UNAVAILABLE"
    if isinstance(exc, DeadlineExceededError):
        return "DEADLINE_EXCEEDED"
    return "INTERNAL_ERROR"
