"""The verified ONNX fast path through the Python API, embedded and team mode."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from modelport.api import fastpath as api_fastpath
from modelport.api.fastpath import serving_summary
from modelport.api.registry import Registry
from modelport.core.errors import (
    ArtifactNotFoundError,
    DigestMismatchError,
    InvalidInputError,
    MissingExtraError,
    UnsupportedFormatError,
)
from modelport.core.model import ModelVersion
from modelport.runtime.fastpath import ATOL, FastPathRuntime
from modelport.runtime.sklearn import SklearnRuntime

TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def register(registry: Registry, model: object, x: pd.DataFrame, **kw: object) -> ModelVersion:
    return registry.register(model, name="m", input_example=x.head(5), training_data=x, **kw)  # type: ignore[arg-type]


def tamper(registry: Registry, sha256: str) -> None:
    """Overwrite a stored blob with other bytes, through the store's own medium."""
    store = registry.service.artifacts
    if hasattr(store, "root"):
        blob = Path(store.root) / "blobs" / "sha256" / sha256[:2] / sha256
        os.chmod(blob, 0o644)
        blob.write_bytes(b"evil" + blob.read_bytes()[4:])
    else:
        key = f"{store.prefix}/blobs/sha256/{sha256[:2]}/{sha256}"
        store.client.put_object(Bucket=store.bucket, Key=key, Body=b"truncated")


