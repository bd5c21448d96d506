"""What the native runtimes share: the loaded/unloaded life cycle, artifact files and inputs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import ArtifactNotFoundError, InvalidInputError, PredictionError
from modelport.core.paths import safe_relpath
from modelport.runtime.base import LoadContext

__all__ = ["NativeRuntime", "artifact_file", "as_table", "config_str", "is_frame"]


def config_str(ctx: LoadContext, key: str, default: str) -> str:
    value = ctx.config.get(key, default)
    if not isinstance(value, str):
        raise InvalidInputError(
            f"{ctx.format} runtime config {key!r} must be a string, not {type(value).__name__}"
        )
    return value


def artifact_file(ctx: LoadContext, default: str, key: str = "file") -> Path:
    """The model file named by ``config[key]`` inside the artifact directory; it must exist."""
    name = safe_relpath(config_str(ctx, key, default))
    path = ctx.path / name
    if not path.is_file():
        raise ArtifactNotFoundError(
            f"{ctx.format} model file {name!r} is missing from {ctx.path}; "
            f"re-register the version or set runtime config {key!r} to the model file"
        )
    return path


def is_frame(value: object) -> bool:
    return hasattr(value, "columns") and hasattr(value, "dtypes") and hasattr(value, "iloc")


def as_table(inputs: Any, feature_names: Sequence[str] | None, fitted_on_array: bool) -> Any:
    """A DataFrame or a 2-D ndarray, whichever the fitted model expects.

    A model fitted on a DataFrame (``feature_names``) gets a DataFrame: arrays get its column
    names and a dict of columns becomes a frame. A model fitted on an array
    (``fitted_on_array``) gets an array. Otherwise the input is passed on as given.
    """
    import pandas as pd  # a core dependency, heavy to import: only the runtimes pay for it

    if isinstance(inputs, Mapping):
        inputs = pd.DataFrame({str(k): _column(str(k), v) for k, v in inputs.items()})
    elif isinstance(inputs, list | tuple):
        inputs = np.asarray(inputs)
    if is_frame(inputs):
        return inputs.to_numpy() if fitted_on_array else inputs
    if not isinstance(inputs, np.ndarray):
        raise InvalidInputError(
            f"cannot predict on a {type(inputs).__name__}; "
            "send a pandas DataFrame, a 2-D numpy array or a dict of columns"
        )
    if feature_names is not None and inputs.ndim == 2 and inputs.shape[1] == len(feature_names):
        return pd.DataFrame(inputs, columns=list(feature_names)).infer_objects()
    return inputs


def _column(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise InvalidInputError(
            f"input {name!r} has shape {arr.shape}; a dict input holds one 1-D column per feature"
        )
    return arr


class NativeRuntime:
    """Stores the context; holds the model between ``load()`` and ``unload()``."""

    format = ""

    def __init__(self, ctx: LoadContext) -> None:
        self.ctx = ctx
        self._model: Any = None

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def unload(self) -> None:
        self._model = None

    def _loaded_model(self) -> Any:
        model = self._model
        if model is None:
            raise PredictionError(
                f"{self.format} model at {self.ctx.path} is not loaded; call load() first"
            )
        return model

    def _failed(self, exc: Exception) -> PredictionError:
        return PredictionError(
            f"{self.format} model at {self.ctx.path} failed to predict: {exc}; "
            "check that the input matches the model's signature"
        )
