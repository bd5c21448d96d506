"""Pure batching helpers: batch keys, concatenation and splitting, the dispatch decision and what
one batch does (``run_batch``). No event loop, no threads, no sleeps."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import (
    InvalidInputError,
    ModelportError,
    PredictionError,
    UnavailableError,
)
from modelport.serving.batching import (
    SIZE_BUCKETS,
    BatcherStats,
    BatchPolicy,
    batch_key,
    compatible,
    concat_inputs,
    decide_dispatch,
    run_batch,
    size_bucket,
    split_outputs,
)


def frame_model(x: Any) -> dict[str, np.ndarray]:
    return {"s": (x["a"] * 10 + x["b"]).to_numpy(), "b": x["b"].to_numpy()}


def array_model(x: Any) -> dict[str, np.ndarray]:
    return {"sum": x.reshape(len(x), -1).sum(axis=1), "first": x.reshape(len(x), -1)[:, 0]}


def dict_model(x: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"out": x["u"] * 100 + x["v"][:, 0], "v": x["v"]}


def assert_outputs_equal(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> None:
    assert set(got) == set(want)
    for name, array in want.items():
        np.testing.assert_array_equal(got[name], array)


def frames() -> list[pd.DataFrame]:
    return [
        pd.DataFrame({"a": np.arange(n, dtype=np.int64) + 100 * i, "b": np.full(n, 0.5 * i)})
        for i, n in enumerate([1, 3, 2, 1])
    ]


def arrays() -> list[np.ndarray]:
    return [
        np.full((n, 2, 3), float(i)) + np.arange(n)[:, None, None] for i, n in enumerate([2, 1, 4])
    ]


def dicts() -> list[dict[str, np.ndarray]]:
    return [
        {"u": np.arange(n) + 10 * i, "v": np.full((n, 2), i, dtype=np.float32)}
        for i, n in enumerate([1, 2, 3])
    ]


@pytest.mark.parametrize(
    ("items", "model"),
    [(frames(), frame_model), (arrays(), array_model), (dicts(), dict_model)],
    ids=["frames", "arrays", "dicts"],
)
def test_each_request_gets_what_predicting_it_alone_gives(items: list[Any], model: Any) -> None:
    merged, counts = concat_inputs(items)
    assert counts == [len(next(iter(x.values()))) if isinstance(x, dict) else len(x) for x in items]
    parts = split_outputs(model(merged), counts)
    assert len(parts) == len(items)
    for part, item in zip(parts, items, strict=True):
        assert_outputs_equal(part, model(item))


def test_concatenated_frame_has_a_fresh_index() -> None:
    merged, _ = concat_inputs(frames())
    assert list(merged.index) == list(range(7))
    assert list(merged.columns) == ["a", "b"]
    assert merged["a"].dtype == np.int64


def test_a_single_input_is_returned_as_is() -> None:
    frame = frames()[1]
    merged, counts = concat_inputs([frame])
    assert merged is frame
    assert counts == [3]


def test_concat_refuses_incompatible_or_no_inputs() -> None:
    with pytest.raises(ValueError, match="cannot share a batch"):
        concat_inputs([np.zeros((1, 2)), np.zeros((1, 3))])
    with pytest.raises(ValueError, match="at least one"):
        concat_inputs([])


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (pd.DataFrame({"a": [1], "b": [2.0]}), pd.DataFrame({"a": [3, 4], "b": [5.0, 6.0]}), True),
        (pd.DataFrame({"a": [1], "b": [2.0]}), pd.DataFrame({"a": [1], "c": [2.0]}), False),
        (pd.DataFrame({"a": [1], "b": [2.0]}), pd.DataFrame({"b": [2.0], "a": [1]}), False),
        (pd.DataFrame({"a": [1], "b": [2.0]}), pd.DataFrame({"a": [1.0], "b": [2.0]}), False),
        (np.zeros((1, 4)), np.zeros((5, 4)), True),
        (np.zeros((1, 4)), np.zeros((1, 5)), False),
        (np.zeros((1, 4), np.float32), np.zeros((1, 4), np.float64), False),
        (np.array(["ab"]), np.array(["abcdef"]), True),
        (np.zeros(()), np.zeros(()), False),
        ({"x": np.zeros(2), "y": np.zeros((2, 3))}, {"y": np.ones((1, 3)), "x": np.ones(1)}, True),
        ({"x": np.zeros(2)}, {"z": np.zeros(2)}, False),
        ({"x": np.zeros(2), "y": np.zeros(3)}, {"x": np.zeros(2), "y": np.zeros(3)}, False),
        ([[1.0, 2.0]], [[1.0, 2.0]], False),
        (np.zeros((1, 2)), pd.DataFrame({"a": [0.0], "b": [0.0]}), False),
    ],
)
def test_compatible(a: Any, b: Any, expected: bool) -> None:
    assert compatible(a, b) is expected
    assert compatible(b, a) is expected


def test_frames_with_duplicate_columns_run_alone() -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert batch_key(frame) is None


def test_strings_of_any_width_join() -> None:
    merged, counts = concat_inputs([np.array(["ab"]), np.array(["abcdef", "x"])])
    assert list(merged) == ["ab", "abcdef", "x"]
    assert counts == [1, 2]


def test_split_checks_the_row_count() -> None:
    with pytest.raises(PredictionError, match="3 rows for a batch of 4"):
        split_outputs({"y": np.zeros(3)}, [1, 3])
    with pytest.raises(PredictionError, match="0 rows"):
        split_outputs({"y": np.array(1.0)}, [1, 1])


def test_split_handles_empty_requests() -> None:
    parts = split_outputs({"y": np.arange(3)}, [0, 3, 0])
    assert [len(p["y"]) for p in parts] == [0, 3, 0]


def test_policy_defaults() -> None:
    policy = BatchPolicy()
    assert (policy.max_batch_size, policy.max_wait_ms, policy.max_queue, policy.enabled) == (
        64,
        2.0,
        512,
        True,
    )
    assert policy.max_wait_s == pytest.approx(0.002)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_batch_size": 0},
        {"max_batch_size": 2.5},
        {"max_batch_size": True},
        {"max_queue": 0},
        {"max_wait_ms": -1},
        {"max_wait_ms": float("nan")},
        {"max_wait_ms": float("inf")},
    ],
)
def test_policy_rejects_bad_values(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError, match=next(iter(kwargs))):
        BatchPolicy(**kwargs)


POLICY = BatchPolicy(max_batch_size=8, max_wait_ms=5.0)


@pytest.mark.parametrize(
    ("rows", "waited", "busy", "expected"),
    [
        (1, 0.0, False, True),  # idle: a lone request goes at once
        (3, 0.0, False, True),
        (1, 0.0, True, False),  # busy: hold to accumulate
        (7, 0.004, True, False),
        (8, 0.0, True, True),  # full batch
        (20, 0.0, True, True),
        (1, 0.005, True, True),  # waited max_wait
        (0, 1.0, False, False),  # nothing queued
    ],
)
def test_decide_dispatch(rows: int, waited: float, busy: bool, expected: bool) -> None:
    assert decide_dispatch(rows, waited, busy, POLICY) is expected


def test_zero_wait_never_holds() -> None:
    assert decide_dispatch(1, 0.0, True, BatchPolicy(max_wait_ms=0))


def poisonable(x: np.ndarray) -> dict[str, np.ndarray]:
    if (x == -1).any():
        raise ValueError("secret detail of row -1")
    return {"y": x[:, 0] * 2}


def test_run_batch_isolates_a_poisoned_request(caplog: pytest.LogCaptureFixture) -> None:
    items = [np.array([[1.0]]), np.array([[-1.0]]), np.array([[3.0], [4.0]])]
    with caplog.at_level(logging.WARNING, logger="modelport.serving"):
        results = run_batch(poisonable, items, "m")
    assert isinstance(results[1], PredictionError)
    assert "secret" not in str(results[1])
    assert isinstance(results[1].__cause__, ValueError)
    assert_outputs_equal(results[0], {"y": np.array([2.0])})  # type: ignore[arg-type]
    assert_outputs_equal(results[2], {"y": np.array([6.0, 8.0])})  # type: ignore[arg-type]
    assert "secret detail" in caplog.text


def test_run_batch_passes_model_wide_errors_to_every_request() -> None:
    calls: list[int] = []

    def unavailable(x: np.ndarray) -> dict[str, np.ndarray]:
        calls.append(len(x))
        raise UnavailableError("GPU is gone")

    results = run_batch(unavailable, [np.zeros((1, 1)), np.zeros((2, 1))], "m")
    assert calls == [3]  # no retry alone
    assert all(isinstance(r, UnavailableError) and str(r) == "GPU is gone" for r in results)


def test_run_batch_retries_alone_when_the_model_answers_with_wrong_rows() -> None:
    def scalar_for_batches(x: np.ndarray) -> dict[str, np.ndarray]:
        return {"y": x[:, 0] if len(x) == 1 else x[:1, 0]}

    results = run_batch(scalar_for_batches, [np.array([[1.0]]), np.array([[2.0]])], "m")
    assert [r["y"].tolist() for r in results if not isinstance(r, ModelportError)] == [[1.0], [2.0]]


def test_run_batch_of_one_keeps_modelport_errors() -> None:
    def invalid(x: Any) -> dict[str, np.ndarray]:
        raise InvalidInputError("column 'a' must be int64")

    [result] = run_batch(invalid, [np.zeros((1, 1))], "m")
    assert isinstance(result, InvalidInputError)
    assert str(result) == "column 'a' must be int64"


def test_size_buckets() -> None:
    assert [size_bucket(n) for n in (1, 2, 3, 64, 65, 256, 257, 10_000)] == [0, 1, 2, 6, 7, 8, 9, 9]
    assert len(SIZE_BUCKETS) == 9


def test_stats_mean_batch_requests() -> None:
    stats = BatcherStats(0, 0, 0, 10, 10, 4, 12, 0, 0, 0, (0,) * 10)
    assert stats.mean_batch_requests == 2.5
    empty = BatcherStats(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (0,) * 10)
    assert empty.mean_batch_requests == 0.0
