"""TensorFlow Serving REST bodies (also MLflow's ``instances`` / ``inputs``), as pure functions.

- row format ``{"instances": [...]}``: a list of rows (one input) or of per-row objects
  (named inputs) → ``{"predictions": [...]}``: the values of the only output, else one object
  per row ``{output: value}``;
- columnar format ``{"inputs": tensor | {name: tensor}}`` → ``{"outputs": ...}``: the only
  output's tensor, else an object ``{output: tensor}``.

Inputs become a DataFrame for a ``columns`` signature (so extra columns are ignored, as in the
DataFrame formats) and named tensors otherwise; the data plane checks them against the
signature. Messages never echo submitted values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from modelport.core.errors import AliasNotFoundError, InvalidInputError, ModelNotFoundError
from modelport.core.signature import FieldSpec, Signature
from modelport.serving.tensors import datatype_of
from modelport.serving.types import ModelInfo, Tensor, VersionStatus

__all__ = [
    "SIGNATURE_NAME",
    "Inputs",
    "columnar_outputs",
    "decode_columnar",
    "decode_rows",
    "jsonable",
    "model_input",
    "parse_version",
    "records",
    "row_predictions",
    "signature_def",
    "version_for_label",
    "version_status",
]

SIGNATURE_NAME = "serving_default"
Inputs = np.ndarray | dict[str, np.ndarray]

_TF_DTYPES = {
    "bool": "DT_BOOL",
    "int8": "DT_INT8",
    "int16": "DT_INT16",
    "int32": "DT_INT32",
    "int64": "DT_INT64",
    "uint8": "DT_UINT8",
    "uint16": "DT_UINT16",
    "uint32": "DT_UINT32",
    "uint64": "DT_UINT64",
    "float16": "DT_HALF",
    "float32": "DT_FLOAT",
    "float64": "DT_DOUBLE",
    "string": "DT_STRING",
    "bytes": "DT_STRING",
}
_STATES = {"loading": "LOADING", "ready": "AVAILABLE", "unloading": "UNLOADING", "failed": "END"}
_SCALARS = (str, int, float, bool, type(None))


def parse_version(raw: str) -> int:
    """A model version from a URL path: a positive integer."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9 or int(raw) < 1:
        raise InvalidInputError("model version in the path must be a positive integer")
    return int(raw)


def _array(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value)
    except (ValueError, TypeError):  # ragged nesting
        raise InvalidInputError(
            f"{what} must be a rectangular list (every row with the same length)"
        ) from None
    if array.ndim == 0:
        raise InvalidInputError(f"{what} must be a list with one entry per row")
    if array.dtype.kind in "US" and array.ndim > 1:  # rows mixing strings and numbers:
        mixed = np.array(value, dtype=object)  # keep each value's own type, per column later
        if not all(isinstance(v, str) for v in mixed.flat):
            array = mixed
    if array.dtype.kind == "O" and not all(isinstance(v, _SCALARS) for v in array.flat):
        raise InvalidInputError(f"{what} must hold numbers, booleans or strings")
    return array


def decode_rows(instances: Any, what: str = "'instances'") -> Inputs:
    """Row format: a list of rows (one unnamed input) or of objects ``{input: value}``."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError(f"{what} must be a non-empty list of rows")
    if not isinstance(instances[0], dict):
        return _array(instances, what)
    names = list(instances[0])
    if not names or not all(
        isinstance(r, dict) and r.keys() == instances[0].keys() for r in instances
    ):
        raise InvalidInputError(f"every object in {what} must name the same, non-empty inputs")
    return {name: _array([row[name] for row in instances], f"input {name!r}") for name in names}


def decode_columnar(inputs: Any, what: str = "'inputs'") -> Inputs:
    """Columnar format: one tensor (nested lists) or an object ``{input: tensor}``."""
    if isinstance(inputs, dict):
        if not inputs:
            raise InvalidInputError(f"{what} must name at least one input")
        return {str(name): _array(value, f"input {name!r}") for name, value in inputs.items()}
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInputError(f"{what} must be a non-empty list or an object of named lists")
    return _array(inputs, what)


def _column(array: np.ndarray, name: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InvalidInputError(f"input {name!r} must have one value per row")
    if array.dtype.kind == "O":  # a column cut from mixed rows: find its own type
        typed = np.asarray(array.tolist())
        return typed if typed.dtype.kind != "O" else array
    return array


def model_input(
    value: Inputs, signature: Signature | None, model: str
) -> pd.DataFrame | list[Tensor]:
    """A DataFrame for a ``columns`` signature, else named tensors for ``predict_tensors``."""
    specs: Sequence[FieldSpec] = signature.inputs if signature is not None else ()
    if signature is not None and signature.kind == "columns":
        if isinstance(value, dict):
            rows = {len(v) for v in value.values()}
            if len(rows) != 1:
                raise InvalidInputError(f"inputs of {model!r} have different numbers of rows")
            return pd.DataFrame({n: _column(a, n) for n, a in value.items()}, copy=False)
        required = [s.name for s in specs if not s.optional]
        if value.ndim == 1 and len(required) == 1:
            value = value.reshape(-1, 1)
        if value.ndim != 2 or value.shape[1] != len(required):
            raise InvalidInputError(
                f"{model!r} takes rows of {len(required)} values (columns "
                f"{', '.join(required[:8])}{', ...' if len(required) > 8 else ''}); "
                "or send an object naming the columns"
            )
        return pd.DataFrame(
            {name: _column(value[:, i], name) for i, name in enumerate(required)}, copy=False
        )
    if isinstance(value, dict):
        return [Tensor(name, datatype_of(a), a) for name, a in value.items()]
    if len(specs) > 1:
        raise InvalidInputError(
            f"{model!r} takes several named inputs ({', '.join(s.name for s in specs[:8])}); "
            "send an object with one entry per input"
        )
    name = specs[0].name if specs else "input"
    return [Tensor(name, datatype_of(value), value)]


def jsonable(array: np.ndarray) -> Any:
    """An array in a form orjson writes: numeric arrays as they are (NaN becomes null),
    strings and objects as lists (bytes decoded as UTF-8)."""
    if array.dtype.kind in "biuf":
        return np.ascontiguousarray(array)
    return _plain(array.tolist())


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _rows(array: np.ndarray) -> list[Any]:
    rows: list[Any] = _plain(array.tolist()) if array.dtype.kind not in "biuf" else array.tolist()
    return rows


def row_predictions(outputs: Mapping[str, np.ndarray]) -> Any:
    """Row format answer: the only output's values, else one object per row."""
    if len(outputs) == 1:
        return jsonable(next(iter(outputs.values())))
    return records(outputs)


