"""The edge takes the paths ``routes.v2.INFER_PATTERNS`` describe, and only those."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelport.serving.edge import InferEdge
from modelport.serving.routes.v2 import INFER_PATTERNS


def _by_pattern(path: str) -> tuple[str, str | None] | None:
    for pattern in INFER_PATTERNS:
        found = pattern.fullmatch(path)
        if found is not None:
            groups = found.groupdict()
            return groups["model"], groups.get("version")
    return None


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/v2/models/hgb/infer", ("hgb", None)),
        ("/v2/models/hgb/versions/3/infer", ("hgb", "3")),
        ("/v2/models/a b\n/versions/x/infer", ("a b\n", "x")),
        ("/v2/models/infer", None),
        ("/v2/models//infer", None),
        ("/v2/models/hgb/versions//infer", None),
        ("/v2/models/hgb/versions/1/2/infer", None),
        ("/v2/models/hgb/other/1/infer", None),
        ("/v2/models/hgb/infer/", None),
        ("/v2/models/hgb", None),
        ("/v2/modelshgb/infer", None),
    ],
)
def test_infer_paths(path: str, target: tuple[str, str | None] | None) -> None:
    assert InferEdge.target(path) == target == _by_pattern(path)


PARTS = st.sampled_from(["/", "v2", "models", "versions", "infer", "hgb", "1", "", " ", "\n", "é"])


@settings(max_examples=500, deadline=None)
@given(
    prefix=st.sampled_from(["", "/v2/models/", "/v2/models", "/v2/"]),
    parts=st.lists(PARTS, max_size=8),
    suffix=st.sampled_from(["", "/infer", "infer", "/infer/"]),
)
def test_random_paths_match_as_the_patterns_do(prefix: str, parts: list[str], suffix: str) -> None:
    path = prefix + "".join(parts) + suffix
    assert InferEdge.target(path) == _by_pattern(path)
