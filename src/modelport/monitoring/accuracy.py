"""Accuracy from ground truth joined to predictions, and confidence intervals for proportions.

Labels compare robustly: ``1``, ``1.0``, ``"1"``, ``" 1 "`` and ``True`` are the same label, as are
``"true"`` and ``True``; other strings compare exactly (after stripping whitespace). A pair whose
prediction or label is missing (None, NaN) is skipped and counted in ``skipped``; so is a regression
pair that is not numeric. ``task="auto"`` picks regression when any value is a number that is not
a whole number (``2.5``, ``"0.73"``), classification otherwise; pass ``task`` when you know it.

Windows are aligned on the Unix epoch (``[k * window_s, (k + 1) * window_s)`` of the prediction
time), like the rolling windows, so figures from different calls and processes line up.
"""

from __future__ import annotations

import math
import numbers
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist
from typing import Any, Literal

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError

__all__ = [
    "AccuracyStats",
    "DiffInterval",
    "LabeledPrediction",
    "Task",
    "WindowAccuracy",
    "accuracy_by_version",
    "accuracy_by_window",
    "accuracy_stats",
    "labels_equal",
    "proportion_diff_ci",
    "wilson_interval",
]

Task = Literal["classification", "regression", "auto"]
Label = int | float | str


@dataclass(frozen=True, slots=True)
class LabeledPrediction:
    """One prediction joined to its ground-truth label."""

    version: str
    prediction: Any
    label: Any
    predicted_at: datetime


@dataclass(frozen=True, slots=True)
class AccuracyStats:
    task: Literal["classification", "regression"]
    count: int
    skipped: int = 0
    correct: int | None = None
    accuracy: float | None = None
    accuracy_low: float | None = None
    accuracy_high: float | None = None
    mae: float | None = None
    rmse: float | None = None


@dataclass(frozen=True, slots=True)
class WindowAccuracy:
    version: str
    start: datetime
    end: datetime
    stats: AccuracyStats


@dataclass(frozen=True, slots=True)
class DiffInterval:
    """``p_a - p_b`` with its confidence interval (Newcombe's hybrid score method)."""

    estimate: float
    low: float
    high: float
    confidence: float