def records(outputs: Mapping[str, np.ndarray]) -> list[dict[str, Any]]:
    """One object ``{output: value}`` per row."""
    names = list(outputs)
    columns = [_rows(outputs[n]) for n in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def columnar_outputs(outputs: Mapping[str, np.ndarray]) -> Any:
    """Columnar answer: the only output's tensor, else an object ``{output: tensor}``."""
    if len(outputs) == 1:
        return jsonable(next(iter(outputs.values())))
    return {name: jsonable(array) for name, array in outputs.items()}


def version_for_label(statuses: Sequence[VersionStatus], model: str, label: str) -> int:
    """The served version of ``model`` whose aliases include ``label`` (ready first, then the
    model's default, then the highest)."""
    matches = [s for s in statuses if s.model == model and label in s.aliases]
    if not matches:
        if not any(s.model == model for s in statuses):
            raise ModelNotFoundError(f"model {model!r} is not served here")
        raise AliasNotFoundError(
            f"label {label!r} names no version of {model!r} served here; "
            "use /v1/models/{name} to list the served versions"
        )
    best = max(matches, key=lambda s: (s.state == "ready", s.default, s.version))
    return best.version


def version_status(statuses: Sequence[VersionStatus]) -> dict[str, Any]:
    """``GET /v1/models/{name}``: each version's state, a failed load as ``END`` with its reason."""
    return {
        "model_version_status": [
            {
                "version": str(s.version),
                "state": _STATES.get(s.state, "UNKNOWN"),
                "status": {
                    "error_code": "UNKNOWN" if s.state == "failed" else "OK",
                    "error_message": s.reason if s.state == "failed" else "",
                },
            }
            for s in statuses
        ]
    }


def _tensor_info(spec: FieldSpec, columns: bool) -> dict[str, Any]:
    shape = (-1,) if columns else spec.shape
    return {
        "dtype": _TF_DTYPES.get(spec.dtype, "DT_INVALID"),
        "tensor_shape": {
            "dim": [{"size": str(d), "name": ""} for d in shape or ()],
            "unknown_rank": shape is None,
        },
        "name": spec.name,
    }


def signature_def(info: ModelInfo) -> dict[str, Any]:
    """``GET /v1/models/{name}/metadata``: the version's signature as a TF ``SignatureDef``."""
    sig = info.signature
    columns = sig is not None and sig.kind == "columns"
    inputs = {s.name: _tensor_info(s, columns) for s in sig.inputs} if sig is not None else {}
    declared = {s.name: s for s in sig.outputs} if sig is not None else {}
    outputs = {
        name: _tensor_info(declared.get(name) or FieldSpec(name, "string"), False)
        for name in (info.outputs or tuple(declared))
    }
    for name, entry in outputs.items():
        if name not in declared:
            entry.update(dtype="DT_INVALID", tensor_shape={"dim": [], "unknown_rank": True})
    return {
        "model_spec": {"name": info.name, "signature_name": "", "version": str(info.version)},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    SIGNATURE_NAME: {
                        "inputs": inputs,
                        "outputs": outputs,
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }
