"""The gates against a real registry with real scikit-learn models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from modelport.api.gates import (
    MAX_GOLDEN_REQUESTS,
    check_schema,
    gate_reports,
    read_golden,
    run_regression,
    run_smoke,
)
from modelport.api.registry import Registry
from modelport.core.errors import (
    DatasetNotFoundError,
    InvalidInputError,
    InvalidRefError,
    ModelLoadError,
    ModelNotFoundError,
    VersionNotFoundError,
)
from modelport.core.examples import encode
from modelport.core.refs import ModelRef
from modelport.core.settings import Settings
from modelport.rollout.gate_report import GateReport
from modelport.rollout.gates import Tolerance
from modelport.runtime.base import Runtime

Data = tuple[pd.DataFrame, np.ndarray]


def lr() -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.5))


@pytest.fixture(scope="module")
def labelled(data: Data) -> pd.DataFrame:
    x, y = data
    return x.assign(label=y)


@pytest.fixture(scope="module")
def reg(
    tmp_path_factory: pytest.TempPathFactory, data: Data, pipeline: Pipeline, labelled: pd.DataFrame
) -> Iterator[Registry]:
    """fraud:1 baseline (with a validation dataset), :2 a good candidate, :3 predicts a constant
    class, :4 lacks input f4, :5 needs an input f5 the data lacks, :6 has no input example."""
    x, y = data
    home = tmp_path_factory.mktemp("gates") / "home"
    registry = Registry.open(settings=Settings(home=home))
    example = x.head(5)
    common = {"name": "fraud", "fast_path": False}
    registry.register(pipeline, input_example=example, validation_data=labelled, **common)
    registry.register(lr().fit(x, y), input_example=example, **common)
    constant = DummyClassifier(strategy="constant", constant=0).fit(x, y)
    registry.register(constant, input_example=example, **common)
    fewer = x.drop(columns=["f4"])
    registry.register(lr().fit(fewer, y), input_example=fewer.head(5), **common)
    more = x.assign(f5=x["f0"] * 2)
    registry.register(lr().fit(more, y), input_example=more.head(5), **common)
    registry.register(pipeline, **common)
    golden = tmp_path_factory.mktemp("golden") / "golden.csv"
    labelled.to_csv(golden, index=False)
    registry.register_dataset(golden, "golden")
    try:
        yield registry
    finally:
        registry.close()


def names(report: GateReport) -> list[str]:
    return [c.name for c in report.failed]


# -- regression ---------------------------------------------------------------------------------
def test_good_candidate_passes_regression_and_the_report_is_stored(reg: Registry) -> None:
    report = run_regression(reg, "fraud:2", "fraud:1", data="golden:1", label_column="label")

    assert report.passed, report.rows()
    assert (report.gate, report.candidate, report.baseline) == ("regression", "fraud:2", "fraud:1")
    assert [c.name for c in report.checks] == [
        "schema",
        "missing_predictions",
        "accuracy_delta",
        "agreement",
        "p95_ms",
    ]
    assert report.info["data"] == "dataset golden:1"
    assert report.info["rows"] == 300
    assert report.info["latency_samples"] == 50
    assert report.info["candidate_metrics"]["accuracy"] > 0.9

    stored = gate_reports(reg, "fraud:2", gate="regression")[-1]
    assert (stored.ref, stored.gate, stored.passed) == ("fraud:2", "regression", True)
    assert GateReport.from_dict(stored.report) == GateReport.from_dict(
        json.loads(json.dumps(report.to_dict()))
    )
    event = reg.audit(action="version.gate")[-1]
    assert (event.object_name, event.version) == ("fraud", 2)
    assert event.details["report_id"] == stored.id


def test_constant_candidate_fails_regression_on_the_accuracy_delta(
    reg: Registry, labelled: pd.DataFrame
) -> None:
    report = run_regression(reg, "fraud:3", "fraud:1", labelled, "label")

    assert not report.passed
    assert "accuracy_delta" in names(report)
    delta = report.check("accuracy_delta")
    assert delta is not None
    assert delta.figure is not None
    assert delta.figure < -0.3
    assert "vs baseline" in delta.detail
    assert report.info["data"] == "frame"
    assert gate_reports(reg, "fraud:3")[-1].passed is False


def test_removed_input_is_flagged_breaking_unless_allowed(
    reg: Registry, labelled: pd.DataFrame
) -> None:
    report = run_regression(reg, "fraud:4", "fraud:1", labelled, "label", store=False)
    assert names(report) == ["schema"]
    changes = report.info["schema"]["changes"]
    assert [(c["kind"], c["field"], c["severity"]) for c in changes] == [
        ("input_removed", "f4", "breaking")
    ]
    allowed = run_regression(
        reg, "fraud:4", "fraud:1", labelled, "label", allow_breaking_schema=True, store=False
    )
    assert allowed.passed, allowed.rows()

    alone = check_schema(reg, "fraud:4", "fraud:1")
    assert (alone.gate, alone.passed) == ("schema", False)
    assert gate_reports(reg, "fraud:4", gate="schema")[-1].passed is False
    backwards = check_schema(reg, "fraud:1", "fraud:4", store=False)  # fraud:1 needs f4,
    assert not backwards.passed  # which fraud:4's clients never send
    assert [c["kind"] for c in backwards.info["schema"]["changes"]] == ["required_input_added"]


def test_candidate_that_cannot_take_the_data_fails_the_gate(
    reg: Registry, labelled: pd.DataFrame
) -> None:
    report = run_regression(reg, "fraud:5", "fraud:1", labelled, "label", store=False)
    assert names(report) == ["schema", "candidate_answers"]
    assert "'f5'" in report.failed[1].detail
    assert "missing" in report.failed[1].detail


def test_without_data_the_linked_validation_dataset_is_used(reg: Registry) -> None:
    report = run_regression(reg, "fraud:2", "fraud:1", label_column="label", store=False)
    assert report.info["data"] == "dataset fraud-validation:1 (validation)"
    assert report.passed
    with pytest.raises(InvalidInputError, match="neither links a golden or validation dataset"):
        run_regression(reg, "fraud:2", "fraud:3", store=False)


def test_unlabelled_regression_gates_on_agreement(reg: Registry, data: Data) -> None:
    x, _ = data
    good = run_regression(reg, "fraud:2", "fraud:1", x, store=False, p95_budget_ms=10_000)
    assert good.passed, good.rows()
    agreement = good.check("agreement")
    assert agreement is not None
    assert agreement.threshold == 0.9
    bad = run_regression(reg, "fraud:3", "fraud:1", x, store=False)
    assert names(bad) == ["agreement"]
    tight = run_regression(
        reg,
        "fraud:3",
        "fraud:1",
        x.assign(label=0),
        "label",
        tolerances={"accuracy": Tolerance(1.0)},
        store=False,
    )
    assert tight.passed  # the constant class is the label here, and any loss is tolerated


def test_regression_errors_name_the_problem(reg: Registry, labelled: pd.DataFrame) -> None:
    with pytest.raises(InvalidInputError, match="label column 'y' is not in the data"):
        run_regression(reg, "fraud:2", "fraud:1", labelled, "y")
    with pytest.raises(InvalidRefError, match="must be NAME:VERSION"):
        run_regression(reg, "fraud:2", "fraud:1", "golden")
    with pytest.raises(DatasetNotFoundError):
        run_regression(reg, "fraud:2", "fraud:1", "golden:9")
    with pytest.raises(VersionNotFoundError):
        run_regression(reg, "fraud:99", "fraud:1", labelled)
    with pytest.raises(ModelNotFoundError):
        run_regression(reg, "fraud:2", "churn:1", labelled)
    with pytest.raises(InvalidInputError, match="does not fit baseline fraud:1"):
        run_regression(reg, "fraud:2", "fraud:1", labelled.drop(columns=["f3"]))
    with pytest.raises(InvalidInputError, match="no rows"):
        run_regression(reg, "fraud:2", "fraud:1", labelled.head(0))
    with pytest.raises(InvalidInputError, match="mae does not apply"):
        run_regression(reg, "fraud:2", "fraud:1", labelled, "label", tolerances={"mae": 0.1})
    with pytest.raises(InvalidInputError, match="latency_samples"):
        run_regression(reg, "fraud:2", "fraud:1", labelled, latency_samples=0)


def test_regressors_are_compared_on_mae_and_rmse(reg: Registry, data: Data) -> None:
    x, _ = data
    target = 3 * x["f0"] - x["f2"] + np.random.default_rng(1).normal(0, 0.1, len(x))
    # these two keep their ONNX fast path: the gates load what serving would serve
    reg.register(LinearRegression().fit(x, target), name="price", input_example=x.head(3))
    reg.register(Ridge(alpha=1.0).fit(x, target), name="price", input_example=x.head(3))
    mean = DummyRegressor().fit(x, target)
    reg.register(mean, name="price", input_example=x.head(3), fast_path=False)
    rows = x.assign(price=target)

    close = run_regression(reg, "price:2", "price:1", rows, "price", store=False)
    assert close.passed, close.rows()
    assert close.info["task"] == "regression"
    assert {"mae_delta", "rmse_delta"} <= {c.name for c in close.checks}
    flat = run_regression(reg, "price:3", "price:1", rows, "price", store=False)
    assert names(flat) == ["mae_delta", "rmse_delta"]  # with labels, agreement is reported only
    assert flat.info["candidate_metrics"]["mae"] > 10 * flat.info["baseline_metrics"]["mae"]


# -- smoke --------------------------------------------------------------------------------------
def test_smoke_passes_for_a_good_model_and_fails_an_impossible_budget(reg: Registry) -> None:
    report = run_smoke(reg, "fraud:2")
    assert report.passed, report.rows()
    assert report.info["requests"] == 1
    assert report.info["repeats"] == 3
    answered = report.check("answered")
    assert answered is not None
    assert answered.figure == 3

    slow = run_smoke(reg, "fraud:2", budget_ms=1e-6)
    assert names(slow) == ["latency_max_ms"]
    assert "3 of 3 calls over budget" in slow.failed[0].detail
    smoke_reports = gate_reports(reg, "fraud:2", gate="smoke")
    assert [r.passed for r in smoke_reports[-2:]] == [True, False]


def test_smoke_runs_golden_requests(reg: Registry, data: Data, tmp_path: Path) -> None:
    x, _ = data
    report = run_smoke(reg, "fraud:1", x.head(4), repeats=2, store=False)
    assert report.passed
    assert report.info["requests"] == 5
    answered = report.check("answered")
    assert answered is not None
    assert answered.figure == 10

    capped = run_smoke(reg, "fraud:1", x, repeats=1, store=False)
    assert capped.info["requests"] == 1 + MAX_GOLDEN_REQUESTS
    assert "first 100" in capped.info["golden_used"]

    path = tmp_path / "golden.json"
    path.write_text(json.dumps([encode(x.head(2)), encode(x.iloc[5:8])]))
    from_json = run_smoke(reg, "fraud:6", read_golden(path), golden_label="golden.json")
    assert from_json.passed, from_json.rows()
    assert from_json.info["golden"] == ["golden.json"]
    assert from_json.info["requests"] == 2  # fraud:6 has no input example

    by_ref = run_smoke(reg, "fraud:1", "golden:1", store=False)
    assert by_ref.passed
    assert by_ref.info["golden"] == ["golden:1"]  # the label column is ignored like any extra


def test_smoke_failures_are_findings_and_missing_requests_an_error(
    reg: Registry, data: Data, tmp_path: Path
) -> None:
    x, _ = data
    report = run_smoke(reg, "fraud:1", x.drop(columns=["f2"]).head(2), store=False)
    assert names(report) == ["answered"]
    assert "golden[0]: input 'f2' of 'fraud:1' is missing" in report.failed[0].detail
    with pytest.raises(InvalidInputError, match="fraud:6 has no stored input example"):
        run_smoke(reg, "fraud:6")
    with pytest.raises(InvalidInputError, match="latency budget"):
        run_smoke(reg, "fraud:2", budget_ms=0, store=False)
    with pytest.raises(InvalidInputError, match="golden requests must be"):
        run_smoke(reg, "fraud:2", golden=42, store=False)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"type": "ndarray", "dtype": "no-such-dtype", "data": [1]}]))
    with pytest.raises(InvalidInputError, match="request 0 is not an encoded example"):
        read_golden(bad)
    bad.write_text("{not json")
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        read_golden(bad)


class BrokenLoads(Registry):
    """A registry whose runtime cannot load one version's artifact (say, a damaged file that
    still matches its digest): what a runtime raises as ``ModelLoadError``."""

    broken = "fraud:2"

    def load(
        self, ref: ModelRef | str, *, threads: int | None = None, variant: str = "auto"
    ) -> Runtime:
        if self.get(ref).ref == self.broken:
            raise ModelLoadError(f"could not load scikit-learn model {self.broken}: bad file")
        return super().load(ref, threads=threads, variant=variant)


def test_a_candidate_that_cannot_load_fails_its_gates(
    reg: Registry, labelled: pd.DataFrame
) -> None:
    broken = BrokenLoads(reg.service, reg.settings)
    smoke = run_smoke(broken, "fraud:2")
    assert names(smoke)[0] == "answered"
    assert "load: could not be loaded: could not load scikit-learn model" in smoke.failed[0].detail
    assert gate_reports(reg, "fraud:2", gate="smoke")[-1].passed is False
    report = run_regression(broken, "fraud:2", "fraud:1", labelled, "label")
    assert names(report) == ["candidate_answers"]
    assert report.failed[0].detail.startswith("could not be loaded: ")
    assert gate_reports(reg, "fraud:2", gate="regression")[-1].passed is False
    with pytest.raises(ModelLoadError):  # the baseline failing to load is an error
        run_regression(broken, "fraud:1", "fraud:2", labelled, "label", store=False)


def test_a_model_failing_to_predict_fails_smoke(reg: Registry, data: Data) -> None:
    x, _ = data
    holes = x.head(2).assign(f0=[np.nan, 1.0])
    report = run_smoke(reg, "fraud:1", holes, repeats=1, store=False)
    assert names(report) == ["answered"]
    assert "golden[0]:" in report.failed[0].detail
    assert "failed to predict" in report.failed[0].detail


def test_reports_are_listed_per_model_and_version(reg: Registry) -> None:
    run_smoke(reg, "fraud:1")
    everything = gate_reports(reg, "fraud")
    assert {r.version for r in everything} >= {1, 2}
    assert [r.id for r in everything] == sorted(r.id for r in everything)
    assert all(r.version == 1 for r in gate_reports(reg, "fraud:1"))
    with pytest.raises(ModelNotFoundError):
        gate_reports(reg, "churn")


def test_reports_are_stored_on_every_backend(
    registry: Registry, pipeline: Pipeline, data: Data
) -> None:
    x, _ = data
    registry.register(pipeline, name="fraud", input_example=x.head(3), fast_path=False)
    report = run_smoke(registry, "fraud:1", repeats=1)
    (stored,) = gate_reports(registry, "fraud:1")
    assert stored.report == json.loads(json.dumps(report.to_dict()))
    assert stored.created_by == registry.service.actor
