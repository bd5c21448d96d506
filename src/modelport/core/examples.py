"""Input examples (and other small data) as JSON, with their types kept.

``encode`` turns a DataFrame, an array or a dict of arrays into plain JSON-able data; ``decode``
turns it back. Used for input examples, golden requests and reference samples in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from modelport.core.errors import SignatureError

__all__ = ["MAX_EXAMPLE_ROWS", "decode", "encode", "head"]

MAX_EXAMPLE_ROWS = 1000


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and value != value:
        return None
    return value


def _encode_array(arr: np.ndarray) -> dict[str, Any]:
    if arr.dtype.kind in "OUS":
        data: Any = np.vectorize(lambda v: _plain(v), otypes=[object])(arr).tolist()
    else:
        data = arr.tolist()
    return {"type": "ndarray", "dtype": str(arr.dtype), "data": data}


def encode(value: Any) -> dict[str, Any]:
    """JSON-able form of a DataFrame, ndarray, list or dict of arrays."""
    if hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "iloc"):
        rows = [[_plain(v) for v in row] for row in value.itertuples(index=False, name=None)]
        return {
            "type": "dataframe",
            "columns": [str(c) for c in value.columns],
            "dtypes": [str(d) for d in value.dtypes],
            "data": rows,
        }
    if isinstance(value, Mapping):
        return {
            "type": "dict",
            "arrays": {str(k): _encode_array(np.asarray(v)) for k, v in value.items()},
        }
    if isinstance(value, np.ndarray | list | tuple):
        return _encode_array(np.asarray(value))
    raise SignatureError(
        f"cannot store a {type(value).__name__} as an example; "
        "give a pandas DataFrame, a numpy array or a dict of arrays"
    )


def _decode_array(data: Mapping[str, Any]) -> np.ndarray:
    dtype = str(data.get("dtype", "float64"))
    if dtype.startswith(("<U", "|S", "object")) or dtype == "object":
        return np.asarray(data["data"], dtype=object)
    return np.asarray(data["data"], dtype=np.dtype(dtype))


def decode(data: Mapping[str, Any]) -> Any:
    """Inverse of ``encode``."""
    kind = data.get("type")
    if kind == "dataframe":
        import pandas as pd  # pandas is heavy; only the callers that decode frames pay for it

        frame = pd.DataFrame(data["data"], columns=list(data["columns"]))
        for col, dtype in zip(data["columns"], data.get("dtypes", []), strict=False):
            if dtype not in ("object", "str", "string"):
                try:
                    frame[col] = frame[col].astype(dtype)
                except (TypeError, ValueError):
                    continue
        return frame
    if kind == "ndarray":
        return _decode_array(data)
    if kind == "dict":
        return {k: _decode_array(v) for k, v in data["arrays"].items()}
    raise SignatureError(f"unknown stored example type {kind!r}")


def head(value: Any, rows: int) -> Any:
    """The first ``rows`` rows of a frame, array or dict of arrays."""
    if hasattr(value, "iloc"):
        return value.iloc[:rows]
    if isinstance(value, Mapping):
        return {k: np.asarray(v)[:rows] for k, v in value.items()}
    return np.asarray(value)[:rows]
