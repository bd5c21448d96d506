"""scikit-learn → ONNX with skl2onnx: input layouts from the signature, no ZipMap, and the
scikit-learn 1.9 HistGradientBoosting workaround.

Input layouts (what the served graph takes):

- ``matrix``: one ``float32`` tensor ``[N, width]`` named ``input``, columns in signature order.
  Chosen first for all-numeric inputs: one feed, no per-column arrays, the fastest to serve.
  Integer columns above 2**24 lose precision in float32; verification is what vouches for it.
- ``columns``: one ``[N, 1]`` tensor per column (float32, int64 or string), for frames with
  string columns, and for pipelines that pick columns by name (a ``ColumnTransformer``), which
  skl2onnx can only convert with named inputs.

skl2onnx 1.20 builds HistGradientBoosting tree attributes from scikit-learn 1.9's boolean
``missing_go_to_left`` and ``onnx.helper`` refuses booleans in an ``ints`` attribute ("Expected an
int, got a boolean"). ``convert`` passes those converters a container whose ``add_node`` casts
boolean lists to int, for this call only (no global patching).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelport.core.errors import UnsupportedFormatError
from modelport.core.signature import Signature
from modelport.runtime._optional import require

__all__ = ["INPUT_NAME", "InputLayout", "candidate_layouts", "convert", "target_opset"]

INPUT_NAME = "input"
_FLOATS = {"float16", "float32", "float64"}
_INTS = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}
_HGB = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")

Layout = Literal["matrix", "columns"]


@dataclass(frozen=True, slots=True)
class InputLayout:
    """How served inputs become ONNX feeds. ``types`` per column: float32, int64 or string.
    ``named`` is False for a 2-D array signature, whose columns are positions."""

    layout: Layout
    columns: tuple[str, ...]
    types: tuple[str, ...]
    named: bool = True

    def to_config(self) -> dict[str, Any]:
        out: dict[str, Any] = {"layout": self.layout, "columns": list(self.columns)}
        if self.layout == "columns":
            out["types"] = list(self.types)
        if not self.named:
            out["named"] = False
        return out

    @classmethod
    def from_config(cls, data: Any) -> InputLayout:
        if not isinstance(data, dict) or data.get("layout") not in ("matrix", "columns"):
            raise UnsupportedFormatError(
                "the fast path's runtime config has no valid input layout; rebuild it with "
                "`modelport models fastpath REF`"
            )
        columns = tuple(str(c) for c in data.get("columns", ()))
        types = tuple(str(t) for t in data.get("types", ("float32",) * len(columns)))
        if len(columns) != len(types) or not columns:
            raise UnsupportedFormatError("the fast path's input layout lists no columns")
        return cls(data["layout"], columns, types, named=bool(data.get("named", True)))


def _column_type(name: str, dtype: str) -> str:
    if dtype in _FLOATS:
        return "float32"
    if dtype in _INTS:
        return "int64"
    if dtype == "string":
        return "string"
    raise UnsupportedFormatError(f"input {name!r} is {dtype}; the ONNX fast path takes no {dtype}")


def candidate_layouts(signature: Signature | None) -> list[InputLayout]:
    """Layouts to try, fastest first (see the module docstring)."""
    if signature is None:
        raise UnsupportedFormatError(
            "the version has no signature; register it with an input example"
        )
    if signature.kind == "tensors":
        spec = signature.inputs[0] if len(signature.inputs) == 1 else None
        width = spec.shape[1] if spec is not None and spec.shape and len(spec.shape) == 2 else 0
        if spec is None or width < 1 or _column_type(spec.name, spec.dtype) == "string":
            raise UnsupportedFormatError(
                "the ONNX fast path takes one 2-D numeric array or a table of columns"
            )
        names = tuple(f"{spec.name}[{i}]" for i in range(width))
        return [InputLayout("matrix", names, ("float32",) * width, named=False)]
    types = tuple(_column_type(f.name, f.dtype) for f in signature.inputs)
    columns = InputLayout("columns", signature.input_names, types)
    if "string" in types:
        return [columns]
    return [InputLayout("matrix", signature.input_names, ("float32",) * len(types)), columns]


def target_opset() -> int:
    """The newest opset both skl2onnx has been tested with and the installed onnx knows."""
    skl2onnx = require("skl2onnx", "onnx", why="converting a scikit-learn model to ONNX")
    onnx_defs = require("onnx.defs", "onnx", why="converting a scikit-learn model to ONNX")
    return int(min(skl2onnx.get_latest_tested_opset_version(), onnx_defs.onnx_opset_version()))


def _initial_types(layout: InputLayout) -> list[tuple[str, Any]]:
    types = require("skl2onnx.common.data_types", "onnx", why="converting to ONNX")
    if layout.layout == "matrix":
        return [(INPUT_NAME, types.FloatTensorType([None, len(layout.columns)]))]
    make = {
        "float32": types.FloatTensorType,
        "int64": types.Int64TensorType,
        "string": types.StringTensorType,
    }
    return [(c, make[t]([None, 1])) for c, t in zip(layout.columns, layout.types, strict=True)]


def _classifier_options(model: Any) -> dict[int, dict[str, Any]]:
    """``zipmap: False`` for a classifier (a Pipeline passes it to its final classifier)."""
    base = require("sklearn.base", "sklearn", why="converting to ONNX")
    return {id(model): {"zipmap": False}} if base.is_classifier(model) else {}


def _is_bool_list(value: Any) -> bool:
    if isinstance(value, np.ndarray):
        return bool(value.dtype == np.bool_)
    return isinstance(value, list | tuple) and any(isinstance(v, bool | np.bool_) for v in value)


class _IntAttributes:
    """A converter container whose ``add_node`` turns boolean list attributes into ints."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attrs: Any) -> Any:
        for key, value in attrs.items():
            if _is_bool_list(value):
                attrs[key] = [int(v) for v in value]
        return self._container.add_node(*args, **attrs)


def _bool_safe(converter: Callable[..., Any]) -> Callable[..., Any]:
    def convert(scope: Any, operator: Any, container: Any) -> Any:
        return converter(scope, operator, _IntAttributes(container))

    return convert


def _hgb_converters() -> dict[type, Callable[..., Any]]:
    ensemble = require("sklearn.ensemble", "sklearn", why="converting to ONNX")
    operators = require("skl2onnx._supported_operators", "onnx", why="converting to ONNX")
    registration = require("skl2onnx.common._registration", "onnx", why="converting to ONNX")
    out: dict[type, Callable[..., Any]] = {}
    for name in _HGB:
        cls = getattr(ensemble, name)
        alias = operators.sklearn_operator_name_map.get(cls)
        if alias is not None:
            out[cls] = _bool_safe(registration.get_converter(alias))
    return out


def convert(model: Any, layout: InputLayout) -> Any:
    """The ``onnx.ModelProto`` of ``model`` for ``layout`` (the same bytes for the same model);
    skl2onnx's own errors propagate."""
    skl2onnx = require("skl2onnx", "onnx", why="converting a scikit-learn model to ONNX")
    return skl2onnx.convert_sklearn(
        model,
        name=type(model).__name__,  # skl2onnx's default is a random uuid: same model, same bytes
        initial_types=_initial_types(layout),
        options=_classifier_options(model),
        target_opset=target_opset(),
        custom_conversion_functions=_hgb_converters(),
    )
