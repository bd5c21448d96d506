"""Which model versions are loaded, which one answers, and swapping them without dropping requests.

A version takes traffic only once it is loaded, digest-verified (by the injected loader), warmed and
has answered its smoke request. When a served alias moves, the new version is prepared the same way
while the old one keeps answering; the default is switched in one step; the old version is unloaded
once its in-flight requests have finished. A version that fails to load is isolated with its reason.

Besides the served refs, the manager loads the versions the routed endpoints need
(``follow``: what their route tables send traffic or mirror to, and the candidate of a rollout
under way, loaded before any traffic reaches it) and keeps them while they are needed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import (
    ModelNotFoundError,
    ModelNotReadyError,
    ModelportError,
    StoreError,
    VersionNotFoundError,
)
from modelport.core.examples import decode, head
from modelport.core.model import ModelVersion
from modelport.core.refs import ModelRef
from modelport.runtime.base import Runtime
from modelport.serving.adapt import outputs_to_arrays, rows_of
from modelport.serving.batcher import AdaptiveBatcher
from modelport.serving.batching import BatchPolicy
from modelport.serving.config import ServeConfig
from modelport.serving.types import VersionState, VersionStatus

__all__ = ["ModelEvents", "ModelManager", "NoEvents", "Served"]

log = logging.getLogger("modelport.serving")
WARM_CALLS = 3


class ModelEvents(Protocol):
    """What the manager reports as it works (metrics listen here; nothing is required).
    ``batch`` is called from executor threads, once per call of the model's predict that
    returned (a batch of one or more requests)."""

    def loaded(self, name: str, number: int, seconds: float) -> None: ...

    def load_failed(self, name: str, number: int, reason: str) -> None: ...

    def batch(self, name: str, number: int, rows: int) -> None: ...


class NoEvents:
    """The default ``ModelEvents``: ignores everything."""

    def loaded(self, name: str, number: int, seconds: float) -> None:
        pass

    def load_failed(self, name: str, number: int, reason: str) -> None:
        pass

    def batch(self, name: str, number: int, rows: int) -> None:
        pass


@dataclass(eq=False)
class Served:
    """One model version in the server, whatever its state."""

    name: str
    number: int
    state: VersionState = "loading"
    reason: str = ""
    version: ModelVersion | None = None
    runtime: Runtime | None = None
    batcher: AdaptiveBatcher | None = None
    platform: str = ""
    variant: str = ""
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)

    def status(self, default: bool) -> VersionStatus:
        aliases = self.version.aliases if self.version is not None else ()
        return VersionStatus(
            self.name, self.number, self.state, self.reason, default, self.platform, aliases
        )


def smoke_input(version: ModelVersion) -> Any | None:
    """The stored input example, else rows of the reference sample, else None."""
    if version.input_example is not None:
        return decode(version.input_example)
    if version.profile is not None and version.profile.sample:
        return head(decode(version.profile.sample), 5)
    return None


class ModelManager:
    """Owns the loaded versions of one worker process (start/close from the app lifespan).

    ``contended``: whether other requests are in flight in this worker (the batchers run a
    request of a batchable model inline only when not, and queue it otherwise; None: no such
    signal, the batchers fall back to yielding once)."""

    def __init__(
        self,
        config: ServeConfig,
        resolve: Callable[[ModelRef], ModelVersion],
        load: Callable[[ModelVersion], Runtime],
        executor: Executor,
        clock: Clock | None = None,
        *,
        events: ModelEvents | None = None,
        contended: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self._contended = contended
        self._events: ModelEvents = events or NoEvents()
        self._resolve = resolve
        self._load = load
        self._executor = executor
        self._clock = clock or SystemClock()
        self._versions: dict[tuple[str, int], Served] = {}
        self._bindings: dict[ModelRef, int | None] = {r: None for r in config.parsed_refs()}
        self._defaults: dict[str, int] = {}
        self._pinned: frozenset[tuple[str, int]] = frozenset()
        self._routed: dict[str, tuple[tuple[str, int], ...]] = {}
        self._refreshing = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._poller: asyncio.Task[None] | None = None
        self._closed = False
        self.started = asyncio.Event()

    # lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Resolve and load every served ref (in parallel), then poll for alias moves."""
        await self.refresh()
        self.started.set()
        self._poller = asyncio.create_task(self._poll(), name="modelport-alias-poller")

    async def close(self) -> None:
        self._closed = True
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for served in list(self._versions.values()):
            await self._unload(served)
        self._versions.clear()

    async def _poll(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.config.poll_interval_s)
            try:
                await self.refresh()
            except Exception:  # a registry hiccup must not kill the poller
                log.exception("re-resolving served refs failed; will retry")

    # resolution and swapping -------------------------------------------------------------------
    def follow(
        self, pinned: set[tuple[str, int]], routed: Mapping[str, tuple[tuple[str, int], ...]]
    ) -> None:
        """Keep ``pinned`` versions loaded besides the refs' (from the next ``refresh``);
        ``routed``: per endpoint, the versions taking its traffic (readiness needs one of
        each endpoint's ready)."""
        self._pinned = frozenset(pinned)
        self._routed = dict(routed)

    async def refresh(self) -> None:
        """Re-resolve every ref; load what is new; switch defaults to ready versions; retire."""
        async with self._refreshing:
            await self._refresh()

    async def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        wanted: dict[ModelRef, ModelVersion] = {}
        keep: set[tuple[str, int]] = set()
        for ref in self._bindings:
            try:
                wanted[ref] = await loop.run_in_executor(self._executor, self._resolve, ref)
            except ModelportError as exc:
                if self._bindings[ref] is None:  # never resolved: report why
                    key = (ref.name, ref.version or 0)
                    served = self._versions.setdefault(key, Served(ref.name, ref.version or 0))
                    self._fail(served, f"cannot resolve {ref}: {exc}")
                    keep.add(key)
                else:  # keep serving what it resolved to before
                    keep.add((ref.name, self._bindings[ref] or 0))
        pinned = await self._resolve_pinned(loop)
        keep |= self._pinned
        loads = []
        versions = {(v.name, v.number): v for v in (*wanted.values(), *pinned)}
        for version in versions.values():
            key = (version.name, version.number)
            keep.add(key)
            if key not in self._versions:
                served = Served(version.name, version.number, version=version)
                self._versions[key] = served
                loads.append(self._prepare(served))
        await asyncio.gather(*loads)
        for ref, version in wanted.items():
            if self._versions[(version.name, version.number)].state == "ready":
                self._bindings[ref] = version.number
        keep |= {(r.name, n) for r, n in self._bindings.items() if n is not None}
        self._choose_defaults()
        self._retire(keep)

    async def _resolve_pinned(self, loop: asyncio.AbstractEventLoop) -> list[ModelVersion]:
        """The pinned versions not loaded yet. One the registry says it cannot resolve is
        isolated (a version number never comes to exist later); when the registry cannot be
        reached, the next refresh tries again."""
        found = []
        for name, number in sorted(self._pinned - self._versions.keys()):
            ref = ModelRef(name, version=number)
            try:
                found.append(await loop.run_in_executor(self._executor, self._resolve, ref))
            except StoreError as exc:
                log.warning("cannot resolve %s now (%s); will retry", ref, exc)
            except ModelportError as exc:
                served = Served(name, number)
                self._versions[(name, number)] = served
                self._fail(served, f"cannot resolve {ref}: {exc}")
        return found

    def _choose_defaults(self) -> None:
        """Per model: the version of its alias/latest ref, else its highest explicit version."""
        defaults: dict[str, int] = {}
        for ref, number in self._bindings.items():
            if number is not None and ref.version is not None:
                defaults[ref.name] = max(number, defaults.get(ref.name, 0))
        for ref, number in self._bindings.items():
            if number is not None and ref.version is None:
                defaults[ref.name] = number
        self._defaults = defaults

    def _retire(self, keep: set[tuple[str, int]]) -> None:
        """Unload ready versions nothing points at any more (after their requests finish)."""
        for key, served in list(self._versions.items()):
            if key in keep or served.state in ("loading", "unloading"):
                continue
            if served.state == "failed":
                del self._versions[key]
                continue
            served.state = "unloading"
            task = asyncio.create_task(self._drain_and_unload(served), name=f"retire-{key}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain_and_unload(self, served: Served) -> None:
        try:
            await asyncio.wait_for(served.idle.wait(), timeout=self.config.grace_period_s)
        except TimeoutError:
            log.warning(
                "%s:%s still busy after the grace period; unloading", served.name, served.number
            )
        await self._unload(served)
        self._versions.pop((served.name, served.number), None)

    async def _unload(self, served: Served) -> None:
        if served.batcher is not None:
            await served.batcher.close()
            served.batcher = None
        if served.runtime is not None:
            runtime, served.runtime = served.runtime, None
            await asyncio.get_running_loop().run_in_executor(self._executor, runtime.unload)

    # loading -------------------------------------------------------------------------------------
    async def _prepare(self, served: Served) -> None:
        assert served.version is not None
        started = self._clock.monotonic()
        try:
            runtime = await asyncio.get_running_loop().run_in_executor(
                self._executor, self._load_and_smoke, served.version
            )
        except ModelportError as exc:
            self._fail(served, str(exc))
            self._events.load_failed(served.name, served.number, served.reason)
            return
        except Exception as exc:
            log.exception("loading %s failed", served.version.ref)
            self._fail(served, f"load failed: {type(exc).__name__}")
            self._events.load_failed(served.name, served.number, served.reason)
            return
        self._events.loaded(served.name, served.number, self._clock.monotonic() - started)
        meta = runtime.metadata()
        served.runtime = runtime
        served.platform = meta.platform
        served.variant = str(meta.extra.get("variant", ""))
        policy = BatchPolicy(
            max_batch_size=self.config.max_batch_size,
            max_wait_ms=self.config.max_batch_wait_ms,
            max_queue=self.config.max_queue,
            enabled=self.config.batching and meta.can_batch,
        )
        name, number, events = served.name, served.number, self._events

        def predict(inputs: Any) -> Mapping[str, np.ndarray]:
            outputs = runtime.predict(inputs)
            rows = rows_of(inputs)
            events.batch(name, number, rows)
            return outputs_to_arrays(outputs, rows, name)

        served.batcher = AdaptiveBatcher(
            f"{name}:{number}",
            predict,
            policy,
            self._executor,
            self._clock,
            contended=self._contended,
        )
        await served.batcher.start()
        served.idle.set()
        served.state = "ready"
        log.info("%s:%s ready (%s)", name, served.number, meta.platform)

    def _load_and_smoke(self, version: ModelVersion) -> Runtime:
        runtime = self._load(version)
        try:
            example = smoke_input(version)
            if example is not None:
                rows = rows_of(example)
                outputs = outputs_to_arrays(runtime.predict(example), rows, version.name)
                for out_name, array in outputs.items():
                    if array.dtype.kind == "f" and not np.isfinite(array).all():
                        raise ModelNotReadyError(
                            f"{version.ref} answered its smoke request with non-finite "
                            f"values in {out_name!r}"
                        )
                one = head(example, 1)
                for _ in range(WARM_CALLS):
                    runtime.predict(one)
        except BaseException:
            runtime.unload()
            raise
        return runtime

    def _fail(self, served: Served, reason: str) -> None:
        served.state = "failed"
        served.reason = reason
        log.error("%s:%s is isolated: %s", served.name, served.number, reason)

    # the request path ----------------------------------------------------------------------------
    def route(self, name: str, number: int | None = None) -> Served:
        """The ready version that answers ``name`` (its default, or the explicit ``number``)."""
        if number is None:
            if name not in self._defaults:
                if any(k[0] == name for k in self._versions) or any(
                    r.name == name for r in self._bindings
                ):
                    raise ModelNotReadyError(f"model {name!r} has no ready version yet")
                raise ModelNotFoundError(f"model {name!r} is not served here")
            number = self._defaults[name]
        served = self._versions.get((name, number))
        if served is None:
            if any(k[0] == name for k in self._versions):
                raise VersionNotFoundError(f"version {number} of {name!r} is not served here")
            raise ModelNotFoundError(f"model {name!r} is not served here")
        if served.state != "ready" or served.batcher is None:
            raise ModelNotReadyError(
                f"{name}:{number} is {served.state}"
                + (f": {served.reason}" if served.reason else "")
            )
        return served

    def ready_version(self, name: str, number: int) -> Served | None:
        """``name:number`` if it is loaded and ready, else None."""
        served = self._versions.get((name, number))
        if served is None or served.state != "ready" or served.batcher is None:
            return None
        return served

    @contextmanager
    def using(self, served: Served) -> Iterator[Served]:
        """Count a request in flight on ``served`` so a swap waits for it."""
        served.inflight += 1
        served.idle.clear()
        try:
            yield served
        finally:
            served.inflight -= 1
            if served.inflight == 0:
                served.idle.set()

    # reporting ---------------------------------------------------------------------------------
    def statuses(self) -> list[VersionStatus]:
        return [
            s.status(self._defaults.get(s.name) == s.number)
            for _, s in sorted(self._versions.items())
        ]

    def models(self) -> list[str]:
        return sorted({name for name, _ in self._versions} | {r.name for r in self._bindings})

    def versions_of(self, name: str) -> list[Served]:
        return [s for (n, _), s in sorted(self._versions.items()) if n == name]

    def ready(self) -> bool:
        """Every version taking traffic is ready, and at least one is: every served ref's, and
        for each routed endpoint one of the versions its table sends traffic to (a request
        that drew another is answered by a ready one)."""
        if not self.started.is_set() or self._closed:
            return False
        taking = [
            self._versions.get((r.name, n)) for r, n in self._bindings.items() if n is not None
        ]
        if not taking and not self._routed:
            return False
        if not all(s is not None and s.state == "ready" for s in taking):
            return False
        return all(
            any(self.ready_version(*key) is not None for key in keys)
            for keys in self._routed.values()
        )
