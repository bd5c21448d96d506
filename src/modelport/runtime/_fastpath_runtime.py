"""``FastPathRuntime``: a verified ONNX variant served under its original's output contract.

Runtime config (written by ``fastpath.convert_sklearn_to_onnx``)::

    {"file": "model.onnx", "serves_as": "sklearn", "platform": "sklearn_skops",
     "input": {"layout": "matrix" | "columns", "columns": [...], "types": [...], "named": true},
     "outputs": {"label": "predictions", "probabilities": "probabilities"},
     "dtypes": {"predictions": "<i8", "probabilities": "<f8"}, "classes": [...]}

Outputs are renamed and cast back (labels to the original class dtype, probabilities to float64,
``[N, 1]`` regression outputs flattened), so a client gets exactly what the scikit-learn runtime
returns; ``metadata().extra["variant"]`` is ``"onnx"``. Intra-op threads come from
``LoadContext.threads``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError, UnsupportedFormatError
from modelport.runtime._common import NativeRuntime, artifact_file
from modelport.runtime._optional import distribution_version
from modelport.runtime._skl2onnx import INPUT_NAME, InputLayout
from modelport.runtime.base import RuntimeMetadata
from modelport.runtime.onnx import open_session

__all__ = ["FastPathRuntime"]

_NUMPY = {"float32": np.float32, "int64": np.int64, "string": object}


def _dtype(name: str, text: Any) -> np.dtype[Any]:
    try:
        return np.dtype(str(text))
    except TypeError as exc:
        raise UnsupportedFormatError(
            f"the fast path's runtime config gives output {name!r} an unknown dtype {text!r}"
        ) from exc


@dataclass(frozen=True, slots=True)
class _Loaded:
    session: Any
    layout: InputLayout
    onnx_outputs: list[str]
    targets: list[tuple[str, np.dtype[Any]]]


def _plan(config: Mapping[str, Any], session: Any) -> _Loaded:
    layout = InputLayout.from_config(config.get("input"))
    outputs = config.get("outputs")
    dtypes = config.get("dtypes", {})
    if not isinstance(outputs, Mapping) or not outputs or not isinstance(dtypes, Mapping):
        raise UnsupportedFormatError(
            "the fast path's runtime config maps no outputs; rebuild it with "
            "`modelport models fastpath REF`"
        )
    targets = [(str(t), _dtype(str(t), dtypes.get(t, "float64"))) for t in outputs.values()]
    return _Loaded(session, layout, [str(k) for k in outputs], targets)


def _is_frame(value: object) -> bool:
    # not _common.is_frame: DataFrame.dtypes builds a Series (~15 µs), a fast path cannot pay that
    return hasattr(value, "columns") and hasattr(value, "to_numpy")


def _present(layout: InputLayout, names: Any) -> tuple[str, ...]:
    missing = [c for c in layout.columns if c not in names]
    if missing:
        raise InvalidInputError(
            f"the input lacks columns {missing[:10]}; the model takes {list(layout.columns)[:20]}"
        )
    return layout.columns


def _matrix(layout: InputLayout, inputs: Any) -> dict[str, np.ndarray]:
    if _is_frame(inputs):
        # Index.tolist() is the cheapest way to read a pandas 3 string index (~5 µs)
        if layout.named and inputs.columns.tolist() != list(layout.columns):
            inputs = inputs[list(_present(layout, inputs.columns))]
        arr = inputs.to_numpy()
    elif isinstance(inputs, Mapping):
        arr = np.column_stack([np.asarray(inputs[c]) for c in _present(layout, inputs)])
    else:
        arr = np.asarray(inputs)
    if arr.ndim != 2 or arr.shape[1] != len(layout.columns):
        raise InvalidInputError(
            f"the model takes rows of {len(layout.columns)} columns, not an array of shape "
            f"{arr.shape}"
        )
    if arr.dtype != np.float32:
        try:
            arr = arr.astype(np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"the model takes numbers only: {exc}") from exc
    return {INPUT_NAME: arr}


def _columns(layout: InputLayout, inputs: Any) -> dict[str, np.ndarray]:
    frame = _is_frame(inputs)
    if not frame and not isinstance(inputs, Mapping):
        raise InvalidInputError("this model takes a table: send a DataFrame or named columns")
    names = _present(layout, inputs.columns if frame else inputs)
    feeds = {}
    for name, kind in zip(names, layout.types, strict=True):
        values = inputs[name].to_numpy() if frame else np.asarray(inputs[name])
        try:
            feeds[name] = values.reshape(-1, 1).astype(_NUMPY[kind], copy=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"input {name!r} must be {kind}: {exc}") from exc
    return feeds


class FastPathRuntime(NativeRuntime):
    """Serves a verified ONNX variant of a scikit-learn version (see the module docstring)."""

    format = "sklearn"

    def load(self) -> None:
        session = open_session(artifact_file(self.ctx, "model.onnx"), self.ctx.threads)
        self._model = _plan(self.ctx.config, session)

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """``params`` are ignored, as scikit-learn's predict takes none."""
        loaded: _Loaded = self._loaded_model()
        layout = loaded.layout
        feeds = _matrix(layout, inputs) if layout.layout == "matrix" else _columns(layout, inputs)
        try:
            results = loaded.session.run(loaded.onnx_outputs, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise self._failed(exc) from exc
        out: dict[str, np.ndarray] = {}
        for (name, dtype), value in zip(loaded.targets, results, strict=True):
            arr = np.asarray(value)
            if arr.ndim == 2 and arr.shape[1] == 1 and name == "predictions":
                arr = arr.reshape(-1)
            out[name] = arr.astype(dtype, copy=False)
        return out

    def metadata(self) -> RuntimeMetadata:
        config = self.ctx.config
        engine = distribution_version("onnxruntime")
        extra: dict[str, Any] = {
            "variant": "onnx",
            "serves_as": config.get("serves_as", "sklearn"),
            "engine": f"onnxruntime {engine}".strip(),
            "input": dict(config.get("input", {})),
        }
        for key in ("estimator", "classes"):
            if key in config:
                extra[key] = config[key]
        outputs = config.get("outputs", {})
        return RuntimeMetadata(
            format=self.format,
            platform=str(config.get("platform", "sklearn_skops")),
            framework_version=engine,
            can_batch=True,
            outputs=tuple(str(v) for v in outputs.values()) if isinstance(outputs, Mapping) else (),
            extra=extra,
        )
