"""Hot routes: the prediction endpoints reached without Starlette's router and its wrappers.

Starlette matches a request against every route in turn and wraps the endpoint in its
exception middleware and route handler: a few microseconds each, on an answer that takes well
under a millisecond. ``HotRoutes`` sits inside the data plane's own middleware (request ids,
metrics, the in-flight limit), so those still see every request, and sends ``POST`` requests
whose path matches one of its patterns straight to a bare ASGI endpoint that answers every
error itself. Everything else (other methods on the same paths included, which the router
answers with 405) goes on to the router as before.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["HotRoute", "HotRoutes"]


@dataclass(frozen=True, slots=True)
class HotRoute:
    """``POST`` requests whose whole path matches ``pattern`` (named groups become path
    parameters, as Starlette's ``{name}`` segments would) go to ``endpoint``."""

    pattern: re.Pattern[str]
    endpoint: ASGIApp


class HotRoutes:
    """Pure ASGI middleware: hot routes first, the wrapped app for anything else."""

    def __init__(self, app: ASGIApp, routes: Sequence[HotRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            for route in self.routes:
                found = route.pattern.fullmatch(path)
                if found is not None:
                    scope["path_params"] = {
                        k: v for k, v in found.groupdict().items() if v is not None
                    }
                    await route.endpoint(scope, receive, send)
                    return
        await self.app(scope, receive, send)
