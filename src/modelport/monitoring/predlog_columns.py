"""Prediction inputs and outputs as JSON-able columns: conversion, redaction and size caps.

This runs in the prediction log's writer thread, never on the server's event loop. A column is
``{name: [value per row]}``: missing values (None, NaN, NaT, ``pd.NA``) become None, infinities
too (JSON has no infinity), numpy scalars become Python ones, datetimes ISO-8601 text,
timedeltas seconds and bytes UTF-8 text. A row that is itself an array (a tensor per row) is a
nested list. Fields named in ``redact`` (case-insensitive: a column, or a key of an object value)
hold ``"[redacted]"`` instead of their values, so a redacted value is never written anywhere.

Caps: at most ``max_rows`` rows per column, and at most ``max_values`` scalars per column (fewer
rows when each row is a tensor; a column whose single row exceeds it is left out). Anything cut
marks the record ``truncated``.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Collection, Mapping
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import Any

import numpy as np

__all__ = [
    "MAX_ROWS",
    "MAX_VALUES",
    "REDACTED",
    "Columns",
    "numeric_block",
    "to_columns",
]

REDACTED = "[redacted]"
MAX_ROWS = 1_000
MAX_VALUES = 100_000
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what JSON encoders (orjson) write exactly


def _pandas() -> Any:
    """pandas when it is loaded, else None: a DataFrame or ``pd.NA`` cannot exist before it is,
    so this module never pays for importing it (the way scikit-learn checks for frames)."""
    return sys.modules.get("pandas")


class Columns(dict[str, list[Any]]):
    """Columns that are already JSON-able, capped and redacted: converting them is a no-op."""

    __slots__ = ()


def to_columns(
    data: Any,
    names: tuple[str, ...] | None = None,
    *,
    max_rows: int = MAX_ROWS,
    max_values: int = MAX_VALUES,
    redact: Collection[str] = (),
) -> tuple[Columns, bool]:
    """``(columns, truncated)`` of a DataFrame, an array (column ``names`` given apart) or a
    mapping name -> array or list. ``Columns`` are returned as they are."""
    if isinstance(data, Columns):
        return data, False
    keys = frozenset(k.casefold() for k in redact)
    fast = _block_columns(data, names, min(max_rows, max(1, max_values)), max_rows, keys)
    if fast is not None:
        return fast
    out = Columns()
    truncated = False
    for name, values in _raw_columns(data, names):
        if name.casefold() in keys:
            n = _length(values)
            out[name] = [REDACTED] * min(n, max_rows)
            truncated |= n > max_rows
            continue
        column, cut = _column(values, max_rows, max_values, keys)
        truncated |= cut
        if column is not None:
            out[name] = column
    return out, truncated


def numeric_block(
    data: Any, names: tuple[str, ...] | None
) -> tuple[np.ndarray[Any, Any], list[str]] | None:
    """A 2-D array of one numeric dtype with its column labels, when ``data`` is one (an
    array, with ``names`` or ``input_<j>``, or a DataFrame whose columns share one dtype)."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.dtype.kind not in "biuf":
            return None
        width = data.shape[1]
        if names is not None and len(names) != width:
            raise ValueError(f"{len(names)} input names given for an array of {width} columns")
        return data, [str(n) for n in names] if names else [f"input_{j}" for j in range(width)]
    pd = _pandas()
    if pd is not None and isinstance(data, pd.DataFrame) and data.shape[1] > 0:
        dtypes = set(data.dtypes.tolist())
        first = next(iter(dtypes))
        if len(dtypes) == 1 and isinstance(first, np.dtype) and first.kind in "biuf":
            return data.to_numpy(), [str(c) for c in data.columns]
    return None


def _block_columns(
    data: Any, names: tuple[str, ...] | None, keep: int, max_rows: int, keys: frozenset[str]
) -> tuple[Columns, bool] | None:
    """The columns of a finite numeric block in one ``tolist`` (the usual tabular request:
    ~10x cheaper than a column at a time); None when the general path must decide."""
    found = numeric_block(data, names)
    if found is None:
        return None
    block, labels = found
    n = int(block.shape[0])
    part = block[:keep]
    if part.dtype.kind == "f" and not np.isfinite(part).all():
        return None  # NaN and infinities become null value by value
    if part.dtype.kind in "iu" and part.size and (part.min() < _INT_MIN or part.max() > _INT_MAX):
        return None  # integers beyond what JSON readers keep exactly travel as strings
    out = Columns()
    for label, column in zip(labels, part.T.tolist(), strict=True):
        out[label] = [REDACTED] * min(n, max_rows) if label.casefold() in keys else column
    return out, n > len(part)


