"""MLflow model directories (an ``MLmodel`` file and the flavor's files), without MLflow installed.

The flavors ``sklearn`` (skops; pickle/cloudpickle only for versions trusted with
``--trust-pickle``), ``xgboost``, ``lightgbm`` and ``onnx`` are loaded by modelport's own runtimes.
Skops types listed in ``MLmodel`` are ignored: only the registry's trusted types count. Any other
flavor needs MLflow (``pip install 'modelport[mlflow]'``) and loads through ``mlflow.pyfunc``, which
unpickles code, so it also needs ``--trust-pickle``.

Output contract: that of the runtime the flavor is delegated to (``metadata().extra["runtime"]``);
through ``mlflow.pyfunc``, what the pyfunc model returns (a DataFrame, or an array).
The MLflow signature, converted, is in ``metadata().extra["signature"]``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from modelport.core.errors import (
    ArtifactNotFoundError,
    ModelLoadError,
    PredictionError,
    UnsupportedFormatError,
    UntrustedPickleError,
)
from modelport.core.signature import FieldSpec, Signature, canonical_dtype
from modelport.runtime import lightgbm, onnx, sklearn, xgboost
from modelport.runtime._optional import distribution_version, require
from modelport.runtime.base import LoadContext, Runtime, RuntimeMetadata

__all__ = [
    "NATIVE_FLAVORS",
    "MlflowRuntime",
    "mlflow_signature",
    "packages",
    "plan",
    "read_mlmodel",
]

NATIVE_FLAVORS = ("sklearn", "xgboost", "lightgbm", "onnx")
_RUNTIMES: dict[str, Callable[[LoadContext], Runtime]] = {
    "sklearn": sklearn.SklearnRuntime,
    "xgboost": xgboost.XGBoostRuntime,
    "lightgbm": lightgbm.LightGBMRuntime,
    "onnx": onnx.OnnxRuntime,
}
_PACKAGES = {
    "sklearn": sklearn.packages,
    "xgboost": xgboost.packages,
    "lightgbm": lightgbm.packages,
    "onnx": onnx.packages,
}
_COLUMN_TYPES = {
    "boolean": "bool",
    "integer": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
    "binary": "bytes",
    "datetime": "datetime",
}


def read_mlmodel(path: Path) -> dict[str, Any]:
    """The parsed ``MLmodel`` file of an MLflow model directory (or the file itself)."""
    file = path / "MLmodel" if path.is_dir() else path
    try:
        data = yaml.safe_load(file.read_text())
    except FileNotFoundError as exc:
        raise ArtifactNotFoundError(f"{path} has no MLmodel file; is it an MLflow model?") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{file} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("flavors"), dict):
        raise ModelLoadError(f"{file} lists no flavors; re-save the model with MLflow")
    return data


def _field(spec: Mapping[str, Any], index: int, default: str) -> FieldSpec | None:
    optional = not spec.get("required", True)
    if spec.get("type") == "tensor":
        tensor = spec.get("tensor-spec") or {}
        shape = tuple(int(d) for d in tensor.get("shape", [-1]))
        name = str(spec.get("name") or (default if index == 0 else f"{default}_{index}"))
        dtype = canonical_dtype(tensor.get("dtype", "float64"))
        return FieldSpec(name=name, dtype=dtype, shape=shape, optional=optional)
    column_type = _COLUMN_TYPES.get(str(spec.get("type")))
    if column_type is None:  # MLflow's array/object/map types have no core equivalent
        return None
    return FieldSpec(name=str(spec.get("name", index)), dtype=column_type, optional=optional)


def _specs(value: Any) -> list[Mapping[str, Any]]:
    specs = json.loads(value) if isinstance(value, str) else value
    return list(specs or [])


def mlflow_signature(mlmodel: Mapping[str, Any]) -> Signature | None:
    """The MLflow signature as a core ``Signature``; None when absent or not representable."""
    raw = mlmodel.get("signature")
    if not isinstance(raw, Mapping) or not raw.get("inputs"):
        return None
    try:
        in_specs, out_specs = _specs(raw["inputs"]), _specs(raw.get("outputs"))
        inputs = [_field(spec, i, "input") for i, spec in enumerate(in_specs)]
        outputs = [_field(spec, i, "output") for i, spec in enumerate(out_specs)]
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelLoadError(f"the MLmodel signature cannot be read: {exc}") from exc
    if None in inputs or None in outputs:
        return None
    tensors = all(spec.get("type") == "tensor" for spec in in_specs)
    return Signature(
        kind="tensors" if tensors else "columns",
        inputs=tuple(f for f in inputs if f is not None),
        outputs=tuple(f for f in outputs if f is not None),
    )


def _data(flavor: str, conf: Mapping[str, Any], key: str = "data") -> str:
    value = conf.get(key)
    if not isinstance(value, str):
        raise ModelLoadError(f"the {flavor} flavor in MLmodel names no model file ({key!r})")
    return value


def _native(flavor: str, conf: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The modelport runtime and its config for one native MLflow flavor."""
    model_class = str(conf.get("model_class", ""))
    short = model_class.rsplit(".", 1)[-1]
    if flavor == "sklearn" or (flavor == "lightgbm" and short in lightgbm.WRAPPERS):
        serialization = str(conf.get("serialization_format", "cloudpickle"))
        if serialization not in sklearn.SERIALIZATIONS:
            raise UnsupportedFormatError(
                f"MLflow {flavor} serialization {serialization!r} is not supported; "
                f"modelport reads {', '.join(sklearn.SERIALIZATIONS)}"
            )
        key = "pickled_model" if flavor == "sklearn" else "data"
        return "sklearn", {"serialization": serialization, "file": _data(flavor, conf, key)}
    if flavor == "xgboost" and short in xgboost.WRAPPERS:
        return "xgboost", {"file": _data(flavor, conf), "estimator": {"class": short}}
    if flavor in ("xgboost", "lightgbm") and short not in ("", "Booster"):
        raise UnsupportedFormatError(f"MLflow {flavor} model class {model_class!r} is not known")
    return flavor, {"file": _data(flavor, conf)}


