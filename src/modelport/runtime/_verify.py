"""Is a derived artifact's output the original's? Compare both runtimes on the same inputs.

Rules, per output name (both runtimes must return the same names, shapes and dtypes):

- labels (``predictions`` of a model that also returns ``probabilities``, and any non-float
  output) must be identical;
- ``probabilities``: ``|a - b| <= atol`` elementwise;
- other float outputs (regression predictions): ``|a - b| <= atol + rtol * |a|``.

NaN matches NaN only. ``max_abs_diff`` is the largest ``|a - b|`` over the float outputs (0.0
when every output is a label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from modelport.core.errors import ModelportError
from modelport.runtime.base import Runtime

__all__ = ["Verification", "rows_of", "verify_variant"]


class Verification(NamedTuple):
    ok: bool
    max_abs_diff: float | None
    rows: int
    reason: str


class _Mismatch(Exception):
    def __init__(self, message: str, worst: float | None = None) -> None:
        super().__init__(message)
        self.worst = worst


def rows_of(value: Any) -> int:
    """Rows in a frame, an array or a dict of columns."""
    if hasattr(value, "iloc"):
        return len(value)
    if isinstance(value, Mapping):
        return len(np.asarray(next(iter(value.values())))) if value else 0
    return len(np.asarray(value))


def _arrays(output: Any, who: str) -> dict[str, np.ndarray]:
    if not isinstance(output, Mapping):
        raise _Mismatch(f"{who} returned a {type(output).__name__}, not named outputs")
    return {str(k): np.asarray(v) for k, v in output.items()}


def _compare(
    name: str, a: np.ndarray, b: np.ndarray, label: bool, atol: float, rtol: float
) -> float:
    """The largest ``|a - b|`` of a float output (0.0 for labels); ``_Mismatch`` if over."""
    if a.shape != b.shape or a.dtype != b.dtype:
        raise _Mismatch(
            f"output {name!r} is {b.dtype}{list(b.shape)} instead of {a.dtype}{list(a.shape)}"
        )
    floats = a.dtype.kind in "fc"
    nan_a = np.isnan(a) if floats else np.zeros(a.shape, dtype=bool)
    nan_b = np.isnan(b) if floats else nan_a
    if label or not floats:
        differ = int(np.count_nonzero((a != b) & ~(nan_a & nan_b)))
        if differ:
            raise _Mismatch(f"{differ} of {a.size} {name!r} values differ")
        return 0.0
    if np.any(nan_a ^ nan_b):
        raise _Mismatch(f"output {name!r} has NaN where the original has a number, or vice versa")
    diff = np.where(nan_a, 0.0, np.abs(a.astype(np.float64) - b.astype(np.float64)))
    worst = float(diff.max()) if diff.size else 0.0
    over = int(np.count_nonzero(diff > atol + rtol * np.abs(np.where(nan_a, 0.0, a))))
    if over:
        raise _Mismatch(
            f"{over} of {a.size} {name!r} values differ by more than the tolerance "
            f"(max |Δ| {worst:.2g})",
            worst,
        )
    return worst


def verify_variant(
    original: Runtime,
    candidate: Runtime,
    samples: Sequence[Any],
    atol: float = 1e-5,
    rtol: float = 1e-5,
    names: Sequence[str] = (),
) -> Verification:
    """Compare ``candidate`` with ``original`` on every sample (see the module docstring).

    ``names`` label the samples in the reason (``"reference sample"``). Failures of either
    runtime are reported in the result, not raised.
    """
    worst, rows = 0.0, 0
    for i, sample in enumerate(samples):
        what = names[i] if i < len(names) else f"sample {i + 1}"
        try:
            expected = _arrays(original.predict(sample), "the original")
        except ModelportError as exc:
            return Verification(False, None, rows, f"on the {what}, the original failed: {exc}")
        try:
            got = _arrays(candidate.predict(sample), "the variant")
            if set(got) != set(expected):
                raise _Mismatch(f"outputs {sorted(got)} instead of {sorted(expected)}")
            has_proba = "probabilities" in expected
            for name, a in expected.items():
                label = name == "predictions" and has_proba
                relative = 0.0 if name == "probabilities" else rtol
                worst = max(worst, _compare(name, a, got[name], label, atol, relative))
        except _Mismatch as exc:
            return Verification(False, exc.worst, rows, f"on the {what}: {exc}")
        except ModelportError as exc:
            return Verification(False, None, rows, f"on the {what}, the variant failed: {exc}")
        rows += rows_of(sample)
    if rows == 0:
        return Verification(False, None, 0, "no rows to compare")
    return Verification(True, worst, rows, "")
