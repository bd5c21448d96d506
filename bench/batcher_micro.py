"""Micro benchmark of the adaptive batcher (not a test: nothing here is asserted).

A fake model sleeps 2 ms + 10 us per row, like a HistGradientBoosting predict whose cost is
nearly flat up to 64 rows (``time.sleep`` releases the GIL as native code does). Clients are
asyncio tasks sending 1-row requests back to back, at concurrency 1 and 16, for a bounded time
and count each. Modes:

- ``direct``: ``loop.run_in_executor(executor, predict, x)`` per request (no batching);
- ``batched``: ``AdaptiveBatcher`` with one batch in flight (the default);
- ``batched-c2``: ``AdaptiveBatcher`` with two batches in flight.

The executor has 2 threads (the target machine has 2 cores). Run:

    .venv/bin/python bench/batcher_micro.py [--seconds 3] [--input frame|array|both]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.batching import BatchPolicy

BASE_S = 0.002
PER_ROW_S = 10e-6
MAX_REQUESTS = 200_000
COLUMNS = [f"f{i}" for i in range(8)]


def predict(inputs: Any) -> Mapping[str, np.ndarray]:
    rows = len(inputs)
    time.sleep(BASE_S + PER_ROW_S * rows)
    return {"predictions": np.zeros(rows)}


def one_row(kind: str, i: int) -> Any:
    values = np.full((1, len(COLUMNS)), float(i))
    return pd.DataFrame(values, columns=COLUMNS) if kind == "frame" else values


@dataclass
class Result:
    mode: str
    input: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    mean_batch: float | None = None

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def row(self) -> str:
        lat = sorted(self.latencies_ms) or [float("nan")]
        q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
        batch = f"{self.mean_batch:6.1f}" if self.mean_batch is not None else "     -"
        return (
            f"{self.mode:<11} {self.input:<6} {self.concurrency:>4} {self.rate:9.0f}"
            f" {q[49]:8.2f} {q[94]:8.2f} {q[98]:8.2f} {self.errors:>6} {batch}"
        )


async def drive(
    call: Callable[[Any], Awaitable[Any]], kind: str, concurrency: int, seconds: float
) -> tuple[int, int, float, list[float]]:
    inputs = [one_row(kind, i) for i in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds

    async def client(x: Any) -> None:
        nonlocal errors
        while time.perf_counter() < stop and len(latencies) + errors < MAX_REQUESTS:
            start = time.perf_counter()
            try:
                await call(x)
            except Exception:
                errors += 1
                continue
            latencies.append((time.perf_counter() - start) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(client(x) for x in inputs))
    return len(latencies), errors, time.perf_counter() - began, latencies


async def run_mode(
    mode: str, kind: str, concurrency: int, seconds: float, executor: ThreadPoolExecutor
) -> Result:
    loop = asyncio.get_running_loop()
    if mode == "direct":

        async def direct(x: Any) -> Any:
            return await loop.run_in_executor(executor, predict, x)

        done, errors, took, lat = await drive(direct, kind, concurrency, seconds)
        return Result(mode, kind, concurrency, done, errors, took, lat)
    slots = 2 if mode == "batched-c2" else 1
    batcher = AdaptiveBatcher(mode, predict, BatchPolicy(), executor, max_concurrency=slots)
    await batcher.start()
    try:
        done, errors, took, lat = await drive(batcher.submit, kind, concurrency, seconds)
    finally:
        await batcher.close(drain_timeout=5)
    stats = batcher.stats
    return Result(
        mode, kind, concurrency, done, errors, took, lat, mean_batch=stats.mean_batch_requests
    )


async def main(seconds: float, kinds: list[str]) -> None:
    print(f"fake predict: {BASE_S * 1000:.1f} ms + {PER_ROW_S * 1e6:.0f} us/row; 2 threads")
    print("mode        input  conc     req/s   p50 ms   p95 ms   p99 ms errors  batch\n" + "-" * 76)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="bench") as executor:
        for kind in kinds:
            baseline: dict[int, float] = {}
            for concurrency in (1, 16):
                for mode in ("direct", "batched", "batched-c2"):
                    result = await run_mode(mode, kind, concurrency, seconds, executor)
                    line = result.row()
                    if mode == "direct":
                        baseline[concurrency] = result.rate
                    else:
                        line += f"  x{result.rate / baseline[concurrency]:.1f}"
                    print(line, flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per mode and concurrency")
    parser.add_argument("--input", choices=["frame", "array", "both"], default="both")
    args = parser.parse_args()
    chosen = ["frame", "array"] if args.input == "both" else [args.input]
    asyncio.run(main(min(max(args.seconds, 0.1), 60.0), chosen))
