"""Triton's binary tensor data extension: pure codec round trips, malformed bodies, and the real
``tritonclient[http]`` client against a real uvicorn server."""

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest
import uvicorn
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline

from modelport.api.registry import Registry
from modelport.api.serve import build_app
from modelport.core.errors import InvalidInputError
from modelport.core.settings import Settings
from modelport.serving.binary import (
    decode_binary_request,
    encode_binary_response,
    wants_binary,
)
from modelport.serving.config import ServeConfig
from modelport.serving.server import bind_socket
from modelport.serving.types import Prediction, RequestedOutput

SECRET = b"TOP-SECRET-VALUE"
WIRE = {
    "BOOL": "?",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
ARRAYS: dict[str, np.ndarray] = {
    "BOOL": np.array([[True, False, True], [False, False, True]]),
    "UINT8": np.array([[0, 7, 255]], dtype=np.uint8),
    "UINT16": np.array([1, 65535], dtype=np.uint16),
    "UINT32": np.array([[1], [4_000_000_000]], dtype=np.uint32),
    "UINT64": np.array([0, 2**64 - 1], dtype=np.uint64),
    "INT8": np.array([-128, 0, 127], dtype=np.int8),
    "INT16": np.array([[-32768, 5]], dtype=np.int16),
    "INT32": np.array([-(2**31), 2**31 - 1], dtype=np.int32),
    "INT64": np.array([[-(2**63)], [2**63 - 1]], dtype=np.int64),
    "FP16": np.array([[0.5, -2.25], [65504.0, np.inf]], dtype=np.float16),
    "FP32": np.arange(12, dtype=np.float32).reshape(2, 3, 2) / 3,
    "FP64": np.array([np.pi, -0.0, 1e300]),
    "BYTES": np.array([["ab", ""], ["naïve ✓", "x" * 300]], dtype=object),
}


def _raw(datatype: str, array: np.ndarray) -> bytes:
    """The wire bytes of a tensor, written independently of the code under test."""
    if datatype == "BYTES":
        return b"".join(
            struct.pack("<I", len(e)) + e for e in (str(v).encode() for v in array.flat)
        )
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def _body(inputs: list[dict[str, Any]], raws: list[bytes], **extra: Any) -> tuple[bytes, int]:
    header = orjson.dumps({"inputs": inputs, **extra})
    return header + b"".join(raws), len(header)


def _binary_input(name: str, datatype: str, shape: list[int], size: int) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": datatype,
        "shape": shape,
        "parameters": {"binary_data_size": size},
    }


def _split_response(payload: bytes, header_length: int) -> dict[str, np.ndarray | list[Any]]:
    """Outputs of a binary response, parsed independently of the code under test."""
    header = orjson.loads(payload[:header_length])
    offset = header_length
    out: dict[str, np.ndarray | list[Any]] = {}
    for output in header["outputs"]:
        size = output.get("parameters", {}).get("binary_data_size")
        if size is None:
            out[output["name"]] = output["data"]
            continue
        chunk = payload[offset : offset + size]
        offset += size
        if output["datatype"] == "BYTES":
            items, pos = [], 0
            while pos < len(chunk):
                (n,) = struct.unpack_from("<I", chunk, pos)
                items.append(chunk[pos + 4 : pos + 4 + n].decode())
                pos += 4 + n
            out[output["name"]] = np.array(items, dtype=object).reshape(output["shape"])
        else:
            out[output["name"]] = np.frombuffer(chunk, dtype=WIRE[output["datatype"]]).reshape(
                output["shape"]
            )
    assert offset == len(payload)
    return out


# --- pure round trips -------------------------------------------------------------------------


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_decode_every_datatype(datatype: str) -> None:
    array = ARRAYS[datatype]
    raw = _raw(datatype, array)
    body, length = _body(
        [_binary_input("x", datatype, list(array.shape), len(raw))], [raw], id="r1"
    )
    request_id, tensors, outputs, params = decode_binary_request(body, length)
    assert (request_id, outputs, dict(params)) == ("r1", None, {})
    (tensor,) = tensors
    assert (tensor.name, tensor.datatype, tensor.shape) == ("x", datatype, array.shape)
    assert tensor.data.dtype == array.dtype
    assert tensor.data.flags.writeable
    assert "binary_data_size" not in tensor.parameters
    np.testing.assert_array_equal(tensor.data, array)


