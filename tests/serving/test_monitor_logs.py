"""Request ids in and out (HTTP header, V2 body id, gRPC id) and structured logs carrying them."""

from __future__ import annotations

import contextvars
import io
import json
import logging
import socket
import sys
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from tests.serving.monitor_fixtures import Monitored, flaky, flaky_body, monitored

from modelport.api.registry import Registry
from modelport.serving.grpc import proto
from modelport.serving.logs import (
    ACCESS_LOGGER,
    JsonFormatter,
    TextFormatter,
    bind_request,
    configure_logging,
)

__all__ = ["flaky", "monitored"]  # fixtures used here


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """Every log record of the process as JSON lines in a buffer (the handler is removed,
    and the levels restored, afterwards)."""
    root, ours = logging.getLogger(), logging.getLogger("modelport")
    levels = root.level, ours.level
    stream = io.StringIO()
    handler = configure_logging("json", "info", stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_request_id_header_round_trip(flaky: Registry, monitored: Monitored) -> None:
    with monitored("flaky") as run:
        post = run.client.post
        given = post(
            "/v2/models/flaky/infer", json=flaky_body(1.0), headers={"X-Request-ID": "abc-123"}
        )
        assert given.headers["x-request-id"] == "abc-123"
        made = post("/v2/models/flaky/infer", json=flaky_body(1.0))
        other = post("/v2/models/flaky/infer", json=flaky_body(1.0))
        assert len(made.headers["x-request-id"]) == 32
        assert made.headers["x-request-id"] != other.headers["x-request-id"]
        # not header-safe: a fresh id instead (and never echoed)
        unsafe = post(
            "/v2/models/flaky/infer", json=flaky_body(1.0), headers={"X-Request-ID": "a b"}
        )
        assert unsafe.headers["x-request-id"] not in ("a b", "")
        # the V2 body id wins over the header, and comes back in both
        body = {**flaky_body(1.0), "id": "from-body"}
        answer = post("/v2/models/flaky/infer", json=body, headers={"X-Request-ID": "hdr"})
        assert answer.json()["id"] == "from-body"
        assert answer.headers["x-request-id"] == "from-body"
        # every response carries one, errors and other routes too
        assert run.client.get("/v2/models/nope").headers["x-request-id"]
        assert (
            run.client.get("/v2/health/live", headers={"X-Request-ID": "p"}).headers["x-request-id"]
            == "p"
        )
        feedback = post("/v2/models/flaky/feedback", json={"id": "abc-123", "label": 1})
        assert feedback.json() == {"accepted": 1, "unknown_ids": []}


def test_json_logs_carry_the_request_id_and_an_access_line(
    flaky: Registry, monitored: Monitored, json_lines: io.StringIO
) -> None:
    with monitored("flaky", access_log=True) as run:
        ok = run.client.post(
            "/v2/models/flaky/infer",
            json=flaky_body(0.3),
            headers={"X-Request-ID": "req-ok"},
        )
        failed = run.client.post(
            "/v2/models/flaky/infer?x=secret-query",
            json=flaky_body(0.123456789, fail=1),
            headers={"X-Request-ID": "req-fail"},
        )
        run.client.get("/v2/health/ready")  # not a prediction: no access line
    assert (ok.status_code, failed.status_code) == (200, 500)
    lines = records(json_lines)
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line)
    access = [line for line in lines if line["logger"] == ACCESS_LOGGER]
    assert [(a["request_id"], a["status"]) for a in access] == [("req-ok", 200), ("req-fail", 500)]
    first = access[0]
    assert first["method"] == "POST"
    assert first["path"] == "/v2/models/flaky/infer"
    assert first["model"] == "flaky"
    assert first["version"] == "1"
    assert first["latency_ms"] >= 0
    assert first["level"] == "INFO"
    text = json_lines.getvalue()
    assert "secret-query" not in text
    assert "0.123456789" not in text  # no payload value in any log line


def test_without_an_access_log_no_line_per_request(
    flaky: Registry, monitored: Monitored, json_lines: io.StringIO
) -> None:
    with monitored("flaky") as run:
        run.client.post("/v2/models/flaky/infer", json=flaky_body(0.3))
    assert not [line for line in records(json_lines) if line["logger"] == ACCESS_LOGGER]


def test_formatters_outside_and_inside_a_request() -> None:
    record = logging.LogRecord("modelport.x", logging.WARNING, __file__, 1, "hi %s", ("you",), None)
    record.request_id = None
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "hi you"
    assert line["request_id"] is None
    assert line["level"] == "WARNING"
    assert line["time"].endswith("+00:00")
    assert "request_id" not in TextFormatter().format(record)
    record.request_id = "r-1"
    assert TextFormatter().format(record).endswith("hi you [request_id=r-1]")
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(JsonFormatter().format(record))["exception"]


def test_text_logs_from_a_bound_context_name_the_request() -> None:
    stream = io.StringIO()
    root, ours = logging.getLogger(), logging.getLogger("modelport")
    levels = root.level, ours.level
    handler = configure_logging("text", "warning", stream)
    try:
        logging.getLogger("modelport.test").info("hidden at warning level")
        logging.getLogger("modelport.test").warning("outside")

        def inside() -> None:
            bind_request("ctx-7")
            logging.getLogger("modelport.test").warning("inside")

        contextvars.copy_context().run(inside)
        logging.getLogger("modelport.test").warning("outside again")
    finally:
        root.removeHandler(handler)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])
    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    assert "request_id" not in lines[0]
    assert lines[1].endswith("inside [request_id=ctx-7]")
    assert "request_id" not in lines[2]


def test_grpc_request_id_reaches_the_log_and_comes_back(
    flaky: Registry, monitored: Monitored
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with monitored("flaky", grpc_port=port) as run:
        request = proto.ModelInferRequest(model_name="flaky", id="grpc-1")
        for name, value, dtype in (
            ("x", 1.5, "FP64"),
            ("delay", 0.0, "FP64"),
            ("fail", 0, "INT64"),
        ):
            tensor = request.inputs.add(name=name, datatype=dtype, shape=[1])
            if dtype == "FP64":
                tensor.contents.fp64_contents.append(float(value))
            else:
                tensor.contents.int64_contents.append(int(value))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            infer = channel.unary_unary(
                f"/{proto.SERVICE_NAME}/ModelInfer",
                request_serializer=proto.ModelInferRequest.SerializeToString,
                response_deserializer=proto.ModelInferResponse.FromString,
            )
            response, call = infer.with_call(request, timeout=10)
        assert response.id == "grpc-1"
        assert ("x-request-id", "grpc-1") in call.trailing_metadata()
        feedback = run.client.post("/v2/models/flaky/feedback", json={"id": "grpc-1", "label": 1})
        assert feedback.json() == {"accepted": 1, "unknown_ids": []}
