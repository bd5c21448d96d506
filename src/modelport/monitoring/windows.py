"""Rolling-window request statistics per ``(endpoint, model, version)``.

Time is cut into slices of ``slice_s`` seconds aligned on the Unix epoch (slice ``i`` covers
``[i * slice_s, (i + 1) * slice_s)`` of ``clock.now()``), so slices from different worker processes
line up and ``merge_export`` can add them slice by slice. A slice keeps a request count, an error
count and a ``LatencySketch``; a window is the last ``ceil(window_s / slice_s)`` slices, the newest
one partly filled, so the window the figures cover is ``window_s`` give or take one slice.

``rate_per_s`` divides the count by the time the window actually covers: the full window, or less
while it is still filling after the window (or the oldest merged worker) started, and never less
than one slice. Memory is bounded: at most ``max_keys`` keys (the least recently active key is
evicted, counted in ``evicted_keys``) and at most ``ceil(window_s / slice_s) + 1`` slices per key.
Not thread-safe: its owner (one per worker process, on the event loop) serialises calls.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError
from modelport.monitoring.sketch import LatencySketch

__all__ = ["RollingWindow", "WindowKey", "WindowStats"]

WindowKey = tuple[str, str, str]
"""``(endpoint, model, version)``."""

_FORMAT = 1
MAX_SLICES = 10_000


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Figures over the last ``window_s`` seconds. Quantiles are None and rates 0 when empty."""

    count: int
    errors: int
    error_rate: float
    rate_per_s: float
    p50: float | None
    p95: float | None
    p99: float | None
    window_s: float


class _Slice:
    __slots__ = ("count", "errors", "sketch")

    def __init__(self, alpha: float) -> None:
        self.count = 0
        self.errors = 0
        self.sketch = LatencySketch(alpha=alpha)