@pytest.mark.parametrize("datatype", list(ARRAYS))
def test_encode_every_datatype(datatype: str) -> None:
    array = ARRAYS[datatype]
    prediction = Prediction("m", 3, {"y": array}, rows=len(array))
    payload, length = encode_binary_response(prediction, "r9", None, {"binary_data_output": True})
    header = orjson.loads(payload[:length])
    assert (header["model_name"], header["model_version"], header["id"]) == ("m", "3", "r9")
    (output,) = header["outputs"]
    assert "data" not in output
    assert output["datatype"] == datatype
    assert output["shape"] == list(array.shape)
    assert output["parameters"]["binary_data_size"] == len(_raw(datatype, array))
    np.testing.assert_array_equal(_split_response(payload, length)["y"], array)


def test_round_trip_through_both_directions_keeps_values() -> None:
    raws = [_raw(k, v) for k, v in ARRAYS.items()]
    inputs = [
        _binary_input(k.lower(), k, list(v.shape), len(r))
        for (k, v), r in zip(ARRAYS.items(), raws, strict=True)
    ]
    body, length = _body(inputs, raws)
    _, tensors, _, _ = decode_binary_request(body, length)
    prediction = Prediction("m", 1, {t.name: t.data for t in tensors}, rows=1)
    payload, header_length = encode_binary_response(
        prediction, None, None, {"binary_data_output": True}
    )
    back = _split_response(payload, header_length)
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(back[name.lower()], array)


def test_mixed_json_and_binary_inputs_and_outputs() -> None:
    floats = np.array([[1.5, 2.5]], dtype=np.float32)
    raw = _raw("FP32", floats)
    body, length = _body(
        [
            {"name": "a", "datatype": "INT64", "shape": [1, 2], "data": [[4, 5]]},
            _binary_input("b", "FP32", [1, 2], len(raw)),
            {"name": "c", "datatype": "BYTES", "shape": [1], "data": ["txt"]},
        ],
        [raw],
        outputs=[
            {"name": "p", "parameters": {"binary_data": True}},
            {"name": "q", "parameters": {"binary_data": False}},
            {"name": "s"},
        ],
        parameters={"priority": 1},
    )
    request_id, tensors, outputs, params = decode_binary_request(body, length)
    assert request_id is None
    assert [t.name for t in tensors] == ["a", "b", "c"]
    np.testing.assert_array_equal(tensors[0].data, [[4, 5]])
    np.testing.assert_array_equal(tensors[1].data, floats)
    assert tensors[2].data.tolist() == ["txt"]
    assert outputs is not None
    assert [o.name for o in outputs] == ["p", "q", "s"]
    assert dict(params) == {"priority": 1}
    assert wants_binary(params, outputs)
    prediction = Prediction(
        "m", 1, {"p": np.array([1, 2]), "q": np.array([0.5, 1.0]), "s": np.array(["u", "v"])}, 2
    )
    payload, header_length = encode_binary_response(prediction, None, outputs, params)
    header = orjson.loads(payload[:header_length])
    assert "id" not in header
    by_name = {o["name"]: o for o in header["outputs"]}
    assert "data" not in by_name["p"]
    assert by_name["p"]["parameters"]["binary_data_size"] == 16
    assert by_name["q"]["data"] == [0.5, 1.0]
    assert "parameters" not in by_name["q"]
    assert by_name["s"]["data"] == ["u", "v"]  # binary_data_output not set: JSON by default
    back = _split_response(payload, header_length)
    np.testing.assert_array_equal(back["p"], [1, 2])


