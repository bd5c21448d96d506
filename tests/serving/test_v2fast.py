"""The one-pass V2 JSON decoder and encoder give what the general ones give, errors included."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelport.core.errors import InvalidInputError
from modelport.serving.tensors import DATATYPES, encode_json_tensor
from modelport.serving.types import Prediction, RequestedOutput
from modelport.serving.v2codec import (
    decode_general_request,
    decode_infer_request,
    encode_infer_response,
    select_outputs,
)
from modelport.serving.v2fast import decode_plain_request, encode_plain_outputs

NUMERIC = [name for name in DATATYPES if name != "BYTES"]


def _outcome(decode: Any, body: Any) -> Any:
    """What a decoder gives, in a comparable form: the values, or the error's type and text."""
    try:
        request_id, tensors, outputs, parameters = decode(body)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    described = [
        (t.name, t.datatype, dict(t.parameters), t.data.dtype.str, t.data.shape, t.data.tolist())
        for t in tensors
    ]
    return ("ok", request_id, described, outputs, dict(parameters))


def _same(plain: Any, general: Any) -> bool:
    # NaN (from a null in FP data) is not equal to itself: compare the reprs of the values
    return repr(plain) == repr(general)


# ---- the common shapes take the one-pass path ----------------------------------------------


@pytest.mark.parametrize("datatype", ["FP32", "FP64", "INT64"])
@pytest.mark.parametrize("nested", [False, True])
def test_common_requests_are_decoded_in_one_pass_with_the_same_result(
    datatype: str, nested: bool
) -> None:
    rows = np.arange(40, dtype=np.float64).reshape(2, 20) / 8
    data = rows.tolist() if nested else rows.reshape(-1).tolist()
    body = orjson.loads(
        orjson.dumps(
            {
                "id": "r-1",
                "inputs": [{"name": "input", "shape": [2, 20], "datatype": datatype, "data": data}],
                "outputs": [{"name": "probabilities"}],
                "parameters": {"timeout": 2},
            }
        )
    )
    plain = decode_plain_request(body)
    assert plain is not None
    assert _outcome(lambda _: plain, body) == _outcome(decode_general_request, body)
    tensor = plain[1][0]
    assert tensor.data.dtype == DATATYPES[datatype]
    assert tensor.data.shape == (2, 20)
    assert tensor.data.flags.c_contiguous


