"""``modelport test smoke|regression|reports`` in process: exit codes, tables, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tests.cli.conftest import Cli

from modelport.api.registry import Registry
from modelport.core.examples import encode
from modelport.core.settings import Settings

CHECK_KEYS = {"name", "figure", "threshold", "op", "unit", "passed", "detail"}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fraud:1 baseline, :2 a good candidate, :3 a constant class, :4 without input f4; files
    golden.csv (labelled), example.json, and dataset golden:1."""
    rng = np.random.default_rng(5)
    x = pd.DataFrame(rng.normal(size=(200, 4)), columns=["f1", "f2", "f3", "f4"])
    y = (x["f1"] - x["f2"] > 0).astype(int).to_numpy()
    root = tmp_path_factory.mktemp("gate-cli")
    with Registry.open(settings=Settings(home=root / "home")) as registry:
        common = {"name": "fraud", "input_example": x.head(4), "fast_path": False}
        model = make_pipeline(StandardScaler(), LogisticRegression())
        registry.register(model.fit(x, y), **common)
        registry.register(
            make_pipeline(StandardScaler(), LogisticRegression(C=0.3)).fit(x, y), **common
        )
        registry.register(DummyClassifier(strategy="constant", constant=1).fit(x, y), **common)
        fewer = x.drop(columns=["f4"])
        registry.register(
            LogisticRegression().fit(fewer, y),
            name="fraud",
            input_example=fewer.head(4),
            fast_path=False,
        )
        x.assign(label=y).to_csv(root / "golden.csv", index=False)
        registry.register_dataset(root / "golden.csv", "golden")
    (root / "example.json").write_text(json.dumps([encode(x.head(2))]))
    return root


@pytest.fixture
def run(home: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(home / "home", capsys)


def test_smoke_passes_with_a_table(run: Cli) -> None:
    out = run("test", "smoke", "fraud:2")
    lines = out.splitlines()
    assert lines[0] == "smoke gate passed for fraud:2"
    header = next(line for line in lines if line.startswith("CHECK"))
    assert header.split() == ["CHECK", "FIGURE", "THRESHOLD", "RESULT", "DETAIL"]
    latency = next(line for line in lines if line.startswith("latency_max_ms"))
    assert " ms" in latency
    assert " ok " in latency


def test_smoke_json_shape(run: Cli, home: Path) -> None:
    report = run.json("test", "smoke", "fraud:1", "--repeats", "2")
    assert set(report) == {"gate", "candidate", "baseline", "passed", "checks", "info"}
    assert (report["gate"], report["candidate"], report["baseline"]) == ("smoke", "fraud:1", None)
    assert report["passed"] is True
    assert all(set(c) == CHECK_KEYS for c in report["checks"])
    assert report["info"]["repeats"] == 2
    golden = run.json("test", "smoke", "fraud:1", "--golden", str(home / "example.json"))
    assert golden["info"]["golden"] == ["file example.json"]
    assert golden["info"]["requests"] == 2
    rows = run.json("test", "smoke", "fraud:1", "--golden", str(home / "golden.csv"))
    assert rows["passed"] is True
    assert rows["info"]["requests"] == 101


def test_smoke_fails_an_impossible_budget_with_exit_1(run: Cli) -> None:
    out = run("test", "smoke", "fraud:2", "--budget-ms", "0.000001", code=1)
    assert out.splitlines()[0] == "smoke gate FAILED for fraud:2: latency_max_ms"
    assert "FAIL" in next(line for line in out.splitlines() if line.startswith("latency_max_ms"))
    report = run.json("test", "smoke", "fraud:2", "--budget-ms", "0.000001", code=1)
    assert [c["name"] for c in report["checks"] if not c["passed"]] == ["latency_max_ms"]


def test_smoke_errors_have_their_exit_codes(run: Cli, home: Path) -> None:
    assert "'nope' is not registered" in run("test", "smoke", "nope:1", code=3)
    assert "has no version 9" in run("test", "smoke", "fraud:9", code=3)
    assert "error:" in run("test", "smoke", "bad name!", code=2)
    assert "positive number" in run("test", "smoke", "fraud:1", "--budget-ms", "0", code=2)
    run("test", "smoke", "fraud:1", "--budget-ms", "fast", code=2)
    run("test", "smoke", "fraud:1", "--golden", str(home / "missing.csv"), code=2)
    (home / "notes.txt.json").write_text("{")
    assert "not valid JSON" in run(
        "test", "smoke", "fraud:1", "--golden", str(home / "notes.txt.json"), code=2
    )


def test_regression_passes_for_a_good_candidate(run: Cli, home: Path) -> None:
    args = ("test", "regression", "fraud:2", "--baseline", "fraud:1")
    out = run(*args, "--data", str(home / "golden.csv"), "--label", "label")
    lines = out.splitlines()
    assert lines[0] == "regression gate passed for fraud:2 vs fraud:1"
    assert "data file golden.csv" in lines[1]
    assert "task classification" in lines[1]
    for name in ("schema", "accuracy_delta", "agreement", "p95_ms"):
        assert any(line.startswith(name) for line in lines), name
    report = run.json(*args, "--dataset", "golden:1", "--label", "label", "--p95-budget-ms", "5000")
    assert report["passed"] is True
    assert report["info"]["data"] == "dataset golden:1"
    assert {c["name"] for c in report["checks"]} >= {"accuracy_delta", "p95_ms"}


def test_regression_fails_a_constant_candidate_naming_the_metric(run: Cli, home: Path) -> None:
    args = ("test", "regression", "fraud:3", "--baseline", "fraud:1", "--dataset", "golden:1")
    out = run(*args, "--label", "label", code=1)
    assert out.splitlines()[0].startswith("regression gate FAILED for fraud:3 vs fraud:1: ")
    assert "accuracy_delta" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith("accuracy_delta"))
    assert "FAIL" in row
    loose = run.json(*args, "--label", "label", "--tolerance", "accuracy=100%", code=0)
    assert loose["passed"] is True
    unlabelled = run.json(*args, code=1)  # without labels, agreement is what fails
    assert [c["name"] for c in unlabelled["checks"] if not c["passed"]] == ["agreement"]