def test_binary_data_output_with_an_output_opting_out() -> None:
    prediction = Prediction("m", 1, {"p": np.array([1, 2]), "q": np.array([3.0, 4.0])}, 2)
    outputs = (RequestedOutput("p", {"binary_data": False}), RequestedOutput("q"))
    payload, length = encode_binary_response(prediction, "x", outputs, {"binary_data_output": True})
    by_name = {o["name"]: o for o in orjson.loads(payload[:length])["outputs"]}
    assert by_name["p"]["data"] == [1, 2]
    assert by_name["q"]["parameters"] == {"binary_data_size": 16}
    assert len(payload) == length + 16


def test_non_utf8_bytes_stay_bytes() -> None:
    elements = [b"\xff\xfe", b"ok"]
    raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
    body, length = _body([_binary_input("b", "BYTES", [2], len(raw))], [raw])
    _, (tensor,), _, _ = decode_binary_request(body, length)
    assert tensor.data.tolist() == elements


def test_zero_element_tensors() -> None:
    body, length = _body(
        [_binary_input("e", "FP32", [0, 4], 0), _binary_input("s", "BYTES", [0], 0)], []
    )
    _, tensors, _, _ = decode_binary_request(body, length)
    assert [t.shape for t in tensors] == [(0, 4), (0,)]


@pytest.mark.parametrize(
    ("params", "outputs", "expected"),
    [
        ({}, None, False),
        ({"binary_data_output": True}, None, True),
        ({"binary_data_output": False}, None, False),
        ({"binary_data_output": "true"}, None, False),
        ({}, (RequestedOutput("a"),), False),
        ({}, (RequestedOutput("a"), RequestedOutput("b", {"binary_data": True})), True),
        ({}, (RequestedOutput("a", {"binary_data": False}),), False),
    ],
)
def test_wants_binary(
    params: dict[str, Any], outputs: tuple[RequestedOutput, ...] | None, expected: bool
) -> None:
    assert wants_binary(params, outputs) is expected


# --- malformed bodies -------------------------------------------------------------------------


def _fp32_body(
    size: int | None = None, shape: Any = (2, 2), tail: bytes = b""
) -> tuple[bytes, int]:
    raw = SECRET[:16]
    declared = len(raw) if size is None else size
    return _body([_binary_input("x", "FP32", list(shape), declared)], [raw + tail])


BAD_BODIES: dict[str, tuple[bytes, int]] = {
    "header length beyond body": (_fp32_body()[0], 10_000),
    "header length zero": (_fp32_body()[0], 0),
    "header cut short": (_fp32_body()[0], 5),
    "header longer than json": (_fp32_body()[0], _fp32_body()[1] + 3),
    "overlong body": _fp32_body(tail=SECRET),
    "short body": (_fp32_body()[0][:-3], _fp32_body()[1]),
    "size mismatch": _fp32_body(shape=(2, 3)),
    "declared size over remainder": _fp32_body(size=10**12),
    "negative size": _fp32_body(size=-16),
    "bool size": _body(
        [{"name": "x", "datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": True}}],
        [],
    ),
    "negative shape": _fp32_body(shape=(-2, -2)),
    "absurd shape": _fp32_body(shape=(10**9, 10**9)),
    "shape not a list": _body([_binary_input("x", "FP32", 4, 16)], [SECRET]),  # type: ignore[arg-type]
    "data and size": _body(
        [{**_binary_input("x", "FP32", [4], 16), "data": [1, 2, 3, 4]}], [SECRET]
    ),
    "bf16": _body([_binary_input("x", "BF16", [8], 16)], [SECRET]),
    "unknown datatype": _body([_binary_input("x", "FP8", [16], 16)], [SECRET]),
    "bool byte 2": _body([_binary_input("x", "BOOL", [2], 2)], [b"\x01\x02"]),
    "bytes count short": _body(
        [_binary_input("x", "BYTES", [3], 16)], [struct.pack("<I", 12) + SECRET[:12]]
    ),
    "bytes count long": _body(
        [_binary_input("x", "BYTES", [1], 16)], [struct.pack("<I", 4) + SECRET[:4] * 2 + b"\0" * 4]
    ),
    "bytes element past end": _body(
        [_binary_input("x", "BYTES", [1], 8)], [struct.pack("<I", 999) + SECRET[:4]]
    ),
    "bytes length cut": _body(
        [_binary_input("x", "BYTES", [2], 10)], [struct.pack("<I", 4) + SECRET[:4] + b"\0\0"]
    ),
    "header not json": (b"{nope" + SECRET, 5),
    "header not an object": (b"[1,2]", 5),
    "no inputs": _body([], []),
    "too many tensors": _body(
        [_binary_input(f"x{i}", "INT8", [1], 1) for i in range(300)], [b"\0" * 300]
    ),
    "bad json tensor": _body([{"name": "x", "datatype": "FP32", "shape": [2], "data": [1]}], []),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_malformed_bodies_are_refused_without_echoing_data(case: str) -> None:
    body, length = BAD_BODIES[case]
    with pytest.raises(InvalidInputError) as info:
        decode_binary_request(body, length)
    message = str(info.value)
    assert len(message) < 200
    assert "SECRET" not in message
    assert "nope" not in message


