from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import SignatureError
from modelport.core.examples import decode, encode
from modelport.core.profile import DatasetProfile, profile_frame
from modelport.core.signature import Signature


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {"age": [31, 45, 27], "income": [1.5, 2.25, 3.0], "city": ["paris", "rome", "paris"]}
    )


def test_infer_columns_signature_and_round_trip() -> None:
    sig = Signature.infer(_frame(), {"predictions": np.array([0, 1, 0])})
    assert sig.kind == "columns"
    assert [(f.name, f.dtype) for f in sig.inputs] == [
        ("age", "int64"),
        ("income", "float64"),
        ("city", "string"),
    ]
    assert sig.outputs[0].name == "predictions"
    assert sig.outputs[0].shape == (-1,)
    assert Signature.from_dict(sig.to_dict()) == sig


def test_infer_tensor_signature() -> None:
    sig = Signature.infer(np.zeros((4, 20), dtype=np.float32))
    assert sig.kind == "tensors"
    assert sig.inputs[0].shape == (-1, 20)
    assert sig.inputs[0].dtype == "float32"
    with pytest.raises(SignatureError):
        Signature.infer(object())
    with pytest.raises(SignatureError):
        Signature.infer(np.float32(1.0))


def test_examples_round_trip_types() -> None:
    frame = _frame()
    back = decode(encode(frame))
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert list(back.dtypes.astype(str))[:2] == ["int64", "float64"]
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(decode(encode(arr)), arr)
    assert decode(encode(arr)).dtype == np.float32
    named = decode(encode({"a": np.array([1, 2]), "b": np.array(["x", "y"])}))
    assert named["a"].tolist() == [1, 2]
    assert named["b"].tolist() == ["x", "y"]


def test_profile_numeric_and_categorical() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "x": rng.normal(10, 2, 5000),
            "c": rng.choice(["a", "b", "c"], 5000, p=[0.5, 0.3, 0.2]),
        }
    )
    frame.loc[:9, "x"] = np.nan
    profile = profile_frame(frame)
    x = profile.feature("x")
    c = profile.feature("c")
    assert x is not None
    assert c is not None
    assert x.missing == 10
    assert x.mean == pytest.approx(10, abs=0.1)
    assert len(x.deciles) == 11
    assert len(x.percentiles) == 101
    assert x.deciles[5] == pytest.approx(10, abs=0.15)
    assert c.categories["a"] == pytest.approx(0.5, abs=0.03)
    assert profile.rows == 5000
    assert len(profile.sample["data"]) == 256
    assert DatasetProfile.from_dict(profile.to_dict()) == profile
