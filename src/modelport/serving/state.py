"""Per-worker server state shared by the protocol routes: data plane, limits, clock."""

from __future__ import annotations

from dataclasses import InitVar, dataclass, field

import orjson

from modelport.core.clock import Clock, SystemClock
from modelport.core.errors import InvalidInputError
from modelport.serving.admission import AdmissionPolicy, InflightLimiter
from modelport.serving.binary import decode_binary_request, encode_binary_response, wants_binary
from modelport.serving.config import ServeConfig
from modelport.serving.dataplane import DataPlane
from modelport.serving.http import (
    Incoming,
    check_content_type,
    deadline_for,
    parse_json,
    read_body,
)
from modelport.serving.requestid import use_request_body, use_request_id
from modelport.serving.v2codec import decode_infer_request, encode_infer_response

__all__ = ["ServerState"]


@dataclass
class ServerState:
    config: ServeConfig
    plane: DataPlane
    clock: Clock = field(default_factory=SystemClock)
    # the worker's requests in flight, which every protocol counts in (``self.limiter``);
    # made from the config when not given
    inflight: InitVar[InflightLimiter | None] = None

    def __post_init__(self, inflight: InflightLimiter | None) -> None:
        self.admission = AdmissionPolicy(
            max_body_bytes=self.config.max_body_bytes,
            max_inflight=self.config.max_inflight,
            default_timeout_s=self.config.default_timeout_s,
        )
        if inflight is None:
            inflight = InflightLimiter(self.config.max_inflight)
        self.limiter = inflight

    async def infer_v2(
        self, request: Incoming, model: str, version: int | None
    ) -> tuple[bytes, str, dict[str, str]]:
        """One V2 inference over REST (JSON, or Triton's binary tensor extension): the response
        body, its media type and extra headers."""
        self.plane.require(model, version)  # unknown model: 404 before reading the body
        body = await read_body(request, self.admission.max_body_bytes)
        header_length = request.headers.get("inference-header-content-length")
        if header_length is not None:
            if not header_length.isdigit():
                raise InvalidInputError("Inference-Header-Content-Length must be a number")
            request_id, tensors, outputs, params = decode_binary_request(body, int(header_length))
            use_request_body({"id": request_id, "parameters": params})
        else:
            check_content_type(request, ("application/json",))
            parsed = parse_json(body)
            request_id, tensors, outputs, params = decode_infer_request(parsed)
            use_request_body(parsed)  # what a sticky ``field:`` key is read from
        if request_id is not None:
            use_request_id(request_id)  # what feedback for this prediction will refer to
        deadline = deadline_for(request, params.get("timeout"), self.admission, self.clock)
        prediction = await self.plane.predict_tensors(model, version, tensors, deadline=deadline)
        if wants_binary(params, outputs):
            payload, json_length = encode_binary_response(prediction, request_id, outputs, params)
            headers = {"Inference-Header-Content-Length": str(json_length)}
            return payload, "application/octet-stream", headers
        response = encode_infer_response(prediction, request_id, outputs)
        return orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), "application/json", {}
