"""LatencySketch: accuracy against exact quantiles, exact merges, wire form, bounded memory."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.core.errors import InvalidInputError
from modelport.monitoring.sketch import LatencySketch

QS = [0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0]
TOLERANCE = 0.01 * (1 + 1e-9)  # alpha; the issue asks for 5%, so this is well inside it


def _latencies(kind: str) -> np.ndarray:
    rng = np.random.default_rng(7)
    if kind == "lognormal":
        return rng.lognormal(mean=np.log(0.02), sigma=1.0, size=50_000)
    if kind == "bimodal":  # a cache: fast hits, slow misses, with an empty gap in between
        fast = rng.normal(0.004, 0.0005, 30_000)
        slow = rng.normal(0.250, 0.030, 20_001)
        return np.abs(np.concatenate([fast, slow]))
    if kind == "constant":
        return np.full(5_000, 0.0123)
    if kind == "with_zeros":
        return np.concatenate([np.zeros(500), rng.exponential(0.01, 5_000)])
    raise AssertionError(kind)


def _max_relative_error(sketch: LatencySketch, values: np.ndarray, qs: list[float]) -> float:
    worst = 0.0
    for q in qs:
        exact = float(np.quantile(values, q))
        estimate = sketch.quantile(q)
        assert estimate is not None
        worst = max(worst, abs(estimate - exact) / exact if exact else abs(estimate))
    return worst


@pytest.mark.parametrize("kind", ["lognormal", "bimodal", "constant", "with_zeros"])
def test_quantiles_within_one_percent_of_numpy(kind: str) -> None:
    values = _latencies(kind)
    sketch = LatencySketch()
    sketch.add_many(values)
    fine_grid = [float(q) for q in np.linspace(0, 1, 401)]
    assert _max_relative_error(sketch, values, QS + fine_grid) <= TOLERANCE
    assert sketch.count == values.size
    assert sketch.sum == pytest.approx(float(values.sum()))
    assert sketch.min == values.min()
    assert sketch.max == values.max()


def test_constant_data_is_exact() -> None:
    sketch = LatencySketch()
    for _ in range(100):
        sketch.add(0.0123)
    assert sketch.quantiles([0.0, 0.5, 0.99, 1.0]) == [0.0123] * 4


def test_small_samples_interpolate_like_numpy() -> None:
    values = [0.010, 0.020, 0.030, 0.400]
    sketch = LatencySketch()
    for v in values:
        sketch.add(v)
    for q in (0.1, 0.5, 0.95):
        exact = float(np.quantile(values, q))
        estimate = sketch.quantile(q)
        assert estimate == pytest.approx(exact, rel=TOLERANCE)


def test_empty_sketch() -> None:
    sketch = LatencySketch()
    assert sketch.quantile(0.5) is None
    assert (sketch.count, sketch.sum, sketch.min, sketch.max, sketch.mean) == (
        0,
        0.0,
        None,
        None,
        None,
    )


def test_add_with_count_equals_repeated_adds() -> None:
    once, repeated = LatencySketch(), LatencySketch()
    once.add(0.05, count=7)
    once.add(0.0, count=2)
    once.add(0.3, count=0)
    for _ in range(7):
        repeated.add(0.05)
    repeated.add(0.0)
    repeated.add(0.0)
    a, b = once.to_dict(), repeated.to_dict()
    assert a.pop("sum") == pytest.approx(b.pop("sum"))
    assert a == b


def test_add_many_equals_add() -> None:
    values = _latencies("with_zeros")[:2_000]
    one_by_one, vectorised = LatencySketch(), LatencySketch()
    for v in values:
        one_by_one.add(float(v))
    vectorised.add_many(values)
    a, b = one_by_one.to_dict(), vectorised.to_dict()
    assert a.pop("sum") == pytest.approx(b.pop("sum"))
    assert a == b


@pytest.mark.parametrize("bad", [-0.001, float("nan"), float("inf")])
def test_rejects_values_that_are_not_durations(bad: float) -> None:
    sketch = LatencySketch()
    with pytest.raises(InvalidInputError):
        sketch.add(bad)
    with pytest.raises(InvalidInputError):
        sketch.add_many([0.1, bad])
    assert sketch.count == 0


def test_rejects_bad_arguments() -> None:
    with pytest.raises(InvalidInputError):
        LatencySketch(alpha=0.0)
    with pytest.raises(InvalidInputError):
        LatencySketch(max_buckets=0)
    sketch = LatencySketch()
    with pytest.raises(InvalidInputError):
        sketch.add(0.1, count=-1)
    with pytest.raises(InvalidInputError):
        sketch.quantile(1.5)
    with pytest.raises(InvalidInputError):
        sketch.merge(LatencySketch(alpha=0.02))


durations = st.lists(
    st.one_of(st.just(0.0), st.floats(min_value=1e-7, max_value=1e4, allow_nan=False)),
    max_size=200,
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(durations, min_size=1, max_size=5), max_buckets=st.sampled_from([8, 2048]))
def test_merge_equals_adding_everything(parts: list[list[float]], max_buckets: int) -> None:
    everything = LatencySketch(max_buckets=max_buckets)
    merged = LatencySketch(max_buckets=max_buckets)
    for part in parts:
        piece = LatencySketch(max_buckets=max_buckets)
        for value in part:
            piece.add(value)
            everything.add(value)
        merged.merge(piece)
    a, b = merged.to_dict(), everything.to_dict()
    assert a.pop("sum") == pytest.approx(b.pop("sum"))
    assert a == b  # same buckets, counts, min and max, even after collapsing
    for q in (0.0, 0.5, 0.99, 1.0):
        assert merged.quantile(q) == pytest.approx(everything.quantile(q))


@settings(max_examples=100, deadline=None)
@given(values=durations)
def test_wire_round_trip(values: list[float]) -> None:
    sketch = LatencySketch()
    for value in values:
        sketch.add(value)
    wire = json.loads(json.dumps(sketch.to_dict()))
    back = LatencySketch.from_dict(wire)
    assert back.to_dict() == sketch.to_dict()
    assert back.quantiles(QS) == sketch.quantiles(QS)


def test_wire_form_is_sparse() -> None:
    sketch = LatencySketch()
    sketch.add_many(_latencies("lognormal"))
    wire = sketch.to_dict()
    assert len(wire["bins"]) < 500  # about 4.6 buckets per doubling of latency, only where used
    assert len(json.dumps(wire)) < 10_000


@pytest.mark.parametrize(
    "broken",
    [
        {},
        {"alpha": 0.01, "count": 2, "bins": {"1": 1}, "sum": 1.0, "min": 1.0, "max": 1.0},
        {"alpha": 0.01, "count": 1, "bins": {"x": 1}, "sum": 1.0, "min": 1.0, "max": 1.0},
        {"alpha": 0.01, "count": 1, "bins": {"1": 1}},
        {"v": 99, "alpha": 0.01, "count": 0},
    ],
)
def test_malformed_wire_form_is_rejected(broken: dict[str, object]) -> None:
    with pytest.raises(InvalidInputError):
        LatencySketch.from_dict(broken)


def test_memory_is_bounded_and_high_quantiles_stay_accurate() -> None:
    values = np.logspace(-9, 6, 20_000)  # 15 orders of magnitude; 1024 buckets span ~8.9
    sketch = LatencySketch(max_buckets=1024)
    sketch.add_many(values)
    assert sketch.buckets <= 1024
    assert _max_relative_error(sketch, values, [0.5, 0.9, 0.99, 0.999]) <= TOLERANCE
    assert sketch.quantile(0.0) == values.min()  # the extremes stay exact
