"""The ASGI application factory of the data plane."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware

from modelport.core.clock import Clock, SystemClock
from modelport.core.model import ModelVersion
from modelport.core.refs import ModelRef
from modelport.runtime.base import Runtime
from modelport.serving.config import ServeConfig
from modelport.serving.dataplane import DataPlane
from modelport.serving.grpc.lifespan import grpc_lifespan
from modelport.serving.manager import ModelManager
from modelport.serving.middleware import InflightLimit
from modelport.serving.routes import mlflow, openapi, tfserving, v2
from modelport.serving.state import ServerState

__all__ = ["App", "create_app", "server_state"]

App = Starlette

log = logging.getLogger("modelport.serving")


def create_app(
    config: ServeConfig,
    resolve: Callable[[ModelRef], ModelVersion],
    load: Callable[[ModelVersion], Runtime],
    *,
    clock: Clock | None = None,
    on_close: Callable[[], None] | None = None,
) -> Starlette:
    """A Starlette app serving ``config.refs``; models load in the background from lifespan
    start, so the process is live at once and ready when every served version is."""
    clock = clock or SystemClock()
    executor = ThreadPoolExecutor(
        max_workers=max(2, config.framework_threads() + 1), thread_name_prefix="modelport-predict"
    )
    manager = ModelManager(config, resolve, load, executor, clock)
    plane = DataPlane(manager, clock)
    state = ServerState(config, plane, clock)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        starting = asyncio.create_task(manager.start(), name="modelport-load-models")
        try:
            async with grpc_lifespan(state, config.grpc_port):
                yield
        finally:
            plane.draining = True
            if not starting.done():
                starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await manager.close()
            executor.shutdown(wait=True, cancel_futures=True)
            if on_close is not None:
                on_close()

    app = Starlette(
        routes=[
            *v2.routes(state),
            *mlflow.routes(state),
            *tfserving.routes(state),
            *openapi.routes(state),
        ],
        lifespan=lifespan,
        middleware=[Middleware(InflightLimit, limiter=state.limiter)],
    )
    app.state.modelport = state
    return app


def server_state(app: Starlette) -> ServerState:
    state: ServerState = app.state.modelport
    return state
