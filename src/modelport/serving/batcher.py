"""The adaptive batcher of one model version: a bounded queue in front of a thread pool.

``submit`` queues a request and waits; a dispatcher task forms batches of compatible requests
(``batching.decide_dispatch`` says when) and runs ``predict`` for each batch in the executor.
While a batch runs, new requests accumulate, so batches grow with load and a lone request is
never held. The owner calls ``start()`` and ``close()`` from the app lifespan.

Failure semantics: a full queue sheds at once (``OverloadedError``); a request whose deadline
passes gets ``DeadlineExceededError`` (dropped from the queue if not yet dispatched); a failing
batch fails only its own requests, and when the error may come from one request's data the
requests are retried alone; ``close()`` drains, then fails the rest with ``ShuttingDownError``; if
the dispatcher dies from a bug every waiter and every later submit gets ``UnavailableError``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import math
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelNotReadyError,
    ModelportError,
    OverloadedError,
    PredictionError,
    ShuttingDownError,
    UnavailableError,
)
from modelport.serving.adapt import rows_of
from modelport.serving.batching import (
    SIZE_BUCKETS,
    BatcherStats,
    BatchPolicy,
    BatchResult,
    batch_key,
    decide_dispatch,
    public_error,
    run_batch,
    size_bucket,
)

__all__ = ["AdaptiveBatcher"]

logger = logging.getLogger("modelport.serving")

# A lone request runs on the event loop itself when its model's predict (timed alone, in the
# worker) takes less than this and no other request is waiting: the executor's two cross-thread
# hand-offs then cost more than the thread buys, as no other request could use the loop
# meanwhile. Above it the loop would stall too long for the health probes.
INLINE_BELOW_S = 0.003
# Below this a request runs inline even when others arrive at the same time: what batching it
# could save is less than the hand-off costs.
ALWAYS_INLINE_BELOW_S = 0.00005
# A batch runs on the event loop too when the model's batches (timed in the thread that ran
# them) take less than this: handing a batch to a thread and its answers back costs two
# thread wake-ups, which on a busy 2-core machine cost more than such a model's whole batch
# (measured with an ONNX HGB at c=16: the loop lost ~3 ms each time the GIL changed hands).
INLINE_BATCH_BELOW_S = 0.001


_UNKNOWN: Hashable = object()


@dataclass(eq=False, slots=True)
class _Pending:
    inputs: Any
    rows: int
    deadline: float | None
    enqueued: float
    future: asyncio.Future[dict[str, np.ndarray]]
    _key: Hashable | None = _UNKNOWN

    @property
    def key(self) -> Hashable | None:
        """``batch_key`` of the inputs, computed when first needed: a request dispatched alone
        never pays for it (a frame's dtypes take tens of microseconds to read)."""
        if self._key is _UNKNOWN:
            self._key = batch_key(self.inputs)
        return self._key


def _weight(inputs: Any) -> int:
    """Rows a request counts toward batch limits: at least one, so empty requests move too."""
    try:
        return max(1, rows_of(inputs))
    except (TypeError, ValueError, IndexError):
        return 1  # not batchable (batch_key is None): runs alone, predict decides


def _timed_batch(
    clock: Clock, predict: Callable[[Any], Mapping[str, np.ndarray]], inputs: list[Any], name: str
) -> tuple[list[BatchResult], float]:
    """``run_batch`` and the seconds it took, measured in the thread that ran it."""
    started = clock.monotonic()
    results = run_batch(predict, inputs, name, checked=True)
    return results, max(0.0, clock.monotonic() - started)


class AdaptiveBatcher:
    """Batches concurrent ``submit`` calls for one model version into ``predict`` calls.

    ``predict`` is synchronous and returns named arrays with one row per input row of the whole
    batch; it runs in ``executor``, at most ``max_concurrency`` batches at a time (the executor's
    size is the caller's business: with batching disabled, set ``max_concurrency`` to the number
    of calls the model may run in parallel). ``clock`` gives ``monotonic()`` for deadlines.
    """

    def __init__(
        self,
        name: str,
        predict: Callable[[Any], Mapping[str, np.ndarray]],
        policy: BatchPolicy,
        executor: concurrent.futures.Executor,
        clock: Clock | None = None,
        *,
        max_concurrency: int = 1,
        contended: Callable[[], bool] | None = None,
    ) -> None:
        if max_concurrency < 1:
            raise InvalidInputError(f"max_concurrency must be at least 1, not {max_concurrency}")
        self.name = name
        self._predict = predict
        self.policy = policy
        self._executor = executor
        self._clock: Clock = clock or SystemClock()
        self.max_concurrency = max_concurrency
        self._contended = contended
        self._queue: deque[_Pending] = deque()
        self._queued_rows = 0
        self._running: dict[asyncio.Task[None], list[_Pending]] = {}
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._failure: BaseException | None = None
        self._batch_s = 0.0  # moving average of batch durations, for retry-after hints
        self._predict_s = 0.0  # moving average of predict for one request (0: not measured)
        self._run_s = 0.0  # moving average of predict for a dispatched batch (0: not measured)
        self._arrivals = 0  # submits so far, to see whether others arrived while one yielded
        self._counts = dict.fromkeys(
            ("requests", "batched", "batches", "rows", "shed", "dropped", "late"), 0
        )
        self._buckets = [0] * (len(SIZE_BUCKETS) + 1)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the dispatcher task on the running loop."""
        if self._closing:
            raise RuntimeError(f"batcher of {self.name!r} is closed; create a new one")
        if self._task is not None:
            return
        self._wakeup = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(
            self._dispatch_loop(self._wakeup), name=f"modelport-batcher-{self.name}"
        )
        self._task.add_done_callback(self._dispatcher_done)

    async def close(self, drain_timeout: float | None = 30.0) -> None:
        """Stop accepting, let queued work finish for up to ``drain_timeout`` seconds (None: no
        limit), then fail every remaining waiter with ``ShuttingDownError``. Threads still
        running ``predict`` finish in the executor; shutting it down is the owner's business."""
        self._closing = True
        task = self._task
        if task is None:
            return
        self._wake()
        if not task.done():
            await asyncio.wait({task}, timeout=drain_timeout)
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if self._running:
            for batch_task in self._running:
                batch_task.cancel()
            await asyncio.wait(set(self._running))
        self._fail_queued(ShuttingDownError(f"model {self.name!r} is shutting down; retry later"))

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``close()`` while the dispatcher is healthy."""
        return self._task is not None and not self._task.done() and not self._closing

    @property
    def stats(self) -> BatcherStats:
        c = self._counts
        return BatcherStats(
            queue_depth=len(self._queue),
            queued_rows=self._queued_rows,
            inflight_batches=len(self._running),
            requests=c["requests"],
            batched_requests=c["batched"],
            batches=c["batches"],
            rows=c["rows"],
            shed=c["shed"],
            deadline_dropped=c["dropped"],
            deadline_late=c["late"],
            batch_rows=tuple(self._buckets),
        )

    # ---- requests --------------------------------------------------------------------------

    def _run_inline(self, inputs: Any) -> dict[str, np.ndarray]:
        """Predict on the event loop itself (see ``INLINE_BELOW_S``). The measured time keeps
        deciding: a model that turns slow goes back to the executor."""
        self._counts["requests"] += 1
        self._counts["batches"] += 1
        self._counts["batched"] += 1
        results, seconds = _timed_batch(self._clock, self._predict, [inputs], self.name)
        rows = _weight(inputs)
        self._counts["rows"] += rows
        self._buckets[size_bucket(rows)] += 1
        self._predict_s = 0.8 * self._predict_s + 0.2 * seconds
        result = results[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def _busy(self) -> bool:
        return bool(self._queue) or any(self._running.values())

    async def _alone(self, deadline: float | None) -> bool:
        """Whether a request may run inline now: the model is fast, nothing else waits, and
        the request has no deadline (a deadline is enforced only while the loop is free).
        Between ``ALWAYS_INLINE_BELOW_S`` and ``INLINE_BELOW_S`` batching may pay. When the
        ``contended`` signal says other requests are in flight in this worker, the request
        takes the queue: the model then runs off the loop, which keeps reading requests, and
        those that arrive meanwhile form the next batch (running inline while others are in
        flight would block the loop and never let a batch form). Otherwise it yields once
        first: requests whose tasks are scheduled but have not started yet (a burst read in
        one go) are not counted anywhere, and the yield lets them reach ``submit`` and show
        there is contention (then they batch)."""
        if deadline is not None or self._busy() or not 0 < self._predict_s < INLINE_BELOW_S:
            return False
        if self._predict_s < ALWAYS_INLINE_BELOW_S:
            return True
        if self._contended is not None and self._contended():
            return False
        seen = self._arrivals
        await asyncio.sleep(0)
        self._check_accepting()
        return seen == self._arrivals and not self._busy()

    async def submit(self, inputs: Any, deadline: float | None = None) -> dict[str, np.ndarray]:
        """Predict ``inputs`` as part of a batch; ``deadline`` is an absolute
        ``clock.monotonic()`` value. Returns the named outputs of these rows only."""
        self._check_accepting()
        now = self._clock.monotonic()
        if deadline is not None and deadline <= now:
            self._counts["dropped"] += 1
            raise DeadlineExceededError(f"request to {self.name!r} arrived after its deadline")
        if len(self._queue) >= self.policy.max_queue:
            self._counts["shed"] += 1
            raise OverloadedError(
                f"model {self.name!r} has {len(self._queue)} requests queued; retry later",
                retry_after=self._retry_after(),
            )
        self._arrivals += 1
        if await self._alone(deadline):
            return self._run_inline(inputs)
        now = self._clock.monotonic()
        loop = asyncio.get_running_loop()
        item = _Pending(inputs, _weight(inputs), deadline, now, loop.create_future())
        self._queue.append(item)
        self._queued_rows += item.rows
        self._counts["requests"] += 1
        self._wake()
        timer = None if deadline is None else loop.call_later(deadline - now, self._expire, item)
        try:
            return await item.future
        except asyncio.CancelledError:
            self._unqueue(item)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def _check_accepting(self) -> None:
        if self._failure is not None:
            raise UnavailableError(
                f"the batcher of {self.name!r} stopped after an internal error; reload the model"
            ) from self._failure
        if self._closing:
            raise ShuttingDownError(f"model {self.name!r} is shutting down; retry later")
        if self._task is None:
            raise ModelNotReadyError(f"the batcher of {self.name!r} is not started")

    def _expire(self, item: _Pending) -> None:
        if item.future.done():
            return
        computed = not self._unqueue(item)
        self._counts["late" if computed else "dropped"] += 1
        item.future.set_exception(
            DeadlineExceededError(f"request to {self.name!r} passed its deadline while waiting")
        )

    def _unqueue(self, item: _Pending) -> bool:
        try:
            self._queue.remove(item)
        except ValueError:
            return False
        self._queued_rows -= item.rows
        return True

    def _retry_after(self) -> float:
        batches = math.ceil(self._queued_rows / self.policy.max_batch_size) + 1
        return max(0.1, batches * self._batch_s / self.max_concurrency)

    # ---- dispatch --------------------------------------------------------------------------

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()

    async def _dispatch_loop(self, wakeup: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while True:
            wakeup.clear()
            delay = self._pump()
            if self._closing and not self._queue and not self._running:
                return
            handle = None if delay is None else loop.call_later(delay, wakeup.set)
            try:
                await wakeup.wait()
            finally:
                if handle is not None:
                    handle.cancel()

    def _pump(self) -> float | None:
        """Dispatch every batch the policy allows now; seconds until the next timed check."""
        policy = self.policy
        while self._queue and len(self._running) < self.max_concurrency:
            now = self._clock.monotonic()
            waited = now - self._queue[0].enqueued
            if (
                policy.enabled
                and not self._closing
                and not decide_dispatch(self._queued_rows, waited, bool(self._running), policy)
            ):
                return max(0.0, policy.max_wait_s - waited)
            batch = self._take_batch(now)
            if batch:
                self._launch(batch, now)
        return None

    def _take_batch(self, now: float) -> list[_Pending]:
        """Pop the oldest live request and, in order, the compatible requests that still fit
        (first fit: a request too big for this batch stays at the head for the next one).
        Expired requests met on the way are failed and dropped; others keep their order."""
        limit = self.policy.max_batch_size
        batch: list[_Pending] = []
        kept: deque[_Pending] = deque()
        rows = 0
        while self._queue:
            item = self._queue.popleft()
            if item.future.done():
                self._queued_rows -= item.rows
                continue
            if item.deadline is not None and item.deadline <= now:
                self._queued_rows -= item.rows
                self._counts["dropped"] += 1
                item.future.set_exception(
                    DeadlineExceededError(f"request to {self.name!r} expired in the queue")
                )
                continue
            if not batch:
                batch.append(item)
                rows = item.rows
                self._queued_rows -= item.rows
                if rows >= limit or not self.policy.enabled:
                    break
            elif batch[0].key is None:
                kept.append(item)
                break
            elif item.key != batch[0].key or rows + item.rows > limit:
                kept.append(item)
            else:
                batch.append(item)
                rows += item.rows
                self._queued_rows -= item.rows
                if rows >= limit:
                    break
        kept.extend(self._queue)
        self._queue = kept
        return batch

    def _launch(self, batch: list[_Pending], now: float) -> None:
        loop = asyncio.get_running_loop()
        rows = sum(item.rows for item in batch)
        self._counts["batches"] += 1
        self._counts["batched"] += len(batch)
        self._counts["rows"] += rows
        self._buckets[size_bucket(rows)] += 1
        # see INLINE_BATCH_BELOW_S; a deadline is enforced only while the loop is free
        if 0 < self._run_s < INLINE_BATCH_BELOW_S and all(i.deadline is None for i in batch):
            results, seconds = _timed_batch(
                self._clock, self._predict, [i.inputs for i in batch], self.name
            )
            self._settle(batch, results, max(0.0, self._clock.monotonic() - now), seconds)
            return
        try:
            job = functools.partial(
                _timed_batch, self._clock, self._predict, [i.inputs for i in batch], self.name
            )
            work = loop.run_in_executor(self._executor, job)
        except RuntimeError as exc:  # the executor was shut down before this batcher
            error = ShuttingDownError(f"model {self.name!r} is shutting down; retry later")
            error.__cause__ = exc
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
            return
        task = loop.create_task(self._deliver(batch, work, now))
        self._running[task] = batch
        task.add_done_callback(self._batch_done)

    async def _deliver(
        self,
        batch: list[_Pending],
        work: asyncio.Future[tuple[list[BatchResult], float]],
        started: float,
    ) -> None:
        try:
            results, seconds = await work
        except asyncio.CancelledError:
            self._fail(batch, ShuttingDownError(f"model {self.name!r} is shutting down; retry"))
            raise
        except BaseException as exc:  # run_batch catches Exception: SystemExit & co.
            results, seconds = [public_error(exc, self.name)] * len(batch), 0.0
        self._settle(batch, results, max(0.0, self._clock.monotonic() - started), seconds)
        # Delivered: a waiter woken above may submit again before _batch_done runs.
        self._running[asyncio.current_task()] = []  # type: ignore[index]

    def _settle(
        self, batch: list[_Pending], results: list[BatchResult], elapsed: float, seconds: float
    ) -> None:
        """Note how long the batch took (``seconds``: the model's own time) and answer it."""
        self._batch_s = elapsed if not self._batch_s else 0.8 * self._batch_s + 0.2 * elapsed
        if seconds:  # the model's own time, for the inline decisions
            self._run_s = seconds if not self._run_s else 0.8 * self._run_s + 0.2 * seconds
            if len(batch) == 1:
                self._predict_s = (
                    seconds if not self._predict_s else 0.8 * self._predict_s + 0.2 * seconds
                )
        for item, result in zip(batch, results, strict=True):
            if item.future.done():
                continue
            if isinstance(result, BaseException):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        batch = self._running.pop(task, [])
        if not task.cancelled() and task.exception() is not None:
            logger.error("batch of %r failed to deliver", self.name, exc_info=task.exception())
            self._fail(batch, PredictionError(f"model {self.name!r} failed; see the server log"))
        self._wake()

    def _dispatcher_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or task.exception() is None:
            return
        self._failure = task.exception()
        logger.error("the batcher of %r crashed", self.name, exc_info=self._failure)
        self._fail_queued(
            UnavailableError(f"the batcher of {self.name!r} stopped after an internal error")
        )

    def _fail_queued(self, error: ModelportError) -> None:
        self._fail(list(self._queue), error)
        self._queue.clear()
        self._queued_rows = 0

    @staticmethod
    def _fail(items: list[_Pending], error: ModelportError) -> None:
        for item in items:
            if not item.future.done():
                item.future.set_exception(error)
