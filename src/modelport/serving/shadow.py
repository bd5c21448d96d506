"""Shadow mirroring: a copy of a request answered by another version, invisible to the client.

The router decides which requests are mirrored (``Decision.shadow``: a fraction, by a hash of the
request id). After the primary version answered, the data plane hands the request to
``ShadowMirror.offer``, which starts one task and returns at once: the client's answer never
waits for the shadow, and nothing the shadow does (an error, a timeout, a full queue) reaches
the client. Mirrors are bounded: at most ``capacity`` in flight per worker, further ones are
dropped (counted); each is cut off after the table's ``shadow_timeout_ms`` (then counted as
failed), and its queued work is dropped with it.

The shadow's answer is observed like any prediction (its rolling-window figures and prediction
log rows are the candidate's, with the same request id: delayed labels give it an accuracy
too), and compared with the primary's (``rollout.compare.ShadowComparison``: the
``predictions`` output when both have one, else every output). ``ShadowTally`` keeps, per
endpoint and shadow version, when each comparison happened and whether it agreed, so the
rollout controller can ask for the agreement since its stage began (``window``).

With several workers each mirrors its share of the sampled requests. A worker's tally also
counts its comparisons per second of wall time (the last hour of them), and ``export`` hands
those counts to its siblings through the monitoring's shared directory; ``window_of_export``
reads a sibling's, counting only the seconds that began at or after ``since`` (a partial
second is left out: a gate may wait a little longer, but never counts a comparison from
before its stage). The controller's figure is therefore every worker's. The ``report`` (the
interval and latency deltas of ``/v2/endpoints``) stays this worker's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modelport.core.clock import Clock
from modelport.core.errors import InvalidInputError
from modelport.rollout.analysis import ShadowWindow
from modelport.rollout.compare import ShadowComparison, ShadowReport
from modelport.serving.adapt import rows_of
from modelport.serving.manager import ModelManager, Served
from modelport.serving.observer import PredictionObserver
from modelport.serving.requestid import current_request_id
from modelport.serving.types import Prediction

__all__ = ["ShadowMirror", "ShadowTally"]

log = logging.getLogger("modelport.serving")
DEFAULT_CAPACITY = 64
MAX_TALLY = 100_000
PREDICTIONS = "predictions"


MAX_SECONDS = 3600  # per-second counts kept for export: the last hour


@dataclass(slots=True)
class _Versus:
    """The comparisons of one shadow version on one endpoint."""

    comparison: ShadowComparison
    seen: deque[tuple[float, bool]]  # (wall time, agreed), oldest first
    # whole seconds of wall time -> [compared, agreed], oldest first (insertion order)
    seconds: dict[int, list[int]] = field(default_factory=dict)

    def count(self, at: float, agreed: bool) -> None:
        second = int(at)
        counts = self.seconds.get(second)
        if counts is None:
            counts = self.seconds[second] = [0, 0]
            if len(self.seconds) > MAX_SECONDS:
                del self.seconds[next(iter(self.seconds))]
        counts[0] += 1
        counts[1] += agreed


class ShadowTally:
    """Agreement per ``(endpoint, shadow version)``, by time; used on the event loop only."""

    def __init__(self, clock: Clock, *, max_entries: int = MAX_TALLY) -> None:
        self._clock = clock
        self._max = max_entries
        self._by: dict[tuple[str, int], _Versus] = {}

    def add(
        self,
        endpoint: str,
        version: int,
        primary: Mapping[str, np.ndarray],
        shadow: Mapping[str, np.ndarray] | None,
        primary_latency_s: float,
        shadow_latency_s: float | None,
    ) -> bool:
        """Compare one mirrored request (``shadow`` None: it failed); return whether it agreed."""
        versus = self._by.get((endpoint, version))
        if versus is None:
            versus = _Versus(ShadowComparison("auto"), deque(maxlen=self._max))
            self._by[(endpoint, version)] = versus
        if shadow is not None and PREDICTIONS in primary and PREDICTIONS in shadow:
            primary, shadow = (
                {PREDICTIONS: primary[PREDICTIONS]},
                {PREDICTIONS: shadow[PREDICTIONS]},
            )
        agreed = versus.comparison.add(primary, shadow, primary_latency_s, shadow_latency_s)
        at = self._clock.now().timestamp()
        versus.seen.append((at, agreed))
        versus.count(at, agreed)
        return agreed

    def window(self, endpoint: str, version: int, since: float) -> ShadowWindow | None:
        """Comparisons made at or after ``since`` (a POSIX time); None when there are none."""
        versus = self._by.get((endpoint, version))
        if versus is None:
            return None
        compared = agreed = 0
        for at, ok in reversed(versus.seen):
            if at < since:
                break
            compared += 1
            agreed += ok
        return ShadowWindow(compared, agreed) if compared else None

    def export(self) -> list[list[Any]]:
        """This worker's per-second counts, ``[[endpoint, version, [[second, compared, agreed],
        ...]], ...]`` (JSON-ready), for ``window_of_export`` in its siblings."""
        return [
            [endpoint, version, [[t, c, a] for t, (c, a) in versus.seconds.items()]]
            for (endpoint, version), versus in self._by.items()
        ]

    @staticmethod
    def window_of_export(
        exported: Any, endpoint: str, version: int, since: float
    ) -> ShadowWindow | None:
        """A sibling's comparisons in the whole seconds starting at or after ``since``; None
        when there are none (or the export is not understood: it is then ignored)."""
        compared = agreed = 0
        try:
            for name, number, seconds in exported or ():
                if name != endpoint or number != version:
                    continue
                for second, c, a in seconds:
                    if second >= since:
                        compared += int(c)
                        agreed += int(a)
            return ShadowWindow(compared, agreed) if compared else None
        except (TypeError, ValueError, InvalidInputError):
            log.warning("ignoring another worker's shadow counts: not understood")
            return None

    def versions(self, endpoint: str) -> list[int]:
        """The shadow versions of ``endpoint`` compared so far."""
        return sorted(v for e, v in self._by if e == endpoint)

    def report(self, endpoint: str, version: int) -> ShadowReport | None:
        """Every comparison of that shadow so far (agreement interval, latency delta)."""
        versus = self._by.get((endpoint, version))
        return None if versus is None else versus.comparison.report()


class ShadowMirror:
    """Runs mirrored requests in the background (see module doc)."""

    def __init__(
        self,
        manager: ModelManager,
        clock: Clock,
        tally: ShadowTally,
        observer: PredictionObserver | None = None,
        *,
        capacity: int = DEFAULT_CAPACITY,
    ) -> None:
        self._manager = manager
        self._clock = clock
        self.tally = tally
        self._observer = observer
        self._capacity = capacity
        self._tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.failed = 0
        self._closed = False

    @property
    def inflight(self) -> int:
        return len(self._tasks)

    def offer(
        self,
        endpoint: str,
        primary: Prediction,
        primary_latency_s: float,
        shadow: Served,
        convert: Callable[[Served], Any],
        timeout_s: float,
    ) -> bool:
        """Mirror one request to ``shadow`` (``convert`` builds its input for that version);
        return False when it was dropped (full, or shutting down). Never raises."""
        if self._closed or len(self._tasks) >= self._capacity:
            self.dropped += 1
            return False
        task = asyncio.create_task(
            self._mirror(endpoint, primary, primary_latency_s, shadow, convert, timeout_s),
            name="modelport-shadow",
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _mirror(
        self,
        endpoint: str,
        primary: Prediction,
        primary_latency_s: float,
        shadow: Served,
        convert: Callable[[Served], Any],
        timeout_s: float,
    ) -> None:
        clock = self._clock
        started = clock.monotonic()
        inputs: Any = None
        outputs: Mapping[str, np.ndarray] | None = None
        error: BaseException | None = None
        try:
            batcher = shadow.batcher
            if batcher is None:
                raise asyncio.CancelledError  # unloaded meanwhile: nothing to compare
            inputs = convert(shadow)
            with self._manager.using(shadow):
                outputs = await asyncio.wait_for(
                    batcher.submit(inputs, started + timeout_s), timeout_s
                )
        except asyncio.CancelledError:
            return
        except Exception as exc:  # the shadow failed or timed out: the client never sees it
            error = exc
            self.failed += 1
        latency = clock.monotonic() - started
        try:
            if self._observer is not None and inputs is not None:
                answer = None
                if outputs is not None:
                    answer = Prediction(shadow.name, shadow.number, outputs, rows_of(inputs))
                self._observer.observed(
                    shadow,
                    inputs,
                    answer,
                    latency,
                    request_id=current_request_id(),
                    ok=outputs is not None,
                    error=error,
                )
            self.tally.add(
                endpoint,
                shadow.number,
                primary.outputs,
                outputs,
                primary_latency_s,
                latency if outputs is not None else None,
            )
        except Exception:  # bookkeeping must never break the loop
            log.exception("recording the shadow answer of %s:%s failed", shadow.name, shadow.number)

    async def close(self) -> None:
        """Stop mirroring; cancel the mirrors still running."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