@pytest.mark.parametrize(
    ("tensor", "needle"),
    [
        ({"name": "x", "datatype": "FP32", "shape": [2], "data": ["SECRET", 1]}, "datatype"),
        ({"name": "x", "datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}, "datatype"),
        ({"name": "x", "datatype": "INT8", "shape": [1], "data": [128]}, "datatype"),
        ({"name": "x", "datatype": "FP64", "shape": [3], "data": [1.0, 2.0]}, "needs 3"),
    ],
)
def test_data_errors_are_the_general_decoders_and_never_echo_values(
    tensor: dict[str, Any], needle: str
) -> None:
    body = {"inputs": [tensor]}
    with pytest.raises(InvalidInputError) as info:
        decode_plain_request(body)
    assert needle in str(info.value)
    assert "SECRET" not in str(info.value)
    assert _outcome(decode_plain_request, body) == _outcome(decode_general_request, body)


def test_other_shapes_are_left_to_the_general_decoder() -> None:
    tensor: dict[str, Any] = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
    bodies: list[Any] = [
        {"inputs": [{**tensor, "datatype": "BYTES", "data": ["a"]}]},
        {"inputs": [{**tensor, "datatype": "BF16"}]},
        {"inputs": [{**tensor, "shape": [True]}]},
        {"inputs": [{**tensor, "shape": (1,)}]},  # a tuple: valid, but not what JSON gives
        {"inputs": [tensor], "outputs": "probabilities"},
        {"inputs": [tensor], "id": 5},
        {"inputs": []},
        [tensor],
    ]
    for body in bodies:
        assert decode_plain_request(body) is None


# ---- every field at and past its limits: the same outcome ----------------------------------

_ONE = {"name": "x", "datatype": "FP32", "shape": [1], "data": [1.0]}
_BOUNDARY = [None, 0, -1, True, 1.5, "", "x", [], {}, [1], {"a": 1}]
_SPOILS: list[tuple[str, str | None, list[Any]]] = [
    # (where, key, values): "body" / "tensor" / "output"; key None: the object itself
    ("body", None, [[], "x", None]),
    ("body", "id", [*_BOUNDARY, "i" * 256, "i" * 257]),
    ("body", "inputs", [*_BOUNDARY, [_ONE] * 256, [_ONE] * 257]),
    ("body", "parameters", [*_BOUNDARY, {"timeout": 1}]),
    ("body", "outputs", [*_BOUNDARY, [{"name": "a"}] * 256, [{"name": "a"}] * 257]),
    ("output", None, _BOUNDARY),
    ("output", "name", [*_BOUNDARY, "n" * 256, "n" * 257]),
    ("output", "parameters", [*_BOUNDARY, {"binary_data": True}]),
    ("tensor", None, _BOUNDARY),
    ("tensor", "name", [*_BOUNDARY, "n" * 256, "n" * 257]),
    ("tensor", "datatype", [*_BOUNDARY, *DATATYPES, "BF16", "fp32"]),
    (
        "tensor",
        "shape",
        [
            *_BOUNDARY,
            [-1],
            [2, -1],
            [True],
            [2.0],
            [16_000_000],
            [16_000_001],
            [4_000, 4_001],
            [1] * 8,
            [1] * 9,
            [2, 1],
            [],
            [0],
        ],
    ),
    ("tensor", "parameters", [*_BOUNDARY, {"content_type": "np"}]),
    ("tensor", "data", [*_BOUNDARY, [1.0, 2.0], [[1.0], [2.0]], [[1.0, 2.0]], [1.0, "2"]]),
]


def _spoiled() -> list[tuple[str, Any]]:
    cases = []
    for where, key, values in _SPOILS:
        for value in [*values, "<gone>"] if key is not None else values:
            tensor: Any = {"name": "x", "datatype": "FP64", "shape": [2], "data": [1.0, 2.0]}
            output: Any = {"name": "probabilities"}
            body: Any = {"id": "r", "inputs": [tensor], "outputs": [output], "parameters": {}}
            if key is None:
                if where == "body":
                    body = value
                elif where == "tensor":
                    body["inputs"] = [tensor, value]
                else:
                    body["outputs"] = [output, value]
            else:
                target = {"body": body, "tensor": tensor, "output": output}[where]
                if value == "<gone>":
                    target.pop(key, None)
                else:
                    target[key] = value
            cases.append((f"{where}.{key}={str(value)[:20]}", body))
    return cases


@pytest.mark.parametrize(("case", "body"), _spoiled(), ids=[c for c, _ in _spoiled()])
def test_fields_at_their_limits_decode_as_the_general_decoder_decodes_them(
    case: str, body: Any
) -> None:
    assert _same(_outcome(decode_infer_request, body), _outcome(decode_general_request, body))


# ---- random requests, valid and not: the same outcome ---------------------------------------

JUNK = st.sampled_from(
    [None, 0, 1, -1, 2**40, 1.5, "", "x", "x" * 257, True, False, [], {}, [1, "a"], {"a": 1}]
)
NAMES = st.sampled_from(["", "n" * 256, "n" * 257]) | JUNK
DATATYPE_VALUES = st.sampled_from([*DATATYPES, "BF16", "fp32", "FP8"]) | JUNK


def _mostly(draw: st.DrawFn, good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    """A value from ``good`` nine times in ten, else from ``bad``."""
    return draw(bad if draw(st.integers(0, 9)) == 7 else good)  # 7: not a bound Hypothesis favours


def _values(datatype: object) -> st.SearchStrategy[Any]:
    if datatype == "BYTES":
        return st.text(max_size=3)
    if datatype == "BOOL":
        return st.booleans()
    if isinstance(datatype, str) and datatype[:1] in ("I", "U"):
        return st.integers(0, 127)
    return st.floats(-1e4, 1e4, allow_nan=False, width=16) | st.integers(-1000, 1000)


def _odd_values(datatype: object) -> st.SearchStrategy[Any]:
    """Values some datatypes refuse (or take in their own way: numpy's conversions)."""
    return st.sampled_from([None, "2.5", "SECRET", True, 1.5, -1, 300, 2**63, [1], {}]) | (
        st.integers(-(2**64), 2**64) if datatype != "FP16" else st.integers(-(2**15), 2**15)
    )


@st.composite
def tensors(draw: st.DrawFn) -> Any:
    datatype = _mostly(draw, st.sampled_from(NUMERIC * 3 + ["BYTES"]), DATATYPE_VALUES)
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    count = math.prod(shape)
    values = _values(datatype)
    flat = draw(
        st.lists(
            values | _odd_values(datatype) if draw(st.integers(0, 5)) == 0 else values,
            min_size=count,
            max_size=count,
        )
    )
    if draw(st.booleans()) and shape and count:  # nested like the shape
        data: Any = np.asarray(flat, dtype=object).reshape(shape).tolist()
    else:
        data = flat
    name = _mostly(draw, st.sampled_from(["x", "y", "input"]), NAMES)
    obj: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape, "data": data}
    if draw(st.booleans()):
        obj["parameters"] = _mostly(draw, st.sampled_from([{}, {"content_type": "np"}, None]), JUNK)
    for _ in range(draw(st.sampled_from([0, 0, 0, 0, 1, 2]))):  # spoil a field
        key = draw(st.sampled_from(["name", "datatype", "shape", "data", "parameters"]))
        spoil = draw(st.integers(0, 3))
        if spoil == 0:
            obj.pop(key, None)
        elif spoil == 1 and key == "shape":
            obj["shape"] = [*shape, draw(st.integers(-1, 2))]
        elif spoil == 2 and key == "data" and isinstance(data, list):
            obj["data"] = [*data, draw(values)]
        else:
            obj[key] = draw(JUNK)
    return _mostly(draw, st.just(obj), JUNK)


@st.composite
def outputs(draw: st.DrawFn) -> Any:
    items = []
    for _ in range(draw(st.integers(0, 3))):
        item = {"name": _mostly(draw, st.sampled_from(["probabilities", "a"]), NAMES)}
        if draw(st.booleans()):
            item["parameters"] = _mostly(draw, st.sampled_from([{}, {"binary_data": True}]), JUNK)
        items.append(_mostly(draw, st.just(item), JUNK))
    return _mostly(draw, st.just(items), JUNK)


@st.composite
def requests(draw: st.DrawFn) -> Any:
    body = {"inputs": _mostly(draw, st.lists(tensors(), min_size=1, max_size=3), JUNK)}
    if draw(st.booleans()):
        body["id"] = _mostly(draw, st.sampled_from(["r-1", "i" * 256]), JUNK)
    if draw(st.booleans()):
        body["outputs"] = draw(outputs())
    if draw(st.booleans()):
        body["parameters"] = _mostly(draw, st.sampled_from([{}, {"timeout": 1}, None]), JUNK)
    return _mostly(draw, st.just(body), JUNK)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=requests())
def test_random_requests_decode_as_the_general_decoder_decodes_them(body: Any) -> None:
    values = [body]
    with contextlib.suppress(TypeError):  # not JSON (an int past 64 bits, a lone surrogate)
        values.append(orjson.loads(orjson.dumps(body)))  # what the server decodes
    for value in values:
        assert _same(
            _outcome(decode_infer_request, value), _outcome(decode_general_request, value)
        ), value


# ---- encoding ---------------------------------------------------------------------------------

ARRAYS = st.sampled_from(
    [
        np.array([[0.25, 0.75]], dtype=np.float32),
        np.array([[0.1, 0.9], [0.5, 0.5]]),
        np.array([1, 0], dtype=np.int64),
        np.array([True, False]),
        np.array([3, 4], dtype=np.uint8),
        np.array([1.0, np.nan, np.inf]),
        np.array([1.5, 2.5], dtype=">f8"),  # not native-endian
        np.array([["a", "b"]], dtype=object),
        np.array(["x", "y"]),
        np.arange(6, dtype=np.float64).reshape(2, 3).T,  # not C-contiguous
        np.arange(8, dtype=np.int32)[::2],
        np.array([1.0, 2.0], dtype=np.float16),
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    outputs=st.dictionaries(st.sampled_from(["a", "b", "c"]), ARRAYS, min_size=1),
    requested=st.none() | st.lists(st.sampled_from(["a", "b", "c", "zz"]), max_size=3),
    request_id=st.none() | st.just("r-9"),
)
def test_responses_encode_as_the_general_encoder_encodes_them(
    outputs: dict[str, np.ndarray], requested: list[str] | None, request_id: str | None
) -> None:
    prediction = Prediction("m", 3, outputs, 1)
    wanted = None if requested is None else tuple(RequestedOutput(n) for n in requested)

    def general() -> list[dict[str, Any]]:
        return [encode_json_tensor(t) for _, t in select_outputs(prediction, wanted)]

    def wire(value: Any) -> Any:
        try:
            return orjson.dumps(
                value() if callable(value) else value, option=orjson.OPT_SERIALIZE_NUMPY
            )
        except Exception as exc:
            return ("error", type(exc).__name__, str(exc))

    plain = encode_plain_outputs(prediction, wanted)
    if plain is not None:
        assert wire(plain) == wire(general)
    response = wire(lambda: encode_infer_response(prediction, request_id, wanted))
    expected = wire(
        lambda: {
            "model_name": "m",
            "model_version": "3",
            "outputs": general(),
            **({"id": request_id} if request_id is not None else {}),
        }
    )
    assert response == expected
