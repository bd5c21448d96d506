"""The V2 gRPC service: a real grpc.aio server over a real registry and data plane, called by
tritonclient[grpc] and by a raw grpc.aio channel built on our message classes."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from typing import Any

import grpc
import grpc.aio
import numpy as np
import pandas as pd
import pytest
from google.protobuf import descriptor_pb2
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from tests.serving.slow_model import EchoModel, SlowModel

from modelport.api.registry import Registry
from modelport.core.clock import FakeClock
from modelport.core.errors import (
    DeadlineExceededError,
    InvalidInputError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    PredictionError,
)
from modelport.core.model import ModelVersion
from modelport.runtime.base import Runtime
from modelport.serving.admission import AdmissionPolicy
from modelport.serving.config import ServeConfig
from modelport.serving.dataplane import DataPlane
from modelport.serving.grpc import (
    SERVICE,
    SERVICE_NAME,
    GrpcServer,
    InferenceServicer,
    grpc_lifespan,
    method_handlers,
    proto,
    status_code,
)
from modelport.serving.grpc.convert import (
    CONTENTS_FIELDS,
    decode_infer_request,
    encode_infer_response,
)
from modelport.serving.manager import ModelManager
from modelport.serving.state import ServerState
from modelport.serving.types import Prediction
from modelport.serving.v2codec import select_outputs

Loader = Callable[[ModelVersion], Runtime]


@contextmanager
def grpc_server(registry: Registry, *refs: str, load: Loader | None = None) -> Iterator[str]:
    """The data plane of ``refs`` with the gRPC service on 127.0.0.1 (a free port), run on an
    event loop in a background thread, as the app lifespan runs them; yields ``host:port``."""
    config = ServeConfig(refs=refs, threads=1, poll_interval_s=0.2)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="grpc-test-loop", daemon=True)
    thread.start()
    executor = ThreadPoolExecutor(2)
    stack = AsyncExitStack()

    def default_load(version: ModelVersion) -> Runtime:
        return registry.load(version.ref, threads=1)

    async def start() -> int:
        manager = ModelManager(config, registry.get, load or default_load, executor)
        stack.push_async_callback(manager.close)
        starting = asyncio.create_task(manager.start())

        async def stop_loading() -> None:
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)

        stack.push_async_callback(stop_loading)
        state = ServerState(config, DataPlane(manager))
        server = await stack.enter_async_context(grpc_lifespan(state, 0))
        assert server is not None
        return server.port

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(60)

    try:
        port = run(start())
        yield f"127.0.0.1:{port}"
    finally:
        run(stack.aclose())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()
        executor.shutdown()


def _wait_ready(is_ready: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not is_ready():
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.05)


# --- tritonclient[grpc] -----------------------------------------------------------------------


def test_tritonclient_grpc(
    models: Registry, classifier: Pipeline, regressor: LinearRegression, frame: pd.DataFrame
) -> None:
    grpcclient = pytest.importorskip("tritonclient.grpc")
    rows = frame.head(6)
    with grpc_server(models, "clf@champion", "reg") as target:
        client = grpcclient.InferenceServerClient(target)
        try:
            assert client.is_server_live()
            _wait_ready(client.is_server_ready)
            assert client.is_model_ready("clf")
            assert client.is_model_ready("clf", "1")
            assert not client.is_model_ready("nope")
            server = client.get_server_metadata()
            assert server.name == "modelport"
            meta = client.get_model_metadata("reg", as_json=True)
            assert meta["name"] == "reg"
            assert meta["versions"] == ["1"]
            assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": ["-1", "4"]}]
            clf_meta = client.get_model_metadata("clf")
            assert [i.name for i in clf_meta.inputs] == ["f0", "f1", "f2", "f3"]

            x = rows.to_numpy().astype(np.float32)
            tensor = grpcclient.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = client.infer("reg", [tensor], request_id="g-1")
            assert result.get_response().id == "g-1"
            np.testing.assert_allclose(
                result.as_numpy("predictions"), regressor.predict(x), rtol=1e-6
            )

            columns = []
            for name in rows.columns:
                column = grpcclient.InferInput(name, [len(rows)], "FP64")
                column.set_data_from_numpy(rows[name].to_numpy())
                columns.append(column)
            result = client.infer(
                "clf",
                columns,
                model_version="1",
                outputs=[grpcclient.InferRequestedOutput("probabilities")],
            )
            assert [o.name for o in result.get_response().outputs] == ["probabilities"]
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), classifier.predict_proba(rows), atol=1e-6
            )

            with pytest.raises(grpcclient.InferenceServerException) as missing:
                client.infer("nope", [tensor])
            assert missing.value.status() == "StatusCode.NOT_FOUND"
            assert "nope" in missing.value.message()
            bad = grpcclient.InferInput("input", [2, 3], "FP32")
            bad.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
            with pytest.raises(grpcclient.InferenceServerException) as shape:
                client.infer("reg", [bad])
            assert shape.value.status() == "StatusCode.INVALID_ARGUMENT"
            assert "shape [2, 3]" in shape.value.message()
        finally:
            client.close()


# --- a raw grpc.aio channel with our message classes ---------------------------------------------


class Stub:
    """A minimal client for the six RPCs, built from the service descriptor."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._calls = {
            m.name: channel.unary_unary(
                f"/{SERVICE_NAME}/{m.name}",
                request_serializer=lambda msg: msg.SerializeToString(),
                response_deserializer=proto.message_class(m.output_type.name).FromString,
            )
            for m in SERVICE.methods
        }

    async def __call__(self, method: str, request: Any, timeout: float | None = None) -> Any:
        return await self._calls[method](request, timeout=timeout)


