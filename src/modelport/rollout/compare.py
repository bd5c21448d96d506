"""Analysis statistics of a rollout: shadow agreement and the difference between two A/B arms.

``ShadowComparison`` is fed one mirrored request at a time (the primary's and the shadow's
outputs and latencies) and reports how often they agree, with a Wilson 95% interval, and how much
slower the shadow is (p50 and p95 of shadow minus primary latency). A request agrees when every
compared output has the same shape on both sides and agrees element by element:

- labels (``task="classification"``) agree when they are equal (``1 == 1.0``; ``"1" != 1``);
- numbers (``task="regression"``) agree when ``|shadow - primary| <= atol + rtol * |primary|``;
  ``task="auto"`` uses the tolerance when either side holds floats and equality otherwise.
  In every mode NaN agrees with NaN. Compare only the label of a classifier that also returns
  probabilities with ``outputs=("label",)``.

Outputs are a mapping name -> array-like, or one array-like. Different names, shapes or types
never raise: the request counts as a disagreement (and in ``mismatched``); so does a shadow that
gave no outputs (``None``: it failed or timed out; counted in ``failed``). Agreement is counted per
request, the unit that is mirrored, so the interval's independence assumption holds (rows of one
batch are not independent draws); per-row figures are reported beside it.

``ab_difference`` compares two proportions (error rates, or accuracies) with Newcombe's hybrid
score interval (method 10 of Newcombe 1998, built from two Wilson intervals) rather than the
Wald interval with continuity correction, because error rates sit near 0, where Wald is at its
worst: its standard error is 0 when an arm has no (or only) successes, so the interval shrinks to
the correction alone (+-0.025 for 0/40 against 0/40, where the score interval gives +-0.088) or
overshoots [-1, 1], and its coverage at small n is well under nominal. The score interval stays
inside [-1, 1], is never degenerate and keeps near-nominal coverage at small counts.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from modelport.core.errors import InvalidInputError
from modelport.monitoring.accuracy import proportion_diff_ci, wilson_interval

__all__ = ["ABDifference", "ShadowComparison", "ShadowReport", "Task", "ab_difference"]

Task = Literal["classification", "regression", "auto"]
_NUMERIC = frozenset("biufc")  # numpy kinds: bool, signed, unsigned, float, complex
_INEXACT = frozenset("fc")
_Bools = np.ndarray[Any, np.dtype[np.bool_]]


@dataclass(frozen=True, slots=True)
class ShadowReport:
    """Agreement between the shadow and the primary over the requests fed so far.

    ``agreement`` and its interval are None before the first comparison; the latency deltas
    (seconds, shadow minus primary: positive means the shadow is slower) are None before the
    first request with both latencies."""

    compared: int
    agreed: int
    mismatched: int
    failed: int
    agreement: float | None
    agreement_low: float | None
    agreement_high: float | None
    rows_compared: int
    rows_agreed: int
    latency_samples: int
    latency_delta_p50_s: float | None
    latency_delta_p95_s: float | None
    confidence: float


class ShadowComparison:
    """Accumulates the agreement of one shadow version with the primary. Not thread-safe: one
    owner feeds it. Latency deltas are kept for the last ``max_latency_samples`` requests."""

    def __init__(
        self,
        task: Task = "auto",
        *,
        atol: float = 1e-8,
        rtol: float = 1e-5,
        outputs: Collection[str] | None = None,
        max_latency_samples: int = 10_000,
    ) -> None:
        if task not in ("classification", "regression", "auto"):
            raise InvalidInputError(
                f"task must be classification, regression or auto, got {task!r}"
            )
        for name, value in (("atol", atol), ("rtol", rtol)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidInputError(f"{name} must be a number >= 0, got {value!r}")
        limit = max_latency_samples
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidInputError(
                f"max_latency_samples must be a positive integer, got {max_latency_samples!r}"
            )
        self.task: Task = task
        self.atol = float(atol)
        self.rtol = float(rtol)
        self.outputs = None if outputs is None else tuple(outputs)
        self._deltas: deque[float] = deque(maxlen=max_latency_samples)
        self._compared = self._agreed = self._mismatched = self._failed = 0
        self._rows_compared = self._rows_agreed = 0

    def add(
        self,
        primary: Any,
        shadow: Any,
        primary_latency_s: float | None = None,
        shadow_latency_s: float | None = None,
    ) -> bool:
        """Compare one mirrored request; return whether the shadow agreed with the primary.

        ``shadow=None`` is a shadow that failed. Latencies are seconds (None: not measured)."""
        for name, value in (("primary", primary_latency_s), ("shadow", shadow_latency_s)):
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(
                    f"the {name} latency must be a number of seconds >= 0, got {value!r}"
                )
        if primary_latency_s is not None and shadow_latency_s is not None:
            self._deltas.append(float(shadow_latency_s) - float(primary_latency_s))
        self._compared += 1
        rows = None if shadow is None else self._agreeing_rows(primary, shadow)
        if rows is None:
            if shadow is None:
                self._failed += 1
            else:
                self._mismatched += 1
            self._rows_compared += _row_count(primary)
            return False
        agreed = bool(rows.all())
        self._agreed += agreed
        self._rows_compared += rows.size
        self._rows_agreed += int(rows.sum())
        return agreed

    def report(self, confidence: float = 0.95) -> ShadowReport:
        """The figures so far, with a ``confidence`` Wilson interval for the agreement rate."""
        _check_confidence(confidence)
        n = self._compared
        low, high = wilson_interval(self._agreed, n, confidence) if n else (None, None)
        p50 = p95 = None
        if self._deltas:
            q50, q95 = np.quantile(np.fromiter(self._deltas, float), [0.5, 0.95])
            p50, p95 = float(q50), float(q95)
        return ShadowReport(
            compared=n,
            agreed=self._agreed,
            mismatched=self._mismatched,
            failed=self._failed,
            agreement=self._agreed / n if n else None,
            agreement_low=low,
            agreement_high=high,
            rows_compared=self._rows_compared,
            rows_agreed=self._rows_agreed,
            latency_samples=len(self._deltas),
            latency_delta_p50_s=p50,
            latency_delta_p95_s=p95,
            confidence=confidence,
        )

    def _agreeing_rows(self, primary: Any, shadow: Any) -> _Bools | None:
        """Per row, whether every compared output agrees; None when they cannot be compared."""
        left, right = _named(primary, self.outputs), _named(shadow, self.outputs)
        if left is None or right is None or left.keys() != right.keys():
            return None
        per_output = []
        for name, value in left.items():
            rows = self._rows(value, right[name])
            if rows is None:
                return None
            per_output.append(rows)
        if not per_output:
            return None
        if len({rows.size for rows in per_output}) == 1:
            return np.asarray(np.logical_and.reduce(per_output), dtype=bool)
        return np.array([all(rows.all() for rows in per_output)])  # outputs of different lengths

    def _rows(self, primary: Any, shadow: Any) -> _Bools | None:
        try:
            a, b = np.asarray(primary), np.asarray(shadow)
            if a.shape != b.shape:
                return None
            equal = self._equal(a, b)
        except (TypeError, ValueError):  # ragged lists, objects whose == does not give a bool
            return None
        if equal.ndim == 0:
            return equal.reshape(1)
        per_row = equal.reshape(equal.shape[0], math.prod(equal.shape[1:]))
        return np.asarray(per_row.all(axis=1), dtype=bool)

    def _equal(self, a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> _Bools:
        kinds = {a.dtype.kind, b.dtype.kind}
        numeric = kinds <= _NUMERIC
        inexact = numeric and bool(kinds & _INEXACT)
        if not (numeric or len(kinds) == 1 or "O" in kinds):
            return np.zeros(a.shape, dtype=bool)  # strings against numbers: different labels
        regression = self.task == "regression" and kinds != {"b"}
        if numeric and (regression or (self.task == "auto" and inexact)):
            close = np.isclose(b, a, rtol=self.rtol, atol=self.atol, equal_nan=True)
            return np.asarray(close, dtype=bool)
        equal = np.asarray(a == b, dtype=bool)
        if equal.shape != a.shape:
            raise ValueError("elementwise comparison did not give one bool per element")
        if inexact:
            equal |= np.isnan(a) & np.isnan(b)
        return equal


def _named(outputs: Any, names: tuple[str, ...] | None) -> dict[str, Any] | None:
    if not isinstance(outputs, Mapping):
        return {"": outputs}
    if names is None:
        return dict(outputs)
    if any(name not in outputs for name in names):
        return None
    return {name: outputs[name] for name in names}


def _row_count(outputs: Any) -> int:
    """Rows of the primary's answer (for a request that could not be compared), at least 1."""
    values = outputs.values() if isinstance(outputs, Mapping) else [outputs]
    counts = [1]
    for value in values:
        shape = getattr(value, "shape", None)
        if shape is None and isinstance(value, list | tuple):
            shape = (len(value),)
        if shape:
            counts.append(int(shape[0]))
    return max(counts)


