"""ONNX models on onnxruntime (CPU provider, all graph optimisations).

Runtime config: ``{"file": "model.onnx"}``.

Input: a single-input model takes an array or a DataFrame; a multi-input model takes a dict keyed
by input name, or a DataFrame whose columns are the input names (one column per input). Every
array is cast to the input's element type; a 1-D array feeds a ``[N, 1]`` input.

Output contract: a dict output name → ndarray, in the graph's output order. A ZipMap output
(skl2onnx's default list of ``{class: probability}`` dicts) becomes an ``(N, k)`` float32 array
whose columns follow ``metadata().extra["zipmap_classes"]``; skl2onnx's
``options={"zipmap": False}`` avoids the ZipMap.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError, ModelLoadError, UnsupportedFormatError
from modelport.runtime._common import NativeRuntime, artifact_file, is_frame
from modelport.runtime._optional import distribution_version, require
from modelport.runtime.base import LoadContext, RuntimeMetadata, SaveResult
from modelport.runtime.threads import check_threads

__all__ = ["OnnxRuntime", "open_session", "packages", "save_onnx"]

_ELEMENT_TYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(int16)": np.int16,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(uint16)": np.uint16,
    "tensor(uint32)": np.uint32,
    "tensor(uint64)": np.uint64,
    "tensor(bool)": np.bool_,
    "tensor(string)": np.str_,
}


def packages(config: Mapping[str, Any]) -> tuple[str, ...]:
    return ("onnxruntime", "onnx", "numpy")


def _describe(node: Any) -> dict[str, Any]:
    shape = [d if isinstance(d, int) else None for d in node.shape]
    return {"name": node.name, "type": node.type, "shape": shape}


def _cast(name: str, value: Any, node: Any) -> np.ndarray:
    arr = np.asarray(value)
    dtype = _ELEMENT_TYPES.get(node.type)
    try:
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"input {name!r} cannot be cast to {node.type}: {exc}") from exc
    if arr.ndim == 1 and len(node.shape) == 2:
        arr = arr.reshape(-1, 1)
    return arr


def _to_array(value: Any, classes: list[Any] | None) -> np.ndarray:
    if isinstance(value, list) and (classes is not None or (value and isinstance(value[0], dict))):
        keys = classes if classes is not None else list(value[0])
        rows = [[row[k] for k in keys] for row in value]
        return np.asarray(rows, dtype=np.float32).reshape(len(value), len(keys))
    return np.asarray(value)


def _zipmap_classes(onnx: Any, path: Path) -> dict[str, list[Any]]:
    """Class labels of each ZipMap node whose output is a graph output, in column order."""
    graph = onnx.load(str(path), load_external_data=False).graph
    outputs = {o.name for o in graph.output}
    found: dict[str, list[Any]] = {}
    for node in graph.node:
        if node.op_type == "ZipMap" and node.output[0] in outputs:
            for attr in node.attribute:
                if attr.name == "classlabels_int64s":
                    found[node.output[0]] = [int(v) for v in attr.ints]
                elif attr.name == "classlabels_strings":
                    found[node.output[0]] = [v.decode() for v in attr.strings]
    return found


def open_session(path: Path, threads: int | None) -> Any:
    """An onnxruntime CPU session for ``path``: all graph optimisations, ``threads`` intra-op
    (and inter-op) threads when given."""
    ort = require("onnxruntime", "onnx", why="loading an ONNX model")
    threads = check_threads(threads)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
    try:
        return ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types per failure
        raise ModelLoadError(f"onnxruntime could not load {path}: {exc}") from exc


class OnnxRuntime(NativeRuntime):
    format = "onnx"

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self._zipmap_classes: dict[str, list[Any]] = {}

    def load(self) -> None:
        path = artifact_file(self.ctx, "model.onnx")
        session = open_session(path, self.ctx.threads)
        if any(node.type.startswith("seq(map(") for node in session.get_outputs()):
            # skl2onnx's ZipMap: read the class order from the graph (these models are small)
            onnx = require("onnx", "onnx", why="reading the ZipMap of an ONNX model")
            self._zipmap_classes = _zipmap_classes(onnx, path)
        self._model = session

    def unload(self) -> None:
        super().unload()
        self._zipmap_classes = {}

    def _feeds(self, session: Any, inputs: Any) -> dict[str, np.ndarray]:
        nodes = {node.name: node for node in session.get_inputs()}
        if is_frame(inputs) and len(nodes) > 1:
            inputs = {str(c): inputs[c].to_numpy() for c in inputs.columns}
        if isinstance(inputs, Mapping):
            missing = sorted(set(nodes) - {str(k) for k in inputs})
            unknown = sorted({str(k) for k in inputs} - set(nodes))
            if missing or unknown:
                raise InvalidInputError(
                    f"ONNX model {self.ctx.path} takes inputs {sorted(nodes)}; "
                    f"missing {missing}, unknown {unknown}"
                )
            return {str(k): _cast(str(k), v, nodes[str(k)]) for k, v in inputs.items()}
        if len(nodes) != 1:
            raise InvalidInputError(
                f"ONNX model {self.ctx.path} takes several inputs {sorted(nodes)}; "
                "send a dict keyed by input name"
            )
        ((name, node),) = nodes.items()
        value = inputs.to_numpy() if is_frame(inputs) else inputs
        return {name: _cast(name, value, node)}

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """``params`` are ignored: an ONNX graph takes only its inputs."""
        session = self._loaded_model()
        feeds = self._feeds(session, inputs)
        names = [node.name for node in session.get_outputs()]
        try:
            results = session.run(names, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types per failure
            raise self._failed(exc) from exc
        return {
            name: _to_array(value, self._zipmap_classes.get(name))
            for name, value in zip(names, results, strict=True)
        }

    def metadata(self) -> RuntimeMetadata:
        session = self._model
        extra: dict[str, Any] = {}
        outputs: tuple[str, ...] = ()
        can_batch = True
        if session is not None:
            ins = session.get_inputs()
            extra["inputs"] = [_describe(n) for n in ins]
            extra["outputs"] = [_describe(n) for n in session.get_outputs()]
            if self._zipmap_classes:
                extra["zipmap_classes"] = dict(self._zipmap_classes)
            outputs = tuple(n.name for n in session.get_outputs())
            can_batch = all(not n.shape or not isinstance(n.shape[0], int) for n in ins)
        return RuntimeMetadata(
            format=self.format,
            platform="onnx_onnxv1",
            framework_version=distribution_version("onnxruntime"),
            can_batch=can_batch,
            outputs=outputs,
            extra=extra,
        )


def save_onnx(model: Any, dest_dir: Path | str) -> SaveResult:
    """Write ``model.onnx`` from an ``onnx.ModelProto`` or its serialized bytes, checked first."""
    onnx = require("onnx", "onnx", why="saving an ONNX model")
    if isinstance(model, bytes | bytearray | memoryview):
        data = bytes(model)
        try:
            proto = onnx.load_model_from_string(data)
        except Exception as exc:  # protobuf's DecodeError
            raise InvalidInputError(f"the bytes given are not an ONNX model: {exc}") from exc
    elif isinstance(model, onnx.ModelProto):
        proto, data = model, model.SerializeToString()
    else:
        raise UnsupportedFormatError(
            f"save_onnx takes an onnx.ModelProto or its bytes, not a {type(model).__name__}"
        )
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise InvalidInputError(f"the ONNX model is not valid: {exc}") from exc
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "model.onnx").write_bytes(data)
    config = {"file": "model.onnx"}
    return SaveResult(format="onnx", config=config, framework_packages=packages(config))
