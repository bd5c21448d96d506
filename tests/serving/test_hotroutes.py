"""HotRoutes: POSTs on the hot paths reach their endpoint directly, everything else the app."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.types import Receive, Scope, Send

from modelport.serving.hotroutes import HotRoute, HotRoutes
from modelport.serving.routes.v2 import INFER_PATTERNS


class Recorder:
    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[tuple[str, str, dict[str, Any]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.calls.append((scope["method"], scope["path"], dict(scope.get("path_params", {}))))


def call(app: HotRoutes, method: str, path: str, kind: str = "http") -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        return None

    asyncio.run(app({"type": kind, "method": method, "path": path}, receive, send))


def test_posts_on_infer_paths_go_straight_to_the_endpoint() -> None:
    endpoint, rest = Recorder("infer"), Recorder("router")
    app = HotRoutes(rest, [HotRoute(p, endpoint) for p in INFER_PATTERNS])
    call(app, "POST", "/v2/models/fraud/infer")
    call(app, "POST", "/v2/models/fraud/versions/3/infer")
    assert endpoint.calls == [
        ("POST", "/v2/models/fraud/infer", {"model": "fraud"}),
        ("POST", "/v2/models/fraud/versions/3/infer", {"model": "fraud", "version": "3"}),
    ]
    assert rest.calls == []


def test_everything_else_goes_to_the_wrapped_app() -> None:
    endpoint, rest = Recorder("infer"), Recorder("router")
    app = HotRoutes(rest, [HotRoute(p, endpoint) for p in INFER_PATTERNS])
    for method, path in [
        ("GET", "/v2/models/fraud/infer"),  # the router answers 405
        ("POST", "/v2/models/fraud/infer/extra"),
        ("POST", "/v2/models//infer"),
        ("POST", "/v2/models/a/b/infer"),
        ("POST", "/v2/models/fraud/versions/infer"),
        ("POST", "/invocations"),
    ]:
        call(app, method, path)
    assert endpoint.calls == []
    assert len(rest.calls) == 6
