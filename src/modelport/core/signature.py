"""Model signatures: what a model takes and returns.

Two kinds, as in the tools users know:
- ``columns``: a table (pandas DataFrame) with named, typed columns, one row per example;
- ``tensors``: one or more named arrays with a dtype and a shape, ``-1`` for a variable dimension
  (the first dimension is always the batch).

Signatures are inferred from an input example when not given. Inference duck-types pandas so this
module imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from modelport.core.errors import SignatureError

__all__ = ["NUMERIC_DTYPES", "FieldSpec", "Signature", "canonical_dtype", "infer_fields"]

Kind = Literal["columns", "tensors"]

NUMERIC_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    }
)
_DTYPES = NUMERIC_DTYPES | {"string", "bytes", "datetime"}


def canonical_dtype(dtype: Any) -> str:
    """Map a numpy/pandas dtype to one of the signature dtype names."""
    text = str(dtype)
    if text in _DTYPES:
        return text
    if text in ("object", "str", "string", "category") or text.startswith(("<U", "U", "str")):
        return "string"
    if text.startswith(("|S", "S")):
        return "bytes"
    if text.startswith("datetime64"):
        return "datetime"
    if text.lower() in ("int64", "int32", "float64", "float32", "boolean"):
        return "bool" if text.lower() == "boolean" else text.lower()
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        return "string"
    return {"b": "bool", "i": "int64", "u": "uint64", "f": "float64"}.get(kind, "string")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    name: str
    dtype: str
    shape: tuple[int, ...] | None = None
    optional: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in _DTYPES:
            raise SignatureError(f"field {self.name!r}: unknown dtype {self.dtype!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype}
        if self.shape is not None:
            out["shape"] = list(self.shape)
        if self.optional:
            out["optional"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FieldSpec:
        shape = data.get("shape")
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            shape=tuple(int(d) for d in shape) if shape is not None else None,
            optional=bool(data.get("optional", False)),
        )


@dataclass(frozen=True, slots=True)
class Signature:
    kind: Kind
    inputs: tuple[FieldSpec, ...]
    outputs: tuple[FieldSpec, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": [f.to_dict() for f in self.inputs],
            "outputs": [f.to_dict() for f in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        kind = data.get("kind")
        if kind not in ("columns", "tensors"):
            raise SignatureError(f"signature kind must be 'columns' or 'tensors', not {kind!r}")
        return cls(
            kind=kind,
            inputs=tuple(FieldSpec.from_dict(f) for f in data.get("inputs", [])),
            outputs=tuple(FieldSpec.from_dict(f) for f in data.get("outputs", [])),
        )

    @classmethod
    def infer(cls, inputs: Any, outputs: Any = None) -> Signature:
        """Infer a signature from an input example and, optionally, the model's output for it."""
        kind, in_fields = infer_fields(inputs, default_name="input")
        out_fields: tuple[FieldSpec, ...] = ()
        if outputs is not None:
            _, out_fields = infer_fields(outputs, default_name="output")
        return cls(kind=kind, inputs=in_fields, outputs=out_fields)

    def with_outputs(self, outputs: Any) -> Signature:
        _, out_fields = infer_fields(outputs, default_name="output")
        return Signature(kind=self.kind, inputs=self.inputs, outputs=out_fields)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.inputs)


def _is_frame(value: Any) -> bool:
    return hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "iloc")


def _is_series(value: Any) -> bool:
    return hasattr(value, "dtype") and hasattr(value, "iloc") and hasattr(value, "name")


def _array_field(name: str, value: Any) -> FieldSpec:
    arr = np.asarray(value)
    if arr.ndim == 0:
        raise SignatureError(f"{name!r}: a scalar is not a batch; give at least one row")
    shape = (-1, *arr.shape[1:])
    return FieldSpec(name=name, dtype=canonical_dtype(arr.dtype), shape=shape)


def infer_fields(value: Any, default_name: str) -> tuple[Kind, tuple[FieldSpec, ...]]:
    """Fields of a DataFrame (columns), a Series, an array or a dict of arrays (tensors)."""
    if _is_frame(value):
        fields = tuple(
            FieldSpec(name=str(col), dtype=canonical_dtype(dt))
            for col, dt in zip(value.columns, value.dtypes, strict=True)
        )
        return "columns", fields
    if _is_series(value):
        return "tensors", (_array_field(str(value.name or default_name), value.to_numpy()),)
    if isinstance(value, Mapping):
        if not value:
            raise SignatureError("an example dict must have at least one entry")
        return "tensors", tuple(_array_field(str(k), v) for k, v in value.items())
    if isinstance(value, np.ndarray | list | tuple):
        return "tensors", (_array_field(default_name, value),)
    raise SignatureError(
        f"cannot infer a signature from a {type(value).__name__}; "
        "give a pandas DataFrame, a numpy array or a dict of arrays"
    )
