"""The ONNX fast path: conversion (with the scikit-learn 1.9 HGB workaround), the runtime that
serves it under the scikit-learn output contract, and the verification that guards it."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

from modelport.core.digest import Manifest
from modelport.core.errors import InvalidInputError, UnsupportedFormatError
from modelport.core.examples import encode
from modelport.core.model import Lineage, ModelVersion
from modelport.core.profile import profile_frame
from modelport.core.signature import Signature
from modelport.runtime import fastpath
from modelport.runtime.base import LoadContext, Runtime
from modelport.runtime.fastpath import (
    ATOL,
    FastPathRuntime,
    build_onnx_variant,
    convert_sklearn_to_onnx,
    verification_samples,
    verify_variant,
)
from modelport.runtime.sklearn import SklearnRuntime, save_sklearn
from modelport.testing import check_runtime

TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def numeric_data(rows: int = 600, features: int = 20, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(seed)
    x = pd.DataFrame(rng.normal(size=(rows, features)), columns=[f"f{i}" for i in range(features)])
    y = (x["f0"] + x["f1"] * x["f2"] - 0.5 * x["f3"] > 0).astype(int).to_numpy()
    return x, y


def hgb_data() -> tuple[pd.DataFrame, Any]:
    x, y = numeric_data(rows=2000)
    x.iloc[::13, 3] = np.nan  # missing values take the trees' missing_go_to_left branches
    return x, y


def mixed_data() -> tuple[pd.DataFrame, Any]:
    rng = np.random.default_rng(5)
    x = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 30.0, 400),
            "items": rng.integers(1, 6, 400),
            "country": rng.choice(["fr", "de", "us"], 400),
        }
    )
    y = np.where(x["amount"] / 60 + (x["country"] == "us") > 1.2, "fraud", "ok")
    return x, y


class Store:
    """Saves a model like registration does and describes it as a registered version."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def version(
        self,
        model: Any,
        x: pd.DataFrame,
        example: bool = True,
        sample: bool = True,
        trusted: tuple[str, ...] = (),
    ) -> tuple[ModelVersion, Path]:
        model_dir = self.root / "model"
        saved = save_sklearn(model, model_dir)
        profile = profile_frame(x, sample_rows=64)
        return (
            ModelVersion(
                name="m",
                number=1,
                digest=Manifest.of([]).digest,
                format="sklearn",
                manifest=Manifest.of([]),
                signature=Signature.infer(x.head(5)),
                input_example=encode(x.head(5)) if example else None,
                metrics={},
                params={},
                tags={},
                description="",
                lineage=Lineage(),
                environment=None,
                profile=profile if sample else None,
                trusted_types=trusted or tuple(saved.untrusted_types),
                runtime_config=dict(saved.config),
                datasets=(),
                status="ready",
                created_by="test",
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
            ),
            model_dir,
        )

    def convert(self, version: ModelVersion, model_dir: Path) -> dict[str, Any]:
        """Convert into ``root/onnx``; the fast path's runtime config."""
        saved = convert_sklearn_to_onnx(
            model_dir,
            version.runtime_config,
            version.signature,
            version.trusted_types,
            self.root / "onnx",
        )
        return dict(saved.config)

    def runtimes(self, version: ModelVersion, model_dir: Path) -> tuple[Runtime, Runtime]:
        """The loaded original and fast path runtimes of ``version``."""
        config = self.convert(version, model_dir)
        original = SklearnRuntime(
            LoadContext(
                model_dir, "sklearn", version.runtime_config, trusted_types=version.trusted_types
            )
        )
        fast = FastPathRuntime(LoadContext(self.root / "onnx", "sklearn", config, threads=1))
        original.load()
        fast.load()
        return original, fast


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def assert_same_contract(original: Runtime, fast: Runtime, x: Any, atol: float = ATOL) -> None:
    want, got = original.predict(x), fast.predict(x)
    assert set(got) == set(want)
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype, name
        assert got[name].shape == expected.shape, name
    np.testing.assert_array_equal(got["predictions"], want["predictions"])
    if "probabilities" in want:
        np.testing.assert_allclose(got["probabilities"], want["probabilities"], rtol=0, atol=atol)


