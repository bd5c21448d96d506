"""LightGBM models in LightGBM's own text format (``Booster.save_model``; never pickle).

Runtime config: ``{"file": "model.txt", "estimator": {"class": "LGBMClassifier",
"classes": [...]}}``. The text file holds the booster; ``estimator`` records what the
scikit-learn wrapper adds on top of it (the class labels), so predictions equal the wrapper's.

Output contract: a dict with ``predictions`` (``Booster.predict``: values for regressors
and rankers, labels for ``LGBMClassifier``) and, for classifiers, ``probabilities`` (``(N, k)``,
columns in the order of ``estimator.classes``), exactly as ``LGBMClassifier.predict`` and
``predict_proba`` return them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError, ModelLoadError, UnsupportedFormatError
from modelport.runtime._common import NativeRuntime, artifact_file, as_table, is_frame
from modelport.runtime._optional import distribution_version, require
from modelport.runtime.base import LoadContext, RuntimeMetadata, SaveResult
from modelport.runtime.threads import check_threads

__all__ = ["WRAPPERS", "LightGBMRuntime", "packages", "save_lightgbm"]

WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker", "LGBMModel")


def packages(config: Mapping[str, Any]) -> tuple[str, ...]:
    return ("lightgbm", "numpy", "scipy")


def _classes(ctx: LoadContext) -> np.ndarray | None:
    """The label of each probability column, for a classifier whose outputs are probabilities."""
    estimator = ctx.config.get("estimator")
    if estimator is None:
        return None
    if not isinstance(estimator, Mapping) or estimator.get("class") not in WRAPPERS:
        raise InvalidInputError(
            f"lightgbm runtime config 'estimator' for {ctx.path} must name one of "
            f"{', '.join(WRAPPERS)}, not {estimator!r}"
        )
    if estimator["class"] != "LGBMClassifier" or estimator.get("custom_objective"):
        return None
    return np.asarray(estimator["classes"])


def _align(X: Any, names: list[str]) -> Any:
    """A frame's columns in training order: the booster reads columns by position."""
    if not is_frame(X):
        return X
    columns = [str(c).replace(" ", "_") for c in X.columns]  # LightGBM's own renaming
    if columns == names:
        return X
    if set(names) <= set(columns):
        return X.iloc[:, [columns.index(n) for n in names]]
    if names != [f"Column_{i}" for i in range(len(names))]:
        raise InvalidInputError(
            f"the LightGBM model expects columns {names}, not {[str(c) for c in X.columns]}"
        )
    return X


class LightGBMRuntime(NativeRuntime):
    format = "lightgbm"

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self._classes: np.ndarray | None = None

    def load(self) -> None:
        lgb = require("lightgbm", "lightgbm", why="loading a LightGBM model")
        path = artifact_file(self.ctx, "model.txt")
        check_threads(self.ctx.threads)
        classes = _classes(self.ctx)
        try:
            booster = lgb.Booster(model_file=str(path))
        except lgb.basic.LightGBMError as exc:
            raise ModelLoadError(f"lightgbm could not load {path}: {exc}") from exc
        n_classes = max(int(booster.num_model_per_iteration()), 2)
        if classes is not None and len(classes) != n_classes:
            raise ModelLoadError(
                f"{path} predicts {n_classes} classes but its runtime config lists "
                f"{len(classes)}; re-register the version"
            )
        self._classes = classes
        self._model = booster

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """``params`` are ignored."""
        booster = self._loaded_model()
        classes = self._classes
        X = _align(as_table(inputs, None, fitted_on_array=False), booster.feature_name())
        kw = {} if self.ctx.threads is None else {"num_threads": self.ctx.threads}
        try:
            raw = np.asarray(booster.predict(X, **kw))
        except Exception as exc:  # LightGBMError, or pandas/numpy errors for a bad input
            raise self._failed(exc) from exc
        if classes is None:
            return {"predictions": raw}
        # What LGBMClassifier.predict_proba / predict do with the booster's output.
        proba = raw if raw.ndim == 2 else np.vstack((1.0 - raw, raw)).transpose()
        return {"predictions": classes[np.argmax(proba, axis=1)], "probabilities": proba}

    def unload(self) -> None:
        super().unload()
        self._classes = None

    def metadata(self) -> RuntimeMetadata:
        classes = _classes(self.ctx)
        extra: dict[str, Any] = {"estimator": self.ctx.config.get("estimator")}
        if classes is not None:
            extra["classes"] = classes.tolist()
        return RuntimeMetadata(
            format=self.format,
            platform="lightgbm_lightgbm",
            framework_version=distribution_version("lightgbm"),
            can_batch=True,
            outputs=("predictions",) if classes is None else ("predictions", "probabilities"),
            extra=extra,
        )


def _wrapper_name(model: Any) -> str:
    for cls in type(model).__mro__:
        if cls.__module__.startswith("lightgbm") and cls.__name__ in WRAPPERS:
            return cls.__name__
    raise UnsupportedFormatError(f"cannot save a {type(model).__name__} as LightGBM")


def save_lightgbm(model: Any, dest_dir: Path | str) -> SaveResult:
    """Write ``model.txt`` from a Booster or a fitted scikit-learn wrapper."""
    lgb = require("lightgbm", "lightgbm", why="saving a LightGBM model")
    config: dict[str, Any] = {"file": "model.txt"}
    if isinstance(model, lgb.LGBMModel):
        if not getattr(model, "fitted_", False):
            raise InvalidInputError(f"the {type(model).__name__} is not fitted; fit it first")
        estimator: dict[str, Any] = {"class": _wrapper_name(model)}
        if callable(model.objective):
            estimator["custom_objective"] = True  # the wrapper then returns raw scores
        if estimator["class"] == "LGBMClassifier":
            estimator["classes"] = np.asarray(model.classes_).tolist()
        config["estimator"] = estimator
        booster = model.booster_
    elif isinstance(model, lgb.Booster):
        booster = model
    else:
        raise UnsupportedFormatError(
            f"save_lightgbm takes a lightgbm.Booster or LGBMModel, not a {type(model).__name__}"
        )
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(dest / "model.txt"))
    return SaveResult(format="lightgbm", config=config, framework_packages=packages(config))
