"""Drift statistics: known shifts are flagged, known non-shifts (small samples too) are not."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from modelport.core.errors import InvalidInputError
from modelport.core.profile import OTHER, DatasetProfile, FeatureProfile, profile_frame
from modelport.monitoring.drift import (
    DriftThresholds,
    FeatureDrift,
    chi_squared,
    dataset_drift,
    feature_drift,
    ks,
    prediction_drift,
    psi,
)

MIX = ["a", "b", "c", "d", "e"]
MIX_P = [0.4, 0.3, 0.15, 0.1, 0.05]
TRIALS = 200


@pytest.fixture(scope="module")
def profile() -> DatasetProfile:
    rng = np.random.default_rng(2026)
    n = 20_000
    frame = pd.DataFrame(
        {
            "income": rng.normal(50.0, 10.0, n),
            "latency": rng.lognormal(0.0, 1.0, n),
            "plan": rng.choice(MIX, n, p=MIX_P),
            "rooms": rng.integers(1, 6, n),  # discrete numeric: tied deciles
        }
    )
    return profile_frame(frame)


def _feature(profile: DatasetProfile, name: str) -> FeatureProfile:
    found = profile.feature(name)
    assert found is not None
    return found


def _draw(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if name == "income":
        return rng.normal(50.0, 10.0, n)
    if name == "latency":
        return rng.lognormal(0.0, 1.0, n)
    if name == "plan":
        return rng.choice(MIX, n, p=MIX_P)
    return rng.integers(1, 6, n)


def _rate(ref: FeatureProfile, draw: Callable[[np.random.Generator], np.ndarray]) -> float:
    verdicts = [
        feature_drift(ref, draw(np.random.default_rng(seed))).verdict for seed in range(TRIALS)
    ]
    return verdicts.count("drift") / TRIALS


# -- known non-shifts --------------------------------------------------------------------------
@pytest.mark.parametrize("n", [40, 100])
@pytest.mark.parametrize("name", ["income", "latency", "plan", "rooms"])
def test_small_samples_from_the_reference_rarely_alarm(
    profile: DatasetProfile, name: str, n: int
) -> None:
    ref = _feature(profile, name)
    # PSI alone would alarm often here (~0.2 expected at n=40); the significance test must not
    assert _rate(ref, lambda rng: _draw(name, rng, n)) <= 0.02


@pytest.mark.parametrize("name", ["income", "latency", "plan", "rooms"])
def test_large_sample_from_the_reference_is_ok(profile: DatasetProfile, name: str) -> None:
    result = feature_drift(_feature(profile, name), _draw(name, np.random.default_rng(1), 20_000))
    assert result.verdict == "ok", result.reason
    assert result.psi is not None
    assert result.psi < 0.01


def test_small_reference_does_not_make_large_windows_alarm() -> None:
    rng = np.random.default_rng(4)
    ref = profile_frame(pd.DataFrame({"x": rng.normal(0, 1, 300)})).features[0]
    p_values = [ks(ref, np.random.default_rng(s).normal(0, 1, 5_000))[1] for s in range(100)]
    assert np.mean(np.less(p_values, 0.01)) <= 0.03  # two-sample size, not the current size


# -- known shifts ------------------------------------------------------------------------------
def test_half_a_standard_deviation_shift_is_flagged(profile: DatasetProfile) -> None:
    ref = _feature(profile, "income")
    result = feature_drift(ref, np.random.default_rng(0).normal(55.0, 10.0, 2_000))
    assert result.verdict == "drift", result.reason
    assert result.psi is not None
    assert result.psi >= 0.2
    assert result.p_value is not None
    assert result.p_value < 1e-10
    assert result.ks_stat == pytest.approx(0.197, abs=0.03)  # 2 * Phi(0.25) - 1
    # PSI of a 0.5 sd shift sits near 0.235, so a few windows in a hundred land under 0.2
    assert _rate(ref, lambda rng: rng.normal(55.0, 10.0, 2_000)) >= 0.9


def test_larger_shifts_are_flagged_even_in_small_samples(profile: DatasetProfile) -> None:
    ref = _feature(profile, "income")
    assert _rate(ref, lambda rng: rng.normal(60.0, 10.0, 100)) >= 0.98
    assert _rate(ref, lambda rng: rng.normal(50.0, 10.0, 100) + 100) == 1.0


def test_category_mix_change_is_flagged(profile: DatasetProfile) -> None:
    ref = _feature(profile, "plan")
    result = feature_drift(ref, np.random.default_rng(0).choice(MIX, 2_000))  # uniform mix
    assert result.verdict == "drift", result.reason
    assert result.chi2 is not None
    assert result.p_value is not None
    assert result.p_value < 1e-10
    assert _rate(ref, lambda rng: rng.choice(MIX, 100)) >= 0.95


def test_unseen_categories_are_flagged(profile: DatasetProfile) -> None:
    ref = _feature(profile, "plan")
    values = np.random.default_rng(0).choice(["a", "b", "zz"], 1_000, p=[0.4, 0.3, 0.3])
    result = feature_drift(ref, values)
    assert result.verdict == "drift", result.reason


def test_a_feature_gone_null_is_flagged(profile: DatasetProfile) -> None:
    result = feature_drift(_feature(profile, "income"), [None] * 500)
    assert (result.verdict, result.n, result.missing) == ("drift", 0, 500)
    assert "missing share 100.0%" in result.reason
    some = np.where(np.arange(1_000) % 50 == 0, np.nan, 50.0 + np.arange(1_000) % 7)
    assert "missing" not in feature_drift(_feature(profile, "income"), some).reason  # 2% is fine


# -- insufficient data, reporting ---------------------------------------------------------------
def test_below_min_samples_is_insufficient(profile: DatasetProfile) -> None:
    ref = _feature(profile, "income")
    result = feature_drift(ref, np.full(29, 500.0))  # wildly shifted, but only 29 values
    assert result.verdict == "insufficient_data"
    assert result.psi is None
    assert "29 values; need at least 30" in result.reason
    relaxed = feature_drift(ref, np.full(29, 500.0), DriftThresholds(min_samples=10))
    assert relaxed.verdict == "drift"


def test_dataset_drift_reports_missing_features_and_ignores_extra(profile: DatasetProfile) -> None:
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(
        {
            "income": rng.normal(65.0, 10.0, 1_000),
            "plan": rng.choice(MIX, 1_000, p=MIX_P),
            "rooms": rng.integers(1, 6, 1_000),
            "unprofiled": rng.normal(size=1_000),
        }
    )
    results = {r.name: r for r in dataset_drift(profile, frame)}
    assert list(results) == ["income", "latency", "plan", "rooms"]
    assert results["income"].verdict == "drift"
    assert results["plan"].verdict == "ok"
    assert results["rooms"].verdict == "ok"
    assert results["latency"].verdict == "insufficient_data"
    assert "absent" in results["latency"].reason
    rows = frame.to_dict(orient="records")  # prediction-log rows work too
    assert [r.verdict for r in dataset_drift(profile, rows)] == [
        r.verdict for r in results.values()
    ]


# -- the statistics themselves ------------------------------------------------------------------
def _uniform_reference(count: int = 10**9) -> FeatureProfile:
    """Uniform on [0, 10]: its percentile-rebuilt CDF is exact."""
    return FeatureProfile(
        name="u",
        kind="numeric",
        count=count,
        missing=0,
        deciles=tuple(np.linspace(0, 10, 11).tolist()),
        percentiles=tuple(np.linspace(0, 10, 101).tolist()),
    )


def test_a_redacted_feature_is_no_data_not_drift(profile: DatasetProfile) -> None:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame(
        {
            "income": ["[redacted]"] * 500,  # what the prediction log stores for it
            "plan": ["[redacted]"] * 499 + [None],
            "rooms": rng.integers(1, 6, 500),
        }
    )
    results = {r.name: r for r in dataset_drift(profile, frame)}
    assert results["income"].verdict == "insufficient_data"
    assert results["plan"].verdict == "insufficient_data"
    assert "redacted" in results["income"].reason
    assert results["rooms"].verdict == "ok"
    frame["plan"] = ["[redacted]"] * 250 + ["a"] * 250  # a real value among them: judged
    assert {r.name: r for r in dataset_drift(profile, frame)}["plan"].verdict == "drift"


def test_psi_by_hand_with_documented_smoothing() -> None:
    counts = np.array([30, 10, 10, 10, 10, 10, 10, 10, 0, 0], dtype=float)  # two empty bins
    values = np.repeat(np.arange(10) + 0.5, counts.astype(int))
    q = np.full(10, 0.1)
    a = (counts + 5 * q) / (counts.sum() + 5)  # half an observation per bin, spread like q
    assert psi(_uniform_reference(), values) == pytest.approx(
        float(np.sum((a - q) * np.log(a / q)))
    )


def test_psi_bins_are_open_ended_and_edges_belong_below() -> None:
    ref = _uniform_reference()
    inside = np.repeat(np.arange(10) + 0.5, 100)
    outside = np.concatenate([inside[100:], np.full(100, -1e6)])  # far below the minimum
    assert psi(ref, inside) == pytest.approx(0.0, abs=1e-12)
    assert psi(ref, outside) == pytest.approx(0.0, abs=1e-12)
    on_edges = np.repeat(np.arange(1, 11, dtype=float), 100)  # (0,1], (1,2], ... (9, inf)
    assert psi(ref, on_edges) == pytest.approx(0.0, abs=1e-12)


def test_ks_matches_scipy_against_the_exact_cdf() -> None:
    values = np.random.default_rng(5).uniform(0.5, 10.5, 300)
    stat, p_value = ks(_uniform_reference(), values)
    expected = stats.kstest(values, stats.uniform(0, 10).cdf, method="exact")
    assert stat == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-3)


def test_ks_handles_a_discrete_reference(profile: DatasetProfile) -> None:
    ref = _feature(profile, "rooms")
    stat, p_value = ks(ref, np.random.default_rng(2).integers(1, 6, 500))
    assert stat < 0.05
    assert p_value > 0.05
    stat, p_value = ks(ref, np.full(500, 5))
    assert stat == pytest.approx(0.8, abs=0.02)
    assert p_value < 1e-10


def _categorical(freqs: dict[str, float], count: int = 10**9) -> FeatureProfile:
    return FeatureProfile(name="c", kind="categorical", count=count, missing=0, categories=freqs)


def test_chi_squared_matches_scipy_goodness_of_fit_for_a_large_reference() -> None:
    ref = _categorical({"a": 0.5, "b": 0.3, "c": 0.2})
    values = ["a"] * 60 + ["b"] * 20 + ["c"] * 20
    stat, p_value, dof = chi_squared(ref, values)
    expected = stats.chisquare([60, 20, 20], [50, 30, 20])
    assert dof == 2
    assert stat == pytest.approx(expected.statistic, rel=1e-6)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-5)


def test_chi_squared_is_the_two_sample_test_for_a_small_reference() -> None:
    ref = _categorical({"a": 0.5, "b": 0.3, "c": 0.2}, count=200)
    stat, p_value, dof = chi_squared(ref, ["a"] * 60 + ["b"] * 20 + ["c"] * 20)
    expected = stats.chi2_contingency([[60, 20, 20], [100, 60, 40]], correction=False)
    assert (stat, dof) == (pytest.approx(expected.statistic), expected.dof)
    assert p_value == pytest.approx(expected.pvalue)


def test_chi_squared_pools_rare_and_unseen_categories() -> None:
    ref = _categorical({"a": 0.55, "b": 0.35, "c": 0.03, "d": 0.03, OTHER: 0.04})
    values = ["a"] * 55 + ["b"] * 35 + ["c"] * 3 + ["new"] * 4 + ["newer"] * 3
    _, p_value, dof = chi_squared(ref, values)  # c, d (3 expected) and unseen pool: 10 expected
    assert dof == 2
    assert p_value > 0.5
    one_and_a_bit = ["a"] * 97 + ["zz"] * 3  # pool under 5 expected: merged into b
    assert chi_squared(_categorical({"a": 0.9, "b": 0.1}), one_and_a_bit)[2] == 1


def test_integer_labels_match_float_spelled_categories() -> None:
    ref = _categorical({"1.0": 0.5, "2.0": 0.5})
    assert psi(ref, [1, 2] * 50) == pytest.approx(0.0, abs=1e-12)


def test_wrong_kind_and_empty_inputs_are_rejected(profile: DatasetProfile) -> None:
    with pytest.raises(InvalidInputError):
        ks(_feature(profile, "plan"), ["a"] * 50)
    with pytest.raises(InvalidInputError):
        chi_squared(_feature(profile, "income"), [1.0] * 50)
    with pytest.raises(InvalidInputError):
        psi(_feature(profile, "income"), [])
    with pytest.raises(InvalidInputError):
        DriftThresholds(p_value=1.5)


def test_empty_reference_is_insufficient() -> None:
    ref = FeatureProfile(name="x", kind="numeric", count=10, missing=10)
    assert feature_drift(ref, np.ones(100)).verdict == "insufficient_data"


# -- predictions ---------------------------------------------------------------------------------
def test_prediction_drift_of_labels_and_scores() -> None:
    rng = np.random.default_rng(8)
    labels = rng.choice(["churn", "stay"], 5_000, p=[0.2, 0.8])
    same = prediction_drift(labels, rng.choice(["churn", "stay"], 500, p=[0.2, 0.8]))
    moved = prediction_drift(labels, rng.choice(["churn", "stay"], 500, p=[0.5, 0.5]))
    assert (same.kind, same.verdict, moved.verdict) == ("categorical", "ok", "drift")
    scores = rng.beta(2, 8, 5_000)
    assert prediction_drift(scores, rng.beta(2, 8, 500)).verdict == "ok"
    shifted = prediction_drift(scores, rng.beta(5, 5, 500))
    assert (shifted.kind, shifted.verdict) == ("numeric", "drift")
    class_ids = rng.integers(0, 3, 5_000)
    assert prediction_drift(class_ids, rng.integers(0, 3, 500)).kind == "categorical"


def test_prediction_drift_accepts_a_stored_profile() -> None:
    rng = np.random.default_rng(8)
    stored = profile_frame(pd.DataFrame({"prediction": rng.normal(size=5_000)})).features[0]
    result = prediction_drift(stored, rng.normal(1.0, 1.0, 500))
    assert isinstance(result, FeatureDrift)
    assert result.verdict == "drift"


def test_prediction_drift_needs_one_value_per_row() -> None:
    with pytest.raises(InvalidInputError, match="one value per row"):
        prediction_drift(np.ones((10, 3)), np.ones(10))
