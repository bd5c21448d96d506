"""Running the V2 gRPC service for as long as the app's lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import grpc.aio

from modelport.serving.grpc.service import GrpcServer
from modelport.serving.state import ServerState

__all__ = ["grpc_lifespan"]


@asynccontextmanager
async def grpc_lifespan(
    state: ServerState,
    port: int | None,
    *,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> AsyncIterator[GrpcServer | None]:
    """Serve gRPC on ``port`` (0: any free port; None: no gRPC) over the state's data plane,
    with its host, body limit, in-flight limit and timeouts (and ``interceptors``, e.g.
    metrics). On exit, RPCs in flight get the configured grace period."""
    if port is None:
        yield None
        return
    server = GrpcServer(
        state.plane,
        state.config.host,
        port,
        state.admission.max_body_bytes,
        policy=state.admission,
        interceptors=interceptors,
        inflight=state.limiter,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close(state.config.grace_period_s)
