from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.core.errors import InvalidInputError, PredictionError
from modelport.core.signature import FieldSpec, Signature
from modelport.serving.adapt import outputs_to_arrays, tensors_to_input
from modelport.serving.tensors import (
    DATATYPES,
    datatype_of,
    decode_json_tensor,
    decode_outputs,
    encode_json_tensor,
)
from modelport.serving.types import Tensor

SAMPLES = {
    "BOOL": [True, False, True, True],
    "UINT8": [0, 1, 254, 255],
    "UINT16": [0, 1, 2, 65535],
    "UINT32": [0, 1, 2, 4294967295],
    "UINT64": [0, 1, 2, 18446744073709551615],
    "INT8": [-128, 0, 1, 127],
    "INT16": [-32768, 0, 1, 32767],
    "INT32": [-(2**31), 0, 1, 2**31 - 1],
    "INT64": [-(2**63), 0, 1, 2**63 - 1],
    "FP16": [0.5, -1.0, 2.0, 65504.0],
    "FP32": [0.25, -1.5, 3.0, 1e30],
    "FP64": [0.1, -1e300, 3.0, 1e-300],
    "BYTES": ["a", "", "héllo", "x" * 100],
}


def on_the_wire(encoded: dict[str, Any]) -> Any:
    """What a client reads: the server writes these with orjson's numpy option."""
    return orjson.loads(orjson.dumps(encoded, option=orjson.OPT_SERIALIZE_NUMPY))


@pytest.mark.parametrize("datatype", sorted(DATATYPES))
def test_every_datatype_round_trips_flat_and_nested(datatype: str) -> None:
    values = SAMPLES[datatype]
    nested = [values[:2], values[2:]]
    for data in (values, nested):
        tensor = decode_json_tensor(
            {"name": "x", "datatype": datatype, "shape": [2, 2], "data": data}, 0
        )
        assert tensor.shape == (2, 2)
        assert tensor.data.dtype == DATATYPES[datatype]
        encoded = on_the_wire(encode_json_tensor(tensor))
        assert encoded["shape"] == [2, 2]
        assert encoded["datatype"] == datatype
        if datatype.startswith("FP"):
            np.testing.assert_allclose(encoded["data"], values, rtol=1e-3)
        else:
            assert encoded["data"] == values
        assert datatype_of(tensor.data) == datatype


@pytest.mark.parametrize(
    ("tensor", "needle"),
    [
        ({"name": "x", "datatype": "INT8", "shape": [1], "data": [128]}, "datatype"),
        ({"name": "x", "datatype": "UINT8", "shape": [1], "data": [-1]}, "datatype"),
        ({"name": "x", "datatype": "FP32", "shape": [2], "data": ["SECRET", 1]}, "datatype"),
        ({"name": "x", "datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}, "datatype"),
        ({"name": "x", "datatype": "BF16", "shape": [1], "data": [1]}, "BF16"),
        ({"name": "x", "datatype": "FP32", "shape": [True], "data": [1]}, "shape"),
        ({"name": "x", "datatype": "FP32", "shape": [2**40, 2**40], "data": []}, "elements"),
        ({"name": "x", "datatype": "FP32", "shape": [1] * 9, "data": [1]}, "shape"),
        ({"name": "x", "datatype": "BYTES", "shape": [1], "data": ["a", "b"]}, "more elements"),
        ({"name": "x", "datatype": "BYTES", "shape": [1], "data": [5]}, "strings"),
        ({"name": "", "datatype": "FP32", "shape": [1], "data": [1]}, "name"),
        ({"name": "x", "datatype": "FP32", "shape": [1]}, "missing"),
        ("not an object", "object"),
    ],
)
def test_bad_tensors_are_refused_without_echo(tensor: object, needle: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        decode_json_tensor(tensor, 0)
    assert needle in str(info.value)
    assert "SECRET" not in str(info.value)


def test_requested_outputs_and_non_finite_values() -> None:
    assert decode_outputs(None) is None
    assert [o.name for o in decode_outputs([{"name": "a"}, {"name": "b"}]) or ()] == ["a", "b"]
    with pytest.raises(InvalidInputError):
        decode_outputs([{"name": "a"}] * 300)
    nan = on_the_wire(encode_json_tensor(Tensor("y", "FP64", np.array([1.0, np.nan, np.inf]))))
    assert nan["data"] == [1.0, None, None]


def test_tensors_to_columns_input_casts_and_checks() -> None:
    sig = Signature(
        "columns",
        (
            FieldSpec("age", "int64"),
            FieldSpec("city", "string"),
            FieldSpec("opt", "float64", optional=True),
        ),
    )
    frame = tensors_to_input(
        [
            Tensor("age", "FP64", np.array([31.0, 40.0])),
            Tensor("city", "BYTES", np.array(["paris", "rome"], dtype=object)),
        ],
        sig,
        "m",
    )
    assert isinstance(frame, pd.DataFrame)
    assert frame["age"].dtype == np.int64
    assert frame["city"].tolist() == ["paris", "rome"]
    for bad, needle in (
        (
            [
                Tensor("age", "FP64", np.array([1.5])),
                Tensor("city", "BYTES", np.array(["a"], dtype=object)),
            ],
            "integers",
        ),
        (
            [Tensor("age", "INT64", np.array([1])), Tensor("city", "INT64", np.array([2]))],
            "strings",
        ),
        ([Tensor("age", "INT64", np.array([1]))], "missing"),
        (
            [
                Tensor("age", "INT64", np.array([1, 2])),
                Tensor("city", "BYTES", np.array(["a"], dtype=object)),
            ],
            "batch",
        ),
    ):
        with pytest.raises(InvalidInputError, match=needle):
            tensors_to_input(bad, sig, "m")


def test_outputs_must_have_one_row_per_input_row() -> None:
    assert outputs_to_arrays([1, 2], 2, "m")["predictions"].tolist() == [1, 2]
    with pytest.raises(PredictionError):
        outputs_to_arrays({"a": np.zeros(3)}, 2, "m")
