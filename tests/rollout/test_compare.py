"""Rollout analysis statistics: shadow agreement and the A/B difference of two proportions."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from modelport.core.errors import InvalidInputError
from modelport.rollout import compare
from modelport.rollout.compare import ABDifference, ShadowComparison, ab_difference


def _wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval written out from its textbook form, for reference."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def _newcombe(sa: int, na: int, sb: int, nb: int, confidence: float = 0.95) -> tuple[float, ...]:
    """Newcombe (1998) method 10, for reference: the difference of two Wilson intervals."""
    pa, pb = sa / na, sb / nb
    (la, ua), (lb, ub) = _wilson(sa, na, confidence), _wilson(sb, nb, confidence)
    d = pa - pb
    return d, d - math.hypot(pa - la, ub - pb), d + math.hypot(ua - pa, pb - lb)


# -- shadow agreement: labels ------------------------------------------------------------------
def test_label_agreement_with_a_wilson_interval() -> None:
    shadow = ShadowComparison("classification")
    for i in range(10):
        label = np.array([i % 3])
        assert shadow.add({"label": label}, {"label": label if i < 8 else label + 1}) == (i < 8)
    report = shadow.report()
    assert (report.compared, report.agreed, report.mismatched, report.failed) == (10, 8, 0, 0)
    assert report.agreement == 0.8
    assert report.agreement_low == pytest.approx(0.4902, abs=1e-4)  # published: 8/10 at 95%
    assert report.agreement_high == pytest.approx(0.9433, abs=1e-4)
    assert (report.agreement_low, report.agreement_high) == pytest.approx(_wilson(8, 10))
    wider = shadow.report(confidence=0.99)
    assert wider.agreement_low is not None
    assert wider.agreement_high is not None
    assert wider.agreement_low < report.agreement_low < report.agreement_high < wider.agreement_high


def test_labels_compare_by_value_and_strings_exactly() -> None:
    shadow = ShadowComparison("classification")
    assert shadow.add(np.array([1, 0, 2]), np.array([1.0, 0.0, 2.0]))  # 1 == 1.0
    assert shadow.add(np.array(["cat", "dog"]), np.array(["cat", "dog"], dtype=object))
    assert not shadow.add(np.array(["1", "0"]), np.array([1, 0]))  # a string is not a number
    assert not shadow.add(np.array([1.0]), np.array([1.0000001]))  # labels: no tolerance
    assert shadow.add(np.array([True, False]), np.array([True, False]))
    report = shadow.report()
    assert (report.compared, report.agreed, report.mismatched) == (5, 3, 0)


def test_a_batch_agrees_only_when_every_row_does_and_rows_are_reported() -> None:
    shadow = ShadowComparison("classification")
    assert not shadow.add([0, 1, 1, 0], [0, 1, 0, 0])
    assert not shadow.add(np.array([[1, 2], [3, 4], [5, 6]]), np.array([[1, 2], [3, 0], [5, 6]]))
    assert shadow.add(np.array(7), np.array(7))  # a scalar is one row
    report = shadow.report()
    assert (report.compared, report.agreed) == (3, 1)
    assert (report.rows_compared, report.rows_agreed) == (8, 6)


# -- shadow agreement: tolerance ---------------------------------------------------------------
def test_regression_tolerance_is_relative_to_the_primary() -> None:
    shadow = ShadowComparison("regression", atol=0.0, rtol=1e-3)
    assert shadow.add([1000.0], [1000.9])  # |d| = 0.9 <= 1e-3 * 1000
    assert not shadow.add([1000.0], [1001.1])
    strict = ShadowComparison("regression", atol=0.0, rtol=0.6)
    assert not strict.add([1.0], [2.0])  # 1 > 0.6 * |primary| (it would pass against |shadow|)
    assert strict.add([2.0], [1.0])  # 1 <= 0.6 * 2
    absolute = ShadowComparison("regression", atol=0.5, rtol=0.0)
    assert absolute.add([0.0, 10.0], [0.4, 9.6])
    assert not absolute.add([0.0, 10.0], [0.4, 9.4])
    assert absolute.add([3, 4], [3, 4])  # integer outputs of a regressor use the tolerance too
    assert absolute.add([3, 4], [3.2, 4])


def test_auto_uses_the_tolerance_for_floats_and_equality_otherwise() -> None:
    shadow = ShadowComparison()  # auto, atol 1e-8, rtol 1e-5
    assert shadow.add({"y": np.array([1.0, 2.0])}, {"y": np.array([1.000001, 2.00001])})
    assert not shadow.add({"y": np.array([1.0, 2.0])}, {"y": np.array([1.001, 2.0])})
    assert not shadow.add({"label": np.array([1, 2])}, {"label": np.array([1, 3])})
    assert shadow.add({"label": np.array(["a"])}, {"label": np.array(["a"])})
    assert shadow.report().agreed == 2


def test_nan_agrees_only_with_nan() -> None:
    for task in ("regression", "classification", "auto"):
        shadow = ShadowComparison(task)
        assert shadow.add([np.nan, 1.0], [np.nan, 1.0]), task
        assert not shadow.add([np.nan], [1.0]), task


# -- shadow agreement: what cannot be compared -------------------------------------------------
@pytest.mark.parametrize(
    ("primary", "shadow"),
    [
        (np.zeros(3), np.zeros(4)),
        (np.zeros((2, 2)), np.zeros(4)),
        ([[1, 2], [3]], [[1, 2], [3]]),  # ragged
        ({"label": [1]}, {"label": [1], "proba": [0.9]}),
        ({"label": [1]}, {"class": [1]}),
        ({"label": [1]}, [1]),
        ({}, {}),
    ],
)
def test_outputs_that_cannot_be_compared_disagree_without_raising(
    primary: Any, shadow: Any
) -> None:
    comparison = ShadowComparison()
    assert not comparison.add(primary, shadow)
    report = comparison.report()
    assert (report.compared, report.agreed, report.mismatched) == (1, 0, 1)
    assert report.agreement == 0.0


def test_a_failed_shadow_is_a_disagreement() -> None:
    shadow = ShadowComparison()
    assert not shadow.add({"y": np.zeros(5)}, None, 0.010, None)
    assert shadow.add({"y": np.zeros(5)}, {"y": np.zeros(5)}, 0.010, 0.012)
    report = shadow.report()
    assert (report.compared, report.agreed, report.failed, report.mismatched) == (2, 1, 1, 0)
    assert (report.rows_compared, report.rows_agreed) == (10, 5)
    assert report.latency_samples == 1


def test_selected_outputs_ignore_the_others() -> None:
    shadow = ShadowComparison("classification", outputs=("label",))
    primary = {"label": np.array([1, 0]), "proba": np.array([0.91, 0.2])}
    assert shadow.add(primary, {"label": np.array([1, 0]), "proba": np.array([0.88, 0.3])})
    assert not shadow.add(primary, {"proba": np.array([0.88, 0.3])})  # the label is missing
    assert shadow.report().mismatched == 1


def test_several_outputs_must_all_agree() -> None:
    shadow = ShadowComparison()
    primary = {"label": np.array([1, 0, 1]), "score": np.array([0.9, 0.1, 0.8])}
    assert not shadow.add(
        primary, {"label": np.array([1, 0, 1]), "score": np.array([0.9, 0.5, 0.8])}
    )
    assert shadow.add(primary, {"label": np.array([1, 0, 1]), "score": np.array([0.9, 0.1, 0.8])})
    report = shadow.report()
    assert (report.rows_compared, report.rows_agreed) == (6, 5)


# -- shadow agreement: latency -----------------------------------------------------------------
def test_latency_delta_quantiles() -> None:
    shadow = ShadowComparison()
    for i in range(1, 21):  # the shadow is slower by 10, 20, ... 200 ms
        shadow.add([1], [1], primary_latency_s=0.050, shadow_latency_s=0.050 + 0.01 * i)
    report = shadow.report()
    assert report.latency_samples == 20
    # linear interpolation between order statistics: p50 between the 10th and 11th, p95 at 18.05
    assert report.latency_delta_p50_s == pytest.approx(0.105)
    assert report.latency_delta_p95_s == pytest.approx(0.19 + 0.05 * 0.01)


def test_latency_delta_is_signed_and_kept_for_the_last_requests() -> None:
    shadow = ShadowComparison(max_latency_samples=3)
    for primary, mirrored in [(0.5, 9.0), (0.030, 0.020), (0.030, 0.010), (0.030, 0.030)]:
        shadow.add([1], [1], primary, mirrored)
    shadow.add([1], [1], None, 0.5)  # not measured: no sample
    report = shadow.report()
    assert report.latency_samples == 3
    assert report.latency_delta_p50_s == pytest.approx(-0.010)  # the shadow is faster
    assert report.latency_delta_p95_s == pytest.approx(0.0 - 0.1 * 0.010)


def test_an_empty_comparison_reports_no_figures() -> None:
    report = ShadowComparison().report()
    assert (report.compared, report.agreed, report.rows_compared, report.latency_samples) == (
        0,
        0,
        0,
        0,
    )
    assert report.agreement is None
    assert report.agreement_low is None
    assert report.latency_delta_p50_s is None
    assert report.latency_delta_p95_s is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"task": "ranking"}, "task"),
        ({"atol": -1.0}, "atol"),
        ({"rtol": float("nan")}, "rtol"),
        ({"max_latency_samples": 0}, "max_latency_samples"),
    ],
)
def test_invalid_settings_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ShadowComparison(**kwargs)


def test_invalid_latencies_and_confidence_are_refused() -> None:
    shadow = ShadowComparison()
    with pytest.raises(InvalidInputError, match="shadow latency"):
        shadow.add([1], [1], 0.01, -0.5)
    with pytest.raises(InvalidInputError, match="primary latency"):
        shadow.add([1], [1], float("inf"), 0.01)
    with pytest.raises(InvalidInputError, match="confidence"):
        shadow.report(confidence=95)


# -- A/B difference ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("counts", "low", "high"),
    [  # Newcombe (1998), Statistics in Medicine 17:873-890, table II, method 10
        ((56, 70, 48, 80), 0.0524, 0.3339),
        ((9, 10, 3, 10), 0.1705, 0.8090),
        ((5, 56, 0, 29), -0.0381, 0.1926),
        ((0, 10, 0, 20), -0.1611, 0.2775),
        ((0, 10, 0, 10), -0.2775, 0.2775),
        ((10, 10, 0, 20), 0.6791, 1.0),
        ((10, 10, 0, 10), 0.6075, 1.0),
    ],
)
def test_ab_interval_matches_published_values(
    counts: tuple[int, int, int, int], low: float, high: float
) -> None:
    result = ab_difference(*counts)
    assert result.estimate == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert result.low == pytest.approx(low, abs=1e-4)
    assert result.high == pytest.approx(high, abs=1e-4)
    assert result.excludes_zero == (low > 0)
    assert not result.insufficient_data


@pytest.mark.parametrize(
    "counts", [(3, 40, 0, 40), (12, 200, 25, 210), (500, 10_000, 430, 10_000), (1, 1, 0, 1)]
)
@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_ab_interval_matches_the_formula(
    counts: tuple[int, int, int, int], confidence: float
) -> None:
    d, low, high = _newcombe(*counts, confidence)
    result = ab_difference(*counts, confidence=confidence)
    assert (result.estimate, result.low, result.high) == pytest.approx(
        (d, max(-1.0, low), min(1.0, high))
    )
    assert result.rate_a == counts[0] / counts[1]
    assert result.rate_b == counts[2] / counts[3]
    assert result.confidence == confidence


def test_ab_says_when_the_arms_differ() -> None:
    worse = ab_difference(60, 1000, 20, 1000)  # 6% errors against 2%
    assert worse.estimate == pytest.approx(0.04)
    assert worse.excludes_zero
    assert worse.low is not None
    assert worse.low > 0
    better = ab_difference(20, 1000, 60, 1000)
    assert better.high is not None
    assert better.high < 0
    assert better.excludes_zero
    close = ab_difference(21, 1000, 20, 1000)
    assert not close.excludes_zero


def test_ab_with_no_errors_on_either_side_is_not_degenerate() -> None:
    # Wald gives [0, 0] here (+-0.025 with continuity correction); the score interval is
    # +-(the Wilson upper bound of 0/40) = z^2 / (n + z^2)
    z2 = NormalDist().inv_cdf(0.975) ** 2
    result = ab_difference(0, 40, 0, 40)
    assert result.estimate == 0.0
    assert result.low == pytest.approx(-z2 / (40 + z2))
    assert result.high == pytest.approx(z2 / (40 + z2))
    assert result.high == pytest.approx(0.0876, abs=1e-4)
    assert not result.excludes_zero


@pytest.mark.parametrize("counts", [(0, 0, 3, 10), (3, 10, 0, 0), (0, 0, 0, 0)])
def test_ab_without_observations_is_insufficient_data(counts: tuple[int, int, int, int]) -> None:
    result = ab_difference(*counts)
    assert result == ABDifference(
        n_a=counts[1],
        n_b=counts[3],
        rate_a=counts[0] / counts[1] if counts[1] else None,
        rate_b=counts[2] / counts[3] if counts[3] else None,
        estimate=None,
        low=None,
        high=None,
        confidence=0.95,
        excludes_zero=False,
        insufficient_data=True,
    )


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((11, 10, 0, 10), "arm a has more successes"),
        ((0, 10, 11, 10), "arm b has more successes"),
        ((-1, 10, 0, 10), "successes_a"),
        ((0, -1, 0, 10), "n_a"),
        ((0, 10, 1.5, 10), "successes_b"),
        ((0, 10, 0, True), "n_b"),
    ],
)
def test_ab_refuses_counts_that_are_not_counts(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        ab_difference(*args)


@pytest.mark.parametrize("confidence", [0.0, 1.0, 95, -0.5, True])
def test_ab_refuses_a_confidence_outside_zero_one(confidence: float) -> None:
    with pytest.raises(InvalidInputError, match="confidence"):
        ab_difference(1, 10, 2, 10, confidence=confidence)
    with pytest.raises(InvalidInputError, match="confidence"):
        ab_difference(0, 0, 0, 0, confidence=confidence)


def test_ab_takes_numpy_counts() -> None:
    result = ab_difference(np.int64(3), np.int64(10), 1, 10)
    assert result.estimate == pytest.approx(0.2)


def test_public_names_are_complete_and_sorted() -> None:
    assert compare.__all__ == sorted(compare.__all__)
    defined = {
        name
        for name, value in vars(compare).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == compare.__name__
    }
    assert defined <= set(compare.__all__)
