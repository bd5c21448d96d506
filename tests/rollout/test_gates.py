"""Gate verdicts from figures: smoke, regression and schema, no model and no clock."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from modelport.core.errors import InvalidInputError
from modelport.core.signature import FieldSpec, Signature
from modelport.rollout.gate_report import (
    REPORT_HEADERS,
    Check,
    GateReport,
    evaluate_schema,
    schema_check,
)
from modelport.rollout.gates import Tolerance, evaluate_regression, evaluate_smoke, percentile
from modelport.rollout.schema_compat import check_compatibility

EXPECTED = ("predictions", "probabilities")


def answer(rows: int = 2, **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "predictions": np.zeros(rows, dtype=np.int64),
        "probabilities": np.full((rows, 2), 0.5),
    }
    out.update(changes)
    return out


def smoke(outputs: list[Any], latencies: list[float] | None = None, **kw: Any) -> GateReport:
    n = len(outputs)
    kw.setdefault("input_rows", [2] * n)
    kw.setdefault("candidate", "fraud:2")
    return evaluate_smoke(
        outputs,
        latencies if latencies is not None else [1.0] * n,
        kw.pop("budget_ms", 50.0),
        kw.pop("expected", EXPECTED),
        **kw,
    )


def failed_names(report: GateReport) -> list[str]:
    return [c.name for c in report.failed]


# -- smoke --------------------------------------------------------------------------------------
def test_smoke_passes_for_valid_answers_within_budget() -> None:
    report = smoke([answer(), answer(), answer(1)], [2.0, 3.0, 4.0], input_rows=[2, 2, 1])
    assert report.passed, report.rows()
    assert [c.name for c in report.checks] == [
        "answered",
        "valid_outputs",
        "output_names",
        "row_counts",
        "latency_max_ms",
    ]
    latency = report.check("latency_max_ms")
    assert latency is not None
    assert (latency.figure, latency.threshold, latency.op, latency.unit) == (4.0, 50.0, "<=", "ms")
    assert "p95" in latency.detail
    assert report.summary() == "smoke gate passed for fraud:2"


def test_smoke_fails_when_a_call_is_over_budget() -> None:
    report = smoke([answer(), answer()], [2.0, 75.5])
    assert failed_names(report) == ["latency_max_ms"]
    assert "1 of 2 calls over budget" in report.failed[0].detail
    assert report.summary() == "smoke gate FAILED for fraud:2: latency_max_ms"


@pytest.mark.parametrize(
    ("output", "failing", "says"),
    [
        (answer(probabilities=np.array([[0.5, math.nan], [0.5, 0.5]])), "valid_outputs", "NaN"),
        (answer(predictions=np.array([1.0, math.inf])), "valid_outputs", "NaN/inf"),
        (answer(predictions=np.array([1, None], dtype=object)), "valid_outputs", "None"),
        (answer(predictions=None), "valid_outputs", "is None"),
        ({"predictions": np.zeros(2)}, "output_names", "'probabilities'"),
        (answer(predictions=np.zeros(3)), "row_counts", "predictions has 3 rows for 2"),
    ],
)
def test_smoke_finds_invalid_outputs(output: Any, failing: str, says: str) -> None:
    report = smoke([answer(), output])
    assert failing in failed_names(report)
    check = report.check(failing)
    assert check is not None
    assert check.figure == 1
    assert "call 2" in check.detail
    assert says in check.detail


def test_smoke_records_failed_calls_by_source() -> None:
    report = smoke(
        [answer(), None, None],
        errors=[None, "model failed to predict: boom", None],
        sources=["input_example", "golden[0]", "golden[1]"],
    )
    assert failed_names(report) == ["answered"]
    check = report.failed[0]
    assert (check.figure, check.threshold) == (1, 3)
    assert "2 of 3 calls failed; first: golden[0]: model failed to predict: boom" in check.detail


def test_smoke_without_calls_fails_every_check() -> None:
    report = smoke([])
    assert not report.passed
    assert "no calls were made" in report.checks[0].detail
    assert set(failed_names(report)) == {
        "answered",
        "valid_outputs",
        "output_names",
        "row_counts",
        "latency_max_ms",
    }


def test_smoke_accepts_frames_bare_arrays_and_unknown_outputs() -> None:
    frame = pd.DataFrame({"predictions": [1, 0], "probabilities": [0.2, 0.9]})
    assert smoke([frame]).passed
    assert smoke([np.array([1.5, 2.5])], expected=("output",)).passed
    report = smoke([np.array([1.5, 2.5])], expected=())
    assert report.passed
    names = report.check("output_names")
    assert names is not None
    assert names.threshold is None  # informational: nothing recorded to expect
    assert smoke([[1, 2]], expected=("y",)).passed  # plain lists are read as arrays


def test_smoke_refuses_inconsistent_or_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="latencies_ms has 1 entries for 2 calls"):
        smoke([answer(), answer()], [1.0])
    with pytest.raises(InvalidInputError, match="input_rows"):
        smoke([answer()], input_rows=[])
    for budget in (0, -1, math.nan, math.inf):
        with pytest.raises(InvalidInputError, match="latency budget"):
            smoke([answer()], budget_ms=budget)
    with pytest.raises(InvalidInputError, match="latency"):
        smoke([answer()], [-1.0])


# -- report shape -------------------------------------------------------------------------------
def test_report_round_trips_through_json_and_renders_rows() -> None:
    report = smoke([answer(), answer()], [1.25, 99.0], info={"repeats": 2})
    document = json.loads(json.dumps(report.to_dict()))
    assert document["gate"] == "smoke"
    assert document["candidate"] == "fraud:2"
    assert document["baseline"] is None
    assert document["passed"] is False
    assert document["info"] == {"repeats": 2}
    assert set(document["checks"][0]) == {
        "name",
        "figure",
        "threshold",
        "op",
        "unit",
        "passed",
        "detail",
    }
    assert GateReport.from_dict(document) == report
    rows = report.rows()
    assert len(REPORT_HEADERS) == len(rows[0])
    assert rows[-1][:4] == ["latency_max_ms", "99 ms", "<= 50 ms", "FAIL"]
    assert rows[0][:4] == ["answered", "2", "== 2", "ok"]


def test_non_finite_figures_serialise_as_null() -> None:
    check = Check("x", math.nan, math.inf, False)
    assert check.to_dict()["figure"] is None
    assert check.to_dict()["threshold"] is None
    assert Check("info", 0.123456, None, True).row()[2:4] == ["-", "info"]


def test_report_without_checks_does_not_pass() -> None:
    assert not GateReport("smoke", "fraud:1", None, ()).passed


# -- regression ---------------------------------------------------------------------------------
LABELS = [0, 1] * 50
GOOD = list(LABELS)
BASE = [*LABELS[:90], *(1 - y for y in LABELS[90:])]  # 90% accurate


def regression(cand: list[Any] | None, base: list[Any] = BASE, **kw: Any) -> GateReport:
    labels = kw.pop("labels", LABELS)
    return evaluate_regression(
        cand,
        base,
        labels,
        kw.pop("cand_ms", [1.0, 2.0, 3.0]),
        kw.pop("base_ms", [1.0, 1.5, 2.0]),
        kw.pop("tolerances", None),
        kw.pop("min_agreement", None),
        kw.pop("p95_budget_ms", None),
        candidate="fraud:2",
        baseline="fraud:1",
        **kw,
    )


def test_better_classifier_passes_with_metric_deltas() -> None:
    report = regression(GOOD)
    assert report.passed, report.rows()
    delta = report.check("accuracy_delta")
    assert delta is not None
    assert delta.figure == pytest.approx(0.1)
    assert (delta.threshold, delta.op) == (-0.01, ">=")
    assert "candidate 1 vs baseline 0.9 on 100 rows (tolerance 0.01)" in delta.detail
    agreement = report.check("agreement")
    assert agreement is not None
    assert agreement.figure == pytest.approx(0.9)
    assert agreement.threshold is None  # with labels, agreement is reported, not gated
    assert report.info["task"] == "classification"
    assert report.info["candidate_metrics"] == {"accuracy": 1.0}
    assert report.info["baseline_metrics"] == {"accuracy": pytest.approx(0.9)}
    assert report.summary() == "regression gate passed for fraud:2 vs fraud:1"


def test_constant_classifier_fails_on_the_accuracy_delta() -> None:
    report = regression([0] * 100)
    assert failed_names(report) == ["accuracy_delta"]
    delta = report.failed[0]
    assert delta.figure == pytest.approx(0.5 - 0.9)
    assert "candidate 0.5 vs baseline 0.9" in delta.detail
    assert "accuracy_delta" in report.summary()


def test_tolerances_absolute_and_relative() -> None:
    slightly_worse = [*BASE[:85], *(1 - y for y in BASE[85:90]), *BASE[90:]]  # 85%
    assert "accuracy_delta" in failed_names(regression(slightly_worse))
    assert regression(slightly_worse, tolerances={"accuracy": 0.06}).passed
    assert regression(slightly_worse, tolerances={"accuracy": Tolerance.parse("6%")}).passed
    assert not regression(slightly_worse, tolerances={"accuracy": Tolerance.parse("5%")}).passed


def test_tolerance_parsing() -> None:
    assert Tolerance.parse("0.01") == Tolerance(0.01)
    assert Tolerance.parse(" 5% ") == Tolerance(0.05, relative=True)
    assert str(Tolerance(0.05, relative=True)) == "5%"
    assert Tolerance(0.05, relative=True).allowed(-2.0) == pytest.approx(0.1)
    for bad in ("abc", "5%%", "", "-1", "nan"):
        with pytest.raises(InvalidInputError):
            Tolerance.parse(bad)


def test_unknown_or_misapplied_tolerances_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="no metric 'auc'"):
        regression(GOOD, tolerances={"auc": 0.1})
    with pytest.raises(InvalidInputError, match="mae does not apply to a classification"):
        regression(GOOD, tolerances={"mae": 0.1})


def test_missing_candidate_predictions_count_as_wrong_and_fail() -> None:
    holes = [None if i % 10 == 0 else y for i, y in enumerate(GOOD)]
    report = regression(holes)
    assert failed_names(report) == ["missing_predictions"]
    assert report.info["candidate_metrics"] == {"accuracy": pytest.approx(0.9)}
    nan_labels = [math.nan, *LABELS[1:]]
    labelled = regression(GOOD, labels=nan_labels)
    assert labelled.info["labelled_rows"] == 99


def test_without_labels_agreement_gates_with_the_default() -> None:
    report = regression(GOOD, labels=None)
    agreement = report.check("agreement")
    assert agreement is not None
    assert (agreement.threshold, agreement.passed) == (0.9, True)
    assert report.check("accuracy_delta") is None
    assert report.info["metrics"] == "skipped: no labels"
    low = regression([0] * 100, labels=None)
    assert failed_names(low) == ["agreement"]
    assert "50 of 100 rows agree (same label)" in low.failed[0].detail
    strict = regression(GOOD, min_agreement=0.95)
    assert failed_names(strict) == ["agreement"]
    with pytest.raises(InvalidInputError, match="min_agreement"):
        regression(GOOD, min_agreement=1.5)


def test_labels_compare_across_types() -> None:
    as_text = ["1" if y else "0" for y in GOOD]
    report = regression(as_text, labels=[float(y) for y in LABELS])
    assert report.info["candidate_metrics"] == {"accuracy": 1.0}


def test_regressors_use_mae_rmse_and_tolerant_agreement() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(10, 2, size=200)
    base = (y + rng.normal(0, 0.5, size=200)).tolist()
    close = (np.asarray(base) * 1.01).tolist()
    report = regression(close, base, labels=y.tolist())
    assert report.info["task"] == "regression"
    assert [c.name for c in report.checks] == [
        "missing_predictions",
        "mae_delta",
        "rmse_delta",
        "agreement",
        "p95_ms",
    ]
    assert report.passed, report.rows()
    mae = report.check("mae_delta")
    assert mae is not None
    assert mae.op == "<="
    assert mae.threshold == pytest.approx(0.05 * report.info["baseline_metrics"]["mae"])
    constant = regression([10.0] * 200, base, labels=y.tolist())
    assert {"mae_delta", "rmse_delta"} <= set(failed_names(constant))
    far = regression((np.asarray(base) + 5).tolist(), base, labels=None)
    assert failed_names(far) == ["agreement"]
    assert "within rtol 0.05" in far.failed[0].detail


def test_p95_budget() -> None:
    cand_ms = [float(i) for i in range(1, 101)]
    report = regression(GOOD, cand_ms=cand_ms, base_ms=[1.0] * 100, p95_budget_ms=50.0)
    assert failed_names(report) == ["p95_ms"]
    p95 = report.failed[0]
    assert p95.figure == pytest.approx(np.quantile(cand_ms, 0.95))
    assert "baseline p95 1 ms" in p95.detail
    assert "95.05x" in p95.detail
    unbudgeted = regression(GOOD, cand_ms=cand_ms)
    check = unbudgeted.check("p95_ms")
    assert check is not None
    assert (check.threshold, check.passed) == (None, True)
    with pytest.raises(InvalidInputError, match="p95 budget"):
        regression(GOOD, p95_budget_ms=0)


def test_schema_changes_block_unless_allowed() -> None:
    current = Signature("columns", (FieldSpec("a", "float64"), FieldSpec("b", "float64")))
    candidate = Signature("columns", (FieldSpec("a", "float64"),))
    compat = check_compatibility(current, candidate)
    blocked = regression(GOOD, schema=compat)
    assert failed_names(blocked) == ["schema"]
    assert "input 'b' (float64) is gone" in blocked.failed[0].detail
    assert blocked.info["schema"]["breaking"] is True
    allowed = regression(GOOD, schema=compat, allow_breaking_schema=True)
    assert allowed.passed
    check = allowed.check("schema")
    assert check is not None
    assert check.detail.startswith("allowed: ")
    assert schema_check(check_compatibility(current, current)).detail == "no input changes"
    alone = evaluate_schema(compat, "fraud:2", "fraud:1")
    assert (alone.gate, alone.baseline, alone.passed) == ("schema", "fraud:1", False)


def test_candidate_that_could_not_answer_fails() -> None:
    report = regression(None, [], labels=None, candidate_error="could not be loaded: bad file")
    assert failed_names(report) == ["candidate_answers"]
    assert report.failed[0].detail == "could not be loaded: bad file"


def test_inconsistent_rows_are_refused_and_empty_rows_fail() -> None:
    with pytest.raises(InvalidInputError, match="one entry per row"):
        regression(GOOD[:10])
    report = regression([], [], labels=[])
    assert failed_names(report) == ["rows"]


def test_percentile_interpolates_like_numpy() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 0.95) == pytest.approx(float(np.quantile(values, 0.95)))
    with pytest.raises(InvalidInputError):
        percentile([], 0.5)