def _frame_request(rows: pd.DataFrame, **fields: Any) -> Any:
    request = proto.ModelInferRequest(model_name="clf", **fields)
    for name in rows.columns:
        item = request.inputs.add(name=name, datatype="FP64", shape=[len(rows)])
        item.contents.fp64_contents.extend(rows[name].tolist())
    return request


async def _code_of(call: Any) -> tuple[grpc.StatusCode, str, dict[str, str]]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    trailing = {k: str(v) for k, v in (info.value.trailing_metadata() or ())}
    return info.value.code(), info.value.details() or "", trailing


def test_raw_channel_typed_and_raw_contents(
    models: Registry, classifier: Pipeline, frame: pd.DataFrame
) -> None:
    models.register(EchoModel(), name="echo", input_example=pd.DataFrame({"text": ["a"]}))
    rows = frame.head(5)

    async def scenario(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = Stub(channel)
            assert (await stub("ServerLive", proto.ServerLiveRequest())).live
            while not (await stub("ServerReady", proto.ServerReadyRequest())).ready:
                await asyncio.sleep(0.05)
            ready = await stub("ModelReady", proto.ModelReadyRequest(name="echo"))
            assert ready.ready

            # typed contents in, typed contents out
            request = _frame_request(rows, id="t-1")
            request.parameters["priority"].int64_param = 2
            request.outputs.add(name="predictions")
            answer = await stub("ModelInfer", request)
            assert (answer.model_name, answer.model_version, answer.id) == ("clf", "1", "t-1")
            assert not answer.raw_output_contents
            (output,) = answer.outputs
            assert (output.name, output.datatype, list(output.shape)) == (
                "predictions",
                "INT64",
                [5],
            )
            assert list(output.contents.int64_contents) == classifier.predict(rows).tolist()

            # one FP64 [n, 4] matrix as raw contents: raw out
            matrix = rows.to_numpy()
            raw = proto.ModelInferRequest(model_name="clf", model_version="1")
            raw.inputs.add(name="x", datatype="FP64", shape=list(matrix.shape))
            raw.raw_input_contents.append(matrix.astype("<f8").tobytes())
            answer = await stub("ModelInfer", raw)
            assert [o.name for o in answer.outputs] == ["predictions", "probabilities"]
            assert len(answer.raw_output_contents) == 2
            probabilities = np.frombuffer(answer.raw_output_contents[1], dtype="<f8")
            np.testing.assert_allclose(
                probabilities.reshape(5, 2), classifier.predict_proba(rows), atol=1e-6
            )
            predictions = np.frombuffer(answer.raw_output_contents[0], dtype="<i8")
            np.testing.assert_array_equal(predictions, classifier.predict(rows))

            # BYTES typed and raw
            words = ["héllo", "", "x"]
            typed = proto.ModelInferRequest(model_name="echo")
            item = typed.inputs.add(name="text", datatype="BYTES", shape=[3])
            item.contents.bytes_contents.extend(w.encode() for w in words)
            answer = await stub("ModelInfer", typed)
            by_name = {o.name: o for o in answer.outputs}
            assert list(by_name["upper"].contents.bytes_contents) == [
                w.upper().encode() for w in words
            ]
            assert list(by_name["length"].contents.int64_contents) == [5, 0, 1]
            packed = proto.ModelInferRequest(model_name="echo")
            packed.inputs.add(name="text", datatype="BYTES", shape=[3])
            packed.raw_input_contents.append(
                b"".join(struct.pack("<I", len(w.encode())) + w.encode() for w in words)
            )
            answer = await stub("ModelInfer", packed)
            names = [o.name for o in answer.outputs]
            upper = answer.raw_output_contents[names.index("upper")]
            assert upper == b"".join(
                struct.pack("<I", len(w.upper().encode())) + w.upper().encode() for w in words
            )

            # errors
            missing = proto.ModelInferRequest(model_name="nope")
            missing.inputs.add(name="x", datatype="FP64", shape=[0])
            code, details, _ = await _code_of(stub("ModelInfer", missing))
            assert code == grpc.StatusCode.NOT_FOUND
            assert "nope" in details
            code, _, _ = await _code_of(stub("ModelMetadata", proto.ModelMetadataRequest(name="x")))
            assert code == grpc.StatusCode.NOT_FOUND
            code, _, _ = await _code_of(
                stub("ModelMetadata", proto.ModelMetadataRequest(name="clf", version="7"))
            )
            assert code == grpc.StatusCode.NOT_FOUND
            code, _, _ = await _code_of(
                stub("ModelReady", proto.ModelReadyRequest(name="clf", version="x"))
            )
            assert code == grpc.StatusCode.INVALID_ARGUMENT

            short = _frame_request(rows)
            short.inputs[0].shape[:] = [6]
            code, details, _ = await _code_of(stub("ModelInfer", short))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert "needs 6" in details

            negative = _frame_request(rows)
            negative.inputs[0].shape[:] = [-5]
            code, _, _ = await _code_of(stub("ModelInfer", negative))
            assert code == grpc.StatusCode.INVALID_ARGUMENT

            mixed = proto.ModelInferRequest()
            mixed.CopyFrom(raw)
            mixed.inputs[0].contents.fp64_contents.append(1.0)
            code, details, _ = await _code_of(stub("ModelInfer", mixed))
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert "contents" in details

            extra = proto.ModelInferRequest()
            extra.CopyFrom(raw)
            extra.raw_input_contents.append(b"\0" * 8)
            code, _, _ = await _code_of(stub("ModelInfer", extra))
            assert code == grpc.StatusCode.INVALID_ARGUMENT

            truncated = proto.ModelInferRequest()
            truncated.CopyFrom(raw)
            truncated.raw_input_contents[0] = truncated.raw_input_contents[0][:-1]
            code, _, _ = await _code_of(stub("ModelInfer", truncated))
            assert code == grpc.StatusCode.INVALID_ARGUMENT

            code, _, _ = await _code_of(stub("ModelInfer", proto.ModelInferRequest(model_name="")))
            assert code == grpc.StatusCode.INVALID_ARGUMENT

    with grpc_server(models, "clf@champion", "echo") as target:
        asyncio.run(scenario(target))


def test_deadlines_and_not_ready(registry: Registry) -> None:
    registry.register(SlowModel(), name="slow", input_example=pd.DataFrame({"delay": [0.0]}))
    release = threading.Event()

    def gated_load(version: ModelVersion) -> Runtime:
        assert release.wait(30)
        return registry.load(version.ref, threads=1)

    def slow_request(delay: float) -> Any:
        request = proto.ModelInferRequest(model_name="slow")
        request.inputs.add(name="delay", datatype="FP64", shape=[1]).contents.fp64_contents.append(
            delay
        )
        return request

    async def scenario(target: str) -> None:
        async with grpc.aio.insecure_channel(target) as channel:
            stub = Stub(channel)
            assert not (await stub("ServerReady", proto.ServerReadyRequest())).ready
            code, details, trailing = await _code_of(stub("ModelInfer", slow_request(0.0)))
            assert code == grpc.StatusCode.UNAVAILABLE
            assert "slow" in details
            assert trailing.get("retry-after") == "1"
            release.set()
            while not (await stub("ServerReady", proto.ServerReadyRequest())).ready:
                await asyncio.sleep(0.05)
            answer = await stub("ModelInfer", slow_request(0.0))
            assert list(answer.outputs[0].contents.fp64_contents) == [0.0]
            # the request's own timeout parameter, answered by the server
            late = slow_request(0.6)
            late.parameters["timeout"].string_param = "100m"
            code, _, _ = await _code_of(stub("ModelInfer", late))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED
            # the gRPC deadline
            code, _, _ = await _code_of(stub("ModelInfer", slow_request(0.6), timeout=0.1))
            assert code == grpc.StatusCode.DEADLINE_EXCEEDED

    with grpc_server(registry, "slow", load=gated_load) as target:
        asyncio.run(scenario(target))


# --- units: route table, descriptor, error mapping, deadlines ------------------------------------


def _plane(clock: FakeClock | None = None) -> tuple[DataPlane, ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(1)

    def never(_: Any) -> Any:
        raise AssertionError("not called")

    manager = ModelManager(ServeConfig(refs=("m",)), never, never, executor, clock)
    return DataPlane(manager, clock), executor


def test_every_rpc_of_the_service_has_a_handler() -> None:
    plane, executor = _plane()
    try:
        table = method_handlers(InferenceServicer(plane))
    finally:
        executor.shutdown()
    described = [m.name for m in SERVICE.methods]
    assert described == [m for m, _, _ in proto.METHODS]
    assert sorted(table) == sorted(described)
    for method in SERVICE.methods:
        handler = table[method.name]
        assert handler.unary_unary is not None
        assert handler.request_deserializer is not None
        request = proto.message_class(method.input_type.name)()
        assert type(handler.request_deserializer(request.SerializeToString())) is type(request)


def test_descriptor_matches_the_public_proto() -> None:
    """Every message and field we define exists with the same number and type in the V2 proto
    that tritonclient ships (Triton's copy is a superset of KServe's)."""
    service_pb2 = pytest.importorskip("tritonclient.grpc.service_pb2")

    def fields(file: Any) -> dict[str, set[tuple[str, int, int, int, str]]]:
        proto_file = descriptor_pb2.FileDescriptorProto()
        file.CopyToProto(proto_file)
        out: dict[str, set[tuple[str, int, int, int, str]]] = {}

        def walk(message: descriptor_pb2.DescriptorProto, prefix: str) -> None:
            out[prefix + message.name] = {
                (f.name, f.number, f.type, f.label, f.type_name) for f in message.field
            }
            for nested in message.nested_type:
                walk(nested, f"{prefix}{message.name}.")

        for message in proto_file.message_type:
            walk(message, "")
        return out

    ours, public = fields(proto.FILE), fields(service_pb2.DESCRIPTOR)
    for name, own in ours.items():
        assert own <= public[name], name
        if name != "InferParameter":  # Triton adds double_param and uint64_param
            assert own == public[name], name
    theirs = service_pb2.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    for method in SERVICE.methods:
        assert theirs.methods_by_name[method.name].input_type.name == method.input_type.name


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInputError("x"), grpc.StatusCode.INVALID_ARGUMENT),
        (ModelNotFoundError("x"), grpc.StatusCode.NOT_FOUND),
        (ModelNotReadyError("x"), grpc.StatusCode.UNAVAILABLE),
        (OverloadedError("x", retry_after=3), grpc.StatusCode.UNAVAILABLE),
        (DeadlineExceededError("x"), grpc.StatusCode.DEADLINE_EXCEEDED),
        (PredictionError("x"), grpc.StatusCode.INTERNAL),
        (ValueError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert status_code(error) == code


def test_request_deadline_uses_the_shorter_of_grpc_deadline_and_timeout() -> None:
    clock = FakeClock()
    plane, executor = _plane(clock)
    executor.shutdown()
    now = clock.monotonic()
    servicer = InferenceServicer(plane, AdmissionPolicy(default_timeout_s=5.0))
    assert servicer.request_deadline(None, None) == now + 5.0
    assert servicer.request_deadline(None, 2.0) == now + 2.0
    assert servicer.request_deadline(0.5, 2.0) == now + 0.5
    assert servicer.request_deadline("3S", 9.0) == now + 3.0
    assert InferenceServicer(plane).request_deadline(None, None) is None
    with pytest.raises(InvalidInputError):
        servicer.request_deadline(-1, None)


def test_start_reports_the_bound_port_and_close_is_idempotent() -> None:
    plane, executor = _plane()

    async def scenario() -> None:
        server = GrpcServer(plane, "127.0.0.1", 0, 1024 * 1024)
        port = await server.start()
        assert port > 0
        assert server.port == port
        with pytest.raises(RuntimeError):
            await server.start()
        # SO_REUSEPORT: worker processes of one server each bind the same gRPC port
        sibling = GrpcServer(plane, "127.0.0.1", port, 1024)
        assert await sibling.start() == port
        await sibling.close(0)
        await server.close(0)
        await server.close(0)

    try:
        asyncio.run(scenario())
    finally:
        executor.shutdown()


def _one_input(datatype: str, shape: list[int], **contents: list[Any]) -> Any:
    request = proto.ModelInferRequest(model_name="m")
    item = request.inputs.add(name="x", datatype=datatype, shape=shape)
    for field, values in contents.items():
        getattr(item.contents, field).extend(values)
    return request


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_one_input("INT8", [2], int_contents=[1, 300]), "out of range for INT8"),
        (_one_input("UINT16", [1], uint_contents=[70_000]), "out of range for UINT16"),
        (_one_input("FP16", [1], fp32_contents=[1.0]), "raw_input_contents"),
        (_one_input("FP32", [1], fp32_contents=[1.0], fp64_contents=[2.0]), "'fp64_contents'"),
        (_one_input("FP32", [2, 2], fp32_contents=[1.0]), "needs 4"),
        (_one_input("BF16", [1]), "BF16"),
        (proto.ModelInferRequest(model_name="m"), "'inputs'"),
        (proto.ModelInferRequest(model_name="m", model_version="0"), "version"),
        (proto.ModelInferRequest(model_name="m", id="i" * 300), "'id'"),
    ],
)
def test_decode_refuses_bad_typed_requests(request_: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        decode_infer_request(request_)


def test_typed_contents_round_trip_every_datatype() -> None:
    arrays = {
        "BOOL": np.array([True, False]),
        "INT8": np.array([-128, 127], dtype=np.int8),
        "INT16": np.array([-5, 5], dtype=np.int16),
        "INT32": np.array([-(2**31), 7], dtype=np.int32),
        "INT64": np.array([-(2**63), 2**63 - 1]),
        "UINT8": np.array([0, 255], dtype=np.uint8),
        "UINT16": np.array([0, 65535], dtype=np.uint16),
        "UINT32": np.array([0, 2**32 - 1], dtype=np.uint32),
        "UINT64": np.array([0, 2**64 - 1], dtype=np.uint64),
        "FP32": np.array([0.25, -1.5], dtype=np.float32),
        "FP64": np.array([np.pi, 1e300]),
        "BYTES": np.array(["héllo", ""], dtype=object),
    }
    request = proto.ModelInferRequest(model_name="m", model_version="2", id="rid")
    for datatype, array in arrays.items():
        item = request.inputs.add(name=datatype.lower(), datatype=datatype, shape=[2])
        values = getattr(item.contents, CONTENTS_FIELDS[datatype])
        values.extend([v.encode() for v in array] if datatype == "BYTES" else array.tolist())
    call = decode_infer_request(proto.ModelInferRequest.FromString(request.SerializeToString()))
    assert (call.model, call.version, call.request_id, call.raw) == ("m", 2, "rid", False)
    for tensor in call.inputs:
        expected = arrays[tensor.datatype]
        assert tensor.data.dtype == expected.dtype
        np.testing.assert_array_equal(tensor.data, expected)
    prediction = Prediction("m", 2, {t.name: t.data for t in call.inputs}, rows=2)
    for raw in (False, True):
        answer = encode_infer_response(prediction, "rid", select_outputs(prediction, None), raw)
        assert len(answer.raw_output_contents) == (len(arrays) if raw else 0)
        for output in answer.outputs:
            assert output.datatype == output.name.upper()
            assert list(output.shape) == [2]
        back = proto.ModelInferRequest(model_name="m")
        back.inputs.extend(
            proto.message_class("ModelInferRequest.InferInputTensor")(
                name=o.name, datatype=o.datatype, shape=o.shape, contents=o.contents
            )
            for o in answer.outputs
        )
        back.raw_input_contents.extend(answer.raw_output_contents)
        for tensor in decode_infer_request(back).inputs:
            np.testing.assert_array_equal(tensor.data, arrays[tensor.datatype])


def test_fp16_outputs_force_raw_contents() -> None:
    prediction = Prediction("m", 1, {"h": np.array([0.5, 2.0], dtype=np.float16)}, rows=2)
    answer = encode_infer_response(prediction, None, select_outputs(prediction, None), raw=False)
    assert answer.outputs[0].datatype == "FP16"
    assert np.frombuffer(answer.raw_output_contents[0], "<f2").tolist() == [0.5, 2.0]


def test_messages_over_the_limit_are_refused_by_grpc() -> None:
    plane, executor = _plane()

    async def scenario() -> None:
        server = GrpcServer(plane, "127.0.0.1", 0, 1024)
        port = await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                request = proto.ModelInferRequest(model_name="m", raw_input_contents=[b"\0" * 4096])
                code, _, _ = await _code_of(Stub(channel)("ModelInfer", request))
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            await server.close(0)

    try:
        asyncio.run(scenario())
    finally:
        executor.shutdown()
