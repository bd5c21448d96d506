from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline

from modelport.api.registry import Registry
from modelport.core.envlock import EnvironmentLock, PackagePin
from modelport.core.errors import (
    DigestMismatchError,
    EnvironmentMismatchError,
    InvalidNameError,
    ModelNotFoundError,
    UntrustedPickleError,
    UntrustedTypesError,
    VersionNotFoundError,
)
from modelport.core.settings import Settings
from modelport.packaging.envlock import current_python
from modelport.registry.service import VersionDraft

TREE = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"


def test_register_load_and_predict_like_the_framework(
    registry: Registry, pipeline: Pipeline, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, _ = data
    v = registry.register(
        pipeline,
        name="fraud",
        input_example=x.head(3),
        training_data=x,
        metrics={"auc": 0.9},
        params={"C": 1.0},
        tags={"team": "risk"},
        alias="champion",
    )
    assert v.ref == "fraud:1"
    assert v.aliases == ("champion",)
    assert v.format == "sklearn"
    assert v.digest.startswith("sha256:")
    assert v.signature is not None
    assert v.signature.kind == "columns"
    assert v.signature.input_names == tuple(x.columns)
    assert {f.name for f in v.signature.outputs} >= {"predictions"}
    assert v.metrics == {"auc": 0.9}
    assert v.params == {"C": "1.0"}
    assert v.profile is not None
    assert {f.name for f in v.profile.features} == set(x.columns)
    assert v.environment is not None
    assert v.environment.get("scikit-learn") is not None
    assert [(d.role, d.name, d.version) for d in v.datasets] == [("training", "fraud-training", 1)]
    assert v.lineage.training_data_fingerprint == v.datasets[0].digest

    # the default serves the verified ONNX fast path (tests/api/test_fastpath_api.py)
    runtime = registry.load("fraud@champion", variant="original")
    try:
        out = runtime.predict(x)
    finally:
        runtime.unload()
    np.testing.assert_array_equal(out["predictions"], pipeline.predict(x))
    np.testing.assert_allclose(out["probabilities"], pipeline.predict_proba(x), atol=1e-9)
    pd.testing.assert_frame_equal(registry.input_example("fraud:1"), x.head(3), check_dtype=False)


def test_versions_are_immutable_and_numbered(registry: Registry, pipeline: Pipeline) -> None:
    first = registry.register(pipeline, name="m")
    second = registry.register(pipeline, name="m", description="same bytes, new version")
    assert (first.number, second.number) == (1, 2)
    assert first.digest == second.digest
    assert registry.get("m").number == 2
    assert registry.get("m:1").description == ""
    with pytest.raises(VersionNotFoundError, match="m"):
        registry.get("m:9")
    with pytest.raises(ModelNotFoundError):
        registry.get("nope")
    with pytest.raises(InvalidNameError):
        registry.register(pipeline, name="../evil")


def test_alias_history_and_audit(registry: Registry, pipeline: Pipeline) -> None:
    registry.register(pipeline, name="m")
    registry.register(pipeline, name="m")
    registry.set_alias("m", "champion", 1, reason="first")
    registry.set_alias("m", "champion", 2, reason="better")
    history = registry.alias_history("m", "champion")
    assert [(h.from_version, h.to_version, h.reason) for h in history] == [
        (None, 1, "first"),
        (1, 2, "better"),
    ]
    assert registry.get("m@champion").number == 2
    actions = [e.action for e in registry.audit(model="m")]
    assert actions.count("version.register") == 2
    assert actions.count("alias.set") == 2
    actor = registry.settings.resolved_actor()
    assert all(e.actor == actor for e in registry.audit(model="m"))


def test_tampered_artifact_is_refused_and_nothing_loads(
    registry: Registry, pipeline: Pipeline
) -> None:
    v = registry.register(pipeline, name="m")
    entry = v.manifest.entries[0]
    store = registry.service.artifacts
    # overwrite the stored blob with other bytes, through the store's own medium
    if hasattr(store, "root"):
        blob = Path(store.root) / "blobs" / "sha256" / entry.sha256[:2] / entry.sha256
        os.chmod(blob, 0o644)
        blob.write_bytes(b"evil" + blob.read_bytes()[4:])
    else:
        key = f"{store.prefix}/blobs/sha256/{entry.sha256[:2]}/{entry.sha256}"
        store.client.put_object(Bucket=store.bucket, Key=key, Body=b"truncated")
    with pytest.raises(DigestMismatchError, match=entry.path):
        registry.load(v.ref)


def test_untrusted_skops_types_need_acceptance(
    registry: Registry, data: tuple[pd.DataFrame, np.ndarray]
) -> None:
    x, y = data
    hgb = HistGradientBoostingClassifier(max_iter=10).fit(x, y)
    with pytest.raises(UntrustedTypesError) as info:
        registry.register(hgb, name="hgb")
    assert TREE in info.value.types
    with pytest.raises(ModelNotFoundError):
        registry.get("hgb")  # nothing was recorded
    asked: list[list[str]] = []
    v = registry.register(hgb, name="hgb", trusted_types=lambda t: asked.append(list(t)) or True)
    assert asked == [[TREE]]
    assert v.trusted_types == (TREE,)
    runtime = registry.load(v.ref)
    np.testing.assert_array_equal(runtime.predict(x)["predictions"], hgb.predict(x))
    v2 = registry.register(hgb, name="hgb", trusted_types=[TREE, "os.system"])
    assert v2.trusted_types == (TREE,), "only the types the artifact needs are recorded"


def test_pickle_needs_explicit_trust(
    registry: Registry, pipeline: Pipeline, tmp_path: Path
) -> None:
    import joblib

    path = tmp_path / "model.joblib"
    joblib.dump(pipeline, path)
    with pytest.raises(UntrustedPickleError):
        registry.register(path, name="pk")
    v = registry.register(path, name="pk", trust_pickle=True)
    assert v.runtime_config["trust_pickle"] is True
    assert registry.load(v.ref).loaded


def test_strict_policy_refuses_a_mismatched_environment(
    registry: Registry, pipeline: Pipeline, tmp_path: Path
) -> None:
    v = registry.register(pipeline, name="m")
    stage = registry.service.materialize(v)
    lock = EnvironmentLock(
        python=current_python(), packages=(PackagePin("scikit-learn", "0.20.0", framework=True),)
    )
    old = registry.service.register(
        VersionDraft(
            name="m",
            source=stage,
            format=v.format,
            runtime_config=v.runtime_config,
            environment=lock,
        )
    )
    mismatches = registry.env_check(old.ref)
    assert [(m.package, m.severity) for m in mismatches] == [("scikit-learn", "high")]
    strict = Registry(registry.service, Settings(home=registry.settings.home, env_policy="strict"))
    with pytest.raises(EnvironmentMismatchError, match="scikit-learn"):
        strict.load(old.ref)
    with pytest.warns(UserWarning, match="scikit-learn"):
        registry.load(old.ref)


def test_concurrent_registrations_in_threads(registry: Registry, pipeline: Pipeline) -> None:
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        numbers = sorted(pool.map(lambda _: registry.register(pipeline, name="c").number, range(8)))
    assert numbers == list(range(1, 9))


def test_datasets_are_versioned_by_content(registry: Registry, tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "x"]}).to_csv(path, index=False)
    first = registry.register_dataset(path, "train")
    again = registry.register_dataset(path, "train")
    assert again.number == first.number == 1
    pd.DataFrame({"a": [1, 2], "b": ["x", "z"]}).to_csv(path, index=False)
    changed = registry.register_dataset(path, "train")
    assert changed.number == 2
    assert changed.digest != first.digest
    assert changed.schema == {"a": "int64", "b": "string"}
    assert registry.get_dataset("train").number == 2
