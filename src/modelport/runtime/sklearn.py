"""scikit-learn models: skops by default, pickle/joblib only when the version is trusted.

Runtime config: ``{"serialization": "skops" | "pickle" | "cloudpickle" | "joblib", "file": ...}``.
skops files load with the types the registry trusted for the version (``ctx.trusted_types``, never
a list read from the artifact). Pickle files are refused unless ``ctx.trust_pickle``.

Output contract: a dict with ``predictions`` (``estimator.predict(X)``) and, for estimators with
``predict_proba`` (classifiers), ``probabilities`` (``predict_proba(X)``, one column per entry of
``metadata().extra["classes"]``). Input: a DataFrame, a 2-D array or a dict of 1-D columns;
arrays get the fitted column names when the model was fitted on a DataFrame.
"""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modelport.core.errors import (
    InvalidInputError,
    ModelLoadError,
    UntrustedPickleError,
    UntrustedTypesError,
)
from modelport.runtime._common import NativeRuntime, artifact_file, as_table, config_str
from modelport.runtime._optional import distribution_version, require
from modelport.runtime.base import LoadContext, RuntimeMetadata, SaveResult
from modelport.runtime.threads import ThreadLimit

__all__ = ["SERIALIZATIONS", "SklearnRuntime", "load_estimator", "packages", "save_sklearn"]

SERIALIZATIONS = ("skops", "pickle", "cloudpickle", "joblib")
_FILES = {
    "skops": "model.skops",
    "pickle": "model.pkl",
    "cloudpickle": "model.pkl",
    "joblib": "model.joblib",
}


def packages(config: Mapping[str, Any]) -> tuple[str, ...]:
    """Distributions a scikit-learn version needs, the framework first."""
    serialization = config.get("serialization", "skops")
    extra = {"skops": ("skops",), "joblib": ("joblib",), "cloudpickle": ("cloudpickle",)}
    return ("scikit-learn", *extra.get(serialization, ()), "numpy", "scipy")


def _serialization(ctx: LoadContext) -> str:
    value = config_str(ctx, "serialization", "skops")
    if value not in SERIALIZATIONS:
        raise InvalidInputError(
            f"unknown scikit-learn serialization {value!r} for {ctx.path}; "
            f"use one of {', '.join(SERIALIZATIONS)}"
        )
    return value


def _load_skops(path: Path, trusted: tuple[str, ...]) -> Any:
    sio = require("skops.io", "sklearn", why=f"loading {path.name}")
    try:
        found = sio.get_untrusted_types(file=path)
    except Exception as exc:  # skops raises zip/JSON errors of several kinds for a bad file
        raise ModelLoadError(f"{path} is not a readable skops file: {exc}") from exc
    missing = sorted(set(found) - set(trusted))
    if missing:
        raise UntrustedTypesError(
            f"{path.name} contains types nobody trusted for this version: {', '.join(missing)}. "
            "Review them and, if you trust the source, re-register the model with "
            + " ".join(f"--trust-type {t}" for t in missing),
            types=missing,
        )
    try:
        return sio.load(path, trusted=list(trusted))
    except Exception as exc:  # the framework's own failure while rebuilding the model
        raise ModelLoadError(f"could not load scikit-learn model {path}: {exc}") from exc


def _load_pickle(path: Path, serialization: str, trusted: bool) -> Any:
    if not trusted:
        raise UntrustedPickleError(
            f"{path.name} is a {serialization} file and unpickling can run arbitrary code, so it "
            "is not loaded. If you trust its source, register the version with --trust-pickle "
            "(the registry verifies its digest before every load), or save the model with skops."
        )
    try:
        if serialization == "joblib":
            return require("joblib", "sklearn", why=f"loading {path.name}").load(path)
        with path.open("rb") as fh:
            return pickle.load(fh)  # noqa: S301 - the version is explicitly trusted, digest verified
    except Exception as exc:  # unpickling raises whatever the pickled objects raise
        raise ModelLoadError(f"could not unpickle scikit-learn model {path}: {exc}") from exc


# Classifiers whose predict() is, by construction, classes_[argmax(predict_proba())]: for
# them one predict_proba call gives both outputs (scikit-learn validates the input on every
# call, which costs more than the model itself for small inputs). Others call both.
_ARGMAX_CLASSIFIERS = frozenset(
    {
        "sklearn.linear_model._logistic.LogisticRegression",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.ensemble._forest.ExtraTreesClassifier",
        "sklearn.tree._classes.DecisionTreeClassifier",
        "sklearn.naive_bayes.GaussianNB",
        "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
    }
)


def _argmax_classifier(model: Any) -> bool:
    final = getattr(model, "_final_estimator", model)  # a Pipeline predicts with its last step
    cls = type(final)
    return (
        f"{cls.__module__}.{cls.__qualname__}" in _ARGMAX_CLASSIFIERS
        and hasattr(model, "predict_proba")
        and hasattr(model, "classes_")
    )


