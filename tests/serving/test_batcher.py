"""The adaptive batcher with a real thread pool and a tiny recording model.

The model blocks on a ``threading.Event`` (the gate) when a test needs requests to pile up, and
reports every batch it starts to the event loop; tests sequence on those reports, never on
sleeps. Every test body runs under ``asyncio.wait_for`` so a bug fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pytest

from modelport.core.clock import FakeClock, SystemClock
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
from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.batching import BatchPolicy

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, timeout=10))


def req(ident: int, rows: int = 1) -> np.ndarray:
    """``rows`` rows whose first column is ``ident`` and second the row number."""
    return np.column_stack([np.full(rows, float(ident)), np.arange(rows, dtype=np.float64)])


def check(result: dict[str, np.ndarray], ident: int, rows: int = 1) -> None:
    assert result["id"].tolist() == [float(ident)] * rows
    assert result["row"].tolist() == list(range(rows))


class Model:
    """Records the ids in each batch; blocks on ``gate``; raises for id ``poison``."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.poison: float | None = None
        self.batches: list[list[float]] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started: asyncio.Queue[list[float]] | None = None

    def listen(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._started = asyncio.Queue()

    async def started(self) -> list[float]:
        assert self._started is not None
        return await asyncio.wait_for(self._started.get(), timeout=5)

    def predict(self, x: Any) -> dict[str, np.ndarray]:
        matrix = x.to_numpy(dtype=np.float64) if isinstance(x, pd.DataFrame) else np.asarray(x)
        ids = matrix[:, 0].tolist()
        with self._lock:
            self.batches.append(ids)
        if self._loop is not None and self._started is not None:
            self._loop.call_soon_threadsafe(self._started.put_nowait, ids)
        if not self.gate.wait(timeout=10):
            raise RuntimeError("the test never opened the gate")
        if self.poison is not None and self.poison in ids:
            raise ValueError(f"poisoned row {self.poison}")
        return {"id": matrix[:, 0], "row": matrix[:, 1]}

    def sizes(self) -> list[int]:
        return [len(b) for b in self.batches]


@pytest.fixture
def model() -> Model:
    return Model()


@pytest.fixture
def executor(model: Model) -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="test-batcher")
    try:
        yield pool
    finally:
        model.gate.set()  # a failed test must not leave a thread blocked
        pool.shutdown(wait=True)


Factory = Callable[..., AdaptiveBatcher]


@pytest.fixture
def make(model: Model, executor: ThreadPoolExecutor) -> Factory:
    def factory(clock: Any = None, max_concurrency: int = 1, **policy: Any) -> AdaptiveBatcher:
        return AdaptiveBatcher(
            "m",
            model.predict,
            BatchPolicy(**policy),
            executor,
            clock,
            max_concurrency=max_concurrency,
        )

    return factory


