"""A mergeable latency sketch with bounded relative error (the DDSketch idea).

Each positive value ``v`` falls in the bucket ``k = ceil(log(v) / log(gamma))`` with
``gamma = (1 + alpha) / (1 - alpha)``; the bucket is represented by ``2 * gamma**k / (gamma + 1)``,
which is within ``alpha`` (relative) of every value in it. Quantiles are read from cumulative bucket
counts and interpolated between the two neighbouring ranks exactly as ``numpy.quantile`` does
(``method="linear"``), so an estimate is within ``alpha`` of numpy's answer on the same values:
1% for the default ``alpha = 0.01``. The extreme ranks return the exact ``min`` and ``max``.

Values below ``min_value`` (1 ns by default), including zero, share one zero bucket. Memory is
bounded: past ``max_buckets`` the lowest buckets collapse into the lowest one kept, so only the
smallest quantiles lose accuracy (with 2048 buckets that happens only when the data spans more
than ~17 orders of magnitude). Buckets are plain counts, so ``merge`` is exact: merging sketches
gives the same sketch as adding every value to one. Not thread-safe: one owner adds to it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from modelport.core.errors import InvalidInputError

__all__ = ["LatencySketch"]

_FORMAT = 1


class LatencySketch:
    """Quantiles of non-negative values (seconds) within a relative error ``alpha``."""

    __slots__ = (
        "_bins",
        "_count",
        "_gamma",
        "_log_gamma",
        "_max",
        "_min",
        "_sum",
        "_zero",
        "alpha",
        "max_buckets",
        "min_value",
    )

    def __init__(
        self, alpha: float = 0.01, max_buckets: int = 2048, min_value: float = 1e-9
    ) -> None:
        if not 0.0 < alpha < 1.0:
            raise InvalidInputError(f"sketch alpha must be in (0, 1), got {alpha!r}")
        if max_buckets < 1:
            raise InvalidInputError(f"sketch max_buckets must be >= 1, got {max_buckets!r}")
        if not min_value > 0.0:
            raise InvalidInputError(f"sketch min_value must be > 0, got {min_value!r}")
        self.alpha = float(alpha)
        self.max_buckets = int(max_buckets)
        self.min_value = float(min_value)
        self._gamma = (1.0 + self.alpha) / (1.0 - self.alpha)
        self._log_gamma = math.log(self._gamma)
        self._bins: dict[int, int] = {}
        self._zero = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- reading ---------------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def min(self) -> float | None:
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        return self._max if self._count else None

    @property
    def mean(self) -> float | None:
        return self._sum / self._count if self._count else None

    @property
    def buckets(self) -> int:
        """Occupied buckets: the memory the sketch uses (at most ``max_buckets`` + 1)."""
        return len(self._bins) + (1 if self._zero else 0)

    def quantile(self, q: float) -> float | None:
        """The ``q``-quantile (0 <= q <= 1) interpolated like ``numpy.quantile``; None if empty."""
        if not 0.0 <= q <= 1.0:
            raise InvalidInputError(f"quantile must be within [0, 1], got {q!r}")
        if self._count == 0:
            return None
        rank = q * (self._count - 1)
        lower = math.floor(rank)
        frac = rank - lower
        keys = sorted(self._bins)
        lo = self._value_at(lower, keys)
        if frac == 0.0:
            return lo
        hi = self._value_at(lower + 1, keys)
        return lo + (hi - lo) * frac

    def quantiles(self, qs: Iterable[float]) -> list[float | None]:
        return [self.quantile(q) for q in qs]

    def _value_at(self, index: int, keys: list[int]) -> float:
        """Estimate of the ``index``-th smallest value (0-based), clamped to [min, max]."""
        if index <= 0:
            return self._min
        if index >= self._count - 1:
            return self._max
        if index < self._zero:
            return self._min  # the zero bucket: sub-nanosecond values, reported as the minimum
        seen = self._zero
        for key in keys:
            seen += self._bins[key]
            if seen > index:
                estimate = 2.0 * self._gamma**key / (self._gamma + 1.0)
                return min(max(estimate, self._min), self._max)
        return self._max  # pragma: no cover - counts always cover every rank

    # -- writing ---------------------------------------------------------------------------------
    def _key(self, value: float) -> int:
        return math.ceil(math.log(value) / self._log_gamma)

    def add(self, value: float, count: int = 1) -> None:
        """Record ``value`` (seconds, >= 0) ``count`` times."""
        v = float(value)
        if not (v >= 0.0 and math.isfinite(v)):
            raise InvalidInputError(f"sketch values must be finite and >= 0, got {value!r}")
        if count < 0 or int(count) != count:
            raise InvalidInputError(f"sketch count must be a non-negative integer, got {count!r}")
        if count == 0:
            return
        if v < self.min_value:
            self._zero += count
        else:
            key = self._key(v)
            self._bins[key] = self._bins.get(key, 0) + count
        self._count += count
        self._sum += v * count
        self._min = min(self._min, v)
        self._max = max(self._max, v)
        if len(self._bins) > self.max_buckets:
            self._collapse()

    def add_many(self, values: Iterable[float] | np.ndarray) -> None:
        """Record many values at once (vectorised; same result as calling ``add`` on each)."""
        arr = np.asarray(values, dtype=np.float64).ravel()
        if arr.size == 0:
            return
        if not (np.all(np.isfinite(arr)) and float(arr.min()) >= 0.0):
            raise InvalidInputError("sketch values must be finite and >= 0")
        small = arr < self.min_value
        self._zero += int(small.sum())
        big = arr[~small]
        if big.size:
            raw = np.ceil(np.log(big) / self._log_gamma).astype(np.int64)
            keys, counts = np.unique(raw, return_counts=True)
            for key, n in zip(keys.tolist(), counts.tolist(), strict=True):
                self._bins[key] = self._bins.get(key, 0) + n
        self._count += int(arr.size)
        self._sum += float(arr.sum())
        self._min = min(self._min, float(arr.min()))
        self._max = max(self._max, float(arr.max()))
        if len(self._bins) > self.max_buckets:
            self._collapse()

    def merge(self, other: LatencySketch) -> None:
        """Add every value ``other`` saw (in place). Both sketches must share ``alpha``."""
        if not math.isclose(other.alpha, self.alpha, rel_tol=1e-12):
            raise InvalidInputError(
                f"cannot merge sketches with different accuracy ({self.alpha} vs {other.alpha}); "
                "build both with the same alpha"
            )
        if other._count == 0:
            return
        for key, n in other._bins.items():
            self._bins[key] = self._bins.get(key, 0) + n
        self._zero += other._zero
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if len(self._bins) > self.max_buckets:
            self._collapse()

    def copy(self) -> LatencySketch:
        out = LatencySketch(self.alpha, self.max_buckets, self.min_value)
        out.merge(self)
        return out

    def _collapse(self) -> None:
        keys = sorted(self._bins)
        cut = len(keys) - self.max_buckets
        floor_key = keys[cut]
        self._bins[floor_key] += sum(self._bins.pop(k) for k in keys[:cut])

    # -- wire format -----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-able form: parameters, totals and a sparse ``{key: count}`` map."""
        return {
            "v": _FORMAT,
            "alpha": self.alpha,
            "max_buckets": self.max_buckets,
            "min_value": self.min_value,
            "count": self._count,
            "sum": self._sum,
            "min": self.min,
            "max": self.max,
            "zero": self._zero,
            "bins": {str(k): n for k, n in sorted(self._bins.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencySketch:
        try:
            if data.get("v", _FORMAT) != _FORMAT:
                raise ValueError(f"unknown sketch format {data.get('v')!r}")
            out = cls(
                alpha=float(data["alpha"]),
                max_buckets=int(data.get("max_buckets", 2048)),
                min_value=float(data.get("min_value", 1e-9)),
            )
            bins = {int(k): int(n) for k, n in dict(data.get("bins", {})).items()}
            zero = int(data.get("zero", 0))
            count = int(data["count"])
            totals = (float(data["sum"]), float(data["min"]), float(data["max"])) if count else None
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed latency sketch: {exc}") from exc
        if any(n < 0 for n in bins.values()) or zero < 0 or count != zero + sum(bins.values()):
            raise InvalidInputError(
                "malformed latency sketch: bucket counts do not add up to count"
            )
        out._bins = {k: n for k, n in bins.items() if n}
        out._zero = zero
        out._count = count
        if totals is not None:
            out._sum, out._min, out._max = totals
        if len(out._bins) > out.max_buckets:
            out._collapse()
        return out

    def __repr__(self) -> str:
        return (
            f"LatencySketch(count={self._count}, p50={self.quantile(0.5)}, "
            f"p99={self.quantile(0.99)}, buckets={self.buckets})"
        )
