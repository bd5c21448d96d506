"""Accuracy from joined ground truth, per version and window, and proportion intervals."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scipy import stats

from modelport.core.clock import FakeClock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.accuracy import (
    AccuracyStats,
    LabeledPrediction,
    accuracy_by_version,
    accuracy_by_window,
    accuracy_stats,
    labels_equal,
    proportion_diff_ci,
    wilson_interval,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (1, 1.0),
        (1, "1"),
        ("1.0", 1),
        (" 1 ", np.int64(1)),
        (True, 1),
        ("true", True),
        (np.float32(2.0), "2"),
        ("cat", " cat"),
        (10**20 + 1, str(10**20 + 1)),
    ],
)
def test_labels_that_are_the_same(a: object, b: object) -> None:
    assert labels_equal(a, b)
    assert labels_equal(b, a)


@pytest.mark.parametrize(
    ("a", "b"),
    [(1, 2), (1, "1.5"), ("cat", "Cat"), (None, None), (float("nan"), float("nan")), ("", "")],
)
def test_labels_that_differ_or_are_missing(a: object, b: object) -> None:
    assert not labels_equal(a, b)


def test_classification_by_hand() -> None:
    pairs = [(1, "1"), (0, 0.0), ("spam", "spam"), ("spam", "ham"), (1, None), (None, 0)]
    result = accuracy_stats(pairs)
    assert (result.task, result.count, result.skipped, result.correct) == (
        "classification",
        4,
        2,
        3,
    )
    assert result.accuracy == 0.75
    assert (result.accuracy_low, result.accuracy_high) == wilson_interval(3, 4)
    assert result.mae is None


def test_regression_by_hand() -> None:
    pairs = [(2.5, 1.5), (1.0, 3.0), ("6", 3), (None, 1.0), ("n/a", 2.0)]  # errors 1, -2, 3
    result = accuracy_stats(pairs)
    assert (result.task, result.count, result.skipped) == ("regression", 3, 2)
    assert result.mae == pytest.approx(2.0)
    assert result.rmse == pytest.approx(math.sqrt(14 / 3))
    assert result.accuracy is None


def test_task_can_be_forced_and_empty_input_has_no_figures() -> None:
    assert accuracy_stats([(1, 1), (2, 3)]).task == "classification"  # whole numbers: labels
    forced = accuracy_stats([(1, 1), (2, 4)], task="regression")
    assert (forced.mae, forced.rmse) == (1.0, pytest.approx(math.sqrt(2)))
    assert accuracy_stats([]) == AccuracyStats(task="classification", count=0, correct=0)
    with pytest.raises(InvalidInputError):
        accuracy_stats([(1, 1)], task="ranking")  # type: ignore[arg-type]


def _record(version: str, prediction: object, label: object, seconds: float) -> LabeledPrediction:
    return LabeledPrediction(version, prediction, label, T0 + timedelta(seconds=seconds))


def test_accuracy_by_version() -> None:
    records = [
        _record("2", "a", "a", 0),
        _record("1", "a", "b", 1),
        _record("2", "b", "a", 2),
        _record("1", "b", "b", 3),
        _record("1", "c", "c", 4),
    ]
    result = accuracy_by_version(records)
    assert list(result) == ["1", "2"]
    assert (result["1"].correct, result["1"].count) == (2, 3)
    assert result["2"].accuracy == 0.5


def test_accuracy_by_window() -> None:
    clock = FakeClock(T0 + timedelta(seconds=250))
    records = [
        _record("1", 1, 1, 10),  # window [0, 60)
        _record("1", 1, 0, 50),
        _record("2", 1, 1, 59.9),
        _record("1", 1, 1, 130),  # window [120, 180)
        _record("1", 0, 0, 249),  # window [240, 300), the current one
        _record("1", 0, 1, 260),  # after now: clock skew, left out
    ]
    result = accuracy_by_window(records, 60, clock)
    got = [
        (w.version, (w.start - T0).total_seconds(), w.stats.correct, w.stats.count) for w in result
    ]
    assert got == [("1", 0, 1, 2), ("2", 0, 1, 1), ("1", 120, 1, 1), ("1", 240, 1, 1)]
    assert all(w.end - w.start == timedelta(seconds=60) for w in result)
    recent = accuracy_by_window(records, 60, clock, max_windows=3)  # [120, 300)
    assert [(w.start - T0).total_seconds() for w in recent] == [120, 240]
    with pytest.raises(InvalidInputError):
        accuracy_by_window(records, 0, clock)


def test_regression_by_window() -> None:
    clock = FakeClock(T0 + timedelta(seconds=100))
    records = [_record("1", 1.5, 1.0, 1), _record("1", 3.0, 1.0, 2), _record("1", 2.0, 2.5, 70)]
    result = accuracy_by_window(records, 60, clock)
    assert [w.stats.task for w in result] == ["regression", "regression"]  # one task for all
    assert result[0].stats.mae == pytest.approx(1.25)
    assert result[1].stats.rmse == pytest.approx(0.5)


# -- intervals -----------------------------------------------------------------------------------
def test_wilson_interval_known_values() -> None:
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=1e-4)  # Newcombe 1998
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    low, high = wilson_interval(0, 10)
    assert low == 0.0
    assert high == pytest.approx(0.2775, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(8, 10, confidence=0.99)[0] < 0.4902


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((56, 70, 48, 80), (0.0524, 0.3339)),  # Newcombe 1998, method 10 examples
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((10, 10, 0, 10), (0.6075, 1.0)),
    ],
)
def test_difference_interval_known_values(
    args: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    result = proportion_diff_ci(*args)
    assert (result.low, result.high) == pytest.approx(expected, abs=1e-4)
    assert result.estimate == pytest.approx(args[0] / args[1] - args[2] / args[3])
    assert result.confidence == 0.95


def test_difference_interval_without_data_is_uninformative() -> None:
    result = proportion_diff_ci(0, 0, 5, 10)
    assert (result.estimate, result.low, result.high) == (0.0, -1.0, 1.0)


@pytest.mark.parametrize("bad", [(5, 4), (-1, 4), (1, -1)])
def test_interval_inputs_are_checked(bad: tuple[int, int]) -> None:
    with pytest.raises(InvalidInputError):
        wilson_interval(*bad)
    with pytest.raises(InvalidInputError):
        proportion_diff_ci(*bad, 1, 2)
    with pytest.raises(InvalidInputError):
        wilson_interval(1, 2, confidence=1.0)


def _wilson_coverage(p: float, n: int) -> float:
    """Exact coverage: the probability that the interval of a Binomial(n, p) draw holds p."""
    return sum(
        stats.binom.pmf(k, n, p)
        for k in range(n + 1)
        if wilson_interval(k, n)[0] <= p <= wilson_interval(k, n)[1]
    )


@pytest.mark.parametrize("n", [10, 30, 200])
def test_wilson_coverage_is_close_to_nominal(n: int) -> None:
    coverage = [_wilson_coverage(p, n) for p in np.linspace(0.05, 0.95, 19)]
    assert min(coverage) >= 0.90  # Wilson dips a little below 95% at some p; never far
    assert np.mean(coverage) == pytest.approx(0.95, abs=0.015)


@pytest.mark.parametrize(("pa", "pb"), [(0.5, 0.5), (0.9, 0.8), (0.2, 0.05), (0.97, 0.97)])
def test_difference_interval_coverage_is_close_to_nominal(pa: float, pb: float) -> None:
    na, nb = 40, 60
    pmf_a, pmf_b = (
        stats.binom.pmf(np.arange(na + 1), na, pa),
        stats.binom.pmf(np.arange(nb + 1), nb, pb),
    )
    covered = 0.0
    for ka in range(na + 1):
        for kb in range(nb + 1):
            interval = proportion_diff_ci(ka, na, kb, nb)
            if interval.low <= pa - pb <= interval.high:
                covered += pmf_a[ka] * pmf_b[kb]
    assert 0.93 <= covered <= 0.995  # a little conservative near 0% and 100%
