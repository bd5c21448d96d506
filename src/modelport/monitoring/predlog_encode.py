"""Prediction inputs and outputs encoded straight to the JSON text the SQL log stores.

``to_columns`` builds Python lists (``Columns``) that a sink then encodes; for the usual request,
a numeric block of one dtype and a few numeric output arrays, that costs ~15 µs of Python a
record in the writer thread, which shares the GIL with the server's event loop.
``encode_columns`` gives the same JSON text (``{name: [value per row]}``, missing and infinite
values as null, rows of a tensor as nested lists) in one ``tolist`` and one orjson call, and
falls back to ``to_columns`` for everything else (frames of mixed types, strings, redacted
fields, anything over the caps), so what is stored never depends on which path ran.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from modelport.monitoring.predlog_columns import MAX_ROWS, MAX_VALUES, to_columns

__all__ = ["EncodedColumns", "encode_columns"]

_NUMERIC = frozenset("biuf")


@dataclass(frozen=True, slots=True)
class EncodedColumns:
    """Columns already encoded as the log's JSON ``text``: a sink stores that as it is."""

    text: str


def encode_columns(
    data: Any,
    names: tuple[str, ...] | None = None,
    *,
    max_rows: int = MAX_ROWS,
    max_values: int = MAX_VALUES,
    redact: Collection[str] = (),
) -> tuple[EncodedColumns, bool]:
    """``(JSON text, truncated)`` of what ``to_columns`` would give for the same arguments."""
    if isinstance(data, EncodedColumns):
        return data, False
    keys = frozenset(k.casefold() for k in redact) if redact else frozenset()
    fast = _fast(data, names, max_rows, max_values, keys)
    if fast is not None:
        return EncodedColumns(orjson.dumps(fast).decode()), False
    columns, truncated = to_columns(
        data, names, max_rows=max_rows, max_values=max_values, redact=redact
    )
    return EncodedColumns(orjson.dumps(columns).decode()), truncated


def _fast(
    data: Any, names: tuple[str, ...] | None, max_rows: int, max_values: int, keys: frozenset[str]
) -> dict[str, Any] | None:
    """Python columns of a numeric block or a mapping of numeric arrays that fit the caps and
    name no redacted field (orjson writes NaN and infinities as null, as ``to_columns``
    does); else None."""
    if isinstance(data, np.ndarray):
        if data.ndim != 2 or data.dtype.kind not in _NUMERIC or data.shape[0] > max_rows:
            return None
        width = data.shape[1]
        if names is None or len(names) != width or data.shape[0] > max(1, max_values):
            return None
        if keys and any(n.casefold() in keys for n in names):
            return None
        return dict(zip(names, data.T.tolist(), strict=True))
    if not isinstance(data, Mapping):
        return None
    out: dict[str, Any] = {}
    for name, values in data.items():
        if (
            not isinstance(name, str)
            or not isinstance(values, np.ndarray)
            or values.ndim == 0
            or values.dtype.kind not in _NUMERIC
            or values.shape[0] > max_rows
            or values.shape[0] * math.prod(values.shape[1:]) > max_values
            or (keys and name.casefold() in keys)
        ):
            return None
        out[name] = values.tolist()
    return out
