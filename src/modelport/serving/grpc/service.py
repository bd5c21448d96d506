"""``inference.GRPCInferenceService`` over the protocol-neutral ``DataPlane``, served by grpc.aio.

Every RPC calls the same data plane as the REST routes; errors become gRPC status codes with the
same public messages (``serving.http.public_message``). The handler table is explicit so that
``method_handlers`` is the service's route table, checked against the descriptor by a test.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import grpc
import grpc.aio

from modelport._version import __version__
from modelport.core.errors import (
    DeadlineExceededError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from modelport.serving.admission import AdmissionPolicy, InflightLimiter, parse_timeout
from modelport.serving.dataplane import DataPlane
from modelport.serving.grpc import proto
from modelport.serving.grpc.convert import (
    decode_infer_request,
    encode_infer_response,
    encode_model_metadata,
    parse_version,
)
from modelport.serving.http import error_headers, public_message
from modelport.serving.logs import bind_request
from modelport.serving.requestid import (
    HEADER,
    new_request_id,
    use_request_body,
    use_request_headers,
    valid_request_id,
)
from modelport.serving.routes.v2 import tensor_descriptors
from modelport.serving.v2codec import select_outputs

__all__ = ["GrpcServer", "InferenceServicer", "metadata_pairs", "method_handlers", "status_code"]

log = logging.getLogger("modelport.serving")
Context = grpc.aio.ServicerContext[Any, Any]
Behavior = Callable[[Any, Context], Awaitable[Any]]


def status_code(exc: BaseException) -> grpc.StatusCode:
    """The gRPC status of an error (the twin of ``serving.http.error_status``)."""
    if isinstance(exc, InvalidInputError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(exc, NotFoundError):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(exc, UnavailableError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(exc, DeadlineExceededError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    return grpc.StatusCode.INTERNAL


def metadata_pairs(metadata: Iterable[Any] | None) -> list[tuple[bytes, bytes]]:
    """gRPC invocation metadata as raw header pairs (binary ``-bin`` values are left out)."""
    pairs: list[tuple[bytes, bytes]] = []
    for key, value in metadata or ():
        if isinstance(value, str):
            pairs.append((key.encode("latin-1", "replace"), value.encode("latin-1", "replace")))
    return pairs


class InferenceServicer:
    """The six RPCs of the V2 gRPC protocol, answered by one ``DataPlane``."""

    def __init__(
        self,
        plane: DataPlane,
        policy: AdmissionPolicy | None = None,
        inflight: InflightLimiter | None = None,
    ) -> None:
        self.plane = plane
        self.policy = policy or AdmissionPolicy()
        self.inflight = inflight

    async def server_live(self, request: Any, context: Context) -> Any:
        return proto.ServerLiveResponse(live=self.plane.live())

    async def server_ready(self, request: Any, context: Context) -> Any:
        return proto.ServerReadyResponse(ready=self.plane.ready())

    async def model_ready(self, request: Any, context: Context) -> Any:
        version = parse_version(request.version)
        return proto.ModelReadyResponse(ready=self.plane.model_ready(request.name, version))

    async def server_metadata(self, request: Any, context: Context) -> Any:
        # no protocol extension (repository, statistics, ...) has RPCs here
        return proto.ServerMetadataResponse(name="modelport", version=__version__, extensions=[])

    async def model_metadata(self, request: Any, context: Context) -> Any:
        if not request.name:
            raise InvalidInputError("'name' is required")
        info = self.plane.info(request.name, parse_version(request.version))
        inputs, outputs = tensor_descriptors(info)
        return encode_model_metadata(info, inputs, outputs)

    async def model_infer(self, request: Any, context: Context) -> Any:
        """One inference; the request's ``id`` (else a fresh one) is its request id, in the
        prediction log and the logs, and is sent back in the ``x-request-id`` trailer. It counts
        in the worker's in-flight requests (``inflight``) while it runs, as one whose siblings
        wait unseen in gRPC's queue (so the batchers keep gathering them)."""
        inflight = self.inflight
        if inflight is None:
            return await self._infer(request, context)
        inflight.enter_unseen()
        try:
            return await self._infer(request, context)
        finally:
            inflight.leave_unseen()

    async def _infer(self, request: Any, context: Context) -> Any:
        call = decode_infer_request(request)
        request_id = call.request_id or new_request_id()
        bind_request(request_id)
        # What a sticky A/B key is read from: ``header:`` names a metadata key, ``field:`` a
        # path into ``{"id", "parameters"}``, the same as for a REST V2 body.
        use_request_headers(metadata_pairs(context.invocation_metadata()))
        use_request_body({"id": call.request_id, "parameters": call.parameters})
        if valid_request_id(request_id) is not None:
            context.set_trailing_metadata(((HEADER, request_id),))
        deadline = self.request_deadline(call.parameters.get("timeout"), context.time_remaining())
        prediction = await self.plane.predict_tensors(
            call.model, call.version, call.inputs, deadline=deadline
        )
        selected = select_outputs(prediction, call.outputs)
        return encode_infer_response(prediction, call.request_id, selected, call.raw)

    def request_deadline(self, parameter: object, remaining: float | None) -> float | None:
        """Absolute deadline on ``plane.clock``: ``remaining`` seconds of the gRPC deadline, or
        the request's ``timeout`` parameter (else the default timeout) when that is shorter."""
        timeout = parse_timeout(None, parameter, self.policy)
        if remaining is not None:
            timeout = remaining if timeout is None else min(timeout, remaining)
        return None if timeout is None else self.plane.clock.monotonic() + timeout