async def until(condition: Callable[[], bool]) -> None:
    """Yield to the loop until ``condition`` holds (bounded; no timed sleeps)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def block_with_first(batcher: AdaptiveBatcher, model: Model) -> asyncio.Task[Any]:
    """Submit request 0 and return once predict runs it and blocks on the gate."""
    model.gate.clear()
    first = asyncio.create_task(batcher.submit(req(0)))
    assert await model.started() == [0.0]
    return first


async def gather_outcomes(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_a_lone_request_is_dispatched_at_once(make: Factory, model: Model) -> None:
    async def main() -> None:
        batcher = make(max_wait_ms=10_000)
        await batcher.start()
        for ident in range(3):
            check(await asyncio.wait_for(batcher.submit(req(ident)), timeout=2), ident)
        await batcher.close()

    run(main())
    assert model.batches == [[0.0], [1.0], [2.0]]


def test_concurrent_requests_coalesce_and_each_gets_its_own_rows(
    make: Factory, model: Model
) -> None:
    rows = {i: 1 + i % 3 for i in range(1, 32)}

    async def main() -> None:
        model.listen()
        batcher = make(max_batch_size=8, max_wait_ms=10_000)
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(req(i, n))) for i, n in rows.items()]
        await until(lambda: batcher.stats.queue_depth == 31)
        model.gate.set()
        check(await first, 0)
        for (ident, n), result in zip(rows.items(), await asyncio.gather(*tasks), strict=True):
            check(result, ident, n)
        stats = batcher.stats
        await batcher.close()
        assert stats.requests == 32
        assert stats.batched_requests == 32
        assert stats.rows == 1 + sum(rows.values())
        assert sum(stats.batch_rows) == stats.batches == len(model.batches)

    run(main())
    assert model.batches[0] == [0.0]
    assert all(len(b) <= 8 for b in model.batches)
    assert len(model.batches) == 1 + 8  # 63 rows in batches of 8 (first fit)
    seen = sorted(i for batch in model.batches[1:] for i in dict.fromkeys(batch))
    assert seen == [float(i) for i in rows]  # everyone once


def test_an_oversized_request_runs_alone(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make(max_batch_size=4)
        await batcher.start()
        first = await block_with_first(batcher, model)
        sizes = {1: 2, 2: 10, 3: 2, 4: 1}
        tasks = [asyncio.create_task(batcher.submit(req(i, n))) for i, n in sizes.items()]
        await until(lambda: batcher.stats.queue_depth == 4)
        model.gate.set()
        await first
        for (ident, n), result in zip(sizes.items(), await asyncio.gather(*tasks), strict=True):
            check(result, ident, n)
        await batcher.close()

    run(main())
    assert model.batches == [[0.0], [1.0, 1.0, 3.0, 3.0], [2.0] * 10, [4.0]]


def test_incompatible_inputs_are_never_joined(make: Factory, model: Model) -> None:
    def frame(ident: int, second: str) -> pd.DataFrame:
        return pd.DataFrame({"id": [float(ident)], second: [0.0]})

    inputs: dict[int, Any] = {
        1: frame(1, "row"),
        2: frame(2, "other"),
        3: frame(3, "row"),
        4: req(4).astype(np.float32),
        5: req(5),
        6: frame(6, "other"),
        7: req(7).astype(np.float32),
    }

    async def main() -> None:
        model.listen()
        batcher = make()
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(x)) for x in inputs.values()]
        await until(lambda: batcher.stats.queue_depth == len(inputs))
        model.gate.set()
        await first
        for ident, result in zip(inputs, await asyncio.gather(*tasks), strict=True):
            assert result["id"].tolist() == [float(ident)]
        await batcher.close()

    run(main())
    assert model.batches[1:] == [[1.0, 3.0], [2.0, 6.0], [4.0, 7.0], [5.0]]


def test_a_full_queue_sheds_at_once(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make(max_queue=3)
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(req(i))) for i in range(1, 4)]
        await until(lambda: batcher.stats.queue_depth == 3)
        with pytest.raises(OverloadedError, match="3 requests queued") as shed:
            await batcher.submit(req(99))
        assert shed.value.retry_after > 0
        assert batcher.stats.shed == 1
        model.gate.set()
        await first
        for ident, result in enumerate(await asyncio.gather(*tasks), start=1):
            check(result, ident)
        await batcher.close()

    run(main())
    assert 99.0 not in [i for b in model.batches for i in b]


def test_requests_expired_in_the_queue_are_dropped_not_computed(
    make: Factory, model: Model
) -> None:
    clock = FakeClock()

    async def main() -> None:
        model.listen()
        batcher = make(clock=clock)
        await batcher.start()
        first = await block_with_first(batcher, model)
        late = asyncio.create_task(batcher.submit(req(1), deadline=clock.monotonic() + 5))
        patient = asyncio.create_task(batcher.submit(req(2), deadline=clock.monotonic() + 60))
        forever = asyncio.create_task(batcher.submit(req(3)))
        await until(lambda: batcher.stats.queue_depth == 3)
        clock.advance(10)
        model.gate.set()
        await first
        with pytest.raises(DeadlineExceededError):
            await late
        check(await patient, 2)
        check(await forever, 3)
        with pytest.raises(DeadlineExceededError, match="after its deadline"):
            await batcher.submit(req(4), deadline=clock.monotonic())
        assert batcher.stats.deadline_dropped == 2
        await batcher.close()

    run(main())
    assert model.batches == [[0.0], [2.0, 3.0]]


def test_a_waiter_gets_deadline_exceeded_while_its_batch_runs(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make(clock=SystemClock())
        await batcher.start()
        model.gate.clear()
        waiting = asyncio.create_task(
            batcher.submit(req(1), deadline=SystemClock().monotonic() + 0.1)
        )
        assert await model.started() == [1.0]
        with pytest.raises(DeadlineExceededError, match="while waiting"):
            await waiting  # the timer fires while predict is still blocked
        queued = asyncio.create_task(
            batcher.submit(req(2), deadline=SystemClock().monotonic() + 0.1)
        )
        with pytest.raises(DeadlineExceededError):
            await queued
        model.gate.set()
        check(await batcher.submit(req(3)), 3)
        stats = batcher.stats
        assert (stats.deadline_late, stats.deadline_dropped, stats.queue_depth) == (1, 1, 0)
        await batcher.close()

    run(main())
    assert model.batches == [[1.0], [3.0]]


def test_one_poisoned_request_fails_alone(make: Factory, model: Model) -> None:
    model.poison = 5.0

    async def main() -> None:
        model.listen()
        batcher = make()
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(req(i))) for i in range(1, 9)]
        await until(lambda: batcher.stats.queue_depth == 8)
        model.gate.set()
        await first
        outcomes = await gather_outcomes(tasks)
        await batcher.close()
        for ident, outcome in enumerate(outcomes, start=1):
            if ident == 5:
                assert isinstance(outcome, PredictionError)
                assert "poisoned" not in str(outcome)
            else:
                check(outcome, ident)

    run(main())
    assert model.batches[1] == [float(i) for i in range(1, 9)]
    assert model.batches[2:] == [[float(i)] for i in range(1, 9)]  # each retried alone


def test_a_modelport_error_reaches_the_requests_of_its_batch_only(
    make: Factory, model: Model, executor: ThreadPoolExecutor
) -> None:
    def predict(x: np.ndarray) -> dict[str, np.ndarray]:
        if x[0, 0] == 1.0:
            raise UnavailableError("the model's device is gone")
        return model.predict(x)

    async def main() -> None:
        model.listen()
        batcher = AdaptiveBatcher("m", predict, BatchPolicy(), executor)
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(req(i))) for i in (1, 2)]
        tasks.append(asyncio.create_task(batcher.submit(req(3).astype(np.float32))))
        await until(lambda: batcher.stats.queue_depth == 3)
        model.gate.set()
        await first
        one, two, three = await gather_outcomes(tasks)
        assert isinstance(one, UnavailableError)
        assert two is one
        check(three, 3)
        await batcher.close()

    run(main())


def test_close_fails_every_waiter_and_never_hangs(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make()
        await batcher.start()
        first = await block_with_first(batcher, model)
        queued = [asyncio.create_task(batcher.submit(req(i))) for i in (1, 2)]
        await until(lambda: batcher.stats.queue_depth == 2)
        await asyncio.wait_for(batcher.close(drain_timeout=0), timeout=2)
        for outcome in await gather_outcomes([first, *queued]):
            assert isinstance(outcome, ShuttingDownError)
        with pytest.raises(ShuttingDownError):
            await batcher.submit(req(3))
        assert not batcher.running

    run(main())
    assert model.batches == [[0.0]]


def test_close_lets_queued_work_finish(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make()
        await batcher.start()
        first = await block_with_first(batcher, model)
        queued = asyncio.create_task(batcher.submit(req(1)))
        await until(lambda: batcher.stats.queue_depth == 1)
        closing = asyncio.create_task(batcher.close(drain_timeout=None))
        await until(lambda: not batcher.running)
        with pytest.raises(ShuttingDownError):
            await batcher.submit(req(2))
        model.gate.set()
        await closing
        check(await first, 0)
        check(await queued, 1)

    run(main())


class BreakableClock(SystemClock):
    def __init__(self) -> None:
        self.broken = False

    def monotonic(self) -> float:
        if self.broken:
            raise RuntimeError("bug in the dispatcher")
        return super().monotonic()


def test_a_crashed_dispatcher_fails_its_waiters_and_later_submits(
    make: Factory, model: Model
) -> None:
    clock = BreakableClock()

    async def main() -> None:
        model.listen()
        batcher = make(clock=clock)
        await batcher.start()
        first = await block_with_first(batcher, model)
        queued = [asyncio.create_task(batcher.submit(req(i))) for i in (1, 2)]
        await until(lambda: batcher.stats.queue_depth == 2)
        clock.broken = True
        model.gate.set()
        outcomes = await gather_outcomes([first, *queued])
        assert all(isinstance(o, ModelportError) for o in outcomes)
        assert all(isinstance(o, UnavailableError) for o in outcomes[1:])
        clock.broken = False
        with pytest.raises(UnavailableError, match="internal error") as later:
            await batcher.submit(req(3))
        assert isinstance(later.value.__cause__, RuntimeError)
        assert not batcher.running
        await asyncio.wait_for(batcher.close(), timeout=2)

    run(main())


def test_a_cancelled_request_is_not_computed(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make()
        await batcher.start()
        first = await block_with_first(batcher, model)
        gone = asyncio.create_task(batcher.submit(req(1)))
        kept = asyncio.create_task(batcher.submit(req(2)))
        await until(lambda: batcher.stats.queue_depth == 2)
        gone.cancel()
        await until(lambda: batcher.stats.queue_depth == 1)
        model.gate.set()
        await first
        check(await kept, 2)
        assert gone.cancelled()
        await batcher.close()

    run(main())
    assert model.batches == [[0.0], [2.0]]


def test_a_second_slot_holds_requests_until_the_batch_fills(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make(max_concurrency=2, max_batch_size=3, max_wait_ms=10_000)
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(req(1)))]
        await until(lambda: batcher.stats.queue_depth == 1)
        for _ in range(20):
            await asyncio.sleep(0)  # give a wrong dispatch every chance to happen
        assert batcher.stats.inflight_batches == 1
        tasks += [asyncio.create_task(batcher.submit(req(i))) for i in (2, 3)]
        assert await model.started() == [1.0, 2.0, 3.0]  # full: dispatched on the free slot
        model.gate.set()
        await first
        for ident, result in enumerate(await asyncio.gather(*tasks), start=1):
            check(result, ident)
        await batcher.close()

    run(main())


def test_a_second_slot_dispatches_after_max_wait(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make(max_concurrency=2, max_batch_size=64, max_wait_ms=1)
        await batcher.start()
        first = await block_with_first(batcher, model)
        held = asyncio.create_task(batcher.submit(req(1)))
        assert await model.started() == [1.0]  # while the first batch still runs
        model.gate.set()
        await first
        check(await held, 1)
        await batcher.close()

    run(main())


def test_disabled_batching_predicts_each_request_alone(make: Factory, model: Model) -> None:
    async def main() -> None:
        model.listen()
        batcher = make(enabled=False, max_queue=4)
        await batcher.start()
        first = await block_with_first(batcher, model)
        tasks = [asyncio.create_task(batcher.submit(req(i))) for i in range(1, 5)]
        await until(lambda: batcher.stats.queue_depth == 4)
        with pytest.raises(OverloadedError):
            await batcher.submit(req(9))
        model.gate.set()
        await first
        for ident, result in enumerate(await asyncio.gather(*tasks), start=1):
            check(result, ident)
        await batcher.close()

    run(main())
    assert model.sizes() == [1] * 5


def test_lifecycle_errors(make: Factory, executor: ThreadPoolExecutor) -> None:
    async def main() -> None:
        batcher = make()
        with pytest.raises(ModelNotReadyError, match="not started"):
            await batcher.submit(req(1))
        await batcher.start()
        await batcher.start()  # idempotent
        await batcher.close()
        await batcher.close()  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            await batcher.start()
        never_started = make()
        await never_started.close()

    run(main())
    with pytest.raises(InvalidInputError, match="max_concurrency"):
        make(max_concurrency=0)


def test_a_shut_down_executor_fails_requests_fast(
    make: Factory, executor: ThreadPoolExecutor
) -> None:
    async def main() -> None:
        batcher = make()
        await batcher.start()
        executor.shutdown()
        with pytest.raises(ShuttingDownError):
            await batcher.submit(req(1))
        await batcher.close()

    run(main())


def test_frames_round_trip_through_the_batcher(
    executor: ThreadPoolExecutor,
) -> None:
    def predict(frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {"y": (frame["a"] * 2).to_numpy(), "name": frame["b"].to_numpy()}

    frames = [pd.DataFrame({"a": [i, i + 1], "b": [f"r{i}", f"s{i}"]}) for i in range(20)]

    async def main() -> list[dict[str, np.ndarray]]:
        batcher = AdaptiveBatcher("m", predict, BatchPolicy(max_batch_size=8), executor)
        await batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit(f) for f in frames))
        finally:
            await batcher.close()

    for frame, result in zip(frames, run(main()), strict=True):
        assert result["y"].tolist() == (frame["a"] * 2).tolist()
        assert result["name"].tolist() == frame["b"].tolist()


class TimedModel:
    """Takes ``cost`` seconds of a fake clock per call and records the thread it ran on."""

    def __init__(self, clock: FakeClock, cost: float) -> None:
        self.clock = clock
        self.cost = cost
        self.threads: list[str] = []

    def predict(self, x: Any) -> dict[str, np.ndarray]:
        self.threads.append(threading.current_thread().name)
        self.clock.advance(self.cost)
        matrix = np.asarray(x)
        return {"id": matrix[:, 0], "row": matrix[:, 1]}


def timed_batcher(
    model: TimedModel, executor: ThreadPoolExecutor, **policy: Any
) -> AdaptiveBatcher:
    return AdaptiveBatcher("m", model.predict, BatchPolicy(**policy), executor, model.clock)


@pytest.mark.parametrize("cost", [0.00002, 0.001])
def test_a_lone_request_to_a_fast_model_runs_on_the_loop(
    executor: ThreadPoolExecutor, cost: float
) -> None:
    model = TimedModel(FakeClock(), cost)

    async def main() -> None:
        batcher = timed_batcher(model, executor)
        await batcher.start()
        check(await batcher.submit(req(0)), 0)  # measured in the pool first
        for i in range(1, 4):
            check(await batcher.submit(req(i)), i)
        await batcher.close()

    run(main())
    assert model.threads[0].startswith("test-batcher")
    assert model.threads[1:] == [threading.main_thread().name] * 3


def test_slow_models_and_requests_with_deadlines_never_run_on_the_loop(
    executor: ThreadPoolExecutor,
) -> None:
    slow = TimedModel(FakeClock(), 0.01)  # would stall the loop (and its probes) too long
    fast = TimedModel(FakeClock(), 0.00002)

    async def main() -> None:
        for model in (slow, fast):
            batcher = timed_batcher(model, executor)
            await batcher.start()
            check(await batcher.submit(req(0)), 0)
            deadline = None if model is slow else model.clock.monotonic() + 60
            for i in range(1, 4):
                check(await batcher.submit(req(i), deadline=deadline), i)
            await batcher.close()

    run(main())
    for model in (slow, fast):
        assert all(name.startswith("test-batcher") for name in model.threads), model.threads


def test_requests_arriving_together_are_batched_not_run_inline(
    executor: ThreadPoolExecutor,
) -> None:
    # fast enough to run alone on the loop, too slow for its batches to run there
    model = TimedModel(FakeClock(), 0.002)

    async def main() -> None:
        batcher = timed_batcher(model, executor, max_wait_ms=50)
        await batcher.start()
        check(await batcher.submit(req(0)), 0)
        results = await asyncio.gather(*(batcher.submit(req(i)) for i in range(1, 9)))
        for i, result in enumerate(results, start=1):
            check(result, i)
        await batcher.close()

    run(main())
    assert threading.main_thread().name not in model.threads
    assert len(model.threads) < 9  # the eight concurrent requests shared batches


@pytest.mark.parametrize("contended", [False, True, None])
def test_a_request_queues_when_others_are_in_flight_and_else_yields_once_first(
    executor: ThreadPoolExecutor, contended: bool | None
) -> None:
    """A model in the band where batching may pay (1 ms): when ``contended`` says others are
    in flight, a request takes the queue (the loop runs the others meanwhile); else it yields
    once, for tasks scheduled but not started yet, and then runs inline."""
    model = TimedModel(FakeClock(), 0.001)
    order: list[str] = []
    asked: list[bool] = []

    def in_flight() -> bool:
        asked.append(True)
        return bool(contended)

    async def main() -> None:
        batcher = AdaptiveBatcher(
            "m",
            model.predict,
            BatchPolicy(),
            executor,
            model.clock,
            contended=None if contended is None else in_flight,
        )
        await batcher.start()
        check(await batcher.submit(req(0)), 0)  # measured in the pool first

        async def other() -> None:
            order.append("other")

        task = asyncio.create_task(other())  # ready to run at the next yield
        check(await batcher.submit(req(1)), 1)
        order.append("answered")
        await task
        await batcher.close()

    run(main())
    assert order == ["other", "answered"]
    if contended is not True:  # run inline, at once or after one yield
        assert model.threads[1] == threading.main_thread().name
    assert bool(asked) == (contended is not None)


@pytest.mark.parametrize(("cost", "on_loop"), [(0.0002, True), (0.002, False)])
def test_batches_of_a_fast_model_run_on_the_loop(
    executor: ThreadPoolExecutor, cost: float, on_loop: bool
) -> None:
    """Once measured in the pool, batches of a model faster than INLINE_BATCH_BELOW_S run on
    the loop (no thread hand-off); slower models' batches stay in the pool."""
    model = TimedModel(FakeClock(), cost)

    async def main() -> None:
        batcher = timed_batcher(model, executor, max_wait_ms=50)
        await batcher.start()
        for _ in range(2):  # the first round is measured in the pool
            results = await asyncio.gather(*(batcher.submit(req(i)) for i in range(8)))
            for i, result in enumerate(results):
                check(result, i)
        stats = batcher.stats
        await batcher.close()
        assert stats.batched_requests == 16
        assert stats.batches < 16  # batched, wherever they ran

    run(main())
    assert model.threads[0].startswith("test-batcher")
    later = model.threads[1:]
    main = threading.main_thread().name
    assert later
    assert all((name == main) == on_loop for name in later), model.threads
