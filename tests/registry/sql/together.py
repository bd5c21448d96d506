"""Running store calls from several threads released at the same moment (races on purpose)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

TIMEOUT_S = 60


def at_once(work: Callable[[int], Any], n: int) -> list[Any]:
    """``work(i)`` in ``n`` threads released together; each result or the exception raised."""
    barrier = threading.Barrier(n, timeout=TIMEOUT_S)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        return [f.result(timeout=TIMEOUT_S) for f in [pool.submit(run, i) for i in range(n)]]