def _guarded(behavior: Behavior) -> Behavior:
    async def handle(request: Any, context: Context) -> Any:
        try:
            return await behavior(request, context)
        except Exception as exc:
            metadata = tuple((k.lower(), v) for k, v in error_headers(exc).items())
            await context.abort(status_code(exc), public_message(exc), metadata)

    return handle


def method_handlers(servicer: InferenceServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The service's route table: RPC name → handler (a ``KeyError`` for a name the service
    descriptor does not define)."""
    behaviors: dict[str, Behavior] = {
        "ServerLive": servicer.server_live,
        "ServerReady": servicer.server_ready,
        "ModelReady": servicer.model_ready,
        "ServerMetadata": servicer.server_metadata,
        "ModelMetadata": servicer.model_metadata,
        "ModelInfer": servicer.model_infer,
    }
    methods = proto.SERVICE.methods_by_name
    table: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for name, behavior in behaviors.items():
        method = methods[name]
        request = proto.message_class(method.input_type.name)
        response = proto.message_class(method.output_type.name)
        table[name] = grpc.unary_unary_rpc_method_handler(
            _guarded(behavior),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    return table


class GrpcServer:
    """The V2 gRPC service on its own port; ``start()``/``close()`` from the app lifespan."""

    def __init__(
        self,
        plane: DataPlane,
        host: str,
        port: int,
        max_message_bytes: int,
        *,
        policy: AdmissionPolicy | None = None,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        inflight: InflightLimiter | None = None,
    ) -> None:
        self.plane = plane
        self.inflight = inflight
        self.interceptors = tuple(interceptors)
        self.host = host
        self.port = port
        self.max_message_bytes = max_message_bytes
        self.policy = policy or AdmissionPolicy()
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        """Bind and start serving; returns the bound port (useful with port 0)."""
        if self._server is not None:
            raise RuntimeError("GrpcServer.start() called twice")
        server = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", self.max_message_bytes),
                # worker processes of one server each bind the same port (Linux SO_REUSEPORT)
                ("grpc.so_reuseport", 1),
            ],
            maximum_concurrent_rpcs=self.policy.max_inflight,
            interceptors=self.interceptors,
        )
        servicer = InferenceServicer(self.plane, self.policy, self.inflight)
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(proto.SERVICE_NAME, method_handlers(servicer)),)
        )
        address = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address}; is the port in use?") from exc
        if bound == 0:  # older grpcio reports a failed bind this way
            raise OSError(f"cannot listen for gRPC on {address}; is the port in use?")
        await server.start()
        self._server = server
        self.port = bound
        log.info("V2 gRPC service listening on %s:%s", self.host, bound)
        return bound

    async def close(self, grace: float) -> None:
        """Refuse new RPCs, let those in flight finish for up to ``grace`` seconds, then stop."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace)