def test_scaled_logistic_regression_converts_and_keeps_the_contract(store: Store) -> None:
    x, y = numeric_data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(x, y)
    version, model_dir = store.version(pipe, x)
    original, fast = store.runtimes(version, model_dir)

    assert_same_contract(original, fast, x)
    assert_same_contract(original, fast, x.to_numpy())  # arrays, like the framework takes
    assert_same_contract(original, fast, {c: x[c].to_numpy() for c in x.columns})
    reordered = x[list(reversed(x.columns))]
    np.testing.assert_array_equal(fast.predict(reordered)["predictions"], pipe.predict(x))
    meta = fast.metadata()
    assert meta.format == "sklearn"
    assert meta.outputs == ("predictions", "probabilities")
    assert meta.extra["variant"] == "onnx"
    assert meta.extra["classes"] == [0, 1]
    assert meta.extra["input"]["layout"] == "matrix"
    with pytest.raises(InvalidInputError, match="f19"):
        fast.predict(x.drop(columns=["f19"]))
    with pytest.raises(InvalidInputError, match="20 columns"):
        fast.predict(x.to_numpy()[:, :3])

    config = store.convert(version, model_dir)
    check_runtime(
        lambda: FastPathRuntime(LoadContext(store.root / "onnx", "sklearn", config)),
        x.head(8),
        {"predictions": pipe.predict(x.head(8)), "probabilities": pipe.predict_proba(x.head(8))},
        atol=ATOL,
    )


def test_hist_gradient_boosting_of_the_benchmark_converts_and_verifies(store: Store) -> None:
    x, y = hgb_data()
    with threadpool_limits(1):  # several OpenMP runtimes share two cores in this test process
        hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
    assert hgb.n_iter_ == 100
    version, model_dir = store.version(hgb, x)
    assert version.trusted_types == (TREE,)

    draft = build_onnx_variant(version, model_dir, store.root / "variant")

    assert draft.status == "verified", draft.reason
    assert draft.source == store.root / "variant"
    assert draft.checked_rows == 5 + 64
    assert draft.max_abs_diff is not None
    assert draft.max_abs_diff < 1e-6
    assert draft.tolerance == ATOL
    assert draft.runtime_config["outputs"] == {
        "label": "predictions",
        "probabilities": "probabilities",
    }
    with threadpool_limits(1):
        original, fast = store.runtimes(version, model_dir)
        assert_same_contract(original, fast, x)  # all 2000 rows, NaNs included


def test_string_columns_and_labels_use_one_input_per_column(store: Store) -> None:
    x, y = mixed_data()
    pipe = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["amount", "items"]),
                        ("cat", OneHotEncoder(handle_unknown="ignore"), ["country"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression()),
        ]
    ).fit(x, y)
    version, model_dir = store.version(pipe, x)
    original, fast = store.runtimes(version, model_dir)
    assert fast.metadata().extra["input"] == {
        "layout": "columns",
        "columns": ["amount", "items", "country"],
        "types": ["float32", "int64", "string"],
    }
    assert_same_contract(original, fast, x)
    assert fast.predict(x.head(3))["predictions"].dtype == pipe.predict(x.head(3)).dtype
    draft = build_onnx_variant(version, model_dir, store.root / "variant")
    assert draft.status == "verified", draft.reason