@dataclass(frozen=True, slots=True)
class ABDifference:
    """``rate_a - rate_b`` for two arms with its confidence interval.

    With no observations in an arm, ``insufficient_data`` is true and the figures that need it
    are None; ``excludes_zero`` says whether the interval lies wholly on one side of 0 (the arms
    differ at this confidence)."""

    n_a: int
    n_b: int
    rate_a: float | None
    rate_b: float | None
    estimate: float | None
    low: float | None
    high: float | None
    confidence: float
    excludes_zero: bool
    insufficient_data: bool


def ab_difference(
    successes_a: int, n_a: int, successes_b: int, n_b: int, confidence: float = 0.95
) -> ABDifference:
    """The difference of two proportions, arm a minus arm b, with a Newcombe score interval.

    For error rates pass error counts (a positive estimate: arm a errs more); for accuracy pass
    correct predictions. ``n_a == 0`` or ``n_b == 0`` gives ``insufficient_data``, not an error.
    """
    counts = {"successes_a": successes_a, "n_a": n_a, "successes_b": successes_b, "n_b": n_b}
    for name, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise InvalidInputError(f"{name} must be a count (an integer >= 0), got {value!r}")
    if successes_a > n_a or successes_b > n_b:
        arm = "a" if successes_a > n_a else "b"
        raise InvalidInputError(
            f"arm {arm} has more successes than observations ({successes_a}/{n_a} and "
            f"{successes_b}/{n_b}): pass counts of the same requests"
        )
    _check_confidence(confidence)
    n_a, n_b = int(n_a), int(n_b)
    rate_a = successes_a / n_a if n_a else None
    rate_b = successes_b / n_b if n_b else None
    if rate_a is None or rate_b is None:
        return ABDifference(n_a, n_b, rate_a, rate_b, None, None, None, confidence, False, True)
    diff = proportion_diff_ci(successes_a, n_a, successes_b, n_b, confidence)
    excludes = diff.low > 0.0 or diff.high < 0.0
    return ABDifference(
        n_a, n_b, rate_a, rate_b, diff.estimate, diff.low, diff.high, confidence, excludes, False
    )


def _check_confidence(confidence: object) -> None:
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, int | float)
        or not 0.0 < confidence < 1.0
    ):
        raise InvalidInputError(
            f"confidence must be a number between 0 and 1 (0.95 for 95%), got {confidence!r}"
        )
