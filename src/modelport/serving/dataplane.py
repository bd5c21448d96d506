"""The protocol-neutral data plane every route (V2 REST, binary, gRPC, MLflow, TF Serving) calls."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from modelport.core.clock import Clock, SystemClock
from modelport.core.signature import Signature
from modelport.serving.adapt import frame_for_signature, rows_of, tensors_to_input
from modelport.serving.instrument import answered_by
from modelport.serving.logs import note_answer
from modelport.serving.manager import ModelManager, Served
from modelport.serving.requestid import current_request_id
from modelport.serving.types import ModelInfo, Prediction, Tensor, VersionStatus

__all__ = ["DataPlane", "PredictionObserver"]


class PredictionObserver(Protocol):
    """Told about every prediction the data plane runs (monitoring listens here).

    Called on the event loop right after the model answered (``prediction``) or failed
    (``prediction`` None, ``error`` the exception): it must take microseconds and never raise.
    ``latency_s`` is the time spent queued and in the model; ``inputs`` are the model's input
    as it was run (not to be modified)."""

    def observed(
        self,
        served: Served,
        inputs: Any,
        prediction: Prediction | None,
        latency_s: float,
        *,
        request_id: str,
        ok: bool,
        error: BaseException | None = None,
    ) -> None: ...


class DataPlane:
    """Answers predictions and metadata for the versions a ``ModelManager`` serves."""

    def __init__(
        self,
        manager: ModelManager,
        clock: Clock | None = None,
        *,
        observer: PredictionObserver | None = None,
    ) -> None:
        self.manager = manager
        self.clock = clock or SystemClock()
        self.observer = observer
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
            self.manager.route(model, version)
        except Exception:
            return False
        return not self.draining

    def statuses(self) -> list[VersionStatus]:
        return self.manager.statuses()

    def models(self) -> list[str]:
        return self.manager.models()

    # metadata ----------------------------------------------------------------------------------
    def info(self, model: str, version: int | None = None) -> ModelInfo:
        served = self.manager.route(model, version)
        return self._info(served)

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
        served = self.manager.route(model, version)
        return served.version.signature if served.version is not None else None

    # predictions ---------------------------------------------------------------------------------
    async def predict(
        self, model: str, version: int | None, inputs: Any, *, deadline: float | None = None
    ) -> Prediction:
        """Run ``inputs`` (a DataFrame, array or dict of arrays) through the version that
        answers; ``deadline`` is absolute, on ``clock.monotonic()``."""
        return await self._run(self.route(model, version), inputs, deadline)

    async def predict_tensors(
        self,
        model: str,
        version: int | None,
        tensors: Sequence[Tensor],
        *,
        deadline: float | None = None,
    ) -> Prediction:
        """Named tensors, checked against the answering version's signature."""
        served = self.route(model, version)
        signature = served.version.signature if served.version is not None else None
        return await self._run(served, tensors_to_input(tensors, signature, model), deadline)

    async def predict_frame(
        self, model: str, version: int | None, frame: Any, *, deadline: float | None = None
    ) -> Prediction:
        """A pandas DataFrame (MLflow, TF Serving rows), checked against the signature."""
        served = self.route(model, version)
        signature = served.version.signature if served.version is not None else None
        return await self._run(served, frame_for_signature(frame, signature, model), deadline)

    def route(self, model: str, version: int | None = None) -> Served:
        """The ready version that answers; raises NotFound / ModelNotReady otherwise. Every
        prediction passes here: the request's metrics are labelled with this version."""
        served = self.manager.route(model, version)
        answered_by(served.name, served.number)
        note_answer(served.name, served.number)
        return served

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