def test_regression_outputs_are_flattened_and_float64(store: Store) -> None:
    x, _ = numeric_data(rows=400, features=6)
    target = 3 * x["f0"] - x["f1"] ** 2
    with threadpool_limits(1):
        model = HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(x, target)
    version, model_dir = store.version(model, x)
    draft = build_onnx_variant(version, model_dir, store.root / "variant")
    assert draft.status == "verified", draft.reason
    with threadpool_limits(1):
        original, fast = store.runtimes(version, model_dir)
        got, want = fast.predict(x)["predictions"], original.predict(x)["predictions"]
    assert (got.shape, got.dtype) == (want.shape, want.dtype) == ((400,), np.float64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_a_model_skl2onnx_cannot_convert_fails_with_its_reason(store: Store) -> None:
    x, y = numeric_data(features=4)
    version, model_dir = store.version(NearestCentroid().fit(x, y), x)
    with pytest.raises(UnsupportedFormatError, match="skl2onnx cannot convert the NearestCentroid"):
        convert_sklearn_to_onnx(
            model_dir, version.runtime_config, version.signature, (), store.root / "onnx"
        )
    draft = build_onnx_variant(version, model_dir, store.root / "variant")
    assert draft.status == "failed"
    assert draft.source is None
    assert draft.reason.startswith("conversion failed: skl2onnx cannot convert the NearestCentroid")
    assert len(draft.reason) < 400


class Thresholds(BaseEstimator):  # type: ignore[misc]
    """A custom estimator: no skl2onnx converter exists for it."""

    def fit(self, x: Any, y: Any) -> Thresholds:
        self.n_features_in_ = np.asarray(x).shape[1]
        return self

    def predict(self, x: Any) -> Any:
        return (np.asarray(x)[:, 0] > 0).astype(int)


def test_a_custom_estimator_fails_without_failing_anything_else(store: Store) -> None:
    x, y = numeric_data(features=4)
    trusted = (f"{__name__}.Thresholds",)
    version, model_dir = store.version(Thresholds().fit(x, y), x, trusted=trusted)
    draft = build_onnx_variant(version, model_dir, store.root / "variant")
    assert draft.status == "failed"
    assert "conversion failed" in draft.reason
    assert "Thresholds" in draft.reason


def test_verification_catches_a_wrong_variant(store: Store, tmp_path: Path) -> None:
    x, y = numeric_data(features=5)
    right = LogisticRegression().fit(x, y)
    nudged = LogisticRegression().fit(x, y)
    nudged.coef_ = nudged.coef_ * 1.01  # same labels almost everywhere, other probabilities
    flipped = LogisticRegression().fit(x, 1 - y)
    samples = [x.head(5), x.iloc[100:300]]
    names = ["input example", "reference sample"]

    original, _ = store.runtimes(*store.version(right, x))
    for wrong, needle in (
        (nudged, "'probabilities' values differ by more than the tolerance"),
        (flipped, "'predictions' values differ"),
    ):
        other = Store(tmp_path / f"wrong-{needle[1]}")
        _, candidate = other.runtimes(*other.version(wrong, x))
        result = verify_variant(original, candidate, samples, names=names)
        assert not result.ok
        assert result.reason.startswith("on the input example: ")
        assert needle in result.reason
    result = verify_variant(original, original, samples, names=names)
    assert result == (True, 0.0, 205, "")


def test_both_samples_are_required(store: Store) -> None:
    x, y = numeric_data(features=4)
    model = LogisticRegression().fit(x, y)
    version, model_dir = store.version(model, x, sample=False)
    draft = build_onnx_variant(version, model_dir, store.root / "v1")
    assert draft.status == "failed"
    assert "no reference sample" in draft.reason
    assert "input example" not in draft.reason

    version, model_dir = store.version(model, x, example=False)
    draft = build_onnx_variant(version, model_dir, store.root / "v2")
    assert "no input example" in draft.reason
    assert "reference sample" not in draft.reason

    # a reference sample profiled from a frame with the target column still verifies
    with_target = x.assign(label=y)
    version, model_dir = store.version(model, x)
    version = replace(version, profile=profile_frame(with_target))
    samples, missing = verification_samples(version)
    assert missing == []
    assert list(samples[1][1].columns) == list(x.columns)


def test_without_skl2onnx_the_reason_names_the_extra(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = numeric_data(features=4)
    version, model_dir = store.version(LogisticRegression().fit(x, y), x)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    draft = build_onnx_variant(version, model_dir, store.root / "variant")
    assert draft.status == "failed"
    assert "pip install 'modelport[onnx]'" in draft.reason


def test_only_scikit_learn_versions_get_a_fast_path(store: Store) -> None:
    x, y = numeric_data(features=4)
    version, model_dir = store.version(LogisticRegression().fit(x, y), x)
    with pytest.raises(UnsupportedFormatError, match="scikit-learn versions"):
        build_onnx_variant(replace(version, format="onnx"), model_dir, store.root / "variant")


def test_a_wrong_conversion_is_recorded_as_failed_with_its_max_difference(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = numeric_data(features=5)
    version, model_dir = store.version(LogisticRegression().fit(x, y), x)
    impostor = LogisticRegression(C=0.001).fit(x, y)  # other probabilities, mostly same labels
    wrong_version, wrong_dir = Store(tmp_path / "impostor").version(impostor, x)

    real = fastpath.convert_sklearn_to_onnx

    def convert_the_impostor(*args: Any) -> Any:
        dest = args[-1]
        return real(wrong_dir, wrong_version.runtime_config, wrong_version.signature, (), dest)

    monkeypatch.setattr(fastpath, "convert_sklearn_to_onnx", convert_the_impostor)
    draft = build_onnx_variant(version, model_dir, store.root / "variant")
    assert draft.status == "failed"
    assert draft.source is None
    assert draft.reason.startswith("verification failed on the input example: ")
    assert draft.max_abs_diff is not None
    assert draft.max_abs_diff > ATOL
    assert draft.tolerance == ATOL
