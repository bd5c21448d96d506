"""The registry of model formats: open a runtime, save an in-memory model, recognise a file.

Detection never imports a framework: objects are recognised by the modules their classes come
from, files by name and first bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from modelport.core.errors import ModelLoadError, UnsupportedFormatError
from modelport.runtime import lightgbm, mlflow, onnx, pyclass, sklearn, xgboost
from modelport.runtime.base import LoadContext, Runtime, SaveResult

__all__ = [
    "FORMATS",
    "detect_object_format",
    "detect_path_format",
    "framework_packages",
    "open_runtime",
    "save_model",
]

FORMATS = ("sklearn", "onnx", "xgboost", "lightgbm", "python", "mlflow")

_RUNTIMES: dict[str, Callable[[LoadContext], Runtime]] = {
    "sklearn": sklearn.SklearnRuntime,
    "onnx": onnx.OnnxRuntime,
    "xgboost": xgboost.XGBoostRuntime,
    "lightgbm": lightgbm.LightGBMRuntime,
    "python": pyclass.PythonClassRuntime,
    "mlflow": mlflow.MlflowRuntime,
}
_SAVERS: dict[str, Callable[..., SaveResult]] = {
    "sklearn": sklearn.save_sklearn,
    "onnx": onnx.save_onnx,
    "xgboost": xgboost.save_xgboost,
    "lightgbm": lightgbm.save_lightgbm,
    "python": pyclass.save_pyclass,
}
_PACKAGES: dict[str, Callable[[Mapping[str, Any]], tuple[str, ...]]] = {
    "sklearn": sklearn.packages,
    "onnx": onnx.packages,
    "xgboost": xgboost.packages,
    "lightgbm": lightgbm.packages,
    "python": lambda config: (),
    "mlflow": mlflow.packages,
}
_SUPPORTED = ", ".join(FORMATS)


def _check_format(format: str) -> None:
    if format not in _RUNTIMES:
        raise UnsupportedFormatError(
            f"unknown model format {format!r}; supported formats: {_SUPPORTED}"
        )


def open_runtime(ctx: LoadContext) -> Runtime:
    """The runtime for ``ctx.format``, constructed (not loaded)."""
    _check_format(ctx.format)
    return _RUNTIMES[ctx.format](ctx)


def framework_packages(format: str, config: Mapping[str, Any]) -> tuple[str, ...]:
    """Distributions a version of this format needs (for the environment lock), framework first."""
    _check_format(format)
    return _PACKAGES[format](config)


def _libraries(obj: Any) -> set[str]:
    return {cls.__module__.split(".")[0] for cls in type(obj).__mro__}


def detect_object_format(obj: Any) -> str:
    """The format ``save_model`` would use for ``obj``."""
    libraries = _libraries(obj)
    for library, format in (
        ("onnx", "onnx"),
        ("xgboost", "xgboost"),
        ("lightgbm", "lightgbm"),
        ("sklearn", "sklearn"),
    ):
        if library in libraries:
            return format
    if callable(getattr(obj, "predict", None)):
        return "python"
    raise UnsupportedFormatError(
        f"cannot save a {type(obj).__module__}.{type(obj).__qualname__}: it is not a "
        "scikit-learn estimator, an ONNX ModelProto, an XGBoost or LightGBM model, nor an object "
        f"with a predict() method; supported formats: {_SUPPORTED}"
    )


def save_model(obj: Any, dest_dir: Path | str, format: str | None = None, **kw: Any) -> SaveResult:
    """Save an in-memory model into ``dest_dir`` in ``format`` (detected when None)."""
    chosen = format or detect_object_format(obj)
    _check_format(chosen)
    if chosen not in _SAVERS:
        raise UnsupportedFormatError(
            f"modelport reads {chosen} models but does not write them; register the "
            f"{chosen} model directory from its path instead"
        )
    return _SAVERS[chosen](obj, dest_dir, **kw)


def _head(path: Path, size: int = 4096) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def _unsupported(path: Path) -> UnsupportedFormatError:
    return UnsupportedFormatError(
        f"cannot tell the model format of {path}; supported formats: {_SUPPORTED} "
        "(files: .skops, .pkl/.pickle/.joblib, .onnx, XGBoost .json/.ubj, LightGBM text; "
        f"directories: MLflow with MLmodel, Python classes with {pyclass.MARKER})"
    )


def _detect_dir(path: Path) -> tuple[str, dict[str, Any]]:
    if (path / "MLmodel").is_file():
        flavor, runtime, runtime_config = mlflow.plan(mlflow.read_mlmodel(path))
        return "mlflow", {"flavor": flavor, "runtime": runtime, "runtime_config": runtime_config}
    marker = path / pyclass.MARKER
    if marker.is_file():
        try:
            config = yaml.safe_load(marker.read_text())
        except yaml.YAMLError as exc:
            raise ModelLoadError(f"{marker} is not valid YAML: {exc}") from exc
        if not isinstance(config, dict) or "entry" not in config:
            raise ModelLoadError(f"{marker} must name an 'entry' such as 'model.py:ClassName'")
        return "python", config
    raise _unsupported(path)


def detect_path_format(path: Path) -> tuple[str, dict[str, Any]]:
    """(format, runtime config) of a model file or directory about to be registered."""
    if path.is_dir():
        return _detect_dir(path)
    if not path.is_file():
        raise UnsupportedFormatError(f"{path} is neither a model file nor a model directory")
    suffix = path.suffix.lower()
    name = path.name
    if suffix == ".skops":
        return "sklearn", {"serialization": "skops", "file": name}
    if suffix in (".pkl", ".pickle"):
        return "sklearn", {"serialization": "pickle", "file": name}
    if suffix == ".joblib":
        return "sklearn", {"serialization": "joblib", "file": name}
    if suffix == ".onnx":
        return "onnx", {"file": name}
    head = _head(path)
    if suffix == ".ubj" and head.startswith(b"{"):
        return "xgboost", {"file": name}
    if suffix == ".json" and head.lstrip().startswith(b"{") and b'"learner"' in head:
        return "xgboost", {"file": name}
    if head.startswith(b"tree\n") and b"version=v" in head:
        return "lightgbm", {"file": name}
    raise _unsupported(path)
