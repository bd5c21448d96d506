"""``encode_columns`` gives exactly the JSON text of ``to_columns``, on its fast path or not."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from modelport.monitoring.predlog_columns import REDACTED, to_columns
from modelport.monitoring.predlog_encode import EncodedColumns, encode_columns

NAMES = ("a", "b", "c")
CASES: dict[str, tuple[Any, tuple[str, ...] | None]] = {
    "float block": (np.array([[1.5, -2.0, 3.25], [0.1, 1e-300, 7.0]]), NAMES),
    "float block with NaN and infinities": (np.array([[np.nan, np.inf, -np.inf]]), NAMES),
    "float32 block": (np.array([[0.1, 0.2, 0.3]], dtype=np.float32), NAMES),
    "int block": (np.array([[1, -(2**63), 2**62]], dtype=np.int64), NAMES),
    "uint64 block": (np.array([[2**64 - 1, 0, 1]], dtype=np.uint64), NAMES),
    "bool block": (np.array([[True, False, True]]), NAMES),
    "block without names": (np.array([[1.0, 2.0, 3.0]]), None),
    "1-D array": (np.array([1.0, 2.0]), ("x",)),
    "mapping of arrays": (
        {"label": np.array([1, 0]), "proba": np.array([[0.25, 0.75], [np.nan, 0.5]])},
        None,
    ),
    "mapping with a string array": ({"s": np.array(["x", "y"])}, None),
    "mapping of lists": ({"x": [1, 2]}, None),
    "mapping with a 0-d array": ({"x": np.array(3.0)}, None),
    "mixed frame": (pd.DataFrame({"a": [1.0, 2.0], "b": ["x", None]}), None),
    "numeric frame": (pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, np.nan]}), None),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize(
    "caps",
    [{}, {"max_rows": 1}, {"max_values": 2}, {"redact": {"B", "proba"}}],
    ids=["no caps", "one row", "two values", "redacted"],
)
def test_same_text_as_to_columns(case: str, caps: dict[str, Any]) -> None:
    data, names = CASES[case]
    want, want_cut = to_columns(data, names, **caps)
    got, cut = encode_columns(data, names, **caps)
    assert isinstance(got, EncodedColumns)
    assert got.text == orjson.dumps(want).decode()
    assert cut == want_cut


def test_redacted_fields_never_appear_in_the_text() -> None:
    block = np.array([[123.456, 789.5]])
    text, _ = encode_columns(block, ("income", "age"), redact={"INCOME"})
    assert "123.456" not in text.text
    assert orjson.loads(text.text) == {"income": [REDACTED], "age": [789.5]}


def test_encoded_columns_pass_through() -> None:
    text, _ = encode_columns({"x": np.array([1.0])})
    again, cut = encode_columns(text)
    assert again is text
    assert not cut
