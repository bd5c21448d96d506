"""The protocol-neutral data plane every route (V2 REST, binary, gRPC, MLflow, TF Serving) calls.

A name without an explicit version is routed by its endpoint's table when it has one
(``serving.endpoints``): weighted, sticky by the request's key, possibly mirrored to a shadow
(``serving.shadow``) after the primary answered. A drawn version that is not ready (still
loading here, or failed) gives way to the next ready version of the table, heaviest first, so a
replica never fails a request its table could answer; every answer names the version that gave
it. Metadata requests for an endpoint describe its heaviest ready route.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import ModelNotReadyError
from modelport.core.signature import Signature
from modelport.serving.adapt import frame_for_signature, rows_of, tensors_to_input
from modelport.serving.endpoints import EndpointRoute, Endpoints
from modelport.serving.instrument import answered_by
from modelport.serving.logs import note_answer
from modelport.serving.manager import ModelManager, Served
from modelport.serving.observer import PredictionObserver
from modelport.serving.requestid import current_request_id, request_body, request_headers
from modelport.serving.shadow import ShadowMirror, ShadowTally
from modelport.serving.types import ModelInfo, Prediction, Tensor, VersionStatus

__all__ = ["DataPlane", "PredictionObserver"]


@dataclass(frozen=True, slots=True)
class _Mirror:
    """Where a mirrored request's copy goes: the endpoint's shadow version."""

    endpoint: EndpointRoute
    shadow: Served


class DataPlane:
    """Answers predictions and metadata for the versions a ``ModelManager`` serves."""

    def __init__(
        self,
        manager: ModelManager,
        clock: Clock | None = None,
        *,
        observer: PredictionObserver | None = None,
        endpoints: Endpoints | None = None,
    ) -> None:
        self.manager = manager
        self.clock = clock or SystemClock()
        self.observer = observer
        self.endpoints = endpoints if endpoints is not None else Endpoints()
        self.shadows = ShadowMirror(manager, self.clock, ShadowTally(self.clock), observer)
        # Set on SIGTERM: readiness turns false so balancers stop sending, while requests that
        # still arrive are answered until the server stops accepting connections.
        self.draining = False

    # health ------------------------------------------------------------------------------------
    def live(self) -> bool:
        return True

    def ready(self) -> bool:
        return not self.draining and self.manager.ready()

    def model_ready(self, model: str, version: int | None = None) -> bool:
        try:
            self._lookup(model, version)
        except Exception:
            return False
        return not self.draining

    def statuses(self) -> list[VersionStatus]:
        return self.manager.statuses()

    def models(self) -> list[str]:
        names = self.manager.models()
        if len(self.endpoints):
            names = sorted({*names, *self.endpoints.names()})
        return names

    # metadata ----------------------------------------------------------------------------------
    def info(self, model: str, version: int | None = None) -> ModelInfo:
        return self._info(self._lookup(model, version))

    def _lookup(self, model: str, version: int | None) -> Served:
        """The version that describes ``model``: an endpoint's heaviest ready route."""
        if version is None:
            endpoint = self.endpoints.get(model)
            if endpoint is not None:
                return self._ready_route(endpoint, endpoint.weighted())
        return self.manager.route(model, version)

    def _info(self, served: Served) -> ModelInfo:
        assert served.version is not None
        assert served.runtime is not None
        ready = tuple(s.number for s in self.manager.versions_of(served.name) if s.state == "ready")
        return ModelInfo(
            name=served.name,
            version=served.number,
            versions=ready,
            platform=served.platform,
            signature=served.version.signature,
            outputs=served.runtime.metadata().outputs,
            digest=served.version.digest,
        )

    def signature(self, model: str, version: int | None = None) -> Signature | None:
        served = self._lookup(model, version)
        return served.version.signature if served.version is not None else None

    # predictions ---------------------------------------------------------------------------------
    async def predict(
        self, model: str, version: int | None, inputs: Any, *, deadline: float | None = None
    ) -> Prediction:
        """Run ``inputs`` (a DataFrame, array or dict of arrays) through the version that
        answers; ``deadline`` is absolute, on ``clock.monotonic()``."""
        served, mirror = self._decide(model, version)
        return await self._answer(served, mirror, inputs, deadline, lambda _: inputs)

    async def predict_tensors(
        self,
        model: str,
        version: int | None,
        tensors: Sequence[Tensor],
        *,
        deadline: float | None = None,
    ) -> Prediction:
        """Named tensors, checked against the answering version's signature."""
        return await self._predict_checked(model, version, tensors, tensors_to_input, deadline)

    async def predict_frame(
        self, model: str, version: int | None, frame: Any, *, deadline: float | None = None
    ) -> Prediction:
        """A pandas DataFrame (MLflow, TF Serving rows), checked against the signature."""
        return await self._predict_checked(model, version, frame, frame_for_signature, deadline)

    async def _predict_checked(
        self,
        model: str,
        version: int | None,
        value: Any,
        adapt: Callable[[Any, Signature | None, str], Any],
        deadline: float | None,
    ) -> Prediction:
        """``value`` adapted (``adapt``) to the answering version's signature, and to a
        mirrored shadow's when that one differs."""
        served, mirror = self._decide(model, version)
        signature = served.version.signature if served.version is not None else None
        inputs = adapt(value, signature, model)
        if mirror is None:
            return await self._run(served, inputs, deadline)

        def convert(other: Served) -> Any:
            theirs = other.version.signature if other.version is not None else None
            return inputs if theirs == signature else adapt(value, theirs, model)

        return await self._answer(served, mirror, inputs, deadline, convert)

    def require(self, model: str, version: int | None = None) -> None:
        """Raise NotFound / ModelNotReady unless ``model`` (at ``version``) could answer now;
        routes call it before reading a body. It routes nothing: no draw, no metrics."""
        self._lookup(model, version)

    def _decide(self, model: str, version: int | None) -> tuple[Served, _Mirror | None]:
        """The version that answers and, for a mirrored request, where the copy goes."""
        mirror = None
        endpoint = self.endpoints.get(model) if version is None else None
        if endpoint is None:
            served = self.manager.route(model, version)
        else:
            served, mirror = self._choose(endpoint)
        answered_by(served.name, served.number)
        note_answer(served.name, served.number)
        return served, mirror

    def _choose(self, endpoint: EndpointRoute) -> tuple[Served, _Mirror | None]:
        router = endpoint.router
        key = None
        if router.table.sticky is not None:
            key = router.key_for(request_headers(), request_body())
        decision = router.choose(key, request_id=current_request_id())
        primary = int(decision.primary)
        order = endpoint.weighted()
        served = self._ready_route(endpoint, (primary, *(n for n in order if n != primary)))
        if decision.shadow is not None:
            shadow = self.manager.ready_version(endpoint.model, int(decision.shadow))
            if shadow is not None:
                return served, _Mirror(endpoint, shadow)
        return served, None

    def _ready_route(self, endpoint: EndpointRoute, order: Sequence[int]) -> Served:
        for number in order:
            served = self.manager.ready_version(endpoint.model, number)
            if served is not None:
                return served
        raise ModelNotReadyError(f"endpoint {endpoint.endpoint!r} has no ready version yet")

    async def _answer(
        self,
        served: Served,
        mirror: _Mirror | None,
        inputs: Any,
        deadline: float | None,
        convert: Callable[[Served], Any],
    ) -> Prediction:
        """``_run``, then (for a mirrored request) hand a copy to the shadow."""
        if mirror is None:
            return await self._run(served, inputs, deadline)
        started = self.clock.monotonic()
        prediction = await self._run(served, inputs, deadline)
        table = mirror.endpoint.router.table
        self.shadows.offer(
            mirror.endpoint.endpoint,
            prediction,
            self.clock.monotonic() - started,
            mirror.shadow,
            convert,
            table.shadow_timeout_ms / 1000.0,
        )
        return prediction

    async def _run(self, served: Served, inputs: Any, deadline: float | None) -> Prediction:
        assert served.batcher is not None
        observer = self.observer
        if observer is None:
            with self.manager.using(served):
                outputs = await served.batcher.submit(inputs, deadline)
            return Prediction(served.name, served.number, outputs, rows_of(inputs))
        clock = self.clock
        started = clock.monotonic()
        try:
            with self.manager.using(served):
                outputs = await served.batcher.submit(inputs, deadline)
            prediction = Prediction(served.name, served.number, outputs, rows_of(inputs))
        except Exception as exc:
            latency = clock.monotonic() - started
            rid = current_request_id()
            observer.observed(served, inputs, None, latency, request_id=rid, ok=False, error=exc)
            raise
        latency = clock.monotonic() - started
        observer.observed(
            served, inputs, prediction, latency, request_id=current_request_id(), ok=True
        )
        return prediction
