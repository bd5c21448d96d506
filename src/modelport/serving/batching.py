"""Batching without asyncio: which inputs may share a batch, how to join and split them, when
to dispatch (a pure decision), and what one batch does in its thread (``run_batch``).
``modelport.serving.batcher`` does the queueing, waiting and threads.

Inputs are what a runtime's ``predict`` takes: a DataFrame, an ndarray whose first dimension is
rows, or a dict of such arrays with one row count. Two inputs may share a batch when they have
the same *batch key*: the same columns and dtypes (frames), the same trailing shape and dtype
(arrays; strings of any width join), or the same keys with such arrays (dicts). Anything else
(0-d arrays, lists, frames with duplicate columns, mixed row counts in a dict) runs alone.
Dtypes must match exactly, not only in kind: joining ``float32`` with ``float64`` would upcast
the ``float32`` request and could change its answer.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelport.core.errors import InvalidInputError, ModelportError, PredictionError
from modelport.serving.adapt import rows_of

__all__ = [
    "SIZE_BUCKETS",
    "BatchPolicy",
    "BatchResult",
    "BatcherStats",
    "batch_key",
    "compatible",
    "concat_inputs",
    "decide_dispatch",
    "public_error",
    "run_batch",
    "size_bucket",
    "split_outputs",
]

logger = logging.getLogger("modelport.serving")

#: One request's answer from a batch: its named outputs or the error to raise to it.
BatchResult = dict[str, np.ndarray] | ModelportError
#: Upper bounds (rows) of the batch-size histogram buckets; one more bucket holds the rest.
SIZE_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    """How one model version's requests are batched.

    ``max_batch_size`` is in rows; ``max_queue`` counts requests waiting to be dispatched (not
    rows); ``max_wait_ms`` bounds how long a request may be held while another batch runs.
    ``enabled=False`` sends every request to ``predict`` alone, with the same queue bound and
    deadlines.
    """

    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    max_queue: int = 512
    enabled: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.max_batch_size, bool) or not isinstance(self.max_batch_size, int):
            raise InvalidInputError("max_batch_size must be an integer number of rows")
        if self.max_batch_size < 1:
            raise InvalidInputError(f"max_batch_size must be at least 1, not {self.max_batch_size}")
        if isinstance(self.max_queue, bool) or not isinstance(self.max_queue, int):
            raise InvalidInputError("max_queue must be an integer number of requests")
        if self.max_queue < 1:
            raise InvalidInputError(f"max_queue must be at least 1, not {self.max_queue}")
        wait = self.max_wait_ms
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not math.isfinite(wait):
            raise InvalidInputError("max_wait_ms must be a finite number of milliseconds")
        if wait < 0:
            raise InvalidInputError(f"max_wait_ms must be 0 or more, not {wait}")

    @property
    def max_wait_s(self) -> float:
        return self.max_wait_ms / 1000.0


def decide_dispatch(
    queued_rows: int, oldest_wait_s: float, busy: bool, policy: BatchPolicy
) -> bool:
    """Whether the queued requests should be dispatched now, given a free execution slot.

    The policy is adaptive ("dispatch when idle"): when nothing of this model is running
    (``busy`` is False) whatever is queued goes at once, so a lone request never waits and
    batching adds no latency at low load. While a batch runs, requests accumulate behind it and
    are held until they fill ``max_batch_size`` rows or the oldest has waited ``max_wait_ms``;
    batch size therefore grows with load on its own. With one execution slot per model (the
    default) a free slot implies idle, so ``max_wait_ms`` matters only with more slots.
    """
    if queued_rows <= 0:
        return False
    return (not busy) or queued_rows >= policy.max_batch_size or oldest_wait_s >= policy.max_wait_s


def _array_key(value: Any) -> tuple[Hashable, ...] | None:
    if not isinstance(value, np.ndarray) or value.ndim == 0:
        return None
    dtype: Hashable = value.dtype.kind if value.dtype.kind in "US" else value.dtype
    return (value.shape[1:], dtype)


def batch_key(value: Any) -> Hashable | None:
    """A key equal for inputs that may be concatenated; None for inputs that must run alone."""
    if isinstance(value, pd.DataFrame):
        if not value.columns.is_unique:
            return None
        return ("frame", tuple(value.columns), tuple(value.dtypes))
    if isinstance(value, np.ndarray):
        key = _array_key(value)
        return None if key is None else ("array", key)
    if isinstance(value, Mapping) and value:
        if not all(isinstance(k, str) for k in value):
            return None
        keys = []
        rows = set()
        for name in sorted(value):
            key = _array_key(value[name])
            if key is None:
                return None
            rows.add(value[name].shape[0])
            keys.append((name, key))
        return ("dict", tuple(keys)) if len(rows) == 1 else None
    return None


def compatible(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` may be concatenated into one batch."""
    key = batch_key(a)
    return key is not None and key == batch_key(b)