def load_estimator(ctx: LoadContext) -> Any:
    """The fitted estimator of a scikit-learn artifact, under the version's trust settings."""
    serialization = _serialization(ctx)
    path = artifact_file(ctx, _FILES[serialization])
    if serialization == "skops":
        model = _load_skops(path, ctx.trusted_types)
    else:
        model = _load_pickle(path, serialization, ctx.trust_pickle)
    if not callable(getattr(model, "predict", None)):
        raise ModelLoadError(
            f"{path.name} holds a {type(model).__name__} without predict(); "
            "register a fitted estimator or Pipeline"
        )
    return model


class SklearnRuntime(NativeRuntime):
    format = "sklearn"

    def __init__(self, ctx: LoadContext) -> None:
        super().__init__(ctx)
        self._limit = ThreadLimit(ctx.threads)
        self._labels_from_proba = False

    def load(self) -> None:
        model = load_estimator(self.ctx)
        self._limit.start()
        self._labels_from_proba = _argmax_classifier(model)
        self._model = model

    def predict(self, inputs: Any, params: Mapping[str, Any] | None = None) -> Any:
        """``params`` are ignored: scikit-learn's predict takes none."""
        model = self._loaded_model()
        names = getattr(model, "feature_names_in_", None)
        on_array = names is None and hasattr(model, "n_features_in_")
        X = as_table(inputs, None if names is None else list(names), on_array)
        try:
            with self._limit.limit():
                if self._labels_from_proba:
                    proba = np.asarray(model.predict_proba(X))
                    labels = np.asarray(model.classes_).take(proba.argmax(axis=1))
                    return {"predictions": labels, "probabilities": proba}
                out = {"predictions": np.asarray(model.predict(X))}
                if hasattr(model, "predict_proba"):
                    out["probabilities"] = np.asarray(model.predict_proba(X))
        except Exception as exc:  # the estimator's own failure, whatever its type
            raise self._failed(exc) from exc
        return out

    def metadata(self) -> RuntimeMetadata:
        serialization = self.ctx.config.get("serialization", "skops")
        extra: dict[str, Any] = {"serialization": serialization}
        outputs: tuple[str, ...] = ()
        model = self._model
        if model is not None:
            cls = type(model)
            extra["estimator"] = f"{cls.__module__}.{cls.__qualname__}"
            outputs = ("predictions",)
            if hasattr(model, "predict_proba"):
                outputs = ("predictions", "probabilities")
                classes = getattr(model, "classes_", None)
                if classes is not None:
                    extra["classes"] = np.asarray(classes).tolist()
        return RuntimeMetadata(
            format=self.format,
            platform=f"sklearn_{serialization}",
            framework_version=distribution_version("scikit-learn"),
            can_batch=True,
            outputs=outputs,
            extra=extra,
        )


def _renumber(node: Any, ids: dict[Any, int], files: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_renumber(item, ids, files) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        if key == "__id__":
            value = ids.setdefault(value, len(ids) + 1)  # 0 would read as "no id"
        elif key == "file" and isinstance(value, str):
            value = files.setdefault(value, f"{len(files)}{Path(value).suffix}")
        out[key] = _renumber(value, ids, files)
    return out


def _reproducible(data: bytes) -> bytes:
    """The same skops archive with object ids, file names and timestamps made canonical.

    skops names entries after ``id()`` of the objects and stamps the current time, so saving the
    same model twice gives different bytes; content addressing wants the same digest.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as src:
        files: dict[str, str] = {}
        schema = _renumber(json.loads(src.read("schema.json")), {}, files)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as dst:
            for info in src.infolist():
                name = "schema.json" if info.filename == "schema.json" else files[info.filename]
                entry = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                entry.compress_type, entry.external_attr = info.compress_type, 0o600 << 16
                content = src.read(info)
                if name == "schema.json":
                    content = json.dumps(schema, indent=2).encode()
                dst.writestr(entry, content)
    return out.getvalue()


def save_sklearn(model: Any, dest_dir: Path | str) -> SaveResult:
    """Write ``model.skops`` (the same bytes for the same model); report the types loading it
    will need trusted."""
    sio = require("skops.io", "sklearn", why="saving a scikit-learn model")
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / _FILES["skops"]
    try:
        path.write_bytes(_reproducible(sio.dumps(model)))
    except Exception as exc:  # skops refuses objects it cannot represent
        raise InvalidInputError(
            f"skops cannot save the {type(model).__name__}: {exc}; "
            "save a fitted estimator or Pipeline built from importable classes"
        ) from exc
    config = {"serialization": "skops", "file": path.name}
    return SaveResult(
        format="sklearn",
        config=config,
        untrusted_types=tuple(sio.get_untrusted_types(file=path)),
        framework_packages=packages(config),
    )