def test_regression_flags_a_removed_input_as_breaking(run: Cli) -> None:
    args = ("test", "regression", "fraud:4", "--baseline", "fraud:1", "--dataset", "golden:1")
    out = run(*args, "--label", "label", code=1)
    assert "FAILED" in out.splitlines()[0]
    assert "schema" in out.splitlines()[0]
    assert "input 'f4' (float64) is gone" in out
    change = next(line for line in out.splitlines() if line.startswith("breaking"))
    assert change.split()[:3] == ["breaking", "input_removed", "f4"]
    assert "hint: --allow-breaking-schema" in out
    allowed = run.json(*args, "--label", "label", "--allow-breaking-schema")
    assert allowed["passed"] is True
    assert allowed["info"]["schema"]["breaking"] is True


def test_regression_input_errors(run: Cli, home: Path) -> None:
    base = ("test", "regression", "fraud:2", "--baseline", "fraud:1")
    data = ("--data", str(home / "golden.csv"))
    assert "not both" in run(*base, *data, "--dataset", "golden:1", code=2)
    assert "METRIC=VALUE" in run(*base, *data, "--tolerance", "accuracy", code=2)
    assert "must be a number" in run(*base, *data, "--tolerance", "accuracy=lots", code=2)
    assert "no metric 'auc'" in run(
        *base, *data, "--label", "label", "--tolerance", "auc=1", code=2
    )
    assert "label column 'y'" in run(*base, *data, "--label", "y", code=2)
    assert "NAME:VERSION" in run(*base, "--dataset", "golden", code=2)
    assert "min_agreement" in run(*base, *data, "--min-agreement", "2", code=2)
    assert "'golden' has no version 7" in run(*base, "--dataset", "golden:7", code=3)
    assert "'nope' is not registered" in run(*base[:3], "--baseline", "nope:1", *data, code=3)
    run("test", "regression", "fraud:2", *data, code=2)  # --baseline is required
    assert "neither links" in run(*base, code=2)


def test_reports_are_stored_and_listed(run: Cli) -> None:
    smoke = ("test", "reports", "fraud:3", "--gate", "smoke")
    run("test", "smoke", "fraud:3", "--no-store")
    assert run.json(*smoke) == []
    run("test", "smoke", "fraud:3")
    run("test", "smoke", "fraud:3", "--budget-ms", "0.000001", code=1)
    listed = run.json(*smoke)
    assert [(r["ref"], r["gate"], r["passed"]) for r in listed] == [
        ("fraud:3", "smoke", True),
        ("fraud:3", "smoke", False),
    ]
    assert listed[1]["report"]["checks"][-1]["name"] == "latency_max_ms"
    table = run(*smoke)
    assert table.splitlines()[0].split() == [
        "ID",
        "VERSION",
        "GATE",
        "RESULT",
        "BASELINE",
        "FAILED",
        "AT",
        "BY",
    ]
    assert "latency_max_ms" in table.splitlines()[2]
    assert run.json("test", "reports", "fraud:3", "--gate", "schema") == []
    everything = run.json("test", "reports", "fraud")
    assert {r["version"] for r in everything} >= {3}
    assert len(everything) > len(listed)
    assert "'nope' is not registered" in run("test", "reports", "nope", code=3)
    audit = run.json("audit", "--action", "version.gate")
    assert [e["version"] for e in audit][-2:] == [3, 3]