class RollingWindow:
    """Time-sliced counters and latency sketches per key over a sliding window."""

    def __init__(
        self,
        window_s: float,
        slice_s: float,
        clock: Clock,
        *,
        max_keys: int = 1024,
        alpha: float = 0.01,
    ) -> None:
        if not (math.isfinite(window_s) and math.isfinite(slice_s) and 0 < slice_s <= window_s):
            raise InvalidInputError(
                f"rolling window needs 0 < slice_s <= window_s, got slice_s={slice_s!r}, "
                f"window_s={window_s!r}"
            )
        slices = math.ceil(window_s / slice_s - 1e-9)
        if slices > MAX_SLICES:
            raise InvalidInputError(
                f"rolling window of {window_s}s in {slice_s}s slices needs {slices} slices; "
                f"use a larger slice_s (at most {MAX_SLICES} slices)"
            )
        if max_keys < 1:
            raise InvalidInputError(f"max_keys must be >= 1, got {max_keys!r}")
        self.window_s = float(window_s)
        self.slice_s = float(slice_s)
        self.max_keys = max_keys
        self.alpha = alpha
        self.evicted_keys = 0
        self._clock = clock
        self._slices_per_window = slices
        self._origin = self._now()
        self._data: dict[WindowKey, dict[int, _Slice]] = {}
        self._last_seen: dict[WindowKey, float] = {}

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _current(self) -> int:
        return math.floor(self._now() / self.slice_s)

    def _oldest_kept(self) -> int:
        return self._current() - self._slices_per_window + 1

    # -- writing ---------------------------------------------------------------------------------
    def record(self, key: WindowKey, latency_s: float, error: bool = False) -> None:
        """Count one request for ``key`` in the current slice."""
        piece = self._slice(key, self._current())
        piece.sketch.add(latency_s)  # validates before anything is counted
        piece.count += 1
        if error:
            piece.errors += 1

    def _slice(self, key: WindowKey, index: int) -> _Slice:
        slices = self._data.get(key)
        if slices is None:
            self._make_room()
            slices = self._data[key] = {}
        self._last_seen[key] = self._now()
        found = slices.get(index)
        if found is None:
            found = slices[index] = _Slice(self.alpha)
            self._prune(key)
        return found

    def _prune(self, key: WindowKey) -> None:
        slices = self._data[key]
        oldest = self._oldest_kept()
        for index in [i for i in slices if i < oldest]:
            del slices[index]
        while len(slices) > self._slices_per_window + 1:  # wall clock stepped back: keep newest
            del slices[min(slices)]

    def _make_room(self) -> None:
        if len(self._data) < self.max_keys:
            return
        oldest = self._oldest_kept()
        for key in [k for k, s in self._data.items() if not s or max(s) < oldest]:
            self._forget(key)
        if len(self._data) >= self.max_keys:
            self._forget(min(self._last_seen, key=self._last_seen.__getitem__))
            self.evicted_keys += 1

    def _forget(self, key: WindowKey) -> None:
        self._data.pop(key, None)
        self._last_seen.pop(key, None)

    # -- reading ---------------------------------------------------------------------------------
    def keys(self) -> list[WindowKey]:
        """Keys with at least one request inside the window, sorted."""
        oldest = self._oldest_kept()
        return sorted(k for k, s in self._data.items() if any(i >= oldest for i in s))

    def snapshot(self, key: WindowKey, since: float | None = None) -> WindowStats:
        """Figures for ``key`` over the window ending now; with ``since`` (a POSIX time), only
        over the slices that start at or after it (a slice that straddles it is left out, so
        nothing from before ``since`` is counted)."""
        oldest = self._oldest_kept()
        if since is not None:
            oldest = max(oldest, math.ceil(since / self.slice_s - 1e-9))
        current = self._current()
        count = errors = 0
        sketch = LatencySketch(alpha=self.alpha)
        for index, piece in self._data.get(key, {}).items():
            if oldest <= index <= current:
                count += piece.count
                errors += piece.errors
                sketch.merge(piece.sketch)
        now = self._now()
        covered = max(now - max(oldest * self.slice_s, self._origin), self.slice_s)
        p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99))
        return WindowStats(
            count=count,
            errors=errors,
            error_rate=errors / count if count else 0.0,
            rate_per_s=count / covered,
            p50=p50,
            p95=p95,
            p99=p99,
            window_s=self.window_s,
        )

    # -- combining workers -----------------------------------------------------------------------
    def export(self) -> dict[str, Any]:
        """A JSON-able copy of the slices inside the window (for ``merge_export`` elsewhere)."""
        oldest = self._oldest_kept()
        entries = []
        for key, slices in sorted(self._data.items()):
            kept = [
                {
                    "start": index * self.slice_s,
                    "count": piece.count,
                    "errors": piece.errors,
                    "sketch": piece.sketch.to_dict(),
                }
                for index, piece in sorted(slices.items())
                if index >= oldest
            ]
            if kept:
                entries.append({"key": list(key), "slices": kept})
        return {
            "v": _FORMAT,
            "window_s": self.window_s,
            "slice_s": self.slice_s,
            "origin": self._origin,
            "keys": entries,
        }

    def merge_export(self, exported: Mapping[str, Any]) -> None:
        """Add another window's ``export()`` (same ``slice_s``) into this one, slice by slice."""
        try:
            if exported.get("v", _FORMAT) != _FORMAT:
                raise ValueError(f"unknown window export format {exported.get('v')!r}")
            slice_s = float(exported["slice_s"])
            origin = float(exported["origin"])
            entries = [
                (
                    _as_key(entry["key"]),
                    [
                        (
                            round(float(s["start"]) / slice_s),
                            int(s["count"]),
                            int(s["errors"]),
                            LatencySketch.from_dict(s["sketch"]),
                        )
                        for s in entry["slices"]
                    ],
                )
                for entry in exported["keys"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed rolling-window export: {exc!r}") from exc
        if not math.isclose(slice_s, self.slice_s, rel_tol=1e-9):
            raise InvalidInputError(
                f"cannot merge a window with {slice_s}s slices into one with {self.slice_s}s "
                "slices; configure every worker with the same slice_s"
            )
        self._origin = min(self._origin, origin)
        oldest = self._oldest_kept()
        for key, pieces in entries:
            for index, count, errors, sketch in pieces:
                if index < oldest or count == 0:
                    continue
                target = self._slice(key, index)
                target.count += count
                target.errors += errors
                target.sketch.merge(sketch)


def _as_key(raw: Any) -> WindowKey:
    parts = [str(p) for p in raw]
    if len(parts) != 3:
        raise ValueError(f"window key must be (endpoint, model, version), got {raw!r}")
    return (parts[0], parts[1], parts[2])