# --- the real tritonclient against a real server ------------------------------------------------


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """``app`` served by a real uvicorn in a thread on 127.0.0.1 (a free port); its URL host."""
    sock = bind_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="on", log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped while starting"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def _wait_ready(client: Any) -> None:
    deadline = time.monotonic() + 60
    while not client.is_server_ready():
        assert time.monotonic() < deadline, "server never became ready"
        time.sleep(0.05)


def test_tritonclient_http_against_uvicorn(
    models: Registry,
    tmp_path: Path,
    classifier: Pipeline,
    regressor: LinearRegression,
    frame: pd.DataFrame,
) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    app = build_app(
        Settings(home=tmp_path / "home"), ServeConfig(refs=("clf@champion", "reg"), threads=1)
    )
    rows = frame.head(9)
    with uvicorn_server(app) as url:
        client = httpclient.InferenceServerClient(url)
        try:
            assert client.is_server_live()
            _wait_ready(client)
            assert client.is_model_ready("clf")
            assert not client.is_model_ready("nope")
            meta = client.get_model_metadata("reg")
            assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
            assert "binary_tensor_data" in client.get_server_metadata()["extensions"]

            # binary inputs and outputs: the client's defaults
            x = rows.to_numpy().astype(np.float32)
            tensor = httpclient.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x)
            result = client.infer("reg", [tensor], request_id="r-1")
            assert result.get_response()["id"] == "r-1"
            assert "data" not in result.get_output("predictions")
            np.testing.assert_allclose(
                result.as_numpy("predictions"), regressor.predict(x), rtol=1e-6
            )

            # four named FP64 columns, as JSON, one output asked as JSON, one as binary
            columns = []
            for name in rows.columns:
                column = httpclient.InferInput(name, [len(rows)], "FP64")
                column.set_data_from_numpy(rows[name].to_numpy(), binary_data=False)
                columns.append(column)
            outputs = [
                httpclient.InferRequestedOutput("predictions", binary_data=False),
                httpclient.InferRequestedOutput("probabilities", binary_data=True),
            ]
            result = client.infer("clf", columns, outputs=outputs, model_version="1")
            assert result.get_output("predictions")["data"] == classifier.predict(rows).tolist()
            np.testing.assert_array_equal(result.as_numpy("predictions"), classifier.predict(rows))
            np.testing.assert_allclose(
                result.as_numpy("probabilities"), classifier.predict_proba(rows), atol=1e-6
            )

            # everything JSON both ways
            tensor = httpclient.InferInput("input", list(x.shape), "FP32")
            tensor.set_data_from_numpy(x, binary_data=False)
            result = client.infer(
                "reg", [tensor], outputs=[httpclient.InferRequestedOutput("predictions", False)]
            )
            np.testing.assert_allclose(
                result.as_numpy("predictions"), regressor.predict(x), rtol=1e-6
            )

            # a server-side error reaches the client as its message
            bad = httpclient.InferInput("input", [2, 3], "FP32")
            bad.set_data_from_numpy(np.zeros((2, 3), dtype=np.float32))
            with pytest.raises(Exception, match=r"shape \[2, 3\]"):
                client.infer("reg", [bad])
        finally:
            client.close()