def test_registration_verifies_and_stores_the_variant_with_the_version(
    registry: Registry, pipeline: Pipeline, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, _ = data
    v = register(registry, pipeline, x, alias="champion")

    assert v.ref == "m:1"
    assert v.aliases == ("champion",)
    variant = v.variant("onnx")
    assert variant is not None
    assert variant.status == "verified", variant.reason
    rows = 5 + 256  # the input example and the reference sample (256 of the 300 training rows)
    assert variant.checked_rows == rows
    assert variant.max_abs_diff is not None
    assert variant.max_abs_diff <= variant.tolerance == ATOL
    assert variant.digest is not None
    assert variant.digest != v.digest
    assert registry.get("m@champion").variants == v.variants
    assert [f["path"] for f in v.to_dict()["variants"][0]["files"]] == ["model.onnx"]
    summary = serving_summary(v)
    assert summary["variant"] == "onnx"
    assert summary["summary"].startswith(f"onnx fast path (verified on {rows} rows, max |Δ|")
    assert summary["summary"].endswith("≤ 1e-05)")
    events = registry.audit(model="m")
    assert [e.action for e in events] == ["version.register", "version.variant", "alias.set"]
    assert events[1].details["status"] == "verified"

    fast = registry.load("m@champion", threads=1)
    assert isinstance(fast, FastPathRuntime)
    assert fast.metadata().extra["variant"] == "onnx"
    got = fast.predict(x)
    np.testing.assert_array_equal(got["predictions"], pipeline.predict(x))
    assert got["predictions"].dtype == pipeline.predict(x).dtype
    np.testing.assert_allclose(got["probabilities"], pipeline.predict_proba(x), rtol=0, atol=ATOL)

    original = registry.load("m:1", variant="original")
    assert isinstance(original, SklearnRuntime)
    assert "variant" not in original.metadata().extra
    want = original.predict(x)
    np.testing.assert_array_equal(got["predictions"], want["predictions"])
    assert isinstance(registry.load("m:1", variant="onnx"), FastPathRuntime)
    with pytest.raises(InvalidInputError, match="variant"):
        registry.load("m:1", variant="fastest")

    cached = registry.service.materialize_variant(v, "onnx")
    assert cached.name == variant.digest.split(":")[1]
    assert sorted(p.name for p in cached.iterdir()) == ["model.onnx"]


def test_the_benchmark_hist_gradient_boosting_serves_from_onnx(registry: Registry) -> None:
    rng = np.random.default_rng(7)
    x = pd.DataFrame(rng.normal(size=(1500, 20)), columns=[f"f{i}" for i in range(20)])
    y = (x["f0"] * x["f1"] + x["f2"] > 0).astype(int)
    with threadpool_limits(1):  # several OpenMP runtimes share two cores in this test process
        hgb = HistGradientBoostingClassifier(max_iter=100, random_state=0).fit(x, y)
        v = register(registry, hgb, x, trusted_types=[TREE])
        variant = v.variant("onnx")
        assert variant is not None
        assert variant.status == "verified", variant.reason
        runtime = registry.load(v.ref, threads=1)
        assert runtime.metadata().extra["variant"] == "onnx"
        got = runtime.predict(x)
        np.testing.assert_array_equal(got["predictions"], hgb.predict(x))
        np.testing.assert_allclose(got["probabilities"], hgb.predict_proba(x), rtol=0, atol=ATOL)


def test_a_tampered_variant_blob_is_refused(
    registry: Registry, pipeline: Pipeline, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, _ = data
    v = register(registry, pipeline, x)
    variant = v.variant("onnx")
    assert variant is not None
    assert variant.manifest is not None
    tamper(registry, variant.manifest.entries[0].sha256)
    for choice in ("auto", "onnx"):
        with pytest.raises(DigestMismatchError, match=r"model\.onnx"):
            registry.load(v.ref, variant=choice)
    assert registry.load(v.ref, variant="original").predict(x.head(2))["predictions"].shape == (2,)


def test_a_model_that_does_not_convert_still_registers_and_serves(
    registry: Registry, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = data
    model = NearestCentroid().fit(x, y)
    v = register(registry, model, x)
    variant = v.variant("onnx")
    assert variant is not None
    assert variant.status == "failed"
    assert variant.manifest is None
    assert "skl2onnx cannot convert the NearestCentroid" in variant.reason
    assert serving_summary(v)["summary"].startswith("scikit-learn (fast path failed: conversion")
    runtime = registry.load(v.ref)
    assert isinstance(runtime, SklearnRuntime)
    np.testing.assert_array_equal(runtime.predict(x)["predictions"], model.predict(x))
    with pytest.raises(ArtifactNotFoundError, match="no verified onnx variant"):
        registry.load(v.ref, variant="onnx")


def test_fast_path_on_demand_replaces_the_variant(
    registry: Registry, pipeline: Pipeline, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, _ = data
    v = register(registry, pipeline, x, fast_path=False)
    assert v.variants == ()
    assert serving_summary(v)["summary"].startswith("scikit-learn (no fast path")
    assert isinstance(registry.load(v.ref), SklearnRuntime)

    built = registry.build_fast_path(v.ref)
    again = registry.build_fast_path("m")
    assert (built.number, again.number, again.digest) == (1, 1, v.digest)
    variant = again.variant("onnx")
    assert variant is not None
    assert variant.status == "verified"
    assert variant.digest == built.variants[0].digest  # the conversion is reproducible
    replaced = [e.details["replaced"] for e in registry.audit(action="version.variant")]
    assert replaced == [False, True]
    assert isinstance(registry.load(v.ref), FastPathRuntime)


def test_missing_samples_or_extras_are_recorded_not_raised(
    registry: Registry,
    pipeline: Pipeline,
    data: tuple[pd.DataFrame, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, _ = data
    bare = registry.register(pipeline, name="bare")
    (variant,) = bare.variants
    assert variant.status == "failed"
    assert "no input example" in variant.reason
    assert "no reference sample" in variant.reason

    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    v = register(registry, pipeline, x)
    (variant,) = v.variants
    assert variant.status == "failed"
    assert "pip install 'modelport[onnx]'" in variant.reason


def test_registration_survives_an_unexpected_fast_path_error(
    registry: Registry,
    pipeline: Pipeline,
    data: tuple[pd.DataFrame, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, _ = data

    def broken(*args: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(api_fastpath, "build_onnx_variant", broken)
    v = register(registry, pipeline, x)
    assert v.number == 1
    (variant,) = v.variants
    assert (variant.status, variant.reason) == (
        "failed",
        "building the fast path failed: RuntimeError: boom",
    )


def test_auto_falls_back_to_the_framework_without_onnxruntime(
    registry: Registry,
    pipeline: Pipeline,
    data: tuple[pd.DataFrame, np.ndarray],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x, _ = data
    v = register(registry, pipeline, x)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert isinstance(registry.load(v.ref), SklearnRuntime)
    assert "onnxruntime is not installed" in serving_summary(v)["summary"]
    with pytest.raises(MissingExtraError, match=r"modelport\[onnx\]"):
        registry.load(v.ref, variant="onnx")


def test_only_scikit_learn_versions_build_a_fast_path(registry: Registry, tmp_path: Path) -> None:
    skl2onnx = pytest.importorskip("skl2onnx")
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    features, labels = load_iris(return_X_y=True)
    proto = skl2onnx.to_onnx(
        LogisticRegression(max_iter=500).fit(features, labels), features[:1].astype(np.float32)
    )
    v = registry.register(proto, name="iris")
    assert v.variants == ()
    with pytest.raises(UnsupportedFormatError, match="scikit-learn versions"):
        registry.build_fast_path(v.ref)
    assert serving_summary(v) == {"variant": "original", "summary": "onnx"}
