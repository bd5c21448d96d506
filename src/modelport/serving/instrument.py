"""Prediction metrics of the data plane: request middleware, gRPC interceptor, model events and
the gauges sampled from the batchers.

Every prediction request (V2 REST, MLflow, TF Serving over ASGI; V2 gRPC through the
interceptor) is timed from its arrival to its last response byte and counted by protocol, model,
answering version and status class. Which version answers is known only inside the data plane:
the middleware puts a fresh ``_Answer`` in a context variable and ``DataPlane.route``, which every
prediction passes, calls ``answered_by`` — no protocol has to remember to record anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelport.core.clock import Clock, SystemClock
from modelport.monitoring.metrics import ServingMetrics
from modelport.serving.manager import ModelManager

__all__ = [
    "GrpcRequestMetrics",
    "MetricsEvents",
    "RequestMetrics",
    "RequestRecorder",
    "VersionGauges",
    "answered_by",
    "classify",
    "grpc_status_class",
]

Models = Callable[[], Sequence[str]]
MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
_PREDICT_PATHS = (
    ("v2_rest", re.compile(r"/v2/models/([^/]+)(?:/versions/[^/]+)?/infer")),
    ("mlflow", re.compile(r"/models/([^/]+)(?:/versions/[^/]+)?/invocations")),
    ("mlflow", re.compile(r"/invocations()")),
    # mirrors the routes: the ":verb" suffix follows the last path segment
    ("tfserving", re.compile(r"/v1/models/([^/]+)(?:/versions/[^/]+|/labels/[^/]+)?:[^/]+")),
)
_CLIENT_CODES = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(slots=True)
class _Answer:
    model: str = ""
    version: str = ""


_ANSWER: ContextVar[_Answer | None] = ContextVar("modelport_answer", default=None)


def answered_by(model: str, number: int) -> None:
    """Record, for the request being measured (if any), the version that answers it."""
    answer = _ANSWER.get()
    if answer is not None:
        answer.model = model
        answer.version = str(number)


def classify(method: str, path: str) -> tuple[str, str | None] | None:
    """``(protocol, model named in the path or None)`` of a prediction request, else None."""
    if method != "POST":
        return None
    for protocol, pattern in _PREDICT_PATHS:
        match = pattern.fullmatch(path)
        if match is not None:
            return protocol, match.group(1) or None
    return None


def grpc_status_class(code: grpc.StatusCode | None) -> str:
    """The HTTP status class a gRPC status corresponds to (as ``serving.http`` maps errors)."""
    if code is None or code == grpc.StatusCode.OK:
        return "2xx"
    return "4xx" if code in _CLIENT_CODES else "5xx"


class RequestRecorder:
    """Times one request and records it with the labels known when it ends."""

    def __init__(self, metrics: ServingMetrics, models: Models, clock: Clock) -> None:
        self.metrics = metrics
        self.models = models
        self.clock = clock

    @contextlib.contextmanager
    def measure(
        self, protocol: str, named: str | None, status: Callable[[bool], str]
    ) -> Iterator[_Answer]:
        """Measure the request run in the ``with`` body; ``status(raised)`` gives its status
        class when it ends."""
        answer, token, started = self.begin()
        raised = False
        try:
            yield answer
        except BaseException:
            raised = True
            raise
        finally:
            self.end(answer, token, started, (protocol, named), status(raised))

    def begin(self) -> tuple[_Answer, Token[_Answer | None], float]:
        answer = _Answer()
        token = _ANSWER.set(answer)
        self.metrics.in_flight.inc()
        return answer, token, self.clock.monotonic()

    def end(
        self,
        answer: _Answer,
        token: Token[_Answer | None],
        started: float,
        target: tuple[str, str | None],
        status_class: str,
    ) -> None:
        elapsed = max(0.0, self.clock.monotonic() - started)
        self.metrics.in_flight.dec()
        _ANSWER.reset(token)
        model = answer.model or self._served(target[1])
        self.metrics.observe_request(
            endpoint=model,
            model=model,
            version=answer.version,
            protocol=target[0],
            status_class=status_class,
            seconds=elapsed,
        )

    def _served(self, named: str | None) -> str:
        """The model a request that no version answered was for, if it is served here (never
        a client-chosen string: that would let clients create series at will)."""
        served = self.models()
        if named is None:
            return served[0] if len(served) == 1 else ""
        return named if named in served else ""


class RequestMetrics:
    """Pure ASGI middleware: metrics of every prediction request (others pass through)."""

    def __init__(
        self, app: ASGIApp, metrics: ServingMetrics, models: Models, clock: Clock | None = None
    ) -> None:
        self.app = app
        self._recorder = RequestRecorder(metrics, models, clock or SystemClock())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        target = classify(scope["method"], scope["path"]) if scope["type"] == "http" else None
        if target is None:
            await self.app(scope, receive, send)
            return
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        # an exception escaping the app becomes a 500 (Starlette's ServerErrorMiddleware);
        # begin/end rather than ``measure``: this runs for every prediction request
        recorder = self._recorder
        answer, token, started = recorder.begin()
        raised = False
        try:
            await self.app(scope, receive, sending)
        except BaseException:
            raised = True
            raise
        finally:
            recorder.end(answer, token, started, target, "5xx" if raised else f"{status // 100}xx")


Behavior = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]


class GrpcRequestMetrics(grpc.aio.ServerInterceptor):
    """The same metrics for ``ModelInfer`` calls of the V2 gRPC service."""

    def __init__(self, metrics: ServingMetrics, models: Models, clock: Clock | None = None) -> None:
        self._recorder = RequestRecorder(metrics, models, clock or SystemClock())

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method != MODEL_INFER:
            return handler
        behavior: Behavior | None = handler.unary_unary  # type: ignore[assignment]
        if behavior is None:
            return handler
        recorder = self._recorder

        async def measured(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            def status(raised: bool) -> str:
                # the service maps errors to a status and aborts (raising); anything else: 5xx
                code = context.code()
                if raised and (code is None or code == grpc.StatusCode.OK):
                    return "5xx"
                return grpc_status_class(code)

            named = str(getattr(request, "model_name", "") or "") or None
            with recorder.measure("v2_grpc", named, status):
                return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            measured,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


class MetricsEvents:
    """``ModelEvents`` of the manager, recorded as metrics."""

    def __init__(self, metrics: ServingMetrics) -> None:
        self.metrics = metrics

    def loaded(self, name: str, number: int, seconds: float) -> None:
        self.metrics.model_load_seconds.labels(name, str(number)).set(seconds)

    def load_failed(self, name: str, number: int, reason: str) -> None:
        self.metrics.model_load_failures.labels(name, str(number)).inc()

    def batch(self, name: str, number: int, rows: int) -> None:
        self.metrics.observe_batch(name, str(number), rows)


class VersionGauges:
    """Queue depth and readiness of every version, sampled from the manager: on each scrape,
    and (with several workers, where a scrape reaches one of them) every ``interval_s`` by a
    task the app lifespan owns (``start``/``close``)."""

    def __init__(self, metrics: ServingMetrics, manager: ModelManager, interval_s: float) -> None:
        self.metrics = metrics
        self.manager = manager
        self.interval_s = interval_s
        self._seen: set[tuple[str, str]] = set()
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> None:
        current: set[tuple[str, str]] = set()
        for name in self.manager.models():
            for served in self.manager.versions_of(name):
                if served.number < 1:  # a ref that never resolved has no version
                    continue
                labels = (served.name, str(served.number))
                current.add(labels)
                depth = served.batcher.stats.queue_depth if served.batcher is not None else 0
                self.metrics.queue_depth.labels(*labels).set(depth)
                self.metrics.model_ready.labels(*labels).set(
                    1.0 if served.state == "ready" else 0.0
                )
        for labels in self._seen - current:  # retired: series stay (multiprocess), at zero
            self.metrics.queue_depth.labels(*labels).set(0)
            self.metrics.model_ready.labels(*labels).set(0)
        self._seen = current

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="modelport-metrics-sampler")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(self.interval_s)