def concat_inputs(items: Sequence[Any], *, checked: bool = False) -> tuple[Any, list[int]]:
    """One input made of ``items`` in order, and the row count of each item.

    A single item is returned as is. Raises ``ValueError`` if the items are not compatible;
    ``checked=True`` skips that test when the caller has compared their ``batch_key`` already
    (the batcher does, once per request: a frame's dtypes are slow to read).
    """
    if not items:
        raise ValueError("concat_inputs needs at least one input")
    first = items[0]
    if len(items) == 1:
        return first, [rows_of(first)]
    key = None if checked else batch_key(first)
    if not checked and (key is None or any(batch_key(item) != key for item in items[1:])):
        raise ValueError("inputs with different columns, shapes or dtypes cannot share a batch")
    counts = [rows_of(item) for item in items]
    if isinstance(first, pd.DataFrame):
        return pd.concat(list(items), ignore_index=True), counts
    if isinstance(first, np.ndarray):
        return np.concatenate(list(items)), counts
    return {name: np.concatenate([item[name] for item in items]) for name in first}, counts


def split_outputs(
    outputs: Mapping[str, np.ndarray], counts: Sequence[int]
) -> list[dict[str, np.ndarray]]:
    """The outputs of a batch cut back into one dict per request (views, in order).

    Raises ``PredictionError`` if an output does not have one row per input row.
    """
    total = sum(counts)
    arrays = {}
    for name, value in outputs.items():
        array = np.asarray(value)
        if array.ndim == 0 or array.shape[0] != total:
            got = array.shape[0] if array.ndim else 0
            raise PredictionError(
                f"the model returned output {name!r} with {got} rows for a batch of {total} rows"
            )
        arrays[str(name)] = array
    parts: list[dict[str, np.ndarray]] = []
    start = 0
    for count in counts:
        parts.append({name: array[start : start + count] for name, array in arrays.items()})
        start += count
    return parts


def run_batch(
    predict: Callable[[Any], Mapping[str, np.ndarray]],
    inputs: Sequence[Any],
    model: str,
    *,
    checked: bool = False,
) -> list[BatchResult]:
    """Predict the requests ``inputs`` as one batch; one result or error per request, in order.

    A single request goes to ``predict`` as is. If the joined batch fails with an error that may
    come from one request's data (anything but a ``ModelportError``, or a ``PredictionError`` /
    ``InvalidInputError``, which runtimes raise for bad rows), each request is retried alone so
    one bad request cannot fail its neighbours. ``checked`` as in ``concat_inputs``.
    Synchronous: the batcher runs it in a thread.
    """
    if len(inputs) == 1:
        try:
            return [dict(predict(inputs[0]))]
        except Exception as exc:
            return [public_error(exc, model)]
    try:
        merged, counts = concat_inputs(inputs, checked=checked)
        return [*split_outputs(predict(merged), counts)]
    except Exception as exc:
        if isinstance(exc, ModelportError) and not isinstance(
            exc, PredictionError | InvalidInputError
        ):
            return [exc] * len(inputs)  # e.g. UnavailableError: about the model as a whole
        logger.warning(
            "a batch of %d requests to %r failed; retrying each alone",
            len(inputs),
            model,
            exc_info=exc,
        )
        return [run_batch(predict, [one], model)[0] for one in inputs]


def public_error(exc: BaseException, model: str) -> ModelportError:
    """``exc`` if it is a ``ModelportError``; otherwise a generic ``PredictionError`` chained to
    it, the original logged (its message may hold data or internals)."""
    if isinstance(exc, ModelportError):
        return exc
    logger.error("predict of %r raised", model, exc_info=exc)
    error = PredictionError(f"model {model!r} failed while predicting; see the server log")
    error.__cause__ = exc
    return error


def size_bucket(rows: int) -> int:
    """Index of the ``SIZE_BUCKETS`` bucket of a batch of ``rows`` rows."""
    return next((i for i, bound in enumerate(SIZE_BUCKETS) if rows <= bound), len(SIZE_BUCKETS))


@dataclass(frozen=True, slots=True)
class BatcherStats:
    """A snapshot for metrics. ``batch_rows`` counts batches per bucket of ``SIZE_BUCKETS``
    (index ``i`` holds sizes in ``(SIZE_BUCKETS[i-1], SIZE_BUCKETS[i]]``, the last index the rest).
    ``deadline_dropped`` requests were never computed; ``deadline_late`` were computed but their
    waiter had given up."""

    queue_depth: int
    queued_rows: int
    inflight_batches: int
    requests: int
    batched_requests: int
    batches: int
    rows: int
    shed: int
    deadline_dropped: int
    deadline_late: int
    batch_rows: tuple[int, ...]

    @property
    def mean_batch_requests(self) -> float:
        return self.batched_requests / self.batches if self.batches else 0.0
