"""Schema compatibility: what the candidate must accept of what the current version accepts."""

from __future__ import annotations

import pandas as pd
import pytest

from modelport.core.signature import FieldSpec, Signature
from modelport.rollout.schema_compat import CompatReport, check_compatibility, widens


def columns(*fields: FieldSpec, outputs: tuple[FieldSpec, ...] = ()) -> Signature:
    return Signature("columns", tuple(fields), outputs)


def tensors(*fields: FieldSpec) -> Signature:
    return Signature("tensors", tuple(fields))


def kinds(report: CompatReport) -> list[tuple[str, str | None, str]]:
    return [(c.kind, c.field, c.severity) for c in report.changes]


CURRENT = columns(FieldSpec("age", "int64"), FieldSpec("income", "float64"))


def test_identical_signatures_have_no_changes() -> None:
    report = check_compatibility(CURRENT, CURRENT)
    assert report.changes == ()
    assert not report.breaking
    assert report.to_dict() == {"breaking": False, "changes": []}


def test_removed_input_is_breaking() -> None:
    report = check_compatibility(CURRENT, columns(FieldSpec("age", "int64")))
    assert kinds(report) == [("input_removed", "income", "breaking")]
    assert report.breaking
    assert "'income'" in report.breaking_changes[0].detail


def test_added_optional_input_is_fine_and_added_required_is_breaking() -> None:
    optional = columns(*CURRENT.inputs, FieldSpec("city", "string", optional=True))
    assert kinds(check_compatibility(CURRENT, optional)) == [
        ("optional_input_added", "city", "compatible")
    ]
    assert not check_compatibility(CURRENT, optional).breaking
    required = columns(*CURRENT.inputs, FieldSpec("city", "string"))
    assert kinds(check_compatibility(CURRENT, required)) == [
        ("required_input_added", "city", "breaking")
    ]


@pytest.mark.parametrize(
    ("old", "new", "severity"),
    [
        ("int32", "int64", "compatible"),
        ("float32", "float64", "compatible"),
        ("int64", "float64", "compatible"),
        ("bool", "int8", "compatible"),
        ("uint8", "int16", "compatible"),
        ("float64", "int64", "breaking"),
        ("float32", "int32", "breaking"),
        ("int64", "int32", "breaking"),
        ("float64", "float32", "breaking"),
        ("int64", "uint64", "breaking"),
        ("int64", "string", "breaking"),
        ("string", "bytes", "breaking"),
        ("datetime", "int64", "breaking"),
    ],
)
def test_retyping_is_compatible_only_when_it_widens(old: str, new: str, severity: str) -> None:
    report = check_compatibility(columns(FieldSpec("x", old)), columns(FieldSpec("x", new)))
    (change,) = report.changes
    assert change.severity == severity
    assert change.kind == ("input_widened" if severity == "compatible" else "input_retyped")
    assert widens(old, new) is (severity == "compatible")
    assert f"{old} to {new}" in change.detail


def test_optionality_changes() -> None:
    made_optional = columns(FieldSpec("age", "int64", optional=True), CURRENT.inputs[1])
    assert kinds(check_compatibility(CURRENT, made_optional)) == [
        ("input_now_optional", "age", "compatible")
    ]
    assert kinds(check_compatibility(made_optional, CURRENT)) == [
        ("input_now_required", "age", "breaking")
    ]


@pytest.mark.parametrize(
    ("old", "new", "kind", "severity"),
    [
        ((-1, 4), (-1, 4), None, None),
        ((-1, 4), (-1, 5), "input_reshaped", "breaking"),
        ((-1, 4), (-1, 4, 1), "input_reshaped", "breaking"),
        ((-1, 4), (-1, -1), "input_shape_relaxed", "compatible"),
        ((-1, -1), (-1, 4), "input_reshaped", "breaking"),
        ((-1, 4), None, "input_shape_relaxed", "compatible"),
        (None, (-1, 4), "input_reshaped", "breaking"),
    ],
)
def test_tensor_shapes(
    old: tuple[int, ...] | None,
    new: tuple[int, ...] | None,
    kind: str | None,
    severity: str | None,
) -> None:
    report = check_compatibility(
        tensors(FieldSpec("pixels", "float32", old)), tensors(FieldSpec("pixels", "float32", new))
    )
    if kind is None:
        assert report.changes == ()
    else:
        assert kinds(report) == [(kind, "pixels", severity)]


def test_tensor_signatures_compare_like_columns() -> None:
    current = tensors(FieldSpec("a", "float32", (-1, 3)), FieldSpec("b", "int32", (-1,)))
    candidate = tensors(FieldSpec("a", "float64", (-1, 3)), FieldSpec("c", "int32", (-1,)))
    assert kinds(check_compatibility(current, candidate)) == [
        ("input_widened", "a", "compatible"),
        ("input_removed", "b", "breaking"),
        ("required_input_added", "c", "breaking"),
    ]


def test_kind_change_is_breaking() -> None:
    report = check_compatibility(CURRENT, tensors(*CURRENT.inputs))
    assert kinds(report)[0] == ("kind_changed", None, "breaking")
    assert "columns to tensors" in report.changes[0].detail


def test_output_changes_are_info_only() -> None:
    current = columns(
        *CURRENT.inputs,
        outputs=(FieldSpec("predictions", "int64", (-1,)), FieldSpec("probabilities", "float64")),
    )
    candidate = columns(
        *CURRENT.inputs,
        outputs=(FieldSpec("predictions", "float64", (-1, 1)), FieldSpec("score", "float32")),
    )
    report = check_compatibility(current, candidate)
    assert kinds(report) == [
        ("output_retyped", "predictions", "info"),
        ("output_reshaped", "predictions", "info"),
        ("output_removed", "probabilities", "info"),
        ("output_added", "score", "info"),
    ]
    assert not report.breaking


def test_missing_signature_cannot_be_checked_and_blocks() -> None:
    for current, candidate, who in (
        (None, CURRENT, "current version"),
        (CURRENT, None, "candidate"),
    ):
        report = check_compatibility(current, candidate)
        assert kinds(report) == [("signature_missing", None, "breaking")]
        assert who in report.changes[0].detail


def test_inferred_signatures_and_round_trip() -> None:
    frame = pd.DataFrame({"age": [31, 45], "income": [1.5, 2.5], "city": ["a", "b"]})
    current = Signature.infer(frame)
    candidate = Signature.infer(frame.drop(columns=["city"]).astype({"age": "int32"}))
    report = check_compatibility(current, candidate)
    assert kinds(report) == [
        ("input_retyped", "age", "breaking"),
        ("input_removed", "city", "breaking"),
    ]
    assert CompatReport.from_dict(report.to_dict()) == report
