"""XGBoost models in XGBoost's own JSON or UBJSON format (never pickle).

Runtime config: ``{"file": "model.ubj" | "model.json", "estimator": {"class": "XGBClassifier",
"n_classes": 3}}``. Without ``estimator`` the file loads into an ``xgboost.Booster``; with it,
into that scikit-learn wrapper class, so predictions are exactly what the wrapper returns.

Output contract: a dict with ``predictions`` (``Booster.predict`` on a DMatrix, or the wrapper's
``predict``: labels for classifiers) and, for classifier wrappers, ``probabilities``
(``predict_proba``).
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

__all__ = ["WRAPPERS", "XGBoostRuntime", "packages", "save_xgboost"]

WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")
_CLASSIFIERS = ("XGBClassifier", "XGBRFClassifier")


def packages(config: Mapping[str, Any]) -> tuple[str, ...]:
    base = ("xgboost", "numpy", "scipy")
    return (*base, "scikit-learn") if config.get("estimator") else base


def _estimator(ctx: LoadContext) -> dict[str, Any] | None:
    value = ctx.config.get("estimator")
    if value is None:
        return None
    if not isinstance(value, Mapping) or value.get("class") not in WRAPPERS:
        raise InvalidInputError(
            f"xgboost runtime config 'estimator' for {ctx.path} must name one of "
            f"{', '.join(WRAPPERS)}, not {value!r}"
        )
    return dict(value)


class XGBoostRuntime(NativeRuntime):
    format = "xgboost"

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self._classifier = False

    def load(self) -> None:
        xgb = require("xgboost", "xgboost", why="loading an XGBoost model")
        path = artifact_file(self.ctx, "model.ubj")
        threads = check_threads(self.ctx.threads)
        estimator = _estimator(self.ctx)
        # From a buffer: XGBoost detects JSON/UBJSON by content, whatever the file's extension.
        raw = bytearray(path.read_bytes())
        try:
            if estimator is None:
                model = xgb.Booster()
                model.load_model(raw)
                if threads is not None:
                    model.set_param("nthread", threads)
            else:
                model = getattr(xgb, estimator["class"])()
                model.load_model(raw)
                if threads is not None:
                    model.set_params(n_jobs=threads)
        except xgb.core.XGBoostError as exc:
            raise ModelLoadError(f"xgboost could not load {path}: {exc}") from exc
        expected = None if estimator is None else estimator.get("n_classes")
        if expected is not None and getattr(model, "n_classes_", expected) != expected:
            raise ModelLoadError(
                f"{path} has {model.n_classes_} classes but its runtime config says {expected}; "
                "re-register the version"
            )
        self._classifier = estimator is not None and estimator["class"] in _CLASSIFIERS
        self._model = model

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """``params`` are ignored."""
        xgb = require("xgboost", "xgboost")
        model = self._loaded_model()
        booster = model if isinstance(model, xgb.Booster) else model.get_booster()
        X = as_table(inputs, None, fitted_on_array=False)
        try:
            if isinstance(model, xgb.Booster):
                kw = {} if is_frame(X) else {"feature_names": booster.feature_names}
                data = xgb.DMatrix(X, enable_categorical=True, **kw)
                return {"predictions": np.asarray(model.predict(data))}
            out = {"predictions": np.asarray(model.predict(X))}
            if self._classifier:
                out["probabilities"] = np.asarray(model.predict_proba(X))
        except Exception as exc:  # XGBoostError, or pandas/numpy errors for a bad input
            raise self._failed(exc) from exc
        return out

    def metadata(self) -> RuntimeMetadata:
        estimator = self.ctx.config.get("estimator")
        is_classifier = isinstance(estimator, Mapping) and estimator.get("class") in _CLASSIFIERS
        outputs = ("predictions", "probabilities") if is_classifier else ("predictions",)
        extra: dict[str, Any] = {"estimator": dict(estimator) if estimator else None}
        return RuntimeMetadata(
            format=self.format,
            platform="xgboost_xgboost",
            framework_version=distribution_version("xgboost"),
            can_batch=True,
            outputs=outputs,
            extra=extra,
        )


def _wrapper_name(model: Any) -> str:
    for cls in type(model).__mro__:
        if cls.__module__.startswith("xgboost") and cls.__name__ in WRAPPERS:
            return cls.__name__
    raise UnsupportedFormatError(
        f"cannot save a {type(model).__name__}: modelport saves an xgboost.Booster or one of "
        f"{', '.join(WRAPPERS)}"
    )


def save_xgboost(model: Any, dest_dir: Path | str, file_format: str = "ubj") -> SaveResult:
    """Write ``model.ubj`` (or ``model.json``) from a Booster or a scikit-learn wrapper."""
    xgb = require("xgboost", "xgboost", why="saving an XGBoost model")
    if file_format not in ("ubj", "json"):
        raise InvalidInputError(f"file_format must be 'ubj' or 'json', not {file_format!r}")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {"file": f"model.{file_format}"}
    if isinstance(model, xgb.XGBModel):
        estimator: dict[str, Any] = {"class": _wrapper_name(model)}
        if estimator["class"] in _CLASSIFIERS:
            n_classes = getattr(model, "n_classes_", None)
            if n_classes is None:
                raise InvalidInputError(f"the {type(model).__name__} is not fitted; fit it first")
            estimator["n_classes"] = int(n_classes)
        config["estimator"] = estimator
    elif not isinstance(model, xgb.Booster):
        raise UnsupportedFormatError(
            f"save_xgboost takes an xgboost.Booster or XGBModel, not a {type(model).__name__}"
        )
    try:
        model.save_model(str(dest / config["file"]))
    except Exception as exc:  # an unfitted wrapper raises sklearn's NotFittedError
        raise InvalidInputError(f"cannot save the {type(model).__name__}: {exc}") from exc
    return SaveResult(format="xgboost", config=config, framework_packages=packages(config))