def _raw_columns(data: Any, names: tuple[str, ...] | None) -> list[tuple[str, Any]]:
    pd = _pandas()
    if pd is not None and isinstance(data, pd.DataFrame):
        dtypes = set(data.dtypes.tolist())
        first = next(iter(dtypes), None)
        if len(dtypes) == 1 and isinstance(first, np.dtype) and first.kind in "biuf":
            # one numeric dtype (the usual tabular request): one block, sliced per column, is
            # ~5x cheaper than a Series per column and gives the same values
            block = data.to_numpy()
            return [(str(c), block[:, j]) for j, c in enumerate(data.columns)]
        return [(str(c), data.iloc[:, j]) for j, c in enumerate(data.columns)]
    if pd is not None and isinstance(data, pd.Series):
        return [(str(data.name) if data.name is not None else "input", data)]
    if isinstance(data, Mapping):
        return [(str(k), v) for k, v in data.items()]
    array = np.asarray(data)
    if array.ndim == 2:
        width = array.shape[1]
        if names is not None and len(names) != width:
            raise ValueError(f"{len(names)} input names given for an array of {width} columns")
        labels = names if names is not None else tuple(f"input_{j}" for j in range(width))
        return [(str(labels[j]), array[:, j]) for j in range(width)]
    if names is not None and len(names) != 1:
        raise ValueError(f"{len(names)} input names given for a {array.ndim}-D array")
    return [(str(names[0]) if names else "input", array)]


def _is_series(values: Any) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(values, pd.Series)


def _length(values: Any) -> int:
    if isinstance(values, list | tuple) or _is_series(values):
        return len(values)
    shape = np.shape(values)
    return int(shape[0]) if shape else 1


def _column(
    values: Any, max_rows: int, max_values: int, keys: frozenset[str]
) -> tuple[list[Any] | None, bool]:
    if isinstance(values, list | tuple) or _is_series(values):
        n = len(values)
        k = min(n, max_rows)
        head = values[:k] if isinstance(values, list | tuple) else values.iloc[:k].tolist()
        return [_clean(v, keys) for v in head], n > k
    array = np.asarray(values)
    if array.ndim == 0:
        return [_clean(array.item(), keys)], False
    n = int(array.shape[0])
    per_row = max(1, math.prod(array.shape[1:]))
    if per_row > max_values:
        return None, True
    k = min(n, max_rows, max(1, max_values // per_row))
    return _array_values(array[:k], keys), n > k


def _array_values(part: np.ndarray[Any, Any], keys: frozenset[str]) -> list[Any]:
    kind = part.dtype.kind
    if kind in "biu":
        return list(part.tolist())
    if kind == "f":
        values = list(part.tolist())
        return values if np.isfinite(part).all() else [_clean(v, keys) for v in values]
    if kind == "M":
        text = np.datetime_as_string(part).astype(object)
        text[np.isnat(part)] = None
        return list(text.tolist())
    if kind == "m":
        seconds = (part / np.timedelta64(1, "s")).tolist()
        return [_clean(v, keys) for v in seconds]
    return [_clean(v, keys) for v in part.tolist()]


def _clean(value: Any, keys: frozenset[str]) -> Any:
    """The JSON-able form of one value (recursively for lists and objects)."""
    kind = type(value)
    if value is None or kind is str or kind is bool:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    pd = _pandas()
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if isinstance(value, np.datetime64 | np.timedelta64):
        if np.isnat(value):
            return None
        if isinstance(value, np.datetime64):
            return str(np.datetime_as_string(value))
        return float(value / np.timedelta64(1, "s"))
    if isinstance(value, np.generic):
        return _clean(value.item(), keys)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return {
            str(k): REDACTED if str(k).casefold() in keys else _clean(v, keys)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_clean(v, keys) for v in value]
    if isinstance(value, np.ndarray):
        return _array_values(value, keys) if value.ndim else _clean(value.item(), keys)
    return _clean_other(value)


def _clean_other(value: Any) -> Any:
    if isinstance(value, bool):  # subclasses of the JSON types (IntEnum, ...)
        return bool(value)
    if isinstance(value, int):
        return _clean(int(value), frozenset())
    if isinstance(value, float):
        return _clean(float(value), frozenset())
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    return str(value)