# -- labels ------------------------------------------------------------------------------------
def _canonical(value: Any) -> Label | None:
    """The comparable form of a label; None when missing."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("true", "false"):
            return 1 if text.lower() == "true" else 0
        if not text:
            return None
        try:
            return int(text)  # exact, even past 2**53
        except ValueError:
            pass
        try:
            return _number(float(text))
        except ValueError:
            return text
    try:
        number = float(value)  # bool, int, float and numpy scalars
    except (TypeError, ValueError):
        return str(value)
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)  # exact, even past 2**53
    return _number(number)


def _number(number: float) -> Label | None:
    if math.isnan(number):
        return None
    return int(number) if number.is_integer() else number


def labels_equal(a: Any, b: Any) -> bool:
    """Whether two labels name the same class (``1 == 1.0 == "1"``); missing equals nothing."""
    ca, cb = _canonical(a), _canonical(b)
    return ca is not None and ca == cb


# -- statistics --------------------------------------------------------------------------------
def _as_float(value: Any) -> float | None:
    canonical = _canonical(value)
    if canonical is None or isinstance(canonical, str):
        return None
    return float(canonical)


def _pick_task(pairs: Sequence[tuple[Any, Any]]) -> Literal["classification", "regression"]:
    values = (_canonical(v) for pair in pairs for v in pair)
    return "regression" if any(isinstance(v, float) for v in values) else "classification"


def accuracy_stats(pairs: Iterable[tuple[Any, Any]], task: Task = "auto") -> AccuracyStats:
    """Accuracy (classification) or MAE/RMSE (regression) of ``(prediction, label)`` pairs."""
    items = list(pairs)
    kind = _pick_task(items) if task == "auto" else task
    if kind == "regression":
        errors = []
        for prediction, label in items:
            p, y = _as_float(prediction), _as_float(label)
            if p is not None and y is not None:
                errors.append(p - y)
        n = len(errors)
        return AccuracyStats(
            task="regression",
            count=n,
            skipped=len(items) - n,
            mae=sum(abs(e) for e in errors) / n if n else None,
            rmse=math.sqrt(sum(e * e for e in errors) / n) if n else None,
        )
    if kind != "classification":
        raise InvalidInputError(f"task must be classification, regression or auto, got {task!r}")
    n = correct = 0
    for prediction, label in items:
        predicted, actual = _canonical(prediction), _canonical(label)
        if predicted is not None and actual is not None:
            n += 1
            correct += predicted == actual
    low, high = wilson_interval(correct, n) if n else (None, None)
    return AccuracyStats(
        task="classification",
        count=n,
        skipped=len(items) - n,
        correct=correct,
        accuracy=correct / n if n else None,
        accuracy_low=low,
        accuracy_high=high,
    )


def accuracy_by_version(
    records: Iterable[LabeledPrediction], task: Task = "auto"
) -> dict[str, AccuracyStats]:
    """Accuracy per model version, versions sorted by name."""
    groups: dict[str, list[tuple[Any, Any]]] = defaultdict(list)
    for r in records:
        groups[r.version].append((r.prediction, r.label))
    return {v: accuracy_stats(groups[v], task) for v in sorted(groups)}


def accuracy_by_window(
    records: Iterable[LabeledPrediction],
    window_s: float,
    clock: Clock,
    *,
    task: Task = "auto",
    max_windows: int | None = None,
) -> list[WindowAccuracy]:
    """Accuracy per version and epoch-aligned window of prediction time, oldest first.

    Only windows that hold pairs are returned; predictions after ``clock.now()`` (clock skew) and,
    with ``max_windows``, windows before the last ``max_windows`` ending with the current one are
    left out.
    """
    if not (math.isfinite(window_s) and window_s > 0):
        raise InvalidInputError(f"window_s must be a positive number of seconds, got {window_s!r}")
    now = clock.now().timestamp()
    current = math.floor(now / window_s)
    first = current - max_windows + 1 if max_windows else None
    items = list(records)
    kind = _pick_task([(r.prediction, r.label) for r in items]) if task == "auto" else task
    groups: dict[tuple[str, int], list[tuple[Any, Any]]] = defaultdict(list)
    for r in items:
        at = r.predicted_at.timestamp()
        index = math.floor(at / window_s)
        if at > now or (first is not None and index < first):
            continue
        groups[(r.version, index)].append((r.prediction, r.label))
    return [
        WindowAccuracy(
            version=version,
            start=datetime.fromtimestamp(index * window_s, UTC),
            end=datetime.fromtimestamp((index + 1) * window_s, UTC),
            stats=accuracy_stats(groups[(version, index)], kind),
        )
        for version, index in sorted(groups, key=lambda k: (k[1], k[0]))
    ]


# -- confidence intervals ----------------------------------------------------------------------
def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise InvalidInputError(f"confidence must be in (0, 1), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2.0)


def _check(successes: int, n: int) -> None:
    if n < 0 or not 0 <= successes <= n:
        raise InvalidInputError(f"need 0 <= successes <= n, got successes={successes}, n={n}")


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion; ``(0, 1)`` when ``n`` is 0."""
    _check(successes, n)
    z = _z(confidence)
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def proportion_diff_ci(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> DiffInterval:
    """Interval for ``p_a - p_b`` (Newcombe 1998, method 10: built from two Wilson intervals).

    Good coverage at small counts and at 0% / 100%, unlike the Wald interval. With no
    observations on a side the interval is the uninformative ``[-1, 1]`` around 0.
    """
    _check(successes_a, n_a)
    _check(successes_b, n_b)
    if n_a == 0 or n_b == 0:
        _z(confidence)
        return DiffInterval(0.0, -1.0, 1.0, confidence)
    pa, pb = successes_a / n_a, successes_b / n_b
    la, ua = wilson_interval(successes_a, n_a, confidence)
    lb, ub = wilson_interval(successes_b, n_b, confidence)
    d = pa - pb
    low = d - math.sqrt((pa - la) ** 2 + (ub - pb) ** 2)
    high = d + math.sqrt((ua - pa) ** 2 + (pb - lb) ** 2)
    return DiffInterval(d, max(-1.0, low), min(1.0, high), confidence)
