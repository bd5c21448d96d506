"""The data plane's edge: V2 infer requests answered in one frame, before Starlette.

A prediction request that goes through Starlette passes its app, the error middleware, the
request-id, metrics and in-flight middleware, the exception middleware, the router and the
route: each a frame and most a wrapper around ``send``, about 15 µs of a request that takes
well under 100 µs with a fast model. ``InferEdge`` does what those layers do for ``POST
.../infer`` itself, with the same pieces (``logs.bind_incoming`` / ``outgoing_header`` /
``log_access``, ``instrument.RequestRecorder``, ``middleware.refusal``,
``routes.v2.answer_infer``), so the answer, its headers, its metrics and its access line are
those the middleware stack would give. Every other request (other methods on those paths
included: the router answers 405) goes through the app as before.

Middleware added to the app later (authentication, rate limits: issue 6) does not see these
requests: it must be applied here too, and ``tests/serving/test_edge.py`` compares both paths.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from modelport.core.clock import Clock
from modelport.serving.admission import InflightLimiter
from modelport.serving.instrument import RequestRecorder
from modelport.serving.logs import answer_headers, bind_incoming, log_access, outgoing_header
from modelport.serving.middleware import refusal
from modelport.serving.routes.v2 import answer_infer
from modelport.serving.state import ServerState

__all__ = ["InferEdge"]


class InferEdge:
    """Answers V2 infer POSTs (see module doc); ``target`` says which requests those are."""

    def __init__(
        self,
        state: ServerState,
        recorder: RequestRecorder,
        clock: Clock,
        *,
        access_log: bool = False,
    ) -> None:
        self.state = state
        self.limiter: InflightLimiter = state.limiter
        self.recorder = recorder
        self.clock = clock
        self.access_log = access_log

    @staticmethod
    def target(path: str) -> tuple[str, str | None] | None:
        """``(model, version or None)`` of an infer path, else None: the paths
        ``routes.v2.INFER_PATTERNS`` match, found with string operations in a third of the
        time (``tests/serving/test_v2fast.py`` compares the two)."""
        if not path.startswith("/v2/models/") or not path.endswith("/infer"):
            return None
        middle = path[11:-6]  # "" when the two overlap ("/v2/models/infer")
        if "/" not in middle:
            return (middle, None) if middle else None
        parts = middle.split("/")
        if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
            return parts[0], parts[2]
        return None

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, model: str, version: str | None
    ) -> None:
        request_id = bind_incoming(scope["headers"])
        recorder = self.recorder
        answer, token, started = recorder.begin()
        status_class = "5xx"  # unless an answer is sent
        status = 500
        try:
            if self.limiter.try_acquire():
                try:
                    status, headers, body = await answer_infer(
                        self.state, scope, receive, model, version
                    )
                finally:
                    self.limiter.release()
            else:
                status, headers, body = refusal(self.limiter)
            headers.append(outgoing_header(request_id))
            headers.extend(answer_headers())
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            status_class = f"{status // 100}xx"
        finally:
            recorder.end(answer, token, started, ("v2_rest", model), status_class)
            if self.access_log:
                log_access("POST", scope["path"], status, self.clock.monotonic() - started)