def plan(mlmodel: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(flavor, modelport runtime, its config) for a parsed ``MLmodel``; ``pyfunc`` when the
    model needs MLflow itself."""
    flavors = mlmodel["flavors"]
    for flavor in NATIVE_FLAVORS:
        if isinstance(flavors.get(flavor), Mapping):
            return (flavor, *_native(flavor, flavors[flavor]))
    others = sorted(f for f in flavors if f != "python_function") or ["python_function"]
    return ",".join(others), "pyfunc", {}


def packages(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Distributions for an MLflow version whose config came from ``loaders.detect_path_format``."""
    runtime = config.get("runtime")
    if isinstance(runtime, str) and runtime in _PACKAGES:
        return _PACKAGES[runtime](config.get("runtime_config") or {})
    return ("mlflow",)


class MlflowRuntime:
    format = "mlflow"

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self._inner: Runtime | None = None
        self._pyfunc: Any = None
        self._flavor = ""
        self._mlmodel: dict[str, Any] = {}

    @property
    def loaded(self) -> bool:
        return self._pyfunc is not None or (self._inner is not None and self._inner.loaded)

    def load(self) -> None:
        mlmodel = read_mlmodel(self.ctx.path)
        flavor, runtime, config = plan(mlmodel)
        mlflow_signature(mlmodel)  # a malformed signature fails the load, not a later request
        if runtime == "pyfunc":
            self._pyfunc = self._load_pyfunc(flavor)
        else:
            inner = _RUNTIMES[runtime](dataclasses.replace(self.ctx, format=runtime, config=config))
            inner.load()
            self._inner = inner
        self._flavor, self._mlmodel = flavor, mlmodel

    def _load_pyfunc(self, flavor: str) -> Any:
        why = (
            f"the MLflow model at {self.ctx.path} has flavor {flavor!r}, which modelport loads "
            "only through mlflow.pyfunc"
        )
        pyfunc = require("mlflow.pyfunc", "mlflow", why=why)
        if not self.ctx.trust_pickle:
            raise UntrustedPickleError(
                f"{why}, and loading it can run arbitrary code. If you trust its source, "
                "register the version with --trust-pickle (its digest is verified before load)."
            )
        try:
            return pyfunc.load_model(str(self.ctx.path))
        except Exception as exc:  # MLflow raises MlflowException and whatever the flavor raises
            raise ModelLoadError(f"mlflow.pyfunc could not load {self.ctx.path}: {exc}") from exc

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        if self._inner is not None:
            return self._inner.predict(inputs, params)
        if self._pyfunc is None:
            raise PredictionError(f"MLflow model at {self.ctx.path} is not loaded; call load()")
        try:
            out = self._pyfunc.predict(inputs, params=dict(params) if params else None)
        except Exception as exc:  # the flavor's own failure, whatever its type
            raise PredictionError(f"MLflow model at {self.ctx.path} failed: {exc}") from exc
        if hasattr(out, "to_numpy") and not hasattr(out, "columns"):  # a Series
            return out.to_numpy()
        return np.asarray(out) if isinstance(out, list | tuple) else out

    def unload(self) -> None:
        if self._inner is not None:
            self._inner.unload()
        self._inner = None
        self._pyfunc = None

    def metadata(self) -> RuntimeMetadata:
        signature = mlflow_signature(self._mlmodel) if self._mlmodel else None
        extra: dict[str, Any] = {
            "flavor": self._flavor,
            "mlflow_version": self._mlmodel.get("mlflow_version"),
            "signature": signature.to_dict() if signature else None,
        }
        if self._inner is not None:
            inner = self._inner.metadata()
            extra = {**inner.extra, **extra, "runtime": inner.format}
            return RuntimeMetadata(
                format=self.format,
                platform=f"mlflow_{self._flavor}",
                framework_version=inner.framework_version,
                can_batch=inner.can_batch,
                outputs=inner.outputs,
                extra=extra,
            )
        return RuntimeMetadata(
            format=self.format,
            platform=f"mlflow_{self._flavor or 'pyfunc'}",
            framework_version=distribution_version("mlflow"),
            can_batch=True,
            extra=extra,
        )
