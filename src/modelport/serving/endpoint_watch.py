"""Keeping a server's endpoints in step with the registry: route tables and versions to load.

``EndpointWatch`` reads the endpoint plans (``read``: blocking, run in the executor; the
registry's deployment specs, rollouts and published route tables, see ``api.serve``) when the
server starts and then every ``interval_s``. Each read replaces the routed endpoints in one step
(``Endpoints.apply``: a table is swapped in only when its generation is newer), tells the model
manager which versions to keep loaded, and loads what is new. A read that fails (the registry is
down) changes nothing: the server keeps routing by what it last read and retries at the next
interval. Route changes therefore reach every replica within ``interval_s`` plus a read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

from modelport.serving.endpoints import EndpointPlan, Endpoints
from modelport.serving.manager import ModelManager

__all__ = ["EndpointWatch", "ReadPlans"]

log = logging.getLogger("modelport.serving")
ReadPlans = Callable[[], Sequence[EndpointPlan]]


class EndpointWatch:
    """Polls ``read`` and applies it to ``endpoints`` and ``manager`` (see module doc)."""

    def __init__(
        self,
        read: ReadPlans,
        endpoints: Endpoints,
        manager: ModelManager,
        executor: Executor,
        interval_s: float,
    ) -> None:
        self._read = read
        self._endpoints = endpoints
        self._manager = manager
        self._executor = executor
        self._interval_s = interval_s
        self._failing = False

    async def sync(self, *, load: bool = True) -> bool:
        """Read once and apply; return whether anything changed. ``load``: also load the
        versions that became needed (the manager's start does it itself)."""
        loop = asyncio.get_running_loop()
        try:
            plans = await loop.run_in_executor(self._executor, self._read)
        except Exception as exc:  # the registry is down: keep routing by the last read
            if not self._failing:
                log.warning("reading the endpoints' routes failed (%s); will retry", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("reading the endpoints' routes works again")
            self._failing = False
        changed = self._endpoints.apply(plans)
        self._manager.follow(self._endpoints.keys(), self._endpoints.taking_traffic())
        if changed and load:
            await self._manager.refresh()
        return changed

    async def run(self) -> None:
        """``sync`` every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.sync()
            except Exception:  # a bad plan must not stop the watch
                log.exception("applying the endpoints' routes failed; will retry")
